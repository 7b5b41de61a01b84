//! A native consumer of some partitions of one leader: Fetch v12 from a start offset per
//! partition, records handed to a callback and to the exactly-once/in-order verifier.

use crate::drivers::native::{fetch_request, fetched_records, Client, Target, FETCH_VERSION};
use crate::verify::{decode_value, ValueHeader, VerifySet};

/// What one Fetch brought.
#[derive(Debug, Clone, Copy)]
pub struct Polled {
    pub records: u64,
    pub bytes: u64,
}

pub struct Consumer {
    client: Client,
    /// Each partition with the next offset to fetch.
    pub parts: Vec<(Target, i64)>,
    /// High watermarks as the broker last reported them (-1: not yet).
    pub high_watermarks: Vec<i64>,
    max_wait_ms: i32,
    max_bytes: i32,
    pub verifier: VerifySet,
}

impl Consumer {
    pub fn new(
        client: Client,
        parts: Vec<(Target, i64)>,
        max_wait_ms: i32,
        max_bytes: i32,
        verifier: VerifySet,
    ) -> Consumer {
        let n = parts.len();
        Consumer {
            client,
            parts,
            high_watermarks: vec![-1; n],
            max_wait_ms,
            max_bytes,
            verifier,
        }
    }

    /// True when every partition has been read up to its last reported high watermark.
    pub fn caught_up(&self) -> bool {
        self.parts
            .iter()
            .zip(&self.high_watermarks)
            .all(|((_, offset), &hw)| hw >= 0 && *offset >= hw)
    }

    /// One Fetch of every partition. `on_record` sees each new record's decoded value
    /// header (None when the value is not ours) and its value length.
    pub fn poll(
        &mut self,
        mut on_record: impl FnMut(Option<ValueHeader>, usize),
    ) -> anyhow::Result<Polled> {
        let req = fetch_request(&self.parts, self.max_wait_ms, self.max_bytes);
        let resp = self.client.call(&req, FETCH_VERSION)?;
        let mut polled = Polled {
            records: 0,
            bytes: 0,
        };
        for (i, (target, offset)) in self.parts.iter_mut().enumerate() {
            if let Some(hw) = resp
                .responses
                .iter()
                .filter(|t| t.topic.0.as_str() == target.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == target.partition)
                .map(|p| p.high_watermark)
            {
                self.high_watermarks[i] = hw;
            }
            for r in fetched_records(&resp, target)? {
                // A batch may start before the fetch offset; a client skips what it has seen.
                if r.offset < *offset {
                    continue;
                }
                let value = r.value.as_deref().unwrap_or(&[]);
                let header = decode_value(value);
                self.verifier.observe(
                    &target.topic,
                    target.partition,
                    header.map(|h| h.seq),
                    r.offset,
                );
                on_record(header, value.len());
                polled.records += 1;
                polled.bytes += value.len() as u64;
                *offset = r.offset + 1;
            }
        }
        Ok(polled)
    }
}
