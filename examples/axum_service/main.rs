//! An EventStreams-like service on axum: named streams over Kafka topics, served as
//! Server-Sent Events, with filters, a stream list, metrics, a health check and a web page.
//!
//! With no Kafka at hand it starts an embedded demo cluster with live recent-change events:
//!
//! ```text
//! cargo run --example axum_service
//! curl -N localhost:8092/v2/stream/recentchange
//! open http://localhost:8092/
//! ```
//!
//! Against a real cluster, name the brokers and the streams:
//!
//! ```text
//! cargo run --release --example axum_service -- --brokers 127.0.0.1:9092 \
//!     --stream recentchange=eqiad.mediawiki.recentchange,codfw.mediawiki.recentchange \
//!     --max-connections-per-ip 4
//! ```
//!
//! A secured cluster takes librdkafka properties, secrets from the environment or a file:
//!
//! ```text
//! KAFKA_PASSWORD=... cargo run --release --example axum_service -- \
//!     --brokers broker-1.example.com:9093 --kafka security.protocol=SASL_SSL \
//!     --kafka sasl.mechanism=SCRAM-SHA-512 --kafka sasl.username=kafka-sse \
//!     --kafka-from-env sasl.password=KAFKA_PASSWORD --stream recentchange=recentchange
//! ```
//!
//! `--config streams.toml` describes streams, and Kafka settings, in a file:
//!
//! ```toml
//! [[stream]]
//! name = "recentchange"
//! aliases = ["mediawiki.recentchange"]   # other names for the same stream
//! topics = ["eqiad.mediawiki.recentchange", "codfw.mediawiki.recentchange"]
//! description = "Every change to every wiki"
//! drop_canary = true   # keep monitoring's canary events (meta.domain "canary") out
//!
//! [kafka]              # any librdkafka property; the command line wins
//! "security.protocol" = "SASL_SSL"
//! "sasl.password" = { file = "/run/secrets/kafka-password" }   # or { env = "VAR" }
//! ```
//!
//! Routes:
//!
//! - `GET /v2/stream/{a,b,...}`: the named streams' events together (names or aliases);
//!   query `since`, `last-event-id` and repeatable `filter=FIELD=VALUE` /
//!   `filter=FIELD!=VALUE`.
//! - `GET /v2/streams`: the streams as JSON, with their aliases, topics and descriptions.
//! - `GET /metrics`: Prometheus text. `GET /healthz`: whether Kafka answers.
//! - `GET /`: a page that shows a stream live in the browser, with a chart of event counts.
//! - `GET /?spec`: the OpenAPI document of the service, streams included; `GET /?doc`: a
//!   page that renders it (Swagger UI, served from `/doc/`, no network needed).
//!
//! Every error is an `application/problem+json` body; `--help` lists the flags.
//!
//! The files, one concept each: `cli.rs` the flags; `service.rs` start-up and the stream
//! route's one library call; `config_file.rs` the `--config` file; `kafka_config.rs` the
//! librdkafka properties and where secrets come from; `catalog.rs` the named streams, their
//! aliases and filters; `limit.rs` the stream limits; `routes.rs` the axum router;
//! `openapi.rs` the OpenAPI document and its page; `listener.rs` how the service listens;
//! `server.rs` how connections are served, with their timeouts and caps; `shutdown.rs`
//! graceful shutdown; `demo.rs` and `generator.rs` the embedded demo cluster and its
//! events; `index.html` the web page.

mod catalog;
mod cli;
mod config_file;
mod demo;
mod generator;
mod kafka_config;
mod limit;
mod listener;
mod openapi;
mod routes;
mod server;
mod service;
mod shutdown;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::routes::{app, AppState};
use crate::server::ServeOptions;
use crate::service::{Service, Started};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Read the flags, then log through tracing (RUST_LOG, default info).
    let cli = Cli::parse();
    init_tracing();

    // Record metrics for /metrics; histograms need their upkeep run now and then.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });

    // Connect to Kafka, or start the demo cluster, which runs until `demo` is dropped.
    let Started { service, demo } = Service::start(&cli)?;
    let app = app(AppState {
        service: service.clone(),
        metrics,
    });

    // Serve; the first stdout line tells people and tests where.
    let listener = listener::bind(cli.listen)?;
    let address = listener.local_addr()?;
    println!("listening on http://{address}");
    for stream in service.catalog().streams() {
        tracing::info!(
            "stream {}: http://{address}/v2/stream/{}",
            stream.name,
            stream.name
        );
    }
    // Connections: a head within --header-read-timeout, writes never blocked longer than
    // --stalled-client-timeout, and at most --max-open-connections open (per address too).
    let options = ServeOptions {
        header_read_timeout: cli.header_read_timeout,
        max_open: cli
            .max_open_connections
            .unwrap_or_else(|| server::default_max_open(256)),
        max_open_per_ip: cli.max_open_connections_per_ip,
        stalled: cli.stalled_client_timeout(),
    };
    tracing::info!(max = options.max_open, "open connection cap");
    // On SIGTERM or Ctrl-C: stop accepting, end every stream after a whole frame, and exit
    // once the responses are done, or after --shutdown-timeout.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let sse = service.sse().clone();
    let server = server::serve(listener, app, options, async move {
        shutdown::signal().await;
        sse.shutdown();
        let _ = signalled.send(());
    });
    let on_signal = async {
        let _ = on_signal.await;
    };
    shutdown::serve_with_grace(
        async {
            server.await;
            Ok(())
        },
        on_signal,
        cli.shutdown_timeout,
    )
    .await?;
    tracing::info!("stopped");
    drop(demo);
    Ok(())
}

/// Logs to stderr through `tracing`, `info` unless `RUST_LOG` says otherwise; librdkafka's
/// own log lines (through the `log` crate) arrive here too.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
