//! One shared live stream: a *hub* owns one consumer for one exact assignment and publishes
//! every message, already deserialized and framed, to a `tokio::sync::broadcast` ring.
//!
//! The ring is every client's bounded queue at once: a client that falls more than its
//! capacity behind gets `Lagged` and moves to its own consumer at its own position, so it
//! loses nothing and holds no memory on the hub. A hub ends once it has had no client for a
//! moment. Positions and the ring are changed under one lock, so a client that subscribes
//! under that lock and copies the hub's positions receives exactly the messages after them.
//!
//! A hub also keeps its most recent events (as many as the ring holds), so a client resuming
//! a little behind it, such as every client of a service that just restarted, replays them
//! and goes on live instead of opening a consumer of its own. A hub started for such clients
//! behind the live end (a *catch-up* hub) hands its clients over to the live hub of the same
//! partitions once it has caught up with it, and stops.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use crate::consumer::MessageSource;
use crate::deserializer::deserialize_or_skip;
use crate::position::Positions;
use crate::settings::Settings;
use crate::shared_event::{HubItem, Join, SharedEvent, Subscription};
use crate::telemetry::{self, record_lag};
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

/// The hubs of one service by assignment: at most one live hub per assignment, and the
/// catch-up hubs started for resuming clients.
pub(crate) type Registry = Mutex<HashMap<HubKey, Vec<Arc<Hub>>>>;

/// Numbers hubs in the order they start, so that of two hubs standing at the same place the
/// older one is kept.
static NEXT_HUB: AtomicU64 = AtomicU64::new(0);

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

pub(crate) struct Hub {
    key: HubKey,
    number: u64,
    /// Whether the hub reads at the live end: started for live clients, or a catch-up hub
    /// that found nothing more to read. Only live hubs take clients that start at the end.
    live: AtomicBool,
    /// `kafka_sse_event_lag_seconds` of the stream that started the hub, recorded once per
    /// event for all its clients.
    lag: metrics::Histogram,
    /// The stream that started the hub, for logs and metrics.
    label: String,
    state: Mutex<HubState>,
    sender: broadcast::Sender<HubItem>,
    settings: Settings,
}

struct HubState {
    positions: Positions,
    /// The most recent events, oldest first, at most as many as the ring holds.
    recent: VecDeque<Arc<SharedEvent>>,
    /// Where the hub stood before the oldest of `recent`.
    recent_from: Positions,
    capacity: usize,
    open: bool,
}

impl Hub {
    /// A hub standing at `positions`, at the live end or not, and the subscription of its
    /// first client.
    pub(crate) fn new(
        positions: &[PartitionPosition],
        live: bool,
        label: &str,
        settings: &Settings,
    ) -> (Arc<Hub>, Subscription) {
        let capacity = settings.fan_out_queue.max(1);
        let (sender, receiver) = broadcast::channel(capacity);
        let hub = Arc::new(Hub {
            key: key_of(positions),
            number: NEXT_HUB.fetch_add(1, Ordering::Relaxed),
            live: AtomicBool::new(live),
            lag: metrics::histogram!("kafka_sse_event_lag_seconds", "stream" => label.to_owned()),
            label: label.to_owned(),
            state: Mutex::new(HubState {
                positions: Positions::new(positions.to_vec()),
                recent: VecDeque::with_capacity(capacity.min(1024)),
                recent_from: Positions::new(positions.to_vec()),
                capacity,
                open: true,
            }),
            sender,
            settings: settings.clone(),
        });
        let subscription = Subscription {
            replay: VecDeque::new(),
            receiver,
            ahead: HashSet::new(),
        };
        (hub, subscription)
    }

    pub(crate) fn key(&self) -> &HubKey {
        &self.key
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// The hub's current positions.
    pub(crate) fn positions(&self) -> Vec<PartitionPosition> {
        self.state
            .lock()
            .expect("hub lock")
            .positions
            .as_slice()
            .to_vec()
    }

    /// Whether this hub can hand its clients over to `other`: the same partitions, `other`
    /// is live and not behind this hub, and this hub stands within `other`'s recent events,
    /// where its clients can replay from. Of two hubs at the same place the older is kept.
    ///
    /// Both must read the same logs: where this hub's last event of a partition falls within
    /// `other`'s recent ones, `other` must hold the same event (offset, timestamp and
    /// payload); where this hub has published none, both must stand at the same offset. A
    /// hub still reading a log that was replaced does not take clients over this way.
    fn can_hand_over_to(&self, other: &Hub) -> bool {
        if std::ptr::eq(self, other) || !other.is_live() {
            return false;
        }
        let (my_positions, my_recent) = {
            let mine = self.state.lock().expect("hub lock");
            (mine.positions.clone(), mine.recent.clone())
        };
        let theirs = other.state.lock().expect("hub lock");
        let mut ahead_somewhere = false;
        for ((me, now), from) in my_positions
            .as_slice()
            .iter()
            .zip(theirs.positions.as_slice())
            .zip(theirs.recent_from.as_slice())
        {
            if me.next_offset > now.next_offset || me.next_offset < from.next_offset {
                return false;
            }
            let last_mine = my_recent
                .iter()
                .rev()
                .find(|event| event.in_partition(&me.topic, me.partition));
            let same_log = match last_mine {
                Some(mine) if mine.message.offset() >= from.next_offset => {
                    theirs.recent.iter().any(|event| event.same_message(mine))
                }
                // The other hub's recent events start right after this hub's last one.
                Some(_) => true,
                None => me.next_offset == now.next_offset,
            };
            if !same_log {
                return false;
            }
            ahead_somewhere |= now.next_offset > me.next_offset;
        }
        ahead_somewhere || other.number < self.number
    }

    /// Subscribes a live client, returning the hub's current positions as its start.
    pub(crate) fn join_live(&self) -> Option<(Subscription, Vec<PartitionPosition>)> {
        let state = self.state.lock().expect("hub lock");
        if !state.open {
            return None;
        }
        let subscription = Subscription {
            replay: VecDeque::new(),
            receiver: self.sender.subscribe(),
            ahead: HashSet::new(),
        };
        Some((subscription, state.positions.as_slice().to_vec()))
    }

    /// Subscribes a client at `positions` (sorted by topic and partition) when the hub's
    /// recent events reach back to it on every partition: the client replays them (skipping
    /// what it has) and goes on live.
    ///
    /// `log_end` holds each partition's log end when the client's start was looked up: a
    /// hub past it reads a log that is gone (the topic was recreated) and is not joined.
    pub(crate) fn join_at(&self, positions: &[PartitionPosition], log_end: Option<&[i64]>) -> Join {
        let state = self.state.lock().expect("hub lock");
        if !state.open {
            return Join::NoHub;
        }
        let hub = state.positions.as_slice();
        if log_end.is_some_and(|ends| {
            hub.iter()
                .zip(ends)
                .any(|(now, &end)| now.next_offset > end)
        }) {
            return Join::Behind;
        }
        let mut ahead = HashSet::new();
        for (client, from) in positions.iter().zip(state.recent_from.as_slice()) {
            if client.next_offset < from.next_offset {
                return Join::Behind;
            }
            if client.next_offset > from.next_offset {
                ahead.insert((client.topic.clone(), client.partition));
            }
        }
        Join::Joined(Subscription {
            replay: state.recent.clone(),
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
        let position = state
            .positions
            .next_offset(message.topic(), message.partition());
        if message.offset() < position && position != i64::MAX {
            // A consumer reads each partition forward; going back means the log it read is
            // gone and librdkafka started over in the new one.
            telemetry::log_replaced(
                &self.label,
                message.topic(),
                message.partition(),
                position,
                message.offset(),
            );
            state.replaced(message.topic(), message.partition(), message.offset());
            let _ = self.sender.send(HubItem::Replaced {
                topic: message.topic_arc().clone(),
                partition: message.partition(),
                offset: message.offset(),
            });
        }
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
        let event = Arc::new(SharedEvent {
            message,
            data,
            sse_frame,
            ndjson_line: OnceLock::new(),
        });
        state.remember(event.clone());
        // Sending fails only when nobody listens; the idle check then retires the hub.
        if self.sender.send(HubItem::Event(event)).is_ok() {
            record_lag(&self.lag, timestamp);
        }
    }
}

impl HubState {
    /// Moves a partition to the start of the log that replaced it. The recent events are
    /// forgotten: they belong to the old log.
    fn replaced(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions.reset(topic, partition, offset);
        self.recent.clear();
        self.recent_from = self.positions.clone();
    }

    /// Keeps `event` among the recent ones, forgetting the oldest beyond the capacity.
    fn remember(&mut self, event: Arc<SharedEvent>) {
        self.recent.push_back(event);
        while self.recent.len() > self.capacity {
            let Some(oldest) = self.recent.pop_front() else {
                break;
            };
            let message = &oldest.message;
            self.recent_from.advance(
                message.topic(),
                message.partition(),
                message.offset(),
                message.timestamp(),
            );
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
    if let Some(same_key) = hubs.get_mut(&hub.key) {
        let before = same_key.len();
        same_key.retain(|h| !Arc::ptr_eq(h, hub));
        if same_key.len() < before {
            metrics::gauge!("kafka_sse_fanout_hubs").decrement(1);
        }
        if same_key.is_empty() {
            hubs.remove(&hub.key);
        }
    }
    true
}

/// Whether another hub of the same partitions can take over this hub's clients.
fn superseded(registry: &Registry, hub: &Hub) -> bool {
    let hubs = registry.lock().expect("hub registry lock");
    hubs.get(&hub.key)
        .is_some_and(|same_key| same_key.iter().any(|other| hub.can_hand_over_to(other)))
}

/// A hub's task: reads its consumer at Kafka's pace and publishes every message until the
/// hub has no client left or the consumer fails for good.
pub(crate) async fn run(registry: Arc<Registry>, hub: Arc<Hub>, source: MessageSource) {
    let mut source = source.fuse();
    let mut idle_check =
        tokio::time::interval_at(tokio::time::Instant::now() + IDLE_CHECK, IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    let mut read_since_check = false;
    'running: loop {
        tokio::select! {
            received = source.next() => {
                read_since_check = true;
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
                if superseded(&registry, &hub) {
                    // The clients see the hub close and rejoin the live one from its
                    // recent events.
                    tracing::debug!("hub caught up with the live one; handing over");
                    retire(&registry, &hub, true);
                    break;
                }
                if !read_since_check && !hub.is_live() {
                    hub.live.store(true, Ordering::Relaxed);
                    tracing::debug!("catch-up hub reached the live end");
                }
                read_since_check = false;
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
