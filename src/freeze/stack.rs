//! The loop devices under a block device, read from sysfs through [`SysRoot`]: the device
//! itself, the whole disk of a partition (`loop0p1` → `loop0`), and every dm/md `slaves/`
//! entry, nested, each possibly a partition too.
//!
//! A partition's sysfs directory has a `partition` file and sits inside its whole disk's
//! directory; a bound loop disk has `loop/backing_file`. Slaves are listed by kernel name, and
//! partitions are only found by name under `/sys/class/block` (not `/sys/block`).

use crate::root::{SYS_CLASS_BLOCK, SysRoot};
use std::path::{Path, PathBuf};

/// How deep a dm/md stack is followed (real stacks are 2-3 levels; sysfs cannot loop, but a
/// fixture or a racing hot-unplug must not make the walk unbounded).
pub const MAX_DEPTH: usize = 8;

/// What sysfs appends to `backing_file` when the image was unlinked (`d_path`).
const DELETED_SUFFIX: &str = " (deleted)";

/// One loop device found under a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopUnder {
    /// Kernel name of the loop device (the whole disk: `loop0`, never `loop0p1`).
    pub loop_name: String,
    /// Its image file as sysfs prints it now, without the `" (deleted)"` suffix.
    pub backing_file: PathBuf,
    /// sysfs marked the image as deleted.
    pub deleted: bool,
}

/// Every loop device under a block device, in walk order (slaves by name), each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    pub loops: Vec<LoopUnder>,
    /// The walk stopped at [`MAX_DEPTH`]: loop devices deeper down were not looked for.
    pub too_deep: bool,
}

/// The loop devices under the block device whose sysfs directory is `device_dir`
/// (`/sys/dev/block/M:m` or `/sys/class/block/NAME` under `root`). A device that sysfs does
/// not show has nothing under it.
pub fn loops_under(root: &SysRoot, device_dir: &Path) -> Stack {
    let mut stack = Stack::default();
    walk(root, device_dir, 0, &mut stack);
    stack
}

fn walk(root: &SysRoot, device_dir: &Path, depth: usize, stack: &mut Stack) {
    if depth > MAX_DEPTH {
        stack.too_deep = true;
        return;
    }
    // Resolve the /sys/dev/block or /sys/class/block symlink: a partition's whole disk is the
    // parent of its real directory.
    let Ok(dir) = std::fs::canonicalize(device_dir) else {
        return;
    };
    let disk = match dir.parent() {
        Some(parent) if dir.join("partition").is_file() => parent.to_path_buf(),
        _ => dir,
    };
    if let Ok(text) = std::fs::read_to_string(disk.join("loop/backing_file")) {
        let Some(loop_name) = disk.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let (file, deleted) = match text.strip_suffix(DELETED_SUFFIX) {
            Some(file) => (file, true),
            None => (text, false),
        };
        if !file.is_empty() && !stack.loops.iter().any(|l| l.loop_name == loop_name) {
            stack.loops.push(LoopUnder {
                loop_name: loop_name.to_string(),
                backing_file: PathBuf::from(file),
                deleted,
            });
        }
        return;
    }
    let Ok(slaves) = std::fs::read_dir(disk.join("slaves")) else {
        return;
    };
    let mut names: Vec<_> = slaves.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        walk(
            root,
            &root.path(SYS_CLASS_BLOCK).join(name),
            depth + 1,
            stack,
        );
    }
}

/// Fixture sysfs trees laid out as the kernel lays them out: devices under
/// `sys/devices/virtual/block/`, reached through `sys/dev/block/M:m` and `sys/class/block/NAME`
/// symlinks.
#[cfg(test)]
pub(crate) mod fixture {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// The real directory of a whole disk, relative to `sys/`.
    fn disk_dir(name: &str) -> String {
        format!("devices/virtual/block/{name}")
    }

    /// Link `sys/dev/block/M:m` and `sys/class/block/NAME` to `sys/TARGET`, as the kernel does
    /// (`259:0 -> ../../devices/virtual/block/loop0/loop0p1`).
    fn link(root: &Path, devno: &str, name: &str, target: &str) {
        for (dir, entry) in [("sys/dev/block", devno), ("sys/class/block", name)] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            symlink(format!("../../{target}"), root.join(dir).join(entry)).unwrap();
        }
    }

    /// A bound loop device `name` (`M:m` = `devno`) reading `backing` (as sysfs prints it).
    pub fn loop_disk(root: &Path, name: &str, devno: &str, backing: &str) {
        let dir = disk_dir(name);
        let real = root.join("sys").join(&dir);
        std::fs::create_dir_all(real.join("loop")).unwrap();
        std::fs::write(real.join("loop/backing_file"), format!("{backing}\n")).unwrap();
        link(root, devno, name, &dir);
    }

    /// Partition `part` (e.g. `loop0p1`) of the whole disk `disk`.
    pub fn partition(root: &Path, disk: &str, part: &str, devno: &str) {
        let dir = format!("{}/{part}", disk_dir(disk));
        let real = root.join("sys").join(&dir);
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("partition"), "1\n").unwrap();
        link(root, devno, part, &dir);
    }

    /// A dm or md device `name` over `slaves` (kernel names).
    pub fn stacked(root: &Path, name: &str, devno: &str, slaves: &[&str]) {
        let dir = disk_dir(name);
        let real = root.join("sys").join(&dir).join("slaves");
        std::fs::create_dir_all(&real).unwrap();
        for s in slaves {
            // The kernel's entries are symlinks (`../../loop0`); only their names are used.
            symlink(format!("../../{s}"), real.join(s)).unwrap();
        }
        link(root, devno, name, &dir);
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    fn names(stack: &Stack) -> Vec<(&str, &str, bool)> {
        stack
            .loops
            .iter()
            .map(|l| {
                (
                    l.loop_name.as_str(),
                    l.backing_file.to_str().unwrap(),
                    l.deleted,
                )
            })
            .collect()
    }

    #[test]
    fn a_loop_partition_leads_to_its_whole_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop0", "7:0", "/srv/disk.img");
        partition(dir.path(), "loop0", "loop0p1", "259:0");
        let stack = loops_under(&root, &root.dev_block(259, 0));
        assert_eq!(names(&stack), vec![("loop0", "/srv/disk.img", false)]);
        assert!(!stack.too_deep);
        assert_eq!(
            names(&loops_under(&root, &root.dev_block(7, 0))),
            vec![("loop0", "/srv/disk.img", false)]
        );
    }

    #[test]
    fn dm_over_two_loops_lists_both() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop3", "7:3", "/b/two.img");
        loop_disk(dir.path(), "loop1", "7:1", "/a/one.img");
        stacked(dir.path(), "dm-0", "253:0", &["loop3", "loop1"]);
        assert_eq!(
            names(&loops_under(&root, &root.dev_block(253, 0))),
            vec![
                ("loop1", "/a/one.img", false),
                ("loop3", "/b/two.img", false)
            ]
        );
    }

    #[test]
    fn dm_over_a_loop_partition_and_its_sibling_names_the_disk_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop2", "7:2", "/img/disk.img");
        partition(dir.path(), "loop2", "loop2p1", "259:1");
        partition(dir.path(), "loop2", "loop2p2", "259:2");
        stacked(dir.path(), "dm-1", "253:1", &["loop2p1", "loop2p2"]);
        assert_eq!(
            names(&loops_under(&root, &root.dev_block(253, 1))),
            vec![("loop2", "/img/disk.img", false)]
        );
    }

    #[test]
    fn md_over_dm_over_loops_is_followed_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop4", "7:4", "/x/a.img");
        loop_disk(dir.path(), "loop5", "7:5", "/y/b.img (deleted)");
        partition(dir.path(), "loop5", "loop5p2", "259:7");
        stacked(dir.path(), "dm-2", "253:2", &["loop4"]);
        stacked(dir.path(), "md0", "9:0", &["dm-2", "loop5p2"]);
        // md0 itself partitioned: md0p1 leads to md0 and down.
        partition(dir.path(), "md0", "md0p1", "259:8");
        assert_eq!(
            names(&loops_under(&root, &root.dev_block(259, 8))),
            vec![("loop4", "/x/a.img", false), ("loop5", "/y/b.img", true)]
        );
    }

    #[test]
    fn the_walk_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        // A slave entry naming the device itself (impossible in a real sysfs).
        stacked(dir.path(), "dm-9", "253:9", &["dm-9"]);
        let stack = loops_under(&root, &root.dev_block(253, 9));
        assert!(stack.loops.is_empty());
        assert!(stack.too_deep);
        // A plain disk and a device sysfs does not know have nothing under them.
        std::fs::create_dir_all(dir.path().join("sys/devices/virtual/block/vda")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/virtual/block/vda",
            dir.path().join("sys/dev/block/254:0"),
        )
        .unwrap();
        assert_eq!(
            loops_under(&root, &root.dev_block(254, 0)),
            Stack::default()
        );
        assert_eq!(loops_under(&root, &root.dev_block(1, 1)), Stack::default());
    }
}
