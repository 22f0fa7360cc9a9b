//! How the service serves connections: hyper's HTTP/1 connection with a header read
//! timeout, caps on open connections (in all, and per client address) that stop accepting
//! rather than run out of file descriptors, and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::listener::{with_stall_limit, Peer};

/// The most often a cap being reached is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// hyper's header read timeout: the longest a connection may wait for, and take to send,
    /// a request head, the first or the next on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// The most connections open at once.
    pub max_open: usize,
    /// The most connections open at once from one address.
    pub max_open_per_ip: Option<usize>,
    /// How long a write may stay blocked before the connection is closed.
    pub stalled: Option<Duration>,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits
/// for the open connections to finish (their streams end at shutdown).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(options.max_open));
    let per_ip = Arc::new(PerIp::new(options.max_open_per_ip));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut cap_logged = None::<Instant>;
    tokio::pin!(shutdown);
    loop {
        // Take a place before accepting: at the cap, new connections wait in the kernel's
        // listen queue instead of failing on a spent file-descriptor limit.
        let place = match open.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                if cap_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    tracing::warn!(
                        max = options.max_open,
                        "open connection cap reached; accepting again once one closes"
                    );
                    cap_logged = Some(Instant::now());
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    place = open.clone().acquire_owned() => place.expect("the semaphore is never closed"),
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(address_place) = per_ip.take(peer.ip()) else {
            metrics::counter!("service_connections_refused_total", "reason" => "per_ip")
                .increment(1);
            continue;
        };
        metrics::gauge!("service_connections_open").increment(1);
        let service =
            app.clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(Peer(peer)));
                    request
                });
        let io = TokioIo::new(with_stall_limit(tcp, options.stalled));
        let connection = http.serve_connection(io, TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            metrics::gauge!("service_connections_open").decrement(1);
            drop((place, address_place));
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Open connections by client address, against a cap.
#[derive(Debug)]
struct PerIp {
    max: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
    logged: Mutex<Option<Instant>>,
}

impl PerIp {
    fn new(max: Option<usize>) -> Self {
        PerIp {
            max,
            open: Mutex::new(HashMap::new()),
            logged: Mutex::new(None),
        }
    }

    /// A place for one more connection from `address`, or `None` at its cap.
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressPlace> {
        let mut open = self.open.lock().expect("per-address lock");
        let count = open.entry(address).or_insert(0);
        if self.max.is_some_and(|max| *count >= max) {
            let mut logged = self.logged.lock().expect("log lock");
            if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    %address,
                    max = self.max,
                    "an address holds the most connections allowed; closing its new ones"
                );
                *logged = Some(Instant::now());
            }
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            per_ip: self.clone(),
            address,
        })
    }
}

/// One connection's place in its address's count; given back when dropped.
struct AddressPlace {
    per_ip: Arc<PerIp>,
    address: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().expect("per-address lock");
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// The default cap on open connections: the process's open-file limit, raised to its hard
/// limit first, less a reserve for Kafka's sockets and the service's own files.
pub fn default_max_open(max_consumers: usize) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    // A librdkafka consumer holds a few sockets and pipes; 8 each, plus 256 for the rest.
    let reserve = 8 * max_consumers as u64 + 256;
    let max = limit.saturating_sub(reserve).max(64);
    usize::try_from(max).unwrap_or(usize::MAX)
}
