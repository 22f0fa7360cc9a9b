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
use crate::health::{Admission, Health};
use crate::{Error, PartitionPosition};

/// Where a partition starts, resolved to a concrete offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedStart {
    pub(crate) position: PartitionPosition,
    pub(crate) reset: Option<Reset>,
}

/// Why a requested offset is not where its stream starts. Either way the stream starts at
/// the partition's log start.
///
/// An offset above the log end cannot come from this log: the server never emits one. The
/// log the id was taken from is gone (the topic was deleted and recreated with fewer
/// messages, or an unclean leader election truncated it), so every message now in the log
/// is new to the client, or at worst a repeat. Starting at the end would silently skip them.
///
/// A recreated topic that has grown past the old offset cannot be told apart from the old
/// one: ids carry no topic id, so such a resume starts at the requested offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// Below the log start: retention or a deletion of records removed the messages there.
    BelowLogStart { requested: i64 },
    /// Above the log end: the log the id came from is gone.
    AboveLogEnd { requested: i64, log_end: i64 },
}

impl Reset {
    /// Where a stream asked to start at `requested` starts in a log from `log_start` to
    /// `log_end`, and the reset when that is not `requested`.
    ///
    /// The log end itself is inside: it is the id of a client that has received everything.
    fn place(requested: i64, log_start: i64, log_end: i64) -> (i64, Option<Reset>) {
        if requested < log_start {
            (log_start, Some(Reset::BelowLogStart { requested }))
        } else if requested > log_end {
            let reset = Reset::AboveLogEnd { requested, log_end };
            (log_start, Some(reset))
        } else {
            (requested, None)
        }
    }

    /// Where the stream starts instead, for the `to` label of
    /// `kafka_sse_offset_resets_total`: always `log_start`.
    pub(crate) fn label(self) -> &'static str {
        "log_start"
    }

    /// Which case it is, for logs and metrics.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Reset::BelowLogStart { .. } => "below_log_start",
            Reset::AboveLogEnd { .. } => "above_log_end",
        }
    }
}

pub(crate) struct Lookup {
    client: BaseConsumer,
    partition_counts: Mutex<HashMap<String, (Instant, i32)>>,
    timeout: Duration,
    max_age: Duration,
    health: Arc<Health>,
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
        let client = config
            .create()
            .map_err(|error| Error::config(&error, &config))?;
        Ok(Arc::new(Lookup {
            client,
            partition_counts: Mutex::new(HashMap::new()),
            timeout: settings.lookup_timeout,
            max_age: settings.metadata_max_age,
            health: Arc::default(),
        }))
    }

    /// Runs one look-up with the time it may take, failing fast while Kafka is known to be
    /// down, and records whether Kafka answered.
    fn guarded<T>(
        &self,
        operation: &'static str,
        look_up: impl FnOnce(Duration) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.drain_events();
        let timeout = match self.health.admit(self.timeout) {
            Admission::Try(timeout) => timeout,
            Admission::FailFast => {
                return Err(Error::KafkaUnavailable {
                    operation,
                    source: KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                })
            }
        };
        let result = look_up(timeout);
        match &result {
            Ok(_) => self.health.mark_up(),
            Err(Error::KafkaUnavailable { source, .. }) if means_unreachable(source) => {
                self.health.mark_down();
            }
            Err(_) => {}
        }
        result
    }

    /// Kafka's availability, shared with the stream consumers, which see it change first.
    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Serves the client's queued events; librdkafka reports "all brokers down" there.
    fn drain_events(&self) {
        for _ in 0..1000 {
            match self.client.poll(Duration::ZERO) {
                None => return,
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown))) => {
                    self.health.mark_down();
                }
                Some(_) => {}
            }
        }
    }

    /// Partition counts of `topics`, from the cache while it is younger than the metadata
    /// max age, or, when `refresh` forces a fetch, younger than [`MIN_FORCED_REFRESH`].
    pub(crate) fn partition_counts(
        &self,
        topics: &BTreeSet<String>,
        refresh: bool,
    ) -> Result<HashMap<String, i32>, Error> {
        let trusted_for = if refresh {
            MIN_FORCED_REFRESH.min(self.max_age)
        } else {
            self.max_age
        };
        let mut counts = HashMap::new();
        for topic in topics {
            let cached = self
                .partition_counts
                .lock()
                .expect("metadata cache lock")
                .get(topic)
                .filter(|(at, _)| at.elapsed() < trusted_for)
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
        let metadata = self.guarded("fetching metadata", |timeout| {
            self.client
                .fetch_metadata(Some(topic), timeout)
                .map_err(|source| Error::KafkaUnavailable {
                    operation: "fetching metadata",
                    source,
                })
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
        self.guarded("fetching metadata", |timeout| {
            self.client
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(|source| Error::KafkaUnavailable {
                    operation: "fetching metadata",
                    source,
                })
        })
    }

    /// Resolves every requested start to a concrete offset inside the partition's log; an
    /// offset outside it starts at the log start and is logged ([`Reset`]).
    pub(crate) fn resolve(
        &self,
        requested: &[RequestedPartition],
    ) -> Result<Vec<ResolvedStart>, Error> {
        let now = now_millis();
        let needs_log_start = requested
            .iter()
            .any(|r| matches!(r.start, Start::Offset(_)));
        let query = |offset: fn(&RequestedPartition) -> Option<Offset>| {
            self.list_offsets(
                requested
                    .iter()
                    .filter_map(|r| Some((&*r.topic, r.partition, offset(r)?))),
            )
        };
        let log_start = if needs_log_start {
            query(|_| Some(Offset::Beginning))?
        } else {
            HashMap::new()
        };
        let log_end = query(|_| Some(Offset::End))?;
        let by_time = query(|r| match r.start {
            Start::Timestamp(millis) => Some(Offset::Offset(millis)),
            _ => None,
        })?;
        self.check_timestamp_lookups(&by_time, &log_end)?;

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
                        (position.next_offset, reset) = Reset::place(requested, start, end);
                    }
                }
                Ok(ResolvedStart { position, reset })
            })
            .collect()
    }

    /// Fails when the cluster cannot look up offsets by time (librdkafka's mock cluster
    /// answers "no message" for every time) rather than silently starting at the end.
    ///
    /// Only a look-up that found nothing in a partition holding messages is in doubt; asked
    /// again for time 0, a real broker names the log start there.
    fn check_timestamp_lookups(
        &self,
        by_time: &HashMap<(String, i32), i64>,
        log_end: &HashMap<(String, i32), i64>,
    ) -> Result<(), Error> {
        let in_doubt: Vec<&(String, i32)> = by_time
            .iter()
            .filter(|(key, &found)| found < 0 && log_end.get(*key).is_some_and(|&end| end > 0))
            .map(|(key, _)| key)
            .collect();
        if in_doubt.is_empty() {
            return Ok(());
        }
        let query = |offset: Offset| {
            self.list_offsets(
                in_doubt
                    .iter()
                    .map(|(topic, partition)| (topic.as_str(), *partition, offset)),
            )
        };
        let log_start = query(Offset::Beginning)?;
        let from_epoch = query(Offset::Offset(0))?;
        let unsupported = in_doubt.iter().any(|&key| {
            let holds_messages = log_start.get(key) < log_end.get(key);
            holds_messages && from_epoch.get(key).is_none_or(|&found| found < 0)
        });
        if unsupported {
            return Err(Error::TimestampLookupUnsupported);
        }
        Ok(())
    }

    /// Whether every position has reached its partition's current log end.
    pub(crate) fn at_log_end(&self, positions: &[PartitionPosition]) -> Result<bool, Error> {
        let ends = self.list_offsets(
            positions
                .iter()
                .map(|p| (&*p.topic, p.partition, Offset::End)),
        )?;
        Ok(positions.iter().all(|p| {
            ends.get(&(p.topic.to_string(), p.partition))
                .is_some_and(|&end| p.next_offset >= end)
        }))
    }

    /// One ListOffsets round trip: for each partition, a timestamp, or `Offset::Beginning` /
    /// `Offset::End` for the log start / end.
    fn list_offsets<'a>(
        &self,
        query: impl Iterator<Item = (&'a str, i32, Offset)>,
    ) -> Result<HashMap<(String, i32), i64>, Error> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in query {
            list.add_partition_offset(topic, partition, offset)
                .map_err(|source| Error::KafkaUnavailable {
                    operation: "listing offsets",
                    source,
                })?;
        }
        if list.count() == 0 {
            return Ok(HashMap::new());
        }
        self.guarded("listing offsets", |timeout| {
            self.list_offsets_until(&list, timeout)
        })
    }

    fn list_offsets_until(
        &self,
        list: &TopicPartitionList,
        timeout: Duration,
    ) -> Result<HashMap<(String, i32), i64>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_list_offsets(list, deadline) {
                Err(Retry::After(code)) if Instant::now() + RETRY_BACKOFF < deadline => {
                    tracing::debug!(?code, "offset look-up will be retried");
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(Retry::After(code)) => {
                    return Err(Error::KafkaUnavailable {
                        operation: "listing offsets",
                        source: KafkaError::OffsetFetch(code),
                    })
                }
                Err(Retry::Never(error)) => return Err(error),
                Ok(offsets) => return Ok(offsets),
            }
        }
    }

    fn try_list_offsets(
        &self,
        list: &TopicPartitionList,
        deadline: Instant,
    ) -> Result<HashMap<(String, i32), i64>, Retry> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let answer = match self.client.offsets_for_times(list.clone(), timeout) {
            Ok(answer) => answer,
            Err(KafkaError::MetadataFetch(code) | KafkaError::OffsetFetch(code))
                if is_retriable(code) =>
            {
                return Err(Retry::After(code))
            }
            Err(source) => {
                return Err(Retry::Never(Error::KafkaUnavailable {
                    operation: "listing offsets",
                    source,
                }))
            }
        };
        let mut offsets = HashMap::new();
        for element in answer.elements() {
            match element.error() {
                Ok(()) => {}
                Err(KafkaError::OffsetFetch(code)) if is_retriable(code) => {
                    return Err(Retry::After(code))
                }
                Err(source) => {
                    return Err(Retry::Never(Error::KafkaUnavailable {
                        operation: "listing offsets",
                        source,
                    }))
                }
            }
            let offset = element.offset().to_raw().unwrap_or(-1);
            offsets.insert((element.topic().to_owned(), element.partition()), offset);
        }
        Ok(offsets)
    }
}

/// Whether an error says Kafka could not be reached, rather than that it refused this one
/// request: only the former may make other requests fail fast.
fn means_unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// How old a cached partition count must be before a forced refresh fetches it again.
///
/// A request naming a partition the cache does not know forces a refresh, so that partitions
/// added to a topic are seen at once. A client choosing partitions that do not exist could
/// otherwise make every request cost a metadata round trip; with this bound it costs at most
/// one per topic and interval, and a partition added moments ago is seen after it.
const MIN_FORCED_REFRESH: Duration = Duration::from_secs(1);

/// How long to wait before asking again after a retriable error.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

enum Retry {
    /// A transient condition (a leader election, a topic still being created).
    After(RDKafkaErrorCode),
    Never(Error),
}

/// Errors that go away by themselves once the cluster settles, such as right after a topic
/// was created or a broker restarted.
fn is_retriable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::OffsetNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::FencedLeaderEpoch
            | RDKafkaErrorCode::UnknownLeaderEpoch
            | RDKafkaErrorCode::NotCoordinator
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KafkaSseBuilder;

    #[test]
    fn an_offset_inside_the_log_or_at_its_end_is_where_the_stream_starts() {
        assert_eq!(Reset::place(5, 5, 10), (5, None));
        assert_eq!(Reset::place(7, 5, 10), (7, None));
        assert_eq!(Reset::place(10, 5, 10), (10, None));
    }

    #[test]
    fn an_offset_below_the_log_start_starts_at_the_log_start() {
        let (start, reset) = Reset::place(2, 5, 10);
        assert_eq!(start, 5);
        assert_eq!(reset, Some(Reset::BelowLogStart { requested: 2 }));
        assert_eq!(reset.unwrap().reason(), "below_log_start");
        assert_eq!(reset.unwrap().label(), "log_start");
    }

    #[test]
    fn an_offset_above_the_log_end_starts_at_the_log_start_not_the_end() {
        let (start, reset) = Reset::place(50, 0, 3);
        assert_eq!(start, 0);
        let reset = reset.unwrap();
        assert_eq!(
            reset,
            Reset::AboveLogEnd {
                requested: 50,
                log_end: 3
            }
        );
        assert_eq!(reset.reason(), "above_log_end");
        assert_eq!(reset.label(), "log_start");
        assert_eq!(Reset::place(11, 5, 10).0, 5);
    }

    /// A look-up client for a broker that does not exist: every fetch fails.
    fn without_broker() -> Arc<Lookup> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let settings = KafkaSseBuilder::new(config.clone())
            .lookup_timeout(Duration::from_millis(200))
            .settings();
        Lookup::new(&config, &settings).unwrap()
    }

    fn cache(lookup: &Lookup, topic: &str, count: i32, age: Duration) {
        let at = Instant::now()
            .checked_sub(age)
            .expect("the clock has run longer than the age");
        lookup
            .partition_counts
            .lock()
            .unwrap()
            .insert(topic.to_owned(), (at, count));
    }

    fn topics() -> BTreeSet<String> {
        BTreeSet::from(["t".to_owned()])
    }

    #[test]
    fn a_forced_refresh_of_a_count_fetched_moments_ago_uses_the_cache() {
        let lookup = without_broker();
        cache(&lookup, "t", 3, Duration::ZERO);
        for _ in 0..3 {
            let counts = lookup.partition_counts(&topics(), true).unwrap();
            assert_eq!(counts, HashMap::from([("t".to_owned(), 3)]));
        }
    }

    #[test]
    fn a_forced_refresh_of_an_older_count_fetches_it_again() {
        let lookup = without_broker();
        cache(&lookup, "t", 3, MIN_FORCED_REFRESH * 2);
        let counts = lookup.partition_counts(&topics(), false).unwrap();
        assert_eq!(counts["t"], 3, "still younger than the metadata max age");
        let error = lookup.partition_counts(&topics(), true).unwrap_err();
        assert!(
            matches!(error, Error::KafkaUnavailable { .. }),
            "a fetch was tried and found no broker: {error:?}"
        );
    }
}
