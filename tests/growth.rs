//! Topics that gain partitions under running streams, against the real broker: a stream
//! that reads every partition of a topic takes the new ones from their start, on its own
//! consumer and on a shared stream alike, and a client that picked partitions keeps exactly
//! those.

mod support;

use std::time::Duration;

use kafka_sse::{EventIdCodec, JsonWithMeta, KafkaSse, OffsetIds, StreamRequest, TimestampIds};
use serde_json::Value;
use support::*;

/// How often the test services look for new partitions.
const CHECK: Duration = Duration::from_millis(200);

fn service(fan_out: bool, ids: impl EventIdCodec) -> KafkaSse {
    sse_builder()
        .deserializer(JsonWithMeta)
        .event_ids(ids)
        .fan_out(fan_out)
        .partition_check_interval(CHECK)
        .build()
        .unwrap()
}

/// The next `count` events as (partition, n), and the id of the last.
async fn events(reader: &mut Reader, count: usize) -> (Vec<(i64, i64)>, Value) {
    let (seen, id) = events_and_raw_id(reader, count).await;
    (seen, id_json(&id))
}

/// The next `count` events as (partition, n), and the id of the last as sent.
async fn events_and_raw_id(reader: &mut Reader, count: usize) -> (Vec<(i64, i64)>, String) {
    let mut seen = Vec::new();
    let mut id = String::new();
    for _ in 0..count {
        let event = reader.next_event().await;
        let data: Value = serde_json::from_str(&event.data).unwrap();
        seen.push((
            data["meta"]["partition"].as_i64().unwrap(),
            data["n"].as_i64().unwrap(),
        ));
        id = event.id;
    }
    (seen, id)
}

fn partitions_in(id: &Value) -> Vec<i64> {
    id.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["partition"].as_i64().unwrap())
        .collect()
}

/// Produces `{"n":N}` with a producer of its own: the shared test producer may hold the
/// topic's metadata from before it grew.
async fn produce_n(topic: &str, partition: i32, n: i64) {
    let producer = producer_without_auto_create();
    produce_with(
        &producer,
        topic,
        partition,
        &format!(r#"{{"n":{n}}}"#),
        None,
    )
    .await;
}

/// One live client: seq 1 before the growth, then seq 2 on the new partition and seq 3 on
/// the old one; it must get all three.
async fn live_client_reads_the_new_partition(sse: &KafkaSse, clients: usize) -> Vec<Value> {
    let topic = create_topic(1).await;
    let mut readers = Vec::new();
    for _ in 0..clients {
        readers.push(Reader::new(
            sse.stream(StreamRequest::new([&topic])).await.unwrap(),
        ));
    }
    produce_n(&topic, 0, 1).await;
    for reader in &mut readers {
        assert_eq!(events(reader, 1).await.0, [(0, 1)]);
    }
    add_partitions(&topic, 2).await;
    produce_n(&topic, 1, 2).await;
    produce_n(&topic, 0, 3).await;
    let mut ids = Vec::new();
    for reader in &mut readers {
        let (mut seen, id) = events(reader, 2).await;
        seen.sort();
        assert_eq!(seen, [(0, 3), (1, 2)], "every event, none twice");
        assert_eq!(partitions_in(&id), [0, 1], "the id names the new partition");
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn a_client_on_its_own_consumer_reads_partitions_added_to_its_topic() {
    live_client_reads_the_new_partition(&service(false, OffsetIds), 1).await;
}

#[tokio::test]
async fn a_shared_stream_takes_new_partitions_once_for_all_its_clients() {
    let ids = live_client_reads_the_new_partition(&service(true, OffsetIds), 5).await;
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]));
}

#[tokio::test]
async fn timestamp_ids_name_the_new_partition_too() {
    let ids = live_client_reads_the_new_partition(&service(false, TimestampIds), 1).await;
    let entries = ids[0].as_array().unwrap();
    assert!(
        entries.iter().all(|entry| entry["timestamp"].is_i64()),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_client_that_picked_a_partition_keeps_exactly_it() {
    let topic = create_topic(2).await;
    let sse = service(true, OffsetIds);
    produce_n(&topic, 0, 0).await;
    let picked = format!(r#"[{{"topic":"{topic}","partition":0,"offset":1}}]"#);
    let mut reader = Reader::new(
        sse.stream(StreamRequest::new([&topic]).last_event_id(picked))
            .await
            .unwrap(),
    );
    add_partitions(&topic, 3).await;
    produce_n(&topic, 1, 1).await;
    produce_n(&topic, 2, 1).await;
    // Long enough for several checks for new partitions.
    tokio::time::sleep(CHECK * 5).await;
    produce_n(&topic, 0, 2).await;
    let (seen, id) = events(&mut reader, 1).await;
    assert_eq!(seen, [(0, 2)], "nothing from the partition it did not pick");
    assert_eq!(partitions_in(&id), [0]);
}

/// A client reads seq 1 and leaves; the topic grows; seq 2 and 4 go to the new partition
/// and seq 3 to the old one. Resuming with its last id, which says the topic had one
/// partition (`"partitions":1` in JSON, `c1` in the compact form), it gets all three, and
/// with a timestamp id seq 1 again too (timestamp ids resume at the last event's time: at
/// least once, never lost). The id it ends with.
async fn a_pre_growth_id_resumes_with_the_new_partition(
    ids: impl EventIdCodec,
    expected: &[(i64, i64)],
) -> String {
    let topic = create_topic(1).await;
    let sse = service(true, ids);
    let mut reader = Reader::new(sse.stream(StreamRequest::new([&topic])).await.unwrap());
    produce_n(&topic, 0, 1).await;
    let (seen, last_id) = events_and_raw_id(&mut reader, 1).await;
    assert_eq!(seen, [(0, 1)]);
    assert!(
        last_id.contains(r#""partitions":1"#) || last_id.contains("~c1~"),
        "the id says the topic had one partition: {last_id}"
    );
    drop(reader);

    add_partitions(&topic, 2).await;
    produce_n(&topic, 1, 2).await;
    produce_n(&topic, 0, 3).await;
    produce_n(&topic, 1, 4).await;
    let mut resumed = Reader::new(
        sse.stream(StreamRequest::new([&topic]).last_event_id(&last_id))
            .await
            .unwrap(),
    );
    let (mut seen, id) = events_and_raw_id(&mut resumed, expected.len()).await;
    seen.sort();
    assert_eq!(seen, expected, "every event since, none twice");
    id
}

#[tokio::test]
async fn a_pre_growth_offset_id_resumes_with_the_new_partition() {
    let id =
        a_pre_growth_id_resumes_with_the_new_partition(OffsetIds, &[(0, 3), (1, 2), (1, 4)]).await;
    assert_eq!(partitions_in(&id_json(&id)), [0, 1]);
}

#[tokio::test]
async fn a_pre_growth_timestamp_id_resumes_with_the_new_partition() {
    let expected = [(0, 1), (0, 3), (1, 2), (1, 4)];
    let id = a_pre_growth_id_resumes_with_the_new_partition(TimestampIds, &expected).await;
    assert_eq!(partitions_in(&id_json(&id)), [0, 1]);
}

#[tokio::test]
async fn a_pre_growth_compact_id_resumes_with_the_new_partition() {
    let expected = [(0, 3), (1, 2), (1, 4)];
    let id = a_pre_growth_id_resumes_with_the_new_partition(OffsetIds::compact(), &expected).await;
    assert!(id.starts_with("k1~"), "{id}");
}
