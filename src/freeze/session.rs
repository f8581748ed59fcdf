//! `freeze -- CMD`: one session, one method per phase, in the order they run:
//!
//! 1. [`Session::check_hooks`]: every hook checked (ownership, modes, every path component)
//!    and opened; one refused → nothing runs;
//! 2. [`Session::find_command`]: CMD found as execvp would, before anything is frozen;
//! 3. [`Session::open_mounts`]: every candidate opened through a mount proven to be it;
//! 4. [`Session::start_guardian`]: the guardian, with its own proven fds and the hook fds;
//! 5. [`Session::run_freeze_hooks`]: in name order, the guardian told of each first;
//! 6. [`Session::freeze_mounts`]: per mount, the converging pre-sync, then FIFREEZE by the
//!    guardian;
//! 7. [`Session::confirm_guardian`]: it still answers (else: everything thawed, CMD not run);
//! 8. [`Session::start_command`]: CMD, with output that cannot block on a frozen filesystem;
//! 9. [`Session::wait_for_command`]: until CMD ends, the window ends, a signal, or the guardian
//!    is lost;
//!
//! and whatever happened: [`Session::thaw`], [`Session::end_command`],
//! [`Session::run_thaw_hooks`], [`Session::release_guardian`], then the report, whose outcome
//! and exit status [`super::outcome::decide`] derives from the facts collected.

use super::access;
use super::command::{self, ResolveError, RunningCommand};
use super::control::{Control, FreezeResult, MountProgress};
use super::guardian::{Spec, SpecHook, SpecMount, WindowEnd};
use super::hooks;
use super::outcome::{self, CommandEnd, Facts, Stop, WindowOutcome};
use super::output::CommandOutput;
use super::presync::SyncResult;
use super::probe::Static;
use super::record;
use super::rows::{self, Run};
use super::{Plan, logbuf, ms};
use crate::report::{
    CommandRun, FreezeOutcome, FreezeReport, HookRun, MountVerdict, SCHEMA_VERSION, Verdict,
    verdict_summary,
};
use crate::root::PROC;
use crate::sys::freeze::errno_name;
use crate::sys::process::{ProcessIdentity, SignalWatch, boottime_ns};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// Timeouts and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The guardian's self-thaw deadline, counted from the first FIFREEZE.
    pub timeout: Duration,
    /// Budget of the pre-freeze sync of each mount (zero: no pre-sync).
    pub sync_timeout: Duration,
    /// Per-hook timeout.
    pub hook_timeout: Duration,
    /// Hook directory; `None`: no hooks.
    pub hooks: Option<hooks::HooksDir>,
    /// After SIGTERM to CMD (window ended, or interruption), SIGKILL after this.
    pub kill_after: Duration,
    /// Expedite RCU grace periods around each FIFREEZE (see `sys::freeze::RcuExpedite`).
    pub expedite_rcu: bool,
}

/// Everything `freeze -- CMD` needs.
pub struct FreezeRun<'a> {
    pub plan: Plan<'a>,
    pub argv: &'a [OsString],
    /// Send CMD's stdout to our stderr (the JSON document owns our stdout).
    pub cmd_stdout_to_stderr: bool,
    /// snapguard's terminating signals, blocked before any thread or child exists.
    pub signals: &'a SignalWatch,
}

/// `freeze -- CMD`.
pub fn freeze(run: &FreezeRun<'_>) -> FreezeReport {
    let mut s = Session::new(run);
    if let Err(stop) = s.phases() {
        s.facts.stop = Some(stop);
    }
    s.thaw();
    s.end_command();
    s.run_thaw_hooks();
    s.release_guardian();
    s.hand_on_output();
    s.report()
}

struct Session<'r, 'a> {
    run: &'r FreezeRun<'a>,
    start_ns: u64,
    rows: Vec<MountVerdict>,
    row_of: Vec<usize>,
    statics: Vec<Static>,
    control: Control<'a>,
    hooks: Vec<hooks::Hook>,
    /// `hooks[..hooks_froze]` ran (or started) with `freeze`.
    hooks_froze: usize,
    hook_runs: Vec<HookRun>,
    program: Option<PathBuf>,
    command: Option<RunningCommand>,
    cmd_report: CommandRun,
    output: CommandOutput,
    holding_logs: bool,
    messages: Vec<String>,
    facts: Facts,
}

impl<'r, 'a> Session<'r, 'a> {
    fn new(run: &'r FreezeRun<'a>) -> Self {
        let (rows, row_of, statics) = rows::static_rows(run.plan.targets, run.plan.skip);
        Session {
            run,
            start_ns: boottime_ns(),
            rows,
            row_of,
            statics,
            control: Control::new(run.signals, Vec::new()),
            hooks: Vec::new(),
            hooks_froze: 0,
            hook_runs: Vec::new(),
            program: None,
            command: None,
            cmd_report: CommandRun {
                argv: run
                    .argv
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
                pid: None,
                exit_code: None,
                signal: None,
                terminated: false,
                duration_ms: 0.0,
                error: None,
            },
            output: CommandOutput::none(),
            holding_logs: false,
            messages: Vec::new(),
            facts: Facts::default(),
        }
    }

    fn phases(&mut self) -> Result<(), Stop> {
        self.check_hooks()?;
        self.find_command()?;
        self.open_mounts()?;
        self.start_guardian()?;
        self.run_freeze_hooks()?;
        self.freeze_mounts()?;
        self.confirm_guardian()?;
        self.start_command()?;
        self.wait_for_command();
        Ok(())
    }

    /// A signal or a lost guardian stops the run between phases.
    fn checkpoint(&mut self) -> Result<(), Stop> {
        self.control.pump(&[], Some(Duration::ZERO));
        if let Some(n) = self.control.signal {
            return Err(Stop::Interrupted(n));
        }
        if let Some(why) = self.control.guardian_stopped {
            return Err(Stop::WindowEnded(why));
        }
        if !self.control.mounts.is_empty() && self.control.gone {
            return Err(Stop::GuardianLost);
        }
        Ok(())
    }

    fn check_hooks(&mut self) -> Result<(), Stop> {
        let Some(dir) = &self.run.plan.opts.hooks else {
            return Ok(());
        };
        match hooks::discover(dir) {
            Ok(list) => {
                self.hooks = list;
                Ok(())
            }
            Err(refused) => {
                self.hook_runs = refused;
                self.messages
                    .push("a hook was refused: nothing was frozen, CMD did not run".into());
                Err(Stop::HookRefused)
            }
        }
    }

    fn find_command(&mut self) -> Result<(), Stop> {
        let Some(name) = self.run.argv.first() else {
            self.cmd_report.error = Some("no CMD given".into());
            return Err(Stop::CommandNotFound);
        };
        match command::resolve(name, std::env::var_os("PATH").as_deref()) {
            Ok(p) => {
                self.program = Some(p);
                Ok(())
            }
            Err(e) => {
                self.cmd_report.error = Some(e.to_string());
                self.messages
                    .push(format!("CMD cannot run ({e}): nothing was frozen"));
                Err(match e {
                    ResolveError::NotFound(_) => Stop::CommandNotFound,
                    ResolveError::NotExecutable(_) => Stop::CommandNotExecutable,
                })
            }
        }
    }

    fn open_mounts(&mut self) -> Result<(), Stop> {
        for &i in self.run.plan.order {
            if !matches!(self.statics[i], Static::Try { .. }) {
                continue;
            }
            let t = &self.run.plan.targets[i];
            match access::open_target(t, self.run.plan.table) {
                Ok(a) => self.control.mounts.push(MountProgress::new(i, a)),
                Err(why) => {
                    let row = &mut self.rows[self.row_of[i]];
                    row.verdict = crate::report::Verdict::Failed;
                    row.reason = why;
                    self.messages.push(format!(
                        "'{}' cannot be reached as itself: nothing was frozen, CMD did not run",
                        t.mountpoint.display()
                    ));
                    return Err(Stop::FreezeFailed);
                }
            }
        }
        if self.control.mounts.is_empty() {
            self.messages.push(
                "nothing to freeze (every mount is skipped, read-only or cannot be frozen): CMD \
                 runs without a freeze"
                    .into(),
            );
        }
        Ok(())
    }

    fn start_guardian(&mut self) -> Result<(), Stop> {
        if self.control.mounts.is_empty() {
            return Ok(());
        }
        let record = match record::create_dir(self.run.plan.root) {
            Ok(()) => {
                let path = record::path_for(self.run.plan.root, std::process::id());
                record::set_aside_stale(&path);
                Some(path)
            }
            Err(e) => {
                self.messages.push(format!(
                    "{e:#}: no record of this run (`snapguard thaw` would need --force)"
                ));
                None
            }
        };
        // Hook output after the controller died: a dup of snapguard's stderr, used only once
        // nothing is frozen.
        let hook_output: Option<OwnedFd> = std::io::stderr().as_fd().try_clone_to_owned().ok();
        let mut inherit: Vec<std::os::fd::BorrowedFd<'_>> =
            self.hooks.iter().map(hooks::Hook::fd).collect();
        if let Some(fd) = &hook_output {
            inherit.push(fd.as_fd());
        }
        let spec = Spec {
            command: "freeze".into(),
            controller: ProcessIdentity::myself(&self.run.plan.root.path(PROC)).unwrap_or(
                ProcessIdentity {
                    pid: std::process::id(),
                    start_time: 0,
                },
            ),
            timeout_ms: self.run.plan.opts.timeout.as_millis() as u64,
            kill_after_ms: self.run.plan.opts.kill_after.as_millis() as u64,
            hook_timeout_ms: self.run.plan.opts.hook_timeout.as_millis() as u64,
            record,
            record_mount: self.control.record_mount(&self.run.plan),
            mounts: self
                .control
                .mounts
                .iter()
                .map(|m| SpecMount {
                    mountpoint: self.run.plan.targets[m.target].mountpoint.clone(),
                    access: m.access.path.clone(),
                    expected: m.access.expected,
                })
                .collect(),
            hooks: self
                .hooks
                .iter()
                .map(|h| SpecHook {
                    path: h.path.clone(),
                    fd: h.fd().as_raw_fd(),
                })
                .collect(),
            hook_output_fd: hook_output.as_ref().map(AsRawFd::as_raw_fd),
            expedite_rcu: self.run.plan.opts.expedite_rcu,
        };
        match self.control.start_guardian(&spec, &inherit) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.messages
                    .push(format!("{e:#}: nothing was frozen, CMD did not run"));
                Err(Stop::GuardianLost)
            }
        }
    }

    fn mountpoints(&self) -> Vec<PathBuf> {
        self.control
            .mounts
            .iter()
            .map(|m| self.run.plan.targets[m.target].mountpoint.clone())
            .collect()
    }

    fn run_freeze_hooks(&mut self) -> Result<(), Stop> {
        let mounts = self.mountpoints();
        for k in 0..self.hooks.len() {
            self.checkpoint()?;
            self.control.hook(k, true);
            self.hooks_froze = k + 1;
            let control = &mut self.control;
            let proc_dir = self.run.plan.root.path(PROC);
            let stderr = std::io::stderr();
            let r = hooks::run_watched(
                &self.hooks[k],
                "freeze",
                &mounts,
                self.run.plan.opts.hook_timeout,
                stderr.as_fd(),
                &mut |pid| {
                    if let Some(id) = ProcessIdentity::of(&proc_dir, pid) {
                        control.hook_running(k, id);
                    }
                },
            );
            let ok = r.result == "ok";
            self.hook_runs.push(r);
            if !ok {
                self.messages
                    .push("a freeze hook failed: nothing was frozen, CMD did not run".into());
                return Err(Stop::HookFailed);
            }
        }
        Ok(())
    }

    /// The pre-freeze sync of mount `gi`, while watching signals and the guardian.
    fn presync(&mut self, gi: usize) -> Result<(), Stop> {
        let budget = self.run.plan.opts.sync_timeout;
        self.control.presync(gi, budget, true);
        if let Some(n) = self.control.signal {
            return Err(Stop::Interrupted(n));
        }
        if self.control.gone {
            return Err(Stop::GuardianLost);
        }
        if !self.control.window_live() {
            return Err(Stop::WindowEnded(
                self.control.end_reason().unwrap_or(WindowEnd::Error),
            ));
        }
        let path = self.control.mounts[gi].access.path.clone();
        let Some(result) = self.control.mounts[gi].sync else {
            return Ok(());
        };
        match result {
            SyncResult::TimedOut(_) => {
                self.messages.push(format!(
                    "the pre-freeze sync of '{}' did not finish (hung device?): nothing is left \
                     frozen, CMD did not run",
                    path.display()
                ));
                Err(Stop::FreezeFailed)
            }
            SyncResult::Failed(e, _) => {
                // Not fatal: the kernel syncs again inside FIFREEZE.
                tracing::warn!("syncfs '{}': {}", path.display(), errno_name(e));
                Ok(())
            }
            SyncResult::Done { .. } => Ok(()),
        }
    }

    fn freeze_mounts(&mut self) -> Result<(), Stop> {
        if self.control.mounts.is_empty() {
            return Ok(());
        }
        if !self.control.open_window() {
            return Err(match self.control.guardian_stopped {
                Some(why) => Stop::WindowEnded(why),
                None => Stop::GuardianLost,
            });
        }
        for gi in 0..self.control.mounts.len() {
            self.checkpoint()?;
            self.presync(gi)?;
            if !self.holding_logs {
                logbuf::hold();
                self.holding_logs = true;
            }
            let path = self.control.mounts[gi].access.path.clone();
            tracing::info!("freezing '{}'", path.display());
            let result = self.control.freeze(gi);
            let outcome = match &result {
                None => "no answer from the guardian".to_string(),
                Some(FreezeResult::Frozen { .. }) => "frozen".to_string(),
                Some(FreezeResult::Busy { .. }) => "busy (EBUSY)".to_string(),
                Some(FreezeResult::Failed { errno, .. }) => {
                    format!("failed: {}", Errno::from_raw(*errno).desc())
                }
                Some(FreezeResult::Refused) => "refused: the guardian's window has ended".into(),
            };
            tracing::info!("FIFREEZE '{}': {outcome}", path.display());
            if let Some(n) = self.control.signal {
                return Err(Stop::Interrupted(n));
            }
            match result {
                None if self.control.stuck => return Err(Stop::FreezeFailed),
                None => return Err(Stop::GuardianLost),
                Some(FreezeResult::Frozen { .. }) => {}
                Some(FreezeResult::Failed { errno, .. })
                    if matches!(Errno::from_raw(errno), Errno::EOPNOTSUPP | Errno::ENOTTY) => {}
                Some(FreezeResult::Busy { .. } | FreezeResult::Failed { .. }) => {
                    self.messages.push(format!(
                        "'{}' could not be frozen: what was frozen is thawed, CMD did not run",
                        self.run.plan.targets[self.control.mounts[gi].target]
                            .mountpoint
                            .display()
                    ));
                    return Err(Stop::FreezeFailed);
                }
                Some(FreezeResult::Refused) => {
                    return Err(Stop::WindowEnded(
                        self.control.window_end.unwrap_or(WindowEnd::Deadline),
                    ));
                }
            }
            if !self.control.window_live() {
                // The deadline (or a signal to the guardian) came while FIFREEZE blocked.
                return Err(Stop::WindowEnded(
                    self.control.end_reason().unwrap_or(WindowEnd::Deadline),
                ));
            }
        }
        Ok(())
    }

    fn confirm_guardian(&mut self) -> Result<(), Stop> {
        if self.control.mounts.is_empty() {
            return Ok(());
        }
        self.checkpoint()?;
        if !self.control.ping() {
            return Err(if self.control.gone {
                Stop::GuardianLost
            } else {
                Stop::WindowEnded(self.control.window_end.unwrap_or(WindowEnd::Error))
            });
        }
        if !self.control.window_live() {
            return Err(Stop::WindowEnded(
                self.control.end_reason().unwrap_or(WindowEnd::Error),
            ));
        }
        Ok(())
    }

    fn frozen_superblocks(&self) -> Vec<(u32, u32)> {
        self.control
            .mounts
            .iter()
            .filter(|m| m.is_frozen())
            .map(|m| {
                let t = &self.run.plan.targets[m.target];
                (t.major, t.minor)
            })
            .collect()
    }

    fn start_command(&mut self) -> Result<(), Stop> {
        let Some(program) = self.program.clone() else {
            return Err(Stop::CommandNotFound);
        };
        let frozen: Vec<String> = self
            .control
            .mounts
            .iter()
            .filter(|m| m.is_frozen())
            .map(|m| {
                self.run.plan.targets[m.target]
                    .mountpoint
                    .display()
                    .to_string()
            })
            .collect();
        let left_ms = self
            .control
            .deadline_ns
            .map_or(self.run.plan.opts.timeout.as_millis() as u64, |d| {
                d.saturating_sub(boottime_ns()) / 1_000_000
            });
        let env = vec![
            ("SNAPGUARD_FROZEN".to_string(), frozen.join("\n")),
            (
                "SNAPGUARD_FROZEN_COUNT".to_string(),
                frozen.len().to_string(),
            ),
            (
                "SNAPGUARD_TIMEOUT_MS".to_string(),
                self.run.plan.opts.timeout.as_millis().to_string(),
            ),
            (
                "SNAPGUARD_DEADLINE_LEFT_MS".to_string(),
                left_ms.to_string(),
            ),
        ];
        let stderr = std::io::stderr();
        let stdout = std::io::stdout();
        let out_dest = if self.run.cmd_stdout_to_stderr {
            stderr.as_fd()
        } else {
            stdout.as_fd()
        };
        let prepared = if frozen.is_empty() {
            None
        } else {
            CommandOutput::prepare(
                [out_dest, stderr.as_fd()],
                &self.frozen_superblocks(),
                self.run.plan.table,
            )
            .ok()
        };
        let (output, [cmd_out, cmd_err]) = match prepared {
            Some(p) => p,
            None => (
                CommandOutput::none(),
                [
                    std::process::Stdio::from(
                        out_dest
                            .try_clone_to_owned()
                            .map_err(|_| Stop::CommandNotExecutable)?,
                    ),
                    std::process::Stdio::inherit(),
                ],
            ),
        };
        self.output = output;
        match RunningCommand::start(
            &program,
            self.run.argv,
            &env,
            cmd_out,
            cmd_err,
            self.run.plan.opts.kill_after,
            &self.run.plan.root.path(PROC),
        ) {
            Ok(c) => {
                tracing::info!("CMD started while frozen (pid {})", c.pid);
                self.cmd_report.pid = Some(c.pid);
                if let Some(id) = c.identity {
                    self.control.watch_command(id.pid, id.start_time);
                }
                self.command = Some(c);
                Ok(())
            }
            Err(e) => {
                self.cmd_report.error = Some(crate::sys::describe_io(&e));
                Err(if e.kind() == std::io::ErrorKind::NotFound {
                    Stop::CommandNotFound
                } else {
                    Stop::CommandNotExecutable
                })
            }
        }
    }

    /// Poll the guardian, the signals, CMD and its output once.
    fn pump_with_command(&mut self, timeout: Duration) {
        let mut extra = [None, None, None];
        let mut streams = [usize::MAX; 2];
        if let Some(c) = &self.command {
            if !c.has_ended() {
                extra[0] = Some(c.fd());
            }
        }
        for (slot, (i, fd)) in self.output.fds().take(2).enumerate() {
            extra[1 + slot] = Some(fd);
            streams[slot] = i;
        }
        let ready = self.control.pump(&extra, Some(timeout));
        for (slot, &i) in streams.iter().enumerate() {
            if ready[1 + slot] {
                self.output.take(i);
            }
        }
        if let Some(c) = self.command.as_mut() {
            c.poll_exit();
        }
    }

    fn wait_for_command(&mut self) {
        loop {
            let Some(c) = self.command.as_mut() else {
                return;
            };
            if c.poll_exit().is_some() {
                return;
            }
            if self.control.signal.is_some()
                || (!self.control.mounts.is_empty() && !self.control.window_live())
                || (!self.control.mounts.is_empty() && self.control.gone)
            {
                return;
            }
            let wait = self
                .control
                .watchdog()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            self.pump_with_command(wait);
        }
    }

    fn thaw(&mut self) {
        self.control.thaw_all();
        if self.control.still_frozen(self.run.plan.targets).is_empty() {
            self.output.release();
        }
    }

    /// The last step: the held log (unless it could lead into a mount that may still be
    /// frozen) and what is left of CMD's output. Only here may a slow reader make snapguard
    /// wait: CMD is ended, the hooks have run, the guardian is released.
    fn hand_on_output(&mut self) {
        let still = self.control.still_frozen(self.run.plan.targets);
        if self.holding_logs {
            logbuf::release_avoiding(&still, self.run.plan.table);
            self.holding_logs = false;
        }
        if still.is_empty() {
            self.output.finish();
        }
    }

    fn end_command(&mut self) {
        let signal = self
            .control
            .signal
            .and_then(|n| Signal::try_from(n).ok())
            .filter(|s| {
                matches!(
                    s,
                    Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
                )
            })
            .unwrap_or(Signal::SIGTERM);
        if let Some(c) = self.command.as_mut() {
            if c.poll_exit().is_none() {
                c.terminate(signal);
            }
        }
        while let Some(c) = self.command.as_mut() {
            if c.poll_exit().is_some() {
                break;
            }
            let Some(left) = c.tend() else {
                if c.wait_killed(Duration::from_secs(5)).is_none() {
                    let pid = c.pid;
                    self.messages.push(format!(
                        "CMD (pid {pid}) did not die after SIGKILL (stuck in the kernel?)"
                    ));
                }
                break;
            };
            self.pump_with_command(left.min(Duration::from_millis(200)));
        }
        let Some(c) = self.command.take() else {
            return;
        };
        if self.control.still_frozen(self.run.plan.targets).is_empty() {
            self.output.collect(Duration::from_millis(100));
        }
        let (code, signal) = c.code_and_signal();
        self.cmd_report.exit_code = code;
        self.cmd_report.signal = signal;
        self.cmd_report.terminated = c.was_terminated();
        self.cmd_report.duration_ms = ms(c.started.elapsed());
        self.facts.command = match (code, signal) {
            (Some(code), _) => Some(CommandEnd::Exited(code)),
            (None, Some(n)) => Some(CommandEnd::Signalled(n)),
            _ => None,
        };
        // The window ends at the first of: the first thaw snapshot did not ask for, the
        // guardian's decision to end it (`k`), the deadline. CMD ending on the SIGTERM that
        // follows any of them did not end inside the window.
        let window_end = [self.control.broken_at_ns, self.control.deadline_ns]
            .into_iter()
            .flatten()
            .min();
        self.facts.command_ended_in_window = match (c.ended_ns, window_end) {
            (Some(ended), Some(end)) => ended < end,
            _ => false,
        };
        self.facts.window = Some(self.window_outcome());
        // CMD terminated by snapguard at the deadline (the controller may have asked for the
        // thaw itself, just before the guardian's timer): the window ended under CMD.
        let past_deadline = self
            .control
            .deadline_ns
            .is_some_and(|d| c.ended_ns.is_some_and(|e| e >= d));
        // A thaw the guardian did on its own (a signal to it, the deadline) before CMD ended, or
        // that CMD was terminated for: the window broke under CMD.
        let own_thaw = self
            .control
            .mounts
            .iter()
            .filter_map(|m| m.thaw)
            .filter_map(|t| {
                t.why
                    .filter(|w| *w != WindowEnd::Requested)
                    .map(|w| (t.start, w))
            })
            .min_by_key(|(start, _)| *start);
        if let Some((start, why)) = own_thaw {
            if c.was_terminated() || c.ended_ns.is_some_and(|e| e >= start) {
                self.facts.command_ended_in_window = false;
                if matches!(self.facts.window, Some(WindowOutcome::Held)) {
                    self.facts.window = Some(WindowOutcome::Guardian(why));
                }
                if matches!(why, WindowEnd::Signal(_) | WindowEnd::Error) {
                    self.control.guardian_stopped.get_or_insert(why);
                }
                if let WindowEnd::Signal(n) = why {
                    let name = nix::sys::signal::Signal::try_from(n)
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|_| format!("signal {n}"));
                    if !self.messages.iter().any(|m| m.contains(&name)) {
                        self.messages.push(format!(
                            "the guardian got {name} and thawed while CMD ran: the snapshot \
                             window was broken"
                        ));
                    }
                }
            }
        }
        if c.was_terminated() && past_deadline {
            self.facts.command_ended_in_window = false;
            if matches!(self.facts.window, Some(WindowOutcome::Held)) {
                self.facts.window = Some(WindowOutcome::Guardian(WindowEnd::Deadline));
            }
        }
        if c.was_terminated() {
            self.messages.push(
                "CMD was still running when the frozen window ended: it was terminated".into(),
            );
        }
    }

    /// How the window ended, from the controller's point of view.
    fn window_outcome(&self) -> WindowOutcome {
        if let (Some(n), true) = (self.control.signal, self.control.signal_in_window) {
            return WindowOutcome::Interrupted(n);
        }
        if self.control.mounts.iter().any(|m| {
            m.thaw
                .is_some_and(|t| t.by == crate::report::ThawedBy::Controller)
        }) {
            return WindowOutcome::GuardianLost;
        }
        match self.control.end_reason() {
            // The deadline passed before the guardian's word about it arrived.
            None if self
                .control
                .deadline_ns
                .is_some_and(|d| crate::sys::process::boottime_ns() >= d) =>
            {
                WindowOutcome::Guardian(WindowEnd::Deadline)
            }
            Some(WindowEnd::Requested) | None => WindowOutcome::Held,
            Some(WindowEnd::ControllerGone) => WindowOutcome::GuardianLost,
            Some(why) => WindowOutcome::Guardian(why),
        }
    }

    fn run_thaw_hooks(&mut self) {
        let mounts = self.mountpoints();
        for k in (0..self.hooks_froze).rev() {
            self.control.hook(k, false);
            let r = hooks::run(
                &self.hooks[k],
                "thaw",
                &mounts,
                self.run.plan.opts.hook_timeout,
            );
            if r.result != "ok" {
                self.facts.thaw_hook_failed = true;
                self.messages
                    .push(format!("the thaw hook {} failed", r.path));
            }
            self.hook_runs.push(r);
        }
    }

    fn release_guardian(&mut self) {
        self.control.finish();
    }

    /// One line: why the run did not complete (the report's `reason`, and snapguard's line on
    /// stderr).
    fn reason(&self, outcome: FreezeOutcome, messages: &[String]) -> Option<String> {
        let find = |needle: &str| messages.iter().find(|m| m.contains(needle)).cloned();
        let failed_row = || {
            self.rows
                .iter()
                .find(|r| matches!(r.verdict, Verdict::Failed | Verdict::AlreadyFrozen))
                .map(|r| format!("'{}': {}", r.mountpoint, r.reason))
        };
        match outcome {
            FreezeOutcome::Completed => None,
            FreezeOutcome::Timeout => find("deadline passed"),
            FreezeOutcome::Interrupted => find("interrupted by"),
            FreezeOutcome::WindowBroken => find("the guardian got").or_else(failed_row),
            FreezeOutcome::GuardianLost => find("guardian"),
            FreezeOutcome::FreezeFailed => failed_row().or_else(|| messages.last().cloned()),
            FreezeOutcome::HookFailed => {
                self.hook_runs.iter().find(|h| h.result != "ok").map(|h| {
                    format!(
                        "hook {} {} with freeze: {}",
                        h.path,
                        h.result,
                        h.detail.as_deref().unwrap_or("")
                    )
                })
            }
            FreezeOutcome::CommandFailed => self
                .cmd_report
                .error
                .as_ref()
                .map(|e| format!("CMD cannot run: {e} (nothing was frozen)")),
            FreezeOutcome::ThawFailed => {
                let still: Vec<String> = self
                    .control
                    .mounts
                    .iter()
                    .filter(|m| m.may_still_be_frozen())
                    .map(|m| crate::shell::quote_path(&m.access.path))
                    .collect();
                if still.is_empty() {
                    find("thaw hook")
                } else {
                    Some(format!(
                        "may still be frozen: {} (snapguard thaw {})",
                        still.join(", "),
                        still.join(" ")
                    ))
                }
            }
        }
        .or_else(|| messages.first().cloned())
    }

    fn report(mut self) -> FreezeReport {
        for m in &self.control.mounts {
            let row = &mut self.rows[self.row_of[m.target]];
            rows::apply_progress(
                row,
                m,
                self.start_ns,
                self.run.plan.opts.timeout,
                Run::Freeze,
            );
        }
        rows::propagate_to_duplicates(&mut self.rows);
        self.facts.maybe_still_frozen = self
            .control
            .mounts
            .iter()
            .any(MountProgress::may_still_be_frozen);
        self.facts.thawed_by_someone_else = self
            .control
            .mounts
            .iter()
            .any(|m| m.thaw.is_some_and(|t| t.errno == Errno::EINVAL as i32));
        let (outcome, exit_code) = outcome::decide(&self.facts);
        let first = self
            .control
            .mounts
            .iter()
            .filter_map(|m| match m.freeze {
                Some(FreezeResult::Frozen { start, .. }) => Some(start),
                _ => None,
            })
            .min();
        let last = self
            .control
            .mounts
            .iter()
            .filter_map(|m| m.thaw.map(|t| t.end))
            .max();
        let window_ms = first.map(|f| {
            ms(Duration::from_nanos(
                last.unwrap_or_else(boottime_ns).saturating_sub(f),
            ))
        });
        let mut messages = std::mem::take(&mut self.control.messages);
        messages.append(&mut self.messages);
        if self.control.window_end == Some(WindowEnd::Deadline)
            || matches!(
                self.facts.window,
                Some(WindowOutcome::Guardian(WindowEnd::Deadline))
            )
        {
            messages.push(format!(
                "the {} s deadline passed: the guardian thawed",
                self.run.plan.opts.timeout.as_secs_f64()
            ));
        }
        if let Some(WindowEnd::Signal(n)) = self.control.window_end {
            messages.push(format!(
                "the guardian got {} and thawed: the frozen window was broken",
                super::guardian::protocol::signal_name(n)
            ));
        }
        if let Some(n) = self.control.signal {
            messages.push(format!(
                "interrupted by {}: thawed at once, CMD got the signal too",
                super::guardian::protocol::signal_name(n)
            ));
        }
        let reason = self.reason(outcome, &messages);
        let cmd = (self.cmd_report.pid.is_some() || self.cmd_report.error.is_some())
            .then_some(self.cmd_report);
        let mut report = FreezeReport {
            schema_version: SCHEMA_VERSION,
            command: "freeze",
            summary: verdict_summary(&self.rows),
            outcome,
            exit_code,
            timeout_ms: self.run.plan.opts.timeout.as_millis() as u64,
            window_ms,
            mounts: self.rows,
            hooks: self.hook_runs,
            cmd,
            messages,
            still_frozen: Vec::new(),
            reason,
        };
        report.still_frozen = self
            .control
            .mounts
            .iter()
            .filter(|m| m.may_still_be_frozen())
            .map(|m| {
                self.run.plan.targets[m.target]
                    .mountpoint
                    .display()
                    .to_string()
            })
            .collect();
        report
    }
}
