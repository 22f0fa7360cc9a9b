//! Whether Kafka answers, so requests fail fast with 503 while it does not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often a request may try Kafka again while it is known to be down.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// The look-up timeout of such a try.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Kafka's availability as the look-up client and the stream consumers last saw it.
///
/// Once a look-up failed for want of a broker, or a consumer reported the brokers gone,
/// requests fail at once instead of each waiting out the look-up timeout; one request per
/// [`PROBE_INTERVAL`] tries again with a short timeout, and any success clears the state.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// A lock-free copy of `state.down_since.is_some()`, for the per-message check.
    down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    down_since: Option<Instant>,
    last_probe: Option<Instant>,
}

/// What a look-up may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Go ahead with this timeout.
    Try(Duration),
    /// Kafka is down and was probed moments ago: fail now.
    FailFast,
}

impl Health {
    pub(crate) fn admit(&self, timeout: Duration) -> Admission {
        let mut state = self.state.lock().expect("health lock");
        if state.down_since.is_none() {
            return Admission::Try(timeout);
        }
        let now = Instant::now();
        match state.last_probe {
            Some(probe) if now < probe + PROBE_INTERVAL => Admission::FailFast,
            _ => {
                state.last_probe = Some(now);
                Admission::Try(timeout.min(PROBE_TIMEOUT))
            }
        }
    }

    pub(crate) fn mark_down(&self) {
        let mut state = self.state.lock().expect("health lock");
        self.down.store(true, Ordering::Relaxed);
        if state.down_since.is_none() {
            tracing::warn!("kafka is unavailable; failing requests fast until it answers");
            metrics::gauge!("kafka_sse_kafka_up").set(0.0);
            state.down_since = Some(Instant::now());
            state.last_probe = Some(Instant::now());
        }
    }

    /// Records that Kafka answered; cheap enough to call for every message received.
    pub(crate) fn mark_up(&self) {
        if !self.down.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.state.lock().expect("health lock");
        self.down.store(false, Ordering::Relaxed);
        if let Some(since) = state.down_since.take() {
            tracing::info!(down_for = ?since.elapsed(), "kafka answers again");
        }
        metrics::gauge!("kafka_sse_kafka_up").set(1.0);
    }

    /// Records a consumer error, marking Kafka down when it says the brokers are gone.
    pub(crate) fn observe(&self, error: &rdkafka::error::KafkaError) {
        if crate::kafka_error::means_brokers_down(error) {
            self.mark_down();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn while_down_one_request_per_interval_probes_with_a_short_timeout() {
        let health = Health::default();
        let timeout = Duration::from_secs(5);
        assert_eq!(health.admit(timeout), Admission::Try(timeout));
        health.mark_down();
        assert_eq!(health.admit(timeout), Admission::FailFast);
        tokio::time::advance(PROBE_INTERVAL).await;
        assert_eq!(health.admit(timeout), Admission::Try(PROBE_TIMEOUT));
        assert_eq!(health.admit(timeout), Admission::FailFast);
        health.mark_up();
        assert_eq!(health.admit(timeout), Admission::Try(timeout));
    }
}
