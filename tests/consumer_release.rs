//! A stream's Kafka consumer is released when the client goes away. Alone in its own test
//! binary, so the process's thread count measures only this test's consumers.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use kafka_sse::StreamRequest;
use support::*;

/// Threads of this process, from /proc: every librdkafka client runs several.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Waits (bounded) until the thread count is back to `baseline` or below.
async fn back_to(baseline: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = threads();
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tokio's blocking pool keeps idle threads for ten seconds by default, which would hide
/// what this test counts; here they leave at once.
#[test]
fn dropping_a_stream_releases_its_consumer() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(10))
        .enable_all()
        .build()
        .unwrap()
        .block_on(release_rounds());
}

async fn release_rounds() {
    let topic = create_topic(2).await;
    let sse = sse();
    // Warm up the shared look-up client and tokio's blocking pool.
    drop(sse.stream(StreamRequest::new([&topic])).await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = threads();

    for round in 0..3 {
        let mut streams = Vec::new();
        for _ in 0..4 {
            let mut stream = sse.stream(StreamRequest::new([&topic])).await.unwrap();
            stream.next().await.expect("the opening frame");
            streams.push(stream);
        }
        assert!(
            threads() >= baseline + 4,
            "each open stream runs its own consumer threads"
        );
        drop(streams);
        let dropped = Instant::now();
        let after = back_to(baseline).await;
        eprintln!(
            "round {round}: threads back to {after} in {:?}",
            dropped.elapsed()
        );
        assert!(
            after <= baseline,
            "round {round}: {after} threads remain after dropping, baseline {baseline}"
        );
    }
}
