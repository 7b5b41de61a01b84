//! See `strikemq::fuzzing::broker_handle` for what this target drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strikemq::fuzzing::broker_handle(data));
