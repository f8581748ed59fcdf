//! Whether an image file or a block device is in use: an image behind a loop device, a
//! device mounted directly or through a stack of holders (dm, md, a loop on top).

use crate::mount::table::{MountTable, SuperblockMounts};
use crate::root::{SYS_BLOCK, SysRoot};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A loop device whose backing file is the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopBacking {
    /// Kernel name, `loop3`.
    pub name: String,
    /// `major:minor` of the loop device.
    pub major: u32,
    pub minor: u32,
}

impl LoopBacking {
    /// `/dev/loopN`.
    pub fn node(&self) -> PathBuf {
        Path::new(crate::root::DEV_DIR).join(&self.name)
    }
}

/// The loop devices attached on this machine (`/sys/block/loop*/loop/backing_file`), read once
/// on first use and shared by every image of a run: listing them costs a sysfs lookup per loop
/// device, which per image was most of a scan's time.
#[derive(Debug)]
pub struct LoopDevices<'a> {
    root: &'a SysRoot,
    attached: OnceLock<Vec<Attached>>,
}

/// One attached loop device and the identity of its backing file.
#[derive(Debug)]
struct Attached {
    device: LoopBacking,
    /// `(st_dev, st_ino)` of the backing file; `None` when it cannot be stat'ed (deleted,
    /// another mount namespace's path).
    file: Option<(u64, u64)>,
}

impl<'a> LoopDevices<'a> {
    /// Nothing is read until [`LoopDevices::backed_by`] first needs it.
    pub fn new(root: &'a SysRoot) -> Self {
        LoopDevices {
            root,
            attached: OnceLock::new(),
        }
    }

    /// The loop devices backed by the file with `(dev, ino)` (compared by identity, not by
    /// name), by kernel name.
    pub fn backed_by(&self, dev: u64, ino: u64) -> Vec<LoopBacking> {
        self.attached
            .get_or_init(|| read_attached(self.root))
            .iter()
            .filter(|a| a.file == Some((dev, ino)))
            .map(|a| a.device.clone())
            .collect()
    }
}

fn read_attached(root: &SysRoot) -> Vec<Attached> {
    let Ok(entries) = fs::read_dir(root.path(SYS_BLOCK)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let dir = entry.path();
        let Ok(backing) = fs::read_to_string(dir.join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end_matches('\n');
        let file = fs::metadata(root.host(backing))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if let Some((major, minor)) = read_devno(&dir.join("dev")) {
            found.push(Attached {
                device: LoopBacking { name, major, minor },
                file,
            });
        }
    }
    found.sort_by(|a, b| a.device.name.cmp(&b.device.name));
    found
}

/// What holds block device `major:minor` in use through a stack: the first mounted
/// superblock among its holders (`/sys/dev/block/M:m/holders/*`) and its partitions
/// (`/sys/dev/block/M:m/NAMEpN`, a mounted `/dev/sdb1` or `/dev/loop0p1`), recursively, with
/// that device's kernel name.
pub fn mounted_holder(
    root: &SysRoot,
    table: &MountTable,
    major: u32,
    minor: u32,
) -> Option<(String, SuperblockMounts)> {
    let mut pending = vec![root.dev_block(major, minor)];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        let holders = fs::read_dir(dir.join("holders"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| {
                let name = h.file_name().to_string_lossy().into_owned();
                let path = root.path(SYS_BLOCK).join(&name);
                (name, path)
            });
        let partitions = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("partition").is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()));
        for (name, path) in holders.chain(partitions).collect::<Vec<_>>() {
            if let Some((ma, mi)) = read_devno(&path.join("dev")) {
                if let Some(sb) = mounted(table, ma, mi) {
                    return Some((name, sb));
                }
            }
            pending.push(path);
        }
    }
    None
}

/// The mounted superblock of device `major:minor` (node `/dev/NAME`), if any: by device
/// number, or by mount source for btrfs, whose mountinfo shows an anonymous `0:N` instead.
pub fn mounted(table: &MountTable, major: u32, minor: u32) -> Option<SuperblockMounts> {
    let node = device_node(major, minor);
    table.superblocks().into_iter().find(|sb| {
        (sb.major == major && sb.minor == minor)
            || (sb.major == 0
                && node.is_some()
                && sb
                    .primary
                    .source
                    .as_deref()
                    .and_then(|s| fs::canonicalize(s).ok())
                    == node)
    })
}

/// `/dev/NAME` of block device `major:minor` (through `/sys/dev/block/M:m`), canonical.
fn device_node(major: u32, minor: u32) -> Option<PathBuf> {
    let link = fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let name = link.file_name()?;
    fs::canonicalize(Path::new(crate::root::DEV_DIR).join(name)).ok()
}

/// The loop device `major:minor`, when it is one: whether it detaches itself on the last
/// close (`autoclear`, as `mount -o loop` sets it), its backing file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopInfo {
    pub autoclear: bool,
    pub backing_file: String,
    pub offset: u64,
}

/// Read [`LoopInfo`] from `/sys/dev/block/M:m/loop/`.
pub fn loop_info(root: &SysRoot, major: u32, minor: u32) -> Option<LoopInfo> {
    let dir = root.dev_block(major, minor).join("loop");
    let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
    let backing_file = read("backing_file")?.trim_end_matches('\n').to_string();
    Some(LoopInfo {
        autoclear: read("autoclear").is_some_and(|s| s.trim() == "1"),
        backing_file,
        offset: read("offset")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    })
}

fn read_devno(path: &Path) -> Option<(u32, u32)> {
    let text = fs::read_to_string(path).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loop_device_behind_an_image_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let image = dir.path().join("disk.img");
        fs::write(&image, b"x").unwrap();
        let meta = fs::metadata(&image).unwrap();
        let loop_dir = root.path(SYS_BLOCK).join("loop4");
        fs::create_dir_all(loop_dir.join("loop")).unwrap();
        fs::write(loop_dir.join("loop/backing_file"), "/disk.img\n").unwrap();
        fs::write(loop_dir.join("dev"), "7:4\n").unwrap();
        let other = root.path(SYS_BLOCK).join("loop5");
        fs::create_dir_all(other.join("loop")).unwrap();
        fs::write(other.join("loop/backing_file"), "/elsewhere.img\n").unwrap();
        fs::write(other.join("dev"), "7:5\n").unwrap();
        let found = LoopDevices::new(&root).backed_by(meta.dev(), meta.ino());
        assert_eq!(
            found,
            vec![LoopBacking {
                name: "loop4".into(),
                major: 7,
                minor: 4
            }]
        );
        assert_eq!(found[0].node(), Path::new("/dev/loop4"));
    }

    #[test]
    fn a_device_held_by_a_mounted_holder_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        // loop4 (7:4) is held by dm-0 (253:0), which is held by dm-1 (253:1), mounted.
        let lo = root.dev_block(7, 4);
        fs::create_dir_all(lo.join("holders/dm-0")).unwrap();
        for (name, devno, holder) in [("dm-0", "253:0", Some("dm-1")), ("dm-1", "253:1", None)] {
            let d = root.path(SYS_BLOCK).join(name);
            fs::create_dir_all(d.join("holders")).unwrap();
            fs::write(d.join("dev"), format!("{devno}\n")).unwrap();
            if let Some(h) = holder {
                fs::create_dir_all(d.join("holders").join(h)).unwrap();
            }
        }
        let table =
            MountTable::from_mountinfo(b"30 1 253:1 / /srv/data rw - ext4 /dev/mapper/x rw\n")
                .unwrap();
        let (holder, sb) = mounted_holder(&root, &table, 7, 4).expect("held");
        assert_eq!(holder, "dm-1");
        assert_eq!(sb.primary.mount_point, Path::new("/srv/data"));
        let nothing = MountTable::from_mountinfo(b"").unwrap();
        assert!(mounted_holder(&root, &nothing, 7, 4).is_none());
    }
}
