//! The freeze order. A filesystem on a loop device must be frozen *before* the filesystem that
//! holds its image file: its freeze-time sync writes into the image, and if the outer one is
//! already frozen that write blocks the freezer in D state for good (freeze.md §5.3). Thaw is
//! the exact reverse. `/` goes last (everything else on the machine logs into it).
//!
//! Backing files come from `/sys/block/loopN/loop/backing_file`, also through device-mapper
//! or md (`/sys/dev/block/M:m/slaves/`), read through [`SysRoot`].

use super::Target;
use crate::mount::MountTable;
use crate::root::{SYS_BLOCK, SysRoot};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where a loop-backed filesystem's image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// The image file, as the loop driver reports it.
    pub file: PathBuf,
    /// The mount point of the filesystem holding it, when mounted here.
    pub mount: Option<PathBuf>,
    /// That filesystem's superblock.
    pub major: u32,
    pub minor: u32,
}

/// Depth limit for dm/md stacks (a cycle in sysfs is impossible, but stay bounded).
const MAX_DEPTH: usize = 8;

/// The `major:minor` of the block device under a target (the mount source for btrfs, whose
/// superblock has an anonymous device number).
fn device_number(t: &Target) -> Option<(u32, u32)> {
    if t.major != 0 {
        return Some((t.major, t.minor));
    }
    let meta = std::fs::metadata(t.source.as_ref()?).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    ))
}

/// Image files behind the block device `dir` (a sysfs device directory): its own loop backing
/// file, or those of its slaves.
fn backing_files_of(root: &SysRoot, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("loop/backing_file")) {
        let text = text.trim_end_matches('\n');
        let text = text.strip_suffix(" (deleted)").unwrap_or(text);
        if !text.is_empty() {
            out.push(PathBuf::from(text));
        }
        return;
    }
    let Ok(slaves) = std::fs::read_dir(dir.join("slaves")) else {
        return;
    };
    let mut names: Vec<_> = slaves.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        backing_files_of(root, &root.path(SYS_BLOCK).join(name), depth + 1, out);
    }
}

/// The mount whose filesystem holds `path`: the longest mount-point prefix (the last of equal
/// ones, which is on top).
pub fn mount_of_path<'a>(
    table: &'a MountTable,
    path: &Path,
) -> Option<&'a crate::mount::MountInfo> {
    let mut best: Option<&crate::mount::MountInfo> = None;
    for m in table.entries() {
        if path.starts_with(&m.mount_point)
            && best.is_none_or(|b| {
                m.mount_point.components().count() >= b.mount_point.components().count()
            })
        {
            best = Some(m);
        }
    }
    best
}

/// Fill in each target's [`Backing`] (the first image file found).
pub fn resolve_backing(targets: &mut [Target], table: &MountTable, root: &SysRoot) {
    for t in targets.iter_mut() {
        let Some((major, minor)) = device_number(t) else {
            continue;
        };
        let mut files = Vec::new();
        backing_files_of(root, &root.dev_block(major, minor), 0, &mut files);
        let Some(file) = files.into_iter().next() else {
            continue;
        };
        let outer = mount_of_path(table, &file);
        t.backing = Some(Backing {
            mount: outer.map(|m| m.mount_point.clone()),
            major: outer.map_or(0, |m| m.major),
            minor: outer.map_or(0, |m| m.minor),
            file,
        });
    }
}

/// The order to freeze `targets` in (indexes): every loop-backed target before the target
/// holding its image, `/` last, otherwise the given order. A cycle is an error.
pub fn freeze_order(targets: &[Target]) -> Result<Vec<usize>, String> {
    let n = targets.len();
    // before[i] = targets that must be frozen before i (those whose image lives on i).
    let mut must_wait: Vec<usize> = vec![0; n];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, t) in targets.iter().enumerate() {
        let Some(b) = &t.backing else { continue };
        for (j, outer) in targets.iter().enumerate() {
            if i != j && outer.major == b.major && outer.minor == b.minor {
                // i (inner) before j (outer).
                after[i].push(j);
                must_wait[j] += 1;
            }
        }
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let ready = |i: usize| !done[i] && must_wait[i] == 0;
        let next = (0..n)
            .find(|&i| ready(i) && !targets[i].is_root())
            .or_else(|| (0..n).find(|&i| ready(i)));
        let Some(i) = next else {
            let stuck: Vec<String> = (0..n)
                .filter(|&i| !done[i])
                .map(|i| targets[i].mountpoint.display().to_string())
                .collect();
            return Err(format!(
                "loop devices back each other in a cycle: {}",
                stuck.join(", ")
            ));
        };
        done[i] = true;
        order.push(i);
        for &j in &after[i] {
            must_wait[j] -= 1;
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(mp: &str, major: u32, minor: u32, backing: Option<(u32, u32)>) -> Target {
        Target {
            mountpoint: PathBuf::from(mp),
            major,
            minor,
            fstype: "ext4".into(),
            source: None,
            read_only: false,
            duplicates: Vec::new(),
            backing: backing.map(|(major, minor)| Backing {
                file: PathBuf::from("/img"),
                mount: None,
                major,
                minor,
            }),
        }
    }

    #[test]
    fn inner_before_outer_and_root_last() {
        // /outer holds the image of /inner; / holds the image of /outer.
        let targets = vec![
            t("/", 254, 0, None),
            t("/outer", 7, 0, Some((254, 0))),
            t("/other", 8, 1, None),
            t("/inner", 7, 1, Some((7, 0))),
        ];
        let order = freeze_order(&targets).unwrap();
        let names: Vec<&str> = order
            .iter()
            .map(|&i| targets[i].mountpoint.to_str().unwrap())
            .collect();
        assert_eq!(names, vec!["/other", "/inner", "/outer", "/"]);
    }

    #[test]
    fn cycles_are_refused() {
        let targets = vec![t("/a", 7, 0, Some((7, 1))), t("/b", 7, 1, Some((7, 0)))];
        assert!(freeze_order(&targets).unwrap_err().contains("cycle"));
    }

    #[test]
    fn backing_files_through_sysfs_and_dm_slaves() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let loop0 = dir.path().join("sys/block/loop0/loop");
        std::fs::create_dir_all(&loop0).unwrap();
        std::fs::write(loop0.join("backing_file"), "/srv/img/disk.img (deleted)\n").unwrap();
        let dm = dir.path().join("sys/dev/block/253:0/slaves/loop0");
        std::fs::create_dir_all(&dm).unwrap();
        let mut out = Vec::new();
        backing_files_of(&root, &root.dev_block(253, 0), 0, &mut out);
        assert_eq!(out, vec![PathBuf::from("/srv/img/disk.img")]);

        let table = MountTable::from_mountinfo(
            b"27 1 254:0 / / rw - ext4 /dev/vda rw\n60 27 7:5 / /srv rw - ext4 /dev/loop5 rw\n",
        )
        .unwrap();
        assert_eq!(
            mount_of_path(&table, Path::new("/srv/img/disk.img"))
                .unwrap()
                .mount_point,
            Path::new("/srv")
        );
        assert_eq!(
            mount_of_path(&table, Path::new("/srvx/a"))
                .unwrap()
                .mount_point,
            Path::new("/")
        );
    }
}
