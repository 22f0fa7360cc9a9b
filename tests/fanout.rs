//! The shared live-tail fan-out against the real broker: clients on the shared path get the
//! same events and ids as clients with their own consumer, including across the switch from
//! history to the live tail and the move of a lagging client off it.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kafka_sse::{Bytes, EventStream, JsonWithMeta, KafkaSse, StreamRequest};
use serde_json::{json, Value};
use support::*;

/// One event as a client saw it: the frame's bytes (to tell shared frames by their
/// address), and its partition, offset and id.
struct Seen {
    frame: Bytes,
    partition: i64,
    offset: i64,
    id: Value,
}

fn fan_out_service() -> KafkaSse {
    sse_builder().deserializer(JsonWithMeta).build().unwrap()
}

/// Reads frames until `count` events were seen.
async fn read_events(stream: &mut EventStream, count: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let frame = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("a frame within the wait")
            .expect("the stream goes on");
        let text = std::str::from_utf8(&frame).unwrap();
        if !text.starts_with("event: message\n") {
            continue;
        }
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap()
                .to_owned()
        };
        let data: Value = serde_json::from_str(&field("data: ")).unwrap();
        seen.push(Seen {
            partition: data["meta"]["partition"].as_i64().unwrap(),
            offset: data["meta"]["offset"].as_i64().unwrap(),
            id: id_json(&field("id: ")),
            frame,
        });
    }
    seen
}

/// Checks every event's id against the client's own count of what it received, and that
/// each partition's offsets run from `first` without gap or duplicate.
fn assert_exact(seen: &[Seen], topic: &str, first: &BTreeMap<i64, i64>) {
    let mut next = first.clone();
    for event in seen {
        let expected = next.get_mut(&event.partition).unwrap();
        assert_eq!(
            event.offset, *expected,
            "partition {} in order",
            event.partition
        );
        *expected += 1;
        let id: Vec<Value> = next
            .iter()
            .map(|(&partition, &offset)| json!({"topic": topic, "partition": partition, "offset": offset}))
            .collect();
        assert_eq!(event.id, Value::Array(id));
    }
}

fn shares_frames(a: &[Seen], b: &[Seen]) -> bool {
    a.iter()
        .any(|x| b.iter().any(|y| x.frame.as_ptr() == y.frame.as_ptr()))
}

async fn produce_spread(topic: &str, partitions: i32, count: u32, pause: Duration) {
    for n in 0..count {
        produce(
            topic,
            n as i32 % partitions,
            &format!(r#"{{"n":{n}}}"#),
            None,
        )
        .await;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn shared_and_own_consumer_clients_see_the_same_events_and_ids() {
    let topic = create_topic(3).await;
    produce_spread(&topic, 3, 6, Duration::ZERO).await;
    let shared = fan_out_service();
    let own = sse_builder()
        .deserializer(JsonWithMeta)
        .fan_out(false)
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(shared.stream(StreamRequest::new([&topic])).await.unwrap());
    }
    let mut alone = own.stream(StreamRequest::new([&topic])).await.unwrap();
    for client in &clients {
        assert_eq!(client.start_id(), alone.start_id());
    }
    produce_spread(&topic, 3, 30, Duration::ZERO).await;

    let start = BTreeMap::from([(0, 2), (1, 2), (2, 2)]);
    let alone_seen = read_events(&mut alone, 30).await;
    assert_exact(&alone_seen, &topic, &start);
    let mut all_seen = Vec::new();
    for client in &mut clients {
        let seen = read_events(client, 30).await;
        assert_exact(&seen, &topic, &start);
        assert_eq!(seen.last().unwrap().id, alone_seen.last().unwrap().id);
        all_seen.push(seen);
    }
    assert!(
        all_seen[1..]
            .iter()
            .all(|seen| shares_frames(&all_seen[0], seen)),
        "live clients share one encoding of each frame"
    );
    assert!(!shares_frames(&all_seen[0], &alone_seen));
}

#[tokio::test]
async fn a_client_resuming_from_history_joins_the_live_tail_without_gap_or_duplicate() {
    let topic = create_topic(2).await;
    produce_spread(&topic, 2, 40, Duration::ZERO).await;
    let sse = fan_out_service();
    let mut live = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let from_start = json!([
        {"topic": topic, "partition": 0, "offset": 0},
        {"topic": topic, "partition": 1, "offset": 0}
    ]);
    let mut resumed = sse
        .stream(StreamRequest::new([&topic]).last_event_id(from_start.to_string()))
        .await
        .unwrap();
    // Keep producing for a few seconds: the resumed client catches up and switches while
    // events flow.
    let producer = tokio::spawn({
        let topic = topic.clone();
        async move { produce_spread(&topic, 2, 60, Duration::from_millis(50)).await }
    });
    let resumed_seen = read_events(&mut resumed, 100).await;
    let live_seen = read_events(&mut live, 60).await;
    producer.await.unwrap();

    assert_exact(&resumed_seen, &topic, &BTreeMap::from([(0, 0), (1, 0)]));
    assert_exact(&live_seen, &topic, &BTreeMap::from([(0, 20), (1, 20)]));
    assert!(
        shares_frames(&resumed_seen[40..], &live_seen),
        "the resumed client ends on the shared stream"
    );
}

#[tokio::test]
async fn a_lagging_client_moves_to_its_own_consumer_loses_nothing_and_comes_back() {
    let topic = create_topic(1).await;
    let sse = sse_builder()
        .deserializer(JsonWithMeta)
        .fan_out_queue(4)
        .build()
        .unwrap();
    let mut fast = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let mut slow = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    produce_spread(&topic, 1, 40, Duration::ZERO).await;
    let fast_seen = read_events(&mut fast, 40).await;

    // The slow client was 40 events behind a queue of 4: it reads on its own now.
    let slow_seen = read_events(&mut slow, 40).await;
    assert_exact(&fast_seen, &topic, &BTreeMap::from([(0, 0)]));
    assert_exact(&slow_seen, &topic, &BTreeMap::from([(0, 0)]));
    assert!(!shares_frames(&fast_seen, &slow_seen[10..]));

    // Once it has caught up it rejoins the shared stream.
    let producer = tokio::spawn({
        let topic = topic.clone();
        async move { produce_spread(&topic, 1, 50, Duration::from_millis(100)).await }
    });
    let (fast_later, slow_later) =
        tokio::join!(read_events(&mut fast, 50), read_events(&mut slow, 50));
    producer.await.unwrap();
    assert_exact(&slow_later, &topic, &BTreeMap::from([(0, 40)]));
    assert!(
        shares_frames(&fast_later, &slow_later),
        "the caught-up client is back on the shared stream"
    );
}

#[tokio::test]
async fn a_caught_up_history_client_starts_the_shared_stream_for_later_clients() {
    let topic = create_topic(1).await;
    produce_spread(&topic, 1, 5, Duration::ZERO).await;
    let sse = fan_out_service();
    let from_start = json!([{"topic": topic, "partition": 0, "offset": 0}]);
    let mut resumed = sse
        .stream(StreamRequest::new([&topic]).last_event_id(from_start.to_string()))
        .await
        .unwrap();
    let history = read_events(&mut resumed, 5).await;
    assert_exact(&history, &topic, &BTreeMap::from([(0, 0)]));
    // Stay connected (heartbeats come every 2 s) while the idle client looks for a shared
    // stream, finds none, and starts one with its own consumer.
    for _ in 0..2 {
        assert_eq!(next_frame(&mut resumed).await, ":\n\n");
    }

    let mut live = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    assert_eq!(
        id_json(live.start_id()),
        json!([{"topic": topic, "partition": 0, "offset": 5}])
    );
    produce_spread(&topic, 1, 5, Duration::ZERO).await;
    let resumed_later = read_events(&mut resumed, 5).await;
    let live_seen = read_events(&mut live, 5).await;
    assert_exact(&resumed_later, &topic, &BTreeMap::from([(0, 5)]));
    assert!(shares_frames(&resumed_later, &live_seen));
}

#[tokio::test]
async fn over_the_consumer_budget_requests_get_503_and_laggards_are_closed_with_their_id() {
    let topic = create_topic(1).await;
    // Three events from before the shared stream starts: a client resuming before them is
    // further behind than the shared stream's recent events reach, and needs a consumer.
    produce_spread(&topic, 1, 3, Duration::ZERO).await;
    // One consumer in all: the shared live stream's.
    let sse = sse_builder()
        .deserializer(JsonWithMeta)
        .fan_out_queue(16)
        .max_consumers(1)
        .build()
        .unwrap();
    let mut fast = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let mut slow = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let from_start = json!([{"topic": topic, "partition": 0, "offset": 0}]);
    let history = sse
        .stream(StreamRequest::new([&topic]).last_event_id(from_start.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(history, kafka_sse::Error::Busy), "{history}");
    assert_eq!(history.status_code(), 503);

    // The fast client reads while the events are produced; the slow one does not.
    let (fast_seen, ()) = tokio::join!(
        read_events(&mut fast, 60),
        produce_spread(&topic, 1, 60, Duration::from_millis(5))
    );
    assert_exact(&fast_seen, &topic, &BTreeMap::from([(0, 3)]));

    // The slow client fell 60 events behind a queue of 16 and there is no consumer to spare:
    // it ends with an id-only frame holding exactly what it received.
    let mut frames = Vec::new();
    while let Some(frame) = tokio::time::timeout(WAIT, slow.next()).await.unwrap() {
        frames.push(String::from_utf8(frame.to_vec()).unwrap());
        assert!(frames.len() < 100, "the slow stream ends");
    }
    let received = frames
        .iter()
        .filter(|f| f.starts_with("event: message"))
        .count();
    let last = frames.last().unwrap();
    let id = last
        .strip_prefix("id: ")
        .expect("an id-only frame last")
        .trim_end();
    assert_eq!(
        id_json(id),
        json!([{"topic": topic, "partition": 0, "offset": 3 + received}])
    );

    // Resuming from it elsewhere delivers the rest, exactly.
    let mut resumed = fan_out_service()
        .stream(StreamRequest::new([&topic]).last_event_id(id))
        .await
        .unwrap();
    let rest = read_events(&mut resumed, 60 - received).await;
    assert_exact(&rest, &topic, &BTreeMap::from([(0, 3 + received as i64)]));
}

#[tokio::test]
async fn clients_resuming_together_share_one_consumer_and_get_every_event_once() {
    let topic = create_topic(1).await;
    produce_spread(&topic, 1, 5, Duration::ZERO).await;
    // One consumer in all: fifty clients resuming from the same id share it.
    let sse = sse_builder()
        .deserializer(JsonWithMeta)
        .max_consumers(1)
        .build()
        .unwrap();
    let from_start = json!([{"topic": topic, "partition": 0, "offset": 0}]).to_string();
    let opened = futures::future::join_all(
        (0..50).map(|_| sse.stream(StreamRequest::new([&topic]).last_event_id(&from_start))),
    )
    .await;
    let mut crowd: Vec<_> = opened
        .into_iter()
        .map(|stream| stream.expect("no client needs a consumer of its own"))
        .collect();
    for client in &mut crowd {
        let history = read_events(client, 5).await;
        assert_exact(&history, &topic, &BTreeMap::from([(0, 0)]));
    }
    produce_spread(&topic, 1, 5, Duration::ZERO).await;
    for client in &mut crowd {
        let later = read_events(client, 5).await;
        assert_exact(&later, &topic, &BTreeMap::from([(0, 5)]));
    }

    // A client resuming a little behind the shared stream replays its recent events.
    let from_three = json!([{"topic": topic, "partition": 0, "offset": 3}]).to_string();
    let mut late = sse
        .stream(StreamRequest::new([&topic]).last_event_id(&from_three))
        .await
        .expect("joins without a consumer");
    let replayed = read_events(&mut late, 7).await;
    assert_exact(&replayed, &topic, &BTreeMap::from([(0, 3)]));
}
