//! Compact `Last-Event-ID` decoding: [`parse_last_event_id`] and the codecs' `decode` on any
//! text a client can send, read as a compact id (input not starting with `k` gets `k1~` in
//! front, so every input reaches the compact parser).
//!
//! Beyond "never panics", every input must give:
//! - the same answer from `parse_last_event_id`, `OffsetIds.decode` and
//!   `TimestampIds.decode`;
//! - when accepted: at least one partition; written again by the compact codecs
//!   (`encode_with_topics`, with the attributes read), an id of URL-unreserved characters
//!   that decodes to the same partitions in the same order with the same positions, and to
//!   each topic's first covers and topic id attributes;
//! - when refused: a 400 with one of the parser's fixed reasons, the same when every topic
//!   name is replaced by another valid one, so a problem body never echoes what was sent.
#![no_main]

#[path = "refusal.rs"]
mod refusal;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kafka_sse::{
    parse_last_event_id, AssignmentEntry, EventIdCodec, OffsetIds, PartitionPosition, Start,
    TimestampIds, TopicInfo,
};
use libfuzzer_sys::fuzz_target;
use refusal::assert_fixed_refusal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = if text.starts_with('k') {
        text.to_owned()
    } else {
        format!("k1~{text}")
    };
    let parsed = parse_last_event_id(&text);
    let answer = format!("{parsed:?}");
    assert_eq!(format!("{:?}", OffsetIds.decode(&text)), answer);
    assert_eq!(format!("{:?}", TimestampIds::json().decode(&text)), answer);
    match parsed {
        Ok(entries) => check_round_trip(&entries),
        Err(error) => {
            assert_fixed_refusal(&error, reasons());
            let masked = mask_topics(&text);
            let again = parse_last_event_id(&masked).expect_err("the masked id is refused too");
            assert_eq!(again.problem(), error.problem(), "the answer depends on a topic name");
        }
    }
});

type Attributes = BTreeMap<String, (Option<i32>, Option<String>)>;

/// The partitions in order, and each topic's first covers and topic id.
fn split(entries: &[AssignmentEntry]) -> (Vec<&AssignmentEntry>, Attributes) {
    let mut partitions = Vec::new();
    let mut attributes = Attributes::new();
    for entry in entries {
        let slot = attributes.entry(entry.topic().to_owned()).or_default();
        match entry {
            AssignmentEntry::Covers { partitions, .. } => {
                slot.0.get_or_insert(*partitions);
            }
            AssignmentEntry::TopicId { id, .. } => {
                slot.1.get_or_insert_with(|| id.clone());
            }
            AssignmentEntry::Partition { .. } => partitions.push(entry),
            other => panic!("the compact form never gives {other:?}"),
        }
    }
    attributes.retain(|_, (covers, id)| covers.is_some() || id.is_some());
    (partitions, attributes)
}

fn check_round_trip(entries: &[AssignmentEntry]) {
    let (partitions, attributes) = split(entries);
    assert!(!partitions.is_empty(), "an id without partitions is accepted");
    let positions: Vec<PartitionPosition> = partitions
        .iter()
        .map(|entry| match entry {
            AssignmentEntry::Partition {
                topic,
                partition,
                start: Some(Start::Offset(offset)),
            } => PartitionPosition::new(topic.as_str(), *partition, *offset),
            AssignmentEntry::Partition {
                topic,
                partition,
                start: Some(Start::Timestamp(millis)),
            } => PartitionPosition::new(topic.as_str(), *partition, 0).with_last_timestamp(*millis),
            other => panic!("a compact entry without a position: {other:?}"),
        })
        .collect();
    let topics: Vec<TopicInfo> = attributes
        .iter()
        .map(|(topic, (covers, id))| {
            let mut info = TopicInfo::new(topic.as_str());
            if let Some(covers) = covers {
                info = info.with_covers(*covers);
            }
            if let Some(id) = id {
                info = info.with_id(id.as_str());
            }
            info
        })
        .collect();
    let id = TimestampIds::compact().encode_with_topics(&positions, &topics);
    assert!(
        id.starts_with("k1~")
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b)),
        "not a compact id of unreserved characters: {id}"
    );
    let again = parse_last_event_id(&id).expect("an id the codec wrote decodes");
    let (partitions_again, attributes_again) = split(&again);
    assert_eq!(partitions_again, partitions, "{id}");
    assert_eq!(attributes_again, attributes, "{id}");
    if partitions.iter().all(|entry| {
        matches!(
            entry,
            AssignmentEntry::Partition {
                start: Some(Start::Offset(_)),
                ..
            }
        )
    }) {
        let offsets = OffsetIds::compact().encode_with_topics(&positions, &topics);
        assert_eq!(offsets, id, "offset and timestamp codecs write offsets alike");
    }
}

/// `text` with every valid topic name replaced by the same other valid one.
fn mask_topics(text: &str) -> String {
    let Some(groups) = text.strip_prefix("k1~") else {
        return text.to_owned();
    };
    let fields: Vec<&str> = groups
        .split('~')
        .enumerate()
        .map(|(index, field)| {
            let topic = !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if index % 3 == 0 && topic {
                "masked"
            } else {
                field
            }
        })
        .collect();
    format!("k1~{}", fields.join("~"))
}

/// Every reason the compact parser gives, from one input that provokes each.
fn reasons() -> &'static [String] {
    static REASONS: OnceLock<Vec<String>> = OnceLock::new();
    REASONS.get_or_init(|| {
        [
            "k1",
            "k2~t~~AAA",
            "k1~t~",
            "k1~~~AAA",
            "k1~t~C1~AAA",
            "k1~t~c1.c1~AAA",
            "k1~t~c01~AAA",
            "k1~t~ishort~AAA",
            "k1~t~~A",
            "k1~t~~",
            "k1~t~~gICAgBAA",
            "k1~t~~AAE",
            "k1~t~~gA",
        ]
        .into_iter()
        .map(|input| parse_last_event_id(input).expect_err(input).problem().detail)
        .collect()
    })
}
