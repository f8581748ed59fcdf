//! One spawner for every child snapguard starts (CMD, hooks, the `__guardian` and `__syncfs`
//! helpers), so that each one starts clean whatever state snapguard is in.
//!
//! `std::process::Command` does not reset the signal mask, and a signal ignored in the parent
//! stays ignored after exec. snapguard blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD while it
//! freezes, and may itself have been started with signals ignored (`nohup`, a shell's
//! `trap "" USR1`, Rust's own SIGPIPE). So in the child, between fork and exec, [`Spawn::spawn`]:
//!
//! * resets every signal 1..=64 except SIGKILL and SIGSTOP to `SIG_DFL` (the two or three that
//!   glibc reserves for itself refuse with `EINVAL`; they are left as they are);
//! * empties the signal mask;
//! * clears `FD_CLOEXEC` on the fds the caller asked to keep ([`Spawn::keep_fd`]), so they are
//!   inherited across exec; every other fd snapguard opens is close-on-exec.
//!
//! The program is a path, or an fd already open on the file to run ([`Program::Fd`]): the child
//! then executes `/proc/self/fd/N` with that fd kept open, so a `#!` script works (its
//! interpreter opens `/proc/self/fd/N`, which is still the checked file) and a file renamed over
//! the checked one after the check is never what runs. A script run that way sees
//! `/proc/self/fd/N` as `$0`; a binary sees [`Spawn::arg0`].
//!
//! [`adopt_inherited_fd`] is the other end: a re-executed helper taking ownership of an fd
//! number its parent kept open for it.

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The directory of magic links to the fds of the calling process.
const PROC_SELF_FD: &str = "/proc/self/fd";

/// The highest signal number on Linux (`_NSIG - 1`).
const HIGHEST_SIGNAL: libc::c_int = 64;

/// What the child executes.
#[derive(Debug, Clone, Copy)]
pub enum Program<'a> {
    /// A path (searched in `PATH` when it has no `/`, as `execvp` does).
    Path(&'a Path),
    /// An fd open on the file to execute (read-only is enough): executed as `/proc/self/fd/N`.
    Fd(BorrowedFd<'a>),
}

/// The child's environment.
#[derive(Debug)]
enum Environment {
    /// snapguard's own environment, with these variables set and these removed.
    Inherited {
        set: Vec<(OsString, OsString)>,
        removed: Vec<OsString>,
    },
    /// Exactly these variables.
    Fixed(Vec<(OsString, OsString)>),
}

/// A child process to start: a builder, consumed by [`Spawn::spawn`].
///
/// Defaults: no arguments, snapguard's environment, stdin/stdout/stderr inherited, snapguard's
/// cwd, snapguard's process group, no fd kept open across exec.
#[derive(Debug)]
#[must_use = "nothing starts until spawn() is called"]
pub struct Spawn<'a> {
    program: Program<'a>,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: Environment,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    cwd: Option<PathBuf>,
    own_process_group: bool,
    keep: Vec<BorrowedFd<'a>>,
}

impl<'a> Spawn<'a> {
    /// A child that will execute `program`.
    pub fn new(program: Program<'a>) -> Self {
        Spawn {
            program,
            arg0: None,
            args: Vec::new(),
            env: Environment::Inherited {
                set: Vec::new(),
                removed: Vec::new(),
            },
            stdin: None,
            stdout: None,
            stderr: None,
            cwd: None,
            own_process_group: false,
            keep: Vec::new(),
        }
    }

    /// `argv[0]` (default: the program path, or `/proc/self/fd/N`).
    pub fn arg0(mut self, arg0: impl Into<OsString>) -> Self {
        self.arg0 = Some(arg0.into());
        self
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// snapguard's environment plus `vars` (which win over inherited ones).
    pub fn env_inherit_with<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars = vars.into_iter().map(|(k, v)| (k.into(), v.into()));
        match &mut self.env {
            Environment::Inherited { set, .. } => set.extend(vars),
            Environment::Fixed(_) => {
                self.env = Environment::Inherited {
                    set: vars.collect(),
                    removed: Vec::new(),
                }
            }
        }
        self
    }

    /// Leave `key` out of the inherited environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        let key = key.into();
        match &mut self.env {
            Environment::Inherited { set, removed } => {
                set.retain(|(k, _)| *k != key);
                removed.push(key);
            }
            Environment::Fixed(vars) => vars.retain(|(k, _)| *k != key),
        }
        self
    }

    /// Exactly `vars`, nothing of snapguard's environment.
    pub fn env_fixed<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env = Environment::Fixed(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// The child's stdin.
    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = Some(stdin);
        self
    }

    /// The child's stdout.
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = Some(stdout);
        self
    }

    /// The child's stderr.
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Start the child in a process group of its own (its pid is the group id), so the whole
    /// group can be signalled.
    pub fn process_group(mut self, own: bool) -> Self {
        self.own_process_group = own;
        self
    }

    /// Keep `fd` open in the child, under the same number (it must be 3 or more: 0-2 are the
    /// child's stdio).
    pub fn keep_fd(mut self, fd: BorrowedFd<'a>) -> Self {
        self.keep.push(fd);
        self
    }

    /// Start the child. Errors are those of fork/exec (`NotFound`, `PermissionDenied`, ...),
    /// or `InvalidInput` for a kept fd below 3.
    pub fn spawn(self) -> std::io::Result<Child> {
        let mut keep: Vec<RawFd> = self.keep.iter().map(AsRawFd::as_raw_fd).collect();
        let program = match self.program {
            Program::Path(path) => path.to_path_buf(),
            Program::Fd(fd) => {
                keep.push(fd.as_raw_fd());
                fd_exec_path(fd.as_raw_fd())
            }
        };
        if keep.iter().any(|&fd| fd < 3) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "fds 0, 1 and 2 are the child's stdio: they cannot be kept under their number",
            ));
        }
        let mut command = Command::new(&program);
        if let Some(arg0) = &self.arg0 {
            command.arg0(arg0);
        }
        command.args(&self.args);
        match &self.env {
            Environment::Inherited { set, removed } => {
                for key in removed {
                    command.env_remove(key);
                }
                command.envs(set.iter().map(|(k, v)| (k, v)));
            }
            Environment::Fixed(vars) => {
                command.env_clear();
                command.envs(vars.iter().map(|(k, v)| (k, v)));
            }
        }
        if let Some(s) = self.stdin {
            command.stdin(s);
        }
        if let Some(s) = self.stdout {
            command.stdout(s);
        }
        if let Some(s) = self.stderr {
            command.stderr(s);
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        if self.own_process_group {
            command.process_group(0);
        }
        let clean = CleanStart::new(keep);
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // calls are allowed (another thread of the parent may have held a lock at fork time).
        // `CleanStart::apply` calls only sigaction, sigprocmask and fcntl (all async-signal-safe
        // per signal-safety(7)), reads data prepared in the parent, allocates nothing (an OS
        // error is an `io::Error` without allocation), and takes no lock.
        unsafe {
            command.pre_exec(move || clean.apply());
        }
        command.spawn()
    }
}

/// The path through which the kernel executes the file open on `fd`.
fn fd_exec_path(fd: RawFd) -> PathBuf {
    Path::new(PROC_SELF_FD).join(fd.to_string())
}

/// What the child does between fork and exec, prepared in the parent so that the child only
/// makes system calls.
struct CleanStart {
    keep: Vec<RawFd>,
    default_action: libc::sigaction,
    empty_mask: libc::sigset_t,
}

impl CleanStart {
    fn new(keep: Vec<RawFd>) -> Self {
        // SAFETY: sigaction and sigset_t are plain C structs for which all-zero bytes are a
        // valid value (SIG_DFL is 0, no flags); sigemptyset only writes the set it is given.
        let (default_action, empty_mask) = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            (action, mask)
        };
        CleanStart {
            keep,
            default_action,
            empty_mask,
        }
    }

    /// Default dispositions, then an empty mask, then the kept fds made inheritable. Runs in
    /// the child between fork and exec (see the SAFETY note in [`Spawn::spawn`]).
    fn apply(&self) -> std::io::Result<()> {
        for signal in 1..=HIGHEST_SIGNAL {
            if signal == libc::SIGKILL || signal == libc::SIGSTOP {
                continue;
            }
            // SAFETY: async-signal-safe; `default_action` is a valid sigaction owned by `self`
            // for the whole call, and a null old-action pointer is allowed.
            let r = unsafe { libc::sigaction(signal, &self.default_action, std::ptr::null_mut()) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                // glibc refuses the signals it reserves for itself (32, 33).
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(e);
                }
            }
        }
        // SAFETY: async-signal-safe; `empty_mask` is a valid, initialised sigset_t owned by
        // `self`, and a null old-mask pointer is allowed. The child has one thread, so the
        // process mask is that thread's mask.
        let r =
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.empty_mask, std::ptr::null_mut()) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for &fd in &self.keep {
            // SAFETY: async-signal-safe; F_GETFD only reads the fd's flags, and the fd number
            // comes from a BorrowedFd the parent holds open across the spawn (fork copied it,
            // so it is open here too).
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            if flags < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: async-signal-safe; F_SETFD only changes this fd's close-on-exec flag.
            let r = unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Take ownership of fd `raw`, inherited from the parent process (which kept it open across
/// exec for us), after checking that it is open; it is made close-on-exec again, so it does not
/// leak into our own children unless kept explicitly.
///
/// Call it once per number, at start-up, for numbers the parent named (on the command line):
/// the returned `OwnedFd` closes the fd when dropped. Numbers 0-2 are refused (stdio).
pub fn adopt_inherited_fd(raw: RawFd) -> std::io::Result<OwnedFd> {
    if raw < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("fd {raw} is stdio, not an inherited fd"),
        ));
    }
    let flags = fcntl(raw, FcntlArg::F_GETFD).map_err(std::io::Error::from)?;
    // SAFETY: F_GETFD just succeeded, so `raw` is an open fd. Nothing else in this process owns
    // it: it was inherited across exec (not opened by this process), and the caller adopts each
    // inherited number once, as documented above.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(flags)).map_err(std::io::Error::from)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    /// stdout of a child, which must exit 0.
    fn output(spawn: Spawn<'_>) -> String {
        let mut child = spawn
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout pipe")
            .read_to_string(&mut out)
            .expect("read stdout");
        assert!(child.wait().expect("wait").success(), "child failed: {out}");
        out
    }

    /// The hexadecimal mask of `field` (e.g. `SigBlk`) in a `/proc/PID/status` text.
    fn status_mask(status: &str, field: &str) -> u64 {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        u64::from_str_radix(line.trim(), 16).expect("hex mask")
    }

    /// Bit of `signal` in a /proc status mask.
    fn bit(signal: libc::c_int) -> u64 {
        1 << (signal - 1)
    }

    #[test]
    fn child_starts_with_empty_mask_and_default_dispositions() {
        use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask, signal};
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGTERM);
        blocked.add(Signal::SIGINT);
        let mut previous_mask = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&blocked),
            Some(&mut previous_mask),
        )
        .expect("block");
        // SAFETY: SIG_IGN installs no handler code; nothing in the test binary uses SIGUSR1,
        // and the previous disposition is put back below.
        let previous_usr1 =
            unsafe { signal(Signal::SIGUSR1, SigHandler::SigIgn) }.expect("ignore USR1");

        // What std alone gives, for contrast: the mask is inherited.
        let plain = std::process::Command::new("/bin/cat")
            .arg("/proc/self/status")
            .output()
            .expect("cat");
        let status =
            output(Spawn::new(Program::Path(Path::new("/bin/cat"))).arg("/proc/self/status"));

        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous_mask), None).expect("restore");
        // SAFETY: puts back the disposition saved above.
        unsafe { signal(Signal::SIGUSR1, previous_usr1) }.expect("restore USR1");

        let plain = String::from_utf8_lossy(&plain.stdout);
        assert_ne!(
            status_mask(&plain, "SigBlk") & bit(libc::SIGTERM),
            0,
            "std::process::Command is expected to pass the mask on: {plain}"
        );
        assert_eq!(status_mask(&status, "SigBlk"), 0, "{status}");
        let ignored = status_mask(&status, "SigIgn");
        assert_eq!(ignored & bit(libc::SIGUSR1), 0, "{status}");
        // Only glibc's reserved signals (32, 33) may stay as they were.
        assert_eq!(ignored & !(bit(32) | bit(33)), 0, "{status}");
    }

    #[test]
    fn fixed_environment_is_exactly_what_is_given() {
        let out = output(
            Spawn::new(Program::Path(Path::new("/usr/bin/env")))
                .env_fixed([("A", "1"), ("B", "two words")]),
        );
        assert_eq!(out, "A=1\nB=two words\n");
        let out = output(
            Spawn::new(Program::Path(Path::new("/usr/bin/env")))
                .env_inherit_with([("SNAPGUARD_SPAWN_TEST", "x")])
                .env_remove("HOME"),
        );
        assert!(out.lines().any(|l| l == "SNAPGUARD_SPAWN_TEST=x"), "{out}");
        assert!(!out.lines().any(|l| l.starts_with("HOME=")), "{out}");
    }

    /// Write an executable script at `path` through a temporary name (never left open for
    /// writing, so exec cannot meet ETXTBSY from our own write).
    fn install_script(path: &Path, body: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, path).expect("rename script");
    }

    /// Spawn, retrying ETXTBSY: another test thread may fork while one of our files is open
    /// for writing, and its child holds that fd until it execs.
    fn output_retrying(make: impl Fn() -> Spawn<'static>) -> String {
        for _ in 0..50 {
            match make().stdin(Stdio::null()).stdout(Stdio::piped()).spawn() {
                Ok(mut child) => {
                    let mut out = String::new();
                    child
                        .stdout
                        .take()
                        .expect("pipe")
                        .read_to_string(&mut out)
                        .expect("read");
                    assert!(child.wait().expect("wait").success(), "{out}");
                    return out;
                }
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("spawn: {e}"),
            }
        }
        panic!("ETXTBSY for a second");
    }

    #[test]
    fn exec_through_fd_runs_the_file_that_was_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hook");
        install_script(&script, "echo \"original $1 $0\"");
        let file = std::fs::File::open(&script).expect("open script");
        // Replaced by rename, as an attacker (or a package manager) would.
        install_script(&script, "echo replaced");
        let fd: &'static std::fs::File = Box::leak(Box::new(file));
        let out = output_retrying(|| {
            Spawn::new(Program::Fd(fd.as_fd()))
                .arg0("hook")
                .arg("freeze")
        });
        assert!(out.starts_with("original freeze /proc/self/fd/"), "{out}");
        // Removed altogether: still the opened file.
        std::fs::remove_file(&script).expect("remove");
        let out = output_retrying(|| Spawn::new(Program::Fd(fd.as_fd())).arg("thaw"));
        assert!(out.starts_with("original thaw "), "{out}");
    }

    #[test]
    fn only_kept_fds_reach_the_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = std::fs::File::create(dir.path().join("kept")).expect("create");
        let closed = std::fs::File::create(dir.path().join("closed")).expect("create");
        let (k, c) = (kept.as_raw_fd(), closed.as_raw_fd());
        let out = output(
            Spawn::new(Program::Path(Path::new("/bin/sh")))
                .arg("-c")
                .arg(format!(
                    "[ -e /proc/self/fd/{k} ] && echo kept; [ -e /proc/self/fd/{c} ] && echo leaked; true"
                ))
                .keep_fd(kept.as_fd()),
        );
        assert_eq!(out, "kept\n");
        // The parent's copy is still close-on-exec (only the child's was changed).
        let flags = fcntl(k, FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        // Stdio numbers cannot be kept.
        let err = Spawn::new(Program::Path(Path::new("/bin/true")))
            .keep_fd(std::io::stdin().as_fd())
            .spawn()
            .expect_err("fd 0 refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn adopting_checks_the_fd_is_open() {
        // A number far above what the other test threads use, so none can reuse it meanwhile.
        const HIGH: RawFd = 900;
        let file = std::fs::File::open("/dev/null").expect("open");
        let raw = fcntl(file.as_raw_fd(), FcntlArg::F_DUPFD(HIGH)).expect("F_DUPFD");
        let fd = adopt_inherited_fd(raw).expect("adopt an open fd");
        assert_eq!(fd.as_raw_fd(), raw);
        let flags = fcntl(raw, FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "adopted fds are close-on-exec");
        drop(fd);
        assert!(adopt_inherited_fd(raw).is_err(), "closed now");
        assert!(adopt_inherited_fd(1).is_err(), "stdio");
        assert!(adopt_inherited_fd(-1).is_err());
        drop(file);
    }
}
