//! The example services as their users meet them: each test starts an example binary as a
//! process on a free loopback port, against the real broker (or its embedded demo cluster),
//! and talks to it over HTTP.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::service::{client, clients_python, Launch, Problem};
use support::{create_topic, id_json, produce, WAIT};

/// Produces each event, as JSON, to partition 0 of `topic`, in order.
async fn produce_all(topic: &str, events: &[Value]) {
    for event in events {
        produce(topic, 0, &event.to_string(), None).await;
    }
}

/// A recent change numbered `n`.
fn change(n: u32, wiki: &str, bot: bool, domain: &str) -> Value {
    json!({"n": n, "wiki": wiki, "bot": bot, "meta": {"domain": domain}})
}

fn numbers(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["n"].as_u64().unwrap()).collect()
}

/// Writes a `--config` file and returns its path.
fn config_file(toml: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("streams-{:08x}.toml", rand::random::<u32>()));
    std::fs::write(&path, toml).expect("the config file is written");
    path.display().to_string()
}

#[tokio::test]
async fn composite_streams_deliver_every_topic_with_sse_headers_and_metadata() {
    let (a, b) = (create_topic(2).await, create_topic(1).await);
    let service = Launch::axum()
        .args(["--stream", &format!("a={a}"), "--stream", &format!("b={b}")])
        .start();

    let mut stream = service.open("/v2/stream/a,b").await;
    assert_eq!(
        stream.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(stream.headers["cache-control"], "no-cache, no-transform");
    let start = id_json(stream.headers["kafka-sse-start-id"].to_str().unwrap());
    assert_eq!(start.as_array().unwrap().len(), 3, "{start}");

    produce(&a, 1, r#"{"n":0}"#, None).await;
    produce(&b, 0, r#"{"n":1}"#, None).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = stream.next_event().await;
        assert_eq!(event.event, "message");
        let id = id_json(&event.id);
        assert_eq!(
            id.as_array().unwrap().len(),
            3,
            "every id names every partition"
        );
        let data: Value = serde_json::from_str(&event.data).unwrap();
        seen.push((
            data["n"].as_u64().unwrap(),
            data["meta"]["topic"].as_str().unwrap().to_owned(),
            data["meta"]["partition"].as_i64().unwrap(),
        ));
    }
    seen.sort();
    assert_eq!(seen, [(0, a.clone(), 1), (1, b.clone(), 0)]);
}

#[tokio::test]
async fn resumes_from_last_event_id_header_or_query_and_serves_ndjson() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .start();
    let mut stream = service.open("/v2/stream/rc").await;
    produce_all(&topic, &[json!({"n": 0}), json!({"n": 1})]).await;
    stream.next_event().await;
    let resume_id = stream.next_event().await.id;
    drop(stream);

    produce_all(&topic, &[json!({"n": 2}), json!({"n": 3})]).await;
    let mut by_header = service
        .open_with("/v2/stream/rc", &[("last-event-id", &resume_id)])
        .await;
    assert_eq!(numbers(&[by_header.next_json().await]), [2]);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("last-event-id", &resume_id)
        .finish();
    let mut by_query = service.open(&format!("/v2/stream/rc?{query}")).await;
    let resumed = [by_query.next_json().await, by_query.next_json().await];
    assert_eq!(numbers(&resumed), [2, 3]);

    let response = service
        .get_with(
            &format!("/v2/stream/rc?{query}"),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let mut body = Box::pin(response.bytes_stream());
    let mut text = String::new();
    let complete_lines = |text: &str| {
        let lines = text.split_inclusive('\n');
        lines
            .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
            .count()
    };
    for _ in 0..100 {
        if complete_lines(&text) >= 2 {
            break;
        }
        let chunk = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut body))
            .await
            .expect("NDJSON lines within the wait")
            .expect("the stream goes on")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| !line.is_empty())
        .take(2)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(numbers(&lines), [2, 3]);
    assert_eq!(lines[0]["meta"]["offset"], 2);
}

#[tokio::test]
async fn filters_select_events_with_or_within_a_field_and_and_across_fields() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .start();
    // Every filter lets the last event through, so each reader knows when it has all.
    let cases: [(&str, &[u64]); 6] = [
        ("filter=wiki=enwiki", &[0, 3, 4, 99]),
        ("filter=wiki=enwiki&filter=wiki=dewiki", &[0, 1, 3, 4, 99]),
        ("filter=wiki!=dewiki", &[0, 2, 3, 4, 99]),
        ("filter=wiki=enwiki&filter=bot=false", &[0, 4, 99]),
        (
            "filter=wiki=enwiki&filter=wiki=frwiki&filter=bot=false",
            &[0, 2, 4, 99],
        ),
        ("filter=meta.domain!=canary&filter=bot!=true", &[0, 2, 99]),
    ];
    let mut streams = Vec::new();
    for (query, _) in &cases {
        streams.push(service.open(&format!("/v2/stream/rc?{query}")).await);
    }
    produce_all(
        &topic,
        &[
            change(0, "enwiki", false, "en.wikipedia.org"),
            change(1, "dewiki", true, "de.wikipedia.org"),
            change(2, "frwiki", false, "fr.wikipedia.org"),
            change(3, "enwiki", true, "en.wikipedia.org"),
            change(4, "enwiki", false, "canary"),
            change(99, "enwiki", false, "en.wikipedia.org"),
        ],
    )
    .await;
    for ((query, expected), mut stream) in cases.into_iter().zip(streams) {
        let received = stream.json_until("n", &json!(99)).await;
        assert_eq!(numbers(&received), expected, "{query}");
    }
}

#[tokio::test]
async fn malformed_filters_and_unknown_streams_are_problems() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .start();
    for query in ["filter=wiki", "filter=meta..domain=x", "filter==x"] {
        let problem = service.problem(&format!("/v2/stream/rc?{query}")).await;
        assert_eq!(problem.status, 400, "{query}");
        assert_eq!(problem.body["type"], "urn:kafka-sse:problem:invalid-filter");
    }
    for path in ["/v2/stream/nope", "/v2/stream/rc,nope", "/v2/stream/rc,"] {
        let problem = service.problem(path).await;
        assert_eq!(problem.status, 404, "{path}");
        assert_eq!(problem.body["type"], "urn:kafka-sse:problem:unknown-stream");
    }
    assert!(!service
        .problem("/v2/stream/nope")
        .await
        .detail()
        .contains(&topic));
    assert_eq!(service.problem("/elsewhere").await.status, 404);
    let seventeen = vec!["rc"; 17].join(",");
    let too_many = service.problem(&format!("/v2/stream/{seventeen}")).await;
    assert_eq!(too_many.status, 400);
    assert_eq!(
        too_many.body["type"],
        "urn:kafka-sse:problem:too-many-streams-requested"
    );
    let sixteen = vec!["rc"; 16].join(",");
    assert_eq!(
        service.get(&format!("/v2/stream/{sixteen}")).await.status(),
        200
    );
    let bad_id = service
        .problem("/v2/stream/rc?last-event-id=not-json")
        .await;
    assert_eq!(bad_id.status, 400);
    let post = client()
        .post(service.url("/v2/streams"))
        .send()
        .await
        .unwrap();
    assert_eq!(Problem::read(post).await.status, 405);
}

#[tokio::test]
async fn drop_canary_streams_hide_canaries_of_their_own_topics_only() {
    let (topic, other) = (create_topic(1).await, create_topic(1).await);
    let config = config_file(&format!(
        r#"
        [[stream]]
        name = "clean"
        topics = ["{topic}"]
        description = "without canaries"
        drop_canary = true

        [[stream]]
        name = "raw"
        topics = ["{topic}"]

        [[stream]]
        name = "other"
        topics = ["{other}"]
        "#
    ));
    let service = Launch::axum().args(["--config", &config]).start();
    let mut clean = service.open("/v2/stream/clean").await;
    let mut raw = service.open("/v2/stream/raw").await;
    let mut clean_humans = service.open("/v2/stream/clean?filter=bot=false").await;
    let mut composite = service.open("/v2/stream/clean,other").await;

    produce_all(
        &topic,
        &[
            change(0, "enwiki", false, "en.wikipedia.org"),
            change(1, "enwiki", false, "canary"),
            change(2, "enwiki", true, "en.wikipedia.org"),
            change(99, "enwiki", false, "en.wikipedia.org"),
        ],
    )
    .await;
    produce_all(
        &other,
        &[
            change(10, "dewiki", false, "canary"),
            change(11, "dewiki", false, "de.wikipedia.org"),
        ],
    )
    .await;

    let until_end = json!(99);
    assert_eq!(
        numbers(&clean.json_until("n", &until_end).await),
        [0, 2, 99]
    );
    assert_eq!(
        numbers(&raw.json_until("n", &until_end).await),
        [0, 1, 2, 99]
    );
    assert_eq!(
        numbers(&clean_humans.json_until("n", &until_end).await),
        [0, 99]
    );
    let mut from_composite = Vec::new();
    for _ in 0..5 {
        from_composite.push(composite.next_json().await);
    }
    let mut received = numbers(&from_composite);
    received.sort();
    assert_eq!(received, [0, 2, 10, 11, 99]);
}

#[tokio::test]
async fn streams_route_lists_configured_streams_with_topics_and_descriptions() {
    let (topic, other) = (create_topic(1).await, create_topic(1).await);
    let config = config_file(&format!(
        r#"
        [[stream]]
        name = "recentchange"
        topics = ["{topic}"]
        description = "Every change"
        drop_canary = true
        "#
    ));
    let service = Launch::axum()
        .args([
            "--config",
            &config,
            "--stream",
            &format!("more={topic},{other}"),
        ])
        .start();
    let response = service.get("/v2/streams").await;
    assert_eq!(response.status(), 200);
    let streams: Value = response.json().await.unwrap();
    assert_eq!(
        streams,
        json!([
            {"name": "recentchange", "aliases": [], "topics": [topic],
             "description": "Every change", "drop_canary": true},
            {"name": "more", "aliases": [], "topics": [topic, other], "description": "",
             "drop_canary": false},
        ])
    );
    let page = service.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("EventSource"));
}

#[tokio::test]
async fn cors_lets_any_origin_read_streams_and_send_last_event_id() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .start();
    let preflight = client()
        .request(reqwest::Method::OPTIONS, service.url("/v2/stream/rc"))
        .header("origin", "https://example.org")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("last-event-id"));
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));

    let stream = service
        .open_with("/v2/stream/rc", &[("origin", "https://example.org")])
        .await;
    assert_eq!(stream.headers["access-control-allow-origin"], "*");
    assert!(stream.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("kafka-sse-start-id"));
    let problem = Problem::read(
        service
            .get_with("/v2/stream/nope", &[("origin", "https://example.org")])
            .await,
    )
    .await;
    assert_eq!(problem.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn per_ip_limit_answers_429_with_retry_after_until_a_stream_closes() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .args(["--max-connections-per-ip", "2", "--heartbeat", "1s"])
        .start();
    let first = service.open("/v2/stream/rc").await;
    let second = service.open("/v2/stream/rc").await;
    let refused = service.problem("/v2/stream/rc").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.body["type"],
        "urn:kafka-sse:problem:too-many-streams"
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    // Errors before the stream opens hold no slot.
    assert_eq!(service.problem("/v2/stream/nope").await.status, 404);

    // Closing a stream frees its slot once the server sees the disconnect.
    drop(first);
    let mut third = None;
    for _ in 0..100 {
        let response = service.get("/v2/stream/rc").await;
        if response.status() == 200 {
            third = Some(response);
            break;
        }
        assert_eq!(response.status(), 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let third = third.expect("a slot frees within ten seconds of a disconnect");
    assert_eq!(service.problem("/v2/stream/rc").await.status, 429);
    drop((second, third));
}

#[tokio::test]
async fn healthz_answers_200_when_kafka_answers_and_503_when_it_does_not() {
    let topic = create_topic(1).await;
    let healthy = Launch::axum()
        .args(["--stream", &format!("rc={topic}")])
        .start();
    let response = healthy.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = Launch::axum()
        .brokers(&closed.to_string())
        .args(["--stream", "rc=anything"])
        .start();
    let problem = unreachable.problem("/healthz").await;
    assert_eq!(problem.status, 503);
    assert_eq!(
        problem.body["type"],
        "urn:kafka-sse:problem:kafka-unavailable"
    );
}

#[tokio::test]
async fn metrics_render_prometheus_text_with_stream_counters() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("metered={topic}")])
        .start();
    let mut stream = service.open("/v2/stream/metered").await;
    produce(&topic, 0, r#"{"n":0}"#, None).await;
    stream.next_event().await;

    let response = service.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"kafka_sse_events_sent_total{stream="metered"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"kafka_sse_connected_clients{stream="metered"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn timestamp_ids_and_max_connection_duration_flags_apply() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("rc={topic}"), "--ids", "timestamp"])
        .args(["--max-connection-duration", "3s", "--heartbeat", "1s"])
        .start();
    let mut stream = service.open("/v2/stream/rc").await;
    produce(&topic, 0, r#"{"n":0}"#, Some(1_795_348_800_000)).await;
    let event = stream.next_event().await;
    assert_eq!(
        id_json(&event.id),
        json!([{"topic": topic, "partition": 0, "timestamp": 1_795_348_800_000_i64}])
    );
    let mut ended = false;
    for _ in 0..100 {
        if stream.next_or_end().await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream ends after its maximum duration");
}

#[tokio::test]
async fn hyper_service_mounts_named_streams_with_cors_and_problems() {
    let topic = create_topic(1).await;
    let service = Launch::hyper()
        .args(["--stream", &format!("rc={topic}")])
        .args(["--kafka", "client.id=hyper-service-test"])
        .start();
    let mut stream = service.open("/v2/stream/rc").await;
    assert_eq!(stream.headers["access-control-allow-origin"], "*");
    assert!(stream.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("kafka-sse-start-id"));
    assert!(stream.headers.contains_key("kafka-sse-start-id"));
    produce_all(
        &topic,
        &[
            change(0, "dewiki", false, "de.wikipedia.org"),
            change(1, "enwiki", false, "en.wikipedia.org"),
        ],
    )
    .await;
    let event = stream.next_event().await;
    assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap()["n"], 0);
    assert_eq!(
        id_json(&event.id),
        json!([{"topic": topic, "partition": 0, "offset": 1}])
    );
    assert_eq!(stream.next_json().await["n"], 1);

    for path in ["/v2/stream/nope", "/v2/streams", "/"] {
        let missing = service.problem(path).await;
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(missing.headers["access-control-allow-origin"], "*");
    }
    let invalid = Problem::read(
        service
            .get_with("/v2/stream/rc", &[("last-event-id", "not json")])
            .await,
    )
    .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.body["type"],
        "urn:kafka-sse:problem:invalid-last-event-id"
    );
    assert_eq!(invalid.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn demo_cluster_streams_generated_recent_changes_and_refuses_time_lookups() {
    let service = Launch::axum().demo().start();
    let streams: Value = service.get("/v2/streams").await.json().await.unwrap();
    let names: Vec<&str> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["recentchange", "page-create"]);

    let mut stream = service.open("/v2/stream/recentchange").await;
    for _ in 0..5 {
        let event = stream.next_json().await;
        for field in ["wiki", "server_name", "title", "user", "type", "timestamp"] {
            assert!(!event[field].is_null(), "{field} in {event}");
        }
        assert!(
            event["bot"].is_boolean() && event["namespace"].is_i64(),
            "{event}"
        );
        assert!(event["meta"]["dt"].is_string() && event["meta"]["id"].is_string());
        assert_ne!(event["meta"]["domain"], "canary");
        assert!(event["meta"]["topic"]
            .as_str()
            .unwrap()
            .ends_with(".mediawiki.recentchange"));
    }

    let since = service
        .problem("/v2/stream/recentchange?since=2026-01-01")
        .await;
    assert_eq!(since.status, 501);
    assert!(since.detail().contains("timestamp"), "{}", since.detail());
    let by_time = Problem::read(
        service
            .get_with(
                "/v2/stream/recentchange",
                &[(
                    "last-event-id",
                    r#"[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1}]"#,
                )],
            )
            .await,
    )
    .await;
    assert_eq!(by_time.status, 501);
}

#[tokio::test]
async fn invalid_command_lines_exit_with_a_message() {
    let cases: [(Launch, &str); 9] = [
        (
            Launch::axum().arg("--stream").arg("no-equals"),
            "NAME[|ALIAS...]=TOPIC",
        ),
        (Launch::axum(), "no streams"),
        (
            Launch::axum().args(["--stream", "a=t", "--stream", "a=u"]),
            "defined twice",
        ),
        (
            Launch::axum().args(["--stream", "a|b=t", "--stream", "b=u"]),
            "defined twice",
        ),
        (
            Launch::axum().args(["--stream", "a|b=t", "--stream", "c|b=u"]),
            "defined twice",
        ),
        (
            Launch::axum().args(["--stream", "a|b c=t"]),
            "stream alias \"b c\" must be non-empty",
        ),
        (
            Launch::axum().demo().args(["--ids", "timestamp"]),
            "--brokers",
        ),
        (Launch::hyper(), "--stream"),
        (
            Launch::hyper().args(["--stream", "a=t", "--kafka", "sasl.password"]),
            "--kafka takes KEY=VALUE",
        ),
    ];
    for (launch, expected) in cases {
        let (status, log) = launch.start_expecting_exit();
        assert!(!status.success());
        assert!(log.contains(expected), "{expected:?} not in: {log}");
    }
}

#[tokio::test]
async fn live_clients_arriving_together_share_one_consumer() {
    let topic = create_topic(2).await;
    let service = Launch::axum()
        .args(["--stream", &format!("crowd={topic}")])
        .start();
    let mut crowd =
        futures::future::join_all((0..12).map(|_| service.open("/v2/stream/crowd"))).await;
    produce(&topic, 1, r#"{"n":7}"#, None).await;
    for client in &mut crowd {
        assert_eq!(client.next_json().await["n"], 7);
    }
    drop(crowd);

    // The shared stream retires a moment after its last client, releasing its consumer:
    // the only one opened if the first client started it and the rest joined.
    let released = || async {
        let metrics = service.get("/metrics").await.text().await.unwrap();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("kafka_sse_consumers_released_total "))
            .map_or(0.0, |value| value.trim().parse::<f64>().unwrap())
    };
    let deadline = std::time::Instant::now() + WAIT;
    while released().await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the consumer is released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(released().await, 1.0, "twelve clients, one consumer");
}

#[tokio::test]
async fn aliases_serve_their_stream_and_mix_with_names_reading_each_topic_once() {
    let (topic, other) = (create_topic(1).await, create_topic(1).await);
    let config = config_file(&format!(
        r#"
        [[stream]]
        name = "recentchange"
        aliases = ["mediawiki.recentchange", "rc"]
        topics = ["{topic}"]
        "#
    ));
    let service = Launch::axum()
        .args([
            "--config",
            &config,
            "--stream",
            &format!("more|mediawiki.more={other}"),
        ])
        .start();
    let streams: Value = service.get("/v2/streams").await.json().await.unwrap();
    assert_eq!(
        streams[0]["aliases"],
        json!(["mediawiki.recentchange", "rc"])
    );
    assert_eq!(streams[1]["aliases"], json!(["mediawiki.more"]));

    let mut by_alias = service.open("/v2/stream/mediawiki.recentchange").await;
    let mut mixed = service
        .open("/v2/stream/recentchange,mediawiki.recentchange,rc,mediawiki.more")
        .await;
    let start = id_json(mixed.headers["kafka-sse-start-id"].to_str().unwrap());
    assert_eq!(
        start.as_array().unwrap().len(),
        2,
        "each topic once: {start}"
    );
    produce_all(&topic, &[json!({"n": 0}), json!({"n": 2})]).await;
    produce_all(&other, &[json!({"n": 1})]).await;
    assert_eq!(numbers(&by_alias.json_until("n", &json!(2)).await), [0, 2]);
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(mixed.next_json().await);
    }
    let mut received = numbers(&received);
    received.sort();
    assert_eq!(received, [0, 1, 2], "every event once");

    let unknown = service.problem("/v2/stream/rc,mediawiki.nothing").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.detail().contains("mediawiki.nothing"));
}

#[tokio::test]
async fn demo_serves_the_canonical_eventstreams_names_as_aliases() {
    let service = Launch::axum().demo().start();
    let streams: Value = service.get("/v2/streams").await.json().await.unwrap();
    assert_eq!(streams[0]["aliases"], json!(["mediawiki.recentchange"]));
    assert_eq!(streams[1]["aliases"], json!(["mediawiki.page-create"]));
    let mut stream = service.open("/v2/stream/mediawiki.recentchange").await;
    let event = stream.next_json().await;
    assert!(
        event["meta"]["topic"]
            .as_str()
            .unwrap()
            .ends_with(".mediawiki.recentchange"),
        "{event}"
    );
    drop(stream);
    service.open("/v2/stream/mediawiki.page-create").await;
}

#[tokio::test]
async fn openapi_spec_describes_every_stream_and_alias_and_passes_a_validator() {
    let service = Launch::axum().demo().start();
    let response = service.get("/?spec").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let spec: Value = serde_json::from_str(&text).expect("the spec is JSON");
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{spec}"
    );

    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/v2/stream/recentchange",
        "/v2/stream/mediawiki.recentchange",
        "/v2/stream/page-create",
        "/v2/stream/mediawiki.page-create",
        "/v2/stream/{streams}",
        "/v2/streams",
        "/metrics",
        "/healthz",
        "/",
    ] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    let recentchange = &paths["/v2/stream/recentchange"]["get"];
    let description = recentchange["description"].as_str().unwrap();
    for words in [
        "eqiad.mediawiki.recentchange",
        "codfw.mediawiki.recentchange",
        "`mediawiki.recentchange`",
        "Accept",
    ] {
        assert!(description.contains(words), "{words:?} in {description}");
    }
    let components = &spec["components"];
    let resolve = |reference: &Value| {
        let pointer = reference["$ref"].as_str().expect("a reference");
        components
            .pointer(pointer.trim_start_matches("#/components"))
            .unwrap_or_else(|| panic!("{pointer} resolves"))
            .clone()
    };
    let parameters: Vec<(String, String)> = recentchange["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = resolve(p);
            (
                p["name"].as_str().unwrap().into(),
                p["in"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("since", "query"),
        ("last-event-id", "query"),
        ("filter", "query"),
        ("Last-Event-ID", "header"),
    ];
    assert_eq!(
        parameters,
        expected.map(|(n, i)| (n.to_owned(), i.to_owned()))
    );
    let since = resolve(&recentchange["parameters"][0]);
    assert!(since["description"].as_str().unwrap().contains("RFC 2822"));

    let events = resolve(&recentchange["responses"]["200"]);
    let formats: Vec<&String> = events["content"].as_object().unwrap().keys().collect();
    assert_eq!(
        formats,
        [
            "text/event-stream",
            "application/x-ndjson",
            "application/json"
        ]
    );
    assert!(events["description"].as_str().unwrap().contains("retry:"));
    let composite = &paths["/v2/stream/{streams}"]["get"];
    for status in ["400", "404", "429", "501", "503"] {
        let problem = resolve(&composite["responses"][status]);
        assert!(
            problem["content"]["application/problem+json"].is_object(),
            "{status}: {problem}"
        );
    }
    assert!(resolve(&composite["responses"]["429"])["headers"]["Retry-After"].is_object());
    let stream_schema = &components["schemas"]["Stream"]["properties"];
    assert!(stream_schema["aliases"].is_object(), "{stream_schema}");

    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("openapi-{:08x}.json", rand::random::<u32>()));
    std::fs::write(&file, &text).unwrap();
    let validated = std::process::Command::new(clients_python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        validated.status.success(),
        "openapi-spec-validator refused {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}

#[tokio::test]
async fn doc_page_renders_the_spec_from_local_assets_only() {
    let service = Launch::axum().demo().start();
    let page = service.get("/?doc").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let base = page.url().clone();
    assert_eq!(base.path(), "/doc/");
    let html = page.text().await.unwrap();

    // Every script, style sheet and image the page loads is one of the service's own.
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(assets.len() >= 3, "{html}");
    let client = client();
    let mut scripts = String::new();
    for asset in assets {
        assert!(
            !asset.starts_with("http:") && !asset.starts_with("https:") && !asset.starts_with("//"),
            "{asset} is not local"
        );
        let url = base.join(asset).unwrap();
        assert_eq!(url.origin(), base.origin(), "{asset}");
        let response = client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        if asset.ends_with(".js") {
            scripts.push_str(&response.text().await.unwrap());
        }
    }
    // The page reads this service's document, and sends it to no online validator.
    assert!(scripts.contains("\"/?spec\""), "the page reads /?spec");
    assert!(scripts.contains("\"validatorUrl\": \"none\""));
}
