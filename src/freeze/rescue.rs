//! `snapguard thaw`: the rescue. Thaws what a snapguard run froze, from its record in
//! `/run/snapguard/`, when that run's controller and guardian are both gone; with `--force`,
//! also while they run, and any frozen mount point named (someone else's freeze included).

use super::record::{self, MountState, Record};
use crate::report::{ThawEntry, ThawReport, ThawResult};
use crate::root::SysRoot;
use crate::sys::freeze::{MountDir, errno_meaning, errno_name};
use crate::sys::process::pid_alive;
use nix::errno::Errno;
use std::path::{Path, PathBuf};

fn thaw_path(
    path: &Path,
    expect: Option<(u64, u64)>,
    force: bool,
) -> (ThawResult, String, Option<Errno>) {
    let dir = match MountDir::open(path) {
        Ok(d) => d,
        Err(e @ (Errno::ENOENT | Errno::ENOTDIR)) if expect.is_some() => {
            return (
                ThawResult::NotFrozen,
                format!(
                    "the mount point is gone ({}): nothing of it to thaw by path",
                    errno_name(e)
                ),
                None,
            );
        }
        Err(e) => {
            return (
                ThawResult::Failed,
                format!(
                    "cannot open: {} ({})",
                    errno_name(e),
                    errno_meaning(e, true)
                ),
                Some(e),
            );
        }
    };
    if let Some((dev, ino)) = expect {
        if (dir.dev, dir.ino) != (dev, ino) && !force {
            return (
                ThawResult::Skipped,
                "not the filesystem snapguard froze any more (remounted?); --force thaws it \
                 anyway"
                    .to_string(),
                None,
            );
        }
    }
    match dir.thaw() {
        Ok(()) => (ThawResult::Thawed, "thawed".to_string(), None),
        Err(Errno::EINVAL) => (
            ThawResult::NotFrozen,
            "not frozen (FITHAW: EINVAL)".to_string(),
            None,
        ),
        Err(e) => (
            ThawResult::Failed,
            format!("FITHAW: {} ({})", errno_name(e), errno_meaning(e, true)),
            Some(e),
        ),
    }
}

/// Thaw from the records (all of them, or the entries for `named`), then, with `force`, the
/// named mount points no record mentions.
pub fn thaw(root: &SysRoot, named: &[PathBuf], force: bool) -> anyhow::Result<ThawReport> {
    let named: Vec<PathBuf> = named
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let mut handled: Vec<PathBuf> = Vec::new();
    let mut entries = Vec::new();
    for path in record::list(root)? {
        let shown = path.display().to_string();
        let rec = match Record::read(&path) {
            Ok(r) => r,
            Err(e) => {
                entries.push(ThawEntry {
                    mountpoint: shown.clone(),
                    result: ThawResult::Skipped,
                    reason: format!("{e:#}"),
                    errno: None,
                    record: Some(shown),
                });
                continue;
            }
        };
        let owner_alive = pid_alive(rec.controller_pid) || rec.guardian_pid.is_some_and(pid_alive);
        let mut complete = true;
        for m in &rec.mounts {
            if !named.is_empty() && !named.contains(&m.mountpoint) {
                complete = false;
                continue;
            }
            handled.push(m.mountpoint.clone());
            let maybe_frozen = match m.state {
                MountState::Frozen => true,
                MountState::Planned => !rec.live_updates,
                MountState::Thawed => false,
            };
            if !maybe_frozen {
                continue;
            }
            let mut entry = ThawEntry {
                mountpoint: m.mountpoint.display().to_string(),
                result: ThawResult::Skipped,
                reason: String::new(),
                errno: None,
                record: Some(shown.clone()),
            };
            if owner_alive && !force {
                entry.reason = format!(
                    "snapguard pid {} (guardian {}) is still running and thaws by its deadline; \
                     --force thaws now",
                    rec.controller_pid,
                    rec.guardian_pid.map_or("-".to_string(), |p| p.to_string())
                );
                complete = false;
            } else {
                let (result, reason, errno) = thaw_path(&m.mountpoint, Some((m.dev, m.ino)), force);
                entry.result = result;
                entry.reason = format!("{reason} (frozen by snapguard pid {})", rec.controller_pid);
                entry.errno = errno.map(|e| errno_name(e).to_string());
                if matches!(result, ThawResult::Failed | ThawResult::Skipped) {
                    complete = false;
                }
            }
            entries.push(entry);
        }
        if complete && !owner_alive {
            record::remove(&path);
        }
    }
    for p in &named {
        if handled.contains(p) {
            continue;
        }
        let mut entry = ThawEntry {
            mountpoint: p.display().to_string(),
            result: ThawResult::Skipped,
            reason: "no snapguard record of a freeze here: a freeze by another tool is left as \
                     it is (--force thaws it)"
                .to_string(),
            errno: None,
            record: None,
        };
        if force {
            let (result, reason, errno) = thaw_path(p, None, true);
            entry.result = result;
            entry.reason = format!("{reason} (--force: no snapguard record)");
            entry.errno = errno.map(|e| errno_name(e).to_string());
        }
        entries.push(entry);
    }
    Ok(ThawReport::new(entries))
}
