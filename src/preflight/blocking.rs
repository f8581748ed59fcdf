//! What blocks a backup, per check, as pure functions of the reports (README "What blocks a
//! backup"). Blocking is separate from severity: a warning can block (an ext4 that is not
//! clean), and a critical environment finding need not.

use crate::report::{
    Check, CheckStatus, Item, ItemStatus, MountVerdict, ScanReport, Section, Severity, Status,
    TargetReport, Verdict,
};

/// Finding ids that mean "not cleanly unmounted / needs journal or log recovery" on the
/// filesystem itself. At warning or worse (their severity already depends on the context:
/// a journaled ext4 mounted right now that says `not clean` is a warning, a no-journal ext2
/// that is mounted is expected to be and is only info) they block.
pub const UNCLEAN_FINDINGS: &[&str] = &[
    "ext.not-clean",
    "ext.needs-recovery",
    "ext.orphans-pending",
    "xfs.dirty-log",
    "btrfs.log-tree",
    "fat.dirty",
    "exfat.dirty",
    "f2fs.not-unmounted",
];

/// Why the backup must not copy this filesystem, or `None`: critical (recorded errors,
/// corrupt metadata), could not be assessed (`unknown`), or an unclean finding at warning
/// or worse.
pub fn filesystem_blocks(t: &TargetReport) -> Option<String> {
    let worst = t.findings.first();
    match t.status {
        Status::Critical => Some(format!(
            "recorded errors or corrupt metadata: {}",
            worst.map_or("critical", |f| f.message.as_str())
        )),
        Status::Unknown => Some(format!(
            "could not be assessed: {}",
            t.error
                .as_deref()
                .or(worst.map(|f| f.message.as_str()))
                .unwrap_or("unknown")
        )),
        Status::Ok | Status::Warning => t
            .findings
            .iter()
            .find(|f| f.severity >= Severity::Warning && UNCLEAN_FINDINGS.contains(&f.id))
            .map(|f| {
                if f.message.starts_with("not clean") {
                    f.message.clone()
                } else {
                    format!("not clean: {}", f.message)
                }
            }),
    }
}

/// Why this mount stops the backup, or `None`: a mount that cannot be frozen (unsupported,
/// failed, already frozen by someone else). Mounts skipped by configuration (`[freeze]`
/// skip globs and fstypes, Azure `MountsToSkip`) and read-only ones do not block.
pub fn mount_blocks(m: &MountVerdict) -> Option<String> {
    match m.verdict {
        Verdict::Freezable | Verdict::ReadOnly | Verdict::Skipped => None,
        Verdict::Unsupported | Verdict::AlreadyFrozen | Verdict::Failed => Some(format!(
            "cannot be frozen ({}): {}",
            m.verdict.label(),
            m.reason
        )),
    }
}

/// A SELinux check blocks when it fails: the agent or its extensions are blocked now.
pub fn selinux_blocks(c: &Check) -> bool {
    c.status == CheckStatus::Fail
}

/// The item status of a SELinux or environment check: a skip whose inputs could not be read
/// is `unknown`, one that does not apply is `skipped`.
pub fn check_status(c: &Check) -> ItemStatus {
    match c.status {
        CheckStatus::Pass => ItemStatus::Ok,
        CheckStatus::Warn => ItemStatus::Warning,
        CheckStatus::Fail => ItemStatus::Critical,
        CheckStatus::Skip if c.unreadable => ItemStatus::Unknown,
        CheckStatus::Skip => ItemStatus::Skipped,
    }
}

/// `status` raised to critical when the item blocks (a blocking item is at least critical).
fn raised(status: ItemStatus, blocks: bool) -> ItemStatus {
    if blocks { ItemStatus::Critical } else { status }
}

/// One item per scanned filesystem.
pub fn scan_items(report: &ScanReport) -> Vec<Item> {
    report
        .targets
        .iter()
        .map(|t| {
            let why = filesystem_blocks(t);
            let worst = t.findings.first();
            let message = match (&why, t.status) {
                (Some(why), _) => why.clone(),
                (None, Status::Ok) => match &t.state {
                    Some(state) => format!("clean (state: {state})"),
                    None => "clean".to_string(),
                },
                (None, _) => worst.map_or_else(String::new, |f| f.message.clone()),
            };
            Item {
                section: Section::Scan,
                id: t.target.clone(),
                device: t.device.clone(),
                mountpoint: t.mountpoint.clone(),
                fstype: t.fstype.clone(),
                status: raised(t.status.into(), why.is_some()),
                blocks_backup: why.is_some(),
                message,
                remedy: t
                    .findings
                    .iter()
                    .filter(|f| f.severity >= Severity::Warning)
                    .find_map(|f| f.remedy.clone()),
            }
        })
        .collect()
}

/// One item per mount point of the freeze test.
pub fn freeze_items(mounts: &[MountVerdict]) -> Vec<Item> {
    mounts
        .iter()
        .map(|m| {
            let why = mount_blocks(m);
            Item {
                section: Section::FreezeTest,
                id: m.mountpoint.clone(),
                device: m.device.clone(),
                mountpoint: Some(m.mountpoint.clone()),
                fstype: Some(m.fstype.clone()),
                status: raised(m.verdict.status().into(), why.is_some()),
                blocks_backup: why.is_some(),
                message: why.unwrap_or_else(|| format!("{}: {}", m.verdict.label(), m.reason)),
                remedy: None,
            }
        })
        .collect()
}

/// One item per check of `section`; `blocks` decides which block.
pub fn check_items(
    section: Section,
    checks: &[Check],
    blocks: impl Fn(&Check) -> bool,
) -> Vec<Item> {
    checks
        .iter()
        .map(|c| {
            let blocking = blocks(c);
            Item {
                section,
                id: c.id.to_string(),
                device: None,
                mountpoint: None,
                fstype: None,
                status: raised(check_status(c), blocking),
                blocks_backup: blocking,
                message: format!("{}: {}", c.title, c.message),
                remedy: c.remedy.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Context, Finding};

    fn target(status: Status, findings: Vec<Finding>) -> TargetReport {
        let mut t = TargetReport::new("/dev/loop3", Context::Live);
        t.status = status;
        t.findings = findings;
        t
    }

    #[test]
    fn an_unclean_journaled_ext4_blocks_although_it_is_a_warning() {
        let t = target(
            Status::Warning,
            vec![Finding::new(
                "ext.not-clean",
                Severity::Warning,
                "the filesystem was not cleanly unmounted",
            )],
        );
        let why = filesystem_blocks(&t).expect("blocks");
        assert!(why.starts_with("not clean: the filesystem"), "{why}");
        let items = scan_items(&ScanReport::new(vec![t]));
        assert!(items[0].blocks_backup);
        assert_eq!(items[0].status, ItemStatus::Critical);
    }

    #[test]
    fn expected_replay_markers_and_other_warnings_do_not_block() {
        // A mounted no-journal ext2 is "not clean" by design: info, not a block.
        let info = target(
            Status::Ok,
            vec![Finding::new("ext.not-clean", Severity::Info, "mounted")],
        );
        assert_eq!(filesystem_blocks(&info), None);
        let other = target(
            Status::Warning,
            vec![Finding::new(
                "ext.last-check-in-future",
                Severity::Warning,
                "clock",
            )],
        );
        assert_eq!(filesystem_blocks(&other), None);
        let items = scan_items(&ScanReport::new(vec![other]));
        assert_eq!(items[0].status, ItemStatus::Warning);
        assert!(!items[0].blocks_backup);
    }

    #[test]
    fn recorded_errors_and_unassessable_filesystems_block() {
        let errors = target(
            Status::Critical,
            vec![Finding::new(
                "ext.errors-flag",
                Severity::Critical,
                "errors",
            )],
        );
        assert!(
            filesystem_blocks(&errors)
                .unwrap()
                .starts_with("recorded errors")
        );
        let mut unknown = target(Status::Unknown, Vec::new());
        unknown.error = Some("permission denied".into());
        assert_eq!(
            filesystem_blocks(&unknown).unwrap(),
            "could not be assessed: permission denied"
        );
    }

    #[test]
    fn mounts_block_unless_freezable_read_only_or_skipped() {
        for (verdict, blocks) in [
            (Verdict::Freezable, false),
            (Verdict::ReadOnly, false),
            (Verdict::Skipped, false),
            (Verdict::Unsupported, true),
            (Verdict::AlreadyFrozen, true),
            (Verdict::Failed, true),
        ] {
            let m = MountVerdict::new("/data", None, "ext4", verdict, "why");
            assert_eq!(mount_blocks(&m).is_some(), blocks, "{verdict:?}");
            let item = &freeze_items(std::slice::from_ref(&m))[0];
            assert_eq!(item.blocks_backup, blocks);
            if blocks {
                assert_eq!(item.status, ItemStatus::Critical);
            }
        }
    }

    #[test]
    fn checks_block_as_told_and_unreadable_skips_are_unknown() {
        let fail = Check::new("S6", "agent domain", CheckStatus::Fail, "confined");
        let skip = Check::new("S2", "mode", CheckStatus::Skip, "absent");
        let unreadable = Check::cannot_read("S9", "denials", "not root");
        let items = check_items(Section::Selinux, &[fail, skip, unreadable], selinux_blocks);
        assert!(items[0].blocks_backup);
        assert_eq!(items[1].status, ItemStatus::Skipped);
        assert_eq!(items[2].status, ItemStatus::Unknown);
        assert!(!items[2].blocks_backup);
    }
}
