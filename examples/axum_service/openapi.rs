//! The service described in OpenAPI 3.1 (`GET /?spec`), and a page that renders the
//! description (`GET /?doc`): Swagger UI, whose files are compiled into the binary so the
//! page works with no network.
//!
//! The streams come from the command line and the config file, so the document is built at
//! start-up from the [`Catalog`]: one path per stream name and per alias, next to the
//! composite `/v2/stream/{streams}` and the fixed routes. Parameters, responses and schemas
//! that every stream shares are components, referenced from each path.

use axum::Router;
use kafka_sse::{Problem, START_ID_HEADER};
use serde_json::json;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::info::{InfoBuilder, LicenseBuilder};
use utoipa::openapi::path::{
    OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle, PathItem,
};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, HttpMethod, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    Schema,
};
use utoipa::PartialSchema as _;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::catalog::{Catalog, StreamDef, MAX_STREAMS_PER_REQUEST};

/// Where the documentation page and its files are served; `/?doc` leads there.
pub const DOC_PATH: &str = "/doc/";

/// Where the page reads the document from.
const SPEC_URL: &str = "/?spec";

/// The media types a stream answers in, chosen with `Accept`.
const SSE: &str = "text/event-stream";
const NDJSON: &str = "application/x-ndjson";
const JSON: &str = "application/json";

/// The service's OpenAPI document for the streams of `catalog`.
pub fn document(catalog: &Catalog) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for stream in catalog.streams() {
        paths = paths.path(
            format!("/v2/stream/{}", stream.name),
            stream_path(stream, None),
        );
        for alias in &stream.aliases {
            paths = paths.path(
                format!("/v2/stream/{alias}"),
                stream_path(stream, Some(alias)),
            );
        }
    }
    paths = paths
        .path("/v2/stream/{streams}", composite_path(catalog))
        .path("/v2/streams", streams_path())
        .path("/metrics", metrics_path())
        .path("/healthz", healthz_path())
        .path("/", index_path());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("kafka-sse example service")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(INFO))
                .license(Some(
                    LicenseBuilder::new()
                        .name("MIT OR Apache-2.0")
                        .identifier(Some("MIT OR Apache-2.0"))
                        .build(),
                )),
        )
        .tags(Some([
            TagBuilder::new()
                .name("streams")
                .description(Some("Live, resumable event streams over Kafka topics"))
                .build(),
            TagBuilder::new()
                .name("service")
                .description(Some("The stream list, metrics, health and the web page"))
                .build(),
        ]))
        .paths(paths)
        .components(Some(components()))
        .build()
}

/// The documentation page: Swagger UI at [`DOC_PATH`], reading the document at `/?spec`.
pub fn doc_page<S: Clone + Send + Sync + 'static>() -> Router<S> {
    // No validator badge: it would send the document to validator.swagger.io.
    let config = Config::new([SPEC_URL])
        .validator_url("none")
        .try_it_out_enabled(false)
        .display_operation_id(false);
    SwaggerUi::new(DOC_PATH.trim_end_matches('/'))
        .config(config)
        .into()
}

const INFO: &str = "Named streams of Kafka topics as Server-Sent Events (SSE), or as \
NDJSON for clients that ask for it with `Accept`.\n\n\
Every event's `id` holds the client's position in every partition of the stream; a client \
that reconnects with it (`Last-Event-ID` header, which EventSource sends by itself, or the \
`last-event-id` query parameter) continues after the last event it received, on any \
server. `since` starts at a time instead; with neither, a stream starts at the live end.\n\n\
Errors are RFC 9457 problem documents (`application/problem+json`). A stream that cannot be \
served now for a cause that passes (Kafka unavailable, the service full or shutting down) \
answers an SSE client `200` with a `retry:` field and an immediate end, so that EventSource \
comes back by itself, and other clients `503` with `Retry-After`.";

/// `GET /v2/stream/{name}` for one stream, under its name or `alias`.
fn stream_path(stream: &StreamDef, alias: Option<&str>) -> PathItem {
    let name = alias.unwrap_or(&stream.name);
    let topics = stream
        .topics
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut description = String::new();
    if !stream.description.is_empty() {
        description.push_str(&format!(
            "{}.\n\n",
            stream.description.trim_end_matches('.')
        ));
    }
    description.push_str(&format!("Kafka topics: {topics}."));
    let mut names = vec![stream.name.as_str()];
    names.extend(stream.aliases.iter().map(String::as_str));
    names.retain(|n| *n != name);
    if !names.is_empty() {
        let names = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
        description.push_str(&format!(" Also served as {}.", names.join(", ")));
    }
    if stream.drop_canary {
        description.push_str(" Canary events (`meta.domain` `canary`) are left out.");
    }
    let summary = match alias {
        Some(_) => format!("The {} stream, by another name", stream.name),
        None if stream.description.is_empty() => format!("The {name} stream"),
        None => stream.description.clone(),
    };
    let operation = stream_operation(format!("stream {name}"), summary, description).build();
    PathItem::new(HttpMethod::Get, operation)
}

/// `GET /v2/stream/{streams}`: several streams together.
fn composite_path(catalog: &Catalog) -> PathItem {
    let mut names = Vec::new();
    for stream in catalog.streams() {
        names.push(stream.name.clone());
        names.extend(stream.aliases.iter().cloned());
    }
    let names = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
    let streams = ParameterBuilder::new()
        .name("streams")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "Stream names or aliases, separated by commas, at most \
             {MAX_STREAMS_PER_REQUEST}: {}",
            names.join(", ")
        )))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$")),
        ))
        .example(catalog.streams().first().map(|s| json!(s.name)));
    let operation = stream_operation(
        "composite stream".into(),
        "Several streams together".into(),
        "The events of every named stream, in one response: the union of their topics, each \
         read once. The `id` covers every partition of every topic."
            .into(),
    )
    .parameter(streams)
    .response("404", problem_ref("NotFound"))
    .build();
    PathItem::new(HttpMethod::Get, operation)
}

/// What every stream operation shares: parameters and responses.
fn stream_operation(id: String, summary: String, description: String) -> OperationBuilder {
    let description = format!(
        "{description}\n\nThe format follows `Accept`: SSE (`{SSE}`, the default), NDJSON \
         (`{NDJSON}`), or NDJSON labelled `{JSON}` when asked for with `Accept: {JSON}`."
    );
    OperationBuilder::new()
        .tag("streams")
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .parameter_ref(Ref::new("#/components/parameters/since"))
        .parameter_ref(Ref::new("#/components/parameters/last-event-id"))
        .parameter_ref(Ref::new("#/components/parameters/filter"))
        .parameter_ref(Ref::new("#/components/parameters/Last-Event-ID"))
        .response("200", Ref::new("#/components/responses/Events"))
        .response("400", problem_ref("BadRequest"))
        .response("429", problem_ref("TooManyRequests"))
        .response("501", problem_ref("NotImplemented"))
        .response("503", problem_ref("ServiceUnavailable"))
}

fn problem_ref(name: &str) -> Ref {
    Ref::new(format!("#/components/responses/{name}"))
}

/// `GET /v2/streams`.
fn streams_path() -> PathItem {
    let list = ArrayBuilder::new().items(Ref::from_schema_name("Stream"));
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("streams"))
        .summary(Some("The streams"))
        .description(Some(
            "Every stream with its aliases, Kafka topics and description.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The streams, in configuration order")
                .content(JSON, ContentBuilder::new().schema(Some(list)).build()),
        )
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

/// `GET /metrics`.
fn metrics_path() -> PathItem {
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("metrics"))
        .summary(Some("Prometheus metrics"))
        .description(Some(
            "Connected clients per stream, events and bytes sent, errors, consumers and lag, \
             in the Prometheus text format.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The metrics")
                .content("text/plain; version=0.0.4", text_content(None)),
        )
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

/// `GET /healthz`.
fn healthz_path() -> PathItem {
    let healthy = ObjectBuilder::new()
        .property("status", ObjectBuilder::new().schema_type(Type::String))
        .property("kafka", ObjectBuilder::new().schema_type(Type::String))
        .examples([json!({"status": "ok", "kafka": "reachable"})]);
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("healthz"))
        .summary(Some("Health"))
        .description(Some("Whether Kafka answers a metadata request."))
        .response(
            "200",
            ResponseBuilder::new()
                .description("Kafka answers")
                .content(JSON, ContentBuilder::new().schema(Some(healthy)).build()),
        )
        .response("503", problem_ref("ServiceUnavailable"))
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

/// `GET /`, which also answers `?spec` and `?doc`.
fn index_path() -> PathItem {
    let operation = OperationBuilder::new()
        .tag("service")
        .operation_id(Some("index"))
        .summary(Some("The web page"))
        .description(Some(
            "A page that follows a stream live in the browser, with a chart of event counts. \
             `/?spec` answers this OpenAPI document; `/?doc` leads to a page that renders it.",
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The page")
                .content("text/html", text_content(None)),
        )
        .build();
    PathItem::new(HttpMethod::Get, operation)
}

/// The parameters, responses and schemas the paths refer to.
fn components() -> utoipa::openapi::Components {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let since = ParameterBuilder::new()
        .name("since")
        .parameter_in(ParameterIn::Query)
        .description(Some(
            "Start at this time instead of the live end: integer milliseconds since the \
             epoch; an RFC 3339 / ISO-8601 date-time (`T` or a space between date and time, \
             fractional seconds, an offset, or none for UTC); an RFC 2822 or HTTP date \
             (`Thu, 26 Nov 2026 19:37:44 GMT`); or a date alone, meaning midnight UTC. Each \
             partition starts at its first message at or after that time. Ignored when the \
             request carries a Last-Event-ID.",
        ))
        .schema(Some(string()))
        .example(Some(json!("2026-11-22T10:00:00Z")));
    let last_event_id_query = ParameterBuilder::new()
        .name("last-event-id")
        .parameter_in(ParameterIn::Query)
        .description(Some(
            "Resume after this event id, for a first connect from a browser, which cannot \
             set the Last-Event-ID header. The header wins when both are given.",
        ))
        .schema(Some(string()))
        .example(Some(json!(
            r#"[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":42}]"#
        )));
    let filter = ParameterBuilder::new()
        .name("filter")
        .parameter_in(ParameterIn::Query)
        .description(Some(
            "Only events that match: `FIELD=VALUE` or `FIELD!=VALUE`, FIELD a dotted path \
             into the event JSON (`meta.domain`). Repeatable: the same field with `=` \
             repeated means either value, different fields must all match.",
        ))
        .schema(Some(ArrayBuilder::new().items(string())))
        .style(Some(ParameterStyle::Form))
        .explode(Some(true))
        .example(Some(json!(["wiki=enwiki", "bot!=true"])));
    let last_event_id_header = ParameterBuilder::new()
        .name("Last-Event-ID")
        .parameter_in(ParameterIn::Header)
        .description(Some(
            "Resume after this event id: the `id` of the last event received, which an \
             EventSource sends by itself when it reconnects. A JSON array whose entries are \
             topic names or `{topic, partition, offset}` / `{topic, partition, timestamp}` \
             objects; the compact form of the ids is accepted too.",
        ))
        .schema(Some(string()));
    let start_id = HeaderBuilder::new()
        .schema(Some(string()))
        .description(Some(
            "Where the stream started, in every partition, as an event id",
        ))
        .build();
    let events = ResponseBuilder::new()
        .description(
            "The events. An SSE client also gets this status, with a `retry:` field and an \
             immediate end, when the stream cannot be served now for a cause that passes \
             (Kafka unavailable, the service full or shutting down): EventSource then \
             reconnects by itself.",
        )
        .header(START_ID_HEADER.as_str(), start_id)
        .content(SSE, text_content(Some(SSE_EXAMPLE)))
        .content(NDJSON, text_content(Some(NDJSON_EXAMPLE)))
        .content(JSON, text_content(Some(NDJSON_EXAMPLE)))
        .build();
    ComponentsBuilder::new()
        .parameter("since", since.build())
        .parameter("last-event-id", last_event_id_query.build())
        .parameter("filter", filter.build())
        .parameter("Last-Event-ID", last_event_id_header.build())
        .response("Events", events)
        .response(
            "BadRequest",
            problem_response(
                "A malformed `since`, `filter` or event id, a partition that does not \
                 exist, or too many streams",
                None,
            ),
        )
        .response(
            "NotFound",
            problem_response("A stream name that is not served", None),
        )
        .response(
            "TooManyRequests",
            problem_response(
                "This client address holds as many streams as it may",
                Some("Seconds until a stream may be free"),
            ),
        )
        .response(
            "NotImplemented",
            problem_response(
                "`since` or timestamp ids on a cluster that cannot look up offsets by time \
                 (the embedded demo cluster)",
                None,
            ),
        )
        .response(
            "ServiceUnavailable",
            problem_response(
                "Kafka is unavailable, the service is full or shutting down: try again \
                 later (SSE clients get 200 with `retry:` instead)",
                Some("Seconds to wait before trying again"),
            ),
        )
        .schema("Problem", problem_schema())
        .schema_from::<StreamDef>()
        .build()
}

const SSE_EXAMPLE: &str = ":ok\n\n\
event: message\n\
id: [{\"topic\":\"eqiad.mediawiki.recentchange\",\"partition\":0,\"offset\":43}]\n\
data: {\"title\":\"Main Page\",\"wiki\":\"enwiki\",\"meta\":{\"topic\":\
\"eqiad.mediawiki.recentchange\",\"partition\":0,\"offset\":42}}\n\n";

const NDJSON_EXAMPLE: &str = "{\"title\":\"Main Page\",\"wiki\":\"enwiki\",\"meta\":{\"topic\":\
\"eqiad.mediawiki.recentchange\",\"partition\":0,\"offset\":42}}\n";

/// A text body: a string, with `example` when given.
fn text_content(example: Option<&str>) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(String::schema()))
        .example(example.map(|e| json!(e)))
        .build()
}

/// An `application/problem+json` response, with `Retry-After` when `retry_after` says what
/// it means.
fn problem_response(description: &str, retry_after: Option<&str>) -> Response {
    let mut response = ResponseBuilder::new().description(description).content(
        Problem::CONTENT_TYPE,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if let Some(meaning) = retry_after {
        let header = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .description(Some(meaning))
            .build();
        response = response.header("Retry-After", header);
    }
    response.build()
}

/// The RFC 9457 problem document every error answers with.
fn problem_schema() -> RefOr<Schema> {
    let example = Problem::new(
        http::StatusCode::NOT_FOUND,
        "unknown-stream",
        "there is no stream named \"x\"; GET /v2/streams lists them",
    );
    let field = |kind: Type, description: &str| {
        ObjectBuilder::new()
            .schema_type(kind)
            .description(Some(description))
    };
    ObjectBuilder::new()
        .description(Some("An RFC 9457 problem details object"))
        .property(
            "type",
            field(
                Type::String,
                "The kind of problem, `urn:kafka-sse:problem:<kind>`",
            ),
        )
        .property("title", field(Type::String, "The status's reason phrase"))
        .property("status", field(Type::Integer, "The HTTP status code"))
        .property("detail", field(Type::String, "What went wrong"))
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .examples(serde_json::to_value(&example))
        .into()
}
