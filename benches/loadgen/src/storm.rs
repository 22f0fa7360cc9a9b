//! `storm`: many clients that behave like a browser's `EventSource` (see `eventsource.rs`)
//! ride out a restart of the server they follow.
//!
//! The run connects every client, produces numbered events at a steady rate, and hands
//! over to whoever restarts the server through files in a control directory, each written
//! whole (rename) and holding the epoch milliseconds of its moment:
//!
//! - the load generator writes `ready` once every client is live;
//! - the script SIGKILLs the server and writes `killed`; after a pause it writes
//!   `restarting` and starts the server again on the same port, and once it listens it
//!   writes `restarted` (`PID MILLISECONDS`).
//!
//! Production goes on throughout. A client has caught up once it holds every event
//! produced before `restarting`; its catch-up time runs from that moment. After every
//! client has caught up (or a time-out), production goes on for a while and stops, and
//! each client must end with every event of the run exactly once. Meanwhile the server's
//! `kafka_sse_consumers` gauge is scraped and its memory read every 100 ms.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::time::{sleep, timeout, Instant};

use crate::event::now_ms;
use crate::eventsource::{client, Client, ClientSpec, Progress};
use crate::http::{RequestOptions, Target};
use crate::kafka::{Feeder, ProduceSpec};
use crate::report::{rate, Percentiles};
use crate::server_watch::{peak_rss_kib, watch_server, Server, Watched, DOWN, RESTARTED};

/// A `storm` run.
#[derive(Debug, Clone)]
pub struct StormSpec {
    pub target: Target,
    pub request: RequestOptions,
    pub connections: usize,
    /// First connections being set up at once (reconnections are not held back: the herd
    /// is what is measured).
    pub connect_concurrency: usize,
    /// Bound on each connection's set-up.
    pub connect_timeout: Duration,
    pub read_buffer: usize,
    /// The reconnection time until the server sends `retry:`.
    pub default_retry: Duration,
    /// The producer (its count is ignored: it runs until the end).
    pub feed: ProduceSpec,
    pub partitions: u64,
    /// Live production before `ready`.
    pub settle: Duration,
    pub control: PathBuf,
    /// How long to wait for each step of the restart.
    pub restart_timeout: Duration,
    /// How long clients get to catch up after the restart.
    pub catch_up_timeout: Duration,
    /// Production after everyone caught up.
    pub after: Duration,
    /// How long clients get to receive the last events after production stops.
    pub grace: Duration,
    pub server_pid: Option<u32>,
    pub metrics_url: Option<String>,
}

/// The numbers in a control file, once it exists.
fn read_control(dir: &Path, name: &str) -> anyhow::Result<Option<Vec<u64>>> {
    let text = match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {name}")),
    };
    let numbers = text
        .split_whitespace()
        .map(|n| {
            n.parse::<u64>()
                .with_context(|| format!("{name} holds {n:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if numbers.is_empty() {
        bail!("{name} is empty");
    }
    Ok(Some(numbers))
}

/// Waits for a control file; its numbers.
async fn wait_control(dir: &Path, name: &str, limit: Duration) -> anyhow::Result<Vec<u64>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(numbers) = read_control(dir, name)? {
            return Ok(numbers);
        }
        if Instant::now() >= deadline {
            bail!("no {name} in {} after {limit:?}", dir.display());
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Writes a control file whole.
fn write_control(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let partial = dir.join(format!(".{name}"));
    std::fs::write(&partial, text).with_context(|| format!("writing {name}"))?;
    std::fs::rename(&partial, dir.join(name)).with_context(|| format!("writing {name}"))
}

/// Waits until `done()` or `limit`; whether it got there.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Runs the restart storm and returns its result object.
pub async fn run_storm(spec: StormSpec, label: &str) -> anyhow::Result<Value> {
    let spec = Arc::new(spec);
    for name in ["ready", "killed", "restarting", "restarted"] {
        let _ = std::fs::remove_file(spec.control.join(name));
    }
    std::fs::create_dir_all(&spec.control).context("creating the control directory")?;
    let shared = Arc::new(Progress::default());
    let server = Arc::new(Server::default());
    server
        .pid
        .store(spec.server_pid.unwrap_or(0), Ordering::Relaxed);
    let (stop_tx, stop_rx) = watch::channel(false);
    let watched = Arc::new(Mutex::new(Watched::default()));
    let watcher = tokio::spawn(watch_server(
        server.clone(),
        spec.metrics_url.clone(),
        crate::probe::broker_port(&spec.feed.brokers),
        watched.clone(),
        stop_rx.clone(),
    ));
    let run = rand::random::<u64>() >> 12;
    let n = spec.connections;
    let client_spec = Arc::new(ClientSpec {
        target: spec.target.clone(),
        request: spec.request.clone(),
        read_buffer: spec.read_buffer,
        connect_timeout: spec.connect_timeout,
        default_retry: spec.default_retry,
        partitions: spec.partitions.max(1),
        run,
    });

    // Every client in, each holding an id.
    let permits = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let connect_started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(client(
                client_spec.clone(),
                shared.clone(),
                permits.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let waves = n.div_ceil(spec.connect_concurrency.max(1)) as u32;
    let all_in =
        || shared.connected.load(Ordering::Relaxed) + shared.gave_up.load(Ordering::Relaxed) >= n;
    if !wait_until(spec.connect_timeout * (waves + 1), all_in).await {
        eprintln!(
            "connect phase timed out: {} of {n} connected",
            shared.connected.load(Ordering::Relaxed)
        );
    }
    let connect_phase = connect_started.elapsed();
    let connected = shared.connected.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(30), || {
        shared.with_id.load(Ordering::Relaxed) >= connected
    })
    .await;
    eprintln!(
        "{connected} of {n} connected in {:.1}s, {} with an id",
        connect_phase.as_secs_f64(),
        shared.with_id.load(Ordering::Relaxed)
    );

    // Live events flowing.
    let mut feed = spec.feed.clone();
    feed.count = u64::MAX;
    feed.run = Some(run);
    let feeder = Feeder::start(feed)?;
    sleep(spec.settle).await;
    let live_mark = feeder.sent().saturating_sub(1);
    let live = wait_until(Duration::from_secs(30), || {
        shared.distinct.load(Ordering::Relaxed) >= connected as u64 * live_mark
    })
    .await;
    if !live {
        eprintln!("not every client received the live events before the restart");
    }
    let first_pid = spec.server_pid;
    let first_peak_kib = first_pid.and_then(peak_rss_kib);
    let first_cpu_s = first_pid.and_then(|pid| crate::probe::cpu_seconds(Some(pid)));
    let loadavg_at_kill = crate::report::load_average();
    write_control(&spec.control, "ready", &now_ms().to_string())?;
    eprintln!(
        "ready: {} events produced; waiting for the kill",
        feeder.sent()
    );

    // The restart, done by the script.
    let killed_ms = wait_control(&spec.control, "killed", spec.restart_timeout).await?[0];
    server.phase.store(DOWN, Ordering::Relaxed);
    let sent_at_kill = feeder.sent();
    let restart_ms = wait_control(&spec.control, "restarting", spec.restart_timeout).await?[0];
    let target = feeder.sent();
    server.restart_ms.store(restart_ms, Ordering::Relaxed);
    shared.target.store(target, Ordering::Relaxed);
    let restarted = wait_control(&spec.control, "restarted", spec.restart_timeout).await?;
    let (new_pid, listening_ms) = match restarted[..] {
        [pid, ms] => (u32::try_from(pid)?, ms),
        _ => bail!("restarted holds {restarted:?}, not PID MILLISECONDS"),
    };
    server.pid.store(new_pid, Ordering::Relaxed);
    server.phase.store(RESTARTED, Ordering::Relaxed);
    eprintln!(
        "restarted after {} ms down; {} events produced meanwhile; clients must reach event {target}",
        restart_ms.saturating_sub(killed_ms),
        target - sent_at_kill
    );

    // Everyone catches up.
    let settled = || {
        shared.caught_up.load(Ordering::Relaxed) + shared.gave_up.load(Ordering::Relaxed)
            >= connected
    };
    let deadline = Instant::now() + spec.catch_up_timeout;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    while !settled() && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
        if Instant::now() >= next_report {
            eprintln!(
                "{} of {connected} caught up, {} gave up",
                shared.caught_up.load(Ordering::Relaxed),
                shared.gave_up.load(Ordering::Relaxed)
            );
            next_report += Duration::from_secs(5);
        }
    }
    let all_caught_up = settled();
    let settled_ms = now_ms();
    let server_cpu_s = crate::probe::cpu_seconds(Some(new_pid));

    // More live events, then the end: every client must hold the whole run once.
    sleep(spec.after).await;
    feeder.stop();
    let produced = timeout(Duration::from_secs(90), feeder.finish())
        .await
        .map_err(|_| anyhow!("the producer did not finish"))??;
    let end = produced.sent;
    let wanted = || {
        let live = connected.saturating_sub(shared.gave_up.load(Ordering::Relaxed)) as u64;
        shared.distinct.load(Ordering::Relaxed) >= live * end
    };
    wait_until(spec.grace, wanted).await;
    let second_peak_kib = peak_rss_kib(new_pid);
    let _ = stop_tx.send(true);
    let mut clients = Vec::with_capacity(n);
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(stop_deadline, task).await {
            Ok(Ok(client)) => clients.push(client),
            Ok(Err(join)) => bail!("a client task failed: {join}"),
            Err(_) => abort.abort(),
        }
    }
    let _ = timeout(Duration::from_secs(5), watcher).await;
    let watched = std::mem::take(&mut *watched.lock().expect("the watcher's lock"));

    Ok(summary(
        label,
        &spec,
        &clients,
        &watched,
        Moments {
            connected,
            connect_phase,
            killed_ms,
            restart_ms,
            listening_ms,
            settled_ms,
            all_caught_up,
            sent_at_kill,
            target,
            end,
            first_peak_kib,
            second_peak_kib,
            first_cpu_s,
            server_cpu_s,
            live_before_kill: live,
            loadavg_at_kill,
        },
    ))
}

/// What the coordinator recorded along the way.
#[derive(Debug, Clone, Copy)]
struct Moments {
    connected: usize,
    connect_phase: Duration,
    killed_ms: u64,
    restart_ms: u64,
    listening_ms: u64,
    settled_ms: u64,
    all_caught_up: bool,
    sent_at_kill: u64,
    target: u64,
    end: u64,
    first_peak_kib: Option<u64>,
    second_peak_kib: Option<u64>,
    first_cpu_s: Option<f64>,
    server_cpu_s: Option<f64>,
    live_before_kill: bool,
    /// The one-minute load average when the clients were ready.
    loadavg_at_kill: Option<f64>,
}

fn summary(
    label: &str,
    spec: &StormSpec,
    clients: &[Client],
    watched: &Watched,
    at: Moments,
) -> Value {
    let since_restart = |ms: u64| Duration::from_millis(ms.saturating_sub(at.restart_ms));
    let catch_up: Vec<Duration> = clients
        .iter()
        .filter_map(|c| c.caught_up_ms.map(since_restart))
        .collect();
    let reconnect: Vec<Duration> = clients
        .iter()
        .filter_map(|c| c.reconnected_ms.map(since_restart))
        .collect();
    let gave_up: Vec<&str> = clients
        .iter()
        .filter_map(|c| c.gave_up.as_deref())
        .collect();
    let mut gave_up_kinds = gave_up.clone();
    gave_up_kinds.sort_unstable();
    gave_up_kinds.dedup();
    // Missing at the end: events of the run a client that did not give up never got.
    let incomplete = clients
        .iter()
        .filter(|c| c.gave_up.is_none() && !c.sequence.has_all_below(at.end))
        .count();
    let missing: u64 = clients
        .iter()
        .filter(|c| c.gave_up.is_none())
        .map(|c| at.end.saturating_sub(c.distinct))
        .sum();
    let retry_low = clients.iter().filter_map(|c| c.retry_ms.map(|r| r.0)).min();
    let retry_high = clients.iter().filter_map(|c| c.retry_ms.map(|r| r.1)).max();
    let all_caught_up_s = at
        .all_caught_up
        .then(|| catch_up.iter().max().map(Duration::as_secs_f64))
        .flatten();
    let mib = |kib: Option<u64>| kib.map(|k| k as f64 / 1024.0);
    // The gauge counts consumers: whole numbers.
    let count = |gauge: f64| gauge.round() as u64;
    let mut out = json!({
        "label": label,
        "url": format!("http://{}", spec.target.addr),
        "clients": spec.connections,
        "connected": at.connected,
        "connect_phase_s": at.connect_phase.as_secs_f64(),
        "live_before_kill": at.live_before_kill,
        "loadavg_at_kill": at.loadavg_at_kill,
        "rate": spec.feed.rate,
        "down_s": at.restart_ms.saturating_sub(at.killed_ms) as f64 / 1e3,
        "listening_after_s": at.listening_ms.saturating_sub(at.restart_ms) as f64 / 1e3,
        "produced_before_kill": at.sent_at_kill,
        "produced_while_down": at.target - at.sent_at_kill,
        "produced_before_restart": at.target,
        "produced_total": at.end,
        "caught_up": catch_up.len(),
        "all_caught_up_s": all_caught_up_s,
        "settled_after_s": at.settled_ms.saturating_sub(at.restart_ms) as f64 / 1e3,
        "gave_up": gave_up.len(),
        "gave_up_kinds": gave_up_kinds.iter().take(5).collect::<Vec<_>>(),
        "not_caught_up": clients.iter().filter(|c| c.gave_up.is_none() && c.caught_up_ms.is_none()).count(),
        "incomplete_at_end": incomplete,
        "missing_at_end": missing,
        "gaps": clients.iter().map(|c| c.gaps).sum::<u64>(),
        "duplicates": clients.iter().map(|c| c.duplicates).sum::<u64>(),
        "foreign_events": clients.iter().map(|c| c.foreign).sum::<u64>(),
        "error_events": clients.iter().map(|c| c.error_events).sum::<u64>(),
    });
    let more = json!({
        "attempts": clients.iter().map(|c| u64::from(c.attempts)).sum::<u64>(),
        "responses_200": clients.iter().map(|c| u64::from(c.connections)).sum::<u64>(),
        "network_errors": clients.iter().map(|c| u64::from(c.network_errors)).sum::<u64>(),
        "stream_ends": clients.iter().map(|c| u64::from(c.ends)).sum::<u64>(),
        "retry_ms_min": retry_low,
        "retry_ms_max": retry_high,
        "default_retry_ms": spec.default_retry.as_millis() as u64,
        "consumers_peak_before_kill": watched.before.consumers.map(count),
        "consumers_peak_after_restart": watched.after.consumers.map(count),
        "consumers_at_end": watched.consumers_timeline.last().map(|&(_, c)| count(c)),
        "kafka_clients_peak_after_restart": watched.after.kafka_clients,
        "server_before_kill": watched.before.to_json(),
        "server_after_restart": watched.after.to_json(),
        "rss_peak_before_kill_mib": mib(at.first_peak_kib),
        "rss_peak_after_restart_mib": mib(at.second_peak_kib),
        "server_cpu_before_kill_s": at.first_cpu_s,
        "server_cpu_to_settle_s": at.server_cpu_s,
        "scrapes": watched.scrapes,
        "failed_scrapes": watched.failed_scrapes,
        "consumers_timeline": watched.consumers_timeline,
    });
    if let (Some(out), Value::Object(more)) = (out.as_object_mut(), more) {
        out.extend(more);
    }
    Percentiles::of_durations(&catch_up).put(&mut out, "catch_up");
    Percentiles::of_durations(&reconnect).put(&mut out, "reconnect");
    out["reconnect_rate_per_s"] = json!(rate(
        reconnect.len() as f64,
        reconnect.iter().max().map_or(0.0, Duration::as_secs_f64)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_files_hold_numbers() {
        let dir = std::env::temp_dir().join(format!("storm-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_control(&dir, "restarted").unwrap(), None);
        write_control(&dir, "restarted", "1234 1700000000000\n").unwrap();
        assert_eq!(
            read_control(&dir, "restarted").unwrap(),
            Some(vec![1234, 1_700_000_000_000])
        );
        write_control(&dir, "killed", "soon").unwrap();
        assert!(read_control(&dir, "killed").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
