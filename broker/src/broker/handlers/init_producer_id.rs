//! InitProducerId: producer ids for idempotent producers, and for transactional ones
//! through the transaction coordinator (`crate::txn`).

use std::sync::atomic::Ordering;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::{code, Broker};

/// InitProducerId answers PRODUCER_FENCED from this version, INVALID_PRODUCER_EPOCH
/// before (Kafka's `KafkaApis` for old clients).
const PRODUCER_FENCED_VERSION: i16 = 4;

impl Broker {
    pub(in crate::broker) fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        let resp = InitProducerIdResponse::default();
        if let Some(id) = req.transactional_id.as_ref() {
            let expected =
                (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
            let allocate = || self.next_producer_id.fetch_add(1, Ordering::Relaxed);
            let fenced = if version >= PRODUCER_FENCED_VERSION {
                code::PRODUCER_FENCED
            } else {
                code::INVALID_PRODUCER_EPOCH
            };
            return match self.txn.init_producer_id(
                &id.0,
                req.transaction_timeout_ms,
                expected,
                &allocate,
            ) {
                Ok((pid, epoch)) => resp.with_producer_id(pid.into()).with_producer_epoch(epoch),
                Err(e) => resp
                    .with_error_code(e.code(fenced))
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            };
        }
        if req.producer_id.0 >= 0 && req.producer_epoch >= 0 {
            // KIP-360: an existing idempotent producer bumps its epoch.
            let epoch = req.producer_epoch.checked_add(1);
            return match epoch {
                Some(e) => resp
                    .with_producer_id(req.producer_id)
                    .with_producer_epoch(e),
                None => resp
                    .with_producer_id(self.next_producer_id.fetch_add(1, Ordering::Relaxed).into())
                    .with_producer_epoch(0),
            };
        }
        resp.with_producer_id(self.next_producer_id.fetch_add(1, Ordering::Relaxed).into())
            .with_producer_epoch(0)
    }
}
