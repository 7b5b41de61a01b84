//! A native consumer of one partition: Fetch v12 from a start offset, records handed to a
//! callback and to the exactly-once/in-order verifier.

use crate::drivers::native::{fetch_request, fetched_records, Client, Target, FETCH_VERSION};
use crate::verify::{decode_value, ValueHeader, Verifier};

/// What one Fetch brought.
#[derive(Debug, Clone, Copy)]
pub struct Polled {
    pub records: u64,
    pub bytes: u64,
    /// The partition's high watermark as the broker reported it.
    pub high_watermark: i64,
}

pub struct Consumer {
    client: Client,
    target: Target,
    /// Next offset to fetch.
    pub offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
    pub verifier: Verifier,
}

impl Consumer {
    pub fn new(
        client: Client,
        target: Target,
        start_offset: i64,
        max_wait_ms: i32,
        max_bytes: i32,
        expected: u64,
    ) -> Consumer {
        Consumer {
            client,
            target,
            offset: start_offset,
            max_wait_ms,
            max_bytes,
            verifier: Verifier::new(expected),
        }
    }

    /// One Fetch. `on_record` sees each new record's decoded value header (None when the
    /// value is not ours) and its value length.
    pub fn poll(
        &mut self,
        mut on_record: impl FnMut(Option<ValueHeader>, usize),
    ) -> anyhow::Result<Polled> {
        let req = fetch_request(&self.target, self.offset, self.max_wait_ms, self.max_bytes);
        let resp = self.client.call(&req, FETCH_VERSION)?;
        let high_watermark = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == self.target.partition)
            .map_or(-1, |p| p.high_watermark);
        let mut polled = Polled {
            records: 0,
            bytes: 0,
            high_watermark,
        };
        for r in fetched_records(&resp, &self.target)? {
            // A batch may start before the fetch offset; a client skips what it has seen.
            if r.offset < self.offset {
                continue;
            }
            let value = r.value.as_deref().unwrap_or(&[]);
            let header = decode_value(value);
            self.verifier.observe(header.map(|h| h.seq), r.offset);
            on_record(header, value.len());
            polled.records += 1;
            polled.bytes += value.len() as u64;
            self.offset = r.offset + 1;
        }
        Ok(polled)
    }
}
