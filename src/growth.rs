//! Partitions added to topics under running streams.
//!
//! A stream that reads every partition of a topic *follows* it: when the topic gains
//! partitions, the stream reads the new ones too, each from its log start (everything in a
//! partition created after the stream started is new to its client). One task per service
//! asks Kafka for the partition counts of the followed topics every interval (one metadata
//! request per followed topic, whatever the number of streams), and hands each follower the
//! partitions it lacks, with their log starts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::lookup::Lookup;
use crate::PartitionPosition;

/// The partition counts a service's streams follow, and the task that watches them.
pub(crate) struct Growth {
    lookup: Arc<Lookup>,
    interval: Duration,
    followers: Mutex<HashMap<u64, Follower>>,
    next_follower: AtomicU64,
    watching: AtomicBool,
}

struct Follower {
    label: Arc<str>,
    /// How many partitions of each followed topic the follower reads (all of them, from 0).
    partitions: BTreeMap<Arc<str>, i32>,
    added: mpsc::UnboundedSender<Vec<PartitionPosition>>,
}

/// A stream's (or a shared stream's) place among the followers: the partitions added to
/// its topics arrive on `added`. Dropping it stops following.
pub(crate) struct Following {
    pub(crate) added: mpsc::UnboundedReceiver<Vec<PartitionPosition>>,
    growth: Weak<Growth>,
    id: u64,
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(growth) = self.growth.upgrade() {
            growth
                .followers
                .lock()
                .expect("followers lock")
                .remove(&self.id);
        }
    }
}

impl Growth {
    /// Watches with `lookup`, every `interval`, once a stream follows a topic.
    pub(crate) fn new(lookup: Arc<Lookup>, interval: Duration) -> Arc<Self> {
        Arc::new(Growth {
            lookup,
            interval,
            followers: Mutex::new(HashMap::new()),
            next_follower: AtomicU64::new(0),
            watching: AtomicBool::new(false),
        })
    }

    /// Follows the topics in `follows` for a stream standing at `positions`, which hold
    /// every partition of them; `None` when it follows none. Must be called inside a tokio
    /// runtime: the first follower starts the watching task.
    pub(crate) fn follow(
        self: &Arc<Self>,
        label: &Arc<str>,
        positions: &[PartitionPosition],
        follows: &BTreeSet<Arc<str>>,
    ) -> Option<Following> {
        if follows.is_empty() {
            return None;
        }
        let mut partitions = BTreeMap::new();
        for position in positions.iter().filter(|p| follows.contains(&p.topic)) {
            let count = partitions.entry(position.topic.clone()).or_insert(0);
            *count = (*count).max(position.partition + 1);
        }
        let (sender, added) = mpsc::unbounded_channel();
        let id = self.next_follower.fetch_add(1, Ordering::Relaxed);
        let follower = Follower {
            label: label.clone(),
            partitions,
            added: sender,
        };
        self.followers
            .lock()
            .expect("followers lock")
            .insert(id, follower);
        if !self.watching.swap(true, Ordering::Relaxed) {
            tokio::spawn(watch(Arc::downgrade(self), self.interval));
        }
        Some(Following {
            added,
            growth: Arc::downgrade(self),
            id,
        })
    }

    /// One round: the current counts of the followed topics, and the partitions each
    /// follower lacks, with their log starts. Blocks on Kafka.
    fn check(&self) {
        let topics: BTreeSet<String> = {
            let followers = self.followers.lock().expect("followers lock");
            followers
                .values()
                .flat_map(|f| f.partitions.keys().map(|t| t.to_string()))
                .collect()
        };
        if topics.is_empty() {
            return;
        }
        let Ok(counts) = self.lookup.partition_counts(&topics, true) else {
            return;
        };
        let mut wanted = BTreeSet::new();
        {
            let followers = self.followers.lock().expect("followers lock");
            for follower in followers.values() {
                for (topic, &have) in &follower.partitions {
                    let now = counts.get(&**topic).copied().unwrap_or(have);
                    wanted.extend((have..now).map(|partition| (topic.clone(), partition)));
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let wanted: Vec<(Arc<str>, i32)> = wanted.into_iter().collect();
        let Ok(starts) = self.lookup.log_starts(&wanted) else {
            return;
        };
        let mut grown: BTreeMap<(Arc<str>, Arc<str>), Grown> = BTreeMap::new();
        let mut followers = self.followers.lock().expect("followers lock");
        for follower in followers.values_mut() {
            let mut added = Vec::new();
            for (topic, have) in follower.partitions.iter_mut() {
                let now = counts.get(&**topic).copied().unwrap_or(*have);
                let new: Vec<PartitionPosition> = (*have..now)
                    .filter_map(|partition| {
                        let start = starts.get(&(topic.to_string(), partition))?;
                        Some(
                            PartitionPosition::new(topic.clone(), partition, *start)
                                .with_start_timestamp(0),
                        )
                    })
                    .collect();
                if new.len() as i32 != now - *have {
                    continue;
                }
                if !new.is_empty() {
                    let key = (follower.label.clone(), topic.clone());
                    let grown = grown.entry(key).or_insert(Grown {
                        streams: 0,
                        from: *have,
                        to: now,
                    });
                    grown.streams += 1;
                }
                *have = now;
                added.extend(new);
            }
            if !added.is_empty() {
                metrics::counter!("kafka_sse_partitions_added_total", "stream" => follower.label.to_string())
                    .increment(added.len() as u64);
                let _ = follower.added.send(added);
            }
        }
        for ((label, topic), Grown { streams, from, to }) in grown {
            tracing::info!(
                stream = %label,
                %topic,
                from,
                to,
                streams,
                "the topic gained partitions; running streams read them from their log start"
            );
        }
    }
}

/// How one topic grew for the streams of one label, for the log.
struct Grown {
    streams: usize,
    from: i32,
    to: i32,
}

/// The watching task: a round every `interval` while the service lives.
async fn watch(growth: Weak<Growth>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(growth) = growth.upgrade() else {
            return;
        };
        let _ = blocking(move || {
            growth.check();
            Ok(())
        })
        .await;
    }
}
