//! The service's routes: the stream, the stream list, metrics, health, the web page and the
//! OpenAPI document with its documentation page, with CORS for browsers on any origin and a
//! problem document for every error.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use kafka_sse::{Problem, LAST_EVENT_ID_HEADER, START_ID_HEADER};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{Any, CorsLayer};

use crate::listener::Peer;
use crate::openapi;
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
    // The OpenAPI document describes the streams configured now, at start-up.
    let spec = openapi::document(state.service.catalog())
        .to_pretty_json()
        .map(Bytes::from)
        .expect("an OpenAPI document always serializes");
    Router::new()
        .route("/", get(move |query| index(query, spec.clone())))
        .route("/v2/stream/{streams}", get(stream))
        .route("/v2/streams", get(streams))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(openapi::doc_page())
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

/// `GET /`: the web page; `GET /?spec`: the OpenAPI document; `GET /?doc`: a redirect to
/// the page that renders it.
async fn index(RawQuery(query): RawQuery, spec: Bytes) -> Response {
    let query = query.unwrap_or_default();
    let asks = |key: &str| form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == key);
    if asks("spec") {
        ([(CONTENT_TYPE, "application/json")], spec).into_response()
    } else if asks("doc") {
        Redirect::to(openapi::DOC_PATH).into_response()
    } else {
        Html(include_str!("index.html")).into_response()
    }
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
