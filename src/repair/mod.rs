//! `snapguard repair`: umount → fsck → remount, safely (repair.md §7).
//!
//! The state machine lives in [`machine`]; each step's work lives in a module of its own:
//! [`discover`] (every mount of the superblock in every namespace, swap, loop, units, fstab),
//! [`holders`] (processes holding it, through `procfs` under `SysRoot`), [`checker`] (the
//! per-filesystem commands and how their exit codes read), [`mountops`] (unmount, fence,
//! restore with the recorded options, verify), [`autoclear`] (the loop device of `mount -o
//! loop` kept attached while unmounted), [`boot_check`] (`/` and friends), [`state`]
//! (the record in `/run/snapguard`), [`plan`] (what will happen, printed before it happens).

pub mod autoclear;
pub mod boot_check;
pub mod checker;
pub mod discover;
pub mod failpoint;
pub mod holders;
pub mod machine;
pub mod mountops;
pub mod progress;
pub mod quiesce;
pub mod state;
pub mod subject;
pub mod units;
pub mod window;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The exit status bits (fsck's, DESIGN.md §1), OR-ed over the targets.
pub mod exit {
    /// Nothing to do: clean.
    pub const NOTHING: u8 = 0;
    /// Repaired and back in service.
    pub const REPAIRED: u8 = 1;
    /// A boot-time check was scheduled (reboot needed).
    pub const REBOOT: u8 = 2;
    /// Errors left (or a plan not carried out: `--dry-run`, held for a human).
    pub const ERRORS_LEFT: u8 = 4;
    /// Operational error: busy, refused, fence or restore failed, tool missing.
    pub const OPERATIONAL: u8 = 8;
    /// Usage: bad arguments, or no terminal and no `--yes`.
    pub const USAGE: u8 = 16;
    /// Declined at the prompt.
    pub const DECLINED: u8 = 32;
    /// `--maintenance` outside the configured window: nothing done (never OR-ed with others).
    pub const OUTSIDE_WINDOW: u8 = 64;
}

/// What the admin (or the `[repair]` policy) allows.
#[derive(Debug, Clone)]
pub struct Options {
    /// How far a repair may go.
    pub tier: Tier,
    /// `--dry-run`: plan only.
    pub dry_run: bool,
    /// Check even when the scan says clean.
    pub force: bool,
    /// Stop the systemd units of holding processes (restarted after).
    pub stop_units: bool,
    /// End holding processes (SIGTERM, then SIGKILL after `grace`).
    pub terminate_holders: bool,
    /// Grace period between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// `xfs_repair -L` is allowed on exactly this device.
    pub zero_log: Option<PathBuf>,
    /// Go on when PID 1's namespace or parts of /proc cannot be read, relying on the unmount
    /// and the O_EXCL fence.
    pub trust_fence: bool,
    /// Where metadata backups and e2fsck undo files go (never on the target).
    pub backup_dir: PathBuf,
    /// Bound on each read-only check.
    pub check_timeout: Duration,
    /// Bound on each replay, backup and repair.
    pub repair_timeout: Duration,
    /// Run a freeze test on the repaired filesystem.
    pub freeze_test: bool,
    /// Globs of mount points and devices never touched (`[repair] never`).
    pub never: Vec<String>,
    /// Continue a repair held for a human (`--resume`).
    pub resume: bool,
    /// Forget the state record of each TARGET and change nothing else (`--discard-record`).
    pub discard_record: bool,
}

/// The filesystem families `repair` knows how to check and repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// ext2, ext3, ext4 (e2fsck).
    Ext,
    /// XFS (xfs_repair).
    Xfs,
    /// btrfs (btrfs check; never `--repair`).
    Btrfs,
    /// FAT12/16/32 (fsck.fat).
    Fat,
}

impl FsKind {
    /// The family of a mountinfo or blkid filesystem type name (`ext4`, `vfat`, ...).
    pub fn from_fs_type(fs_type: &str) -> Option<FsKind> {
        match fs_type {
            "ext2" | "ext3" | "ext4" => Some(FsKind::Ext),
            "xfs" => Some(FsKind::Xfs),
            "btrfs" => Some(FsKind::Btrfs),
            "vfat" | "msdos" | "fat" => Some(FsKind::Fat),
            _ => None,
        }
    }
}

/// How far a repair may go (`--tier`, `[repair] tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Read-only check only: never write.
    Check,
    /// Fix what is safe without questions (`e2fsck -p`, `xfs_repair`, `fsck.fat -a`).
    Preen,
    /// Answer yes to everything (`e2fsck -fy`): may move files to lost+found.
    Full,
}

impl Tier {
    /// The word of `--tier` and `[repair] tier`.
    pub fn word(self) -> &'static str {
        match self {
            Tier::Check => "check",
            Tier::Preen => "preen",
            Tier::Full => "full",
        }
    }
}
