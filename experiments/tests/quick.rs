//! `experiments run quick` end to end against the real broker and loadgen binaries, into
//! a temporary results folder: every file is there, the effective configuration is
//! recorded for every broker run, fallbacks are excluded with a reason, and plots and the
//! release table redraw byte for byte from the saved results.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<target>/<profile>` of this test executable (it lives in `<profile>/deps/`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target profile dir")
        .to_path_buf()
}

/// Builds strikemq and loadgen in this test's profile so a stale binary is never run.
fn binaries() -> (PathBuf, PathBuf) {
    let dir = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build", "-p", "strikemq", "--bin", "strikemq", "-p", "loadgen", "--bin", "loadgen",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(
        status.success(),
        "cargo build of strikemq and loadgen failed"
    );
    (dir.join("strikemq"), dir.join("loadgen"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn experiments(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_experiments"))
        .arg("--repo")
        .arg(repo())
        .args(args)
        .output()
        .expect("running experiments");
    assert!(
        out.status.success(),
        "experiments {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn quick_runs_end_to_end_and_redraws_identically() {
    let (broker, loadgen) = binaries();
    let results = tempfile::tempdir().unwrap();
    let res = results.path().to_str().unwrap();
    let started = std::time::Instant::now();
    experiments(&[
        "--results-dir",
        res,
        "run",
        "quick",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--loadgen-bin",
        loadgen.to_str().unwrap(),
    ]);
    assert!(
        started.elapsed().as_secs() < 120,
        "quick took {:?}",
        started.elapsed()
    );

    let runs_dir: Vec<PathBuf> = std::fs::read_dir(results.path().join("quick"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs_dir.len(), 1, "one run folder: {runs_dir:?}");
    let dir = &runs_dir[0];
    for f in [
        "meta.json",
        "runs.csv",
        "summary.md",
        "spectrum.png",
        "spectrum.svg",
        "bars.png",
        "bars.svg",
    ] {
        assert!(
            dir.join(f).metadata().map(|m| m.len() > 0).unwrap_or(false),
            "{f} missing or empty"
        );
    }

    let meta: serde_json::Value = serde_json::from_slice(&read(&dir.join("meta.json"))).unwrap();
    for key in [
        "git_sha",
        "rustc",
        "kernel",
        "cpu_model",
        "cores",
        "host",
        "time",
    ] {
        assert!(
            !meta["environment"][key].is_null(),
            "environment.{key} missing"
        );
    }
    assert!(meta["experiment_toml"]
        .as_str()
        .unwrap()
        .contains("name = \"quick\""));
    let runs = meta["runs"].as_array().unwrap();
    // 2 floors + 3 configurations, 2 repetitions, interleaved.
    assert_eq!(runs.len(), 10);
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels[..5],
        labels[5..],
        "repetitions interleave A B C A B C"
    );
    for r in runs {
        let label = r["label"].as_str().unwrap();
        let status = r["status"].as_str().unwrap();
        assert_ne!(status, "failed", "{label} failed: {}", r["excluded_reason"]);
        let json = r["json"].as_str().expect("summary json");
        assert!(dir.join(json).is_file(), "{json}");
        let hlog = r["interval_log"].as_str().expect("interval log");
        assert!(dir.join(hlog).is_file(), "{hlog}");
        if r["kind"] == "broker" {
            assert!(
                r["effective"]["config"].is_object(),
                "{label}: effective config"
            );
            assert!(r["broker_cpu_s"].as_f64().is_some(), "{label}: broker CPU");
            let fallbacks = r["effective"]["fallbacks"].as_array().unwrap();
            // A run whose effective configuration differs is excluded, with the reason.
            if fallbacks.is_empty() {
                assert_eq!(status, "ok", "{label}");
            } else {
                assert_eq!(status, "fallback", "{label}");
                assert!(r["excluded_reason"].as_str().unwrap().contains("requested"));
            }
        }
    }
    let csv = String::from_utf8(read(&dir.join("runs.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 11, "header + one row per run");

    // Plots redraw byte for byte from the saved results.
    let plots = ["spectrum.png", "spectrum.svg", "bars.png", "bars.svg"];
    let before: Vec<Vec<u8>> = plots.iter().map(|p| read(&dir.join(p))).collect();
    for p in plots {
        std::fs::remove_file(dir.join(p)).unwrap();
    }
    experiments(&["--results-dir", res, "plots", "quick"]);
    for (p, b) in plots.iter().zip(&before) {
        assert!(read(&dir.join(p)) == *b, "{p} differs after redraw");
    }

    // The release table regenerates identically and takes its produce row from quick.
    experiments(&["--results-dir", res, "release-table", "--no-readme"]);
    let table = read(&results.path().join("RELEASE.md"));
    experiments(&["--results-dir", res, "release-table", "--no-readme"]);
    assert!(table == read(&results.path().join("RELEASE.md")));
    let text = String::from_utf8(table).unwrap();
    assert!(
        text.contains("| Metric | p50 | p99.9 | StrikeMQ v0.1.5 (seed)"),
        "{text}"
    );
    assert!(
        text.contains("Produce round trip, 1 KiB, baseline, closed loop | ")
            && text.contains("floor"),
        "{text}"
    );
}
