//! Process plumbing for the freeze window: blocked signals waited for synchronously, poll with
//! a timeout, mlockall, the CLOCK_MONOTONIC clock shared by the controller and the guardian, and
//! the path the running binary is re-executed from.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// The running binary, re-executable even if the file was replaced or deleted since. Resolved by
/// the kernel at exec time; the guardian is spawned from it before anything is frozen.
pub const SELF_EXE: &str = "/proc/self/exe";

/// Where the children a freezer spawns start (so they hold no mount busy).
pub const NEUTRAL_CWD: &str = "/";

/// `/dev/null`, for children whose output must go nowhere.
pub const DEV_NULL: &str = "/dev/null";

/// Nanoseconds on CLOCK_MONOTONIC: one clock for every process on the machine, never set back,
/// so a deadline computed by the controller means the same instant to the guardian.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so the
    // call cannot fail (and if it did, `ts` stays zero).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Signals blocked on the calling thread until the guard is dropped (the previous mask comes
/// back). Threads created while it is held inherit the mask, and so would children:
/// `std::process::Command` passes the mask on, which is why every child is started through
/// [`super::spawn`], which empties it (CMD and hooks receive these signals normally).
#[must_use = "the signals are unblocked again when the guard is dropped"]
#[derive(Debug)]
pub struct BlockedSignals {
    set: SigSet,
    previous: SigSet,
}

impl BlockedSignals {
    /// Block `signals` on this thread.
    pub fn block(signals: &[Signal]) -> Result<Self, Errno> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(*s);
        }
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))?;
        Ok(BlockedSignals { set, previous })
    }

    /// The blocked set.
    pub fn set(&self) -> &SigSet {
        &self.set
    }

    /// Wait up to `timeout` for one of the blocked signals; `None` on timeout. A signal that
    /// arrived earlier (while blocked) is returned at once.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        loop {
            // SAFETY: the set is a valid sigset_t owned by `self`; a null siginfo pointer is
            // allowed by sigtimedwait(2); `ts` is a valid timespec on our stack.
            let r = unsafe { libc::sigtimedwait(self.set.as_ref(), std::ptr::null_mut(), &ts) };
            if r > 0 {
                return Signal::try_from(r).ok();
            }
            match Errno::last() {
                Errno::EINTR => continue,
                _ => return None,
            }
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// Wait until `fd` is readable (or at EOF/error) or `timeout_ms` passes (-1: forever).
/// Returns whether it is readable. No allocation: safe to call from the guardian while frozen.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool, Errno> {
    let mut fds = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid array of one pollfd for the whole call, and its length is passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) };
    Errno::result(r).map(|n| n > 0)
}

/// Wait until one of two fds is readable (or at EOF/error) or `timeout_ms` passes (-1: forever).
/// Returns which became readable. No allocation.
pub fn poll_two(
    a: BorrowedFd<'_>,
    b: BorrowedFd<'_>,
    timeout_ms: i32,
) -> Result<(bool, bool), Errno> {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfds for the whole call, and its length is passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    Errno::result(r)?;
    Ok((fds[0].revents != 0, fds[1].revents != 0))
}

/// Lock every current and future page of the process in memory, so the guardian never waits for
/// a page-in from a frozen (or any) filesystem while it must thaw. Needs CAP_IPC_LOCK or a large
/// enough RLIMIT_MEMLOCK.
pub fn lock_all_memory() -> Result<(), Errno> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let r = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    Errno::result(r).map(drop)
}

/// Start a new session (leave the caller's process group and controlling terminal), so that
/// `kill -- -PGID` or Ctrl-C aimed at the controller's group does not reach the caller.
pub fn new_session() -> Result<(), Errno> {
    nix::unistd::setsid().map(drop)
}

/// Send `signal` to the process `pid` (a child we started).
pub fn signal_pid(pid: u32, signal: Signal) -> Result<(), Errno> {
    let pid = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
}

/// Send `signal` to the process group `pgid` (the group of a hook we started with its own
/// group, so its own children go too).
pub fn signal_group(pgid: u32, signal: Signal) -> Result<(), Errno> {
    let pgid = i32::try_from(pgid).map_err(|_| Errno::ESRCH)?;
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), signal)
}

/// Whether process `pid` is alive: it exists (signal 0) and is not a zombie (a killed
/// guardian whose parent died too stays a zombie until init reaps it).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    // /proc/PID/stat: "pid (comm) S ..."; comm may contain ')' so take the last one.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => true,
    }
}

/// Effective uid of the process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}
