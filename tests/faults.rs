//! The axum example service under faults, against the real broker: killed and restarted
//! under a steady flow, stopped with SIGTERM, clients that stop reading, connection limits,
//! and thousands of clients coming and going.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::Value;
use support::service::{client, restartable_axum, Launch, Running, Sse};
use support::{create_topic, produce, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The axum service with one stream, `t`, of `topic`.
fn serving(topic: &str) -> Launch {
    Launch::axum().arg("--stream").arg(format!("t={topic}"))
}

fn signal(running: &Running, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), running.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// (partition, n) of an event produced by [`produce_n`].
fn coordinates(data: &str) -> (i64, i64) {
    let event: Value = serde_json::from_str(data).unwrap();
    (
        event["meta"]["partition"].as_i64().unwrap(),
        event["n"].as_i64().unwrap(),
    )
}

async fn produce_n(topic: &str, n: i32, padding: usize) {
    let pad = "x".repeat(padding);
    produce(topic, n % 2, &format!(r#"{{"n":{n},"pad":"{pad}"}}"#), None).await;
}

#[tokio::test]
async fn a_client_resumes_across_repeated_kills_and_loses_nothing() {
    let topic = create_topic(2).await;
    let launch = restartable_axum("flow", &topic);
    let mut running = Some(launch());
    let url = running.as_ref().unwrap().url("/v2/stream/flow");

    // A steady flow of 200 events over about 4 seconds.
    let producer = tokio::spawn({
        let topic = topic.clone();
        async move {
            for n in 0..200 {
                produce_n(&topic, n, 0).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let http = client();
    // Start at the beginning, so the events produced before the first connect count too.
    let mut last_id = Some(format!(
        r#"[{{"topic":"{topic}","partition":0,"offset":0}},{{"topic":"{topic}","partition":1,"offset":0}}]"#
    ));
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let mut kills = 0;
    let deadline = Instant::now() + WAIT * 2;
    while seen.len() < 200 && Instant::now() < deadline {
        let mut request = http.get(&url);
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        let Ok(response) = request.send().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut events = response.bytes_stream().eventsource();
        // Read a share of the flow, then kill the service under the client (3 times).
        let quota = if kills < 3 { seen.len() + 40 } else { 200 };
        while seen.len() < quota {
            match tokio::time::timeout(WAIT, events.next()).await {
                Ok(Some(Ok(event))) => {
                    seen.push(coordinates(&event.data));
                    last_id = Some(event.id);
                }
                _ => break,
            }
        }
        if kills < 3 && seen.len() >= quota {
            drop(running.take());
            kills += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            running = Some(launch());
        }
    }
    producer.await.unwrap();
    assert_eq!(kills, 3);
    let mut by_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (partition, n) in seen {
        by_partition.entry(partition).or_default().push(n);
    }
    assert_eq!(by_partition[&0], (0..200).step_by(2).collect::<Vec<_>>());
    assert_eq!(by_partition[&1], (1..200).step_by(2).collect::<Vec<_>>());
}

#[tokio::test]
async fn sigterm_ends_every_stream_and_the_process_exits() {
    let topic = create_topic(1).await;
    let mut running = serving(&topic).args(["--shutdown-timeout", "20s"]).start();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let response = running.get("/v2/stream/t").await;
        assert_eq!(response.status(), 200);
        bodies.push(response.bytes_stream());
    }
    for body in &mut bodies {
        tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    signal(&running, "TERM");
    for body in &mut bodies {
        // The rest of each body is whole frames, then a clean end.
        let mut rest = Vec::new();
        while let Some(chunk) = tokio::time::timeout(WAIT, body.next()).await.unwrap() {
            rest.extend_from_slice(&chunk.expect("the body ends cleanly, not with an error"));
        }
        assert!(rest.is_empty() || rest.ends_with(b"\n\n"), "{rest:?}");
    }
    let status = running
        .wait_exit()
        .expect("the service exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(running.log_text().contains("stopped"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_others_are_unaffected() {
    let topic = create_topic(2).await;
    let running = serving(&topic)
        .args([
            "--stalled-client-timeout",
            "1s",
            "--max-connections-per-ip",
            "2",
        ])
        .start();
    let address = running.url("").trim_start_matches("http://").to_owned();

    // A client with a tiny receive buffer asks for the stream and never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(address.parse().unwrap()).await.unwrap();
    stuck
        .write_all(format!("GET /v2/stream/t HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reader = running.open("/v2/stream/t").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Enough data to fill every buffer between the server and the stuck client.
    let producer = tokio::spawn({
        let topic = topic.clone();
        async move {
            for n in 0..4000 {
                produce_n(&topic, n, 2048).await;
            }
        }
    });
    // The reading client gets everything meanwhile.
    for _ in 0..4000 {
        reader.next_event().await;
    }
    producer.await.unwrap();

    // The stuck client's slot comes free once the server closed it: two more streams fit
    // next to the reader only then.
    let deadline = Instant::now() + WAIT;
    let freed = loop {
        let response = running.get("/v2/stream/t").await;
        if response.status() == 200 {
            break true;
        }
        assert_eq!(response.status(), 429);
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(freed, "the stalled client's stream was released");
    // Its socket was closed by the server: reading drains what was buffered, then ends.
    let mut buffer = vec![0; 1 << 16];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match stuck.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the stalled connection");
}

#[tokio::test]
async fn the_global_connection_limit_answers_503_with_retry_after_or_an_sse_retry() {
    let topic = create_topic(1).await;
    let running = serving(&topic).args(["--max-connections", "2"]).start();
    let first = running.open("/v2/stream/t").await;
    let _second = running.open("/v2/stream/t").await;
    let ndjson = [("accept", "application/x-ndjson")];
    let refused = running.get_with("/v2/stream/t", &ndjson).await;
    assert_eq!(refused.status(), 503);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );

    // An EventSource would give up for good on a 503: it gets a 200 that tells it when to
    // come back, and ends.
    let sse = running.get("/v2/stream/t").await;
    assert_eq!(sse.status(), 200);
    assert_eq!(
        sse.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let body = tokio::time::timeout(WAIT, sse.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with(":server-full: "), "{body}");
    let retry: u64 = body
        .lines()
        .find_map(|line| line.strip_prefix("retry: "))
        .and_then(|millis| millis.parse().ok())
        .unwrap_or_else(|| panic!("a retry field in {body:?}"));
    assert!((1000..=5000).contains(&retry), "{retry}");

    drop(first);
    let deadline = Instant::now() + WAIT;
    while running.get_with("/v2/stream/t", &ndjson).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "a slot comes free when a client leaves"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Threads, open files and resident memory of a process, from /proc.
fn process_usage(pid: u32) -> (usize, usize, u64) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    let files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    (threads, files, rss_kib)
}

fn connected_clients(metrics: &str) -> f64 {
    gauge(metrics, "kafka_sse_connected_clients")
}

/// The sum of a metric's series in Prometheus text.
fn gauge(metrics: &str, name: &str) -> f64 {
    sum_of_series(metrics, name, "")
}

/// The sum of a metric's series whose labels include `label`.
fn sum_of_series(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_clients_come_and_go_and_leave_nothing_behind() {
    let topic = create_topic(2).await;
    let running = serving(&topic)
        .args(["--max-connections-per-ip", "256"])
        .start();
    let url = running.url("/v2/stream/t");
    let producer = tokio::spawn({
        let topic = topic.clone();
        async move {
            for n in 0..600 {
                produce_n(&topic, n, 0).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Warm up, then take the baseline with no stream open, but with the keep-alive
    // connection this test reads /metrics over.
    drop(running.open("/v2/stream/t").await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.get("/metrics").await.text().await.unwrap();
    let (threads, files, rss) = process_usage(running.pid());

    let cycles = 10_000;
    let workers = 32;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            for cycle in (worker..cycles).step_by(workers) {
                let Ok(Ok(response)) = tokio::time::timeout(WAIT, http.get(&url).send()).await
                else {
                    panic!("cycle {cycle}: no answer");
                };
                assert_eq!(response.status(), 200, "cycle {cycle}");
                let mut body = response.bytes_stream();
                // Some leave at once, mid-frame for the server; others after a frame.
                if cycle % 3 != 0 {
                    let _ = tokio::time::timeout(WAIT, body.next()).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    producer.await.unwrap();

    // Every stream is gone: the gauge and the per-IP count are exact, and the process is
    // back to its baseline.
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = running.get("/metrics").await.text().await.unwrap();
        let usage = process_usage(running.pid());
        let settled = connected_clients(&metrics) == 0.0
            && gauge(&metrics, "http_streams_open") == 0.0
            && usage.0 <= threads
            && usage.1 <= files;
        if settled {
            eprintln!(
                "after {cycles} cycles: threads {} (baseline {threads}), files {} ({files}), RSS {} KiB ({rss} KiB)",
                usage.0, usage.1, usage.2
            );
            assert!(
                usage.2 < rss + 64 * 1024,
                "RSS grew from {rss} KiB to {} KiB",
                usage.2
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back to baseline: connected {} slots {} threads {}/{threads} files {}/{files}",
            connected_clients(&metrics),
            gauge(&metrics, "http_streams_open"),
            usage.0,
            usage.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut held = Vec::new();
    for _ in 0..256 {
        held.push(running.open("/v2/stream/t").await);
    }
    assert_eq!(
        running.get("/v2/stream/t").await.status(),
        429,
        "the per-IP count is exact"
    );
}

#[tokio::test]
async fn a_resume_point_deleted_by_retention_resumes_at_the_log_start_and_says_so() {
    // Segments roll every 100 ms and are deleted a second after their last message.
    let topic = support::create_topic_with(
        1,
        &[
            ("retention.ms", "1000"),
            ("segment.ms", "100"),
            ("file.delete.delay.ms", "0"),
        ],
    )
    .await;
    let running = serving(&topic).start();
    for n in 0..5 {
        produce(&topic, 0, &format!(r#"{{"n":{n}}}"#), None).await;
    }
    let expired = format!(r#"[{{"topic":"{topic}","partition":0,"offset":0}}]"#);

    // Keep the log alive with a message now and then until retention has removed the
    // first segments (bounded by the wait).
    let deadline = Instant::now() + WAIT * 2;
    let start = loop {
        produce(&topic, 0, r#"{"n":99}"#, None).await;
        let response = running
            .get_with("/v2/stream/t", &[("last-event-id", expired.as_str())])
            .await;
        assert_eq!(response.status(), 200);
        let offset = start_offsets(response.headers())[0];
        if offset > 0 {
            break offset;
        }
        assert!(
            Instant::now() < deadline,
            "retention never moved the log start"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        start >= 5,
        "started at the log start {start}, past the deleted messages"
    );
    assert!(
        resets_to_the_log_start(&running, "below_log_start").await >= 1.0,
        "the reset is counted"
    );
}

#[tokio::test]
async fn a_resume_point_from_before_the_topic_was_recreated_resumes_at_the_log_start_and_says_so() {
    let topic = create_topic(1).await;
    let running = serving(&topic).start();
    produce_numbers_without_auto_create(&topic, 0..6).await;
    let from_start = format!(r#"[{{"topic":"{topic}","partition":0,"offset":0}}]"#);
    let mut old = running
        .open_with("/v2/stream/t", &[("last-event-id", from_start.as_str())])
        .await;
    let mut old_id = String::new();
    for n in 0..6 {
        let event = old.next_event().await;
        assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap()["n"], n);
        old_id = event.id;
    }
    drop(old);
    assert_eq!(offsets(&old_id), [6]);

    // The new topic holds fewer messages than the old id's offset.
    support::recreate_topic(&topic, 1).await;
    produce_numbers_without_auto_create(&topic, 100..103).await;

    let mut resumed = open_once_served(&running, "/v2/stream/t", &old_id).await;
    assert_eq!(start_offsets(&resumed.headers), [0], "the log start");
    for (offset, n) in (1..).zip(100..103) {
        let event = resumed.next_event().await;
        assert_eq!(serde_json::from_str::<Value>(&event.data).unwrap()["n"], n);
        assert_eq!(offsets(&event.id), [offset]);
    }
    // Nothing else came in between: the next event is one produced now.
    produce_numbers_without_auto_create(&topic, 200..201).await;
    assert_eq!(resumed.next_json().await["n"], 200);

    assert!(
        resets_to_the_log_start(&running, "above_log_end").await >= 1.0,
        "the reset is counted"
    );
    let log = running.log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("above_log_end")),
        "the reset is logged as a warning with its reason:\n{log}"
    );
}

/// Produces `{"n":N}` for each `n` in `range` to partition 0 with a producer that cannot
/// create the topic again behind the test's back.
async fn produce_numbers_without_auto_create(topic: &str, range: std::ops::Range<i32>) {
    let producer = support::producer_without_auto_create();
    for n in range {
        support::produce_with(&producer, topic, 0, &format!(r#"{{"n":{n}}}"#), None).await;
    }
}

/// Opens `path` with a `Last-Event-ID`, asking again (within [`WAIT`]) while the service
/// does not answer 200: right after a topic was recreated its Kafka clients may still hold
/// the old topic's metadata.
async fn open_once_served(running: &Running, path: &str, last_event_id: &str) -> Sse {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = running
            .get_with(path, &[("last-event-id", last_event_id)])
            .await;
        if response.status() == 200 {
            return Sse::new(response);
        }
        let status = response.status();
        assert!(
            Instant::now() < deadline,
            "still {status} at the end of the wait: {}",
            response.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The offsets of an id, in its order (topic, then partition).
fn offsets(id: &str) -> Vec<i64> {
    let entries: Vec<Value> = serde_json::from_str(id).unwrap();
    entries
        .iter()
        .map(|entry| entry["offset"].as_i64().unwrap())
        .collect()
}

/// The offsets a stream starts at, from its `kafka-sse-start-id` response header.
fn start_offsets(headers: &HeaderMap) -> Vec<i64> {
    offsets(headers["kafka-sse-start-id"].to_str().unwrap())
}

/// How many resume points the service moved to a log start for `reason`, from its metrics.
async fn resets_to_the_log_start(running: &Running, reason: &str) -> f64 {
    let metrics = running.get("/metrics").await.text().await.unwrap();
    let counted = |label: &str| sum_of_series(&metrics, "kafka_sse_offset_resets_total", label);
    let for_reason = counted(&format!(r#"reason="{reason}""#));
    assert_eq!(
        for_reason,
        counted(&format!(r#"to="log_start",reason="{reason}""#)),
        "every reset goes to the log start:\n{metrics}"
    );
    for_reason
}
