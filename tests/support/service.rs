//! Helpers for the example-service tests: run an example binary as a process on a free
//! loopback port, and talk to it over HTTP with reqwest and an SSE parser.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{brokers, WAIT};

/// The two example services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    Axum,
    Hyper,
}

impl Example {
    fn binary_name(self) -> &'static str {
        match self {
            Example::Axum => "axum_service",
            Example::Hyper => "hyper_service",
        }
    }
}

/// The example's binary, as `cargo build --examples` (and `cargo test --all-targets`)
/// leaves it next to this test's own binary.
///
/// # Panics
///
/// When it is missing or older than the sources: a test of a stale binary proves nothing.
pub fn example_binary(example: Example) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let name = format!("{}{}", example.binary_name(), std::env::consts::EXE_SUFFIX);
    let binary = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "the example binary {} is missing. Build the examples first: \
                 `cargo build --examples`, or run the tests with `cargo test --all-targets` \
                 (scripts/test.sh does)",
                binary.display()
            )
        });
    if let Some(input) = newest_input(&binary) {
        assert!(
            built >= input,
            "the example binary {} is older than its sources; rebuild it with \
             `cargo build --examples`",
            binary.display()
        );
    }
    binary
}

/// The newest modification time among the inputs cargo's dep-info file (`<binary>.d`)
/// lists for `binary`.
fn newest_input(binary: &Path) -> Option<SystemTime> {
    let dep_info = std::fs::read_to_string(binary.with_extension("d")).ok()?;
    let (_, inputs) = dep_info.lines().next()?.split_once(": ")?;
    inputs
        .replace("\\ ", "\0")
        .split_whitespace()
        .filter_map(|input| std::fs::metadata(input.replace('\0', " ")).ok())
        .filter_map(|metadata| metadata.modified().ok())
        .max()
}

/// The python of the virtualenv that `scripts/install-test-clients.sh` fills with the
/// Python clients and tools (requests-sse, sseclient-py, openapi-spec-validator).
///
/// # Panics
///
/// When it is missing.
pub fn clients_python() -> PathBuf {
    let cache = std::env::var("KAFKA_SSE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/kafka-sse")
        });
    let python = cache.join("clients-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-clients.sh (scripts/test.sh does)",
        python.display()
    );
    python
}

/// How to start an example service.
#[derive(Debug, Clone)]
pub struct Launch {
    example: Example,
    args: Vec<String>,
    brokers: Brokers,
    listen: String,
    env: Vec<(String, String)>,
}

/// The `--brokers` a service is started with.
#[derive(Debug, Clone)]
enum Brokers {
    /// The test broker's plaintext listener ([`brokers`]).
    TestBroker,
    /// None: the embedded demo cluster, or what the other arguments name.
    Omitted,
    Given(String),
}

impl Launch {
    /// The axum service against the test broker.
    pub fn axum() -> Self {
        Launch::new(Example::Axum)
    }

    /// The hyper service against the test broker.
    pub fn hyper() -> Self {
        Launch::new(Example::Hyper)
    }

    fn new(example: Example) -> Self {
        Launch {
            example,
            args: Vec::new(),
            brokers: Brokers::TestBroker,
            listen: "127.0.0.1:0".to_owned(),
            env: Vec::new(),
        }
    }

    /// Without `--brokers`: the embedded demo cluster, unless `bootstrap.servers` is given
    /// another way (`--kafka`, the config file).
    pub fn demo(mut self) -> Self {
        self.brokers = Brokers::Omitted;
        self
    }

    /// Without `--brokers`: the same as [`Launch::demo`], for a service told its brokers
    /// another way.
    pub fn without_brokers_flag(self) -> Self {
        self.demo()
    }

    /// Against these brokers instead of the test broker.
    pub fn brokers(mut self, brokers: &str) -> Self {
        self.brokers = Brokers::Given(brokers.to_owned());
        self
    }

    /// With this environment variable set for the service.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Listens on `address` instead of a free port chosen by the system, so a restarted
    /// service comes back where its clients reconnect.
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn command(&self, log: &Path) -> Command {
        let mut command = Command::new(example_binary(self.example));
        command
            .arg("--listen")
            .arg(&self.listen)
            .args(&self.args)
            .env_remove("KAFKA_BROKERS")
            .env(
                "RUST_LOG",
                "info,axum_service=debug,hyper_service=debug,kafka_sse=debug",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).expect("a log file for the service"));
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        match &self.brokers {
            Brokers::TestBroker => {
                command.arg("--brokers").arg(brokers());
            }
            Brokers::Given(brokers) => {
                command.arg("--brokers").arg(brokers);
            }
            Brokers::Omitted => {}
        }
        command
    }

    /// Starts the service and waits until it listens.
    ///
    /// # Panics
    ///
    /// When it exits or does not listen within [`WAIT`]; the message names its log.
    pub fn start(self) -> Running {
        let log = log_path(self.example);
        let mut child = self.command(&log).spawn().expect("the example starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let mut running = Running {
            child,
            base: String::new(),
            log,
            client: client(),
        };
        match receiver.recv_timeout(WAIT) {
            Ok(base) => running.base = base,
            Err(_) => panic!(
                "the {:?} service did not start listening (exit: {:?}); its log:\n{}",
                self.example,
                running.child.try_wait(),
                running.log_text()
            ),
        }
        running
    }

    /// Runs the service with arguments it must refuse, and returns its exit status and
    /// log.
    ///
    /// # Panics
    ///
    /// When it is still running after [`WAIT`].
    pub fn start_expecting_exit(self) -> (ExitStatus, String) {
        let log = log_path(self.example);
        let mut child = self.command(&log).spawn().expect("the example starts");
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the example") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the service kept running; it should have refused its arguments");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }
}

fn log_path(example: Example) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("service-logs");
    std::fs::create_dir_all(&dir).expect("the service log directory");
    dir.join(format!(
        "{}-{:08x}.log",
        example.binary_name(),
        rand::random::<u32>()
    ))
}

/// A `launch` for the axum service with one stream, on a loopback address fixed for all its
/// calls: a restarted service comes back where its clients reconnect.
pub fn restartable_axum(stream: &str, topic: &str) -> impl Fn() -> Running {
    restartable_axum_with(stream, topic, &[])
}

/// [`restartable_axum`] with more command-line arguments.
pub fn restartable_axum_with(stream: &str, topic: &str, args: &[&str]) -> impl Fn() -> Running {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .to_string();
    let stream = format!("{stream}={topic}");
    move || {
        Launch::axum()
            .listen(address.clone())
            .arg("--stream")
            .arg(stream.clone())
            .args(args.clone())
            .start()
    }
}

/// An HTTP client that never goes through a proxy: every service here is on loopback.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

/// A running example service; killed when dropped.
#[derive(Debug)]
pub struct Running {
    child: Child,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl Running {
    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by [`WAIT`]) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("waiting for the service") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The service's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with `headers`, answered within [`WAIT`].
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        tokio::time::timeout(WAIT, request.send())
            .await
            .unwrap_or_else(|_| panic!("GET {path} answered within the wait"))
            .unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &[]).await
    }

    /// Opens a stream, which must answer 200 with an SSE body.
    pub async fn open(&self, path: &str) -> Sse {
        self.open_with(path, &[]).await
    }

    pub async fn open_with(&self, path: &str, headers: &[(&str, &str)]) -> Sse {
        let response = self.get_with(path, headers).await;
        let status = response.status();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("GET {path} answered {status}: {body}");
        }
        Sse::new(response)
    }

    /// Sends a request and expects a problem document.
    pub async fn problem(&self, path: &str) -> Problem {
        Problem::read(self.get(path).await).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An open SSE response, parsed with eventsource-stream.
pub struct Sse {
    pub headers: HeaderMap,
    events: Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>,
}

impl Sse {
    pub fn new(response: reqwest::Response) -> Self {
        let headers = response.headers().clone();
        let events = response
            .bytes_stream()
            .eventsource()
            .map(|event| event.map_err(|error| error.to_string()));
        Sse {
            headers,
            events: Box::pin(events),
        }
    }

    /// The next event, or `None` when the stream ended.
    ///
    /// # Panics
    ///
    /// When nothing comes within [`WAIT`], or a frame is malformed.
    pub async fn next_or_end(&mut self) -> Option<Event> {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an event or the end within the wait")
            .map(|event| event.expect("a well-formed event"))
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Event {
        self.next_or_end().await.expect("the stream goes on")
    }

    /// The next event's data as JSON.
    pub async fn next_json(&mut self) -> Value {
        let event = self.next_event().await;
        serde_json::from_str(&event.data).expect("event data is JSON")
    }

    /// The data of the events up to and including the first whose `field` equals `value`.
    ///
    /// # Panics
    ///
    /// After 1000 events without it.
    pub async fn json_until(&mut self, field: &str, value: &Value) -> Vec<Value> {
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let event = self.next_json().await;
            let last = event[field] == *value;
            seen.push(event);
            if last {
                return seen;
            }
        }
        panic!("no event with {field} = {value} among the first 1000");
    }
}

/// A problem response: status, headers and the RFC 9457 body.
#[derive(Debug)]
pub struct Problem {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Problem {
    /// Reads a problem response.
    ///
    /// # Panics
    ///
    /// When it is not `application/problem+json` with `type`, `title`, `status` and
    /// `detail`.
    pub async fn read(response: reqwest::Response) -> Problem {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "a {status} answer is a problem document"
        );
        let body: Value = response.json().await.expect("a JSON problem body");
        assert_eq!(body["status"], status, "{body}");
        for field in ["type", "title", "detail"] {
            assert!(body[field].is_string(), "problem without {field}: {body}");
        }
        Problem {
            status,
            headers,
            body,
        }
    }

    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}
