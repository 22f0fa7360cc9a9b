//! What a stream knows about each of its topics, beyond positions, for its event ids.

use std::sync::Arc;

/// Facts about one topic of a stream that an event id can carry besides positions: how many
/// partitions the topic had when the stream was assigned, and the topic's Kafka id.
///
/// With them, a resume can tell partitions added since the id was written (every partition
/// at or past [`covers`](Self::covers) is new to the client) and a topic deleted and created
/// again under the same name (its [`id`](Self::id) differs). The compact id form carries
/// both ([`EventIdCodec::encode_with_topics`](crate::EventIdCodec::encode_with_topics)); the
/// JSON form has no place for them.
///
/// ```
/// use kafka_sse::TopicInfo;
///
/// let info = TopicInfo::new("recentchange")
///     .with_covers(1024)
///     .with_id("Yg3l5ZQRQlO5_mfCbz3kUQ");
/// assert_eq!(info.covers, Some(1024));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicInfo {
    /// The topic.
    pub topic: Arc<str>,
    /// The number of partitions the topic had, all of them in the stream's assignment.
    ///
    /// A negative count is never written into an id.
    pub covers: Option<i32>,
    /// The topic's Kafka id, a UUID written as Kafka writes it: 22 characters of unpadded
    /// base64url (`Uuid.toString()` in Kafka's Java client).
    ///
    /// An id not in that form is never written into an id.
    pub id: Option<String>,
}

impl TopicInfo {
    /// Nothing known about `topic` yet.
    pub fn new(topic: impl Into<Arc<str>>) -> Self {
        TopicInfo {
            topic: topic.into(),
            covers: None,
            id: None,
        }
    }

    /// Sets [`covers`](Self::covers): the stream reads all `partitions` of the topic.
    pub fn with_covers(mut self, partitions: i32) -> Self {
        self.covers = Some(partitions);
        self
    }

    /// Sets [`id`](Self::id), the topic's Kafka id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// What a stream's ids say of its topics: each topic it reads whole (`follows`) covers the
/// partitions it has in `positions`.
pub(crate) fn followed(
    positions: &[crate::PartitionPosition],
    follows: &std::collections::BTreeSet<Arc<str>>,
) -> Vec<TopicInfo> {
    follows
        .iter()
        .map(|topic| {
            let partitions = positions.iter().filter(|p| p.topic == *topic).count();
            TopicInfo::new(topic.clone()).with_covers(i32::try_from(partitions).unwrap_or(i32::MAX))
        })
        .collect()
}
