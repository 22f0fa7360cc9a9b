//! What a hub hands its clients: each event decoded and framed once, and each client's place
//! on the hub.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::position::Positions;
use crate::{frame, Error, Message, PartitionPosition};

/// One message as the hub publishes it: decoded and framed once for every client.
pub(crate) struct SharedEvent {
    pub(crate) message: Message,
    /// The event data, or `None` when the deserializer rejected the message.
    pub(crate) data: Option<Bytes>,
    /// The SSE frame with the hub's id after this message; right for every client whose
    /// positions equal the hub's.
    pub(crate) sse_frame: Option<Bytes>,
    pub(crate) ndjson_line: OnceLock<Bytes>,
}

impl SharedEvent {
    pub(crate) fn in_partition(&self, topic: &str, partition: i32) -> bool {
        self.message.partition() == partition && self.message.topic() == topic
    }

    /// Whether `other` is the same Kafka message: same place, time and payload.
    pub(crate) fn same_message(&self, other: &SharedEvent) -> bool {
        let (a, b) = (&self.message, &other.message);
        a.offset() == b.offset()
            && a.partition() == b.partition()
            && a.timestamp() == b.timestamp()
            && a.topic() == b.topic()
            && a.payload() == b.payload()
    }

    /// The NDJSON line of the event, encoded by the first client that asks.
    pub(crate) fn ndjson_line(&self) -> Option<Bytes> {
        let data = self.data.as_ref()?;
        Some(
            self.ndjson_line
                .get_or_init(|| frame::ndjson_line(data))
                .clone(),
        )
    }
}

/// What a hub sends its clients.
#[derive(Clone)]
pub(crate) enum HubItem {
    Event(Arc<SharedEvent>),
    /// The partition's log was replaced: the hub now reads the new log from `offset`, and
    /// every client moves there too.
    Replaced {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// Partitions added to a topic the hub follows, each at its start: every client reads
    /// them too from now on.
    Grew(Vec<PartitionPosition>),
    Failed(Arc<Error>),
}

/// A client's place on a hub.
pub(crate) struct Subscription {
    /// Recent events the client has to receive before the live ones, oldest first.
    pub(crate) replay: VecDeque<Arc<SharedEvent>>,
    pub(crate) receiver: broadcast::Receiver<HubItem>,
    /// Partitions where the client was ahead of the hub when it joined. Until the hub passes
    /// them the client skips duplicates and frames its own ids.
    pub(crate) ahead: HashSet<(Arc<str>, i32)>,
}

impl Subscription {
    /// Whether the client, at `positions` before `message`, stands where the hub stands, so
    /// the hub's frame is right for it.
    pub(crate) fn in_step(&mut self, message: &Message, positions: &Positions) -> bool {
        if self.ahead.is_empty() {
            return true;
        }
        if message.offset() >= positions.next_offset(message.topic(), message.partition()) {
            self.ahead
                .remove(&(message.topic_arc().clone(), message.partition()));
        }
        self.ahead.is_empty()
    }
}

impl Subscription {
    /// The client moves with the hub to the start of a partition's new log: it is in step
    /// there.
    pub(crate) fn replaced(&mut self, topic: &Arc<str>, partition: i32) {
        self.ahead.remove(&(topic.clone(), partition));
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("replay", &self.replay.len())
            .field("ahead", &self.ahead.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a client that asks to join a hub at its own positions.
pub(crate) enum Join {
    Joined(Subscription),
    /// The hub's recent events start after the client's position on some partition.
    Behind,
    NoHub,
}
