//! The Kafka error codes this broker answers with: one enum, named as in Kafka's
//! `Errors` class, and [`code`], the same values as the `i16` that response fields
//! carry (so handlers write `code::UNKNOWN_TOPIC_OR_PARTITION`). A test checks each
//! against `kafka_protocol`'s own table.

/// A Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum ErrorCode {
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    MessageTooLarge = 10,
    OffsetMetadataTooLarge = 12,
    CoordinatorNotAvailable = 15,
    InvalidTopicException = 17,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    InvalidGroupId = 24,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidConfig = 40,
    InvalidRequest = 42,
    PolicyViolation = 44,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    SecurityDisabled = 54,
    OperationNotAttempted = 55,
    KafkaStorageError = 56,
    UnsupportedCompressionType = 76,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    FetchSessionIdNotFound = 70,
    MemberIdRequired = 79,
    GroupMaxSizeReached = 81,
    FencedInstanceId = 82,
    ProducerFenced = 90,
    GroupSubscribedToTopic = 86,
    InvalidRecord = 87,
    UnknownTopicId = 100,
    TransactionalIdNotFound = 105,
    FencedMemberEpoch = 110,
    UnreleasedInstanceId = 111,
    UnsupportedAssignor = 112,
    StaleMemberEpoch = 113,
    InvalidRegularExpression = 128,
}

impl ErrorCode {
    /// The value on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }
}

/// [`ErrorCode`] values as the wire's `i16`.
pub mod code {
    use super::ErrorCode as E;

    pub const NONE: i16 = E::None.code();
    pub const OFFSET_OUT_OF_RANGE: i16 = E::OffsetOutOfRange.code();
    pub const CORRUPT_MESSAGE: i16 = E::CorruptMessage.code();
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = E::UnknownTopicOrPartition.code();
    pub const MESSAGE_TOO_LARGE: i16 = E::MessageTooLarge.code();
    pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
    pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub const INVALID_TOPIC_EXCEPTION: i16 = E::InvalidTopicException.code();
    pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub const UNSUPPORTED_VERSION: i16 = E::UnsupportedVersion.code();
    pub const TOPIC_ALREADY_EXISTS: i16 = E::TopicAlreadyExists.code();
    pub const INVALID_PARTITIONS: i16 = E::InvalidPartitions.code();
    pub const INVALID_REPLICATION_FACTOR: i16 = E::InvalidReplicationFactor.code();
    pub const INVALID_CONFIG: i16 = E::InvalidConfig.code();
    pub const INVALID_REQUEST: i16 = E::InvalidRequest.code();
    pub const POLICY_VIOLATION: i16 = E::PolicyViolation.code();
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = E::OutOfOrderSequenceNumber.code();
    pub const INVALID_PRODUCER_EPOCH: i16 = E::InvalidProducerEpoch.code();
    pub const INVALID_TXN_STATE: i16 = E::InvalidTxnState.code();
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = E::InvalidProducerIdMapping.code();
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = E::InvalidTransactionTimeout.code();
    pub const CONCURRENT_TRANSACTIONS: i16 = E::ConcurrentTransactions.code();
    pub const PRODUCER_FENCED: i16 = E::ProducerFenced.code();
    pub const SECURITY_DISABLED: i16 = E::SecurityDisabled.code();
    pub const OPERATION_NOT_ATTEMPTED: i16 = E::OperationNotAttempted.code();
    pub const KAFKA_STORAGE_ERROR: i16 = E::KafkaStorageError.code();
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = E::UnsupportedCompressionType.code();
    pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = E::FetchSessionIdNotFound.code();
    pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
    pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = E::GroupSubscribedToTopic.code();
    pub const INVALID_RECORD: i16 = E::InvalidRecord.code();
    pub const UNKNOWN_TOPIC_ID: i16 = E::UnknownTopicId.code();
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = E::TransactionalIdNotFound.code();
    pub const FENCED_MEMBER_EPOCH: i16 = E::FencedMemberEpoch.code();
    pub const UNRELEASED_INSTANCE_ID: i16 = E::UnreleasedInstanceId.code();
    pub const UNSUPPORTED_ASSIGNOR: i16 = E::UnsupportedAssignor.code();
    pub const STALE_MEMBER_EPOCH: i16 = E::StaleMemberEpoch.code();
    pub const INVALID_REGULAR_EXPRESSION: i16 = E::InvalidRegularExpression.code();
}

#[cfg(test)]
mod tests {
    use super::ErrorCode as E;
    use kafka_protocol::ResponseError as K;

    #[test]
    fn codes_match_kafka_protocol() {
        let pairs = [
            (E::OffsetOutOfRange, K::OffsetOutOfRange),
            (E::CorruptMessage, K::CorruptMessage),
            (E::UnknownTopicOrPartition, K::UnknownTopicOrPartition),
            (E::MessageTooLarge, K::MessageTooLarge),
            (E::OffsetMetadataTooLarge, K::OffsetMetadataTooLarge),
            (E::CoordinatorNotAvailable, K::CoordinatorNotAvailable),
            (E::InvalidTopicException, K::InvalidTopicException),
            (E::IllegalGeneration, K::IllegalGeneration),
            (E::InconsistentGroupProtocol, K::InconsistentGroupProtocol),
            (E::InvalidGroupId, K::InvalidGroupId),
            (E::UnknownMemberId, K::UnknownMemberId),
            (E::InvalidSessionTimeout, K::InvalidSessionTimeout),
            (E::RebalanceInProgress, K::RebalanceInProgress),
            (E::UnsupportedVersion, K::UnsupportedVersion),
            (E::TopicAlreadyExists, K::TopicAlreadyExists),
            (E::InvalidPartitions, K::InvalidPartitions),
            (E::InvalidReplicationFactor, K::InvalidReplicationFactor),
            (E::InvalidConfig, K::InvalidConfig),
            (E::InvalidRequest, K::InvalidRequest),
            (E::PolicyViolation, K::PolicyViolation),
            (E::OutOfOrderSequenceNumber, K::OutOfOrderSequenceNumber),
            (E::InvalidProducerEpoch, K::InvalidProducerEpoch),
            (E::InvalidTxnState, K::InvalidTxnState),
            (E::InvalidProducerIdMapping, K::InvalidProducerIdMapping),
            (E::InvalidTransactionTimeout, K::InvalidTransactionTimeout),
            (E::ConcurrentTransactions, K::ConcurrentTransactions),
            (E::ProducerFenced, K::ProducerFenced),
            (E::SecurityDisabled, K::SecurityDisabled),
            (E::OperationNotAttempted, K::OperationNotAttempted),
            (E::KafkaStorageError, K::KafkaStorageError),
            (E::UnsupportedCompressionType, K::UnsupportedCompressionType),
            (E::NonEmptyGroup, K::NonEmptyGroup),
            (E::GroupIdNotFound, K::GroupIdNotFound),
            (E::FetchSessionIdNotFound, K::FetchSessionIdNotFound),
            (E::MemberIdRequired, K::MemberIdRequired),
            (E::GroupMaxSizeReached, K::GroupMaxSizeReached),
            (E::FencedInstanceId, K::FencedInstanceId),
            (E::GroupSubscribedToTopic, K::GroupSubscribedToTopic),
            (E::InvalidRecord, K::InvalidRecord),
            (E::UnknownTopicId, K::UnknownTopicId),
            (E::TransactionalIdNotFound, K::TransactionalIdNotFound),
            (E::FencedMemberEpoch, K::FencedMemberEpoch),
            (E::UnreleasedInstanceId, K::UnreleasedInstanceId),
            (E::UnsupportedAssignor, K::UnsupportedAssignor),
            (E::StaleMemberEpoch, K::StaleMemberEpoch),
            (E::InvalidRegularExpression, K::InvalidRegularExpression),
        ];
        for (ours, theirs) in pairs {
            assert_eq!(ours.code(), theirs.code(), "{ours:?}");
        }
        assert_eq!(E::None.code(), 0);
    }
}
