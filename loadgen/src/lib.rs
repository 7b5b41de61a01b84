//! loadgen: an honest latency/throughput load generator for Kafka-compatible brokers.
//! See `loadgen --help` and the README section in the crate docs of `main.rs`.

pub mod cli;
pub mod consumer;
pub mod drivers;
pub mod error;
pub mod floor;
mod fs_type;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod shape;
pub mod verify;
pub mod wire;
pub mod workloads;
