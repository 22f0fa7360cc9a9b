//! Parsing of the `since` request parameter.

use jiff::civil::{Date, DateTime};
use jiff::fmt::rfc2822::DateTimeParser;
use jiff::fmt::temporal::Pieces;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::Error;

/// Parses a `since` value into milliseconds since the Unix epoch.
///
/// Accepted forms, those of EventStreams' `since` ("anything JavaScript's `Date.parse`
/// accepts") that people use:
/// - integer milliseconds since the epoch (`1700000000000`);
/// - an RFC 3339 / ISO-8601 date-time with an offset, `T` or a space between date and
///   time, and optional fractional seconds (`2026-11-22T10:00:00Z`,
///   `2026-11-22 12:00:00.250+02:00`, `2026-11-22T12:00+0200`);
/// - an ISO-8601 date-time without an offset, taken as UTC (`2026-11-22T10:00:00`,
///   `2026-11-22 10:00`);
/// - a date alone, meaning midnight UTC (`2026-11-22`);
/// - an RFC 2822 date-time, which includes the HTTP date format (`Thu, 26 Nov 2026
///   19:37:44 GMT`, `26 Nov 2026 19:37:44 +0100`). The weekday, when given, must match
///   the date; the zone is an offset or one of `GMT`, `UT`, `UTC`, `Z` and the US zones
///   RFC 2822 names (`EST`, `EDT`, `CST`, `CDT`, `MST`, `MDT`, `PST`, `PDT`), since any
///   other name would be read as UTC, silently.
///
/// The time must lie between the epoch, where Kafka timestamps start, and
/// 9999-12-30T22:00:00Z, the latest time the date library represents.
///
/// # Errors
///
/// [`Error::InvalidSince`] (a 400) for anything else, with a reason that names what is
/// wrong (out of range, a weekday that does not match, an unknown zone name, or the forms
/// expected) and never repeats the value.
///
/// ```
/// use kafka_sse::parse_since;
///
/// assert_eq!(parse_since("1700000000000").unwrap(), 1_700_000_000_000);
/// assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
/// assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1_000);
/// assert_eq!(parse_since("1970-01-01 00:00:01.5+00:00").unwrap(), 1_500);
/// assert_eq!(parse_since("Fri, 02 Jan 1970 00:00:00 GMT").unwrap(), 86_400_000);
/// assert!(parse_since("yesterday").is_err());
/// assert!(parse_since("Thu, 02 Jan 1970 00:00:00 GMT").is_err());
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

/// The reason for an RFC 2822 date whose weekday is not the date's.
const WRONG_WEEKDAY: &str = "the weekday does not match the date";

/// The reason for an RFC 2822 date with a zone name RFC 2822 does not define.
const UNKNOWN_ZONE: &str =
    "unknown time zone name; use an offset such as +0100, or GMT, UT, UTC or Z";

/// The reason for anything that is not a time in a form [`parse_since`] accepts.
const EXPECTED: &str = "expected epoch milliseconds, an ISO-8601 date-time such as \
     2026-11-22T10:00:00Z or an RFC 2822 date such as Thu, 26 Nov 2026 19:37:44 GMT";

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
    if let Some(parsed) = rfc2822(value) {
        return parsed;
    }
    Err(beyond_the_years(value).unwrap_or_else(|| Error::invalid_since(EXPECTED)))
}

/// The RFC 2822 parser: the weekday, when given, must be the date's.
static RFC2822: DateTimeParser = DateTimeParser::new();

/// The RFC 2822 parser that takes any weekday, to tell a wrong weekday from a bad date.
static RFC2822_ANY_WEEKDAY: DateTimeParser = DateTimeParser::new().relaxed_weekday(true);

/// Parses an RFC 2822 date-time (HTTP dates are a subset); `None` when `value` is not one.
fn rfc2822(value: &str) -> Option<Result<i64, Error>> {
    let parsed = match RFC2822.parse_timestamp(value) {
        Ok(timestamp) => Ok(timestamp.as_millisecond()),
        Err(_) if RFC2822_ANY_WEEKDAY.parse_timestamp(value).is_ok() => {
            Err(Error::invalid_since(WRONG_WEEKDAY))
        }
        Err(_) => return rfc2822_beyond_the_years(value),
    };
    // jiff reads any zone name as UTC, as RFC 2822 asks; a `since` an hour off would go
    // unnoticed, so only the names RFC 2822 defines are taken.
    Some(if has_unknown_zone(value) {
        Err(Error::invalid_since(UNKNOWN_ZONE))
    } else {
        parsed
    })
}

/// Whether the zone of an RFC 2822 date-time, the word after the time, is a name other
/// than those RFC 2822 defines for UTC and the US zones (or `UTC`).
fn has_unknown_zone(value: &str) -> bool {
    const KNOWN: [&str; 12] = [
        "GMT", "UT", "UTC", "Z", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT",
    ];
    let mut words = value.split_ascii_whitespace();
    let zone = words.find(|word| word.contains(':')).and(words.next());
    zone.is_some_and(|zone| {
        zone.bytes().all(|b| b.is_ascii_alphabetic())
            && !KNOWN.iter().any(|known| known.eq_ignore_ascii_case(zone))
    })
}

/// The refusal of a well-formed RFC 2822 date-time in the year 9999 after jiff's latest
/// timestamp (`Fri, 31 Dec 9999 23:00:00 GMT`), the only year past it that the RFC 2822
/// parser reads (four digits at most).
///
/// Well-formed means it parses once the year is 2000, whatever its weekday.
fn rfc2822_beyond_the_years(value: &str) -> Option<Result<i64, Error>> {
    let in_range = value.replacen(" 9999 ", " 2000 ", 1);
    (in_range != value && RFC2822_ANY_WEEKDAY.parse_timestamp(&in_range).is_ok())
        .then(|| Err(beyond(false)))
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
    fn accepts_the_forms_eventstreams_documents() {
        for (form, millis) in [
            ("1970-01-01 00:00:01Z", 1_000),
            ("1970-01-01 00:00:01.5Z", 1_500),
            ("1970-01-01 02:00:01.250+02:00", 1_250),
            ("1970-01-01T01:00:01+0100", 1_000),
            ("1970-01-01T01:00+01:00", 0),
            ("1970-01-01 00:00:01", 1_000),
            ("1970-01-01 00:01", 60_000),
            ("Thu, 01 Jan 1970 00:00:01 GMT", 1_000),
            ("Thu, 01 Jan 1970 01:00:01 +0100", 1_000),
            ("01 Jan 1970 00:00:01 UT", 1_000),
            ("Thu, 1 Jan 1970 00:01 UTC", 60_000),
            ("thu, 01 jan 1970 00:00:01 gmt", 1_000),
            ("Wed, 31 Dec 1969 19:00:01 EST", 1_000),
            ("Thu, 26 Nov 2026 19:37:44 GMT", 1_795_721_864_000),
            ("Thu, 26 Nov 2026 19:37:44 +0100", 1_795_718_264_000),
            ("Thu, 26 Nov 2026 19:37:44 -0000", 1_795_721_864_000),
        ] {
            assert_eq!(parse_since(form).ok(), Some(millis), "{form:?}");
        }
    }

    #[test]
    fn rfc2822_dates_get_reasons_of_their_own() {
        assert_eq!(refusal("Fri, 01 Jan 1970 00:00:01 GMT"), WRONG_WEEKDAY);
        for zone in ["CET", "BST", "A", "XYZ"] {
            let date = format!("Thu, 26 Nov 2026 19:37:44 {zone}");
            assert_eq!(refusal(&date), UNKNOWN_ZONE, "{date:?}");
        }
        assert_eq!(refusal("Wed, 31 Dec 1969 23:59:59 GMT"), TOO_EARLY);
        assert_eq!(refusal("Mon, 01 Jan 1900 00:00:00 +0100"), TOO_EARLY);
        for late in [
            "Fri, 31 Dec 9999 23:00:00 GMT",
            "31 Dec 9999 23:00:00 +0000",
        ] {
            assert_eq!(refusal(late), TOO_LATE, "{late:?}");
        }
        for bad in [
            "Thu, 26 Nov 2026",
            "Thu, 26 Foo 2026 19:37:44 GMT",
            "Thu, 26 Nov 2026 25:37:44 GMT",
            "Thu, 26 Nov 10000 19:37:44 GMT",
            "Thu 26 Nov 2026 19:37:44 GMT",
        ] {
            assert_eq!(refusal(bad), EXPECTED, "{bad:?}");
        }
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

    /// The instant `millis` seen at the fixed offset of `minutes` from UTC.
    fn in_offset(millis: i64, minutes: i32) -> jiff::Zoned {
        let offset = jiff::tz::Offset::from_seconds(minutes * 60).unwrap();
        Timestamp::from_millisecond(millis)
            .unwrap()
            .to_zoned(TimeZone::fixed(offset))
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

        #[test]
        fn iso8601_with_a_space_and_any_offset_round_trips(
            millis in 0i64..4_102_444_800_000,
            offset_minutes in -1439i32..=1439,
        ) {
            let zoned = in_offset(millis, offset_minutes);
            let text = zoned.strftime("%Y-%m-%d %H:%M:%S%.f%:z").to_string();
            prop_assert_eq!(parse_since(&text).unwrap(), millis, "{}", text);
        }

        #[test]
        fn rfc2822_round_trips_to_the_second(
            millis in 0i64..4_102_444_800_000,
            offset_minutes in -1439i32..=1439,
        ) {
            let text = jiff::fmt::rfc2822::to_string(&in_offset(millis, offset_minutes)).unwrap();
            prop_assert_eq!(parse_since(&text).unwrap(), millis - millis % 1000, "{}", text);
            let http = jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&Timestamp::from_millisecond(millis).unwrap())
                .unwrap();
            prop_assert_eq!(parse_since(&http).unwrap(), millis - millis % 1000, "{}", http);
        }

        #[test]
        fn a_date_alone_is_midnight_utc(days in 0i64..47_482) {
            let midnight = days * 86_400_000;
            let text = Timestamp::from_millisecond(midnight).unwrap().strftime("%Y-%m-%d").to_string();
            prop_assert_eq!(parse_since(&text).unwrap(), midnight, "{}", text);
        }
    }
}
