//! Static verdicts: what can be said about a mount point before opening it. Remote and pseudo
//! filesystems are never opened (an open on a dead NFS server hangs); configuration skips are
//! honoured before anything else, for any mount point of the superblock.

use super::Target;
use super::skip::SkipRules;
use crate::mount::is_pseudo_fstype;
use crate::report::Verdict;

/// Filesystem types whose kernel driver implements freeze (`freeze_fs` or `freeze_super`).
const FREEZABLE: &[&str] = &[
    "ext2", "ext3", "ext4", "ext4dev", "xfs", "btrfs", "f2fs", "jfs", "nilfs2", "reiserfs", "gfs2",
    "ocfs2", "bcachefs",
];

/// Block filesystems without freeze support (FIFREEZE gives EOPNOTSUPP).
const NO_FREEZE: &[&str] = &[
    "vfat", "msdos", "fat", "exfat", "ntfs", "ntfs3", "iso9660", "udf", "squashfs", "erofs", "hfs",
    "hfsplus", "minix", "cramfs", "romfs",
];

/// Network and userspace filesystems: freezing is the server's business.
const REMOTE: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "afs",
    "lustre",
    "gpfs",
    "beegfs",
    "virtiofs",
    "fuse",
    "fuseblk",
    "davfs",
    "sshfs",
];

/// What the static probe concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Static {
    /// Final verdict without touching the filesystem.
    Final(Verdict, String),
    /// Worth a real freeze; `known` is whether the type is known to support it.
    Try { known: bool, reason: String },
}

/// Whether `fstype` is a network or userspace filesystem.
pub fn is_remote(fstype: &str) -> bool {
    REMOTE.contains(&fstype) || fstype.starts_with("fuse.") || fstype.starts_with("fuseblk.")
}

/// The static verdict of one target.
pub fn classify(t: &Target, skip: &SkipRules) -> Static {
    let fstype = t.fstype.as_str();
    if let Some(why) = skip.why_skipped(t.mount_points(), fstype) {
        return Static::Final(Verdict::Skipped, why);
    }
    if is_pseudo_fstype(fstype) {
        let what = match fstype {
            "tmpfs" | "ramfs" | "devtmpfs" => "memory filesystem",
            "overlay" | "aufs" => "stacking filesystem (freeze the filesystems of its layers)",
            _ => "pseudo filesystem",
        };
        return Static::Final(
            Verdict::Unsupported,
            format!("{fstype}: {what}, no freeze support and nothing on disk to make consistent"),
        );
    }
    if is_remote(fstype) {
        return Static::Final(
            Verdict::Unsupported,
            format!(
                "{fstype}: remote or userspace filesystem, not frozen (not even opened: a dead \
                 server would hang the open); make it consistent on the server"
            ),
        );
    }
    if NO_FREEZE.contains(&fstype) {
        return Static::Final(
            Verdict::Unsupported,
            format!("{fstype}: the kernel driver has no freeze support (EOPNOTSUPP)"),
        );
    }
    if t.read_only {
        return Static::Final(
            Verdict::ReadOnly,
            format!(
                "{fstype}: read-only superblock, nothing to flush: a snapshot of it is \
                 consistent without a freeze"
            ),
        );
    }
    if t.major == 0 && fstype != "btrfs" {
        return Static::Final(
            Verdict::Unsupported,
            format!(
                "{fstype}: no block device behind it (anonymous device 0:{})",
                t.minor
            ),
        );
    }
    let known = FREEZABLE.contains(&fstype);
    let reason = if known {
        format!("{fstype} supports FIFREEZE")
    } else {
        format!("{fstype}: not known to support freeze; the real FIFREEZE decides")
    };
    Static::Try { known, reason }
}

/// The "duplicate of" reason for another mount of a superblock listed under `primary`.
pub fn duplicate_reason(primary: &str, major: u32, minor: u32) -> String {
    format!("duplicate of {primary} (same superblock {major}:{minor}): frozen with it, tested once")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn target(fstype: &str, major: u32, ro: bool) -> Target {
        Target {
            mountpoint: PathBuf::from("/mnt/x"),
            major,
            minor: 3,
            fstype: fstype.into(),
            source: None,
            read_only: ro,
            duplicates: Vec::new(),
            backing: Vec::new(),
            holds_root: false,
        }
    }

    #[test]
    fn static_verdicts() {
        let skip = SkipRules::default();
        let v = |t: Target| match classify(&t, &skip) {
            Static::Final(v, _) => Some(v),
            Static::Try { .. } => None,
        };
        assert_eq!(v(target("tmpfs", 0, false)), Some(Verdict::Unsupported));
        assert_eq!(v(target("nfs4", 0, false)), Some(Verdict::Unsupported));
        assert_eq!(
            v(target("fuse.sshfs", 0, false)),
            Some(Verdict::Unsupported)
        );
        assert_eq!(v(target("vfat", 8, false)), Some(Verdict::Unsupported));
        assert_eq!(v(target("ext4", 8, true)), Some(Verdict::ReadOnly));
        assert_eq!(v(target("ext4", 8, false)), None);
        assert_eq!(v(target("btrfs", 0, false)), None);
        assert!(matches!(
            classify(&target("zonefs", 8, false), &skip),
            Static::Try { known: false, .. }
        ));
    }

    #[test]
    fn a_skip_of_any_mount_point_skips_the_superblock() {
        let config = crate::config::FreezeConfig {
            skip: vec!["/data".into()],
            azure_mounts_to_skip: Some(false),
            ..Default::default()
        };
        let skip = SkipRules::load(&config, &crate::root::SysRoot::new("/nonexistent")).unwrap();
        // Listed under the bind mount /mnt/x; /data is a duplicate.
        let mut t = target("ext4", 8, false);
        t.duplicates = vec![PathBuf::from("/srv/y"), PathBuf::from("/data")];
        match classify(&t, &skip) {
            Static::Final(Verdict::Skipped, why) => assert!(why.contains("/data matches"), "{why}"),
            other => panic!("{other:?}"),
        }
        t.duplicates.pop();
        assert!(matches!(classify(&t, &skip), Static::Try { .. }));
    }
}
