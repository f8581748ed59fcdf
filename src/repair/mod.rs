//! `snapguard repair`: umount → fsck → remount, safely (repair.md §7).
//!
//! The state machine lives in [`machine`]; each step's work lives in a module of its own:
//! [`discover`] (every mount of the superblock in every namespace, swap, loop, units, fstab),
//! [`holders`] (processes holding it, through `procfs` under `SysRoot`), [`checker`] (the
//! per-filesystem commands and how their exit codes read), [`mountops`] (unmount, fence,
//! restore with the recorded options, verify), [`boot_check`] (`/` and friends), [`state`]
//! (the record in `/run/snapguard`), [`plan`] (what will happen, printed before it happens).

pub mod checker;
pub mod discover;
pub mod holders;
pub mod mountops;

use serde::{Deserialize, Serialize};

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
