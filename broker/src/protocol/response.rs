//! Response framing: `size | header (v0: correlation id; v1: + tagged fields) | body`,
//! encoded straight into the connection's output buffer with `kafka_protocol` encoders.

use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

/// Bytes of the size prefix of every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// Appends one framed response to `out`. On an encoding error (a value that does not
/// fit the requested version) `out` is left as it was and the error is returned.
pub fn write_response<R: Encodable + HeaderVersion>(
    out: &mut Vec<u8>,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> anyhow::Result<()> {
    write_with_header_version(
        out,
        correlation_id,
        R::header_version(version),
        version,
        body,
    )
}

/// As [`write_response`], with an explicit response header version (ApiVersions answers
/// an unsupported version with a v0 body and header v0).
pub fn write_with_header_version<R: Encodable>(
    out: &mut Vec<u8>,
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &R,
) -> anyhow::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; SIZE_PREFIX_BYTES]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(out, header_version)
        .and_then(|()| body.encode(out, version));
    if let Err(e) = encoded {
        out.truncate(start);
        return Err(e);
    }
    let frame_bytes = out.len() - start - SIZE_PREFIX_BYTES;
    let Ok(size) = i32::try_from(frame_bytes) else {
        out.truncate(start);
        anyhow::bail!("response of {frame_bytes} bytes does not fit a Kafka frame");
    };
    out[start..start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::ApiVersionsResponse;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn frames_carry_size_correlation_and_body() {
        let mut out = vec![9u8]; // existing content is kept
        let body = ApiVersionsResponse::default().with_error_code(35);
        write_response(&mut out, 77, 3, &body).unwrap();
        let mut frame = &out[1..];
        let size = frame.get_i32() as usize;
        assert_eq!(size, frame.len());
        // ApiVersions responses always use header v0 (no tagged fields).
        assert_eq!(frame.get_i32(), 77);
        let decoded = ApiVersionsResponse::decode(&mut frame, 3).unwrap();
        assert_eq!(decoded.error_code, 35);
        assert_eq!(out[0], 9);
    }
}
