//! The axum example service read by clients nobody here wrote, against the real broker:
//! Node's `eventsource`, Python's `requests-sse` and `sseclient-py`, curl, and the web page
//! in headless Chromium. `scripts/install-test-clients.sh` installs them (scripts/test.sh
//! runs it first).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use kafka_sse::parse_last_event_id;
use serde_json::Value;
use support::service::{clients_python, restartable_axum_with, Launch, Running};
use support::{create_topic, id_json, produce, WAIT};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn node_script(name: &str) -> PathBuf {
    let script = clients_dir().join(name);
    assert!(
        clients_dir().join("node_modules/eventsource").exists(),
        "the Node clients are missing: run scripts/install-test-clients.sh (scripts/test.sh does)"
    );
    script
}

/// A client process whose stdout lines (one JSON event each) and stderr lines are read on
/// threads; killed when dropped.
struct Client {
    child: Child,
    events: Receiver<Value>,
    notes: Receiver<String>,
}

impl Client {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the client starts");
        let (event_sender, events) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if event_sender.send(event).is_err() {
                    return;
                }
            }
        });
        let (note_sender, notes) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if note_sender.send(line).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            events,
            notes,
        }
    }

    fn next_event(&self) -> Value {
        self.events.recv_timeout(WAIT).unwrap_or_else(|_| {
            let notes: Vec<String> = self.notes.try_iter().collect();
            panic!("the client printed no event within the wait; its stderr: {notes:?}")
        })
    }

    fn events(&self, count: usize) -> Vec<Value> {
        (0..count).map(|_| self.next_event()).collect()
    }

    /// Waits for a stderr line equal to `note`.
    fn wait_note(&self, note: &str) {
        loop {
            let line = self
                .notes
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("the client never said {note:?}"));
            if line == note {
                return;
            }
        }
    }

    fn wait_success(mut self) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the client exited with {status}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn data_numbers(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|event| {
            let data: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
            data["n"].as_i64().unwrap()
        })
        .collect()
}

async fn produce_range(topic: &str, partitions: i32, range: std::ops::Range<i32>) {
    for n in range {
        produce(
            topic,
            n % partitions,
            &format!(r#"{{"n":{n},"title":"Page {n}"}}"#),
            None,
        )
        .await;
    }
}

fn service(topic: &str) -> Running {
    Launch::axum()
        .arg("--stream")
        .arg(format!("pages={topic}"))
        .start()
}

#[tokio::test]
async fn node_eventsource_reconnects_after_a_restart_and_gets_every_event_once() {
    let last_id = node_eventsource_reconnects_after_a_restart(&[]).await;
    let last_id = id_json(&last_id);
    assert_eq!(
        last_id.as_array().unwrap().len(),
        2,
        "the id names both partitions"
    );
}

#[tokio::test]
async fn node_eventsource_resumes_from_compact_ids() {
    let last_id = node_eventsource_reconnects_after_a_restart(&["--id-format", "compact"]).await;
    assert!(last_id.starts_with("k1~"), "{last_id}");
    let entries = parse_last_event_id(&last_id).unwrap();
    let partitions = entries
        .iter()
        .filter(|entry| matches!(entry, kafka_sse::AssignmentEntry::Partition { .. }))
        .count();
    assert_eq!(partitions, 2, "{entries:?}");
}

/// Node's `eventsource` reads a 2-partition stream of the axum service started with `args`,
/// across a restart; it must get every event once. The last id it saw.
async fn node_eventsource_reconnects_after_a_restart(args: &[&str]) -> String {
    let topic = create_topic(2).await;
    let launch = restartable_axum_with("pages", &topic, args);
    let running = launch();
    let client = Client::spawn(
        Command::new("node")
            .arg(node_script("eventsource.mjs"))
            .arg(running.url("/v2/stream/pages"))
            .arg("30")
            .arg("120000"),
    );
    client.wait_note("open");
    produce_range(&topic, 2, 0..10).await;
    let mut events = client.events(10);

    // SIGKILL: no goodbye, no final frame. Events keep coming while the service is away.
    drop(running);
    produce_range(&topic, 2, 10..20).await;
    let _running = launch();
    client.wait_note("open");
    produce_range(&topic, 2, 20..30).await;
    events.extend(client.events(20));

    let mut numbers = data_numbers(&events);
    numbers.sort();
    assert_eq!(
        numbers,
        (0..30).collect::<Vec<i64>>(),
        "every event exactly once"
    );
    client.wait_success();
    events.last().unwrap()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn python_requests_sse_receives_events_and_resumes_from_a_saved_id() {
    let saved_id = python_requests_sse_resumes_from_a_saved_id(&[]).await;
    assert!(saved_id.starts_with('['), "{saved_id}");
}

#[tokio::test]
async fn python_requests_sse_resumes_from_a_saved_compact_id() {
    let saved_id = python_requests_sse_resumes_from_a_saved_id(&["--id-format", "compact"]).await;
    assert!(saved_id.starts_with("k1~"), "{saved_id}");
}

/// `requests-sse` reads five events from the axum service started with `args`, then a new
/// client resumes from the last id and gets the next five. That saved id.
async fn python_requests_sse_resumes_from_a_saved_id(args: &[&str]) -> String {
    let topic = create_topic(1).await;
    let running = Launch::axum()
        .arg("--stream")
        .arg(format!("pages={topic}"))
        .args(args.iter().copied())
        .start();
    let url = running.url("/v2/stream/pages");
    let first = Client::spawn(
        Command::new(clients_python())
            .arg(clients_dir().join("requests_sse_client.py"))
            .arg(&url)
            .arg("5"),
    );
    // Wait until the client is connected: the stream starts at the live end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    produce_range(&topic, 1, 0..5).await;
    let events = first.events(5);
    assert_eq!(data_numbers(&events), (0..5).collect::<Vec<i64>>());
    first.wait_success();

    let saved_id = events.last().unwrap()["id"].as_str().unwrap().to_owned();
    produce_range(&topic, 1, 5..10).await;
    let resumed = Client::spawn(
        Command::new(clients_python())
            .arg(clients_dir().join("requests_sse_client.py"))
            .arg(&url)
            .arg("5")
            .arg(&saved_id),
    );
    assert_eq!(
        data_numbers(&resumed.events(5)),
        (5..10).collect::<Vec<i64>>()
    );
    resumed.wait_success();
    saved_id
}

#[tokio::test]
async fn python_sseclient_receives_events() {
    let topic = create_topic(1).await;
    produce_range(&topic, 1, 0..5).await;
    let running = service(&topic);
    let client = Client::spawn(
        Command::new(clients_python())
            .arg(clients_dir().join("sseclient_client.py"))
            .arg(running.url("/v2/stream/pages?since=0"))
            .arg("5"),
    );
    let events = client.events(5);
    assert_eq!(data_numbers(&events), (0..5).collect::<Vec<i64>>());
    assert!(events
        .iter()
        .all(|event| event["id"].as_str().unwrap().starts_with('[')));
    client.wait_success();
}

/// Runs curl for a few seconds on a stream that starts at the log start.
fn curl(running: &Running, headers: &[&str]) -> String {
    let mut command = Command::new("curl");
    command.args(["-N", "-s", "--max-time", "4"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(running.url("/v2/stream/pages?since=0"))
        .output()
        .expect("curl runs");
    // 28: the time limit ended the transfer, as intended for an endless stream.
    assert_eq!(output.status.code(), Some(28), "curl: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn curl_reads_sse_and_ndjson() {
    let topic = create_topic(1).await;
    produce_range(&topic, 1, 0..3).await;
    let running = service(&topic);

    let sse = curl(&running, &[]);
    assert!(sse.starts_with(":ok\n\n"), "{sse}");
    let data: Vec<&str> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 3, "{sse}");
    assert_eq!(sse.matches("event: message\n").count(), 3);

    let ndjson = curl(&running, &["Accept: application/json"]);
    let lines: Vec<Value> = ndjson
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{ndjson}");
    assert_eq!(lines[2]["n"], 2);
    assert_eq!(lines[2]["meta"]["offset"], 2);
}

#[tokio::test]
async fn chromium_shows_live_events_on_the_web_page() {
    let topic = create_topic(2).await;
    let other = create_topic(1).await;
    let running = Launch::axum()
        .args(["--stream".to_owned(), format!("other={other}")])
        .args(["--stream".to_owned(), format!("pages={topic}")])
        .start();
    let screenshot_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-clients");
    std::fs::create_dir_all(&screenshot_dir).unwrap();
    let screenshot = screenshot_dir.join("web-page.png");
    let page = Client::spawn(
        Command::new("node")
            .arg(node_script("page.mjs"))
            .arg(running.url("/"))
            .arg("pages")
            .arg("5")
            .arg(&screenshot)
            .arg("60000"),
    );
    // Produce until the page has shown enough (bounded): it starts at the live end. Events
    // come from three wikis, which the chart counts by `server_name`.
    let wikis = [
        "en.wikipedia.org",
        "de.wikipedia.org",
        "commons.wikimedia.org",
    ];
    let mut shown = None;
    for n in 0..300 {
        let wiki = wikis[n as usize % wikis.len()];
        produce(&topic, n % 2, &format!(r#"{{"n":{n},"title":"Page {n}","server_name":"{wiki}","meta":{{"dt":"2026-11-22T12:00:00Z","domain":"{wiki}"}}}}"#), None).await;
        if let Ok(result) = page.events.try_recv() {
            shown = Some(result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = shown.expect("the page showed events");
    assert_eq!(shown["state"], "open");
    let titles = shown["titles"].as_array().unwrap();
    assert!(titles.len() >= 5);
    assert!(
        titles.iter().all(|t| t.as_str().unwrap().contains("Page ")),
        "{titles:?}"
    );
    let resume = id_json(shown["resume"].as_str().unwrap());
    assert_eq!(resume.as_array().unwrap().len(), 2);
    // The chart counted the events per server_name, and drew them.
    let chart = &shown["chart"];
    assert!(chart["total"].as_u64().unwrap() >= 5, "{chart}");
    assert!(chart["bars"].as_u64().unwrap() >= 1, "{chart}");
    assert!(chart["series"].as_u64().unwrap() >= 2, "{chart}");
    let legend = chart["legend"].as_array().unwrap();
    assert!(
        legend
            .iter()
            .all(|entry| wikis.iter().any(|w| entry.as_str().unwrap().contains(w))),
        "{legend:?}"
    );
    assert!(chart["painted"].as_u64().unwrap() > 100, "{chart}");
    assert!(screenshot.exists());
    eprintln!("screenshot of the page: {}", screenshot.display());
    page.wait_success();
}

#[tokio::test]
async fn chromium_page_resumes_from_a_compact_id_in_the_query() {
    let topic = create_topic(2).await;
    let running = Launch::axum()
        .args(["--stream".to_owned(), format!("pages={topic}")])
        .args(["--id-format", "compact"])
        .start();
    let screenshot_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-clients");
    std::fs::create_dir_all(&screenshot_dir).unwrap();
    let page = Client::spawn(
        Command::new("node")
            .arg(node_script("page.mjs"))
            .arg(running.url("/"))
            .arg("pages")
            .arg("5")
            .arg(screenshot_dir.join("web-page-resumed.png"))
            .arg("60000")
            .arg("5"),
    );
    // Produce until the page has shown 5 events, reconnected, and shown 5 more (bounded).
    let mut shown = None;
    for n in 0..300 {
        produce(
            &topic,
            n % 2,
            &format!(r#"{{"n":{n},"title":"Page {n}"}}"#),
            None,
        )
        .await;
        if let Ok(result) = page.events.try_recv() {
            shown = Some(result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = shown.expect("the page showed events, reconnected and showed more");
    assert_eq!(shown["state"], "open");
    // URLSearchParams writes `~` as %7E; the server reads the same id either way.
    let url = shown["url"].as_str().unwrap();
    let query = url.split_once('?').expect("a query").1;
    let sent = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "last-event-id")
        .expect("the page resumed with ?last-event-id=")
        .1;
    assert!(sent.starts_with("k1~"), "{url}");
    let resume = shown["resume"].as_str().unwrap();
    assert!(resume.starts_with("k1~"), "{resume}");
    let mut numbers: Vec<i64> = shown["titles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|title| page_number(title.as_str().unwrap()))
        .collect();
    assert!(numbers.len() >= 10, "{numbers:?}");
    numbers.sort();
    for partition in 0..2 {
        let mine: Vec<i64> = numbers
            .iter()
            .copied()
            .filter(|n| n % 2 == partition)
            .collect();
        let expected: Vec<i64> = (0..mine.len() as i64).map(|k| mine[0] + 2 * k).collect();
        assert_eq!(
            mine, expected,
            "partition {partition}: every event once, none skipped"
        );
    }
    page.wait_success();
}

/// The number in the first "Page N" of a rendered event.
fn page_number(text: &str) -> i64 {
    let digits: String = text
        .split_once("Page ")
        .expect("a page title")
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}
