//! A topic deleted and created again under running streams, against the real broker. The
//! new log is shorter than where the clients stood: a running stream sees its reader go back
//! to the new log's start and delivers the new log from there, announced by an id-only
//! frame; if the consumer instead reports the topic gone, the stream ends with an error
//! frame and the client's resume with its last id starts the new log from its start. Either
//! way every event of the new log arrives exactly once.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kafka_sse::{EventStream, JsonWithMeta, KafkaSse, StreamRequest};
use serde_json::Value;
use support::*;

fn service(fan_out: bool) -> KafkaSse {
    sse_builder()
        .deserializer(JsonWithMeta)
        .fan_out(fan_out)
        .heartbeat(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// What a client saw: the `n` of each event, the ids of id-only frames, and whether the
/// stream ended with an error frame.
#[derive(Debug, Default)]
struct Seen {
    numbers: Vec<i64>,
    announced: Vec<Value>,
    last_id: String,
    failed: bool,
}

/// Reads frames until `count` events arrived or the stream ended.
async fn read(stream: &mut EventStream, count: usize, seen: &mut Seen) {
    let target = seen.numbers.len() + count;
    while seen.numbers.len() < target {
        let Ok(Some(frame)) = tokio::time::timeout(WAIT, stream.next()).await else {
            return;
        };
        let text = String::from_utf8(frame.to_vec()).unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::to_owned)
        };
        if let Some(id) = field("id: ") {
            seen.last_id = id;
        }
        if text.starts_with("event: error") {
            seen.failed = true;
            return;
        }
        if text.starts_with("event: message") {
            let data: Value = serde_json::from_str(&field("data: ").unwrap()).unwrap();
            seen.numbers.push(data["n"].as_i64().unwrap());
        } else if text.starts_with("id: ") {
            seen.announced.push(id_json(&seen.last_id));
        }
    }
}

/// Produces `{"n":N}` for each `n` with a producer that cannot create the topic behind the
/// test's back.
async fn produce_numbers(topic: &str, range: std::ops::Range<i64>) {
    let producer = producer_without_auto_create();
    for n in range {
        produce_with(&producer, topic, 0, &format!(r#"{{"n":{n}}}"#), None).await;
    }
}

/// `clients` clients read a topic of six events from its start; the topic is recreated and
/// gets three events: every client ends with exactly those, in order.
async fn clients_follow_a_recreated_topic(sse: &KafkaSse, clients: usize) -> Vec<Seen> {
    let topic = create_topic(1).await;
    produce_numbers(&topic, 0..6).await;
    let from_start = format!(r#"[{{"topic":"{topic}","partition":0,"offset":0}}]"#);
    let mut streams = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..clients {
        let mut stream = sse
            .stream(StreamRequest::new([&topic]).last_event_id(&from_start))
            .await
            .unwrap();
        let mut client = Seen::default();
        read(&mut stream, 6, &mut client).await;
        assert_eq!(client.numbers, (0..6).collect::<Vec<_>>());
        client.announced.clear();
        streams.push(stream);
        seen.push(client);
    }

    recreate_topic(&topic, 1).await;
    produce_numbers(&topic, 100..103).await;
    for (stream, client) in streams.iter_mut().zip(&mut seen) {
        read(stream, 3, client).await;
        if client.failed {
            // As an EventSource does: resume with the last id.
            let mut resumed = sse
                .stream(StreamRequest::new([&topic]).last_event_id(&client.last_id))
                .await
                .unwrap();
            let missing = 9 - client.numbers.len();
            read(&mut resumed, missing, client).await;
        }
        assert_eq!(
            client.numbers,
            [0, 1, 2, 3, 4, 5, 100, 101, 102],
            "the new log exactly once: {client:?}"
        );
        let last = id_json(&client.last_id);
        assert_eq!(last[0]["offset"], 3, "the id is in the new log: {client:?}");
    }
    seen
}

#[tokio::test]
async fn a_client_on_its_own_consumer_moves_to_the_new_log() {
    let seen = clients_follow_a_recreated_topic(&service(false), 1).await;
    let client = &seen[0];
    assert!(
        client.failed || client.announced.iter().any(|id| id[0]["offset"] == 0),
        "the replacement shows in the stream: {client:?}"
    );
}

#[tokio::test]
async fn a_shared_stream_moves_every_client_to_the_new_log() {
    let seen = clients_follow_a_recreated_topic(&service(true), 4).await;
    for client in &seen {
        assert!(
            client.failed || client.announced.iter().any(|id| id[0]["offset"] == 0),
            "the replacement shows in the stream: {client:?}"
        );
    }
}
