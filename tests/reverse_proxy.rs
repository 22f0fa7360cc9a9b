//! The axum example service behind Debian's nginx with its stock proxy settings, as a new
//! user would put it: a stream over 1,024 partitions connects, receives, and resumes with
//! `Last-Event-ID` and with `?last-event-id=`, with the library's default ids.
//!
//! nginx's defaults are the test: a 4 KB `proxy_buffer_size` for the upstream's response
//! headers (more is a 502) and 8 KB `large_client_header_buffers` for a request header line.
//! `scripts/install-test-clients.sh` installs nginx.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_sse::rdkafka::consumer::{BaseConsumer, Consumer};
use kafka_sse::rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use support::service::{client, Launch, Sse};
use support::{create_topic, produce, WAIT};

const NGINX: &str = "/usr/sbin/nginx";
const PARTITIONS: i32 = 1024;

/// nginx in the foreground, as the current user, with its files in a temporary directory;
/// killed when dropped.
struct Nginx {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Nginx {
    /// Proxies a free loopback port to `upstream` (`host:port`) with nothing but
    /// `proxy_pass`: every proxy setting is nginx's default.
    fn start(upstream: &str) -> Self {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: run scripts/install-test-clients.sh (scripts/test.sh does)"
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nginx-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let d = dir.display();
        let config = format!(
            "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{}}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
        }}
    }}
}}
"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen; its log:\n{}",
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }

    /// Opens `path` through nginx; it must answer 200 with an SSE body.
    async fn open(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut request = client().get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = tokio::time::timeout(WAIT, request.send())
            .await
            .expect("nginx answers within the wait")
            .expect("a response through nginx");
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!(
                "GET {path} through nginx: {status} {body}; nginx says:\n{}",
                self.log()
            );
        }
        Sse::new(response)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(partition, n)` of the next `count` events, with each one's id.
async fn receive(stream: &mut Sse, count: usize) -> Vec<((i64, i64), String)> {
    let mut events = Vec::new();
    while events.len() < count {
        let event = stream.next_event().await;
        let data: Value = serde_json::from_str(&event.data).expect("JSON data");
        let partition = data["meta"]["partition"].as_i64().expect("meta.partition");
        events.push(((partition, data["n"].as_i64().unwrap()), event.id));
    }
    events
}

fn numbers(events: &[((i64, i64), String)]) -> BTreeSet<i64> {
    events.iter().map(|((_, n), _)| *n).collect()
}

/// Partitions spread over the whole topic, first and last included.
fn partition_of(n: i64) -> i32 {
    ((n * 331) % i64::from(PARTITIONS)) as i32
}

/// Waits until the broker answers offset look-ups for every partition of a new `topic`: a
/// thousand partitions take a few seconds to get their leader after the metadata shows them.
async fn wait_for_leaders(topic: &str) {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = support::client_config().create().expect("a consumer");
        let mut partitions = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            partitions
                .add_partition_offset(&topic, partition, Offset::Offset(0))
                .unwrap();
        }
        let deadline = Instant::now() + 4 * WAIT;
        loop {
            let answered = consumer.offsets_for_times(partitions.clone(), Duration::from_secs(10));
            let all = answered.is_ok_and(|list| list.elements().iter().all(|e| e.error().is_ok()));
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} has partitions without a leader"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .expect("the leader probe");
}

#[tokio::test]
async fn a_thousand_partitions_stream_and_resume_through_stock_nginx() {
    let topic = create_topic(PARTITIONS).await;
    wait_for_leaders(&topic).await;
    let service = Launch::axum()
        .arg("--stream")
        .arg(format!("wide={topic}"))
        .start();
    let upstream = service.url("").trim_start_matches("http://").to_owned();
    let nginx = Nginx::start(upstream.trim_end_matches('/'));

    // Connect: the live end of every partition. The start id is too long for a header.
    let mut live = nginx.open("/v2/stream/wide", &[]).await;
    assert!(!live.headers.contains_key("kafka-sse-start-id"));
    let produced: Vec<i64> = (0..12).collect();
    let deadline = Instant::now() + WAIT;
    for &n in &produced {
        produce(&topic, partition_of(n), &format!(r#"{{"n":{n}}}"#), None).await;
    }
    let events = tokio::time::timeout_at(deadline.into(), receive(&mut live, produced.len()))
        .await
        .expect("every event within the wait");
    assert_eq!(numbers(&events), produced.iter().copied().collect());
    let seen_partitions: BTreeSet<i64> = events.iter().map(|((p, _), _)| *p).collect();
    assert!(seen_partitions.contains(&0) && seen_partitions.len() > 10);
    let id = events[5].1.clone();
    assert!(
        id.starts_with("k1~"),
        "the default id form at 1,024 partitions: {id}"
    );
    assert!(id.len() < 4096, "an id of {} bytes", id.len());
    drop(live);

    // What the client missed after that id, plus a few events produced while it was away.
    let mut expected: BTreeSet<i64> = numbers(&events[6..]);
    for n in 100..104 {
        produce(&topic, partition_of(n), &format!(r#"{{"n":{n}}}"#), None).await;
        expected.insert(n);
    }

    let mut by_header = nginx
        .open("/v2/stream/wide", &[("last-event-id", id.as_str())])
        .await;
    let resumed = receive(&mut by_header, expected.len()).await;
    assert_eq!(numbers(&resumed), expected, "resumed with the header");
    produce(&topic, 3, r#"{"n":998}"#, None).await;
    let next = receive(&mut by_header, 1).await;
    assert_eq!(next[0].0 .1, 998, "an event beyond those expected");
    expected.insert(998);
    drop(by_header);

    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("last-event-id", &id)
        .finish();
    let mut by_query = nginx.open(&format!("/v2/stream/wide?{query}"), &[]).await;
    let resumed = receive(&mut by_query, expected.len()).await;
    assert_eq!(
        numbers(&resumed),
        expected,
        "resumed with the query parameter"
    );

    // Nothing more: a marker produced now is the next event.
    produce(&topic, 7, r#"{"n":999}"#, None).await;
    let next = receive(&mut by_query, 1).await;
    assert_eq!(next[0].0 .1, 999, "an event beyond those expected");
}
