//! Hostile clients at the connection level, against the axum example service on loopback:
//! connections that never finish a request head, idle kept-alive connections, more
//! connections from one address than it may hold, and connections opened and abandoned in a
//! loop. Each is closed within its timeout or refused at its cap, other clients are served
//! meanwhile, and the process's descriptors and memory come back. The cases are in
//! `tests/hostile/connections.jsonl`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::service::{Launch, Running};
use support::{create_topic, produce, WAIT};

/// The header read timeout the tests give the service.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// How long past its timeout a connection may take to be closed: the timer's resolution,
/// a busy machine.
const SLACK: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    why: String,
    send: String,
    then_read_response: bool,
}

fn cases() -> Vec<Case> {
    include_str!("hostile/connections.jsonl")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a case"))
        .collect()
}

fn serving(topic: &str, extra: &[&str]) -> Running {
    let head = format!("{}s", HEAD_TIMEOUT.as_secs());
    Launch::axum()
        .args([
            "--stream",
            &format!("t={topic}"),
            "--header-read-timeout",
            &head,
        ])
        .args(extra.iter().copied())
        .start()
}

fn address(running: &Running) -> SocketAddr {
    running
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("the service's address")
}

/// A connection from `from` (any 127.0.0.0/8 address) to `to`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("a loopback source address");
    socket.connect(&to.into()).expect("connected");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

/// Whether the server closed `stream`, waiting up to `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buffer = [0; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// Whether the server has closed `stream` already, without waiting.
fn closed_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0; 4096];
    let closed = match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Reads one whole response whose body has a Content-Length.
fn read_response(stream: &mut TcpStream) -> String {
    let deadline = Instant::now() + WAIT;
    let mut text = Vec::new();
    let mut buffer = [0; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = stream.read(&mut buffer) {
            text.extend_from_slice(&buffer[..n]);
        }
        let so_far = String::from_utf8_lossy(&text).into_owned();
        if let Some((head, body)) = so_far.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return so_far;
            }
        }
    }
    panic!("no whole response within the wait");
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// The service's open descriptors once it has served a stream and a plain request, so that
/// librdkafka's broker connections, opened on first use, are in the count.
async fn warmed_up_descriptors(running: &Running) -> usize {
    let stream = running.open("/v2/stream/t").await;
    drop(stream);
    let _ = running.get("/v2/streams").await;
    // A shared stream retires a moment after its last client.
    tokio::time::sleep(Duration::from_secs(2)).await;
    open_descriptors(running.pid())
}

/// Waits until the process's descriptors are back to at most `baseline`.
async fn descriptors_back_to(pid: u32, baseline: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = open_descriptors(pid);
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_hostile_connection_is_closed_within_its_timeout() {
    let topic = create_topic(1).await;
    let running = serving(&topic, &[]);
    let to = address(&running);
    let baseline = warmed_up_descriptors(&running).await;
    for case in cases() {
        let mut held: Vec<TcpStream> = (0..10).map(|_| connect_from([127, 0, 0, 1], to)).collect();
        for stream in &mut held {
            stream.write_all(case.send.as_bytes()).unwrap();
            if case.then_read_response {
                let response = read_response(stream);
                assert!(
                    response.starts_with("HTTP/1.1 200"),
                    "{}: {response}",
                    case.name
                );
            }
        }
        let started = Instant::now();
        for stream in &mut held {
            assert!(
                closed_within(stream, HEAD_TIMEOUT + SLACK),
                "{} ({}): still open after {:?}",
                case.name,
                case.why,
                started.elapsed()
            );
        }
        assert!(
            started.elapsed() >= HEAD_TIMEOUT - Duration::from_millis(500),
            "{}: closed before its timeout",
            case.name
        );
        eprintln!(
            "{}: all 10 closed {:?} after the request",
            case.name,
            started.elapsed()
        );
    }
    let now = descriptors_back_to(running.pid(), baseline).await;
    assert!(now <= baseline, "descriptors: {now}, baseline {baseline}");
}

#[tokio::test]
async fn slow_headers_over_an_address_cap_cannot_lock_out_other_clients() {
    let topic = create_topic(1).await;
    let running = serving(&topic, &["--max-open-connections-per-ip", "16"]);
    let to = address(&running);
    let mut hostile: Vec<TcpStream> = (0..40).map(|_| connect_from([127, 0, 0, 2], to)).collect();
    for stream in &mut hostile {
        let _ = stream.write_all(b"GET /v2/streams HTTP/1.1\r\nHost: x\r\n");
    }
    // Over the cap, connections are closed at once; the rest wait for their timeout.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed_at_once = hostile
        .iter_mut()
        .map(closed_now)
        .filter(|&closed| closed)
        .count();
    assert_eq!(closed_at_once, 24, "40 connections, 16 allowed");

    let mut stream = running.open("/v2/stream/t").await;
    produce(&topic, 0, r#"{"n":1}"#, None).await;
    assert_eq!(stream.next_json().await["n"], 1, "another client is served");
    assert!(running
        .log_text()
        .contains("an address holds the most connections allowed"));
}

#[tokio::test]
async fn at_the_open_connection_cap_the_service_stops_accepting_and_catches_up_later() {
    let topic = create_topic(1).await;
    let running = serving(&topic, &["--max-open-connections", "8"]);
    let to = address(&running);
    let _silent: Vec<TcpStream> = (0..8).map(|_| connect_from([127, 0, 0, 3], to)).collect();
    // Give the service the moment it needs to accept those eight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut waiting = connect_from([127, 0, 0, 1], to);
    waiting
        .write_all(b"GET /v2/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = [0; 1];
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        waiting.read(&mut first).is_err(),
        "not accepted while the cap is reached"
    );
    // The silent connections time out; the waiting one is then accepted and answered.
    waiting
        .set_read_timeout(Some(HEAD_TIMEOUT + SLACK))
        .unwrap();
    let response = read_response(&mut waiting);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(running.log_text().contains("open connection cap reached"));
}

#[tokio::test]
async fn connections_opened_and_abandoned_in_a_loop_leave_memory_and_descriptors_bounded() {
    let topic = create_topic(1).await;
    let running = serving(&topic, &[]);
    let to = address(&running);
    let pid = running.pid();
    let baseline_files = warmed_up_descriptors(&running).await;
    let baseline_kib = resident_kib(pid);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut opened = 0;
    while opened < 3000 && Instant::now() < deadline {
        let mut stream = connect_from([127, 0, 0, 4], to);
        let _ = stream.write_all(b"GET /v2/stream/t HTTP/1.1\r\nHo");
        drop(stream);
        opened += 1;
    }
    assert!(opened >= 1000, "only {opened} connections in 30 s");
    let files = descriptors_back_to(pid, baseline_files).await;
    assert!(
        files <= baseline_files,
        "descriptors: {files}, baseline {baseline_files}"
    );
    // The stated bound: abandoned connections hold no memory once closed.
    let grown_kib = resident_kib(pid).saturating_sub(baseline_kib);
    eprintln!(
        "{opened} connections opened and abandoned: resident memory {baseline_kib} KiB before, \
         grew {grown_kib} KiB; descriptors {baseline_files} before, {files} after"
    );
    assert!(
        grown_kib < 32 * 1024,
        "resident memory grew by {grown_kib} KiB after {opened} connections"
    );
}
