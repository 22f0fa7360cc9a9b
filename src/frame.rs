//! Server-Sent Events and NDJSON framing: bytes in, bytes out, no I/O.
//!
//! Each function returns one complete frame, ending with the blank line that dispatches it,
//! so frames can be written to any number of clients as they are. The SSE rules quoted
//! below are from the WHATWG HTML standard, section "Server-sent events".

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// The comment frame that opens every SSE stream, so clients see the connection open at
/// once: `:ok`, plus a `retry:` line when a reconnection delay is set.
///
/// ```
/// use std::time::Duration;
/// use kafka_sse::__private as frame;
///
/// assert_eq!(frame::open(None), ":ok\n\n");
/// assert_eq!(frame::open(Some(Duration::from_secs(2))), ":ok\nretry: 2000\n\n");
/// ```
pub fn open(retry: Option<Duration>) -> Bytes {
    match retry {
        None => Bytes::from_static(b":ok\n\n"),
        Some(retry) => Bytes::from(format!(":ok\nretry: {}\n\n", retry.as_millis())),
    }
}

/// The whole body of a stream that cannot be served right now: `comment` (the reason, for
/// people reading the stream) and a `retry:` delay, then the end. An EventSource reconnects
/// after that delay with the `Last-Event-ID` it has, as it does after any stream that ends.
///
/// "If the field name is "retry": If the field value consists of only ASCII digits, then
/// interpret the field value as an integer in base ten, and set the event stream's
/// reconnection time to that integer."
///
/// ```
/// use std::time::Duration;
/// use kafka_sse::__private as frame;
///
/// assert_eq!(frame::retry_later("busy", Duration::from_millis(1500)), ":busy\nretry: 1500\n\n");
/// ```
pub fn retry_later(comment: &str, retry: Duration) -> Bytes {
    let mut frame = BytesMut::from(&self::comment(comment)[..]);
    frame.truncate(frame.len() - 1);
    frame.put_slice(format!("retry: {}\n\n", retry.as_millis()).as_bytes());
    frame.freeze()
}

/// A comment frame, which clients ignore: used as a heartbeat.
///
/// "If the line starts with a U+003A COLON character (:): Ignore the line." Each line of a
/// multi-line text becomes its own comment line.
///
/// ```
/// use kafka_sse::__private as frame;
///
/// assert_eq!(frame::comment(""), ":\n\n");
/// assert_eq!(frame::comment("a\nb"), ":a\n:b\n\n");
/// ```
pub fn comment(text: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(text.len() + 4);
    for line in lines(text.as_bytes()) {
        frame.put_u8(b':');
        frame.put_slice(line);
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// An event frame: `event: <type>`, `id: <id>`, one `data:` line per line of `data`, and
/// the blank line that dispatches it.
///
/// "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF)
/// character pair, a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE
/// RETURN (CR) character." Every one of those in `data` starts a new `data:` line, so no
/// content can end the frame early or add a field; clients join the lines with `\n`. Line
/// breaks in `id` are replaced by spaces for the same reason.
///
/// ```
/// use kafka_sse::__private as frame;
///
/// let frame = frame::event("message", r#"[{"topic":"t","partition":0,"offset":1}]"#, b"{\n\"a\":1}");
/// assert_eq!(
///     frame,
///     "event: message\nid: [{\"topic\":\"t\",\"partition\":0,\"offset\":1}]\ndata: {\ndata: \"a\":1}\n\n"
/// );
/// ```
pub fn event(event_type: &str, id: &str, data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(event_type.len() + id.len() + data.len() + 32);
    put_field(&mut frame, b"event: ", event_type.as_bytes());
    put_field(&mut frame, b"id: ", id.as_bytes());
    for line in lines(data) {
        frame.put_slice(b"data: ");
        frame.put_slice(line);
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// An id-only frame: it moves the client's last event id without dispatching an event.
///
/// The standard's dispatch step first sets "the last event ID string of the event source to
/// the value of the last event ID buffer", then returns without firing when "the data buffer
/// is an empty string".
///
/// ```
/// use kafka_sse::__private as frame;
///
/// assert_eq!(frame::id_only("[]"), "id: []\n\n");
/// ```
pub fn id_only(id: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(id.len() + 6);
    put_field(&mut frame, b"id: ", id.as_bytes());
    frame.put_u8(b'\n');
    frame.freeze()
}

/// One NDJSON line: the data with any line break replaced by a space, then `\n`.
///
/// Raw line breaks can only be whitespace in valid JSON (inside strings they must be
/// escaped), so the replacement keeps JSON data equal in meaning.
///
/// ```
/// use kafka_sse::__private as frame;
///
/// assert_eq!(frame::ndjson_line(b"{\n\"a\":1\r\n}"), "{ \"a\":1  }\n");
/// ```
pub fn ndjson_line(data: &[u8]) -> Bytes {
    let mut line = BytesMut::with_capacity(data.len() + 1);
    put_single_line(&mut line, data);
    line.put_u8(b'\n');
    line.freeze()
}

fn put_field(frame: &mut BytesMut, name: &[u8], value: &[u8]) {
    frame.put_slice(name);
    put_single_line(frame, value);
    frame.put_u8(b'\n');
}

/// Appends `value` with every CR and LF replaced by a space.
fn put_single_line(out: &mut BytesMut, value: &[u8]) {
    let start = out.len();
    out.put_slice(value);
    let written = &mut out[start..];
    for index in memchr::memchr2_iter(b'\n', b'\r', value) {
        written[index] = b' ';
    }
}

/// Splits on CRLF, LF or CR, the three line endings SSE recognises.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr2(b'\n', b'\r', current) {
            None => {
                rest = None;
                Some(current)
            }
            Some(index) => {
                let skip = if current[index] == b'\r' && current.get(index + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = Some(&current[index + skip..]);
                Some(&current[..index])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventsource_stream::Eventsource;
    use futures::{executor::block_on, stream, StreamExt};
    use proptest::prelude::*;

    /// Parses frames with an SSE client parser nobody here wrote.
    fn parse(frames: Vec<Bytes>) -> Vec<eventsource_stream::Event> {
        let body = stream::iter(frames.into_iter().map(Ok::<_, std::convert::Infallible>));
        block_on(body.eventsource().map(Result::unwrap).collect())
    }

    #[test]
    fn splits_every_kind_of_line_break() {
        let split: Vec<_> = lines(b"a\r\nb\nc\rd").collect();
        assert_eq!(split, [&b"a"[..], b"b", b"c", b"d"]);
        let split: Vec<_> = lines(b"\n").collect();
        assert_eq!(split, [&b""[..], b""]);
    }

    #[test]
    fn heartbeats_and_id_only_frames_dispatch_no_event() {
        let events = parse(vec![
            open(Some(Duration::from_millis(1500))),
            comment("heartbeat"),
            id_only("[1]"),
            event("message", "[2]", b"{}"),
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "[2]");
    }

    proptest! {
        /// No message content can end a frame early or inject a field: whatever the data,
        /// a client parses exactly one event of the given type and id, whose data is the
        /// original with line breaks normalised to `\n`.
        #[test]
        fn data_cannot_inject_fields_or_frames(
            data in "(.|\r|\n|\r\n|data: x|id: 9|event: evil|retry: 1|:)*",
            id in "[ -~]{0,40}",
        ) {
            let events = parse(vec![event("message", &id, data.as_bytes()), event("message", "next", b"2")]);
            prop_assert_eq!(events.len(), 2);
            prop_assert_eq!(&events[0].event, "message");
            prop_assert_eq!(&events[0].id, &id);
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(&events[0].data, &expected);
            prop_assert_eq!(&events[1].data, "2");
        }

        #[test]
        fn ndjson_lines_are_single_lines(data in "(.|\r|\n)*") {
            let line = ndjson_line(data.as_bytes());
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n' || b == b'\r').count(), 1);
            prop_assert_eq!(line.last(), Some(&b'\n'));
        }
    }
}
