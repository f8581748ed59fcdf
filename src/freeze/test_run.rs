//! `freeze-test`: the static verdict of every mount point, then (unless `--probe-only`) a real
//! FIFREEZE and FITHAW of each candidate superblock, one at a time, each in its own window under
//! the guardian (which issues both calls and writes the run's record like `freeze` does).

use super::access;
use super::control::{Control, MountProgress};
use super::guardian::{Spec, SpecMount};
use super::probe::Static;
use super::record;
use super::rows::{self, Run};
use super::{Plan, logbuf};
use crate::report::{FreezeTestReport, Verdict};
use crate::root::PROC;
use crate::sys::process::{ProcessIdentity, SignalWatch, boottime_ns};
use std::time::Duration;

/// Everything `freeze-test` needs.
pub struct TestRun<'a> {
    pub plan: Plan<'a>,
    /// `None` with `--probe-only` (nothing is frozen, any user may run it).
    pub signals: Option<&'a SignalWatch>,
}

/// Static verdicts only (`--probe-only`).
fn probe_only(run: &TestRun<'_>) -> FreezeTestReport {
    let (mut rows, row_of, statics) = rows::static_rows(run.plan.targets, run.plan.skip);
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
    rows::propagate_to_duplicates(&mut rows);
    FreezeTestReport::new(true, run.plan.opts.timeout.as_millis() as u64, rows)
}

/// Run the test.
pub fn freeze_test(run: &TestRun<'_>) -> anyhow::Result<FreezeTestReport> {
    let Some(signals) = run.signals else {
        return Ok(probe_only(run));
    };
    let start_ns = boottime_ns();
    let timeout_ms = run.plan.opts.timeout.as_millis() as u64;
    let (mut rows, row_of, statics) = rows::static_rows(run.plan.targets, run.plan.skip);

    let mut mounts = Vec::new();
    for &i in run.plan.order {
        if !matches!(statics[i], Static::Try { .. }) {
            continue;
        }
        match access::open_target(&run.plan.targets[i], run.plan.table) {
            Ok(a) => mounts.push(MountProgress::new(i, a)),
            Err(why) => {
                let row = &mut rows[row_of[i]];
                row.verdict = Verdict::Failed;
                row.reason = why;
            }
        }
    }
    if mounts.is_empty() {
        rows::propagate_to_duplicates(&mut rows);
        return Ok(FreezeTestReport::new(false, timeout_ms, rows));
    }
    let record = record::create_dir(run.plan.root).ok().map(|()| {
        let path = record::path_for(run.plan.root, std::process::id());
        record::set_aside_stale(&path);
        path
    });
    let spec = Spec {
        command: "freeze-test".into(),
        controller: ProcessIdentity::myself(&run.plan.root.path(PROC)).unwrap_or(ProcessIdentity {
            pid: std::process::id(),
            start_time: 0,
        }),
        timeout_ms,
        kill_after_ms: 0,
        hook_timeout_ms: 0,
        record,
        record_mount: None, // set below, once the mounts are in `control`
        mounts: mounts
            .iter()
            .map(|m| SpecMount {
                mountpoint: run.plan.targets[m.target].mountpoint.clone(),
                access: m.access.path.clone(),
                expected: m.access.expected,
            })
            .collect(),
        hooks: Vec::new(),
        hook_output_fd: None,
        expedite_rcu: run.plan.opts.expedite_rcu,
    };
    let mut control = Control::new(signals, mounts);
    let spec = Spec {
        record_mount: control.record_mount(&run.plan),
        ..spec
    };
    control.start_guardian(&spec, &[])?;

    let n = control.mounts.len();
    for gi in 0..n {
        control.pump(&[], Some(Duration::ZERO));
        if control.signal.is_some() || control.gone {
            break;
        }
        control.presync(gi, run.plan.opts.sync_timeout, false);
        if control.signal.is_some() || control.gone {
            break;
        }
        if matches!(
            control.mounts[gi].sync,
            Some(super::presync::SyncResult::TimedOut(_))
        ) {
            continue;
        }
        if !control.open_window() {
            break;
        }
        logbuf::hold();
        control.freeze(gi);
        control.thaw_all();
        let still = control.still_frozen(run.plan.targets);
        logbuf::release_avoiding(&still, run.plan.table);
    }
    control.finish();

    for m in &control.mounts {
        let row = &mut rows[row_of[m.target]];
        rows::apply_progress(row, m, start_ns, run.plan.opts.timeout, Run::Test);
        if !m.requested && m.sync.is_none() {
            row.verdict = Verdict::Failed;
            row.reason = match (control.signal, &control.gone_why) {
                (Some(n), _) => format!(
                    "not tested: snapguard was interrupted by {}",
                    super::guardian::protocol::signal_name(n)
                ),
                (None, Some(why)) => format!("not tested: the guardian is gone ({why})"),
                _ => "not tested".to_string(),
            };
        }
    }
    rows::propagate_to_duplicates(&mut rows);
    let mut report = FreezeTestReport::new(false, timeout_ms, rows);
    report.messages = control.messages;
    Ok(report)
}
