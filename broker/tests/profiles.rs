//! The broker reports the configuration it really runs with: each profile's toggles
//! appear in `--print-config` (JSON) and in the startup banner, either as requested or
//! with a FALLBACK line that gives the reason (e.g. io_uring refused by this kernel).
//! A forced fallback (more io_uring entries than any kernel allows) is reported.

mod common;

use std::process::Command;

use common::TestBroker;
use serde_json::Value;

/// `--print-config` with `args` (and, like every broker the harness starts, the words
/// of `STRIKEMQ_TEST_ARGS`).
fn print_config(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_strikemq"))
        .args(args)
        .args(common::env_extra_args())
        .arg("--print-config")
        .output()
        .expect("run strikemq --print-config");
    assert!(out.status.success(), "--print-config failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("--print-config prints JSON")
}

fn fallback<'a>(cfg: &'a Value, key: &str) -> Option<&'a Value> {
    cfg["fallbacks"]
        .as_array()
        .expect("fallbacks array")
        .iter()
        .find(|f| f["key"] == key)
}

/// The banner line of `key` as the broker prints it (`  key = value`, TOML values).
fn banner_value(log: &str, key: &str) -> String {
    let prefix = format!("  {key} = ");
    log.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no banner line for {key}; log:\n{log}"))
        .trim_matches('"')
        .to_string()
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// For each (key, requested value): the effective value is the requested one, or a
/// fallback names the key with a reason. The banner agrees with the JSON on every key.
fn assert_reported(profile_args: &[&str], requested: &[(&str, &str)]) {
    let cfg = print_config(profile_args);
    let overridden = !common::env_extra_args().is_empty();
    for (key, want) in requested {
        let effective = json_text(&cfg["config"][*key]);
        if effective != *want {
            let f = fallback(&cfg, key).unwrap_or_else(|| {
                assert!(
                    overridden,
                    "{key}: requested {want}, effective {effective}, and no fallback reported: {cfg:#}"
                );
                &Value::Null
            });
            if !f.is_null() {
                assert_eq!(json_text(&f["effective"]), effective);
                assert!(
                    !json_text(&f["reason"]).is_empty(),
                    "fallback of {key} without a reason"
                );
                eprintln!("{key}: falls back to {effective} here: {}", f["reason"]);
            }
        }
    }
    let mut broker = TestBroker::start(profile_args);
    broker.assert_running();
    // The banner goes to stderr, the ready line to stdout: separate pipes, read by
    // separate threads, so wait for the banner's last line.
    common::wait_until(
        "the banner's last line",
        std::time::Duration::from_secs(5),
        || broker.log_text().contains("  ready in "),
    );
    let log = broker.log_text();
    for (key, _) in requested {
        assert_eq!(
            banner_value(&log, key),
            json_text(&cfg["config"][*key]),
            "banner and --print-config disagree on {key}"
        );
    }
    for f in cfg["fallbacks"].as_array().expect("fallbacks array") {
        let line = format!(
            "FALLBACK {}: requested {} -> using {} ({})",
            json_text(&f["key"]),
            json_text(&f["requested"]),
            json_text(&f["effective"]),
            json_text(&f["reason"])
        );
        assert!(log.contains(&line), "banner lacks {line:?}; log:\n{log}");
    }
}

#[test]
fn baseline_profile_runs_everything_off() {
    assert_reported(
        &["--profile", "baseline"],
        &[
            ("io_backend", "epoll"),
            ("log_map", "global"),
            ("conn_buffer", "vec"),
            ("busy_poll_us", "0"),
            ("segment_prefault_bytes", "0"),
            ("loop_timeout_ms", "100"),
            ("uring_registered_buffers", "false"),
            ("uring_multishot_recv", "false"),
        ],
    );
    if common::env_extra_args().is_empty() {
        let cfg = print_config(&["--profile", "baseline"]);
        assert_eq!(cfg["fallbacks"], Value::Array(vec![]), "{cfg:#}");
    }
}

#[test]
fn tuned_profile_reports_each_toggle_or_its_fallback() {
    assert_reported(
        &["--profile", "tuned"],
        &[
            ("io_backend", "io_uring_sqpoll"),
            ("sqpoll_idle_ms", "1"),
            ("log_map", "sharded"),
            ("log_map_shards", "64"),
            ("conn_buffer", "circular"),
            ("conn_buffer_bytes", "131072"),
            ("segment_prefault_bytes", "2097152"),
            ("loop_timeout_ms", "1"),
        ],
    );
}

#[test]
fn polling_profile_is_the_baseline_with_spinning_workers() {
    assert_reported(
        &["--profile", "polling"],
        &[
            ("io_backend", "epoll"),
            ("idle_spin_us", "200"),
            ("loop_timeout_ms", "100"),
            ("log_map", "global"),
            ("conn_buffer", "vec"),
        ],
    );
}

#[test]
fn loop_timeout_zero_is_refused_naming_the_key_and_its_replacement() {
    let out = Command::new(env!("CARGO_BIN_EXE_strikemq"))
        .args(["--set", "loop_timeout_ms=0", "--print-config"])
        .output()
        .expect("run strikemq");
    assert!(!out.status.success(), "loop_timeout_ms=0 was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loop_timeout_ms") && err.contains("idle_spin_us"),
        "{err}"
    );
}

#[test]
fn set_overrides_the_profile_and_every_uring_option_is_probed() {
    assert_reported(
        &[
            "--profile",
            "tuned",
            "--set",
            "io_backend=io_uring",
            "--set",
            "uring_registered_buffers=true",
            "--set",
            "uring_multishot_recv=true",
            "--set",
            "loop_timeout_ms=7",
        ],
        &[
            ("io_backend", "io_uring"),
            ("uring_registered_buffers", "true"),
            ("uring_multishot_recv", "true"),
            ("loop_timeout_ms", "7"),
        ],
    );
}

#[test]
fn io_uring_beyond_the_kernel_limit_falls_back_to_epoll_with_the_reason() {
    // IORING_MAX_ENTRIES is 32768 on every kernel: a million is refused (EINVAL).
    let args = [
        "--profile",
        "tuned",
        "--set",
        "sq_entries=1000000",
        "--set",
        "uring_multishot_recv=true",
    ];
    let cfg = print_config(&args);
    if common::env_extra_args().is_empty() {
        assert_eq!(cfg["config"]["io_backend"], "epoll", "{cfg:#}");
        let f = fallback(&cfg, "io_backend").expect("io_backend fallback");
        assert_eq!(f["requested"], "io_uring_sqpoll");
        assert_eq!(f["effective"], "epoll");
        let reason = json_text(&f["reason"]);
        assert!(reason.contains("sq_entries=1000000"), "{reason}");
        let f = fallback(&cfg, "uring_multishot_recv").expect("multishot fallback");
        assert_eq!(f["effective"], "false");
    }
    assert_reported(&args, &[("io_backend", "io_uring_sqpoll")]);
}
