//! Everything that uses a filesystem besides processes: its mounts in every mount namespace,
//! mounts below them, swap files and loop devices on it, block-layer holders, fstab and
//! systemd units (repair.md §1, §3).
//!
//! The filesystem is named by a device number. Its superblock is what mountinfo's field 3
//! shows; for btrfs that is an anonymous `0:NN` device shared by every subvolume mount, so when
//! no mount carries the device number itself, the mounts whose *source* is that block device
//! (or, for a multi-device btrfs, another member listed beside it in
//! `/sys/fs/btrfs/<fsid>/devices/`) give the superblock.
//!
//! Each source is read once through [`SysRoot`]: our mountinfo, one mountinfo per *other* mount
//! namespace (the first readable process of each `ns/mnt` inode), `/proc/swaps`,
//! `/sys/block/loop*/loop/backing_file` (placed with [`crate::freeze::holder::locate`]: the
//! loop device's dev/inode and statx mount id on the host, path text otherwise),
//! `/sys/dev/block/M:m/holders/`, `/etc/fstab`, and the systemd unit directories. A process
//! whose namespace or mountinfo cannot be read is listed: it may keep the filesystem alive.
//! Nothing here changes anything.

use super::holders::{self, HolderTarget, Holders};
use crate::freeze::holder::{Host, LiveSystem, locate, mount_of_path};
use crate::freeze::stack::LoopUnder;
use crate::mount::MountTable;
use crate::mount::mountinfo::{self, MountInfo};
use crate::root::{
    ETC_FSTAB, MOUNTINFO, PROC, PROC_SELF, PROC_SWAPS, SYS_BLOCK, SYS_CLASS_BLOCK, SYS_FS_BTRFS,
    SYSTEMD_AUTOMOUNT_DIRS, SysRoot,
};
use crate::sys::procdir::ProcDir;
use anyhow::Context;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A mount of the filesystem seen in another mount namespace.
#[derive(Debug, Clone)]
pub struct NamespaceMount {
    /// Inode of `/proc/PID/ns/mnt`: the namespace's identity.
    pub namespace: u64,
    /// One process in that namespace (whose mountinfo was read).
    pub pid: u32,
    pub mount: MountInfo,
}

/// A loop device whose image file lives on the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopBacking {
    /// Kernel name (`loop3`).
    pub device: String,
    /// The image as sysfs prints it (without `" (deleted)"`).
    pub backing_file: PathBuf,
}

/// One `/etc/fstab` line (fields `\ooo`-unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub file: PathBuf,
    pub vfstype: String,
    pub options: String,
    pub passno: u32,
    /// 1-based line number.
    pub line: usize,
}

/// Everything found using one filesystem.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The superblock's device as mountinfo field 3 shows it (btrfs: the anonymous `0:NN`), or
    /// the device asked about when no mount of it was found anywhere.
    pub superblock: (u32, u32),
    /// Every mount of the superblock in our namespace, parents before children.
    pub mounts: Vec<MountInfo>,
    /// Mounts of other superblocks below any of those, in our namespace, parents first.
    pub submounts: Vec<MountInfo>,
    /// Mounts of the superblock in mount namespaces other than ours.
    pub other_namespaces: Vec<NamespaceMount>,
    /// Pids whose `ns/mnt` or mountinfo could not be read (possible holders).
    pub unreadable_namespaces: Vec<u32>,
    /// `/proc/swaps` files on it.
    pub swap_files: Vec<PathBuf>,
    /// Loop devices whose image is on it.
    pub loop_devices: Vec<LoopBacking>,
    /// `/sys/dev/block/M:m/holders/*` of its device(s) (dm/md on top).
    pub block_holders: Vec<String>,
    /// fstab lines whose mount point is one of `mounts`.
    pub fstab: Vec<FstabEntry>,
    /// systemd units of the mount points (`.mount`, and `.automount` where such a unit exists).
    pub units: Vec<String>,
    pub holders: Holders,
}

impl Discovery {
    /// What [`holders::scan_processes`] looks for: the superblock and every mount id of it, in
    /// our namespace and the others.
    pub fn holder_target(&self) -> HolderTarget {
        HolderTarget {
            major: self.superblock.0,
            minor: self.superblock.1,
            mount_ids: self
                .mounts
                .iter()
                .map(|m| m.mount_id)
                .chain(self.other_namespaces.iter().map(|n| n.mount.mount_id))
                .map(u64::from)
                .collect(),
        }
    }

    /// True when anything besides `mounts` themselves keeps the filesystem in use: a mount
    /// below it, a mount in another namespace, a swap file, a loop device, a block holder, a
    /// process, or anything that could not be read (unknown counts as busy). fstab lines and
    /// units are not holders.
    pub fn is_busy(&self) -> bool {
        !(self.submounts.is_empty()
            && self.other_namespaces.is_empty()
            && self.unreadable_namespaces.is_empty()
            && self.swap_files.is_empty()
            && self.loop_devices.is_empty()
            && self.block_holders.is_empty()
            && self.holders.is_empty())
    }
}

/// Everything using the filesystem on device `major:minor` (a block device, or a superblock's
/// anonymous device as mountinfo shows it).
pub fn discover(root: &SysRoot, major: u32, minor: u32) -> anyhow::Result<Discovery> {
    let mountinfo_path = root.path(MOUNTINFO);
    let text = std::fs::read(&mountinfo_path)
        .with_context(|| format!("cannot read '{}'", mountinfo_path.display()))?;
    let table = MountTable::from_mountinfo(&text)
        .with_context(|| format!("cannot parse '{}'", mountinfo_path.display()))?;

    let devices = DeviceNames::of(root, major, minor);
    let sources = SourceMatch {
        names: &devices.names,
        rdev: root
            .is_host()
            .then(|| nix::sys::stat::makedev(u64::from(major), u64::from(minor))),
        stat_cache: RefCell::new(HashMap::new()),
    };
    let mut superblocks: BTreeSet<(u32, u32)> = table
        .entries()
        .iter()
        .filter(|m| (m.major, m.minor) == (major, minor) || sources.matches(m))
        .map(|m| (m.major, m.minor))
        .collect();
    if superblocks.is_empty() {
        superblocks.insert((major, minor));
    }
    let is_ours = |m: &MountInfo| superblocks.contains(&(m.major, m.minor)) || sources.matches(m);

    let (mounts, submounts) = mounts_and_submounts(table.entries(), &is_ours);
    let (other_namespaces, unreadable_namespaces) = scan_namespaces(root, &is_ours);

    let superblock = mounts
        .first()
        .or(other_namespaces.first().map(|n| &n.mount))
        .map_or((major, minor), |m| (m.major, m.minor));
    let our_ids: BTreeSet<u64> = mounts.iter().map(|m| u64::from(m.mount_id)).collect();

    let swap_files = swap_files(root, &table, &our_ids, &superblocks);
    let loop_devices = loop_devices(root, &table, &superblocks, &devices.names);
    let mut block_names = devices.names.clone();
    block_names.extend(mounts.iter().filter_map(|m| source_kernel_name(root, m)));
    let block_holders = block_holders(root, &block_names);
    let fstab = read_fstab(root)?
        .into_iter()
        .filter(|e| mounts.iter().any(|m| m.mount_point == e.file))
        .collect();
    let units = units(root, &mounts);

    let mut discovery = Discovery {
        superblock,
        mounts,
        submounts,
        other_namespaces,
        unreadable_namespaces,
        swap_files,
        loop_devices,
        block_holders,
        fstab,
        units,
        holders: Holders::default(),
    };
    discovery.holders = holders::scan_processes(root, &discovery.holder_target())
        .context("cannot scan the processes holding it")?;
    Ok(discovery)
}

/// The kernel names of the block device(s) behind the device number: the device itself and,
/// for a multi-device btrfs, every member listed beside it in `/sys/fs/btrfs/*/devices/`.
#[derive(Debug, Default)]
struct DeviceNames {
    names: BTreeSet<String>,
}

impl DeviceNames {
    fn of(root: &SysRoot, major: u32, minor: u32) -> Self {
        let mut names = BTreeSet::new();
        let Some(name) = std::fs::canonicalize(root.dev_block(major, minor))
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        else {
            return DeviceNames { names };
        };
        if let Ok(filesystems) = std::fs::read_dir(root.path(SYS_FS_BTRFS)) {
            for fs in filesystems.flatten() {
                let devices = fs.path().join("devices");
                if devices.join(&name).exists()
                    && let Ok(members) = std::fs::read_dir(&devices)
                {
                    names.extend(
                        members
                            .flatten()
                            .filter_map(|m| m.file_name().to_str().map(str::to_string)),
                    );
                }
            }
        }
        names.insert(name);
        DeviceNames { names }
    }
}

/// Whether a mount's source is one of the devices (`/dev/NAME`, or on the host a device node
/// whose `st_rdev` is the device: `/dev/mapper/…`, `/dev/disk/by-uuid/…`).
struct SourceMatch<'a> {
    names: &'a BTreeSet<String>,
    rdev: Option<u64>,
    /// Device node → whether its `st_rdev` is the device: each source is stat'ed once.
    stat_cache: RefCell<HashMap<PathBuf, bool>>,
}

impl SourceMatch<'_> {
    fn matches(&self, m: &MountInfo) -> bool {
        let Some(source) = m.source.as_deref().map(Path::new) else {
            return false;
        };
        let Ok(rest) = source.strip_prefix("/dev") else {
            return false;
        };
        if rest.to_str().is_some_and(|name| self.names.contains(name)) {
            return true;
        }
        let Some(rdev) = self.rdev else {
            return false;
        };
        *self
            .stat_cache
            .borrow_mut()
            .entry(source.to_path_buf())
            .or_insert_with(|| {
                std::fs::metadata(source)
                    .is_ok_and(|md| md.file_type_is_block() && md.rdev() == rdev)
            })
    }
}

/// `is_block_device` on metadata without pulling the trait into every caller.
trait BlockType {
    fn file_type_is_block(&self) -> bool;
}

impl BlockType for std::fs::Metadata {
    fn file_type_is_block(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.file_type().is_block_device()
    }
}

/// The kernel name of a mount's `/dev/NAME` source when sysfs knows it.
fn source_kernel_name(root: &SysRoot, m: &MountInfo) -> Option<String> {
    let source = Path::new(m.source.as_deref()?);
    let name = source.strip_prefix("/dev").ok()?.to_str()?;
    root.path(SYS_CLASS_BLOCK)
        .join(name)
        .exists()
        .then(|| name.to_string())
}

/// The mounts of the filesystem and the foreign mounts below them, each parents first.
pub fn mounts_and_submounts(
    entries: &[MountInfo],
    is_ours: &dyn Fn(&MountInfo) -> bool,
) -> (Vec<MountInfo>, Vec<MountInfo>) {
    let by_id: HashMap<u32, &MountInfo> = entries.iter().map(|m| (m.mount_id, m)).collect();
    let ours: HashSet<u32> = entries
        .iter()
        .filter(|m| is_ours(m))
        .map(|m| m.mount_id)
        .collect();
    let depth = |m: &MountInfo| -> (usize, bool) {
        // (number of ancestors, whether one of them is ours); bounded against cycles.
        let mut depth = 0;
        let mut below_ours = false;
        let mut current = m;
        while let Some(parent) = by_id.get(&current.parent_id) {
            if parent.mount_id == current.mount_id || depth > entries.len() {
                break;
            }
            below_ours |= ours.contains(&parent.mount_id);
            depth += 1;
            current = parent;
        }
        (depth, below_ours)
    };
    let mut mounts = Vec::new();
    let mut submounts = Vec::new();
    for m in entries {
        let (d, below_ours) = depth(m);
        if ours.contains(&m.mount_id) {
            mounts.push((d, m.clone()));
        } else if below_ours {
            submounts.push((d, m.clone()));
        }
    }
    // Stable: equal depths keep mountinfo order (a later mount on the same path is on top).
    mounts.sort_by_key(|(d, _)| *d);
    submounts.sort_by_key(|(d, _)| *d);
    (
        mounts.into_iter().map(|(_, m)| m).collect(),
        submounts.into_iter().map(|(_, m)| m).collect(),
    )
}

/// Mounts of the filesystem in every mount namespace but ours, reading one mountinfo per
/// namespace; and the pids whose namespace or mountinfo could not be read.
fn scan_namespaces(
    root: &SysRoot,
    is_ours: &dyn Fn(&MountInfo) -> bool,
) -> (Vec<NamespaceMount>, Vec<u32>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let own = ProcDir::open(&root.path(PROC_SELF))
        .and_then(|d| d.inode(c"ns/mnt"))
        .ok();
    let mut done: BTreeSet<u64> = own.into_iter().collect();
    let proc_dir = root.path(PROC);
    let Ok(listing) = std::fs::read_dir(&proc_dir) else {
        return (found, unreadable);
    };
    let mut pids: Vec<u32> = listing
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = proc_dir.join(pid.to_string());
        let ns = match ProcDir::open(&dir).and_then(|d| d.inode(c"ns/mnt")) {
            Ok(ns) => ns,
            Err(Errno::ENOENT | Errno::ESRCH) => continue,
            Err(_) => {
                unreadable.push(pid);
                continue;
            }
        };
        if done.contains(&ns) {
            continue;
        }
        let text = match std::fs::read(dir.join("mountinfo")) {
            Ok(text) => text,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => continue,
            Err(_) => {
                unreadable.push(pid);
                continue;
            }
        };
        // A zombie's or exiting process's mountinfo is empty: try another process of it.
        if text.is_empty() {
            continue;
        }
        done.insert(ns);
        for entry in mountinfo::parse(&text) {
            match entry {
                Ok(m) if is_ours(&m) => found.push(NamespaceMount {
                    namespace: ns,
                    pid,
                    mount: m,
                }),
                Ok(_) => {}
                Err(e) => tracing::warn!("mount namespace {ns} (pid {pid}): {e}"),
            }
        }
    }
    (found, unreadable)
}

/// What sysfs and `/proc/swaps` append to an unlinked file's path.
const DELETED_SUFFIX: &str = " (deleted)";

/// `/proc/swaps` entries of type `file` on the filesystem.
fn swap_files(
    root: &SysRoot,
    table: &MountTable,
    our_ids: &BTreeSet<u64>,
    superblocks: &BTreeSet<(u32, u32)>,
) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read(root.path(PROC_SWAPS)) else {
        return Vec::new();
    };
    parse_swaps(&text)
        .into_iter()
        .filter(|(path, kind)| {
            if kind != "file" {
                return false;
            }
            if root.is_host()
                && let Ok(id) = crate::sys::statx::mount_id_of_path(path)
            {
                return our_ids.contains(&id);
            }
            mount_of_path(table, path).is_some_and(|m| superblocks.contains(&(m.major, m.minor)))
        })
        .map(|(path, _)| path)
        .collect()
}

/// `/proc/swaps`: (path unescaped and without `" (deleted)"`, type) per entry.
pub fn parse_swaps(text: &[u8]) -> Vec<(PathBuf, String)> {
    text.split(|&b| b == b'\n')
        .skip(1) // Filename Type Size Used Priority
        .filter_map(|line| {
            let mut fields = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|f| !f.is_empty());
            let path = mountinfo::unescape(fields.next()?);
            let kind = String::from_utf8_lossy(fields.next()?).into_owned();
            let path = path
                .strip_suffix(DELETED_SUFFIX.as_bytes())
                .map(<[u8]>::to_vec)
                .unwrap_or(path);
            Some((PathBuf::from(OsString::from_vec(path)), kind))
        })
        .collect()
}

/// Loop devices whose image is on the filesystem (never the device itself).
fn loop_devices(
    root: &SysRoot,
    table: &MountTable,
    superblocks: &BTreeSet<(u32, u32)>,
    own_names: &BTreeSet<String>,
) -> Vec<LoopBacking> {
    let Ok(listing) = std::fs::read_dir(root.path(SYS_BLOCK)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = listing
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("loop") && !own_names.contains(n))
        .collect();
    names.sort();
    let host = Host;
    let live: Option<&dyn LiveSystem> = root.is_host().then_some(&host as &dyn LiveSystem);
    let mut found = Vec::new();
    for name in names {
        let file = root.path(SYS_BLOCK).join(&name).join("loop/backing_file");
        let Ok(text) = std::fs::read(&file) else {
            continue; // not bound
        };
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        let (path, deleted) = match text.strip_suffix(DELETED_SUFFIX.as_bytes()) {
            Some(path) => (path, true),
            None => (text, false),
        };
        if path.is_empty() {
            continue;
        }
        let lp = LoopUnder {
            loop_name: name.clone(),
            backing_file: PathBuf::from(OsStr::from_bytes(path)),
            deleted,
        };
        let on_it = match locate(&lp, table, live).found() {
            Some(h) => superblocks.contains(&(h.major, h.minor)),
            // Not placed through our mount table (the filesystem may be mounted only in
            // another namespace): the image's st_dev is the superblock's, except on btrfs.
            None => live
                .and_then(|l| l.loop_backing_id(&name).ok())
                .is_some_and(|id| {
                    let dev = (
                        nix::sys::stat::major(id.dev) as u32,
                        nix::sys::stat::minor(id.dev) as u32,
                    );
                    superblocks.contains(&dev)
                }),
        };
        if on_it {
            found.push(LoopBacking {
                device: name,
                backing_file: lp.backing_file,
            });
        }
    }
    found
}

/// `holders/` entries of each device, each name once.
fn block_holders(root: &SysRoot, devices: &BTreeSet<String>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for name in devices {
        if let Ok(listing) =
            std::fs::read_dir(root.path(SYS_CLASS_BLOCK).join(name).join("holders"))
        {
            found.extend(
                listing
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string)),
            );
        }
    }
    found.into_iter().collect()
}

/// `/etc/fstab` under the root; a missing file is an empty table.
fn read_fstab(root: &SysRoot) -> anyhow::Result<Vec<FstabEntry>> {
    let path = root.path(ETC_FSTAB);
    match std::fs::read(&path) {
        Ok(text) => Ok(parse_fstab(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read '{}'", path.display())),
    }
}

/// fstab(5) lines: `#` comments and blank lines skipped, fields separated by blanks and
/// `\ooo`-unescaped; missing trailing fields take libmount's defaults (`auto`, `defaults`,
/// 0, 0). A line without a mount point is skipped.
pub fn parse_fstab(text: &[u8]) -> Vec<FstabEntry> {
    let mut entries = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let Some(spec) = fields.next() else {
            continue;
        };
        if spec.starts_with(b"#") {
            continue;
        }
        let Some(file) = fields.next() else {
            tracing::warn!("fstab line {}: no mount point", index + 1);
            continue;
        };
        let text = |f: &[u8]| String::from_utf8_lossy(&mountinfo::unescape(f)).into_owned();
        let vfstype = fields.next().map_or_else(|| "auto".to_string(), text);
        let options = fields.next().map_or_else(|| "defaults".to_string(), text);
        let _freq = fields.next();
        let passno = fields
            .next()
            .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok())
            .unwrap_or(0);
        entries.push(FstabEntry {
            spec: text(spec),
            file: PathBuf::from(OsString::from_vec(mountinfo::unescape(file))),
            vfstype,
            options,
            passno,
            line: index + 1,
        });
    }
    entries
}

/// The `.mount` unit of each mount point, plus its `.automount` where a unit file exists (not
/// masked), each name once, in mount order.
fn units(root: &SysRoot, mounts: &[MountInfo]) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for m in mounts {
        let Some(name) = unit_name_path_escape(&m.mount_point) else {
            continue;
        };
        let mount = format!("{name}.mount");
        if !units.contains(&mount) {
            units.push(mount);
        }
        let automount = format!("{name}.automount");
        if !units.contains(&automount) && unit_file_exists(root, &automount) {
            units.push(automount);
        }
    }
    units
}

/// A unit file named `name` in one of systemd's directories, not masked (→ `/dev/null`).
pub fn unit_file_exists(root: &SysRoot, name: &str) -> bool {
    SYSTEMD_AUTOMOUNT_DIRS.iter().any(|dir| {
        let path = root.path(dir).join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_symlink() => {
                std::fs::read_link(&path).is_ok_and(|t| t != Path::new("/dev/null"))
            }
            Ok(_) => true,
            Err(_) => false,
        }
    })
}

/// `systemd-escape --path`: the path simplified (duplicate slashes and `.` components
/// dropped, leading and trailing slashes stripped; `/` is `-`), then `/` → `-`, and every
/// byte outside `[A-Za-z0-9:_.]` (and a leading `.`) → `\xHH`. `None` for a path with a `..`
/// component, which systemd refuses.
pub fn unit_name_path_escape(path: &Path) -> Option<String> {
    let bytes = path.as_os_str().as_bytes();
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in bytes.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Some("-".to_string());
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, &b) in part.iter().enumerate() {
            let leading_dot = i == 0 && j == 0 && b == b'.';
            if !leading_dot && (b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.')) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn unit_names_escape_as_systemd_escape_does() {
        let esc = |p: &str| unit_name_path_escape(Path::new(p));
        // systemd-escape(1): `systemd-escape -p --suffix=mount "/tmp//waldi/foobar/"`.
        assert_eq!(
            esc("/tmp//waldi/foobar/").as_deref(),
            Some("tmp-waldi-foobar")
        );
        // systemd.mount(5): the root and a plain path.
        assert_eq!(esc("/").as_deref(), Some("-"));
        assert_eq!(esc("//").as_deref(), Some("-"));
        assert_eq!(esc("/home/lennart").as_deref(), Some("home-lennart"));
        // repair.md §3.3.
        assert_eq!(
            esc("/srv/backup data").as_deref(),
            Some("srv-backup\\x20data")
        );
        // Checked against systemd-escape 252.
        assert_eq!(esc("/.dotdir/x").as_deref(), Some("\\x2edotdir-x"));
        assert_eq!(esc("/a/.b").as_deref(), Some("a-.b"));
        assert_eq!(
            esc("/foo-bar/ba\\z").as_deref(),
            Some("foo\\x2dbar-ba\\x5cz")
        );
        assert_eq!(
            esc("/Hallöchen, Meister").as_deref(),
            Some("Hall\\xc3\\xb6chen\\x2c\\x20Meister")
        );
        assert_eq!(esc("/a/./b").as_deref(), Some("a-b"));
        assert_eq!(esc("/mnt/x:y_z.w").as_deref(), Some("mnt-x:y_z.w"));
        assert_eq!(esc("/a/../b"), None);
    }

    #[test]
    fn fstab_lines_are_parsed_with_escapes_and_comments() {
        let text = b"# /etc/fstab: static file system information.\n\
            \n\
            UUID=1234-ab /               ext4    errors=remount-ro 0       1\n\
            \t# indented comment\n\
            /dev/vdb1\t/srv/backup\\040data  xfs  noatime,nofail  0 2\n\
            LABEL=swap none swap sw 0 0\n\
            tmpfs /tmp tmpfs\n\
            /dev/sdc\n\
            /dev/sdd /mnt/x\\134y ext4 defaults 0 x\n";
        let entries = parse_fstab(text);
        assert_eq!(entries.len(), 5, "{entries:#?}");
        assert_eq!(entries[0].spec, "UUID=1234-ab");
        assert_eq!(entries[0].file, Path::new("/"));
        assert_eq!(entries[0].passno, 1);
        assert_eq!(entries[0].line, 3);
        assert_eq!(entries[1].file, Path::new("/srv/backup data"));
        assert_eq!(entries[1].vfstype, "xfs");
        assert_eq!(entries[1].options, "noatime,nofail");
        assert_eq!(entries[1].passno, 2);
        assert_eq!(entries[1].line, 5);
        assert_eq!(entries[2].file, Path::new("none"));
        assert_eq!(entries[3].vfstype, "tmpfs");
        assert_eq!(entries[3].options, "defaults");
        assert_eq!(entries[3].passno, 0);
        assert_eq!(entries[4].file, Path::new("/mnt/x\\y"));
        assert_eq!(entries[4].passno, 0);
    }

    #[test]
    fn swaps_are_unescaped() {
        let text = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
            /dev/vda2                               partition\t1048572\t\t0\t\t-2\n\
            /mnt/a\\040b/swapfile                    file\t\t65532\t\t0\t\t-3\n\
            /mnt/c/old\\040(deleted)                 file\t\t65532\t\t0\t\t-4\n";
        let swaps = parse_swaps(text);
        assert_eq!(
            swaps,
            vec![
                (PathBuf::from("/dev/vda2"), "partition".to_string()),
                (PathBuf::from("/mnt/a b/swapfile"), "file".to_string()),
                (PathBuf::from("/mnt/c/old"), "file".to_string()),
            ]
        );
        assert!(parse_swaps(b"").is_empty());
    }

    fn line(text: &str) -> MountInfo {
        mountinfo::parse_line(text.as_bytes()).unwrap()
    }

    #[test]
    fn mounts_come_parents_first_with_their_submounts() {
        let entries = vec![
            line("1 0 254:0 / / rw - ext4 /dev/vda rw"),
            // Listed before its parent (a move mount can do that).
            line("30 20 0:50 / /srv/data/cache rw - tmpfs tmpfs rw"),
            line("20 1 7:0 / /srv/data rw - ext4 /dev/loop0 rw"),
            line("21 1 7:0 /sub /mnt/bind rw - ext4 /dev/loop0 rw"),
            line("31 30 0:51 / /srv/data/cache/deep rw - tmpfs tmpfs rw"),
            line("40 1 0:52 / /other rw - tmpfs tmpfs rw"),
        ];
        let ours = |m: &MountInfo| (m.major, m.minor) == (7, 0);
        let (mounts, submounts) = mounts_and_submounts(&entries, &ours);
        let ids = |v: &[MountInfo]| v.iter().map(|m| m.mount_id).collect::<Vec<_>>();
        assert_eq!(ids(&mounts), vec![20, 21]);
        assert_eq!(ids(&submounts), vec![30, 31]);
    }

    /// A fixture root: our namespace and another one, swaps, a loop device, fstab, units.
    #[test]
    fn a_fixture_root_is_discovered() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let write = |rel: &str, text: &str| {
            let p = base.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let ours = "1 0 254:0 / / rw - ext4 /dev/vda rw\n\
            20 1 7:0 / /srv/backup\\040data rw - ext4 /dev/loop0 rw\n\
            21 20 0:50 / /srv/backup\\040data/cache rw - tmpfs tmpfs rw\n";
        write("proc/100/mountinfo", ours);
        write("proc/100/ns/mnt", "");
        std::os::unix::fs::symlink("100", base.join("proc/self")).unwrap();
        // Same namespace (hard link: same inode).
        fs::create_dir_all(base.join("proc/101/ns")).unwrap();
        fs::hard_link(base.join("proc/100/ns/mnt"), base.join("proc/101/ns/mnt")).unwrap();
        write("proc/101/mountinfo", "garbage\n");
        // Another namespace keeping the filesystem mounted elsewhere.
        write("proc/200/ns/mnt", "");
        write(
            "proc/200/mountinfo",
            "5 0 254:0 / / rw - ext4 /dev/vda rw\n\
             77 5 7:0 / /private rw - ext4 /dev/loop0 rw\n",
        );
        write(
            "proc/swaps",
            "Filename Type Size Used Priority\n\
             /srv/backup\\040data/swapfile file 100 0 -2\n\
             /elsewhere/swap file 100 0 -3\n",
        );
        write(
            "sys/block/loop1/loop/backing_file",
            "/srv/backup data/images/disk.img\n",
        );
        write("sys/block/loop2/loop/backing_file", "/elsewhere/x.img\n");
        fs::create_dir_all(base.join("sys/block/loop3/loop")).unwrap();
        write(
            "etc/fstab",
            "# comment\n/dev/loop0 /srv/backup\\040data ext4 noatime 0 2\n/dev/vda / ext4 defaults 0 1\n",
        );
        write(
            "etc/systemd/system/srv-backup\\x20data.automount",
            "[Automount]\n",
        );

        let root = SysRoot::new(base);
        let d = discover(&root, 7, 0).unwrap();
        assert_eq!(d.superblock, (7, 0));
        assert_eq!(d.mounts.len(), 1);
        assert_eq!(d.mounts[0].mount_point, Path::new("/srv/backup data"));
        assert_eq!(d.submounts.len(), 1);
        assert_eq!(d.other_namespaces.len(), 1);
        assert_eq!(d.other_namespaces[0].pid, 200);
        assert_eq!(d.other_namespaces[0].mount.mount_id, 77);
        assert!(d.unreadable_namespaces.is_empty());
        assert_eq!(
            d.swap_files,
            vec![PathBuf::from("/srv/backup data/swapfile")]
        );
        assert_eq!(
            d.loop_devices,
            vec![LoopBacking {
                device: "loop1".to_string(),
                backing_file: PathBuf::from("/srv/backup data/images/disk.img"),
            }]
        );
        assert_eq!(d.fstab.len(), 1);
        assert_eq!(d.fstab[0].line, 2);
        assert_eq!(
            d.units,
            vec![
                "srv-backup\\x20data.mount".to_string(),
                "srv-backup\\x20data.automount".to_string()
            ]
        );
        let target = d.holder_target();
        assert_eq!(target.mount_ids, BTreeSet::from([20, 77]));
        assert!(d.is_busy());
    }

    #[test]
    fn an_unused_filesystem_is_not_busy() {
        let d = Discovery {
            superblock: (7, 0),
            mounts: vec![line("20 1 7:0 / /srv rw - ext4 /dev/loop0 rw")],
            submounts: Vec::new(),
            other_namespaces: Vec::new(),
            unreadable_namespaces: Vec::new(),
            swap_files: Vec::new(),
            loop_devices: Vec::new(),
            block_holders: Vec::new(),
            fstab: Vec::new(),
            units: vec!["srv.mount".to_string()],
            holders: Holders::default(),
        };
        assert!(!d.is_busy());
        let mut unreadable = d.clone();
        unreadable
            .holders
            .unreadable
            .push(holders::UnreadableProcess {
                pid: 1,
                command: None,
                what: "cwd: Permission denied".to_string(),
            });
        assert!(unreadable.is_busy());
        let mut ns = d.clone();
        ns.unreadable_namespaces.push(1);
        assert!(ns.is_busy());
    }
}
