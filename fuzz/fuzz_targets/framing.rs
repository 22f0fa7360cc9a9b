//! Framing: [`frame::event`], [`frame::comment`], [`frame::id_only`] and
//! [`frame::ndjson_line`] with any event type, id, comment and data.
//!
//! The input is up to four parts split at the first three NUL bytes: `data`, `id\0data`,
//! `id\0type\0data` or `id\0type\0comment\0data` (ids never hold NUL: the `EventIdCodec`
//! contract). The frames are read back with an SSE parser written here from the WHATWG
//! rules, and with eventsource-stream where the bytes are UTF-8. Whatever the parts:
//! - the event frame dispatches exactly one event, with the given type (line breaks as
//!   spaces; "message" when empty), the given id (line breaks as spaces) and the data with
//!   every line break normalised to LF: no field injected, no frame ended early;
//! - a comment frame dispatches nothing and leaves the last event id alone;
//! - an id-only frame (the comment's text as id) dispatches nothing and sets the last
//!   event id;
//! - the next frame still parses on its own;
//! - an NDJSON line is the data on one line, CR and LF as spaces, and the same JSON value
//!   when the data is JSON.
#![no_main]

use eventsource_stream::Eventsource;
use futures::{executor::block_on, stream, StreamExt};
use kafka_sse::__private as frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let parts: Vec<&[u8]> = input.splitn(4, |&b| b == 0).collect();
    let (id, kind, comment, data) = match parts[..] {
        [data] => (&b"[]"[..], &b"message"[..], &b""[..], data),
        [id, data] => (id, &b"message"[..], &b""[..], data),
        [id, kind, data] => (id, kind, &b""[..], data),
        [id, kind, comment, data] => (id, kind, comment, data),
        _ => unreachable!("splitn gives one to four parts"),
    };
    let (Ok(id), Ok(kind), Ok(comment)) = (
        std::str::from_utf8(id),
        std::str::from_utf8(kind),
        std::str::from_utf8(comment),
    ) else {
        return;
    };

    let frames = [
        frame::open(None),
        frame::event(kind, id, data),
        frame::comment(comment),
        frame::id_only(comment),
        frame::event("message", "next", b"2"),
    ];
    let expected = [
        Event {
            kind: or_message(one_line(kind.as_bytes())),
            id: one_line(id.as_bytes()),
            data: normalise_breaks(data),
        },
        Event {
            kind: b"message".to_vec(),
            id: b"next".to_vec(),
            data: b"2".to_vec(),
        },
    ];

    // Frame by frame: what each one adds to the stream so far.
    let after = |count: usize| parse(&frames[..count].concat());
    let opened = after(1);
    assert!(opened.events.is_empty() && opened.last_id.is_empty());
    let evented = after(2);
    assert_eq!(evented.events, expected[..1], "the event frame");
    let commented = after(3);
    assert_eq!(
        commented.events,
        expected[..1],
        "a comment dispatched an event"
    );
    assert_eq!(commented.last_id, expected[0].id, "a comment moved the id");
    let id_moved = after(4);
    assert_eq!(
        id_moved.events,
        expected[..1],
        "an id-only frame dispatched"
    );
    assert_eq!(
        id_moved.last_id,
        one_line(comment.as_bytes()),
        "the id-only frame"
    );
    assert_eq!(after(5).events, expected, "the next frame");

    // A parser nobody here wrote must read the same events.
    let text: Result<Vec<String>, _> = frames
        .iter()
        .map(|frame| String::from_utf8(frame.to_vec()))
        .collect();
    if let Ok(text) = text {
        let chunks = stream::iter(text.into_iter().map(Ok::<_, std::convert::Infallible>));
        let theirs: Vec<Event> = block_on(chunks.eventsource().collect::<Vec<_>>())
            .into_iter()
            .map(|event| {
                let event = event.expect("eventsource-stream reads every frame");
                Event {
                    kind: event.event.into_bytes(),
                    id: event.id.into_bytes(),
                    data: event.data.into_bytes(),
                }
            })
            .collect();
        assert_eq!(theirs, expected, "eventsource-stream reads other events");
    }

    let line = frame::ndjson_line(data);
    assert_eq!(line.last(), Some(&b'\n'));
    let body = &line[..line.len() - 1];
    assert_eq!(body, &one_line(data)[..]);
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let again: serde_json::Value =
            serde_json::from_slice(body).expect("JSON data stays JSON on one line");
        assert_eq!(again, json);
    }
});

/// A dispatched event: type, last event id, data.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    kind: Vec<u8>,
    id: Vec<u8>,
    data: Vec<u8>,
}

/// What a client has read from a stream so far.
#[derive(Debug, Default)]
struct Parsed {
    events: Vec<Event>,
    last_id: Vec<u8>,
}

/// Interprets an event stream by the WHATWG HTML "Server-sent events" parsing rules, on
/// bytes (UTF-8 decoding does not move CR, LF or colons).
fn parse(stream: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let (mut kind, mut data) = (Vec::new(), Vec::new());
    let mut rest = stream;
    // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF)
    // character pair, a single U+000A LINE FEED (LF) character, or a single U+000D
    // CARRIAGE RETURN (CR) character." A line without its end is never processed: "Once
    // the end of the file is reached, any pending data must be discarded."
    while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        let line = &rest[..end];
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];

        // "If the line is empty (a blank line): Dispatch the event."
        if line.is_empty() {
            if data.is_empty() {
                kind.clear();
                continue;
            }
            data.pop();
            parsed.events.push(Event {
                kind: or_message(std::mem::take(&mut kind)),
                id: parsed.last_id.clone(),
                data: std::mem::take(&mut data),
            });
            continue;
        }
        // "If the line starts with a U+003A COLON character (:): Ignore the line."
        if line[0] == b':' {
            continue;
        }
        // "If the line contains a U+003A COLON character (:)": the field is before it, the
        // value after it, less one leading U+0020 SPACE; otherwise the whole line is the
        // field and the value is empty.
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => kind = value.to_vec(),
            b"data" => {
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the last event ID
            // buffer to the field value."
            b"id" if !value.contains(&0) => parsed.last_id = value.to_vec(),
            _ => {}
        }
    }
    parsed
}

/// "Initialize event's type attribute to "message" ... If the event type buffer has a value
/// other than the empty string, change the type of the newly created event to equal the
/// value of the event type buffer."
fn or_message(kind: Vec<u8>) -> Vec<u8> {
    if kind.is_empty() {
        b"message".to_vec()
    } else {
        kind
    }
}

/// A field value as the framer writes it: every CR and LF becomes a space.
fn one_line(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect()
}

/// Data as a client reads it back: CRLF, CR and LF each become one LF.
fn normalise_breaks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut bytes = data.iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b'\r' {
            bytes.next_if_eq(&&b'\n');
            out.push(b'\n');
        } else {
            out.push(b);
        }
    }
    out
}
