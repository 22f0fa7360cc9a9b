//! The embedded demo: librdkafka's mock cluster in this process, with topics fed by a
//! generator of realistic MediaWiki recent-change events, so the service shows live events
//! with no Kafka installed.
//!
//! What the mock cluster does differently from Kafka: it answers every offset look-up by
//! timestamp with "no such message" (so `Service::open_stream` refuses `since` here), it
//! answers a fetch that finds no data only after the full `fetch.wait.max.ms`, and it keeps
//! about 5 MiB per partition, in memory.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use kafka_sse::rdkafka::mocking::MockCluster;
use kafka_sse::rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use kafka_sse::rdkafka::ClientConfig;
use rand::Rng;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::catalog::StreamDef;
use crate::generator::Generator;

/// Events the generator writes per second.
const EVENTS_PER_SECOND: u64 = 20;
/// How often every partition gets a canary event, as Wikimedia's monitoring writes them.
const CANARY_INTERVAL: Duration = Duration::from_secs(30);

/// The recent-change topics, one per datacenter, and their partition counts.
const RECENTCHANGE_TOPICS: [(&str, i32); 2] = [
    ("eqiad.mediawiki.recentchange", 3),
    ("codfw.mediawiki.recentchange", 2),
];
const PAGE_CREATE_TOPIC: (&str, i32) = ("eqiad.mediawiki.page-create", 1);

/// The running demo cluster and its generator; both stop when this is dropped.
pub struct Demo {
    cluster: MockCluster<'static, DefaultProducerContext>,
    generator: JoinHandle<()>,
}

impl Demo {
    /// Starts the mock cluster, creates the demo topics and starts the generator.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When librdkafka cannot start the cluster, create a topic, or create the producer.
    pub fn start() -> anyhow::Result<Demo> {
        let cluster = MockCluster::new(1).context("creating the mock cluster")?;
        for (topic, partitions) in RECENTCHANGE_TOPICS.into_iter().chain([PAGE_CREATE_TOPIC]) {
            cluster
                .create_topic(topic, partitions, 1)
                .with_context(|| format!("creating the demo topic {topic}"))?;
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "5")
            .create()
            .context("creating the demo producer")?;
        let generator = tokio::spawn(generate(producer));
        Ok(Demo { cluster, generator })
    }

    /// The cluster's `bootstrap.servers`, on loopback.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// The demo streams, offered when no stream is configured, also under the canonical
    /// EventStreams names (`mediawiki.recentchange`) that clients such as npm's
    /// `wikimedia-streams` ask for.
    pub fn streams() -> Vec<StreamDef> {
        vec![
            StreamDef {
                name: "recentchange".into(),
                aliases: vec!["mediawiki.recentchange".into()],
                topics: RECENTCHANGE_TOPICS
                    .iter()
                    .map(|(t, _)| t.to_string())
                    .collect(),
                description: "Every change to the demo wikis (edits, new pages, log actions, \
                              categorization) from both datacenters, without canary events"
                    .into(),
                drop_canary: true,
            },
            StreamDef {
                name: "page-create".into(),
                aliases: vec!["mediawiki.page-create".into()],
                topics: vec![PAGE_CREATE_TOPIC.0.into()],
                description: "Pages created on the demo wikis; canary events included".into(),
                drop_canary: false,
            },
        ]
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.generator.abort();
    }
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish_non_exhaustive()
    }
}

/// Writes [`EVENTS_PER_SECOND`] recent changes (and a page creation for each new page),
/// and a canary event to every partition every [`CANARY_INTERVAL`], until aborted.
async fn generate(producer: FutureProducer) {
    let mut wikis = Generator::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / EVENTS_PER_SECOND));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut canaries = tokio::time::interval(CANARY_INTERVAL);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let change = wikis.recent_change(false);
                let datacenter = wikis.rng.random_range(0..RECENTCHANGE_TOPICS.len());
                let topic = RECENTCHANGE_TOPICS[datacenter].0;
                send(&producer, topic, None, &change.event);
                if let Some(page) = change.page_create {
                    send(&producer, PAGE_CREATE_TOPIC.0, None, &page);
                }
            }
            _ = canaries.tick() => {
                for (topic, partitions) in RECENTCHANGE_TOPICS {
                    for partition in 0..partitions {
                        send(&producer, topic, Some(partition), &wikis.recent_change(true).event);
                    }
                }
                let canary = wikis.page_create(true);
                send(&producer, PAGE_CREATE_TOPIC.0, Some(0), &canary);
            }
        }
    }
}

/// Queues one event, keyed by its wiki so a wiki's events stay in order; delivery is not
/// awaited, so a slow cluster never slows the clock.
fn send(producer: &FutureProducer, topic: &str, partition: Option<i32>, event: &Value) {
    let payload = event.to_string();
    let key = event["wiki"]
        .as_str()
        .or(event["database"].as_str())
        .unwrap_or_default();
    let mut record = FutureRecord::to(topic).key(key).payload(&payload);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Err((error, _)) = producer.send_result(record) {
        tracing::warn!(%error, topic, "the demo generator could not queue an event");
    }
}
