//! The controller's side of a freeze, shared by `freeze` and `freeze-test`: its view of the
//! guardian and of each mount, one event pump (the guardian's reports, snapguard's own signals
//! and whatever else the caller polls), and the requests (open a window, freeze one mount, thaw
//! all, ping, done).
//!
//! The controller never calls FIFREEZE or FITHAW while the guardian lives. When the guardian is
//! proven gone (end of file on its pipe: no thread of it is left) the controller thaws, last
//! first, what the guardian had reported frozen and not thawed, through its own proven fds; a
//! FIFREEZE the guardian had in flight is reported as possibly still frozen, not thawed blindly.

use super::access::Access;
use super::guardian::{Event, GuardianClient, Request, Spec, WindowEnd};
use super::presync::{Presync, SyncResult};
use super::record::{self, MountState, Record, RecordFile};
use crate::report::ThawedBy;
use crate::sys::freeze::errno_name;
use crate::sys::process::{PollSet, SignalWatch, boottime_ns};
use nix::errno::Errno;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// After the deadline, how long the guardian has to report its thaw before the controller
/// wakes it (SIGCONT) and pings it: the promise is "frozen no longer than the deadline plus a
/// second", and a stopped guardian must be noticed well within it.
pub const GRACE: Duration = Duration::from_millis(300);

/// How long a ping may take before CMD starts.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the watchdog's ping may take past the deadline (then: kill, and thaw by itself).
pub const WATCHDOG_PING: Duration = Duration::from_millis(400);

/// How long the controller's own FITHAWs may take once the guardian is gone.
pub const FALLBACK_WAIT: Duration = Duration::from_secs(2);

/// The hidden subcommand that issues one FITHAW through an inherited fd.
pub const FITHAW_SUBCOMMAND: &str = "__fithaw";

/// `snapguard __fithaw FD`, with `dir` inherited as FD: exits 0, or with the errno.
fn fithaw_helper(dir: BorrowedFd<'_>) -> std::io::Result<std::process::Child> {
    use crate::sys::spawn::{Program, Spawn};
    use std::os::fd::AsRawFd;
    Spawn::new(Program::Path(std::path::Path::new(
        crate::sys::process::SELF_EXE,
    )))
    .arg0("snapguard")
    .args([FITHAW_SUBCOMMAND.to_string(), dir.as_raw_fd().to_string()])
    .env_fixed(Vec::<(String, String)>::new())
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .cwd(std::path::Path::new(crate::sys::process::NEUTRAL_CWD))
    .keep_fd(dir)
    .spawn()
}

/// The helper's main: FITHAW through inherited fd `raw`; the exit status is the errno (0: thawed).
pub fn fithaw_main(raw: i32) -> u8 {
    match crate::sys::spawn::adopt_inherited_fd(raw) {
        Ok(fd) => match crate::sys::freeze::thaw_fd(&fd) {
            Ok(()) => 0,
            Err(e) => u8::try_from(e as i32).unwrap_or(1),
        },
        Err(e) => u8::try_from(e.raw_os_error().unwrap_or(libc::EBADF)).unwrap_or(1),
    }
}

/// How long past the deadline a FIFREEZE may still be in flight (the guardian alive, waiting
/// for it to return so it can thaw it) before the controller stops waiting for the window's end.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

/// Up to this many extra fds can be polled with the guardian and the signals.
pub const EXTRA: usize = 4;

/// How a FIFREEZE request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeResult {
    Frozen {
        start: u64,
        end: u64,
    },
    Busy {
        start: u64,
        end: u64,
    },
    Failed {
        errno: i32,
        start: u64,
        end: u64,
    },
    /// The guardian refused: its window had ended (deadline, signal) or it is stopping.
    Refused,
}

/// How a mount was thawed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThawRecord {
    pub start: u64,
    pub end: u64,
    pub errno: i32,
    pub by: ThawedBy,
    /// Why its window ended (filled in when the guardian reports the end).
    pub why: Option<WindowEnd>,
}

/// One mount the run may freeze; its index is the guardian's index.
#[derive(Debug)]
pub struct MountProgress {
    /// Index into the run's targets.
    pub target: usize,
    /// The controller's own proven fd (used only once the guardian is gone).
    pub access: Access,
    pub sync: Option<SyncResult>,
    /// A FIFREEZE was requested.
    pub requested: bool,
    pub freeze: Option<FreezeResult>,
    pub thaw: Option<ThawRecord>,
    /// The guardian died with this FIFREEZE in flight: it may be frozen.
    pub unknown: bool,
}

impl MountProgress {
    pub fn new(target: usize, access: Access) -> Self {
        MountProgress {
            target,
            access,
            sync: None,
            requested: false,
            freeze: None,
            thaw: None,
            unknown: false,
        }
    }

    /// Frozen by this run and not thawed (as far as the controller knows).
    pub fn is_frozen(&self) -> bool {
        matches!(self.freeze, Some(FreezeResult::Frozen { .. })) && self.thaw.is_none()
    }

    /// Its freeze may still be in effect: frozen and not thawed, a failed thaw, or unknown.
    pub fn may_still_be_frozen(&self) -> bool {
        self.is_frozen()
            || self.unknown
            || self
                .thaw
                .is_some_and(|t| t.errno != 0 && t.errno != Errno::EINVAL as i32)
    }
}

/// Which of the caller's extra fds were ready after a pump.
pub type Ready = [bool; EXTRA];

/// The controller's state.
pub struct Control<'s> {
    signals: &'s SignalWatch,
    guardian: Option<GuardianClient>,
    pub mounts: Vec<MountProgress>,
    /// The guardian is gone (never started, died, or killed as unresponsive).
    pub gone: bool,
    /// Why it is gone, for messages.
    pub gone_why: Option<String>,
    pub deadline_ns: Option<u64>,
    pub window_open: bool,
    thaw_requested: bool,
    /// How the last window ended.
    pub window_end: Option<WindowEnd>,
    /// The guardian said the open window is ending (its thaws may not have returned yet).
    pub window_ending: Option<WindowEnd>,
    /// The guardian stopped for good on its own (a signal, an error): no window can open.
    pub guardian_stopped: Option<WindowEnd>,
    /// The start of the first thaw of a window the guardian ended on its own (deadline,
    /// signal): from then on a snapshot is no longer consistent.
    pub broken_at_ns: Option<u64>,
    /// The first signal snapguard got, and whether a window was open then.
    pub signal: Option<i32>,
    pub signal_in_window: bool,
    pong: bool,
    /// The RCU knob, when the guardian expedites and found it off: put back if it dies.
    rcu_to_restore: Option<crate::sys::freeze::RcuExpedite>,
    /// The run's record, which the controller takes over once the guardian is gone.
    record_path: Option<std::path::PathBuf>,
    /// A FIFREEZE did not return by the deadline and the guardian still answers: waiting for the
    /// window to end is pointless (the guardian thaws it when it returns).
    pub stuck: bool,
    next_check_ns: u64,
    pub messages: Vec<String>,
}

impl<'s> Control<'s> {
    pub fn new(signals: &'s SignalWatch, mounts: Vec<MountProgress>) -> Self {
        Control {
            signals,
            guardian: None,
            mounts,
            gone: true,
            gone_why: None,
            deadline_ns: None,
            window_open: false,
            thaw_requested: false,
            window_end: None,
            window_ending: None,
            guardian_stopped: None,
            broken_at_ns: None,
            signal: None,
            signal_in_window: false,
            pong: false,
            rcu_to_restore: None,
            record_path: None,
            stuck: false,
            next_check_ns: 0,
            messages: Vec::new(),
        }
    }

    /// Start the guardian and wait until it is ready.
    pub fn start_guardian(
        &mut self,
        spec: &Spec,
        inherit: &[BorrowedFd<'_>],
    ) -> anyhow::Result<()> {
        self.record_path = spec.record.clone();
        let g = GuardianClient::spawn(spec, inherit)?;
        if !g.mlocked {
            self.messages.push(
                "the guardian could not lock its memory (mlockall; RLIMIT_MEMLOCK or \
                 CAP_IPC_LOCK); it runs anyway"
                    .to_string(),
            );
        }
        if !g.oom_protected {
            self.messages.push(
                "the guardian could not protect itself from the OOM killer (oom_score_adj \
                 -1000 needs CAP_SYS_RESOURCE); it runs anyway"
                    .to_string(),
            );
        }
        if spec.record.is_some() && !g.recorded {
            self.messages.push(format!(
                "the guardian could not write its record in '{}' (read-only? full?): if snapguard \
                 and its guardian both die while frozen, `snapguard thaw` will need --force and \
                 the mount points",
                spec.record
                    .as_deref()
                    .and_then(std::path::Path::parent)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
        }
        self.guardian = Some(g);
        self.gone = false;
        Ok(())
    }

    /// The guardian's pid, while it runs.
    pub fn guardian_pid(&self) -> Option<u32> {
        self.guardian.as_ref().map(|g| g.pid)
    }

    /// Send a request; a guardian that cannot take it is gone.
    pub fn send(&mut self, r: Request) -> bool {
        if self.gone {
            return false;
        }
        let sent = self.guardian.as_mut().is_some_and(|g| g.send(r));
        if !sent {
            // The pipe is broken: it died. Collect what it said before, then fall back.
            self.pump(&[], Some(Duration::from_millis(100)));
            if !self.gone {
                self.declare_gone("it stopped reading its requests");
            }
        }
        sent
    }

    /// One round: wait up to `timeout` for the guardian, a signal or one of `extra`; handle the
    /// guardian's reports and the signals; tell which `extra` fds are ready.
    pub fn pump(&mut self, extra: &[Option<BorrowedFd<'_>>], timeout: Option<Duration>) -> Ready {
        let mut set = PollSet::<{ EXTRA + 2 }>::default();
        set.set(0, self.signals_fd());
        let guardian_fd = if self.gone {
            None
        } else {
            self.guardian.as_ref().map(|g| g.fd())
        };
        set.set(1, guardian_fd);
        for (k, fd) in extra.iter().take(EXTRA).enumerate() {
            set.set(2 + k, *fd);
        }
        let mut ready = [false; EXTRA];
        if set.wait(timeout).is_err() {
            return ready;
        }
        for (k, r) in ready.iter_mut().enumerate() {
            *r = set.ready(2 + k);
        }
        let signal_ready = set.ready(0);
        let guardian_ready = set.ready(1);
        if signal_ready {
            while let Some(n) = self.signals.take() {
                self.on_signal(n);
            }
        }
        if guardian_ready {
            let (events, eof) = match self.guardian.as_mut() {
                Some(g) => (g.events(), g.is_gone()),
                None => (Vec::new(), true),
            };
            for e in events {
                self.on_event(e);
            }
            if eof && !self.gone {
                self.declare_gone("it exited");
            }
        }
        ready
    }

    fn signals_fd(&self) -> Option<BorrowedFd<'s>> {
        Some(self.signals.as_fd())
    }

    fn on_signal(&mut self, n: i32) {
        if self.signal.is_none() {
            self.signal = Some(n);
            self.signal_in_window = self.window_open;
        }
        if self.window_open && !self.thaw_requested {
            self.request_thaw();
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Armed { deadline_ns } => self.deadline_ns = Some(deadline_ns),
            Event::Frozen { index, start, end } => {
                self.set_freeze(index, FreezeResult::Frozen { start, end });
            }
            Event::Busy { index, start, end } => {
                self.set_freeze(index, FreezeResult::Busy { start, end });
            }
            Event::FreezeFailed {
                index,
                errno,
                start,
                end,
            } => self.set_freeze(index, FreezeResult::Failed { errno, start, end }),
            Event::Refused { index } => self.set_freeze(index, FreezeResult::Refused),
            Event::Thawed {
                index,
                errno,
                start,
                end,
            } => {
                // Who and why is settled when the guardian says why the window ended (`K`):
                // a thaw request of ours may cross its deadline thaw.
                if let Some(m) = self.mounts.get_mut(index) {
                    m.thaw = Some(ThawRecord {
                        start,
                        end,
                        errno,
                        by: ThawedBy::Guardian,
                        why: None,
                    });
                }
            }
            Event::WindowEnding(why) => {
                if self.window_open {
                    self.window_ending.get_or_insert(why);
                    // The window is broken from the guardian's decision on: CMD ending after
                    // this (on the SIGTERM it is about to get) did not end inside the window.
                    if why != WindowEnd::Requested {
                        let now = boottime_ns();
                        self.broken_at_ns = Some(self.broken_at_ns.map_or(now, |b| b.min(now)));
                    }
                }
            }
            Event::WindowEnded(why) => {
                self.window_ending = None;
                self.window_open = false;
                self.window_end = Some(why);
                if matches!(why, WindowEnd::Signal(_) | WindowEnd::Error) {
                    self.guardian_stopped.get_or_insert(why);
                }
                let by = if why == WindowEnd::Requested {
                    ThawedBy::Snapguard
                } else {
                    ThawedBy::Guardian
                };
                let mut first_thaw: Option<u64> = None;
                for m in &mut self.mounts {
                    if let Some(t) = m.thaw.as_mut().filter(|t| t.why.is_none()) {
                        t.why = Some(why);
                        t.by = by;
                        first_thaw = Some(first_thaw.map_or(t.start, |f| f.min(t.start)));
                    }
                }
                if why != WindowEnd::Requested {
                    // The window was broken from the first of these thaws on.
                    self.broken_at_ns
                        .get_or_insert_with(|| first_thaw.unwrap_or_else(boottime_ns));
                }
            }
            Event::Pong => self.pong = true,
            Event::CommandWatched(false) => self.messages.push(
                "the guardian could not watch CMD (it exited already?): if snapguard dies, \
                 nothing ends CMD"
                    .to_string(),
            ),
            Event::CommandWatched(true) | Event::Ready { .. } | Event::SetupFailed { .. } => {}
        }
    }

    fn set_freeze(&mut self, index: usize, result: FreezeResult) {
        if let Some(m) = self.mounts.get_mut(index) {
            m.freeze = Some(result);
        }
    }

    /// The guardian is gone for good: reap it, thaw (last first) what it reported frozen and not
    /// thawed, and mark a FIFREEZE it had in flight as unknown.
    fn declare_gone(&mut self, why: &str) {
        self.gone = true;
        let pid = self.guardian.as_ref().map_or(0, |g| g.pid);
        if let Some(g) = self.guardian.as_mut() {
            g.close_requests();
            let _ = g.reap(Duration::from_secs(2));
        }
        let was_open = self.window_open;
        self.window_open = false;
        for m in &mut self.mounts {
            if m.requested && m.freeze.is_none() {
                m.unknown = true;
            }
        }
        let (thawed, blocked) = self.fallback_thaw();
        let mut text = format!("the guardian (pid {pid}) is gone: {why}");
        if !thawed.is_empty() {
            text.push_str(&format!(
                "; snapguard thawed what it had frozen: {}",
                thawed.join(", ")
            ));
        }
        if !blocked.is_empty() {
            text.push_str(&format!(
                "; the FITHAW of {} did not return within {} s (its image on a filesystem frozen \
                 by someone else?): it may still be frozen, and thaws when that FITHAW returns \
                 (or run `snapguard thaw`)",
                blocked.join(", "),
                FALLBACK_WAIT.as_secs()
            ));
        }
        if let Some(m) = self.mounts.iter().find(|m| m.unknown) {
            text.push_str(&format!(
                "; it died inside the FIFREEZE of '{}', which may have taken effect: if writes \
                 there block, run `snapguard thaw --force {}` (after making sure no other tool \
                 froze it)",
                m.access.path.display(),
                crate::shell::quote_path(&m.access.path)
            ));
        }
        if was_open && self.broken_at_ns.is_none() {
            self.broken_at_ns = Some(boottime_ns());
        }
        // A guardian that died inside FIFREEZE could not put the RCU knob back.
        if let Some(knob) = self.rcu_to_restore.take() {
            if knob.is_on() == Some(true) && knob.turn_off() {
                text.push_str("; /sys/kernel/rcu_expedited put back to 0");
            }
        }
        self.gone_why = Some(why.to_string());
        self.take_over_record();
        self.messages.push(text);
    }

    /// The guardian is gone (none of its threads is left to write the record): bring its
    /// record up to date with what the controller knows, or remove it when nothing of this run
    /// can still be frozen, so that a later `snapguard thaw` never acts on a stale `frozen`.
    fn take_over_record(&mut self) {
        let Some(path) = self.record_path.clone() else {
            return;
        };
        let Ok(mut rec) = Record::read(&path) else {
            return;
        };
        for (m, r) in self.mounts.iter().zip(rec.mounts.iter_mut()) {
            r.state = match (m.freeze, m.thaw) {
                _ if m.unknown => MountState::Freezing,
                (Some(FreezeResult::Frozen { .. }), Some(t))
                    if t.errno != 0 && t.errno != Errno::EINVAL as i32 =>
                {
                    MountState::ThawFailed
                }
                (Some(FreezeResult::Frozen { .. }), Some(_)) => MountState::Thawed,
                (Some(FreezeResult::Frozen { .. }), None) => MountState::Frozen,
                (Some(FreezeResult::Busy { .. }), _) => MountState::Busy,
                (Some(FreezeResult::Failed { .. }), _) => MountState::Failed,
                _ => r.state,
            };
        }
        rec.live = true;
        if rec.mounts.iter().any(|m| m.state.may_be_frozen_by_us()) {
            if let Ok(mut file) = RecordFile::new(&path, rec) {
                let _ = file.write();
            }
        } else {
            record::remove(&path);
        }
    }

    /// The controller's own thaw, once the guardian is proven gone: every mount it had reported
    /// frozen, last first, each FITHAW in a helper process (`__fithaw`, through the controller's
    /// proven fd) so that one blocked in the kernel (an image on a filesystem someone else froze)
    /// holds up neither the others nor the controller: past [`FALLBACK_WAIT`] it is left
    /// running and the mount reported as possibly still frozen. Returns the mount points thawed
    /// and those whose FITHAW did not return.
    fn fallback_thaw(&mut self) -> (Vec<String>, Vec<String>) {
        let mut running = Vec::new();
        for i in (0..self.mounts.len()).rev() {
            let m = &self.mounts[i];
            if !m.is_frozen() {
                continue;
            }
            let start = boottime_ns();
            match fithaw_helper(m.access.dir.as_fd()) {
                Ok(child) => running.push((i, start, child)),
                Err(_) => {
                    // No helper: thaw here (it may block, but the thaw must be tried).
                    let result = self.mounts[i].access.dir.thaw();
                    self.record_fallback(i, start, result.err().map_or(0, |e| e as i32));
                }
            }
        }
        let end = Instant::now() + FALLBACK_WAIT;
        let mut blocked = Vec::new();
        for (i, start, mut child) in running {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    self.record_fallback(i, start, status.code().unwrap_or(libc::EINTR));
                    break;
                }
                if Instant::now() >= end {
                    // Abandoned: a Child dropped is neither killed nor waited for.
                    blocked.push(self.mounts[i].access.path.display().to_string());
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let thawed = self
            .mounts
            .iter()
            .filter(|m| m.thaw.is_some_and(|t| t.by == ThawedBy::Controller))
            .map(|m| m.access.path.display().to_string())
            .collect();
        (thawed, blocked)
    }

    fn record_fallback(&mut self, i: usize, start: u64, errno: i32) {
        self.broken_at_ns.get_or_insert(start);
        if let Some(m) = self.mounts.get_mut(i) {
            m.thaw = Some(ThawRecord {
                start,
                end: boottime_ns(),
                errno,
                by: ThawedBy::Controller,
                why: None,
            });
        }
    }

    /// Kill a guardian that does not answer (it is our child), then fall back.
    pub fn kill_unresponsive(&mut self, why: &str) {
        if self.gone {
            return;
        }
        if let Some(g) = self.guardian.as_mut() {
            g.kill();
        }
        self.declare_gone(why);
    }

    /// When the guardian must have reported its deadline thaw (the window still open then
    /// means something is wrong: a FIFREEZE that does not return, or a stopped guardian).
    fn check_due(&self) -> Option<u64> {
        self.deadline_ns
            .filter(|_| self.window_open)
            .map(|d| d.saturating_add(GRACE.as_nanos() as u64))
            .map(|due| due.max(self.next_check_ns))
    }

    /// The window is open and not ending: what it froze may still serve as a snapshot.
    pub fn window_live(&self) -> bool {
        self.window_open && self.window_ending.is_none()
    }

    /// Why the window ended or is ending, if it did.
    pub fn end_reason(&self) -> Option<WindowEnd> {
        self.window_end.or(self.window_ending)
    }

    /// A FIFREEZE was requested and has not returned.
    pub fn freeze_in_flight(&self) -> bool {
        self.mounts
            .iter()
            .any(|m| m.requested && m.freeze.is_none())
    }

    /// Past the deadline plus [`GRACE`] with the window still open: wake the guardian
    /// (SIGCONT: it may have been stopped) and ping it. One that answers is alive: if a FIFREEZE
    /// of its is still in flight (a hung device), it thaws that the moment it returns, and the
    /// caller stops waiting ([`Self::stuck`]); one that does not answer even then is killed and
    /// the controller thaws what it had reported frozen. Returns how long until the next check.
    pub fn watchdog(&mut self) -> Option<Duration> {
        let due = self.check_due()?;
        let now = boottime_ns();
        if now < due {
            return Some(Duration::from_nanos(due - now));
        }
        if let Some(g) = self.guardian.as_ref() {
            let _ = crate::sys::process::signal_pid(g.pid, nix::sys::signal::Signal::SIGCONT);
        }
        if !self.ping_within(WATCHDOG_PING) {
            return None;
        }
        let past = self
            .deadline_ns
            .map_or(0, |d| boottime_ns().saturating_sub(d));
        if self.window_open && self.freeze_in_flight() {
            if !self.stuck && past >= STUCK_AFTER.as_nanos() as u64 {
                self.stuck = true;
                let path = self
                    .mounts
                    .iter()
                    .find(|m| m.requested && m.freeze.is_none())
                    .map(|m| m.access.path.display().to_string())
                    .unwrap_or_default();
                self.messages.push(format!(
                    "the FIFREEZE of '{path}' has not returned by the deadline (a hung device, or \
                     its image on a filesystem frozen by someone else): the guardian (pid {}) \
                     stays and thaws it the moment it returns",
                    self.guardian_pid().unwrap_or(0)
                ));
            }
        } else if self.window_open {
            // Alive, nothing in flight, window still open: ask again.
            self.send(Request::ThawAll);
        }
        self.next_check_ns = boottime_ns().saturating_add(GRACE.as_nanos() as u64);
        Some(GRACE)
    }

    /// The pre-freeze sync of mount `gi` within `budget` (zero: none), while watching the
    /// signals, the guardian and (when `window` is true) the open window: its result lands in
    /// `mounts[gi].sync`, which stays `None` when a signal, the guardian's loss or the window's
    /// end cut it short (the helper is then abandoned).
    pub fn presync(&mut self, gi: usize, budget: Duration, window: bool) {
        if budget.is_zero() {
            return;
        }
        let path = self.mounts[gi].access.path.clone();
        let mut p = match Presync::start(&path, budget) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(
                    "cannot start the pre-freeze sync of '{}': {e}",
                    path.display()
                );
                self.mounts[gi].sync = Some(SyncResult::Failed(e, Duration::ZERO));
                return;
            }
        };
        loop {
            if let Some(r) = p.poll() {
                self.mounts[gi].sync = Some(r);
                return;
            }
            let left = p.deadline().saturating_duration_since(Instant::now());
            self.pump(&[Some(p.fd())], Some(left.min(Duration::from_millis(200))));
            if self.signal.is_some() || self.gone || (window && !self.window_live()) {
                return;
            }
        }
    }

    /// Open a window.
    pub fn open_window(&mut self) -> bool {
        if self.guardian_stopped.is_some() {
            return false;
        }
        self.thaw_requested = false;
        self.window_end = None;
        self.window_ending = None;
        let ok = self.send(Request::OpenWindow);
        self.window_open = ok;
        ok
    }

    /// Ask for FIFREEZE of mount `i` and wait for its answer (or the guardian's end, or the
    /// window's end). `extra` fds are polled meanwhile (their readiness is lost: callers poll
    /// nothing else while freezing).
    pub fn freeze(&mut self, i: usize) -> Option<FreezeResult> {
        if let Some(m) = self.mounts.get_mut(i) {
            m.requested = true;
        }
        if !self.send(Request::Freeze(i)) {
            return None;
        }
        loop {
            if let Some(r) = self.mounts.get(i).and_then(|m| m.freeze) {
                return Some(r);
            }
            if self.gone || self.stuck {
                return None;
            }
            let wait = self.watchdog().unwrap_or(Duration::from_secs(1));
            self.pump(&[], Some(wait.min(Duration::from_secs(1))));
        }
    }

    fn request_thaw(&mut self) {
        self.thaw_requested = true;
        self.send(Request::ThawAll);
    }

    /// End the window (thaw everything it froze) and wait until the guardian says so, or is
    /// gone. Bounded: past the deadline plus [`GRACE`] (or [`GRACE`] without a deadline) the
    /// guardian is killed and the controller thaws.
    pub fn thaw_all(&mut self) {
        if !self.window_open || self.gone {
            return;
        }
        if !self.thaw_requested {
            self.request_thaw();
        }
        let started = Instant::now();
        while self.window_open && !self.gone && !self.stuck {
            // A FIFREEZE in flight may keep the window open (it is thawed when it returns): the
            // watchdog applies only past the deadline.
            let wait = match self.watchdog() {
                Some(w) => w.min(Duration::from_secs(1)),
                None if self.deadline_ns.is_none() && started.elapsed() > GRACE => {
                    // No deadline armed (no FIFREEZE issued) and no answer: it is stuck.
                    if !self.ping() {
                        break;
                    }
                    self.send(Request::ThawAll);
                    Duration::from_millis(100)
                }
                None => Duration::from_millis(100),
            };
            self.pump(&[], Some(wait));
        }
    }

    /// Whether the guardian answers within [`PING_TIMEOUT`]; an unanswering one is killed (and
    /// the controller thaws).
    pub fn ping(&mut self) -> bool {
        self.ping_within(PING_TIMEOUT)
    }

    fn ping_within(&mut self, limit: Duration) -> bool {
        self.pong = false;
        if !self.send(Request::Ping) {
            return false;
        }
        let end = Instant::now() + limit;
        while !self.pong && !self.gone {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill_unresponsive(&format!(
                    "it did not answer within {} ms",
                    limit.as_millis()
                ));
                return false;
            }
            self.pump(&[], Some(left));
        }
        self.pong && !self.gone
    }

    /// Tell the guardian of CMD (it ends CMD if snapguard dies).
    pub fn watch_command(&mut self, pid: u32, start_time: u64) {
        self.send(Request::Command { pid, start_time });
    }

    /// Tell the guardian about hook `k` (`froze`: its freeze hook is about to run; otherwise:
    /// snapguard runs its thaw hook itself).
    pub fn hook(&mut self, k: usize, froze: bool) {
        self.send(if froze {
            Request::HookFroze(k)
        } else {
            Request::HookThawed(k)
        });
    }

    /// Which mount (guardian index) holds the record's directory, if one is in the set: the
    /// guardian must not wait for writes there while it is frozen.
    pub fn record_mount(&self, plan: &super::Plan<'_>) -> Option<usize> {
        let dir = std::fs::File::open(record::dir(plan.root)).ok()?;
        let p = crate::sys::statx::placement(dir.as_fd()).ok()?;
        let m = plan
            .table
            .entries()
            .iter()
            .find(|m| u64::from(m.mount_id) == p.mount_id)?;
        self.mounts.iter().position(|mp| {
            let t = &plan.targets[mp.target];
            (t.major, t.minor) == (m.major, m.minor)
        })
    }

    /// Tell the guardian which process freeze hook `k` runs as.
    pub fn hook_running(&mut self, k: usize, id: crate::sys::process::ProcessIdentity) {
        self.send(Request::HookRunning {
            index: k,
            pid: id.pid,
            start_time: id.start_time,
        });
    }

    /// The run is over: thaw what is left, let the guardian exit and reap it. A guardian still
    /// waiting for a FIFREEZE that has not returned is left to thaw it when it does.
    pub fn finish(&mut self) {
        if self.gone {
            return;
        }
        self.thaw_all();
        if self.gone {
            return;
        }
        self.send(Request::Done);
        let pid = self.guardian.as_ref().map_or(0, |g| g.pid);
        let reaped = self.guardian.as_mut().and_then(|g| {
            g.close_requests();
            g.reap(Duration::from_secs(2))
        });
        if reaped.is_none()
            && self
                .mounts
                .iter()
                .any(|m| m.requested && m.freeze.is_none())
        {
            self.messages.push(format!(
                "a FIFREEZE has not returned (a hung device?): the guardian (pid {pid}) stays \
                 to thaw it the moment it does"
            ));
        }
        self.gone = true;
        self.gone_why = Some("finished".to_string());
    }

    /// Superblocks (`major:minor`) that may still be frozen by this run.
    pub fn still_frozen(&self, targets: &[super::Target]) -> Vec<(u32, u32)> {
        self.mounts
            .iter()
            .filter(|m| m.may_still_be_frozen())
            .filter_map(|m| targets.get(m.target).map(|t| (t.major, t.minor)))
            .collect()
    }
}

/// `EBUSY`-style name of an errno number.
pub fn errno_text(errno: i32) -> &'static str {
    errno_name(Errno::from_raw(errno))
}
