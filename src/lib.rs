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
//! consumer when dropped.
//!
//! Three plug-ins shape the events: an [`EventIdCodec`] ([`OffsetIds`], [`TimestampIds`]),
//! a [`Deserializer`] ([`JsonPassThrough`], [`JsonWithMeta`], [`RawUtf8`]) and a [`Filter`]
//! ([`FieldFilter`]); each has a closure adapter.
//!
//! # Positions and resuming
//!
//! - With no `Last-Event-ID` and no `since`, every partition starts at its end.
//! - `since` (epoch milliseconds or ISO-8601) starts each partition at its first message at
//!   or after that time, or its end if there is none.
//! - A `Last-Event-ID` ([`parse_last_event_id`]) lists topics and partitions with an offset
//!   or a timestamp, and defines the assignment exactly.
//! - Every `id:` lists every assigned partition, sorted by topic then partition, with the
//!   next offset not yet delivered; a partition that delivered nothing yet has its concrete
//!   start offset, so nothing produced while a client is away is lost.
//! - Offsets outside a partition's log start at its log start: below it, retention deleted
//!   the messages; above its end, the log the id came from is gone (the topic was recreated,
//!   or an unclean leader election truncated it). Ids carry no topic id, so a recreated topic
//!   that has grown past the old offset resumes there. The real start positions are in
//!   [`EventStream::start_id`] and the [`START_ID_HEADER`] response header.
//!
//! # Errors before and after the first byte
//!
//! [`KafkaSse::stream`] fails before any byte is sent, with an [`Error`] that maps to an HTTP
//! status and an RFC 9457 [`Problem`] body. Once streaming, a message the deserializer
//! rejects is skipped and counted; a Kafka failure librdkafka cannot recover from ends the
//! stream with one `event: error` frame that carries the current id, so the client resumes
//! without loss.
//!
//! # Observability
//!
//! Logs and spans go through `tracing`; counters, gauges and histograms through `metrics`
//! (`kafka_sse_connected_clients`, `kafka_sse_events_sent_total`,
//! `kafka_sse_bytes_sent_total`, `kafka_sse_messages_skipped_total`,
//! `kafka_sse_offset_resets_total`, `kafka_sse_errors_total`,
//! `kafka_sse_requests_refused_total`, `kafka_sse_consumer_errors_total`,
//! `kafka_sse_event_lag_seconds`), each labelled with the stream. The lag (from the Kafka
//! timestamp to sending) is recorded once per event of a shared live stream, and for one event
//! in 64 of a client reading on its own consumer. Each stream has a `kafka_sse.stream` span
//! at debug level.

mod assignment;
mod body;
mod builder;
mod consumer;
mod deserializer;
mod error;
mod event_id;
mod event_stream;
mod fanout;
mod filter;
pub mod frame;
mod health;
mod http;
mod json_with_meta;
mod kafka_sse;
mod last_event_id;
mod lookup;
mod message;
mod position;
mod request;
mod response_body;
mod since;

pub use crate::assignment::{AssignmentEntry, Start};
pub use crate::builder::KafkaSseBuilder;
pub use crate::deserializer::{
    deserializer_fn, BoxError, Deserializer, DeserializerFn, JsonPassThrough, RawUtf8,
};
pub use crate::error::{Error, Problem};
pub use crate::event_id::{event_id_fn, EventIdCodec, EventIdFn, OffsetIds, TimestampIds};
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
pub use bytes::Bytes;
pub use rdkafka;

/// Compiles the README's examples as doctests, so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
