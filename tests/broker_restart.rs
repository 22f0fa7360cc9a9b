//! The real broker stops and starts again under running streams. Alone in its own test
//! binary, since it takes the shared test broker away.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use kafka_sse::{Error, EventStream, JsonWithMeta, StreamRequest};
use serde_json::{json, Value};
use support::*;

/// Reads events, or the frames of an idle stream, until `count` events arrived or the
/// stream ended (after an error frame); returns (partition, offset) of each event, the last
/// id, and the number of heartbeats seen.
async fn collect(stream: EventStream, count: usize) -> (Vec<(i64, i64)>, Option<String>) {
    let mut events = stream.map(Ok::<_, std::convert::Infallible>).eventsource();
    let mut seen = Vec::new();
    let mut last_id = None;
    while seen.len() < count {
        let Ok(Some(event)) = tokio::time::timeout(WAIT * 2, events.next()).await else {
            break;
        };
        let event = event.unwrap();
        last_id = Some(event.id.clone());
        if event.event == "error" {
            break;
        }
        let data: Value = serde_json::from_str(&event.data).unwrap();
        seen.push((
            data["meta"]["partition"].as_i64().unwrap(),
            data["meta"]["offset"].as_i64().unwrap(),
        ));
    }
    (seen, last_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_a_broker_restart_and_requests_fail_fast_meanwhile() {
    let topic = create_topic(2).await;
    let sse = sse_builder()
        .deserializer(JsonWithMeta)
        .heartbeat(Duration::from_millis(500))
        .lookup_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut live = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let from_start = json!([
        {"topic": topic, "partition": 0, "offset": 0},
        {"topic": topic, "partition": 1, "offset": 0}
    ]);
    let own = sse_builder()
        .deserializer(JsonWithMeta)
        .fan_out(false)
        .build()
        .unwrap();
    let history = own
        .stream(StreamRequest::new([&topic]).last_event_id(from_start.to_string()))
        .await
        .unwrap();
    for n in 0..10 {
        produce(&topic, n % 2, &format!(r#"{{"n":{n}}}"#), None).await;
    }
    next_frame(&mut live).await;
    next_frame(&mut live).await;

    broker("stop");
    // Idle clients keep hearing from the server while Kafka is away.
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let frame = next_frame(&mut live).await;
        if frame == ":\n\n" {
            heartbeats += 1;
        }
    }
    // New requests that need Kafka get 503 long before the 60 s look-up timeout.
    let needs_kafka = StreamRequest::new([&topic]).since("0");
    let refused = tokio::time::timeout(WAIT, sse.stream(needs_kafka.clone())).await;
    let error = refused.expect("a fast answer").unwrap_err();
    assert!(matches!(error, Error::KafkaUnavailable { .. }), "{error}");
    assert_eq!(error.status_code(), 503);
    let health = tokio::time::timeout(WAIT, sse.check_kafka()).await;
    assert!(health.expect("a fast health answer").is_err());

    broker("start");
    for n in 10..20 {
        produce(&topic, n % 2, &format!(r#"{{"n":{n}}}"#), None).await;
    }

    // Every event arrives exactly once and in order, on the stream or after resuming.
    let expected: BTreeMap<i64, Vec<i64>> =
        BTreeMap::from([(0, (0..10).collect()), (1, (0..10).collect())]);
    for (name, stream, first) in [("live", live, 5), ("history", history, 0)] {
        let want = 20 - first * 2;
        let (mut seen, last_id) = collect(stream, want).await;
        if seen.len() < want {
            let resumed = sse
                .stream(
                    StreamRequest::new([&topic])
                        .last_event_id(last_id.expect("an id to resume from")),
                )
                .await
                .unwrap();
            seen.extend(collect(resumed, want - seen.len()).await.0);
        }
        let mut by_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (partition, offset) in seen {
            by_partition.entry(partition).or_default().push(offset);
        }
        let expected: BTreeMap<i64, Vec<i64>> = expected
            .iter()
            .map(|(&p, offsets)| (p, offsets[first..].to_vec()))
            .collect();
        assert_eq!(by_partition, expected, "{name} client");
    }
    // Requests are served again once Kafka answers.
    let mut served = None;
    for _ in 0..50 {
        match sse.stream(needs_kafka.clone()).await {
            Ok(stream) => {
                served = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(
        served.is_some(),
        "requests are served again after the broker is back"
    );
}
