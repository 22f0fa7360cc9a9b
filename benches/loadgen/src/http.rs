//! A lean HTTP/1.1 client for event streams: one `GET`, the response head, then the body
//! (chunked or not) cut into events, SSE or NDJSON, with no copy of whole frames.
//!
//! Ten thousand of these fit in one process: each holds a socket, a read buffer and a few
//! counters. Frames are cut on `\n` line ends, which is what both servers under test write.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

use crate::event::{find, find_byte, Stamp};

/// Where to send the request.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    authority: String,
    path: String,
}

impl Target {
    /// Parses an `http://HOST:PORT/PATH?QUERY` URL.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported: {url}");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("no host in {url}"))?
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        let host = uri.host().unwrap_or_default();
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow!("{host} does not resolve"))?;
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        Ok(Target {
            addr,
            authority,
            path,
        })
    }
}

/// The request options.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// A `Last-Event-ID` header.
    pub last_event_id: Option<String>,
    /// Ask for NDJSON (`Accept: application/json`) instead of SSE.
    pub ndjson: bool,
    /// A receive buffer size for the socket (SO_RCVBUF); the kernel's default otherwise.
    pub recv_buffer: Option<u32>,
}

/// When the phases of opening a stream ended, measured from the start of the connect.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenTimes {
    pub connected: Duration,
    pub headers: Duration,
}

/// An open response whose body is being read.
#[derive(Debug)]
pub struct Stream {
    socket: TcpStream,
    buffer: Vec<u8>,
    /// Body bytes that arrived with the head.
    pending: std::ops::Range<usize>,
    body: BodyDecoder,
    pub events: EventParser,
    pub content_type: String,
}

/// What one read of the body gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Some bytes (body bytes, after de-chunking).
    Bytes(usize),
    /// The body ended.
    End,
}

/// A response whose status is not 200: an EventSource fails for good on it, where it
/// retries after a network error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStatus {
    pub status: u16,
    /// The start of the body, trimmed.
    pub body: String,
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for HttpStatus {}

/// Connects, sends the request and reads the response head; fails on a status other than
/// 200 (with an [`HttpStatus`] error). Every step is bounded by `limit`.
pub async fn open(
    target: &Target,
    options: &RequestOptions,
    read_buffer: usize,
    limit: Duration,
) -> anyhow::Result<(Stream, OpenTimes)> {
    let started = Instant::now();
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = options.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    let mut socket = timeout(limit, socket.connect(target.addr))
        .await
        .map_err(|_| anyhow!("connect timed out after {limit:?}"))?
        .context("connect")?;
    socket.set_nodelay(true)?;
    let connected = started.elapsed();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kafka-sse-loadgen\r\nAccept: {}\r\nCache-Control: no-cache\r\n",
        target.path,
        target.authority,
        if options.ndjson {
            "application/json"
        } else {
            "text/event-stream"
        }
    );
    if let Some(id) = &options.last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    timeout(limit, socket.write_all(request.as_bytes()))
        .await
        .map_err(|_| anyhow!("sending the request timed out"))??;

    let mut buffer = vec![0; read_buffer.max(16 * 1024)];
    let mut filled = 0;
    let head_end = loop {
        if let Some(at) = find(&buffer[..filled], b"\r\n\r\n") {
            break at + 4;
        }
        if filled == buffer.len() {
            bail!("response head larger than {} bytes", buffer.len());
        }
        let remaining = limit.saturating_sub(started.elapsed());
        let n = timeout(remaining, socket.read(&mut buffer[filled..]))
            .await
            .map_err(|_| anyhow!("no response head after {limit:?}"))??;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        filled += n;
    };
    let headers = started.elapsed();
    let head = std::str::from_utf8(&buffer[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut content_type = String::new();
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.to_owned(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-length" => length = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    if status != 200 {
        let body = String::from_utf8_lossy(&buffer[head_end..filled]);
        return Err(HttpStatus {
            status,
            body: body.trim().to_owned(),
        }
        .into());
    }
    let ndjson = !content_type.starts_with("text/event-stream");
    let body = if chunked {
        BodyDecoder::Chunked(Chunked::Size(0))
    } else {
        BodyDecoder::Plain(length)
    };
    Ok((
        Stream {
            socket,
            buffer,
            pending: head_end..filled,
            body,
            events: EventParser::new(ndjson),
            content_type,
        },
        OpenTimes { connected, headers },
    ))
}

impl Stream {
    /// Reads once from the socket (or takes what came with the head) and hands the body
    /// bytes to the event parser, which calls `on_event` for every complete event.
    pub async fn read(&mut self, on_event: &mut impl FnMut(&Event)) -> anyhow::Result<Read> {
        let range = if self.pending.is_empty() {
            let n = self.socket.read(&mut self.buffer).await?;
            if n == 0 {
                return Ok(Read::End);
            }
            0..n
        } else {
            std::mem::replace(&mut self.pending, 0..0)
        };
        let Stream {
            buffer,
            body,
            events,
            ..
        } = self;
        let mut bytes = 0;
        let ended = body.feed(&buffer[range], &mut |part| {
            bytes += part.len();
            events.feed(part, on_event);
        })?;
        Ok(if ended { Read::End } else { Read::Bytes(bytes) })
    }

    /// Reads at most `max` bytes from the socket, for clients that read slowly.
    pub async fn read_at_most(
        &mut self,
        max: usize,
        on_event: &mut impl FnMut(&Event),
    ) -> anyhow::Result<Read> {
        if self.pending.is_empty() {
            let max = max.clamp(1, self.buffer.len());
            let n = self.socket.read(&mut self.buffer[..max]).await?;
            if n == 0 {
                return Ok(Read::End);
            }
            self.pending = 0..n;
        }
        self.read(on_event).await
    }
}

/// How the body is delimited.
#[derive(Debug)]
enum BodyDecoder {
    /// Content-Length bytes left, or until the connection closes.
    Plain(Option<u64>),
    Chunked(Chunked),
}

#[derive(Debug)]
enum Chunked {
    /// Reading the hex size line; the size so far.
    Size(u64),
    /// Skipping a chunk extension up to the line end; the size.
    Extension(u64),
    /// Waiting for the `\n` of the size line; the size.
    SizeLineEnd(u64),
    /// Chunk data left.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailers, then the end.
    Trailer,
    Done,
}

impl BodyDecoder {
    /// Feeds raw bytes, passing body bytes on; true once the body has ended.
    fn feed(&mut self, mut input: &[u8], sink: &mut impl FnMut(&[u8])) -> anyhow::Result<bool> {
        match self {
            BodyDecoder::Plain(None) => {
                sink(input);
                Ok(false)
            }
            BodyDecoder::Plain(Some(left)) => {
                let take = input.len().min(*left as usize);
                sink(&input[..take]);
                *left -= take as u64;
                Ok(*left == 0)
            }
            BodyDecoder::Chunked(state) => {
                while !input.is_empty() {
                    match state {
                        Chunked::Size(size) => {
                            let byte = input[0];
                            input = &input[1..];
                            *state = match byte {
                                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                                    let digit = (byte as char).to_digit(16).unwrap_or(0);
                                    let size = size
                                        .checked_mul(16)
                                        .ok_or_else(|| anyhow!("chunk size overflows"))?;
                                    Chunked::Size(size + u64::from(digit))
                                }
                                b';' | b' ' | b'\t' => Chunked::Extension(*size),
                                b'\r' => Chunked::SizeLineEnd(*size),
                                b'\n' if *size == 0 => Chunked::Trailer,
                                b'\n' => Chunked::Data(*size),
                                _ => bail!("bad chunk size byte {byte:#x}"),
                            };
                        }
                        Chunked::Extension(size) | Chunked::SizeLineEnd(size) => {
                            let byte = input[0];
                            input = &input[1..];
                            if byte == b'\n' {
                                *state = if *size == 0 {
                                    Chunked::Trailer
                                } else {
                                    Chunked::Data(*size)
                                };
                            }
                        }
                        Chunked::Data(left) => {
                            let take = input.len().min(*left as usize);
                            sink(&input[..take]);
                            input = &input[take..];
                            *left -= take as u64;
                            if *left == 0 {
                                *state = Chunked::DataEnd;
                            }
                        }
                        Chunked::DataEnd => {
                            let byte = input[0];
                            input = &input[1..];
                            if byte == b'\n' {
                                *state = Chunked::Size(0);
                            }
                        }
                        Chunked::Trailer => {
                            // Trailers are not used by either server; the body ends here.
                            *state = Chunked::Done;
                        }
                        Chunked::Done => return Ok(true),
                    }
                }
                Ok(matches!(state, Chunked::Trailer | Chunked::Done))
            }
        }
    }
}

/// One complete event as the parser saw it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Event {
    /// The bench fields of its data.
    pub stamp: Stamp,
    /// Bytes of data.
    pub data_len: usize,
    /// An `event: error` frame.
    pub error: bool,
}

/// What an EventSource keeps from one connection to the next (WHATWG HTML, "Interpreting
/// an event stream"): the last event id, sent back as `Last-Event-ID`, and the
/// reconnection time a `retry:` field set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSourceState {
    /// The last event ID string; empty until a frame carried an id.
    pub last_id: String,
    /// The reconnection time the server set, in milliseconds.
    pub retry_ms: Option<u64>,
    /// The `id:` of the frame being read: "If the field value does not contain U+0000
    /// NULL, then set the last event ID buffer to the field value." It becomes the last
    /// event id at the frame's blank line, whether or not the frame has data, so id-only
    /// frames move the resume point; a frame cut off by the end of the stream does not.
    id_buffer: Option<String>,
}

impl EventSourceState {
    /// Starts a new connection: a frame left unfinished by the last one counts for nothing.
    pub fn reconnecting(&mut self) {
        self.id_buffer = None;
    }

    /// One field line (not a comment, not `data:` or `event:`).
    fn field(&mut self, line: &[u8]) {
        // "If the line contains a U+003A COLON character (:) ... Collect the characters on
        // the line after the first U+003A COLON character (:) ... If value starts with a
        // U+0020 SPACE character, remove it from value." A line without a colon is a field
        // with an empty value.
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"id" if !value.contains(&0) => {
                self.id_buffer = Some(String::from_utf8_lossy(value).into_owned());
            }
            // "If the field value consists of only ASCII digits, then interpret the field
            // value as an integer in base ten, and set the event stream's reconnection time
            // to that integer. Otherwise, ignore the field."
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or_default().parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    /// The blank line that ends a frame.
    fn dispatch(&mut self) {
        if let Some(id) = self.id_buffer.take() {
            self.last_id = id;
        }
    }
}

/// Cuts a body into events: SSE frames with data (comments and id-only frames are not
/// events), or NDJSON lines.
#[derive(Debug)]
pub struct EventParser {
    ndjson: bool,
    /// The start of a line that continues in the next read.
    partial: Vec<u8>,
    current: Event,
    has_data: bool,
    /// Frames without data: `:ok`, heartbeats, id-only frames.
    pub other_frames: u64,
    /// Ids and `retry:` followed as an EventSource does, when set.
    pub eventsource: Option<EventSourceState>,
}

impl EventParser {
    fn new(ndjson: bool) -> Self {
        EventParser {
            ndjson,
            partial: Vec::new(),
            current: Event::default(),
            has_data: false,
            other_frames: 0,
            eventsource: None,
        }
    }

    fn feed(&mut self, mut body: &[u8], on_event: &mut impl FnMut(&Event)) {
        while let Some(end) = find_byte(body, b'\n') {
            if self.partial.is_empty() {
                self.line(&body[..end], on_event);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&body[..end]);
                self.line(&line, on_event);
                line.clear();
                self.partial = line;
            }
            body = &body[end + 1..];
        }
        self.partial.extend_from_slice(body);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(&Event)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.ndjson {
            if !line.is_empty() {
                on_event(&Event {
                    stamp: Stamp::read(line),
                    data_len: line.len(),
                    error: line.starts_with(br#"{"error""#),
                });
            } else {
                self.other_frames += 1;
            }
            return;
        }
        if line.is_empty() {
            if let Some(state) = &mut self.eventsource {
                state.dispatch();
            }
            if self.has_data {
                on_event(&self.current);
            } else {
                self.other_frames += 1;
            }
            self.current = Event::default();
            self.has_data = false;
        } else if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if !self.has_data {
                self.current.stamp = Stamp::read(data);
            }
            self.has_data = true;
            self.current.data_len += data.len();
        } else if let Some(name) = line.strip_prefix(b"event:") {
            self.current.error = name.trim_ascii() == b"error";
        } else if let (Some(state), false) = (&mut self.eventsource, line.starts_with(b":")) {
            state.field(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ndjson: bool, chunked: bool, wire: &[u8], split: usize) -> (Vec<Event>, u64) {
        let mut body = if chunked {
            BodyDecoder::Chunked(Chunked::Size(0))
        } else {
            BodyDecoder::Plain(None)
        };
        let mut parser = EventParser::new(ndjson);
        let mut seen = Vec::new();
        for part in wire.chunks(split) {
            body.feed(part, &mut |b| parser.feed(b, &mut |e| seen.push(*e)))
                .unwrap();
        }
        (seen, parser.other_frames)
    }

    #[test]
    fn sse_frames_become_events_across_chunk_and_read_boundaries() {
        let body =
            b":ok\n\nid: [1]\n\nevent: message\nid: [2]\ndata: {\"seq\":5,\"sent_ms\":9}\n\n";
        let mut wire = Vec::new();
        for part in body.chunks(7) {
            wire.extend_from_slice(format!("{:X};x=y\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for split in [1, 3, 1000] {
            let (seen, other) = events(false, true, &wire, split);
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].stamp.seq, Some(5));
            assert_eq!(seen[0].stamp.sent_ms, Some(9));
            assert_eq!(other, 2);
        }
    }

    #[test]
    fn ndjson_lines_are_events() {
        let (seen, _) = events(true, false, b"{\"seq\":1}\n\n{\"seq\":2}\n", 4);
        let seqs: Vec<_> = seen.iter().map(|e| e.stamp.seq).collect();
        assert_eq!(seqs, [Some(1), Some(2)]);
    }

    fn followed(wire: &[&[u8]], state: EventSourceState) -> (EventSourceState, usize) {
        let mut parser = EventParser::new(false);
        parser.eventsource = Some(state);
        let mut seen = 0;
        for part in wire {
            parser.feed(part, &mut |_| seen += 1);
        }
        (parser.eventsource.unwrap(), seen)
    }

    #[test]
    fn eventsource_ids_are_kept_at_the_end_of_each_frame_with_or_without_data() {
        let (state, seen) = followed(
            &[b":ok\n\nid: [1]\n\nevent: message\nid: [2]\ndata: {}\n\n"],
            EventSourceState::default(),
        );
        assert_eq!((state.last_id.as_str(), seen), ("[2]", 1));
        // A frame cut off by the end of the stream does not count; the next connection
        // starts from the last complete one.
        let (mut state, _) = followed(&[b"id: [3]\ndata: {}\n"], state);
        assert_eq!(state.last_id, "[2]");
        state.reconnecting();
        let (state, _) = followed(&[b"\n"], state);
        assert_eq!(state.last_id, "[2]");
        // Frames without an id keep the last one; an id with NUL is ignored.
        let (state, _) = followed(&[b"data: {}\n\nid: a\0b\n\n"], state);
        assert_eq!(state.last_id, "[2]");
        // "id" with no colon, or "id:" with nothing, empties it.
        let (state, _) = followed(&[b"id\n\n"], state);
        assert_eq!(state.last_id, "");
    }

    #[test]
    fn eventsource_retry_takes_only_digits() {
        let (state, _) = followed(&[b":busy\nretry: 1500\n\n"], EventSourceState::default());
        assert_eq!(state.retry_ms, Some(1500));
        let (state, _) = followed(&[b"retry: 2s\n\nretry:\n\nretry:-1\n\n"], state);
        assert_eq!(state.retry_ms, Some(1500));
        let (state, _) = followed(&[b"retry:700\r\n\r\n"], state);
        assert_eq!(state.retry_ms, Some(700));
    }

    #[test]
    fn non_200_answers_are_told_apart() {
        let error: anyhow::Error = HttpStatus {
            status: 503,
            body: "busy".into(),
        }
        .into();
        assert_eq!(
            error.downcast_ref::<HttpStatus>().map(|s| s.status),
            Some(503)
        );
        assert_eq!(format!("{error:#}"), "HTTP 503: busy");
    }

    #[test]
    fn error_events_are_marked() {
        let (seen, _) = events(false, false, b"event: error\ndata: {}\n\n", 100);
        assert!(seen[0].error);
    }
}
