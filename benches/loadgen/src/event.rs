//! The events the load generator produces, and what it reads back out of them.
//!
//! Every event is a recent-change event from the sample file with three fields put first,
//! so a reader finds them without parsing the JSON: `seq` (the event's number in its run),
//! `sent_ms` (the producer's wall clock, in epoch milliseconds, just before the send) and
//! `run` (a random number per producer run, so events of earlier runs are told apart). A
//! `pad` string makes the serialized event the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

/// The sample events of the repository, built in.
const SAMPLE: &str = include_str!("../../data/recentchange-sample.jsonl");

/// Builds event payloads from sample shapes.
#[derive(Debug)]
pub struct EventFactory {
    /// Each sample event without its opening brace, ready to append.
    tails: Vec<String>,
    /// The serialized size to pad to; 0 keeps the sample size.
    size: usize,
    run: u64,
}

impl EventFactory {
    /// A factory for the built-in samples or those in `sample_file`, padding each event to
    /// `size` bytes (0: no padding), tagging them with `run`.
    pub fn new(sample_file: Option<&str>, size: usize, run: u64) -> anyhow::Result<Self> {
        let text = match sample_file {
            Some(path) => {
                std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
            }
            None => SAMPLE.to_owned(),
        };
        let mut tails = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let value: serde_json::Value =
                serde_json::from_str(line).context("a sample line is not JSON")?;
            let Some(object) = value.as_object() else {
                bail!("a sample line is not a JSON object");
            };
            let mut object = object.clone();
            for key in ["seq", "sent_ms", "run", "pad"] {
                object.remove(key);
            }
            let json = serde_json::Value::Object(object).to_string();
            tails.push(json[1..].to_owned());
        }
        if tails.is_empty() {
            bail!("no sample events");
        }
        Ok(EventFactory { tails, size, run })
    }

    /// The run tag of this factory's events.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Writes event number `seq` into `out`, stamped with the current time.
    pub fn build(&self, seq: u64, out: &mut Vec<u8>) {
        use std::io::Write as _;
        out.clear();
        let tail = &self.tails[(seq % self.tails.len() as u64) as usize];
        let _ = write!(
            out,
            r#"{{"seq":{seq},"sent_ms":{},"run":{},"#,
            now_ms(),
            self.run
        );
        // The pad field costs its own syntax: "pad":"",
        const PAD_SYNTAX: usize = 9;
        let unpadded = out.len() + tail.len();
        if self.size > unpadded + PAD_SYNTAX {
            out.extend_from_slice(br#""pad":""#);
            out.resize(out.len() + self.size - unpadded - PAD_SYNTAX, b'x');
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(tail.as_bytes());
    }
}

/// The bench fields of one event, read from its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub seq: Option<u64>,
    pub sent_ms: Option<u64>,
    pub run: Option<u64>,
}

impl Stamp {
    /// Finds the bench fields in a JSON text. They lead in this generator's events; KafkaSSE
    /// re-serializes events but keeps the key order, so the first bytes are searched first.
    pub fn read(data: &[u8]) -> Stamp {
        let head = &data[..data.len().min(160)];
        let read = |key: &[u8]| number_after(head, key).or_else(|| number_after(data, key));
        Stamp {
            seq: read(br#""seq":"#),
            sent_ms: read(br#""sent_ms":"#),
            run: read(br#""run":"#),
        }
    }
}

/// The unsigned integer that follows the first `key` in `text`.
fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(text, key)? + key.len();
    let digits = &text[at..];
    let digits = &digits[..digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len())];
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// The position of the first `byte` in `haystack`, eight bytes at a time: the load
/// generator scans every byte of every stream it reads, so this is its hottest loop.
pub fn find_byte(haystack: &[u8], byte: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(byte);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes")) ^ pattern;
        // Sets the high bit of each byte of `word` that is zero (and of no byte before it).
        let zero = word.wrapping_sub(LO) & !word & HI;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == byte)
        .map(|at| offset + at)
}

/// The position of the first `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = find_byte(&haystack[from..], first) {
        let start = from + at;
        if haystack[start + 1..].starts_with(rest) {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall clock in epoch microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_padded_to_the_size_and_stamped() {
        let factory = EventFactory::new(None, 1024, 7).unwrap();
        let mut out = Vec::new();
        factory.build(42, &mut out);
        assert_eq!(out.len(), 1024);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["seq"], 42);
        assert_eq!(value["run"], 7);
        let stamp = Stamp::read(&out);
        assert_eq!((stamp.seq, stamp.run), (Some(42), Some(7)));
        assert!(stamp.sent_ms.unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn byte_search_finds_the_first_match_at_any_alignment() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for at in 0..text.len() {
            let mut with = text.clone();
            with[at] = b'\n';
            with[(at + 3).min(39)] = b'\n';
            assert_eq!(find_byte(&with, b'\n'), Some(at));
        }
        assert_eq!(find_byte(&text, b'\n'), None);
        assert_eq!(find(b"xx\"seq\":12", b"\"seq\":"), Some(2));
    }

    #[test]
    fn small_sizes_keep_the_sample_size() {
        let factory = EventFactory::new(None, 0, 1).unwrap();
        let mut out = Vec::new();
        factory.build(0, &mut out);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        assert!(find(&out, b"\"pad\"").is_none());
    }
}
