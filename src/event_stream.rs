//! The stream of frames sent to one client, and the state machine that produces it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use futures::FutureExt;
use tokio::time::{Instant, Sleep};

use crate::builder::Settings;
use crate::consumer::{self, MessageSource};
use crate::deserializer::deserialize_or_skip;
use crate::fanout::{HubItem, Join, SharedEvent, Subscription};
use crate::kafka_sse::{blocking, Service};
use crate::position::Positions;
use crate::{frame, Deserializer, Error, EventIdCodec, Filter, Format, Message, PartitionPosition};

/// How often a client on its own consumer looks for a shared live stream to join, at first;
/// the wait doubles each time the client falls behind a shared stream, up to a minute.
const JOIN_CHECK: Duration = Duration::from_secs(1);
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(60);

/// A client on its own consumer records the lag of one event in this many.
const LAG_SAMPLE_EVERY: u64 = 64;

/// Where a stream's messages come from.
pub(crate) enum Feed {
    /// The client's own consumer.
    Own(MessageSource),
    /// A shared live stream.
    Shared(Subscription),
    /// Nothing, for the instant of a move between the two.
    Moving,
}

impl Feed {
    async fn next(&mut self) -> Incoming {
        match self {
            Feed::Own(source) => match source.next().await {
                Some(Ok(message)) => Incoming::Own(message),
                Some(Err(error)) => Incoming::Failed(Arc::new(error)),
                None => Incoming::Ended,
            },
            Feed::Shared(subscription) => match subscription.receiver.recv().await {
                Ok(HubItem::Event(event)) => Incoming::Shared(event),
                Ok(HubItem::Failed(error)) => Incoming::Failed(error),
                Err(_lagged_or_closed) => Incoming::Lagged,
            },
            Feed::Moving => Incoming::Ended,
        }
    }
}

enum Incoming {
    Own(Message),
    Shared(Arc<SharedEvent>),
    Failed(Arc<Error>),
    /// The shared stream moved on without this client (or ended): read on its own.
    Lagged,
    Ended,
}

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
    pub(crate) fn new(
        feed: Feed,
        positions: Vec<PartitionPosition>,
        settings: &Settings,
        format: Format,
        filter: Option<Arc<dyn Filter>>,
        label: Arc<str>,
        service: Option<Arc<Service>>,
    ) -> Self {
        let positions = Positions::new(positions);
        let start_id = settings.event_ids.encode(positions.as_slice());
        // Debug level: entered on every poll, the span costs nothing unless asked for.
        let span = tracing::debug_span!("kafka_sse.stream", stream = %label, ?format);
        let shutdown = Box::pin(shut_down(
            service.as_ref().map(|service| service.shutdown.subscribe()),
        ));
        let now = Instant::now();
        let deadline = settings
            .max_connection_duration
            .map(|duration| now + duration);
        let session = Session {
            feed,
            shutdown,
            service,
            next_join_check: Instant::now() + JOIN_CHECK,
            join_backoff: JOIN_CHECK,
            positions,
            event_ids: settings.event_ids.clone(),
            deserializer: settings.deserializer.clone(),
            filter,
            format,
            heartbeat: settings.heartbeat,
            retry: settings.retry,
            deadline,
            last_frame_at: now,
            timer: Box::pin(tokio::time::sleep_until(wake_at(
                now,
                settings.heartbeat,
                deadline,
            ))),
            state: State::Opening,
            progress_unsent: false,
            telemetry: Telemetry::new(label),
        };
        let frames = stream::unfold(session, |mut session| async move {
            let frame = session.next_frame().await?;
            session.last_frame_at = Instant::now();
            session.telemetry.frame_sent(frame.len());
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Opening,
    Announcing,
    Streaming,
    Ended,
}

struct Session {
    feed: Feed,
    /// Completes when the service shuts down. Kept across frames so that waiting for it
    /// registers once, not once per frame.
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The service, to join shared streams and reopen a consumer; `None` in unit tests.
    service: Option<Arc<Service>>,
    next_join_check: Instant,
    join_backoff: Duration,
    positions: Positions,
    event_ids: Arc<dyn EventIdCodec>,
    deserializer: Arc<dyn Deserializer>,
    filter: Option<Arc<dyn Filter>>,
    format: Format,
    heartbeat: Duration,
    retry: Option<Duration>,
    deadline: Option<Instant>,
    /// When the last frame was handed out; a heartbeat is due a `heartbeat` after it.
    last_frame_at: Instant,
    /// Wakes the stream for a heartbeat or the deadline. Set lazily: when it fires early
    /// (frames went out meanwhile) it is moved on, so a busy stream touches no timer per frame.
    timer: Pin<Box<Sleep>>,
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
        loop {
            if self.state == State::Ended {
                return None;
            }
            if self.shutting_down() {
                return self.end_cleanly();
            }
            if let Some(ready) = self.join_shared_stream_when_idle().await {
                if let Some(frame) = self.handle(ready).await {
                    return Some(frame);
                }
                continue;
            }
            // The timer comes before the feed, so a source that is always ready (a backlog
            // the filter drops) cannot starve the heartbeat. The shutdown comes last: it is
            // waited for only when nothing else is ready; a busy stream sees it just above.
            let incoming = tokio::select! {
                biased;
                () = &mut self.timer => None,
                incoming = self.feed.next() => Some(incoming),
                () = &mut self.shutdown => return self.end_cleanly(),
            };
            match incoming {
                None => {
                    let now = Instant::now();
                    if self.deadline.is_some_and(|deadline| now >= deadline) {
                        return self.end_cleanly();
                    }
                    let idle = now >= self.last_frame_at + self.heartbeat;
                    let last_frame_at = if idle { now } else { self.last_frame_at };
                    self.timer.as_mut().reset(wake_at(
                        last_frame_at,
                        self.heartbeat,
                        self.deadline,
                    ));
                    if idle {
                        return Some(self.heartbeat_frame());
                    }
                }
                Some(incoming) => {
                    if let Some(frame) = self.handle(incoming).await {
                        return Some(frame);
                    }
                }
            }
        }
    }

    fn shutting_down(&self) -> bool {
        self.service
            .as_ref()
            .is_some_and(|service| *service.shutdown.borrow())
    }

    /// The frame for what the feed gave, if any; ends the stream on its end or failure
    /// (after a last frame, when there is one to send).
    async fn handle(&mut self, incoming: Incoming) -> Option<Bytes> {
        let frame = match incoming {
            Incoming::Ended => return self.end_cleanly(),
            Incoming::Failed(error) => return Some(self.fail(&error)),
            Incoming::Lagged => self.move_to_own_consumer().await,
            Incoming::Own(message) => {
                let data = deserialize_or_skip(&*self.deserializer, &message);
                let frame = self.deliver(&message, data.as_ref(), None);
                if frame.is_some() {
                    self.telemetry.sample_lag(message.timestamp());
                }
                frame
            }
            Incoming::Shared(event) => self.deliver_shared(&event),
        };
        if frame.is_none() {
            tokio::task::consume_budget().await;
        }
        frame
    }

    fn deliver_shared(&mut self, event: &SharedEvent) -> Option<Bytes> {
        let message = &event.message;
        let in_step = match &mut self.feed {
            Feed::Shared(subscription) if !subscription.ahead.is_empty() => {
                if message.offset()
                    >= self
                        .positions
                        .next_offset(message.topic(), message.partition())
                {
                    subscription
                        .ahead
                        .remove(&(message.topic_arc().clone(), message.partition()));
                }
                subscription.ahead.is_empty()
            }
            _ => true,
        };
        self.deliver(message, event.data.as_ref(), in_step.then_some(event))
    }

    /// The frame for one message, or `None` when it is skipped: a duplicate, data the
    /// deserializer rejected, or an event the filter drops. `shared` is the hub's event when
    /// this client's positions are the hub's, so its frame can be sent as it is.
    fn deliver(
        &mut self,
        message: &Message,
        data: Option<&Bytes>,
        shared: Option<&SharedEvent>,
    ) -> Option<Bytes> {
        let advanced = self.positions.advance(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp(),
        );
        if !advanced {
            return None;
        }
        let Some(data) = data else {
            self.telemetry.skipped();
            self.progress_unsent = true;
            return None;
        };
        if let Some(filter) = &self.filter {
            if !filter.matches(message, data) {
                self.progress_unsent = true;
                return None;
            }
        }
        self.progress_unsent = false;
        self.telemetry.event_sent();
        let shared_frame = shared.and_then(|event| match self.format {
            Format::Sse => event.sse_frame.clone(),
            Format::Ndjson | Format::Json => event.ndjson_line(),
        });
        Some(shared_frame.unwrap_or_else(|| match self.format {
            Format::Sse => frame::event("message", &self.current_id(), data),
            Format::Ndjson | Format::Json => frame::ndjson_line(data),
        }))
    }

    /// Joins the shared live stream of this assignment once this client has caught up with
    /// it, or starts one with this client's consumer when it is at the log end and there is
    /// none yet.
    ///
    /// Only a client whose own consumer has nothing ready tries: it has delivered all its
    /// consumer fetched, the moment it is most likely level with the shared stream. What the
    /// consumer had ready instead is returned, to be handled as usual.
    async fn join_shared_stream_when_idle(&mut self) -> Option<Incoming> {
        let Feed::Own(_) = self.feed else {
            return None;
        };
        let service = self.service.clone()?;
        if !service.settings.fan_out || Instant::now() < self.next_join_check {
            return None;
        }
        if let Some(ready) = self.feed.next().now_or_never() {
            return Some(ready);
        }
        self.next_join_check = Instant::now() + self.join_backoff;
        match service.fan_out.join_at(self.positions.as_slice()) {
            Join::Joined(subscription) => {
                self.feed = Feed::Shared(subscription);
                self.telemetry.moved("joined");
            }
            Join::Behind => {}
            Join::NoHub => {
                let lookup = service.lookup.clone();
                let positions = self.positions.as_slice().to_vec();
                let at_end = blocking(move || lookup.at_log_end(&positions));
                if !matches!(at_end.await, Ok(true)) {
                    return None;
                }
                let Feed::Own(source) = std::mem::replace(&mut self.feed, Feed::Moving) else {
                    return None;
                };
                let started =
                    service
                        .fan_out
                        .start(source, self.positions.as_slice(), &self.telemetry.label);
                self.feed = match started {
                    Ok(subscription) => {
                        self.telemetry.moved("started");
                        Feed::Shared(subscription)
                    }
                    Err(source) => Feed::Own(source),
                };
            }
        }
        None
    }

    /// Leaves a shared stream this client fell behind for a consumer of its own at its own
    /// position, so it loses nothing; an error frame if Kafka cannot be reached. When the
    /// service runs all the consumers it may, the client is closed with an id-only frame
    /// holding its position instead, and resumes from there.
    async fn move_to_own_consumer(&mut self) -> Option<Bytes> {
        let Some(service) = self.service.clone() else {
            self.state = State::Ended;
            return None;
        };
        self.feed = Feed::Moving;
        let Ok(permit) = service.consumer_permit() else {
            // No consumer to spare: close the client with its exact position instead.
            self.telemetry.moved("closed");
            self.state = State::Ended;
            return (self.format == Format::Sse).then(|| frame::id_only(&self.current_id()));
        };
        let positions = self.positions.as_slice().to_vec();
        let opened = blocking(move || {
            let health = service.lookup.health().clone();
            consumer::open(&service.consumer_config, &positions, health, permit)
        })
        .await;
        match opened {
            Ok(source) => {
                self.feed = Feed::Own(source);
                self.join_backoff = (self.join_backoff * 2).min(MAX_JOIN_BACKOFF);
                self.next_join_check = Instant::now() + self.join_backoff;
                self.telemetry.moved("lagged");
                None
            }
            Err(error) => Some(self.fail(&error)),
        }
    }

    fn fail(&mut self, error: &Error) -> Bytes {
        self.state = State::Ended;
        self.telemetry.error(error);
        self.error_frame(error)
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

/// When a stream whose last frame went out at `last_frame_at` next needs waking.
fn wake_at(last_frame_at: Instant, heartbeat: Duration, deadline: Option<Instant>) -> Instant {
    let idle_at = last_frame_at + heartbeat;
    deadline.map_or(idle_at, |deadline| deadline.min(idle_at))
}

/// Records in `lag` how long ago a message with this Kafka timestamp was produced.
pub(crate) fn record_lag(lag: &metrics::Histogram, timestamp: Option<i64>) {
    if let Some(timestamp) = timestamp {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        lag.record((now - timestamp).max(0) as f64 / 1000.0);
    }
}

/// Completes once the service shuts down; never without a service.
async fn shut_down(shutdown: Option<tokio::sync::watch::Receiver<bool>>) {
    match shutdown {
        Some(mut shutdown) => {
            if shutdown.wait_for(|&down| down).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
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

    fn event_sent(&mut self) {
        self.events_sent += 1;
        self.events.increment(1);
    }

    /// Records the lag of the event just sent, for one event in [`LAG_SAMPLE_EVERY`]: a
    /// client on its own consumer is usually reading history, where a per-event clock read
    /// and histogram record would be a noticeable part of the cost. (A shared stream
    /// records every event, once for all its clients.)
    fn sample_lag(&self, timestamp: Option<i64>) {
        if self.events_sent % LAG_SAMPLE_EVERY == 1 {
            record_lag(&self.lag, timestamp);
        }
    }

    fn skipped(&self) {
        self.skipped.increment(1);
    }

    fn moved(&self, how: &'static str) {
        tracing::debug!(stream = %self.label, how, "client moved between its own consumer and a shared stream");
        metrics::counter!("kafka_sse_fanout_moves_total", "stream" => self.label.to_string(), "how" => how)
            .increment(1);
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

    type Sender = mpsc::UnboundedSender<Result<Message, Error>>;

    fn settings(heartbeat: Duration) -> Settings {
        let mut settings = KafkaSseBuilder::new(ClientConfig::new()).settings();
        settings.heartbeat = heartbeat;
        settings
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
        let stream = EventStream::new(
            Feed::Own(source.boxed()),
            positions,
            settings,
            format,
            filter,
            "t".into(),
            None,
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
