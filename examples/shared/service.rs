//! What both example services share at run time: start-up from the command line, and the
//! stream route.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{
    EventStream, JsonWithMeta, KafkaSse, OffsetIds, Problem, StreamRequest, TimestampIds,
};
use tracing_subscriber::EnvFilter;

use super::catalog::{Catalog, EventFilter};
use super::cli::{Cli, Ids};
use super::demo::Demo;
use super::limit::ConnectionLimits;

/// How many connections the kernel may queue before the service accepts them. Tokio's
/// `TcpListener::bind` asks for 128, which a crowd of clients connecting at once overflows
/// (the rest wait for SYN retries, a second or more); Linux caps this at `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` with a backlog for crowds of simultaneous connects.
pub fn listen(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Logs to stderr through `tracing`, `info` unless `RUST_LOG` says otherwise; librdkafka's
/// own log lines (through the `log` crate) arrive here too.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The stream route's state, shared by every request.
#[derive(Debug, Clone)]
pub struct Service {
    sse: KafkaSse,
    catalog: Arc<Catalog>,
    limits: ConnectionLimits,
    demo: bool,
}

/// A started service, and the embedded demo cluster behind it when there is one.
///
/// The demo cluster lives as long as this value: keep it until the server stops.
#[derive(Debug)]
pub struct Started {
    /// The service.
    pub service: Service,
    /// The demo cluster, when no brokers were given.
    pub demo: Option<Demo>,
}

impl Service {
    /// Connects to the brokers the command line names, or starts the demo cluster, and
    /// builds the service. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// An invalid stream configuration, a client configuration librdkafka rejects, a demo
    /// cluster that does not start, or `--ids timestamp` on the demo cluster.
    pub fn start(cli: &Cli) -> anyhow::Result<Started> {
        let (demo, bootstrap, defaults) = match cli.brokers() {
            Some(brokers) => (None, brokers.to_owned(), Vec::new()),
            None => {
                if cli.ids == Ids::Timestamp {
                    bail!(
                        "--ids timestamp needs offset look-ups by timestamp, which the embedded \
                         demo cluster (librdkafka's mock) cannot do; give --brokers"
                    );
                }
                let demo = Demo::start().context("starting the demo cluster")?;
                let bootstrap = demo.bootstrap_servers();
                tracing::info!(%bootstrap, "no brokers given: started the embedded demo cluster");
                (Some(demo), bootstrap, Demo::streams())
            }
        };
        let catalog = Catalog::from_cli(cli, defaults)?;
        if catalog.streams().is_empty() {
            bail!("no streams: give --stream NAME=TOPIC[,TOPIC...] or --config FILE");
        }

        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &bootstrap);
        if demo.is_some() {
            // The mock cluster answers a fetch with no data only after the full wait
            // (librdkafka's default 500 ms), even when data arrives meanwhile.
            config.set("fetch.wait.max.ms", "50");
        }
        let mut builder = KafkaSse::builder(config)
            .deserializer(JsonWithMeta)
            .heartbeat(cli.heartbeat);
        builder = match cli.ids {
            Ids::Offset => builder.event_ids(OffsetIds),
            Ids::Timestamp => builder.event_ids(TimestampIds),
        };
        if let Some(duration) = cli.max_connection_duration() {
            builder = builder.max_connection_duration(duration);
        }
        let sse = builder.build().context("creating the Kafka client")?;

        let service = Service {
            sse,
            catalog: Arc::new(catalog),
            limits: ConnectionLimits::new(cli.max_connections_per_ip, cli.max_connections),
            demo: demo.is_some(),
        };
        Ok(Started { service, demo })
    }

    /// The library service, for health checks.
    pub fn sse(&self) -> &KafkaSse {
        &self.sse
    }

    /// The configured streams.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Answers `GET /v2/stream/{names}` from `peer`: the event stream, or a problem
    /// response (404 unknown stream, 400 bad request, 429 too many streams, 501 timestamp
    /// look-ups on the demo cluster, 503 Kafka unavailable).
    pub async fn open_stream(
        &self,
        names: &str,
        parts: &Parts,
        peer: IpAddr,
    ) -> Result<Response<EventStream>, Response<Bytes>> {
        let selection = self
            .catalog
            .select(names)
            .map_err(|problem| problem.to_http_response())?;
        let filters: Vec<String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .filter(|(name, _)| name == "filter")
                .map(|(_, value)| value.into_owned())
                .collect();
        let filter = EventFilter::new(&filters, &selection).map_err(|e| e.to_http_response())?;
        let mut request = StreamRequest::from_http(selection.topics, parts)
            .map_err(|e| e.to_http_response())?
            .label(selection.label);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let slot = self
            .limits
            .acquire(peer)
            .map_err(|refused| refused.to_http_response())?;
        let stream = self
            .sse
            .stream(request)
            .await
            .map_err(|error| match error {
                kafka_sse::Error::TimestampLookupUnsupported if self.demo => {
                    demo_has_no_time_index()
                }
                error => error.to_http_response(),
            })?;
        tracing::debug!(%peer, stream = names, start = stream.start_id(), "stream opened");
        Ok(stream.into_http_response().map(|stream| stream.hold(slot)))
    }
}

/// The library's 501 for `since` and timestamp ids, in words that point a demo user at the
/// way out.
fn demo_has_no_time_index() -> Response<Bytes> {
    Problem::new(
        StatusCode::NOT_IMPLEMENTED,
        kafka_sse::Error::TimestampLookupUnsupported.kind(),
        "the embedded demo cluster (librdkafka's mock cluster) cannot look up offsets by \
         timestamp, so `since` and timestamp ids are unavailable here; run the service with \
         --brokers to use them",
    )
    .to_http_response()
}
