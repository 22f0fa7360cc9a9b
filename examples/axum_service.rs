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
//! `--config streams.toml` describes streams in a file:
//!
//! ```toml
//! [[stream]]
//! name = "recentchange"
//! topics = ["eqiad.mediawiki.recentchange", "codfw.mediawiki.recentchange"]
//! description = "Every change to every wiki"
//! drop_canary = true   # keep monitoring's canary events (meta.domain "canary") out
//! ```
//!
//! Routes:
//!
//! - `GET /v2/stream/{a,b,...}`: the named streams' events together; query `since`,
//!   `last-event-id` and repeatable `filter=FIELD=VALUE` / `filter=FIELD!=VALUE`.
//! - `GET /v2/streams`: the streams as JSON, with their topics and descriptions.
//! - `GET /metrics`: Prometheus text. `GET /healthz`: whether Kafka answers.
//! - `GET /`: a page that shows a stream live in the browser.
//!
//! Every error is an `application/problem+json` body; `--help` lists the flags.

#[path = "shared/mod.rs"]
mod shared;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use kafka_sse::{Problem, LAST_EVENT_ID_HEADER, START_ID_HEADER};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::cors::{Any, CorsLayer};

use crate::shared::cli::Cli;
use crate::shared::service::{self, Service};
use crate::shared::shutdown;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The stream route and its configuration.
    pub service: Service,
    /// Renders the metrics recorded so far.
    pub metrics: PrometheusHandle,
}

/// The service's routes, for `main` and for tests that serve it themselves.
///
/// Serve it with `into_make_service_with_connect_info::<Peer>()`: the per-IP limit
/// needs the client's address.
pub fn app(state: AppState) -> Router {
    // Browsers on any origin may read the streams and resume them with Last-Event-ID, and
    // scripts may read where a stream started.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([LAST_EVENT_ID_HEADER])
        .expose_headers([START_ID_HEADER]);
    Router::new()
        .route("/", get(index))
        .route("/v2/stream/{streams}", get(stream))
        .route("/v2/streams", get(streams))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(cors)
        .with_state(Arc::new(state))
}

type Shared = State<Arc<AppState>>;

/// `GET /v2/stream/{a,b,...}`: the event stream, or a problem.
async fn stream(
    State(state): Shared,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    names: Result<Path<String>, PathRejection>,
    parts: Parts,
) -> Response {
    let names = match names {
        Ok(Path(names)) => names,
        Err(rejection) => {
            return problem(StatusCode::BAD_REQUEST, "bad-path", rejection.body_text())
        }
    };
    match state.service.open_stream(&names, &parts, peer.ip()).await {
        Ok(stream) => stream.map(Body::new).into_response(),
        Err(refused) => refused.map(Body::from).into_response(),
    }
}

/// `GET /v2/streams`: every stream with its topics and description.
async fn streams(State(state): Shared) -> Response {
    Json(state.service.catalog().streams()).into_response()
}

/// `GET /metrics`: the Prometheus text exposition of every metric.
async fn metrics(State(state): Shared) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: 200 when Kafka answers a metadata request, else a 503 problem.
async fn healthz(State(state): Shared) -> Response {
    match state.service.sse().check_kafka().await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "kafka": "reachable"})).into_response(),
        Err(error) => error.to_http_response().map(Body::from).into_response(),
    }
}

/// `GET /`: the web page.
async fn index() -> Html<&'static str> {
    Html(include_str!("static/index.html"))
}

async fn not_found(parts: Parts) -> Response {
    let detail = format!(
        "nothing at {}; streams are at /v2/stream/{{name}}",
        parts.uri.path()
    );
    problem(StatusCode::NOT_FOUND, "not-found", detail)
}

async fn method_not_allowed(parts: Parts) -> Response {
    let detail = format!("{} is not allowed here; use GET", parts.method);
    problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail)
}

fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, kind, detail)
        .to_http_response()
        .map(Body::from)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Read the flags, then log through tracing (RUST_LOG, default info).
    let cli = Cli::parse();
    service::init_tracing();

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

    // Connect to Kafka, or start the demo cluster, which lives as long as `started`.
    let started = Service::start(&cli)?;
    let app = app(AppState {
        service: started.service.clone(),
        metrics,
    });

    // Serve; the first stdout line tells people and tests where. Connections whose client
    // stopped reading are closed after --stalled-client-timeout.
    let listener = StallLimitedListener {
        tcp: service::listen(cli.listen)?,
        stalled: cli.stalled_client_timeout(),
    };
    let address = listener.tcp.local_addr()?;
    println!("listening on http://{address}");
    for stream in started.service.catalog().streams() {
        tracing::info!(
            "stream {}: http://{address}/v2/stream/{}",
            stream.name,
            stream.name
        );
    }
    // On SIGTERM or Ctrl-C: stop accepting, end every stream after a whole frame, and exit
    // once the responses are done, or after --shutdown-timeout.
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let sse = started.service.sse().clone();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(async move {
            shutdown::signal().await;
            sse.shutdown();
            let _ = signalled.send(());
        });
    let on_signal = async {
        let _ = on_signal.await;
    };
    serve_with_grace(server.into_future(), on_signal, cli.shutdown_timeout).await?;
    tracing::info!("stopped");
    drop(started);
    Ok(())
}

/// Runs `server` until it finishes by itself after a shutdown signal, or at most `grace`
/// after the signal.
async fn serve_with_grace(
    server: impl Future<Output = std::io::Result<()>>,
    signalled: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::select! {
        result = server => result,
        () = async { signalled.await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace; exiting");
            Ok(())
        }
    }
}

/// The client's address, as the per-IP limit sees it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, StallLimitedListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, StallLimitedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// A TCP listener whose connections fail their writes once one has been blocked for
/// `stalled`, so a client that stops reading is closed and its stream released.
struct StallLimitedListener {
    tcp: tokio::net::TcpListener,
    stalled: Option<Duration>,
}

impl axum::serve::Listener for StallLimitedListener {
    type Io = std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<tokio::net::TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, peer) = axum::serve::Listener::accept(&mut self.tcp).await;
        (shutdown::with_stall_limit(tcp, self.stalled), peer)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
