//! InitProducerId: producer ids for idempotent producers (no transactions).

use std::sync::atomic::Ordering;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
use tracing::warn;

use crate::broker::{code, Broker};

impl Broker {
    pub(in crate::broker) fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
    ) -> InitProducerIdResponse {
        let resp = InitProducerIdResponse::default();
        if req
            .transactional_id
            .as_ref()
            .is_some_and(|t| !t.0.is_empty())
        {
            // Transactions are not implemented (and their APIs are not advertised).
            warn!("InitProducerId with a transactional id: transactions are not supported");
            return resp
                .with_error_code(code::INVALID_REQUEST)
                .with_producer_id((-1).into());
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
