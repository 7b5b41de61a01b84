//! See `strikemq::fuzzing::request_decode` for what this target drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strikemq::fuzzing::request_decode(data));
