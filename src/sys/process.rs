//! Process plumbing for the freeze window: the terminating signals taken through a signalfd,
//! poll over a fixed set of fds, mlockall and OOM protection, the CLOCK_BOOTTIME clock shared by
//! the controller and the guardian, pidfds, process identities (pid + start time, read with the
//! `procfs` crate) and the path the running binary is re-executed from.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The running binary, re-executable even if the file was replaced or deleted since. Resolved by
/// the kernel at exec time; the guardian is spawned from it before anything is frozen.
pub const SELF_EXE: &str = "/proc/self/exe";

/// Where the children a freezer spawns start (so they hold no mount busy).
pub const NEUTRAL_CWD: &str = "/";

/// `/dev/null`, for children whose output must go nowhere.
pub const DEV_NULL: &str = "/dev/null";

/// Nanoseconds on CLOCK_BOOTTIME: one clock for every process on the machine, never set back,
/// and (unlike CLOCK_MONOTONIC) still running while the machine is suspended, so a deadline
/// computed by one process means the same instant to the other, and a VM suspended in the middle
/// of a freeze is thawed as soon as it resumes instead of outliving its deadline.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every kernel this runs
    // on (2.6.39+), so the call cannot fail (and if it did, `ts` stays zero).
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
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

/// The signals that end a freeze early: every catchable signal whose default action terminates
/// the process, except SIGPIPE (ignored by the Rust runtime; a dead peer shows as EPIPE). Both
/// the controller and the guardian block them and take them through a signalfd, so none of
/// them can kill a process that holds a freeze without the thaw running first. The fault
/// signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT) are in the set too: one
/// sent with kill(2) is a request like any other; a real fault is delivered by the kernel
/// whatever the mask (a bug kills, as it must). SIGKILL cannot be caught: that is what the
/// guardian is for.
pub const TERMINATING_SIGNALS: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGPWR,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGIO,
    Signal::SIGSTKFLT,
    Signal::SIGABRT,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Terminating signals blocked on the calling thread and readable from a signalfd (so they can be
/// polled with other fds). Real-time signals (SIGRTMIN..SIGRTMAX, also terminating by default)
/// are included. Unblocked again on drop. Children spawned through [`super::spawn`] start with an
/// empty mask whatever this thread blocks.
#[derive(Debug)]
pub struct SignalWatch {
    blocked: BlockedSignals,
    fd: nix::sys::signalfd::SignalFd,
}

impl SignalWatch {
    /// Block [`TERMINATING_SIGNALS`] and the real-time signals, and open a signalfd for them.
    /// Call before any thread is started (threads inherit the mask).
    pub fn new() -> Result<Self, Errno> {
        let mut set = SigSet::empty();
        for s in TERMINATING_SIGNALS {
            set.add(*s);
        }
        // The guard restores the whole previous mask on drop, real-time signals included.
        let blocked = BlockedSignals::block(TERMINATING_SIGNALS)?;
        // Real-time signals have no `Signal` value in nix: they are added to the raw set.
        let set = realtime_inclusive(set);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &set,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )?;
        Ok(SignalWatch { blocked, fd })
    }

    /// The next pending signal number, if any (never blocks).
    pub fn take(&self) -> Option<i32> {
        match self.fd.read_signal() {
            Ok(Some(info)) => i32::try_from(info.ssi_signo).ok(),
            _ => None,
        }
    }

    /// The blocked set (for a [`BlockedSignals`]-style wait).
    pub fn blocked(&self) -> &BlockedSignals {
        &self.blocked
    }
}

impl AsFd for SignalWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The real-time signal numbers glibc leaves to applications.
fn realtime_range() -> std::ops::RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// `set` plus every real-time signal.
fn realtime_inclusive(set: SigSet) -> SigSet {
    let mut raw: libc::sigset_t = *set.as_ref();
    for signo in realtime_range() {
        // SAFETY: `raw` is a valid sigset_t owned by this frame; sigaddset only writes into it
        // and fails (harmlessly, ignored) for a number outside 1..NSIG.
        unsafe { libc::sigaddset(&mut raw, signo) };
    }
    // SAFETY: `raw` was copied from a valid SigSet and only extended by sigaddset, so it is a
    // properly initialised sigset_t.
    unsafe { SigSet::from_sigset_t_unchecked(raw) }
}

/// A fixed set of up to `N` fds to poll: no allocation, so the guardian can use it while frozen.
/// An empty slot (`fd = -1`) is ignored by poll(2).
#[derive(Debug)]
pub struct PollSet<const N: usize> {
    fds: [libc::pollfd; N],
}

impl<const N: usize> Default for PollSet<N> {
    fn default() -> Self {
        PollSet {
            fds: [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; N],
        }
    }
}

impl<const N: usize> PollSet<N> {
    /// Watch `fd` for input in `slot` (or nothing, with `None`).
    pub fn set(&mut self, slot: usize, fd: Option<BorrowedFd<'_>>) {
        if let Some(p) = self.fds.get_mut(slot) {
            p.fd = fd.map_or(-1, |f| f.as_raw_fd());
            p.events = libc::POLLIN;
            p.revents = 0;
        }
    }

    /// Wait until a watched fd is readable, hung up or in error, or `timeout` passes (`None`:
    /// forever). EINTR is returned to the caller.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Errno> {
        let ms = match timeout {
            None => -1,
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        for p in &mut self.fds {
            p.revents = 0;
        }
        // SAFETY: `fds` is a valid array of N pollfds for the whole call and N is passed as its
        // length; the fds in it are borrowed by the caller for at least this call (an fd closed
        // meanwhile would show as POLLNVAL, never as memory unsafety).
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), N as libc::nfds_t, ms) };
        Errno::result(r).map(drop)
    }

    /// Whether `slot` is readable (or at EOF, or in error) after the last wait.
    pub fn ready(&self, slot: usize) -> bool {
        self.fds
            .get(slot)
            .is_some_and(|p| p.fd >= 0 && p.revents != 0)
    }
}

/// A pidfd: a handle on one process that cannot be confused with a later process reusing its
/// pid. Readable (poll) once the process has exited.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// pidfd_open(2) of `pid`. For a child that is not reaped yet the pid cannot have been
    /// reused, so the handle is certainly on that child; for any other process, check its
    /// [`ProcessIdentity`] afterwards.
    pub fn open(pid: u32) -> Result<Self, Errno> {
        let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1; no
        // memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
        let raw = Errno::result(r)?;
        let raw = std::os::fd::RawFd::try_from(raw).map_err(|_| Errno::EBADF)?;
        // SAFETY: a successful pidfd_open returned a new fd (close-on-exec by default) that
        // nothing else owns.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// pidfd_send_signal(2): `signal` to exactly this process (ESRCH once it has exited).
    pub fn signal(&self, signal: Signal) -> Result<(), Errno> {
        // SAFETY: the fd is a pidfd owned by `self`; a null siginfo is allowed (the kernel fills
        // in a SI_USER one); flags must be 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        Errno::result(r).map(drop)
    }

    /// Whether the process has exited (the pidfd is readable), without blocking.
    pub fn has_exited(&self) -> bool {
        let mut set = PollSet::<1>::default();
        set.set(0, Some(self.0.as_fd()));
        set.wait(Some(Duration::ZERO)).is_ok() && set.ready(0)
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A process as it can be recognised later: its pid and its start time (clock ticks after boot,
/// field 22 of `/proc/PID/stat`). A pid alone can be reused by an unrelated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of `pid` read from `proc_dir` (`/proc` or a fixture's), `None` when it does
    /// not exist.
    pub fn of(proc_dir: &std::path::Path, pid: u32) -> Option<Self> {
        let stat = procfs::process::Process::new_with_root(proc_dir.join(pid.to_string()))
            .ok()?
            .stat()
            .ok()?;
        Some(ProcessIdentity {
            pid,
            start_time: stat.starttime,
        })
    }

    /// This process.
    pub fn myself(proc_dir: &std::path::Path) -> Option<Self> {
        Self::of(proc_dir, std::process::id())
    }

    /// Whether this very process still runs: same pid, same start time, not a zombie.
    pub fn is_alive(&self, proc_dir: &std::path::Path) -> bool {
        let Ok(process) =
            procfs::process::Process::new_with_root(proc_dir.join(self.pid.to_string()))
        else {
            return false;
        };
        match process.stat() {
            Ok(stat) => stat.starttime == self.start_time && !matches!(stat.state, 'Z' | 'X' | 'x'),
            // It exists but cannot be read: assume alive (never thaw under a live run).
            Err(_) => true,
        }
    }
}

/// Ask the kernel never to pick this process when it runs out of memory
/// (`oom_score_adj = -1000`). Needs CAP_SYS_RESOURCE; fails harmlessly without it.
pub fn protect_from_oom() -> std::io::Result<()> {
    std::fs::write("/proc/self/oom_score_adj", b"-1000\n")
}

/// A pipe whose both ends are close-on-exec (read end, write end).
pub fn pipe() -> Result<(std::fs::File, std::fs::File), Errno> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

/// Make reads and writes on `fd` non-blocking (the open file description is ours alone: only
/// for pipes snapguard created).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Make writes on `fd` blocking again (a log file opened `O_NONBLOCK` so that a FIFO without a
/// reader fails the open instead of hanging it).
pub fn clear_nonblocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(drop)
}

/// A one-shot timer on CLOCK_BOOTTIME, readable (poll) once its absolute deadline passes, even
/// if the machine was suspended meanwhile (poll's own timeout would not count the suspension).
#[derive(Debug)]
pub struct BootDeadline {
    fd: nix::sys::timerfd::TimerFd,
}

impl BootDeadline {
    /// A disarmed timer.
    pub fn new() -> Result<Self, Errno> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(BootDeadline { fd })
    }

    /// Fire at `deadline_ns` (CLOCK_BOOTTIME); a deadline already past fires at once.
    pub fn arm(&self, deadline_ns: u64) -> Result<(), Errno> {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        // 0 would disarm: the earliest real instant is 1 ns.
        let at = TimeSpec::from_duration(Duration::from_nanos(deadline_ns.max(1)));
        self.fd.set(
            Expiration::OneShot(at),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        )
    }

    /// Stop the timer and forget an expiry not read yet.
    pub fn disarm(&self) -> Result<(), Errno> {
        self.fd.unset()?;
        self.drain();
        Ok(())
    }

    /// Read (and forget) the expiry count, if any; never blocks.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(self.fd.as_fd().as_raw_fd(), &mut buf);
    }
}

impl AsFd for BootDeadline {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// CPU time the calling thread has used so far (user and system, in nanoseconds; the
/// kernel's exact runtime, not a sampled tick count), or `None` where the clock is missing.
/// Time the thread spends blocked (a read waiting for a device) is not in it. A system call
/// (no vDSO for this clock): read it seldom.
pub fn thread_cpu_time() -> Option<Duration> {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(Duration::from)
}

/// How many CPUs this process may run on (its affinity mask, at least 1): one system call,
/// where `std::thread::available_parallelism` also reads `/proc/self/cgroup` and the cgroup's
/// CPU quota (a dozen more, at every start).
pub fn usable_cpus() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity};
    sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}
