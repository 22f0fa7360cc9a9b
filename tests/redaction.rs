//! Secrets in the Kafka client configuration never reach a `Debug` string, an error a
//! service prints, or a log line.
//!
//! None of these tests needs a broker: the services point at a closed loopback port.

use std::error::Error as _;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{KafkaSse, StreamRequest};

mod support;

/// The secret settings of a Kafka client, each with a value found nowhere else.
const SECRETS: [(&str, &str); 3] = [
    ("sasl.password", "sasl-pw-7c1d0f9e"),
    ("ssl.key.password", "key-pw-41b9e2aa"),
    ("sasl.oauthbearer.client.secret", "oidc-secret-d83a5561"),
];

/// A SASL client configuration for a port where nothing listens.
fn sasl_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "kafka-sse");
    config
}

fn assert_no_secret(what: &str, text: &str) {
    for (name, secret) in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} shows the {name} value:\n{text}"
        );
    }
}

/// An error as a service prints it: its message, then every source's (what `anyhow`
/// prints for `{:#}` and `{:?}`), and its own `Debug`.
fn printed(error: &kafka_sse::Error) -> String {
    let mut text = format!("{error} / {error:?} / {error:#?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

#[test]
fn builder_debug_shows_no_secret() {
    let mut config = sasl_config();
    for (name, secret) in SECRETS {
        config.set(name, secret);
    }
    let builder = KafkaSse::builder(config).heartbeat(Duration::from_secs(5));
    assert_no_secret("the builder's Debug", &format!("{builder:?} {builder:#?}"));
}

#[test]
fn service_debug_shows_no_secret() {
    let mut config = sasl_config();
    config.set("sasl.password", SECRETS[0].1);
    let sse = KafkaSse::builder(config)
        .build()
        .unwrap_or_else(|error| panic!("a SASL/PLAIN service builds: {}", printed(&error)));
    assert_no_secret(
        "the service's Debug",
        &format!("{sse:?} {:#?}", sse.clone()),
    );
}

/// Every secret setting, alone: librdkafka may refuse it (a build without OpenSSL or
/// libcurl refuses `ssl.*` and OIDC settings), and then the error must not carry the
/// value. So for a misspelt setting name, whose value is still a secret.
#[test]
fn configuration_errors_show_no_secret() {
    let settings = SECRETS
        .iter()
        .copied()
        .chain([("sasl.pasword", SECRETS[0].1)]);
    for (name, secret) in settings {
        let mut config = sasl_config();
        config.set(name, secret);
        let builder = KafkaSse::builder(config);
        assert_no_secret("the builder's Debug", &format!("{builder:?}"));
        match builder.build() {
            Ok(sse) => assert_no_secret("the service's Debug", &format!("{sse:?}")),
            Err(error) => assert_no_secret(
                &format!("the error for a client configuration with {name}"),
                &printed(&error),
            ),
        }
    }
}

/// Collects every log line of this test binary.
#[derive(Debug, Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures `tracing` events and `log` records (librdkafka's, through rdkafka) at every
    /// level, from now on.
    fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .try_init()
                .expect("the only subscriber of this test binary");
            logs
        })
        .clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_and_request_logs_show_no_secret() {
    // Before the configuration: rdkafka picks librdkafka's log level when it is created.
    let logs = Logs::capture();
    let mut config = sasl_config();
    config
        .set("sasl.password", SECRETS[0].1)
        .set("debug", "all");
    let sse = KafkaSse::builder(config)
        .lookup_timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_else(|error| panic!("a SASL/PLAIN service builds: {}", printed(&error)));
    let refused = sse
        .stream(StreamRequest::new(["recentchange"]))
        .await
        .expect_err("nothing listens on the broker port");
    assert_no_secret("a refused request's error", &printed(&refused));
    drop(sse);

    let text = logs.text();
    assert!(
        text.contains("librdkafka") && text.contains("could not open a stream"),
        "librdkafka's and the library's log lines are captured:\n{text}"
    );
    assert_no_secret("the logs", &text);
}

/// The example service's ways to take a secret, each run against a closed loopback port:
/// its log (librdkafka's lines at every level included), `/healthz` and a refused stream's
/// problem show none of [`SECRETS`].
mod service {
    use super::{assert_no_secret, SECRETS};

    use crate::support::service::Launch;

    /// A loopback port nothing listens on: bound, then released.
    fn closed_port() -> String {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .to_string()
    }

    /// The axum service against a closed port, logging everything, with `args`.
    fn launch(args: &[String]) -> Launch {
        Launch::axum()
            .brokers(&closed_port())
            .env("RUST_LOG", "trace")
            .args(["--stream", "rc=recentchange"])
            .args(["--kafka", "security.protocol=SASL_PLAINTEXT"])
            .args([
                "--kafka",
                "sasl.mechanism=PLAIN",
                "--kafka",
                "sasl.username=kafka-sse",
            ])
            .args(["--kafka", "debug=all"])
            .args(args.iter().cloned())
    }

    /// Writes `text` to a new file and returns its path.
    fn temp_file(name: &str, text: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{:08x}", rand::random::<u32>()));
        std::fs::write(&path, text).expect("the file is written");
        path.display().to_string()
    }

    /// Starts the service, asks `/healthz` and for a stream, and checks the answers and the
    /// log for secrets.
    async fn shows_no_secret(what: &str, launch: Launch) {
        let service = launch.start();
        let health = service.problem("/healthz").await;
        assert_eq!(health.status, 503, "{what}: nothing listens");
        let stream = service
            .get_with("/v2/stream/rc", &[("accept", "application/json")])
            .await;
        assert_eq!(stream.status(), 503, "{what}");
        let body = stream.text().await.expect("a problem body");
        assert_no_secret(&format!("{what}: /healthz"), &health.body.to_string());
        assert_no_secret(&format!("{what}: the stream's problem"), &body);
        let log = service.log_text();
        assert!(
            log.contains("librdkafka"),
            "{what}: librdkafka logs:\n{log}"
        );
        assert_no_secret(&format!("{what}: the log"), &log);
    }

    /// The secrets a default build accepts (OIDC settings need the `curl` feature).
    const ACCEPTED: &[(&str, &str)] = &[SECRETS[0], SECRETS[1]];

    #[tokio::test(flavor = "multi_thread")]
    async fn secrets_given_by_flag_env_file_or_config_file_never_show() {
        let by_flag: Vec<String> = ACCEPTED
            .iter()
            .flat_map(|(key, secret)| ["--kafka".to_owned(), format!("{key}={secret}")])
            .collect();
        let mut by_env = Vec::new();
        let mut env = Vec::new();
        let mut by_file = Vec::new();
        let mut table = String::from("[[stream]]\nname = \"other\"\ntopics = [\"t\"]\n[kafka]\n");
        for (n, (key, secret)) in ACCEPTED.iter().enumerate() {
            let var = format!("REDACTION_SECRET_{n}");
            by_env.extend(["--kafka-from-env".to_owned(), format!("{key}={var}")]);
            env.push((var, secret.to_string()));
            let file = temp_file("secret", &format!("{secret}\n"));
            by_file.extend(["--kafka-from-file".to_owned(), format!("{key}={file}")]);
            table.push_str(&format!("\"{key}\" = \"{secret}\"\n"));
        }
        let config = temp_file("streams.toml", &table);
        let mut from_env = launch(&by_env);
        for (var, secret) in &env {
            from_env = from_env.env(var, secret);
        }
        tokio::join!(
            shows_no_secret("--kafka", launch(&by_flag)),
            shows_no_secret("--kafka-from-env", from_env),
            shows_no_secret("--kafka-from-file", launch(&by_file)),
            shows_no_secret("the config file", launch(&["--config".to_owned(), config])),
        );
    }

    #[test]
    fn start_up_errors_show_no_secret() {
        let (key, secret) = SECRETS[0];
        let bad_toml = temp_file(
            "streams.toml",
            &format!("[kafka]\n\"{key}\" = \"{secret}\n"),
        );
        let bad_type = temp_file(
            "streams.toml",
            &format!("[kafka]\n\"{key}\" = [\"{secret}\"]\n"),
        );
        let cases: [(&str, Vec<String>, &str); 6] = [
            (
                "a --kafka without '='",
                vec!["--kafka".into(), format!("{key}:{secret}")],
                "KEY=VALUE",
            ),
            (
                "a property given twice",
                vec![
                    "--kafka".into(),
                    format!("{key}={secret}"),
                    "--kafka-from-env".into(),
                    format!("{key}=SOME_VAR"),
                ],
                "twice",
            ),
            (
                "a misspelt property librdkafka refuses",
                vec!["--kafka".into(), format!("sasl.pasword={secret}")],
                "sasl.pasword",
            ),
            (
                "an unset environment variable",
                vec!["--kafka-from-env".into(), format!("{key}=UNSET_{secret}")],
                "is not set",
            ),
            (
                "a config file that is not TOML",
                vec!["--config".into(), bad_toml],
                "line 2",
            ),
            (
                "a config file value of the wrong type",
                vec!["--config".into(), bad_type],
                key,
            ),
        ];
        for (what, args, named) in cases {
            let (status, log) = launch(&args).start_expecting_exit();
            assert!(!status.success(), "{what}: the service refuses to start");
            assert!(log.contains(named), "{what}: {named:?} is named:\n{log}");
            let shown = log.replace(&format!("UNSET_{secret}"), "UNSET_VAR");
            assert_no_secret(what, &shown);
        }
    }
}
