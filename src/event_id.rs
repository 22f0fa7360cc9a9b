//! Event-id codecs: how a stream's positions become the SSE `id:` and back.

use std::fmt::{self, Write as _};

use crate::assignment::AssignmentEntry;
use crate::compact_id::{self, Mark};
use crate::last_event_id::parse_last_event_id;
use crate::position::PartitionPosition;
use crate::topic_info::TopicInfo;
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

    /// Encodes the positions as an event id that may also carry what is known about the
    /// topics ([`TopicInfo`]: the partition count the id covers, the Kafka topic id).
    ///
    /// Defaults to [`encode`](Self::encode), which ignores `topics`; [`OffsetIds`] and
    /// [`TimestampIds`] write them into compact ids.
    fn encode_with_topics(&self, positions: &[PartitionPosition], topics: &[TopicInfo]) -> String {
        let _ = topics;
        self.encode(positions)
    }

    /// Decodes an id sent back by a client (the `Last-Event-ID`).
    ///
    /// Defaults to [`parse_last_event_id`], which accepts the JSON and the compact form,
    /// offset and timestamp entries alike, whatever form the server writes.
    fn decode(&self, id: &str) -> Result<Vec<AssignmentEntry>, Error> {
        parse_last_event_id(id)
    }
}

/// Which text form [`OffsetIds`] and [`TimestampIds`] write; either form decodes whatever
/// the setting.
///
/// ```
/// use kafka_sse::{EventIdCodec, IdForm, OffsetIds, PartitionPosition};
///
/// let few: Vec<_> = (0..8).map(|p| PartitionPosition::new("t", p, 100)).collect();
/// let many: Vec<_> = (0..9).map(|p| PartitionPosition::new("t", p, 100)).collect();
/// assert!(OffsetIds.encode(&few).starts_with('['));
/// assert_eq!(OffsetIds.encode(&many), "k1~t~~AMgBAAAAAAAAAAAAAAAAAAAAAA");
/// assert!(OffsetIds::json().encode(&many).starts_with('['));
/// assert_eq!(OffsetIds::compact().encode(&few), OffsetIds.with_form(IdForm::Compact).encode(&few));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdForm {
    /// The JSON form for streams of at most [`IdForm::AUTO_JSON_PARTITIONS`] partitions,
    /// the compact form for more. The default.
    ///
    /// The choice depends on the number of partitions only, never on offsets, so a stream
    /// keeps one form. EventStreams clients get the JSON they expect on small streams; large
    /// ones get ids that stay small in headers and URLs.
    #[default]
    Auto,
    /// Always the EventStreams JSON form: `[{"topic":"t","partition":0,"offset":42}]`.
    Json,
    /// The compact form ([`parse_last_event_id`] has its grammar), except for a topic name
    /// Kafka would not allow, which only the JSON form can hold.
    Compact,
}

impl IdForm {
    /// The most partitions [`IdForm::Auto`] writes in the JSON form: 8.
    pub const AUTO_JSON_PARTITIONS: usize = 8;

    fn compact(self, positions: &[PartitionPosition]) -> bool {
        match self {
            IdForm::Auto => positions.len() > Self::AUTO_JSON_PARTITIONS,
            IdForm::Json => false,
            IdForm::Compact => true,
        }
    }

    fn encode(
        self,
        positions: &[PartitionPosition],
        topics: &[TopicInfo],
        mark_of: impl Fn(&PartitionPosition) -> Mark,
    ) -> String {
        self.compact(positions)
            .then(|| compact_id::encode(positions, topics, &mark_of))
            .flatten()
            .unwrap_or_else(|| encode_json(positions, topics, mark_of))
    }
}

/// Offset ids, the default: the next offset of every partition, which the client has not
/// received. Resuming from such an id delivers exactly the messages after it.
///
/// `OffsetIds` writes the JSON form `[{"topic":"t","partition":0,"offset":N}, ...]` for up to
/// eight partitions and the compact form for more ([`IdForm::Auto`]);
/// [`OffsetIds::json`] and [`OffsetIds::compact`] pick one form.
///
/// ```
/// use kafka_sse::{EventIdCodec, OffsetIds, PartitionPosition};
///
/// let id = OffsetIds.encode(&[PartitionPosition::new("t", 0, 42)]);
/// assert_eq!(id, r#"[{"topic":"t","partition":0,"offset":42}]"#);
/// assert_eq!(OffsetIds::compact().encode(&[PartitionPosition::new("t", 0, 42)]), "k1~t~~AFQ");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffsetIds {
    form: IdForm,
}

/// Offset ids in the default form, [`IdForm::Auto`].
#[allow(non_upper_case_globals)]
pub const OffsetIds: OffsetIds = OffsetIds { form: IdForm::Auto };

impl OffsetIds {
    /// Offset ids always in the EventStreams JSON form.
    pub const fn json() -> Self {
        OffsetIds { form: IdForm::Json }
    }

    /// Offset ids always in the compact form.
    pub const fn compact() -> Self {
        OffsetIds {
            form: IdForm::Compact,
        }
    }

    /// The same ids in `form`.
    pub const fn with_form(self, form: IdForm) -> Self {
        OffsetIds { form }
    }

    /// The form these ids are written in.
    pub const fn form(&self) -> IdForm {
        self.form
    }
}

impl EventIdCodec for OffsetIds {
    fn encode(&self, positions: &[PartitionPosition]) -> String {
        self.encode_with_topics(positions, &[])
    }

    fn encode_with_topics(&self, positions: &[PartitionPosition], topics: &[TopicInfo]) -> String {
        self.form.encode(positions, topics, |position| {
            Mark::Offset(position.next_offset)
        })
    }
}

/// Timestamp ids, for services that serve the same topics from several Kafka clusters whose
/// offsets differ: `[{"topic":"t","partition":0,"timestamp":T}, ...]` in the JSON form.
///
/// `T` is the timestamp of the last message delivered from the partition, not one past it,
/// so a resume may repeat messages that share that timestamp but never skips one. A
/// partition that has delivered nothing yet carries the time its start was resolved from; a
/// partition whose start was given as an offset keeps an offset entry until it delivers.
/// Forms are chosen as for [`OffsetIds`].
///
/// ```
/// use kafka_sse::{EventIdCodec, PartitionPosition, TimestampIds};
///
/// let delivered = PartitionPosition::new("t", 0, 42).with_last_timestamp(1_700_000_000_000);
/// let id = TimestampIds.encode(&[delivered]);
/// assert_eq!(id, r#"[{"topic":"t","partition":0,"timestamp":1700000000000}]"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampIds {
    form: IdForm,
}

/// Timestamp ids in the default form, [`IdForm::Auto`].
#[allow(non_upper_case_globals)]
pub const TimestampIds: TimestampIds = TimestampIds { form: IdForm::Auto };

impl TimestampIds {
    /// Timestamp ids always in the EventStreams JSON form.
    pub const fn json() -> Self {
        TimestampIds { form: IdForm::Json }
    }

    /// Timestamp ids always in the compact form.
    pub const fn compact() -> Self {
        TimestampIds {
            form: IdForm::Compact,
        }
    }

    /// The same ids in `form`.
    pub const fn with_form(self, form: IdForm) -> Self {
        TimestampIds { form }
    }

    /// The form these ids are written in.
    pub const fn form(&self) -> IdForm {
        self.form
    }
}

impl EventIdCodec for TimestampIds {
    fn encode(&self, positions: &[PartitionPosition]) -> String {
        self.encode_with_topics(positions, &[])
    }

    fn encode_with_topics(&self, positions: &[PartitionPosition], topics: &[TopicInfo]) -> String {
        self.form.encode(positions, topics, |position| {
            match position.last_timestamp.or(position.start_timestamp) {
                Some(timestamp) => Mark::Timestamp(timestamp),
                None => Mark::Offset(position.next_offset),
            }
        })
    }
}

/// The JSON form. The first entry of a topic the stream reads whole carries
/// `"partitions":N`, how many the topic had: on resume, partitions added since then are new
/// to the client. Other readers of the id ignore the field.
fn encode_json(
    positions: &[PartitionPosition],
    topics: &[TopicInfo],
    mark_of: impl Fn(&PartitionPosition) -> Mark,
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
        let first_of_topic = index == 0 || positions[index - 1].topic != position.topic;
        let covers = topics
            .iter()
            .find(|topic| topic.topic == position.topic)
            .and_then(|topic| topic.covers)
            .filter(|&covers| covers >= 0);
        if let (true, Some(covers)) = (first_of_topic, covers) {
            let _ = write!(id, ",\"partitions\":{covers}");
        }
        let _ = match mark_of(position) {
            Mark::Offset(offset) => write!(id, ",\"offset\":{offset}}}"),
            Mark::Timestamp(timestamp) => write!(id, ",\"timestamp\":{timestamp}}}"),
        };
    }
    id.push(']');
    id
}

/// Kafka topic names are limited to `[a-zA-Z0-9._-]`, which need no escaping; anything
/// else goes through serde_json so the id stays valid JSON on one line.
fn write_json_string(out: &mut String, value: &str) {
    if compact_id::is_compact_topic(value) {
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
