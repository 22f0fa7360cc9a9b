//! Work that blocks on librdkafka, moved off tokio's async workers.

use crate::Error;

/// Runs `work` on tokio's blocking pool: librdkafka's look-ups, consumer creation and
/// destruction block the calling thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| Error::Internal(join.into()))?
}
