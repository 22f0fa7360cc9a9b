//! Why Kafka last refused the look-up client, kept so that a failed look-up names the cause.
//!
//! librdkafka reports a failed SASL authentication or TLS handshake only as an error event
//! on the client, with the reason in words; the look-up itself just times out. The look-up
//! client's context keeps the latest such event.

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::error::redact;
use crate::kafka_error::means_refused;
use crate::Error;

/// The look-up client's librdkafka context: it logs error events as rdkafka's default does,
/// and remembers the latest that says Kafka refused the client.
pub(crate) struct RefusalContext {
    /// The client configuration, whose credentials are redacted from every reason.
    config: ClientConfig,
    latest: Mutex<Option<Refusal>>,
}

/// One refusal: librdkafka's code and reason, credentials redacted.
#[derive(Debug, Clone)]
struct Refusal {
    code: RDKafkaErrorCode,
    reason: String,
}

impl RefusalContext {
    pub(crate) fn new(config: &ClientConfig) -> Self {
        RefusalContext {
            config: config.clone(),
            latest: Mutex::new(None),
        }
    }

    /// The error for a look-up doing `operation` that failed while Kafka refused the client.
    pub(crate) fn refused(&self, operation: &'static str) -> Option<Error> {
        let latest = self.latest.lock().expect("refusal lock").clone()?;
        Some(Error::KafkaAuthentication {
            operation,
            reason: latest.reason,
            source: KafkaError::Global(latest.code),
        })
    }

    /// Forgets the refusal: Kafka answered.
    pub(crate) fn forget(&self) {
        self.latest.lock().expect("refusal lock").take();
    }
}

impl ClientContext for RefusalContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let reason = redact(reason, &self.config);
        tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}");
        let mut latest = self.latest.lock().expect("refusal lock");
        match error.rdkafka_error_code() {
            Some(code) if means_refused(code, &reason) => *latest = Some(Refusal { code, reason }),
            // Follows every refusal: "1/1 brokers are down".
            Some(RDKafkaErrorCode::AllBrokersDown) => {}
            _ => *latest = None,
        }
    }
}

impl ConsumerContext for RefusalContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_refusal_redacted_until_another_cause_or_an_answer() {
        let mut config = ClientConfig::new();
        config.set("sasl.password", "pw-3e1f");
        let context = RefusalContext::new(&config);
        assert!(context.refused("fetching metadata").is_none());

        let refused = KafkaError::Global(RDKafkaErrorCode::Authentication);
        ClientContext::error(
            &context,
            refused,
            "SASL authentication error (password pw-3e1f)",
        );
        ClientContext::error(
            &context,
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let error = context.refused("fetching metadata").expect("a refusal");
        assert!(matches!(error, Error::KafkaAuthentication { .. }));
        let text = error.to_string();
        assert!(text.contains("SASL authentication error") && !text.contains("pw-3e1f"));

        context.forget();
        assert!(context.refused("fetching metadata").is_none());
        ClientContext::error(
            &context,
            KafkaError::Global(RDKafkaErrorCode::SSL),
            "SSL handshake failed",
        );
        ClientContext::error(
            &context,
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Connect to ipv4#127.0.0.1:1 failed: Connection refused",
        );
        assert!(context.refused("fetching metadata").is_none());
    }
}
