//! The repair's state record, `/run/snapguard/repair-MAJ-MIN.json` (tmpfs, never on the
//! target), rewritten atomically and fsynced at every transition, and the locks that keep two
//! repairs (or a repair and systemd-fsck) off the same device (repair.md §2.2, §7).

use super::FsKind;
use super::mountops::DirIdentity;
use crate::freeze::path_json;
use crate::mount::mountinfo::MountInfo;
use crate::report::RepairStep;
use crate::root::{RUN_DIR, SysRoot};
use anyhow::Context as _;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

/// Layout version of the record.
pub const RECORD_VERSION: u32 = 1;

/// Where a repair stands. Ordered as the state machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Discovered, nothing changed yet.
    Discovered,
    /// Holders ended or units stopped; still mounted.
    Quiesced,
    /// Some or all recorded mounts are unmounted.
    Unmounting,
    /// Every recorded mount is unmounted and the device is fenced.
    Fenced,
    /// A repair command was started: if the record still says this, it never finished.
    RepairStarted,
    /// The repair command ended (its verdict is in the steps).
    Repaired,
    /// The read-only check after the repair said clean.
    Verified,
    /// Remounting.
    Restoring,
    /// Everything is back as recorded (differences, if any, are in the steps).
    Done,
    /// Rolled back before any write: mounted as before, unchanged.
    RolledBack,
    /// Left unmounted for a human (failed verify, interrupted repair).
    Held,
}

impl Phase {
    /// The phase as the record spells it (`repair-started`, `rolled-back`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Discovered => "discovered",
            Phase::Quiesced => "quiesced",
            Phase::Unmounting => "unmounting",
            Phase::Fenced => "fenced",
            Phase::RepairStarted => "repair-started",
            Phase::Repaired => "repaired",
            Phase::Verified => "verified",
            Phase::Restoring => "restoring",
            Phase::Done => "done",
            Phase::RolledBack => "rolled-back",
            Phase::Held => "held",
        }
    }

    /// Whether the record describes a run that ended (a new run may start over).
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::RolledBack)
    }
}

/// One mountinfo line, kept whole so that the mount can be restored exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedMount {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    #[serde(with = "path_json")]
    pub root: PathBuf,
    #[serde(with = "path_json")]
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    #[serde(with = "path_json::option")]
    pub source: Option<PathBuf>,
    pub super_options: String,
    /// The directory under the mount point (device and inode on the parent filesystem), taken
    /// at plan time through a private clone of the parent mount (else right after the unmount
    /// uncovered it): the restore mounts on that directory only, never on a symlink or another
    /// directory put in its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirIdentity>,
}

impl From<&MountInfo> for RecordedMount {
    fn from(m: &MountInfo) -> Self {
        RecordedMount {
            mount_id: m.mount_id,
            parent_id: m.parent_id,
            major: m.major,
            minor: m.minor,
            root: m.root.clone(),
            mount_point: m.mount_point.clone(),
            mount_options: m.mount_options.clone(),
            optional_fields: m.optional_fields.clone(),
            fs_type: m.fs_type.clone(),
            source: m.source.clone().map(PathBuf::from),
            super_options: m.super_options.clone(),
            directory: None,
        }
    }
}

impl From<&RecordedMount> for MountInfo {
    fn from(r: &RecordedMount) -> Self {
        MountInfo {
            mount_id: r.mount_id,
            parent_id: r.parent_id,
            major: r.major,
            minor: r.minor,
            root: r.root.clone(),
            mount_point: r.mount_point.clone(),
            mount_options: r.mount_options.clone(),
            optional_fields: r.optional_fields.clone(),
            fs_type: r.fs_type.clone(),
            source: r
                .source
                .clone()
                .map(|p| OsString::from_vec(p.into_os_string().into_encoded_bytes())),
            super_options: r.super_options.clone(),
        }
    }
}

/// The record of one repair of one filesystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    /// The repairing process and its start time (pid reuse).
    pub pid: u32,
    pub start_time: u64,
    #[serde(with = "path_json")]
    pub device: PathBuf,
    pub major: u32,
    pub minor: u32,
    pub kind: FsKind,
    pub fstype: String,
    /// The filesystem's UUID (FAT: volume id) as the scan read it before anything changed: a
    /// record is only ever resumed on the filesystem it was written for, never on another one
    /// that took the same device number (a reused loop device, a replaced disk, a new mkfs).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Every mount of the superblock, as mountinfo listed it before anything changed.
    pub mounts: Vec<RecordedMount>,
    /// systemd units this run stopped (restarted at the end).
    pub stopped_units: Vec<String>,
    pub phase: Phase,
    /// The private directory a log replay mounts the filesystem on, named here before the
    /// mount is made and cleared after its unmount: a run that finds it set (a crash while
    /// it was mounted) unmounts it first.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "path_json::option"
    )]
    pub replay_mount: Option<PathBuf>,
    /// The device is a loop device with autoclear (`mount -o loop`) whose flag this run clears
    /// before the umount (set here before it is cleared): it must be set again once the
    /// filesystem is mounted again, and is false again once it is. A crash in between leaves the
    /// device attached (nothing lost) and this says to restore the flag.
    #[serde(default)]
    pub autoclear: bool,
    /// The file that loop device reads (asked of the device when its flag is cleared): a held
    /// or interrupted record is only acted on while the same loop number still reads the same
    /// file at the same offset, never on a device detached since and its number taken for
    /// another image (loop numbers are reused; a copy of the image has the same UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_image: Option<LoopImage>,
    pub steps: Vec<RepairStep>,
    /// Unix time of the last write.
    pub updated: u64,
}

/// Which file a loop device reads: the `(st_dev, st_ino)` of its backing file and the offset
/// (LOOP_GET_STATUS64), with sysfs's name of the file for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopImage {
    pub backing_dev: u64,
    pub backing_ino: u64,
    pub offset: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "path_json::option"
    )]
    pub path: Option<PathBuf>,
}

/// The record's path for a device number.
pub fn record_path(root: &SysRoot, major: u32, minor: u32) -> PathBuf {
    root.path(RUN_DIR)
        .join(format!("repair-{major}-{minor}.json"))
}

impl Record {
    /// Write the record atomically (temp file, fsync, rename, fsync of the directory).
    pub fn save(&mut self, root: &SysRoot) -> anyhow::Result<()> {
        self.updated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let path = record_path(root, self.major, self.minor);
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        let tmp = dir.join(format!(".repair-{}-{}.json.tmp", self.major, self.minor));
        let text = serde_json::to_vec_pretty(self).context("cannot encode the repair record")?;
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&text)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write the repair record '{}'", path.display()))
    }

    /// Read the record of a device, if there is one.
    pub fn load(root: &SysRoot, major: u32, minor: u32) -> anyhow::Result<Option<Record>> {
        load_path(&record_path(root, major, minor))
    }

    /// Delete the record (a run that ended cleanly leaves none behind).
    pub fn remove(&self, root: &SysRoot) -> anyhow::Result<()> {
        let path = record_path(root, self.major, self.minor);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove '{}'", path.display())),
        }
    }
}

/// Read one record file.
pub fn load_path(path: &Path) -> anyhow::Result<Option<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("unreadable repair record '{}'", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read '{}'", path.display())),
    }
}

/// The record files under the run directory: those that read as a record, and those that do
/// not (a torn write, another tool's garbage) with the reason, each in path order.
#[derive(Debug, Default)]
pub struct Records {
    pub readable: Vec<(PathBuf, Record)>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Every record file under the run directory. Only listing the directory can fail: one bad
/// file must not stop the repair (or the status) of every other device.
pub fn records(root: &SysRoot) -> anyhow::Result<Records> {
    let dir = root.path(RUN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot list '{}'", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| record_device(p).is_some())
        .collect();
    paths.sort();
    let mut out = Records::default();
    for path in paths {
        match load_path(&path) {
            Ok(Some(record)) => out.readable.push((path, record)),
            Ok(None) => {}
            Err(e) => out.unreadable.push((path, format!("{e:#}"))),
        }
    }
    Ok(out)
}

/// The device number a record file is named after (`repair-MAJ-MIN.json`).
pub fn record_device(path: &Path) -> Option<(u32, u32)> {
    let name = path.file_name()?.to_str()?;
    let numbers = name.strip_prefix("repair-")?.strip_suffix(".json")?;
    let (major, minor) = numbers.split_once('-')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// snapguard's own lock: one repair at a time on this machine.
#[derive(Debug)]
pub struct Locks {
    _own: Flock<File>,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("'{0}' is held by another process (another repair or fsck is running)")]
    Busy(PathBuf),
    /// The lock file could not be opened.
    #[error("cannot open the lock '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Locks {
    /// Take snapguard's repair lock without waiting.
    pub fn take(root: &SysRoot) -> Result<Locks, LockError> {
        Ok(Locks {
            _own: lock_file(&root.path(RUN_DIR).join("repair.lock"))?,
        })
    }
}

/// util-linux's `/run/fsck/<disk>.lock` (`disk`: the whole disk's kernel name, `loop3`,
/// `sda`), taken without waiting: serialises with `fsck -l` and systemd-fsck.
pub fn fsck_lock(root: &SysRoot, disk: Option<&str>) -> Result<Option<Flock<File>>, LockError> {
    disk.map(|disk| lock_file(&root.path("run/fsck").join(format!("{disk}.lock"))))
        .transpose()
}

/// flock(LOCK_EX | LOCK_NB), as `fsck -l` takes it (std's `File::try_lock` is the same call but
/// newer than our MSRV).
fn lock_file(path: &Path) -> Result<Flock<File>, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy(path.to_path_buf())),
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(root: &SysRoot) -> Record {
        let line =
            b"36 35 7:3 /sub /mnt/a\\040b rw,noatime shared:5 - btrfs /dev/loop3 rw,subvol=/sub";
        let m = crate::mount::mountinfo::parse_line(line).unwrap();
        let mut r = Record {
            version: RECORD_VERSION,
            pid: 1,
            start_time: 2,
            device: "/dev/loop3".into(),
            major: 7,
            minor: 3,
            kind: FsKind::Btrfs,
            fstype: "btrfs".into(),
            uuid: Some("0f4c-test".into()),
            mounts: vec![RecordedMount::from(&m)],
            stopped_units: vec![],
            phase: Phase::Fenced,
            replay_mount: None,
            autoclear: true,
            loop_image: None,
            steps: vec![],
            updated: 0,
        };
        r.save(root).unwrap();
        r
    }

    #[test]
    fn a_record_round_trips_with_the_mount_line_intact() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let saved = sample(&root);
        let loaded = Record::load(&root, 7, 3).unwrap().unwrap();
        assert_eq!(loaded.mounts, saved.mounts);
        assert_eq!(loaded.phase, Phase::Fenced);
        assert_eq!(loaded.uuid, saved.uuid);
        assert!(loaded.autoclear);
        for phase in [Phase::RepairStarted, Phase::RolledBack, Phase::Held] {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::Value::from(phase.name())
            );
        }
        let back = MountInfo::from(&loaded.mounts[0]);
        assert_eq!(back.mount_point, Path::new("/mnt/a b"));
        assert_eq!(back.root, Path::new("/sub"));
        assert_eq!(records(&root).unwrap().readable.len(), 1);
        loaded.remove(&root).unwrap();
        assert!(Record::load(&root, 7, 3).unwrap().is_none());
    }

    #[test]
    fn a_record_written_before_the_autoclear_field_loads_as_false() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let saved = sample(&root);
        let path = record_path(&root, saved.major, saved.minor);
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["autoclear"], true);
        value.as_object_mut().unwrap().remove("autoclear");
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        let old = Record::load(&root, saved.major, saved.minor)
            .unwrap()
            .unwrap();
        assert!(!old.autoclear);
    }

    #[test]
    fn the_second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let first = Locks::take(&root).unwrap();
        assert!(matches!(Locks::take(&root), Err(LockError::Busy(_))));
        drop(first);
        Locks::take(&root).unwrap();
        let disk = fsck_lock(&root, Some("loop9")).unwrap();
        assert!(matches!(
            fsck_lock(&root, Some("loop9")),
            Err(LockError::Busy(_))
        ));
        drop(disk);
    }
}
