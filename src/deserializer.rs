//! Message deserializers: how a Kafka message becomes the `data:` of an event.

use std::fmt;

use bytes::Bytes;
use serde::de::IgnoredAny;

use crate::Message;

/// The error a plug-in returns; it is logged and counted, never sent to the client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a Kafka message into the event data sent to the client.
///
/// A message the deserializer rejects is skipped: it is logged and counted, the client's
/// position moves past it, and the stream goes on. Line breaks in the data are allowed; the
/// framing splits them into several `data:` lines.
///
/// Ready-made: [`JsonPassThrough`] (the default), [`JsonWithMeta`](crate::JsonWithMeta), [`RawUtf8`];
/// [`deserializer_fn`] adapts a closure.
pub trait Deserializer: Send + Sync + 'static {
    /// The event data for `message`, or why the message cannot be sent.
    fn deserialize(&self, message: &Message) -> Result<Bytes, BoxError>;
}

/// Sends the payload unchanged after checking that it is valid JSON. The default.
///
/// ```
/// use kafka_sse::{Deserializer, JsonPassThrough, Message};
///
/// let ok = Message::new("t", 0, 0, r#"{"a":1}"#);
/// assert_eq!(JsonPassThrough.deserialize(&ok).unwrap(), r#"{"a":1}"#);
/// assert!(JsonPassThrough.deserialize(&Message::new("t", 0, 1, "{oops")).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPassThrough;

impl Deserializer for JsonPassThrough {
    fn deserialize(&self, message: &Message) -> Result<Bytes, BoxError> {
        let payload = payload_of(message)?;
        serde_json::from_slice::<IgnoredAny>(payload)?;
        Ok(payload.clone())
    }
}

/// Sends any UTF-8 payload as it is, for topics that do not carry JSON.
///
/// Line breaks are sent as separate `data:` lines, which EventSource clients join with
/// `\n`, so a `\r\n` or `\r` in the payload arrives as `\n`.
///
/// ```
/// use kafka_sse::{Deserializer, Message, RawUtf8};
///
/// assert_eq!(RawUtf8.deserialize(&Message::new("t", 0, 0, "plain text")).unwrap(), "plain text");
/// assert!(RawUtf8.deserialize(&Message::new("t", 0, 1, vec![0xff, 0xfe])).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RawUtf8;

impl Deserializer for RawUtf8 {
    fn deserialize(&self, message: &Message) -> Result<Bytes, BoxError> {
        let payload = payload_of(message)?;
        std::str::from_utf8(payload)?;
        Ok(payload.clone())
    }
}

/// The event data for `message`, or `None` (logged) when the deserializer rejects it.
pub(crate) fn deserialize_or_skip(
    deserializer: &dyn Deserializer,
    message: &Message,
) -> Option<Bytes> {
    deserializer
        .deserialize(message)
        .inspect_err(|error| {
            tracing::warn!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                %error,
                "skipping a message that cannot be deserialized"
            );
        })
        .ok()
}

pub(crate) fn payload_of(message: &Message) -> Result<&Bytes, BoxError> {
    message
        .payload_bytes()
        .ok_or_else(|| "the message has no payload".into())
}

/// A [`Deserializer`] from a closure.
///
/// ```
/// use kafka_sse::{deserializer_fn, Bytes, Deserializer, Message};
///
/// let upper = deserializer_fn(|message: &Message| {
///     let text = std::str::from_utf8(message.payload().unwrap_or_default())?;
///     Ok(Bytes::from(text.to_uppercase()))
/// });
/// assert_eq!(upper.deserialize(&Message::new("t", 0, 0, "hi")).unwrap(), "HI");
/// ```
pub fn deserializer_fn<F>(deserialize: F) -> DeserializerFn<F>
where
    F: Fn(&Message) -> Result<Bytes, BoxError> + Send + Sync + 'static,
{
    DeserializerFn(deserialize)
}

/// The deserializer returned by [`deserializer_fn`].
#[derive(Clone, Copy)]
pub struct DeserializerFn<F>(F);

impl<F> Deserializer for DeserializerFn<F>
where
    F: Fn(&Message) -> Result<Bytes, BoxError> + Send + Sync + 'static,
{
    fn deserialize(&self, message: &Message) -> Result<Bytes, BoxError> {
        (self.0)(message)
    }
}

impl<F> fmt::Debug for DeserializerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeserializerFn").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_refused() {
        let mut message = Message::new("t", 0, 0, "");
        message = message.clone();
        assert!(JsonPassThrough.deserialize(&message).is_err());
    }
}
