//! The stream of frames sent to one client, and the state machine that produces it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use tokio::time::Instant;
use tracing::Instrument;

use crate::builder::Settings;
use crate::consumer::MessageSource;
use crate::position::Positions;
use crate::{frame, Deserializer, Error, EventIdCodec, Filter, Format, Message, PartitionPosition};

/// The frames of one client's stream: a [`Stream`] of [`Bytes`], one complete frame per
/// item, ready to be written to the response body as they come.
///
/// Returned by [`KafkaSse::stream`](crate::KafkaSse::stream). In SSE format it opens with a
/// `:ok` comment and an id-only frame holding the resolved start positions, so a client that
/// reconnects before any event still resumes exactly; then come `event: message` frames, a
/// heartbeat comment after every idle interval, and, if Kafka fails for good, one
/// `event: error` frame carrying the current id before the stream ends.
///
/// The stream reads Kafka only as fast as it is polled, and dropping it releases its Kafka
/// consumer. It also implements [`http_body::Body`], so it can be a response body as it is.
#[must_use = "streams do nothing unless polled"]
pub struct EventStream {
    frames: BoxStream<'static, Bytes>,
    format: Format,
    start_id: String,
}

impl EventStream {
    pub(crate) fn new(
        source: MessageSource,
        positions: Vec<PartitionPosition>,
        settings: &Settings,
        format: Format,
        filter: Option<Arc<dyn Filter>>,
        label: Arc<str>,
    ) -> Self {
        let positions = Positions::new(positions);
        let start_id = settings.event_ids.encode(positions.as_slice());
        let span = tracing::info_span!("kafka_sse.stream", stream = %label, ?format);
        let session = Session {
            source,
            positions,
            event_ids: settings.event_ids.clone(),
            deserializer: settings.deserializer.clone(),
            filter,
            format,
            heartbeat: settings.heartbeat,
            retry: settings.retry,
            deadline: settings
                .max_connection_duration
                .map(|duration| Instant::now() + duration),
            state: State::Opening,
            progress_unsent: false,
            telemetry: Telemetry::new(label),
        };
        let frames = stream::unfold(session, move |mut session| {
            async move {
                let frame = session.next_frame().await?;
                session.telemetry.frame_sent(frame.len());
                Some((frame, session))
            }
            .instrument(span.clone())
        })
        .boxed();
        EventStream {
            frames,
            format,
            start_id,
        }
    }

    /// The output format of this stream.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The resolved start positions in event-id form: what to put in a response header so
    /// the client learns where its stream really starts (see
    /// [`START_ID_HEADER`](crate::START_ID_HEADER)).
    pub fn start_id(&self) -> &str {
        &self.start_id
    }
}

impl Stream for EventStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.frames.poll_next_unpin(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("format", &self.format)
            .field("start_id", &self.start_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Opening,
    Announcing,
    Streaming,
    Ended,
}

struct Session {
    source: MessageSource,
    positions: Positions,
    event_ids: Arc<dyn EventIdCodec>,
    deserializer: Arc<dyn Deserializer>,
    filter: Option<Arc<dyn Filter>>,
    format: Format,
    heartbeat: Duration,
    retry: Option<Duration>,
    deadline: Option<Instant>,
    state: State,
    /// Whether messages were consumed (filtered out or undeserializable) since the last id
    /// the client received.
    progress_unsent: bool,
    telemetry: Telemetry,
}

impl Session {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            match self.state {
                State::Opening => {
                    self.state = State::Announcing;
                    if self.format == Format::Sse {
                        return Some(frame::open(self.retry));
                    }
                }
                State::Announcing => {
                    self.state = State::Streaming;
                    if self.format == Format::Sse {
                        return Some(frame::id_only(&self.current_id()));
                    }
                }
                State::Streaming => return self.next_streaming_frame().await,
                State::Ended => return None,
            }
        }
    }

    async fn next_streaming_frame(&mut self) -> Option<Bytes> {
        let idle_at = Instant::now() + self.heartbeat;
        loop {
            let wake_at = self
                .deadline
                .map_or(idle_at, |deadline| deadline.min(idle_at));
            // A source that is always ready (a backlog the filter drops) must not starve
            // the heartbeat, so the timer is checked before each message too.
            let received = if Instant::now() >= wake_at {
                None
            } else {
                tokio::select! {
                    biased;
                    received = self.source.next() => Some(received),
                    () = tokio::time::sleep_until(wake_at) => None,
                }
            };
            match received {
                None if self
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline) =>
                {
                    return self.end_cleanly();
                }
                None => return Some(self.heartbeat_frame()),
                Some(None) => return self.end_cleanly(),
                Some(Some(Err(error))) => {
                    self.state = State::Ended;
                    self.telemetry.error(&error);
                    return Some(self.error_frame(&error));
                }
                Some(Some(Ok(message))) => {
                    if let Some(frame) = self.event_frame(&message) {
                        return Some(frame);
                    }
                    tokio::task::consume_budget().await;
                }
            }
        }
    }

    /// The frame for one message, or `None` when the message is skipped.
    fn event_frame(&mut self, message: &Message) -> Option<Bytes> {
        let advanced = self.positions.advance(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp(),
        );
        if !advanced {
            return None;
        }
        let data = match self.deserializer.deserialize(message) {
            Ok(data) => data,
            Err(error) => {
                tracing::warn!(
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    %error,
                    "skipping a message that cannot be deserialized"
                );
                self.telemetry.skipped();
                self.progress_unsent = true;
                return None;
            }
        };
        if let Some(filter) = &self.filter {
            if !filter.matches(message, &data) {
                self.progress_unsent = true;
                return None;
            }
        }
        self.progress_unsent = false;
        self.telemetry.event_sent(message.timestamp());
        Some(match self.format {
            Format::Sse => frame::event("message", &self.current_id(), &data),
            Format::Ndjson | Format::Json => frame::ndjson_line(&data),
        })
    }

    fn heartbeat_frame(&mut self) -> Bytes {
        match self.format {
            Format::Sse if self.progress_unsent => {
                self.progress_unsent = false;
                frame::id_only(&self.current_id())
            }
            Format::Sse => frame::comment(""),
            Format::Ndjson | Format::Json => Bytes::from_static(b"\n"),
        }
    }

    /// Ends after a whole frame; an SSE client first gets the id of anything it skipped.
    fn end_cleanly(&mut self) -> Option<Bytes> {
        self.state = State::Ended;
        (self.format == Format::Sse && self.progress_unsent)
            .then(|| frame::id_only(&self.current_id()))
    }

    fn error_frame(&self, error: &Error) -> Bytes {
        let problem = error.problem();
        let id = self.current_id();
        match self.format {
            Format::Sse => {
                let data = serde_json::json!({
                    "type": problem.type_uri,
                    "title": problem.title,
                    "detail": problem.detail,
                });
                frame::event("error", &id, data.to_string().as_bytes())
            }
            Format::Ndjson | Format::Json => {
                let line = serde_json::json!({
                    "error": {
                        "type": problem.type_uri,
                        "title": problem.title,
                        "detail": problem.detail,
                    },
                    "id": id,
                });
                frame::ndjson_line(line.to_string().as_bytes())
            }
        }
    }

    fn current_id(&self) -> String {
        self.event_ids.encode(self.positions.as_slice())
    }
}

/// Metric handles for one stream, registered once so sending a frame costs no look-up.
struct Telemetry {
    label: Arc<str>,
    events: metrics::Counter,
    bytes: metrics::Counter,
    skipped: metrics::Counter,
    lag: metrics::Histogram,
    events_sent: u64,
}

impl Telemetry {
    fn new(label: Arc<str>) -> Self {
        let stream = label.to_string();
        metrics::gauge!("kafka_sse_connected_clients", "stream" => stream.clone()).increment(1);
        tracing::debug!("stream opened");
        Telemetry {
            events: metrics::counter!("kafka_sse_events_sent_total", "stream" => stream.clone()),
            bytes: metrics::counter!("kafka_sse_bytes_sent_total", "stream" => stream.clone()),
            skipped: metrics::counter!("kafka_sse_messages_skipped_total", "stream" => stream.clone()),
            lag: metrics::histogram!("kafka_sse_event_lag_seconds", "stream" => stream),
            label,
            events_sent: 0,
        }
    }

    fn frame_sent(&self, len: usize) {
        self.bytes.increment(len as u64);
    }

    fn event_sent(&mut self, timestamp: Option<i64>) {
        self.events_sent += 1;
        self.events.increment(1);
        if let Some(timestamp) = timestamp {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            self.lag.record((now - timestamp).max(0) as f64 / 1000.0);
        }
    }

    fn skipped(&self) {
        self.skipped.increment(1);
    }

    fn error(&self, error: &Error) {
        metrics::counter!(
            "kafka_sse_errors_total",
            "stream" => self.label.to_string(),
            "kind" => error.kind()
        )
        .increment(1);
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        metrics::gauge!("kafka_sse_connected_clients", "stream" => self.label.to_string())
            .decrement(1);
        tracing::debug!(stream = %self.label, events = self.events_sent, "stream closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KafkaSseBuilder;
    use crate::{filter_fn, TimestampIds};
    use futures::channel::mpsc;
    use rdkafka::ClientConfig;

    type Feed = mpsc::UnboundedSender<Result<Message, Error>>;

    fn settings(heartbeat: Duration) -> Settings {
        let mut settings = KafkaSseBuilder::new(ClientConfig::new()).settings();
        settings.heartbeat = heartbeat;
        settings
    }

    fn open(
        settings: &Settings,
        format: Format,
        filter: Option<Arc<dyn Filter>>,
    ) -> (Feed, EventStream) {
        let (feed, source) = mpsc::unbounded();
        let positions = vec![
            PartitionPosition::new("t", 1, 10),
            PartitionPosition::new("t", 0, 5),
        ];
        let stream = EventStream::new(
            source.boxed(),
            positions,
            settings,
            format,
            filter,
            "t".into(),
        );
        (feed, stream)
    }

    fn text(frame: Option<Bytes>) -> String {
        String::from_utf8(frame.expect("a frame").to_vec()).unwrap()
    }

    const START: &str =
        r#"[{"topic":"t","partition":0,"offset":5},{"topic":"t","partition":1,"offset":10}]"#;

    #[tokio::test(start_paused = true)]
    async fn opens_with_ok_then_the_concrete_start_id() {
        let (_feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        assert_eq!(stream.start_id(), START);
        assert_eq!(text(stream.next().await), ":ok\n\n");
        assert_eq!(text(stream.next().await), format!("id: {START}\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn events_carry_every_partition_with_the_next_offset() {
        let (feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        stream.next().await;
        stream.next().await;
        feed.unbounded_send(Ok(Message::new("t", 1, 10, r#"{"n":1}"#)))
            .unwrap();
        assert_eq!(
            text(stream.next().await),
            "event: message\nid: [{\"topic\":\"t\",\"partition\":0,\"offset\":5},{\"topic\":\"t\",\"partition\":1,\"offset\":11}]\ndata: {\"n\":1}\n\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_after_the_idle_interval() {
        let (_feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        stream.next().await;
        stream.next().await;
        let started = Instant::now();
        assert_eq!(text(stream.next().await), ":\n\n");
        assert_eq!(started.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn filtered_progress_is_sent_as_an_id_only_frame_once_per_interval() {
        let reject_all: Arc<dyn Filter> = Arc::new(filter_fn(|_: &Message, _: &[u8]| false));
        let (feed, mut stream) = open(
            &settings(Duration::from_secs(10)),
            Format::Sse,
            Some(reject_all),
        );
        stream.next().await;
        stream.next().await;
        for offset in 5..8 {
            feed.unbounded_send(Ok(Message::new("t", 0, offset, "{}")))
                .unwrap();
        }
        let frame = text(stream.next().await);
        assert!(
            frame.starts_with("id: [{\"topic\":\"t\",\"partition\":0,\"offset\":8}"),
            "{frame}"
        );
        assert_eq!(text(stream.next().await), ":\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn undeserializable_messages_are_skipped_and_later_ones_arrive() {
        let (feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        stream.next().await;
        stream.next().await;
        feed.unbounded_send(Ok(Message::new("t", 0, 5, "{not json")))
            .unwrap();
        feed.unbounded_send(Ok(Message::new("t", 0, 6, "{}")))
            .unwrap();
        let frame = text(stream.next().await);
        assert!(frame.contains("\"partition\":0,\"offset\":7"), "{frame}");
        assert!(frame.ends_with("data: {}\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_sends_one_error_frame_with_the_id_and_ends() {
        let (feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        stream.next().await;
        stream.next().await;
        feed.unbounded_send(Err(Error::Consumer(rdkafka::error::KafkaError::Canceled)))
            .unwrap();
        let frame = text(stream.next().await);
        assert!(
            frame.starts_with(&format!("event: error\nid: {START}\ndata: {{")),
            "{frame}"
        );
        assert!(frame.contains("consumer-failed") && !frame.contains("Canceled"));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn ends_cleanly_at_the_maximum_connection_duration() {
        let mut settings = settings(Duration::from_secs(15));
        settings.max_connection_duration = Some(Duration::from_secs(20));
        let (_feed, mut stream) = open(&settings, Format::Sse, None);
        stream.next().await;
        stream.next().await;
        assert_eq!(text(stream.next().await), ":\n\n");
        let started = Instant::now();
        assert!(stream.next().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn ndjson_has_no_comments_and_one_line_per_event() {
        let (feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Ndjson, None);
        feed.unbounded_send(Ok(Message::new("t", 0, 5, "{\n\"a\":1}")))
            .unwrap();
        assert_eq!(text(stream.next().await), "{ \"a\":1}\n");
        assert_eq!(text(stream.next().await), "\n");
    }

    #[tokio::test(start_paused = true)]
    async fn timestamp_ids_use_the_last_delivered_timestamp() {
        let mut settings = settings(Duration::from_secs(15));
        settings.event_ids = Arc::new(TimestampIds);
        let (feed, mut stream) = open(&settings, Format::Sse, None);
        stream.next().await;
        stream.next().await;
        feed.unbounded_send(Ok(Message::new("t", 0, 5, "{}").with_timestamp(1234)))
            .unwrap();
        let frame = text(stream.next().await);
        assert!(
            frame.contains(r#"{"topic":"t","partition":0,"timestamp":1234}"#),
            "{frame}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_is_sent_in_the_opening_frame() {
        let mut settings = settings(Duration::from_secs(15));
        settings.retry = Some(Duration::from_millis(2500));
        let (_feed, mut stream) = open(&settings, Format::Sse, None);
        assert_eq!(text(stream.next().await), ":ok\nretry: 2500\n\n");
    }
}
