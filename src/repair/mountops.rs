//! Unmount (never lazy, never forced), fence (O_EXCL), and restore a filesystem's mounts with
//! their recorded source, type, options, subvolume and propagation, then verify.
//!
//! The request builders ([`primary_request`], [`bind_request`]) and [`differences`] are pure;
//! [`unmount`], [`Fence`], [`mount`], [`apply_propagation`] and [`replay_by_mount`] make the
//! system calls (through `nix`, which wraps them safely). A recorded mount point is restored
//! with [`mount_on`]: [`MountPoint`] opens it with no symlink on the way, checks it is the
//! directory the unmount uncovered ([`DirIdentity`]) and mounts on it through its fd.

use crate::mount::mountinfo::MountInfo;
use crate::sys::pathfd::DirFd;
use crate::sys::statx::Placement;
use anyhow::Context as _;
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// `umount2(mount_point, UMOUNT_NOFOLLOW)`: a plain unmount that fails with `EBUSY` while
/// anything holds the mount. Never `MNT_DETACH` (a lazy unmount leaves a live superblock that a
/// checker would then read under a writer) nor `MNT_FORCE`.
pub fn unmount(mount_point: &Path) -> Result<(), nix::errno::Errno> {
    nix::mount::umount2(mount_point, MntFlags::UMOUNT_NOFOLLOW)
}

/// Why [`unmount_recorded`] did not unmount.
#[derive(Debug, thiserror::Error)]
pub enum UnmountError {
    /// The path no longer leads to the recorded mount (a parent directory renamed and another
    /// filesystem mounted at the old path, a symlink put there): nothing was unmounted.
    #[error(
        "{path} is no longer the mount that was planned (mount id {recorded}; {found}): the \
         path was replaced in between, so nothing was unmounted there"
    )]
    Replaced {
        path: String,
        recorded: u32,
        found: String,
    },
    /// umount2 failed.
    #[error("{0}")]
    Sys(nix::errno::Errno),
}

/// [`unmount`] of exactly the recorded mount `mount_id`: the mount id `mount_point` leads to
/// (statx, final symlink not followed) is compared first, so that a path replaced between the
/// plan and the unmount never takes away someone else's mount. (An `O_PATH` fd plus
/// `umount2("/proc/self/fd/N")` would close the remaining window, but the fd itself holds the
/// mount busy.)
pub fn unmount_recorded(mount_point: &Path, mount_id: u32) -> Result<(), UnmountError> {
    still_the_recorded_mount(mount_point, mount_id)?;
    unmount(mount_point).map_err(UnmountError::Sys)
}

/// Whether `mount_point` still leads to the recorded mount `mount_id` (statx, final symlink
/// not followed); checked before anything unmounts it, `umount2` or `systemctl stop`.
pub fn still_the_recorded_mount(mount_point: &Path, mount_id: u32) -> Result<(), UnmountError> {
    let found = crate::sys::statx::mount_id_of_path(mount_point);
    if found == Ok(u64::from(mount_id)) {
        return Ok(());
    }
    Err(UnmountError::Replaced {
        path: mount_point.display().to_string(),
        recorded: mount_id,
        found: match found {
            Ok(id) => format!("mount id {id} there now"),
            Err(e) => format!("cannot stat it: {}", e.desc()),
        },
    })
}

/// An `O_RDONLY|O_EXCL` open of the block device, held while the filesystem is checked: the
/// device cannot be mounted meanwhile (mount(2) fails with `EBUSY`), and `O_EXCL` openers
/// (e2fsck and xfs_repair in repair mode) are refused. It does not stop writers that open
/// without `O_EXCL` (fsck.fat, a loop device stacked on it): see repair.md §2.1.
#[derive(Debug)]
pub struct Fence {
    device: PathBuf,
    _fd: OwnedFd,
}

impl Fence {
    /// Claim `device`; fails (`EBUSY`) while it is mounted or claimed by anyone else.
    pub fn take(device: &Path) -> anyhow::Result<Fence> {
        let fd = crate::sys::blockdev::open_exclusive(device).with_context(|| {
            format!(
                "cannot fence {} (is it still mounted, or used by a loop device, swap, dm or md?)",
                crate::shell::quote_path(device)
            )
        })?;
        Ok(Fence {
            device: device.to_path_buf(),
            _fd: fd,
        })
    }

    /// The fenced device.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Close the exclusive open: the device can be mounted (and repaired) again.
    pub fn release(self) {
        drop(self);
    }
}

/// One mount(2) to make (and, for a bind, the remount that applies its per-mount flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The device, or for a bind the directory to bind.
    pub source: PathBuf,
    /// Where to mount.
    pub target: PathBuf,
    /// Filesystem type (ignored for a bind).
    pub fs_type: String,
    /// `MS_*` flags: per-mount flags (`ro`, `nosuid`, ..., atime) plus, for a primary mount,
    /// the superblock flags (`sync`, `dirsync`, `mand`, `lazytime`); `MS_BIND` for a bind.
    pub flags: MsFlags,
    /// Filesystem options (comma-separated), empty for a bind.
    pub data: String,
}

/// Per-mount option words and the flags they stand for. mountinfo shows no word for
/// `strictatime`: it is the absence of both `noatime` and `relatime` (see [`per_mount_flags`]).
const PER_MOUNT: &[(&str, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC),
    ("noatime", MsFlags::MS_NOATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME),
    ("relatime", MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME),
    (
        "nosymfollow",
        MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
    ),
];

/// Superblock flags as the kernel shows them in the super options (`show_sb_opts`).
const SUPER_FLAGS: &[(&str, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY),
    ("sync", MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC),
    ("mand", MsFlags::MS_MANDLOCK),
    ("lazytime", MsFlags::MS_LAZYTIME),
];

/// Super option words that are never passed back as data: the flag words above (given as
/// flags instead), `rw`, and `seclabel` (shown by SELinux for filesystems that support labels;
/// never typed by anyone, and refused by a kernel without SELinux).
const NOT_DATA: &[&str] = &["rw", "seclabel"];

/// Split an option list on commas outside double quotes (SELinux `context="a,b"` values).
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&options[start..]);
    out.retain(|o| !o.is_empty());
    out
}

fn flag_of(table: &[(&str, MsFlags)], word: &str) -> Option<MsFlags> {
    table.iter().find(|(w, _)| *w == word).map(|(_, f)| *f)
}

/// The per-mount flags of a mountinfo line's mount options, with the atime mode made explicit
/// (`MS_STRICTATIME` when neither `noatime` nor `relatime` is shown: mount(2) would otherwise
/// default to relatime).
pub fn per_mount_flags(mount_options: &str) -> MsFlags {
    let mut flags = MsFlags::empty();
    for word in split_options(mount_options) {
        if let Some(f) = flag_of(PER_MOUNT, word) {
            flags |= f;
        }
    }
    if !flags.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    flags
}

/// The superblock flags of a mountinfo line's super options.
fn super_flags(super_options: &str) -> MsFlags {
    split_options(super_options)
        .into_iter()
        .filter_map(|w| flag_of(SUPER_FLAGS, w))
        .fold(MsFlags::empty(), |a, f| a | f)
}

/// The key of an option (`commit` for `commit=30`).
fn option_key(option: &str) -> &str {
    option.split_once('=').map_or(option, |(k, _)| k)
}

/// The filesystem data for mount(2) from recorded super options: everything but flag words,
/// `rw` and `seclabel`; for btrfs `subvol=` is set from the mount's root (the subvolume
/// mountinfo field 4 names), keeping `subvolid=` so that a different subvolume now at that
/// path makes the mount fail instead of mounting the wrong tree.
fn mount_data(recorded: &MountInfo) -> String {
    let btrfs = recorded.fs_type == "btrfs";
    // btrfs prints `subvol=` last (btrfs_show_options ends with it; LSM options come before the
    // filesystem's). Its value is escaped in mountinfo but decoded by the parser, so a comma in
    // it would split it: cut it off as a whole.
    let options = match recorded.super_options.rfind(",subvol=") {
        Some(at) if btrfs => &recorded.super_options[..at],
        _ => recorded.super_options.as_str(),
    };
    let mut out: Vec<String> = split_options(options)
        .into_iter()
        .filter(|o| {
            !NOT_DATA.contains(o)
                && flag_of(SUPER_FLAGS, o).is_none()
                && flag_of(PER_MOUNT, o).is_none()
                && !(btrfs && option_key(o) == "subvol")
        })
        .map(str::to_string)
        .collect();
    // A comma cannot be written in a mount(2) option (btrfs has no quoting): then subvolid=
    // alone names the subvolume.
    let root = recorded.root.to_str().filter(|r| !r.contains(','));
    if btrfs && let Some(root) = root {
        out.push(format!("subvol={root}"));
    }
    out.join(",")
}

/// The mount that brings `device` back at `recorded`'s mount point with its recorded type,
/// per-mount flags, superblock flags and filesystem options (and, for btrfs, its subvolume).
///
/// A btrfs mount whose root is a directory inside a subvolume (a bind) cannot be mounted this
/// way (`subvol=` must name a subvolume): restore it with [`bind_request`] from a mount of its
/// subvolume. A root that is not UTF-8 or holds a comma is left to `subvolid=`.
///
/// Options only userspace knew (`nofail`, `x-*`, `_netdev`) are not in mountinfo; where an
/// fstab entry or a systemd unit exists it is the better source (repair.md §3.1).
pub fn primary_request(recorded: &MountInfo, device: &Path) -> MountRequest {
    MountRequest {
        source: device.to_path_buf(),
        target: recorded.mount_point.clone(),
        fs_type: recorded.fs_type.clone(),
        flags: per_mount_flags(&recorded.mount_options) | super_flags(&recorded.super_options),
        data: mount_data(recorded),
    }
}

/// A second mount of the same superblock as a bind of the restored `primary`: the source is
/// `primary.mount_point` joined with `recorded.root` relative to `primary.root`. `None` when
/// `recorded.root` is not inside `primary.root` (then mount it as a primary of its own, e.g. a
/// btrfs subvolume beside the primary's). The per-mount flags are applied by [`mount`] with a
/// `MS_REMOUNT|MS_BIND` step (a bind mount ignores them).
pub fn bind_request(recorded: &MountInfo, primary: &MountInfo) -> Option<MountRequest> {
    let rel = recorded.root.strip_prefix(&primary.root).ok()?;
    let source = if rel.as_os_str().is_empty() {
        primary.mount_point.clone()
    } else {
        primary.mount_point.join(rel)
    };
    Some(MountRequest {
        source,
        target: recorded.mount_point.clone(),
        fs_type: recorded.fs_type.clone(),
        flags: MsFlags::MS_BIND | per_mount_flags(&recorded.mount_options),
        data: String::new(),
    })
}

/// Make the mount `req` describes: mount(2); for a bind, then `MS_REMOUNT|MS_BIND` with its
/// per-mount flags (only that remount makes a bind read-only, nosuid, ...). If that second
/// step fails the bind is unmounted again, so nothing is left half-configured.
///
/// The target is resolved by path: for a private directory snapguard made itself (the log
/// replay). A recorded mount point is mounted with [`mount_on`].
pub fn mount(req: &MountRequest) -> anyhow::Result<()> {
    mount_at(req, None)
}

/// [`mount`] onto the directory `at` was verified to be, through its fd: the path is never
/// resolved again, so a symlink or another directory put in its place meanwhile is never
/// mounted on. The bind's remount step acts on the new mount's root reached from the held
/// parent directory.
pub fn mount_on(req: &MountRequest, at: &MountPoint) -> anyhow::Result<()> {
    mount_at(req, Some(at))
}

/// mount(2) on `at` (through its fd), else on `req.target` by path. Messages name
/// `req.target`.
fn mount_at(req: &MountRequest, at: Option<&MountPoint>) -> anyhow::Result<()> {
    let by_fd = at.map(|a| a.dir.proc_path());
    let target = by_fd.as_deref().unwrap_or(&req.target);
    let shown = crate::shell::quote_path(&req.target);
    let source = crate::shell::quote_path(&req.source);
    if req.flags.contains(MsFlags::MS_BIND) {
        nix::mount::mount(
            Some(&req.source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind {source} on {shown}"))?;
        let per_mount = req.flags - MsFlags::MS_BIND;
        if per_mount.is_empty() {
            return Ok(());
        }
        let root = at.map(MountPoint::mounted_root).transpose();
        let remounted = root.and_then(|root| {
            let path = root.as_ref().map(DirFd::proc_path);
            nix::mount::mount(
                None::<&str>,
                path.as_deref().unwrap_or(&req.target),
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | per_mount,
                None::<&str>,
            )
            .map_err(anyhow::Error::new)
        });
        if let Err(e) = remounted {
            let undone = match unmount(&req.target) {
                Ok(()) => "unmounted again".to_string(),
                Err(u) => format!("left in place: unmount failed too: {u}"),
            };
            return Err(e).with_context(|| {
                format!("cannot apply the per-mount flags of the bind on {shown} (the bind was {undone})")
            });
        }
        return Ok(());
    }
    let data = (!req.data.is_empty()).then_some(req.data.as_str());
    nix::mount::mount(
        Some(&req.source),
        target,
        Some(req.fs_type.as_str()),
        req.flags,
        data,
    )
    .with_context(|| {
        format!(
            "cannot mount {source} on {shown} (type {}, options {})",
            req.fs_type,
            if req.data.is_empty() {
                "none"
            } else {
                &req.data
            }
        )
    })
}

/// The directory a mount point is on its parent filesystem (what the mount covers), as its
/// device and inode: recorded at plan time ([`MountPoint::covered`]) or once the unmount has
/// uncovered it, compared before it is mounted on again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirIdentity {
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
}

impl std::fmt::Display for DirIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {}:{} inode {}",
            self.dev_major, self.dev_minor, self.ino
        )
    }
}

/// A mount point directory held open: its parent and itself, each reached without following
/// a symlink, and (when one was recorded) proven to be the directory that was unmounted.
#[derive(Debug)]
pub struct MountPoint {
    path: PathBuf,
    parent: DirFd,
    dir: DirFd,
    placement: Placement,
}

/// Why a mount point is not the directory it was: nothing is mounted on it.
#[derive(Debug, thiserror::Error)]
pub enum MountPointError {
    /// It, or a directory on its path, is a symlink now.
    #[error(
        "{path} is a symlink now, or a directory on its path is (replaced while unmounted): \
         never mounted through a symlink"
    )]
    Symlink { path: String },
    /// It is no directory now.
    #[error("{path} is not a directory now (replaced while unmounted)")]
    NotADirectory { path: String },
    /// It is another directory than the one unmounted.
    #[error(
        "{path} is another directory now ({now}; it was {was}): replaced while unmounted, \
         not mounted on"
    )]
    Replaced {
        path: String,
        was: DirIdentity,
        now: DirIdentity,
    },
    /// It cannot be opened (gone, no permission, `/` itself).
    #[error("cannot open the mount point {path}: {why}")]
    Open { path: String, why: String },
}

impl MountPoint {
    /// Open `path` (`O_PATH|O_NOFOLLOW|O_DIRECTORY`, no symlink anywhere on the way) and, when
    /// `expected` is given, check that it is that directory (device and inode).
    pub fn open(
        path: &Path,
        expected: Option<&DirIdentity>,
    ) -> Result<MountPoint, MountPointError> {
        let shown = crate::shell::quote_path(path);
        let refused = |errno: Errno| match errno {
            Errno::ELOOP => MountPointError::Symlink {
                path: shown.clone(),
            },
            // O_NOFOLLOW|O_DIRECTORY on a final symlink says ENOTDIR: name it.
            Errno::ENOTDIR if path.ancestors().any(Path::is_symlink) => MountPointError::Symlink {
                path: shown.clone(),
            },
            Errno::ENOTDIR => MountPointError::NotADirectory {
                path: shown.clone(),
            },
            e => MountPointError::Open {
                path: shown.clone(),
                why: e.desc().into(),
            },
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(MountPointError::Open {
                path: shown,
                why: "not a directory below another".into(),
            });
        };
        if !path.is_absolute() {
            return Err(MountPointError::Open {
                path: shown,
                why: "not an absolute path".into(),
            });
        }
        let parent = DirFd::open(None, parent).map_err(refused)?;
        let dir = DirFd::open(Some(&parent), Path::new(name)).map_err(refused)?;
        let placement = dir.placement().map_err(refused)?;
        let mp = MountPoint {
            path: path.to_path_buf(),
            parent,
            dir,
            placement,
        };
        match expected {
            Some(was) if *was != mp.identity() => Err(MountPointError::Replaced {
                path: shown,
                was: *was,
                now: mp.identity(),
            }),
            _ => Ok(mp),
        }
    }

    /// The directory a mount at `mount_point` covers, seen while it is still mounted: through
    /// a private clone of its parent mount (mounted at `parent_mount_point`), which carries no
    /// submount. `mount_point` must be strictly below `parent_mount_point` (a mount stacked on
    /// the parent's own mount point covers the parent's root, which the clone cannot tell
    /// apart from the stack's top: `EINVAL`). The clone must be of the parent's device
    /// (`parent_dev`, mountinfo's `major:minor`), else something hides the parent's path:
    /// `EXDEV`.
    pub fn covered(
        parent_mount_point: &Path,
        parent_dev: (u32, u32),
        mount_point: &Path,
    ) -> Result<DirIdentity, Errno> {
        let rel = mount_point
            .strip_prefix(parent_mount_point)
            .map_err(|_| Errno::EINVAL)?;
        if rel.as_os_str().is_empty() {
            return Err(Errno::EINVAL);
        }
        let clone = DirFd::clone_mount(parent_mount_point)?;
        let root = clone.placement()?;
        if (root.dev_major, root.dev_minor) != parent_dev {
            return Err(Errno::EXDEV);
        }
        let dir = DirFd::open(Some(&clone), rel)?;
        let p = dir.placement()?;
        Ok(DirIdentity {
            dev_major: p.dev_major,
            dev_minor: p.dev_minor,
            ino: p.ino,
        })
    }

    /// Device and inode of the directory.
    pub fn identity(&self) -> DirIdentity {
        DirIdentity {
            dev_major: self.placement.dev_major,
            dev_minor: self.placement.dev_minor,
            ino: self.placement.ino,
        }
    }

    /// The root of the mount now on this directory, reached by name from the held parent (a
    /// mount point cannot be renamed or removed while mounted on).
    fn mounted_root(&self) -> anyhow::Result<DirFd> {
        let name = self.path.file_name().unwrap_or_default();
        let root = DirFd::open(Some(&self.parent), Path::new(name)).with_context(|| {
            format!(
                "cannot open {} after mounting on it",
                crate::shell::quote_path(&self.path)
            )
        })?;
        let placement = root.placement()?;
        if placement.mount_id == self.placement.mount_id {
            anyhow::bail!(
                "nothing is mounted on {} after mount(2)",
                crate::shell::quote_path(&self.path)
            );
        }
        Ok(root)
    }

    /// [`apply_propagation`] on the mount just made on this directory.
    pub fn apply_propagation(&self, optional_fields: &[String]) -> anyhow::Result<()> {
        let root = self.mounted_root()?;
        set_propagation(&root.proc_path(), &self.path, optional_fields)
    }
}

/// The propagation type of a mount, without the peer group numbers (which cannot be restored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Propagation {
    /// No optional field.
    Private,
    /// `shared:N`.
    Shared,
    /// `master:N` (a slave).
    Slave,
    /// `shared:N` and `master:M`.
    SharedSlave,
    /// `unbindable`.
    Unbindable,
}

impl Propagation {
    /// As findmnt's PROPAGATION column says it.
    pub fn word(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Shared => "shared",
            Propagation::Slave => "slave",
            Propagation::SharedSlave => "shared,slave",
            Propagation::Unbindable => "unbindable",
        }
    }
}

/// One propagation change as mount(8) names it.
fn step_word(step: MsFlags) -> &'static str {
    if step == MsFlags::MS_SHARED {
        "shared (mount --make-shared)"
    } else if step == MsFlags::MS_SLAVE {
        "a slave (mount --make-slave)"
    } else if step == MsFlags::MS_UNBINDABLE {
        "unbindable (mount --make-unbindable)"
    } else {
        "private (mount --make-private)"
    }
}

/// A mount source for messages (`none` when mountinfo has none).
fn source_text(source: Option<&std::ffi::OsStr>) -> String {
    source.map_or_else(|| "none".to_string(), |s| s.to_string_lossy().into_owned())
}

/// The propagation type of mountinfo's optional fields (`propagate_from:N` is derived and does
/// not count).
pub fn propagation_of(optional_fields: &[String]) -> Propagation {
    let has = |p: &str| optional_fields.iter().any(|f| f.starts_with(p));
    match (has("shared:"), has("master:"), has("unbindable")) {
        (_, _, true) => Propagation::Unbindable,
        (true, true, _) => Propagation::SharedSlave,
        (true, false, _) => Propagation::Shared,
        (false, true, _) => Propagation::Slave,
        (false, false, _) => Propagation::Private,
    }
}

/// Give the mount at `mount_point` the propagation type recorded in `optional_fields`:
/// `shared` → `MS_SHARED` (a new peer group: the old one cannot be rejoined), `master` →
/// `MS_SLAVE` (the exact master is lost: a mount becomes the slave of the peer group it is
/// in now, and a private mount stays private), both → slave then shared, `unbindable` →
/// `MS_UNBINDABLE`, none → `MS_PRIVATE`.
pub fn apply_propagation(mount_point: &Path, optional_fields: &[String]) -> anyhow::Result<()> {
    set_propagation(mount_point, mount_point, optional_fields)
}

/// [`apply_propagation`] on `target` (a path or a `/proc/self/fd/N` name); messages name
/// `shown`.
fn set_propagation(target: &Path, shown: &Path, optional_fields: &[String]) -> anyhow::Result<()> {
    let steps: &[MsFlags] = match propagation_of(optional_fields) {
        Propagation::Private => &[MsFlags::MS_PRIVATE],
        Propagation::Shared => &[MsFlags::MS_SHARED],
        Propagation::Slave => &[MsFlags::MS_SLAVE],
        Propagation::SharedSlave => &[MsFlags::MS_SLAVE, MsFlags::MS_SHARED],
        Propagation::Unbindable => &[MsFlags::MS_UNBINDABLE],
    };
    for &step in steps {
        nix::mount::mount(None::<&str>, target, None::<&str>, step, None::<&str>).with_context(
            || {
                format!(
                    "cannot make {} {}",
                    crate::shell::quote_path(shown),
                    step_word(step)
                )
            },
        )?;
    }
    Ok(())
}

/// How a restored mount differs from the recorded one, one line per difference (empty: the
/// same): source, type, root, mount point, per-mount options and super options as sets,
/// propagation type. Mount ids and peer group numbers are not compared (both are new after a
/// remount by construction); nothing else is ignored.
pub fn differences(before: &MountInfo, after: &MountInfo) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, b: String, a: String| {
        if b != a {
            out.push(format!("{name}: was '{b}', now '{a}'"));
        }
    };
    field(
        "source",
        source_text(before.source.as_deref()),
        source_text(after.source.as_deref()),
    );
    field("type", before.fs_type.clone(), after.fs_type.clone());
    field(
        "root",
        before.root.display().to_string(),
        after.root.display().to_string(),
    );
    field(
        "mount point",
        before.mount_point.display().to_string(),
        after.mount_point.display().to_string(),
    );
    let sets = |name: &str, b: &str, a: &str, out: &mut Vec<String>| {
        let b: BTreeSet<&str> = split_options(b).into_iter().collect();
        let a: BTreeSet<&str> = split_options(a).into_iter().collect();
        let lost: Vec<&str> = b.difference(&a).copied().collect();
        let gained: Vec<&str> = a.difference(&b).copied().collect();
        if !lost.is_empty() {
            out.push(format!("{name}: lost {}", lost.join(",")));
        }
        if !gained.is_empty() {
            out.push(format!("{name}: gained {}", gained.join(",")));
        }
    };
    sets(
        "mount options",
        &before.mount_options,
        &after.mount_options,
        &mut out,
    );
    sets(
        "super options",
        &before.super_options,
        &after.super_options,
        &mut out,
    );
    let (b, a) = (
        propagation_of(&before.optional_fields),
        propagation_of(&after.optional_fields),
    );
    if b != a {
        out.push(format!("propagation: was {}, now {}", b.word(), a.word()));
    }
    out
}

/// Replay an XFS log (or any journal only the kernel replays): mount `device` read-write on a
/// fresh private directory under `scratch_parent` (nosuid, nodev, noexec), unmount it, remove
/// the directory. The caller drops its fence just before and retakes it right after.
/// `scratch_parent` must not be on the filesystem being replayed.
pub fn replay_by_mount(device: &Path, fs_type: &str, scratch_parent: &Path) -> anyhow::Result<()> {
    let dir = scratch_parent.join(format!("snapguard-replay-{}", std::process::id()));
    std::fs::create_dir(&dir)
        .with_context(|| format!("cannot create {}", crate::shell::quote_path(&dir)))?;
    let req = MountRequest {
        source: device.to_path_buf(),
        target: dir.clone(),
        fs_type: fs_type.to_string(),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: String::new(),
    };
    let mounted = mount(&req).context("log replay");
    let unmounted = match &mounted {
        Ok(()) => unmount(&dir).with_context(|| {
            format!(
                "log replay: cannot unmount {} again",
                crate::shell::quote_path(&dir)
            )
        }),
        Err(_) => Ok(()),
    };
    if unmounted.is_ok() {
        let _ = std::fs::remove_dir(&dir);
    }
    mounted?;
    unmounted?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::mountinfo::parse_line;

    fn mi(line: &str) -> MountInfo {
        parse_line(line.as_bytes()).expect("mountinfo line")
    }

    #[test]
    fn ext4_primary_keeps_hardening_flags_and_options() {
        let m = mi(
            "45 27 7:0 / /mnt/data rw,nosuid,nodev,noatime - ext4 /dev/loop0 rw,errors=remount-ro,commit=30",
        );
        let r = primary_request(&m, Path::new("/dev/loop0"));
        assert_eq!(r.source, Path::new("/dev/loop0"));
        assert_eq!(r.target, Path::new("/mnt/data"));
        assert_eq!(r.fs_type, "ext4");
        assert_eq!(
            r.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME
        );
        assert_eq!(r.data, "errors=remount-ro,commit=30");
    }

    #[test]
    fn superblock_flags_become_flags_not_data() {
        let m = mi(
            "45 27 7:0 / /m rw,relatime - ext4 /dev/loop0 rw,sync,lazytime,nodioread_nolock,nodelalloc,data=journal",
        );
        let r = primary_request(&m, Path::new("/dev/loop0"));
        assert_eq!(
            r.flags,
            MsFlags::MS_RELATIME | MsFlags::MS_SYNCHRONOUS | MsFlags::MS_LAZYTIME
        );
        assert_eq!(r.data, "nodioread_nolock,nodelalloc,data=journal");
        let m = mi("45 27 7:0 / /m ro,nodiratime - ext4 /dev/loop0 ro,dirsync,mand,seclabel");
        let r = primary_request(&m, Path::new("/dev/loop0"));
        assert_eq!(
            r.flags,
            MsFlags::MS_RDONLY
                | MsFlags::MS_NODIRATIME
                | MsFlags::MS_STRICTATIME
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_MANDLOCK
        );
        assert_eq!(r.data, "");
    }

    #[test]
    fn strictatime_is_the_absence_of_noatime_and_relatime() {
        assert_eq!(per_mount_flags("rw"), MsFlags::MS_STRICTATIME);
        assert_eq!(per_mount_flags("rw,relatime"), MsFlags::MS_RELATIME);
        assert_eq!(per_mount_flags("rw,noatime"), MsFlags::MS_NOATIME);
        assert_eq!(
            per_mount_flags("ro,noexec,nosymfollow,relatime"),
            MsFlags::MS_RDONLY
                | MsFlags::MS_NOEXEC
                | MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)
                | MsFlags::MS_RELATIME
        );
    }

    #[test]
    fn xfs_options_are_passed_back() {
        let m = mi(
            "45 27 7:0 / /x rw,relatime - xfs /dev/loop0 rw,inode64,logbufs=8,logbsize=32k,noquota",
        );
        let r = primary_request(&m, Path::new("/dev/loop0"));
        assert_eq!(r.data, "inode64,logbufs=8,logbsize=32k,noquota");
    }

    #[test]
    fn btrfs_subvolume_comes_from_the_mount_root() {
        let m = mi(
            "47 27 0:40 /sub /mnt/b rw,noatime - btrfs /dev/loop1 rw,discard=async,space_cache=v2,subvolid=256,subvol=/sub",
        );
        let r = primary_request(&m, Path::new("/dev/loop1"));
        assert_eq!(
            r.data,
            "discard=async,space_cache=v2,subvolid=256,subvol=/sub"
        );
        assert_eq!(r.flags, MsFlags::MS_NOATIME);
        // The subvol= shown is replaced by the root field even if they disagree (a bind of a
        // directory inside a subvolume shows the subvolume, the root shows the directory).
        let m = mi(
            "47 27 0:40 /@data /d rw,relatime - btrfs /dev/sda2 rw,ssd,subvolid=257,subvol=/@data",
        );
        assert_eq!(
            primary_request(&m, Path::new("/dev/sda2")).data,
            "ssd,subvolid=257,subvol=/@data"
        );
    }

    #[test]
    fn a_btrfs_root_with_a_comma_is_left_to_subvolid() {
        let m =
            mi("47 27 0:40 /a,b /mnt/b rw,relatime - btrfs /dev/loop1 rw,subvolid=258,subvol=/a,b");
        let r = primary_request(&m, Path::new("/dev/loop1"));
        assert_eq!(r.data, "subvolid=258");
    }

    #[test]
    fn quoted_commas_stay_in_one_option() {
        assert_eq!(
            split_options(r#"rw,context="system_u:object_r:tmp_t:s0:c1,c2",commit=5"#),
            vec![
                "rw",
                r#"context="system_u:object_r:tmp_t:s0:c1,c2""#,
                "commit=5"
            ]
        );
        assert_eq!(split_options(""), Vec::<&str>::new());
        assert_eq!(split_options(",,a,"), vec!["a"]);
    }

    #[test]
    fn binds_come_from_the_primary() {
        let primary =
            mi("46 27 0:40 / /mnt/top rw,relatime - btrfs /dev/loop1 rw,subvolid=5,subvol=/");
        let sub = mi(
            "47 27 0:40 /sub /mnt/sub ro,nosuid,relatime - btrfs /dev/loop1 rw,subvolid=256,subvol=/sub",
        );
        let r = bind_request(&sub, &primary).expect("reachable");
        assert_eq!(r.source, Path::new("/mnt/top/sub"));
        assert_eq!(r.target, Path::new("/mnt/sub"));
        assert_eq!(
            r.flags,
            MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_RELATIME
        );
        assert_eq!(r.data, "");
        // The same root: the primary's mount point itself.
        let again =
            mi("48 27 0:40 / /mnt/again rw,relatime - btrfs /dev/loop1 rw,subvolid=5,subvol=/");
        assert_eq!(
            bind_request(&again, &primary).expect("same root").source,
            Path::new("/mnt/top")
        );
        // Not below the primary's root: mounted as a primary of its own.
        assert_eq!(bind_request(&primary, &sub), None);
        let other = mi("49 27 0:40 /subway /mnt/w rw - btrfs /dev/loop1 rw,subvol=/subway");
        assert_eq!(
            bind_request(&other, &sub),
            None,
            "components, not text prefixes"
        );
    }

    #[test]
    fn a_mount_point_must_be_the_directory_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let was = match MountPoint::open(&mnt, None) {
            Ok(mp) => mp.identity(),
            Err(MountPointError::Open { why, .. }) if why.contains("not implemented") => return,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(MountPoint::open(&mnt, Some(&was)).unwrap().identity(), was);
        // Another directory under the same name (made before the old one goes: a new inode).
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::remove_dir(&mnt).unwrap();
        std::fs::rename(&other, &mnt).unwrap();
        let e = MountPoint::open(&mnt, Some(&was)).unwrap_err();
        assert!(matches!(e, MountPointError::Replaced { .. }), "{e}");
        assert!(MountPoint::open(&mnt, None).is_ok(), "no identity recorded");
        // A symlink to a directory, as the last component or on the way.
        std::fs::remove_dir(&mnt).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(elsewhere.join("sub")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &mnt).unwrap();
        let e = MountPoint::open(&mnt, None).unwrap_err();
        assert!(matches!(e, MountPointError::Symlink { .. }), "{e}");
        let e = MountPoint::open(&mnt.join("sub"), None).unwrap_err();
        assert!(matches!(e, MountPointError::Symlink { .. }), "{e}");
        // A file.
        std::fs::remove_file(&mnt).unwrap();
        std::fs::write(&mnt, b"").unwrap();
        let e = MountPoint::open(&mnt, None).unwrap_err();
        assert!(matches!(e, MountPointError::NotADirectory { .. }), "{e}");
        assert!(matches!(
            MountPoint::open(Path::new("/"), None).unwrap_err(),
            MountPointError::Open { .. }
        ));
    }

    #[test]
    fn propagation_types() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(propagation_of(&f(&[])), Propagation::Private);
        assert_eq!(propagation_of(&f(&["shared:3"])), Propagation::Shared);
        assert_eq!(propagation_of(&f(&["master:3"])), Propagation::Slave);
        assert_eq!(
            propagation_of(&f(&["master:3", "propagate_from:2"])),
            Propagation::Slave
        );
        assert_eq!(
            propagation_of(&f(&["shared:4", "master:3"])),
            Propagation::SharedSlave
        );
        assert_eq!(propagation_of(&f(&["unbindable"])), Propagation::Unbindable);
    }

    #[test]
    fn differences_compare_sets_and_types() {
        let before = mi(
            "45 27 7:0 / /m rw,nosuid,nodev,noatime shared:5 - ext4 /dev/loop0 rw,errors=remount-ro,commit=30",
        );
        // New ids, other peer group, options in another order: the same.
        let same = mi(
            "99 27 7:0 / /m rw,noatime,nodev,nosuid shared:77 - ext4 /dev/loop0 rw,commit=30,errors=remount-ro",
        );
        assert_eq!(differences(&before, &same), Vec::<String>::new());
        let plain = mi("99 27 7:0 / /m rw,relatime - ext4 /dev/loop0 rw");
        let d = differences(&before, &plain);
        assert_eq!(
            d,
            vec![
                "mount options: lost noatime,nodev,nosuid".to_string(),
                "mount options: gained relatime".to_string(),
                "super options: lost commit=30,errors=remount-ro".to_string(),
                "propagation: was shared, now private".to_string(),
            ]
        );
        let moved = mi(
            "99 27 0:41 / /n rw,nosuid,nodev,noatime shared:5 - btrfs /dev/loop1 rw,errors=remount-ro,commit=30",
        );
        let d = differences(&before, &moved);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("source:"), "{d:?}");
        assert!(d[1].starts_with("type:"), "{d:?}");
        assert!(d[2].starts_with("mount point:"), "{d:?}");
        let sub = mi(
            "45 27 7:0 /sub /m rw,nosuid,nodev,noatime shared:5 - ext4 /dev/loop0 rw,errors=remount-ro,commit=30",
        );
        assert_eq!(differences(&before, &sub).len(), 1);
    }
}
