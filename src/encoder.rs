//! The frames of one stream in its output format: the format is decided here, once, and
//! the session asks for frames by what they mean.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::position::Positions;
use crate::shared_event::SharedEvent;
use crate::{frame, Error, EventIdCodec, Format, TopicInfo};

/// Turns what a stream has to say into frames of its [`Format`]: SSE frames with ids, or
/// NDJSON lines, which carry no ids and no comments.
pub(crate) struct Encoder {
    sse: bool,
    event_ids: Arc<dyn EventIdCodec>,
    retry: Option<Duration>,
    /// What the ids say of the stream's topics.
    topics: Vec<TopicInfo>,
}

impl Encoder {
    pub(crate) fn new(
        format: Format,
        event_ids: Arc<dyn EventIdCodec>,
        retry: Option<Duration>,
        topics: Vec<TopicInfo>,
    ) -> Self {
        Encoder {
            sse: format == Format::Sse,
            event_ids,
            retry,
            topics,
        }
    }

    /// Replaces what the ids say of the stream's topics (after partitions were added).
    pub(crate) fn set_topics(&mut self, topics: Vec<TopicInfo>) {
        self.topics = topics;
    }

    /// The event id of `positions`.
    pub(crate) fn id(&self, positions: &Positions) -> String {
        self.event_ids
            .encode_with_topics(positions.as_slice(), &self.topics)
    }

    /// The frame that opens a stream, so clients see it open at once: `:ok`, with the
    /// `retry:` delay when one is set. NDJSON has none.
    pub(crate) fn opening(&self) -> Option<Bytes> {
        self.sse.then(|| frame::open(self.retry))
    }

    /// An id-only frame that moves the client's resume point without an event. NDJSON has
    /// none: its clients resume from the events' own coordinates.
    pub(crate) fn position(&self, positions: &Positions) -> Option<Bytes> {
        self.sse.then(|| frame::id_only(&self.id(positions)))
    }

    /// What keeps an idle connection alive: an empty comment, or an empty NDJSON line.
    pub(crate) fn heartbeat(&self) -> Bytes {
        if self.sse {
            frame::comment("")
        } else {
            Bytes::from_static(b"\n")
        }
    }

    /// The frame of one event whose client now stands at `positions`. `shared` is the
    /// event as a hub encoded it, when the hub stands where the client does: its frame is
    /// then sent as it is.
    pub(crate) fn event(
        &self,
        positions: &Positions,
        data: &Bytes,
        shared: Option<&SharedEvent>,
    ) -> Bytes {
        let encoded = shared.and_then(|event| {
            if self.sse {
                event.sse_frame.clone()
            } else {
                event.ndjson_line()
            }
        });
        encoded.unwrap_or_else(|| {
            if self.sse {
                frame::event("message", &self.id(positions), data)
            } else {
                frame::ndjson_line(data)
            }
        })
    }

    /// The last frame of a stream that failed: the problem's type, title and detail (never
    /// internals) with the client's current id, so it resumes without loss.
    pub(crate) fn error(&self, positions: &Positions, error: &Error) -> Bytes {
        let problem = error.problem();
        let body = serde_json::json!({
            "type": problem.type_uri,
            "title": problem.title,
            "detail": problem.detail,
        });
        let id = self.id(positions);
        if self.sse {
            frame::event("error", &id, body.to_string().as_bytes())
        } else {
            let line = serde_json::json!({ "error": body, "id": id });
            frame::ndjson_line(line.to_string().as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OffsetIds, PartitionPosition};

    fn positions() -> Positions {
        Positions::new(vec![PartitionPosition::new("t", 0, 3)])
    }

    #[test]
    fn sse_frames_carry_ids_and_ndjson_lines_carry_none() {
        let data = Bytes::from_static(b"{}");
        let sse = Encoder::new(Format::Sse, Arc::new(OffsetIds), None, Vec::new());
        let id = r#"[{"topic":"t","partition":0,"offset":3}]"#;
        assert_eq!(
            sse.event(&positions(), &data, None),
            format!("event: message\nid: {id}\ndata: {{}}\n\n")
        );
        assert_eq!(sse.position(&positions()).unwrap(), format!("id: {id}\n\n"));
        assert_eq!(sse.heartbeat(), ":\n\n");

        let ndjson = Encoder::new(Format::Json, Arc::new(OffsetIds), None, Vec::new());
        assert_eq!(ndjson.event(&positions(), &data, None), "{}\n");
        assert!(ndjson.opening().is_none() && ndjson.position(&positions()).is_none());
        assert_eq!(ndjson.heartbeat(), "\n");
    }

    #[test]
    fn an_ndjson_error_line_holds_the_problem_and_the_id() {
        let ndjson = Encoder::new(Format::Ndjson, Arc::new(OffsetIds), None, Vec::new());
        let line = ndjson.error(&positions(), &Error::Busy);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["error"]["type"], "urn:kafka-sse:problem:busy");
        assert!(value["id"].as_str().unwrap().contains("\"offset\":3"));
    }
}
