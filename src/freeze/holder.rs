//! Which mounted filesystem holds a loop device's image file, and how that was established.
//!
//! On the running system (the [`SysRoot`](crate::root::SysRoot) is the host) the loop device
//! itself is asked for its file's `(st_dev, st_ino)` (LOOP_GET_STATUS64), in that order:
//!
//! 1. [`MatchedBy::DevIno`]: the sysfs path, opened `O_PATH|O_NOFOLLOW`, is that very file;
//!    the mount it was reached through comes from statx's mount id, its superblock from the
//!    mount table. No path-string guess is involved.
//! 2. [`MatchedBy::Device`]: the path is not that file (deleted, renamed, or in another mount
//!    namespace), but a mount here has the device number the loop driver reports: a superblock
//!    with that `major:minor`, or a mount point whose `st_dev` is it (btrfs subvolumes each have
//!    their own `st_dev`).
//! 3. Otherwise unknown, with the reason ([`HolderLookup::Unknown`]).
//!
//! For any other root (`--root` fixtures, an offline system) no device node or host path is
//! opened at all: the sysfs text and the mount table are all there is, so the image is placed on
//! the mount whose mount point is the longest prefix of its path ([`MatchedBy::PathPrefix`]):
//! consistent within the fixture, but unproven.
//!
//! [`locate`] holds the decisions and does no I/O itself: it asks a [`LiveSystem`] ([`Host`] on
//! the running system, a scripted one in tests).

use super::probe::is_remote;
use super::stack::LoopUnder;
use crate::mount::{MountInfo, MountTable};
use crate::root::DEV_DIR;
use nix::errno::Errno;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How the filesystem holding an image was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The path is proven to be the loop device's file (same `st_dev` and `st_ino`), and its
    /// mount comes from statx's mount id.
    DevIno,
    /// The loop device's `st_dev` matched a mounted superblock or mount point; the path itself
    /// is not (any more) that file.
    Device,
    /// Only the path text was compared with mount points (not the host: nothing was opened).
    PathPrefix,
}

/// The mounted filesystem holding an image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its superblock, as mountinfo shows it (what targets are keyed by).
    pub major: u32,
    pub minor: u32,
    /// The mount the image was found through (one mount point of that superblock).
    pub mount_point: PathBuf,
    pub matched_by: MatchedBy,
}

/// Where an image lives, or why that could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderLookup {
    Found(Holder),
    /// Not located (not mounted here, no permission to ask the loop device, ...): the target is
    /// then frozen before every target that is not loop-backed, the safe default.
    Unknown {
        why: String,
    },
}

impl HolderLookup {
    /// The holder, when found.
    pub fn found(&self) -> Option<&Holder> {
        match self {
            HolderLookup::Found(h) => Some(h),
            HolderLookup::Unknown { .. } => None,
        }
    }
}

/// A file's identity as stat(2) gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// An image path opened without following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedImage {
    pub id: FileId,
    /// The mount it was reached through (statx), or the errno (`EOPNOTSUPP` before Linux 5.8).
    pub mount_id: Result<u64, Errno>,
}

/// The questions [`locate`] asks of a running system. Errors are one-line reasons.
pub trait LiveSystem {
    /// The loop device's backing file identity (LOOP_GET_STATUS64's `lo_device`, `lo_inode`).
    fn loop_backing_id(&self, loop_name: &str) -> Result<FileId, String>;
    /// `path` opened `O_PATH|O_NOFOLLOW`, fstat'ed, and its mount id.
    fn open_image(&self, path: &Path) -> Result<OpenedImage, String>;
    /// `st_dev` of a mount point (not following a final symlink, not triggering automounts).
    fn mount_point_dev(&self, path: &Path) -> Option<u64>;
}

/// The running system: device nodes under [`DEV_DIR`], host paths as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host;

impl LiveSystem for Host {
    fn loop_backing_id(&self, loop_name: &str) -> Result<FileId, String> {
        let status = crate::sys::loopdev::loop_status(&Path::new(DEV_DIR).join(loop_name))
            .map_err(|e| e.to_string())?;
        Ok(FileId {
            dev: status.backing_dev,
            ino: status.backing_ino,
        })
    }

    fn open_image(&self, path: &Path) -> Result<OpenedImage, String> {
        let fail = |e: std::io::Error| {
            format!(
                "cannot open '{}': {}",
                path.display(),
                crate::sys::describe_io(&e)
            )
        };
        // O_PATH: nothing is read, no open side effects; the fd pins the file for fstat and
        // statx, so both describe the same file.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(fail)?;
        let meta = file.metadata().map_err(fail)?;
        Ok(OpenedImage {
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            mount_id: crate::sys::statx::mount_id(file.as_fd()),
        })
    }

    fn mount_point_dev(&self, path: &Path) -> Option<u64> {
        std::fs::symlink_metadata(path).ok().map(|m| m.dev())
    }
}

/// The mount whose filesystem holds `path` by path text alone: the longest mount-point prefix
/// (the last of equal ones, which is on top).
pub fn mount_of_path<'a>(table: &'a MountTable, path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
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

fn holder_of(m: &MountInfo, matched_by: MatchedBy) -> Holder {
    Holder {
        major: m.major,
        minor: m.minor,
        mount_point: m.mount_point.clone(),
        matched_by,
    }
}

fn devno(dev: u64) -> (u32, u32) {
    (
        nix::sys::stat::major(dev) as u32,
        nix::sys::stat::minor(dev) as u32,
    )
}

/// Where the image of `lp` lives. `live` is `None` for a root that is not the host.
pub fn locate(lp: &LoopUnder, table: &MountTable, live: Option<&dyn LiveSystem>) -> HolderLookup {
    let Some(live) = live else {
        return match mount_of_path(table, &lp.backing_file) {
            Some(m) => HolderLookup::Found(holder_of(m, MatchedBy::PathPrefix)),
            None => HolderLookup::Unknown {
                why: "no mount point of the mount table contains the path".to_string(),
            },
        };
    };
    let backing = match live.loop_backing_id(&lp.loop_name) {
        Ok(id) => id,
        Err(why) => return HolderLookup::Unknown { why },
    };
    let not_proven = match live.open_image(&lp.backing_file) {
        Ok(img) if img.id == backing => match img.mount_id {
            Ok(id) => match table.entries().iter().find(|m| u64::from(m.mount_id) == id) {
                Some(m) => return HolderLookup::Found(holder_of(m, MatchedBy::DevIno)),
                None => format!("its mount (id {id}) is not in the mount table"),
            },
            Err(errno) => format!("statx gives no mount id ({errno})"),
        },
        Ok(_) if lp.deleted => "the image was deleted".to_string(),
        Ok(_) => "the path names another file now (renamed or replaced)".to_string(),
        Err(why) if lp.deleted => format!("the image was deleted ({why})"),
        Err(why) => why,
    };
    if let Some(m) = mount_with_device(table, backing.dev, live) {
        return HolderLookup::Found(holder_of(m, MatchedBy::Device));
    }
    let (major, minor) = devno(backing.dev);
    HolderLookup::Unknown {
        why: format!(
            "{not_proven}, and no filesystem mounted here has its device {major}:{minor} (another \
             mount namespace, or unmounted)"
        ),
    }
}

/// A mount of the filesystem with device number `dev`: a superblock with that `major:minor`
/// (its whole-filesystem mount preferred), else a mount point whose `st_dev` is `dev`. Remote
/// and userspace filesystems are never stat'ed (a dead server would hang), nor mount points
/// hidden under a later mount on the same path (the stat would see the top one).
fn mount_with_device<'a>(
    table: &'a MountTable,
    dev: u64,
    live: &dyn LiveSystem,
) -> Option<&'a MountInfo> {
    let (major, minor) = devno(dev);
    let mut same_sb = table.by_devno(major, minor);
    if let Some(first) = same_sb.next() {
        let whole = std::iter::once(first)
            .chain(same_sb)
            .find(|m| m.root == Path::new("/"));
        return Some(whole.unwrap_or(first));
    }
    table.entries().iter().find(|m| {
        !is_remote(&m.fs_type)
            && table
                .by_mount_point(&m.mount_point)
                .is_some_and(|top| std::ptr::eq(top, *m))
            && live.mount_point_dev(&m.mount_point) == Some(dev)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    const TABLE: &[u8] = b"27 1 254:0 / / rw - ext4 /dev/vda rw
60 27 7:5 / /srv rw - ext4 /dev/loop5 rw
61 27 7:5 / /mnt/srv-bind rw - ext4 /dev/loop5 rw
62 27 0:45 /@data /data rw - btrfs /dev/vdb rw,subvol=/@data
63 27 0:60 / /net rw - nfs4 server:/x rw
";

    /// A scripted system: what each question answers, and which mount points were stat'ed.
    #[derive(Default)]
    struct Scripted {
        loops: HashMap<&'static str, Result<FileId, String>>,
        images: HashMap<&'static str, Result<OpenedImage, String>>,
        mount_devs: HashMap<&'static str, u64>,
        stated: RefCell<Vec<PathBuf>>,
    }

    impl LiveSystem for Scripted {
        fn loop_backing_id(&self, loop_name: &str) -> Result<FileId, String> {
            self.loops[loop_name].clone()
        }
        fn open_image(&self, path: &Path) -> Result<OpenedImage, String> {
            self.images
                .get(path.to_str().unwrap())
                .cloned()
                .unwrap_or_else(|| Err("No such file or directory".into()))
        }
        fn mount_point_dev(&self, path: &Path) -> Option<u64> {
            self.stated.borrow_mut().push(path.to_path_buf());
            self.mount_devs.get(path.to_str().unwrap()).copied()
        }
    }

    fn dev(major: u32, minor: u32) -> u64 {
        nix::sys::stat::makedev(major.into(), minor.into())
    }

    fn lp(name: &str, file: &str, deleted: bool) -> LoopUnder {
        LoopUnder {
            loop_name: name.into(),
            backing_file: file.into(),
            deleted,
        }
    }

    fn found(l: HolderLookup) -> (u32, u32, String, MatchedBy) {
        let h = l.found().unwrap_or_else(|| panic!("{l:?}")).clone();
        (
            h.major,
            h.minor,
            h.mount_point.display().to_string(),
            h.matched_by,
        )
    }

    #[test]
    fn a_proven_path_is_placed_by_its_mount_id_not_its_text() {
        let table = MountTable::from_mountinfo(TABLE).unwrap();
        let id = FileId {
            dev: dev(7, 5),
            ino: 12,
        };
        let mut live = Scripted::default();
        live.loops.insert("loop0", Ok(id));
        // Reached through the bind mount (id 61): the path text would have said "/".
        live.images.insert(
            "/elsewhere/disk.img",
            Ok(OpenedImage {
                id,
                mount_id: Ok(61),
            }),
        );
        let got = locate(
            &lp("loop0", "/elsewhere/disk.img", false),
            &table,
            Some(&live),
        );
        assert_eq!(
            found(got),
            (7, 5, "/mnt/srv-bind".into(), MatchedBy::DevIno)
        );
    }

    #[test]
    fn a_deleted_image_falls_back_to_the_device_number() {
        let table = MountTable::from_mountinfo(TABLE).unwrap();
        let mut live = Scripted::default();
        live.loops.insert(
            "loop1",
            Ok(FileId {
                dev: dev(7, 5),
                ino: 99,
            }),
        );
        let got = locate(&lp("loop1", "/srv/gone.img", true), &table, Some(&live));
        // The whole-filesystem mount of 7:5, found without stat'ing anything.
        assert_eq!(found(got), (7, 5, "/srv".into(), MatchedBy::Device));
        assert!(live.stated.borrow().is_empty());
    }

    #[test]
    fn a_replaced_file_and_a_btrfs_subvolume_match_by_mount_point_st_dev() {
        let table = MountTable::from_mountinfo(TABLE).unwrap();
        let id = FileId {
            dev: dev(0, 47),
            ino: 5,
        };
        let mut live = Scripted::default();
        live.loops.insert("loop2", Ok(id));
        live.images.insert(
            "/data/vm.img",
            Ok(OpenedImage {
                id: FileId {
                    dev: id.dev,
                    ino: 6,
                },
                mount_id: Ok(62),
            }),
        );
        live.mount_devs.insert("/data", dev(0, 47));
        let got = locate(&lp("loop2", "/data/vm.img", false), &table, Some(&live));
        assert_eq!(found(got), (0, 45, "/data".into(), MatchedBy::Device));
        assert!(
            !live.stated.borrow().contains(&PathBuf::from("/net")),
            "remote mount points are never stat'ed"
        );
    }

    #[test]
    fn unknown_says_why() {
        let table = MountTable::from_mountinfo(TABLE).unwrap();
        let mut live = Scripted::default();
        live.loops.insert(
            "loop3",
            Ok(FileId {
                dev: dev(8, 17),
                ino: 5,
            }),
        );
        live.loops
            .insert("loop4", Err("cannot open loop device: EACCES".into()));
        let got = locate(&lp("loop3", "/srv/x.img", false), &table, Some(&live));
        let HolderLookup::Unknown { why } = got else {
            panic!("{got:?}")
        };
        assert!(
            why.contains("No such file") && why.contains("8:17"),
            "{why}"
        );
        let got = locate(&lp("loop4", "/srv/x.img", false), &table, Some(&live));
        assert_eq!(
            got,
            HolderLookup::Unknown {
                why: "cannot open loop device: EACCES".into()
            }
        );
    }

    #[test]
    fn not_the_host_means_path_text_only() {
        let table = MountTable::from_mountinfo(TABLE).unwrap();
        let got = locate(&lp("loop9", "/srv/img/disk.img", true), &table, None);
        assert_eq!(found(got), (7, 5, "/srv".into(), MatchedBy::PathPrefix));
        let HolderLookup::Unknown { .. } =
            locate(&lp("loop9", "relative.img", false), &table, None)
        else {
            panic!("a path no mount point contains is unknown")
        };
    }

    #[test]
    fn mount_of_path_takes_the_longest_prefix() {
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
