//! What a service's streams read Kafka with: the shared look-up client, the consumer
//! configuration, the budget of consumers and the registry of shared live streams.
//!
//! Every method that touches librdkafka runs on tokio's blocking pool.

use std::collections::BTreeSet;
use std::sync::Arc;

use rdkafka::ClientConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::assignment::{expand, Expanded, RequestedPartition, Start};
use crate::blocking::blocking;
use crate::consumer::{self, MessageSource};
use crate::fanout::FanOut;
use crate::growth::Growth;
use crate::lookup::Lookup;
use crate::settings::Settings;
use crate::start::{self, ResolvedStart};
use crate::{AssignmentEntry, Error, PartitionPosition};

/// The Kafka side of a service, shared by all its streams.
pub(crate) struct Sources {
    consumer_config: ClientConfig,
    lookup: Arc<Lookup>,
    /// The shared live streams; `None` when fan-out is off.
    fan_out: Option<Arc<FanOut>>,
    /// Places for Kafka consumers ([`KafkaSseBuilder::max_consumers`](crate::KafkaSseBuilder::max_consumers)).
    consumers: Arc<Semaphore>,
    growth: Arc<Growth>,
    max_partitions: usize,
}

impl Sources {
    /// Creates the look-up client from `config`.
    pub(crate) fn new(config: &ClientConfig, settings: &Settings) -> Result<Arc<Self>, Error> {
        let lookup = Lookup::new(config, settings.lookup_timeout, settings.metadata_max_age)?;
        Ok(Arc::new(Sources {
            consumer_config: consumer::consumer_config(config, settings.consumer_queue_kbytes),
            growth: Growth::new(lookup.clone(), settings.partition_check),
            lookup,
            fan_out: settings.fan_out.then(|| FanOut::new(settings.clone())),
            consumers: Arc::new(Semaphore::new(settings.max_consumers)),
            max_partitions: settings.max_partitions,
        }))
    }

    /// The client configuration every consumer is created from.
    pub(crate) fn consumer_config(&self) -> &ClientConfig {
        &self.consumer_config
    }

    /// The watch over the partition counts of followed topics.
    pub(crate) fn growth(&self) -> &Arc<Growth> {
        &self.growth
    }

    /// The shared live streams, when fan-out is on.
    pub(crate) fn fan_out(&self) -> Option<&Arc<FanOut>> {
        self.fan_out.as_ref()
    }

    /// The partitions a request reads: every partition of its topics, or those its
    /// `Last-Event-ID` entries name, each with where it starts. Partition counts come from a
    /// cache; a partition the cache does not know refreshes it once.
    pub(crate) async fn requested_partitions(
        self: &Arc<Self>,
        topics: BTreeSet<String>,
        allowed: Vec<String>,
        entries: Option<Vec<AssignmentEntry>>,
        default_start: Start,
    ) -> Result<Expanded, Error> {
        let sources = self.clone();
        blocking(move || {
            let expand_with = |refresh: bool| {
                let counts = sources.lookup.partition_counts(&topics, refresh)?;
                expand(
                    &allowed,
                    entries.as_deref(),
                    default_start,
                    &counts,
                    sources.max_partitions,
                )
            };
            match expand_with(false) {
                Err(Error::UnknownPartition { .. } | Error::TopicNotFound { .. }) => {
                    expand_with(true)
                }
                other => other,
            }
        })
        .await
    }

    /// Resolves `requested` to concrete start positions, sorted by topic and partition,
    /// reporting the starts moved into their partition's log. Each comes with its
    /// partition's log end.
    pub(crate) async fn resolve(
        self: &Arc<Self>,
        requested: Vec<RequestedPartition>,
        label: Arc<str>,
    ) -> Result<Vec<ResolvedStart>, Error> {
        let lookup = self.lookup.clone();
        blocking(move || {
            let offsets = lookup.log_offsets(&requested)?;
            let mut resolved = start::resolve(&requested, &offsets)?;
            start::report_resets(&label, &resolved);
            resolved.sort_by(|a, b| {
                (&a.position.topic, a.position.partition)
                    .cmp(&(&b.position.topic, b.position.partition))
            });
            Ok(resolved)
        })
        .await
    }

    /// Opens a consumer at `positions`; [`Error::Busy`] when the budget is spent.
    pub(crate) async fn open_at(
        self: &Arc<Self>,
        positions: Vec<PartitionPosition>,
    ) -> Result<MessageSource, Error> {
        let sources = self.clone();
        blocking(move || sources.open_blocking(&positions)).await
    }

    fn open_blocking(&self, positions: &[PartitionPosition]) -> Result<MessageSource, Error> {
        let permit = self.permit()?;
        let health = self.lookup.health().clone();
        consumer::open(&self.consumer_config, positions, health, permit)
    }

    /// A place for one more Kafka consumer, or [`Error::Busy`].
    fn permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.consumers.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("kafka_sse_consumer_budget_exhausted_total").increment(1);
            Error::Busy
        })
    }

    /// Whether every position has reached its partition's log end; false when Kafka does
    /// not answer.
    pub(crate) async fn at_log_end(self: &Arc<Self>, positions: Vec<PartitionPosition>) -> bool {
        let lookup = self.lookup.clone();
        matches!(
            blocking(move || lookup.at_log_end(&positions)).await,
            Ok(true)
        )
    }

    /// Whether Kafka answers a metadata request within the look-up timeout.
    pub(crate) async fn check(&self) -> Result<(), Error> {
        let lookup = self.lookup.clone();
        blocking(move || lookup.check()).await
    }
}
