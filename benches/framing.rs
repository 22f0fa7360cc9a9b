//! SSE and NDJSON framing of event data of growing size.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_sse::__private as frame;

const ID: &str = r#"[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":123456789}]"#;

fn sample_event() -> &'static [u8] {
    include_str!("data/recentchange-sample.jsonl")
        .lines()
        .next()
        .unwrap()
        .as_bytes()
}

/// A payload of about `size` bytes built from the sample event, pretty-printed every
/// `line` bytes so the multi-line path is measured too.
fn payload(size: usize, line: Option<usize>) -> Vec<u8> {
    let event = sample_event();
    let mut data: Vec<u8> = event.iter().copied().cycle().take(size).collect();
    if let Some(line) = line {
        for index in (line..data.len()).step_by(line) {
            data[index] = b'\n';
        }
    }
    data
}

fn bench_framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for size in [256, 1024, 16 * 1024] {
        let single = payload(size, None);
        let multi = payload(size, Some(80));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("sse_event", size), &single, |b, data| {
            b.iter(|| frame::event("message", ID, data))
        });
        group.bench_with_input(
            BenchmarkId::new("sse_event_multiline", size),
            &multi,
            |b, data| b.iter(|| frame::event("message", ID, data)),
        );
        group.bench_with_input(BenchmarkId::new("ndjson_line", size), &multi, |b, data| {
            b.iter(|| frame::ndjson_line(data))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_framing);
criterion_main!(benches);
