//! Micro benchmarks that isolate the mechanism of each runtime toggle. This file only
//! wires the groups; each group lives in its own module.
//!
//! - `conn_buffer`: vec vs circular, pipelined frames of 100 B to 1 MiB pushed through
//!   the buffer in 64 KiB "receives" and taken out as frames.
//! - `log_map`: global vs sharded, partition lookups from 1 and 2 threads over 1, 10
//!   and 1000 topic-partitions.
//! - `segment_prefault`: 1 KiB appends across segment rolls with and without
//!   pre-faulting the head of each new segment.

use criterion::{criterion_group, criterion_main};

#[path = "../common/mod.rs"]
mod common;
mod conn_buffer;
mod log_map;
mod segment_prefault;

criterion_group!(
    toggles,
    conn_buffer::bench,
    log_map::bench,
    segment_prefault::bench
);
criterion_main!(toggles);
