//! What librdkafka's errors mean for a stream, decided in one place: whether Kafka is out of
//! reach, whether a look-up should be retried, and whether a consumer recovers by itself.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Whether an error says Kafka could not be reached, rather than that it refused this one
/// request: only the former may make other requests fail fast.
pub(crate) fn means_unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// Whether a librdkafka error event says the cluster refused this client rather than that it
/// could not be reached: SASL authentication failed (a wrong password, an unknown user, a
/// mechanism the broker does not offer), or TLS did (a broker certificate the configured CA
/// did not sign, a client certificate the broker does not trust).
///
/// librdkafka reports a refused client certificate as a transport failure, told apart from a
/// lost connection only by the TLS alert its `reason` quotes.
pub(crate) fn means_refused(code: RDKafkaErrorCode, reason: &str) -> bool {
    match code {
        RDKafkaErrorCode::Authentication
        | RDKafkaErrorCode::SSL
        | RDKafkaErrorCode::SaslAuthenticationFailed
        | RDKafkaErrorCode::UnsupportedSASLMechanism
        | RDKafkaErrorCode::IllegalSASLState => true,
        RDKafkaErrorCode::BrokerTransportFailure => {
            ["SSL alert", "SSL handshake failed", "certificate"]
                .iter()
                .any(|sign| reason.contains(sign))
        }
        _ => false,
    }
}

/// Whether a consumer's error says every broker is gone (librdkafka reports it on the
/// consumer before any look-up notices).
pub(crate) fn means_brokers_down(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
        ) | KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)
    )
}

/// Errors of a look-up that go away by themselves once the cluster settles, such as right
/// after a topic was created or a broker restarted.
pub(crate) fn is_retriable(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::OffsetNotAvailable
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::FencedLeaderEpoch
            | RDKafkaErrorCode::UnknownLeaderEpoch
            | RDKafkaErrorCode::NotCoordinator
    )
}

/// Whether librdkafka recovers from a consumer's `error` on its own (lost connections,
/// leader changes, time-outs), so the stream should wait rather than end.
pub(crate) fn consumer_recovers(error: &KafkaError) -> bool {
    match error {
        KafkaError::MessageConsumptionFatal(_) => false,
        KafkaError::PartitionEOF(_) => true,
        KafkaError::MessageConsumption(code) => !matches!(
            code,
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidArgument
        ),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_broker_is_unreachable_and_recoverable_but_a_missing_topic_ends_a_consumer() {
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert!(means_unreachable(&down) && means_brokers_down(&down));
        assert!(consumer_recovers(&down));
        let gone = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(!means_unreachable(&gone) && !consumer_recovers(&gone));
        assert!(is_retriable(RDKafkaErrorCode::UnknownTopicOrPartition));
        assert!(!is_retriable(RDKafkaErrorCode::TopicAuthorizationFailed));
    }

    #[test]
    fn failed_authentication_and_tls_alerts_are_refusals_but_a_lost_connection_is_not() {
        let scram = "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: \
                     Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism SCRAM-SHA-512 (after 310ms in state AUTH_REQ)";
        assert!(means_refused(RDKafkaErrorCode::Authentication, scram));
        let untrusted_broker = "SSL handshake failed: error:0A000086:SSL routines::certificate \
                                verify failed: broker certificate could not be verified";
        assert!(means_refused(RDKafkaErrorCode::SSL, untrusted_broker));
        let refused_certificate = "ssl://127.0.0.1:9094/bootstrap: Receive failed: \
                                   error:0A000416:SSL routines::sslv3 alert certificate \
                                   unknown: SSL alert number 46 (after 3ms in state \
                                   APIVERSION_QUERY)";
        assert!(means_refused(
            RDKafkaErrorCode::BrokerTransportFailure,
            refused_certificate
        ));
        let closed_port = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: \
                           Connection refused (after 0ms in state CONNECT)";
        assert!(!means_refused(
            RDKafkaErrorCode::BrokerTransportFailure,
            closed_port
        ));
        assert!(!means_refused(
            RDKafkaErrorCode::AllBrokersDown,
            "1/1 brokers are down"
        ));
    }
}
