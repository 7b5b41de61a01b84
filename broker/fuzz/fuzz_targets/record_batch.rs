//! See `strikemq::fuzzing::record_batch` for what this target drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strikemq::fuzzing::record_batch(data));
