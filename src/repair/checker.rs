//! The checkers: which command checks, replays, backs up and repairs each filesystem, and
//! what its exit code means (repair.md §4.1: e2fsck, xfs_repair, fsck.fat and btrfs check
//! differ).
//!
//! The command builders and [`interpret`] are pure; [`run`] starts a command through
//! [`crate::sys::spawn`] with a fixed environment, collects its output, streams e2fsck's
//! progress and enforces a timeout that never SIGKILLs a writing checker.

use super::{FsKind, Tier};
use crate::sys::process::{pipe, poll_two, set_nonblocking, signal_group};
use crate::sys::spawn::{Program, Spawn};
use anyhow::Context as _;
use nix::sys::signal::Signal;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A checker command line: a program (found in [`CHECKER_PATH`]) and its arguments, never a
/// shell string.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The program name (`e2fsck`, `xfs_repair`, ...).
    pub program: String,
    /// Its arguments, device paths byte for byte.
    pub args: Vec<OsString>,
}

impl Command {
    fn new(program: &str, args: &[&OsStr]) -> Command {
        Command {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_os_string()).collect(),
        }
    }

    /// The command as it would be typed: every word quoted for a POSIX shell.
    pub fn display(&self) -> String {
        let mut out = crate::shell::quote(&self.program).into_owned();
        for a in &self.args {
            out.push(' ');
            out.push_str(&crate::shell::quote_os(a));
        }
        out
    }

    /// The program's file name (`e2fsck` for `/usr/sbin/e2fsck` too).
    pub fn tool(&self) -> &str {
        Path::new(&self.program)
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_default()
    }

    /// True when the command never writes to the device it is given: e2fsck with `-n`,
    /// `xfs_repair -n`, `fsck.fat -n`, `btrfs check --readonly`, and the metadata dumpers
    /// (`e2image`, `xfs_metadump`), which only read the device. Anything else counts as a
    /// writer (and is never SIGKILLed by [`run`]).
    pub fn is_read_only(&self) -> bool {
        let flags = || {
            self.args
                .iter()
                .filter_map(|a| a.to_str())
                .take_while(|a| *a != "--")
        };
        match self.tool() {
            "e2image" | "xfs_metadump" => true,
            "btrfs" => flags().any(|a| a == "--readonly"),
            "xfs_repair" | "fsck.fat" | "fsck.vfat" | "dosfsck" => flags().any(|a| a == "-n"),
            "e2fsck" => e2fsck_has_flag(&self.args, 'n'),
            _ => false,
        }
    }
}

/// Options of e2fsck that take a value (the next word when not attached).
const E2FSCK_VALUE_OPTIONS: &str = "bBCEjlLz";

/// True when e2fsck's argument list sets the single-letter flag `flag` (`-n`, `-fn`), skipping
/// option values (`-z FILE`, `-E journal_only`) and stopping at the first operand.
fn e2fsck_has_flag(args: &[OsString], flag: char) -> bool {
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        let Some(a) = a.to_str() else { return false };
        let Some(letters) = a.strip_prefix('-') else {
            return false;
        };
        if letters.is_empty() || letters.starts_with('-') {
            return false;
        }
        for (i, c) in letters.char_indices() {
            if c == flag {
                return true;
            }
            if E2FSCK_VALUE_OPTIONS.contains(c) {
                skip_next = i + c.len_utf8() == letters.len();
                break;
            }
        }
    }
    false
}

/// The read-only full check, which never writes: `e2fsck -fn` (always `-f`: without it e2fsck
/// trusts the clean flag and checks nothing), `xfs_repair -n`, `fsck.fat -n`,
/// `btrfs check --readonly`.
pub fn read_only_check(kind: FsKind, device: &Path) -> Command {
    let dev = device.as_os_str();
    match kind {
        FsKind::Ext => Command::new("e2fsck", &["-fn".as_ref(), dev]),
        FsKind::Xfs => Command::new("xfs_repair", &["-n".as_ref(), dev]),
        FsKind::Fat => Command::new("fsck.fat", &["-n".as_ref(), dev]),
        FsKind::Btrfs => Command::new("btrfs", &["check".as_ref(), "--readonly".as_ref(), dev]),
    }
}

/// How a journal or log is replayed before the read-only check is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Run this command (ext: `e2fsck -p -E journal_only`).
    Command(Command),
    /// Only the kernel replays the log: mount the device on a private temporary directory and
    /// unmount it (XFS; the fence is dropped just before and retaken right after).
    MountUnmount,
}

/// The replay step for `kind`, or `None` when there is nothing to replay: FAT has no journal,
/// and btrfs is copy-on-write (its log tree only holds fsync'ed data, replayed by the kernel at
/// mount, and `btrfs check` reads a consistent committed tree without it).
pub fn replay(kind: FsKind, device: &Path) -> Option<Replay> {
    match kind {
        FsKind::Ext => Some(Replay::Command(Command::new(
            "e2fsck",
            &[
                "-p".as_ref(),
                "-E".as_ref(),
                "journal_only".as_ref(),
                device.as_os_str(),
            ],
        ))),
        FsKind::Xfs => Some(Replay::MountUnmount),
        FsKind::Fat | FsKind::Btrfs => None,
    }
}

/// `dest` with `.ext` appended (not replacing an extension `dest` may already have).
fn with_suffix(dest: &Path, ext: &str) -> OsString {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    s
}

/// The metadata capture taken before any write, to `dest` plus a suffix: `e2image -Q DEV
/// DEST.qcow2` (ext) or `xfs_metadump DEV DEST.metadump` (XFS; names obfuscated, as the
/// tool does by default). `dest` must be on another filesystem (the caller checks).
///
/// `None` for FAT (no metadata dumper exists; the whole volume is small enough to copy with
/// `dd`, which is the caller's choice) and btrfs (`btrfs-image` exists but is slow on large
/// filesystems and is not needed: btrfs is never repaired automatically).
pub fn metadata_backup(kind: FsKind, device: &Path, dest: &Path) -> Option<Command> {
    let dev = device.as_os_str();
    match kind {
        FsKind::Ext => Some(Command::new(
            "e2image",
            &["-Q".as_ref(), dev, &with_suffix(dest, "qcow2")],
        )),
        FsKind::Xfs => Some(Command::new(
            "xfs_metadump",
            &[dev, &with_suffix(dest, "metadump")],
        )),
        FsKind::Fat | FsKind::Btrfs => None,
    }
}

/// The repair command for `tier`, or `None` when there is none to run:
///
/// * [`Tier::Check`] never repairs.
/// * ext: preen `e2fsck -fp` (with `-z UNDO` when given); full `e2fsck -fy -z UNDO` — a full
///   repair may move every file to lost+found, so without an undo file there is no full
///   repair (`None`).
/// * XFS: `xfs_repair -e` (exit 4 when something was repaired), with `-L` (zero the log,
///   losing its transactions) only when `zero_log` is set — the caller's separate consent.
/// * FAT: `fsck.fat -a -w` (automatic, least destructive choices, writes immediately).
/// * btrfs: `None` — `btrfs check --repair` is never run automatically (its manual says to use
///   it only when a developer advises it).
pub fn repair(
    kind: FsKind,
    device: &Path,
    tier: Tier,
    zero_log: bool,
    undo: Option<&Path>,
) -> Option<Command> {
    let dev = device.as_os_str();
    if tier == Tier::Check {
        return None;
    }
    match kind {
        FsKind::Ext => {
            let mode = if tier == Tier::Full { "-fy" } else { "-fp" };
            let mut args: Vec<&OsStr> = vec![mode.as_ref()];
            match undo {
                Some(undo) => {
                    args.push("-z".as_ref());
                    args.push(undo.as_os_str());
                }
                None if tier == Tier::Full => return None,
                None => {}
            }
            args.push(dev);
            Some(Command::new("e2fsck", &args))
        }
        FsKind::Xfs => {
            let mut args: Vec<&OsStr> = vec!["-e".as_ref()];
            if zero_log {
                args.push("-L".as_ref());
            }
            args.push(dev);
            Some(Command::new("xfs_repair", &args))
        }
        FsKind::Fat => Some(Command::new(
            "fsck.fat",
            &["-a".as_ref(), "-w".as_ref(), dev],
        )),
        FsKind::Btrfs => None,
    }
}

/// The command a human runs to repair by hand, on a terminal, answering its questions: the
/// remedy printed when a filesystem is held unmounted. ext: `e2fsck -f` (interactive; not
/// `-fn`, which never writes); XFS: `xfs_repair`; FAT: `fsck.fat -r` (interactive); btrfs: its
/// read-only check (what to do next is a developer's advice, never a pasted command).
pub fn manual_repair(kind: FsKind, device: &Path) -> Command {
    let dev = device.as_os_str();
    match kind {
        FsKind::Ext => Command::new("e2fsck", &["-f".as_ref(), dev]),
        FsKind::Xfs => Command::new("xfs_repair", &[dev]),
        FsKind::Fat => Command::new("fsck.fat", &["-r".as_ref(), dev]),
        FsKind::Btrfs => read_only_check(kind, device),
    }
}

/// What a checker run says about the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Checked completely, nothing wrong.
    Clean,
    /// A read-only check found problems (nothing was changed).
    ErrorsFound,
    /// Problems were fixed; re-check before trusting it.
    Repaired,
    /// Fixed, and the system should be rebooted (e2fsck 2: a mounted filesystem was changed).
    RepairedRebootNeeded,
    /// A repair ran but problems remain.
    ErrorsLeft,
    /// The journal or log must be replayed first; a check's findings are not reliable.
    DirtyLog,
    /// The tool could not do its job (missing device, busy, killed, usage error, aborted): the
    /// state of the filesystem is unknown.
    OperationalError,
    /// The check was cancelled by request.
    Cancelled,
}

/// Which step a command ran as (the same exit code means different things).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// [`read_only_check`].
    ReadOnly,
    /// [`replay`] (its command form).
    Replay,
    /// [`repair`].
    Repair,
}

/// What a finished checker's exit status and output mean (repair.md §4.1, §8 item 22).
///
/// A process killed by a signal is always [`Verdict::OperationalError`]. Per tool:
///
/// * **e2fsck** (bitmask): 32 → Cancelled; 16 (usage) or 128 (library) → OperationalError;
///   4 set → ErrorsFound (read-only) or ErrorsLeft, also when 8 is set too (12 = "errors,
///   and the check aborted": errors exist for certain, the list is incomplete); 8 alone →
///   OperationalError; 2 → RepairedRebootNeeded; 1 → Repaired (read-only: ErrorsFound);
///   0 → Clean. Traps: "is mounted" comes first — a read-only check of a mounted filesystem
///   proves nothing (it exits 0 even after declining fixes) and is OperationalError, a repair
///   that changed something under a mount is RepairedRebootNeeded; exit 0 with "check
///   aborted" (a declined prompt) is OperationalError; a read-only check that says "skipping
///   journal recovery" is DirtyLog (its answer is about stale metadata).
/// * **xfs_repair**: a "valuable metadata changes in a log" message or exit 2 → DirtyLog;
///   "fatal error --" → OperationalError (with `-n` that is also exit 1, like corruption);
///   read-only: 0 Clean, 1 ErrorsFound; repair (`-e`): 0 Clean, 4 Repaired, 1 (runtime
///   error: mounted, busy, "should be restarted") OperationalError.
/// * **fsck.fat** (not a bitmask): 0 Clean; 1 ErrorsFound (read-only) or Repaired (it means
///   "found", also after fixing); anything else (2 usage, 6 cannot open) OperationalError.
/// * **btrfs check**: 0 Clean; otherwise ErrorsFound when it reports "error(s) found" or
///   "errors found", else OperationalError (cannot open, mounted, not btrfs).
pub fn interpret(kind: FsKind, phase: Phase, status: ExitStatus, output: &str) -> Verdict {
    let Some(code) = status.code() else {
        return Verdict::OperationalError;
    };
    match kind {
        FsKind::Ext => interpret_e2fsck(phase, code, output),
        FsKind::Xfs => interpret_xfs_repair(phase, code, output),
        FsKind::Fat => interpret_fsck_fat(phase, code),
        FsKind::Btrfs => interpret_btrfs_check(code, output),
    }
}

fn interpret_e2fsck(phase: Phase, code: i32, output: &str) -> Verdict {
    const CORRECTED: i32 = 1;
    const REBOOT: i32 = 2;
    const UNCORRECTED: i32 = 4;
    const OPERATIONAL: i32 = 8;
    const USAGE: i32 = 16;
    const CANCELLED: i32 = 32;
    const LIBRARY: i32 = 128;
    if !(0..=255).contains(&code) {
        return Verdict::OperationalError;
    }
    if code & CANCELLED != 0 {
        return Verdict::Cancelled;
    }
    if code & (USAGE | LIBRARY) != 0 {
        return Verdict::OperationalError;
    }
    let read_only = phase == Phase::ReadOnly;
    // Checked first: a mounted filesystem's findings are not about what is on disk (-n even
    // exits 0 after "Free inodes count wrong ... Fix? no"), and a journal replay (DirtyLog's
    // remedy) must never run under a mount. A write that happened anyway (-f on a read-only
    // mount) landed under a kernel that caches the old metadata: reboot.
    if output.contains(" is mounted.") {
        return if !read_only && code & (CORRECTED | REBOOT) != 0 {
            Verdict::RepairedRebootNeeded
        } else {
            Verdict::OperationalError
        };
    }
    if read_only && code & OPERATIONAL == 0 && output.contains("skipping journal recovery") {
        return Verdict::DirtyLog;
    }
    if code & UNCORRECTED != 0 {
        return if read_only {
            Verdict::ErrorsFound
        } else {
            Verdict::ErrorsLeft
        };
    }
    if code & OPERATIONAL != 0 {
        return Verdict::OperationalError;
    }
    if output.contains("check aborted") {
        return Verdict::OperationalError;
    }
    if code & REBOOT != 0 {
        return if read_only {
            Verdict::ErrorsFound
        } else {
            Verdict::RepairedRebootNeeded
        };
    }
    if code & CORRECTED != 0 {
        return if read_only {
            Verdict::ErrorsFound
        } else {
            Verdict::Repaired
        };
    }
    Verdict::Clean
}

fn interpret_xfs_repair(phase: Phase, code: i32, output: &str) -> Verdict {
    if output.contains("fatal error --") {
        return Verdict::OperationalError;
    }
    if (code == 1 || code == 2) && output.contains("valuable metadata changes in a log") {
        return Verdict::DirtyLog;
    }
    match (phase, code) {
        (_, 2) => Verdict::DirtyLog,
        (_, 0) => Verdict::Clean,
        (Phase::ReadOnly, 1) => Verdict::ErrorsFound,
        (Phase::Replay | Phase::Repair, 4) => Verdict::Repaired,
        _ => Verdict::OperationalError,
    }
}

fn interpret_fsck_fat(phase: Phase, code: i32) -> Verdict {
    match (phase, code) {
        (_, 0) => Verdict::Clean,
        (Phase::ReadOnly, 1) => Verdict::ErrorsFound,
        (Phase::Replay | Phase::Repair, 1) => Verdict::Repaired,
        _ => Verdict::OperationalError,
    }
}

fn interpret_btrfs_check(code: i32, output: &str) -> Verdict {
    if code == 0 {
        Verdict::Clean
    } else if output.contains("error(s) found") || output.contains("errors found") {
        Verdict::ErrorsFound
    } else {
        Verdict::OperationalError
    }
}

/// The `PATH` every checker runs with (nothing from snapguard's environment).
pub const CHECKER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of a checker's combined stdout and stderr is kept (the end of it).
pub const OUTPUT_KEEP: usize = 64 * 1024;

/// How long a checker has after SIGTERM before [`run`] reports it as timed out and still
/// running.
pub const TERM_GRACE: Duration = Duration::from_secs(30);

/// How long [`run`] keeps waiting after the grace period before it SIGKILLs a read-only
/// checker, or gives up waiting for a writer (and leaves it running: killing a repair midway
/// can leave the filesystem worse than it found it).
pub const EXTRA_WAIT: Duration = Duration::from_secs(300);

/// A finished checker run.
#[derive(Debug, Clone)]
pub struct Run {
    /// How it ended.
    pub status: ExitStatus,
    /// The last [`OUTPUT_KEEP`] bytes of its stdout and stderr, interleaved as written, lossily
    /// decoded.
    pub output: String,
    /// How long it ran.
    pub duration: Duration,
    /// It was still running at the timeout and was sent SIGTERM (and, if read-only and still
    /// running after the grace period and the extra wait, SIGKILL).
    pub timed_out: bool,
}

/// The time limits of [`run_with`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// When SIGTERM is sent.
    pub timeout: Duration,
    /// How long after SIGTERM before it is reported as still running.
    pub grace: Duration,
    /// How much longer it is waited for after that, before a read-only command is SIGKILLed
    /// (a writer is left running).
    pub extra: Duration,
    /// A read-only command gets SIGTERM as soon as snapguard receives a deferred signal
    /// ([`crate::sys::interrupt`]): it writes nothing, so stopping it leaves nothing half-done.
    /// A writer is never stopped that way: it runs to its end.
    pub stop_on_interrupt: bool,
}

impl Limits {
    /// `timeout` with the default [`TERM_GRACE`] and [`EXTRA_WAIT`].
    pub fn new(timeout: Duration) -> Limits {
        Limits {
            timeout,
            grace: TERM_GRACE,
            extra: EXTRA_WAIT,
            stop_on_interrupt: false,
        }
    }
}

/// Run `cmd` with the default grace periods ([`Limits::new`]); see [`run_with`].
pub fn run(
    cmd: &Command,
    timeout: Duration,
    progress: Option<&mut dyn FnMut(f64)>,
) -> anyhow::Result<Run> {
    run_with(cmd, Limits::new(timeout), progress)
}

/// Run `cmd` to the end and return its status and output.
///
/// The child starts through [`crate::sys::spawn`] in its own process group, with stdin
/// `/dev/null`, cwd `/` (it must not hold any filesystem), and exactly `LANG=C`, `LC_ALL=C` and
/// `PATH=`[`CHECKER_PATH`] as its environment, so messages are the English ones
/// [`interpret`] looks for. stdout and stderr share one pipe, read without blocking (poll); only
/// the last [`OUTPUT_KEEP`] bytes are kept.
///
/// Timeout: at `limits.timeout` the process group gets SIGTERM (e2fsck cancels at a safe
/// point and exits 32; the others end). If it is still running `limits.grace` later, the
/// timeout is reported (a warning in the log) and it is waited for `limits.extra` more; then
/// * a read-only command ([`Command::is_read_only`]) is SIGKILLed — it writes nothing, so
///   nothing can be left half-done — and its status (killed) is returned;
/// * a writer (replay, repair) is **never** SIGKILLed: this returns an error naming its pid
///   and leaves it running (it holds the device `O_EXCL` itself; the caller must keep the
///   filesystem unmounted and tell a human).
///
/// Progress: with a callback and an e2fsck command, `-C FD` is added with the write end of a
/// pipe kept open in the child, and each "pass current max device" line becomes a 0..=1
/// fraction ([`e2fsck_fraction`]). Other tools report no progress.
pub fn run_with(
    cmd: &Command,
    limits: Limits,
    mut progress: Option<&mut dyn FnMut(f64)>,
) -> anyhow::Result<Run> {
    let shown = cmd.display();
    let (out_r, out_w) = pipe().with_context(|| format!("cannot create a pipe for {shown}"))?;
    let progress_pipe = if progress.is_some() && cmd.tool() == "e2fsck" {
        Some(pipe().with_context(|| format!("cannot create a pipe for {shown}"))?)
    } else {
        None
    };
    // `-C FD` goes just before the last word (the device), after every option.
    let mut args: Vec<OsString> = cmd.args.clone();
    if let Some((_, w)) = &progress_pipe {
        let at = args.len().saturating_sub(1);
        args.splice(at..at, ["-C".into(), w.as_raw_fd().to_string().into()]);
    }
    let stdin = std::fs::File::open("/dev/null").context("cannot open /dev/null")?;
    let out_w2 = out_w
        .try_clone()
        .with_context(|| format!("cannot duplicate a pipe for {shown}"))?;
    let mut spawn = Spawn::new(Program::Path(Path::new(&cmd.program)))
        .args(args)
        .env_fixed([("LANG", "C"), ("LC_ALL", "C"), ("PATH", CHECKER_PATH)])
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(out_w2))
        .cwd("/")
        .process_group(true);
    if let Some((_, w)) = &progress_pipe {
        spawn = spawn.keep_fd(w.as_fd());
    }
    let start = Instant::now();
    // spawn() consumes the builder and with it the output pipe's write ends; the progress
    // pipe's write end is dropped right after: the parent must hold no write end, or the
    // pipes never reach end of file.
    let spawned = spawn.spawn();
    let progress_r = progress_pipe.map(|(r, _w)| r);
    let mut child = spawned.with_context(|| format!("cannot run {shown}"))?;
    let pid = child.id();

    set_nonblocking(out_r.as_fd()).with_context(|| format!("pipe of {shown}"))?;
    if let Some(r) = &progress_r {
        set_nonblocking(r.as_fd()).with_context(|| format!("pipe of {shown}"))?;
    }
    let mut output = Tail::new(OUTPUT_KEEP);
    let mut out_r = Some(out_r);
    let mut progress_r = progress_r;
    let mut progress_line = Vec::new();
    let read_only = cmd.is_read_only();
    let mut timed_out = false;
    let mut termed_at: Option<Instant> = None;
    let mut killed = false;
    let mut warned = false;
    let status = loop {
        // Read whatever is there (bounded wait: the poll doubles as the sleep).
        let wait_ms = 50;
        match (&out_r, &progress_r) {
            (Some(o), Some(p)) => {
                let _ = poll_two(o.as_fd(), p.as_fd(), wait_ms);
            }
            (Some(o), None) => {
                let _ = crate::sys::process::poll_readable(o.as_fd(), wait_ms);
            }
            (None, Some(p)) => {
                let _ = crate::sys::process::poll_readable(p.as_fd(), wait_ms);
            }
            (None, None) => std::thread::sleep(Duration::from_millis(wait_ms as u64)),
        }
        if let Some(o) = &mut out_r
            && drain(o, |chunk| output.push(chunk))
        {
            out_r = None;
        }
        if let Some(p) = &mut progress_r {
            let eof = drain(p, |chunk| {
                for &b in chunk {
                    if b == b'\n' {
                        if let (Some(cb), Some(f)) =
                            (progress.as_mut(), e2fsck_fraction(&progress_line))
                        {
                            cb(f);
                        }
                        progress_line.clear();
                    } else if progress_line.len() < 4096 {
                        progress_line.push(b);
                    }
                }
            });
            if eof {
                progress_r = None;
            }
        }
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("cannot wait for {shown}"))?
        {
            // A grandchild may still hold the pipes: take what is there, do not wait for EOF.
            if let Some(o) = &mut out_r {
                drain(o, |chunk| output.push(chunk));
            }
            break status;
        }
        if limits.stop_on_interrupt && read_only && termed_at.is_none() {
            if let Some(signal) = crate::sys::interrupt::received() {
                tracing::warn!(
                    "{shown}: stopped with SIGTERM after snapguard received {} (it only reads)",
                    signal.as_str()
                );
                let _ = signal_group(pid, Signal::SIGTERM);
                termed_at = Some(Instant::now());
            }
        }
        let elapsed = start.elapsed();
        if elapsed >= limits.timeout && termed_at.is_none() {
            timed_out = true;
            tracing::warn!(
                "{shown} still running after {}: sending SIGTERM",
                seconds(limits.timeout)
            );
            let _ = signal_group(pid, Signal::SIGTERM);
            termed_at = Some(Instant::now());
        }
        if let Some(t) = termed_at {
            let since = t.elapsed();
            if since >= limits.grace && !warned {
                warned = true;
                tracing::warn!(
                    "{shown} (pid {pid}) timed out and is still running {} after SIGTERM: \
                     waiting up to {} more{}",
                    seconds(limits.grace),
                    seconds(limits.extra),
                    if read_only {
                        ", then SIGKILL (it only reads)"
                    } else {
                        "; it writes to the device, so it is never killed"
                    }
                );
            }
            let end = limits.grace + limits.extra;
            if since >= end && read_only && !killed {
                killed = true;
                tracing::warn!("{shown} (pid {pid}): SIGKILL");
                let _ = signal_group(pid, Signal::SIGKILL);
            }
            if !read_only && since >= end {
                anyhow::bail!(
                    "{shown} (pid {pid}) is still running {} after SIGTERM; it writes to \
                     the device and was left running: keep the filesystem unmounted until it \
                     ends",
                    seconds(since)
                );
            }
        }
    };
    Ok(Run {
        status,
        output: output.into_string(),
        duration: start.elapsed(),
        timed_out,
    })
}

/// Read everything available from a non-blocking pipe into `sink`; true at end of file (or on
/// an error other than "would block", which ends reading just the same).
fn drain(r: &mut std::fs::File, mut sink: impl FnMut(&[u8])) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The last `cap` bytes written to it.
struct Tail {
    buf: std::collections::VecDeque<u8>,
    cap: usize,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail {
            buf: std::collections::VecDeque::new(),
            cap,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + chunk.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow.min(self.buf.len()));
        self.buf.extend(chunk);
    }

    fn into_string(self) -> String {
        let bytes: Vec<u8> = self.buf.into();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// e2fsck's cumulative progress per pass, as its own progress bar weighs them
/// (`e2fsck_tbl` in e2fsck/unix.c): pass 1 is 70 %, pass 2 20 %, pass 3 2 %, pass 4 3 %,
/// pass 5 5 %.
const E2FSCK_PASS_END: [f64; 6] = [0.0, 0.70, 0.90, 0.92, 0.95, 1.0];

/// One `-C FD` line of e2fsck ("PASS CURRENT MAX DEVICE") as an overall fraction in 0..=1,
/// or `None` for anything else.
pub fn e2fsck_fraction(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_ascii_whitespace();
    let pass: usize = words.next()?.parse().ok()?;
    let cur: f64 = words.next()?.parse::<u64>().ok()? as f64;
    let max: f64 = words.next()?.parse::<u64>().ok()? as f64;
    if !(1..=5).contains(&pass) {
        return None;
    }
    let (lo, hi) = (E2FSCK_PASS_END[pass - 1], E2FSCK_PASS_END[pass]);
    let within = if max > 0.0 {
        (cur / max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(lo + (hi - lo) * within)
}

/// A duration as people write it: `30 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// An exit status with `code`.
    fn code(c: i32) -> ExitStatus {
        ExitStatus::from_raw(c << 8)
    }

    /// Killed by `sig`.
    fn signal(sig: i32) -> ExitStatus {
        ExitStatus::from_raw(sig)
    }

    fn dev() -> &'static Path {
        Path::new("/dev/loop7")
    }

    fn words(c: &Command) -> String {
        c.display()
    }

    #[test]
    fn read_only_checks_per_filesystem() {
        assert_eq!(
            words(&read_only_check(FsKind::Ext, dev())),
            "e2fsck -fn /dev/loop7"
        );
        assert_eq!(
            words(&read_only_check(FsKind::Xfs, dev())),
            "xfs_repair -n /dev/loop7"
        );
        assert_eq!(
            words(&read_only_check(FsKind::Fat, dev())),
            "fsck.fat -n /dev/loop7"
        );
        assert_eq!(
            words(&read_only_check(FsKind::Btrfs, dev())),
            "btrfs check --readonly /dev/loop7"
        );
        for kind in [FsKind::Ext, FsKind::Xfs, FsKind::Fat, FsKind::Btrfs] {
            assert!(read_only_check(kind, dev()).is_read_only(), "{kind:?}");
        }
    }

    #[test]
    fn display_quotes_every_word() {
        let c = read_only_check(FsKind::Ext, Path::new("/tmp/my disk's.img"));
        assert_eq!(c.display(), r"e2fsck -fn '/tmp/my disk'\''s.img'");
        let json = serde_json::to_string(&c).expect("serialize");
        let back: Command = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, c);
    }

    #[test]
    fn replay_per_filesystem() {
        match replay(FsKind::Ext, dev()) {
            Some(Replay::Command(c)) => {
                assert_eq!(c.display(), "e2fsck -p -E journal_only /dev/loop7");
                assert!(!c.is_read_only());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(replay(FsKind::Xfs, dev()), Some(Replay::MountUnmount));
        assert_eq!(replay(FsKind::Fat, dev()), None);
        assert_eq!(replay(FsKind::Btrfs, dev()), None);
    }

    #[test]
    fn metadata_backup_per_filesystem() {
        let dest = Path::new("/var/backup/loop7.2026");
        let e = metadata_backup(FsKind::Ext, dev(), dest).expect("ext");
        assert_eq!(
            e.display(),
            "e2image -Q /dev/loop7 /var/backup/loop7.2026.qcow2"
        );
        assert!(e.is_read_only());
        let x = metadata_backup(FsKind::Xfs, dev(), dest).expect("xfs");
        assert_eq!(
            x.display(),
            "xfs_metadump /dev/loop7 /var/backup/loop7.2026.metadump"
        );
        assert!(x.is_read_only());
        assert_eq!(metadata_backup(FsKind::Fat, dev(), dest), None);
        assert_eq!(metadata_backup(FsKind::Btrfs, dev(), dest), None);
    }

    #[test]
    fn repair_commands_per_tier() {
        let undo = Path::new("/var/backup/undo");
        let shown =
            |kind, tier, zero, undo| repair(kind, dev(), tier, zero, undo).map(|c| c.display());
        for kind in [FsKind::Ext, FsKind::Xfs, FsKind::Fat, FsKind::Btrfs] {
            assert_eq!(
                shown(kind, Tier::Check, false, Some(undo)),
                None,
                "{kind:?}"
            );
            assert_eq!(shown(kind, Tier::Check, true, None), None, "{kind:?}");
        }
        assert_eq!(
            shown(FsKind::Ext, Tier::Preen, false, None).as_deref(),
            Some("e2fsck -fp /dev/loop7")
        );
        assert_eq!(
            shown(FsKind::Ext, Tier::Preen, false, Some(undo)).as_deref(),
            Some("e2fsck -fp -z /var/backup/undo /dev/loop7")
        );
        assert_eq!(
            shown(FsKind::Ext, Tier::Full, false, Some(undo)).as_deref(),
            Some("e2fsck -fy -z /var/backup/undo /dev/loop7")
        );
        assert_eq!(shown(FsKind::Ext, Tier::Full, false, None), None);
        assert_eq!(
            shown(FsKind::Xfs, Tier::Preen, false, None).as_deref(),
            Some("xfs_repair -e /dev/loop7")
        );
        assert_eq!(
            shown(FsKind::Xfs, Tier::Full, true, None).as_deref(),
            Some("xfs_repair -e -L /dev/loop7")
        );
        assert_eq!(
            shown(FsKind::Fat, Tier::Preen, false, None).as_deref(),
            Some("fsck.fat -a -w /dev/loop7")
        );
        assert_eq!(shown(FsKind::Btrfs, Tier::Full, true, Some(undo)), None);
        for tier in [Tier::Preen, Tier::Full] {
            for kind in [FsKind::Ext, FsKind::Xfs, FsKind::Fat] {
                if let Some(c) = repair(kind, dev(), tier, false, Some(undo)) {
                    assert!(!c.is_read_only(), "{}", c.display());
                }
            }
        }
    }

    #[test]
    fn read_only_detection_skips_option_values() {
        let c =
            |p: &str, a: &[&str]| Command::new(p, &a.iter().map(OsStr::new).collect::<Vec<_>>());
        assert!(c("e2fsck", &["-f", "-n", "/dev/x"]).is_read_only());
        assert!(c("e2fsck", &["-nf", "/dev/x"]).is_read_only());
        // `-z n`: "n" is the undo file, not the flag.
        assert!(!c("e2fsck", &["-fp", "-z", "n", "/dev/x"]).is_read_only());
        assert!(!c("e2fsck", &["-fpz", "n", "/dev/x"]).is_read_only());
        assert!(!c("e2fsck", &["-E", "journal_only", "/dev/n"]).is_read_only());
        // An operand ends the options.
        assert!(!c("e2fsck", &["-p", "/dev/x", "-n"]).is_read_only());
        assert!(!c("xfs_repair", &["/dev/x"]).is_read_only());
        assert!(!c("btrfs", &["check", "--repair", "/dev/x"]).is_read_only());
        assert!(!c("mkfs.ext4", &["-n"]).is_read_only());
    }

    #[test]
    fn killed_by_a_signal_is_an_operational_error_for_every_tool() {
        for kind in [FsKind::Ext, FsKind::Xfs, FsKind::Fat, FsKind::Btrfs] {
            for phase in [Phase::ReadOnly, Phase::Replay, Phase::Repair] {
                for sig in [libc::SIGTERM, libc::SIGKILL, libc::SIGSEGV] {
                    assert_eq!(
                        interpret(kind, phase, signal(sig), "no error found"),
                        Verdict::OperationalError,
                        "{kind:?} {phase:?} {sig}"
                    );
                }
            }
        }
    }

    #[test]
    fn e2fsck_read_only_codes() {
        let ro = |c, out| interpret(FsKind::Ext, Phase::ReadOnly, code(c), out);
        assert_eq!(ro(0, "e.img: 12/16384 files"), Verdict::Clean);
        assert_eq!(
            ro(4, "WARNING: Filesystem still has errors"),
            Verdict::ErrorsFound
        );
        // Root inode not a directory: 4 + 8, "aborting" — errors exist for certain.
        assert_eq!(
            ro(12, "Root inode is not a directory; aborting."),
            Verdict::ErrorsFound
        );
        assert_eq!(
            ro(8, "No such file or directory while trying to open"),
            Verdict::OperationalError
        );
        assert_eq!(ro(16, "Usage: e2fsck"), Verdict::OperationalError);
        assert_eq!(ro(128, ""), Verdict::OperationalError);
        assert_eq!(ro(32, ""), Verdict::Cancelled);
        assert_eq!(ro(36, ""), Verdict::Cancelled);
        assert_eq!(ro(1, ""), Verdict::ErrorsFound);
        assert_eq!(ro(2, ""), Verdict::ErrorsFound);
    }

    #[test]
    fn e2fsck_exit_zero_traps() {
        let ro = |c, out| interpret(FsKind::Ext, Phase::ReadOnly, code(c), out);
        // A declined prompt: exit 0 but nothing was checked.
        assert_eq!(ro(0, "check aborted.\n"), Verdict::OperationalError);
        assert_eq!(
            interpret(FsKind::Ext, Phase::Repair, code(0), "check aborted.\n"),
            Verdict::OperationalError
        );
        // -n on a mounted filesystem warns and exits 0, even with problems it did not fix;
        // never DirtyLog (its remedy, a journal replay, must not run under a mount).
        assert_eq!(
            ro(
                0,
                "Warning!  /dev/loop0 is mounted.\nWarning: skipping journal recovery\n\
                 Free inodes count wrong (16373, counted=16372).\nFix? no"
            ),
            Verdict::OperationalError
        );
        assert_eq!(
            ro(4, "Warning!  /dev/loop0 is mounted.\n"),
            Verdict::OperationalError
        );
        // A repair that wrote under a (read-only) mount: the kernel caches the old metadata.
        assert_eq!(
            interpret(
                FsKind::Ext,
                Phase::Repair,
                code(1),
                "Warning!  /dev/loop0 is mounted.\n"
            ),
            Verdict::RepairedRebootNeeded
        );
        assert_eq!(
            interpret(
                FsKind::Ext,
                Phase::Repair,
                code(8),
                "/dev/loop0 is mounted.\n\ne2fsck: Cannot continue, aborting.\n"
            ),
            Verdict::OperationalError
        );
        assert_eq!(
            ro(0, "Warning!  /dev/loop0 is mounted.\n"),
            Verdict::OperationalError
        );
        // An unreplayed journal: the answer is about stale metadata.
        assert_eq!(
            ro(
                0,
                "Warning: skipping journal recovery because doing a read-only filesystem check."
            ),
            Verdict::DirtyLog
        );
        assert_eq!(
            ro(
                4,
                "Warning: skipping journal recovery because doing a read-only filesystem check."
            ),
            Verdict::DirtyLog
        );
        // ... unless the check did not even run.
        assert_eq!(
            ro(8, "skipping journal recovery"),
            Verdict::OperationalError
        );
        // Under our own O_EXCL fence e2fsck -n says "in use" and still checks.
        assert_eq!(ro(0, "Warning!  /dev/loop0 is in use.\n"), Verdict::Clean);
    }

    #[test]
    fn e2fsck_repair_and_replay_codes() {
        let rep = |c, out| interpret(FsKind::Ext, Phase::Repair, code(c), out);
        assert_eq!(rep(0, ""), Verdict::Clean);
        assert_eq!(
            rep(1, "Inode 12 ref count is 5, should be 1.  FIXED."),
            Verdict::Repaired
        );
        assert_eq!(rep(2, ""), Verdict::RepairedRebootNeeded);
        assert_eq!(rep(3, ""), Verdict::RepairedRebootNeeded);
        assert_eq!(
            rep(4, "UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."),
            Verdict::ErrorsLeft
        );
        assert_eq!(rep(5, ""), Verdict::ErrorsLeft);
        assert_eq!(rep(12, ""), Verdict::ErrorsLeft);
        assert_eq!(
            rep(8, "is mounted.  Cannot continue, aborting."),
            Verdict::OperationalError
        );
        assert_eq!(rep(32, ""), Verdict::Cancelled);
        assert_eq!(rep(16, ""), Verdict::OperationalError);
        // -p never skips the journal: the message does not make it a dirty log.
        assert_eq!(rep(0, "skipping journal recovery"), Verdict::Clean);
        let rp = |c| interpret(FsKind::Ext, Phase::Replay, code(c), "recovering journal");
        assert_eq!(rp(0), Verdict::Clean);
        assert_eq!(rp(1), Verdict::Repaired);
        assert_eq!(rp(4), Verdict::ErrorsLeft);
        assert_eq!(rp(8), Verdict::OperationalError);
    }

    const XFS_ALERT: &str = "ALERT: The filesystem has valuable metadata changes in a log which is being\nignored because the -n option was used.";
    const XFS_ERROR: &str =
        "ERROR: The filesystem has valuable metadata changes in a log which needs to\nbe replayed.";

    #[test]
    fn xfs_repair_read_only_codes() {
        let ro = |c, out| interpret(FsKind::Xfs, Phase::ReadOnly, code(c), out);
        assert_eq!(
            ro(
                0,
                "No modify flag set, skipping filesystem flush and exiting."
            ),
            Verdict::Clean
        );
        assert_eq!(
            ro(1, "bad magic number\nNo modify flag set"),
            Verdict::ErrorsFound
        );
        assert_eq!(ro(1, XFS_ALERT), Verdict::DirtyLog);
        assert_eq!(ro(2, ""), Verdict::DirtyLog);
        // With -n, a runtime failure is exit 1 as well: told apart by do_error's prefix.
        assert_eq!(
            ro(
                1,
                "/dev/loop0 contains a mounted and writable filesystem\n\nfatal error -- couldn't initialize XFS library"
            ),
            Verdict::OperationalError
        );
        assert_eq!(ro(4, ""), Verdict::OperationalError);
        assert_eq!(ro(127, ""), Verdict::OperationalError);
    }

    #[test]
    fn xfs_repair_repair_codes() {
        let rep = |c, out| interpret(FsKind::Xfs, Phase::Repair, code(c), out);
        assert_eq!(rep(0, "done"), Verdict::Clean);
        assert_eq!(rep(4, "done"), Verdict::Repaired);
        // Without -n, exit 1 is a runtime error, never "corrupt".
        assert_eq!(rep(1, "Device or resource busy"), Verdict::OperationalError);
        assert_eq!(rep(2, XFS_ERROR), Verdict::DirtyLog);
        assert_eq!(rep(1, XFS_ERROR), Verdict::DirtyLog);
        assert_eq!(
            rep(4, "fatal error -- out of memory"),
            Verdict::OperationalError
        );
    }

    #[test]
    fn fsck_fat_is_not_a_bitmask() {
        let ro = |c| interpret(FsKind::Fat, Phase::ReadOnly, code(c), "");
        let rep = |c| interpret(FsKind::Fat, Phase::Repair, code(c), "");
        assert_eq!(ro(0), Verdict::Clean);
        assert_eq!(ro(1), Verdict::ErrorsFound);
        assert_eq!(rep(0), Verdict::Clean);
        // 1 also after fixing: "found (and fixed)".
        assert_eq!(rep(1), Verdict::Repaired);
        // 2 usage; 6 "open: No such file or directory" (observed, not in the manual).
        for c in [2, 3, 4, 5, 6, 8, 12] {
            assert_eq!(ro(c), Verdict::OperationalError, "{c}");
            assert_eq!(rep(c), Verdict::OperationalError, "{c}");
        }
    }

    #[test]
    fn btrfs_check_codes() {
        let ro = |c, out| interpret(FsKind::Btrfs, Phase::ReadOnly, code(c), out);
        assert_eq!(
            ro(0, "found 147456 bytes used, no error found"),
            Verdict::Clean
        );
        assert_eq!(
            ro(
                1,
                "ERROR: errors found in fs roots\nfound 1 bytes used, error(s) found"
            ),
            Verdict::ErrorsFound
        );
        assert_eq!(
            ro(
                1,
                "No valid Btrfs found on b.img\nERROR: cannot open file system"
            ),
            Verdict::OperationalError
        );
        assert_eq!(
            ro(
                1,
                "ERROR: /dev/loop0 is currently mounted, use --force if you really intend to check the mounted filesystem"
            ),
            Verdict::OperationalError
        );
    }

    #[test]
    fn verdicts_serialize_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Verdict::RepairedRebootNeeded).expect("json"),
            "\"repaired-reboot-needed\""
        );
        assert_eq!(
            serde_json::to_string(&Verdict::DirtyLog).expect("json"),
            "\"dirty-log\""
        );
    }

    #[test]
    fn e2fsck_progress_lines() {
        assert_eq!(e2fsck_fraction(b"1 0 8 /dev/loop0"), Some(0.0));
        assert_eq!(e2fsck_fraction(b"1 4 8 /dev/loop0"), Some(0.35));
        let p2 = e2fsck_fraction(b"2 1 2 /dev/loop0").expect("pass 2");
        assert!((p2 - 0.80).abs() < 1e-9, "{p2}");
        assert_eq!(e2fsck_fraction(b"5 16 16 e.img"), Some(1.0));
        // Over-full or zero max never leaves 0..=1.
        assert_eq!(e2fsck_fraction(b"5 17 16 e.img"), Some(1.0));
        assert_eq!(e2fsck_fraction(b"3 0 0 e.img"), Some(0.90));
        for bad in [
            &b""[..],
            b"x",
            b"0 1 2 d",
            b"6 1 2 d",
            b"1 -1 2 d",
            b"1 2",
            b"\xff\xfe",
        ] {
            assert_eq!(e2fsck_fraction(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::new(8);
        t.push(b"abc");
        t.push(b"defgh");
        t.push(b"ij");
        assert_eq!(t.into_string(), "cdefghij");
        let mut t = Tail::new(4);
        t.push(b"0123456789");
        assert_eq!(t.into_string(), "6789");
    }

    fn sh(script: &str) -> Command {
        Command::new("sh", &["-c".as_ref(), script.as_ref()])
    }

    #[test]
    fn run_collects_output_and_status_with_a_fixed_environment() {
        let r = run(
            &sh("echo out; echo err >&2; echo \"$LANG $LC_ALL $PATH\"; test -t 0 || read x || exit 3"),
            Duration::from_secs(20),
            None,
        )
        .expect("run");
        assert_eq!(
            r.status.code(),
            Some(3),
            "stdin is /dev/null: read fails: {}",
            r.output
        );
        assert!(r.output.contains("out\n"), "{}", r.output);
        assert!(r.output.contains("err\n"), "{}", r.output);
        assert!(
            r.output.contains(&format!("C C {CHECKER_PATH}")),
            "{}",
            r.output
        );
        assert!(!r.timed_out);
    }

    #[test]
    fn run_keeps_the_last_64_kib() {
        let r = run(
            &sh("i=0; while [ $i -lt 2000 ]; do printf '%0100d\\n' $i; i=$((i+1)); done; echo END"),
            Duration::from_secs(30),
            None,
        )
        .expect("run");
        assert!(r.status.success());
        assert!(r.output.len() <= OUTPUT_KEEP);
        assert!(r.output.len() > OUTPUT_KEEP - 200, "{}", r.output.len());
        assert!(r.output.ends_with("END\n"));
    }

    #[test]
    fn run_a_missing_program_is_an_error() {
        let c = Command::new("snapguard-no-such-checker", &[]);
        let e = run(&c, Duration::from_secs(5), None).expect_err("missing");
        assert!(
            format!("{e:#}").contains("snapguard-no-such-checker"),
            "{e:#}"
        );
    }

    #[test]
    fn run_terminates_at_the_timeout() {
        let start = Instant::now();
        let r = run(&sh("exec sleep 30"), Duration::from_millis(200), None).expect("run");
        assert!(r.timed_out);
        assert_eq!(r.status.signal(), Some(libc::SIGTERM));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(
            interpret(FsKind::Ext, Phase::Repair, r.status, &r.output),
            Verdict::OperationalError
        );
    }

    /// `sh -c SCRIPT` run under the name `name` (a symlink in `dir`), so that
    /// [`Command::is_read_only`] sees that name.
    fn sh_as(dir: &Path, name: &str, script: &str) -> Command {
        let link = dir.join(name);
        std::os::unix::fs::symlink("/bin/sh", &link).expect("symlink");
        Command {
            program: link.to_string_lossy().into_owned(),
            args: vec!["-c".into(), script.into()],
        }
    }

    const IGNORES_TERM: &str = "trap '' TERM; sleep 30 & wait; sleep 30";

    fn short_limits() -> Limits {
        Limits {
            timeout: Duration::from_millis(100),
            grace: Duration::from_millis(300),
            extra: Duration::from_millis(400),
            stop_on_interrupt: false,
        }
    }

    #[test]
    fn a_read_only_command_ignoring_sigterm_is_killed_after_grace_and_extra() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = sh_as(dir.path(), "e2image", IGNORES_TERM);
        assert!(c.is_read_only());
        let start = Instant::now();
        let r = run_with(&c, short_limits(), None).expect("run");
        assert!(r.timed_out);
        assert_eq!(r.status.signal(), Some(libc::SIGKILL));
        // timeout + grace + extra
        assert!(start.elapsed() >= Duration::from_millis(800));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_writer_ignoring_sigterm_is_never_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = sh_as(dir.path(), "e2fsck", IGNORES_TERM);
        assert!(!c.is_read_only());
        let start = Instant::now();
        let e = run_with(&c, short_limits(), None).expect_err("writer left running");
        let text = format!("{e:#}");
        assert!(text.contains("left running"), "{text}");
        assert!(start.elapsed() >= Duration::from_millis(800));
        // It is still running: end it (our own child's process group, by the pid we were given).
        let pid: u32 = text
            .split("(pid ")
            .nth(1)
            .and_then(|t| t.split(')').next())
            .and_then(|t| t.parse().ok())
            .expect("pid in the message");
        assert!(crate::sys::process::pid_alive(pid), "not killed");
        signal_group(pid, Signal::SIGKILL).expect("kill our test child");
    }

    #[test]
    fn e2fsck_progress_reaches_the_callback() {
        // A stand-in e2fsck writing progress lines to the fd given with -C.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = sh_as(
            dir.path(),
            "e2fsck",
            "p=; for a in \"$0\" \"$@\"; do [ \"$p\" = -C ] && fd=$a; p=$a; done; \
             eval \"exec 9>&$fd\"; printf '1 4 8 /dev/x\\n5 16 16 /dev/x\\n' >&9; echo done",
        );
        c.args.push("/dev/x".into());
        let mut seen = Vec::new();
        let mut cb = |f: f64| seen.push(f);
        let r = run(&c, Duration::from_secs(10), Some(&mut cb)).expect("run");
        assert!(r.status.success(), "{}", r.output);
        assert_eq!(seen, vec![0.35, 1.0], "{}", r.output);
    }
}
