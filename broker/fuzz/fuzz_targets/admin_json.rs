//! See `strikemq::fuzzing::admin_json` for what this target drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strikemq::fuzzing::admin_json(data));
