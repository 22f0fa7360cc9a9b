//! Where each requested partition starts, decided from the partition's log bounds: the
//! pure policy, apart from the Kafka look-ups that feed it ([`Lookup`](crate::lookup)).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::assignment::{RequestedPartition, Start};
use crate::{Error, PartitionPosition};

/// What Kafka answered about the requested partitions, by `(topic, partition)`.
#[derive(Debug, Default)]
pub(crate) struct LogOffsets {
    /// The first offset still in each log; asked for only when some start is an offset.
    pub(crate) log_start: HashMap<(String, i32), i64>,
    /// The offset the next message will get.
    pub(crate) log_end: HashMap<(String, i32), i64>,
    /// The first offset at or after each requested time; negative when there is none.
    pub(crate) by_time: HashMap<(String, i32), i64>,
}

/// Where a partition starts, resolved to a concrete offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedStart {
    pub(crate) position: PartitionPosition,
    pub(crate) reset: Option<Reset>,
    /// The partition's log end when it was looked up.
    pub(crate) log_end: i64,
}

/// Why a requested offset is not where its stream starts. Either way the stream starts at
/// the partition's log start.
///
/// An offset above the log end cannot come from this log: the server never emits one. The
/// log the id was taken from is gone (the topic was deleted and recreated with fewer
/// messages, or an unclean leader election truncated it), so every message now in the log
/// is new to the client, or at worst a repeat. Starting at the end would silently skip them.
///
/// A recreated topic that has grown past the old offset cannot be told apart from the old
/// one: ids carry no topic id, so such a resume starts at the requested offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    /// Below the log start: retention or a deletion of records removed the messages there.
    BelowLogStart { requested: i64 },
    /// Above the log end: the log the id came from is gone.
    AboveLogEnd { requested: i64, log_end: i64 },
}

impl Reset {
    /// Where a stream asked to start at `requested` starts in a log from `log_start` to
    /// `log_end`, and the reset when that is not `requested`.
    ///
    /// The log end itself is inside: it is the id of a client that has received everything.
    fn place(requested: i64, log_start: i64, log_end: i64) -> (i64, Option<Reset>) {
        if requested < log_start {
            (log_start, Some(Reset::BelowLogStart { requested }))
        } else if requested > log_end {
            let reset = Reset::AboveLogEnd { requested, log_end };
            (log_start, Some(reset))
        } else {
            (requested, None)
        }
    }

    /// Where the stream starts instead, for the `to` label of
    /// `kafka_sse_offset_resets_total`: always `log_start`.
    pub(crate) fn label(self) -> &'static str {
        "log_start"
    }

    /// Which case it is, for logs and metrics.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Reset::BelowLogStart { .. } => "below_log_start",
            Reset::AboveLogEnd { .. } => "above_log_end",
        }
    }
}

/// Resolves every requested start to a concrete offset inside the partition's log; an
/// offset outside it starts at the log start and is reported ([`Reset`]).
pub(crate) fn resolve(
    requested: &[RequestedPartition],
    offsets: &LogOffsets,
) -> Result<Vec<ResolvedStart>, Error> {
    let now = now_millis();
    requested
        .iter()
        .map(|r| {
            let key = (r.topic.to_string(), r.partition);
            let end = answered(&offsets.log_end, &key)?;
            let mut position = PartitionPosition::new(r.topic.clone(), r.partition, end);
            let mut reset = None;
            match r.start {
                Start::Latest => position.start_timestamp = Some(now),
                Start::Timestamp(millis) => {
                    position.start_timestamp = Some(millis);
                    // A negative answer means no message at or after the time.
                    let found = offsets.by_time.get(&key).copied().unwrap_or(-1);
                    position.next_offset = if found < 0 { end } else { found.min(end) };
                }
                Start::Offset(requested) => {
                    let start = answered(&offsets.log_start, &key)?;
                    (position.next_offset, reset) = Reset::place(requested, start, end);
                }
                Start::Earliest => {
                    position.next_offset = answered(&offsets.log_start, &key)?;
                    // Time 0 is the log start too, in whichever cluster a timestamp id goes.
                    position.start_timestamp = Some(0);
                }
            }
            Ok(ResolvedStart {
                position,
                reset,
                log_end: end,
            })
        })
        .collect()
}

/// Logs and counts the starts that were moved into their partition's log.
pub(crate) fn report_resets(label: &str, resolved: &[ResolvedStart]) {
    for start in resolved {
        let Some(reset) = start.reset else { continue };
        let position = &start.position;
        // A warning: the client misses what retention removed, or its id came from a log
        // that is gone; either can mean lost data the operator should know about.
        tracing::warn!(
            stream = label,
            topic = %position.topic,
            partition = position.partition,
            reason = reset.reason(),
            ?reset,
            start = position.next_offset,
            "the requested offset is outside the partition's log; starting at the log start"
        );
        metrics::counter!(
            "kafka_sse_offset_resets_total",
            "stream" => label.to_owned(),
            "to" => reset.label(),
            "reason" => reset.reason()
        )
        .increment(1);
    }
}

fn answered(offsets: &HashMap<(String, i32), i64>, key: &(String, i32)) -> Result<i64, Error> {
    offsets
        .get(key)
        .copied()
        .filter(|&offset| offset >= 0)
        .ok_or_else(|| {
            Error::Internal(format!("kafka gave no offset for {} [{}]", key.0, key.1).into())
        })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn an_offset_inside_the_log_or_at_its_end_is_where_the_stream_starts() {
        assert_eq!(Reset::place(5, 5, 10), (5, None));
        assert_eq!(Reset::place(7, 5, 10), (7, None));
        assert_eq!(Reset::place(10, 5, 10), (10, None));
    }

    #[test]
    fn an_offset_below_the_log_start_starts_at_the_log_start() {
        let (start, reset) = Reset::place(2, 5, 10);
        assert_eq!(start, 5);
        assert_eq!(reset, Some(Reset::BelowLogStart { requested: 2 }));
        assert_eq!(reset.unwrap().reason(), "below_log_start");
        assert_eq!(reset.unwrap().label(), "log_start");
    }

    #[test]
    fn an_offset_above_the_log_end_starts_at_the_log_start_not_the_end() {
        let (start, reset) = Reset::place(50, 0, 3);
        assert_eq!(start, 0);
        let reset = reset.unwrap();
        assert_eq!(
            reset,
            Reset::AboveLogEnd {
                requested: 50,
                log_end: 3
            }
        );
        assert_eq!(reset.reason(), "above_log_end");
        assert_eq!(reset.label(), "log_start");
        assert_eq!(Reset::place(11, 5, 10).0, 5);
    }

    #[test]
    fn latest_and_time_starts_resolve_to_the_end_or_the_first_message_at_the_time() {
        let requested = |partition, start| RequestedPartition {
            topic: Arc::from("t"),
            partition,
            start,
        };
        let offsets = LogOffsets {
            log_start: HashMap::new(),
            log_end: HashMap::from([(("t".into(), 0), 9), (("t".into(), 1), 4)]),
            by_time: HashMap::from([(("t".into(), 1), -1)]),
        };
        let resolved = resolve(
            &[
                requested(0, Start::Latest),
                requested(1, Start::Timestamp(7)),
            ],
            &offsets,
        )
        .unwrap();
        assert_eq!(resolved[0].position.next_offset, 9);
        assert_eq!(
            resolved[1].position.next_offset, 4,
            "no message after the time"
        );
        assert_eq!(resolved[1].position.start_timestamp, Some(7));
        assert!(resolved.iter().all(|start| start.reset.is_none()));
    }
}
