//! Many concurrent stream clients, and new clients one at a time.
//!
//! `clients` connects N clients to a live stream, waits until all are in, then (with an
//! embedded producer) produces at a set rate for the window and checks that every fast
//! client received every event of the run, in order, with none missing: the producer numbers
//! events and sends event `seq` to partition `seq % partitions`, so each client knows what
//! it must see. Slow clients read at a fraction of the event rate next to the fast ones.
//!
//! `first-event` opens new live clients one after another and times each one's response
//! head and first event, with background clients keeping the shared live stream open.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::{sleep, timeout, Instant};

use crate::event::{now_ms, now_us};
use crate::http::{open, Event, Read, RequestOptions, Target};
use crate::kafka::{Feeder, ProduceSpec};
use crate::probe::{Probe, Sample};
use crate::report::{rate, Percentiles};

/// A `clients` run.
#[derive(Debug, Clone)]
pub struct ClientsSpec {
    pub target: Target,
    pub request: RequestOptions,
    pub connections: usize,
    /// Clients connected (and settled) before the memory baseline, so the shared live
    /// stream exists before the measured clients arrive.
    pub warmup: usize,
    pub duration: Duration,
    pub connect_concurrency: usize,
    /// Bound on each connection's set-up, and on the whole connect phase (times the number
    /// of connect waves).
    pub connect_timeout: Duration,
    /// How long to wait after the window for the last events to arrive.
    pub grace: Duration,
    /// Time between "everyone is connected" and the memory sample.
    pub settle: Duration,
    pub slow: usize,
    /// Slow clients read at this fraction of the event rate.
    pub slow_fraction: f64,
    pub read_buffer: usize,
    /// Produce during the window (and account for every event), or rely on an outside
    /// producer (then only gaps can be counted) at `rate`.
    pub feed: Option<ProduceSpec>,
    pub rate: f64,
    pub partitions: u64,
    pub probe: Option<Probe>,
    pub metrics_url: Option<String>,
    /// Where the window is cut short to protect the machine.
    pub limits: ServerLimits,
}

/// How far a watched server may grow before the window ends early.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub threads: u64,
    pub rss_mib: u64,
}

/// Counters every client task updates as it goes.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicUsize,
    failed: AtomicUsize,
    /// Distinct events of the run received by fast clients.
    fast_distinct: AtomicU64,
    events: AtomicU64,
    all_in: Notify,
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientResult {
    slow: bool,
    connect: Option<Duration>,
    headers: Option<Duration>,
    first_event: Option<Duration>,
    events: u64,
    distinct: u64,
    gaps: u64,
    duplicates: u64,
    foreign: u64,
    error_events: u64,
    latencies_us: Vec<u32>,
    error: Option<String>,
}

/// Follows the sequence numbers of one run, per partition (`seq % partitions`).
#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    next: Vec<Option<u64>>,
    partitions: u64,
}

impl Sequence {
    pub(crate) fn new(partitions: u64, from_zero: bool) -> Self {
        Sequence {
            next: (0..partitions).map(|p| from_zero.then_some(p)).collect(),
            partitions,
        }
    }

    /// Whether every event numbered below `end` has been seen (or skipped, which `see`
    /// reported as missing): each partition's next expected number is at least `end`.
    pub(crate) fn has_all_below(&self, end: u64) -> bool {
        self.next.iter().all(|next| next.is_some_and(|n| n >= end))
    }

    /// Records `seq`; returns (new, missing before it).
    pub(crate) fn see(&mut self, seq: u64) -> (bool, u64) {
        let slot = &mut self.next[(seq % self.partitions) as usize];
        let expected = slot.unwrap_or(seq);
        if seq < expected {
            return (false, 0);
        }
        *slot = Some(seq + self.partitions);
        (true, (seq - expected) / self.partitions)
    }
}

/// Runs one client until `stop`, recording what it sees.
#[allow(clippy::too_many_arguments)]
async fn client(
    spec: Arc<ClientsSpec>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    slow: bool,
    run: Option<u64>,
    record_latency: bool,
    mut stop: watch::Receiver<bool>,
) -> ClientResult {
    let mut result = ClientResult {
        slow,
        ..ClientResult::default()
    };
    let started = Instant::now();
    let opened = {
        let Ok(_permit) = permits.acquire().await else {
            return result;
        };
        let mut request = spec.request.clone();
        if slow {
            request.recv_buffer = Some(4096);
        }
        open(
            &spec.target,
            &request,
            spec.read_buffer,
            spec.connect_timeout,
        )
        .await
    };
    let mut stream = match opened {
        Ok((stream, times)) => {
            result.connect = Some(times.connected);
            result.headers = Some(times.headers);
            shared.connected.fetch_add(1, Ordering::Relaxed);
            stream
        }
        Err(error) => {
            result.error = Some(format!("{error:#}"));
            shared.failed.fetch_add(1, Ordering::Relaxed);
            shared.all_in.notify_one();
            return result;
        }
    };
    shared.all_in.notify_one();
    if record_latency {
        let expected = (spec.rate * spec.duration.as_secs_f64()) as usize;
        result
            .latencies_us
            .reserve(if slow { 64 } else { expected + 64 });
    }
    let mut sequence = Sequence::new(spec.partitions.max(1), run.is_some());
    let slow_rate = spec.rate * spec.slow_fraction;
    let slow_started = Instant::now();
    loop {
        let mut on_event = |event: &Event| {
            let received_us = now_us();
            result.events += 1;
            if result.first_event.is_none() {
                result.first_event = Some(started.elapsed());
            }
            if event.error {
                result.error_events += 1;
                return;
            }
            let stamp = event.stamp;
            if run.is_some() && stamp.run != run {
                result.foreign += 1;
                return;
            }
            if let Some(seq) = stamp.seq {
                let (new, missing) = sequence.see(seq);
                result.gaps += missing;
                if new {
                    result.distinct += 1;
                    if !slow && run.is_some() {
                        shared.fast_distinct.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    result.duplicates += 1;
                }
            }
            if let (true, Some(sent_ms)) = (record_latency, stamp.sent_ms) {
                let latency = received_us.saturating_sub(sent_ms * 1000);
                result
                    .latencies_us
                    .push(latency.min(u64::from(u32::MAX)) as u32);
            }
        };
        let read = tokio::select! {
            biased;
            _ = stop.changed() => break,
            read = async {
                if slow {
                    stream.read_at_most(512, &mut on_event).await
                } else {
                    stream.read(&mut on_event).await
                }
            } => read,
        };
        match read {
            Ok(Read::Bytes(_)) => {}
            Ok(Read::End) => {
                result.error = Some("the server ended the stream".into());
                break;
            }
            Err(error) => {
                result.error = Some(format!("{error:#}"));
                break;
            }
        }
        if slow && slow_rate > 0.0 {
            let due = slow_started + Duration::from_secs_f64(result.events as f64 / slow_rate);
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep_until(due) => {}
            }
        }
    }
    shared.events.fetch_add(result.events, Ordering::Relaxed);
    result
}

/// Runs the `clients` measurement and returns its result object.
pub async fn run_clients(spec: ClientsSpec, label: &str) -> anyhow::Result<Value> {
    let spec = Arc::new(spec);
    let shared = Arc::new(Shared::default());
    let permits = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = spec.feed.as_ref().map(|_| rand::random::<u64>() >> 12);
    let probe = spec.probe;
    let total = spec.connections + spec.slow;
    let warmup = spec.warmup.min(spec.connections);
    let spawn = |slow: bool| {
        tokio::spawn(client(
            spec.clone(),
            shared.clone(),
            permits.clone(),
            slow,
            run,
            true,
            stop_rx.clone(),
        ))
    };
    let mut tasks = Vec::with_capacity(total);
    if warmup > 0 {
        tasks.extend((0..warmup).map(|_| spawn(false)));
        wait_connected(&shared, warmup, Instant::now() + spec.connect_timeout * 2).await;
        sleep(spec.settle).await;
    }
    let before = match probe {
        Some(probe) => probe.sample_within(Duration::from_secs(30)).await,
        None => None,
    };
    if let Some(sample) = before {
        eprintln!("server before ({warmup} warm-up clients): {sample:?}");
    }

    let connect_started = Instant::now();
    tasks.extend((warmup..total).map(|i| spawn(i >= spec.connections)));
    let waves = (total - warmup).div_ceil(spec.connect_concurrency.max(1)) as u32;
    let connect_deadline = connect_started + spec.connect_timeout * (waves + 1);
    wait_connected(&shared, total, connect_deadline).await;
    let connect_phase = connect_started.elapsed();
    let connected = shared.connected.load(Ordering::Relaxed);
    eprintln!(
        "connected {connected} of {total} in {:.1}s; settling {:?}",
        connect_phase.as_secs_f64(),
        spec.settle
    );
    sleep(spec.settle).await;
    let after_connect = match probe {
        Some(probe) => probe.sample_within(Duration::from_secs(30)).await,
        None => None,
    };
    if let Some(sample) = after_connect {
        eprintln!("server after connecting: {sample:?}");
    }
    let metrics_after_connect = match &spec.metrics_url {
        Some(url) => scrape(url).await,
        None => Value::Null,
    };

    // The window: produce (or wait) for the duration, watching the server.
    let window_started = Instant::now();
    let cpu_at_start = (
        crate::probe::cpu_seconds(None),
        probe.and_then(|p| crate::probe::cpu_seconds(Some(p.pid))),
    );
    let events_at_start = shared.events.load(Ordering::Relaxed);
    let feeder = match &spec.feed {
        Some(feed) => {
            let mut feed = feed.clone();
            feed.run = run;
            feed.count = (spec.rate * spec.duration.as_secs_f64()).round() as u64;
            Some(Feeder::start(feed)?)
        }
        None => None,
    };
    let mut peak = after_connect.unwrap_or_default();
    let mut samples = Vec::new();
    let mut overload = None;
    let window_end = window_started + spec.duration;
    while Instant::now() < window_end {
        sleep(Duration::from_secs(1).min(window_end - Instant::now())).await;
        let Some(probe) = probe else { continue };
        let Some(sample) = probe.sample_within(Duration::from_secs(5)).await else {
            continue;
        };
        peak.rss_kib = peak.rss_kib.max(sample.rss_kib);
        peak.kafka_clients = peak.kafka_clients.max(sample.kafka_clients);
        peak.broker_connections = peak.broker_connections.max(sample.broker_connections);
        peak.threads = peak.threads.max(sample.threads);
        samples.push(sample.rss_kib);
        if sample.threads > spec.limits.threads || sample.rss_kib / 1024 > spec.limits.rss_mib {
            // The server is melting down; stop before it takes the machine with it.
            let why = format!(
                "server over its limits after {:.0}s: {} threads, {} MiB RSS, {} Kafka clients",
                window_started.elapsed().as_secs_f64(),
                sample.threads,
                sample.rss_kib / 1024,
                sample.kafka_clients
            );
            eprintln!("{why}; ending the window");
            overload = Some(why);
            break;
        }
    }
    let produced = match feeder {
        Some(feeder) => {
            if overload.is_some() {
                feeder.stop();
            }
            // Bounded: the feeder paces itself to the window and then flushes.
            let finished = timeout(spec.duration + Duration::from_secs(90), feeder.finish())
                .await
                .map_err(|_| anyhow!("the producer did not finish"))??;
            Some(finished)
        }
        None => None,
    };
    let window = window_started.elapsed();
    let spent = |before: Option<f64>, pid: Option<u32>| {
        before
            .zip(crate::probe::cpu_seconds(pid))
            .map(|(before, after)| after - before)
    };
    let window_cpu = (
        spent(cpu_at_start.0, None),
        probe.and_then(|p| spent(cpu_at_start.1, Some(p.pid))),
    );
    // Wait for the fast clients to receive the whole run, up to the grace period.
    if let Some(produced) = produced {
        let fast = connected.min(spec.connections) as u64;
        let wanted = fast * produced.sent;
        let grace_end = Instant::now() + spec.grace;
        while shared.fast_distinct.load(Ordering::Relaxed) < wanted && Instant::now() < grace_end {
            sleep(Duration::from_millis(50)).await;
        }
    } else {
        sleep(spec.grace.min(Duration::from_secs(2))).await;
    }
    let at_end = match probe {
        Some(probe) => probe.sample_within(Duration::from_secs(30)).await,
        None => None,
    };
    let metrics_at_end = match &spec.metrics_url {
        Some(url) => scrape(url).await,
        None => Value::Null,
    };
    let _ = stop_tx.send(true);
    let mut results = Vec::with_capacity(total);
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    let mut unstopped = 0;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(stop_deadline, task).await {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(join)) => bail!("a client task failed: {join}"),
            Err(_) => {
                abort.abort();
                unstopped += 1;
            }
        }
    }
    if unstopped > 0 {
        eprintln!("{unstopped} clients did not stop within 60s; left out of the results");
    }
    let received_in_window = shared.events.load(Ordering::Relaxed) - events_at_start;

    // Aggregate.
    let (fast, slow): (Vec<_>, Vec<_>) = results.iter().partition(|r| !r.slow);
    let mut fast_latencies: Vec<u32> = fast
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    let mut slow_latencies: Vec<u32> = slow
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    let latency = Percentiles::of_micros(&mut fast_latencies);
    let slow_latency = Percentiles::of_micros(&mut slow_latencies);
    let connect_times: Vec<Duration> = results.iter().filter_map(|r| r.connect).collect();
    let header_times: Vec<Duration> = results.iter().filter_map(|r| r.headers).collect();
    let produced_count = produced.map(|p| p.sent);
    // Lost: skipped in a client's sequence, or never received by a client whose stream
    // broke. Late: not received by the end of the grace period by a client still reading.
    let connected_fast: Vec<&&ClientResult> = fast.iter().filter(|r| r.headers.is_some()).collect();
    let missing =
        |r: &ClientResult| produced_count.map_or(0, |sent| sent.saturating_sub(r.distinct));
    let lost: Vec<u64> = connected_fast
        .iter()
        .map(|r| {
            if r.error.is_some() {
                missing(r).max(r.gaps)
            } else {
                r.gaps
            }
        })
        .collect();
    let late: Vec<u64> = connected_fast
        .iter()
        .map(|r| {
            if r.error.is_some() {
                0
            } else {
                missing(r).saturating_sub(r.gaps)
            }
        })
        .collect();
    let errors: Vec<&str> = results.iter().filter_map(|r| r.error.as_deref()).collect();
    let mut distinct_errors: Vec<&str> = errors.clone();
    distinct_errors.sort_unstable();
    distinct_errors.dedup();
    let events_total: u64 = results.iter().map(|r| r.events).sum();
    let window_secs = window.as_secs_f64();

    let mut out = json!({
        "label": label,
        "url": format!("http://{}", spec.target.addr),
        "clients": spec.connections,
        "warmup_clients": warmup,
        "slow_clients": spec.slow,
        "connected": connected,
        "failed": shared.failed.load(Ordering::Relaxed),
        "connect_phase_s": connect_phase.as_secs_f64(),
        "window_s": window_secs,
        "rate": spec.rate,
        "produced": produced_count,
        "events_received": events_total,
        "events_per_sec": rate(received_in_window as f64, window_secs),
        "latency_samples": latency.count,
        "lost_total": lost.iter().sum::<u64>(),
        "lost_max_per_client": lost.iter().copied().max().unwrap_or_default(),
        "clients_with_loss": lost.iter().filter(|&&l| l > 0).count(),
        "late_total": late.iter().sum::<u64>(),
        "overload": overload,
        "clients_not_stopped": unstopped,
        "clients_late": late.iter().filter(|&&l| l > 0).count(),
        "loadgen_cpu_s": window_cpu.0,
        "server_cpu_s": window_cpu.1,
        "server_cpu_us_per_event": window_cpu.1.map(|cpu| rate(cpu * 1e6, received_in_window as f64)),
        "gaps_total": results.iter().map(|r| r.gaps).sum::<u64>(),
        "duplicates_total": results.iter().map(|r| r.duplicates).sum::<u64>(),
        "foreign_events": results.iter().map(|r| r.foreign).sum::<u64>(),
        "error_events": results.iter().map(|r| r.error_events).sum::<u64>(),
        "client_errors": errors.len(),
        "client_error_kinds": distinct_errors.iter().take(5).collect::<Vec<_>>(),
        "slow_events_received": slow.iter().map(|r| r.events).sum::<u64>(),
        "slow_gaps": slow.iter().map(|r| r.gaps).sum::<u64>(),
        "server_before": before.map(Sample::to_json),
        "server_connected": after_connect.map(Sample::to_json),
        "server_peak": probe.map(|_| peak.to_json()),
        "server_end": at_end.map(Sample::to_json),
        "metrics_connected": metrics_after_connect,
        "metrics_end": metrics_at_end,
    });
    latency.put(&mut out, "latency");
    if spec.slow > 0 {
        slow_latency.put(&mut out, "slow_latency");
    }
    Percentiles::of_durations(&connect_times).put(&mut out, "connect");
    Percentiles::of_durations(&header_times).put(&mut out, "setup");
    if let (Some(before), Some(after)) = (before, after_connect) {
        let measured = connected.saturating_sub(warmup).max(1) as f64;
        let per_client = |rss_kib: u64| {
            (rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / measured).round()
        };
        out["rss_per_client_bytes"] = json!(per_client(after.rss_kib));
        out["rss_per_client_peak_bytes"] = json!(per_client(peak.rss_kib));
        out["rss_connected_mib"] = json!(after.rss_kib as f64 / 1024.0);
        out["rss_peak_mib"] = json!(peak.rss_kib as f64 / 1024.0);
        out["rss_before_mib"] = json!(before.rss_kib as f64 / 1024.0);
        out["kafka_clients"] = json!(peak.kafka_clients);
        out["broker_connections"] = json!(peak.broker_connections);
    }
    if !samples.is_empty() {
        out["rss_samples_kib"] = json!(samples);
    }
    Ok(out)
}

/// Waits until `total` clients have connected or failed, or until `deadline`, reporting
/// progress every few seconds.
async fn wait_connected(shared: &Shared, total: usize, deadline: Instant) {
    let mut next_report = Instant::now() + Duration::from_secs(5);
    loop {
        let (connected, failed) = (
            shared.connected.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        if connected + failed >= total {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!("connect phase timed out: {connected} connected, {failed} failed of {total}");
            return;
        }
        let _ = timeout(Duration::from_millis(200), shared.all_in.notified()).await;
        if Instant::now() >= next_report {
            eprintln!("connected {connected} of {total} ({failed} failed)");
            next_report += Duration::from_secs(5);
        }
    }
}

/// A `first-event` run.
#[derive(Debug, Clone)]
pub struct FirstEventSpec {
    pub target: Target,
    pub request: RequestOptions,
    pub trials: usize,
    pub pause: Duration,
    pub background: usize,
    pub limit: Duration,
    pub feed: Option<ProduceSpec>,
}

/// Opens new live clients one at a time and times each one's response head and first
/// event.
pub async fn run_first_event(spec: FirstEventSpec, label: &str) -> anyhow::Result<Value> {
    // Background clients keep the stream's shared live feed open between trials.
    let (stop_tx, stop_rx) = watch::channel(false);
    let background_spec = Arc::new(ClientsSpec {
        target: spec.target.clone(),
        request: spec.request.clone(),
        connections: spec.background,
        warmup: 0,
        duration: Duration::from_secs(1),
        connect_concurrency: 50,
        connect_timeout: spec.limit,
        grace: Duration::ZERO,
        settle: Duration::ZERO,
        slow: 0,
        slow_fraction: 0.0,
        read_buffer: 16 * 1024,
        feed: None,
        rate: 0.0,
        partitions: 1,
        probe: None,
        metrics_url: None,
        limits: ServerLimits {
            threads: u64::MAX,
            rss_mib: u64::MAX,
        },
    });
    let shared = Arc::new(Shared::default());
    let permits = Arc::new(Semaphore::new(50));
    let mut background = Vec::new();
    for _ in 0..spec.background {
        background.push(tokio::spawn(client(
            background_spec.clone(),
            shared.clone(),
            permits.clone(),
            false,
            None,
            false,
            stop_rx.clone(),
        )));
    }
    let deadline = Instant::now() + spec.limit;
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < spec.background
    {
        if Instant::now() >= deadline {
            bail!("background clients did not connect in {:?}", spec.limit);
        }
        sleep(Duration::from_millis(20)).await;
    }
    let feeder = match &spec.feed {
        Some(feed) => {
            let mut feed = feed.clone();
            feed.count = u64::MAX;
            Some(Feeder::start(feed)?)
        }
        None => None,
    };
    // Let the feed reach the live clients before the first trial.
    sleep(Duration::from_secs(2)).await;

    let mut headers = Vec::new();
    let mut first_events = Vec::new();
    let mut own_latency = Vec::new();
    let mut failures = Vec::new();
    for _ in 0..spec.trials {
        match trial(&spec).await {
            Ok((head, first, unproduced)) => {
                headers.push(head);
                first_events.push(first);
                own_latency.push(first.saturating_sub(unproduced));
            }
            Err(error) => failures.push(format!("{error:#}")),
        }
        sleep(spec.pause).await;
    }
    let _ = stop_tx.send(true);
    if let Some(feeder) = feeder {
        feeder.stop();
        feeder.finish().await?;
    }
    for task in background {
        let _ = timeout(Duration::from_secs(10), task).await;
    }
    failures.sort();
    failures.dedup();
    let mut out = json!({
        "label": label,
        "url": format!("http://{}", spec.target.addr),
        "trials": spec.trials,
        "succeeded": headers.len(),
        "background_clients": spec.background,
        "failures": failures.iter().take(5).collect::<Vec<_>>(),
    });
    Percentiles::of_durations(&headers).put(&mut out, "headers");
    Percentiles::of_durations(&first_events).put(&mut out, "first_event");
    Percentiles::of_durations(&own_latency).put(&mut out, "first_event_latency");
    Ok(out)
}

/// One new client: the time to its response head, to its first event, and how much of
/// the latter passed before that event was produced (the rest is the event's own
/// produce-to-receive latency).
async fn trial(spec: &FirstEventSpec) -> anyhow::Result<(Duration, Duration, Duration)> {
    let started_ms = now_ms();
    let started = Instant::now();
    let (mut stream, times) = open(&spec.target, &spec.request, 16 * 1024, spec.limit).await?;
    let deadline = started + spec.limit;
    let mut first: Option<(Duration, Option<u64>)> = None;
    while first.is_none() {
        let read = tokio::time::timeout_at(
            deadline,
            stream.read(&mut |event: &Event| {
                if first.is_none() && !event.error {
                    first = Some((started.elapsed(), event.stamp.sent_ms));
                }
            }),
        )
        .await
        .map_err(|_| anyhow!("no event within {:?}", spec.limit))??;
        if read == Read::End {
            bail!("the stream ended before its first event");
        }
    }
    let (elapsed, sent_ms) = first.unwrap_or_default();
    let unproduced = sent_ms
        .map(|sent| Duration::from_millis(sent.saturating_sub(started_ms)))
        .unwrap_or_default();
    Ok((times.headers, elapsed, unproduced.min(elapsed)))
}

/// The fan-out and client gauges of the crate's `/metrics`, if the server has them.
async fn scrape(url: &str) -> Value {
    let fetched = async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        client.get(url).send().await?.text().await
    };
    match fetched.await {
        Ok(text) => {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| {
                    !l.starts_with('#')
                        && (l.starts_with("kafka_sse_fanout")
                            || l.starts_with("kafka_sse_connected_clients")
                            || l.starts_with("kafka_sse_consumers_released"))
                })
                .collect();
            json!(lines)
        }
        Err(error) => json!(format!("scrape failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_count_gaps_and_duplicates_per_partition() {
        let mut sequence = Sequence::new(2, true);
        assert_eq!(sequence.see(0), (true, 0));
        assert_eq!(sequence.see(1), (true, 0));
        assert_eq!(sequence.see(4), (true, 1));
        assert_eq!(sequence.see(2), (false, 0));
        assert_eq!(sequence.see(3), (true, 0));
    }

    #[test]
    fn sequences_know_when_everything_below_a_number_has_come() {
        let mut sequence = Sequence::new(2, true);
        assert!(sequence.has_all_below(0));
        assert!(!sequence.has_all_below(1));
        sequence.see(0);
        assert!(sequence.has_all_below(1));
        assert!(!sequence.has_all_below(2));
        sequence.see(2);
        assert!(!sequence.has_all_below(3), "1 has not come");
        sequence.see(1);
        assert!(sequence.has_all_below(3));
        assert!(!sequence.has_all_below(4));
    }
}
