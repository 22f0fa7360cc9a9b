//! The service object: built once, shared by every request.

use std::fmt;
use std::sync::Arc;

use rdkafka::ClientConfig;

use crate::assignment::{expand, topics_to_describe, RequestedPartition, Start};
use crate::builder::{KafkaSseBuilder, Settings};
use crate::consumer::{self, MessageSource};
use crate::event_stream::Feed;
use crate::fanout::{self, FanOut};
use crate::lookup::{Lookup, ResolvedStart};
use crate::{parse_since, Error, EventStream, PartitionPosition, StreamRequest};

/// Streams Kafka topics to HTTP clients as Server-Sent Events.
///
/// Build one per service with [`KafkaSse::builder`]; it is cheap to clone and serves any
/// number of requests. It keeps what can be shared: a client for metadata and offset
/// look-ups, cached partition counts, and the shared live streams: clients that read the same
/// partitions from the live end share one consumer and one encoding of each frame. Each call
/// to [`stream`](Self::stream) resolves the request's start positions and returns the
/// client's [`EventStream`].
///
/// ```no_run
/// use futures::StreamExt;
/// use kafka_sse::{rdkafka::ClientConfig, KafkaSse, StreamRequest};
///
/// # async fn run() -> Result<(), kafka_sse::Error> {
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "127.0.0.1:9092");
/// let sse = KafkaSse::builder(config).build()?;
///
/// let mut stream = sse.stream(StreamRequest::new(["recentchange"])).await?;
/// while let Some(frame) = stream.next().await {
///     print!("{}", String::from_utf8_lossy(&frame));
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KafkaSse {
    inner: Arc<Service>,
}

impl Service {
    /// A place for one more Kafka consumer, or [`Error::Busy`].
    pub(crate) fn consumer_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        self.consumers.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("kafka_sse_consumer_budget_exhausted_total").increment(1);
            Error::Busy
        })
    }
}

/// What a [`KafkaSse`] shares between its requests; streams hold it to join shared live
/// streams and to reopen consumers.
pub(crate) struct Service {
    pub(crate) consumer_config: ClientConfig,
    pub(crate) settings: Settings,
    pub(crate) lookup: Arc<Lookup>,
    pub(crate) fan_out: Arc<FanOut>,
    /// Places for Kafka consumers ([`KafkaSseBuilder::max_consumers`]).
    pub(crate) consumers: Arc<tokio::sync::Semaphore>,
    /// Turns true once, on [`KafkaSse::shutdown`]; every stream watches it.
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
}

impl KafkaSse {
    /// Starts building a service from an rdkafka client configuration, which needs at least
    /// `bootstrap.servers`.
    ///
    /// Every stream's consumer is created from this configuration, with auto-commit off, no
    /// consumer group needed, and a small prefetch (see
    /// [`KafkaSseBuilder::consumer_queue_kbytes`]).
    pub fn builder(config: ClientConfig) -> KafkaSseBuilder {
        KafkaSseBuilder::new(config)
    }

    pub(crate) fn from_parts(
        config: ClientConfig,
        settings: Settings,
        lookup: Arc<Lookup>,
    ) -> Self {
        KafkaSse {
            inner: Arc::new(Service {
                consumer_config: consumer::consumer_config(&config, &settings),
                fan_out: FanOut::new(settings.clone()),
                consumers: Arc::new(tokio::sync::Semaphore::new(settings.max_consumers)),
                settings,
                lookup,
                shutdown: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Opens the stream for one request.
    ///
    /// Parses and checks the `Last-Event-ID` and `since`, resolves every assigned partition
    /// to a concrete start offset (on tokio's blocking pool: librdkafka look-ups block), and
    /// assigns a consumer there. Offsets outside a partition's log are moved to its log
    /// start, logged, counted in `kafka_sse_offset_resets_total`, and visible in
    /// [`EventStream::start_id`].
    ///
    /// # Errors
    ///
    /// Any failure before the first byte: a 4xx [`Error`] for a bad request, 503 when Kafka
    /// does not answer in time. Map it with [`Error::status_code`] and [`Error::problem`].
    pub async fn stream(&self, request: StreamRequest) -> Result<EventStream, Error> {
        let settings = &self.inner.settings;
        let label: Arc<str> = request.label_or_topics().into();
        let result = self.open(&request, &label).await;
        match &result {
            Ok(_) => {}
            Err(error) if error.is_client_error() => {
                tracing::debug!(stream = %label, %error, "refused a stream request");
            }
            Err(error) => {
                tracing::warn!(stream = %label, error = %DisplayChain(error), "could not open a stream")
            }
        }
        if let Err(error) = &result {
            metrics::counter!("kafka_sse_requests_refused_total", "stream" => label.to_string(), "kind" => error.kind())
                .increment(1);
        }
        let (positions, feed) = result?;
        Ok(EventStream::new(
            feed,
            positions,
            settings,
            request.format,
            request.filter,
            label,
            Some(self.inner.clone()),
        ))
    }

    async fn open(
        &self,
        request: &StreamRequest,
        label: &Arc<str>,
    ) -> Result<(Vec<PartitionPosition>, Feed), Error> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::ShuttingDown);
        }
        let settings = &self.inner.settings;
        let entries = match request.last_event_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) if id.len() > settings.max_last_event_id_len => {
                return Err(Error::invalid_last_event_id(format!(
                    "longer than {} bytes",
                    settings.max_last_event_id_len
                )))
            }
            Some(id) => Some(settings.event_ids.decode(id)?),
        };
        let since = request.since.as_deref().map(parse_since).transpose()?;
        let live = entries.is_none() && since.is_none() && settings.fan_out;
        let default_start = since.map_or(Start::Latest, Start::Timestamp);
        let topics = topics_to_describe(&request.topics, entries.as_deref())?;

        let inner = self.inner.clone();
        let allowed = request.topics.clone();
        let requested = blocking(move || {
            let expand_with = |refresh: bool| -> Result<Vec<RequestedPartition>, Error> {
                let counts = inner.lookup.partition_counts(&topics, refresh)?;
                expand(
                    &allowed,
                    entries.as_deref(),
                    default_start,
                    &counts,
                    inner.settings.max_partitions,
                )
            };
            match expand_with(false) {
                Err(Error::UnknownPartition { .. } | Error::TopicNotFound { .. }) => {
                    expand_with(true)
                }
                other => other,
            }
        })
        .await?;
        if !live {
            let (positions, source) = self.open_consumer(requested, label.clone()).await?;
            return Ok((positions, Feed::Own(source)));
        }
        // A live client joins the shared stream when there is one: its start is the
        // stream's current position, with no Kafka look-up at all. Clients arriving together
        // wait for the first to start it rather than each opening a consumer.
        let fan_out = &self.inner.fan_out;
        let key = fanout::key(requested.iter().map(|r| (&r.topic, r.partition)));
        if let Some((subscription, positions)) = fan_out.join_live(&key) {
            return Ok((positions, Feed::Shared(subscription)));
        }
        let _starting = fan_out.lock_start(&key).await;
        if let Some((subscription, positions)) = fan_out.join_live(&key) {
            return Ok((positions, Feed::Shared(subscription)));
        }
        let (positions, source) = self.open_consumer(requested, label.clone()).await?;
        Ok(match fan_out.start(source, &positions, label) {
            Ok(subscription) => (positions, Feed::Shared(subscription)),
            Err(source) => (positions, Feed::Own(source)),
        })
    }

    /// Resolves `requested` to concrete start positions and opens a consumer there.
    async fn open_consumer(
        &self,
        requested: Vec<RequestedPartition>,
        label: Arc<str>,
    ) -> Result<(Vec<PartitionPosition>, MessageSource), Error> {
        let inner = self.inner.clone();
        blocking(move || {
            let resolved = inner.lookup.resolve(&requested)?;
            report_resets(&label, &resolved);
            let positions: Vec<PartitionPosition> =
                resolved.into_iter().map(|start| start.position).collect();
            let permit = inner.consumer_permit()?;
            let health = inner.lookup.health().clone();
            let source = consumer::open(&inner.consumer_config, &positions, health, permit)?;
            Ok((positions, source))
        })
        .await
    }

    /// Ends every open stream after its current frame and refuses new ones with
    /// [`Error::ShuttingDown`] (503), for a graceful shutdown: the server stops accepting,
    /// calls this, and its open responses complete on their own.
    ///
    /// An SSE stream that consumed messages its client has no id for yet (a filter dropped
    /// them) first sends an id-only frame, so the client resumes exactly where it was.
    ///
    /// ```no_run
    /// # async fn run(sse: kafka_sse::KafkaSse) {
    /// tokio::signal::ctrl_c().await.unwrap();
    /// sse.shutdown();
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        tracing::info!("shutting down: ending every stream");
    }

    /// Whether Kafka answers a metadata request within the look-up timeout; for health
    /// checks.
    ///
    /// # Errors
    ///
    /// [`Error::KafkaUnavailable`] when it does not.
    pub async fn check_kafka(&self) -> Result<(), Error> {
        let lookup = self.inner.lookup.clone();
        blocking(move || lookup.check()).await
    }
}

fn report_resets(label: &str, resolved: &[ResolvedStart]) {
    for start in resolved {
        let Some(reset) = start.reset else { continue };
        let position = &start.position;
        // A warning: the client misses what retention removed, or its id came from a log
        // that is gone; either can mean lost data the operator should know about.
        tracing::warn!(
            stream = label,
            topic = %position.topic,
            partition = position.partition,
            reason = reset.reason(),
            ?reset,
            start = position.next_offset,
            "the requested offset is outside the partition's log; starting at the log start"
        );
        metrics::counter!(
            "kafka_sse_offset_resets_total",
            "stream" => label.to_owned(),
            "to" => reset.label(),
            "reason" => reset.reason()
        )
        .increment(1);
    }
}

/// Runs `work` on tokio's blocking pool: librdkafka look-ups and consumer creation block.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| Error::Internal(join.into()))?
}

/// Shows an error with its sources, for server-side logs only.
struct DisplayChain<'a>(&'a Error);

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for KafkaSse {
    /// Shows the brokers and options, never the rest of the client configuration, which may
    /// hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSse")
            .field(
                "bootstrap.servers",
                &self.inner.consumer_config.get("bootstrap.servers"),
            )
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}
