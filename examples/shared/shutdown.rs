//! Graceful shutdown, and closing connections whose clients stopped reading.

use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;

/// Completes on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal: ending every stream");
}

/// A client connection whose writes fail once one has been blocked for `stalled` (the
/// client stopped reading), so the server drops the connection and its stream. Reads have
/// no limit: a streaming connection reads nothing for hours.
///
/// tokio-io-timeout does the timing; a hand-written wrapper would repeat it.
pub fn with_stall_limit(
    tcp: TcpStream,
    stalled: Option<Duration>,
) -> Pin<Box<TimeoutStream<TcpStream>>> {
    let mut stream = TimeoutStream::new(tcp);
    stream.set_write_timeout(stalled);
    Box::pin(stream)
}
