//! The state machine behind one client's stream: what to send next, and when.
//!
//! A session opens with `:ok` and the start id (SSE), then turns each message from its
//! [`Feed`] into a frame through the [`Encoder`], sends a heartbeat after every idle
//! interval, and ends after a whole frame at the maximum connection duration, at shutdown,
//! or with an error frame when Kafka fails for good.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::deserializer::deserialize_or_skip;
use crate::encoder::Encoder;
use crate::feed::{Feed, Incoming};
use crate::position::Positions;
use crate::settings::Settings;
use crate::shared_event::SharedEvent;
use crate::telemetry::{self, Telemetry};
use crate::topic_info;
use crate::{Deserializer, Error, Filter, Format, Message, PartitionPosition};

/// A stream ends at a random point in the last tenth of the maximum connection duration.
const MAX_DURATION_SPREAD: f64 = 0.1;
/// A stream's `retry:` delay is the configured one, plus up to half of it at random.
const RETRY_SPREAD: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Opening,
    Announcing,
    Streaming,
    Ended,
}

/// One client's stream in the making.
pub(crate) struct Session {
    feed: Feed,
    positions: Positions,
    encoder: Encoder,
    deserializer: Arc<dyn Deserializer>,
    filter: Option<Arc<dyn Filter>>,
    heartbeat: Duration,
    deadline: Option<Instant>,
    /// When the last frame was handed out; a heartbeat is due a `heartbeat` after it.
    last_frame_at: Instant,
    /// Wakes the stream for a heartbeat or the deadline. Set lazily: when it fires early
    /// (frames went out meanwhile) it is moved on, so a busy stream touches no timer per frame.
    timer: Pin<Box<Sleep>>,
    /// Whether the service is shutting down, checked before each frame.
    shutdown: Option<watch::Receiver<bool>>,
    /// Completes when the service shuts down. Kept across frames so that waiting for it
    /// registers once, not once per frame.
    shut_down: Pin<Box<dyn Future<Output = ()> + Send>>,
    state: State,
    /// Whether messages were consumed (filtered out or undeserializable) since the last id
    /// the client received.
    progress_unsent: bool,
    /// A frame to send before anything else: the event that came with a log replacement,
    /// after the id-only frame announcing it.
    pending: Option<Bytes>,
    label: Arc<str>,
    telemetry: Telemetry,
}

impl Session {
    /// A session reading `feed` from `positions`; it ends at once when `shutdown` turns
    /// true.
    pub(crate) fn new(
        feed: Feed,
        positions: Vec<PartitionPosition>,
        settings: &Settings,
        format: Format,
        filter: Option<Arc<dyn Filter>>,
        label: Arc<str>,
        shutdown: Option<watch::Receiver<bool>>,
    ) -> Self {
        let now = Instant::now();
        // Spread at random, so that clients cut or refused together do not all come back
        // together (see the builder's `retry` and `max_connection_duration`).
        let deadline = settings
            .max_connection_duration
            .map(|duration| now + duration.mul_f64(1.0 - MAX_DURATION_SPREAD * fastrand::f64()));
        let topics = topic_info::followed(&positions, feed.follows());
        let retry = settings
            .retry
            .map(|retry| retry.mul_f64(1.0 + RETRY_SPREAD * fastrand::f64()));
        Session {
            feed,
            positions: Positions::new(positions),
            encoder: Encoder::new(format, settings.event_ids.clone(), retry, topics),
            deserializer: settings.deserializer.clone(),
            filter,
            heartbeat: settings.heartbeat,
            deadline,
            last_frame_at: now,
            timer: Box::pin(tokio::time::sleep_until(wake_at(
                now,
                settings.heartbeat,
                deadline,
            ))),
            shut_down: Box::pin(shut_down(shutdown.clone())),
            shutdown,
            state: State::Opening,
            progress_unsent: false,
            pending: None,
            telemetry: Telemetry::new(label.clone()),
            label,
        }
    }

    /// The client's current position in event-id form.
    pub(crate) fn current_id(&self) -> String {
        self.encoder.id(&self.positions)
    }

    /// The next frame, or `None` once the stream has ended.
    pub(crate) async fn next_frame(&mut self) -> Option<Bytes> {
        let frame = loop {
            match self.state {
                State::Opening => {
                    self.state = State::Announcing;
                    if let Some(frame) = self.encoder.opening() {
                        break frame;
                    }
                }
                State::Announcing => {
                    self.state = State::Streaming;
                    if let Some(frame) = self.encoder.position(&self.positions) {
                        break frame;
                    }
                }
                State::Streaming => match self.pending.take() {
                    Some(frame) => break frame,
                    None => break self.next_streaming_frame().await?,
                },
                State::Ended => return None,
            }
        };
        self.last_frame_at = Instant::now();
        self.telemetry.frame_sent(frame.len());
        Some(frame)
    }

    async fn next_streaming_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.state == State::Ended {
                return None;
            }
            if self.shutdown.as_ref().is_some_and(|down| *down.borrow()) {
                return self.end_cleanly();
            }
            // The timer comes before the feed, so a source that is always ready (a backlog
            // the filter drops) cannot starve the heartbeat. The shutdown comes last: it is
            // waited for only when nothing else is ready; a busy stream sees it just above.
            let incoming = tokio::select! {
                biased;
                () = &mut self.timer => None,
                incoming = self.feed.next(&self.positions) => Some(incoming),
                () = &mut self.shut_down => return self.end_cleanly(),
            };
            let frame = match incoming {
                None => self.on_timer(),
                Some(incoming) => self.handle(incoming),
            };
            if frame.is_some() || self.state == State::Ended {
                return frame;
            }
            tokio::task::consume_budget().await;
        }
    }

    /// The heartbeat when the stream has been idle for an interval, or the end at the
    /// deadline; the timer moves on to the next time either is due.
    fn on_timer(&mut self) -> Option<Bytes> {
        let now = Instant::now();
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return self.end_cleanly();
        }
        let idle = now >= self.last_frame_at + self.heartbeat;
        let last_frame_at = if idle { now } else { self.last_frame_at };
        self.timer
            .as_mut()
            .reset(wake_at(last_frame_at, self.heartbeat, self.deadline));
        if !idle {
            return None;
        }
        if self.progress_unsent {
            self.progress_unsent = false;
            if let Some(frame) = self.encoder.position(&self.positions) {
                return Some(frame);
            }
        }
        Some(self.encoder.heartbeat())
    }

    /// The frame for what the feed gave, if any; ends the stream on its end or failure
    /// (after a last frame, when there is one to send).
    fn handle(&mut self, incoming: Incoming) -> Option<Bytes> {
        match incoming {
            Incoming::Message(message) => {
                let replaced = self.replaced_under_own_consumer(&message);
                let data = deserialize_or_skip(&*self.deserializer, &message);
                let frame = self.deliver(&message, data.as_ref(), None);
                if frame.is_some() {
                    self.telemetry.sample_lag(message.timestamp());
                }
                match replaced {
                    Some(announcement) => {
                        self.pending = frame;
                        Some(announcement)
                    }
                    None => frame,
                }
            }
            Incoming::Grew(added) => {
                self.positions.add(&added);
                let topics = topic_info::followed(self.positions.as_slice(), self.feed.follows());
                self.encoder.set_topics(topics);
                self.encoder.position(&self.positions)
            }
            Incoming::Replaced {
                topic,
                partition,
                offset,
            } => {
                self.positions.reset(&topic, partition, offset);
                self.encoder.position(&self.positions)
            }
            Incoming::Shared { event, in_step } => {
                let shared = in_step.then_some(&*event);
                self.deliver(&event.message, event.data.as_ref(), shared)
            }
            Incoming::Failed(error) => Some(self.fail(&error)),
            Incoming::NoConsumer => {
                self.state = State::Ended;
                self.encoder.position(&self.positions)
            }
            Incoming::Ended => self.end_cleanly(),
        }
    }

    /// When a message from the client's own consumer is below the client's position, the
    /// partition's log was replaced (a consumer reads forward, and goes back only when
    /// librdkafka starts over in a new log): the position moves to the new log, the reset
    /// is logged and counted, and the id-only frame announcing it is returned (SSE only; an
    /// NDJSON client sees the new coordinates in the events).
    fn replaced_under_own_consumer(&mut self, message: &Message) -> Option<Bytes> {
        let (topic, partition) = (message.topic(), message.partition());
        let position = self.positions.next_offset(topic, partition);
        if message.offset() >= position || position == i64::MAX {
            return None;
        }
        telemetry::log_replaced(&self.label, topic, partition, position, message.offset());
        self.positions.reset(topic, partition, message.offset());
        self.encoder.position(&self.positions)
    }

    /// The frame for one message, or `None` when it is skipped: a duplicate, data the
    /// deserializer rejected, or an event the filter drops.
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
        Some(self.encoder.event(&self.positions, data, shared))
    }

    fn fail(&mut self, error: &Error) -> Bytes {
        self.state = State::Ended;
        self.telemetry.error(error);
        self.encoder.error(&self.positions, error)
    }

    /// Ends after a whole frame; an SSE client first gets the id of anything it skipped.
    fn end_cleanly(&mut self) -> Option<Bytes> {
        self.state = State::Ended;
        if !self.progress_unsent {
            return None;
        }
        self.encoder.position(&self.positions)
    }
}

/// When a stream whose last frame went out at `last_frame_at` next needs waking.
fn wake_at(last_frame_at: Instant, heartbeat: Duration, deadline: Option<Instant>) -> Instant {
    let idle_at = last_frame_at + heartbeat;
    deadline.map_or(idle_at, |deadline| deadline.min(idle_at))
}

/// Completes once `shutdown` turns true; never without one.
async fn shut_down(shutdown: Option<watch::Receiver<bool>>) {
    match shutdown {
        Some(mut shutdown) => {
            if shutdown.wait_for(|&down| down).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
