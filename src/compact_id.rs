//! The compact event-id form: the positions of any number of partitions in a few bytes
//! each, as text that is safe in a URL, a header and an SSE `id:` field.
//!
//! Every character is URL-unreserved (RFC 3986): `~` never occurs in a Kafka topic name,
//! `.` and `~` never in base64url.
//!
//! The grammar is in [`parse_last_event_id`](crate::parse_last_event_id)'s documentation;
//! `compact_parse.rs` reads it back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::position::PartitionPosition;
use crate::topic_info::TopicInfo;

/// How every compact id starts.
pub(crate) const PREFIX: &str = "k1~";

/// Where one partition stands in an id: the next offset, or the timestamp to resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Offset(i64),
    Timestamp(i64),
}

/// True for the names Kafka allows (`[a-zA-Z0-9._-]`), the only ones written compactly.
pub(crate) fn is_compact_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The compact id of `positions`, with the attributes `topics` give; `None` when the form
/// cannot hold them (no position, a topic name Kafka would refuse, a negative partition).
///
/// Positions stay in the order given: a group ends where the topic changes or the partition
/// does not increase, and a topic's attributes go on its first group.
pub(crate) fn encode(
    positions: &[PartitionPosition],
    topics: &[TopicInfo],
    mark_of: impl Fn(&PartitionPosition) -> Mark,
) -> Option<String> {
    let expressible = |p: &PartitionPosition| p.partition >= 0 && is_compact_topic(&p.topic);
    if positions.is_empty() || !positions.iter().all(expressible) {
        return None;
    }
    let mut id = String::with_capacity(8 + positions.len() * 4);
    id.push_str("k1");
    let mut written: Vec<&str> = Vec::new();
    let mut bytes = Vec::with_capacity(positions.len() * 3);
    for group in positions.chunk_by(|a, b| a.topic == b.topic && a.partition < b.partition) {
        let topic = &*group[0].topic;
        id.push('~');
        id.push_str(topic);
        id.push('~');
        if !written.contains(&topic) {
            written.push(topic);
            if let Some(info) = topics.iter().find(|info| &*info.topic == topic) {
                write_attributes(&mut id, info);
            }
        }
        id.push('~');
        bytes.clear();
        let mut previous_partition = -1i64;
        let mut previous = [0i64; 2];
        for position in group {
            let (kind, value) = match mark_of(position) {
                Mark::Offset(offset) => (0, offset),
                Mark::Timestamp(millis) => (1, millis),
            };
            let gap = (i64::from(position.partition) - previous_partition - 1) as u64;
            push_varint(&mut bytes, gap << 1 | kind as u64);
            push_varint(&mut bytes, zigzag(value.wrapping_sub(previous[kind])));
            previous[kind] = value;
            previous_partition = i64::from(position.partition);
        }
        URL_SAFE_NO_PAD.encode_string(&bytes, &mut id);
    }
    Some(id)
}

fn write_attributes(id: &mut String, info: &TopicInfo) {
    let mut separator = "";
    if let Some(covers) = info.covers.filter(|&count| count >= 0) {
        id.push('c');
        id.push_str(&covers.to_string());
        separator = ".";
    }
    if let Some(topic_id) = info.id.as_deref().filter(|id| is_kafka_topic_id(id)) {
        id.push_str(separator);
        id.push('i');
        id.push_str(topic_id);
    }
}

/// Kafka's text form of a topic id: the 16 bytes of a UUID as unpadded base64url.
pub(crate) fn is_kafka_topic_id(id: &str) -> bool {
    id.len() == 22
        && URL_SAFE_NO_PAD
            .decode(id)
            .is_ok_and(|bytes| bytes.len() == 16)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{AssignmentEntry, Start};
    use crate::{parse_last_event_id, EventIdCodec, OffsetIds, TimestampIds};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn offsets(topic: &str, offsets: &[(i32, i64)]) -> Vec<PartitionPosition> {
        offsets
            .iter()
            .map(|&(partition, offset)| PartitionPosition::new(topic, partition, offset))
            .collect()
    }

    #[test]
    fn writes_the_documented_bytes() {
        let positions = offsets("t", &[(0, 100), (1, 101), (2, 105)]);
        assert_eq!(OffsetIds::compact().encode(&positions), "k1~t~~AMgBAAIACA");
        let sparse = offsets("a.b_c-D9", &[(1, 7), (5, 3)]);
        let topics = [TopicInfo::new("a.b_c-D9")
            .with_covers(6)
            .with_id("AAAAAAAAAAAAAAAAAAAAAA")];
        assert_eq!(
            OffsetIds::compact().encode_with_topics(&sparse, &topics),
            "k1~a.b_c-D9~c6.iAAAAAAAAAAAAAAAAAAAAAA~Ag4GBw"
        );
    }

    #[test]
    fn names_each_topic_once_and_starts_a_group_where_order_breaks() {
        let mut positions = offsets("a", &[(0, 1), (1, 1)]);
        positions.extend(offsets("b", &[(0, 1)]));
        positions.extend(offsets("a", &[(0, 2)]));
        let topics = [TopicInfo::new("a").with_covers(2)];
        let id = OffsetIds::compact().encode_with_topics(&positions, &topics);
        assert_eq!(id.matches("~a~").count(), 2);
        assert_eq!(id.matches("c2").count(), 1, "{id}");
        let decoded = parse_last_event_id(&id).unwrap();
        assert_eq!(decoded.len(), 5);
        assert_eq!(decoded[4].topic(), "a");
    }

    #[test]
    fn falls_back_to_json_for_what_the_compact_form_cannot_hold() {
        let codec = OffsetIds::compact();
        assert!(codec.encode(&offsets("café", &[(0, 1)])).starts_with('['));
        assert!(codec.encode(&offsets("t", &[(-1, 1)])).starts_with('['));
        assert_eq!(codec.encode(&[]), "[]");
        let bad_attributes = [TopicInfo::new("t").with_covers(-3).with_id("not-an-id")];
        assert_eq!(
            codec.encode_with_topics(&offsets("t", &[(0, 1)]), &bad_attributes),
            "k1~t~~AAI"
        );
    }

    #[test]
    fn a_thousand_partitions_fit_a_default_proxy_header() {
        let positions: Vec<_> = (0..1024)
            .map(|p| {
                PartitionPosition::new(
                    "mediawiki.recentchange",
                    p,
                    1_234_567 + (p as i64 * 7919) % 2000,
                )
            })
            .collect();
        let id = OffsetIds.encode(&positions);
        assert!(id.starts_with("k1~"));
        assert!(id.len() < 4200, "{} bytes", id.len());
        assert!(OffsetIds::json().encode(&positions).len() > 50_000);
    }

    #[derive(Debug, Clone)]
    struct Case {
        positions: Vec<PartitionPosition>,
        topics: Vec<TopicInfo>,
    }

    fn partitions() -> impl Strategy<Value = Vec<i32>> {
        prop_oneof![
            (1i32..=1024).prop_map(|count| (0..count).collect()),
            proptest::collection::btree_set(0..i32::MAX, 1..64)
                .prop_map(|set| set.into_iter().collect()),
            proptest::collection::btree_set(0i32..2048, 1..512)
                .prop_map(|set| set.into_iter().collect()),
        ]
    }

    fn value() -> impl Strategy<Value = i64> {
        prop_oneof![
            0..i64::MAX,
            1_700_000_000_000i64..1_700_000_100_000,
            0i64..300
        ]
    }

    fn topic_info(topic: &str) -> impl Strategy<Value = TopicInfo> {
        let topic = topic.to_owned();
        (
            proptest::option::of(0..i32::MAX),
            proptest::option::of(proptest::array::uniform16(any::<u8>())),
        )
            .prop_map(move |(covers, id)| TopicInfo {
                topic: topic.as_str().into(),
                covers,
                id: id.map(|bytes| URL_SAFE_NO_PAD.encode(bytes)),
            })
    }

    fn case() -> impl Strategy<Value = Case> {
        proptest::collection::btree_map("[a-zA-Z0-9._-]{1,40}", partitions(), 1..4)
            .prop_flat_map(|layout: BTreeMap<String, Vec<i32>>| {
                let slots: Vec<(String, i32)> = layout
                    .iter()
                    .flat_map(|(topic, partitions)| partitions.iter().map(|&p| (topic.clone(), p)))
                    .collect();
                let marks = proptest::collection::vec(
                    (value(), proptest::option::of(value())),
                    slots.len(),
                );
                let infos: Vec<_> = layout.keys().map(|topic| topic_info(topic)).collect();
                (Just(slots), marks, infos)
            })
            .prop_map(|(slots, marks, topics)| Case {
                positions: slots
                    .into_iter()
                    .zip(marks)
                    .map(|((topic, partition), (offset, timestamp))| {
                        let position = PartitionPosition::new(topic, partition, offset);
                        match timestamp {
                            Some(millis) => position.with_last_timestamp(millis),
                            None => position,
                        }
                    })
                    .collect(),
                topics,
            })
    }

    /// What decoding an id of `case` gives back: attributes (compact form only) before each
    /// topic's partitions.
    fn expected(case: &Case, timestamps: bool, attributes: bool) -> Vec<AssignmentEntry> {
        let mut entries = Vec::new();
        for (index, position) in case.positions.iter().enumerate() {
            let topic = position.topic.to_string();
            let first = index == 0 || case.positions[index - 1].topic != position.topic;
            if first && attributes {
                let info = case
                    .topics
                    .iter()
                    .find(|info| info.topic == position.topic)
                    .unwrap();
                if let Some(partitions) = info.covers {
                    entries.push(AssignmentEntry::Covers {
                        topic: topic.clone(),
                        partitions,
                    });
                }
                if let Some(id) = &info.id {
                    entries.push(AssignmentEntry::TopicId {
                        topic: topic.clone(),
                        id: id.clone(),
                    });
                }
            }
            let start = match position.last_timestamp.filter(|_| timestamps) {
                Some(millis) => Start::Timestamp(millis),
                None => Start::Offset(position.next_offset),
            };
            entries.push(AssignmentEntry::Partition {
                topic,
                partition: position.partition,
                start: Some(start),
            });
        }
        entries
    }

    /// What decoding a JSON id of `case` gives back: the partitions, then the covers the
    /// first entry of each run of a topic carries.
    fn expected_json(case: &Case, timestamps: bool) -> Vec<AssignmentEntry> {
        let mut entries = expected(case, timestamps, false);
        for (index, position) in case.positions.iter().enumerate() {
            let first = index == 0 || case.positions[index - 1].topic != position.topic;
            let covers = case
                .topics
                .iter()
                .find(|info| info.topic == position.topic)
                .and_then(|info| info.covers)
                .filter(|&covers| covers >= 0);
            if let (true, Some(partitions)) = (first, covers) {
                entries.push(AssignmentEntry::Covers {
                    topic: position.topic.to_string(),
                    partitions,
                });
            }
        }
        entries
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn both_forms_round_trip_offsets_and_timestamps(case in case()) {
            let forms = [(OffsetIds::json(), TimestampIds::json(), false), (OffsetIds::compact(), TimestampIds::compact(), true)];
            for (offset_ids, timestamp_ids, compact) in forms {
                let decoded = |timestamps| if compact {
                    expected(&case, timestamps, true)
                } else {
                    expected_json(&case, timestamps)
                };
                let id = offset_ids.encode_with_topics(&case.positions, &case.topics);
                prop_assert_eq!(id.starts_with("k1~"), compact);
                prop_assert_eq!(parse_last_event_id(&id).unwrap(), decoded(false));
                let id = timestamp_ids.encode_with_topics(&case.positions, &case.topics);
                prop_assert_eq!(parse_last_event_id(&id).unwrap(), decoded(true));
            }
            let plain = OffsetIds::compact().encode(&case.positions);
            prop_assert_eq!(parse_last_event_id(&plain).unwrap(), expected(&case, false, false));
        }

        #[test]
        fn compact_ids_are_url_unreserved_text(case in case()) {
            let id = TimestampIds::compact().encode_with_topics(&case.positions, &case.topics);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)));
        }

        #[test]
        fn damaged_ids_are_parsed_or_refused(case in case(), at in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
            let mut id = OffsetIds::compact().encode_with_topics(&case.positions, &case.topics).into_bytes();
            let at = at.index(id.len());
            id[at] = byte;
            let id = String::from_utf8(id).unwrap();
            if let Err(error) = parse_last_event_id(&id) {
                prop_assert_eq!(error.status_code(), http::StatusCode::BAD_REQUEST);
            }
        }
    }
}
