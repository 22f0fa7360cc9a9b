//! `Last-Event-ID` decoding: [`parse_last_event_id`] and the codecs' `decode`, on any text
//! a client can send. Text starting with `k` is a compact id, which the `compact_id` target
//! covers; everything else is read as JSON.
//!
//! Beyond "never panics", every input must give:
//! - the same answer from `parse_last_event_id`, `OffsetIds.decode` and
//!   `TimestampIds.decode` (the codecs decode with it);
//! - when accepted: one entry per element of a non-empty JSON array, each naming the
//!   element's topic, and entries with a position survive an encode and decode by the codec
//!   that writes that position, through an id that is one line with no NUL;
//! - when refused: a 400 `invalid-last-event-id` whose words do not depend on the topic
//!   names the client sent (replacing every string in the JSON changes nothing), so a
//!   problem body can never echo a topic outside the request's streams.
#![no_main]

use kafka_sse::{
    parse_last_event_id, AssignmentEntry, Error, EventIdCodec, OffsetIds, PartitionPosition, Start,
    TimestampIds,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // Header values reach the library as text; other bytes are refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.starts_with('k') {
        return;
    }
    let parsed = parse_last_event_id(text);
    let answer = format!("{parsed:?}");
    assert_eq!(format!("{:?}", OffsetIds.decode(text)), answer);
    assert_eq!(format!("{:?}", TimestampIds.decode(text)), answer);
    let json = serde_json::from_str::<Value>(text).ok();
    match parsed {
        Ok(entries) => check_accepted(json.as_ref(), &entries),
        Err(error) => check_refused(json.as_ref(), &error),
    }
});

fn check_accepted(json: Option<&Value>, entries: &[AssignmentEntry]) {
    let items = json
        .and_then(Value::as_array)
        .expect("only a JSON array is accepted");
    assert!(!entries.is_empty(), "an empty array is accepted");
    // Each element gives one entry, in order; then a Covers entry for each element that
    // carries a valid "partitions" count.
    let covers = items
        .iter()
        .filter(|item| {
            item.get("partitions")
                .and_then(Value::as_u64)
                .is_some_and(|n| i32::try_from(n).is_ok())
                && item.get("topic").is_some_and(Value::is_string)
        })
        .count();
    assert_eq!(items.len() + covers, entries.len(), "an entry was dropped or added");
    for (item, entry) in items.iter().zip(entries) {
        let topic = item
            .as_str()
            .or_else(|| item.get("topic").and_then(Value::as_str));
        assert_eq!(topic, Some(entry.topic()));
        check_round_trip(entry);
    }
}

/// An entry with a position, written by the codec for that position and read back, is the
/// same entry.
fn check_round_trip(entry: &AssignmentEntry) {
    let AssignmentEntry::Partition {
        topic,
        partition,
        start: Some(start),
    } = entry
    else {
        return;
    };
    let id = match *start {
        Start::Offset(offset) => {
            OffsetIds::json().encode(&[PartitionPosition::new(topic.as_str(), *partition, offset)])
        }
        Start::Timestamp(millis) => {
            TimestampIds::json()
                .encode(&[PartitionPosition::new(topic.as_str(), *partition, 0)
                    .with_last_timestamp(millis)])
        }
        _ => return,
    };
    assert!(
        !id.contains(['\n', '\r', '\0']),
        "an id must be one SSE field value: {id:?}"
    );
    let decoded = parse_last_event_id(&id).expect("an id the codec wrote decodes");
    assert_eq!(decoded, std::slice::from_ref(entry), "{id}");
}

fn check_refused(json: Option<&Value>, error: &Error) {
    assert!(
        matches!(error, Error::InvalidLastEventId { .. }),
        "unexpected error {error:?}"
    );
    assert_eq!(error.status_code(), 400);
    let problem = error.problem();
    assert_eq!(problem.status, 400);
    match json {
        // Same structure, other strings: the answer must not change.
        Some(json) => {
            let masked = mask_strings(json).to_string();
            let again = parse_last_event_id(&masked).expect_err("the masked id is refused too");
            assert_eq!(
                again.problem(),
                problem,
                "the answer depends on a string's text"
            );
        }
        // Not JSON: the fixed reason, whatever the text.
        None => assert_eq!(
            problem,
            parse_last_event_id("{").unwrap_err().problem(),
            "the answer to text that is not JSON depends on the text"
        ),
    }
}

/// `value` with every string (not object keys) replaced by the same short one.
fn mask_strings(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::String("masked".to_owned()),
        Value::Array(items) => Value::Array(items.iter().map(mask_strings).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), mask_strings(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}
