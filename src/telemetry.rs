//! The metrics and log lines of one client's stream, and the event lag shared with the
//! fan-out hubs.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// A client on its own consumer records the lag of one event in this many.
const LAG_SAMPLE_EVERY: u64 = 64;

/// Metric handles for one stream, registered once so sending a frame costs no look-up. The
/// `kafka_sse_connected_clients` gauge counts it while it lives.
pub(crate) struct Telemetry {
    label: Arc<str>,
    events: metrics::Counter,
    bytes: metrics::Counter,
    skipped: metrics::Counter,
    lag: metrics::Histogram,
    events_sent: u64,
}

impl Telemetry {
    pub(crate) fn new(label: Arc<str>) -> Self {
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

    pub(crate) fn frame_sent(&self, len: usize) {
        self.bytes.increment(len as u64);
    }

    pub(crate) fn event_sent(&mut self) {
        self.events_sent += 1;
        self.events.increment(1);
    }

    /// Records the lag of the event just sent, for one event in [`LAG_SAMPLE_EVERY`]: a
    /// client on its own consumer is usually reading history, where a per-event clock read
    /// and histogram record would be a noticeable part of the cost. (A shared stream
    /// records every event, once for all its clients.)
    pub(crate) fn sample_lag(&self, timestamp: Option<i64>) {
        if self.events_sent % LAG_SAMPLE_EVERY == 1 {
            record_lag(&self.lag, timestamp);
        }
    }

    pub(crate) fn skipped(&self) {
        self.skipped.increment(1);
    }

    pub(crate) fn error(&self, error: &Error) {
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

/// Records that a client of stream `label` moved between its own consumer and a shared
/// stream (`how`: joined, started, lagged, closed).
pub(crate) fn moved(label: &str, how: &'static str) {
    tracing::debug!(
        stream = label,
        how,
        "client moved between its own consumer and a shared stream"
    );
    metrics::counter!("kafka_sse_fanout_moves_total", "stream" => label.to_owned(), "how" => how)
        .increment(1);
}

/// Logs and counts that a running stream (or a shared stream, once for all its clients)
/// found a partition's log replaced: its reader went back to `offset`, below `position`,
/// which only happens when the log the position was in is gone (the topic was deleted and
/// created again, or the log truncated).
pub(crate) fn log_replaced(label: &str, topic: &str, partition: i32, position: i64, offset: i64) {
    tracing::warn!(
        stream = label,
        topic,
        partition,
        position,
        start = offset,
        reason = "log_replaced",
        "the partition's log was replaced under a running stream; delivering the new log from its start"
    );
    metrics::counter!(
        "kafka_sse_offset_resets_total",
        "stream" => label.to_owned(),
        "to" => "log_start",
        "reason" => "log_replaced"
    )
    .increment(1);
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
