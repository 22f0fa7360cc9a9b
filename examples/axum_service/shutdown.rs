//! Graceful shutdown: the signal, and a bound on how long open streams get to end.

use std::future::Future;
use std::time::Duration;

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

/// Runs `server` until it finishes by itself after a shutdown signal, or at most `grace`
/// after the signal.
pub async fn serve_with_grace(
    server: impl Future<Output = std::io::Result<()>>,
    signalled: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::select! {
        result = server => result,
        () = async { signalled.await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace; exiting");
            Ok(())
        }
    }
}
