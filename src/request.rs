//! What one client asks for: topics, resume point, start time, format and filter.

use std::fmt;
use std::sync::Arc;

use crate::Filter;

/// The output format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// Server-Sent Events, `text/event-stream`. The default.
    #[default]
    Sse,
    /// Newline-delimited JSON, `application/x-ndjson`: one event per line, no ids; the
    /// [`JsonWithMeta`](crate::JsonWithMeta) deserializer puts the Kafka coordinates into each
    /// event so clients can still resume.
    Ndjson,
    /// The same lines as [`Format::Ndjson`], labelled `application/json; charset=utf-8` for
    /// clients that ask for `application/json`.
    Json,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Sse => "text/event-stream; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Json => "application/json; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: the first of `text/event-stream`,
    /// `application/x-ndjson` and `application/json` it lists, else SSE.
    ///
    /// ```
    /// use kafka_sse::Format;
    ///
    /// assert_eq!(Format::from_accept("application/json"), Format::Json);
    /// assert_eq!(Format::from_accept("application/x-ndjson;q=0.9, */*"), Format::Ndjson);
    /// assert_eq!(Format::from_accept("text/event-stream"), Format::Sse);
    /// assert_eq!(Format::from_accept("*/*"), Format::Sse);
    /// ```
    pub fn from_accept(accept: &str) -> Format {
        accept
            .split(',')
            .map(|item| item.split(';').next().unwrap_or("").trim())
            .find_map(|media| match media.to_ascii_lowercase().as_str() {
                "text/event-stream" => Some(Format::Sse),
                "application/x-ndjson" => Some(Format::Ndjson),
                "application/json" => Some(Format::Json),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// One client's request for a stream.
///
/// The topics are the request's allow-list: the stream reads them all by default, and a
/// `Last-Event-ID` may name only topics among them. Build it by hand, or from an HTTP
/// request with [`StreamRequest::from_http`].
///
/// ```
/// use kafka_sse::{FieldFilter, Format, StreamRequest};
///
/// let request = StreamRequest::new(["recentchange", "page-create"])
///     .since("2026-11-22T00:00:00Z")
///     .format(Format::Ndjson)
///     .filter(FieldFilter::parse(["wiki=enwiki"])?)
///     .label("recentchange");
/// # Ok::<_, kafka_sse::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct StreamRequest {
    pub(crate) topics: Vec<String>,
    pub(crate) last_event_id: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) format: Format,
    pub(crate) filter: Option<Arc<dyn Filter>>,
    pub(crate) label: Option<String>,
}

impl StreamRequest {
    /// A request for `topics`, starting at the end of every partition, in SSE format.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StreamRequest {
            topics: topics.into_iter().map(Into::into).collect(),
            ..StreamRequest::default()
        }
    }

    /// Resume from this `Last-Event-ID`. Defaults to none. Parsed and checked when the
    /// stream opens.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }

    /// Start at this time (epoch milliseconds or ISO-8601, see
    /// [`parse_since`](crate::parse_since)) where the `Last-Event-ID` gives no position.
    /// Defaults to none: the end of each partition.
    pub fn since(mut self, since: impl Into<String>) -> Self {
        self.since = Some(since.into());
        self
    }

    /// The output format. Defaults to [`Format::Sse`].
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Send only the events this filter accepts. Defaults to every event.
    pub fn filter(mut self, filter: impl Filter) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Send only the events this shared filter accepts.
    pub fn shared_filter(mut self, filter: Arc<dyn Filter>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The stream's name in logs and metric labels. Defaults to the topics joined by commas.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The output format asked for.
    pub fn output_format(&self) -> Format {
        self.format
    }

    /// The topics this request may read.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub(crate) fn label_or_topics(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.topics.join(","))
    }
}

impl fmt::Debug for StreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamRequest")
            .field("topics", &self.topics)
            .field("last_event_id", &self.last_event_id)
            .field("since", &self.since)
            .field("format", &self.format)
            .field("filtered", &self.filter.is_some())
            .field("label", &self.label)
            .finish()
    }
}
