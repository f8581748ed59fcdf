//! Resolving what the user named (device, image, mount point) into something to read.

use super::inuse::{self, LoopDevices};
use crate::mount::table::{MountTable, SuperblockMounts, is_block_backed, is_pseudo_fstype};
use crate::root::SysRoot;
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
    /// When it is not mounted itself but in use through a stack (an image behind a loop
    /// device that a dm or md device sits on, which is mounted): what holds it.
    pub in_use: Option<String>,
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
                in_use: None,
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
pub fn resolve(
    target: &Path,
    table: &MountTable,
    root: &SysRoot,
    loops: &LoopDevices<'_>,
) -> Result<Resolved, Unscannable> {
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
            in_use: None,
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
        let in_use = match mounts {
            Some(_) => None,
            None => inuse::mounted_holder(root, table, major, minor).map(|(holder, sb)| {
                format!(
                    "held by {holder}, which is mounted on {}",
                    sb.primary.mount_point.display()
                )
            }),
        };
        return Ok(Resolved {
            name: target.display().to_string(),
            path: target.to_path_buf(),
            is_device: true,
            mounts,
            in_use,
        });
    }
    if file_type.is_file() {
        if meta.len() == 0 {
            return Err(Unscannable(format!(
                "cannot scan '{shown}': the file is empty"
            )));
        }
        return Ok(image_in_use(target, &meta, table, root, loops));
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

/// An image file, judged live when a loop device backed by it is mounted (read through the
/// loop device then, whose cache is the live truth) or held by a mounted stack.
fn image_in_use(
    target: &Path,
    meta: &fs::Metadata,
    table: &MountTable,
    root: &SysRoot,
    loops: &LoopDevices<'_>,
) -> Resolved {
    let mut resolved = Resolved {
        name: target.display().to_string(),
        path: target.to_path_buf(),
        is_device: false,
        mounts: None,
        in_use: None,
    };
    for lo in loops.backed_by(meta.dev(), meta.ino()) {
        if let Some(sb) = inuse::mounted(table, lo.major, lo.minor) {
            let node = lo.node();
            let readable = fs::metadata(&node)
                .map(|m| m.file_type().is_block_device())
                .unwrap_or(false);
            if readable {
                resolved.path = node;
                resolved.is_device = true;
            }
            resolved.in_use = Some(format!(
                "backs {}, which is mounted on {}",
                lo.node().display(),
                sb.primary.mount_point.display()
            ));
            resolved.mounts = Some(sb);
            return resolved;
        }
        if let Some((holder, sb)) = inuse::mounted_holder(root, table, lo.major, lo.minor) {
            resolved.in_use = Some(format!(
                "backs {}, held by {holder}, which is mounted on {}",
                lo.node().display(),
                sb.primary.mount_point.display()
            ));
            return resolved;
        }
    }
    resolved
}

fn io_reason(e: &std::io::Error) -> String {
    crate::sys::describe_io(e)
}
