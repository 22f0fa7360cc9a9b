//! Parsing of the `Last-Event-ID` a client sends to resume.

use serde_json::Value;

use crate::assignment::{AssignmentEntry, Start};
use crate::compact_parse;
use crate::Error;

/// Parses a `Last-Event-ID`, in the KafkaSSE JSON form or the compact form, into assignment
/// entries.
///
/// # The JSON form
///
/// A non-empty JSON array whose entries are either topic names (every partition at the
/// request's default start) or objects `{"topic": "t", "partition": 0, "offset": 42}` /
/// `{"topic": "t", "partition": 0, "timestamp": 1700000000000}`. When an object has both
/// `offset` and `timestamp`, the offset wins; an object with neither starts at the request's
/// default. Unknown fields are ignored, so ids from other tools still work. Every entry is
/// kept: the result has one entry per array element, in order, followed by an
/// [`AssignmentEntry::Covers`] for each object that carries `"partitions": N` (this
/// server writes it on the first entry of a topic the stream reads whole).
///
/// # The compact form
///
/// Text that starts with `k` is a compact id. It is made of URL-unreserved characters only
/// (usable as `?last-event-id=` as it is), names each topic once and packs positions as
/// varints (ABNF, RFC 5234):
///
/// ```text
/// compact-id = "k1" 1*( "~" group )
/// group      = topic "~" [ attr *( "." attr ) ] "~" positions
/// topic      = 1*( ALPHA / DIGIT / "." / "_" / "-" )  ; the Kafka topic name, verbatim
/// attr       = covers / topic-id / later-attr
/// covers     = "c" count          ; the id lists all the topic's partitions, count of them
/// count      = "0" / ( %x31-39 *DIGIT )                 ; at most 2147483647
/// topic-id   = "i" 22b64          ; the Kafka topic id (a UUID) as Kafka writes it
/// later-attr = %x61-7A *b64       ; any other lowercase key: ignored
/// positions  = 1*b64              ; base64url (RFC 4648 section 5), no padding, of 1*entry
/// b64        = ALPHA / DIGIT / "-" / "_"
/// entry      = head value         ; two unsigned LEB128 varints
/// head       = 2 * (partition - previous partition - 1) + kind  ; kind 0: offset, 1: timestamp
/// value      = zigzag(value - previous value of the same kind)  ; wrapping 64-bit arithmetic
/// ```
///
/// At the start of each group the previous partition is -1 and the previous value of each
/// kind 0, so contiguous partitions cost nothing and nearby offsets a byte or two. A group
/// gives its attributes first ([`AssignmentEntry::Covers`], [`AssignmentEntry::TopicId`]),
/// then one [`AssignmentEntry::Partition`] per entry. `k1` is the version: a change an older
/// decoder must not misread takes a new one; a new attribute key does not.
///
/// # Errors
///
/// [`Error::InvalidLastEventId`] (400) for anything else, with a reason that never repeats
/// the id's text.
///
/// ```
/// use kafka_sse::{parse_last_event_id, AssignmentEntry, Start};
///
/// let entries = parse_last_event_id(
///     r#"["page-create", {"topic":"recentchange","partition":1,"offset":42}]"#,
/// )
/// .unwrap();
/// assert_eq!(entries[0], AssignmentEntry::Topic("page-create".into()));
/// let offset_42 = AssignmentEntry::Partition {
///     topic: "recentchange".into(),
///     partition: 1,
///     start: Some(Start::Offset(42)),
/// };
/// assert_eq!(entries[1], offset_42);
/// assert_eq!(parse_last_event_id("k1~recentchange~~AlQ").unwrap(), [offset_42]);
/// assert!(parse_last_event_id("not json").is_err());
/// ```
pub fn parse_last_event_id(value: &str) -> Result<Vec<AssignmentEntry>, Error> {
    if value.starts_with('k') {
        return compact_parse::decode(value);
    }
    let parsed: Value =
        serde_json::from_str(value).map_err(|_| Error::invalid_last_event_id("not valid JSON"))?;
    let Value::Array(items) = parsed else {
        return Err(Error::invalid_last_event_id("expected a JSON array"));
    };
    if items.is_empty() {
        return Err(Error::invalid_last_event_id(
            "the array names no topic or partition",
        ));
    }
    let mut entries = items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_entry(item).map_err(|reason| entry_error(index, reason)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.extend(items.iter().filter_map(covers_entry));
    Ok(entries)
}

/// The `"partitions":N` an entry may carry: how many partitions its topic had when the id
/// was made, all of them in the id.
fn covers_entry(item: &Value) -> Option<AssignmentEntry> {
    let fields = item.as_object()?;
    let topic = fields.get("topic")?.as_str()?;
    let partitions = fields.get("partitions")?.as_u64()?;
    Some(AssignmentEntry::Covers {
        topic: topic.to_owned(),
        partitions: i32::try_from(partitions).ok()?,
    })
}

fn entry_error(index: usize, reason: &str) -> Error {
    Error::invalid_last_event_id(format!("entry {index}: {reason}"))
}

fn parse_entry(item: &Value) -> Result<AssignmentEntry, &'static str> {
    match item {
        Value::String(topic) => Ok(AssignmentEntry::Topic(topic.clone())),
        Value::Object(fields) => {
            let topic = match fields.get("topic") {
                Some(Value::String(topic)) => topic.clone(),
                _ => return Err("\"topic\" must be a string"),
            };
            let partition = fields
                .get("partition")
                .and_then(Value::as_u64)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or("\"partition\" must be a non-negative 32-bit integer")?;
            let offset = non_negative(
                fields.get("offset"),
                "\"offset\" must be a non-negative integer",
            )?;
            let timestamp = non_negative(
                fields.get("timestamp"),
                "\"timestamp\" must be non-negative epoch milliseconds",
            )?;
            let start = offset
                .map(Start::Offset)
                .or(timestamp.map(Start::Timestamp));
            Ok(AssignmentEntry::Partition {
                topic,
                partition,
                start,
            })
        }
        _ => Err("expected a topic name or an object with topic and partition"),
    }
}

fn non_negative(value: Option<&Value>, reason: &'static str) -> Result<Option<i64>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| i64::try_from(n).ok())
            .map(Some)
            .ok_or(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partition(value: &str) -> AssignmentEntry {
        parse_last_event_id(value).unwrap().remove(0)
    }

    #[test]
    fn offset_wins_over_timestamp() {
        assert_eq!(
            partition(r#"[{"topic":"t","partition":0,"timestamp":9,"offset":3}]"#),
            AssignmentEntry::Partition {
                topic: "t".into(),
                partition: 0,
                start: Some(Start::Offset(3))
            }
        );
    }

    #[test]
    fn timestamp_entries_and_null_positions() {
        assert_eq!(
            partition(r#"[{"topic":"t","partition":2,"timestamp":9,"offset":null}]"#),
            AssignmentEntry::Partition {
                topic: "t".into(),
                partition: 2,
                start: Some(Start::Timestamp(9))
            }
        );
        assert_eq!(
            partition(r#"[{"topic":"t","partition":2,"dc":"eqiad"}]"#),
            AssignmentEntry::Partition {
                topic: "t".into(),
                partition: 2,
                start: None
            }
        );
    }

    #[test]
    fn refuses_wrong_shapes_and_numbers() {
        let bad = [
            "",
            "{}",
            "[]",
            "[1]",
            "[null]",
            r#"[{"partition":0}]"#,
            r#"[{"topic":1,"partition":0}]"#,
            r#"[{"topic":"t"}]"#,
            r#"[{"topic":"t","partition":-1}]"#,
            r#"[{"topic":"t","partition":2147483648}]"#,
            r#"[{"topic":"t","partition":"0"}]"#,
            r#"[{"topic":"t","partition":0,"offset":-2}]"#,
            r#"[{"topic":"t","partition":0,"offset":1.5}]"#,
            r#"[{"topic":"t","partition":0,"offset":9223372036854775808}]"#,
            r#"[{"topic":"t","partition":0,"timestamp":"yesterday"}]"#,
        ];
        for value in bad {
            let err = parse_last_event_id(value).unwrap_err();
            assert!(matches!(err, Error::InvalidLastEventId { .. }), "{value}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_last_event_id(&deep).is_err());
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let err = parse_last_event_id(r#"[{"topic":"secret-topic","partition":"x"}]"#).unwrap_err();
        assert!(!err.to_string().contains("secret-topic"));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(input in ".{0,200}") {
            let _ = parse_last_event_id(&input);
        }

        #[test]
        fn keeps_every_entry(offsets in proptest::collection::vec(0i64..i64::MAX, 1..20)) {
            let items: Vec<String> = offsets
                .iter()
                .enumerate()
                .map(|(p, o)| format!(r#"{{"topic":"t","partition":{p},"offset":{o}}}"#))
                .collect();
            let entries = parse_last_event_id(&format!("[{}]", items.join(","))).unwrap();
            prop_assert_eq!(entries.len(), offsets.len());
        }
    }
}
