//! Secrets in the Kafka client configuration never reach a `Debug` string, an error a
//! service prints, or a log line.
//!
//! None of these tests needs a broker: the service points at a closed loopback port.

use std::error::Error as _;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{KafkaSse, StreamRequest};

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
