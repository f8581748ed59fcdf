//! The per-run record in `/run/snapguard/freeze-PID.json`: which mount points this run froze,
//! so that `snapguard thaw` can rescue them if both the controller and the guardian die.
//!
//! `/run` is a tmpfs on every systemd machine, so updating the record while frozen writes to no
//! frozen filesystem. When the record's directory *is* on a filesystem in the freeze set, the
//! record is written once before the first freeze (every mount `planned`) and not touched again
//! until everything is thawed.

use crate::root::{RUN_DIR, SysRoot};
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// State of one mount in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountState {
    /// To be frozen by this run (the record could not be updated while frozen).
    Planned,
    /// FIFREEZE by this run succeeded; not thawed yet.
    Frozen,
    /// Thawed again.
    Thawed,
}

/// One mount of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMount {
    pub mountpoint: PathBuf,
    /// `st_dev`/`st_ino` of the mount's root directory at freeze time (to recognise it).
    pub dev: u64,
    pub ino: u64,
    pub state: MountState,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub controller_pid: u32,
    pub guardian_pid: Option<u32>,
    /// Whether `state` is kept up to date while frozen (false: entries stay `planned`).
    pub live_updates: bool,
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

impl Record {
    /// Write atomically (temporary file + rename; tmpfs needs no fsync).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create '{}'", parent.display()))?;
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).context("cannot serialise the record")?;
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write '{}'", tmp.display()))?;
        f.write_all(&text)
            .with_context(|| format!("cannot write '{}'", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename to '{}'", path.display()))
    }

    /// Read one record.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("invalid record '{}'", path.display()))
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

    #[test]
    fn round_trip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let record = Record {
            version: 1,
            controller_pid: 42,
            guardian_pid: Some(43),
            live_updates: true,
            mounts: vec![RecordMount {
                mountpoint: PathBuf::from("/mnt/a b"),
                dev: 7,
                ino: 2,
                state: MountState::Frozen,
            }],
        };
        let path = path_for(&root, 42);
        record.write(&path).unwrap();
        assert_eq!(Record::read(&path).unwrap(), record);
        assert_eq!(list(&root).unwrap(), vec![path.clone()]);
        remove(&path);
        assert!(list(&root).unwrap().is_empty());
    }
}
