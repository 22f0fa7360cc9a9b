//! The stream of frames sent to one client: the crate's public stream type.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};

use crate::session::Session;
use crate::Format;

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
    frames: stream::Fuse<BoxStream<'static, Bytes>>,
    span: tracing::Span,
    format: Format,
    start_id: String,
    held: Vec<Box<dyn std::any::Any + Send>>,
}

impl EventStream {
    /// The stream of `session`'s frames; `label` names it in its span.
    pub(crate) fn new(session: Session, format: Format, label: &str) -> Self {
        let start_id = session.current_id();
        // Debug level: entered on every poll, the span costs nothing unless asked for.
        let span = tracing::debug_span!("kafka_sse.stream", stream = %label, ?format);
        let frames = stream::unfold(session, |mut session| async move {
            let frame = session.next_frame().await?;
            Some((frame, session))
        })
        .boxed()
        .fuse();
        EventStream {
            frames,
            span,
            format,
            start_id,
            held: Vec::new(),
        }
    }

    /// Keeps `value` alive exactly as long as the stream: for per-connection state such as
    /// a connection-limit permit, released when the server drops the response body (the
    /// stream ended or the client went away).
    ///
    /// ```no_run
    /// # async fn run(sse: kafka_sse::KafkaSse, permits: std::sync::Arc<tokio::sync::Semaphore>) -> anyhow::Result<()> {
    /// let permit = permits.try_acquire_owned()?;
    /// let stream = sse
    ///     .stream(kafka_sse::StreamRequest::new(["recentchange"]))
    ///     .await?
    ///     .hold(permit);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hold(mut self, value: impl Send + 'static) -> Self {
        self.held.push(Box::new(value));
        self
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
        let this = &mut *self;
        let _entered = this.span.enter();
        this.frames.poll_next_unpin(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("format", &self.format)
            .field("start_id", &self.start_id)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::channel::mpsc;
    use tokio::time::Instant;

    use super::*;
    use crate::feed::Feed;
    use crate::settings::Settings;
    use crate::{filter_fn, Error, Filter, Message, PartitionPosition, TimestampIds};

    type Sender = mpsc::UnboundedSender<Result<Message, Error>>;

    fn settings(heartbeat: Duration) -> Settings {
        Settings {
            heartbeat,
            ..Settings::default()
        }
    }

    fn open(
        settings: &Settings,
        format: Format,
        filter: Option<Arc<dyn Filter>>,
    ) -> (Sender, EventStream) {
        let (feed, source) = mpsc::unbounded();
        let positions = vec![
            PartitionPosition::new("t", 1, 10),
            PartitionPosition::new("t", 0, 5),
        ];
        let session = Session::new(
            Feed::own(source.boxed().into()),
            positions,
            settings,
            format,
            filter,
            "t".into(),
            None,
        );
        (feed, EventStream::new(session, format, "t"))
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
    async fn ends_cleanly_in_the_last_tenth_of_the_maximum_connection_duration() {
        let mut settings = settings(Duration::from_secs(15));
        settings.max_connection_duration = Some(Duration::from_secs(20));
        let mut ends = Vec::new();
        for _ in 0..8 {
            let (_feed, mut stream) = open(&settings, Format::Sse, None);
            let started = Instant::now();
            stream.next().await;
            stream.next().await;
            assert_eq!(text(stream.next().await), ":\n\n");
            assert!(stream.next().await.is_none());
            ends.push(started.elapsed());
        }
        assert!(
            ends.iter()
                .all(|end| (Duration::from_secs(18)..=Duration::from_secs(20)).contains(end)),
            "{ends:?}"
        );
        assert!(ends.iter().any(|end| *end != ends[0]), "spread: {ends:?}");
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
    async fn retry_is_sent_in_the_opening_frame_spread_over_half_again() {
        let mut settings = settings(Duration::from_secs(15));
        settings.retry = Some(Duration::from_millis(2500));
        let mut delays = Vec::new();
        for _ in 0..8 {
            let (_feed, mut stream) = open(&settings, Format::Sse, None);
            let opening = text(stream.next().await);
            let delay: u64 = opening
                .strip_prefix(":ok\nretry: ")
                .and_then(|rest| rest.strip_suffix("\n\n"))
                .and_then(|millis| millis.parse().ok())
                .unwrap_or_else(|| panic!("{opening:?}"));
            delays.push(delay);
        }
        assert!(
            delays.iter().all(|d| (2500..=3750).contains(d)),
            "{delays:?}"
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "spread: {delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_log_replaced_under_the_consumer_is_announced_and_delivered_from_its_start() {
        let (feed, mut stream) = open(&settings(Duration::from_secs(15)), Format::Sse, None);
        stream.next().await;
        stream.next().await;
        feed.unbounded_send(Ok(Message::new("t", 0, 5, "{}")))
            .unwrap();
        assert!(text(stream.next().await).contains("\"partition\":0,\"offset\":6"));
        // The topic was recreated: librdkafka starts over at the new log's offset 0.
        feed.unbounded_send(Ok(Message::new("t", 0, 0, r#"{"new":0}"#)))
            .unwrap();
        let announced = text(stream.next().await);
        assert!(
            announced.starts_with("id: [{\"topic\":\"t\",\"partition\":0,\"offset\":0}"),
            "{announced}"
        );
        let event = text(stream.next().await);
        assert!(event.contains("\"partition\":0,\"offset\":1"), "{event}");
        assert!(event.ends_with("data: {\"new\":0}\n\n"), "{event}");
    }
}
