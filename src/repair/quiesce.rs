//! Ending the processes that hold a filesystem, only with `--terminate-holders`: each through
//! a pidfd opened and then checked against the start time the scan saw (a reused pid is never
//! signalled), SIGTERM, a grace period, then SIGKILL. Never by path (repair.md §8.3, §8.4).

use super::holders::ProcessHolder;
use crate::sys::process::{Pidfd, ProcessIdentity};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

/// How one holder was ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Gone before it was signalled.
    AlreadyGone,
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL.
    Killed,
    /// Still there (a process in uninterruptible sleep, or signals refused).
    Survived(String),
}

impl Ended {
    /// A word for the report.
    pub fn label(&self) -> &'static str {
        match self {
            Ended::AlreadyGone => "gone",
            Ended::Terminated => "terminated",
            Ended::Killed => "killed",
            Ended::Survived(_) => "survived",
        }
    }
}

/// End `holder`: SIGTERM, up to `grace`, then SIGKILL and up to 5 s more.
pub fn end(proc_dir: &Path, holder: &ProcessHolder, grace: Duration) -> Ended {
    let Ok(pidfd) = Pidfd::open(holder.pid) else {
        return Ended::AlreadyGone;
    };
    // The pidfd pins the process; its start time proves it is the one the scan saw.
    let same = ProcessIdentity::of(proc_dir, holder.pid)
        .is_some_and(|id| id.start_time == holder.start_time);
    if !same {
        return Ended::AlreadyGone;
    }
    if let Err(e) = pidfd.signal(Signal::SIGTERM) {
        return Ended::Survived(format!("SIGTERM refused: {e}"));
    }
    if wait_exit(&pidfd, grace) {
        return Ended::Terminated;
    }
    if let Err(e) = pidfd.signal(Signal::SIGKILL) {
        return Ended::Survived(format!("SIGKILL refused: {e}"));
    }
    if wait_exit(&pidfd, Duration::from_secs(5)) {
        Ended::Killed
    } else {
        Ended::Survived("still running 5 s after SIGKILL (uninterruptible sleep?)".into())
    }
}

fn wait_exit(pidfd: &Pidfd, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if pidfd.has_exited() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
