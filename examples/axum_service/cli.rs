//! The command line (SPEC section 6).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use humantime::parse_duration;
use kafka_sse::IdForm;

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
    ///
    /// Aliases, other names for the same stream, follow the name after `|` (quote it in a
    /// shell): `--stream 'recentchange|mediawiki.recentchange=eqiad.rc,codfw.rc'`.
    #[arg(
        long = "stream",
        value_name = "NAME[|ALIAS...]=TOPIC[,TOPIC...]",
        value_parser = parse_stream
    )]
    pub streams: Vec<StreamArg>,

    /// A TOML file of streams and Kafka settings: `[[stream]]` tables with `name`,
    /// `aliases`, `topics`, `description` and `drop_canary`, and a `[kafka]` table of
    /// librdkafka properties, each a value or `{ env = "VAR" }` / `{ file = "PATH" }` to read
    /// it from there.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What event ids hold: the next offset of each partition, or the timestamp of the last
    /// event (for topics mirrored across datacenters).
    #[arg(long, value_enum, default_value_t = Ids::Offset)]
    pub ids: Ids,

    /// How event ids are written: the EventStreams JSON form up to 8 partitions and the
    /// compact form beyond (auto), or always one form. Either form is accepted back.
    #[arg(long, value_enum, default_value_t = IdFormat::Auto)]
    pub id_format: IdFormat,

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

    /// How long a connection may wait for, and take to send, a request's head (request line
    /// and headers), the first or the next on a kept-alive connection, before it is closed:
    /// hyper's header read timeout. It bounds slow-header clients and idle keep-alive
    /// connections alike.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// The most TCP connections open at once, streams or not. At the cap the service stops
    /// accepting (new connections wait in the kernel's queue) and logs it. Defaults to the
    /// open-file limit (raised to its hard limit) less a reserve for Kafka and files.
    #[arg(long, value_name = "N")]
    pub max_open_connections: Option<usize>,

    /// The most TCP connections open at once from one client address; its further ones are
    /// closed at once. Defaults to none: behind a reverse proxy every client has the
    /// proxy's address.
    #[arg(long, value_name = "N")]
    pub max_open_connections_per_ip: Option<usize>,

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

/// The `--id-format` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdFormat {
    /// JSON up to 8 partitions, compact beyond.
    Auto,
    /// `[{"topic":"t","partition":0,"offset":42}]`, as EventStreams writes them.
    Json,
    /// `k1~t~~AFQ`: a few bytes per partition, URL-safe.
    Compact,
}

impl IdFormat {
    /// The library's name for this form.
    pub fn form(self) -> IdForm {
        match self {
            IdFormat::Auto => IdForm::Auto,
            IdFormat::Json => IdForm::Json,
            IdFormat::Compact => IdForm::Compact,
        }
    }
}

/// One `--stream NAME[|ALIAS...]=TOPIC[,TOPIC...]`.
///
/// `|` separates the names because it is in no stream name or Kafka topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArg {
    /// The name clients use in `/v2/stream/{name}`.
    pub name: String,
    /// Other names for the same stream.
    pub aliases: Vec<String>,
    /// The topics the stream reads.
    pub topics: Vec<String>,
}

fn parse_stream(value: &str) -> Result<StreamArg, String> {
    let (names, topics) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME[|ALIAS...]=TOPIC[,TOPIC...], got {value:?}"))?;
    let mut names = names.split('|').map(|n| n.trim().to_owned());
    Ok(StreamArg {
        name: names.next().unwrap_or_default(),
        aliases: names.collect(),
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
