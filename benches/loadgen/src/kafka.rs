//! The Kafka side of the load generator: creating the topic, producing at a set rate or as
//! fast as possible, and the raw consumer loop every other reader is measured against.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use kafka_sse::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_sse::rdkafka::client::{ClientContext, DefaultClientContext};
use kafka_sse::rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use kafka_sse::rdkafka::error::KafkaError;
use kafka_sse::rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext,
};
use kafka_sse::rdkafka::types::RDKafkaErrorCode;
use kafka_sse::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use tokio::time::Instant;

use crate::event::EventFactory;
use crate::report::rate;

/// Creates `topic` with `partitions` partitions unless it exists; returns its partition
/// count.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<i32> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = tokio::time::timeout(
        Duration::from_secs(60),
        admin.create_topics([&new], &options),
    )
    .await
    .map_err(|_| anyhow!("creating topic {topic} timed out"))??;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<i32> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        // A new topic's metadata reaches every broker a moment after creation.
        for _ in 0..50 {
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            if let Some(found) = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
            {
                if !found.partitions().is_empty() {
                    return Ok(found.partitions().len() as i32);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("topic {topic} has no partitions after creation")
    })
    .await?
}

/// Counts deliveries and failures reported by librdkafka.
#[derive(Debug, Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What to produce.
#[derive(Debug, Clone)]
pub struct ProduceSpec {
    pub brokers: String,
    pub topic: String,
    /// Events per second; `None` for as fast as possible.
    pub rate: Option<f64>,
    pub count: u64,
    /// Serialized event size; 0 keeps the sample size.
    pub size: usize,
    pub partitions: i32,
    pub sample: Option<String>,
    /// Progress lines on stderr every this often.
    pub progress: Option<Duration>,
    /// The run tag; random when `None`.
    pub run: Option<u64>,
}

/// How a production run went.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub run: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Produced {
    pub fn to_json(self, label: &str) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64();
        json!({
            "label": label,
            "run": self.run,
            "events": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": secs,
            "events_per_sec": rate(self.sent as f64, secs),
            "mb_per_sec": rate(self.bytes as f64 / 1e6, secs),
        })
    }
}

/// A producer on its own thread, so pacing does not depend on a busy async runtime.
#[derive(Debug)]
pub struct Feeder {
    stop: Arc<AtomicBool>,
    /// Events handed to librdkafka so far.
    sent: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<anyhow::Result<Produced>>,
}

impl Feeder {
    /// Starts producing `spec.count` events.
    pub fn start(spec: ProduceSpec) -> anyhow::Result<Feeder> {
        // Tags stay below 2^53 so that JavaScript readers keep them exact.
        let run = spec.run.unwrap_or_else(|| rand::random::<u64>() >> 12);
        let factory = EventFactory::new(spec.sample.as_deref(), spec.size, run)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new().name("feeder".into()).spawn({
            let (stop, sent) = (stop.clone(), sent.clone());
            move || produce(&spec, &factory, &stop, &sent)
        })?;
        Ok(Feeder { stop, sent, thread })
    }

    /// How many events have been sent so far: events `0..sent()` of the run.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }

    /// Stops early, at the next event.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the end (and the delivery of everything sent).
    pub async fn finish(self) -> anyhow::Result<Produced> {
        tokio::task::spawn_blocking(move || {
            self.thread
                .join()
                .map_err(|_| anyhow!("the producer thread panicked"))?
        })
        .await?
    }
}

fn produce(
    spec: &ProduceSpec,
    factory: &EventFactory,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<Produced> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &spec.brokers)
        .set("acks", "1")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    if spec.rate.is_some() {
        // Paced events carry their send time: send each one at once.
        config.set("linger.ms", "0");
    } else {
        config.set("linger.ms", "20").set("batch.size", "1000000");
    }
    let producer: BaseProducer<Deliveries> = config
        .create_with_context(Deliveries::default())
        .context("creating the producer")?;
    let started = std::time::Instant::now();
    let mut next_progress = spec.progress.map(|p| started + p);
    let mut payload = Vec::with_capacity(spec.size.max(2048));
    let mut bytes = 0u64;
    let mut count = 0u64;
    while count < spec.count && !stop.load(Ordering::Relaxed) {
        if let Some(rate) = spec.rate {
            let due = started + Duration::from_secs_f64(count as f64 / rate);
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
                continue;
            }
        }
        factory.build(count, &mut payload);
        let partition = (count % spec.partitions.max(1) as u64) as i32;
        let mut record = BaseRecord::to(&spec.topic)
            .payload(&payload[..])
            .partition(partition);
        // Bounded retries: a queue that stays full for a minute means the broker is gone.
        let mut attempts = 0;
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if attempts < 6000 =>
                {
                    attempts += 1;
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error).context("producing"),
            }
        }
        bytes += payload.len() as u64;
        count += 1;
        sent.store(count, Ordering::Release);
        producer.poll(Duration::ZERO);
        if let Some(at) = next_progress {
            if std::time::Instant::now() >= at {
                eprintln!(
                    "produced {count} events ({:.0}/s)",
                    count as f64 / started.elapsed().as_secs_f64()
                );
                next_progress = spec.progress.map(|p| at + p);
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    let context = producer.context();
    Ok(Produced {
        run: factory.run(),
        sent: count,
        delivered: context.delivered.load(Ordering::Relaxed),
        failed: context.failed.load(Ordering::Relaxed),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// How a consumer reads in the raw drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsumerApi {
    /// `BaseConsumer::poll` in a plain loop on one thread: the limit.
    Base,
    /// `StreamConsumer::recv` on tokio, the API the crate uses.
    Stream,
}

/// What a drain read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drained {
    pub events: u64,
    /// Bytes read: message payloads for Kafka, the de-chunked body for HTTP.
    pub bytes: u64,
    /// Event data bytes (HTTP only).
    pub data_bytes: u64,
    /// From the start (consumer creation, or the HTTP connect) to the last event.
    pub elapsed: Duration,
    /// From the start to the first event.
    pub first_event: Duration,
    /// Events whose sequence number was not the next one of their partition.
    pub gaps: u64,
    /// CPU seconds the reader (this process) used.
    pub reader_cpu_s: Option<f64>,
    /// CPU seconds the server used meanwhile, when its PID is known.
    pub server_cpu_s: Option<f64>,
}

impl Drained {
    pub fn to_json(self, label: &str) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64();
        json!({
            "label": label,
            "events": self.events,
            "bytes": self.bytes,
            "data_bytes": self.data_bytes,
            "seconds": secs,
            "first_event_ms": self.first_event.as_secs_f64() * 1e3,
            "events_per_sec": rate(self.events as f64, secs),
            "mb_per_sec": rate(self.bytes as f64 / 1e6, secs),
            "bytes_per_event": rate(self.bytes as f64, self.events as f64),
            "gaps": self.gaps,
            "reader_cpu_s": self.reader_cpu_s,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_us_per_event": self.server_cpu_s.map(|cpu| rate(cpu * 1e6, self.events as f64)),
        })
    }
}

/// Reads `count` messages from the beginning of every partition of `topic` with a bare
/// librdkafka consumer, counting payload bytes; gives up after `limit`.
pub async fn raw_drain(
    brokers: &str,
    topic: &str,
    count: u64,
    api: ConsumerApi,
    limit: Duration,
) -> anyhow::Result<Drained> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "kafka-sse-loadgen-raw")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // librdkafka's defaults, spelled out: the limit is what a tuned-for-throughput
        // consumer does, not what a memory-bounded one does.
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .set("queued.max.messages.kbytes", "65536");
    let started = Instant::now();
    let cpu_before = crate::probe::cpu_seconds(None);
    let deadline = started + limit;
    let mut drained = match api {
        ConsumerApi::Base => {
            let consumer: BaseConsumer = config.create()?;
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || {
                assign_from_start(&consumer, &topic)?;
                let mut drained = Drained::default();
                while drained.events < count {
                    if Instant::now() >= deadline {
                        bail!("read {} of {count} messages in {limit:?}", drained.events);
                    }
                    match consumer.poll(Duration::from_millis(500)) {
                        Some(Ok(message)) => {
                            if drained.events == 0 {
                                drained.first_event = started.elapsed();
                            }
                            drained.events += 1;
                            drained.bytes += message.payload_len() as u64;
                        }
                        Some(Err(error)) => eprintln!("consumer error: {error}"),
                        None => {}
                    }
                }
                drained.elapsed = started.elapsed();
                Ok(drained)
            })
            .await??
        }
        ConsumerApi::Stream => {
            let consumer: StreamConsumer = config.create()?;
            {
                let topic = topic.to_owned();
                let consumer = &consumer;
                tokio::task::block_in_place(|| assign_from_start(consumer, &topic))?;
            }
            let mut drained = Drained::default();
            while drained.events < count {
                let received = tokio::time::timeout_at(deadline, consumer.recv())
                    .await
                    .map_err(|_| {
                        anyhow!("read {} of {count} messages in {limit:?}", drained.events)
                    })?;
                match received {
                    Ok(message) => {
                        if drained.events == 0 {
                            drained.first_event = started.elapsed();
                        }
                        drained.events += 1;
                        drained.bytes += message.payload_len() as u64;
                    }
                    Err(error) => eprintln!("consumer error: {error}"),
                }
            }
            drained.elapsed = started.elapsed();
            drained
        }
    };
    drained.reader_cpu_s = cpu_before
        .zip(crate::probe::cpu_seconds(None))
        .map(|(before, after)| after - before);
    Ok(drained)
}

fn assign_from_start<C: Consumer>(consumer: &C, topic: &str) -> anyhow::Result<()> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .unwrap_or_default();
    if partitions == 0 {
        bail!("topic {topic} does not exist");
    }
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(())
}
