//! The minimal mount: Kafka topics served as Server-Sent Events on bare hyper 1.x.
//!
//! Each `--stream NAME=TOPIC[,TOPIC...]` is served at `GET /v2/stream/NAME`, and its handler
//! is one library call, `sse.respond(topics, &parts)`: the event stream, or the
//! `application/problem+json` refusal (a bad `Last-Event-ID` or `since`, Kafka unavailable),
//! in one body type that hyper serves as it is. Anything else is a 404 problem.
//!
//! ```text
//! cargo run --example hyper_service -- --brokers 127.0.0.1:9092 \
//!     --stream recentchange=eqiad.mediawiki.recentchange,codfw.mediawiki.recentchange
//! curl -N localhost:8093/v2/stream/recentchange
//! ```
//!
//! The full service, with filters, limits, metrics and a demo cluster, is `axum_service`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{KafkaSse, Problem, ResponseBody, START_ID_HEADER};
use tokio::signal;

/// Serves Kafka topics as Server-Sent Events at /v2/stream/NAME.
#[derive(Debug, Parser)]
struct Cli {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8093")]
    listen: SocketAddr,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    brokers: String,
    /// A stream, by name, over one or more topics. Repeatable.
    #[arg(long = "stream", required = true, value_name = "NAME=TOPIC[,TOPIC...]")]
    #[arg(value_parser = parse_stream)]
    streams: Vec<(String, Vec<String>)>,
    /// Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`...). Repeatable.
    /// Values on a command line show in process listings: `axum_service` also reads them
    /// from the environment or a file.
    #[arg(long = "kafka", value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

fn parse_stream(value: &str) -> Result<(String, Vec<String>), String> {
    let (name, topics) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=TOPIC[,TOPIC...], got {value:?}"))?;
    Ok((
        name.to_owned(),
        topics.split(',').map(str::to_owned).collect(),
    ))
}

/// Answers one request: a named stream's events, or a problem.
async fn handle(
    sse: KafkaSse,
    streams: Arc<HashMap<String, Vec<String>>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, _body) = request.into_parts();
    let name = parts.uri.path().strip_prefix("/v2/stream/");
    let topics = name
        .and_then(|name| streams.get(name))
        .filter(|_| parts.method == Method::GET);
    // The library call: it reads Last-Event-ID, `since` and Accept from the request.
    let mut response = match topics {
        Some(topics) => sse.respond(topics, &parts).await,
        None => {
            let detail = format!("nothing at {} {}", parts.method, parts.uri.path());
            Problem::new(StatusCode::NOT_FOUND, "not-found", detail).to_http_response()
        }
    };
    // Pages on any origin may read the streams and where they started.
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, START_ID_HEADER.into());
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One `KafkaSse` serves every request: it shares metadata, look-ups and live streams.
    let cli = Cli::parse();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &cli.brokers);
    for property in &cli.kafka {
        // The value may be a secret: the message names the key only.
        let Some((key, value)) = property.split_once('=') else {
            anyhow::bail!("--kafka takes KEY=VALUE; one has no '='");
        };
        config.set(key.trim(), value);
    }
    let sse = KafkaSse::builder(config)
        .build()
        .context("creating the Kafka client")?;
    let streams = Arc::new(cli.streams.into_iter().collect::<HashMap<_, _>>());

    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let graceful = GracefulShutdown::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        // Accept connections until the shutdown signal, and serve each on its own task; out
        // of file descriptors, wait a little.
        let tcp = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (sse, streams) = (sse.clone(), streams.clone());
        let service = service_fn(move |request| handle(sse.clone(), streams.clone(), request));
        // A client gets 10 s to send a request head, the first or the next on a kept-alive
        // connection; slow and idle connections cannot pile up.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(tcp), service);
        tokio::spawn(graceful.watch(connection));
    }
    // End every stream after a whole frame, and give the responses ten seconds to finish.
    sse.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// Completes on Ctrl-C, or on SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut terminate) = signal::unix::signal(signal::unix::SignalKind::terminate()) {
        tokio::select! {
            _ = signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        return;
    }
    let _ = signal::ctrl_c().await;
}
