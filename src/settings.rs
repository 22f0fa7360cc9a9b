//! The options shared by every stream of one service, and their defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Deserializer, EventIdCodec, JsonPassThrough, OffsetIds};

/// Options shared by every stream of one [`KafkaSse`](crate::KafkaSse), with their defaults.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) event_ids: Arc<dyn EventIdCodec>,
    pub(crate) deserializer: Arc<dyn Deserializer>,
    pub(crate) heartbeat: Duration,
    pub(crate) retry: Option<Duration>,
    pub(crate) max_connection_duration: Option<Duration>,
    pub(crate) lookup_timeout: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) partition_check: Duration,
    pub(crate) consumer_queue_kbytes: u32,
    pub(crate) max_last_event_id_len: usize,
    pub(crate) max_partitions: usize,
    pub(crate) fan_out: bool,
    pub(crate) fan_out_queue: usize,
    pub(crate) fan_out_batch_window: Duration,
    pub(crate) max_consumers: usize,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("heartbeat", &self.heartbeat)
            .field("retry", &self.retry)
            .field("max_connection_duration", &self.max_connection_duration)
            .field("lookup_timeout", &self.lookup_timeout)
            .field("partition_check", &self.partition_check)
            .field("consumer_queue_kbytes", &self.consumer_queue_kbytes)
            .field("max_last_event_id_len", &self.max_last_event_id_len)
            .field("max_partitions", &self.max_partitions)
            .field("fan_out", &self.fan_out)
            .field("fan_out_queue", &self.fan_out_queue)
            .field("fan_out_batch_window", &self.fan_out_batch_window)
            .field("max_consumers", &self.max_consumers)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    /// The defaults each [`KafkaSseBuilder`](crate::KafkaSseBuilder) setter documents.
    fn default() -> Self {
        Settings {
            event_ids: Arc::new(OffsetIds),
            deserializer: Arc::new(JsonPassThrough),
            heartbeat: Duration::from_secs(15),
            retry: None,
            max_connection_duration: None,
            lookup_timeout: Duration::from_secs(5),
            metadata_max_age: Duration::from_secs(30),
            partition_check: Duration::from_secs(10),
            consumer_queue_kbytes: 1024,
            max_last_event_id_len: 64 * 1024,
            max_partitions: 1024,
            fan_out: true,
            fan_out_queue: 1024,
            fan_out_batch_window: Duration::from_millis(50),
            max_consumers: 256,
        }
    }
}
