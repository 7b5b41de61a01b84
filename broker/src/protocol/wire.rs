//! A bounded reader for Kafka's primitive wire types.
//!
//! Every read checks the bytes that remain before it takes them, and no allocation is
//! ever sized from a count read off the wire: an array of `n` elements is accepted only
//! if at least `n` bytes remain (each element takes at least one byte), and its vector
//! reserves at most [`PREALLOC_ELEMENTS_MAX`] up front. Strings and byte fields are
//! zero-copy slices of the frame.

use bytes::{Buf, Bytes};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ended before the message did.
    #[error("request truncated")]
    Truncated,
    /// The bytes are present but do not form a valid message.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// An api key this broker has no decoder for.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// A known api key at a version outside the decoder's range.
    #[error("unsupported version {version} for api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
}

/// The most elements an array reserves before it has read them. Larger arrays grow as
/// they are read, so memory follows the bytes actually consumed, not the claimed count.
pub const PREALLOC_ELEMENTS_MAX: usize = 1024;

/// An unsigned varint encodes a u32 in at most this many bytes.
const UVARINT_BYTES_MAX: usize = 5;

/// A read cursor over one frame. Reads advance the underlying `Bytes`.
pub struct Reader<'a> {
    buf: &'a mut Bytes,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a mut Bytes) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, len: usize) -> Result<(), DecodeError> {
        if self.buf.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(())
    }

    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    /// Kafka reads any non-zero byte as true.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.i8()? != 0)
    }

    pub fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        self.need(16)?;
        Ok(Uuid::from_u128(self.buf.get_u128()))
    }

    /// A LEB128 u32. Encodings longer than five bytes, or whose fifth byte carries bits
    /// beyond 32, are rejected rather than silently truncated.
    pub fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..UVARINT_BYTES_MAX {
            self.need(1)?;
            let byte = self.buf.get_u8();
            if i == UVARINT_BYTES_MAX - 1 && byte > 0x0f {
                return Err(DecodeError::Invalid("varint too long"));
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint too long"))
    }

    /// A zigzag-encoded i32.
    pub fn varint(&mut self) -> Result<i32, DecodeError> {
        let raw = self.uvarint()?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    /// Takes `len` bytes as a zero-copy slice of the frame.
    pub fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        self.need(len)?;
        Ok(self.buf.split_to(len))
    }

    /// The length prefix of a string, bytes or array field: `None` for null.
    /// Classic fields use a signed prefix where -1 is null; compact (flexible) fields
    /// use an unsigned varint holding length + 1, where 0 is null.
    fn length(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, DecodeError> {
        if flexible {
            return Ok(match self.uvarint()? {
                0 => None,
                n => Some((n - 1) as usize),
            });
        }
        let n = if wide {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::Invalid("negative length")),
            n => Ok(Some(n as usize)),
        }
    }

    pub fn nullable_string(&mut self, flexible: bool) -> Result<Option<StrBytes>, DecodeError> {
        let Some(len) = self.length(flexible, false)? else {
            return Ok(None);
        };
        let raw = self.take(len)?;
        StrBytes::from_utf8(raw)
            .map(Some)
            .map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    /// A string field that Kafka declares non-nullable: null is an error.
    pub fn string(&mut self, flexible: bool) -> Result<StrBytes, DecodeError> {
        self.nullable_string(flexible)?
            .ok_or(DecodeError::Invalid("null non-nullable string"))
    }

    pub fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<Bytes>, DecodeError> {
        match self.length(flexible, true)? {
            None => Ok(None),
            Some(len) => self.take(len).map(Some),
        }
    }

    pub fn bytes(&mut self, flexible: bool) -> Result<Bytes, DecodeError> {
        self.nullable_bytes(flexible)?
            .ok_or(DecodeError::Invalid("null non-nullable bytes"))
    }

    /// An array's element count, checked against the bytes that remain: every element
    /// takes at least one byte, so a larger count cannot be honest.
    pub fn nullable_array_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let len = self.length(flexible, true)?;
        if let Some(n) = len {
            self.need(n)?;
        }
        Ok(len)
    }

    /// Reads a nullable array, one element at a time with `element`.
    pub fn nullable_array<T>(
        &mut self,
        flexible: bool,
        mut element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(n) = self.nullable_array_len(flexible)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n.min(PREALLOC_ELEMENTS_MAX));
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    /// An array Kafka declares non-nullable: null is an error.
    pub fn array<T>(
        &mut self,
        flexible: bool,
        element: impl FnMut(&mut Reader) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        self.nullable_array(flexible, element)?
            .ok_or(DecodeError::Invalid("null non-nullable array"))
    }

    /// Reads a tagged-field section, handing each field's tag and a reader over exactly
    /// its bytes to `field`. A field decoder cannot read past its own field.
    pub fn tagged_fields_with(
        &mut self,
        mut field: impl FnMut(u32, &mut Reader) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = self.uvarint()? as usize;
        // Each field is at least two bytes (tag and size).
        self.need(count)?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let mut value = self.take(size)?;
            field(tag, &mut Reader::new(&mut value))?;
        }
        Ok(())
    }

    /// Reads and drops a tagged-field section: none of the fields we decode carry a
    /// tagged field the broker uses, and dropping them allocates nothing.
    pub fn tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields_with(|_, _| Ok(()))
    }

    /// Reads the tagged-field section if the version is flexible.
    pub fn tagged_fields_if(&mut self, flexible: bool) -> Result<(), DecodeError> {
        if flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }
}

/// A read cursor over a borrowed frame, for the views of the hot requests
/// (`request::views`): the same bounds and the same errors as [`Reader`], but strings and
/// byte fields are slices of the frame, so decoding allocates nothing at all.
#[derive(Clone, Copy)]
pub struct SliceReader<'a> {
    buf: &'a [u8],
}

impl<'a> SliceReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Takes `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    /// As [`Reader::uvarint`].
    pub fn uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..UVARINT_BYTES_MAX {
            let [byte] = self.array::<1>()?;
            if i == UVARINT_BYTES_MAX - 1 && byte > 0x0f {
                return Err(DecodeError::Invalid("varint too long"));
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint too long"))
    }

    /// As [`Reader::length`].
    fn length(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, DecodeError> {
        if flexible {
            return Ok(match self.uvarint()? {
                0 => None,
                n => Some((n - 1) as usize),
            });
        }
        let n = if wide {
            self.i32()?
        } else {
            i32::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::Invalid("negative length")),
            n => Ok(Some(n as usize)),
        }
    }

    pub fn nullable_str(&mut self, flexible: bool) -> Result<Option<&'a str>, DecodeError> {
        let Some(len) = self.length(flexible, false)? else {
            return Ok(None);
        };
        let raw = self.take(len)?;
        if raw.is_ascii() {
            // SAFETY: ASCII is valid UTF-8. Client ids and topic names nearly always are
            // ASCII, and this word-at-a-time check inlines where `from_utf8` is a call.
            return Ok(Some(unsafe { std::str::from_utf8_unchecked(raw) }));
        }
        std::str::from_utf8(raw)
            .map(Some)
            .map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    /// A string field that Kafka declares non-nullable: null is an error.
    pub fn str(&mut self, flexible: bool) -> Result<&'a str, DecodeError> {
        self.nullable_str(flexible)?
            .ok_or(DecodeError::Invalid("null non-nullable string"))
    }

    pub fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.length(flexible, true)? {
            None => Ok(None),
            Some(len) => self.take(len).map(Some),
        }
    }

    /// As [`Reader::nullable_array_len`].
    pub fn nullable_array_len(&mut self, flexible: bool) -> Result<Option<usize>, DecodeError> {
        let len = self.length(flexible, true)?;
        if let Some(n) = len {
            if self.buf.len() < n {
                return Err(DecodeError::Truncated);
            }
        }
        Ok(len)
    }

    /// The element count of an array Kafka declares non-nullable: null is an error.
    pub fn array_len(&mut self, flexible: bool) -> Result<usize, DecodeError> {
        self.nullable_array_len(flexible)?
            .ok_or(DecodeError::Invalid("null non-nullable array"))
    }

    /// As [`Reader::tagged_fields_with`].
    pub fn tagged_fields_with(
        &mut self,
        mut field: impl FnMut(u32, &mut SliceReader<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        let count = self.uvarint()? as usize;
        if self.buf.len() < count {
            return Err(DecodeError::Truncated);
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let value = self.take(size)?;
            field(tag, &mut SliceReader::new(value))?;
        }
        Ok(())
    }

    pub fn tagged_fields(&mut self) -> Result<(), DecodeError> {
        self.tagged_fields_with(|_, _| Ok(()))
    }

    pub fn tagged_fields_if(&mut self, flexible: bool) -> Result<(), DecodeError> {
        if flexible {
            // Nearly every section on the wire is empty: one zero byte.
            if let Some((0, rest)) = self.buf.split_first() {
                self.buf = rest;
                return Ok(());
            }
            self.tagged_fields()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_over(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }

    #[test]
    fn uvarint_accepts_max_and_rejects_overlong() {
        let mut b = reader_over(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(Reader::new(&mut b).uvarint(), Ok(u32::MAX));
        let mut b = reader_over(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert_eq!(
            Reader::new(&mut b).uvarint(),
            Err(DecodeError::Invalid("varint too long"))
        );
        let mut b = reader_over(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!(
            Reader::new(&mut b).uvarint(),
            Err(DecodeError::Invalid("varint too long"))
        );
        let mut b = reader_over(&[0x80, 0x80]);
        assert_eq!(Reader::new(&mut b).uvarint(), Err(DecodeError::Truncated));
    }

    #[test]
    fn varint_zigzag() {
        let mut b = reader_over(&[0x01, 0x02, 0x03]);
        let mut r = Reader::new(&mut b);
        assert_eq!(r.varint(), Ok(-1));
        assert_eq!(r.varint(), Ok(1));
        assert_eq!(r.varint(), Ok(-2));
    }

    #[test]
    fn huge_array_counts_fail_before_allocating() {
        let mut b = reader_over(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(
            Reader::new(&mut b).array(false, |r| r.i8()),
            Err(DecodeError::Truncated)
        );
        let mut b = reader_over(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]);
        assert_eq!(
            Reader::new(&mut b).array(true, |r| r.i8()),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn slice_strings_ascii_utf8_and_invalid() {
        // [i16 length][bytes]: ASCII (the fast path), UTF-8 beyond ASCII, invalid bytes.
        let read = |bytes: &[u8]| {
            let mut frame = (bytes.len() as i16).to_be_bytes().to_vec();
            frame.extend_from_slice(bytes);
            SliceReader::new(&frame)
                .nullable_str(false)
                .map(|s| s.map(str::to_owned))
        };
        assert_eq!(read(b"rdkafka"), Ok(Some("rdkafka".into())));
        assert_eq!(read("caf\u{e9}".as_bytes()), Ok(Some("caf\u{e9}".into())));
        for bad in [&[0x61, 0xff][..], &[0xc3][..], &[0xed, 0xa0, 0x80][..]] {
            assert_eq!(read(bad), Err(DecodeError::Invalid("string is not UTF-8")));
        }
    }

    #[test]
    fn lengths_null_and_negative() {
        let mut b = reader_over(&[0xff, 0xff]);
        assert_eq!(Reader::new(&mut b).nullable_string(false), Ok(None));
        let mut b = reader_over(&[0xff, 0xff]);
        assert_eq!(
            Reader::new(&mut b).string(false),
            Err(DecodeError::Invalid("null non-nullable string"))
        );
        let mut b = reader_over(&[0xff, 0xfe]);
        assert_eq!(
            Reader::new(&mut b).nullable_string(false),
            Err(DecodeError::Invalid("negative length"))
        );
        let mut b = reader_over(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(
            Reader::new(&mut b).nullable_bytes(false),
            Err(DecodeError::Invalid("negative length"))
        );
        let mut b = reader_over(&[0x00]);
        assert_eq!(Reader::new(&mut b).nullable_bytes(true), Ok(None));
    }

    #[test]
    fn tagged_field_reader_is_confined_to_its_field() {
        // One field, tag 0, two bytes long; the field decoder tries to read four.
        let mut b = reader_over(&[1, 0, 2, 0xaa, 0xbb, 0xcc, 0xdd]);
        let mut r = Reader::new(&mut b);
        assert_eq!(
            r.tagged_fields_with(|_, f| f.i32().map(drop)),
            Err(DecodeError::Truncated)
        );
    }
}
