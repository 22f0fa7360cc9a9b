//! Encoding an event id for assignments of growing size, and parsing it back, in the JSON
//! and the compact form.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_sse::{EventIdCodec, OffsetIds, PartitionPosition, TimestampIds};

/// Two topics (two datacenters), partitions interleaved, offsets of a long-lived topic.
fn positions(partitions: i32) -> Vec<PartitionPosition> {
    let mut positions: Vec<_> = (0..partitions)
        .map(|partition| {
            let topic = if partition % 2 == 0 {
                "eqiad.mediawiki.recentchange"
            } else {
                "codfw.mediawiki.recentchange"
            };
            PartitionPosition::new(topic, partition, 1_234_567_890 + i64::from(partition))
                .with_last_timestamp(1_795_348_800_000)
        })
        .collect();
    positions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    positions
}

fn bench_event_ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_id");
    for partitions in [1, 4, 32] {
        let positions = positions(partitions);
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_with_input(
            BenchmarkId::new("encode_offsets", partitions),
            &positions,
            |b, positions| b.iter(|| OffsetIds::json().encode(positions)),
        );
        group.bench_with_input(
            BenchmarkId::new("encode_timestamps", partitions),
            &positions,
            |b, positions| b.iter(|| TimestampIds::json().encode(positions)),
        );
        let id = OffsetIds::json().encode(&positions);
        group.bench_with_input(BenchmarkId::new("decode", partitions), &id, |b, id| {
            b.iter(|| OffsetIds.decode(id).unwrap())
        });
    }
    group.finish();
}

/// One topic of 1 to 1,024 partitions, as a drain leaves it: nearby offsets.
fn one_topic(partitions: i32) -> Vec<PartitionPosition> {
    (0..partitions)
        .map(|partition| {
            let offset = 1_234_567 + (i64::from(partition) * 7_919) % 2_000;
            PartitionPosition::new("mediawiki.recentchange", partition, offset)
        })
        .collect()
}

fn bench_forms(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_id_forms");
    for partitions in [1, 16, 64, 256, 1024] {
        let positions = one_topic(partitions);
        group.throughput(Throughput::Elements(partitions as u64));
        for (form, codec) in [
            ("json", OffsetIds::json()),
            ("compact", OffsetIds::compact()),
        ] {
            group.bench_with_input(
                BenchmarkId::new(format!("encode_{form}"), partitions),
                &positions,
                |b, positions| b.iter(|| codec.encode(positions)),
            );
            let id = codec.encode(&positions);
            group.bench_with_input(
                BenchmarkId::new(format!("decode_{form}"), partitions),
                &id,
                |b, id| b.iter(|| codec.decode(id).unwrap()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_event_ids, bench_forms);
criterion_main!(benches);
