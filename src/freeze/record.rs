//! The per-run record in `/run/snapguard/freeze-PID.json` (PID: the controller's): which mount
//! points this run planned, is freezing, froze and thawed, so that `snapguard thaw` can rescue
//! them if both the controller and the guardian die.
//!
//! The guardian writes it, at every transition and before each FIFREEZE ("freezing"), because
//! only the process that calls FIFREEZE knows what it froze. `/run` is a tmpfs on every
//! systemd machine, so writing it while frozen touches no frozen filesystem. When the record's
//! directory *is* on a filesystem of the freeze set, the guardian stops writing just before
//! that filesystem's FIFREEZE (with `live: false`: states of the mounts not frozen yet at that
//! point are unknown to a rescuer) and writes again once it is thawed.
//!
//! Writes go through a buffer reserved up front and a temporary file renamed over the record,
//! so a reader never sees half a record and the guardian does not allocate while frozen.

use super::access::Expected;
use crate::root::{RUN_DIR, SysRoot};
use crate::sys::process::ProcessIdentity;
use anyhow::Context as _;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The record format written by this version.
pub const VERSION: u32 = 2;

/// State of one mount in the record (and in the guardian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountState {
    /// To be frozen by this run; no FIFREEZE issued yet.
    Planned,
    /// FIFREEZE issued and not returned (or the guardian died before it could say how it
    /// ended): frozen by this run, or refused because someone else froze it first.
    Freezing,
    /// FIFREEZE by this run returned 0; not thawed yet.
    Frozen,
    /// FIFREEZE said EBUSY: someone else's freeze; never thawed by this run.
    Busy,
    /// FIFREEZE failed otherwise: not frozen.
    Failed,
    /// Thawed by this run (or found already thawed by someone else).
    Thawed,
    /// FITHAW failed: it may still be frozen.
    ThawFailed,
}

impl MountState {
    /// Whether this run's freeze may still be in effect.
    pub fn may_be_frozen_by_us(self) -> bool {
        matches!(
            self,
            MountState::Freezing | MountState::Frozen | MountState::ThawFailed
        )
    }
}

/// One mount of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMount {
    /// The mount point the report names.
    #[serde(with = "super::path_json")]
    pub mountpoint: PathBuf,
    /// The directory the guardian opened (another mount of the same superblock when the
    /// mount point is covered).
    #[serde(with = "super::path_json")]
    pub access: PathBuf,
    /// What that directory was proven to be.
    pub expected: Expected,
    pub state: MountState,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// `freeze` or `freeze-test`.
    pub command: String,
    pub controller: ProcessIdentity,
    pub guardian: ProcessIdentity,
    /// False while (or since) the record's own filesystem is frozen: states may lag behind.
    pub live: bool,
    /// This run turns `/sys/kernel/rcu_expedited` on around each FIFREEZE, and found it off:
    /// a rescue of a run that died puts it back to 0.
    #[serde(default)]
    pub rcu_restore: bool,
    pub mounts: Vec<RecordMount>,
}

/// The record directory under `root`.
pub fn dir(root: &SysRoot) -> PathBuf {
    root.path(RUN_DIR)
}

/// The record path of the run whose controller is `pid`.
pub fn path_for(root: &SysRoot, pid: u32) -> PathBuf {
    dir(root).join(format!("freeze-{pid}.json"))
}

/// Before a new run writes its record at `path`: a record already there is a dead run's (its
/// controller had this pid before; pids are reused) and may be the only trace of a filesystem
/// it left frozen. Keep it, under another name the rescue also reads.
pub fn set_aside_stale(path: &Path) {
    if path.exists() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = path.with_file_name(format!(
            "{stem}-stale-{}.json",
            crate::sys::process::boottime_ns()
        ));
        let _ = std::fs::rename(path, aside);
    }
}

/// Create the record directory (mode 0700: records name mount points and pids).
pub fn create_dir(root: &SysRoot) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .with_context(|| format!("cannot create '{}'", d.display()))
}

impl Record {
    /// Read one record.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
        let version = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if version != Some(u64::from(VERSION)) {
            anyhow::bail!(
                "record '{}' has format version {}, this snapguard reads {VERSION}",
                path.display(),
                version.map_or("?".to_string(), |v| v.to_string())
            );
        }
        serde_json::from_slice(&text)
            .with_context(|| format!("invalid record '{}'", path.display()))
    }
}

/// The record as the guardian keeps and rewrites it.
#[derive(Debug)]
pub struct RecordFile {
    pub record: Record,
    path: PathBuf,
    tmp: PathBuf,
    buf: Vec<u8>,
}

impl RecordFile {
    /// Prepare writing `record` to `path` (nothing is written yet).
    pub fn new(path: &Path, record: Record) -> anyhow::Result<Self> {
        let tmp = path.with_extension("json.tmp");
        // Enough for every state's longest spelling, so rewriting never grows the buffer.
        let size = serde_json::to_vec(&record)
            .context("cannot serialise the record")?
            .len();
        Ok(RecordFile {
            path: path.to_path_buf(),
            tmp,
            buf: Vec::with_capacity(size * 2 + 4096),
            record,
        })
    }

    /// Write the record (temporary file, then rename). No heap allocation once `new` has sized
    /// the buffer (std converts paths shorter than a few hundred bytes on the stack).
    pub fn write(&mut self) -> Result<(), Errno> {
        use std::os::unix::fs::OpenOptionsExt;
        let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &self.record).map_err(|_| Errno::EINVAL)?;
        self.buf.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.tmp)
            .map_err(errno)?;
        file.write_all(&self.buf).map_err(errno)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(errno)
    }

    /// Remove the record (and a leftover temporary file); missing is fine.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.tmp);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every record file under `root`, sorted by name.
pub fn list(root: &SysRoot) -> anyhow::Result<Vec<PathBuf>> {
    let d = dir(root);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list '{}'", d.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("freeze-") && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Remove a record (missing is fine).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            version: VERSION,
            command: "freeze".into(),
            controller: ProcessIdentity {
                pid: 42,
                start_time: 7,
            },
            guardian: ProcessIdentity {
                pid: 43,
                start_time: 8,
            },
            live: true,
            rcu_restore: false,
            mounts: vec![RecordMount {
                mountpoint: PathBuf::from("/mnt/a b"),
                access: PathBuf::from("/mnt/a b"),
                expected: Expected {
                    mount_id: 60,
                    dev: Some((7, 1)),
                },
                state: MountState::Planned,
            }],
        }
    }

    #[test]
    fn written_by_the_guardian_read_by_the_rescue() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        create_dir(&root).unwrap();
        let path = path_for(&root, 42);
        let mut file = RecordFile::new(&path, sample()).unwrap();
        let capacity = file.buf.capacity();
        for state in [
            MountState::Freezing,
            MountState::ThawFailed,
            MountState::Frozen,
        ] {
            file.record.mounts[0].state = state;
            file.write().unwrap();
            assert_eq!(Record::read(&path).unwrap(), file.record);
        }
        assert_eq!(file.buf.capacity(), capacity, "no reallocation");
        assert_eq!(list(&root).unwrap(), vec![path.clone()]);
        file.remove();
        assert!(list(&root).unwrap().is_empty());
    }

    #[test]
    fn an_older_format_is_named_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("freeze-1.json");
        std::fs::write(&path, br#"{"version":1,"controller_pid":1,"mounts":[]}"#).unwrap();
        let e = format!("{:#}", Record::read(&path).unwrap_err());
        assert!(e.contains("format version 1"), "{e}");
    }
}
