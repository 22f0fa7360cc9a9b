//! Restart storms against the real broker: a crowd of WHATWG EventSource clients (npm
//! `eventsource` 5.x, which closes for good on any answer but 200, as browsers do) follows
//! one stream of the axum service, and every client comes back by itself after the service
//! is killed, or while Kafka is away, with every event exactly once. The Kafka consumers the
//! service opens stay within a small bound, not one per client.
//!
//! Alone in its own test binary, since one test takes the shared test broker away; the two
//! tests take turns.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::service::{restartable_axum, Running};
use support::{broker, create_topic, produce};

/// How many EventSource clients follow the stream.
const CROWD: usize = 1000;

/// The most Kafka consumers the service may open at once while the crowd comes back: the
/// live shared stream, a catch-up stream for the clients' common resume point, and a few
/// for clients that were mid-way through a batch of events when the service died.
const CONSUMER_BOUND: f64 = 8.0;

static TAKE_TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The crowd's Node process; killed when dropped.
struct Crowd {
    child: Child,
    lines: Receiver<String>,
}

impl Crowd {
    fn start(url: &str, expected: usize) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
        assert!(
            dir.join("node_modules/eventsource").exists(),
            "the Node clients are missing: run scripts/install-test-clients.sh (scripts/test.sh does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("crowd.mjs"))
            .args([url, &CROWD.to_string(), &expected.to_string(), "150000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the crowd");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Crowd { child, lines }
    }

    /// Waits for a line starting with `prefix`, returning the lines up to it.
    fn wait_for(&self, prefix: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no {prefix:?} from the crowd within {within:?}: {seen:?}"),
            }
        }
    }

    /// Waits for the crowd to finish and returns its summary line.
    fn finish(mut self) -> serde_json::Value {
        let lines = self.wait_for("{", Duration::from_secs(180));
        let status = self.child.wait().expect("the crowd exits");
        let summary: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert!(
            status.success(),
            "not every client got every event once: {summary}"
        );
        summary
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn produce_numbers(topic: &str, range: std::ops::Range<usize>) {
    for n in range {
        produce(topic, 0, &format!(r#"{{"n":{n}}}"#), None).await;
    }
}

/// The sum of a metric's samples in Prometheus text, 0 when absent.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A metric of the service, 0 when absent.
async fn metric(service: &Running, name: &str) -> f64 {
    let response = support::service::client()
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("the service answers");
    gauge(&response.text().await.unwrap_or_default(), name)
}

/// Samples the service's `kafka_sse_consumers` gauge until aborted, keeping the most seen.
fn sample_most_consumers(service: &Running) -> (tokio::task::JoinHandle<()>, Arc<Mutex<f64>>) {
    let most = Arc::new(Mutex::new(0.0_f64));
    let url = service.url("/metrics");
    let kept = most.clone();
    let sampler = tokio::spawn(async move {
        let client = support::service::client();
        loop {
            if let Ok(response) = client.get(&url).send().await {
                let text = response.text().await.unwrap_or_default();
                let now = gauge(&text, "kafka_sse_consumers");
                let mut most = kept.lock().unwrap();
                *most = most.max(now);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (sampler, most)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_comes_back_after_the_service_is_killed_with_every_event_once() {
    let _turn = TAKE_TURNS.lock().await;
    let topic = create_topic(1).await;
    let launch = restartable_axum("storm", &topic);
    let running = launch();
    let crowd = Crowd::start(&running.url("/v2/stream/storm"), 40);
    crowd.wait_for("open", Duration::from_secs(60));
    produce_numbers(&topic, 0..10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL: no goodbye, no last frame. Events come while the service is away, and then
    // every client comes back at once.
    drop(running);
    produce_numbers(&topic, 10..30).await;
    let running = launch();
    let (sampler, most) = sample_most_consumers(&running);
    tokio::time::sleep(Duration::from_secs(2)).await;
    produce_numbers(&topic, 30..40).await;
    let summary = tokio::task::spawn_blocking(move || crowd.finish())
        .await
        .unwrap();
    sampler.abort();

    assert_eq!(summary["closed"], 0, "no client closed for good: {summary}");
    let most = *most.lock().unwrap();
    eprintln!("{CROWD} resuming clients: {most} Kafka consumers at most; {summary}");
    assert!(
        (1.0..=CONSUMER_BOUND).contains(&most),
        "{most} Kafka consumers at once for {CROWD} resuming clients"
    );
    assert_eq!(
        metric(&running, "kafka_sse_requests_refused_total").await,
        0.0,
        "no client was turned away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_comes_back_while_kafka_is_away_with_every_event_once() {
    let _turn = TAKE_TURNS.lock().await;
    let topic = create_topic(1).await;
    let launch = restartable_axum("storm", &topic);
    let running = launch();
    let crowd = Crowd::start(&running.url("/v2/stream/storm"), 30);
    crowd.wait_for("open", Duration::from_secs(60));
    produce_numbers(&topic, 0..10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Kafka goes away, and the service restarts meanwhile: every client comes back to a
    // service that cannot reach Kafka, and is told to retry rather than to give up.
    broker("stop");
    drop(running);
    let running = launch();
    let (sampler, most) = sample_most_consumers(&running);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let refused = metric(&running, "kafka_sse_requests_refused_total").await;
    broker("start");
    produce_numbers(&topic, 10..30).await;
    let summary = tokio::task::spawn_blocking(move || crowd.finish())
        .await
        .unwrap();
    sampler.abort();

    assert_eq!(summary["closed"], 0, "no client closed for good: {summary}");
    assert!(refused > 0.0, "clients came back while Kafka was away");
    let most = *most.lock().unwrap();
    eprintln!("{CROWD} resuming clients: {most} Kafka consumers at most; {summary}");
    assert!(
        most <= CONSUMER_BOUND,
        "{most} Kafka consumers at once for {CROWD} resuming clients"
    );
}
