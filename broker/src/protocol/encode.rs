//! Hand-written response encoding for the hot apis (Produce, Fetch): fields are
//! appended straight to the connection's output buffer in schema order, with no
//! response struct in between. `kafka_protocol` stays the oracle: the broker's tests
//! byte-compare these encodings with its encoders for every version.

/// Bytes of the size prefix of every frame.
pub use super::response::SIZE_PREFIX_BYTES;

/// A response frame being written: where it starts in the output buffer.
#[must_use]
pub struct FrameStart(usize);

impl FrameStart {
    /// Where the frame's size prefix is in the output buffer.
    pub fn position(&self) -> usize {
        self.0
    }
}

/// Starts a response frame: a size placeholder and the response header (v0: the
/// correlation id; v1, for flexible versions: plus an empty tagged-field section).
pub fn begin_frame(out: &mut Vec<u8>, correlation_id: i32, flexible_header: bool) -> FrameStart {
    let start = out.len();
    out.extend_from_slice(&[0; SIZE_PREFIX_BYTES]);
    put_i32(out, correlation_id);
    tagged_fields_if(out, flexible_header);
    FrameStart(start)
}

/// Writes the size of the frame begun at `start`; a frame too large for Kafka's i32
/// size is removed from `out` and refused.
pub fn finish_frame(out: &mut Vec<u8>, start: FrameStart) -> anyhow::Result<()> {
    let start = start.0;
    let frame_bytes = out.len() - start - SIZE_PREFIX_BYTES;
    let Ok(size) = i32::try_from(frame_bytes) else {
        out.truncate(start);
        anyhow::bail!("response of {frame_bytes} bytes does not fit a Kafka frame");
    };
    out[start..start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Drops the frame begun at `start` (nothing is to be sent after all).
pub fn abandon_frame(out: &mut Vec<u8>, start: FrameStart) {
    out.truncate(start.0);
}

pub fn put_i8(out: &mut Vec<u8>, v: i8) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_uuid(out: &mut Vec<u8>, v: &uuid::Uuid) {
    out.extend_from_slice(v.as_bytes());
}

/// A LEB128 u32.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length prefix of a string (`wide` false), bytes or array (`wide` true); `None` is
/// null. Classic: signed, -1 for null; compact: unsigned varint of length + 1, 0 for
/// null. Lengths come from data already in memory (bounded by the frame size check).
fn put_length(out: &mut Vec<u8>, flexible: bool, wide: bool, len: Option<usize>) {
    match (flexible, len) {
        (true, None) => put_uvarint(out, 0),
        (true, Some(n)) => put_uvarint(out, (n as u32).saturating_add(1)),
        (false, None) if wide => put_i32(out, -1),
        (false, None) => put_i16(out, -1),
        (false, Some(n)) if wide => put_i32(out, n as i32),
        (false, Some(n)) => put_i16(out, n as i16),
    }
}

pub fn put_nullable_str(out: &mut Vec<u8>, flexible: bool, s: Option<&str>) {
    put_length(out, flexible, false, s.map(str::len));
    if let Some(s) = s {
        out.extend_from_slice(s.as_bytes());
    }
}

pub fn put_str(out: &mut Vec<u8>, flexible: bool, s: &str) {
    put_nullable_str(out, flexible, Some(s));
}

/// A nullable bytes field.
pub fn put_nullable_bytes(out: &mut Vec<u8>, flexible: bool, b: Option<&[u8]>) {
    put_length(out, flexible, true, b.map(<[u8]>::len));
    if let Some(b) = b {
        out.extend_from_slice(b);
    }
}

/// The length prefix of a nullable bytes field whose bytes are appended separately
/// (a zero-copy Fetch splices them in after this prefix).
pub fn put_length_of_bytes(out: &mut Vec<u8>, flexible: bool, len: Option<usize>) {
    put_length(out, flexible, true, len);
}

/// An array's element count (`None`: a null array); the elements follow.
pub fn put_array_len(out: &mut Vec<u8>, flexible: bool, len: Option<usize>) {
    put_length(out, flexible, true, len);
}

/// An empty tagged-field section, in flexible versions.
pub fn tagged_fields_if(out: &mut Vec<u8>, flexible: bool) {
    if flexible {
        put_uvarint(out, 0);
    }
}
