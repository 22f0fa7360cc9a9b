//! Shared live-tail fan-out: clients reading the same partitions at the live end share one
//! consumer, and each frame is encoded once for all of them.
//!
//! A *hub* owns one consumer for one exact assignment and publishes every message, already
//! deserialized and framed, to a `tokio::sync::broadcast` ring. The ring is every client's
//! bounded queue at once: a client that falls more than its capacity behind gets `Lagged` and
//! moves to its own consumer at its own position, so it loses nothing and holds no memory on
//! the hub. A hub ends once it has had no client for a moment.
//!
//! Positions and the ring are changed under one lock, so a client that subscribes under that
//! lock and copies the hub's positions receives exactly the messages after them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tokio::sync::broadcast;

use crate::builder::Settings;
use crate::consumer::MessageSource;
use crate::deserializer::deserialize_or_skip;
use crate::event_stream::record_lag;
use crate::position::Positions;
use crate::{frame, Error, Message, PartitionPosition};

/// How often a hub checks whether it still has clients.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// How much a hub's batch window grows per client (see
/// [`KafkaSseBuilder::fan_out_batch_window`](crate::KafkaSseBuilder::fan_out_batch_window)).
const BATCH_WINDOW_PER_CLIENT: Duration = Duration::from_micros(5);

/// Windows shorter than this are not worth a timer.
const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);

/// The partitions of a hub, sorted: its identity.
pub(crate) type HubKey = Vec<(Arc<str>, i32)>;

/// The key of the hub serving exactly these partitions.
pub(crate) fn key<'a>(partitions: impl Iterator<Item = (&'a Arc<str>, i32)>) -> HubKey {
    let mut key: HubKey = partitions
        .map(|(topic, partition)| (topic.clone(), partition))
        .collect();
    key.sort();
    key
}

fn key_of(positions: &[PartitionPosition]) -> HubKey {
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
    pub(crate) fn ndjson_line(&self) -> Option<Bytes> {
        let data = self.data.as_ref()?;
        Some(
            self.ndjson_line
                .get_or_init(|| frame::ndjson_line(data))
                .clone(),
        )
    }
}

#[derive(Clone)]
pub(crate) enum HubItem {
    Event(Arc<SharedEvent>),
    Failed(Arc<Error>),
}

struct Hub {
    key: HubKey,
    /// `kafka_sse_event_lag_seconds` of the stream that started the hub, recorded once per
    /// event for all its clients.
    lag: metrics::Histogram,
    state: Mutex<HubState>,
    sender: broadcast::Sender<HubItem>,
}

struct HubState {
    positions: Positions,
    open: bool,
}

/// A client's place on a hub.
pub(crate) struct Subscription {
    pub(crate) receiver: broadcast::Receiver<HubItem>,
    /// Partitions where the client was ahead of the hub when it joined. Until the hub passes
    /// them the client skips duplicates and frames its own ids.
    pub(crate) ahead: HashSet<(Arc<str>, i32)>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("ahead", &self.ahead.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a client that asks to join a hub.
pub(crate) enum Join {
    Joined(Subscription),
    /// The hub is ahead of the client on some partition; keep reading on its own.
    Behind,
    NoHub,
}

/// Every hub of one [`KafkaSse`](crate::KafkaSse).
pub(crate) struct FanOut {
    hubs: Mutex<HashMap<HubKey, Arc<Hub>>>,
    /// One lock per assignment whose hub is being started, so it is started once.
    starting: Mutex<HashMap<HubKey, Arc<tokio::sync::Mutex<()>>>>,
    settings: Settings,
}

impl FanOut {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(FanOut {
            hubs: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// Subscribes a live client to the hub for `key`, returning the hub's current positions
    /// as the client's start.
    pub(crate) fn join_live(&self, key: &HubKey) -> Option<(Subscription, Vec<PartitionPosition>)> {
        let hubs = self.hubs.lock().expect("hub registry lock");
        let hub = hubs.get(key)?;
        let state = hub.state.lock().expect("hub lock");
        if !state.open {
            return None;
        }
        let subscription = Subscription {
            receiver: hub.sender.subscribe(),
            ahead: HashSet::new(),
        };
        Some((subscription, state.positions.as_slice().to_vec()))
    }

    /// Subscribes a client at `positions` when it is not behind the hub on any partition.
    pub(crate) fn join_at(&self, positions: &[PartitionPosition]) -> Join {
        let key = key_of(positions);
        let hubs = self.hubs.lock().expect("hub registry lock");
        let Some(hub) = hubs.get(&key) else {
            return Join::NoHub;
        };
        let state = hub.state.lock().expect("hub lock");
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
            receiver: hub.sender.subscribe(),
            ahead,
        })
    }

    /// Waits until no other request is starting the hub for `key`, and holds that right
    /// until the returned lock drops: requests that arrive together for a stream nobody
    /// reads yet open one consumer between them, and the rest join its hub.
    pub(crate) async fn lock_start(self: &Arc<Self>, key: &HubKey) -> StartLock {
        let lock = self
            .starting
            .lock()
            .expect("hub start lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        StartLock {
            fan_out: self.clone(),
            key: key.clone(),
            guard: Some(guard),
        }
    }

    /// Starts a hub reading `source`, whose consumer stands at `positions`, and subscribes
    /// the caller in step with it; `label` names the stream in its metrics. When another hub
    /// for the same partitions started meanwhile, the source is handed back.
    pub(crate) fn start(
        self: &Arc<Self>,
        source: MessageSource,
        positions: &[PartitionPosition],
        label: &str,
    ) -> Result<Subscription, MessageSource> {
        let key = key_of(positions);
        let mut hubs = self.hubs.lock().expect("hub registry lock");
        if hubs.contains_key(&key) {
            return Err(source);
        }
        let (sender, receiver) = broadcast::channel(self.settings.fan_out_queue.max(1));
        let hub = Arc::new(Hub {
            key: key.clone(),
            lag: metrics::histogram!("kafka_sse_event_lag_seconds", "stream" => label.to_owned()),
            state: Mutex::new(HubState {
                positions: Positions::new(positions.to_vec()),
                open: true,
            }),
            sender,
        });
        hubs.insert(key, hub.clone());
        metrics::gauge!("kafka_sse_fanout_hubs").increment(1);
        tracing::debug!(partitions = positions.len(), "fan-out hub started");
        tokio::spawn(run(self.clone(), hub, source));
        Ok(Subscription {
            receiver,
            ahead: HashSet::new(),
        })
    }

    /// Closes `hub` and forgets it if nobody listens, or always when `force`.
    fn retire(&self, hub: &Arc<Hub>, force: bool) -> bool {
        let mut hubs = self.hubs.lock().expect("hub registry lock");
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

    /// How long a hub with `clients` gathers messages before publishing them.
    fn batch_window(&self, clients: usize) -> Duration {
        let window = BATCH_WINDOW_PER_CLIENT.saturating_mul(clients.try_into().unwrap_or(u32::MAX));
        window.min(self.settings.fan_out_batch_window)
    }

    fn publish(&self, hub: &Hub, message: Message) {
        let data = deserialize_or_skip(&*self.settings.deserializer, &message);
        let mut state = hub.state.lock().expect("hub lock");
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
        if hub.sender.send(HubItem::Event(Arc::new(event))).is_ok() {
            record_lag(&hub.lag, timestamp);
        }
    }
}

/// The right to start the hub of one assignment; see [`FanOut::lock_start`].
pub(crate) struct StartLock {
    fan_out: Arc<FanOut>,
    key: HubKey,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for StartLock {
    fn drop(&mut self) {
        let mut starting = self.fan_out.starting.lock().expect("hub start lock");
        drop(self.guard.take());
        // Nobody else holds or waits for this lock: forget it.
        if starting
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            starting.remove(&self.key);
        }
    }
}

impl fmt::Debug for FanOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hubs = self.hubs.lock().map(|hubs| hubs.len()).unwrap_or_default();
        f.debug_struct("FanOut").field("hubs", &hubs).finish()
    }
}

/// A hub's task: reads its consumer at Kafka's pace and publishes every message until the
/// hub has no client left or the consumer fails for good.
async fn run(fan_out: Arc<FanOut>, hub: Arc<Hub>, source: MessageSource) {
    let mut source = source.fuse();
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    'running: loop {
        tokio::select! {
            received = source.next() => {
                batch.push(received);
                let window = fan_out.batch_window(hub.sender.receiver_count());
                gather(&mut source, window, &mut batch).await;
                for received in batch.drain(..) {
                    match received {
                        Some(Ok(message)) => fan_out.publish(&hub, message),
                        Some(Err(error)) => {
                            let _ = hub.sender.send(HubItem::Failed(Arc::new(error)));
                            fan_out.retire(&hub, true);
                            break 'running;
                        }
                        None => {
                            fan_out.retire(&hub, true);
                            break 'running;
                        }
                    }
                }
            },
            _ = idle_check.tick() => {
                if fan_out.retire(&hub, false) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::KafkaSseBuilder;
    use futures::channel::mpsc;
    use rdkafka::ClientConfig;

    fn fan_out() -> Arc<FanOut> {
        FanOut::new(KafkaSseBuilder::new(ClientConfig::new()).settings())
    }

    fn positions(offsets: &[i64]) -> Vec<PartitionPosition> {
        offsets
            .iter()
            .enumerate()
            .map(|(partition, &offset)| PartitionPosition::new("t", partition as i32, offset))
            .collect()
    }

    #[tokio::test]
    async fn live_clients_start_at_the_hub_positions_and_share_frames() {
        let fan_out = fan_out();
        let (feed, source) = mpsc::unbounded();
        let Ok(mut first) = fan_out.start(source.boxed(), &positions(&[5, 7]), "t") else {
            panic!("a new hub")
        };
        feed.unbounded_send(Ok(Message::new("t", 1, 7, "{}")))
            .unwrap();
        let HubItem::Event(seen_first) = first.receiver.recv().await.unwrap() else {
            panic!("an event")
        };

        let (mut second, start) = fan_out.join_live(&key_of(&positions(&[0, 0]))).unwrap();
        assert_eq!(start, positions(&[5, 8]));
        feed.unbounded_send(Ok(Message::new("t", 0, 5, "{}")))
            .unwrap();
        let (HubItem::Event(a), HubItem::Event(b)) = (
            first.receiver.recv().await.unwrap(),
            second.receiver.recv().await.unwrap(),
        ) else {
            panic!("events")
        };
        assert!(Arc::ptr_eq(&a, &b), "one encoding for every client");
        assert_ne!(seen_first.sse_frame, a.sse_frame);
    }

    #[tokio::test]
    async fn clients_join_only_when_not_behind() {
        let fan_out = fan_out();
        let (_feed, source) = mpsc::unbounded::<Result<Message, Error>>();
        let Ok(_hub) = fan_out.start(source.boxed(), &positions(&[5, 7]), "t") else {
            panic!("a new hub")
        };
        assert!(matches!(fan_out.join_at(&positions(&[4, 9])), Join::Behind));
        let Join::Joined(joined) = fan_out.join_at(&positions(&[5, 9])) else {
            panic!("joined")
        };
        assert_eq!(joined.ahead.len(), 1);
        assert!(matches!(fan_out.join_at(&positions(&[5])), Join::NoHub));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_with_many_clients_hands_events_over_together() {
        let fan_out = fan_out();
        let (feed, source) = mpsc::unbounded();
        let Ok(mut first) = fan_out.start(source.boxed(), &positions(&[0]), "t") else {
            panic!("a new hub")
        };
        let key = key_of(&positions(&[0]));
        let _others: Vec<_> = (1..1000).map(|_| fan_out.join_live(&key)).collect();
        assert_eq!(fan_out.batch_window(1000), Duration::from_millis(5));

        feed.unbounded_send(Ok(Message::new("t", 0, 0, "{}")))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(first.receiver.try_recv().is_err(), "held within the window");
        feed.unbounded_send(Ok(Message::new("t", 0, 1, "{}")))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(4)).await;
        for offset in 0..2 {
            let Ok(HubItem::Event(event)) = first.receiver.try_recv() else {
                panic!("event {offset} published when the window closed")
            };
            assert_eq!(event.message.offset(), offset);
        }
        assert_eq!(fan_out.batch_window(100), Duration::from_micros(500));
        assert_eq!(fan_out.batch_window(1_000_000), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_without_clients_stops_and_is_forgotten() {
        let fan_out = fan_out();
        let (_feed, source) = mpsc::unbounded::<Result<Message, Error>>();
        let Ok(subscription) = fan_out.start(source.boxed(), &positions(&[1]), "t") else {
            panic!("a new hub")
        };
        drop(subscription);
        tokio::time::sleep(IDLE_CHECK * 3).await;
        assert!(matches!(fan_out.join_at(&positions(&[1])), Join::NoHub));
    }
}
