//! The ready-made deserializers on the sample recent-change events (about 900 bytes each).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_sse::{
    Deserializer, FieldFilter, Filter, JsonPassThrough, JsonWithMeta, Message, RawUtf8,
};

fn messages() -> Vec<Message> {
    include_str!("data/recentchange-sample.jsonl")
        .lines()
        .enumerate()
        .map(|(offset, line)| {
            Message::new(
                "eqiad.mediawiki.recentchange",
                0,
                offset as i64,
                line.to_owned(),
            )
            .with_timestamp(1_795_348_800_000)
        })
        .collect()
}

fn bench_deserializers(c: &mut Criterion) {
    let messages = messages();
    let bytes: usize = messages.iter().map(|m| m.payload().unwrap().len()).sum();
    let mut group = c.benchmark_group("deserialize");
    group.throughput(Throughput::Bytes(bytes as u64));
    let deserializers: [(&str, &dyn Deserializer); 3] = [
        ("json_pass_through", &JsonPassThrough),
        ("json_with_meta", &JsonWithMeta),
        ("raw_utf8", &RawUtf8),
    ];
    for (name, deserializer) in deserializers {
        group.bench_with_input(
            BenchmarkId::new(name, messages.len()),
            &messages,
            |b, messages| {
                b.iter(|| {
                    for message in messages {
                        deserializer.deserialize(message).unwrap();
                    }
                })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(messages.len() as u64));
    let filter =
        FieldFilter::parse(["meta.domain!=canary", "wiki=enwiki", "wiki=commonswiki"]).unwrap();
    group.bench_with_input(
        BenchmarkId::new("field_filter", messages.len()),
        &messages,
        |b, messages| {
            b.iter(|| {
                messages
                    .iter()
                    .filter(|m| filter.matches(m, m.payload().unwrap()))
                    .count()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench_deserializers);
criterion_main!(benches);
