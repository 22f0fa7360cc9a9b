//! Event-id codecs: how a stream's positions become the SSE `id:` and back.

use std::fmt::{self, Write as _};

use crate::assignment::AssignmentEntry;
use crate::last_event_id::parse_last_event_id;
use crate::position::PartitionPosition;
use crate::Error;

/// Turns the positions of every assigned partition into an event id, and an id a client
/// sends back into assignment entries.
///
/// The positions come sorted by topic then partition, one per assigned partition, so every
/// id describes the whole assignment. The id must be a single line of text (no CR or LF) and
/// contain no NUL, as the SSE `id:` field requires.
///
/// Ready-made codecs: [`OffsetIds`] (the default) and [`TimestampIds`]; [`event_id_fn`]
/// adapts a closure.
pub trait EventIdCodec: Send + Sync + 'static {
    /// Encodes the positions as an event id.
    fn encode(&self, positions: &[PartitionPosition]) -> String;

    /// Decodes an id sent back by a client (the `Last-Event-ID`).
    ///
    /// Defaults to [`parse_last_event_id`], which accepts both offset and timestamp entries.
    fn decode(&self, id: &str) -> Result<Vec<AssignmentEntry>, Error> {
        parse_last_event_id(id)
    }
}

/// Offset ids, the default: `[{"topic":"t","partition":0,"offset":N}, ...]` where `N` is the
/// next offset the client has not received.
///
/// Resuming from such an id delivers exactly the messages after it.
///
/// ```
/// use kafka_sse::{EventIdCodec, OffsetIds, PartitionPosition};
///
/// let id = OffsetIds.encode(&[PartitionPosition::new("t", 0, 42)]);
/// assert_eq!(id, r#"[{"topic":"t","partition":0,"offset":42}]"#);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OffsetIds;

impl EventIdCodec for OffsetIds {
    fn encode(&self, positions: &[PartitionPosition]) -> String {
        encode_entries(positions, |_| Position::Offset)
    }
}

/// Timestamp ids, for services that serve the same topics from several Kafka clusters whose
/// offsets differ: `[{"topic":"t","partition":0,"timestamp":T}, ...]`.
///
/// `T` is the timestamp of the last message delivered from the partition, not one past it,
/// so a resume may repeat messages that share that timestamp but never skips one. A
/// partition that has delivered nothing yet carries the time its start was resolved from; a
/// partition whose start was given as an offset keeps an offset entry until it delivers.
///
/// ```
/// use kafka_sse::{EventIdCodec, PartitionPosition, TimestampIds};
///
/// let delivered = PartitionPosition::new("t", 0, 42).with_last_timestamp(1_700_000_000_000);
/// let id = TimestampIds.encode(&[delivered]);
/// assert_eq!(id, r#"[{"topic":"t","partition":0,"timestamp":1700000000000}]"#);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampIds;

impl EventIdCodec for TimestampIds {
    fn encode(&self, positions: &[PartitionPosition]) -> String {
        encode_entries(positions, |position| {
            match position.last_timestamp.or(position.start_timestamp) {
                Some(timestamp) => Position::Timestamp(timestamp),
                None => Position::Offset,
            }
        })
    }
}

enum Position {
    Offset,
    Timestamp(i64),
}

fn encode_entries(
    positions: &[PartitionPosition],
    position_of: impl Fn(&PartitionPosition) -> Position,
) -> String {
    let mut id = String::with_capacity(positions.len() * 48);
    id.push('[');
    for (index, position) in positions.iter().enumerate() {
        if index > 0 {
            id.push(',');
        }
        id.push_str("{\"topic\":");
        write_json_string(&mut id, &position.topic);
        let _ = write!(id, ",\"partition\":{}", position.partition);
        let _ = match position_of(position) {
            Position::Offset => write!(id, ",\"offset\":{}}}", position.next_offset),
            Position::Timestamp(timestamp) => write!(id, ",\"timestamp\":{timestamp}}}"),
        };
    }
    id.push(']');
    id
}

/// Kafka topic names are limited to `[a-zA-Z0-9._-]`, which need no escaping; anything
/// else goes through serde_json so the id stays valid JSON on one line.
fn write_json_string(out: &mut String, value: &str) {
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(value).to_string());
    }
}

/// An [`EventIdCodec`] from a closure that encodes positions; decoding uses
/// [`parse_last_event_id`].
///
/// ```
/// use kafka_sse::{event_id_fn, EventIdCodec, PartitionPosition};
///
/// let codec = event_id_fn(|positions: &[PartitionPosition]| {
///     positions.iter().map(|p| p.next_offset.to_string()).collect::<Vec<_>>().join(",")
/// });
/// assert_eq!(codec.encode(&[PartitionPosition::new("t", 0, 7)]), "7");
/// ```
pub fn event_id_fn<F>(encode: F) -> EventIdFn<F>
where
    F: Fn(&[PartitionPosition]) -> String + Send + Sync + 'static,
{
    EventIdFn(encode)
}

/// The codec returned by [`event_id_fn`].
#[derive(Clone, Copy)]
pub struct EventIdFn<F>(F);

impl<F> EventIdCodec for EventIdFn<F>
where
    F: Fn(&[PartitionPosition]) -> String + Send + Sync + 'static,
{
    fn encode(&self, positions: &[PartitionPosition]) -> String {
        (self.0)(positions)
    }
}

impl<F> fmt::Debug for EventIdFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventIdFn").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::Start;
    use proptest::prelude::*;

    #[test]
    fn timestamp_ids_fall_back_to_start_time_then_offset() {
        let positions = [
            PartitionPosition::new("a", 0, 5).with_start_timestamp(100),
            PartitionPosition::new("a", 1, 6),
        ];
        assert_eq!(
            TimestampIds.encode(&positions),
            r#"[{"topic":"a","partition":0,"timestamp":100},{"topic":"a","partition":1,"offset":6}]"#
        );
    }

    #[test]
    fn unusual_topic_names_stay_valid_json() {
        let id = OffsetIds.encode(&[PartitionPosition::new("we\"ird\ntopic", 0, 1)]);
        assert!(!id.contains('\n'));
        let decoded = OffsetIds.decode(&id).unwrap();
        assert_eq!(decoded[0].topic(), "we\"ird\ntopic");
    }

    fn positions_strategy() -> impl Strategy<Value = Vec<PartitionPosition>> {
        proptest::collection::vec(
            (
                "[a-z._-]{1,20}",
                0i32..1000,
                0i64..i64::MAX,
                proptest::option::of(0i64..i64::MAX),
            ),
            1..10,
        )
        .prop_map(|items| {
            items
                .into_iter()
                .map(|(topic, partition, offset, timestamp)| {
                    let position = PartitionPosition::new(topic, partition, offset);
                    match timestamp {
                        Some(t) => position.with_last_timestamp(t),
                        None => position,
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn offset_ids_round_trip(positions in positions_strategy()) {
            let decoded = OffsetIds.decode(&OffsetIds.encode(&positions)).unwrap();
            let expected: Vec<_> = positions.iter().map(|p| AssignmentEntry::Partition {
                topic: p.topic.to_string(),
                partition: p.partition,
                start: Some(Start::Offset(p.next_offset)),
            }).collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn timestamp_ids_round_trip(positions in positions_strategy()) {
            let decoded = TimestampIds.decode(&TimestampIds.encode(&positions)).unwrap();
            let expected: Vec<_> = positions.iter().map(|p| AssignmentEntry::Partition {
                topic: p.topic.to_string(),
                partition: p.partition,
                start: Some(match p.last_timestamp {
                    Some(t) => Start::Timestamp(t),
                    None => Start::Offset(p.next_offset),
                }),
            }).collect();
            prop_assert_eq!(decoded, expected);
        }
    }
}
