//! Streams from the test broker's secured listeners, over real TLS: SASL_SSL with
//! SCRAM-SHA-512, and mutual TLS; and what a wrong password, an unknown user or a client
//! certificate the broker does not trust looks like, to the library and to the axum service.
//!
//! Topics are created and filled over the plaintext listener; only the streams under test
//! read over the secured ones.

mod support;

use std::time::{Duration, Instant};

use kafka_sse::rdkafka::ClientConfig;
use kafka_sse::{Error, KafkaSse, StreamRequest};
use serde_json::{json, Value};
use support::service::Launch;
use support::{
    create_topic, mtls_config, numbers, produce_numbers, rogue_mtls_config, sasl_ssl_config,
    sasl_ssl_config_as, tls_file, Reader,
};

/// The look-up timeout of the refusal tests: a refusal must be reported within it.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// How much later than the look-up timeout a refusal may arrive: scheduling, the drain of
/// the client's events.
const SLACK: Duration = Duration::from_secs(2);

fn test_bed(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by scripts/with-kafka.sh"))
}

/// Streams a topic with `config` from offset 0, then resumes from the id of the second
/// event, and expects exactly the messages after it.
async fn streams_and_resumes_exactly(config: ClientConfig) {
    let topic = create_topic(2).await;
    produce_numbers(&topic, 0, 0..3).await;
    produce_numbers(&topic, 1, 3..5).await;
    let sse = KafkaSse::builder(config)
        .build()
        .expect("a service for the secured listener");
    let from_start = json!([
        {"topic": topic, "partition": 0, "offset": 0},
        {"topic": topic, "partition": 1, "offset": 0},
    ])
    .to_string();

    let request = StreamRequest::new([topic.clone()]).last_event_id(from_start);
    let mut reader = Reader::new(sse.stream(request).await.expect("a stream over TLS"));
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let event = reader.next_event().await;
        seen.push(event.data);
        ids.push(event.id);
    }
    let mut all = seen.clone();
    all.sort();
    assert_eq!(all, numbers(0..5));

    let request = StreamRequest::new([topic.clone()]).last_event_id(ids[1].clone());
    let mut resumed = Reader::new(sse.stream(request).await.expect("a resumed stream"));
    let mut rest = resumed.data(3).await;
    rest.sort();
    let mut after = seen[2..].to_vec();
    after.sort();
    assert_eq!(
        rest, after,
        "exactly the messages after the second event's id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_resumes_exactly_over_sasl_ssl_with_scram() {
    streams_and_resumes_exactly(sasl_ssl_config()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_and_resumes_exactly_over_mutual_tls() {
    streams_and_resumes_exactly(mtls_config()).await;
}

/// The error of a stream request and of a health check with `config`, each within the
/// look-up timeout.
async fn refusal(config: ClientConfig) -> (Error, Error) {
    let sse = KafkaSse::builder(config)
        .lookup_timeout(LOOKUP_TIMEOUT)
        .build()
        .expect("a service: the client is refused only when it connects");
    let started = Instant::now();
    let refused = sse
        .stream(StreamRequest::new(["any-topic"]))
        .await
        .expect_err("the broker refuses the client");
    assert!(
        started.elapsed() < LOOKUP_TIMEOUT + SLACK,
        "refused after {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let unhealthy = sse.check_kafka().await.expect_err("kafka is not reachable");
    assert!(started.elapsed() < LOOKUP_TIMEOUT + SLACK);
    (refused, unhealthy)
}

/// The error with its sources, as the service logs it.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn assert_refused(errors: (Error, Error), cause: &str, secret: &str) {
    for error in [errors.0, errors.1] {
        assert!(
            matches!(error, Error::KafkaAuthentication { .. }),
            "{error:?}"
        );
        assert_eq!(error.status_code(), 503);
        assert_eq!(error.kind(), "kafka-authentication-failed");
        let logged = chain(&error);
        assert!(logged.contains(cause), "{cause:?} not in: {logged}");
        let shown = format!("{logged} {error:?} {}", error.problem().detail);
        assert!(!shown.contains(secret), "the secret shows: {shown}");
        assert_eq!(
            error.problem().detail,
            "Kafka is unavailable; try again later"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_an_unknown_user_and_an_untrusted_certificate_are_named_in_time() {
    let user = test_bed("KAFKA_SCRAM_USER");
    let (wrong_password, unknown_user, rogue) = tokio::join!(
        refusal(sasl_ssl_config_as(&user, "wrong-pw-5a0c93")),
        refusal(sasl_ssl_config_as("nobody-0b7e", "unknown-pw-22d1f4")),
        refusal(rogue_mtls_config()),
    );
    assert_refused(
        wrong_password,
        "SASL authentication error",
        "wrong-pw-5a0c93",
    );
    assert_refused(
        unknown_user,
        "SASL authentication error",
        "unknown-pw-22d1f4",
    );
    assert_refused(rogue, "SSL", "-----BEGIN");
}

/// The librdkafka properties of the SASL_SSL listener for `user` as `--kafka` flags,
/// without the password.
fn sasl_ssl_flags(user: &str) -> Vec<String> {
    let flags = [
        "security.protocol=SASL_SSL".to_owned(),
        format!("ssl.ca.location={}", tls_file("ca.pem")),
        "sasl.mechanism=SCRAM-SHA-512".to_owned(),
        format!("sasl.username={user}"),
    ];
    flags
        .into_iter()
        .flat_map(|flag| ["--kafka".to_owned(), flag])
        .collect()
}

/// Produces five numbers to a new topic, reads them from `stream` on `service`, resumes
/// from the second event's id, and expects exactly the three after it.
async fn service_streams_and_resumes(service: &support::service::Running, topic: &str) {
    produce_numbers(topic, 0, 0..5).await;
    let first = json!([{"topic": topic, "partition": 0, "offset": 0}]).to_string();
    let mut stream = service
        .open_with("/v2/stream/rc", &[("last-event-id", &first)])
        .await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let event = stream.next_json().await;
        assert_eq!(event["n"], n);
        ids.push(service_id(&event));
    }
    drop(stream);
    let mut resumed = service
        .open_with("/v2/stream/rc", &[("last-event-id", &ids[1])])
        .await;
    for n in 2..5 {
        assert_eq!(resumed.next_json().await["n"], n);
    }
}

/// The id a client resumes from after `event`: its `meta` names the offset read.
fn service_id(event: &Value) -> String {
    let meta = &event["meta"];
    let next = meta["offset"].as_i64().expect("meta.offset") + 1;
    json!([{"topic": meta["topic"], "partition": meta["partition"], "offset": next}]).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_service_streams_over_sasl_ssl_from_its_flags_with_the_password_from_env() {
    let topic = create_topic(1).await;
    let service = Launch::axum()
        .brokers(&test_bed("KAFKA_SASL_SSL_BROKERS"))
        .args(sasl_ssl_flags(&test_bed("KAFKA_SCRAM_USER")))
        .args(["--kafka-from-env", "sasl.password=STREAMS_KAFKA_PASSWORD"])
        .env("STREAMS_KAFKA_PASSWORD", &test_bed("KAFKA_SCRAM_PASSWORD"))
        .args(["--stream", &format!("rc={topic}")])
        .start();
    assert_eq!(service.get("/healthz").await.status(), 200);
    service_streams_and_resumes(&service, &topic).await;
    let log = service.log_text();
    assert!(!log.contains(&test_bed("KAFKA_SCRAM_PASSWORD")), "{log}");
    assert!(
        log.contains("sasl.password=env:STREAMS_KAFKA_PASSWORD"),
        "{log}"
    );
}

/// Writes `text` to a new file in the test's temporary directory and returns its path.
fn temp_file(name: &str, text: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{:08x}", rand::random::<u32>()));
    std::fs::write(&path, text).expect("the file is written");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_service_streams_over_sasl_ssl_from_its_config_file_with_the_password_from_a_file() {
    let topic = create_topic(1).await;
    let password = temp_file(
        "kafka-password",
        &format!("{}\n", test_bed("KAFKA_SCRAM_PASSWORD")),
    );
    let config = temp_file(
        "streams.toml",
        &format!(
            r#"
[[stream]]
name = "rc"
topics = ["{topic}"]

[kafka]
bootstrap.servers = "{brokers}"
security.protocol = "SASL_SSL"
ssl.ca.location = "{ca}"
"sasl.mechanism" = "SCRAM-SHA-512"
sasl.username = "{user}"
sasl.password = {{ file = "{password}" }}
"#,
            brokers = test_bed("KAFKA_SASL_SSL_BROKERS"),
            ca = tls_file("ca.pem"),
            user = test_bed("KAFKA_SCRAM_USER"),
        ),
    );
    let service = Launch::axum()
        .without_brokers_flag()
        .args(["--config", &config])
        .start();
    assert_eq!(service.get("/healthz").await.status(), 200);
    service_streams_and_resumes(&service, &topic).await;
    let log = service.log_text();
    assert!(!log.contains(&test_bed("KAFKA_SCRAM_PASSWORD")), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_service_streams_over_mutual_tls_from_its_config_file() {
    let topic = create_topic(1).await;
    let config = temp_file(
        "streams.toml",
        &format!(
            r#"
[[stream]]
name = "rc"
topics = ["{topic}"]

[kafka]
"security.protocol" = "SSL"
"ssl.ca.location" = "{ca}"
"ssl.certificate.location" = "{certificate}"
"ssl.key.location" = "{key}"
"#,
            ca = tls_file("ca.pem"),
            certificate = tls_file("client.pem"),
            key = tls_file("client.key"),
        ),
    );
    let service = Launch::axum()
        .brokers(&test_bed("KAFKA_MTLS_BROKERS"))
        .args(["--config", &config])
        .start();
    service_streams_and_resumes(&service, &topic).await;
}

/// A service refused by the broker: `/healthz` and a stream answer 503 within the look-up
/// timeout once the start-up check has failed, and the log names `cause`, never `secret`.
async fn service_refusal(launch: Launch, cause: &str, secret: &str) {
    let service = launch.args(["--stream", "rc=any-topic"]).start();
    let started = Instant::now();
    let health = service.problem("/healthz").await;
    assert_eq!(health.status, 503);
    assert_eq!(
        health.body["type"],
        "urn:kafka-sse:problem:kafka-authentication-failed"
    );
    let stream = support::service::Problem::read(
        service
            .get_with("/v2/stream/rc", &[("accept", "application/json")])
            .await,
    )
    .await;
    assert_eq!(stream.status, 503);
    assert!(stream.headers.contains_key("retry-after"));
    let service_lookup_timeout = Duration::from_secs(5);
    assert!(started.elapsed() < service_lookup_timeout + SLACK);
    for body in [&health.body, &stream.body] {
        assert_eq!(body["detail"], "Kafka is unavailable; try again later");
        assert!(!body.to_string().contains(secret));
    }
    let log = service.log_text();
    assert!(
        log.contains("could not open a stream") && log.contains(cause),
        "the log names {cause:?}:\n{log}"
    );
    assert!(!log.contains(secret), "the log shows the secret:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn axum_service_answers_503_and_logs_the_cause_when_the_broker_refuses_it() {
    let sasl = |user: &str, password: &str| {
        Launch::axum()
            .brokers(&test_bed("KAFKA_SASL_SSL_BROKERS"))
            .args(sasl_ssl_flags(user))
            .args(["--kafka-from-env", "sasl.password=PW"])
            .env("PW", password)
    };
    let rogue = Launch::axum()
        .brokers(&test_bed("KAFKA_MTLS_BROKERS"))
        .args(["--kafka", "security.protocol=SSL"])
        .args([
            "--kafka",
            &format!("ssl.ca.location={}", tls_file("ca.pem")),
        ])
        .args([
            "--kafka",
            &format!("ssl.certificate.location={}", tls_file("rogue-client.pem")),
        ])
        .args([
            "--kafka",
            &format!("ssl.key.location={}", tls_file("rogue-client.key")),
        ]);
    let user = test_bed("KAFKA_SCRAM_USER");
    tokio::join!(
        service_refusal(
            sasl(&user, "wrong-pw-91c2e7"),
            "SASL authentication error",
            "wrong-pw-91c2e7"
        ),
        service_refusal(
            sasl("nobody-4d2a", "unknown-pw-7f03b8"),
            "SASL authentication error",
            "unknown-pw-7f03b8"
        ),
        service_refusal(rogue, "SSL", "-----BEGIN"),
    );
}
