//! The controller's handle on its guardian: spawn it, send requests, read its events without
//! blocking (the controller polls the guardian's pipe together with its signals, CMD and CMD's
//! output), and tell when it is gone for good.
//!
//! End of file on the guardian's stdout proves that it is dead or dying with no thread left that
//! could still call FIFREEZE or FITHAW: every thread shares the fd table, which is released (and
//! the pipe's write end closed) only when the last one exits. Only then may the controller thaw
//! by itself what the guardian had reported frozen.

use super::protocol::{Event, Request, SetupStep};
use super::spec::Spec;
use crate::sys::freeze::errno_name;
use crate::sys::process::{NEUTRAL_CWD, PollSet, SELF_EXE, set_nonblocking};
use crate::sys::spawn::{Program, Spawn};
use anyhow::{Context as _, bail};
use nix::errno::Errno;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand the guardian runs as.
pub const SUBCOMMAND: &str = "__guardian";

/// How long the controller waits for the guardian to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The controller's handle.
#[derive(Debug)]
pub struct GuardianClient {
    child: Child,
    to: Option<ChildStdin>,
    from: ChildStdout,
    pending: Vec<u8>,
    eof: bool,
    reaped: Option<ExitStatus>,
    /// The guardian's pid.
    pub pid: u32,
    /// Whether its memory is locked (mlockall).
    pub mlocked: bool,
    /// Whether the OOM killer spares it.
    pub oom_protected: bool,
    /// Whether it expedites RCU grace periods around FIFREEZE.
    pub expedite_rcu: bool,
    /// Whether it wrote the run's record (a rescue needs it).
    pub recorded: bool,
}

impl GuardianClient {
    /// Start the guardian with `spec`, keeping `inherit` (hook fds, the hook output fd) open in
    /// it, and wait until it is ready (its fds opened and proven, memory locked).
    pub fn spawn(spec: &Spec, inherit: &[BorrowedFd<'_>]) -> anyhow::Result<Self> {
        let line = spec.to_line()?;
        let mut spawn = Spawn::new(Program::Path(Path::new(SELF_EXE)))
            .arg0("snapguard")
            .args([SUBCOMMAND])
            .env_fixed(Vec::<(String, String)>::new())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .cwd(Path::new(NEUTRAL_CWD));
        for &fd in inherit {
            spawn = spawn.keep_fd(fd);
        }
        let mut child = spawn.spawn().context("cannot start the guardian process")?;
        let pid = child.id();
        let (Some(mut to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the guardian has no pipes");
        };
        let _ = set_nonblocking(from.as_fd());
        let mut g = GuardianClient {
            child,
            to: None,
            from,
            pending: Vec::new(),
            eof: false,
            reaped: None,
            pid,
            mlocked: false,
            oom_protected: false,
            expedite_rcu: false,
            recorded: false,
        };
        if let Err(e) = to.write_all(&line) {
            g.kill();
            bail!("cannot talk to the guardian: {e}");
        }
        g.to = Some(to);
        let end = Instant::now() + READY_TIMEOUT;
        loop {
            for e in g.events() {
                match e {
                    Event::Ready {
                        mlocked,
                        oom_protected,
                        expedite_rcu,
                        recorded,
                    } => {
                        g.mlocked = mlocked;
                        g.oom_protected = oom_protected;
                        g.expedite_rcu = expedite_rcu;
                        g.recorded = recorded;
                        return Ok(g);
                    }
                    Event::SetupFailed { step, index, errno } => {
                        g.kill();
                        bail!(
                            "the guardian could not start: {}",
                            describe_setup_failure(step, index, errno, spec)
                        );
                    }
                    _ => {}
                }
            }
            if g.eof {
                g.kill();
                bail!("the guardian exited before it was ready");
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                g.kill();
                bail!(
                    "the guardian did not become ready within {} ms",
                    READY_TIMEOUT.as_millis()
                );
            }
            g.wait_readable(left);
        }
    }

    /// Send one request; false when the guardian cannot receive it any more.
    pub fn send(&mut self, r: Request) -> bool {
        match self.to.as_mut() {
            Some(to) => to.write_all(r.encode().as_bytes()).is_ok(),
            None => false,
        }
    }

    /// The fd to poll for events.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.from.as_fd()
    }

    /// Whether the guardian is gone: its end of the pipe closed (it is dead or dying, with no
    /// thread left to call FIFREEZE or FITHAW).
    pub fn is_gone(&self) -> bool {
        self.eof
    }

    /// Every event readable now, without blocking.
    pub fn events(&mut self) -> Vec<Event> {
        let mut buf = [0u8; 4096];
        loop {
            match self.from.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.eof = true;
                    break;
                }
            }
        }
        let mut out = Vec::new();
        while let Some(p) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=p).collect();
            if let Some(e) = Event::decode(&line[..line.len() - 1]) {
                out.push(e);
            }
        }
        out
    }

    /// Wait until events are readable, or `timeout`.
    fn wait_readable(&self, timeout: Duration) {
        let mut set = PollSet::<1>::default();
        set.set(0, Some(self.from.as_fd()));
        let _ = set.wait(Some(timeout));
    }

    /// Close our end of the request pipe: the guardian sees the controller "die" (it ends the
    /// window and exits once nothing is in flight). Used after `D`.
    pub fn close_requests(&mut self) {
        self.to = None;
    }

    /// Reap the guardian if it has exited, waiting up to `timeout`.
    pub fn reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if self.reaped.is_some() {
                return self.reaped;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = Some(status);
                return self.reaped;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL our guardian (it does not answer, or failed to start) and reap it. Only called
    /// when nothing is frozen, or when the caller will thaw itself after [`Self::is_gone`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        self.to = None;
        let _ = self.reap(Duration::from_secs(2));
    }
}

fn describe_setup_failure(step: SetupStep, index: usize, errno: i32, spec: &Spec) -> String {
    let mount = spec
        .mounts
        .get(index)
        .map(|m| m.access.display().to_string())
        .unwrap_or_default();
    let errno_text = || errno_name(Errno::from_raw(errno));
    match step {
        SetupStep::Open => format!("cannot open '{mount}': {}", errno_text()),
        SetupStep::Changed => format!(
            "'{mount}' is no longer the mount snapguard checked (unmounted, covered or remounted \
             meanwhile)"
        ),
        SetupStep::Spec => "it could not read its instructions".to_string(),
        SetupStep::Signals => format!("cannot block signals: {}", errno_text()),
        SetupStep::Hook => format!("hook fd {index} is not open: {}", errno_text()),
        SetupStep::Timer => format!("cannot set up its timer or thread: {}", errno_text()),
    }
}
