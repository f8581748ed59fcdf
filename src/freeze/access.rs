//! Which directory to open to reach a target's superblock, proven to be the mount mountinfo
//! lists. A mount point path can lead elsewhere: a tmpfs mounted over it, a remount between
//! reading mountinfo and opening, a btrfs subvolume whose `st_dev` is not the superblock's.
//! The proof is the mount id statx reports for the opened fd (plus, except for btrfs, the
//! device number); a covered mount point is reached through another mount of the same
//! superblock, or the target is reported as not reachable, never silently swapped.

use super::Target;
use crate::mount::{MountInfo, MountTable};
use crate::sys::freeze::{MountDir, errno_name};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What an opened mount directory must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The mount id mountinfo lists for it.
    pub mount_id: u64,
    /// The superblock's `major:minor`, checked against the fd's device except for btrfs (whose
    /// subvolumes each have their own anonymous device).
    pub dev: Option<(u32, u32)>,
}

impl Expected {
    /// What opening `entry`'s mount point must give.
    pub fn of(entry: &MountInfo) -> Self {
        Expected {
            mount_id: u64::from(entry.mount_id),
            dev: (entry.fs_type != "btrfs").then_some((entry.major, entry.minor)),
        }
    }

    /// Whether `dir` is that mount; otherwise what it is instead.
    pub fn check(&self, dir: &MountDir) -> Result<(), Mismatch> {
        let p = dir.placement;
        if p.mount_id != self.mount_id {
            return Err(Mismatch::OtherMount {
                mount_id: p.mount_id,
            });
        }
        if let Some(dev) = self.dev {
            if (p.dev_major, p.dev_minor) != dev {
                return Err(Mismatch::OtherDevice {
                    dev: (p.dev_major, p.dev_minor),
                });
            }
        }
        Ok(())
    }
}

/// How an opened directory differs from what mountinfo promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Another mount is there (mounted over it, or remounted since mountinfo was read).
    OtherMount { mount_id: u64 },
    /// The right mount id, another device (a remount that reused the id).
    OtherDevice { dev: (u32, u32) },
}

/// A target's superblock, opened through a proven mount.
#[derive(Debug)]
pub struct Access {
    /// The directory opened (the target's mount point, or another mount of its superblock).
    pub path: PathBuf,
    pub expected: Expected,
    pub dir: MountDir,
    /// Why the mounts tried before this one could not be used (empty: the first one worked).
    pub detour: Vec<String>,
}

/// The mounts of `t`'s superblock in the order to try them: the mount point it is reported
/// under, its listed duplicates, then every other mount of the superblock.
fn candidates<'a>(t: &Target, table: &'a MountTable) -> Vec<&'a MountInfo> {
    let mine: Vec<&MountInfo> = table.by_devno(t.major, t.minor).collect();
    let mut out: Vec<&MountInfo> = Vec::new();
    let names = std::iter::once(&t.mountpoint).chain(t.duplicates.iter());
    for name in names {
        // The last of equal mount points is the one on top.
        if let Some(m) = mine.iter().rev().find(|m| &m.mount_point == name) {
            if !out.iter().any(|o| o.mount_id == m.mount_id) {
                out.push(m);
            }
        }
    }
    for m in mine {
        if !out.iter().any(|o| o.mount_id == m.mount_id) {
            out.push(m);
        }
    }
    out
}

/// Describe what is at `path` instead of the expected mount.
fn describe_mismatch(path: &Path, mismatch: Mismatch, table: &MountTable) -> String {
    match mismatch {
        Mismatch::OtherMount { mount_id } => match table
            .entries()
            .iter()
            .find(|m| u64::from(m.mount_id) == mount_id)
        {
            Some(m) if m.mount_point == path => format!(
                "'{}' is covered by a {} mounted over it (mount {mount_id})",
                path.display(),
                m.fs_type
            ),
            Some(m) => format!(
                "'{}' is hidden by a {} mounted on '{}' (mount {mount_id})",
                path.display(),
                m.fs_type,
                m.mount_point.display()
            ),
            None => format!(
                "'{}' leads to mount {mount_id}, which mountinfo does not list (remounted?)",
                path.display()
            ),
        },
        Mismatch::OtherDevice {
            dev: (major, minor),
        } => format!(
            "'{}' is on device {major}:{minor}, not the filesystem mountinfo lists (remounted?)",
            path.display()
        ),
    }
}

/// Open `t` through the first of its mounts that is proven to be what mountinfo lists. The
/// error says, for each mount tried, why it could not be used.
pub fn open_target(t: &Target, table: &MountTable) -> Result<Access, String> {
    let mut why: Vec<String> = Vec::new();
    for m in candidates(t, table) {
        let expected = Expected::of(m);
        match MountDir::open(&m.mount_point) {
            Ok(dir) => match expected.check(&dir) {
                Ok(()) => {
                    return Ok(Access {
                        path: m.mount_point.clone(),
                        expected,
                        dir,
                        detour: why,
                    });
                }
                Err(mismatch) => why.push(describe_mismatch(&m.mount_point, mismatch, table)),
            },
            Err(e) => why.push(format!(
                "cannot open '{}': {}",
                m.mount_point.display(),
                errno_name(e)
            )),
        }
    }
    if why.is_empty() {
        why.push(format!(
            "no mount of {}:{} is listed in mountinfo any more",
            t.major, t.minor
        ));
    }
    Err(format!(
        "no mount of this filesystem can be opened as itself: {}",
        why.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_put_the_named_mount_first_and_skip_nothing() {
        let table = MountTable::from_mountinfo(
            b"27 1 254:0 / / rw - ext4 /dev/vda rw\n\
              60 27 7:1 / /mnt/a rw - ext4 /dev/loop1 rw\n\
              61 27 7:1 / /srv/b rw - ext4 /dev/loop1 rw\n\
              62 60 0:50 / /mnt/a rw - tmpfs tmpfs rw\n\
              63 27 7:1 /sub /srv/c rw - ext4 /dev/loop1 rw\n",
        )
        .unwrap();
        let t = Target {
            mountpoint: PathBuf::from("/srv/b"),
            major: 7,
            minor: 1,
            fstype: "ext4".into(),
            source: None,
            read_only: false,
            duplicates: vec![PathBuf::from("/mnt/a")],
            backing: Default::default(),
            holds_root: false,
        };
        let ids: Vec<u32> = candidates(&t, &table).iter().map(|m| m.mount_id).collect();
        assert_eq!(ids, vec![61, 60, 63]);
        assert_eq!(
            describe_mismatch(
                Path::new("/mnt/a"),
                Mismatch::OtherMount { mount_id: 62 },
                &table
            ),
            "'/mnt/a' is covered by a tmpfs mounted over it (mount 62)"
        );
        let btrfs = crate::mount::mountinfo::parse_line(
            b"70 27 0:47 /@home /home rw - btrfs /dev/sdb2 rw,subvol=/@home",
        )
        .unwrap();
        assert_eq!(
            Expected::of(&btrfs),
            Expected {
                mount_id: 70,
                dev: None
            }
        );
    }
}
