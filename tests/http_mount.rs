//! The library's `http` integration over a real socket: a minimal axum mount, read with
//! reqwest and an SSE parser, against the real broker.

mod support;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::request::Parts;
use axum::routing::get;
use axum::Router;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use kafka_sse::{KafkaSse, ResponseBody};
use serde_json::{json, Value};
use support::*;

#[derive(Clone)]
struct App {
    sse: KafkaSse,
    topics: Vec<String>,
}

async fn stream(State(app): State<App>, parts: Parts) -> http::Response<ResponseBody> {
    app.sse.respond(&app.topics, &parts).await
}

/// Serves `topics` on a free loopback port and returns the stream's URL.
async fn serve(topics: Vec<String>) -> String {
    let app = Router::new()
        .route("/stream", get(stream))
        .with_state(App { sse: sse(), topics });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/stream")
}

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn streams_with_sse_headers_start_id_and_parsed_events() {
    let topic = create_topic(1).await;
    produce_numbers(&topic, 0, 0..2).await;
    let url = serve(vec![topic.clone()]).await;
    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache, no-transform");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(
        id_json(headers["kafka-sse-start-id"].to_str().unwrap()),
        json!([{"topic": topic, "partition": 0, "offset": 2}])
    );
    let mut events = response.bytes_stream().eventsource();
    produce(&topic, 0, r#"{"n":2}"#, None).await;
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    assert_eq!(event.data, r#"{"n":2}"#);
    assert_eq!(
        id_json(&event.id),
        json!([{"topic": topic, "partition": 0, "offset": 3}])
    );
}

#[tokio::test]
async fn accept_application_json_gets_json_lines() {
    let topic = create_topic(1).await;
    produce_numbers(&topic, 0, 0..1).await;
    let url = serve(vec![topic.clone()]).await;
    let response = reqwest::Client::new()
        .get(format!("{url}?since=0"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(WAIT, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"{\"n\":0}\n");
}

#[tokio::test]
async fn a_last_event_id_query_parameter_resumes_a_first_connect() {
    let topic = create_topic(1).await;
    produce_numbers(&topic, 0, 0..3).await;
    let url = serve(vec![topic.clone()]).await;
    let id = json!([{"topic": topic, "partition": 0, "offset": 1}]).to_string();
    let response = reqwest::Client::new()
        .get(&url)
        .query(&[("last-event-id", id)])
        .send()
        .await
        .unwrap();
    let mut events = response.bytes_stream().eventsource();
    let event = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(event.data, r#"{"n":1}"#);
}

#[tokio::test]
async fn bad_requests_get_400_problems_that_name_no_other_topic() {
    let allowed = create_topic(1).await;
    let secret = create_topic(1).await;
    let url = serve(vec![allowed.clone()]).await;
    let client = reqwest::Client::new();
    let with_id = |id: String| client.get(&url).header("last-event-id", id).send();

    let cases = [
        ("not json".to_owned(), "invalid-last-event-id"),
        ("[]".to_owned(), "invalid-last-event-id"),
        (json!([secret]).to_string(), "topic-not-allowed"),
        (
            json!([{"topic": secret, "partition": 0, "offset": 0}]).to_string(),
            "topic-not-allowed",
        ),
        (
            json!([{"topic": allowed, "partition": 7, "offset": 0}]).to_string(),
            "unknown-partition",
        ),
        (
            json!([{"topic": allowed, "partition": 0, "offset": -1}]).to_string(),
            "invalid-last-event-id",
        ),
        (
            format!("[{}]", "\"x\",".repeat(20_000) + "\"x\""),
            "invalid-last-event-id",
        ),
    ];
    for (id, kind) in cases {
        let (status, body) = problem(with_id(id.clone()).await.unwrap()).await;
        assert_eq!(status, 400, "{id:.80}");
        assert_eq!(
            body["type"],
            format!("urn:kafka-sse:problem:{kind}"),
            "{id:.80}"
        );
        assert!(!body.to_string().contains(&secret), "{body}");
    }

    let non_utf8 = reqwest::header::HeaderValue::from_bytes(b"[\"\xff\"]").unwrap();
    let response = client
        .get(&url)
        .header("last-event-id", non_utf8)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 400);

    let response = client
        .get(&url)
        .query(&[("since", "last tuesday")])
        .send()
        .await
        .unwrap();
    let (status, body) = problem(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:kafka-sse:problem:invalid-since");

    let ok = client.get(&url).send().await.unwrap();
    assert_eq!(
        ok.status(),
        200,
        "the service still serves after bad requests"
    );
}
