//! The report rows of `freeze-test` and `freeze`: one per superblock (plus one per duplicate
//! mount point), first with the static verdict, then with what the guardian did (timings, who
//! thawed, errnos), written from the typed progress of each mount, never from string markers.

use super::control::{FreezeResult, MountProgress, ThawRecord};
use super::guardian::WindowEnd;
use super::guardian::protocol::signal_name;
use super::presync::SyncResult;
use super::probe::{self, Static};
use super::skip::SkipRules;
use super::{Target, ms};
use crate::report::{MountVerdict, ThawedBy, Verdict};
use crate::sys::freeze::{errno_meaning, errno_name};
use nix::errno::Errno;
use std::time::Duration;

/// Static rows for all targets: the rows, the row index of each target, and each target's
/// static result.
pub fn static_rows(
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
        describe_backing(t, &mut row, &mut reason);
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

/// Name a loop-backed target's image(s) and where they live, in the row and its reason.
fn describe_backing(t: &Target, row: &mut MountVerdict, reason: &mut String) {
    if let Some(first) = t.backing.first() {
        row.backing_file = Some(first.file.display().to_string());
        row.backing_mount = first
            .holder
            .found()
            .map(|h| h.mount_point.display().to_string());
    }
    row.backing = t.backing.iter().map(super::plan::Backing::report).collect();
    if let Some(note) = super::plan::describe_backing(&t.backing) {
        reason.push_str("; ");
        reason.push_str(&note);
    }
}

/// Copy each target row's verdict to its duplicate rows.
pub fn propagate_to_duplicates(rows: &mut [MountVerdict]) {
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

/// Record a failed call on a row: errno name, and the reason with the errno's meaning.
pub fn set_errno(row: &mut MountVerdict, errno: Errno, thawing: bool, what: &str) {
    row.errno = Some(errno_name(errno).to_string());
    row.reason = format!(
        "{what}: {} ({})",
        errno_name(errno),
        errno_meaning(errno, thawing)
    );
}

/// Whether a row is being written for `freeze-test` (each mount frozen and thawed on its own:
/// a guardian thaw is a failure of the test) or for `freeze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Test,
    Freeze,
}

fn why_thawed(t: &ThawRecord) -> String {
    match (t.by, t.why) {
        (ThawedBy::Controller, _) => {
            "thawed by snapguard itself after the guardian was gone".to_string()
        }
        (_, Some(WindowEnd::Deadline)) => "thawed by the guardian at the deadline".to_string(),
        (_, Some(WindowEnd::Signal(n))) => {
            format!("thawed by the guardian on {}", signal_name(n))
        }
        (_, Some(WindowEnd::ControllerGone)) => {
            "thawed by the guardian after snapguard died".to_string()
        }
        (_, Some(WindowEnd::Error)) => {
            "thawed by the guardian when it could not wait any more".to_string()
        }
        (ThawedBy::Guardian, _) => "thawed by the guardian on its own".to_string(),
        (ThawedBy::Snapguard, _) => "thawed".to_string(),
    }
}

/// Write what happened to `m` into its row. `start_ns`: the command's start (CLOCK_BOOTTIME).
pub fn apply_progress(
    row: &mut MountVerdict,
    m: &MountProgress,
    start_ns: u64,
    timeout: Duration,
    run: Run,
) {
    let since_start = |ns: u64| ms(Duration::from_nanos(ns.saturating_sub(start_ns)));
    let span = |a: u64, b: u64| ms(Duration::from_nanos(b.saturating_sub(a)));
    if !m.access.detour.is_empty() {
        row.reason = format!(
            "{}; reached through '{}' ({})",
            row.reason,
            m.access.path.display(),
            m.access.detour.join("; ")
        );
    }
    match m.sync {
        Some(SyncResult::Done { passes, took }) => {
            row.sync_ms = Some(ms(took));
            row.sync_passes = Some(passes);
        }
        Some(SyncResult::Failed(_, took)) => row.sync_ms = Some(ms(took)),
        Some(SyncResult::TimedOut(took)) => {
            row.sync_ms = Some(ms(took));
            row.verdict = Verdict::Failed;
            row.errno = Some("ETIMEDOUT".into());
            row.reason = format!(
                "syncfs did not finish within {} s (a hung device, or a huge amount of dirty \
                 data): not frozen",
                took.as_secs_f64().round()
            );
            return;
        }
        None => {}
    }
    if m.unknown {
        row.verdict = Verdict::Failed;
        row.reason = format!(
            "the guardian died inside FIFREEZE: this filesystem may be frozen (if writes to it \
             block, run `snapguard thaw --force {}` after making sure no other tool froze it)",
            crate::shell::quote_path(&m.access.path)
        );
        return;
    }
    let Some(freeze) = m.freeze else {
        if m.requested {
            row.verdict = Verdict::Failed;
            row.reason = "FIFREEZE has not returned (a hung device, or its image on a filesystem \
                          frozen by someone else): the guardian thaws it the moment it returns"
                .to_string();
            return;
        }
        if run == Run::Freeze && row.verdict == Verdict::Freezable {
            row.reason = format!("{} (not frozen: the run stopped before it)", row.reason);
        }
        return;
    };
    match freeze {
        FreezeResult::Refused => {
            row.verdict = Verdict::Failed;
            row.reason =
                "not frozen: the guardian had already ended the window (deadline or signal)"
                    .to_string();
        }
        FreezeResult::Busy { start, end } => {
            row.freeze_ms = Some(span(start, end));
            row.verdict = Verdict::AlreadyFrozen;
            set_errno(row, Errno::EBUSY, false, "FIFREEZE");
        }
        FreezeResult::Failed { errno, start, end } => {
            row.freeze_ms = Some(span(start, end));
            let e = Errno::from_raw(errno);
            let unsupported = matches!(e, Errno::EOPNOTSUPP | Errno::ENOTTY)
                || (run == Run::Test && e == Errno::EINVAL);
            row.verdict = if unsupported {
                Verdict::Unsupported
            } else {
                Verdict::Failed
            };
            let what = if unsupported && run == Run::Freeze {
                "FIFREEZE (left unfrozen)"
            } else {
                "FIFREEZE"
            };
            set_errno(row, e, false, what);
        }
        FreezeResult::Frozen { start, end } => {
            row.freeze_ms = Some(span(start, end));
            row.frozen_at_ms = Some(since_start(end));
            let Some(thaw) = m.thaw else {
                row.verdict = Verdict::Failed;
                row.reason = "frozen, and no thaw was reported: it may still be frozen".into();
                return;
            };
            row.frozen_ms = Some(span(end, thaw.start));
            row.thaw_ms = Some(span(thaw.start, thaw.end));
            row.thawed_at_ms = Some(since_start(thaw.end));
            row.thawed_by = Some(thaw.by);
            row.thaw_reason = Some(why_thawed(&thaw));
            let e = Errno::from_raw(thaw.errno);
            if thaw.errno == 0 {
                if thaw.by != ThawedBy::Snapguard {
                    if run == Run::Test {
                        row.verdict = Verdict::Failed;
                    }
                    row.reason = match thaw.why {
                        Some(WindowEnd::Deadline) if run == Run::Test => format!(
                            "froze, but FIFREEZE took so long that the guardian thawed it at \
                             the {} s deadline",
                            timeout.as_secs_f64()
                        ),
                        _ => format!("{}; {}", row.reason, why_thawed(&thaw)),
                    };
                }
            } else if e == Errno::EINVAL {
                // Not frozen any more when the thaw came: someone else thawed it.
                row.verdict = Verdict::Failed;
                set_errno(
                    row,
                    e,
                    true,
                    "froze, but someone else thawed it before snapguard did (the frozen window \
                     was broken)",
                );
            } else {
                row.verdict = Verdict::Failed;
                set_errno(
                    row,
                    e,
                    true,
                    "froze, but FITHAW failed: IT MAY STILL BE FROZEN (snapguard thaw, or echo j \
                     > /proc/sysrq-trigger)",
                );
            }
        }
    }
}
