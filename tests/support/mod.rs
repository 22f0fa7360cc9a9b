//! Helpers shared by the integration tests: the real broker, fresh topics, fixtures, and
//! reading a stream with a real SSE parser; [`service`] runs the example services.
#![allow(dead_code)]

pub mod service;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use eventsource_stream::{Event, EventStream as Parser, Eventsource};
use futures::StreamExt;
use kafka_sse::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_sse::rdkafka::client::DefaultClientContext;
use kafka_sse::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_sse::rdkafka::producer::{FutureProducer, FutureRecord};
use kafka_sse::rdkafka::types::RDKafkaErrorCode;
use kafka_sse::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use kafka_sse::{Bytes, EventStream, KafkaSse, KafkaSseBuilder};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The real broker's address, from `KAFKA_BROKERS`, which `scripts/test.sh` sets.
///
/// # Panics
///
/// When it is not set: Kafka tests never skip silently.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BROKERS is not set. The integration tests need the real Kafka broker: \
             run them with scripts/test.sh, which starts one"
        )
    })
}

pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers());
    config
}

/// A builder for a service on the test broker, with a short heartbeat.
pub fn sse_builder() -> KafkaSseBuilder {
    KafkaSse::builder(client_config()).heartbeat(Duration::from_secs(2))
}

pub fn sse() -> KafkaSse {
    sse_builder()
        .build()
        .expect("a KafkaSse for the test broker")
}

fn admin() -> &'static AdminClient<DefaultClientContext> {
    static ADMIN: OnceLock<AdminClient<DefaultClientContext>> = OnceLock::new();
    ADMIN.get_or_init(|| client_config().create().expect("an admin client"))
}

/// Creates a topic with a fresh random name and `partitions` partitions, and waits until the
/// broker's metadata shows them all (a stream opened before is a 404: no such topic yet).
///
/// Time retention is off: fixtures carry old timestamps, and the test broker checks
/// retention every second.
pub async fn create_topic(partitions: i32) -> String {
    create_topic_with(partitions, &[("retention.ms", "-1")]).await
}

/// Creates a topic like [`create_topic`] with these topic configs.
pub async fn create_topic_with(partitions: i32, configs: &[(&str, &str)]) -> String {
    let name = format!("test-{}", rand::random::<u64>());
    if let Err(code) = ask_to_create(&name, partitions, configs).await {
        panic!("topic {name} not created: {code}");
    }
    wait_for_metadata(name.clone(), Some(partitions)).await;
    name
}

/// Asks the broker to create the topic `name`; its answer.
async fn ask_to_create(
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin()
        .create_topics([&topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .expect("create_topics request");
    results
        .into_iter()
        .try_for_each(|result| result.map(drop).map_err(|(_, code)| code))
}

/// Deletes `topic` and creates it again, empty, with `partitions` partitions and time
/// retention off, as an operator recreating a topic would.
///
/// Waits until the broker's metadata no longer shows the topic, then creates it, asking
/// again (within [`WAIT`]) while the broker still finishes the deletion, and waits until
/// the metadata shows the new topic.
pub async fn recreate_topic(topic: &str, partitions: i32) {
    let results = admin()
        .delete_topics(&[topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .expect("delete_topics request");
    for result in results {
        result.expect("topic deleted");
    }
    wait_for_metadata(topic.to_owned(), None).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match ask_to_create(topic, partitions, &[("retention.ms", "-1")]).await {
            Ok(()) => break,
            Err(RDKafkaErrorCode::TopicAlreadyExists) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(code) => panic!("topic {topic} not created again: {code}"),
        }
    }
    wait_for_metadata(topic.to_owned(), Some(partitions)).await;
}

/// Waits until the broker's metadata shows `topic` with `partitions` partitions, or, with
/// `None`, does not show it.
async fn wait_for_metadata(topic: String, partitions: Option<i32>) {
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = client_config().create().expect("a metadata client");
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            let shown = client
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()
                .map(|metadata| {
                    metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                        .map(|t| t.partitions().len() as i32)
                });
            if shown == Some(partitions) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the broker's metadata does not show {topic} with {partitions:?} partitions");
    })
    .await
    .expect("the metadata probe");
}

/// Grows `topic` to `partitions` partitions, as an operator adding partitions would, and
/// waits until the broker's metadata shows them.
pub async fn add_partitions(topic: &str, partitions: usize) {
    let results = admin()
        .create_partitions(
            [&kafka_sse::rdkafka::admin::NewPartitions::new(
                topic, partitions,
            )],
            &AdminOptions::new().operation_timeout(Some(WAIT)),
        )
        .await
        .expect("create_partitions request");
    for result in results {
        result.expect("partitions added");
    }
    wait_for_metadata(topic.to_owned(), Some(partitions as i32)).await;
}

/// Deletes the records of `topic`/`partition` before `offset`, moving its log start.
pub async fn delete_records_before(topic: &str, partition: i32, offset: i64) {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    let result = admin()
        .delete_records(&list, &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .expect("delete_records request");
    for element in result.elements() {
        element.error().expect("records deleted");
    }
}

pub fn producer() -> &'static FutureProducer {
    static PRODUCER: OnceLock<FutureProducer> = OnceLock::new();
    PRODUCER.get_or_init(|| {
        client_config()
            .set("linger.ms", "0")
            .create()
            .expect("a producer")
    })
}

/// A producer of its own, that never creates a topic by producing to it (the broker would
/// otherwise create a deleted topic again as soon as the producer looks it up).
pub fn producer_without_auto_create() -> FutureProducer {
    client_config()
        .set("linger.ms", "0")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a producer")
}

/// Produces one message and returns its offset.
pub async fn produce(topic: &str, partition: i32, payload: &str, timestamp: Option<i64>) -> i64 {
    produce_with(producer(), topic, partition, payload, timestamp).await
}

/// Produces one message with `producer` and returns its offset.
pub async fn produce_with(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    payload: &str,
    timestamp: Option<i64>,
) -> i64 {
    let mut record = FutureRecord::<(), _>::to(topic)
        .partition(partition)
        .payload(payload);
    if let Some(timestamp) = timestamp {
        record = record.timestamp(timestamp);
    }
    let delivery = producer
        .send(record, WAIT)
        .await
        .unwrap_or_else(|(error, _)| panic!("produce to {topic}/{partition}: {error}"));
    delivery.offset
}

/// Produces `{"n":N}` for each `n` in `range` and returns their offsets.
pub async fn produce_numbers(topic: &str, partition: i32, range: std::ops::Range<u32>) -> Vec<i64> {
    let mut offsets = Vec::new();
    for n in range {
        offsets.push(produce(topic, partition, &format!(r#"{{"n":{n}}}"#), None).await);
    }
    offsets
}

type Frames = futures::stream::Map<EventStream, fn(Bytes) -> Result<Bytes, Infallible>>;

/// Reads a stream with eventsource-stream, an SSE client parser.
pub struct Reader {
    events: Parser<Frames>,
}

impl Reader {
    pub fn new(stream: EventStream) -> Self {
        let frames = stream.map(Ok as fn(Bytes) -> Result<Bytes, Infallible>);
        Reader {
            events: frames.eventsource(),
        }
    }

    /// The next dispatched event.
    ///
    /// # Panics
    ///
    /// When none arrives within [`WAIT`] or the stream ends.
    pub async fn next_event(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an event within the wait")
            .expect("the stream goes on")
            .expect("a well-formed frame")
    }

    /// The next `count` events' data.
    pub async fn data(&mut self, count: usize) -> Vec<String> {
        let mut data = Vec::new();
        for _ in 0..count {
            data.push(self.next_event().await.data);
        }
        data
    }
}

/// The next raw frame of a stream, as text.
pub async fn next_frame(stream: &mut EventStream) -> String {
    let frame = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a frame within the wait")
        .expect("the stream goes on");
    String::from_utf8(frame.to_vec()).expect("frames are UTF-8")
}

/// `{"n":N}` payloads as the test producer writes them.
pub fn numbers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!(r#"{{"n":{n}}}"#)).collect()
}

/// Parses a JSON event id into its positions: the `"partitions"` count a followed topic's
/// first entry carries (what `tests/growth.rs` checks) is left out, so ids compare by
/// position alone.
pub fn id_json(id: &str) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(id).unwrap_or_else(|_| panic!("ids are JSON: {id}"));
    if let Some(entries) = value.as_array_mut() {
        for entry in entries {
            if let Some(fields) = entry.as_object_mut() {
                fields.remove("partitions");
            }
        }
    }
    value
}

/// An expected id: the entries sorted by topic then partition, as every id is.
pub fn expected_id(mut entries: Vec<serde_json::Value>) -> serde_json::Value {
    entries.sort_by_key(|e| {
        (
            e["topic"].as_str().unwrap().to_owned(),
            e["partition"].as_i64().unwrap(),
        )
    });
    serde_json::Value::Array(entries)
}

/// Runs `scripts/kafka-broker.sh ACTION` on the test broker (`stop`, `start`, `restart`):
/// the broker keeps its port and data.
///
/// # Panics
///
/// When the script fails.
pub fn broker(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka-broker.sh");
    let status = std::process::Command::new(script)
        .args([action, &broker_dir()])
        .status()
        .expect("kafka-broker.sh runs");
    assert!(status.success(), "kafka-broker.sh {action} failed");
}

/// The directory of the test broker, from `KAFKA_SSE_BROKER_DIR`, which
/// `scripts/with-kafka.sh` sets.
///
/// # Panics
///
/// When it is not set: Kafka tests never skip silently.
pub fn broker_dir() -> String {
    test_bed_env("KAFKA_SSE_BROKER_DIR")
}

/// A value `scripts/with-kafka.sh` exports for the test broker.
///
/// # Panics
///
/// When it is not set.
fn test_bed_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. The integration tests need the real Kafka broker: \
             run them with scripts/test.sh or scripts/with-kafka.sh, which start one"
        )
    })
}

/// The path of `name` in the test bed's TLS directory (`KAFKA_SSE_TLS_DIR`): `ca.pem`,
/// `client.pem`, `client.key`, `rogue-client.pem`, `rogue-client.key`.
pub fn tls_file(name: &str) -> String {
    format!("{}/{name}", test_bed_env("KAFKA_SSE_TLS_DIR"))
}

/// A client config for the test broker's SASL_SSL listener, signing in with SCRAM-SHA-512
/// as the test bed's user. Needs an rdkafka built with OpenSSL.
pub fn sasl_ssl_config() -> ClientConfig {
    sasl_ssl_config_as(
        &test_bed_env("KAFKA_SCRAM_USER"),
        &test_bed_env("KAFKA_SCRAM_PASSWORD"),
    )
}

/// A client config for the SASL_SSL listener signing in as `user` with `password`, for
/// the refusals: a wrong password, an unknown user.
pub fn sasl_ssl_config_as(user: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", test_bed_env("KAFKA_SASL_SSL_BROKERS"))
        .set("security.protocol", "SASL_SSL")
        .set("ssl.ca.location", tls_file("ca.pem"))
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", user)
        .set("sasl.password", password);
    config
}

/// A client config for the test broker's mutual-TLS listener, presenting the client
/// certificate the test CA signed. Needs an rdkafka built with OpenSSL.
pub fn mtls_config() -> ClientConfig {
    mtls_config_presenting("client")
}

/// A client config for the mutual-TLS listener presenting a certificate that another CA
/// (of the same name) signed, which the broker refuses.
pub fn rogue_mtls_config() -> ClientConfig {
    mtls_config_presenting("rogue-client")
}

/// A client config for the mutual-TLS listener presenting `NAME.pem` and `NAME.key` from
/// the test bed's TLS directory.
fn mtls_config_presenting(name: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", test_bed_env("KAFKA_MTLS_BROKERS"))
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", tls_file("ca.pem"))
        .set("ssl.certificate.location", tls_file(&format!("{name}.pem")))
        .set("ssl.key.location", tls_file(&format!("{name}.key")));
    config
}
