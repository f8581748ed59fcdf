//! The bounded, converging pre-freeze sync.
//!
//! FIFREEZE blocks new writers first and then writes back every dirty page of the filesystem
//! (freeze.md §5.2): whatever is dirty at that moment is written while applications stall. So
//! before each FIFREEZE, `syncfs` runs while writers still run, and again while each pass still
//! had much to flush: every pass flushes what was written during the previous one, so the passes
//! shrink towards what the writers produce in one short pass, and FIFREEZE is left with a few
//! milliseconds of work. The passes stop when one is quick, when they stop shrinking (the
//! writers keep up with the device), after [`MAX_PASSES`], or when half the time budget is used.
//!
//! The passes run in a helper process (`snapguard __syncfs PATH BUDGET_MS`), so a sync stuck on a
//! hung device can never keep snapguard from going on: past the budget the helper is abandoned
//! (it is in D state and cannot be killed; nothing waits for it).

use crate::sys::freeze::MountDir;
use crate::sys::process::{NEUTRAL_CWD, SELF_EXE, set_nonblocking};
use crate::sys::spawn::{Program, Spawn};
use nix::errno::Errno;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand running the passes.
pub const SUBCOMMAND: &str = "__syncfs";

/// A pass this quick leaves FIFREEZE almost nothing to write.
const SETTLED: Duration = Duration::from_millis(2);
/// At most this many passes.
pub const MAX_PASSES: u32 = 16;
/// After this many passes, stop once a pass is not clearly shorter than the one before.
const MIN_PASSES_BEFORE_PLATEAU: u32 = 3;

/// Whether another pass is worth it, after `passes` passes, the last two taking `previous` and
/// `last`, `elapsed` in all, out of `budget`.
pub fn another_pass(
    passes: u32,
    previous: Option<Duration>,
    last: Duration,
    elapsed: Duration,
    budget: Duration,
) -> bool {
    if last < SETTLED || passes >= MAX_PASSES || elapsed >= budget / 2 {
        return false;
    }
    match previous {
        // Not shrinking by a fifth any more: the writers keep pace with the flush.
        Some(prev) if passes >= MIN_PASSES_BEFORE_PLATEAU => last * 5 < prev * 4,
        _ => true,
    }
}

/// The helper's main: passes on `path` within `budget`; prints `PASSES TOTAL_US LAST_US` and
/// exits 0, or exits with the errno.
pub fn helper(path: &Path, budget: Duration) -> (u8, String) {
    let dir = match MountDir::open(path) {
        Ok(d) => d,
        Err(e) => return (u8::try_from(e as i32).unwrap_or(1), String::new()),
    };
    let start = Instant::now();
    let mut passes = 0u32;
    let mut previous = None;
    loop {
        let t = Instant::now();
        if let Err(e) = dir.syncfs() {
            return (u8::try_from(e as i32).unwrap_or(1), String::new());
        }
        let last = t.elapsed();
        passes += 1;
        if !another_pass(passes, previous, last, start.elapsed(), budget) {
            return (
                0,
                format!(
                    "{passes} {} {}\n",
                    start.elapsed().as_micros(),
                    last.as_micros()
                ),
            );
        }
        previous = Some(last);
    }
}

/// How a pre-freeze sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// `passes` syncfs calls in `took`.
    Done { passes: u32, took: Duration },
    /// syncfs failed (not fatal: the kernel syncs again inside FIFREEZE).
    Failed(Errno, Duration),
    /// Still running after the budget: a hung device, or far too much dirty data.
    TimedOut(Duration),
}

/// A pre-freeze sync running in its helper.
#[derive(Debug)]
pub struct Presync {
    child: Child,
    out: ChildStdout,
    text: Vec<u8>,
    started: Instant,
    budget: Duration,
}

impl Presync {
    /// Start the passes on `path` (any directory of the filesystem) within `budget`.
    pub fn start(path: &Path, budget: Duration) -> Result<Self, Errno> {
        let mut child = Spawn::new(Program::Path(Path::new(SELF_EXE)))
            .arg0("snapguard")
            .args([
                SUBCOMMAND.as_ref(),
                path.as_os_str(),
                budget.as_millis().to_string().as_ref(),
            ])
            .env_fixed(Vec::<(String, String)>::new())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .cwd(Path::new(NEUTRAL_CWD))
            .spawn()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let Some(out) = child.stdout.take() else {
            let _ = child.kill();
            return Err(Errno::EPIPE);
        };
        let _ = set_nonblocking(out.as_fd());
        Ok(Presync {
            child,
            out,
            text: Vec::new(),
            started: Instant::now(),
            budget,
        })
    }

    /// The fd to poll: readable when the helper prints its result or exits.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.out.as_fd()
    }

    /// When the budget runs out.
    pub fn deadline(&self) -> Instant {
        self.started + self.budget
    }

    /// The result, once there is one (never blocks). Past the budget the helper is abandoned.
    pub fn poll(&mut self) -> Option<SyncResult> {
        let mut buf = [0u8; 128];
        let mut eof = false;
        loop {
            match self.out.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => self.text.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let took = self.started.elapsed();
        if eof {
            // Closed stdout: the helper is exiting; its status follows at once.
            let status = self.child.wait().ok();
            return Some(match status.and_then(|s| s.code()) {
                Some(0) => {
                    let text = String::from_utf8_lossy(&self.text);
                    let passes = text
                        .split_whitespace()
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(1);
                    SyncResult::Done { passes, took }
                }
                Some(code) => SyncResult::Failed(Errno::from_raw(code), took),
                None => SyncResult::Failed(Errno::EINTR, took),
            });
        }
        if took >= self.budget {
            // Dropping a Child neither kills nor waits for it: the helper is left behind.
            return Some(SyncResult::TimedOut(took));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const BUDGET: Duration = Duration::from_secs(30);

    #[test]
    fn passes_stop_when_quick_when_flat_or_when_out_of_time() {
        // A quick first pass: nothing to converge.
        assert!(!another_pass(1, None, MS, MS, BUDGET));
        // Shrinking passes go on.
        assert!(another_pass(1, None, 300 * MS, 300 * MS, BUDGET));
        assert!(another_pass(2, Some(300 * MS), 60 * MS, 360 * MS, BUDGET));
        assert!(another_pass(3, Some(60 * MS), 12 * MS, 372 * MS, BUDGET));
        // A plateau (writers keep pace) stops, but not before the third pass.
        assert!(another_pass(2, Some(20 * MS), 20 * MS, 40 * MS, BUDGET));
        assert!(!another_pass(3, Some(20 * MS), 19 * MS, 60 * MS, BUDGET));
        // Cap on passes and on time.
        assert!(!another_pass(
            MAX_PASSES,
            Some(50 * MS),
            10 * MS,
            500 * MS,
            BUDGET
        ));
        assert!(!another_pass(2, Some(9 * MS), 5 * MS, 15 * MS, 20 * MS));
    }
}
