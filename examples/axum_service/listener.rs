//! How the service listens: a listen backlog for crowds, a write limit that closes
//! connections whose clients stopped reading, and the client's address for the limits.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// How many connections the kernel may queue before the service accepts them. Tokio's
/// `TcpListener::bind` asks for 128, which a crowd of clients connecting at once overflows
/// (the rest wait for SYN retries, a second or more); Linux caps this at `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `address` with a backlog for crowds of simultaneous connects.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A connection whose writes fail once one has been blocked for `stalled`, so a client that
/// stops reading is closed and its stream released. Reads have no limit: a streaming
/// connection reads nothing for hours (the request head has hyper's own timeout).
/// tokio-io-timeout does the timing; a hand-written wrapper would repeat it.
pub fn with_stall_limit(
    tcp: TcpStream,
    stalled: Option<Duration>,
) -> Pin<Box<TimeoutStream<TcpStream>>> {
    let mut stream = TimeoutStream::new(tcp);
    stream.set_write_timeout(stalled);
    Box::pin(stream)
}

/// The client's address, as the per-IP limit sees it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);
