//! The guardian's side: the process that issues every FIFREEZE and every FITHAW of a run.
//!
//! Two threads. The *worker* only calls FIFREEZE, one mount at a time, and reports how it
//! returned; FIFREEZE is uninterruptible and may take seconds. The *main* thread never blocks
//! on anything but poll: it reads the controller's requests, the signalfd, the CLOCK_BOOTTIME
//! deadline timer, the worker's results and (after the controller died) CMD's pidfd, and it
//! issues every FITHAW. So the deadline keeps running while a FIFREEZE blocks, and a FIFREEZE
//! that returns after its window ended is thawed at once.
//!
//! Whatever ends a window (the controller's request, the deadline, the controller's death, a
//! signal, a poll failure), the main thread thaws exactly what the worker's FIFREEZE calls froze,
//! last first. The controller's death or a signal also stops the guardian for good: no further
//! freeze. After the controller's death the guardian also ends CMD (SIGTERM, SIGKILL after the
//! grace period, through a pidfd) and runs the thaw hook of every freeze hook that ran, once
//! nothing is frozen any more.

use super::protocol::{Event, LineSplitter, Request, SetupStep, WindowEnd};
use super::recorder::Recorder;
use super::spec::{MAX_SPEC_BYTES, Spec};
use crate::freeze::hooks;
use crate::freeze::record::{MountState, Record, RecordFile, RecordMount, VERSION};
use crate::root::{PROC, SYS_RCU_EXPEDITED, SysRoot};
use crate::sys::freeze::{Engaged, MountDir, RcuExpedite};
use crate::sys::process::{
    BootDeadline, Pidfd, PollSet, ProcessIdentity, SignalWatch, boottime_ns, lock_all_memory,
    new_session, pipe, protect_from_oom,
};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status of a guardian whose setup failed.
const SETUP_FAILED: u8 = 3;

/// At most this many FITHAW threads (one blocked thaw never holds up the others).
const THAWERS: usize = 8;

/// Thaws go out one at a time, last frozen first (the filesystem holding a loop image before
/// the filesystem inside it); one that has not returned after this long no longer holds up
/// the next.
const THAW_STEP: Duration = Duration::from_millis(50);

/// How long the last record write before the record's own filesystem is frozen may take.
const RECORD_WAIT: Duration = Duration::from_millis(200);

/// How long RCU grace periods stay expedited while a FIFREEZE runs: its grace periods come
/// first (freeze levels 1 and 2) or after a sync that was made short; a FIFREEZE still blocked
/// past this (a hung device) does not keep the whole machine in expedited mode.
const RCU_EXPEDITE_MAX: Duration = Duration::from_millis(100);

/// How long the guardian waits for CMD to die after SIGKILL before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Poll slots of the main loop.
const SLOT_REQUESTS: usize = 0;
const SLOT_SIGNALS: usize = 1;
const SLOT_DEADLINE: usize = 2;
const SLOT_WORKER: usize = 3;
const SLOT_COMMAND: usize = 4;
const SLOT_THAWERS: usize = 5;

/// A result from the worker: mount index, errno (0: frozen), start and end (ns).
const RESULT_BYTES: usize = 32;

/// CMD, as registered by the controller: ended by the guardian only if the controller dies.
struct Command {
    pidfd: Pidfd,
    /// When SIGTERM was sent.
    terminated_at: Option<Instant>,
    /// When SIGKILL was sent.
    killed_at: Option<Instant>,
    exited: bool,
}

/// A freeze hook's state, for the thaw hooks the guardian runs if the controller dies.
struct HookSlot {
    hook: hooks::Hook,
    froze: bool,
    /// The freeze hook's process (leader of its own process group), while it may run.
    freeze_process: Option<(Pidfd, u32)>,
    thaw_started: bool,
}

/// Whether freezes are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Closed,
    /// Open; `deadline_ns` once its first FIFREEZE was issued.
    Open {
        deadline_ns: Option<u64>,
    },
}

struct Guardian {
    dirs: Arc<[MountDir]>,
    states: Vec<MountState>,
    /// Mounts frozen by the current window, in freeze order (thawed from the end).
    frozen: Vec<usize>,
    in_flight: Option<usize>,
    /// FITHAWs dispatched to the thawers and not returned yet.
    thawing: usize,
    /// Mounts to thaw, in order, not dispatched yet; when the last dispatch went out.
    thaw_queue: VecDeque<usize>,
    last_thaw_dispatch: Option<Instant>,
    window: Window,
    /// A window end waiting for the in-flight FIFREEZE to return.
    ending: Option<WindowEnd>,
    /// Set once the guardian stops for good (controller gone, signal, done, error).
    stopping: Option<WindowEnd>,
    controller_gone: bool,
    /// The controller said `D`.
    done: bool,
    timeout_ns: u64,
    kill_after: Duration,
    hook_timeout: Duration,
    deadline: BootDeadline,
    to_worker: File,
    /// Requests to the thawer threads (each FITHAW on a thread of its own: one that blocks,
    /// e.g. behind a foreign freeze of the filesystem holding a loop image, holds up neither
    /// the other thaws nor the main thread).
    to_thawers: File,
    out: File,
    record: Option<Recorder>,
    /// Whether the record can be trusted to follow the states (false while its own
    /// filesystem is frozen by this run).
    record_live: bool,
    record_mount: Option<usize>,
    command: Option<Command>,
    hooks: Vec<HookSlot>,
    hook_output: Option<std::os::fd::OwnedFd>,
    mountpoints: Vec<PathBuf>,
    /// The RCU knob, when expediting; engaged around each FIFREEZE for at most
    /// [`RCU_EXPEDITE_MAX`].
    rcu: Option<RcuExpedite>,
    rcu_engaged: Option<(Engaged, Instant)>,
}

impl Guardian {
    fn emit(&mut self, e: Event) {
        // Non-blocking: the controller may be gone (EPIPE: SIGPIPE is ignored) or not reading
        // (stopped) until its pipe is full; the guardian never waits for it.
        let _ = self.out.write(e.encode().as_bytes());
    }

    /// Publish the states to the record writer, unless the record's own filesystem is (or may
    /// be) frozen by this run (the write would only wait for the thaw).
    fn write_record(&mut self) {
        let blocked = self
            .record_mount
            .is_some_and(|r| self.states.get(r).is_some_and(|s| s.may_be_frozen_by_us()));
        if blocked {
            return;
        }
        if let Some(rec) = self.record.as_mut() {
            rec.update(&self.states, self.record_live);
        }
    }

    fn set_state(&mut self, i: usize, s: MountState) {
        if let Some(slot) = self.states.get_mut(i) {
            *slot = s;
        }
    }

    /// FITHAW of every mount the current window froze, last first: queued, and sent to the
    /// thawers one at a time (see [`THAW_STEP`]).
    fn thaw_frozen(&mut self) {
        while let Some(i) = self.frozen.pop() {
            self.thaw_queue.push_back(i);
        }
        if self.thawing == 0 {
            self.dispatch_thaw();
        }
    }

    /// Send the next queued FITHAW to a thawer.
    fn dispatch_thaw(&mut self) {
        let Some(i) = self.thaw_queue.pop_front() else {
            return;
        };
        self.thawing += 1;
        self.last_thaw_dispatch = Some(Instant::now());
        let request = (i as u64).to_ne_bytes();
        if self.to_thawers.write_all(&request).is_err() {
            // No thawer can take it (cannot happen short of a bug): thaw here.
            let start = boottime_ns();
            let errno = match self.dirs.get(i).map(MountDir::thaw) {
                Some(Ok(())) => 0,
                Some(Err(e)) => e as i32,
                None => Errno::EBADF as i32,
            };
            self.on_thaw_result(i, errno, start, boottime_ns());
        }
    }

    /// A queued thaw whose predecessor has been blocked for [`THAW_STEP`] goes out now (or
    /// all of them, when `all`); returns how long until the next is due.
    fn release_thaws(&mut self, all: bool) -> Option<Duration> {
        while !self.thaw_queue.is_empty() {
            let since = self.last_thaw_dispatch.map_or(THAW_STEP, |t| t.elapsed());
            let left = THAW_STEP.saturating_sub(since);
            if !all && self.thawing > 0 && !left.is_zero() {
                return Some(left);
            }
            self.dispatch_thaw();
        }
        None
    }

    /// A thawer's FITHAW of `i` returned.
    fn on_thaw_result(&mut self, i: usize, errno: i32, start: u64, end: u64) {
        self.thawing = self.thawing.saturating_sub(1);
        if self.thawing == 0 {
            self.dispatch_thaw();
        }
        // EINVAL: not frozen any more (someone else thawed it): nothing of ours is left.
        let state = if errno == 0 || errno == Errno::EINVAL as i32 {
            MountState::Thawed
        } else {
            MountState::ThawFailed
        };
        self.set_state(i, state);
        if self.record_mount == Some(i) && state == MountState::Thawed {
            self.record_live = true;
        }
        self.emit(Event::Thawed {
            index: i,
            errno,
            start,
            end,
        });
        self.write_record();
        self.maybe_close_window();
    }

    /// Report a pending window end once nothing is in flight and every thaw has returned.
    fn maybe_close_window(&mut self) {
        if self.in_flight.is_none() && self.thawing == 0 && self.thaw_queue.is_empty() {
            if let Some(why) = self.ending.take() {
                self.close_window(why);
            }
        }
    }

    /// End the current window: thaw what it froze; report the end now, or once the FIFREEZE in
    /// flight has returned (and been thawed).
    fn end_window(&mut self, why: WindowEnd) {
        if self.ending.is_none() && matches!(self.window, Window::Open { .. }) {
            // Before any thaw (and before a FIFREEZE in flight returns): the controller must
            // not take that FIFREEZE for a snapshot window.
            self.emit(Event::WindowEnding(why));
        }
        self.thaw_frozen();
        self.ending.get_or_insert(why);
        self.maybe_close_window();
    }

    fn close_window(&mut self, why: WindowEnd) {
        self.window = Window::Closed;
        let _ = self.deadline.disarm();
        self.emit(Event::WindowEnded(why));
    }

    /// Stop for good: end the window; after the controller's death, end CMD too.
    fn stop(&mut self, why: WindowEnd) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(why);
        self.end_window(why);
        if why == WindowEnd::ControllerGone {
            self.terminate_command();
        }
    }

    fn terminate_command(&mut self) {
        if let Some(c) = self.command.as_mut() {
            if !c.exited && c.terminated_at.is_none() {
                let _ = c.pidfd.signal(Signal::SIGTERM);
                c.terminated_at = Some(Instant::now());
            }
        }
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::OpenWindow => {
                if self.stopping.is_none() && self.window == Window::Closed {
                    self.window = Window::Open { deadline_ns: None };
                }
            }
            Request::Freeze(i) => self.freeze(i),
            Request::ThawAll => self.end_window(WindowEnd::Requested),
            Request::Command { pid, start_time } => {
                let ok = self.watch_command(pid, start_time);
                self.emit(Event::CommandWatched(ok));
            }
            Request::HookFroze(k) => {
                if let Some(h) = self.hooks.get_mut(k) {
                    h.froze = true;
                }
            }
            Request::HookRunning {
                index,
                pid,
                start_time,
            } => {
                let process = Pidfd::open(pid).ok().filter(|_| {
                    ProcessIdentity::of(&SysRoot::default().path(PROC), pid)
                        .is_some_and(|id| id.start_time == start_time)
                });
                if let (Some(h), Some(p)) = (self.hooks.get_mut(index), process) {
                    h.freeze_process = Some((p, pid));
                }
            }
            Request::HookThawed(k) => {
                if let Some(h) = self.hooks.get_mut(k) {
                    h.thaw_started = true;
                }
            }
            Request::Ping => self.emit(Event::Pong),
            Request::Done => {
                self.done = true;
                // The controller ran the thaw hooks itself: the copy of its stderr kept for them
                // must not hold the caller's output open while this guardian stays (a FIFREEZE
                // that has not returned).
                self.hook_output = None;
                self.stop(WindowEnd::Requested);
            }
        }
    }

    fn watch_command(&mut self, pid: u32, start_time: u64) -> bool {
        let Ok(pidfd) = Pidfd::open(pid) else {
            return false;
        };
        // The pidfd is on whatever process has this pid now: it is CMD only if it started when
        // CMD did (a pid reused in between would have a later start time).
        let same = ProcessIdentity::of(&SysRoot::default().path(PROC), pid)
            .is_some_and(|id| id.start_time == start_time);
        if !same {
            return false;
        }
        self.command = Some(Command {
            pidfd,
            terminated_at: None,
            killed_at: None,
            exited: false,
        });
        true
    }

    fn freeze(&mut self, i: usize) {
        let known = i < self.dirs.len();
        let may_start = known
            && self.stopping.is_none()
            && self.in_flight.is_none()
            && matches!(self.window, Window::Open { .. })
            && !matches!(
                self.states[i],
                MountState::Freezing | MountState::Frozen | MountState::ThawFailed
            );
        if !may_start {
            self.emit(Event::Refused { index: i });
            return;
        }
        if let Window::Open { deadline_ns: None } = self.window {
            let deadline_ns = boottime_ns().saturating_add(self.timeout_ns);
            self.window = Window::Open {
                deadline_ns: Some(deadline_ns),
            };
            if self.deadline.arm(deadline_ns).is_err() {
                // Without a timer there is no deadline: refuse rather than freeze unguarded.
                self.window = Window::Closed;
                self.emit(Event::Refused { index: i });
                return;
            }
            self.emit(Event::Armed { deadline_ns });
        }
        self.set_state(i, MountState::Freezing);
        if self.record_mount == Some(i) {
            // The last write before the record's own filesystem may be frozen: on disk before
            // the FIFREEZE starts (bounded: a record that cannot be written must not hold the
            // freeze), with `live: false` so that a rescuer knows the states may lag.
            self.record_live = false;
            let live = self.record_live;
            if let Some(rec) = self.record.as_mut() {
                rec.update_and_wait(&self.states, live, RECORD_WAIT);
            }
        } else {
            self.write_record();
        }
        self.in_flight = Some(i);
        if let Some(rcu) = self.rcu.as_ref() {
            self.rcu_engaged = Some((rcu.engage(), Instant::now()));
        }
        let request = (i as u64).to_ne_bytes();
        if self.to_worker.write_all(&request).is_err() {
            // The worker is gone (cannot happen short of a bug): nothing was frozen.
            self.in_flight = None;
            self.set_state(i, MountState::Failed);
            self.emit(Event::FreezeFailed {
                index: i,
                errno: Errno::ECHILD as i32,
                start: 0,
                end: 0,
            });
        }
    }

    /// Put the RCU knob back; with `only_if_overdue`, only once it has been on for
    /// [`RCU_EXPEDITE_MAX`]. Returns how long until it is due, while engaged.
    fn release_rcu(&mut self, only_if_overdue: bool) -> Option<Duration> {
        let (engaged, since) = self.rcu_engaged?;
        let left = RCU_EXPEDITE_MAX.saturating_sub(since.elapsed());
        if only_if_overdue && !left.is_zero() {
            return Some(left);
        }
        if let Some(rcu) = self.rcu.as_ref() {
            rcu.release(engaged);
        }
        self.rcu_engaged = None;
        None
    }

    /// The worker's FIFREEZE of `i` returned.
    fn on_freeze_result(&mut self, i: usize, errno: i32, start: u64, end: u64) {
        if self.in_flight != Some(i) {
            return;
        }
        self.in_flight = None;
        self.release_rcu(false);
        match errno {
            0 => {
                self.set_state(i, MountState::Frozen);
                self.frozen.push(i);
                self.emit(Event::Frozen {
                    index: i,
                    start,
                    end,
                });
            }
            e if e == Errno::EBUSY as i32 => {
                self.set_state(i, MountState::Busy);
                self.emit(Event::Busy {
                    index: i,
                    start,
                    end,
                });
            }
            e => {
                self.set_state(i, MountState::Failed);
                self.emit(Event::FreezeFailed {
                    index: i,
                    errno: e,
                    start,
                    end,
                });
            }
        }
        if self.record_mount == Some(i) && errno != 0 {
            self.record_live = true;
        }
        self.write_record();
        if self.ending.is_some() {
            // The window ended while this FIFREEZE blocked: thaw it at once.
            self.thaw_frozen();
            self.maybe_close_window();
        }
    }

    fn on_deadline(&mut self) {
        self.deadline.drain();
        if let Window::Open {
            deadline_ns: Some(d),
        } = self.window
        {
            if boottime_ns() >= d {
                self.end_window(WindowEnd::Deadline);
            }
        }
    }

    /// Follow CMD after the controller died: SIGKILL after the grace period; notice its exit.
    fn tend_command(&mut self) -> Option<Duration> {
        let kill_after = self.kill_after;
        let c = self.command.as_mut()?;
        if c.exited {
            return None;
        }
        if c.pidfd.has_exited() {
            c.exited = true;
            return None;
        }
        let terminated = c.terminated_at?;
        match c.killed_at {
            None => {
                let left = kill_after.saturating_sub(terminated.elapsed());
                if left.is_zero() {
                    let _ = c.pidfd.signal(Signal::SIGKILL);
                    c.killed_at = Some(Instant::now());
                    Some(KILL_WAIT)
                } else {
                    Some(left)
                }
            }
            Some(killed) => {
                let left = KILL_WAIT.saturating_sub(killed.elapsed());
                if left.is_zero() {
                    c.exited = true; // give up waiting: it is beyond our reach
                    None
                } else {
                    Some(left)
                }
            }
        }
    }

    /// Stopped, told so (`D`) or orphaned, nothing in flight, and CMD ended if it is ours to
    /// end. After a signal the guardian stays until the controller says `D` (it may still die
    /// and leave CMD to end).
    fn finished(&self) -> bool {
        self.stopping.is_some()
            && (self.done || self.controller_gone)
            && self.in_flight.is_none()
            && self.thawing == 0
            && self.thaw_queue.is_empty()
            && self.ending.is_none()
            && self
                .command
                .as_ref()
                .is_none_or(|c| c.exited || !self.controller_gone)
    }

    /// After the controller's death: the thaw hook of every freeze hook that ran and whose thaw
    /// hook the controller did not start, in reverse order, now that nothing is frozen.
    fn run_pending_thaw_hooks(&mut self) {
        if !self.controller_gone {
            return;
        }
        // The guardian's own stderr is /dev/null: without the controller's, output goes there.
        let stderr = std::io::stderr();
        let output = self
            .hook_output
            .as_ref()
            .map_or(stderr.as_fd(), |fd| fd.as_fd());
        for slot in self.hooks.iter_mut().rev() {
            if slot.froze && !slot.thaw_started {
                // A freeze hook still running (the controller died during it) ends first: its
                // thaw hook must not undo what it has not finished doing.
                if let Some((process, pid)) = slot.freeze_process.take() {
                    wait_for_hook(&process, pid, self.hook_timeout);
                }
                let _ = hooks::run_to(
                    &slot.hook,
                    "thaw",
                    &self.mountpoints,
                    self.hook_timeout,
                    output,
                );
            }
        }
    }

    /// Remove the record when nothing of ours can still be frozen; otherwise leave it, final,
    /// for `snapguard thaw`.
    fn finish_record(&mut self) {
        let clean = !self.states.iter().any(|s| s.may_be_frozen_by_us());
        if let Some(rec) = self.record.take() {
            rec.finish(&self.states, clean, Duration::from_secs(2));
        }
    }
}

/// Wait up to `limit` for a freeze hook (`process`, leader of process group `pid`) to exit; then
/// kill its process group (its leader is alive, so the group id cannot have been reused).
fn wait_for_hook(process: &Pidfd, pid: u32, limit: Duration) {
    let mut set = PollSet::<1>::default();
    set.set(0, Some(process.as_fd()));
    let end = Instant::now() + limit;
    while !process.has_exited() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = crate::sys::process::signal_group(pid, Signal::SIGKILL);
            return;
        }
        let _ = set.wait(Some(left));
    }
}

/// A worker thread: `call` (FIFREEZE or FITHAW) on each requested mount, report how it
/// returned. Several thawers read one request pipe: each request is 8 bytes, written and read
/// whole.
fn worker(
    dirs: Arc<[MountDir]>,
    call: fn(&MountDir) -> Result<(), Errno>,
    requests: Arc<File>,
    results: Arc<File>,
) {
    let mut buf = [0u8; 8];
    while (&*requests).read_exact(&mut buf).is_ok() {
        let i = usize::try_from(u64::from_ne_bytes(buf)).unwrap_or(usize::MAX);
        let start = boottime_ns();
        let errno = match dirs.get(i).map(call) {
            Some(Ok(())) => 0,
            Some(Err(e)) => e as i32,
            None => Errno::EINVAL as i32,
        };
        let end = boottime_ns();
        let mut out = [0u8; RESULT_BYTES];
        out[0..8].copy_from_slice(&(i as u64).to_ne_bytes());
        out[8..16].copy_from_slice(&i64::from(errno).to_ne_bytes());
        out[16..24].copy_from_slice(&start.to_ne_bytes());
        out[24..32].copy_from_slice(&end.to_ne_bytes());
        // One write of 32 bytes to a pipe is atomic.
        if (&*results).write_all(&out).is_err() {
            return;
        }
    }
}

fn decode_result(b: &[u8; RESULT_BYTES]) -> (usize, i32, u64, u64) {
    let word = |k: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[k..k + 8]);
        w
    };
    (
        usize::try_from(u64::from_ne_bytes(word(0))).unwrap_or(usize::MAX),
        i32::try_from(i64::from_ne_bytes(word(8))).unwrap_or(libc::EINVAL),
        u64::from_ne_bytes(word(16)),
        u64::from_ne_bytes(word(24)),
    )
}

/// Read the spec line from `input`; returns it and whatever followed it.
fn read_spec(input: &mut File) -> Option<(Spec, Vec<u8>)> {
    let mut data = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = data.iter().position(|&b| b == b'\n') {
            let rest = data[p + 1..].to_vec();
            return Spec::from_line(&data[..p]).map(|s| (s, rest));
        }
        if data.len() > MAX_SPEC_BYTES {
            return None;
        }
        match input.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(k) => data.extend_from_slice(&chunk[..k]),
        }
    }
}

fn setup_failed(out: &mut File, step: SetupStep, index: usize, errno: i32) -> u8 {
    let _ = out.write_all(
        Event::SetupFailed { step, index, errno }
            .encode()
            .as_bytes(),
    );
    SETUP_FAILED
}

/// The guardian's main (`snapguard __guardian`): stdin carries the spec line then requests,
/// stdout carries events. Returns the exit status.
pub fn serve() -> u8 {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().map(File::from);
    let (Ok(mut out), Ok(mut input)) = (
        dup(std::io::stdout().as_fd()),
        dup(std::io::stdin().as_fd()),
    ) else {
        return SETUP_FAILED;
    };
    let _ = crate::sys::process::set_nonblocking(out.as_fd());
    // Out of the controller's process group and session: `kill -- -PGID` and the terminal's
    // Ctrl-C aimed at snapguard do not reach the guardian. (Fails only for a group leader.)
    let _ = new_session();
    let signals = match SignalWatch::new() {
        Ok(s) => s,
        Err(e) => return setup_failed(&mut out, SetupStep::Signals, 0, e as i32),
    };
    let Some((spec, rest)) = read_spec(&mut input) else {
        return setup_failed(&mut out, SetupStep::Spec, 0, libc::EINVAL);
    };
    let oom_protected = protect_from_oom().is_ok();

    let mut dirs = Vec::with_capacity(spec.mounts.len());
    for (i, m) in spec.mounts.iter().enumerate() {
        match MountDir::open(&m.access) {
            Ok(d) => {
                if m.expected.check(&d).is_err() {
                    return setup_failed(&mut out, SetupStep::Changed, i, 0);
                }
                dirs.push(d);
            }
            Err(e) => return setup_failed(&mut out, SetupStep::Open, i, e as i32),
        }
    }
    let mut hook_slots = Vec::with_capacity(spec.hooks.len());
    for (k, h) in spec.hooks.iter().enumerate() {
        match hooks::Hook::from_inherited_fd(h.fd, h.path.clone()) {
            Ok(hook) => hook_slots.push(HookSlot {
                hook,
                froze: false,
                freeze_process: None,
                thaw_started: false,
            }),
            Err(_) => return setup_failed(&mut out, SetupStep::Hook, k, libc::EBADF),
        }
    }
    let hook_output = match spec.hook_output_fd {
        Some(fd) => crate::sys::spawn::adopt_inherited_fd(fd).ok(),
        None => None,
    };
    let deadline = match BootDeadline::new() {
        Ok(d) => d,
        Err(e) => return setup_failed(&mut out, SetupStep::Timer, 0, e as i32),
    };
    let dirs: Arc<[MountDir]> = dirs.into();
    let (Ok((req_r, req_w)), Ok((res_r, res_w)), Ok((thaw_r, thaw_w)), Ok((thawed_r, thawed_w))) =
        (pipe(), pipe(), pipe(), pipe())
    else {
        return setup_failed(&mut out, SetupStep::Timer, 0, libc::EMFILE);
    };
    let rcu = spec
        .expedite_rcu
        .then(|| RcuExpedite::open(&SysRoot::default().path(SYS_RCU_EXPEDITED)).ok())
        .flatten();
    let expedite_rcu = rcu.is_some();
    // One FIFREEZE worker; up to THAWERS FITHAW threads. All started before mlockall.
    let (req_r, res_w) = (Arc::new(req_r), Arc::new(res_w));
    let (thaw_r, thawed_w) = (Arc::new(thaw_r), Arc::new(thawed_w));
    let mut threads = vec![(
        "fifreeze",
        MountDir::freeze as fn(&MountDir) -> Result<(), Errno>,
        &req_r,
        &res_w,
    )];
    for _ in 0..dirs.len().clamp(1, THAWERS) {
        threads.push(("fithaw", MountDir::thaw, &thaw_r, &thawed_w));
    }
    for (name, call, requests, results) in threads {
        let (d, rq, rs) = (Arc::clone(&dirs), Arc::clone(requests), Arc::clone(results));
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .stack_size(64 * 1024)
            .spawn(move || worker(d, call, rq, rs));
        if spawned.is_err() {
            return setup_failed(&mut out, SetupStep::Timer, 0, libc::EAGAIN);
        }
    }
    let results = res_r;
    let thawed = thawed_r;

    let n = dirs.len();
    let me = ProcessIdentity::myself(&SysRoot::default().path(PROC)).unwrap_or(ProcessIdentity {
        pid: std::process::id(),
        start_time: 0,
    });
    let record = spec.record.as_ref().and_then(|path| {
        let record = Record {
            version: VERSION,
            command: spec.command.clone(),
            controller: spec.controller,
            guardian: me,
            live: true,
            rcu_restore: rcu.as_ref().and_then(RcuExpedite::is_on) == Some(false),
            mounts: spec
                .mounts
                .iter()
                .map(|m| RecordMount {
                    mountpoint: m.mountpoint.clone(),
                    access: m.access.clone(),
                    expected: m.expected,
                    state: MountState::Planned,
                })
                .collect(),
        };
        // The first write is synchronous, before anything is frozen: the controller learns
        // whether there is a record at all.
        let mut file = RecordFile::new(path, record).ok()?;
        file.write().ok()?;
        Recorder::start(file).ok()
    });
    let recorded = record.is_some();
    let mut g = Guardian {
        dirs,
        states: vec![MountState::Planned; n],
        frozen: Vec::with_capacity(n),
        in_flight: None,
        thawing: 0,
        thaw_queue: VecDeque::with_capacity(n),
        last_thaw_dispatch: None,
        window: Window::Closed,
        ending: None,
        stopping: None,
        controller_gone: false,
        done: false,
        timeout_ns: spec.timeout_ms.saturating_mul(1_000_000),
        kill_after: Duration::from_millis(spec.kill_after_ms),
        hook_timeout: Duration::from_millis(spec.hook_timeout_ms),
        deadline,
        to_worker: req_w,
        to_thawers: thaw_w,
        out,
        record,
        record_live: true,
        record_mount: spec.record_mount,
        command: None,
        hooks: hook_slots,
        hook_output,
        mountpoints: spec.mounts.iter().map(|m| m.mountpoint.clone()).collect(),
        rcu,
        rcu_engaged: None,
    };
    // Everything is allocated and every thread started: lock it all in memory so that nothing
    // the guardian needs can be paged out to (or in from) a frozen filesystem.
    let mlocked = lock_all_memory().is_ok();
    g.emit(Event::Ready {
        mlocked,
        oom_protected,
        expedite_rcu,
        recorded,
    });

    let mut splitter = LineSplitter::<64>::default();
    let mut take_lines = |g: &mut Guardian, bytes: &[u8]| {
        splitter.feed(bytes, |line| {
            if let Some(r) = Request::decode(line) {
                g.on_request(r);
            }
            true
        });
    };
    take_lines(&mut g, &rest);

    let mut buf = [0u8; 1024];
    let mut result = [0u8; RESULT_BYTES];
    let mut poll = PollSet::<6>::default();
    loop {
        let wait = [
            g.tend_command(),
            g.release_rcu(true),
            g.release_thaws(false),
        ]
        .into_iter()
        .flatten()
        .min();
        if g.finished() {
            break;
        }
        poll.set(SLOT_REQUESTS, (!g.controller_gone).then(|| input.as_fd()));
        poll.set(SLOT_SIGNALS, Some(signals.as_fd()));
        poll.set(SLOT_DEADLINE, Some(g.deadline.as_fd()));
        poll.set(SLOT_WORKER, Some(results.as_fd()));
        poll.set(SLOT_THAWERS, Some(thawed.as_fd()));
        let watching = g
            .command
            .as_ref()
            .filter(|c| g.controller_gone && !c.exited)
            .map(|c| c.pidfd.as_fd());
        poll.set(SLOT_COMMAND, watching);
        match poll.wait(wait) {
            Ok(()) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => {
                // Cannot wait any more: the only safe thing left is to thaw now, and to block
                // until the FIFREEZE in flight and every FITHAW have returned.
                g.stop(WindowEnd::Error);
                loop {
                    g.release_thaws(true);
                    if g.in_flight.is_none() && g.thawing == 0 {
                        break;
                    }
                    if g.in_flight.is_some() && (&results).read_exact(&mut result).is_ok() {
                        let (i, e, s, t) = decode_result(&result);
                        g.on_freeze_result(i, e, s, t);
                    } else if g.thawing > 0 && (&thawed).read_exact(&mut result).is_ok() {
                        let (i, e, s, t) = decode_result(&result);
                        g.on_thaw_result(i, e, s, t);
                    } else {
                        break;
                    }
                }
                break;
            }
        }
        if poll.ready(SLOT_SIGNALS) {
            while let Some(signo) = signals.take() {
                g.stop(WindowEnd::Signal(signo));
            }
        }
        if poll.ready(SLOT_THAWERS) && (&thawed).read_exact(&mut result).is_ok() {
            let (i, e, s, t) = decode_result(&result);
            g.on_thaw_result(i, e, s, t);
        }
        if poll.ready(SLOT_WORKER) && (&results).read_exact(&mut result).is_ok() {
            let (i, e, s, t) = decode_result(&result);
            g.on_freeze_result(i, e, s, t);
        }
        if poll.ready(SLOT_DEADLINE) {
            g.on_deadline();
        }
        if poll.ready(SLOT_REQUESTS) {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => {
                    g.controller_gone = true;
                    g.stop(WindowEnd::ControllerGone);
                    // Stopped for another reason before: CMD still needs ending.
                    g.terminate_command();
                }
                Ok(k) => take_lines(&mut g, &buf[..k]),
            }
        }
    }
    g.release_rcu(false);
    g.run_pending_thaw_hooks();
    g.finish_record();
    drop(signals);
    0
}
