//! The shared Kafka client for metadata and offset look-ups, and the per-request
//! resolution of start positions.
//!
//! Every call here blocks on librdkafka, so callers run it on tokio's blocking pool.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::assignment::{RequestedPartition, Start};
use crate::builder::Settings;
use crate::{Error, PartitionPosition};

/// Where a partition starts, resolved to a concrete offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedStart {
    pub(crate) position: PartitionPosition,
    pub(crate) reset: Option<Reset>,
}

/// A requested offset that was outside the partition's log and was moved into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// Below the log start (deleted by retention, or the topic was recreated).
    ToLogStart { requested: i64 },
    /// Beyond the log end.
    ToLogEnd { requested: i64 },
}

impl Reset {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reset::ToLogStart { .. } => "log_start",
            Reset::ToLogEnd { .. } => "log_end",
        }
    }
}

pub(crate) struct Lookup {
    client: BaseConsumer,
    partition_counts: Mutex<HashMap<String, (Instant, i32)>>,
    timeout: Duration,
    max_age: Duration,
}

impl Lookup {
    pub(crate) fn new(config: &ClientConfig, settings: &Settings) -> Result<Arc<Self>, Error> {
        let mut config = config.clone();
        config
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        if config.get("client.id").is_none() {
            config.set("client.id", "kafka-sse-lookup");
        }
        let client = config.create().map_err(Error::Config)?;
        Ok(Arc::new(Lookup {
            client,
            partition_counts: Mutex::new(HashMap::new()),
            timeout: settings.lookup_timeout,
            max_age: settings.metadata_max_age,
        }))
    }

    /// Partition counts of `topics`, from the cache when it is fresh enough and `refresh` is
    /// false.
    pub(crate) fn partition_counts(
        &self,
        topics: &BTreeSet<String>,
        refresh: bool,
    ) -> Result<HashMap<String, i32>, Error> {
        let mut counts = HashMap::new();
        for topic in topics {
            let cached = self
                .partition_counts
                .lock()
                .expect("metadata cache lock")
                .get(topic)
                .filter(|(at, _)| !refresh && at.elapsed() < self.max_age)
                .map(|&(_, count)| count);
            let count = match cached {
                Some(count) => count,
                None => self.fetch_partition_count(topic)?,
            };
            counts.insert(topic.clone(), count);
        }
        Ok(counts)
    }

    fn fetch_partition_count(&self, topic: &str) -> Result<i32, Error> {
        let _ = self.client.poll(Duration::ZERO);
        let metadata = self
            .client
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|source| Error::KafkaUnavailable {
                operation: "fetching metadata",
                source,
            })?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(Error::TopicNotFound {
                topic: topic.to_owned(),
            });
        };
        match found.error() {
            None if !found.partitions().is_empty() => {}
            None
            | Some(
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                | rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            ) => {
                return Err(Error::TopicNotFound {
                    topic: topic.to_owned(),
                })
            }
            Some(code) => {
                return Err(Error::KafkaUnavailable {
                    operation: "fetching metadata",
                    source: KafkaError::MetadataFetch(code.into()),
                })
            }
        }
        let count = found.partitions().len() as i32;
        self.partition_counts
            .lock()
            .expect("metadata cache lock")
            .insert(topic.to_owned(), (Instant::now(), count));
        Ok(count)
    }

    /// Whether Kafka answers a metadata request in time.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let _ = self.client.poll(Duration::ZERO);
        self.client
            .fetch_metadata(None, self.timeout)
            .map(|_| ())
            .map_err(|source| Error::KafkaUnavailable {
                operation: "fetching metadata",
                source,
            })
    }

    /// Resolves every requested start to a concrete offset inside the partition's log.
    pub(crate) fn resolve(
        &self,
        requested: &[RequestedPartition],
    ) -> Result<Vec<ResolvedStart>, Error> {
        let now = now_millis();
        let needs_log_start = requested
            .iter()
            .any(|r| matches!(r.start, Start::Offset(_)));
        let log_start = if needs_log_start {
            self.list_offsets(requested, |_| Some(Offset::Beginning))?
        } else {
            HashMap::new()
        };
        let log_end = self.list_offsets(requested, |_| Some(Offset::End))?;
        let by_time = self.list_offsets(requested, |r| match r.start {
            Start::Timestamp(millis) => Some(Offset::Offset(millis)),
            _ => None,
        })?;

        requested
            .iter()
            .map(|r| {
                let key = (r.topic.to_string(), r.partition);
                let end = answered(&log_end, &key)?;
                let mut position = PartitionPosition::new(r.topic.clone(), r.partition, end);
                let mut reset = None;
                match r.start {
                    Start::Latest => position.start_timestamp = Some(now),
                    Start::Timestamp(millis) => {
                        position.start_timestamp = Some(millis);
                        // A negative answer means no message at or after the time.
                        let found = by_time.get(&key).copied().unwrap_or(-1);
                        position.next_offset = if found < 0 { end } else { found.min(end) };
                    }
                    Start::Offset(requested) => {
                        let start = answered(&log_start, &key)?;
                        position.next_offset = requested.clamp(start, end.max(start));
                        if requested < start {
                            reset = Some(Reset::ToLogStart { requested });
                        } else if requested > end {
                            reset = Some(Reset::ToLogEnd { requested });
                        }
                    }
                }
                Ok(ResolvedStart { position, reset })
            })
            .collect()
    }

    /// One ListOffsets round trip for the partitions `query` gives a value for: a
    /// timestamp, or `Offset::Beginning` / `Offset::End` for the log start / end.
    fn list_offsets(
        &self,
        requested: &[RequestedPartition],
        query: impl Fn(&RequestedPartition) -> Option<Offset>,
    ) -> Result<HashMap<(String, i32), i64>, Error> {
        let mut list = TopicPartitionList::new();
        for r in requested {
            if let Some(offset) = query(r) {
                list.add_partition_offset(&r.topic, r.partition, offset)
                    .map_err(|source| Error::KafkaUnavailable {
                        operation: "listing offsets",
                        source,
                    })?;
            }
        }
        if list.count() == 0 {
            return Ok(HashMap::new());
        }
        let _ = self.client.poll(Duration::ZERO);
        let answer = self
            .client
            .offsets_for_times(list, self.timeout)
            .map_err(|source| Error::KafkaUnavailable {
                operation: "listing offsets",
                source,
            })?;
        let mut offsets = HashMap::new();
        for element in answer.elements() {
            if let Err(source) = element.error() {
                if let KafkaError::OffsetFetch(RDKafkaErrorCode::UnknownTopicOrPartition) = source {
                    return Err(Error::TopicNotFound {
                        topic: element.topic().to_owned(),
                    });
                }
                return Err(Error::KafkaUnavailable {
                    operation: "listing offsets",
                    source,
                });
            }
            let offset = element.offset().to_raw().unwrap_or(-1);
            offsets.insert((element.topic().to_owned(), element.partition()), offset);
        }
        Ok(offsets)
    }
}

fn answered(offsets: &HashMap<(String, i32), i64>, key: &(String, i32)) -> Result<i64, Error> {
    offsets
        .get(key)
        .copied()
        .filter(|&offset| offset >= 0)
        .ok_or_else(|| {
            Error::Internal(format!("kafka gave no offset for {} [{}]", key.0, key.1).into())
        })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}
