//! How the service accepts connections: a listen backlog for crowds, a write limit that
//! closes connections whose clients stopped reading, and the client's address for the
//! per-IP limit.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_io_timeout::TimeoutStream;

/// How many connections the kernel may queue before the service accepts them. Tokio's
/// `TcpListener::bind` asks for 128, which a crowd of clients connecting at once overflows
/// (the rest wait for SYN retries, a second or more); Linux caps this at `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener whose connections fail their writes once one has been blocked for
/// `stalled`, so a client that stops reading is closed and its stream released.
#[derive(Debug)]
pub struct StallLimitedListener {
    tcp: TcpListener,
    stalled: Option<Duration>,
}

impl StallLimitedListener {
    /// Listens on `address`; `stalled` of `None` never closes a connection for not reading.
    pub fn bind(address: SocketAddr, stalled: Option<Duration>) -> std::io::Result<Self> {
        let socket = match address {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        Ok(StallLimitedListener {
            tcp: socket.listen(LISTEN_BACKLOG)?,
            stalled,
        })
    }
}

impl Listener for StallLimitedListener {
    type Io = Pin<Box<TimeoutStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, peer) = Listener::accept(&mut self.tcp).await;
        // Reads have no limit: a streaming connection reads nothing for hours.
        // tokio-io-timeout does the timing; a hand-written wrapper would repeat it.
        let mut stream = TimeoutStream::new(tcp);
        stream.set_write_timeout(self.stalled);
        (Box::pin(stream), peer)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The client's address, as the per-IP limit sees it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, StallLimitedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, StallLimitedListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
