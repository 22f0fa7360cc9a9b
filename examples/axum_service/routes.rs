//! The service's routes: the stream, the stream list, metrics, health and the web page,
//! with CORS for browsers on any origin and a problem document for every error.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kafka_sse::{Problem, LAST_EVENT_ID_HEADER, START_ID_HEADER};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{Any, CorsLayer};

use crate::listener::Peer;
use crate::service::Service;

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
/// Requests need `ConnectInfo<Peer>` in their extensions (the server puts it there): the
/// per-IP limit needs the client's address.
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
    match names {
        Ok(Path(names)) => state
            .service
            .open_stream(&names, &parts, peer.ip())
            .await
            .into_response(),
        Err(rejection) => problem(StatusCode::BAD_REQUEST, "bad-path", rejection.body_text()),
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
        Err(error) => error.to_http_response().into_response(),
    }
}

/// `GET /`: the web page.
async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
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
        .into_response()
}
