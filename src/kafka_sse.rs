//! The service object: built once, shared by every request.

use std::fmt;
use std::sync::Arc;

use rdkafka::ClientConfig;

use crate::assignment::{topics_to_describe, Start};
use crate::feed::Feed;
use crate::session::Session;
use crate::settings::Settings;
use crate::sources::Sources;
use crate::{parse_since, Error, EventStream, PartitionPosition, StreamRequest};

/// Streams Kafka topics to HTTP clients as Server-Sent Events.
///
/// Build one per service with [`KafkaSse::builder`]; it is cheap to clone and serves any
/// number of requests. It keeps what can be shared: a client for metadata and offset
/// look-ups, cached partition counts, and the shared live streams: clients that read the same
/// partitions from the live end share one consumer and one encoding of each frame. Each call
/// to [`stream`](Self::stream) resolves the request's start positions and returns the
/// client's [`EventStream`]; [`respond`](Self::respond) does the same from an HTTP request
/// to an HTTP response.
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
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    sources: Arc<Sources>,
    /// Turns true once, on [`KafkaSse::shutdown`]; every stream watches it.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl KafkaSse {
    /// The service for `config` and `settings`, with its look-up client created.
    pub(crate) fn new(config: ClientConfig, settings: Settings) -> Result<Self, Error> {
        Ok(KafkaSse {
            inner: Arc::new(Inner {
                sources: Sources::new(&config, &settings)?,
                settings,
                shutdown: tokio::sync::watch::Sender::new(false),
            }),
        })
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
        let label: Arc<str> = request.label_or_topics().into();
        let opened = self.open(&request, &label).await;
        if let Err(error) = &opened {
            if error.is_client_error() {
                tracing::debug!(stream = %label, %error, "refused a stream request");
            } else {
                tracing::warn!(stream = %label, error = %error.chain(), "could not open a stream");
            }
            metrics::counter!("kafka_sse_requests_refused_total", "stream" => label.to_string(), "kind" => error.kind())
                .increment(1);
        }
        let (positions, feed) = opened?;
        let session = Session::new(
            feed,
            positions,
            &self.inner.settings,
            request.format,
            request.filter,
            label.clone(),
            Some(self.inner.shutdown.subscribe()),
        );
        Ok(EventStream::new(session, request.format, &label))
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
        let live = entries.is_none() && since.is_none();
        let default_start = since.map_or(Start::Latest, Start::Timestamp);
        let topics = topics_to_describe(&request.topics, entries.as_deref())?;
        let sources = &self.inner.sources;
        let requested = sources
            .requested_partitions(topics, request.topics.clone(), entries, default_start)
            .await?;
        Feed::open(sources, requested, live, label).await
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
        self.inner.sources.check().await
    }
}

impl fmt::Debug for KafkaSse {
    /// Shows the brokers and options, never the rest of the client configuration, which may
    /// hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSse")
            .field(
                "bootstrap.servers",
                &self
                    .inner
                    .sources
                    .consumer_config()
                    .get("bootstrap.servers"),
            )
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}
