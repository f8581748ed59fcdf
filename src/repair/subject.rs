//! What the admin named (a mount point or a block device) resolved to the filesystem to repair:
//! its block device, the superblock's device number, and its mounts in our namespace.

use super::FsKind;
use crate::mount::mountinfo::MountInfo;
use crate::mount::table::MountTable;
use crate::root::SysRoot;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// The filesystem a repair works on.
#[derive(Debug, Clone)]
pub struct Subject {
    /// As the admin named it.
    pub name: String,
    /// The block device node.
    pub device: PathBuf,
    /// The device's number (`st_rdev`): the key of the state record and the fsck lock.
    pub dev: (u32, u32),
    /// The superblock's number (mountinfo field 3): the device's, except for btrfs, whose
    /// mounts show an anonymous device.
    pub sb: Option<(u32, u32)>,
    /// Filesystem type as mountinfo (or the scan) names it.
    pub fs_type: Option<String>,
    /// Every mount of the superblock in our namespace, parents before children.
    pub mounts: Vec<MountInfo>,
}

impl Subject {
    /// The family, once the type is known.
    pub fn kind(&self) -> Option<FsKind> {
        self.fs_type.as_deref().and_then(FsKind::from_fs_type)
    }

    /// The device's kernel name (`loop3`, `sda1`).
    pub fn kernel_name(&self, root: &SysRoot) -> Option<String> {
        crate::scan::live::kernel_name(root, self.dev.0, self.dev.1)
    }

    /// Whether the kernel refuses writes to the device (`ro` of it or of its whole disk is
    /// `1`: `mount -o loop,ro` sets up a read-only loop device, `blockdev --setro`). An
    /// unreadable `ro` is not read-only here: the repair command would then say so itself.
    pub fn read_only(&self, root: &SysRoot) -> bool {
        let is_one = |dir: PathBuf| {
            std::fs::read_to_string(dir.join("ro")).is_ok_and(|text| text.trim() == "1")
        };
        is_one(root.dev_block(self.dev.0, self.dev.1))
            || self
                .disk_name(root)
                .is_some_and(|disk| is_one(root.path(crate::root::SYS_BLOCK).join(disk)))
    }

    /// The whole disk's kernel name, as util-linux names `/run/fsck/<disk>.lock`.
    pub fn disk_name(&self, root: &SysRoot) -> Option<String> {
        disk_of(root, self.dev)
    }
}

/// The whole disk's kernel name of the block device `dev` (major, minor): its own for a whole
/// disk, its parent's for a partition.
pub fn disk_of(root: &SysRoot, dev: (u32, u32)) -> Option<String> {
    let link = root.dev_block(dev.0, dev.1);
    let resolved = std::fs::canonicalize(&link).ok()?;
    if resolved.join("partition").exists() {
        resolved
            .parent()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    } else {
        resolved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    }
}

/// Why a TARGET cannot be repaired at all (a usage error: exit 16).
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("'{0}' does not exist")]
    Missing(PathBuf),
    #[error("'{0}' is neither a mount point nor a block device")]
    NotATarget(PathBuf),
    #[error("'{path}' is mounted from '{from}', which is not a block device")]
    NotBlockBacked { path: PathBuf, from: String },
}

/// Resolve TARGET against our mount table.
pub fn resolve(target: &Path, table: &MountTable) -> Result<Subject, SubjectError> {
    let name = target.display().to_string();
    let meta = std::fs::metadata(target).map_err(|_| SubjectError::Missing(target.into()))?;
    if meta.file_type().is_block_device() {
        let dev = split(meta.rdev());
        return Ok(of_device(name, target.to_path_buf(), dev, table));
    }
    let Some(mount) = table.by_mount_point(target) else {
        return Err(SubjectError::NotATarget(target.into()));
    };
    let source = mount.source.clone().map(PathBuf::from).unwrap_or_default();
    let device_meta = std::fs::metadata(&source).ok();
    let Some(device_meta) = device_meta.filter(|m| m.file_type().is_block_device()) else {
        return Err(SubjectError::NotBlockBacked {
            path: target.into(),
            from: source.display().to_string(),
        });
    };
    let mut subject = of_device(name, source, split(device_meta.rdev()), table);
    if subject.mounts.is_empty() {
        // The source names another node of the device (a symlink, a stale path): the mount we
        // found is still this filesystem.
        subject.sb = Some((mount.major, mount.minor));
        subject.fs_type = Some(mount.fs_type.clone());
        subject.mounts = table
            .entries()
            .iter()
            .filter(|m| (m.major, m.minor) == (mount.major, mount.minor))
            .cloned()
            .collect();
    }
    Ok(subject)
}

/// The subject of a block device: its mounts by device number, or (btrfs: anonymous device
/// numbers) by mount source.
fn of_device(name: String, device: PathBuf, dev: (u32, u32), table: &MountTable) -> Subject {
    let canonical = std::fs::canonicalize(&device).unwrap_or_else(|_| device.clone());
    let by_number: Vec<MountInfo> = table.by_devno(dev.0, dev.1).cloned().collect();
    let mounts = if by_number.is_empty() {
        let sb = table.entries().iter().find(|m| {
            m.source
                .as_ref()
                .and_then(|s| std::fs::canonicalize(s).ok())
                .is_some_and(|s| s == canonical)
                && m.fs_type == "btrfs"
        });
        match sb {
            Some(first) => table
                .entries()
                .iter()
                .filter(|m| (m.major, m.minor) == (first.major, first.minor))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    } else {
        by_number
    };
    Subject {
        name,
        device: canonical,
        dev,
        sb: mounts.first().map(|m| (m.major, m.minor)),
        fs_type: mounts.first().map(|m| m.fs_type.clone()),
        mounts,
    }
}

fn split(rdev: u64) -> (u32, u32) {
    (libc::major(rdev), libc::minor(rdev))
}
