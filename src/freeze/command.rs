//! CMD, the command `freeze` runs while frozen: found before anything is frozen (so a typo
//! costs no freeze), started through [`crate::sys::spawn`] with an empty signal mask and default
//! dispositions (it can be asked to stop), watched through a pidfd, and ended with SIGTERM (or
//! the signal snapguard got), then SIGKILL after the grace period, when the window ends first.

use crate::sys::process::{Pidfd, ProcessIdentity, boottime_ns};
use crate::sys::spawn::{Program, Spawn};
use nix::sys::signal::Signal;
use nix::unistd::AccessFlags;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// execvp's search path when PATH is not set (confstr `_CS_PATH`).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Why CMD cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No such file (exit 127).
    NotFound(String),
    /// Found, but not an executable regular file (exit 126).
    NotExecutable(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(s) | ResolveError::NotExecutable(s) => f.write_str(s),
        }
    }
}

fn executable_file(p: &Path) -> Result<(), &'static str> {
    let meta = std::fs::metadata(p).map_err(|_| "not found")?;
    if !meta.is_file() {
        return Err("not a regular file");
    }
    if meta.permissions().mode() & 0o111 == 0 || nix::unistd::access(p, AccessFlags::X_OK).is_err()
    {
        return Err("not executable");
    }
    Ok(())
}

/// Find CMD as execvp(3) would: a name with a `/` as it is, otherwise the first executable
/// regular file named so in `path_var` (`PATH`; empty components mean the current directory).
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ResolveError> {
    let shown = program.to_string_lossy();
    if program.is_empty() {
        return Err(ResolveError::NotFound("CMD is empty".to_string()));
    }
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return match executable_file(&p) {
            Ok(()) => Ok(p),
            Err("not found") => Err(ResolveError::NotFound(format!("'{shown}': not found"))),
            Err(why) => Err(ResolveError::NotExecutable(format!("'{shown}': {why}"))),
        };
    }
    let search = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied: Option<String> = None;
    for dir in search.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        match executable_file(&candidate) {
            Ok(()) => return Ok(candidate),
            Err("not found") => {}
            Err(why) => {
                denied.get_or_insert_with(|| format!("'{}': {why}", candidate.display()));
            }
        }
    }
    match denied {
        Some(why) => Err(ResolveError::NotExecutable(why)),
        None => Err(ResolveError::NotFound(format!(
            "'{shown}': command not found in PATH ({})",
            search.to_string_lossy()
        ))),
    }
}

/// CMD while it runs.
#[derive(Debug)]
pub struct RunningCommand {
    child: Child,
    pidfd: Pidfd,
    pub pid: u32,
    pub identity: Option<ProcessIdentity>,
    pub started: Instant,
    status: Option<ExitStatus>,
    /// CLOCK_BOOTTIME ns when its exit was noticed.
    pub ended_ns: Option<u64>,
    terminated: Option<(Signal, Instant)>,
    killed: bool,
    kill_after: Duration,
}

impl RunningCommand {
    /// Start `argv` (its program already resolved to `program`) with `env` added to snapguard's
    /// environment, on the given stdout/stderr (stdin is snapguard's).
    pub fn start(
        program: &Path,
        argv: &[OsString],
        env: &[(String, String)],
        stdout: Stdio,
        stderr: Stdio,
        kill_after: Duration,
        proc_dir: &Path,
    ) -> std::io::Result<Self> {
        let arg0 = argv.first().map_or(OsStr::new(""), OsString::as_os_str);
        let mut child = Spawn::new(Program::Path(program))
            .arg0(arg0)
            .args(argv.iter().skip(1))
            .env_inherit_with(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()?;
        let pid = child.id();
        // Not reaped yet, so the pid is certainly this child's.
        let pidfd = match Pidfd::open(pid) {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::from_raw_os_error(e as i32));
            }
        };
        Ok(RunningCommand {
            identity: ProcessIdentity::of(proc_dir, pid),
            child,
            pidfd,
            pid,
            started: Instant::now(),
            status: None,
            ended_ns: None,
            terminated: None,
            killed: false,
            kill_after,
        })
    }

    /// The fd to poll: readable once CMD has exited.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reap CMD if it has exited (never blocks); its status once it has.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                self.ended_ns = Some(boottime_ns());
            }
        }
        self.status
    }

    /// Whether it has exited (and been reaped).
    pub fn has_ended(&self) -> bool {
        self.status.is_some()
    }

    /// Whether snapguard asked it to stop.
    pub fn was_terminated(&self) -> bool {
        self.terminated.is_some()
    }

    /// Ask it to stop with `signal` (the first call only); SIGKILL follows after the grace
    /// period (see [`Self::tend`]).
    pub fn terminate(&mut self, signal: Signal) {
        if self.status.is_some() || self.terminated.is_some() {
            return;
        }
        let _ = self.pidfd.signal(signal);
        self.terminated = Some((signal, Instant::now()));
    }

    /// Pass a signal snapguard got on to CMD (and start the grace period).
    pub fn forward(&mut self, signal: Signal) {
        if self.terminated.is_some() {
            let _ = self.pidfd.signal(signal);
        } else {
            self.terminate(signal);
        }
    }

    /// SIGKILL once the grace period is over; returns how long until that, if pending.
    pub fn tend(&mut self) -> Option<Duration> {
        if self.poll_exit().is_some() || self.killed {
            return None;
        }
        let (_, since) = self.terminated?;
        let left = self.kill_after.saturating_sub(since.elapsed());
        if left.is_zero() {
            let _ = self.pidfd.signal(Signal::SIGKILL);
            self.killed = true;
            None
        } else {
            Some(left)
        }
    }

    /// Wait (bounded) for it to exit after SIGKILL; a process stuck in the kernel may outlive
    /// this.
    pub fn wait_killed(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.poll_exit() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// Exit code and signal of an ended CMD.
    pub fn code_and_signal(&self) -> (Option<i32>, Option<i32>) {
        match self.status {
            Some(s) => (s.code(), s.signal()),
            None => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn found_as_execvp_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = bin.join("plain");
        std::fs::write(&plain, "data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = OsString::from(format!("/nonexistent:{}", bin.display()));

        assert_eq!(resolve(OsStr::new("tool"), Some(&path)), Ok(tool.clone()));
        assert_eq!(resolve(tool.as_os_str(), None), Ok(tool));
        assert!(matches!(
            resolve(OsStr::new("missing-tool"), Some(&path)),
            Err(ResolveError::NotFound(_))
        ));
        // root may execute anything with an x bit; a file without any is not executable.
        assert!(matches!(
            resolve(OsStr::new("plain"), Some(&path)),
            Err(ResolveError::NotExecutable(_))
        ));
        assert!(matches!(
            resolve(bin.as_os_str(), None),
            Err(ResolveError::NotExecutable(_))
        ));
        assert!(matches!(
            resolve(OsStr::new("./nope"), None),
            Err(ResolveError::NotFound(_))
        ));
    }
}
