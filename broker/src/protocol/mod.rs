//! The Kafka wire protocol, on bytes alone: no sockets, no files.
//!
//! - [`request`]: request header and request body decoders. Hand-written and bounded:
//!   no allocation is ever sized from an untrusted count beyond the bytes actually
//!   present in the frame. They produce `kafka_protocol` message structs so the
//!   broker and the tests share one vocabulary; the hot ones (header, Produce, Fetch)
//!   decode into views over the frame (`request::views`).
//! - [`batch`]: the v2 record batch header: parse, CRC32C check, base offset rewrite.
//! - [`encode`]: hand-written response encoding for Produce and Fetch, straight into
//!   the output buffer.
//! - [`error`]: the one Kafka error-code enum.
//! - [`response`]: response framing (header v0/v1 + body) via `kafka_protocol` encoders.

pub mod batch;
pub mod encode;
pub mod error;
pub mod request;
pub mod response;
pub mod wire;
