//! One shared live stream: a *hub* owns one consumer for one exact assignment and publishes
//! every message, already deserialized and framed, to a `tokio::sync::broadcast` ring.
//!
//! The ring is every client's bounded queue at once: a client that falls more than its
//! capacity behind gets `Lagged` and moves to its own consumer at its own position, so it
//! loses nothing and holds no memory on the hub. A hub ends once it has had no client for a
//! moment. Positions and the ring are changed under one lock, so a client that subscribes
//! under that lock and copies the hub's positions receives exactly the messages after them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use crate::consumer::MessageSource;
use crate::deserializer::deserialize_or_skip;
use crate::position::Positions;
use crate::settings::Settings;
use crate::telemetry::record_lag;
use crate::{frame, Error, Message, PartitionPosition};

/// How often a hub checks whether it still has clients.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(500);

/// How much a hub's batch window grows per client (see
/// [`KafkaSseBuilder::fan_out_batch_window`](crate::KafkaSseBuilder::fan_out_batch_window)).
const BATCH_WINDOW_PER_CLIENT: Duration = Duration::from_micros(5);

/// Windows shorter than this are not worth a timer.
const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);

/// The partitions of a hub, sorted: its identity.
pub(crate) type HubKey = Vec<(Arc<str>, i32)>;

/// The hubs of one service by assignment.
pub(crate) type Registry = Mutex<HashMap<HubKey, Arc<Hub>>>;

/// The key of the hub serving exactly these partitions.
pub(crate) fn key<'a>(partitions: impl Iterator<Item = (&'a Arc<str>, i32)>) -> HubKey {
    let mut key: HubKey = partitions
        .map(|(topic, partition)| (topic.clone(), partition))
        .collect();
    key.sort();
    key
}

/// The key of the hub serving the partitions of `positions`.
pub(crate) fn key_of(positions: &[PartitionPosition]) -> HubKey {
    key(positions.iter().map(|p| (&p.topic, p.partition)))
}

/// One message as the hub publishes it: decoded and framed once for every client.
pub(crate) struct SharedEvent {
    pub(crate) message: Message,
    /// The event data, or `None` when the deserializer rejected the message.
    pub(crate) data: Option<Bytes>,
    /// The SSE frame with the hub's id after this message; right for every client whose
    /// positions equal the hub's.
    pub(crate) sse_frame: Option<Bytes>,
    ndjson_line: OnceLock<Bytes>,
}

impl SharedEvent {
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
    Failed(Arc<Error>),
}

/// A client's place on a hub.
pub(crate) struct Subscription {
    pub(crate) receiver: broadcast::Receiver<HubItem>,
    /// Partitions where the client was ahead of the hub when it joined. Until the hub passes
    /// them the client skips duplicates and frames its own ids.
    ahead: HashSet<(Arc<str>, i32)>,
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

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("ahead", &self.ahead.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a client that asks to join a hub at its own positions.
pub(crate) enum Join {
    Joined(Subscription),
    /// The hub is ahead of the client on some partition; keep reading on its own.
    Behind,
    NoHub,
}

pub(crate) struct Hub {
    key: HubKey,
    /// `kafka_sse_event_lag_seconds` of the stream that started the hub, recorded once per
    /// event for all its clients.
    lag: metrics::Histogram,
    state: Mutex<HubState>,
    sender: broadcast::Sender<HubItem>,
    settings: Settings,
}

struct HubState {
    positions: Positions,
    open: bool,
}

impl Hub {
    /// A hub standing at `positions`, and the receiver of its first client.
    pub(crate) fn new(
        positions: &[PartitionPosition],
        label: &str,
        settings: &Settings,
    ) -> (Arc<Hub>, Subscription) {
        let (sender, receiver) = broadcast::channel(settings.fan_out_queue.max(1));
        let hub = Arc::new(Hub {
            key: key_of(positions),
            lag: metrics::histogram!("kafka_sse_event_lag_seconds", "stream" => label.to_owned()),
            state: Mutex::new(HubState {
                positions: Positions::new(positions.to_vec()),
                open: true,
            }),
            sender,
            settings: settings.clone(),
        });
        let subscription = Subscription {
            receiver,
            ahead: HashSet::new(),
        };
        (hub, subscription)
    }

    pub(crate) fn key(&self) -> &HubKey {
        &self.key
    }

    /// Subscribes a live client, returning the hub's current positions as its start.
    pub(crate) fn join_live(&self) -> Option<(Subscription, Vec<PartitionPosition>)> {
        let state = self.state.lock().expect("hub lock");
        if !state.open {
            return None;
        }
        let subscription = Subscription {
            receiver: self.sender.subscribe(),
            ahead: HashSet::new(),
        };
        Some((subscription, state.positions.as_slice().to_vec()))
    }

    /// Subscribes a client at `positions` when it is not behind the hub on any partition.
    pub(crate) fn join_at(&self, positions: &[PartitionPosition]) -> Join {
        let state = self.state.lock().expect("hub lock");
        if !state.open {
            return Join::NoHub;
        }
        let mut ahead = HashSet::new();
        for (client, hub_position) in positions.iter().zip(state.positions.as_slice()) {
            if client.next_offset < hub_position.next_offset {
                return Join::Behind;
            }
            if client.next_offset > hub_position.next_offset {
                ahead.insert((client.topic.clone(), client.partition));
            }
        }
        Join::Joined(Subscription {
            receiver: self.sender.subscribe(),
            ahead,
        })
    }

    /// How long the hub, with `clients`, gathers messages before publishing them.
    pub(crate) fn batch_window(&self, clients: usize) -> Duration {
        let window = BATCH_WINDOW_PER_CLIENT.saturating_mul(clients.try_into().unwrap_or(u32::MAX));
        window.min(self.settings.fan_out_batch_window)
    }

    fn publish(&self, message: Message) {
        let data = deserialize_or_skip(&*self.settings.deserializer, &message);
        let mut state = self.state.lock().expect("hub lock");
        let advanced = state.positions.advance(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp(),
        );
        if !advanced {
            return;
        }
        let sse_frame = data.as_ref().map(|data| {
            let id = self.settings.event_ids.encode(state.positions.as_slice());
            frame::event("message", &id, data)
        });
        let timestamp = message.timestamp();
        let event = SharedEvent {
            message,
            data,
            sse_frame,
            ndjson_line: OnceLock::new(),
        };
        // Sending fails only when nobody listens; the idle check then retires the hub.
        if self.sender.send(HubItem::Event(Arc::new(event))).is_ok() {
            record_lag(&self.lag, timestamp);
        }
    }
}

/// Closes `hub` and removes it from `registry` if nobody listens, or always when `force`.
pub(crate) fn retire(registry: &Registry, hub: &Arc<Hub>, force: bool) -> bool {
    let mut hubs = registry.lock().expect("hub registry lock");
    if !force && hub.sender.receiver_count() > 0 {
        return false;
    }
    hub.state.lock().expect("hub lock").open = false;
    if hubs.get(&hub.key).is_some_and(|h| Arc::ptr_eq(h, hub)) {
        hubs.remove(&hub.key);
        metrics::gauge!("kafka_sse_fanout_hubs").decrement(1);
    }
    true
}

/// A hub's task: reads its consumer at Kafka's pace and publishes every message until the
/// hub has no client left or the consumer fails for good.
pub(crate) async fn run(registry: Arc<Registry>, hub: Arc<Hub>, source: MessageSource) {
    let mut source = source.fuse();
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    'running: loop {
        tokio::select! {
            received = source.next() => {
                batch.push(received);
                let window = hub.batch_window(hub.sender.receiver_count());
                gather(&mut source, window, &mut batch).await;
                for received in batch.drain(..) {
                    match received {
                        Some(Ok(message)) => hub.publish(message),
                        Some(Err(error)) => {
                            let _ = hub.sender.send(HubItem::Failed(Arc::new(error)));
                            retire(&registry, &hub, true);
                            break 'running;
                        }
                        None => {
                            retire(&registry, &hub, true);
                            break 'running;
                        }
                    }
                }
            },
            _ = idle_check.tick() => {
                if retire(&registry, &hub, false) {
                    break;
                }
            }
        }
    }
    tracing::debug!("fan-out hub stopped");
}

/// Adds to `batch` what `source` yields within `window`, stopping early at an error or the
/// end, which it adds too. Nothing is lost if the window closes mid-wait: the pending read
/// is simply not taken.
async fn gather(
    source: &mut stream::Fuse<MessageSource>,
    window: Duration,
    batch: &mut Vec<Option<Result<Message, Error>>>,
) {
    if window < MIN_BATCH_WINDOW || !matches!(batch.last(), Some(Some(Ok(_)))) {
        return;
    }
    let closed = tokio::time::sleep(window);
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            () = &mut closed => return,
            received = source.next() => {
                let more = matches!(received, Some(Ok(_)));
                batch.push(received);
                if !more {
                    return;
                }
            }
        }
    }
}
