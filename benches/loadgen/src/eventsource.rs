//! Clients that behave like a browser's `EventSource`, for the restart storm.
//!
//! Each follows the WHATWG rules: it keeps the last `id:` (id-only frames included) and
//! the reconnection time of the last `retry:`, and after any end of its stream or failed
//! connection it waits that long (3 s until the server sets one, as Chromium does) and
//! connects again with `Last-Event-ID`. An answer other than 200, or a content type other
//! than `text/event-stream`, fails it for good, as it fails a browser's. No back-off is
//! added: the herd comes back exactly as the server spread it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::sleep;

use crate::clients::Sequence;
use crate::event::now_ms;
use crate::http::{open, Event, EventSourceState, HttpStatus, Read, RequestOptions, Target};

/// What every client of a run shares.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub target: Target,
    pub request: RequestOptions,
    pub read_buffer: usize,
    /// Bound on each connection's set-up.
    pub connect_timeout: Duration,
    /// The reconnection time until the server sends `retry:`.
    pub default_retry: Duration,
    /// Partitions of the topic: event `seq` is on partition `seq % partitions`.
    pub partitions: u64,
    /// The producer run whose events count.
    pub run: u64,
}

/// Counters every client updates as it goes.
#[derive(Debug)]
pub struct Progress {
    /// Clients that got a first 200.
    pub connected: AtomicUsize,
    /// Clients that hold an event id.
    pub with_id: AtomicUsize,
    pub gave_up: AtomicUsize,
    pub caught_up: AtomicUsize,
    /// Distinct events of the run received, summed over clients.
    pub distinct: AtomicU64,
    /// Events `0..target` make a client caught up; `u64::MAX` until the restart.
    pub target: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            connected: AtomicUsize::new(0),
            with_id: AtomicUsize::new(0),
            gave_up: AtomicUsize::new(0),
            caught_up: AtomicUsize::new(0),
            distinct: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
        }
    }
}

/// What one client did.
#[derive(Debug)]
pub struct Client {
    pub attempts: u32,
    /// Responses with status 200.
    pub connections: u32,
    /// Connections refused, reset or timed out, and streams broken mid-body.
    pub network_errors: u32,
    /// Streams the server ended (the kill, a refusal, a maximum duration).
    pub ends: u32,
    /// Why the client failed for good, as an EventSource would.
    pub gave_up: Option<String>,
    /// Epoch milliseconds of the first 200 after the restart.
    pub reconnected_ms: Option<u64>,
    /// Epoch milliseconds at which it held every event produced before the restart.
    pub caught_up_ms: Option<u64>,
    /// Reconnection delays the server set (`retry:`), smallest and largest.
    pub retry_ms: Option<(u64, u64)>,
    pub sequence: Sequence,
    pub distinct: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub foreign: u64,
    pub error_events: u64,
}

/// One EventSource-like client, until `stop`. Its first connection waits for a permit.
pub async fn client(
    spec: Arc<ClientSpec>,
    shared: Arc<Progress>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Client {
    let run = spec.run;
    let mut out = Client {
        attempts: 0,
        connections: 0,
        network_errors: 0,
        ends: 0,
        gave_up: None,
        reconnected_ms: None,
        caught_up_ms: None,
        retry_ms: None,
        sequence: Sequence::new(spec.partitions.max(1), true),
        distinct: 0,
        gaps: 0,
        duplicates: 0,
        foreign: 0,
        error_events: 0,
    };
    let mut state = EventSourceState::default();
    let mut holds_id = false;
    'connections: loop {
        out.attempts += 1;
        let mut request = spec.request.clone();
        // "If the EventSource object's last event ID string is not the empty string, set
        // (`Last-Event-ID`, last event ID string) in request's header list."
        if !state.last_id.is_empty() {
            request.last_event_id = Some(state.last_id.clone());
        }
        let permit = if out.attempts == 1 {
            permits.acquire().await.ok()
        } else {
            None
        };
        let opened = open(
            &spec.target,
            &request,
            spec.read_buffer,
            spec.connect_timeout,
        )
        .await;
        drop(permit);
        match opened {
            Err(error) => {
                if let Some(status) = error.downcast_ref::<HttpStatus>() {
                    // "if res's status is not 200 ... fail the connection."
                    out.gave_up = Some(format!("HTTP {}", status.status));
                    break;
                }
                out.network_errors += 1;
            }
            Ok((mut stream, _)) => {
                if !stream.content_type.starts_with("text/event-stream") {
                    out.gave_up = Some(format!("content type {:?}", stream.content_type));
                    break;
                }
                out.connections += 1;
                if out.connections == 1 {
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                }
                if out.reconnected_ms.is_none() && shared.target.load(Ordering::Relaxed) != u64::MAX
                {
                    out.reconnected_ms = Some(now_ms());
                }
                state.reconnecting();
                stream.events.eventsource = Some(std::mem::take(&mut state));
                let stopped = loop {
                    let mut on_event = |event: &Event| see(&mut out, &shared, run, event);
                    let read = tokio::select! {
                        biased;
                        _ = stop.changed() => break true,
                        read = stream.read(&mut on_event) => read,
                    };
                    let seen = stream.events.eventsource.as_ref();
                    if let Some(retry) = seen.and_then(|s| s.retry_ms) {
                        out.retry_ms = Some(match out.retry_ms {
                            Some((low, high)) => (low.min(retry), high.max(retry)),
                            None => (retry, retry),
                        });
                    }
                    if !holds_id && seen.is_some_and(|s| !s.last_id.is_empty()) {
                        holds_id = true;
                        shared.with_id.fetch_add(1, Ordering::Relaxed);
                    }
                    match read {
                        Ok(Read::Bytes(_)) => {}
                        Ok(Read::End) => {
                            out.ends += 1;
                            break false;
                        }
                        Err(_) => {
                            out.network_errors += 1;
                            break false;
                        }
                    }
                };
                state = stream.events.eventsource.take().unwrap_or_default();
                if stopped {
                    break 'connections;
                }
            }
        }
        // "Wait a delay equal to the reconnection time of the event source."
        let delay = state
            .retry_ms
            .map_or(spec.default_retry, Duration::from_millis);
        tokio::select! {
            _ = stop.changed() => break,
            () = sleep(delay) => {}
        }
    }
    if out.gave_up.is_some() {
        shared.gave_up.fetch_add(1, Ordering::Relaxed);
    }
    out
}

/// Accounts for one event a client received.
fn see(out: &mut Client, shared: &Progress, run: u64, event: &Event) {
    if event.error {
        out.error_events += 1;
        return;
    }
    if event.stamp.run != Some(run) {
        out.foreign += 1;
        return;
    }
    let Some(seq) = event.stamp.seq else {
        return;
    };
    let (new, missing) = out.sequence.see(seq);
    out.gaps += missing;
    if new {
        out.distinct += 1;
        shared.distinct.fetch_add(1, Ordering::Relaxed);
    } else {
        out.duplicates += 1;
    }
    if out.caught_up_ms.is_none() {
        let target = shared.target.load(Ordering::Relaxed);
        if target != u64::MAX && out.sequence.has_all_below(target) {
            out.caught_up_ms = Some(now_ms());
            shared.caught_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}
