//! The test bed itself: `scripts/kafka-broker.sh` starts a broker that is slow to become
//! java and never takes another process for its broker; the broker `scripts/with-kafka.sh`
//! started has secured listeners that accept the test credentials and refuse others.
//!
//! Run with `scripts/with-kafka.sh cargo test --test broker_script` (the first test starts
//! a second broker of its own, from the jars the first one was started from).

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{broker_dir, mtls_config, rogue_mtls_config, sasl_ssl_config, tls_file};

/// How long a script may run before the test kills it and fails.
const SCRIPT_WAIT: Duration = Duration::from_secs(120);

/// A script's exit status and output.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `scripts/NAME ARGS...` with `env` added, killing it and failing after
/// [`SCRIPT_WAIT`].
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let mut child = Command::new(&script)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} could not start: {e}", script.display()));
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text)
                .map(|_| text)
                .unwrap_or_default()
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} {args:?} still runs after {SCRIPT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    eprintln!(
        "{name} {args:?}: {}\n{}{}",
        run.status, run.stdout, run.stderr
    );
    run
}

/// A broker directory of the test's own, whose broker is stopped and files deleted on drop.
struct BrokerDir(PathBuf);

impl BrokerDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kafka-sse-script-{}", rand::random::<u64>()));
        std::fs::create_dir(&dir).unwrap();
        BrokerDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// The PID in broker.pid.
    fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.0.join("broker.pid")).expect("broker.pid");
        text.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for BrokerDir {
    fn drop(&mut self) {
        run("kafka-broker.sh", &["stop", self.path()], &[]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The state letter (`R`, `S`, `Z`...) and start time of process `pid`, from
/// /proc/PID/stat; `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(String, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    Some((fields[0].to_owned(), fields[19].to_owned()))
}

fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != "Z" && state != "X")
}

/// A process that does nothing for a minute, standing for one whose PID is in broker.pid.
fn bystander() -> Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

#[test]
fn start_waits_for_a_broker_that_is_slow_to_become_java() {
    // The jars are those scripts/with-kafka.sh fetched; nothing is downloaded here.
    broker_dir();
    let dir = BrokerDir::new();
    let started = run(
        "kafka-broker.sh",
        &["start", dir.path()],
        &[
            ("KAFKA_SSE_TEST_EXEC_DELAY", "2"),
            ("KAFKA_HEAP_OPTS", "-Xms64m -Xmx256m"),
        ],
    );
    assert!(started.status.success(), "start failed: {}", started.stderr);
    assert!(
        started.stdout.trim().starts_with("127.0.0.1:"),
        "{}",
        started.stdout
    );

    let pid = dir.pid();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("kafka.Kafka"),
        "broker.pid names the broker"
    );
    let again = run("kafka-broker.sh", &["start", dir.path()], &[]);
    assert!(again.status.success(), "a second start reuses the broker");
    assert_eq!(again.stdout, started.stdout);
    assert_eq!(dir.pid(), pid);

    let stopped = run("kafka-broker.sh", &["stop", dir.path()], &[]);
    assert!(stopped.status.success(), "stop failed: {}", stopped.stderr);
    assert!(!is_alive(pid), "the broker is gone after stop");
}

#[test]
fn stop_leaves_a_process_with_a_recycled_pid_alone() {
    let dir = BrokerDir::new();
    let mut other = bystander();
    let pid = other.id();
    for recorded in [format!("{pid}"), format!("{pid} 1")] {
        std::fs::write(dir.0.join("broker.pid"), format!("{recorded}\n")).unwrap();
        let stopped = run("kafka-broker.sh", &["stop", dir.path()], &[]);
        assert!(stopped.status.success());
        assert!(
            other.try_wait().unwrap().is_none(),
            "{recorded:?} stopped a bystander"
        );
    }

    let (_, start_time) = proc_stat(pid).unwrap();
    std::fs::write(dir.0.join("broker.pid"), format!("{pid} {start_time}\n")).unwrap();
    let stopped = run("kafka-broker.sh", &["stop", dir.path()], &[]);
    assert!(stopped.status.success());
    assert!(
        other.try_wait().unwrap().is_some(),
        "the process broker.pid truly names is stopped (and the zombie it leaves counts as gone)"
    );
}

#[test]
fn secured_listeners_accept_the_test_credentials_and_refuse_others() {
    let checked = run("kafka-secured.sh", &["check", &broker_dir()], &[]);
    assert!(
        checked.status.success(),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    assert_eq!(
        checked.stdout.matches("ok: ").count(),
        5,
        "{}",
        checked.stdout
    );
}

#[test]
fn secured_client_configs_name_the_test_bed_files() {
    for file in [
        "ca.pem",
        "client.pem",
        "client.key",
        "rogue-client.pem",
        "rogue-client.key",
    ] {
        assert!(Path::new(&tls_file(file)).is_file(), "{file}");
    }
    let sasl = sasl_ssl_config();
    assert_eq!(sasl.get("security.protocol"), Some("SASL_SSL"));
    assert_eq!(sasl.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    for (config, certificate) in [
        (mtls_config(), "client.pem"),
        (rogue_mtls_config(), "rogue-client.pem"),
    ] {
        assert_eq!(config.get("security.protocol"), Some("SSL"));
        assert_eq!(
            config.get("ssl.certificate.location"),
            Some(tls_file(certificate).as_str())
        );
    }
}
