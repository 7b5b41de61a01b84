//! Request header and body decoders. CONTRACT (the broker compiles against this):
//!
//! ```ignore
//! pub enum DecodeError { Truncated, Invalid(&'static str), UnknownApiKey(i16), UnsupportedVersion { api_key: i16, version: i16 } }
//! /// Decodes the request header; `frame` is the whole request (after the 4-byte size).
//! /// Advances `frame` past the header. Picks header v1/v2 from the api key's flexible versions.
//! pub fn decode_header(frame: &mut bytes::Bytes) -> Result<kafka_protocol::messages::RequestHeader, DecodeError>;
//! pub enum Request { ApiVersions(ApiVersionsRequest), Metadata(MetadataRequest), Produce(ProduceRequest), ... one variant per API }
//! pub fn decode_request(api_key: i16, version: i16, body: &mut bytes::Bytes) -> Result<Request, DecodeError>;
//! ```
