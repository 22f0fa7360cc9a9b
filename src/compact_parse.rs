//! Reading a compact id a client sends back (the grammar is in
//! [`parse_last_event_id`](crate::parse_last_event_id)'s documentation).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::assignment::{AssignmentEntry, Start};
use crate::compact_id::{is_compact_topic, is_kafka_topic_id, PREFIX};
use crate::Error;

/// Decodes a compact id into assignment entries: for each group, its attributes
/// ([`AssignmentEntry::Covers`], then [`AssignmentEntry::TopicId`]) and one
/// [`AssignmentEntry::Partition`] per entry, in the id's order.
///
/// Refusals carry a fixed reason that never repeats the id.
pub(crate) fn decode(id: &str) -> Result<Vec<AssignmentEntry>, Error> {
    let Some(groups) = id.strip_prefix(PREFIX) else {
        return Err(refuse(if id.starts_with("k1") {
            "a compact id names at least one topic"
        } else {
            "unknown compact id version"
        }));
    };
    let fields: Vec<&str> = groups.split('~').collect();
    if fields.len() % 3 != 0 {
        return Err(refuse("a compact id group is topic~attributes~positions"));
    }
    let mut entries = Vec::new();
    for group in fields.chunks_exact(3) {
        let [topic, attributes, positions] = [group[0], group[1], group[2]];
        if !is_compact_topic(topic) {
            return Err(refuse("a topic name has a character Kafka does not allow"));
        }
        decode_attributes(topic, attributes, &mut entries)?;
        decode_positions(topic, positions, &mut entries)?;
    }
    Ok(entries)
}

fn decode_attributes(
    topic: &str,
    attributes: &str,
    entries: &mut Vec<AssignmentEntry>,
) -> Result<(), Error> {
    if attributes.is_empty() {
        return Ok(());
    }
    let (mut covers, mut topic_id) = (None, None);
    for attribute in attributes.split('.') {
        let (key, value) = attribute.split_at_checked(1).unwrap_or(("", attribute));
        let valid_value = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !key.bytes().all(|b| b.is_ascii_lowercase()) || key.is_empty() || !valid_value {
            return Err(refuse("an attribute is not a lowercase key and a value"));
        }
        let slot = match key {
            "c" => &mut covers,
            "i" => &mut topic_id,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(refuse("an attribute is repeated"));
        }
    }
    if let Some(count) = covers {
        let canonical =
            count.bytes().all(|b| b.is_ascii_digit()) && (count == "0" || !count.starts_with('0'));
        let partitions = count
            .parse::<i32>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| refuse("a covers attribute is not a partition count"))?;
        entries.push(AssignmentEntry::Covers {
            topic: topic.to_owned(),
            partitions,
        });
    }
    if let Some(id) = topic_id {
        if !is_kafka_topic_id(id) {
            return Err(refuse("a topic id attribute is not a Kafka topic id"));
        }
        entries.push(AssignmentEntry::TopicId {
            topic: topic.to_owned(),
            id: id.to_owned(),
        });
    }
    Ok(())
}

fn decode_positions(
    topic: &str,
    positions: &str,
    entries: &mut Vec<AssignmentEntry>,
) -> Result<(), Error> {
    let bytes = URL_SAFE_NO_PAD
        .decode(positions)
        .map_err(|_| refuse("the positions are not unpadded base64url"))?;
    if bytes.is_empty() {
        return Err(refuse("a topic group lists no partition"));
    }
    let mut rest = bytes.as_slice();
    let mut previous_partition = -1i64;
    let mut previous = [0i64; 2];
    while !rest.is_empty() {
        let head = read_varint(&mut rest)?;
        let delta = unzigzag(read_varint(&mut rest)?);
        let partition = i32::try_from((previous_partition + 1) as u64 + (head >> 1))
            .map_err(|_| refuse("a partition is past the largest 32-bit integer"))?;
        let kind = (head & 1) as usize;
        let value = previous[kind].wrapping_add(delta);
        if value < 0 {
            return Err(refuse("an offset or timestamp is negative"));
        }
        previous[kind] = value;
        previous_partition = i64::from(partition);
        let start = if kind == 0 {
            Start::Offset(value)
        } else {
            Start::Timestamp(value)
        };
        entries.push(AssignmentEntry::Partition {
            topic: topic.to_owned(),
            partition,
            start: Some(start),
        });
    }
    Ok(())
}

fn refuse(reason: &'static str) -> Error {
    Error::invalid_last_event_id(reason)
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// One unsigned LEB128 varint: at most ten bytes, the last holding at most one bit.
fn read_varint(rest: &mut &[u8]) -> Result<u64, Error> {
    let mut value = 0u64;
    for (index, &byte) in rest.iter().enumerate().take(10) {
        if index == 9 && byte > 1 {
            break;
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            *rest = &rest[index + 1..];
            return Ok(value);
        }
    }
    Err(refuse(
        "the positions end inside a number, or a number is too large",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::topics_to_describe;
    use crate::parse_last_event_id;
    use proptest::prelude::*;

    fn refusal(id: &str) -> String {
        match parse_last_event_id(id) {
            Err(error @ Error::InvalidLastEventId { .. }) => error.to_string(),
            other => panic!("{id:?} gave {other:?}"),
        }
    }

    #[test]
    fn refuses_malformed_ids_with_fixed_reasons() {
        let bad = [
            "k",
            "k1",
            "k1~",
            "k2~t~~AAA",
            "k1~t~~",
            "k1~t~",
            "k1~t~~AAA~u",
            "k1~~~AAA",
            "k1~caf\u{e9}~~AAA",
            "k1~t~~A",
            "k1~t~~AA==",
            "k1~t~~AA+/",
            "k1~t~~gA",
            "k1~t~~gICAgICAgICAgAE",
            "k1~t~~AAE",
            "k1~t~C1~AAA",
            "k1~t~c~AAA",
            "k1~t~c01~AAA",
            "k1~t~c-1~AAA",
            "k1~t~c2147483648~AAA",
            "k1~t~c1.c1~AAA",
            "k1~t~ishort~AAA",
            "k1~t~iAAAAAAAAAAAAAAAAAAAAAB~AAA",
            "k1~t~c1..~AAA",
            "k1~t~~_v____8P",
            "k1~t~\u{373}~AAA",
            "k1~t~c1.\u{e9}x~AAA",
        ];
        for id in bad {
            let reason = refusal(id);
            assert!(id.len() < 4 || !reason.contains(id), "{id}: {reason}");
        }
        assert_eq!(refusal("k1~secret~~"), refusal("k1~other~~"));
    }

    #[test]
    fn partitions_reach_the_largest_32_bit_integer_and_no_further() {
        let last = parse_last_event_id("k1~t~~_v___w8A").unwrap();
        assert_eq!(
            last,
            [AssignmentEntry::Partition {
                topic: "t".into(),
                partition: i32::MAX,
                start: Some(Start::Offset(0))
            }]
        );
        assert!(refusal("k1~t~~gICAgBAA").contains("32-bit"));
    }

    #[test]
    fn ignores_attributes_it_does_not_know() {
        let entries = parse_last_event_id("k1~t~zfuture-1.c3~AAA").unwrap();
        assert_eq!(
            entries[0],
            AssignmentEntry::Covers {
                topic: "t".into(),
                partitions: 3
            }
        );
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn attributes_answer_to_the_allow_list() {
        let entries = parse_last_event_id("k1~secret~c1~AAA~open~~AAA").unwrap();
        let err = topics_to_describe(&["open".to_owned()], Some(&entries)).unwrap_err();
        assert!(matches!(err, Error::TopicNotAllowed));
        assert!(!err.to_string().contains("secret"));
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_with_400(
            input in prop_oneof![
                ".{0,300}",
                "k1~[a-zA-Z0-9._~-]{0,300}",
                "k1~[a-z]{1,3}~\\PC{0,8}~\\PC{0,12}",
                "k1~[a-z]{1,3}~[a-z0-9.]{0,12}~[a-zA-Z0-9_-]{0,40}(~[a-z]{0,3}~[ci0-9.]{0,5}~[a-zA-Z0-9_-]{0,20}){0,3}",
            ]
        ) {
            if let Err(error) = parse_last_event_id(&input) {
                prop_assert!(matches!(error, Error::InvalidLastEventId { .. }), "{:?}", error);
                prop_assert_eq!(error.status_code(), http::StatusCode::BAD_REQUEST);
            }
        }

    }
}
