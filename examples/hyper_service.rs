//! The smallest mount: the stream route of `axum_service`, with the same flags, on bare
//! hyper 1.x. Each connection is served by `http1::Builder`; a stream's response body is
//! the library's `EventStream`, which is an `http_body::Body` as it is.
//!
//! ```text
//! cargo run --example hyper_service -- --listen 127.0.0.1:8093
//! curl -N 'localhost:8093/v2/stream/recentchange?filter=wiki=enwiki'
//! ```
//!
//! Only `GET /v2/stream/{a,b,...}` is served (with `OPTIONS` for CORS preflights); every
//! other path is a 404 problem.

#[path = "shared/mod.rs"]
mod shared;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use kafka_sse::{EventStream, Problem, LAST_EVENT_ID_HEADER, START_ID_HEADER};

use crate::shared::cli::Cli;
use crate::shared::service::{self, Service};
use crate::shared::shutdown;

/// A response body: a live stream, or a whole problem document.
type ResponseBody = Either<EventStream, Full<Bytes>>;

/// Answers one request from `peer`.
pub async fn handle(
    service: Service,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, _body) = request.into_parts();
    let names = parts
        .uri
        .path()
        .strip_prefix("/v2/stream/")
        .map(str::to_owned);
    let mut response = match (&parts.method, names) {
        (&Method::GET, Some(names)) => match service.open_stream(&names, &parts, peer.ip()).await {
            Ok(stream) => stream.map(Either::Left),
            Err(refused) => refused.map(|body| Either::Right(Full::new(body))),
        },
        (&Method::OPTIONS, Some(_)) => preflight(),
        _ => {
            let detail = format!("nothing at {} {}", parts.method, parts.uri.path());
            let problem = Problem::new(StatusCode::NOT_FOUND, "not-found", detail);
            problem
                .to_http_response()
                .map(|body| Either::Right(Full::new(body)))
        }
    };
    // Browsers on any origin may read the streams and the start position.
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, START_ID_HEADER.into());
    Ok(response)
}

/// A CORS preflight's answer: `GET` with a `Last-Event-ID` header is allowed.
fn preflight() -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, LAST_EVENT_ID_HEADER.into());
    response
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Read the flags, log through tracing, and connect to Kafka (or start the demo cluster,
    // which lives as long as `started`).
    let cli = Cli::parse();
    service::init_tracing();
    let started = Service::start(&cli)?;

    let listener = service::listen(cli.listen)?;
    println!("listening on http://{}", listener.local_addr()?);
    let graceful = GracefulShutdown::new();
    let signal = shutdown::signal();
    tokio::pin!(signal);
    loop {
        // Accept a connection until the shutdown signal; running out of file descriptors is
        // worth a pause, not an exit.
        let (tcp, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Serve it on its own task; every request gets the shared service and the peer. A
        // client that stops reading is closed after --stalled-client-timeout.
        let service = started.service.clone();
        let io = TokioIo::new(shutdown::with_stall_limit(
            tcp,
            cli.stalled_client_timeout(),
        ));
        let handler = service_fn(move |request| handle(service.clone(), peer, request));
        let connection = graceful.watch(http1::Builder::new().serve_connection(io, handler));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    // Stop accepting, end every stream after a whole frame, and wait for the responses to
    // finish, at most --shutdown-timeout.
    started.service.sse().shutdown();
    if tokio::time::timeout(cli.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace; exiting");
    }
    tracing::info!("stopped");
    Ok(())
}
