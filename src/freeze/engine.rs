//! The freeze and thaw sequences, with timings: `freeze-test` (each superblock frozen and thawed
//! on its own) and `freeze -- CMD` (the whole set frozen in order, CMD run, thawed in reverse).
//!
//! Per superblock: a bounded `syncfs` first (in a helper process, so a sync stuck on a hung
//! device can never keep snapguard from exiting: the helper is abandoned, not waited for), then
//! FIFREEZE, which now only has the data written since the sync left to flush while writers are
//! blocked, then FITHAW. The guardian is told of every freeze and thaw (see [`super::guardian`]).

use super::guardian::{Guardian, HANDOFF_MARGIN, Report};
use super::probe::{self, Static};
use super::record::{self, MountState, Record, RecordMount};
use super::skip::SkipRules;
use super::{Target, hooks, logbuf, ms, plan};
use crate::mount::MountTable;
use crate::report::{
    CommandRun, FreezeOutcome, FreezeReport, FreezeTestReport, HookRun, MountVerdict,
    SCHEMA_VERSION, ThawedBy, Verdict, verdict_summary,
};
use crate::root::SysRoot;
use crate::sys::freeze::{MountDir, errno_meaning, errno_name};
use crate::sys::process::{BlockedSignals, NEUTRAL_CWD, SELF_EXE, monotonic_ns, signal_pid};
use crate::sys::spawn::{Program, Spawn};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand running one bounded syncfs.
pub const SYNCFS_SUBCOMMAND: &str = "__syncfs";

/// syncfs passes stop once one takes less than this (the dirty set is small).
const SYNC_SETTLED: Duration = Duration::from_millis(50);
/// At most this many syncfs passes (a writer keeps dirtying pages while we flush).
const SYNC_PASSES: u32 = 4;

/// Timeouts and switches of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The guardian's self-thaw deadline, counted from the first FIFREEZE.
    pub timeout: Duration,
    /// Bound on the syncfs before each freeze.
    pub sync_timeout: Duration,
    /// Per-hook timeout.
    pub hook_timeout: Duration,
    /// Hook directory; `None`: no hooks.
    pub hooks_dir: Option<hooks::HooksDir>,
    /// After SIGTERM to CMD (deadline or interruption), SIGKILL after this.
    pub kill_after: Duration,
}

/// Exit codes of `freeze -- CMD` (besides CMD's own status).
pub mod exit {
    /// The deadline passed: the guardian thawed, CMD was terminated (as timeout(1)).
    pub const TIMEOUT: u8 = 124;
    /// snapguard failed: a freeze, a hook, a thaw, or it could not run.
    pub const FAILED: u8 = 125;
    /// CMD was found but could not be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// CMD was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// The hidden `__syncfs PATH` helper: syncfs passes until one is quick. Exit 0, or the errno.
pub fn syncfs_helper(path: &Path) -> u8 {
    let dir = match MountDir::open(path) {
        Ok(d) => d,
        Err(e) => return u8::try_from(e as i32).unwrap_or(1),
    };
    for _ in 0..SYNC_PASSES {
        let start = Instant::now();
        if let Err(e) = dir.syncfs() {
            return u8::try_from(e as i32).unwrap_or(1);
        }
        if start.elapsed() < SYNC_SETTLED {
            break;
        }
    }
    0
}

/// What a bounded syncfs gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    Done(Duration),
    Failed(Errno, Duration),
    TimedOut(Duration),
}

/// syncfs of `path` in a helper process, waited for at most `timeout`. A helper that does not
/// finish is left behind (it is in D state and cannot be killed; it exits when the device
/// answers): nothing of ours waits for it.
pub fn bounded_syncfs(path: &Path, timeout: Duration) -> SyncResult {
    let start = Instant::now();
    let spawned = Spawn::new(Program::Path(Path::new(SELF_EXE)))
        .arg(SYNCFS_SUBCOMMAND)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .cwd(NEUTRAL_CWD)
        .env_remove("SNAPGUARD_LOG")
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return SyncResult::Failed(
                Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                start.elapsed(),
            );
        }
    };
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match status.code() {
                    Some(0) => SyncResult::Done(start.elapsed()),
                    Some(code) => SyncResult::Failed(Errno::from_raw(code), start.elapsed()),
                    None => SyncResult::Failed(Errno::EINTR, start.elapsed()),
                };
            }
            Ok(None) => {}
            Err(_) => return SyncResult::Failed(Errno::ECHILD, start.elapsed()),
        }
        if start.elapsed() >= timeout {
            // Dropping a Child neither kills nor waits for it.
            drop(child);
            return SyncResult::TimedOut(start.elapsed());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Static rows for all targets; returns the rows, the row index of each target, and for each
/// target its static result.
fn static_rows(
    targets: &[Target],
    skip: &SkipRules,
) -> (Vec<MountVerdict>, Vec<usize>, Vec<Static>) {
    let mut rows = Vec::new();
    let mut row_of = Vec::with_capacity(targets.len());
    let mut statics = Vec::with_capacity(targets.len());
    for t in targets {
        let st = probe::classify(t, skip);
        let (verdict, mut reason) = match &st {
            Static::Final(v, r) => (*v, r.clone()),
            Static::Try { reason, .. } => (Verdict::Freezable, reason.clone()),
        };
        let mut row = MountVerdict::new(
            t.mountpoint.display().to_string(),
            t.source.clone(),
            t.fstype.clone(),
            verdict,
            String::new(),
        );
        if let Some(first) = t.backing.first() {
            row.backing_file = Some(first.file.display().to_string());
            row.backing_mount = first
                .holder
                .found()
                .map(|h| h.mount_point.display().to_string());
        }
        row.backing = t.backing.iter().map(plan::Backing::report).collect();
        if let Some(note) = plan::describe_backing(&t.backing) {
            reason.push_str("; ");
            reason.push_str(&note);
        }
        row.reason = reason;
        row_of.push(rows.len());
        rows.push(row.clone());
        for d in &t.duplicates {
            let mut dup = row.clone();
            dup.mountpoint = d.display().to_string();
            dup.duplicate_of = Some(t.mountpoint.display().to_string());
            dup.reason =
                probe::duplicate_reason(&t.mountpoint.display().to_string(), t.major, t.minor);
            rows.push(dup);
        }
        statics.push(st);
    }
    (rows, row_of, statics)
}

/// Copy a target row's verdict to its duplicate rows.
fn propagate_to_duplicates(rows: &mut [MountVerdict]) {
    let primaries: Vec<(String, Verdict)> = rows
        .iter()
        .filter(|r| r.duplicate_of.is_none())
        .map(|r| (r.mountpoint.clone(), r.verdict))
        .collect();
    for r in rows.iter_mut() {
        if let Some(p) = &r.duplicate_of {
            if let Some((_, v)) = primaries.iter().find(|(m, _)| m == p) {
                r.verdict = *v;
            }
        }
    }
}

fn set_errno(row: &mut MountVerdict, errno: Errno, thawing: bool, what: &str) {
    row.errno = Some(errno_name(errno).to_string());
    row.reason = format!(
        "{what}: {} ({})",
        errno_name(errno),
        errno_meaning(errno, thawing)
    );
}

/// Targets resolved, with backing files and the order to freeze in.
pub fn prepare(
    table: &MountTable,
    named: &[PathBuf],
    all: bool,
    root: &SysRoot,
) -> anyhow::Result<(Vec<Target>, Vec<usize>)> {
    let mut targets = super::select(table, named, all)?;
    plan::resolve_backing(&mut targets, table, root);
    let order = plan::freeze_order(&targets)?;
    Ok((targets, order))
}

/// Thaw mount `gi` (controller fd `dir`), or leave it to the guardian when the deadline is close.
/// Returns (result, who, thaw duration).
fn thaw_or_hand_off(
    guardian: &mut Guardian,
    gi: usize,
    dir: &MountDir,
    deadline_ns: u64,
    guardian_reports: &mut Vec<Report>,
) -> (Result<(), Errno>, ThawedBy, Duration) {
    let earlier = guardian_reports.iter().find_map(|m| match m {
        Report::Thawed { index, errno } if *index == gi => Some(*errno),
        _ => None,
    });
    if let Some(errno) = earlier {
        let r = if errno == 0 {
            Ok(())
        } else {
            Err(Errno::from_raw(errno))
        };
        return (r, ThawedBy::Guardian, Duration::ZERO);
    }
    let now = monotonic_ns();
    if now.saturating_add(HANDOFF_MARGIN.as_nanos() as u64) < deadline_ns {
        let t = Instant::now();
        let r = dir.thaw();
        let took = t.elapsed();
        guardian.thawed(gi);
        return (r, ThawedBy::Snapguard, took);
    }
    // The guardian's deadline is (nearly) here: it thaws; wait for its report.
    let wait = Duration::from_nanos(deadline_ns.saturating_sub(now)) + Duration::from_secs(2);
    let got = guardian.reports(wait, |r| {
        r.iter()
            .any(|m| matches!(m, Report::Thawed { index, .. } if *index == gi))
    });
    let mine = got.iter().find_map(|m| match m {
        Report::Thawed { index, errno } if *index == gi => Some(*errno),
        _ => None,
    });
    guardian_reports.extend(got);
    match mine {
        Some(0) => (Ok(()), ThawedBy::Guardian, Duration::ZERO),
        Some(e) => (Err(Errno::from_raw(e)), ThawedBy::Guardian, Duration::ZERO),
        None => {
            // The guardian is gone or stuck: thaw ourselves.
            let t = Instant::now();
            let r = dir.thaw();
            let took = t.elapsed();
            guardian.thawed(gi);
            (r, ThawedBy::Snapguard, took)
        }
    }
}

/// `freeze-test`: static verdicts, then (unless `probe_only`) a real freeze and thaw of each
/// candidate superblock, one at a time, under a guardian.
pub fn freeze_test(
    targets: &[Target],
    order: &[usize],
    skip: &SkipRules,
    probe_only: bool,
    opts: &Options,
    signals: Option<&BlockedSignals>,
) -> anyhow::Result<FreezeTestReport> {
    let (mut rows, row_of, statics) = static_rows(targets, skip);
    let timeout_ms = opts.timeout.as_millis() as u64;
    if probe_only {
        for (i, st) in statics.iter().enumerate() {
            if let Static::Try { known, reason } = st {
                let row = &mut rows[row_of[i]];
                if *known {
                    row.reason = format!(
                        "{}{} (not tried: --probe-only; a foreign freeze is only seen by a real \
                         FIFREEZE)",
                        reason,
                        row.reason.strip_prefix(reason.as_str()).unwrap_or("")
                    );
                } else {
                    row.verdict = Verdict::Unsupported;
                    row.reason = format!("{reason} (not tried: --probe-only)");
                }
            }
        }
        propagate_to_duplicates(&mut rows);
        return Ok(FreezeTestReport::new(true, timeout_ms, rows));
    }

    // Open every candidate; those that cannot be opened fail here.
    let mut dirs: Vec<(usize, MountDir)> = Vec::new();
    for &i in order {
        if !matches!(statics[i], Static::Try { .. }) {
            continue;
        }
        match MountDir::open(&targets[i].mountpoint) {
            Ok(d) => dirs.push((i, d)),
            Err(e) => {
                let row = &mut rows[row_of[i]];
                row.verdict = Verdict::Failed;
                set_errno(row, e, false, "cannot open the mount point");
            }
        }
    }
    if dirs.is_empty() {
        propagate_to_duplicates(&mut rows);
        return Ok(FreezeTestReport::new(false, timeout_ms, rows));
    }
    let ids: Vec<(PathBuf, u64, u64)> = dirs
        .iter()
        .map(|(i, d)| (targets[*i].mountpoint.clone(), d.dev, d.ino))
        .collect();
    let mut guardian = Guardian::spawn(&ids, None)?;
    let run_start = Instant::now();
    let mut reports = Vec::new();
    for (gi, (i, dir)) in dirs.iter().enumerate() {
        let row_index = row_of[*i];
        if signals.is_some_and(|s| s.wait(Duration::ZERO).is_some()) {
            let row = &mut rows[row_index];
            row.verdict = Verdict::Failed;
            row.reason = "not tested: snapguard was interrupted by a signal".to_string();
            continue;
        }
        let row = &mut rows[row_index];
        match bounded_syncfs(&targets[*i].mountpoint, opts.sync_timeout) {
            SyncResult::Done(d) => row.sync_ms = Some(ms(d)),
            SyncResult::Failed(e, d) => {
                // Not fatal: the kernel syncs again inside FIFREEZE.
                row.sync_ms = Some(ms(d));
                tracing::warn!(
                    "syncfs '{}': {}",
                    targets[*i].mountpoint.display(),
                    errno_name(e)
                );
            }
            SyncResult::TimedOut(d) => {
                row.sync_ms = Some(ms(d));
                row.verdict = Verdict::Failed;
                row.errno = Some("ETIMEDOUT".into());
                row.reason = format!(
                    "syncfs did not finish within {} s (a hung device, or a huge amount of \
                     dirty data): not frozen",
                    opts.sync_timeout.as_secs_f64()
                );
                continue;
            }
        }
        logbuf::hold();
        let deadline = monotonic_ns().saturating_add(opts.timeout.as_nanos() as u64);
        guardian.arm(deadline);
        let t0 = Instant::now();
        let frozen = dir.freeze();
        let t1 = Instant::now();
        row.freeze_ms = Some(ms(t1 - t0));
        match frozen {
            Ok(()) => {
                guardian.frozen(gi);
                row.frozen_at_ms = Some(ms(t1 - run_start));
                let (thawed, by, took) =
                    thaw_or_hand_off(&mut guardian, gi, dir, deadline, &mut reports);
                let t3 = Instant::now();
                logbuf::release();
                row.frozen_ms = Some(ms((t3 - took).saturating_duration_since(t1)));
                row.thaw_ms = Some(ms(took));
                row.thawed_at_ms = Some(ms(t3 - run_start));
                row.thawed_by = Some(by);
                match thawed {
                    Ok(()) if by == ThawedBy::Snapguard => {}
                    Ok(()) => {
                        row.verdict = Verdict::Failed;
                        row.reason = format!(
                            "froze, but FIFREEZE took so long that the guardian thawed it at \
                             the {} s deadline",
                            opts.timeout.as_secs_f64()
                        );
                    }
                    Err(e) => {
                        row.verdict = Verdict::Failed;
                        set_errno(row, e, true, "froze, but FITHAW failed");
                    }
                }
            }
            Err(e) => {
                logbuf::release();
                match e {
                    Errno::EBUSY => {
                        row.verdict = Verdict::AlreadyFrozen;
                        set_errno(row, e, false, "FIFREEZE");
                    }
                    Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::EINVAL => {
                        row.verdict = Verdict::Unsupported;
                        set_errno(row, e, false, "FIFREEZE");
                    }
                    _ => {
                        row.verdict = Verdict::Failed;
                        set_errno(row, e, false, "FIFREEZE");
                    }
                }
            }
        }
    }
    let _ = guardian.finish(Duration::from_secs(2));
    propagate_to_duplicates(&mut rows);
    Ok(FreezeTestReport::new(false, timeout_ms, rows))
}

/// Everything `freeze -- CMD` needs besides the targets.
pub struct FreezeRun<'a> {
    pub targets: &'a [Target],
    pub order: &'a [usize],
    pub table: &'a MountTable,
    pub skip: &'a SkipRules,
    pub opts: &'a Options,
    pub root: &'a SysRoot,
    pub argv: &'a [OsString],
    /// Send CMD's stdout to our stderr (the JSON document owns our stdout).
    pub cmd_stdout_to_stderr: bool,
    /// SIGTERM, SIGINT, SIGHUP and SIGCHLD, blocked by the caller before any thread or child.
    pub signals: &'a BlockedSignals,
}

/// One frozen mount during a run.
struct Held {
    /// Index in the guardian's list (and in the list of open mount points).
    gi: usize,
    target: usize,
    frozen_at: Instant,
}

/// How the wait for CMD ended.
enum Waited {
    Exited(std::process::ExitStatus),
    Deadline,
    Signal(Signal),
}

/// `freeze -- CMD`.
pub fn freeze(run: &FreezeRun<'_>) -> FreezeReport {
    let start = Instant::now();
    let (mut rows, row_of, statics) = static_rows(run.targets, run.skip);
    let mut report = FreezeReport {
        schema_version: SCHEMA_VERSION,
        command: "freeze",
        summary: Default::default(),
        outcome: FreezeOutcome::Completed,
        exit_code: 0,
        timeout_ms: run.opts.timeout.as_millis() as u64,
        window_ms: None,
        mounts: Vec::new(),
        hooks: Vec::new(),
        cmd: None,
        messages: Vec::new(),
    };
    let finish = |mut report: FreezeReport, mut rows: Vec<MountVerdict>, outcome, code| {
        propagate_to_duplicates(&mut rows);
        report.summary = verdict_summary(&rows);
        report.mounts = rows;
        report.outcome = outcome;
        report.exit_code = code;
        report
    };

    // 1. Hooks are checked before anything is opened or frozen.
    let hook_list = match &run.opts.hooks_dir {
        Some(dir) => match hooks::discover(dir) {
            Ok(h) => h,
            Err(refused) => {
                report.hooks = refused;
                report
                    .messages
                    .push("a hook was refused: nothing was frozen, CMD did not run".into());
                return finish(report, rows, FreezeOutcome::HookFailed, exit::FAILED);
            }
        },
        None => Vec::new(),
    };

    // 2. Open the candidates, in freeze order.
    let mut open: Vec<(usize, MountDir)> = Vec::new();
    for &i in run.order {
        if !matches!(statics[i], Static::Try { .. }) {
            continue;
        }
        match MountDir::open(&run.targets[i].mountpoint) {
            Ok(d) => open.push((i, d)),
            Err(e) => {
                let row = &mut rows[row_of[i]];
                row.verdict = Verdict::Failed;
                set_errno(row, e, false, "cannot open the mount point");
                report
                    .messages
                    .push("a mount point cannot be opened: nothing was frozen".into());
                return finish(report, rows, FreezeOutcome::FreezeFailed, exit::FAILED);
            }
        }
    }
    for row in rows.iter_mut() {
        if row.verdict == Verdict::Freezable {
            row.reason = format!("{} (not frozen yet)", row.reason);
        }
    }
    let mountpoints: Vec<PathBuf> = open
        .iter()
        .map(|(i, _)| run.targets[*i].mountpoint.clone())
        .collect();

    // 3. The record: kept up to date while frozen unless it sits on a filesystem we freeze.
    let pid = std::process::id();
    let record_path = record::path_for(run.root, pid);
    let record_dir = record::dir(run.root);
    let _ = std::fs::create_dir_all(&record_dir);
    let live_updates = match super::holder::mount_of_path(run.table, &record_dir) {
        Some(m) => !open
            .iter()
            .any(|(i, _)| run.targets[*i].major == m.major && run.targets[*i].minor == m.minor),
        None => true,
    };

    // 4. The guardian, before the first FIFREEZE.
    let ids: Vec<(PathBuf, u64, u64)> = open
        .iter()
        .map(|(i, d)| (run.targets[*i].mountpoint.clone(), d.dev, d.ino))
        .collect();
    let mut guardian = if open.is_empty() {
        None
    } else {
        match Guardian::spawn(&ids, Some(&record_path)) {
            Ok(g) => Some(g),
            Err(e) => {
                report.messages.push(format!("{e:#}: nothing was frozen"));
                return finish(report, rows, FreezeOutcome::FreezeFailed, exit::FAILED);
            }
        }
    };
    if let Some(g) = &guardian {
        if !g.mlocked {
            report
                .messages
                .push("the guardian could not lock its memory (mlockall); it runs anyway".into());
        }
    }
    let mut rec = Record {
        version: 1,
        controller_pid: pid,
        guardian_pid: guardian.as_ref().map(Guardian::pid),
        live_updates,
        mounts: open
            .iter()
            .map(|(i, d)| RecordMount {
                mountpoint: run.targets[*i].mountpoint.clone(),
                dev: d.dev,
                ino: d.ino,
                state: MountState::Planned,
            })
            .collect(),
    };
    if !open.is_empty() {
        if let Err(e) = rec.write(&record_path) {
            report.messages.push(format!(
                "{e:#}: continuing without a record (`snapguard thaw` will need --force)"
            ));
        }
    }

    // 5. Freeze hooks, in order. A failure stops: the thaw hooks of every hook that ran run.
    let mut ran_hooks: Vec<&hooks::Hook> = Vec::new();
    for hook in &hook_list {
        let result = hooks::run(hook, "freeze", &mountpoints, run.opts.hook_timeout);
        let ok = result.result == "ok";
        report.hooks.push(result);
        ran_hooks.push(hook);
        if !ok {
            run_thaw_hooks(&ran_hooks, &mountpoints, run.opts, &mut report.hooks);
            if let Some(g) = guardian.take() {
                let _ = g.finish(Duration::from_secs(2));
            }
            record::remove(&record_path);
            report
                .messages
                .push("a freeze hook failed: nothing was frozen, CMD did not run".into());
            return finish(report, rows, FreezeOutcome::HookFailed, exit::FAILED);
        }
    }

    // 6. Freeze, in order.
    let mut held: Vec<Held> = Vec::new();
    let mut deadline_ns: u64 = 0;
    let mut window_start: Option<Instant> = None;
    let mut failure: Option<FreezeOutcome> = None;
    let mut interrupted: Option<Signal> = None;
    let mut guardian_reports: Vec<Report> = Vec::new();
    for (gi, (i, dir)) in open.iter().enumerate() {
        if let Some(sig) = pending_signal(run.signals) {
            interrupted = Some(sig);
            break;
        }
        let row_index = row_of[*i];
        match bounded_syncfs(&run.targets[*i].mountpoint, run.opts.sync_timeout) {
            SyncResult::Done(d) => rows[row_index].sync_ms = Some(ms(d)),
            SyncResult::Failed(e, d) => {
                rows[row_index].sync_ms = Some(ms(d));
                tracing::warn!(
                    "syncfs '{}': {}",
                    run.targets[*i].mountpoint.display(),
                    errno_name(e)
                );
            }
            SyncResult::TimedOut(d) => {
                let row = &mut rows[row_index];
                row.sync_ms = Some(ms(d));
                row.verdict = Verdict::Failed;
                row.errno = Some("ETIMEDOUT".into());
                row.reason = format!(
                    "syncfs did not finish within {} s (hung device?): not frozen",
                    run.opts.sync_timeout.as_secs_f64()
                );
                failure = Some(FreezeOutcome::FreezeFailed);
                break;
            }
        }
        let guardian = guardian
            .as_mut()
            .expect("a guardian runs whenever something is open");
        if window_start.is_none() {
            logbuf::hold();
            window_start = Some(Instant::now());
            deadline_ns = monotonic_ns().saturating_add(run.opts.timeout.as_nanos() as u64);
            guardian.arm(deadline_ns);
        }
        tracing::info!("freezing '{}'", run.targets[*i].mountpoint.display());
        let t0 = Instant::now();
        let result = dir.freeze();
        let t1 = Instant::now();
        tracing::info!(
            "FIFREEZE '{}': {:?} in {:?}",
            run.targets[*i].mountpoint.display(),
            result,
            t1 - t0
        );
        let row = &mut rows[row_index];
        row.freeze_ms = Some(ms(t1 - t0));
        match result {
            Ok(()) => {
                guardian.frozen(gi);
                row.frozen_at_ms = Some(ms(t1 - start));
                row.reason = row.reason.replace(" (not frozen yet)", "");
                held.push(Held {
                    gi,
                    target: *i,
                    frozen_at: t1,
                });
                if live_updates {
                    rec.mounts[gi].state = MountState::Frozen;
                    let _ = rec.write(&record_path);
                }
            }
            Err(Errno::EOPNOTSUPP) | Err(Errno::ENOTTY) => {
                row.verdict = Verdict::Unsupported;
                set_errno(row, Errno::EOPNOTSUPP, false, "FIFREEZE (left unfrozen)");
            }
            Err(e) => {
                row.verdict = if e == Errno::EBUSY {
                    Verdict::AlreadyFrozen
                } else {
                    Verdict::Failed
                };
                set_errno(row, e, false, "FIFREEZE");
                failure = Some(FreezeOutcome::FreezeFailed);
                break;
            }
        }
        if monotonic_ns() >= deadline_ns {
            // FIFREEZE took the whole window: the guardian is thawing.
            failure = Some(FreezeOutcome::Timeout);
            break;
        }
    }
    for row in rows.iter_mut() {
        if row.reason.ends_with(" (not frozen yet)") {
            row.reason = row.reason.replace(
                " (not frozen yet)",
                " (not frozen: the run stopped before it)",
            );
        }
    }

    // 7. CMD, unless something failed.
    let mut outcome = FreezeOutcome::Completed;
    let mut exit_code: u8 = 0;
    let mut cmd_child: Option<(Child, Instant)> = None;
    let frozen_list: Vec<String> = held
        .iter()
        .map(|h| run.targets[h.target].mountpoint.display().to_string())
        .collect();
    let argv_text: Vec<String> = run
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut cmd_report = CommandRun {
        argv: argv_text,
        pid: None,
        exit_code: None,
        signal: None,
        terminated: false,
        duration_ms: 0.0,
        error: None,
    };
    let mut cmd_started = false;
    if let Some(f) = failure {
        outcome = f;
        exit_code = if f == FreezeOutcome::Timeout {
            exit::TIMEOUT
        } else {
            exit::FAILED
        };
    } else if let Some(sig) = interrupted {
        outcome = FreezeOutcome::Interrupted;
        exit_code = 128 + sig as u8;
    } else {
        let mut command = Spawn::new(Program::Path(Path::new(&run.argv[0])));
        if run.cmd_stdout_to_stderr {
            if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
                command = command.stdout(Stdio::from(fd));
            }
        }
        let spawned = command
            .args(&run.argv[1..])
            .env_inherit_with([
                ("SNAPGUARD_FROZEN", frozen_list.join("\n")),
                ("SNAPGUARD_FROZEN_COUNT", frozen_list.len().to_string()),
                (
                    "SNAPGUARD_TIMEOUT_MS",
                    run.opts.timeout.as_millis().to_string(),
                ),
            ])
            .spawn();
        match spawned {
            Ok(child) => {
                tracing::info!("CMD started while frozen (pid {})", child.id());
                cmd_report.pid = Some(child.id());
                cmd_started = true;
                cmd_child = Some((child, Instant::now()));
            }
            Err(e) => {
                outcome = FreezeOutcome::CommandFailed;
                exit_code = if e.kind() == std::io::ErrorKind::NotFound {
                    exit::NOT_FOUND
                } else {
                    exit::CANNOT_EXECUTE
                };
                cmd_report.error = Some(crate::sys::describe_io(&e));
            }
        }
    }

    // 8. Wait for CMD, the deadline or a signal.
    let mut waited: Option<Waited> = None;
    if let Some((child, _)) = cmd_child.as_mut() {
        let mut guardian_gone_noted = false;
        waited = Some(loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Waited::Exited(status);
            }
            if !guardian_gone_noted && guardian.as_mut().is_some_and(Guardian::has_exited) {
                guardian_gone_noted = true;
                report.messages.push(
                    "the guardian exited while frozen; snapguard enforces the deadline itself"
                        .into(),
                );
            }
            let now = monotonic_ns();
            if now >= deadline_ns && !held.is_empty() {
                break Waited::Deadline;
            }
            let left = if held.is_empty() {
                Duration::from_secs(1)
            } else {
                Duration::from_nanos(deadline_ns - now).min(Duration::from_secs(1))
            };
            match run.signals.wait(left) {
                Some(Signal::SIGCHLD) | None => {}
                Some(sig) => break Waited::Signal(sig),
            }
        });
    }

    // 9. Thaw, in reverse order.
    let mut thaw_failed = false;
    if let Some(g) = guardian.as_mut() {
        for h in held.iter().rev() {
            let (result, by, took) =
                thaw_or_hand_off(g, h.gi, &open[h.gi].1, deadline_ns, &mut guardian_reports);
            let now = Instant::now();
            tracing::info!(
                "thawed '{}' ({by:?}): {result:?}",
                run.targets[h.target].mountpoint.display()
            );
            let row = &mut rows[row_of[h.target]];
            row.thaw_ms = Some(ms(took));
            row.frozen_ms = Some(ms((now - took).saturating_duration_since(h.frozen_at)));
            row.thawed_at_ms = Some(ms(now - start));
            row.thawed_by = Some(by);
            if let Err(e) = result {
                thaw_failed = true;
                row.verdict = Verdict::Failed;
                set_errno(row, e, true, "FITHAW");
            }
            if live_updates {
                rec.mounts[h.gi].state = MountState::Thawed;
                let _ = rec.write(&record_path);
            }
        }
    }
    let window_end = Instant::now();
    if window_start.is_some() {
        logbuf::release();
    }
    report.window_ms = window_start.map(|s| ms(window_end - s));
    if held
        .iter()
        .any(|h| rows[row_of[h.target]].thawed_by == Some(ThawedBy::Guardian))
    {
        report.messages.push(format!(
            "the {} s deadline passed: the guardian thawed",
            run.opts.timeout.as_secs_f64()
        ));
    }

    // 10. CMD's end.
    if let (Some((mut child, cmd_start)), Some(w)) = (cmd_child, waited) {
        let status = match w {
            Waited::Exited(status) => status,
            Waited::Deadline | Waited::Signal(_) => {
                let sig = match w {
                    Waited::Signal(s) => s,
                    _ => Signal::SIGTERM,
                };
                cmd_report.terminated = true;
                terminate(&mut child, sig, run.opts.kill_after)
            }
        };
        cmd_report.duration_ms = ms(cmd_start.elapsed());
        cmd_report.exit_code = status.code();
        cmd_report.signal = status.signal();
        match w {
            Waited::Exited(_) => {
                exit_code = match (status.code(), status.signal()) {
                    (Some(c), _) => u8::try_from(c).unwrap_or(255),
                    (None, Some(s)) => 128u8.saturating_add(s as u8),
                    _ => exit::FAILED,
                };
            }
            Waited::Deadline => {
                outcome = FreezeOutcome::Timeout;
                exit_code = exit::TIMEOUT;
            }
            Waited::Signal(sig) => {
                outcome = FreezeOutcome::Interrupted;
                exit_code = 128 + sig as u8;
                report.messages.push(format!(
                    "interrupted by {sig}: thawed at once, CMD got {sig}"
                ));
            }
        }
        // A deadline hit while CMD had already finished is still a timeout.
        if outcome == FreezeOutcome::Completed
            && rows.iter().any(|r| r.thawed_by == Some(ThawedBy::Guardian))
        {
            outcome = FreezeOutcome::Timeout;
            exit_code = exit::TIMEOUT;
        }
    }
    if cmd_started || cmd_report.error.is_some() {
        report.cmd = Some(cmd_report);
    }

    // 11. Thaw hooks, in reverse, for every hook that ran.
    if run_thaw_hooks(&ran_hooks, &mountpoints, run.opts, &mut report.hooks)
        && outcome == FreezeOutcome::Completed
    {
        outcome = FreezeOutcome::ThawFailed;
        exit_code = exit::FAILED;
        report.messages.push("a thaw hook failed".into());
    }
    if thaw_failed && outcome == FreezeOutcome::Completed {
        outcome = FreezeOutcome::ThawFailed;
        exit_code = exit::FAILED;
    }

    // 12. Release the guardian; drop the record.
    if let Some(g) = guardian.take() {
        for r in g.finish(Duration::from_secs(2)) {
            if let Report::Thawed { index, errno } = r {
                report.messages.push(format!(
                    "the guardian thawed '{}' at the end (errno {errno})",
                    ids.get(index)
                        .map(|m| m.0.display().to_string())
                        .unwrap_or_default()
                ));
            }
        }
    }
    record::remove(&record_path);
    for r in guardian_reports {
        if let Report::Thawed { index, errno } = r {
            if errno != 0 {
                report.messages.push(format!(
                    "the guardian's FITHAW of '{}' failed: {}",
                    ids.get(index)
                        .map(|m| m.0.display().to_string())
                        .unwrap_or_default(),
                    errno_name(Errno::from_raw(errno))
                ));
            }
        }
    }
    finish(report, rows, outcome, exit_code)
}

/// A signal that arrived (and was blocked) since the last look, SIGCHLD aside.
fn pending_signal(signals: &BlockedSignals) -> Option<Signal> {
    loop {
        match signals.wait(Duration::ZERO) {
            Some(Signal::SIGCHLD) => continue,
            other => return other,
        }
    }
}

/// Send `sig` to CMD, then SIGKILL after `kill_after`; wait for it.
fn terminate(child: &mut Child, sig: Signal, kill_after: Duration) -> std::process::ExitStatus {
    let _ = signal_pid(child.id(), sig);
    let end = Instant::now() + kill_after;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                return status;
            }
            return std::process::ExitStatus::from_raw(libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Run the thaw hooks of `ran` in reverse order; true if one failed.
fn run_thaw_hooks(
    ran: &[&hooks::Hook],
    mounts: &[PathBuf],
    opts: &Options,
    out: &mut Vec<HookRun>,
) -> bool {
    let mut failed = false;
    for hook in ran.iter().rev() {
        let r = hooks::run(hook, "thaw", mounts, opts.hook_timeout);
        failed |= r.result != "ok";
        out.push(r);
    }
    failed
}
