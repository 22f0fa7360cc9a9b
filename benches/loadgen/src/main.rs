//! A load generator for event-stream servers: this crate's example services and, for
//! comparison, Wikimedia's KafkaSSE (benches/kafkasse), both fed from the same Kafka.
//!
//! It produces numbered, time-stamped recent-change events, drains topics and streams as
//! fast as possible, holds thousands of concurrent stream clients while it measures latency,
//! losses and the server's memory, and times new clients' first events. Every measurement
//! prints a JSON object (and appends it to `--json-out`); `report` turns those into a
//! Markdown table. The scenario scripts in `benches/run/` drive it; see BENCHMARKS.md.
//! `serve` mounts the library on bare hyper with a chosen deserializer and fan-out setting,
//! to measure what a setting costs.
//!
//! ```text
//! cargo build --release -p kafka-sse-loadgen --example axum_service
//! L=target/release/kafka-sse-loadgen
//! $L fill --brokers 127.0.0.1:9092 --topic bench.drain --count 1000000 --size 1024
//! $L raw-drain --brokers 127.0.0.1:9092 --topic bench.drain --count 1000000
//! $L sse-drain --url http://127.0.0.1:8092/v2/stream/drain --count 1000000 \
//!     --last-event-id '[{"topic":"bench.drain","partition":0,"offset":0}]'
//! $L clients --url http://127.0.0.1:8092/v2/stream/live --connections 1000 --duration 30s \
//!     --brokers 127.0.0.1:9092 --topic bench.live --rate 100 --server-pid "$SERVER_PID"
//! $L first-event --url http://127.0.0.1:8092/v2/stream/live --trials 200 \
//!     --brokers 127.0.0.1:9092 --topic bench.live --rate 100
//! $L storm --url http://127.0.0.1:8092/v2/stream/storm --connections 10000 \
//!     --brokers 127.0.0.1:9092 --topic bench.storm --rate 20 --control "$DIR" \
//!     --server-pid "$SERVER_PID" --metrics-url http://127.0.0.1:8092/metrics
//! ```
//!
//! `storm` holds EventSource-like clients through a restart of the server that another
//! process (benches/run/restart-storm.sh) performs; see `storm.rs` for the hand-over.
//!
//! Many connections need many file descriptors: raise the limit first (`ulimit -n 20000`).

mod clients;
mod event;
mod eventsource;
mod http;
mod kafka;
mod probe;
mod report;
mod serve;
mod server_watch;
mod storm;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use tokio::time::Instant;

use crate::clients::{ClientsSpec, FirstEventSpec};
use crate::http::{open, Read, RequestOptions, Target};
use crate::kafka::{ConsumerApi, Drained, Feeder, ProduceSpec};
use crate::probe::Probe;
use crate::report::emit;

/// Load generator and measurement tool for Kafka-to-SSE servers.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce numbered, time-stamped events at a set rate.
    Produce {
        #[command(flatten)]
        topic: TopicArgs,
        /// Events per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// How many events.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Produce events as fast as possible (to fill a topic for the drain test).
    Fill {
        #[command(flatten)]
        topic: TopicArgs,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Read a topic from the beginning with a bare librdkafka consumer: the limit.
    RawDrain {
        #[arg(long, env = "KAFKA_BROKERS")]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
        /// `base` (a `BaseConsumer::poll` loop on one thread) or `stream` (`StreamConsumer`
        /// on tokio, as the crate reads).
        #[arg(long, value_enum, default_value_t = ConsumerApi::Base)]
        api: ConsumerApi,
        /// Give up after this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        output: Output,
    },
    /// Drain an SSE (or NDJSON) stream with one client as fast as possible.
    SseDrain {
        #[command(flatten)]
        stream: StreamArgs,
        /// Stop after this many events.
        #[arg(long)]
        count: u64,
        /// Partitions of the topic, to check per-partition event order.
        #[arg(long, default_value_t = 1)]
        partitions: u64,
        /// The server's PID, to report the CPU time it spent.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        output: Output,
    },
    /// Hold many concurrent stream clients and measure delivery, latency, losses and the
    /// server's memory.
    Clients {
        #[command(flatten)]
        stream: StreamArgs,
        /// Fast clients.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Of the fast clients, how many connect (and settle) before the memory baseline is
        /// taken, so that the shared live stream already exists; 0 measures a cold start.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// The measurement window (production time with --brokers/--topic).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Slow clients, reading at --slow-fraction of the event rate, next to the fast ones.
        #[arg(long, default_value_t = 0)]
        slow: usize,
        #[arg(long, default_value_t = 0.01)]
        slow_fraction: f64,
        /// Connections being set up at once. Kept under the listen backlog of the servers
        /// under test (tokio's and Node's defaults are 128 and 511) so that the measurement
        /// is not of dropped SYNs and their one-second retransmission.
        #[arg(long, default_value_t = 100)]
        connect_concurrency: usize,
        /// Bound on each connection set-up.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        connect_timeout: Duration,
        /// How long to wait after the window for the last events.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// Pause between "all connected" and the server memory sample.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Per-connection read buffer, in bytes.
        #[arg(long, default_value_t = 16 * 1024)]
        read_buffer: usize,
        #[command(flatten)]
        feed: FeedArgs,
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Time new live clients' response heads and first events, one client at a time.
    FirstEvent {
        #[command(flatten)]
        stream: StreamArgs,
        #[arg(long, default_value_t = 100)]
        trials: usize,
        /// Pause between trials.
        #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
        pause: Duration,
        /// Clients held open meanwhile, so the live stream is already being shared.
        #[arg(long, default_value_t = 1)]
        background: usize,
        /// Bound on each trial.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        feed: FeedArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Hold EventSource-like clients (last id, `retry:`, reconnection) through a restart
    /// of the server, and measure how they all catch up.
    Storm {
        #[command(flatten)]
        stream: StreamArgs,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// First connections being set up at once.
        #[arg(long, default_value_t = 100)]
        connect_concurrency: usize,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        connect_timeout: Duration,
        /// Per-connection read buffer, in bytes.
        #[arg(long, default_value_t = 16 * 1024)]
        read_buffer: usize,
        /// The reconnection time until the server sends `retry:`.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        default_retry: Duration,
        /// Live production before the load generator writes `ready`.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// The directory of the hand-over files (ready, killed, restarting, restarted).
        #[arg(long)]
        control: std::path::PathBuf,
        /// How long to wait for each step of the restart.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        restart_timeout: Duration,
        /// How long clients get to catch up after the restart.
        #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
        catch_up_timeout: Duration,
        /// Production after every client caught up.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        after: Duration,
        /// How long clients get for the last events once production stops.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[command(flatten)]
        feed: FeedArgs,
        /// The server's PID before the restart (the new one comes in `restarted`).
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's Prometheus endpoint, for its `kafka_sse_consumers` gauge.
        #[arg(long)]
        metrics_url: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Serve streams with the library on bare hyper, for A/B runs of its settings.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8094")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "KAFKA_BROKERS")]
        brokers: String,
        /// NAME=TOPIC[,TOPIC...], served at /v2/stream/NAME. Repeatable.
        #[arg(long = "stream", required = true, value_parser = serve::parse_route)]
        routes: Vec<serve::Route>,
        #[arg(long, value_enum, default_value_t = serve::DeserializerChoice::Passthrough)]
        deserializer: serve::DeserializerChoice,
        /// Give every client its own consumer (the fan-out is on by default).
        #[arg(long)]
        no_fan_out: bool,
        /// Events a client may fall behind the shared stream before it moves to its own
        /// consumer (the library's default otherwise).
        #[arg(long)]
        fan_out_queue: Option<usize>,
        /// A librdkafka property for the server's clients, KEY=VALUE (for example
        /// `queued.max.messages.kbytes=65536`); it wins over the library's defaults.
        /// Repeatable.
        #[arg(long = "kafka", value_parser = serve::parse_property)]
        properties: Vec<(String, String)>,
    },
    /// Print a Markdown table from the JSON lines of earlier runs.
    Report {
        /// The JSON-lines file (--json-out of the runs).
        #[arg(long)]
        input: String,
        /// A column: KEY or KEY=Title; KEY may be a dotted path. Repeatable.
        #[arg(long = "column", required = true)]
        columns: Vec<String>,
        /// A ratio column, KEY:LABEL: each row's KEY over the KEY of row LABEL. Repeatable.
        #[arg(long = "ratio")]
        ratios: Vec<String>,
    },
}

/// The topic to produce to.
#[derive(Debug, Args)]
struct TopicArgs {
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// Serialized event size in bytes, padded; 0 keeps the sample events' own size.
    #[arg(long, default_value_t = 0)]
    size: usize,
    /// Partitions, when the topic is created.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// A JSON-lines file of sample events; the built-in recent-change sample otherwise.
    #[arg(long)]
    sample: Option<String>,
}

/// The producer embedded in `clients` and `first-event`.
#[derive(Debug, Args)]
struct FeedArgs {
    /// Produce during the measurement (needs --topic); otherwise events come from outside.
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    /// Events per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 0)]
    size: usize,
    /// Partitions of the topic (created with this many when missing).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
}

impl FeedArgs {
    async fn spec(&self) -> anyhow::Result<Option<ProduceSpec>> {
        let (Some(brokers), Some(topic)) = (&self.brokers, &self.topic) else {
            return Ok(None);
        };
        let partitions = kafka::ensure_topic(brokers, topic, self.partitions).await?;
        Ok(Some(ProduceSpec {
            brokers: brokers.clone(),
            topic: topic.clone(),
            rate: Some(self.rate),
            count: 0,
            size: self.size,
            partitions,
            sample: None,
            progress: None,
            run: None,
        }))
    }
}

/// The stream to read.
#[derive(Debug, Args)]
struct StreamArgs {
    /// The stream URL, e.g. http://127.0.0.1:8092/v2/stream/recentchange.
    #[arg(long)]
    url: String,
    /// A Last-Event-ID header, e.g. '[{"topic":"t","partition":0,"offset":0}]'.
    #[arg(long)]
    last_event_id: Option<String>,
    /// Ask for NDJSON (Accept: application/json) instead of SSE.
    #[arg(long)]
    ndjson: bool,
}

impl StreamArgs {
    fn target(&self) -> anyhow::Result<(Target, RequestOptions)> {
        Ok((
            Target::parse(&self.url)?,
            RequestOptions {
                last_event_id: self.last_event_id.clone(),
                ndjson: self.ndjson,
                recv_buffer: None,
            },
        ))
    }
}

/// The server process to watch.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The server's PID, to read its memory, threads and broker connections from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The broker address whose connections count (defaults to --brokers).
    #[arg(long)]
    broker: Option<String>,
    /// The server's Prometheus endpoint, for its fan-out gauges.
    #[arg(long)]
    metrics_url: Option<String>,
    /// End the window early when the server has more threads than this.
    #[arg(long, default_value_t = 20_000)]
    max_server_threads: u64,
    /// End the window early when the server's RSS exceeds this many MiB.
    #[arg(long, default_value_t = 6144)]
    max_server_rss_mib: u64,
}

/// Where results go besides stdout.
#[derive(Debug, Args)]
struct Output {
    /// The row name in reports.
    #[arg(long, default_value = "run")]
    label: String,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json_out: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Produce {
            topic,
            rate,
            count,
            output,
        } => produce(topic, Some(rate), count, output).await,
        Command::Fill {
            topic,
            count,
            output,
        } => produce(topic, None, count, output).await,
        Command::RawDrain {
            brokers,
            topic,
            count,
            api,
            timeout,
            output,
        } => {
            let drained = kafka::raw_drain(&brokers, &topic, count, api, timeout).await?;
            emit(&drained.to_json(&output.label), output.json_out.as_deref())
        }
        Command::SseDrain {
            stream,
            count,
            partitions,
            server_pid,
            timeout,
            output,
        } => {
            let (drained, content_type) =
                sse_drain(&stream, count, partitions, server_pid, timeout).await?;
            let mut result = drained.to_json(&output.label);
            result["content_type"] = content_type.into();
            emit(&result, output.json_out.as_deref())
        }
        Command::Clients {
            stream,
            connections,
            warmup,
            duration,
            slow,
            slow_fraction,
            connect_concurrency,
            connect_timeout,
            grace,
            settle,
            read_buffer,
            feed,
            server,
            output,
        } => {
            let (target, request) = stream.target()?;
            warn_about_fd_limit(connections + slow);
            let feed_spec = feed.spec().await?;
            let broker = server.broker.as_deref().or(feed.brokers.as_deref());
            let spec = ClientsSpec {
                target,
                request,
                connections,
                warmup,
                duration,
                connect_concurrency,
                connect_timeout,
                grace,
                settle,
                slow,
                slow_fraction,
                read_buffer,
                rate: feed.rate,
                partitions: feed_spec.as_ref().map_or(1, |f| f.partitions as u64),
                feed: feed_spec,
                probe: server.server_pid.map(|pid| Probe {
                    pid,
                    broker_port: broker.and_then(probe::broker_port),
                }),
                metrics_url: server.metrics_url,
                limits: clients::ServerLimits {
                    threads: server.max_server_threads,
                    rss_mib: server.max_server_rss_mib,
                },
            };
            let result = clients::run_clients(spec, &output.label).await?;
            emit(&result, output.json_out.as_deref())
        }
        Command::FirstEvent {
            stream,
            trials,
            pause,
            background,
            timeout,
            feed,
            output,
        } => {
            let (target, request) = stream.target()?;
            let spec = FirstEventSpec {
                target,
                request,
                trials,
                pause,
                background,
                limit: timeout,
                feed: feed.spec().await?,
            };
            let result = clients::run_first_event(spec, &output.label).await?;
            emit(&result, output.json_out.as_deref())
        }
        Command::Storm {
            stream,
            connections,
            connect_concurrency,
            connect_timeout,
            read_buffer,
            default_retry,
            settle,
            control,
            restart_timeout,
            catch_up_timeout,
            after,
            grace,
            feed,
            server_pid,
            metrics_url,
            output,
        } => {
            let (target, request) = stream.target()?;
            if stream.ndjson {
                bail!("storm clients are EventSource clients: SSE only");
            }
            warn_about_fd_limit(connections);
            let Some(feed_spec) = feed.spec().await? else {
                bail!("storm produces its own events: give --brokers and --topic");
            };
            let spec = storm::StormSpec {
                target,
                request,
                connections,
                connect_concurrency,
                connect_timeout,
                read_buffer,
                default_retry,
                partitions: feed_spec.partitions as u64,
                feed: feed_spec,
                settle,
                control,
                restart_timeout,
                catch_up_timeout,
                after,
                grace,
                server_pid,
                metrics_url,
            };
            let result = storm::run_storm(spec, &output.label).await?;
            emit(&result, output.json_out.as_deref())
        }
        Command::Serve {
            listen,
            brokers,
            routes,
            deserializer,
            no_fan_out,
            fan_out_queue,
            properties,
        } => {
            serve::serve(
                listen,
                &brokers,
                routes,
                deserializer,
                !no_fan_out,
                fan_out_queue,
                properties,
            )
            .await
        }
        Command::Report {
            input,
            columns,
            ratios,
        } => {
            print!("{}", report::table(&input, &columns, &ratios)?);
            Ok(())
        }
    }
}

async fn produce(
    topic: TopicArgs,
    rate: Option<f64>,
    count: u64,
    output: Output,
) -> anyhow::Result<()> {
    let partitions = kafka::ensure_topic(&topic.brokers, &topic.topic, topic.partitions).await?;
    let feeder = Feeder::start(ProduceSpec {
        brokers: topic.brokers,
        topic: topic.topic,
        rate,
        count,
        size: topic.size,
        partitions,
        sample: topic.sample,
        progress: Some(Duration::from_secs(5)),
        run: None,
    })?;
    let produced = feeder.finish().await?;
    if produced.failed > 0 {
        eprintln!("{} events were not delivered", produced.failed);
    }
    emit(&produced.to_json(&output.label), output.json_out.as_deref())
}

/// Reads one stream as fast as possible until `count` events, checking their order.
async fn sse_drain(
    stream: &StreamArgs,
    count: u64,
    partitions: u64,
    server_pid: Option<u32>,
    limit: Duration,
) -> anyhow::Result<(Drained, String)> {
    let (target, request) = stream.target()?;
    let cpu_before = (
        probe::cpu_seconds(None),
        server_pid.and_then(|pid| probe::cpu_seconds(Some(pid))),
    );
    let started = Instant::now();
    let deadline = started + limit;
    let (mut body, _) = open(&target, &request, 256 * 1024, limit).await?;
    let mut drained = Drained::default();
    let mut next: Vec<Option<u64>> = vec![None; partitions.max(1) as usize];
    let mut errors = 0u64;
    while drained.events < count {
        let read = tokio::time::timeout_at(
            deadline,
            body.read(&mut |event| {
                if event.error {
                    errors += 1;
                    return;
                }
                if drained.events == 0 {
                    drained.first_event = started.elapsed();
                }
                drained.events += 1;
                drained.data_bytes += event.data_len as u64;
                if let Some(seq) = event.stamp.seq {
                    let slot = &mut next[(seq % partitions.max(1)) as usize];
                    if slot.is_some_and(|expected| expected != seq) {
                        drained.gaps += 1;
                    }
                    *slot = Some(seq + partitions.max(1));
                }
            }),
        )
        .await
        .with_context(|| format!("read {} of {count} events in {limit:?}", drained.events))??;
        if errors > 0 {
            bail!(
                "the server sent an error event after {} events",
                drained.events
            );
        }
        match read {
            Read::Bytes(n) => drained.bytes += n as u64,
            Read::End => bail!(
                "the stream ended after {} of {count} events",
                drained.events
            ),
        }
    }
    drained.elapsed = started.elapsed();
    let spent = |before: Option<f64>, pid: Option<u32>| {
        before
            .zip(probe::cpu_seconds(pid))
            .map(|(before, after)| after - before)
    };
    drained.reader_cpu_s = spent(cpu_before.0, None);
    drained.server_cpu_s = server_pid.and_then(|pid| spent(cpu_before.1, Some(pid)));
    Ok((drained, body.content_type.clone()))
}

/// Warns when the open-file limit is too low for the connections asked for.
fn warn_about_fd_limit(connections: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(soft) = soft {
        if soft < connections + 64 {
            eprintln!(
                "warning: the open-file limit is {soft}, too low for {connections} connections; \
                 raise it first (ulimit -n)"
            );
        }
    }
}
