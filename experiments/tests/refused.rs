//! A configuration key the broker does not know (a toggle still being written in another
//! branch, or a typo) stops the experiment before anything is measured, naming the key;
//! it never runs silently with the default instead.

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

fn broker() -> PathBuf {
    let dir = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "strikemq", "--bin", "strikemq"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().expect("cargo build").success());
    dir.join("strikemq")
}

#[test]
fn an_unknown_key_is_refused_before_any_measurement() {
    let broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("refused.toml");
    std::fs::write(
        &toml,
        r#"name = "refused"
question = "q"
client_wait = ["blocking", "busy-poll"]
[workload]
duration_s = 1
[[config]]
label = "known"
set = { loop_timeout_ms = 5 }
[[config]]
label = "spin"
set = { idle_spin_us_not_yet = 200 }
"#,
    )
    .unwrap();
    let results = tmp.path().join("results");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // loadgen is never started: any existing file will do as its path.
    let out = Command::new(env!("CARGO_BIN_EXE_experiments"))
        .arg("--repo")
        .arg(repo)
        .arg("--results-dir")
        .arg(&results)
        .arg("run")
        .arg(&toml)
        .arg("--broker-bin")
        .arg(&broker)
        .arg("--loadgen-bin")
        .arg(&broker)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("idle_spin_us_not_yet"), "{stderr}");
    assert!(stderr.contains("config \"spin\""), "{stderr}");
    assert!(stderr.contains("nothing was measured"), "{stderr}");
    assert!(
        !results.join("refused").exists(),
        "a results folder was made"
    );
}
