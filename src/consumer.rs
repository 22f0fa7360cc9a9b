//! The per-stream Kafka consumer, seen by the stream as a source of messages.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream, Stream, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::OwnedSemaphorePermit;

use crate::health::Health;
use crate::kafka_error::consumer_recovers;
use crate::{Error, Message, PartitionPosition};

/// Messages in per-partition order, or the error that ends the stream; from a Kafka consumer,
/// which can also take more partitions, or from any stream of messages (in tests).
///
/// A stream reads one of these directly (its own consumer) or through a shared hub.
pub(crate) struct MessageSource {
    messages: BoxStream<'static, Result<Message, Error>>,
    consumer: Option<Arc<ReleasedOnDrop>>,
}

impl MessageSource {
    /// What adds partitions to the source's consumer, when it has one.
    pub(crate) fn partition_adder(&self) -> Option<PartitionAdder> {
        self.consumer.clone().map(PartitionAdder)
    }
}

impl From<BoxStream<'static, Result<Message, Error>>> for MessageSource {
    fn from(messages: BoxStream<'static, Result<Message, Error>>) -> Self {
        MessageSource {
            messages,
            consumer: None,
        }
    }
}

impl Stream for MessageSource {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.messages.poll_next_unpin(cx)
    }
}

/// Adds partitions to a running consumer, each from its position, without touching the
/// partitions it reads already.
pub(crate) struct PartitionAdder(Arc<ReleasedOnDrop>);

impl PartitionAdder {
    /// Assigns `added` too. Blocks briefly in librdkafka: call it on the blocking pool.
    pub(crate) fn add(&self, added: &[PartitionPosition]) -> Result<(), Error> {
        let list = assignment(added)?;
        self.0
            .get()
            .incremental_assign(&list)
            .map_err(|source| Error::kafka_unavailable("assigning partitions", source))
    }
}

fn assignment(positions: &[PartitionPosition]) -> Result<TopicPartitionList, Error> {
    let mut assignment = TopicPartitionList::new();
    for position in positions {
        assignment
            .add_partition_offset(
                &position.topic,
                position.partition,
                Offset::Offset(position.next_offset),
            )
            .map_err(|source| Error::kafka_unavailable("assigning partitions", source))?;
    }
    Ok(assignment)
}

/// The consumer configuration for one stream: no group, no commits, and a small prefetch
/// so memory per connection stays bounded.
pub(crate) fn consumer_config(base: &ClientConfig, queue_kbytes: u32) -> ClientConfig {
    let mut config = base.clone();
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Only reached when retention deletes data under a reading stream: continue from
        // the oldest message left rather than jumping to the newest.
        .set("auto.offset.reset", "earliest");
    let defaults = [
        ("queued.max.messages.kbytes", queue_kbytes.to_string()),
        ("queued.min.messages", "1000".to_owned()),
        // librdkafka waits this long before fetching again once it found its queue full
        // (a second by default). A client draining history empties the small queue above
        // in a few milliseconds, so a longer wait leaves it idle: draining a topic of 1 KB
        // events went from about 135,000 to 200,000-245,000 events/s going from 10 ms to
        // 1 ms (BENCHMARKS.md). A full queue is then checked every millisecond.
        ("fetch.queue.backoff.ms", "1".to_owned()),
        ("client.id", "kafka-sse".to_owned()),
        // librdkafka's assign() needs a group handle; the group is never joined (no
        // subscribe) and nothing is committed, so all streams can share one name.
        ("group.id", "kafka-sse".to_owned()),
    ];
    for (key, value) in defaults {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    config
}

/// Creates a consumer assigned at `positions` and returns its messages as a source. What the
/// consumer learns of the brokers' availability goes to `health`.
///
/// Blocks briefly in librdkafka; call it on the blocking pool, inside a tokio runtime.
pub(crate) fn open(
    config: &ClientConfig,
    positions: &[PartitionPosition],
    health: Arc<Health>,
    permit: OwnedSemaphorePermit,
) -> Result<MessageSource, Error> {
    let consumer: StreamConsumer = config
        .create()
        .map_err(|error| Error::config(&error, config))?;
    consumer
        .assign(&assignment(positions)?)
        .map_err(|source| Error::kafka_unavailable("assigning partitions", source))?;
    let topics: Vec<Arc<str>> = positions.iter().map(|p| p.topic.clone()).collect();
    metrics::gauge!("kafka_sse_consumers").increment(1);
    let consumer = Arc::new(ReleasedOnDrop {
        consumer: Some(consumer),
        _permit: permit,
    });
    Ok(MessageSource {
        messages: messages(consumer.clone(), topics, health),
        consumer: Some(consumer),
    })
}

fn messages(
    consumer: Arc<ReleasedOnDrop>,
    topics: Vec<Arc<str>>,
    health: Arc<Health>,
) -> BoxStream<'static, Result<Message, Error>> {
    stream::unfold(
        (consumer, topics, health),
        |(consumer, topics, health)| async move {
            loop {
                let received = consumer.get().recv().await;
                match received {
                    Ok(message) => {
                        health.mark_up();
                        let topic = topics
                            .iter()
                            .find(|t| ***t == *rdkafka::Message::topic(&message))
                            .cloned()
                            .unwrap_or_else(|| rdkafka::Message::topic(&message).into());
                        let message = Message::from_kafka(&message, topic);
                        return Some((Ok(message), (consumer, topics, health)));
                    }
                    Err(error) if consumer_recovers(&error) => {
                        health.observe(&error);
                        tracing::warn!(%error, "kafka consumer error; librdkafka retries");
                        metrics::counter!("kafka_sse_consumer_errors_total", "fatal" => "false")
                            .increment(1);
                    }
                    Err(error) => {
                        tracing::error!(%error, "kafka consumer failed; ending the stream");
                        metrics::counter!("kafka_sse_consumer_errors_total", "fatal" => "true")
                            .increment(1);
                        return Some((Err(Error::Consumer(error)), (consumer, topics, health)));
                    }
                }
            }
        },
    )
    .boxed()
}

/// Owns the consumer, with its place in the service's consumer budget, and destroys it on
/// the blocking pool: librdkafka joins its threads on destroy, which must not stall an async
/// worker.
struct ReleasedOnDrop {
    consumer: Option<StreamConsumer>,
    _permit: OwnedSemaphorePermit,
}

impl ReleasedOnDrop {
    fn get(&self) -> &StreamConsumer {
        self.consumer
            .as_ref()
            .expect("the consumer is only taken on drop")
    }
}

impl Drop for ReleasedOnDrop {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        metrics::counter!("kafka_sse_consumers_released_total").increment(1);
        metrics::gauge!("kafka_sse_consumers").decrement(1);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(consumer));
            }
            Err(_) => drop(consumer),
        }
    }
}
