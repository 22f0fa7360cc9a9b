//! The command line (SPEC section 6).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use humantime::parse_duration;

use crate::kafka_config::KafkaArg;

/// Streams Kafka topics to HTTP clients as Server-Sent Events.
///
/// Without brokers (no `--brokers`, no `KAFKA_BROKERS`) it starts an embedded demo cluster
/// with streams fed by a generator of recent-change events.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Cli {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8092")]
    pub listen: SocketAddr,

    /// Kafka bootstrap servers (or `bootstrap.servers` in `--kafka` or the config file's
    /// `[kafka]` table). Without them, an embedded demo cluster is started.
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// A librdkafka client property, such as `security.protocol=SASL_SSL`,
    /// `sasl.mechanism=SCRAM-SHA-512`, `sasl.username=NAME` or `ssl.ca.location=FILE`.
    /// Repeatable; overrides the config file's `[kafka]` table. A secret given here shows in
    /// the process listing: use --kafka-from-env or --kafka-from-file for those.
    #[arg(long = "kafka", value_name = "KEY=VALUE", value_parser = KafkaArg::literal)]
    pub kafka: Vec<KafkaArg>,

    /// A librdkafka client property whose value is read from an environment variable, such
    /// as `sasl.password=KAFKA_PASSWORD`. Repeatable.
    #[arg(long = "kafka-from-env", value_name = "KEY=VAR", value_parser = KafkaArg::env)]
    pub kafka_from_env: Vec<KafkaArg>,

    /// A librdkafka client property whose value is read from a file (one trailing line
    /// break dropped), such as `sasl.password=/run/secrets/kafka-password`. Repeatable.
    #[arg(long = "kafka-from-file", value_name = "KEY=PATH", value_parser = KafkaArg::file)]
    pub kafka_from_file: Vec<KafkaArg>,

    /// A stream a client may ask for by name, over one or more topics. Repeatable.
    #[arg(long = "stream", value_name = "NAME=TOPIC[,TOPIC...]", value_parser = parse_stream)]
    pub streams: Vec<StreamArg>,

    /// A TOML file of streams and Kafka settings: `[[stream]]` tables with `name`, `topics`,
    /// `description` and `drop_canary`, and a `[kafka]` table of librdkafka properties,
    /// each a value or `{ env = "VAR" }` / `{ file = "PATH" }` to read it from there.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What event ids hold: the next offset of each partition, or the timestamp of the last
    /// event (for topics mirrored across datacenters).
    #[arg(long, value_enum, default_value_t = Ids::Offset)]
    pub ids: Ids,

    /// How long a stream may stay silent before it sends a heartbeat.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat: Duration,

    /// How long a stream stays open before it ends cleanly and the client resumes; 0 means
    /// no limit.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub max_connection_duration: Duration,

    /// The most streams one client IP address may hold open at once; more get 429.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// The most streams open at once from all clients; more get 503 with Retry-After.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// How long a write to a client may stay blocked (the client stopped reading) before
    /// its connection is closed; it resumes with the last id it received. 0 means never.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub stalled_client_timeout: Duration,

    /// On SIGTERM or Ctrl-C, how long open streams get to end before the process exits.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// The `--ids` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ids {
    /// `{"topic","partition","offset"}`: the next offset not yet received.
    Offset,
    /// `{"topic","partition","timestamp"}`: the timestamp of the last event received.
    Timestamp,
}

/// One `--stream NAME=TOPIC[,TOPIC...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArg {
    /// The name clients use in `/v2/stream/{name}`.
    pub name: String,
    /// The topics the stream reads.
    pub topics: Vec<String>,
}

fn parse_stream(value: &str) -> Result<StreamArg, String> {
    let (name, topics) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=TOPIC[,TOPIC...], got {value:?}"))?;
    Ok(StreamArg {
        name: name.trim().to_owned(),
        topics: topics.split(',').map(|t| t.trim().to_owned()).collect(),
    })
}

impl Cli {
    /// The brokers, unless none were given (an empty `KAFKA_BROKERS` counts as none).
    pub fn brokers(&self) -> Option<&str> {
        self.brokers
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    }

    /// Every `--kafka`, `--kafka-from-env` and `--kafka-from-file`.
    pub fn kafka_args(&self) -> Vec<&KafkaArg> {
        self.kafka
            .iter()
            .chain(&self.kafka_from_env)
            .chain(&self.kafka_from_file)
            .collect()
    }

    /// The connection duration limit, `None` for `0`.
    pub fn stalled_client_timeout(&self) -> Option<Duration> {
        Some(self.stalled_client_timeout).filter(|d| !d.is_zero())
    }

    pub fn max_connection_duration(&self) -> Option<Duration> {
        Some(self.max_connection_duration).filter(|d| !d.is_zero())
    }
}
