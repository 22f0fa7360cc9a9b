//! [`JsonWithMeta`]: JSON events with their Kafka coordinates added under `meta`, spliced
//! into the event's own text.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::deserializer::{payload_of, BoxError};
use crate::{Deserializer, Message};

/// Parses a JSON object and adds the Kafka coordinates under `meta`, as Wikimedia's
/// EventStreams does: `meta.topic`, `meta.partition`, `meta.offset` and, when the message has
/// one, `meta.timestamp` (epoch milliseconds). An existing `meta` object keeps its other
/// fields, in their order; a coordinate it already holds is replaced where it stands.
///
/// With these, NDJSON clients (which see no `id:`) can still resume.
///
/// The payload is parsed to check it is an object and to find `meta`, but not rebuilt: the
/// coordinates are spliced into its text, so everything else is sent byte for byte, and the
/// cost is close to [`JsonPassThrough`](crate::JsonPassThrough)'s.
///
/// ```
/// use kafka_sse::{Deserializer, JsonWithMeta, Message};
///
/// let message = Message::new("rc", 2, 7, r#"{"title":"X","meta":{"domain":"en.wikipedia.org"}}"#);
/// let data = JsonWithMeta.deserialize(&message).unwrap();
/// assert_eq!(
///     data,
///     r#"{"title":"X","meta":{"domain":"en.wikipedia.org","topic":"rc","partition":2,"offset":7}}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonWithMeta;

impl Deserializer for JsonWithMeta {
    fn deserialize(&self, message: &Message) -> Result<Bytes, BoxError> {
        let payload = payload_of(message)?;
        let event: EventOutline<'_> = serde_json::from_slice(payload)?;
        let coordinates = Coordinates::of(message);
        let mut out = Vec::with_capacity(payload.len() + 96);
        match event.meta {
            Some(meta) => {
                let start = offset_in(payload, meta.get());
                let entries: MetaEntries<'_> = serde_json::from_str(meta.get())
                    .map_err(|_| "the event's \"meta\" is not an object")?;
                out.extend_from_slice(&payload[..start]);
                coordinates.write_into(&entries.0, &mut out)?;
                out.extend_from_slice(&payload[start + meta.get().len()..]);
            }
            None => {
                let close = payload
                    .iter()
                    .rposition(|&byte| byte == b'}')
                    .ok_or("the event is not an object")?;
                out.extend_from_slice(&payload[..close]);
                if !event.empty {
                    out.push(b',');
                }
                out.extend_from_slice(br#""meta":"#);
                coordinates.write_into(&[], &mut out)?;
                out.extend_from_slice(&payload[close..]);
            }
        }
        Ok(out.into())
    }
}

/// Where `part`, a slice borrowed from `whole`, starts in it.
fn offset_in(whole: &[u8], part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// The Kafka coordinates of one message, as `meta` members in their usual order.
struct Coordinates<'a> {
    members: [(&'static str, Option<Coordinate<'a>>); 4],
}

#[derive(Clone, Copy)]
enum Coordinate<'a> {
    Text(&'a str),
    Number(i64),
}

impl<'a> Coordinates<'a> {
    fn of(message: &'a Message) -> Self {
        Coordinates {
            members: [
                ("topic", Some(Coordinate::Text(message.topic()))),
                (
                    "partition",
                    Some(Coordinate::Number(message.partition().into())),
                ),
                ("offset", Some(Coordinate::Number(message.offset()))),
                ("timestamp", message.timestamp().map(Coordinate::Number)),
            ],
        }
    }

    /// Writes the `meta` object: the `existing` members in order, a coordinate already
    /// there replaced where it stands (its later duplicates dropped), then the coordinates
    /// not written yet. A message without a timestamp leaves an existing `timestamp` alone.
    fn write_into(
        &self,
        existing: &[(Cow<'_, str>, &RawValue)],
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        let mut written = [false; 4];
        let mut first = true;
        out.push(b'{');
        for (name, value) in existing {
            let coordinate = self.members.iter().position(|(known, _)| known == name);
            if let Some(index) = coordinate {
                if written[index] {
                    continue;
                }
                if let (_, Some(coordinate)) = self.members[index] {
                    written[index] = true;
                    write_member(out, &mut first, name, coordinate)?;
                    continue;
                }
            }
            separate(out, &mut first);
            serde_json::to_writer(&mut *out, name)?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        for (index, (name, coordinate)) in self.members.iter().enumerate() {
            if let (false, Some(coordinate)) = (written[index], coordinate) {
                write_member(out, &mut first, name, *coordinate)?;
            }
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_member(
    out: &mut Vec<u8>,
    first: &mut bool,
    name: &str,
    value: Coordinate<'_>,
) -> Result<(), BoxError> {
    separate(out, first);
    serde_json::to_writer(&mut *out, name)?;
    out.push(b':');
    match value {
        Coordinate::Text(text) => serde_json::to_writer(&mut *out, text)?,
        Coordinate::Number(number) => serde_json::to_writer(&mut *out, &number)?,
    }
    Ok(())
}

fn separate(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

/// What the splice needs to know of an event: that it is an object, whether it is empty,
/// and the text of its `meta` (the last one, as a JSON parser would keep). Every other value
/// is checked and skipped without being built.
struct EventOutline<'a> {
    empty: bool,
    meta: Option<&'a RawValue>,
}

impl<'de> de::Deserialize<'de> for EventOutline<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventOutlineVisitor)
    }
}

struct EventOutlineVisitor;

impl<'de> Visitor<'de> for EventOutlineVisitor {
    type Value = EventOutline<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut outline = EventOutline {
            empty: true,
            meta: None,
        };
        while let Some(IsMeta(is_meta)) = map.next_key()? {
            outline.empty = false;
            if is_meta {
                outline.meta = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(outline)
    }
}

/// A key, read only to tell whether it is `meta`.
struct IsMeta(bool);

impl<'de> de::Deserialize<'de> for IsMeta {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = IsMeta;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsMeta, E> {
                Ok(IsMeta(key == "meta"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of a `meta` object, in order, each value kept as its text.
struct MetaEntries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for MetaEntries<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = MetaEntries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key_seed(BorrowedKey)? {
                    entries.push((key, map.next_value()?));
                }
                Ok(MetaEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A key borrowed from the input when it has no escapes.
struct BorrowedKey;

impl<'de> DeserializeSeed<'de> for BorrowedKey {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(key))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(key.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// The obvious way: parse the whole event, insert, serialize again.
    fn rebuilt(message: &Message) -> Option<Value> {
        let mut event: Map<String, Value> = serde_json::from_slice(message.payload()?).ok()?;
        let meta = event
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return None;
        };
        meta.insert("topic".into(), message.topic().into());
        meta.insert("partition".into(), message.partition().into());
        meta.insert("offset".into(), message.offset().into());
        if let Some(timestamp) = message.timestamp() {
            meta.insert("timestamp".into(), timestamp.into());
        }
        Some(Value::Object(event))
    }

    fn spliced(message: &Message) -> Option<Value> {
        let data = JsonWithMeta.deserialize(message).ok()?;
        Some(serde_json::from_slice(&data).expect("the splice is valid JSON"))
    }

    fn agree(payload: &str, timestamp: Option<i64>) {
        let mut message = Message::new("t\"é", 3, 42, payload.to_owned());
        if let Some(timestamp) = timestamp {
            message = message.with_timestamp(timestamp);
        }
        let (expected, actual) = (rebuilt(&message), spliced(&message));
        assert_eq!(
            expected.as_ref().map(Value::to_string),
            actual.as_ref().map(Value::to_string),
            "{payload}"
        );
    }

    #[test]
    fn adds_a_meta_object_and_timestamp() {
        let message = Message::new("t", 0, 1, r#"{"a":1}"#).with_timestamp(5);
        let data = JsonWithMeta.deserialize(&message).unwrap();
        assert_eq!(
            data,
            r#"{"a":1,"meta":{"topic":"t","partition":0,"offset":1,"timestamp":5}}"#
        );
    }

    #[test]
    fn keeps_the_rest_of_the_text_as_it_is() {
        let message = Message::new(
            "t",
            0,
            1,
            "{ \"b\" : [1, 2],\n \"meta\" : { \"offset\": 9, \"x\": \"\\u00e9\" } }\n",
        );
        let data = JsonWithMeta.deserialize(&message).unwrap();
        assert_eq!(
            data,
            "{ \"b\" : [1, 2],\n \"meta\" : {\"offset\":1,\"x\":\"\\u00e9\",\"topic\":\"t\",\"partition\":0} }\n"
        );
    }

    #[test]
    fn agrees_with_rebuilding_the_event() {
        for payload in [
            "{}",
            " { } ",
            r#"{"meta":{}}"#,
            r#"{"meta":{"topic":"old","a":1,"topic":"dup"},"z":[{"meta":1}]}"#,
            r#"{"meta":{"a":1},"meta":{"b":2}}"#,
            r#"{"me\u0074a":{"k\"ey":"v"}}"#,
            r#"{"a":"}"}"#,
        ] {
            agree(payload, Some(7));
            agree(payload, None);
        }
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for payload in [
            "[1]",
            "\"text\"",
            r#"{"meta":3}"#,
            r#"{"meta":[]}"#,
            "{",
            "{}}",
            "",
        ] {
            assert!(
                JsonWithMeta
                    .deserialize(&Message::new("t", 0, 0, payload))
                    .is_err(),
                "{payload}"
            );
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\\u{e9}\n{}]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec(("(meta|topic|offset|[a-z]{1,3})", inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_event_gets_the_same_result_as_rebuilding_it(
            members in prop::collection::vec(("(meta|[a-z]{1,3})", json()), 0..5),
            pretty in any::<bool>(),
            timestamp in prop::option::of(any::<i64>()),
        ) {
            let event = Value::Object(members.into_iter().collect());
            let payload = if pretty {
                serde_json::to_string_pretty(&event).unwrap()
            } else {
                event.to_string()
            };
            agree(&payload, timestamp);
        }
    }
}
