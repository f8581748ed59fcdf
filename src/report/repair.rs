//! The `snapguard repair` document (keep in sync with
//! `docs/json-schema/repair-v1.schema.json`).

use super::model::{SCHEMA_VERSION, Status, Summary};
use serde::{Deserialize, Serialize};

/// What one step did (`steps` in the JSON; also kept in the state record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStep {
    /// `discover`, `assess`, `plan`, `confirm`, `quiesce`, `unmount`, `fence`, `check`,
    /// `replay`, `backup`, `repair`, `verify`, `restore`, `freeze-test`, `rollback`, `resume`,
    /// `discard-record`, ...
    pub step: String,
    /// `ok`, `failed`, `refused`, `skipped`, `planned`, `started`.
    pub result: String,
    /// One line: what happened.
    pub detail: String,
    /// The command run (or planned), as it can be pasted into a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// How long it took.
    #[serde(default)]
    pub duration_ms: u64,
}

/// How one filesystem's repair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepairOutcome {
    /// Clean: nothing to do.
    NothingToDo,
    /// Repaired, verified and back in service.
    Repaired,
    /// `--dry-run`: the plan only.
    Planned,
    /// `/` and friends: a boot-time check was scheduled (or planned).
    BootCheckScheduled,
    /// The check found errors that this tier may not (or could not) fix; mounted as before
    /// when nothing was written.
    ErrorsLeft,
    /// Left unmounted for a human: the verify failed or an earlier repair was interrupted.
    Held,
    /// Refused before anything changed (holders, policy, not supported).
    Refused,
    /// A step failed; what was undone is in the steps.
    Failed,
    /// The admin said no.
    Declined,
}

impl RepairOutcome {
    /// The fsck bit this outcome sets in the exit status.
    pub fn exit_bit(self) -> u8 {
        match self {
            RepairOutcome::NothingToDo => 0,
            RepairOutcome::Repaired => 1,
            RepairOutcome::BootCheckScheduled => 2,
            RepairOutcome::Planned | RepairOutcome::ErrorsLeft | RepairOutcome::Held => 4,
            RepairOutcome::Refused | RepairOutcome::Failed => 8,
            RepairOutcome::Declined => 32,
        }
    }

    /// Its status in the summary.
    pub fn status(self) -> Status {
        match self {
            RepairOutcome::NothingToDo | RepairOutcome::Repaired => Status::Ok,
            RepairOutcome::Planned | RepairOutcome::BootCheckScheduled => Status::Warning,
            RepairOutcome::ErrorsLeft | RepairOutcome::Held => Status::Critical,
            RepairOutcome::Refused | RepairOutcome::Failed | RepairOutcome::Declined => {
                Status::Unknown
            }
        }
    }
}

/// Something in the way of unmounting, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// `process`, `unreadable-process`, `submount`, `other-mount`, `other-namespace`, `swap`,
    /// `loop`, `block-holder`.
    pub kind: String,
    /// The process, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its systemd unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// How it holds the filesystem (`cwd`, `fd 3 /mnt/x`, `mount /mnt/x/sub`, ...).
    pub how: String,
}

/// A boot-time check for a filesystem that cannot be unmounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootCheckReport {
    pub mechanism: String,
    pub why: String,
    pub commands: Vec<String>,
    pub undo: Vec<String>,
    /// The commands are to be carried out by hand.
    pub manual: bool,
    /// Whether `repair` carried them out.
    pub applied: bool,
}

/// The metadata backup taken before the first write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub path: String,
    pub bytes: u64,
    /// The e2fsck undo file (`e2undo FILE DEVICE` reverts the repair).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_file: Option<String>,
}

/// One filesystem's repair.
#[derive(Debug, Clone, Serialize)]
pub struct RepairTarget {
    /// As named on the command line (or the mount point, without TARGET).
    pub target: String,
    pub device: Option<String>,
    pub fstype: Option<String>,
    /// Every mount point of the filesystem before the repair.
    pub mountpoints: Vec<String>,
    pub outcome: RepairOutcome,
    /// One line: why it ended so.
    pub message: String,
    /// The scan's verdict before (`ok`, `warning`, ...) and, for ext, the state.
    pub state_before: Option<String>,
    /// The scan's verdict after.
    pub state_after: Option<String>,
    /// What was (or would be) in the way.
    pub blockers: Vec<Blocker>,
    /// What could not be looked at and is not counted as in the way because `--trust-fence`
    /// lets it pass (processes whose /proc entries cannot be read): the unmount and the O_EXCL
    /// fence prove the device free instead.
    pub trusted: Vec<Blocker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_check: Option<BootCheckReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupReport>,
    /// The freeze-test verdict of the repaired filesystem (`freezable`, ...).
    pub freeze_test: Option<String>,
    /// Differences between the mounts before and after (empty: restored exactly).
    pub differences: Vec<String>,
    /// Where the state record is (kept when the filesystem is held for a human).
    pub record: Option<String>,
    pub steps: Vec<RepairStep>,
}

impl RepairTarget {
    /// An empty entry for `target`.
    pub fn new(target: impl Into<String>) -> Self {
        RepairTarget {
            target: target.into(),
            device: None,
            fstype: None,
            mountpoints: Vec::new(),
            outcome: RepairOutcome::Failed,
            message: String::new(),
            state_before: None,
            state_after: None,
            blockers: Vec::new(),
            trusted: Vec::new(),
            boot_check: None,
            backup: None,
            freeze_test: None,
            differences: Vec::new(),
            record: None,
            steps: Vec::new(),
        }
    }
}

/// The whole `repair` document.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub summary: Summary,
    pub dry_run: bool,
    /// The exit status (the fsck bitmask).
    pub exit_code: u8,
    pub targets: Vec<RepairTarget>,
    /// Every target's steps in the order they ran, each naming its target.
    pub steps: Vec<TargetStep>,
    pub messages: Vec<String>,
}

/// A step with the target it belongs to (the top-level `steps` list).
#[derive(Debug, Clone, Serialize)]
pub struct TargetStep {
    pub target: String,
    #[serde(flatten)]
    pub step: RepairStep,
}

impl RepairReport {
    /// Build the document: summary, exit status (OR of the outcomes' bits, or `usage_bits`).
    pub fn new(targets: Vec<RepairTarget>, dry_run: bool, extra_bits: u8) -> Self {
        let mut summary = Summary::default();
        let mut exit_code = extra_bits;
        for t in &targets {
            summary.add(t.outcome.status());
            exit_code |= t.outcome.exit_bit();
        }
        let steps = targets
            .iter()
            .flat_map(|t| {
                t.steps.iter().map(|s| TargetStep {
                    target: t.target.clone(),
                    step: s.clone(),
                })
            })
            .collect();
        RepairReport {
            schema_version: SCHEMA_VERSION,
            command: "repair",
            summary,
            dry_run,
            exit_code,
            targets,
            steps,
            messages: Vec::new(),
        }
    }
}

/// One state record, for `repair --status`.
#[derive(Debug, Clone, Serialize)]
pub struct RepairStatusEntry {
    pub record: String,
    pub device: String,
    pub fstype: String,
    /// `discovered` … `done`, `rolled-back`, `held`.
    pub phase: String,
    pub pid: u32,
    pub mountpoints: Vec<String>,
    /// Unix time of the last transition.
    pub updated: u64,
    pub last_step: Option<String>,
    /// Recorded mount points where the filesystem is mounted now (a record that is not final
    /// and lists every one was mounted again by hand: `--resume` releases it).
    pub mounted_now: Vec<String>,
    /// What to do about a record that is not final, one line (null for a final one).
    pub hint: Option<String>,
}

/// The `repair --status` document.
#[derive(Debug, Clone, Serialize)]
pub struct RepairStatusReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub records: Vec<RepairStatusEntry>,
}

impl RepairStatusReport {
    /// Build the document.
    pub fn new(records: Vec<RepairStatusEntry>) -> Self {
        RepairStatusReport {
            schema_version: SCHEMA_VERSION,
            command: "repair-status",
            records,
        }
    }
}
