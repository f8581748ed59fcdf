//! The `preflight` document: every read-only check of one run, what blocks a backup, and the
//! exit code of the chosen profile. Keep in sync with
//! `docs/json-schema/preflight-v1.schema.json`.

use super::model::{Check, FreezeTestReport, ScanReport, SelinuxReport, Status};
use serde::Serialize;

/// Which part of the run an item comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    /// `scan` of every mounted local block filesystem.
    Scan,
    /// `freeze-test` (static verdicts unless `--freeze-test`).
    FreezeTest,
    /// `selinux`.
    Selinux,
    /// The environment checks (agent, extension, pressure, mounts, network).
    Environment,
}

impl Section {
    /// Every section, in report order.
    pub const ALL: [Section; 4] = [
        Section::Scan,
        Section::FreezeTest,
        Section::Selinux,
        Section::Environment,
    ];

    /// The JSON spelling (also the Prometheus `section` label).
    pub fn word(self) -> &'static str {
        match self {
            Section::Scan => "scan",
            Section::FreezeTest => "freeze-test",
            Section::Selinux => "selinux",
            Section::Environment => "environment",
        }
    }
}

/// The status of one item: the Nagios four, plus `skipped` for a check that does not apply
/// here (a check skipped because it could not read its inputs is `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Ok,
    Warning,
    Critical,
    Unknown,
    Skipped,
}

impl ItemStatus {
    /// The Nagios status this counts as (`skipped` as ok: nothing to check).
    pub fn status(self) -> Status {
        match self {
            ItemStatus::Ok | ItemStatus::Skipped => Status::Ok,
            ItemStatus::Warning => Status::Warning,
            ItemStatus::Critical => Status::Critical,
            ItemStatus::Unknown => Status::Unknown,
        }
    }

    /// Upper-case label for human output.
    pub fn label(self) -> &'static str {
        match self {
            ItemStatus::Skipped => "SKIP",
            other => other.status().label(),
        }
    }
}

impl From<Status> for ItemStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Ok => ItemStatus::Ok,
            Status::Warning => ItemStatus::Warning,
            Status::Critical => ItemStatus::Critical,
            Status::Unknown => ItemStatus::Unknown,
        }
    }
}

/// One thing checked: a filesystem, a mount point, a SELinux or environment check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub section: Section,
    /// Stable within its section: the scan target, the mount point, the check id.
    pub id: String,
    /// The block device, for filesystems and mounts.
    pub device: Option<String>,
    /// The mount point, for filesystems and mounts.
    pub mountpoint: Option<String>,
    /// The filesystem type, for filesystems and mounts.
    pub fstype: Option<String>,
    pub status: ItemStatus,
    /// True when this item alone stops the backup (README "What blocks a backup").
    pub blocks_backup: bool,
    /// One line: the verdict and why.
    pub message: String,
    /// The command that fixes it, when there is one.
    pub remedy: Option<String>,
}

/// The outcome of one section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionResult {
    pub section: Section,
    /// The section's status as its own command would give it (`unknown` when it could not
    /// run or cannot tell), raised to `critical` when one of its items blocks the backup.
    pub status: Status,
    /// Why the section could not run at all; null when it ran.
    pub error: Option<String>,
    /// How many items it contributed.
    pub items: usize,
}

/// Counts of items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ItemSummary {
    pub ok: usize,
    pub warning: usize,
    pub critical: usize,
    pub unknown: usize,
    pub skipped: usize,
    /// Items with `blocks_backup`.
    pub blocking: usize,
}

impl ItemSummary {
    /// Count `items`.
    pub fn of(items: &[Item]) -> Self {
        let mut s = ItemSummary::default();
        for i in items {
            match i.status {
                ItemStatus::Ok => s.ok += 1,
                ItemStatus::Warning => s.warning += 1,
                ItemStatus::Critical => s.critical += 1,
                ItemStatus::Unknown => s.unknown += 1,
                ItemStatus::Skipped => s.skipped += 1,
            }
            s.blocking += usize::from(i.blocks_backup);
        }
        s
    }
}

/// What the run says about the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing blocks it and every section could tell (warnings may remain).
    Go,
    /// At least one item blocks it.
    Blocked,
    /// Nothing found blocks it, but a section could not run or could not tell.
    CannotTell,
}

impl Decision {
    /// The JSON spelling.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Go => "go",
            Decision::Blocked => "blocked",
            Decision::CannotTell => "cannot-tell",
        }
    }
}

/// The `preflight` document.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub schema_version: u32,
    pub command: &'static str,
    /// The exit-code profile: `nagios`, `human`, `systemd` or `azure`.
    pub profile: &'static str,
    /// go, blocked or cannot-tell.
    pub decision: Decision,
    /// The worst section status (a blocking item counts as critical).
    pub status: Status,
    /// The exit code of this run under `profile`.
    pub exit_code: u8,
    /// One line per blocking item: `section id: why`.
    pub blocked_by: Vec<String>,
    /// One line per section that could not run or could not tell.
    pub cannot_tell: Vec<String>,
    /// Whether the freeze test only gave static verdicts (nothing was frozen).
    pub probe_only: bool,
    /// Wall-clock time of the run.
    pub duration_ms: f64,
    pub summary: ItemSummary,
    pub sections: Vec<SectionResult>,
    /// Every item of every section, in section order.
    pub items: Vec<Item>,
    /// The full `scan` document (null when the scan could not run).
    pub scan: Option<ScanReport>,
    /// The full `freeze-test` document (null when it could not run).
    pub freeze_test: Option<FreezeTestReport>,
    /// The full `selinux` document (null when it could not run).
    pub selinux: Option<SelinuxReport>,
    /// The environment checks as their module reports them.
    pub environment: Vec<Check>,
}
