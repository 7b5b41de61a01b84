//! Shared harness for the integration tests: start the real `strikemq` binary on a free
//! loopback port in a fresh data directory, and talk to it with real clients.
//!
//! Every wait in here has a deadline and fails with a message (and the broker's log)
//! instead of hanging CI.

// Each test file compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

pub mod ledger;
pub mod raw;
pub mod rdkafka_util;
pub mod txn_ledger;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the broker may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variable whose whitespace-separated words are appended to every
/// broker command line (the CI toggle matrix uses it).
pub const EXTRA_ARGS_ENV: &str = "STRIKEMQ_TEST_ARGS";
/// Lines of broker output kept for failure reports.
const LOG_LINES_MAX: usize = 2_000;

const READY_PREFIX: &str = "strikemq ready ";

/// The last lines the broker wrote (stdout after the ready line, and stderr).
#[derive(Clone, Default)]
pub struct BrokerLog(Arc<Mutex<VecDeque<String>>>);

impl BrokerLog {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LOG_LINES_MAX {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        for line in lines.iter() {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// A running (or stopped) `strikemq` process owned by one test.
pub struct TestBroker {
    child: Option<Child>,
    /// Keeps the temporary directory alive; the data dir is `root/data` so a test can
    /// check that nothing escapes it.
    root: tempfile::TempDir,
    data_dir: PathBuf,
    /// `127.0.0.1:PORT` as reported by the ready line.
    addr: String,
    /// The admin API's `127.0.0.1:PORT` from the ready line.
    admin_addr: String,
    /// The caller's extra arguments, reused on restart.
    args: Vec<String>,
    log: BrokerLog,
}

impl TestBroker {
    /// Starts a broker on `127.0.0.1:0` in a fresh data directory with `extra_args`
    /// (then the words of `STRIKEMQ_TEST_ARGS`) and waits for it to be ready.
    pub fn start(extra_args: &[&str]) -> TestBroker {
        let root = tempfile::Builder::new()
            .prefix("strikemq-test-")
            .tempdir()
            .expect("create temporary directory");
        let data_dir = root.path().join("data");
        std::fs::create_dir(&data_dir).expect("create data dir");
        let mut broker = TestBroker {
            child: None,
            root,
            data_dir,
            addr: String::new(),
            admin_addr: String::new(),
            args: extra_args.iter().map(|a| a.to_string()).collect(),
            log: BrokerLog::default(),
        };
        broker.spawn("127.0.0.1:0", "127.0.0.1:0");
        broker
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.clone()
    }

    /// `http://127.0.0.1:PORT` of the REST admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The temporary directory that contains the data dir (and nothing else).
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Fails the test if the broker process has exited (crashed) on its own.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("broker was stopped by the test");
        match child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!(
                "broker exited unexpectedly with {status}; log:\n{}",
                self.log.text()
            ),
            Err(e) => panic!("try_wait on broker failed: {e}"),
        }
    }

    /// The broker's resident set size in KiB; fails the test if the broker died.
    pub fn rss_kib(&mut self) -> u64 {
        self.assert_running();
        if let Some(kib) = vm_rss_kib(self.pid()) {
            return kib;
        }
        // No VmRSS: the process is exiting (e.g. aborting); let it finish, then report.
        thread::sleep(Duration::from_millis(500));
        self.assert_running();
        panic!("no VmRSS for a running broker (pid {})", self.pid());
    }

    /// Restarts a stopped (or killed) broker on the same data dir and the same port.
    /// A running broker is stopped first.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let (addr, admin_addr) = (self.addr.clone(), self.admin_addr.clone());
        self.spawn(&addr, &admin_addr);
        assert_eq!(self.addr, addr, "broker restarted on a different address");
    }

    /// SIGTERM, then waits up to `STOP_TIMEOUT` and asserts exit status 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let status = match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {STOP_TIMEOUT:?} after SIGTERM; log:\n{}",
                    self.log.text()
                );
            }
        };
        assert!(
            status.success(),
            "broker exited with {status} after SIGTERM (expected 0); log:\n{}",
            self.log.text()
        );
    }

    /// SIGTERM and the time until the process is gone (polled every millisecond), with
    /// its exit status; fails if it takes more than `STOP_TIMEOUT`.
    pub fn terminate_timed(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("broker is not running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let signalled = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return (status, signalled.elapsed()),
                Ok(None) if signalled.elapsed() > STOP_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "broker did not exit within {STOP_TIMEOUT:?} after SIGTERM; log:\n{}",
                        self.log.text()
                    );
                }
                Ok(None) => thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("try_wait failed: {e}"),
            }
        }
    }

    /// SIGKILL: no chance to flush. Waits for the process to be gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("SIGKILL broker");
        child.wait().expect("reap broker");
    }

    fn spawn(&mut self, listen: &str, admin_listen: &str) {
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen.into(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
        ];
        // A free admin port too, unless the test chose one: parallel brokers must not
        // all try the default 8080.
        if !self.args.iter().any(|a| a.starts_with("--admin-listen")) {
            args.extend(["--admin-listen".into(), admin_listen.into()]);
        }
        // Kafka's 3 s initial rebalance delay would make every group test 3 s slower;
        // a test of the delay sets it again (later settings win).
        args.extend(["--set".into(), "group_initial_rebalance_delay_ms=0".into()]);
        args.extend(self.args.iter().cloned());
        args.extend(env_extra_args());
        eprintln!("starting strikemq {}", args.join(" "));

        let mut child = Command::new(env!("CARGO_BIN_EXE_strikemq"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strikemq");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        drain_lines(stdout, self.log.clone(), Some(ready_tx));
        drain_lines(stderr, self.log.clone(), None);

        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => {
                self.addr = parse_ready_line(&line)
                    .unwrap_or_else(|| panic!("ready line without kafka=HOST:PORT: {line:?}"));
                self.admin_addr = ready_field(&line, "admin=")
                    .unwrap_or_else(|| panic!("ready line without admin=HOST:PORT: {line:?}"));
                self.child = Some(child);
            }
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // Give the drain threads a moment to collect the last words.
                thread::sleep(Duration::from_millis(100));
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("no ready line within {READY_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        "stdout closed before the ready line".to_string()
                    }
                };
                panic!(
                    "broker did not start: {why}; exit status {status:?}; args {args:?}; log:\n{}",
                    self.log.text()
                );
            }
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "---- strikemq log ({}) ----\n{}---- end of strikemq log ----",
                self.addr,
                self.log.text()
            );
        }
    }
}

/// The words of `STRIKEMQ_TEST_ARGS`, printed once per start when set.
pub fn env_extra_args() -> Vec<String> {
    match std::env::var(EXTRA_ARGS_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            eprintln!("{EXTRA_ARGS_ENV}={value}");
            value.split_whitespace().map(str::to_string).collect()
        }
        _ => Vec::new(),
    }
}

/// `strikemq ready kafka=127.0.0.1:PORT [key=value]...` → `127.0.0.1:PORT`.
fn parse_ready_line(line: &str) -> Option<String> {
    ready_field(line, "kafka=")
}

/// The value of the `prefix` field (`kafka=`, `admin=`) of a ready line.
fn ready_field(line: &str, prefix: &str) -> Option<String> {
    line.strip_prefix(READY_PREFIX)?
        .split_whitespace()
        .find_map(|field| field.strip_prefix(prefix))
        .map(str::to_string)
}

/// Reads `source` line by line until EOF so the child never blocks on a full pipe.
/// The first ready line goes to `ready`; everything else goes to the log.
fn drain_lines<R: Read + Send + 'static>(
    source: R,
    log: BrokerLog,
    mut ready: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw).trim_end().to_string();
            if line.starts_with(READY_PREFIX) {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(line.clone());
                }
            }
            log.push(line);
        }
    });
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("try_wait failed: {e}"),
        }
    }
}

/// Resident set size of a process in KiB, from `/proc/<pid>/status` (`None` when the
/// process is gone or exiting).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Every path below `dir`, relative to it, sorted.
pub fn list_tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}"));
        for entry in entries {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            out.push(path.strip_prefix(base).expect("below base").to_path_buf());
            if entry.file_type().expect("file type").is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Polls `condition` every 20 ms until it holds; fails with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the run is CI's (`CI` set to anything but "", "0" or "false"): then a test
/// whose tool is missing fails instead of skipping.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// `program` on `PATH` (or `/usr/bin/program`), if it is there.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether the tool a test needs is there. When it is not, under CI the test fails;
/// otherwise it prints one line, `SKIP <test>: <what> is not installed; install it with:
/// <install>`, and the test returns early. The line goes straight to stderr because
/// libtest hides what a passing test prints with `eprintln!`.
pub fn tool_or_skip(present: bool, what: &str, install: &str) -> bool {
    if present {
        return true;
    }
    let test = thread::current().name().unwrap_or("this test").to_string();
    assert!(
        !under_ci(),
        "{test}: {what} is not installed and CI is set (install it with: {install}; `just test` does)"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: {what} is not installed; install it with: {install} (or run `just test`)"
    );
    false
}

/// kcat, or `None` after a SKIP line (a failure under CI).
pub fn kcat_or_skip() -> Option<PathBuf> {
    let found = find_program("kcat");
    if !tool_or_skip(found.is_some(), "kcat", "apt-get install -y kcat") {
        return None;
    }
    found
}

/// A directory with kafka-clients 4.x and its dependencies: `STRIKEMQ_KAFKA_LIBS`, or
/// the first `~/.cache/strikemq/kafka-*/lib` holding a `kafka-clients-4*.jar`.
pub fn kafka_client_libs() -> Option<String> {
    if let Ok(dir) = std::env::var("STRIKEMQ_KAFKA_LIBS") {
        return Some(dir);
    }
    let cache = std::path::Path::new(&std::env::var("HOME").ok()?).join(".cache/strikemq");
    let has_clients_4 = |lib: &std::path::Path| {
        std::fs::read_dir(lib).is_ok_and(|entries| {
            entries.flatten().any(|f| {
                let name = f.file_name().to_string_lossy().into_owned();
                name.starts_with("kafka-clients-4") && name.ends_with(".jar")
            })
        })
    };
    std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .map(|e| e.path().join("lib"))
        .find(|lib| has_clients_4(lib))
        .map(|lib| lib.display().to_string())
}

/// A topic name unique within this test process.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::parse_ready_line;

    #[test]
    fn ready_line_parses_kafka_field_among_others() {
        assert_eq!(
            parse_ready_line("strikemq ready kafka=127.0.0.1:4242 admin=127.0.0.1:8080"),
            Some("127.0.0.1:4242".to_string())
        );
        assert_eq!(parse_ready_line("strikemq ready admin=x"), None);
        assert_eq!(parse_ready_line("something else kafka=1:2"), None);
    }
}
