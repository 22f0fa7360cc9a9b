//! What the restart storm watches on the server, every 100 ms: the `kafka_sse_consumers`
//! gauge of its `/metrics` and its memory and threads from `/proc`, per phase of the run.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::event::now_ms;
use crate::probe::Probe;

/// Before the kill.
pub const BEFORE_KILL: u8 = 0;
/// Between the kill and the restart: nothing to watch.
pub const DOWN: u8 = 1;
/// After the restart.
pub const RESTARTED: u8 = 2;

/// The server process being watched and where the run is.
#[derive(Debug, Default)]
pub struct Server {
    /// 0 when unknown.
    pub pid: AtomicU32,
    pub phase: AtomicU8,
    /// Epoch milliseconds of the restart; 0 before.
    pub restart_ms: AtomicU64,
}

/// Peaks of what the watcher saw, per phase.
#[derive(Debug, Default, Clone, Copy)]
pub struct Peaks {
    pub consumers: Option<f64>,
    pub kafka_clients: u64,
    pub rss_kib: u64,
    pub threads: u64,
}

impl Peaks {
    pub fn to_json(self) -> Value {
        json!({
            "consumers": self.consumers.map(|c| c.round() as u64),
            "kafka_clients": self.kafka_clients,
            "rss_mib": self.rss_kib as f64 / 1024.0,
            "threads": self.threads,
        })
    }
}

/// What the watcher gathered.
#[derive(Debug, Default)]
pub struct Watched {
    /// Before the kill, and after the restart.
    pub before: Peaks,
    pub after: Peaks,
    /// After the restart: (ms since the restart, consumers gauge).
    pub consumers_timeline: Vec<(u64, f64)>,
    pub scrapes: u64,
    pub failed_scrapes: u64,
}

/// Every 100 ms: the server's consumers gauge and its memory, until `stop`.
pub async fn watch_server(
    server: Arc<Server>,
    metrics_url: Option<String>,
    broker_port: Option<u16>,
    watched: Arc<Mutex<Watched>>,
    mut stop: watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let phase = server.phase.load(Ordering::Relaxed);
        if phase == DOWN {
            continue;
        }
        let pid = server.pid.load(Ordering::Relaxed);
        let sample = match pid {
            0 => None,
            pid => {
                Probe { pid, broker_port }
                    .sample_within(Duration::from_secs(1))
                    .await
            }
        };
        let consumers = match (&client, &metrics_url) {
            (Some(client), Some(url)) => match client.get(url).send().await {
                Ok(response) => response
                    .text()
                    .await
                    .ok()
                    .and_then(|t| gauge(&t, "kafka_sse_consumers")),
                Err(_) => None,
            },
            _ => None,
        };
        let mut watched = watched.lock().expect("the watcher's lock");
        if metrics_url.is_some() {
            watched.scrapes += 1;
            watched.failed_scrapes += u64::from(consumers.is_none());
        }
        // A phase may have moved on during the scrape; what was read belongs to the old.
        if server.phase.load(Ordering::Relaxed) != phase {
            continue;
        }
        let peaks = if phase == BEFORE_KILL {
            &mut watched.before
        } else {
            &mut watched.after
        };
        if let Some(sample) = sample.filter(|s| s.rss_kib > 0) {
            peaks.rss_kib = peaks.rss_kib.max(sample.rss_kib);
            peaks.kafka_clients = peaks.kafka_clients.max(sample.kafka_clients);
            peaks.threads = peaks.threads.max(sample.threads);
        }
        if let Some(consumers) = consumers {
            peaks.consumers = Some(peaks.consumers.map_or(consumers, |c| c.max(consumers)));
            if phase == RESTARTED {
                let since = now_ms().saturating_sub(server.restart_ms.load(Ordering::Relaxed));
                watched.consumers_timeline.push((since, consumers));
            }
        }
    }
}

/// The value of an unlabelled Prometheus gauge, or the sum over its label sets.
fn gauge(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(value) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + value);
        }
    }
    found
}

/// `VmHWM` of a process (its peak resident memory), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_with_or_without_labels() {
        let text = "# TYPE kafka_sse_consumers gauge\nkafka_sse_consumers 3\n\
                    kafka_sse_consumers_total 9\n";
        assert_eq!(gauge(text, "kafka_sse_consumers"), Some(3.0));
        let labelled =
            "kafka_sse_consumers{kind=\"own\"} 2\nkafka_sse_consumers{kind=\"hub\"} 1.5\n";
        assert_eq!(gauge(labelled, "kafka_sse_consumers"), Some(3.5));
        assert_eq!(
            gauge("kafka_sse_fanout_clients 4\n", "kafka_sse_consumers"),
            None
        );
    }
}
