//! Parsing of the `since` request parameter.

use jiff::civil::{Date, DateTime};
use jiff::fmt::temporal::Pieces;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::Error;

/// Parses a `since` value into milliseconds since the Unix epoch.
///
/// Accepted forms:
/// - integer milliseconds since the epoch (`1700000000000`);
/// - an RFC 3339 / ISO-8601 date-time with an offset (`2026-11-22T10:00:00Z`,
///   `2026-11-22T12:00:00+02:00`);
/// - an ISO-8601 date-time without an offset, taken as UTC (`2026-11-22T10:00:00`);
/// - a date alone, meaning midnight UTC (`2026-11-22`).
///
/// The time must lie between the epoch, where Kafka timestamps start, and
/// 9999-12-30T22:00:00Z, the latest time the date library represents.
///
/// ```
/// use kafka_sse::parse_since;
///
/// assert_eq!(parse_since("1700000000000").unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
/// assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000);
/// assert!(parse_since("yesterday").is_err());
/// assert!(parse_since("10000-01-01").is_err());
/// ```
pub fn parse_since(value: &str) -> Result<i64, Error> {
    let millis = parse_time(value)?;
    // Kafka timestamps start at the epoch, and its time look-up reads -1 and -2 as "latest"
    // and "earliest": an earlier time would silently mean something else.
    if millis < 0 {
        return Err(Error::invalid_since(TOO_EARLY));
    }
    Ok(millis)
}

/// The reason for a time before the epoch.
const TOO_EARLY: &str = "the time is before 1970-01-01T00:00:00Z, the earliest Kafka timestamp";

/// The reason for a time after [`Timestamp::MAX`].
const TOO_LATE: &str = "the time is after 9999-12-30T22:00:00Z, the latest supported";

fn parse_time(value: &str) -> Result<i64, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid_since("empty value"));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .filter(|&millis| millis <= Timestamp::MAX.as_millisecond())
            .ok_or_else(|| Error::invalid_since(TOO_LATE));
    }
    if let Ok(timestamp) = value.parse::<Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    let utc = |datetime: DateTime| {
        datetime
            .to_zoned(TimeZone::UTC)
            .map(|zoned| zoned.timestamp().as_millisecond())
            .map_err(|_| beyond(datetime.year() < 0))
    };
    if let Ok(datetime) = value.parse::<DateTime>() {
        return utc(datetime);
    }
    if let Ok(date) = value.parse::<Date>() {
        return utc(date.to_datetime(jiff::civil::Time::midnight()));
    }
    Err(beyond_the_years(value).unwrap_or_else(|| {
        Error::invalid_since(
            "expected epoch milliseconds or an ISO-8601 date-time such as 2026-11-22T10:00:00Z",
        )
    }))
}

/// The refusal of a time outside the range, before it or after it.
fn beyond(early: bool) -> Error {
    Error::invalid_since(if early { TOO_EARLY } else { TOO_LATE })
}

/// The refusal of a well-formed date-time whose year the parsers above cannot represent:
/// one beyond -9999 to 9999 (`10000-01-01`, `+010000-01-01T00:00Z`), or -9999 or 9999 with
/// an offset past jiff's earliest or latest timestamp (`9999-12-31T23:00:00Z`).
///
/// Well-formed means it parses once the year is replaced by one inside the range.
fn beyond_the_years(value: &str) -> Option<Error> {
    let (early, unsigned) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 4 {
        return None;
    }
    let (year, rest) = unsigned.split_at(digits);
    let year = year.trim_start_matches('0');
    let at_the_edge = year.len() > 4 || year == "9999";
    (at_the_edge && Pieces::parse(&format!("2000{rest}")).is_ok()).then(|| beyond(early))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_offsets_and_fractions() {
        assert_eq!(parse_since("1970-01-01T02:00:00+02:00").unwrap(), 0);
        assert_eq!(parse_since("1970-01-01T00:00:00.250Z").unwrap(), 250);
        assert_eq!(parse_since("1970-01-01T00:00:02").unwrap(), 2_000);
        assert_eq!(parse_since(" 5 ").unwrap(), 5);
    }

    #[test]
    fn rejects_garbage_and_out_of_range_numbers() {
        for bad in [
            "",
            "-5",
            "1.5",
            "99999999999999999999",
            "2026-13-01",
            "now",
            "１２",
            "1969-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.998Z",
            "0001-01-01",
        ] {
            let err = parse_since(bad).unwrap_err();
            assert!(err.is_client_error(), "{bad:?} gave {err}");
        }
    }

    /// The reason `parse_since` refuses `value` with.
    fn refusal(value: &str) -> String {
        match parse_since(value) {
            Err(Error::InvalidSince { reason }) => reason,
            other => panic!("{value:?} gave {other:?}"),
        }
    }

    #[test]
    fn times_after_the_latest_supported_get_their_own_reason() {
        let latest = Timestamp::MAX.as_millisecond();
        for late in [
            "10000-01-01",
            "+010000-01-01T00:00:00Z",
            "99999-12-31T00:00:00",
            "9999-12-31",
            "9999-12-31T23:59:59",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59+01:00",
            "99999999999999999999",
            &(latest + 1).to_string(),
        ] {
            assert_eq!(refusal(late), TOO_LATE, "{late:?}");
        }
        assert_eq!(parse_since(&latest.to_string()).unwrap(), latest);
        assert_eq!(parse_since("9999-12-30T22:00:00Z").unwrap(), latest - 999);
    }

    #[test]
    fn years_before_the_supported_ones_are_before_the_epoch() {
        for early in ["-010000-01-01", "-009999-01-01T00:00:00Z", "-009999-01-01"] {
            assert_eq!(refusal(early), TOO_EARLY, "{early:?}");
        }
    }

    #[test]
    fn malformed_times_at_the_edges_keep_the_general_reason() {
        for bad in [
            "9999-12-31Tnoon",
            "9999-13-01T00:00:00Z",
            "+10000",
            "12345-",
        ] {
            assert!(refusal(bad).starts_with("expected"), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(input in ".{0,64}") {
            let _ = parse_since(&input);
        }

        #[test]
        fn rfc3339_round_trips(millis in 0i64..4_102_444_800_000) {
            let text = Timestamp::from_millisecond(millis).unwrap().to_string();
            prop_assert_eq!(parse_since(&text).unwrap(), millis);
        }
    }
}
