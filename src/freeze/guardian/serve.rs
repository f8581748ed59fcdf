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
use crate::sys::freeze::{MountDir, RcuExpedite};
use crate::sys::process::{
    BootDeadline, Pidfd, PollSet, ProcessIdentity, SignalWatch, boottime_ns, lock_all_memory,
    new_session, pipe, protect_from_oom,
};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status of a guardian whose setup failed.
const SETUP_FAILED: u8 = 3;

/// How long the guardian waits for CMD to die after SIGKILL before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Poll slots of the main loop.
const SLOT_REQUESTS: usize = 0;
const SLOT_SIGNALS: usize = 1;
const SLOT_DEADLINE: usize = 2;
const SLOT_WORKER: usize = 3;
const SLOT_COMMAND: usize = 4;

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

    /// FITHAW of every mount the current window froze, last first.
    fn thaw_frozen(&mut self) {
        while let Some(i) = self.frozen.pop() {
            let start = boottime_ns();
            let result = match self.dirs.get(i) {
                Some(d) => d.thaw(),
                None => Err(Errno::EBADF),
            };
            let end = boottime_ns();
            let errno = match result {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // EINVAL: not frozen any more (someone else thawed it): nothing of ours is left.
            let state = match result {
                Ok(()) | Err(Errno::EINVAL) => MountState::Thawed,
                Err(_) => MountState::ThawFailed,
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
        }
    }

    /// End the current window: thaw what it froze; report the end now, or once the FIFREEZE in
    /// flight has returned (and been thawed).
    fn end_window(&mut self, why: WindowEnd) {
        self.thaw_frozen();
        if self.in_flight.is_some() {
            self.ending.get_or_insert(why);
            return;
        }
        self.close_window(why);
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
            Request::HookThawed(k) => {
                if let Some(h) = self.hooks.get_mut(k) {
                    h.thaw_started = true;
                }
            }
            Request::Ping => self.emit(Event::Pong),
            Request::Done => {
                self.done = true;
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
        if self.record_mount == Some(i) {
            // Last write before the record's own filesystem may be frozen.
            self.record_live = false;
        }
        self.set_state(i, MountState::Freezing);
        self.write_record();
        self.in_flight = Some(i);
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

    /// The worker's FIFREEZE of `i` returned.
    fn on_freeze_result(&mut self, i: usize, errno: i32, start: u64, end: u64) {
        if self.in_flight != Some(i) {
            return;
        }
        self.in_flight = None;
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
        if let Some(why) = self.ending.take() {
            // The window ended while this FIFREEZE blocked: thaw it at once.
            self.thaw_frozen();
            self.close_window(why);
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
        for slot in self.hooks.iter().rev() {
            if slot.froze && !slot.thaw_started {
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

/// The worker thread: FIFREEZE each requested mount (with expedited RCU grace periods when
/// `rcu` is given), report how it returned.
fn worker(dirs: Arc<[MountDir]>, rcu: Option<RcuExpedite>, mut requests: File, mut results: File) {
    let mut buf = [0u8; 8];
    while requests.read_exact(&mut buf).is_ok() {
        let i = usize::try_from(u64::from_ne_bytes(buf)).unwrap_or(usize::MAX);
        let engaged = rcu.as_ref().map(RcuExpedite::engage);
        let start = boottime_ns();
        let errno = match dirs.get(i).map(MountDir::freeze) {
            Some(Ok(())) => 0,
            Some(Err(e)) => e as i32,
            None => Errno::EINVAL as i32,
        };
        let end = boottime_ns();
        if let (Some(rcu), Some(engaged)) = (rcu.as_ref(), engaged) {
            rcu.release(engaged);
        }
        let mut out = [0u8; RESULT_BYTES];
        out[0..8].copy_from_slice(&(i as u64).to_ne_bytes());
        out[8..16].copy_from_slice(&i64::from(errno).to_ne_bytes());
        out[16..24].copy_from_slice(&start.to_ne_bytes());
        out[24..32].copy_from_slice(&end.to_ne_bytes());
        // One write of 32 bytes to a pipe is atomic.
        if results.write_all(&out).is_err() {
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
    let (Ok((req_r, req_w)), Ok((res_r, res_w))) = (pipe(), pipe()) else {
        return setup_failed(&mut out, SetupStep::Timer, 0, libc::EMFILE);
    };
    let worker_dirs = Arc::clone(&dirs);
    let rcu = spec
        .expedite_rcu
        .then(|| RcuExpedite::open(&SysRoot::default().path(SYS_RCU_EXPEDITED)).ok())
        .flatten();
    let expedite_rcu = rcu.is_some();
    let spawned = std::thread::Builder::new()
        .name("fifreeze".into())
        .stack_size(64 * 1024)
        .spawn(move || worker(worker_dirs, rcu, req_r, res_w));
    if spawned.is_err() {
        return setup_failed(&mut out, SetupStep::Timer, 0, libc::EAGAIN);
    }
    let mut results = res_r;

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
        RecordFile::new(path, record)
            .ok()
            .and_then(|file| Recorder::start(file).ok())
    });
    let mut g = Guardian {
        dirs,
        states: vec![MountState::Planned; n],
        frozen: Vec::with_capacity(n),
        in_flight: None,
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
        out,
        record,
        record_live: true,
        record_mount: spec.record_mount,
        command: None,
        hooks: hook_slots,
        hook_output,
        mountpoints: spec.mounts.iter().map(|m| m.mountpoint.clone()).collect(),
    };
    g.write_record();
    // Everything is allocated and every thread started: lock it all in memory so that nothing
    // the guardian needs can be paged out to (or in from) a frozen filesystem.
    let mlocked = lock_all_memory().is_ok();
    g.emit(Event::Ready {
        mlocked,
        oom_protected,
        expedite_rcu,
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
    let mut poll = PollSet::<5>::default();
    loop {
        let wait = g.tend_command();
        if g.finished() {
            break;
        }
        poll.set(SLOT_REQUESTS, (!g.controller_gone).then(|| input.as_fd()));
        poll.set(SLOT_SIGNALS, Some(signals.as_fd()));
        poll.set(SLOT_DEADLINE, Some(g.deadline.as_fd()));
        poll.set(SLOT_WORKER, Some(results.as_fd()));
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
                // Cannot wait any more: the only safe thing left is to thaw now.
                g.stop(WindowEnd::Error);
                if g.in_flight.is_some() {
                    // Block until the FIFREEZE in flight returns, then thaw it too.
                    if results.read_exact(&mut result).is_ok() {
                        let (i, e, s, t) = decode_result(&result);
                        g.on_freeze_result(i, e, s, t);
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
        if poll.ready(SLOT_WORKER) && results.read_exact(&mut result).is_ok() {
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
    g.run_pending_thaw_hooks();
    g.finish_record();
    drop(signals);
    0
}
