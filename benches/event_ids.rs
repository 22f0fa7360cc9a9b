//! Encoding an event id for assignments of growing size, and parsing it back.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_sse::{EventIdCodec, OffsetIds, PartitionPosition, TimestampIds};

fn positions(partitions: i32) -> Vec<PartitionPosition> {
    (0..partitions)
        .map(|partition| {
            let topic = if partition % 2 == 0 {
                "eqiad.mediawiki.recentchange"
            } else {
                "codfw.mediawiki.recentchange"
            };
            PartitionPosition::new(topic, partition, 1_234_567_890 + i64::from(partition))
                .with_last_timestamp(1_795_348_800_000)
        })
        .collect()
}

fn bench_event_ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_id");
    for partitions in [1, 4, 32] {
        let positions = positions(partitions);
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_offsets", partitions),
            &positions,
            |b, positions| b.iter(|| OffsetIds.encode(positions)),
        );
        group.bench_with_input(
            BenchmarkId::new("encode_timestamps", partitions),
            &positions,
            |b, positions| b.iter(|| TimestampIds.encode(positions)),
        );
        let id = OffsetIds.encode(&positions);
        group.bench_with_input(BenchmarkId::new("decode", partitions), &id, |b, id| {
            b.iter(|| OffsetIds.decode(id).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_event_ids);
criterion_main!(benches);
