//! StrikeMQ in Rust: a Kafka-wire-compatible single-node broker.
//!
//! Module boundaries (see README "Architecture"):
//! - [`protocol`] decodes and encodes Kafka bytes; it never touches a socket or a file.
//! - [`storage`] appends record batches to memory-mapped segments and serves reads as
//!   byte ranges; it knows nothing of the network.
//! - [`broker`] answers requests using storage: `Broker::handle` and the Kafka request
//!   handlers (`broker/handlers/`, one file per api).
//! - [`group`] is the group coordinator and the committed-offset store.
//! - [`net`] moves bytes: framing, event loops, responses in request order.
//! - [`output`] is what a response is written into and `net` sends: owned bytes with
//!   shared slices of segment mappings spliced in (`fetch_zero_copy`).
//! - [`admin`] serves the REST admin API and `/metrics` on its own thread, reading
//!   the same state as the data plane without sitting on its path.
//! - [`config`] parses and validates the configuration and its profiles (no probing,
//!   no runtime state); [`live`] holds the toggles that change while running.
//! - [`startup`] builds the running broker from a configuration, in one place.
//! - [`partitioner`] is Kafka's murmur2 key partitioner, dependency-free so that
//!   loadgen includes the same file.
//! - [`fuzzing`] holds the fuzz targets' bodies (broker/fuzz), so their regression
//!   inputs replay under plain `cargo test`.

pub mod admin;
pub mod broker;
pub mod config;
pub mod fuzzing;
pub mod group;
pub mod live;
pub mod net;
pub mod output;
pub mod partitioner;
pub mod protocol;
pub(crate) mod record_log;
pub mod startup;
pub mod storage;
pub mod txn;
