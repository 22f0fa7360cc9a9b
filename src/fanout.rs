//! Shared live-tail fan-out: clients reading the same partitions at the live end share one
//! consumer, and each frame is encoded once for all of them.
//!
//! [`FanOut`] is the registry of a service's [hubs](crate::hub): it finds the hub of an
//! assignment for a client that wants to join one, and makes sure clients arriving together
//! for an assignment nobody reads yet start one hub between them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::consumer::MessageSource;
use crate::growth::Following;
use crate::hub::{Hub, HubKey, Registry};
use crate::hub_task;
use crate::settings::Settings;
use crate::shared_event::{Join, Subscription};
use crate::PartitionPosition;

/// How close together two clients resuming the same partitions must come to be taken for a
/// crowd (a restart bringing every client back) rather than one client reading history.
const CROWD_WINDOW: Duration = Duration::from_secs(2);

/// Every hub of one [`KafkaSse`](crate::KafkaSse).
pub(crate) struct FanOut {
    hubs: Arc<Registry>,
    /// When a client last resumed each assignment from behind the live end.
    resumed: Mutex<HashMap<HubKey, Instant>>,
    /// One lock per assignment whose hub is being started, so it is started once.
    starting: Mutex<HashMap<HubKey, Arc<tokio::sync::Mutex<()>>>>,
    settings: Settings,
}

impl FanOut {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(FanOut {
            hubs: Arc::default(),
            resumed: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashMap::new()),
            settings,
        })
    }

    /// The hubs of `key`, the furthest ahead first.
    fn hubs_of(&self, key: &HubKey) -> Vec<Arc<Hub>> {
        let mut hubs = self
            .hubs
            .lock()
            .expect("hub registry lock")
            .get(key)
            .cloned()
            .unwrap_or_default();
        let progress =
            |hub: &Arc<Hub>| -> i64 { hub.positions().iter().map(|p| p.next_offset).sum() };
        hubs.sort_by_cached_key(|hub| std::cmp::Reverse(progress(hub)));
        hubs
    }

    /// Subscribes a live client to the live hub for `key`, returning the hub's current
    /// positions as the client's start.
    pub(crate) fn join_live(&self, key: &HubKey) -> Option<(Subscription, Vec<PartitionPosition>)> {
        self.hubs_of(key)
            .iter()
            .filter(|hub| hub.is_live())
            .find_map(|hub| hub.join_live())
    }

    /// Subscribes a client at `positions` (sorted), following `follows`, to a hub of the
    /// same partitions whose recent events reach back to it, preferring the hub furthest
    /// ahead; `log_end` as in [`Hub::join_at`].
    pub(crate) fn join_at(
        &self,
        positions: &[PartitionPosition],
        follows: &BTreeSet<Arc<str>>,
        log_end: Option<&[i64]>,
    ) -> Join {
        let hubs = self.hubs_of(&HubKey::of(positions, follows));
        if hubs.is_empty() {
            return Join::NoHub;
        }
        for hub in hubs {
            if let Join::Joined(subscription) = hub.join_at(positions, log_end) {
                return Join::Joined(subscription);
            }
        }
        Join::Behind
    }

    /// Records that a client starts resuming `key` from behind the live end, at the time
    /// returned; also whether another did within [`CROWD_WINDOW`] before it.
    pub(crate) fn note_resume(&self, key: &HubKey) -> (Instant, bool) {
        let now = Instant::now();
        let mut resumed = self.resumed.lock().expect("resume times lock");
        resumed.retain(|_, at| now.duration_since(*at) < CROWD_WINDOW);
        let before = resumed.insert(key.clone(), now).is_some();
        (now, before)
    }

    /// Whether other clients resume these partitions together with one that started at
    /// `since`, so a catch-up hub is worth its cost: some wait behind it to start a hub, or
    /// one started resuming after it (clients coming back after a restart arrive spread
    /// over seconds).
    pub(crate) fn crowd_since(&self, key: &HubKey, since: Instant) -> bool {
        let waiting = self
            .starting
            .lock()
            .expect("hub start lock")
            .get(key)
            .is_some_and(|lock| Arc::strong_count(lock) > 2);
        let later = self
            .resumed
            .lock()
            .expect("resume times lock")
            .get(key)
            .is_some_and(|&at| at > since);
        waiting || later
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
    /// the caller in step with it; `label` names the stream in its metrics. A `live` hub
    /// reads from the live end; when a live hub for the same partitions started meanwhile,
    /// the source is handed back. A catch-up hub (not `live`) may run beside others.
    pub(crate) fn start(
        &self,
        source: MessageSource,
        positions: &[PartitionPosition],
        following: (&BTreeSet<Arc<str>>, Option<Following>),
        live: bool,
        label: &str,
    ) -> Result<Subscription, MessageSource> {
        let (follows, growth) = following;
        let mut hubs = self.hubs.lock().expect("hub registry lock");
        let (hub, subscription) = Hub::new(positions, follows, live, label, &self.settings);
        let same_key = hubs.entry(hub.key()).or_default();
        if live && same_key.iter().any(|other| other.is_live()) {
            return Err(source);
        }
        same_key.push(hub.clone());
        metrics::gauge!("kafka_sse_fanout_hubs").increment(1);
        tracing::debug!(partitions = positions.len(), live, "fan-out hub started");
        tokio::spawn(hub_task::run(self.hubs.clone(), hub, source, growth));
        Ok(subscription)
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
        let hubs = self
            .hubs
            .lock()
            .map(|hubs| hubs.values().map(Vec::len).sum::<usize>())
            .unwrap_or_default();
        f.debug_struct("FanOut").field("hubs", &hubs).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use futures::channel::mpsc;
    use futures::StreamExt;

    use crate::hub::IDLE_CHECK;
    use crate::shared_event::HubItem;
    use crate::{Error, Message};

    fn fan_out() -> Arc<FanOut> {
        FanOut::new(Settings::default())
    }

    fn key_of(positions: &[PartitionPosition]) -> HubKey {
        HubKey::of(positions, &BTreeSet::new())
    }

    fn none() -> BTreeSet<Arc<str>> {
        BTreeSet::new()
    }

    type Feed = mpsc::UnboundedSender<Result<Message, Error>>;

    /// A hub of partitions `0..offsets.len()` of "t", at `offsets`, fed by the returned
    /// sender; `None` when another live hub has them.
    fn start(fan_out: &FanOut, offsets: &[i64], live: bool) -> Option<(Feed, Subscription)> {
        let (feed, source) = mpsc::unbounded();
        let subscription = fan_out
            .start(
                source.boxed().into(),
                &positions(offsets),
                (&none(), None),
                live,
                "t",
            )
            .ok()?;
        Some((feed, subscription))
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
        let Some((feed, mut first)) = start(&fan_out, &[5, 7], true) else {
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
    async fn clients_join_only_where_the_hub_reaches_back_to() {
        let fan_out = fan_out();
        let Some((_feed, _hub)) = start(&fan_out, &[5, 7], true) else {
            panic!("a new hub")
        };
        assert!(matches!(
            fan_out.join_at(&positions(&[4, 9]), &none(), None),
            Join::Behind
        ));
        let Join::Joined(joined) = fan_out.join_at(&positions(&[5, 9]), &none(), None) else {
            panic!("joined")
        };
        assert!(format!("{joined:?}").contains("ahead: 1"));
        assert!(matches!(
            fan_out.join_at(&positions(&[5]), &none(), None),
            Join::NoHub
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_with_many_clients_hands_events_over_together() {
        let fan_out = fan_out();
        let Some((feed, mut first)) = start(&fan_out, &[0], true) else {
            panic!("a new hub")
        };
        let key = key_of(&positions(&[0]));
        let _others: Vec<_> = (1..1000).map(|_| fan_out.join_live(&key)).collect();
        let hub = fan_out.hubs_of(&key)[0].clone();
        assert_eq!(hub.batch_window(1000), Duration::from_millis(5));

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
        assert_eq!(hub.batch_window(100), Duration::from_micros(500));
        assert_eq!(hub.batch_window(1_000_000), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hub_without_clients_stops_and_is_forgotten() {
        let fan_out = fan_out();
        let Some((_feed, subscription)) = start(&fan_out, &[1], true) else {
            panic!("a new hub")
        };
        drop(subscription);
        tokio::time::sleep(IDLE_CHECK * 3).await;
        assert!(matches!(
            fan_out.join_at(&positions(&[1]), &none(), None),
            Join::NoHub
        ));
    }

    #[tokio::test]
    async fn a_client_a_little_behind_replays_the_recent_events_then_goes_live() {
        let fan_out = fan_out();
        let Some((feed, mut first)) = start(&fan_out, &[0], true) else {
            panic!("a new hub")
        };
        for offset in 0..3 {
            feed.unbounded_send(Ok(Message::new("t", 0, offset, "{}")))
                .unwrap();
            first.receiver.recv().await.unwrap();
        }
        assert!(matches!(
            fan_out.join_at(&positions(&[1]), &none(), Some(&[3])),
            Join::Joined(_)
        ));
        assert!(
            matches!(
                fan_out.join_at(&positions(&[1]), &none(), Some(&[2])),
                Join::Behind
            ),
            "a hub past the log end reads a log that is gone"
        );
        let Join::Joined(mut resumed) = fan_out.join_at(&positions(&[1]), &none(), None) else {
            panic!("joined")
        };
        let replayed: Vec<i64> = resumed.replay.iter().map(|e| e.message.offset()).collect();
        assert_eq!(replayed, [0, 1, 2], "the session skips what the client has");
        feed.unbounded_send(Ok(Message::new("t", 0, 3, "{}")))
            .unwrap();
        let Ok(HubItem::Event(live)) = resumed.receiver.recv().await else {
            panic!("the live event")
        };
        assert_eq!(live.message.offset(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_catch_up_hub_hands_its_clients_to_the_live_hub_once_level_with_it() {
        let fan_out = fan_out();
        let Some((_live_feed, _live)) = start(&fan_out, &[10], true) else {
            panic!("a live hub")
        };
        let Some((catch_up_feed, mut catching_up)) = start(&fan_out, &[8], false) else {
            panic!("a catch-up hub beside the live one")
        };
        assert!(
            start(&fan_out, &[10], true).is_none(),
            "one live hub per assignment"
        );
        for offset in 8..10 {
            catch_up_feed
                .unbounded_send(Ok(Message::new("t", 0, offset, "{}")))
                .unwrap();
        }
        for offset in 8..10 {
            let Ok(HubItem::Event(event)) = catching_up.receiver.recv().await else {
                panic!("event {offset}")
            };
            assert_eq!(event.message.offset(), offset);
        }
        tokio::time::sleep(IDLE_CHECK * 2).await;
        assert!(
            catching_up.receiver.recv().await.is_err(),
            "the catch-up hub closed"
        );
        assert!(matches!(
            fan_out.join_at(&positions(&[10]), &none(), None),
            Join::Joined(_)
        ));
        assert_eq!(fan_out.hubs_of(&key_of(&positions(&[0]))).len(), 1);
    }

    #[tokio::test]
    async fn a_hub_that_finds_its_log_replaced_moves_every_client_to_the_new_log() {
        let fan_out = fan_out();
        let Some((feed, mut client)) = start(&fan_out, &[0], true) else {
            panic!("a new hub")
        };
        for offset in [0, 1, 2, 0] {
            feed.unbounded_send(Ok(Message::new("t", 0, offset, "{}")))
                .unwrap();
        }
        for _ in 0..3 {
            assert!(matches!(
                client.receiver.recv().await,
                Ok(HubItem::Event(_))
            ));
        }
        let Ok(HubItem::Replaced { offset, .. }) = client.receiver.recv().await else {
            panic!("the replacement is announced")
        };
        assert_eq!(offset, 0);
        let Ok(HubItem::Event(event)) = client.receiver.recv().await else {
            panic!("the new log's first event")
        };
        assert_eq!(event.message.offset(), 0);
        let Join::Joined(joined) = fan_out.join_at(&positions(&[0]), &none(), None) else {
            panic!("a client at the new log's start joins")
        };
        assert_eq!(
            joined.replay.len(),
            1,
            "the old log's recent events are forgotten"
        );
    }
}
