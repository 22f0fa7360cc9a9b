//! Hostile requests against the axum example service, over raw loopback sockets: every
//! case of `tests/hostile/requests.jsonl` must be refused with a 4xx (a problem document
//! where the service, not hyper, answers), name no topic outside the request's streams,
//! answer a secret topic exactly as a topic that does not exist, and leave the service
//! serving streams with no panic in its log.
//!
//! # The corpus
//!
//! One JSON object per line:
//!
//! - `name`, `why`: what the case is and why it is hostile;
//! - `target` (path and query), `method` (default `GET`) and `headers` (`[name, value]`
//!   pairs), sent as an HTTP/1.1 request with `Host` and `Connection: close`; or `raw`,
//!   the whole request as it is sent;
//! - `expect`: the status, or a list of acceptable ones;
//! - `problem` (default `true`): whether the answer must be an `application/problem+json`
//!   document. Requests hyper refuses before the service sees them (oversized or
//!   malformed heads: 400, 414, 431) get hyper's bare answer with no body; `false` allows
//!   that, and any body must still be a problem document.
//!
//! Every text (`target`, header values, `raw`) is a string or a list of parts: strings,
//! `{"repeat": TEXT, "times": N}` and `{"hex": "ff00"}` (raw bytes). In strings,
//! `{public}` and `{other}` stand for the topics of the streams `public` and `other`,
//! `{secret}` for a topic that exists in Kafka but in no stream, and `{host}` for the
//! service's address. A case that names `{secret}` runs a second time with a topic that
//! exists nowhere in its place, and both answers must be the same.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kafka_sse::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use kafka_sse::rdkafka::client::DefaultClientContext;
use kafka_sse::rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use support::service::Launch;
use support::{client_config, create_topic, produce, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CORPUS: &str = include_str!("hostile/requests.jsonl");

/// How long one hostile request may take to be answered.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The most bytes read of one answer: a refusal is small, a stream would go on.
const ANSWER_LIMIT: usize = 256 * 1024;

#[tokio::test]
async fn hostile_requests_are_refused_without_naming_outside_topics() {
    // A topic that exists in Kafka but in no stream, and a name that exists nowhere.
    let secret = format!("secret-payroll-{:016x}", rand::random::<u64>());
    let ghost = format!("secret-payroll-{:016x}", rand::random::<u64>());
    create_named_topic(&secret, 1).await;
    let public = create_topic(2).await;
    let other = create_topic(1).await;
    let service = Launch::axum()
        .args(["--stream", &format!("public={public}")])
        .args(["--stream", &format!("other={other}")])
        .start();
    let host = service.url("").trim_start_matches("http://").to_owned();
    let names = Names {
        public: public.clone(),
        other: other.clone(),
        secret: secret.clone(),
        host: host.clone(),
    };

    let mut failures = Vec::new();
    let mut table = String::from("case | status | answer\n");
    for line in CORPUS.lines().filter(|line| !line.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).expect("each corpus line is JSON");
        let name = case["name"].as_str().expect("a case has a name");
        let answer = send(&host, &request(&case, &names)).await;
        let _ = writeln!(table, "{name} | {} | {}", answer.status, answer.summary());
        failures.extend(
            check(&case, &answer, &names)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );

        if line.contains("{secret}") {
            let unknown = Names {
                secret: ghost.clone(),
                ..names.clone()
            };
            let again = send(&host, &request(&case, &unknown)).await;
            let (one, two) = (
                answer.normalised(&secret, "<topic>"),
                again.normalised(&ghost, "<topic>"),
            );
            if one != two {
                failures.push(format!(
                    "{name}: a secret topic gets another answer than a topic that does not \
                     exist:\n  {one:?}\n  {two:?}"
                ));
            }
        }
    }
    println!("{table}");

    // The service is alive and well: it serves a stream, and nothing panicked.
    let mut stream = service.open("/v2/stream/public").await;
    produce(&public, 1, r#"{"after":"hostile"}"#, None).await;
    let event = stream.next_json().await;
    assert_eq!(event["after"], "hostile", "{event}");
    assert_eq!(service.get("/healthz").await.status(), 200);
    let log = service.log_text();
    assert!(!log.contains("panicked"), "the service panicked:\n{log}");

    assert!(
        failures.is_empty(),
        "{} hostile case(s) failed:\n{}\n\n{table}",
        failures.len(),
        failures.join("\n")
    );
}

/// The names that stand in for `{public}`, `{other}`, `{secret}` and `{host}`.
#[derive(Debug, Clone)]
struct Names {
    public: String,
    other: String,
    secret: String,
    host: String,
}

impl Names {
    fn fill(&self, text: &str) -> String {
        text.replace("{public}", &self.public)
            .replace("{other}", &self.other)
            .replace("{secret}", &self.secret)
            .replace("{host}", &self.host)
    }
}

/// A corpus text: a string, or a list of strings, repeats and raw bytes.
fn text(value: &Value, names: &Names) -> Vec<u8> {
    match value {
        Value::String(text) => names.fill(text).into_bytes(),
        Value::Array(parts) => parts.iter().flat_map(|part| text(part, names)).collect(),
        Value::Object(part) if part.contains_key("repeat") => {
            let times = part["times"].as_u64().expect("a repeat has times") as usize;
            text(&part["repeat"], names).repeat(times)
        }
        Value::Object(part) if part.contains_key("hex") => {
            let hex = part["hex"].as_str().expect("hex is a string");
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                .collect()
        }
        other => panic!("not a corpus text: {other}"),
    }
}

/// The bytes of a case's request.
fn request(case: &Value, names: &Names) -> Vec<u8> {
    if let Some(raw) = case.get("raw") {
        return text(raw, names);
    }
    let method = case["method"].as_str().unwrap_or("GET");
    let mut request = format!("{method} ").into_bytes();
    request.extend(text(&case["target"], names));
    request.extend(format!(" HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", names.host).bytes());
    for header in case["headers"].as_array().into_iter().flatten() {
        request.extend(text(&header[0], names));
        request.extend(b": ");
        request.extend(text(&header[1], names));
        request.extend(b"\r\n");
    }
    request.extend(b"\r\n");
    request
}

/// What the service answered, as read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    /// 0 when the connection closed without a status line.
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn content_type(&self) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then_some(value.trim())
        })
    }

    /// The problem's kind and detail, or the start of the body.
    fn summary(&self) -> String {
        match serde_json::from_str::<Value>(&self.body) {
            Ok(problem) => {
                let kind = problem["type"].as_str().unwrap_or_default();
                let detail: String = problem["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(80)
                    .collect();
                format!(
                    "{}: {detail}",
                    kind.trim_start_matches("urn:kafka-sse:problem:")
                )
            }
            Err(_) if self.body.is_empty() => "(no body)".to_owned(),
            Err(_) => self.body.chars().take(60).collect(),
        }
    }

    /// Status, content type and body, with `name` replaced.
    fn normalised(&self, name: &str, with: &str) -> (u16, Option<String>, String) {
        (
            self.status,
            self.content_type().map(str::to_owned),
            self.body.replace(name, with),
        )
    }
}

/// Sends `request` to the service on a fresh connection and reads the answer until the
/// service closes the connection, [`ANSWER_WAIT`] passes, or [`ANSWER_LIMIT`] bytes came.
async fn send(host: &str, request: &[u8]) -> Answer {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(host))
        .await
        .expect("connected within the wait")
        .expect("the service accepts connections");
    let (mut reader, mut writer) = stream.into_split();
    // Write while reading: hyper may answer an oversized head before it is all sent.
    let request = request.to_vec();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });

    let mut received = Vec::new();
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut chunk = vec![0; 16 * 1024];
    while received.len() < ANSWER_LIMIT {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
        }
    }
    writing.abort();
    parse_answer(&received)
}

fn parse_answer(received: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(received);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Answer {
        status,
        head: head.to_owned(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

/// The data of a chunked body, as far as it came.
fn dechunk(mut body: &str) -> String {
    let mut data = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            data.push_str(rest.get(..size.min(rest.len())).unwrap_or(rest));
            break;
        }
        data.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    data
}

/// What is wrong with `answer` to `case`, if anything.
fn check(case: &Value, answer: &Answer, names: &Names) -> Vec<String> {
    let mut failures = Vec::new();
    let expected: Vec<u64> = match &case["expect"] {
        Value::Array(statuses) => statuses.iter().filter_map(Value::as_u64).collect(),
        status => status.as_u64().into_iter().collect(),
    };
    let status = u64::from(answer.status);
    if !(400..500).contains(&status) {
        failures.push(format!(
            "answered {}, not a 4xx: {}",
            answer.status,
            answer.summary()
        ));
    } else if !expected.contains(&status) {
        failures.push(format!(
            "answered {}, expected {expected:?}: {}",
            answer.status,
            answer.summary()
        ));
    }
    // Every body is a problem document; hyper's own refusals have none.
    if case["problem"].as_bool().unwrap_or(true) || !answer.body.is_empty() {
        if let Err(why) = check_problem(answer) {
            failures.push(why);
        }
    }

    // No topic outside the requested streams, unless the client wrote it in the path.
    let path = request_path(case, names);
    let outside = [names.secret.as_str(), names.other.as_str()];
    let requested_other = path
        .strip_prefix("/v2/stream/")
        .is_some_and(|streams| streams.split(',').any(|stream| stream == "other"));
    for topic in outside {
        let echoed = path.contains(topic);
        let allowed = topic == names.other && requested_other;
        let shown = answer.head.contains(topic) || answer.body.contains(topic);
        if shown && !echoed && !allowed {
            failures.push(format!("the answer names the outside topic {topic}"));
        }
    }
    failures
}

fn check_problem(answer: &Answer) -> Result<(), String> {
    if answer.content_type() != Some("application/problem+json") {
        return Err(format!(
            "content type {:?}, not a problem document",
            answer.content_type()
        ));
    }
    let problem: Value = serde_json::from_str(&answer.body)
        .map_err(|error| format!("the problem body is not JSON ({error}): {}", answer.body))?;
    if problem["status"] != answer.status {
        return Err(format!("the problem's status differs: {problem}"));
    }
    for field in ["type", "title", "detail"] {
        if !problem[field].is_string() {
            return Err(format!("the problem has no {field}: {problem}"));
        }
    }
    Ok(())
}

/// The path of a case's request target, without the query.
fn request_path(case: &Value, names: &Names) -> String {
    let request = request(case, names);
    let line_end = request
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(request.len());
    let line = String::from_utf8_lossy(&request[..line_end]).into_owned();
    let target = line.split(' ').nth(1).unwrap_or_default();
    target.split('?').next().unwrap_or_default().to_owned()
}

/// Creates `name` with `partitions` partitions and waits until the broker's metadata shows
/// it.
async fn create_named_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client_config().create().expect("an admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&topic], &AdminOptions::new().operation_timeout(Some(WAIT)))
        .await
        .expect("create_topics request");
    for result in results {
        result.expect("topic created");
    }
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = client_config().create().expect("a metadata client");
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let metadata = client.fetch_metadata(Some(&name), Duration::from_secs(5));
            let shown = metadata.ok().is_some_and(|metadata| {
                metadata.topics().iter().any(|topic| {
                    topic.name() == name
                        && topic.error().is_none()
                        && topic.partitions().len() == partitions as usize
                })
            });
            if shown {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("topic {name} is not in the broker's metadata after the wait");
    })
    .await
    .expect("the metadata probe");
}
