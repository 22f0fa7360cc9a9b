//! The crate's own, owned view of a Kafka message, as plug-ins see it.

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::Headers;

/// A Kafka message as deserializers, filters and id codecs see it.
///
/// It owns its data, so plug-ins never deal with rdkafka's borrowed types, and it is cheap to
/// clone (topic, key and payload are reference counted).
///
/// ```
/// use kafka_sse::Message;
///
/// let message = Message::new("recentchange", 0, 41, r#"{"title":"Main Page"}"#)
///     .with_timestamp(1_700_000_000_000)
///     .with_key("enwiki");
/// assert_eq!(message.topic(), "recentchange");
/// assert_eq!(message.offset(), 41);
/// assert_eq!(message.key(), Some(&b"enwiki"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Bytes>,
    payload: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
}

impl Message {
    /// A message at `topic`/`partition`/`offset` with a payload, no key, timestamp or headers.
    pub fn new(
        topic: impl Into<Arc<str>>,
        partition: i32,
        offset: i64,
        payload: impl Into<Bytes>,
    ) -> Self {
        Message {
            topic: topic.into(),
            partition,
            offset,
            timestamp: None,
            key: None,
            payload: Some(payload.into()),
            headers: Vec::new(),
        }
    }

    /// Sets the timestamp, in milliseconds since the Unix epoch.
    pub fn with_timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }

    /// Copies a message received by an rdkafka consumer, sharing the topic name with
    /// earlier messages of the same stream.
    pub(crate) fn from_kafka(message: &impl rdkafka::Message, topic: Arc<str>) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(Bytes::copy_from_slice)))
                    .collect()
            })
            .unwrap_or_default();
        Message {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(Bytes::copy_from_slice),
            payload: message.payload().map(Bytes::copy_from_slice),
            headers,
        }
    }

    /// The topic the message was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// The partition the message was read from.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The message's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// The message's timestamp in milliseconds since the Unix epoch, if it has one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The payload, if any (a tombstone has none).
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    /// The payload as shared bytes, if any.
    pub fn payload_bytes(&self) -> Option<&Bytes> {
        self.payload.as_ref()
    }

    /// The headers, in the order they were produced.
    pub fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
    }
}
