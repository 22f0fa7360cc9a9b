//! Parsing of the `since` request parameter.

use jiff::civil::{Date, DateTime};
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
/// ```
/// use kafka_sse::parse_since;
///
/// assert_eq!(parse_since("1700000000000").unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
/// assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000);
/// assert!(parse_since("yesterday").is_err());
/// ```
pub fn parse_since(value: &str) -> Result<i64, Error> {
    let millis = parse_time(value)?;
    // Kafka timestamps start at the epoch, and its time look-up reads -1 and -2 as "latest"
    // and "earliest": an earlier time would silently mean something else.
    if millis < 0 {
        return Err(Error::invalid_since(
            "the time is before 1970-01-01T00:00:00Z, the earliest Kafka timestamp",
        ));
    }
    Ok(millis)
}

fn parse_time(value: &str) -> Result<i64, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid_since("empty value"));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .map_err(|_| Error::invalid_since("milliseconds out of range"));
    }
    if let Ok(timestamp) = value.parse::<Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    let utc = |datetime: DateTime| {
        datetime
            .to_zoned(TimeZone::UTC)
            .map(|zoned| zoned.timestamp().as_millisecond())
            .map_err(|_| Error::invalid_since("date-time out of range"))
    };
    if let Ok(datetime) = value.parse::<DateTime>() {
        return utc(datetime);
    }
    if let Ok(date) = value.parse::<Date>() {
        return utc(date.to_datetime(jiff::civil::Time::midnight()));
    }
    Err(Error::invalid_since(
        "expected epoch milliseconds or an ISO-8601 date-time such as 2026-11-22T10:00:00Z",
    ))
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
