//! `snapguard preflight`: every read-only check in one run, what blocks a backup, and one
//! exit code for the caller's convention. The sections are run by `cli::preflight` (with the
//! other commands' report functions); this module decides, without I/O except
//! [`textfile`].

pub mod blocking;
pub mod profile;
pub mod prometheus;
pub mod textfile;

use crate::report::{
    Check, CheckSummary, Decision, FreezeTestReport, Item, ItemStatus, ItemSummary,
    PreflightReport, SCHEMA_VERSION, ScanReport, Section, SectionResult, SelinuxReport, Status,
};
use profile::Profile;

/// What each section produced: its report, or why it could not run.
pub struct Sections {
    /// The scan report and its status (UNKNOWN when nothing was scanned).
    pub scan: Result<(ScanReport, Status), String>,
    pub freeze_test: Result<FreezeTestReport, String>,
    pub selinux: Result<SelinuxReport, String>,
    /// The environment checks and, per check, whether it blocks a backup.
    pub environment: Vec<(Check, bool)>,
}

/// The worse of two statuses (critical beats unknown beats warning beats ok).
fn worse(a: Status, b: Status) -> Status {
    if b.rank() > a.rank() { b } else { a }
}

/// A section's status raised to critical when one of its items blocks.
fn section_status(own: Status, items: &[Item]) -> Status {
    if items.iter().any(|i| i.blocks_backup) {
        worse(own, Status::Critical)
    } else {
        own
    }
}

/// The environment section's status: fail → critical, warn → warning, and a check that could
/// not read its inputs → unknown (it could not look, so it cannot say OK).
fn environment_status(checks: &[Check]) -> Status {
    let mut status = CheckSummary::of(checks).status();
    if checks.iter().any(|c| c.unreadable) {
        status = worse(status, Status::Unknown);
    }
    status
}

/// Build the document from the sections' results.
pub fn assemble(
    sections: Sections,
    profile: Profile,
    probe_only: bool,
    duration_ms: f64,
) -> PreflightReport {
    let mut items = Vec::new();
    let mut results = Vec::new();
    let mut record = |section: Section, own: Status, error: Option<String>, new: Vec<Item>| {
        results.push(SectionResult {
            section,
            status: section_status(own, &new),
            error,
            items: new.len(),
        });
        items.extend(new);
    };

    let scan = match sections.scan {
        Ok((report, status)) => {
            record(Section::Scan, status, None, blocking::scan_items(&report));
            Some(report)
        }
        Err(e) => {
            record(Section::Scan, Status::Unknown, Some(e), Vec::new());
            None
        }
    };
    let freeze_test = match sections.freeze_test {
        Ok(report) => {
            record(
                Section::FreezeTest,
                report.summary.worst(),
                None,
                blocking::freeze_items(&report.mounts),
            );
            Some(report)
        }
        Err(e) => {
            record(Section::FreezeTest, Status::Unknown, Some(e), Vec::new());
            None
        }
    };
    let selinux = match sections.selinux {
        Ok(report) => {
            record(
                Section::Selinux,
                report.status,
                None,
                blocking::check_items(Section::Selinux, &report.checks, blocking::selinux_blocks),
            );
            Some(report)
        }
        Err(e) => {
            record(Section::Selinux, Status::Unknown, Some(e), Vec::new());
            None
        }
    };
    let (environment, env_blocks): (Vec<Check>, Vec<bool>) =
        sections.environment.into_iter().unzip();
    let mut env_items = blocking::check_items(Section::Environment, &environment, |_| false);
    for (item, blocks) in env_items.iter_mut().zip(&env_blocks) {
        if *blocks {
            item.blocks_backup = true;
            item.status = ItemStatus::Critical;
        }
    }
    record(
        Section::Environment,
        environment_status(&environment),
        None,
        env_items,
    );

    let blocked_by: Vec<String> = items
        .iter()
        .filter(|i| i.blocks_backup)
        .map(|i| format!("{} {}: {}", i.section.word(), i.id, i.message))
        .collect();
    let cannot_tell: Vec<String> = results
        .iter()
        .filter(|r| r.status == Status::Unknown || r.error.is_some())
        .map(|r| {
            format!(
                "{}: {}",
                r.section.word(),
                r.error.as_deref().unwrap_or(match r.section {
                    Section::Scan => "nothing could be scanned, or a filesystem not assessed",
                    Section::Selinux => "cannot tell whether SELinux blocks the agent",
                    _ => "a check could not read its inputs",
                })
            )
        })
        .collect();
    let status = results
        .iter()
        .fold(Status::Ok, |acc, r| worse(acc, r.status));
    let decision = if !blocked_by.is_empty() {
        Decision::Blocked
    } else if results.iter().any(|r| r.status == Status::Unknown) {
        Decision::CannotTell
    } else {
        Decision::Go
    };
    PreflightReport {
        schema_version: SCHEMA_VERSION,
        command: "preflight",
        profile: profile.word(),
        decision,
        status,
        exit_code: profile.exit_code(decision, status),
        blocked_by,
        cannot_tell,
        probe_only,
        duration_ms,
        summary: ItemSummary::of(&items),
        sections: results,
        items,
        scan,
        freeze_test,
        selinux,
        environment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CheckStatus, Context, MountVerdict, TargetReport, Verdict};

    fn clean_scan() -> (ScanReport, Status) {
        let mut t = TargetReport::new("/dev/loop3", Context::Live);
        t.mountpoint = Some("/data".into());
        let report = ScanReport::new(vec![t]);
        let status = report.summary.worst();
        (report, status)
    }

    fn freezable() -> FreezeTestReport {
        FreezeTestReport::new(
            true,
            60_000,
            vec![MountVerdict::new(
                "/data",
                None,
                "ext4",
                Verdict::Freezable,
                "ext4",
            )],
        )
    }

    fn sections(freeze: FreezeTestReport, env: Vec<(Check, bool)>) -> Sections {
        Sections {
            scan: Ok(clean_scan()),
            freeze_test: Ok(freeze),
            selinux: Err("no SELinux report in this unit test".into()),
            environment: env,
        }
    }

    #[test]
    fn a_section_that_cannot_run_is_cannot_tell() {
        let r = assemble(
            sections(freezable(), Vec::new()),
            Profile::Systemd,
            true,
            1.0,
        );
        assert_eq!(r.decision, Decision::CannotTell);
        assert_eq!(r.exit_code, 2);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(
            r.cannot_tell,
            vec!["selinux: no SELinux report in this unit test"]
        );
    }

    #[test]
    fn an_unfreezable_mount_blocks_and_is_listed() {
        let mut ft = freezable();
        ft.mounts[0].verdict = Verdict::AlreadyFrozen;
        ft.mounts[0].reason = "someone else froze it".into();
        let mut s = sections(ft, Vec::new());
        s.selinux = Err("x".into());
        let r = assemble(s, Profile::Azure, true, 1.0);
        assert_eq!(r.decision, Decision::Blocked);
        assert_eq!(r.exit_code, 1);
        assert_eq!(
            r.blocked_by,
            vec!["freeze-test /data: cannot be frozen (already-frozen): someone else froze it"]
        );
        assert_eq!(r.sections[1].status, Status::Critical);
        assert_eq!(r.summary.blocking, 1);
    }

    #[test]
    fn environment_blocking_is_the_module_s_call() {
        let warn = Check::new("E3", "memory", CheckStatus::Warn, "91 % used");
        let fail = Check::new("E9", "waagent", CheckStatus::Fail, "not running");
        let mut s = sections(freezable(), vec![(warn.clone(), false)]);
        s.selinux = Err("x".into());
        let r = assemble(s, Profile::Nagios, true, 1.0);
        assert_eq!(r.sections[3].status, Status::Warning);
        assert!(!r.items.last().unwrap().blocks_backup);
        let s = sections(freezable(), vec![(warn, false), (fail, true)]);
        let r = assemble(s, Profile::Nagios, true, 1.0);
        assert_eq!(r.decision, Decision::Blocked);
        assert_eq!(r.exit_code, 2);
        assert_eq!(r.blocked_by, vec!["environment E9: waagent: not running"]);
        let unreadable = Check::cannot_read("E1", "agent", "not root");
        assert_eq!(environment_status(&[unreadable]), Status::Unknown);
    }
}
