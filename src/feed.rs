//! Where one stream's messages come from, and the one place that chooses it: the client's
//! own consumer or a shared live stream, joining one once the client has caught up and
//! leaving it for a consumer of its own when the client falls behind.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::assignment::Expanded;
use crate::consumer::MessageSource;
use crate::growth::Following;
use crate::hub::HubKey;
use crate::position::Positions;
use crate::shared_event::{HubItem, Join, SharedEvent, Subscription};
use crate::sources::Sources;
use crate::start::ResolvedStart;
use crate::telemetry::moved;
use crate::{Error, Message, PartitionPosition};

/// How often a client on its own consumer looks for a shared live stream to join, at first;
/// the wait doubles each time the client falls behind a shared stream, up to a minute.
const JOIN_CHECK: Duration = Duration::from_secs(1);
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(60);

/// What the feed has for the stream next.
pub(crate) enum Incoming {
    /// A message from the client's own consumer.
    Message(Message),
    /// An event of a shared stream; `in_step` when the hub stands where the client does, so
    /// the hub's frame is right for it.
    Shared {
        event: Arc<SharedEvent>,
        in_step: bool,
    },
    /// A partition's log was replaced (the topic was recreated): the stream goes on from
    /// `offset` in the new log. Already logged and counted by the hub that saw it.
    Replaced {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// Partitions added to a topic the stream follows, each at its start.
    Grew(Vec<PartitionPosition>),
    /// Kafka failed for good.
    Failed(Arc<Error>),
    /// The client fell behind its shared stream and the service runs all the consumers it
    /// may: the stream should end with the client's position, to resume from there.
    NoConsumer,
    /// Nothing more will come.
    Ended,
}

/// The source of one stream's messages.
pub(crate) struct Feed {
    current: Current,
    /// What to open consumers and join shared streams with; `None` for a feed that stays on
    /// the source it was given.
    sources: Option<Arc<Sources>>,
    label: Arc<str>,
    next_join_check: Instant,
    join_backoff: Duration,
    /// The topics the stream reads whole, taking partitions added to them.
    follows: BTreeSet<Arc<str>>,
    /// Where partitions added to followed topics arrive while the stream reads on its own
    /// consumer (a hub follows for its clients).
    following: Option<Following>,
    /// Partitions being added to the own consumer, kept across a cancelled `next`.
    growing: Option<Growing>,
}

/// Partitions being added to a consumer on the blocking pool.
struct Growing {
    adding: JoinHandle<Result<(), Error>>,
    partitions: Vec<PartitionPosition>,
}

enum Current {
    Own(MessageSource),
    Shared(Subscription),
    /// Left a shared stream; a consumer of its own is to be opened at the client's position.
    Leaving,
}

impl Feed {
    /// Opens the feed of a new stream over `requested`, returning where it starts.
    ///
    /// With fan-out on, a client shares a hub whenever it can:
    /// - a live client (starting at the end) joins the live hub of its partitions, starting
    ///   at the hub's current position with no Kafka look-up at all;
    /// - a client resuming (from an id or a time) resolves its start and joins a hub whose
    ///   recent events reach back to it, replaying them;
    /// - otherwise it starts a hub that later clients join: a live hub at the end, or,
    ///   when other clients resume the same partitions (waiting behind it, or within the
    ///   last two seconds), a catch-up hub; a client resuming alone reads on its own
    ///   consumer and joins a hub once it has caught up.
    ///
    /// Requests for the same partitions take turns at the last step, so clients that arrive
    /// together (a restart brings every client back at once) open one consumer between them.
    pub(crate) async fn open(
        sources: &Arc<Sources>,
        requested: Expanded,
        live: bool,
        label: &Arc<str>,
    ) -> Result<(Vec<PartitionPosition>, Feed), Error> {
        let Expanded {
            partitions: requested,
            follows,
        } = requested;
        let feed = |current, positions: &[PartitionPosition]| {
            let following = match current {
                Current::Own(_) => sources.growth().follow(label, positions, &follows),
                _ => None,
            };
            Feed {
                current,
                sources: Some(sources.clone()),
                label: label.clone(),
                next_join_check: Instant::now() + JOIN_CHECK,
                join_backoff: JOIN_CHECK,
                follows: follows.clone(),
                following,
                growing: None,
            }
        };
        let Some(fan_out) = sources.fan_out() else {
            let (positions, _) =
                positions_and_ends(sources.resolve(requested, label.clone()).await?);
            let source = sources.open_at(positions.clone()).await?;
            let feed = feed(Current::Own(source), &positions);
            return Ok((positions, feed));
        };
        let key = HubKey::new(requested.iter().map(|r| (&r.topic, r.partition)), &follows);
        if live {
            if let Some((subscription, positions)) = fan_out.join_live(&key) {
                let feed = feed(Current::Shared(subscription), &positions);
                return Ok((positions, feed));
            }
        }
        let resuming = (!live).then(|| fan_out.note_resume(&key));
        let resolved = if live {
            None
        } else {
            Some(positions_and_ends(
                sources.resolve(requested.clone(), label.clone()).await?,
            ))
        };
        let join = || -> Option<(Vec<PartitionPosition>, Subscription)> {
            match &resolved {
                None => {
                    let (subscription, positions) = fan_out.join_live(&key)?;
                    Some((positions, subscription))
                }
                Some((positions, ends)) => match fan_out.join_at(positions, &follows, Some(ends)) {
                    Join::Joined(subscription) => Some((positions.clone(), subscription)),
                    Join::Behind | Join::NoHub => None,
                },
            }
        };
        if let Some((positions, subscription)) = join() {
            let feed = feed(Current::Shared(subscription), &positions);
            return Ok((positions, feed));
        }
        let _turn = fan_out.lock_start(&key).await;
        if let Some((positions, subscription)) = join() {
            let feed = feed(Current::Shared(subscription), &positions);
            return Ok((positions, feed));
        }
        let positions = match resolved {
            Some((positions, _)) => positions,
            None => positions_and_ends(sources.resolve(requested, label.clone()).await?).0,
        };
        let source = sources.open_at(positions.clone()).await?;
        // A client resuming alone reads on its own consumer, at its own pace: a shared
        // stream reads at Kafka's pace and costs its one client more per event. One in a
        // crowd resuming the same partitions starts a stream the others join.
        let in_a_crowd =
            resuming.is_some_and(|(since, before)| before || fan_out.crowd_since(&key, since));
        if !live && !in_a_crowd {
            let feed = feed(Current::Own(source), &positions);
            return Ok((positions, feed));
        }
        let hub_following = sources.growth().follow(label, &positions, &follows);
        let current =
            match fan_out.start(source, &positions, (&follows, hub_following), live, label) {
                Ok(subscription) => Current::Shared(subscription),
                Err(source) => Current::Own(source),
            };
        let feed = feed(current, &positions);
        Ok((positions, feed))
    }

    /// A feed that reads `source` and nothing else.
    #[cfg(test)]
    pub(crate) fn own(source: MessageSource) -> Feed {
        Feed {
            current: Current::Own(source),
            sources: None,
            label: Arc::from("test"),
            next_join_check: Instant::now(),
            join_backoff: JOIN_CHECK,
            follows: BTreeSet::new(),
            following: None,
            growing: None,
        }
    }

    /// The topics the stream reads whole, taking partitions added to them.
    pub(crate) fn follows(&self) -> &BTreeSet<Arc<str>> {
        &self.follows
    }

    /// The next message for a client standing at `positions`.
    ///
    /// Cancel-safe: dropped mid-way, it loses nothing, and the next call goes on from where
    /// the feed is.
    pub(crate) async fn next(&mut self, positions: &Positions) -> Incoming {
        loop {
            if let Some(growing) = &mut self.growing {
                let added = (&mut growing.adding).await;
                let partitions = self
                    .growing
                    .take()
                    .expect("partitions being added")
                    .partitions;
                return match added {
                    Ok(Ok(())) => Incoming::Grew(partitions),
                    Ok(Err(error)) => Incoming::Failed(Arc::new(error)),
                    Err(join) => Incoming::Failed(Arc::new(Error::Internal(join.into()))),
                };
            }
            let join_due = self.join_due();
            match &mut self.current {
                Current::Own(source) if join_due => {
                    // Only a client whose consumer has nothing ready tries: it has delivered
                    // all its consumer fetched, the moment it is most likely level with the
                    // shared stream.
                    if let Some(ready) = source.next().now_or_never() {
                        return own(ready);
                    }
                    self.join_or_start(positions).await;
                }
                Current::Own(source) => {
                    let growth = next_growth(&mut self.following);
                    tokio::select! {
                        biased;
                        Some(added) = growth => {
                            let Some(adder) = source.partition_adder() else {
                                return Incoming::Grew(added);
                            };
                            let partitions = added.clone();
                            let adding = tokio::task::spawn_blocking(move || adder.add(&partitions));
                            self.growing = Some(Growing {
                                adding,
                                partitions: added,
                            });
                        }
                        received = source.next() => return own(received),
                    }
                }
                Current::Shared(subscription) => {
                    let received = match subscription.replay.pop_front() {
                        Some(replayed) => Ok(HubItem::Event(replayed)),
                        None => subscription.receiver.recv().await,
                    };
                    match received {
                        Ok(HubItem::Event(event)) => {
                            let in_step = subscription.in_step(&event.message, positions);
                            return Incoming::Shared { event, in_step };
                        }
                        Ok(HubItem::Replaced {
                            topic,
                            partition,
                            offset,
                        }) => {
                            subscription.replaced(&topic, partition);
                            return Incoming::Replaced {
                                topic,
                                partition,
                                offset,
                            };
                        }
                        Ok(HubItem::Grew(added)) => return Incoming::Grew(added),
                        Ok(HubItem::Failed(error)) => return Incoming::Failed(error),
                        Err(_lagged_or_closed) => self.current = Current::Leaving,
                    }
                }
                Current::Leaving => {
                    if let Some(ended) = self.leave(positions).await {
                        return ended;
                    }
                }
            }
        }
    }

    fn join_due(&self) -> bool {
        self.sources
            .as_ref()
            .is_some_and(|sources| sources.fan_out().is_some())
            && Instant::now() >= self.next_join_check
    }

    /// Joins the shared live stream of this assignment when the client is not behind it, or
    /// starts one with the client's consumer when it is at the log end and there is none.
    async fn join_or_start(&mut self, positions: &Positions) {
        self.next_join_check = Instant::now() + self.join_backoff;
        let Some(sources) = self.sources.clone() else {
            return;
        };
        let Some(fan_out) = sources.fan_out() else {
            return;
        };
        match fan_out.join_at(positions.as_slice(), &self.follows, None) {
            Join::Joined(subscription) => {
                self.current = Current::Shared(subscription);
                self.following = None;
                moved(&self.label, "joined");
            }
            Join::Behind => {}
            Join::NoHub => {
                if !sources.at_log_end(positions.as_slice().to_vec()).await {
                    return;
                }
                let Current::Own(source) = std::mem::replace(&mut self.current, Current::Leaving)
                else {
                    return;
                };
                let positions = positions.as_slice();
                let hub_following = sources
                    .growth()
                    .follow(&self.label, positions, &self.follows);
                let following = (&self.follows, hub_following);
                self.current = match fan_out.start(source, positions, following, true, &self.label)
                {
                    Ok(subscription) => {
                        self.following = None;
                        moved(&self.label, "started");
                        Current::Shared(subscription)
                    }
                    Err(source) => Current::Own(source),
                };
            }
        }
    }

    /// Moves a client that fell behind its shared stream, or whose shared stream ended, to
    /// another hub whose recent events reach back to it, or else to a consumer of its own
    /// at its position, so it loses nothing; what ends the stream instead, if anything.
    async fn leave(&mut self, positions: &Positions) -> Option<Incoming> {
        let Some(sources) = self.sources.clone() else {
            return Some(Incoming::Ended);
        };
        if let Some(fan_out) = sources.fan_out() {
            let rejoined = fan_out.join_at(positions.as_slice(), &self.follows, None);
            if let Join::Joined(subscription) = rejoined {
                self.current = Current::Shared(subscription);
                moved(&self.label, "rejoined");
                return None;
            }
        }
        match sources.open_at(positions.as_slice().to_vec()).await {
            Ok(source) => {
                self.current = Current::Own(source);
                self.following =
                    sources
                        .growth()
                        .follow(&self.label, positions.as_slice(), &self.follows);
                self.join_backoff = (self.join_backoff * 2).min(MAX_JOIN_BACKOFF);
                self.next_join_check = Instant::now() + self.join_backoff;
                moved(&self.label, "lagged");
                None
            }
            Err(Error::Busy) => {
                moved(&self.label, "closed");
                Some(Incoming::NoConsumer)
            }
            Err(error) => Some(Incoming::Failed(Arc::new(error))),
        }
    }
}

/// The resolved starts as positions, and their partitions' log ends beside them.
fn positions_and_ends(resolved: Vec<ResolvedStart>) -> (Vec<PartitionPosition>, Vec<i64>) {
    resolved
        .into_iter()
        .map(|start| (start.position, start.log_end))
        .unzip()
}

/// The next partitions added to the stream's topics; never, for a stream that follows none.
async fn next_growth(following: &mut Option<Following>) -> Option<Vec<PartitionPosition>> {
    match following {
        Some(following) => following.added.recv().await,
        None => std::future::pending().await,
    }
}

fn own(received: Option<Result<Message, Error>>) -> Incoming {
    match received {
        Some(Ok(message)) => Incoming::Message(message),
        Some(Err(error)) => Incoming::Failed(Arc::new(error)),
        None => Incoming::Ended,
    }
}
