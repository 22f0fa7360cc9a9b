//! The service at run time: start-up from the command line, and the stream route.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use http::request::Parts;
use http::{Response, StatusCode};
use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{
    JsonWithMeta, KafkaSse, OffsetIds, Problem, ResponseBody, StreamRequest, TimestampIds,
};

use crate::catalog::{Catalog, EventFilter};
use crate::cli::{Cli, Ids};
use crate::config_file::ConfigFile;
use crate::demo::Demo;
use crate::kafka_config::KafkaSettings;
use crate::limit::ConnectionLimits;

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
    /// An unreadable or invalid config file, a malformed Kafka setting or a secret that
    /// cannot be read, an invalid stream configuration, a client configuration librdkafka
    /// rejects, a demo cluster that does not start, or `--ids timestamp` on the demo
    /// cluster. No message shows a Kafka setting's value.
    pub fn start(cli: &Cli) -> anyhow::Result<Started> {
        let file = ConfigFile::read(cli.config.as_deref())?;
        let kafka = KafkaSettings::new(file.kafka(), &cli.kafka_args())?;
        let brokers = cli.brokers().or(kafka.get("bootstrap.servers"));
        let (demo, bootstrap, defaults) = match brokers {
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
        let catalog = Catalog::from_cli(cli, file.streams, defaults)?;
        if catalog.streams().is_empty() {
            bail!("no streams: give --stream NAME=TOPIC[,TOPIC...] or --config FILE");
        }

        // Every librdkafka property given, then the brokers chosen above.
        let mut config = ClientConfig::new();
        kafka.apply(&mut config);
        config.set("bootstrap.servers", &bootstrap);
        if !kafka.is_empty() {
            tracing::info!("kafka client settings: {kafka}");
        }
        if demo.is_some() {
            // The mock cluster answers a fetch with no data only after the full wait
            // (librdkafka's default 500 ms), even when data arrives meanwhile.
            config.set("fetch.wait.max.ms", "50");
        }
        let mut builder = KafkaSse::builder(config)
            .deserializer(JsonWithMeta)
            .heartbeat(cli.heartbeat);
        builder = match cli.ids {
            Ids::Offset => builder.event_ids(OffsetIds.with_form(cli.id_format.form())),
            Ids::Timestamp => builder.event_ids(TimestampIds.with_form(cli.id_format.form())),
        };
        if let Some(duration) = cli.max_connection_duration() {
            builder = builder.max_connection_duration(duration);
        }
        let sse = builder.build().context("creating the Kafka client")?;
        tokio::spawn(report_kafka(sse.clone()));

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
    /// response (404 unknown stream, 400 bad request, 429 too many streams from one address,
    /// 501 timestamp look-ups on the demo cluster). A cause that passes (Kafka unavailable,
    /// no consumer to spare, the service full or shutting down) is a 503 with
    /// `Retry-After`, or for an SSE client a 200 with `retry:` and an immediate end.
    pub async fn open_stream(
        &self,
        names: &str,
        parts: &Parts,
        peer: IpAddr,
    ) -> Response<ResponseBody> {
        let request = match self.request(names, parts) {
            Ok(request) => request,
            Err(problem) => return problem.to_http_response(),
        };
        // A refusal for a passing cause reaches an EventSource as a 200 with `retry:`, so it
        // comes back by itself; see `Error::to_http_response_for`.
        let format = request.output_format();
        let slot = match self.limits.acquire(peer) {
            Ok(slot) => slot,
            Err(refused) => return refused.to_http_response_for(format),
        };
        match self.sse.stream(request).await {
            Ok(stream) => {
                tracing::debug!(%peer, stream = names, start = stream.start_id(), "stream opened");
                stream.hold(slot).into_http_response()
            }
            Err(kafka_sse::Error::TimestampLookupUnsupported) if self.demo => {
                demo_has_no_time_index()
            }
            Err(error) => error.to_http_response_for(format),
        }
    }

    /// The library request for `names`: the union of their topics as the allow-list, the
    /// request's position and format, and its `filter` query values.
    ///
    /// # Errors
    ///
    /// The problem for an unknown stream, or a malformed filter or `Last-Event-ID`.
    fn request(&self, names: &str, parts: &Parts) -> Result<StreamRequest, Problem> {
        let selection = self.catalog.select(names)?;
        let filters: Vec<String> =
            form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .filter(|(name, _)| name == "filter")
                .map(|(_, value)| value.into_owned())
                .collect();
        let filter = EventFilter::new(&filters, &selection).map_err(|e| e.problem())?;
        let request = StreamRequest::from_http(selection.topics, parts)
            .map_err(|e| e.problem())?
            .label(selection.label);
        Ok(match filter {
            Some(filter) => request.filter(filter),
            None => request,
        })
    }
}

/// Logs whether Kafka answers at start-up, and if not why (a refused password or
/// certificate, say), so an operator sees a misconfiguration before the first request.
async fn report_kafka(sse: KafkaSse) {
    match sse.check_kafka().await {
        Ok(()) => tracing::info!("kafka answers"),
        Err(error) => {
            let mut cause = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(error) = source {
                cause = format!("{cause}: {error}");
                source = error.source();
            }
            tracing::warn!(
                "kafka does not answer at start-up; streams get 503 until it does: {cause}"
            );
        }
    }
}

/// The library's 501 for `since` and timestamp ids, in words that point a demo user at the
/// way out.
fn demo_has_no_time_index() -> Response<ResponseBody> {
    Problem::new(
        StatusCode::NOT_IMPLEMENTED,
        kafka_sse::Error::TimestampLookupUnsupported.kind(),
        "the embedded demo cluster (librdkafka's mock cluster) cannot look up offsets by \
         timestamp, so `since` and timestamp ids are unavailable here; run the service with \
         --brokers to use them",
    )
    .to_http_response()
}
