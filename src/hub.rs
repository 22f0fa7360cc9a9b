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

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::deserializer::deserialize_or_skip;
use crate::position::Positions;
use crate::settings::Settings;
use crate::shared_event::{HubItem, Join, SharedEvent, Subscription};
use crate::telemetry::{self, record_lag};
use crate::topic_info;
use crate::{frame, Error, Message, PartitionPosition, TopicInfo};

/// How often a hub checks whether it still has clients.
pub(crate) const IDLE_CHECK: Duration = Duration::from_millis(500);

/// How much a hub's batch window grows per client (see
/// [`KafkaSseBuilder::fan_out_batch_window`](crate::KafkaSseBuilder::fan_out_batch_window)).
const BATCH_WINDOW_PER_CLIENT: Duration = Duration::from_micros(5);

/// What a hub reads, its identity: its partitions, sorted, and the topics it follows (reads
/// whole, taking partitions added to them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HubKey {
    partitions: Vec<(Arc<str>, i32)>,
    follows: Vec<Arc<str>>,
}

impl HubKey {
    /// The key of a hub reading exactly these partitions and following `follows`.
    pub(crate) fn new<'a>(
        partitions: impl Iterator<Item = (&'a Arc<str>, i32)>,
        follows: &BTreeSet<Arc<str>>,
    ) -> Self {
        let mut partitions: Vec<(Arc<str>, i32)> = partitions
            .map(|(topic, partition)| (topic.clone(), partition))
            .collect();
        partitions.sort();
        HubKey {
            partitions,
            follows: follows.iter().cloned().collect(),
        }
    }

    /// The key of a hub reading the partitions of `positions`.
    pub(crate) fn of(positions: &[PartitionPosition], follows: &BTreeSet<Arc<str>>) -> Self {
        HubKey::new(positions.iter().map(|p| (&p.topic, p.partition)), follows)
    }
}

/// The hubs of one service by assignment: at most one live hub per assignment, and the
/// catch-up hubs started for resuming clients.
pub(crate) type Registry = Mutex<HashMap<HubKey, Vec<Arc<Hub>>>>;

/// Numbers hubs in the order they start, so that of two hubs standing at the same place the
/// older one is kept.
static NEXT_HUB: AtomicU64 = AtomicU64::new(0);

pub(crate) struct Hub {
    /// Changes when the hub takes partitions added to a topic it follows.
    key: Mutex<HubKey>,
    follows: BTreeSet<Arc<str>>,
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
    /// What the hub's ids say of its topics.
    topics: Vec<TopicInfo>,
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
        follows: &BTreeSet<Arc<str>>,
        live: bool,
        label: &str,
        settings: &Settings,
    ) -> (Arc<Hub>, Subscription) {
        let capacity = settings.fan_out_queue.max(1);
        let (sender, receiver) = broadcast::channel(capacity);
        let hub = Arc::new(Hub {
            key: Mutex::new(HubKey::of(positions, follows)),
            follows: follows.clone(),
            number: NEXT_HUB.fetch_add(1, Ordering::Relaxed),
            live: AtomicBool::new(live),
            lag: metrics::histogram!("kafka_sse_event_lag_seconds", "stream" => label.to_owned()),
            label: label.to_owned(),
            state: Mutex::new(HubState {
                positions: Positions::new(positions.to_vec()),
                topics: topic_info::followed(positions, follows),
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

    pub(crate) fn key(&self) -> HubKey {
        self.key.lock().expect("hub key lock").clone()
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
    pub(crate) fn can_hand_over_to(&self, other: &Hub) -> bool {
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

    pub(crate) fn publish(&self, message: Message) {
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
            let id = self
                .settings
                .event_ids
                .encode_with_topics(state.positions.as_slice(), &state.topics);
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

impl Hub {
    /// Takes partitions added to a topic it follows, each from its position, and moves to
    /// the key of its grown assignment; its clients take them too.
    pub(crate) fn grow(&self, registry: &Registry, added: &[PartitionPosition]) {
        let mut hubs = registry.lock().expect("hub registry lock");
        let mut state = self.state.lock().expect("hub lock");
        state.positions.add(added);
        state.recent_from.add(added);
        state.topics = topic_info::followed(state.positions.as_slice(), &self.follows);
        let grown = HubKey::of(state.positions.as_slice(), &self.follows);
        let old = std::mem::replace(&mut *self.key.lock().expect("hub key lock"), grown.clone());
        let mut moved = None;
        if let Some(same_key) = hubs.get_mut(&old) {
            if let Some(index) = same_key.iter().position(|h| std::ptr::eq(&**h, self)) {
                moved = Some(same_key.swap_remove(index));
            }
            if same_key.is_empty() {
                hubs.remove(&old);
            }
        }
        if let Some(hub) = moved {
            hubs.entry(grown).or_default().push(hub);
        }
        let _ = self.sender.send(HubItem::Grew(added.to_vec()));
    }

    /// How many clients the hub has.
    pub(crate) fn clients(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Tells the clients that the hub failed for good.
    pub(crate) fn fail(&self, error: Error) {
        let _ = self.sender.send(HubItem::Failed(Arc::new(error)));
    }

    pub(crate) fn close(&self) {
        self.state.lock().expect("hub lock").open = false;
    }

    pub(crate) fn mark_live(&self) {
        self.live.store(true, Ordering::Relaxed);
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
