//! The shared Kafka client for metadata and offset look-ups.
//!
//! Every call here blocks on librdkafka, so callers run it on tokio's blocking pool.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::assignment::{RequestedPartition, Start};
use crate::health::{Admission, Health};
use crate::kafka_error::{is_retriable, means_unreachable};
use crate::refusal::RefusalContext;
use crate::start::LogOffsets;
use crate::{Error, PartitionPosition};

pub(crate) struct Lookup {
    client: BaseConsumer<RefusalContext>,
    partition_counts: Mutex<HashMap<String, (Instant, i32)>>,
    timeout: Duration,
    max_age: Duration,
    health: Arc<Health>,
}

impl Lookup {
    /// A look-up client from the service's configuration; each look-up may take `timeout`,
    /// and partition counts are cached for `max_age`.
    pub(crate) fn new(
        config: &ClientConfig,
        timeout: Duration,
        max_age: Duration,
    ) -> Result<Arc<Self>, Error> {
        let mut config = config.clone();
        config
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        if config.get("client.id").is_none() {
            config.set("client.id", "kafka-sse-lookup");
        }
        let client = config
            .create_with_context(RefusalContext::new(&config))
            .map_err(|error| Error::config(&error, &config))?;
        Ok(Arc::new(Lookup {
            client,
            partition_counts: Mutex::new(HashMap::new()),
            timeout,
            max_age,
            health: Arc::default(),
        }))
    }

    /// Runs one look-up with the time it may take, failing fast while Kafka is known to be
    /// down, and records whether Kafka answered.
    ///
    /// A look-up that gets no answer while Kafka refuses the client (failed authentication
    /// or TLS, which librdkafka reports only as error events) fails with
    /// [`Error::KafkaAuthentication`], naming the cause, rather than as a time-out.
    fn guarded<T>(
        &self,
        operation: &'static str,
        look_up: impl FnOnce(Duration) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.drain_events();
        let refusal = || self.client.context().refused(operation);
        let timeout = match self.health.admit(self.timeout) {
            Admission::Try(timeout) => timeout,
            Admission::FailFast => {
                return Err(refusal().unwrap_or_else(|| {
                    Error::kafka_unavailable(
                        operation,
                        KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                    )
                }))
            }
        };
        let result = look_up(timeout);
        match &result {
            Ok(_) => {
                self.health.mark_up();
                self.client.context().forget();
            }
            Err(Error::KafkaUnavailable { source, .. }) if means_unreachable(source) => {
                self.drain_events();
                self.health.mark_down();
                if let Some(refused) = refusal() {
                    return Err(refused);
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Kafka's availability, shared with the stream consumers, which see it change first.
    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Serves the client's queued events; librdkafka reports "all brokers down" there, and
    /// why it was refused (to the [`RefusalContext`]).
    ///
    /// rdkafka's `poll` answers `None` both for an empty queue and for a log line it served,
    /// and log lines come first on the same queue, so only a run of `None`s ends the drain.
    fn drain_events(&self) {
        let mut idle = 0;
        for _ in 0..1000 {
            match self.client.poll(Duration::ZERO) {
                None if idle == DRAINED_AFTER_IDLE_POLLS => return,
                None => idle += 1,
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown))) => {
                    self.health.mark_down();
                    idle = 0;
                }
                Some(_) => idle = 0,
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
                .map_err(|source| Error::kafka_unavailable("fetching metadata", source))
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
                return Err(Error::kafka_unavailable(
                    "fetching metadata",
                    KafkaError::MetadataFetch(code.into()),
                ))
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
                .map_err(|source| Error::kafka_unavailable("fetching metadata", source))
        })
    }

    /// The log bounds, and the offsets at the requested times, of every requested
    /// partition, for [`start::resolve`](crate::start::resolve).
    pub(crate) fn log_offsets(
        &self,
        requested: &[RequestedPartition],
    ) -> Result<LogOffsets, Error> {
        let needs_log_start = requested
            .iter()
            .any(|r| matches!(r.start, Start::Offset(_) | Start::Earliest));
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
        Ok(LogOffsets {
            log_start,
            log_end,
            by_time,
        })
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

    /// The log start of each partition, by `(topic, partition)`.
    pub(crate) fn log_starts(
        &self,
        partitions: &[(Arc<str>, i32)],
    ) -> Result<HashMap<(String, i32), i64>, Error> {
        self.list_offsets(
            partitions
                .iter()
                .map(|(topic, partition)| (&**topic, *partition, Offset::Beginning)),
        )
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
                .map_err(|source| Error::kafka_unavailable("listing offsets", source))?;
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
                    return Err(Error::kafka_unavailable(
                        "listing offsets",
                        KafkaError::OffsetFetch(code),
                    ))
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
                return Err(Retry::Never(Error::kafka_unavailable(
                    "listing offsets",
                    source,
                )))
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
                    return Err(Retry::Never(Error::kafka_unavailable(
                        "listing offsets",
                        source,
                    )))
                }
            }
            let offset = element.offset().to_raw().unwrap_or(-1);
            offsets.insert((element.topic().to_owned(), element.partition()), offset);
        }
        Ok(offsets)
    }
}

/// How old a cached partition count must be before a forced refresh fetches it again.
///
/// A request naming a partition the cache does not know forces a refresh, so that partitions
/// added to a topic are seen at once. A client choosing partitions that do not exist could
/// otherwise make every request cost a metadata round trip; with this bound it costs at most
/// one per topic and interval, and a partition added moments ago is seen after it.
const MIN_FORCED_REFRESH: Duration = Duration::from_secs(1);

/// How many polls in a row that serve no event end a drain of the client's events.
const DRAINED_AFTER_IDLE_POLLS: u32 = 16;

/// How long to wait before asking again after a retriable error.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

enum Retry {
    /// A transient condition (a leader election, a topic still being created).
    After(RDKafkaErrorCode),
    Never(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A look-up client for a broker that does not exist: every fetch fails.
    fn without_broker() -> Arc<Lookup> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        Lookup::new(&config, Duration::from_millis(200), Duration::from_secs(30)).unwrap()
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
