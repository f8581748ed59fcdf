//! Resolving what the user named (device, image, mount point) into something to read.

use crate::mount::table::{MountTable, SuperblockMounts, is_block_backed, is_pseudo_fstype};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A resolved scan source.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// How to name it in the report.
    pub name: String,
    /// The file to open: a block device node or an image file.
    pub path: PathBuf,
    /// Whether `path` is a block device (else an image file).
    pub is_device: bool,
    /// The mounts of its superblock, when it is mounted.
    pub mounts: Option<SuperblockMounts>,
}

/// A target that cannot be scanned, with the one-line reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unscannable(pub String);

/// Every mounted filesystem backed by a block device, each superblock once. A mount whose
/// device node cannot be found is still listed (with its mount source as the path), so
/// that the scan reports it as unreadable instead of silently leaving it out.
pub fn mounted_block_filesystems(table: &MountTable) -> Vec<Resolved> {
    table
        .superblocks()
        .into_iter()
        .filter(|sb| is_block_backed(&sb.primary) && !is_pseudo_fstype(&sb.primary.fs_type))
        .map(|sb| {
            let path = device_of(&sb).unwrap_or_else(|| {
                sb.primary
                    .source
                    .as_ref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        PathBuf::from(format!("/dev/block/{}:{}", sb.major, sb.minor))
                    })
            });
            Resolved {
                name: path.display().to_string(),
                path,
                is_device: true,
                mounts: Some(sb),
            }
        })
        .collect()
}

/// The device node of a mounted superblock: its mount source when that is a block device
/// (btrfs reports an anonymous device number, so the source is the only way), else the
/// `/dev/block/M:m` link.
fn device_of(sb: &SuperblockMounts) -> Option<PathBuf> {
    if let Some(source) = &sb.primary.source {
        let path = PathBuf::from(source);
        if let Ok(meta) = fs::metadata(&path) {
            if meta.file_type().is_block_device() {
                return Some(path);
            }
        }
    }
    let by_devno = PathBuf::from(format!("/dev/block/{}:{}", sb.major, sb.minor));
    fs::metadata(&by_devno)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|_| by_devno)
}

/// Resolve one TARGET argument.
pub fn resolve(target: &Path, table: &MountTable) -> Result<Resolved, Unscannable> {
    let shown = target.display();
    let meta = fs::metadata(target)
        .map_err(|e| Unscannable(format!("cannot scan '{shown}': {}", io_reason(&e))))?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        let canonical = fs::canonicalize(target)
            .map_err(|e| Unscannable(format!("cannot scan '{shown}': {}", io_reason(&e))))?;
        let mount = table.by_mount_point(&canonical).ok_or_else(|| {
            Unscannable(format!("'{shown}' is a directory but not a mount point"))
        })?;
        let sb = table
            .superblocks()
            .into_iter()
            .find(|sb| sb.major == mount.major && sb.minor == mount.minor)
            .ok_or_else(|| Unscannable(format!("'{shown}': mount table is inconsistent")))?;
        if !is_block_backed(mount) || is_pseudo_fstype(&mount.fs_type) {
            return Err(Unscannable(format!(
                "'{shown}' is a {} mount, not backed by a block device: nothing to scan",
                mount.fs_type
            )));
        }
        let path = device_of(&sb).ok_or_else(|| {
            Unscannable(format!(
                "'{shown}': cannot find the block device {}:{} it is mounted from",
                sb.major, sb.minor
            ))
        })?;
        return Ok(Resolved {
            name: target.display().to_string(),
            path,
            is_device: true,
            mounts: Some(sb),
        });
    }
    if file_type.is_block_device() {
        let rdev = meta.rdev();
        let (major, minor) = (
            nix::sys::stat::major(rdev) as u32,
            nix::sys::stat::minor(rdev) as u32,
        );
        let canonical = fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
        let mounts = table.superblocks().into_iter().find(|sb| {
            (sb.major == major && sb.minor == minor)
                || sb
                    .primary
                    .source
                    .as_deref()
                    .map(Path::new)
                    .and_then(|s| fs::canonicalize(s).ok())
                    .as_deref()
                    == Some(canonical.as_path())
        });
        return Ok(Resolved {
            name: target.display().to_string(),
            path: target.to_path_buf(),
            is_device: true,
            mounts,
        });
    }
    if file_type.is_file() {
        if meta.len() == 0 {
            return Err(Unscannable(format!(
                "cannot scan '{shown}': the file is empty"
            )));
        }
        return Ok(Resolved {
            name: target.display().to_string(),
            path: target.to_path_buf(),
            is_device: false,
            mounts: None,
        });
    }
    let kind = if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Unscannable(format!(
        "cannot scan '{shown}': it is {kind}, not a block device, image file or mount point"
    )))
}

fn io_reason(e: &std::io::Error) -> String {
    crate::sys::describe_io(e)
}
