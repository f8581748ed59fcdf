//! The mount table: parsed mountinfo entries, looked up by superblock (`major:minor`) or by
//! mount point, and grouped so that bind mounts of one filesystem are seen together.

use std::collections::HashMap;
use std::path::Path;

use super::mountinfo::{self, MountInfo, MountInfoError};

/// All mounts of one mount namespace, in mountinfo order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountTable {
    entries: Vec<MountInfo>,
}

/// All mounts of one superblock (one `major:minor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperblockMounts {
    /// Major number of the superblock's device.
    pub major: u32,
    /// Minor number of the superblock's device.
    pub minor: u32,
    /// The first mount whose root is `/` (the whole filesystem), or else the first mount seen.
    pub primary: MountInfo,
    /// Every other mount of the same superblock (bind mounts, other subvolumes), in order.
    pub others: Vec<MountInfo>,
}

impl MountTable {
    /// Build a table from already parsed entries (kept in the given order).
    pub fn new(entries: Vec<MountInfo>) -> Self {
        Self { entries }
    }

    /// Parse a whole mountinfo file; the first bad line fails (with its line number).
    pub fn from_mountinfo(text: &[u8]) -> Result<Self, MountInfoError> {
        mountinfo::parse_all(text).map(Self::new)
    }

    /// All entries, in mountinfo order.
    pub fn entries(&self) -> &[MountInfo] {
        &self.entries
    }

    /// All mounts of the superblock `major:minor`, in mountinfo order.
    pub fn by_devno(&self, major: u32, minor: u32) -> impl Iterator<Item = &MountInfo> + '_ {
        self.entries
            .iter()
            .filter(move |m| m.major == major && m.minor == minor)
    }

    /// The mount visible at `mount_point`: when several mounts are stacked on the same path the
    /// last one in mountinfo order is on top, as in the kernel.
    pub fn by_mount_point(&self, mount_point: &Path) -> Option<&MountInfo> {
        self.entries
            .iter()
            .rev()
            .find(|m| m.mount_point == mount_point)
    }

    /// Mounts grouped by superblock, groups in first-seen order (linear in the number of
    /// mounts: container hosts can have tens of thousands).
    pub fn superblocks(&self) -> Vec<SuperblockMounts> {
        let mut index: HashMap<(u32, u32), usize> = HashMap::new();
        let mut groups: Vec<Vec<&MountInfo>> = Vec::new();
        for m in &self.entries {
            let slot = *index.entry((m.major, m.minor)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            if let Some(g) = groups.get_mut(slot) {
                g.push(m);
            }
        }
        groups
            .into_iter()
            .filter_map(|all| {
                let primary_idx = all
                    .iter()
                    .position(|m| m.root == Path::new("/"))
                    .unwrap_or(0);
                let primary = (*all.get(primary_idx)?).clone();
                let others = all
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != primary_idx)
                    .map(|(_, m)| (*m).clone())
                    .collect();
                Some(SuperblockMounts {
                    major: primary.major,
                    minor: primary.minor,
                    primary,
                    others,
                })
            })
            .collect()
    }
}

/// True for filesystem types that have no backing block device of their own: kernel pseudo
/// filesystems (`proc`, `sysfs`, `cgroup*`, `debugfs`, ...), memory filesystems (`tmpfs`,
/// `ramfs`), automount/namespace plumbing (`autofs`, `nsfs`, `binfmt_misc`, `rpc_pipefs`) and
/// stacking filesystems (`overlay`, `aufs`: their layers live on other mounts, which are scanned
/// on their own).
///
/// The list is the `nodev` entries of a typical `/proc/filesystems` (Linux 6.x) plus the
/// stacking filesystems. `squashfs` is deliberately *not* listed: it is read from a block device
/// (often a loop device) and has a real major, but it is read-only and has no "clean" state, so
/// scanning it is harmless. Use [`is_block_backed`] to decide what to scan; this list is for
/// messages and skip rules.
pub fn is_pseudo_fstype(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "proc"
            | "sysfs"
            | "tmpfs"
            | "devtmpfs"
            | "devpts"
            | "cgroup"
            | "cgroup2"
            | "securityfs"
            | "debugfs"
            | "tracefs"
            | "pstore"
            | "bpf"
            | "mqueue"
            | "hugetlbfs"
            | "configfs"
            | "fusectl"
            | "autofs"
            | "binfmt_misc"
            | "efivarfs"
            | "overlay"
            | "aufs"
            | "nsfs"
            | "ramfs"
            | "rootfs"
            | "rpc_pipefs"
            | "selinuxfs"
            | "sockfs"
            | "pipefs"
            | "anon_inodefs"
            | "bdev"
            | "dax"
            | "cpuset"
            | "nfsd"
            | "sunrpc"
    )
}

/// True when the mount's superblock sits on a block device.
///
/// The test is `major != 0`: a superblock opened on a block device (`get_tree_bdev`) takes that
/// device's `dev_t`, and block device majors are never 0, while pseudo, memory and network
/// filesystems (tmpfs, proc, nfs, cifs, fuse, overlay, ...) get an anonymous `dev_t` from
/// `get_anon_bdev`/`set_anon_super`, whose major is always 0 (`UNNAMED_MAJOR`).
///
/// btrfs is the exception: it can span several devices, so every btrfs superblock gets an
/// anonymous `0:N` device number although it is block-backed. It is treated as block-backed; its
/// `source` field is the path of one of its member devices (e.g. `/dev/sda2`).
pub fn is_block_backed(m: &MountInfo) -> bool {
    m.major != 0 || m.fs_type == "btrfs"
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
60 27 8:17 /srv/data /data rw,relatime shared:5 - ext4 /dev/sdb1 rw
61 27 8:17 / /mnt/sdb1 rw,relatime shared:5 - ext4 /dev/sdb1 rw
62 27 8:17 /srv/data /var/lib/data ro,relatime shared:5 - ext4 /dev/sdb1 rw
70 27 0:47 /@home /home rw,relatime - btrfs /dev/nvme0n1p2 rw,subvolid=257,subvol=/@home
71 27 0:47 /@ /snap rw,relatime - btrfs /dev/nvme0n1p2 rw,subvolid=256,subvol=/@
80 27 0:50 / /data rw - tmpfs tmpfs rw
";

    #[test]
    fn bind_mounts_grouped_by_devno() {
        let t = MountTable::from_mountinfo(TEXT).unwrap();
        assert_eq!(t.entries().len(), 8);
        let sdb: Vec<u32> = t.by_devno(8, 17).map(|m| m.mount_id).collect();
        assert_eq!(sdb, vec![60, 61, 62]);

        let sbs = t.superblocks();
        let keys: Vec<(u32, u32)> = sbs.iter().map(|s| (s.major, s.minor)).collect();
        assert_eq!(keys, vec![(0, 21), (254, 0), (8, 17), (0, 47), (0, 50)]);
        let s = &sbs[2];
        // The whole-filesystem mount is primary even though a bind mount came first.
        assert_eq!(s.primary.mount_id, 61);
        let others: Vec<u32> = s.others.iter().map(|m| m.mount_id).collect();
        assert_eq!(others, vec![60, 62]);
        // No mount with root "/": the first one is primary.
        assert_eq!(sbs[3].primary.mount_id, 70);
        assert_eq!(sbs[3].others[0].mount_id, 71);
    }

    #[test]
    fn mount_point_stacking_last_wins() {
        let t = MountTable::from_mountinfo(TEXT).unwrap();
        assert_eq!(t.by_mount_point(Path::new("/data")).unwrap().mount_id, 80);
        assert_eq!(t.by_mount_point(Path::new("/")).unwrap().mount_id, 27);
        assert!(t.by_mount_point(Path::new("/nope")).is_none());
    }

    #[test]
    fn block_backed_and_pseudo() {
        let t = MountTable::from_mountinfo(TEXT).unwrap();
        let backed: Vec<u32> = t
            .entries()
            .iter()
            .filter(|m| is_block_backed(m))
            .map(|m| m.mount_id)
            .collect();
        assert_eq!(backed, vec![27, 60, 61, 62, 70, 71]);
        assert!(is_pseudo_fstype("proc"));
        assert!(is_pseudo_fstype("overlay"));
        assert!(!is_pseudo_fstype("ext4"));
        assert!(!is_pseudo_fstype("squashfs"));
    }

    #[test]
    fn bad_table_reports_line() {
        let e =
            MountTable::from_mountinfo(b"22 27 0:21 / /proc rw - proc proc rw\nbad\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(t) = MountTable::from_mountinfo(&bytes) {
                let _ = t.superblocks();
            }
        }
    }
}
