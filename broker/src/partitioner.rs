//! Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % n`
//! (`org.apache.kafka.common.utils.Utils.murmur2`, seed 0x9747b28c), so a key lands where
//! the Java client would put it.
//!
//! One source for the broker (REST produce, `admin::messages`) and the load generator,
//! which includes this file with `#[path]`: it must depend on nothing but `core`, so
//! neither crate has to depend on the other.

/// Kafka's murmur2 of `data`, as the Java `int` it returns.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions` (at least one is assumed).
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    // Kafka's toPositive: clear the sign bit (not abs, which overflows on MIN).
    (murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), *want, "{:?}", std::str::from_utf8(data));
        }
    }

    #[test]
    fn partitions_stay_in_range_for_negative_hashes() {
        // murmur2("21") is negative: the sign bit is cleared, not negated.
        assert_eq!(
            partition_for_key(b"21", 7),
            (-973_932_308i32 & 0x7fff_ffff) as usize % 7
        );
        assert!((0..1000u32).all(|i| partition_for_key(&i.to_le_bytes(), 3) < 3));
    }
}
