//! A stream's Kafka consumer is released when the client goes away, and clients of a shared
//! live stream cost no consumer of their own. Alone in its own test binary, so the process's
//! thread count measures only this test's consumers (every librdkafka client runs several
//! threads).

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_sse::{EventStream, KafkaSse, StreamRequest};
use support::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Waits (bounded) until the thread count is `target` or below, and returns it.
async fn settle_to(target: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = threads();
        if now <= target || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The thread count once tokio's short-lived blocking threads have left.
async fn steady_threads() -> usize {
    tokio::time::sleep(Duration::from_millis(200)).await;
    threads()
}

async fn open(sse: &KafkaSse, topic: &str) -> EventStream {
    let mut stream = sse.stream(StreamRequest::new([topic])).await.unwrap();
    stream.next().await.expect("the opening frame");
    stream
}

/// Tokio's blocking pool keeps idle threads for ten seconds by default, which would hide
/// what this test counts; here they leave at once.
#[test]
fn consumers_are_released_when_clients_leave() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(10))
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let topic = create_topic(2).await;
            own_consumers_are_released(&topic).await;
            shared_clients_use_one_consumer_released_after_the_last(&topic).await;
        });
}

async fn own_consumers_are_released(topic: &str) {
    let sse = sse_builder().fan_out(false).build().unwrap();
    // Warm up the shared look-up client, whose threads stay.
    drop(open(&sse, topic).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = threads();
    for round in 0..3 {
        let mut streams = Vec::new();
        for _ in 0..4 {
            streams.push(open(&sse, topic).await);
        }
        assert!(
            threads() >= baseline + 4,
            "each stream runs its own consumer"
        );
        drop(streams);
        let dropped = Instant::now();
        let after = settle_to(baseline).await;
        eprintln!(
            "own consumers, round {round}: back to {after} threads in {:?}",
            dropped.elapsed()
        );
        assert!(
            after <= baseline,
            "round {round}: {after} threads remain, baseline {baseline}"
        );
    }
}

async fn shared_clients_use_one_consumer_released_after_the_last(topic: &str) {
    let sse = sse();
    // Warm up the look-up client, then let the warm-up's shared stream retire.
    drop(open(&sse, topic).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = threads();
    let first = open(&sse, topic).await;
    let with_one = steady_threads().await;
    assert!(
        with_one >= baseline + 3,
        "the shared stream runs a consumer: {with_one} threads, baseline {baseline}"
    );
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(open(&sse, topic).await);
    }
    let with_four = steady_threads().await;
    assert!(
        with_four <= with_one,
        "three more clients add no consumer: {with_four} threads, {with_one} with one"
    );
    drop(more);
    drop(first);
    let dropped = Instant::now();
    let after = settle_to(baseline).await;
    eprintln!(
        "shared consumer: back to {after} threads in {:?}",
        dropped.elapsed()
    );
    assert!(
        after <= baseline,
        "{after} threads remain, baseline {baseline}"
    );
}
