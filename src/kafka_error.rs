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
}
