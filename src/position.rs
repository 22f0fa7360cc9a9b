//! Where each assigned partition of a stream stands.

use std::sync::Arc;

/// One assigned partition and the client's position in it.
///
/// The list of these, sorted by topic then partition, is what an
/// [`EventIdCodec`](crate::EventIdCodec) turns into an SSE `id:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The next offset the client has not yet received: the resume point.
    ///
    /// Always a concrete offset, never a logical `-1`/`-2`.
    pub next_offset: i64,
    /// The timestamp of the last message delivered from this partition, if any.
    pub last_timestamp: Option<i64>,
    /// The time the partition's start was resolved from, when the start was given as a time
    /// or the live end: a `since`, a timestamp entry, or the wall clock for the end.
    ///
    /// Timestamp ids use it for partitions that have delivered nothing yet.
    pub start_timestamp: Option<i64>,
}

impl PartitionPosition {
    /// A position at `next_offset` with nothing delivered yet.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32, next_offset: i64) -> Self {
        PartitionPosition {
            topic: topic.into(),
            partition,
            next_offset,
            last_timestamp: None,
            start_timestamp: None,
        }
    }

    /// Sets [`start_timestamp`](Self::start_timestamp).
    pub fn with_start_timestamp(mut self, millis: i64) -> Self {
        self.start_timestamp = Some(millis);
        self
    }

    /// Sets [`last_timestamp`](Self::last_timestamp).
    pub fn with_last_timestamp(mut self, millis: i64) -> Self {
        self.last_timestamp = Some(millis);
        self
    }
}

/// The positions of every partition of one stream, kept sorted for id encoding.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    sorted: Vec<PartitionPosition>,
}

impl Positions {
    pub(crate) fn new(mut positions: Vec<PartitionPosition>) -> Self {
        positions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Positions { sorted: positions }
    }

    pub(crate) fn as_slice(&self) -> &[PartitionPosition] {
        &self.sorted
    }

    /// The next offset of a partition; `i64::MAX` for one outside the assignment.
    pub(crate) fn next_offset(&self, topic: &str, partition: i32) -> i64 {
        self.sorted
            .binary_search_by(|p| (&*p.topic, p.partition).cmp(&(topic, partition)))
            .map_or(i64::MAX, |index| self.sorted[index].next_offset)
    }

    /// Adds partitions, keeping the order; a partition already there keeps its position.
    pub(crate) fn add(&mut self, added: &[PartitionPosition]) {
        for position in added {
            let found = self.sorted.binary_search_by(|p| {
                (&*p.topic, p.partition).cmp(&(&*position.topic, position.partition))
            });
            if let Err(index) = found {
                self.sorted.insert(index, position.clone());
            }
        }
    }

    /// Moves a partition back to `offset`, the start of a log that replaced the one the
    /// position was in; false for a partition outside the assignment.
    pub(crate) fn reset(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let found = self
            .sorted
            .binary_search_by(|p| (&*p.topic, p.partition).cmp(&(topic, partition)));
        let Ok(index) = found else {
            return false;
        };
        let position = &mut self.sorted[index];
        position.next_offset = offset;
        position.last_timestamp = None;
        true
    }

    /// Records a delivered (or skipped) message; returns false for a message that is not
    /// after the current position (a duplicate or a partition outside the assignment).
    pub(crate) fn advance(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: Option<i64>,
    ) -> bool {
        let found = self
            .sorted
            .binary_search_by(|p| (&*p.topic, p.partition).cmp(&(topic, partition)));
        match found {
            Ok(index) => {
                let position = &mut self.sorted[index];
                if offset < position.next_offset {
                    return false;
                }
                position.next_offset = offset + 1;
                if timestamp.is_some() {
                    position.last_timestamp = timestamp;
                }
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_sorted_by_topic_then_partition() {
        let positions = Positions::new(vec![
            PartitionPosition::new("b", 0, 1),
            PartitionPosition::new("a", 10, 1),
            PartitionPosition::new("a", 2, 1),
        ]);
        let order: Vec<_> = positions
            .as_slice()
            .iter()
            .map(|p| (p.topic.to_string(), p.partition))
            .collect();
        assert_eq!(
            order,
            [("a".into(), 2), ("a".into(), 10), ("b".to_string(), 0)]
        );
    }

    #[test]
    fn advance_moves_to_the_next_offset_and_ignores_duplicates() {
        let mut positions = Positions::new(vec![PartitionPosition::new("t", 0, 5)]);
        assert!(positions.advance("t", 0, 5, Some(7)));
        assert_eq!(positions.as_slice()[0].next_offset, 6);
        assert_eq!(positions.as_slice()[0].last_timestamp, Some(7));
        assert!(!positions.advance("t", 0, 5, None));
        assert!(!positions.advance("other", 0, 9, None));
        assert_eq!(positions.as_slice()[0].next_offset, 6);
    }
}
