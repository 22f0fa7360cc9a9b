//! What a request asks to read: topics, partitions and where to start in each.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::Error;

/// Where a partition's stream starts, before it is resolved to a concrete offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// The end of the partition: only messages produced from now on.
    Latest,
    /// A concrete offset; one outside the partition's log starts at the log start.
    Offset(i64),
    /// The first message at or after this time (milliseconds since the epoch); the end of
    /// the partition if there is none.
    Timestamp(i64),
    /// The log start: the oldest message still in the partition.
    Earliest,
}

/// One entry of a `Last-Event-ID`: a whole topic, or one partition with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssignmentEntry {
    /// Every partition of the topic, at the request's default start.
    Topic(String),
    /// One partition.
    Partition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where to start; `None` means the request's default start.
        start: Option<Start>,
    },
    /// The id listed every partition of the topic, `partitions` of them, so any partition
    /// at or past that count is new to the client. Only compact ids carry it.
    Covers {
        /// The topic.
        topic: String,
        /// How many partitions the topic had.
        partitions: i32,
    },
    /// The topic's Kafka id when the id was written, so a topic created again under the
    /// same name can be told apart. Only compact ids carry it.
    TopicId {
        /// The topic.
        topic: String,
        /// The Kafka topic id, as Kafka writes it (22 characters of unpadded base64url).
        id: String,
    },
}

impl AssignmentEntry {
    /// The topic the entry names.
    pub fn topic(&self) -> &str {
        match self {
            AssignmentEntry::Topic(topic)
            | AssignmentEntry::Partition { topic, .. }
            | AssignmentEntry::Covers { topic, .. }
            | AssignmentEntry::TopicId { topic, .. } => topic,
        }
    }
}

/// A partition to assign with its unresolved start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestedPartition {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) start: Start,
}

/// The topics whose partition counts are needed to expand a request, after checking every
/// named topic against the allow-list.
pub(crate) fn topics_to_describe(
    allowed: &[String],
    entries: Option<&[AssignmentEntry]>,
) -> Result<BTreeSet<String>, Error> {
    if allowed.is_empty() {
        return Err(Error::NoTopics);
    }
    match entries {
        None => Ok(allowed.iter().cloned().collect()),
        Some(entries) => entries
            .iter()
            .map(|entry| {
                let topic = entry.topic();
                if allowed.iter().any(|allowed| allowed == topic) {
                    Ok(topic.to_owned())
                } else {
                    Err(Error::TopicNotAllowed)
                }
            })
            .collect(),
    }
}

/// What a request reads: the exact partitions, and the topics it reads whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub(crate) partitions: Vec<RequestedPartition>,
    /// The topics of which the request reads every partition, and so follows: partitions
    /// added to them later join the stream.
    pub(crate) follows: BTreeSet<Arc<str>>,
}

/// Expands a request into the exact list of partitions to assign.
///
/// Without entries, every partition of every allowed topic starts at `default_start`. With
/// entries, they define the assignment exactly: a topic entry brings all its partitions, a
/// partition entry just that one. Naming a partition twice is an error, so no entry is ever
/// silently dropped. The request follows every topic it reads whole: every allowed topic
/// without entries, the topics of topic entries, and the topics whose every partition the
/// entries name.
pub(crate) fn expand(
    allowed: &[String],
    entries: Option<&[AssignmentEntry]>,
    default_start: Start,
    partition_counts: &HashMap<String, i32>,
    limit: usize,
) -> Result<Expanded, Error> {
    let count_of = |topic: &str| {
        partition_counts
            .get(topic)
            .copied()
            .ok_or_else(|| Error::TopicNotFound {
                topic: topic.to_owned(),
            })
    };
    let mut requested = Vec::new();
    let mut follows = BTreeSet::new();
    let mut push_all = |topic: &str, requested: &mut Vec<RequestedPartition>| {
        let topic: Arc<str> = topic.into();
        follows.insert(topic.clone());
        for partition in 0..count_of(&topic)? {
            requested.push(RequestedPartition {
                topic: topic.clone(),
                partition,
                start: default_start,
            });
        }
        Ok::<_, Error>(())
    };
    match entries {
        None => {
            for topic in allowed {
                push_all(topic, &mut requested)?;
            }
        }
        Some(entries) => {
            let mut covered = Vec::new();
            for entry in entries {
                match entry {
                    AssignmentEntry::Topic(topic) => push_all(topic, &mut requested)?,
                    AssignmentEntry::Partition {
                        topic,
                        partition,
                        start,
                    } => {
                        if *partition < 0 || *partition >= count_of(topic)? {
                            return Err(Error::UnknownPartition {
                                topic: topic.clone(),
                                partition: *partition,
                            });
                        }
                        requested.push(RequestedPartition {
                            topic: topic.as_str().into(),
                            partition: *partition,
                            start: start.unwrap_or(default_start),
                        });
                    }
                    AssignmentEntry::Covers { topic, partitions } => {
                        covered.push((topic, *partitions));
                    }
                    // Topic ids cannot be looked up (rust-rdkafka does not expose them).
                    AssignmentEntry::TopicId { .. } => {}
                }
            }
            // An id that covered every partition its topic had follows the topic: the
            // partitions added since start at their log start.
            for (topic, had) in covered {
                let topic: Arc<str> = topic.as_str().into();
                follows.insert(topic.clone());
                for partition in had.max(0)..count_of(&topic)? {
                    let named = requested
                        .iter()
                        .any(|r| r.topic == topic && r.partition == partition);
                    if !named {
                        requested.push(RequestedPartition {
                            topic: topic.clone(),
                            partition,
                            start: Start::Earliest,
                        });
                    }
                }
            }
        }
    }
    if requested.len() > limit {
        return Err(Error::TooManyPartitions {
            count: requested.len(),
            limit,
        });
    }
    let mut seen = BTreeSet::new();
    for partition in &requested {
        if !seen.insert((partition.topic.clone(), partition.partition)) {
            return Err(Error::invalid_last_event_id(format!(
                "topic {} partition {} is named twice",
                partition.topic, partition.partition
            )));
        }
    }
    // An id naming every partition a topic has reads the topic whole, as the stream that
    // made it did.
    let mut named: HashMap<&Arc<str>, i32> = HashMap::new();
    for partition in &requested {
        *named.entry(&partition.topic).or_default() += 1;
    }
    for (topic, count) in named {
        if partition_counts.get(&**topic) == Some(&count) {
            follows.insert(topic.clone());
        }
    }
    Ok(Expanded {
        partitions: requested,
        follows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> HashMap<String, i32> {
        HashMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)])
    }

    fn allowed() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn summary(requested: &[RequestedPartition]) -> Vec<(String, i32, Start)> {
        requested
            .iter()
            .map(|r| (r.topic.to_string(), r.partition, r.start))
            .collect()
    }

    #[test]
    fn without_entries_every_partition_starts_at_the_default() {
        let requested = expand(&allowed(), None, Start::Latest, &counts(), 10).unwrap();
        assert_eq!(
            summary(&requested.partitions),
            [
                ("a".into(), 0, Start::Latest),
                ("a".into(), 1, Start::Latest),
                ("b".into(), 0, Start::Latest)
            ]
        );
    }

    #[test]
    fn entries_define_the_assignment_exactly() {
        let entries = [
            AssignmentEntry::Partition {
                topic: "a".into(),
                partition: 1,
                start: Some(Start::Offset(7)),
            },
            AssignmentEntry::Topic("b".into()),
        ];
        let requested = expand(
            &allowed(),
            Some(&entries),
            Start::Timestamp(5),
            &counts(),
            10,
        )
        .unwrap();
        assert_eq!(
            summary(&requested.partitions),
            [
                ("a".into(), 1, Start::Offset(7)),
                ("b".into(), 0, Start::Timestamp(5))
            ]
        );
    }

    #[test]
    fn topics_outside_the_allow_list_are_refused_without_naming_them() {
        let entries = [AssignmentEntry::Topic("secret".into())];
        let err = topics_to_describe(&allowed(), Some(&entries)).unwrap_err();
        assert!(matches!(err, Error::TopicNotAllowed));
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn missing_partitions_duplicates_and_limits_are_refused() {
        let missing = [AssignmentEntry::Partition {
            topic: "b".into(),
            partition: 1,
            start: None,
        }];
        let err = expand(&allowed(), Some(&missing), Start::Latest, &counts(), 10);
        assert!(matches!(
            err,
            Err(Error::UnknownPartition { partition: 1, .. })
        ));

        let twice = [
            AssignmentEntry::Topic("b".into()),
            AssignmentEntry::Partition {
                topic: "b".into(),
                partition: 0,
                start: Some(Start::Offset(1)),
            },
        ];
        let err = expand(&allowed(), Some(&twice), Start::Latest, &counts(), 10);
        assert!(matches!(err, Err(Error::InvalidLastEventId { .. })));

        let err = expand(&allowed(), None, Start::Latest, &counts(), 2);
        assert!(matches!(
            err,
            Err(Error::TooManyPartitions { count: 3, limit: 2 })
        ));
    }
}
