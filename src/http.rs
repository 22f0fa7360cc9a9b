//! Integration with the `http` crate's types, for any server built on them.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Response, StatusCode};

use crate::{frame, Error, EventStream, Format, KafkaSse, Problem, ResponseBody, StreamRequest};

/// The `Last-Event-ID` request header.
pub const LAST_EVENT_ID_HEADER: HeaderName = HeaderName::from_static("last-event-id");

/// The response header holding the stream's resolved start positions, in event-id form.
///
/// It tells the client where its stream really starts, before any event: after an offset was
/// moved into the partition's log, or a time or the live end was resolved.
///
/// It is sent only when the start id is at most 512 bytes long, so no response header grows
/// with the partition count: reverse proxies refuse large ones (nginx answers 502 to a
/// response header over its 4 KB default `proxy_buffer_size`). The stream's first frame, an
/// id-only frame, carries the same id in any case.
pub const START_ID_HEADER: HeaderName = HeaderName::from_static("kafka-sse-start-id");

/// The longest start id sent in [`START_ID_HEADER`].
const START_ID_HEADER_MAX_LEN: usize = 512;

impl StreamRequest {
    /// Builds a request for `topics` from an HTTP request's parts.
    ///
    /// Reads the `Last-Event-ID` header (or, when absent, a `last-event-id` query parameter,
    /// since browsers cannot set the header on a first connect), the `since` query parameter,
    /// and the `Accept` header for the format. Everything is checked when the stream opens.
    ///
    /// ```
    /// use kafka_sse::{Format, StreamRequest};
    ///
    /// let (parts, ()) = http::Request::get("/v2/stream/rc?since=2026-11-22")
    ///     .header("accept", "application/json")
    ///     .body(())
    ///     .unwrap()
    ///     .into_parts();
    /// let request = StreamRequest::from_http(["recentchange"], &parts)?;
    /// assert_eq!(request.topics(), ["recentchange"]);
    /// # Ok::<_, kafka_sse::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLastEventId`] when the header is not UTF-8.
    pub fn from_http<I, S>(topics: I, parts: &http::request::Parts) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut request = StreamRequest::new(topics);
        let mut query_last_event_id = None;
        for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            match &*name {
                "since" => request.since = Some(value.into_owned()),
                "last-event-id" => query_last_event_id = Some(value.into_owned()),
                _ => {}
            }
        }
        request.last_event_id = match parts.headers.get(LAST_EVENT_ID_HEADER) {
            // `HeaderValue::to_str` accepts visible ASCII only; topic names may be any UTF-8.
            Some(value) => Some(
                std::str::from_utf8(value.as_bytes())
                    .map_err(|_| Error::invalid_last_event_id("the header is not UTF-8 text"))?
                    .to_owned(),
            ),
            None => query_last_event_id,
        };
        if let Some(accept) = parts.headers.get(http::header::ACCEPT) {
            request.format = crate::Format::from_accept(accept.to_str().unwrap_or(""));
        }
        Ok(request)
    }
}

impl EventStream {
    /// The response headers for this stream: content type, no caching or proxy buffering,
    /// and [`START_ID_HEADER`] with the resolved start positions when they fit in 512 bytes.
    pub fn response_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.format().content_type()),
        );
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-transform"),
        );
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        if self.start_id().len() <= START_ID_HEADER_MAX_LEN {
            if let Ok(start) = HeaderValue::from_str(self.start_id()) {
                headers.insert(START_ID_HEADER, start);
            }
        }
        headers
    }

    /// A `200 OK` response with [`response_headers`](Self::response_headers) and the stream
    /// as its body.
    pub fn into_http_response(self) -> Response<ResponseBody> {
        let headers = self.response_headers();
        let mut response = Response::new(ResponseBody::from(self));
        *response.headers_mut() = headers;
        response
    }
}

impl Error {
    /// A complete `application/problem+json` response for this error; a `503` carries a
    /// `Retry-After` of one to five seconds, spread at random so refused clients do not all
    /// come back at once.
    ///
    /// ```
    /// use kafka_sse::Error;
    ///
    /// let response = Error::NoTopics.to_http_response();
    /// assert_eq!(response.status(), 400);
    /// assert_eq!(response.headers()["content-type"], "application/problem+json");
    /// ```
    pub fn to_http_response(&self) -> http::Response<ResponseBody> {
        self.problem().to_http_response()
    }

    /// The response refusing a stream in `format`, in the form its clients recover from:
    /// see [`Problem::to_http_response_for`].
    pub fn to_http_response_for(&self, format: Format) -> http::Response<ResponseBody> {
        self.problem().to_http_response_for(format)
    }
}

impl Problem {
    /// A complete response with the problem's status, content type and JSON body; a `503`
    /// carries a `Retry-After` of one to five seconds, spread at random.
    pub fn to_http_response(&self) -> http::Response<ResponseBody> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = http::Response::new(ResponseBody::whole(self.to_json()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(Self::CONTENT_TYPE));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_delay().as_secs()));
        }
        response
    }

    /// The response refusing a stream whose client reads `format`.
    ///
    /// A `503` (Kafka unreachable, the consumer budget spent, shutting down, a server's
    /// own limit) is a cause that passes. EventSource clients, browsers first, treat any
    /// answer but `200` as fatal and never reconnect; so an SSE client gets `200`, a comment
    /// naming the problem, a `retry:` of one to five seconds spread at random, and the end of
    /// the stream: it comes back by itself with the same `Last-Event-ID`. Every other client,
    /// and every other problem, gets [`to_http_response`](Self::to_http_response).
    ///
    /// ```
    /// use kafka_sse::{Error, Format};
    ///
    /// let sse = Error::Busy.to_http_response_for(Format::Sse);
    /// assert_eq!(sse.status(), 200);
    /// assert_eq!(sse.headers()["content-type"], "text/event-stream; charset=utf-8");
    /// assert!(sse.body().as_whole().unwrap().starts_with(b":busy: "));
    ///
    /// let ndjson = Error::Busy.to_http_response_for(Format::Ndjson);
    /// assert_eq!(ndjson.status(), 503);
    /// assert!(ndjson.headers().contains_key("retry-after"));
    /// ```
    pub fn to_http_response_for(&self, format: Format) -> http::Response<ResponseBody> {
        if self.status != StatusCode::SERVICE_UNAVAILABLE.as_u16() || format != Format::Sse {
            return self.to_http_response();
        }
        let kind = self.type_uri.rsplit(':').next().unwrap_or("unavailable");
        let body = frame::retry_later(&format!("{kind}: {}", self.detail), retry_delay());
        let mut response = http::Response::new(ResponseBody::whole(body));
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-transform"),
        );
        response
    }
}

/// How long a client refused for a passing cause waits: one to five seconds, at random,
/// so that clients refused together spread out.
fn retry_delay() -> Duration {
    RETRY_MIN + RETRY_SPREAD.mul_f64(fastrand::f64())
}

/// The shortest wait before a refused client comes back.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// How far apart refused clients are spread beyond that.
const RETRY_SPREAD: Duration = Duration::from_secs(4);

impl KafkaSse {
    /// Answers an HTTP request for a stream of `topics` in one call: the `200` event stream,
    /// or the `application/problem+json` refusal, in one body type.
    ///
    /// The request's `Last-Event-ID` (header or `last-event-id` query parameter), `since`
    /// and `Accept` are read as [`StreamRequest::from_http`] does; the stream opens as
    /// [`stream`](Self::stream) does. A handler is then a single expression:
    ///
    /// ```no_run
    /// use axum::{extract::State, http::request::Parts, routing::get, Router};
    /// use kafka_sse::{KafkaSse, ResponseBody};
    ///
    /// async fn recent_changes(State(sse): State<KafkaSse>, parts: Parts) -> http::Response<ResponseBody> {
    ///     sse.respond(["recentchange"], &parts).await
    /// }
    ///
    /// # fn app(sse: KafkaSse) -> Router {
    /// Router::new().route("/v2/stream/recentchange", get(recent_changes)).with_state(sse)
    /// # }
    /// ```
    pub async fn respond<I, S>(
        &self,
        topics: I,
        parts: &http::request::Parts,
    ) -> Response<ResponseBody>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match StreamRequest::from_http(topics, parts) {
            Ok(request) => self.respond_to(request).await,
            Err(error) => error.to_http_response(),
        }
    }

    /// Answers a request built by hand (with a filter or a label, say): the `200` event
    /// stream, or the refusal in the form its client recovers from
    /// ([`Error::to_http_response_for`]).
    ///
    /// ```no_run
    /// # async fn run(sse: kafka_sse::KafkaSse, parts: http::request::Parts) -> Result<(), kafka_sse::Error> {
    /// use kafka_sse::{FieldFilter, StreamRequest};
    ///
    /// let request = StreamRequest::from_http(["recentchange"], &parts)?
    ///     .filter(FieldFilter::parse(["wiki=enwiki"])?)
    ///     .label("enwiki");
    /// let response = sse.respond_to(request).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn respond_to(&self, request: StreamRequest) -> Response<ResponseBody> {
        let format = request.format;
        match self.stream(request).await {
            Ok(stream) => stream.into_http_response(),
            Err(error) => error.to_http_response_for(format),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    #[test]
    fn problem_response_has_status_type_and_json_body() {
        let response = Error::invalid_last_event_id("not JSON").to_http_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_whole().unwrap()).unwrap();
        assert_eq!(body["type"], "urn:kafka-sse:problem:invalid-last-event-id");
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "invalid last-event-id: not JSON");
    }

    fn parts(request: http::request::Builder) -> http::request::Parts {
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn header_wins_over_query_parameter() {
        let parts = parts(
            http::Request::get("/s?last-event-id=%5B%22q%22%5D&since=5")
                .header("last-event-id", "[\"h\"]"),
        );
        let request = StreamRequest::from_http(["t"], &parts).unwrap();
        assert_eq!(request.last_event_id.as_deref(), Some("[\"h\"]"));
        assert_eq!(request.since.as_deref(), Some("5"));
    }

    #[test]
    fn query_parameter_is_used_on_first_connect() {
        let parts = parts(http::Request::get("/s?last-event-id=%5B%22q%22%5D"));
        let request = StreamRequest::from_http(["t"], &parts).unwrap();
        assert_eq!(request.last_event_id.as_deref(), Some("[\"q\"]"));
        assert_eq!(request.format, Format::Sse);
    }

    #[test]
    fn non_utf8_last_event_id_is_a_client_error() {
        let value = HeaderValue::from_bytes(b"[\"\xff\"]").unwrap();
        let parts = parts(http::Request::get("/s").header("last-event-id", value));
        let err = StreamRequest::from_http(["t"], &parts).unwrap_err();
        assert!(err.is_client_error());
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn last_event_id_in_utf8_beyond_ascii_is_read_as_text() {
        let value = HeaderValue::from_bytes("[\"café\"]".as_bytes()).unwrap();
        assert!(value.to_str().is_err(), "the http crate refuses it as text");
        let parts = parts(http::Request::get("/s").header("last-event-id", value));
        let request = StreamRequest::from_http(["café"], &parts).unwrap();
        assert_eq!(request.last_event_id.as_deref(), Some("[\"café\"]"));
    }
}
