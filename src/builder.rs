//! Building a [`KafkaSse`]: the client configuration and the options shared by its streams.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::settings::Settings;
use crate::{Deserializer, Error, EventIdCodec, KafkaSse};

/// Builds a [`KafkaSse`] from an rdkafka [`ClientConfig`] and options.
///
/// Setters never fail; [`build`](Self::build) validates the configuration once.
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_sse::{rdkafka::ClientConfig, JsonWithMeta, KafkaSse, TimestampIds};
///
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "127.0.0.1:9092");
/// let sse = KafkaSse::builder(config)
///     .deserializer(JsonWithMeta)
///     .event_ids(TimestampIds)
///     .heartbeat(Duration::from_secs(5))
///     .build()?;
/// # Ok::<_, kafka_sse::Error>(())
/// ```
#[must_use = "a builder does nothing until build is called"]
pub struct KafkaSseBuilder {
    config: ClientConfig,
    settings: Settings,
}

impl KafkaSse {
    /// Starts building a service from an rdkafka client configuration, which needs at least
    /// `bootstrap.servers`.
    ///
    /// Every stream's consumer is created from this configuration, with auto-commit off, no
    /// consumer group needed, and a small prefetch (see
    /// [`KafkaSseBuilder::consumer_queue_kbytes`]). Any librdkafka property applies to them
    /// all, TLS and SASL included (the `ssl` feature, on by default, builds librdkafka with
    /// OpenSSL):
    ///
    /// ```no_run
    /// use kafka_sse::{rdkafka::ClientConfig, KafkaSse};
    ///
    /// let mut config = ClientConfig::new();
    /// config
    ///     .set("bootstrap.servers", "broker-1.example.com:9093")
    ///     .set("security.protocol", "SASL_SSL")
    ///     .set("sasl.mechanism", "SCRAM-SHA-512")
    ///     .set("sasl.username", "kafka-sse")
    ///     .set("sasl.password", std::env::var("KAFKA_PASSWORD")?);
    /// let sse = KafkaSse::builder(config).build()?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The builder's and the service's `Debug` show the brokers and the options, never the
    /// rest of the configuration.
    pub fn builder(config: ClientConfig) -> KafkaSseBuilder {
        KafkaSseBuilder::new(config)
    }
}

impl KafkaSseBuilder {
    fn new(config: ClientConfig) -> Self {
        KafkaSseBuilder {
            config,
            settings: Settings::default(),
        }
    }

    /// The event-id codec. Defaults to [`OffsetIds`](crate::OffsetIds).
    pub fn event_ids(mut self, codec: impl EventIdCodec) -> Self {
        self.settings.event_ids = Arc::new(codec);
        self
    }

    /// The message deserializer. Defaults to [`JsonPassThrough`](crate::JsonPassThrough).
    pub fn deserializer(mut self, deserializer: impl Deserializer) -> Self {
        self.settings.deserializer = Arc::new(deserializer);
        self
    }

    /// How long a stream may stay silent before it sends a heartbeat comment (or an id-only
    /// frame, when a filter dropped events meanwhile). Defaults to 15 seconds.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.settings.heartbeat = interval;
        self
    }

    /// A `retry:` reconnection delay sent to SSE clients when the stream opens. Defaults to
    /// none, which leaves the client's own default.
    ///
    /// Each stream sends this delay plus up to half of it at random, so that clients whose
    /// streams end together (a shutdown, a restart) do not all reconnect at once.
    pub fn retry(mut self, delay: Duration) -> Self {
        self.settings.retry = Some(delay);
        self
    }

    /// The longest a stream stays open; it then ends cleanly after a whole frame and clients
    /// resume with their last id. Defaults to no limit.
    ///
    /// Each stream ends at a random point in the last tenth of this duration, so that
    /// clients that connected together are not all cut, and back, together.
    pub fn max_connection_duration(mut self, duration: Duration) -> Self {
        self.settings.max_connection_duration = Some(duration);
        self
    }

    /// How long a Kafka look-up (metadata, offsets) may take before the request fails with
    /// 503. Defaults to 5 seconds.
    pub fn lookup_timeout(mut self, timeout: Duration) -> Self {
        self.settings.lookup_timeout = timeout;
        self
    }

    /// How long cached topic metadata (partition counts) is trusted. A request naming a
    /// partition the cache does not know refreshes it at once, unless it was fetched less
    /// than a second ago, so that such requests cannot make every request cost a metadata
    /// round trip. Defaults to 30 seconds.
    pub fn metadata_max_age(mut self, age: Duration) -> Self {
        self.settings.metadata_max_age = age;
        self
    }

    /// How often the service asks Kafka whether the topics its streams follow gained
    /// partitions. Defaults to 10 seconds.
    ///
    /// A stream that reads every partition of a topic follows it: a partition added to the
    /// topic joins the stream within this interval, read from its log start, and the next id
    /// names it. One metadata request per followed topic and interval, however many streams
    /// follow it.
    pub fn partition_check_interval(mut self, interval: Duration) -> Self {
        self.settings.partition_check = interval.max(Duration::from_millis(100));
        self
    }

    /// The most message data, in KiB, a stream's consumer prefetches
    /// (librdkafka's `queued.max.messages.kbytes`, whose own default is 64 MiB). Defaults to
    /// 1024 KiB. A `queued.max.messages.kbytes` in the client configuration wins.
    pub fn consumer_queue_kbytes(mut self, kbytes: u32) -> Self {
        self.settings.consumer_queue_kbytes = kbytes.max(1);
        self
    }

    /// The longest `Last-Event-ID` accepted, in bytes; longer ones get 400. Defaults to
    /// 64 KiB.
    pub fn max_last_event_id_len(mut self, bytes: usize) -> Self {
        self.settings.max_last_event_id_len = bytes;
        self
    }

    /// The most partitions one request may assign; more gets 400. Defaults to 1024.
    pub fn max_partitions(mut self, partitions: usize) -> Self {
        self.settings.max_partitions = partitions;
        self
    }

    /// Whether clients reading the same partitions at the live end share one consumer and
    /// one encoding of each frame. Clients that start from history join once they have
    /// caught up; ids are the same either way. Defaults to on.
    pub fn fan_out(mut self, enabled: bool) -> Self {
        self.settings.fan_out = enabled;
        self
    }

    /// The longest a shared live stream with many clients holds events to hand them over
    /// together. Defaults to 50 ms; zero turns it off.
    ///
    /// Handing an event to a client costs a wake-up and a write whatever the event's size, so
    /// with thousands of clients that cost, not the events, limits a stream. A shared stream
    /// therefore gathers the events that arrive within a window that grows with its clients,
    /// 5 µs per client (none below 200 clients, 5 ms at 1,000, this maximum from 10,000 by
    /// default), and each client writes them in one go. Latency grows by at most the window;
    /// events are never reordered or held longer.
    pub fn fan_out_batch_window(mut self, window: Duration) -> Self {
        self.settings.fan_out_batch_window = window;
        self
    }

    /// How many events a client on a shared live stream may fall behind before it moves to
    /// a consumer of its own, at its own position. The queue is shared by all clients of a
    /// stream. Defaults to 1024 events.
    ///
    /// A shared stream also keeps this many of its most recent events, so that a client
    /// resuming no further behind (every client of a service that just restarted, say)
    /// replays them and goes on live without a consumer of its own.
    pub fn fan_out_queue(mut self, events: usize) -> Self {
        self.settings.fan_out_queue = events.max(1);
        self
    }

    /// The most Kafka consumers the service runs at once: one per shared live stream, plus
    /// one per client reading on its own (resuming from history, moved off a shared stream
    /// for falling behind, or every client with fan-out off). Beyond it a request that needs
    /// a consumer gets [`Error::Busy`] (503), and a client that falls behind a shared stream
    /// is closed with an id-only frame holding its position, to resume later without loss.
    /// It keeps a saturated service from spiralling into ever more consumers. Defaults to 256.
    pub fn max_consumers(mut self, consumers: usize) -> Self {
        self.settings.max_consumers = consumers;
        self
    }

    /// Creates the shared look-up client and returns the service.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when librdkafka rejects the configuration, such as
    /// `security.protocol=SSL` in a build without the `ssl` feature. Credentials are checked
    /// only when a client connects: a refused one makes requests fail with
    /// [`Error::KafkaAuthentication`].
    pub fn build(self) -> Result<KafkaSse, Error> {
        KafkaSse::new(self.config, self.settings)
    }
}

impl fmt::Debug for KafkaSseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSseBuilder")
            .field("bootstrap.servers", &self.config.get("bootstrap.servers"))
            .field("settings", &self.settings)
            .finish()
    }
}
