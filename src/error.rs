//! The crate's error type and its mapping to HTTP problem responses.

use bytes::Bytes;
use http::StatusCode;
use rdkafka::error::KafkaError;
use serde::Serialize;

/// Everything that can go wrong while building a [`KafkaSse`](crate::KafkaSse) or opening a
/// stream for a request.
///
/// Errors returned by [`KafkaSse::stream`](crate::KafkaSse::stream) happen before any byte of
/// the response is sent, so they map to an HTTP status ([`Error::status_code`]) and an
/// RFC 9457 problem body ([`Error::problem`]). Failures after the stream started are sent as
/// an `event: error` frame instead (see [`EventStream`](crate::EventStream)).
///
/// Messages never contain a topic name the request was not allowed to read, so they are safe
/// to return to clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `Last-Event-ID` header or query parameter could not be understood.
    #[error("invalid last-event-id: {reason}")]
    InvalidLastEventId {
        /// What is wrong with it, in words safe to show the client.
        reason: String,
    },
    /// The `since` parameter is neither epoch milliseconds nor an RFC 3339 / ISO-8601 time.
    #[error("invalid since: {reason}")]
    InvalidSince {
        /// What is wrong with it, in words safe to show the client.
        reason: String,
    },
    /// A filter condition could not be parsed.
    #[error("invalid filter: {reason}")]
    InvalidFilter {
        /// What is wrong with it, in words safe to show the client.
        reason: String,
    },
    /// The request names a topic outside the request's allow-list.
    ///
    /// The topic itself is deliberately not part of the error.
    #[error("the request names a topic that this stream does not include")]
    TopicNotAllowed,
    /// The request names a partition that the topic does not have.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The allow-listed topic.
        topic: String,
        /// The partition that does not exist.
        partition: i32,
    },
    /// An allow-listed topic does not exist in Kafka.
    #[error("topic {topic} does not exist")]
    TopicNotFound {
        /// The allow-listed topic.
        topic: String,
    },
    /// The request would assign more partitions than the service allows.
    #[error("the request names {count} partitions, more than the limit of {limit}")]
    TooManyPartitions {
        /// Partitions requested.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The request has no topic to read.
    #[error("the request names no topic")]
    NoTopics,
    /// Kafka could not answer a look-up (metadata, offsets) in time.
    #[error("kafka is unavailable while {operation}")]
    KafkaUnavailable {
        /// What the library was doing.
        operation: &'static str,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// Kafka refused the service's client: SASL authentication failed (a wrong password, an
    /// unknown user) or TLS did (a broker certificate the configured CA did not sign, a
    /// client certificate the broker does not trust).
    ///
    /// Like [`Error::KafkaUnavailable`] it is a 503 and makes other requests fail fast
    /// until Kafka answers; `reason` is librdkafka's own account, for the service's log
    /// (with every credential of the configuration redacted), never for clients.
    #[error("kafka refused the client while {operation}: {reason}")]
    KafkaAuthentication {
        /// What the library was doing.
        operation: &'static str,
        /// librdkafka's reason, naming the broker and what failed.
        reason: String,
        /// The librdkafka error.
        #[source]
        source: KafkaError,
    },
    /// The stream's consumer failed in a way librdkafka does not recover from, such as the
    /// topic being deleted. Only ever sent mid-stream, as an `event: error` frame.
    #[error("the kafka consumer failed")]
    Consumer(#[source] KafkaError),
    /// The Kafka cluster cannot look up offsets by timestamp (librdkafka's mock cluster).
    #[error("this kafka cluster cannot look up offsets by timestamp")]
    TimestampLookupUnsupported,
    /// The service runs as many Kafka consumers as it may
    /// ([`KafkaSseBuilder::max_consumers`](crate::KafkaSseBuilder::max_consumers)).
    #[error("the service is reading as many streams on their own as it may; try again later")]
    Busy,
    /// The service is shutting down and opens no new stream.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The rdkafka client configuration was rejected.
    ///
    /// librdkafka's own message names the offending property's value, which may be a
    /// password; here that value and those of credential-like properties (passwords,
    /// secrets, tokens, keys, JAAS configs) are replaced by `[redacted]`.
    #[error("invalid kafka client configuration: {reason}")]
    Config {
        /// librdkafka's reason, with the configuration's values redacted.
        reason: String,
    },
    /// A background task failed unexpectedly.
    #[error("internal task failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A configuration error whose text names none of `config`'s values.
    pub(crate) fn config(error: &KafkaError, config: &rdkafka::ClientConfig) -> Self {
        let reason = match error {
            KafkaError::ClientConfig(_, description, property, value) => {
                let reason = format!("{property}: {description}");
                if value.is_empty() {
                    reason
                } else {
                    reason.replace(value.as_str(), "[redacted]")
                }
            }
            other => other.to_string(),
        };
        Error::Config {
            reason: redact(&reason, config),
        }
    }

    /// Kafka did not answer while the library was doing `operation`.
    pub(crate) fn kafka_unavailable(operation: &'static str, source: KafkaError) -> Self {
        Error::KafkaUnavailable { operation, source }
    }

    /// The error with its sources, `: `-separated, for server-side logs only.
    pub(crate) fn chain(&self) -> impl std::fmt::Display + '_ {
        Chain(self)
    }

    pub(crate) fn invalid_last_event_id(reason: impl Into<String>) -> Self {
        Error::InvalidLastEventId {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_filter(reason: impl Into<String>) -> Self {
        Error::InvalidFilter {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_since(reason: impl Into<String>) -> Self {
        Error::InvalidSince {
            reason: reason.into(),
        }
    }

    /// The HTTP status this error maps to.
    ///
    /// Client mistakes are 4xx, an unreachable Kafka is 503, and everything else is 500.
    ///
    /// ```
    /// use kafka_sse::Error;
    /// use http::StatusCode;
    ///
    /// assert_eq!(Error::TopicNotAllowed.status_code(), StatusCode::BAD_REQUEST);
    /// ```
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::InvalidLastEventId { .. }
            | Error::InvalidSince { .. }
            | Error::InvalidFilter { .. }
            | Error::TopicNotAllowed
            | Error::UnknownPartition { .. }
            | Error::TooManyPartitions { .. }
            | Error::NoTopics => StatusCode::BAD_REQUEST,
            Error::TopicNotFound { .. } => StatusCode::NOT_FOUND,
            Error::TimestampLookupUnsupported => StatusCode::NOT_IMPLEMENTED,
            Error::KafkaUnavailable { .. }
            | Error::KafkaAuthentication { .. }
            | Error::Consumer(_)
            | Error::ShuttingDown
            | Error::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config { .. } | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the request itself was at fault (a 4xx status).
    pub fn is_client_error(&self) -> bool {
        self.status_code().is_client_error()
    }

    /// A short machine-readable name for the kind of error, used in problem types, logs and
    /// metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidLastEventId { .. } => "invalid-last-event-id",
            Error::InvalidSince { .. } => "invalid-since",
            Error::InvalidFilter { .. } => "invalid-filter",
            Error::TopicNotAllowed => "topic-not-allowed",
            Error::UnknownPartition { .. } => "unknown-partition",
            Error::TopicNotFound { .. } => "topic-not-found",
            Error::TooManyPartitions { .. } => "too-many-partitions",
            Error::NoTopics => "no-topics",
            Error::KafkaUnavailable { .. } => "kafka-unavailable",
            Error::KafkaAuthentication { .. } => "kafka-authentication-failed",
            Error::TimestampLookupUnsupported => "timestamp-lookup-unsupported",
            Error::Consumer(_) => "consumer-failed",
            Error::ShuttingDown => "shutting-down",
            Error::Busy => "busy",
            Error::Config { .. } => "config",
            Error::Internal(_) => "internal",
        }
    }

    /// The RFC 9457 problem details for this error, safe to send to the client.
    ///
    /// Server-side failures carry a generic detail; the cause is logged, not sent.
    pub fn problem(&self) -> Problem {
        let detail = if self.status_code().is_server_error() {
            match self {
                Error::KafkaUnavailable { .. } | Error::KafkaAuthentication { .. } => {
                    "Kafka is unavailable; try again later".into()
                }
                Error::Consumer(_) => {
                    "reading from Kafka failed; resume with the last event id".into()
                }
                Error::TimestampLookupUnsupported | Error::ShuttingDown | Error::Busy => {
                    self.to_string()
                }
                _ => "the server failed to open the stream".into(),
            }
        } else {
            self.to_string()
        };
        Problem::new(self.status_code(), self.kind(), detail)
    }
}

/// Whether a librdkafka property holds a credential, by its name: passwords, secrets,
/// tokens, keys, JAAS and OAUTHBEARER configurations, but not file paths (`*.location`).
/// These are the values the crate keeps out of errors; a service can use the same test to
/// keep them out of its logs and command lines.
///
/// ```
/// assert!(kafka_sse::is_credential_property("sasl.password"));
/// assert!(kafka_sse::is_credential_property("ssl.key.password"));
/// assert!(!kafka_sse::is_credential_property("ssl.key.location"));
/// assert!(!kafka_sse::is_credential_property("bootstrap.servers"));
/// ```
pub fn is_credential_property(key: &str) -> bool {
    let hints = [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "key",
        "oauthbearer.config",
    ];
    !key.ends_with(".location") && hints.iter().any(|hint| key.contains(hint))
}

/// `text` with the value of every credential property of `config`
/// ([`is_credential_property`]) replaced by `[redacted]`.
pub(crate) fn redact(text: &str, config: &rdkafka::ClientConfig) -> String {
    let mut text = text.to_owned();
    // `config_map` hides rdkafka's own list of sensitive values; `get` has them.
    for key in config.config_map().keys() {
        match config.get(key) {
            Some(value) if is_credential_property(key) && !value.is_empty() => {
                text = text.replace(value, "[redacted]");
            }
            _ => {}
        }
    }
    text
}

struct Chain<'a>(&'a Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// An RFC 9457 problem details object (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem, `urn:kafka-sse:problem:<kind>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem kind: the status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Problem {
    /// The content type of a problem body.
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// Builds a problem for `status` with a kind (used in the type URI) and a detail.
    ///
    /// ```
    /// use kafka_sse::Problem;
    /// use http::StatusCode;
    ///
    /// let problem = Problem::new(StatusCode::NOT_FOUND, "unknown-stream", "no stream named x");
    /// assert_eq!(problem.type_uri, "urn:kafka-sse:problem:unknown-stream");
    /// assert_eq!(problem.title, "Not Found");
    /// ```
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: format!("urn:kafka-sse:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// The problem as a JSON body.
    pub fn to_json(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a problem always serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_server_errors_hide_their_cause() {
        assert!(Error::invalid_since("x").is_client_error());
        let unavailable = Error::kafka_unavailable("fetching metadata", KafkaError::Canceled);
        assert_eq!(unavailable.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!unavailable.problem().detail.contains("fetching"));
    }

    #[test]
    fn a_refused_client_is_unavailable_to_clients_and_its_reason_stays_in_the_log() {
        let refused = Error::KafkaAuthentication {
            operation: "fetching metadata",
            reason: "sasl_ssl://b:9093/bootstrap: SASL authentication error".into(),
            source: KafkaError::Global(rdkafka::types::RDKafkaErrorCode::Authentication),
        };
        assert_eq!(refused.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let problem = refused.problem();
        assert_eq!(problem.detail, "Kafka is unavailable; try again later");
        assert!(!String::from_utf8_lossy(&problem.to_json()).contains("SASL"));
        assert!(refused
            .chain()
            .to_string()
            .contains("SASL authentication error"));
    }

    #[test]
    fn redact_replaces_credential_values_only() {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("sasl.username", "alice")
            .set("sasl.password", "hunter2")
            .set("sasl.oauthbearer.config", "principal=alice token=t0k");
        let text = "alice hunter2 principal=alice token=t0k";
        assert_eq!(redact(text, &config), "alice [redacted] [redacted]");
    }

    #[test]
    fn topic_not_allowed_names_no_topic() {
        let problem = Error::TopicNotAllowed.problem();
        assert_eq!(problem.status, 400);
        assert_eq!(
            problem.detail,
            "the request names a topic that this stream does not include"
        );
    }
}
