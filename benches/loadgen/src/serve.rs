//! A bare server for A/B measurements of the library itself: the stream route only, mounted
//! on hyper, with the deserializer and the fan-out chosen on the command line. The headline
//! numbers come from the axum example service; this one shows what a setting costs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{JsonPassThrough, JsonWithMeta, KafkaSse, Problem, RawUtf8, ResponseBody};

/// The deserializer to serve with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeserializerChoice {
    /// `JsonPassThrough`: the payload as it is (checked to be JSON).
    Passthrough,
    /// `JsonWithMeta`: parsed, Kafka metadata added under `meta`, serialized again.
    Meta,
    /// `RawUtf8`: the payload as UTF-8 text.
    Raw,
}

/// One `NAME=TOPIC[,TOPIC...]`.
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    topics: Vec<String>,
}

/// Parses `NAME=TOPIC[,TOPIC...]`.
pub fn parse_route(value: &str) -> Result<Route, String> {
    let (name, topics) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=TOPIC[,TOPIC...], got {value:?}"))?;
    Ok(Route {
        name: name.to_owned(),
        topics: topics.split(',').map(str::to_owned).collect(),
    })
}

/// Parses a KEY=VALUE librdkafka property.
pub fn parse_property(value: &str) -> Result<(String, String), String> {
    let (key, value) = value
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {value:?}"))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Serves `GET /v2/stream/NAME` for each route until the process ends.
pub async fn serve(
    listen: SocketAddr,
    brokers: &str,
    routes: Vec<Route>,
    deserializer: DeserializerChoice,
    fan_out: bool,
    fan_out_queue: Option<usize>,
    properties: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in properties {
        config.set(key, value);
    }
    let mut builder = KafkaSse::builder(config).fan_out(fan_out);
    if let Some(events) = fan_out_queue {
        builder = builder.fan_out_queue(events);
    }
    let builder = match deserializer {
        DeserializerChoice::Passthrough => builder.deserializer(JsonPassThrough),
        DeserializerChoice::Meta => builder.deserializer(JsonWithMeta),
        DeserializerChoice::Raw => builder.deserializer(RawUtf8),
    };
    let sse = builder.build().context("building the service")?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "listening on http://{} (pid {}, {deserializer:?}, fan-out {fan_out})",
        listener.local_addr()?,
        std::process::id()
    );
    let routes = std::sync::Arc::new(routes);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait rather than spin.
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (sse, routes) = (sse.clone(), routes.clone());
        tokio::spawn(async move {
            let handler = service_fn(move |request| handle(sse.clone(), routes.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), handler)
                .await;
        });
    }
}

async fn handle(
    sse: KafkaSse,
    routes: std::sync::Arc<Vec<Route>>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, _) = request.into_parts();
    let route = parts
        .uri
        .path()
        .strip_prefix("/v2/stream/")
        .and_then(|name| routes.iter().find(|r| r.name == name));
    Ok(match route {
        Some(route) => sse.respond(&route.topics, &parts).await,
        None => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "no such stream").to_http_response()
        }
    })
}
