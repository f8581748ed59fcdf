//! The guardian: a separate process that guarantees the thaw.
//!
//! It is the running binary re-executed (`/proc/self/exe`, resolved by the kernel at exec time,
//! before anything is frozen) as the hidden subcommand `snapguard __guardian`. At start it
//! leaves the controller's session (`setsid`: a `kill -- -PGID` or Ctrl-C aimed at the
//! controller's process group does not reach it), blocks SIGTERM, SIGINT, SIGHUP, SIGQUIT,
//! SIGUSR1 and SIGUSR2 into a signalfd, opens its *own* fds of the mount points (checking that
//! each is the directory the controller opened: same `st_dev` and `st_ino`), locks its memory
//! (`mlockall`), pre-allocates everything, and says `R`. From then on it only polls its stdin
//! and the signalfd, issues FITHAW and writes short lines to its stdout, a pipe to the
//! controller: no allocation, no file writes, no logging while anything is frozen (its stderr
//! is /dev/null).
//!
//! Protocol (one ASCII line per message, each shorter than PIPE_BUF, so writes are atomic):
//!
//! | controller → guardian | meaning |
//! |---|---|
//! | `A <ns>` | the deadline is `<ns>` on CLOCK_MONOTONIC (the same clock in both processes) |
//! | `F <i>` | mount `i` was frozen by us (sent after FIFREEZE returned 0) |
//! | `T <i>` | mount `i` was thawed by the controller |
//! | `D` | done: thaw whatever is still registered (normally nothing) and exit |
//!
//! | guardian → controller | meaning |
//! |---|---|
//! | `R <mlocked>` | ready (`1` if mlockall succeeded) |
//! | `X <i> <errno>` | the guardian thawed mount `i` (errno 0: FITHAW succeeded) |
//! | `K <why>` | a thaw pass ended: `deadline`, `eof`, `signal-N`, `done` |
//! | `E <what> <i> <errno>` | setup failed (`open`, `changed`); the guardian exits |
//!
//! It thaws, last frozen first, exactly the mounts reported `F` and not yet `T`: on the
//! deadline (it then stays, so the controller can read what happened), on EOF of stdin without
//! `D` (the controller died: the write end is close-on-exec, so CMD and hooks never hold it), and
//! on any of the blocked signals. After an EOF or a signal it removes the run's record in
//! `/run/snapguard` (everything is thawed by then) and exits.
//!
//! The controller only thaws by itself while more than [`HANDOFF_MARGIN`] is left before the
//! deadline; closer to it, it leaves the thaw to the guardian and waits for its `X` lines, so
//! the two never race to thaw (which could thaw a freeze someone else took in between).

use crate::sys::freeze::MountDir;
use crate::sys::process::{
    BlockedSignals, NEUTRAL_CWD, SELF_EXE, lock_all_memory, monotonic_ns, new_session,
    poll_readable, poll_two,
};
use crate::sys::spawn::{Program, Spawn};
use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Below this much time before the deadline the controller no longer thaws by itself.
pub const HANDOFF_MARGIN: Duration = Duration::from_millis(500);

/// How long the controller waits for the guardian to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The hidden subcommand name.
pub const SUBCOMMAND: &str = "__guardian";

/// Signals that make the guardian thaw at once.
const THAW_SIGNALS: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

// ---------------------------------------------------------------------------------------------
// Guardian side.

/// A fixed-size line for outgoing messages (no allocation).
struct Line {
    buf: [u8; 96],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 96],
            len: 0,
        }
    }
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let bytes = s.as_bytes();
        let end = self.len + bytes.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// Write one formatted line to the controller; errors (controller gone) are ignored.
fn say(out: &mut File, args: std::fmt::Arguments<'_>) {
    let mut line = Line::new();
    if std::fmt::write(&mut line, args).is_ok() {
        let _ = out.write_all(&line.buf[..line.len]);
    }
}

/// Parse a decimal u64 (no allocation).
fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Everything the guardian owns, allocated before `R`.
struct Guard {
    dirs: Vec<MountDir>,
    frozen: Vec<bool>,
    /// Frozen mounts in freeze order (a stack; capacity = number of mounts).
    order: Vec<usize>,
    deadline_ns: Option<u64>,
    out: File,
}

impl Guard {
    fn outstanding(&self) -> bool {
        self.frozen.iter().any(|&f| f)
    }

    /// Thaw every registered mount, last frozen first, reporting each.
    fn thaw_all(&mut self, why: std::fmt::Arguments<'_>) {
        while let Some(i) = self.order.pop() {
            if !self.frozen[i] {
                continue;
            }
            self.frozen[i] = false;
            let errno = match self.dirs[i].thaw() {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            say(&mut self.out, format_args!("X {i} {errno}\n"));
        }
        say(&mut self.out, format_args!("K {why}\n"));
    }

    /// Handle one complete line from the controller; returns true on `D`.
    fn handle(&mut self, line: &[u8]) -> bool {
        let (cmd, arg) = match line.iter().position(|&b| b == b' ') {
            Some(p) => (&line[..p], &line[p + 1..]),
            None => (line, &line[..0]),
        };
        match cmd {
            b"A" => self.deadline_ns = parse_u64(arg),
            b"F" => {
                if let Some(i) = parse_u64(arg).and_then(|i| usize::try_from(i).ok()) {
                    if i < self.frozen.len() && !self.frozen[i] {
                        self.frozen[i] = true;
                        // Within capacity: never reallocates.
                        if self.order.len() < self.order.capacity() {
                            self.order.push(i);
                        }
                    }
                }
            }
            b"T" => {
                if let Some(i) = parse_u64(arg).and_then(|i| usize::try_from(i).ok()) {
                    if i < self.frozen.len() {
                        self.frozen[i] = false;
                        if let Some(p) = self.order.iter().rposition(|&o| o == i) {
                            self.order.remove(p);
                        }
                    }
                }
            }
            b"D" => return true,
            _ => {}
        }
        false
    }
}

/// Feeds bytes from the pipe into lines (fixed buffer; over-long lines are dropped).
struct LineReader {
    line: [u8; 64],
    len: usize,
    overflow: bool,
}

impl LineReader {
    /// Process `bytes`; returns true when a `D` was seen.
    fn feed(&mut self, guard: &mut Guard, bytes: &[u8]) -> bool {
        for &b in bytes {
            if b == b'\n' {
                let done = !self.overflow && guard.handle(&self.line[..self.len]);
                self.len = 0;
                self.overflow = false;
                if done {
                    return true;
                }
            } else if self.len < self.line.len() {
                self.line[self.len] = b;
                self.len += 1;
            } else {
                self.overflow = true;
            }
        }
        false
    }
}

/// The guardian's main: `mounts` are (path, st_dev, st_ino) as the controller opened them.
/// Returns the exit code (0 after a clean end, 3 when setup failed).
pub fn serve(record: Option<&Path>, mounts: &[(PathBuf, u64, u64)]) -> u8 {
    let Ok(mut out) = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
    else {
        return 3;
    };
    let Ok(mut input) = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
    else {
        return 3;
    };
    // Best effort: fails only if we already lead a group, which a spawned child never does.
    let _ = new_session();
    let Ok(blocked) = BlockedSignals::block(THAW_SIGNALS) else {
        say(&mut out, format_args!("E signals 0 0\n"));
        return 3;
    };
    let Ok(sfd) = SignalFd::with_flags(
        blocked.set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    ) else {
        say(&mut out, format_args!("E signalfd 0 0\n"));
        return 3;
    };
    let mut dirs = Vec::with_capacity(mounts.len());
    for (i, (path, dev, ino)) in mounts.iter().enumerate() {
        match MountDir::open(path) {
            Ok(d) if d.dev == *dev && d.ino == *ino => dirs.push(d),
            Ok(_) => {
                say(&mut out, format_args!("E changed {i} 0\n"));
                return 3;
            }
            Err(e) => {
                say(&mut out, format_args!("E open {i} {}\n", e as i32));
                return 3;
            }
        }
    }
    let n = dirs.len();
    let mut guard = Guard {
        dirs,
        frozen: vec![false; n],
        order: Vec::with_capacity(n),
        deadline_ns: None,
        out,
    };
    let mut reader = LineReader {
        line: [0; 64],
        len: 0,
        overflow: false,
    };
    let mut buf = [0u8; 4096];
    let mlocked = lock_all_memory().is_ok();
    say(&mut guard.out, format_args!("R {}\n", u8::from(mlocked)));

    loop {
        let mut timeout_ms: i32 = -1;
        if let (Some(deadline), true) = (guard.deadline_ns, guard.outstanding()) {
            let now = monotonic_ns();
            if now >= deadline {
                // Take what the controller already sent (a `T` just before the deadline).
                while let Ok(true) = poll_readable(input.as_fd(), 0) {
                    match input.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            if reader.feed(&mut guard, &buf[..k]) {
                                guard.thaw_all(format_args!("done"));
                                return 0;
                            }
                        }
                    }
                }
                guard.thaw_all(format_args!("deadline"));
                guard.deadline_ns = None;
                continue;
            }
            let left_ms = (deadline - now).div_ceil(1_000_000);
            timeout_ms = i32::try_from(left_ms).unwrap_or(i32::MAX);
        }
        let (readable, signalled) = match poll_two(input.as_fd(), sfd.as_fd(), timeout_ms) {
            Ok(r) => r,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                guard.thaw_all(format_args!("poll-error"));
                break;
            }
        };
        if signalled {
            let signo = match sfd.read_signal() {
                Ok(Some(info)) => info.ssi_signo,
                _ => 0,
            };
            guard.thaw_all(format_args!("signal-{signo}"));
            break;
        }
        if readable {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => {
                    guard.thaw_all(format_args!("eof"));
                    break;
                }
                Ok(k) => {
                    if reader.feed(&mut guard, &buf[..k]) {
                        guard.thaw_all(format_args!("done"));
                        return 0;
                    }
                }
            }
        }
    }
    // The controller is gone or told to stop: nothing of ours is frozen any more, so the
    // record can go.
    if let Some(record) = record {
        let _ = std::fs::remove_file(record);
    }
    drop(blocked);
    0
}

// ---------------------------------------------------------------------------------------------
// Controller side.

/// A message from the guardian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `X i errno`.
    Thawed { index: usize, errno: i32 },
    /// `K why`.
    PassEnded(String),
    /// `E ...`.
    SetupFailed(String),
}

/// The controller's handle on its guardian.
#[derive(Debug)]
pub struct Guardian {
    child: Child,
    to: Option<std::process::ChildStdin>,
    from: std::process::ChildStdout,
    pending: Vec<u8>,
    eof: bool,
    /// Whether mlockall succeeded in the guardian.
    pub mlocked: bool,
}

impl Guardian {
    /// Spawn the guardian for `mounts` (path, st_dev, st_ino) and wait until it is ready.
    pub fn spawn(mounts: &[(PathBuf, u64, u64)], record: Option<&Path>) -> anyhow::Result<Self> {
        let mut args: Vec<OsString> = vec![SUBCOMMAND.into()];
        if let Some(r) = record {
            args.push("--record".into());
            args.push(r.as_os_str().to_owned());
        }
        args.push("--".into());
        for (path, dev, ino) in mounts {
            args.push(path.as_os_str().to_owned());
            args.push(format!("{dev}:{ino}").into());
        }
        let mut child = Spawn::new(Program::Path(Path::new(SELF_EXE)))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .cwd(NEUTRAL_CWD)
            .env_remove("SNAPGUARD_LOG")
            .spawn()
            .context("cannot start the guardian process")?;
        let to = child.stdin.take();
        let Some(from) = child.stdout.take() else {
            bail!("the guardian has no stdout pipe");
        };
        let mut g = Guardian {
            child,
            to,
            from,
            pending: Vec::new(),
            eof: false,
            mlocked: false,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                g.kill();
                bail!("the guardian did not become ready within {READY_TIMEOUT:?}");
            }
            match g.next_line(left)? {
                Some(line) if line.starts_with("R ") => {
                    g.mlocked = line == "R 1";
                    return Ok(g);
                }
                Some(line) => {
                    g.kill();
                    bail!(
                        "the guardian could not start: {}",
                        describe_setup_error(&line, mounts)
                    );
                }
                None if g.eof => {
                    g.kill();
                    bail!("the guardian exited before it was ready");
                }
                None => {}
            }
        }
    }

    /// The guardian's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) -> bool {
        match self.to.as_mut() {
            Some(to) => to.write_all(line.as_bytes()).is_ok(),
            None => false,
        }
    }

    /// Set the deadline (absolute CLOCK_MONOTONIC nanoseconds).
    pub fn arm(&mut self, deadline_ns: u64) -> bool {
        self.send(&format!("A {deadline_ns}\n"))
    }

    /// Register mount `i` as frozen by us.
    pub fn frozen(&mut self, i: usize) -> bool {
        self.send(&format!("F {i}\n"))
    }

    /// Unregister mount `i` (the controller thawed it).
    pub fn thawed(&mut self, i: usize) -> bool {
        self.send(&format!("T {i}\n"))
    }

    /// Whether the guardian process has exited (reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Read one line, waiting up to `timeout`. `None` on timeout or EOF (then `eof` is set).
    fn next_line(&mut self, timeout: Duration) -> anyhow::Result<Option<String>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(p) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=p).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line[..line.len() - 1]).into_owned(),
                ));
            }
            if self.eof {
                return Ok(None);
            }
            let left = end.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            match poll_readable(self.from.as_fd(), ms) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("cannot poll the guardian: {e}"),
            }
            let mut buf = [0u8; 1024];
            match self.from.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// Collect reports for up to `timeout`, stopping early when `enough` says so.
    pub fn reports(
        &mut self,
        timeout: Duration,
        mut enough: impl FnMut(&[Report]) -> bool,
    ) -> Vec<Report> {
        let end = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            if enough(&out) {
                return out;
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Ok(Some(line)) => {
                    if let Some(r) = parse_report(&line) {
                        out.push(r);
                    }
                }
                _ => return out,
            }
        }
    }

    /// Tell the guardian we are done, collect its last reports and reap it (bounded).
    pub fn finish(mut self, timeout: Duration) -> Vec<Report> {
        self.send("D\n");
        self.to = None; // EOF as well
        let reports = self.reports(timeout, |r| {
            r.iter().any(|m| matches!(m, Report::PassEnded(_)))
        });
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.has_exited() {
                return reports;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill();
        reports
    }

    /// Kill and reap our guardian (only when nothing is registered with it).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_report(line: &str) -> Option<Report> {
    let mut parts = line.split(' ');
    match parts.next()? {
        "X" => Some(Report::Thawed {
            index: parts.next()?.parse().ok()?,
            errno: parts.next()?.parse().ok()?,
        }),
        "K" => Some(Report::PassEnded(parts.next().unwrap_or("").to_string())),
        "E" => Some(Report::SetupFailed(line[2..].to_string())),
        _ => None,
    }
}

fn describe_setup_error(line: &str, mounts: &[(PathBuf, u64, u64)]) -> String {
    let parts: Vec<&str> = line.split(' ').collect();
    let mount = |i: &str| {
        i.parse::<usize>()
            .ok()
            .and_then(|i| mounts.get(i))
            .map(|m| m.0.display().to_string())
            .unwrap_or_default()
    };
    match parts.as_slice() {
        ["E", "open", i, errno] => format!(
            "cannot open '{}': {}",
            mount(i),
            errno
                .parse::<i32>()
                .map(|e| nix::errno::Errno::from_raw(e).desc())
                .unwrap_or("error")
        ),
        ["E", "changed", i, _] => format!("'{}' changed under us (remounted?)", mount(i)),
        _ => line.to_string(),
    }
}

/// Parse the guardian's mount arguments: PATH DEV:INO pairs.
pub fn parse_mount_args(args: &[OsString]) -> Option<Vec<(PathBuf, u64, u64)>> {
    if args.len() % 2 != 0 {
        return None;
    }
    args.chunks(2)
        .map(|pair| {
            let id = pair[1].to_str()?;
            let (dev, ino) = id.split_once(':')?;
            Some((
                PathBuf::from(&pair[0]),
                dev.parse().ok()?,
                ino.parse().ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_u64(b"123"), Some(123));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1x"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert_eq!(
            parse_report("X 2 22"),
            Some(Report::Thawed {
                index: 2,
                errno: 22
            })
        );
        assert_eq!(parse_report("K eof"), Some(Report::PassEnded("eof".into())));
        let args: Vec<OsString> = vec!["/mnt/a b".into(), "2049:2".into()];
        assert_eq!(
            parse_mount_args(&args),
            Some(vec![(PathBuf::from("/mnt/a b"), 2049, 2)])
        );
        assert!(parse_mount_args(&["/x".into()]).is_none());
    }

    #[test]
    fn line_buffer_formats_without_allocating() {
        let mut l = Line::new();
        std::fmt::write(&mut l, format_args!("X {} {}\n", 3, 0)).unwrap();
        assert_eq!(&l.buf[..l.len], b"X 3 0\n");
    }
}
