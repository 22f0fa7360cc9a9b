//! Shared live-tail fan-out: clients reading the same partitions at the live end share one
//! consumer, and each frame is encoded once for all of them.
//!
//! [`FanOut`] is the registry of a service's [hubs](crate::hub): it finds the hub of an
//! assignment for a client that wants to join one, and makes sure clients arriving together
//! for an assignment nobody reads yet start one hub between them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::consumer::MessageSource;
use crate::hub::{self, Hub, HubKey, Join, Registry, Subscription};
use crate::settings::Settings;
use crate::PartitionPosition;

/// Every hub of one [`KafkaSse`](crate::KafkaSse).
pub(crate) struct FanOut {
    hubs: Arc<Registry>,
    /// One lock per assignment whose hub is being started, so it is started once.
    starting: Mutex<HashMap<HubKey, Arc<tokio::sync::Mutex<()>>>>,
    settings: Settings,
}

impl FanOut {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(FanOut {
            hubs: Arc::default(),
            starting: Mutex::new(HashMap::new()),
            settings,
        })
    }

    fn hub(&self, key: &HubKey) -> Option<Arc<Hub>> {
        self.hubs
            .lock()
            .expect("hub registry lock")
            .get(key)
            .cloned()
    }

    /// Subscribes a live client to the hub for `key`, returning the hub's current positions
    /// as the client's start.
    pub(crate) fn join_live(&self, key: &HubKey) -> Option<(Subscription, Vec<PartitionPosition>)> {
        self.hub(key)?.join_live()
    }

    /// Subscribes a client at `positions` when it is not behind the hub on any partition.
    pub(crate) fn join_at(&self, positions: &[PartitionPosition]) -> Join {
        match self.hub(&hub::key_of(positions)) {
            Some(hub) => hub.join_at(positions),
            None => Join::NoHub,
        }
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
        &self,
        source: MessageSource,
        positions: &[PartitionPosition],
        label: &str,
    ) -> Result<Subscription, MessageSource> {
        let mut hubs = self.hubs.lock().expect("hub registry lock");
        let (hub, subscription) = Hub::new(positions, label, &self.settings);
        if hubs.contains_key(hub.key()) {
            return Err(source);
        }
        hubs.insert(hub.key().clone(), hub.clone());
        metrics::gauge!("kafka_sse_fanout_hubs").increment(1);
        tracing::debug!(partitions = positions.len(), "fan-out hub started");
        tokio::spawn(hub::run(self.hubs.clone(), hub, source));
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
        let hubs = self.hubs.lock().map(|hubs| hubs.len()).unwrap_or_default();
        f.debug_struct("FanOut").field("hubs", &hubs).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use futures::channel::mpsc;
    use futures::StreamExt;

    use crate::hub::{HubItem, IDLE_CHECK};
    use crate::{Error, Message};

    fn fan_out() -> Arc<FanOut> {
        FanOut::new(Settings::default())
    }

    fn key_of(positions: &[PartitionPosition]) -> HubKey {
        hub::key_of(positions)
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
        assert!(format!("{joined:?}").contains("ahead: 1"));
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
        let hub = fan_out.hub(&key).unwrap();
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
        let (_feed, source) = mpsc::unbounded::<Result<Message, Error>>();
        let Ok(subscription) = fan_out.start(source.boxed(), &positions(&[1]), "t") else {
            panic!("a new hub")
        };
        drop(subscription);
        tokio::time::sleep(IDLE_CHECK * 3).await;
        assert!(matches!(fan_out.join_at(&positions(&[1])), Join::NoHub));
    }
}
