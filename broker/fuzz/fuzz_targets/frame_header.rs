//! See `strikemq::fuzzing::frame_header` for what this target drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strikemq::fuzzing::frame_header(data));
