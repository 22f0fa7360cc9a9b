//! Stream Apache Kafka topics to HTTP clients as Server-Sent Events, resumable from where
//! each client left off.
//!
//! Browsers, `curl` and EventSource clients in any language can follow a Kafka topic live
//! over plain HTTP. Every event carries an `id:` naming the client's position in every
//! partition it reads, so a client that reconnects (the EventSource API does it by itself,
//! sending `Last-Event-ID`) continues exactly after the last event it saw, on any server:
//! the servers keep no state, Kafka does.
//!
//! ```no_run
//! use axum::{extract::State, http::request::Parts, routing::get, Router};
//! use kafka_sse::{rdkafka::ClientConfig, KafkaSse, ResponseBody};
//!
//! async fn recent_changes(State(sse): State<KafkaSse>, parts: Parts) -> http::Response<ResponseBody> {
//!     sse.respond(["recentchange"], &parts).await
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let mut config = ClientConfig::new();
//!     config.set("bootstrap.servers", "127.0.0.1:9092");
//!     let sse = KafkaSse::builder(config).build()?;
//!     let app = Router::new().route("/v2/stream/recentchange", get(recent_changes)).with_state(sse);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8092").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! # How it works
//!
//! [`KafkaSse`] is built once from an rdkafka [`ClientConfig`](rdkafka::ClientConfig). For
//! each request ([`StreamRequest`]) it resolves where every assigned partition starts, on
//! tokio's blocking pool since librdkafka's look-ups block, and assigns a consumer there with
//! a small prefetch. The returned [`EventStream`] is a `Stream` of [`Bytes`], one complete
//! frame per item; it reads Kafka only as fast as the client takes frames and releases the
//! consumer when dropped. Clients reading the same partitions from the live end share one
//! consumer and one encoding of each frame.
//!
//! The source reads top-down, each layer using only the ones below it:
//!
//! 1. the service: `kafka_sse.rs`, `builder.rs`, and `http.rs` with the one-call
//!    [`KafkaSse::respond`];
//! 2. one client's stream: `event_stream.rs` (the public type), `session.rs` (what to send
//!    next, and when), `encoder.rs` (frames in the stream's format);
//! 3. where its messages come from: `feed.rs` (its own consumer or a shared live stream, and
//!    the moves between them), `sources.rs`, `growth.rs` (partitions added to topics), `fanout.rs`, `hub.rs`, `hub_task.rs` and
//!    `shared_event.rs`,
//!    `consumer.rs`;
//! 4. Kafka look-ups and the start policy: `lookup.rs` (I/O), `start.rs` (pure),
//!    `kafka_error.rs` (what librdkafka's errors mean), `refusal.rs` (why Kafka refused
//!    the client), `health.rs`;
//! 5. pure pieces: framing, ids, `Last-Event-ID` and `since` parsing, filters, deserializers.
//!
//! Three plug-ins shape the events: an [`EventIdCodec`] ([`OffsetIds`], [`TimestampIds`]),
//! a [`Deserializer`] ([`JsonPassThrough`], [`JsonWithMeta`], [`RawUtf8`]) and a [`Filter`]
//! ([`FieldFilter`]); each has a closure adapter.
//!
//! # Mounting it
//!
//! On any server built on the `http` 1.x types (axum, hyper, tower), [`KafkaSse::respond`]
//! turns a request's parts into the whole response, and [`KafkaSse::respond_to`] does the
//! same for a [`StreamRequest`] built by hand (with a filter or a label). Both return
//! `http::Response<`[`ResponseBody`]`>`, one body type for the stream and the problem.
//!
//! A framework with its own request and response types (actix-web, say) uses the pieces
//! underneath: build the [`StreamRequest`] from the `Last-Event-ID` header, the `since`
//! query parameter and the `Accept` header, call [`KafkaSse::stream`], and send the
//! [`EventStream`] (a `Stream` of [`Bytes`]) as a streaming body with
//! [`EventStream::response_headers`]; on an [`Error`], send [`Error::status_code`] with
//! [`Error::problem`] as `application/problem+json`.
//!
//! ```no_run
//! use futures::StreamExt;
//! use kafka_sse::{Format, KafkaSse, StreamRequest};
//!
//! /// What a framework-specific handler would do with its own request type.
//! async fn answer(
//!     sse: &KafkaSse,
//!     last_event_id: Option<&str>,
//!     since: Option<&str>,
//!     accept: Option<&str>,
//! ) -> (u16, Vec<(String, String)>, futures::stream::BoxStream<'static, bytes::Bytes>) {
//!     let mut request = StreamRequest::new(["recentchange"])
//!         .format(accept.map_or(Format::Sse, Format::from_accept));
//!     if let Some(id) = last_event_id {
//!         request = request.last_event_id(id);
//!     }
//!     if let Some(since) = since {
//!         request = request.since(since);
//!     }
//!     match sse.stream(request).await {
//!         Ok(stream) => {
//!             let headers = stream
//!                 .response_headers()
//!                 .iter()
//!                 .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
//!                 .collect();
//!             (200, headers, stream.boxed())
//!         }
//!         Err(error) => {
//!             let headers = vec![("content-type".into(), kafka_sse::Problem::CONTENT_TYPE.into())];
//!             let body = error.problem().to_json();
//!             (error.status_code().as_u16(), headers, futures::stream::iter([body]).boxed())
//!         }
//!     }
//! }
//! ```
//!
//! # Positions and resuming
//!
//! - With no `Last-Event-ID` and no `since`, every partition starts at its end.
//! - `since` (epoch milliseconds or ISO-8601) starts each partition at its first message at
//!   or after that time, or its end if there is none.
//! - A `Last-Event-ID` ([`parse_last_event_id`]) lists topics and partitions with an offset
//!   or a timestamp, and defines the assignment exactly. It is read in the EventStreams JSON
//!   form or the compact form, whichever the server writes ([`IdForm`]: by default JSON up
//!   to 8 partitions, compact beyond, so ids stay small in headers and URLs).
//! - Every `id:` lists every assigned partition, sorted by topic then partition, with the
//!   next offset not yet delivered; a partition that delivered nothing yet has its concrete
//!   start offset, so nothing produced while a client is away is lost.
//! - Offsets outside a partition's log start at its log start: below it, retention deleted
//!   the messages; above its end, the log the id came from is gone (the topic was recreated,
//!   or an unclean leader election truncated it). Ids carry no topic id, so a recreated topic
//!   that has grown past the old offset resumes there. The real start positions are in
//!   [`EventStream::start_id`] and the [`START_ID_HEADER`] response header.
//! - A stream that reads every partition of a topic follows it: partitions added later join
//!   it from their log start ([`KafkaSseBuilder::partition_check_interval`]).
//! - A running stream whose reader goes back in a partition found its log replaced: it
//!   moves to the new log's start, announced by an id-only frame.
//!
//! # Errors before and after the first byte
//!
//! [`KafkaSse::stream`] fails before any byte is sent, with an [`Error`] that maps to an HTTP
//! status and an RFC 9457 [`Problem`] body. Once streaming, a message the deserializer
//! rejects is skipped and counted; a Kafka failure librdkafka cannot recover from ends the
//! stream with one `event: error` frame that carries the current id, so the client resumes
//! without loss.
//!
//! # Secured clusters and feature flags
//!
//! TLS, mutual TLS and SASL are librdkafka properties of the [`ClientConfig`](rdkafka::ClientConfig)
//! (`security.protocol`, `ssl.*`, `sasl.*`); the features choose what librdkafka is built
//! with. The README's "Connecting to a secured cluster" has the lines for each setup.
//!
//! - `ssl` (default): TLS, mutual TLS and SASL/SCRAM with the system's OpenSSL.
//! - `ssl-vendored`: the same with OpenSSL built from source.
//! - `gssapi`, `gssapi-vendored`: SASL/GSSAPI (Kerberos) with Cyrus SASL.
//! - `curl`, `curl-static`: OAUTHBEARER with OIDC token fetching, over libcurl (librdkafka
//!   then builds with CMake).
//!
//! A client that Kafka refuses (a wrong password, an untrusted certificate) gets
//! [`Error::KafkaAuthentication`], a 503 whose message, for the log, names librdkafka's
//! reason. No error, log line or `Debug` output shows a password, secret, token or key.
//!
//! # Observability
//!
//! Logs and spans go through `tracing`; counters, gauges and histograms through `metrics`
//! (`kafka_sse_connected_clients`, `kafka_sse_events_sent_total`,
//! `kafka_sse_bytes_sent_total`, `kafka_sse_messages_skipped_total`,
//! `kafka_sse_offset_resets_total`, `kafka_sse_errors_total`,
//! `kafka_sse_requests_refused_total`, `kafka_sse_consumer_errors_total`,
//! `kafka_sse_consumers` (Kafka consumers open, shared or not), `kafka_sse_fanout_hubs`,
//! `kafka_sse_event_lag_seconds`), each labelled with the stream. The lag (from the Kafka
//! timestamp to sending) is recorded once per event of a shared live stream, and for one event
//! in 64 of a client reading on its own consumer. Each stream has a `kafka_sse.stream` span
//! at debug level.

mod assignment;
mod blocking;
mod body;
mod builder;
mod compact_id;
mod compact_parse;
mod consumer;
mod deserializer;
mod encoder;
mod error;
mod event_id;
mod event_stream;
mod fanout;
mod feed;
mod filter;
mod frame;
mod growth;
mod health;
mod http;
mod hub;
mod hub_task;
mod json_with_meta;
mod kafka_error;
mod kafka_sse;
mod last_event_id;
mod lookup;
mod message;
mod position;
mod refusal;
mod request;
mod response_body;
mod session;
mod settings;
mod shared_event;
mod since;
mod sources;
mod start;
mod telemetry;
mod topic_info;

pub use crate::assignment::{AssignmentEntry, Start};
pub use crate::builder::KafkaSseBuilder;
pub use crate::deserializer::{
    deserializer_fn, BoxError, Deserializer, DeserializerFn, JsonPassThrough, RawUtf8,
};
pub use crate::error::{is_credential_property, Error, Problem};
pub use crate::event_id::{event_id_fn, EventIdCodec, EventIdFn, IdForm, OffsetIds, TimestampIds};
pub use crate::event_stream::EventStream;
pub use crate::filter::{filter_fn, FieldFilter, Filter, FilterFn};
pub use crate::http::{LAST_EVENT_ID_HEADER, START_ID_HEADER};
pub use crate::json_with_meta::JsonWithMeta;
pub use crate::kafka_sse::KafkaSse;
pub use crate::last_event_id::parse_last_event_id;
pub use crate::message::Message;
pub use crate::position::PartitionPosition;
pub use crate::request::{Format, StreamRequest};
pub use crate::response_body::ResponseBody;
pub use crate::since::parse_since;
pub use crate::topic_info::TopicInfo;
pub use bytes::Bytes;
pub use rdkafka;

/// The SSE framing functions, for this crate's benchmarks and fuzz targets only.
///
/// Not part of the public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::frame::{comment, event, id_only, ndjson_line, open, retry_later};
}

/// Compiles the README's examples as doctests, so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
