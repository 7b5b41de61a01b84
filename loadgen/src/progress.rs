//! A progress bar on stderr while a run lasts, only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const TICK: Duration = Duration::from_millis(250);

pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Progress {
    /// Shows elapsed/total seconds and the measured count read from `counter`. Returns
    /// None when disabled or stderr is not a terminal (CI logs stay clean).
    pub fn start(enabled: bool, total: Duration, counter: Arc<AtomicU64>) -> Option<Progress> {
        if !enabled || !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-progress".into())
            .spawn(move || {
                let bar = ProgressBar::new(total.as_millis() as u64);
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
                {
                    bar.set_style(style);
                }
                let start = Instant::now();
                while !stop2.load(Ordering::Acquire) {
                    bar.set_position(start.elapsed().as_millis() as u64);
                    bar.set_message(format!("{} measured", counter.load(Ordering::Relaxed)));
                    std::thread::sleep(TICK);
                }
                bar.finish_and_clear();
            })
            .ok()?;
        Some(Progress { stop, handle })
    }

    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.handle.join();
    }
}
