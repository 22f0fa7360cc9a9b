//! The library against a real Apache Kafka broker: start positions, resuming, ids, formats,
//! skipped messages and heartbeats.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kafka_sse::{filter_fn, Format, JsonWithMeta, Message, StreamRequest, TimestampIds};
use serde_json::{json, Value};
use support::*;

/// 2020-01-01T00:00:00Z, a base for produced timestamps.
const BASE: i64 = 1_577_836_800_000;
const MINUTE: i64 = 60_000;

/// Groups event data by (topic, partition) using the `meta` added by `JsonWithMeta`.
fn by_partition(events: &[String]) -> BTreeMap<(String, i64), Vec<i64>> {
    let mut grouped: BTreeMap<(String, i64), Vec<i64>> = BTreeMap::new();
    for data in events {
        let event: Value = serde_json::from_str(data).unwrap();
        let meta = &event["meta"];
        grouped
            .entry((
                meta["topic"].as_str().unwrap().to_owned(),
                meta["partition"].as_i64().unwrap(),
            ))
            .or_default()
            .push(event["n"].as_i64().unwrap());
    }
    grouped
}

#[tokio::test]
async fn latest_default_delivers_only_events_produced_after_connecting() {
    let topic = create_topic(2).await;
    produce_numbers(&topic, 0, 0..3).await;
    let stream = sse().stream(StreamRequest::new([&topic])).await.unwrap();
    assert_eq!(
        id_json(stream.start_id()),
        json!([
            {"topic": topic, "partition": 0, "offset": 3},
            {"topic": topic, "partition": 1, "offset": 0}
        ])
    );
    let mut reader = Reader::new(stream);
    produce(&topic, 1, r#"{"n":99}"#, None).await;
    let event = reader.next_event().await;
    assert_eq!(event.event, "message");
    assert_eq!(event.data, r#"{"n":99}"#);
    assert_eq!(
        id_json(&event.id),
        json!([
            {"topic": topic, "partition": 0, "offset": 3},
            {"topic": topic, "partition": 1, "offset": 1}
        ])
    );
}

#[tokio::test]
async fn resumes_after_an_offset_id_with_exactly_the_next_messages_across_topics() {
    let a = create_topic(2).await;
    let b = create_topic(1).await;
    for (topic, partition) in [(&a, 0), (&a, 1), (&b, 0)] {
        produce_numbers(topic, partition, 0..5).await;
    }
    let sse = sse_builder().deserializer(JsonWithMeta).build().unwrap();
    let last_event_id = json!([
        {"topic": a, "partition": 0, "offset": 2},
        {"topic": a, "partition": 1, "offset": 4},
        {"topic": b, "partition": 0, "offset": 0}
    ]);
    let request = StreamRequest::new([&a, &b]).last_event_id(last_event_id.to_string());
    let mut reader = Reader::new(sse.stream(request.clone()).await.unwrap());
    let mut data = Vec::new();
    let mut last_id = String::new();
    for _ in 0..9 {
        let event = reader.next_event().await;
        data.push(event.data);
        last_id = event.id;
    }
    let grouped = by_partition(&data);
    assert_eq!(grouped[&(a.clone(), 0)], [2, 3, 4]);
    assert_eq!(grouped[&(a.clone(), 1)], [4]);
    assert_eq!(grouped[&(b.clone(), 0)], [0, 1, 2, 3, 4]);
    assert_eq!(
        id_json(&last_id),
        expected_id(vec![
            json!({"topic": a, "partition": 0, "offset": 5}),
            json!({"topic": a, "partition": 1, "offset": 5}),
            json!({"topic": b, "partition": 0, "offset": 5}),
        ])
    );
    drop(reader);

    produce(&a, 1, r#"{"n":5}"#, None).await;
    let mut resumed = Reader::new(sse.stream(request.last_event_id(last_id)).await.unwrap());
    let event = resumed.next_event().await;
    assert_eq!(
        by_partition(&[event.data]),
        BTreeMap::from([((a.clone(), 1), vec![5])])
    );
}

#[tokio::test]
async fn partitions_that_delivered_nothing_keep_a_concrete_resume_offset() {
    let topic = create_topic(2).await;
    produce_numbers(&topic, 0, 0..3).await;
    produce_numbers(&topic, 1, 0..3).await;
    let sse = sse();

    // A client that saw no event at all resumes from the id-only frame after `:ok`.
    let mut stream = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    assert_eq!(next_frame(&mut stream).await, ":ok\n\n");
    let start_frame = next_frame(&mut stream).await;
    let start_id = start_frame
        .strip_prefix("id: ")
        .unwrap()
        .trim_end()
        .to_owned();
    assert_eq!(start_id, stream.start_id());
    drop(stream);
    produce(&topic, 1, r#"{"n":3}"#, None).await;
    let request = StreamRequest::new([&topic]).last_event_id(start_id);
    let mut reader = Reader::new(sse.stream(request).await.unwrap());
    assert_eq!(reader.data(1).await, numbers(3..4));

    // A client whose events all came from partition 0 still holds partition 1's offset.
    produce(&topic, 0, r#"{"n":3}"#, None).await;
    let event = reader.next_event().await;
    assert_eq!(
        id_json(&event.id),
        json!([
            {"topic": topic, "partition": 0, "offset": 4},
            {"topic": topic, "partition": 1, "offset": 4}
        ])
    );
    drop(reader);
    produce_numbers(&topic, 1, 4..6).await;
    let request = StreamRequest::new([&topic]).last_event_id(event.id);
    let mut resumed = Reader::new(sse.stream(request).await.unwrap());
    assert_eq!(resumed.data(2).await, numbers(4..6));
}

#[tokio::test]
async fn since_accepts_milliseconds_and_iso_dates() {
    let topic = create_topic(1).await;
    for n in 0..10 {
        produce(
            &topic,
            0,
            &format!(r#"{{"n":{n}}}"#),
            Some(BASE + n * MINUTE),
        )
        .await;
    }
    let sse = sse();
    let first_after = |since: String| {
        let request = StreamRequest::new([&topic]).since(since);
        let sse = sse.clone();
        async move {
            let mut reader = Reader::new(sse.stream(request).await.unwrap());
            reader.next_event().await.data
        }
    };
    assert_eq!(
        first_after((BASE + 5 * MINUTE).to_string()).await,
        r#"{"n":5}"#
    );
    assert_eq!(
        first_after("2020-01-01T00:07:00Z".into()).await,
        r#"{"n":7}"#
    );
    assert_eq!(
        first_after("2020-01-01T01:03:30+01:00".into()).await,
        r#"{"n":4}"#
    );
    assert_eq!(
        first_after("2020-01-01T00:02:00".into()).await,
        r#"{"n":2}"#
    );
    assert_eq!(first_after("2020-01-01".into()).await, r#"{"n":0}"#);

    let future = StreamRequest::new([&topic]).since("2999-01-01");
    let stream = sse.stream(future).await.unwrap();
    assert_eq!(
        id_json(stream.start_id()),
        json!([{"topic": topic, "partition": 0, "offset": 10}])
    );
}

#[tokio::test]
async fn timestamp_ids_resume_without_loss() {
    let topic = create_topic(2).await;
    for n in 0..6 {
        produce(
            &topic,
            0,
            &format!(r#"{{"n":{n}}}"#),
            Some(BASE + n * MINUTE),
        )
        .await;
    }
    let sse = sse_builder().event_ids(TimestampIds).build().unwrap();
    let request = StreamRequest::new([&topic]).since(BASE.to_string());
    let mut reader = Reader::new(sse.stream(request.clone()).await.unwrap());
    assert_eq!(reader.data(2).await, numbers(0..2));
    let third = reader.next_event().await;
    assert_eq!(
        id_json(&third.id),
        json!([
            {"topic": topic, "partition": 0, "timestamp": BASE + 2 * MINUTE},
            {"topic": topic, "partition": 1, "timestamp": BASE}
        ])
    );
    drop(reader);

    produce(&topic, 1, r#"{"n":100}"#, Some(BASE + 30 * MINUTE)).await;
    let mut resumed = Reader::new(sse.stream(request.last_event_id(third.id)).await.unwrap());
    let mut data = resumed.data(5).await;
    data.sort();
    let mut expected = numbers(2..6);
    expected.push(r#"{"n":100}"#.into());
    expected.sort();
    assert_eq!(
        data, expected,
        "the last delivered message repeats and nothing is lost"
    );
}

#[tokio::test]
async fn mixed_last_event_id_entries_define_the_assignment_exactly() {
    let a = create_topic(3).await;
    let b = create_topic(1).await;
    for (topic, partition) in [(&a, 0), (&a, 1), (&a, 2), (&b, 0)] {
        for n in 0..4 {
            produce(
                topic,
                partition,
                &format!(r#"{{"n":{n}}}"#),
                Some(BASE + n * MINUTE),
            )
            .await;
        }
    }
    let last_event_id = json!([
        b,
        {"topic": a, "partition": 0, "timestamp": BASE + 2 * MINUTE},
        {"topic": a, "partition": 1, "offset": 1, "timestamp": BASE}
    ]);
    let request = StreamRequest::new([&a, &b])
        .last_event_id(last_event_id.to_string())
        .since((BASE + 3 * MINUTE).to_string());
    let sse = sse_builder().deserializer(JsonWithMeta).build().unwrap();
    let stream = sse.stream(request).await.unwrap();
    let start = id_json(stream.start_id());
    assert_eq!(
        start,
        expected_id(vec![
            json!({"topic": a, "partition": 0, "offset": 2}),
            json!({"topic": a, "partition": 1, "offset": 1}),
            json!({"topic": b, "partition": 0, "offset": 3}),
        ]),
        "partition 2 of {a} is not assigned; offset wins over timestamp; a topic entry uses since"
    );
    let mut reader = Reader::new(stream);
    let grouped = by_partition(&reader.data(6).await);
    assert_eq!(grouped[&(a.clone(), 0)], [2, 3]);
    assert_eq!(grouped[&(a.clone(), 1)], [1, 2, 3]);
    assert_eq!(grouped[&(b.clone(), 0)], [3]);
}

#[tokio::test]
async fn out_of_range_offsets_start_at_the_log_start_and_are_reported() {
    let topic = create_topic(2).await;
    produce_numbers(&topic, 0, 0..10).await;
    produce_numbers(&topic, 1, 0..10).await;
    delete_records_before(&topic, 0, 5).await;
    // Offset 50 is above partition 1's end: that id came from a log that is gone.
    let last_event_id = json!([
        {"topic": topic, "partition": 0, "offset": 2},
        {"topic": topic, "partition": 1, "offset": 50}
    ]);
    let request = StreamRequest::new([&topic]).last_event_id(last_event_id.to_string());
    let sse = sse_builder().deserializer(JsonWithMeta).build().unwrap();
    let stream = sse.stream(request).await.unwrap();
    assert_eq!(
        id_json(stream.start_id()),
        json!([
            {"topic": topic, "partition": 0, "offset": 5},
            {"topic": topic, "partition": 1, "offset": 0}
        ])
    );
    let events = Reader::new(stream).data(15).await;
    assert_eq!(
        by_partition(&events),
        BTreeMap::from([
            ((topic.clone(), 0), (5..10).collect()),
            ((topic.clone(), 1), (0..10).collect()),
        ])
    );
}

#[tokio::test]
async fn a_bad_message_in_the_middle_is_skipped_and_later_ones_arrive() {
    let topic = create_topic(1).await;
    produce(&topic, 0, r#"{"n":0}"#, None).await;
    produce(&topic, 0, "{this is not json", None).await;
    produce(&topic, 0, r#"{"n":2}"#, None).await;
    let last_event_id = json!([{"topic": topic, "partition": 0, "offset": 0}]);
    let request = StreamRequest::new([&topic]).last_event_id(last_event_id.to_string());
    let mut reader = Reader::new(sse().stream(request).await.unwrap());
    assert_eq!(reader.next_event().await.data, r#"{"n":0}"#);
    let event = reader.next_event().await;
    assert_eq!(event.data, r#"{"n":2}"#);
    assert_eq!(
        id_json(&event.id),
        json!([{"topic": topic, "partition": 0, "offset": 3}])
    );
}

#[tokio::test]
async fn ndjson_sends_one_json_line_per_event_with_its_coordinates() {
    let topic = create_topic(1).await;
    produce(&topic, 0, "{\"n\":0,\n \"pretty\": true}", None).await;
    produce(&topic, 0, r#"{"n":1}"#, None).await;
    let sse = sse_builder().deserializer(JsonWithMeta).build().unwrap();
    let request = StreamRequest::new([&topic])
        .since("0")
        .format(Format::Ndjson);
    let mut stream = sse.stream(request).await.unwrap();
    for n in 0..2 {
        let line = next_frame(&mut stream).await;
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["n"], n);
        assert_eq!(event["meta"]["topic"], topic.as_str());
        assert_eq!(event["meta"]["partition"], 0);
        assert_eq!(event["meta"]["offset"], n);
    }
}

#[tokio::test]
async fn idle_streams_send_heartbeats_and_filtered_streams_send_their_progress() {
    let topic = create_topic(1).await;
    let mut idle = sse().stream(StreamRequest::new([&topic])).await.unwrap();
    next_frame(&mut idle).await;
    next_frame(&mut idle).await;
    assert_eq!(next_frame(&mut idle).await, ":\n\n");

    let drop_all = StreamRequest::new([&topic]).filter(filter_fn(|_: &Message, _: &[u8]| false));
    let mut filtered = sse().stream(drop_all).await.unwrap();
    next_frame(&mut filtered).await;
    next_frame(&mut filtered).await;
    produce_numbers(&topic, 0, 0..3).await;
    let progress = next_frame(&mut filtered).await;
    assert_eq!(
        progress,
        format!(
            "id: [{{\"topic\":\"{topic}\",\"partition\":0,\"partitions\":1,\"offset\":3}}]\n\n"
        )
    );
}

#[tokio::test]
async fn many_requests_share_one_service_concurrently() {
    let topic = create_topic(3).await;
    let sse = sse();
    let mut readers = Vec::new();
    for _ in 0..8 {
        readers.push(Reader::new(
            sse.stream(StreamRequest::new([&topic])).await.unwrap(),
        ));
    }
    for partition in 0..3 {
        produce(&topic, partition, &format!(r#"{{"n":{partition}}}"#), None).await;
    }
    let all = Arc::new(numbers(0..3));
    let mut tasks = Vec::new();
    for mut reader in readers {
        let all = all.clone();
        tasks.push(tokio::spawn(async move {
            let mut data = reader.data(3).await;
            data.sort();
            assert_eq!(data, *all);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_ends_every_stream_after_a_whole_frame_and_refuses_new_ones() {
    let topic = create_topic(1).await;
    let sse = sse();
    let mut plain = sse.stream(StreamRequest::new([&topic])).await.unwrap();
    let drop_all = StreamRequest::new([&topic]).filter(filter_fn(|_: &Message, _: &[u8]| false));
    let mut filtered = sse.stream(drop_all).await.unwrap();
    for stream in [&mut plain, &mut filtered] {
        next_frame(stream).await;
        next_frame(stream).await;
    }
    produce_numbers(&topic, 0, 0..2).await;
    let event = next_frame(&mut plain).await;
    assert!(event.starts_with("event: message\n"), "{event}");
    // Let the filtered stream consume both messages without sending anything.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), filtered.next())
            .await
            .is_err()
    );

    sse.shutdown();
    // Whatever still comes is whole frames, then the end.
    let mut rest = Vec::new();
    while let Some(frame) = tokio::time::timeout(WAIT, plain.next()).await.unwrap() {
        assert!(frame.ends_with(b"\n\n"), "{frame:?}");
        rest.push(frame);
        assert!(rest.len() <= 2, "the stream ends");
    }
    assert_eq!(
        next_frame(&mut filtered).await,
        format!(
            "id: [{{\"topic\":\"{topic}\",\"partition\":0,\"partitions\":1,\"offset\":2}}]\n\n"
        ),
        "the filtered client learns what it skipped before the end"
    );
    assert!(tokio::time::timeout(WAIT, filtered.next())
        .await
        .unwrap()
        .is_none());

    let refused = sse.stream(StreamRequest::new([&topic])).await.unwrap_err();
    assert!(matches!(refused, kafka_sse::Error::ShuttingDown));
    assert_eq!(refused.status_code(), 503);
}
