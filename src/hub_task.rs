//! A hub's task: it reads the hub's consumer at Kafka's pace and publishes every message,
//! takes partitions added to the topics it follows, hands its clients over to a live hub it
//! caught up with, and stops once it has no client left or its consumer fails for good.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::blocking::blocking;
use crate::consumer::MessageSource;
use crate::growth::Following;
use crate::hub::{Hub, Registry, IDLE_CHECK};
use crate::{Error, Message, PartitionPosition};

/// Windows shorter than this are not worth a timer.
const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Closes `hub` and removes it from `registry` if nobody listens, or always when `force`.
pub(crate) fn retire(registry: &Registry, hub: &Arc<Hub>, force: bool) -> bool {
    let mut hubs = registry.lock().expect("hub registry lock");
    if !force && hub.clients() > 0 {
        return false;
    }
    hub.close();
    let key = hub.key();
    if let Some(same_key) = hubs.get_mut(&key) {
        let before = same_key.len();
        same_key.retain(|h| !Arc::ptr_eq(h, hub));
        if same_key.len() < before {
            metrics::gauge!("kafka_sse_fanout_hubs").decrement(1);
        }
        if same_key.is_empty() {
            hubs.remove(&key);
        }
    }
    true
}

/// Whether another hub of the same partitions can take over this hub's clients.
fn superseded(registry: &Registry, hub: &Hub) -> bool {
    let hubs = registry.lock().expect("hub registry lock");
    hubs.get(&hub.key())
        .is_some_and(|same_key| same_key.iter().any(|other| hub.can_hand_over_to(other)))
}

/// A hub's task: reads its consumer at Kafka's pace and publishes every message until the
/// hub has no client left or the consumer fails for good.
pub(crate) async fn run(
    registry: Arc<Registry>,
    hub: Arc<Hub>,
    source: MessageSource,
    mut following: Option<Following>,
) {
    let adder = source.partition_adder().map(Arc::new);
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
                let window = hub.batch_window(hub.clients());
                gather(&mut source, window, &mut batch).await;
                for received in batch.drain(..) {
                    match received {
                        Some(Ok(message)) => hub.publish(message),
                        Some(Err(error)) => {
                            hub.fail(error);
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
            Some(added) = next_growth(&mut following) => {
                if let Some(adder) = &adder {
                    let (adder, partitions) = (adder.clone(), added.clone());
                    if let Err(error) = blocking(move || adder.add(&partitions)).await {
                        hub.fail(error);
                        retire(&registry, &hub, true);
                        break 'running;
                    }
                }
                hub.grow(&registry, &added);
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
                    hub.mark_live();
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

/// The next partitions added to the hub's topics; never, for a hub that follows none.
async fn next_growth(following: &mut Option<Following>) -> Option<Vec<PartitionPosition>> {
    match following {
        Some(following) => following.added.recv().await,
        None => std::future::pending().await,
    }
}
