//! Human rendering of the `preflight` document: the decision first, one "backup blocked by"
//! line per blocking item, then each section's items (problems with their fix; passing and
//! not-applicable ones counted, not listed).

use super::human::sanitize;
use super::preflight::{Decision, ItemStatus, PreflightReport, Section};
use std::io::{self, Write};

/// Render the `preflight` document.
pub fn write_preflight(report: &PreflightReport, out: &mut dyn Write) -> io::Result<()> {
    let headline = match report.decision {
        Decision::Go if report.status == super::Status::Ok => "GO: nothing stops the backup",
        Decision::Go => "GO: nothing stops the backup (findings below)",
        Decision::Blocked => "BLOCKED: the backup would not be consistent",
        Decision::CannotTell => {
            "CANNOT TELL: nothing found blocks the backup, but not everything could be checked"
        }
    };
    writeln!(
        out,
        "snapguard preflight: {headline} ({} {}, exit {})",
        report.profile,
        report.status.label(),
        report.exit_code
    )?;
    for b in &report.blocked_by {
        writeln!(out, "backup blocked by: {}", sanitize(b))?;
    }
    for c in &report.cannot_tell {
        writeln!(out, "cannot tell: {}", sanitize(c))?;
    }
    for section in &report.sections {
        let items: Vec<_> = report
            .items
            .iter()
            .filter(|i| i.section == section.section)
            .collect();
        let passed = items
            .iter()
            .filter(|i| matches!(i.status, ItemStatus::Ok | ItemStatus::Skipped))
            .count();
        let title = match section.section {
            Section::FreezeTest if report.probe_only => {
                "freeze-test (static verdicts; --freeze-test freezes for real)"
            }
            s => s.word(),
        };
        writeln!(out)?;
        writeln!(
            out,
            "{:<8}  {title}: {} item(s), {passed} ok or not applicable",
            section.status.label(),
            items.len()
        )?;
        if let Some(e) = &section.error {
            writeln!(out, "  could not run: {}", sanitize(e))?;
        }
        for i in items
            .iter()
            .filter(|i| !matches!(i.status, ItemStatus::Ok | ItemStatus::Skipped))
        {
            let mut what = sanitize(&i.id);
            match (&i.mountpoint, &i.fstype) {
                (Some(m), Some(f)) if *m != i.id => {
                    what = format!("{what} on {} ({})", sanitize(m), sanitize(f))
                }
                (_, Some(f)) => what = format!("{what} ({})", sanitize(f)),
                _ => {}
            }
            writeln!(
                out,
                "  {:<8}  {what}: {}{}",
                i.status.label(),
                sanitize(&i.message),
                if i.blocks_backup {
                    "  [blocks backup]"
                } else {
                    ""
                }
            )?;
            if let Some(r) = &i.remedy {
                writeln!(out, "            fix: {}", sanitize(r))?;
            }
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{}: {} ok, {} warning, {} critical, {} unknown, {} not applicable; {} blocking",
        report.status.label(),
        s.ok,
        s.warning,
        s.critical,
        s.unknown,
        s.skipped,
        s.blocking
    )?;
    out.flush()
}
