//! `since` parsing: [`parse_since`] on any text a client can put in the query.
//!
//! Beyond "never panics":
//! - an accepted time is not before the epoch (Kafka's time look-up reads -1 and -2 as
//!   "latest" and "earliest"), nor after jiff's latest timestamp;
//! - digits alone are epoch milliseconds, taken as they are;
//! - an accepted time, written back as RFC 3339, and as ISO-8601 with a space instead of
//!   `T`, parses to the same milliseconds; written back as an RFC 2822 (and HTTP) date, to
//!   the same second;
//! - a refusal is a 400 `invalid-since` with one of the library's fixed reasons, never the
//!   client's text.
#![no_main]

#[path = "refusal.rs"]
mod refusal;

use std::sync::OnceLock;

use jiff::fmt::rfc2822::{self, DateTimePrinter};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use kafka_sse::{parse_since, Error};
use libfuzzer_sys::fuzz_target;
use refusal::assert_fixed_refusal;

fuzz_target!(|data: &[u8]| {
    // Query values reach the library as text (percent-decoded, invalid UTF-8 replaced).
    let text = String::from_utf8_lossy(data);
    match parse_since(&text) {
        Ok(millis) => {
            assert!(millis >= 0, "{text:?} gives {millis}, before the epoch");
            let trimmed = text.trim();
            if trimmed.bytes().all(|b| b.is_ascii_digit()) {
                assert_eq!(Ok(millis), trimmed.parse::<i64>(), "{trimmed:?}");
            }
            let time = Timestamp::from_millisecond(millis)
                .unwrap_or_else(|_| panic!("{text:?} gives {millis}, after jiff's latest time"));
            let second = millis - millis % 1000;
            for (written, expected) in [
                (time.to_string(), millis),
                (time.strftime("%Y-%m-%d %H:%M:%S%.fZ").to_string(), millis),
                (rfc2822::to_string(&time.to_zoned(TimeZone::UTC)).unwrap(), second),
                (
                    DateTimePrinter::new().timestamp_to_rfc9110_string(&time).unwrap(),
                    second,
                ),
            ] {
                assert_eq!(parse_since(&written).ok(), Some(expected), "{written}");
            }
        }
        Err(error) => {
            assert!(
                matches!(error, Error::InvalidSince { .. }),
                "unexpected error {error:?}"
            );
            assert_fixed_refusal(&error, reasons());
        }
    }
});

/// Every reason `parse_since` gives, from one input that provokes each.
fn reasons() -> &'static [String] {
    static REASONS: OnceLock<Vec<String>> = OnceLock::new();
    REASONS.get_or_init(|| {
        [
            "",
            "yesterday",
            "1969-12-31T23:59:59.999Z",
            "10000-01-01",
            "Fri, 26 Nov 2026 19:37:44 GMT",
            "Thu, 26 Nov 2026 19:37:44 CET",
        ]
            .into_iter()
            .map(|input| parse_since(input).expect_err(input).problem().detail)
            .collect()
    })
}
