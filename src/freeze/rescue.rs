//! `snapguard thaw`: the rescue. Thaws what a snapguard run froze, from its record in
//! `/run/snapguard/`, once that run's controller and guardian are both gone (each recognised by
//! pid *and* start time, so a reused pid does not count as alive); with `--force`, also while
//! they run, and any frozen mount point named (someone else's freeze included).
//!
//! Only entries the guardian recorded as `frozen` (or `thaw-failed`) are thawed by default. An
//! entry recorded as `freezing` (the guardian died inside FIFREEZE, which may have succeeded or
//! found someone else's freeze) or still `planned` in a record written while its own filesystem
//! was frozen is unknown: it is thawed only with `--force`. An entry whose FIFREEZE said EBUSY
//! is someone else's freeze and never thawed from the record. Every thaw goes through a
//! directory proven to be the mount the record names (mount id and device).

use super::access::Expected;
use super::record::{self, MountState, Record, RecordMount};
use crate::mount::MountTable;
use crate::report::{ThawEntry, ThawResult};
use crate::root::{PROC, SYS_RCU_EXPEDITED, SysRoot};
use crate::sys::freeze::{MountDir, RcuExpedite, errno_meaning, errno_name};
use anyhow::bail;
use nix::errno::Errno;
use std::path::{Path, PathBuf};

/// What a record entry says about its mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// This run froze it and did not thaw it (or its thaw failed).
    Frozen,
    /// This run may have frozen it; nobody can tell.
    Unknown,
    /// Nothing of this run is frozen there.
    Nothing,
}

fn standing(m: &RecordMount, live: bool) -> Standing {
    match m.state {
        MountState::Frozen | MountState::ThawFailed => Standing::Frozen,
        MountState::Freezing => Standing::Unknown,
        MountState::Planned if !live => Standing::Unknown,
        MountState::Planned | MountState::Busy | MountState::Failed | MountState::Thawed => {
            Standing::Nothing
        }
    }
}

/// FITHAW through a directory proven to be `expected`'s mount, or another mount of the same
/// superblock: `path` first, then wherever that mount is listed now, then every other mount of
/// its device (its mount point covered, say, but a bind mount of it reachable).
fn thaw_proven(
    path: &Path,
    expected: &Expected,
    table: &MountTable,
) -> (ThawResult, String, Option<Errno>) {
    let same_mount = table
        .entries()
        .iter()
        .filter(|m| u64::from(m.mount_id) == expected.mount_id)
        .map(|m| (m.mount_point.clone(), *expected));
    let same_device = expected.dev.into_iter().flat_map(|(major, minor)| {
        table
            .by_devno(major, minor)
            .filter(|m| u64::from(m.mount_id) != expected.mount_id)
            .map(|m| (m.mount_point.clone(), Expected::of(m)))
    });
    let candidates = std::iter::once((path.to_path_buf(), *expected))
        .chain(same_mount)
        .chain(same_device);
    let mut why = Vec::new();
    for (p, want) in candidates {
        match MountDir::open(&p) {
            Ok(dir) if want.check(&dir).is_ok() => return fithaw(&dir),
            Ok(_) => why.push(format!("'{}' is another filesystem now", p.display())),
            Err(e) => why.push(format!("'{}': {}", p.display(), errno_name(e))),
        }
    }
    (
        ThawResult::Skipped,
        format!(
            "the mount snapguard froze is not reachable now ({}): the record is kept; run \
             `snapguard thaw` again once it is (or `echo j > /proc/sysrq-trigger`)",
            why.join("; ")
        ),
        None,
    )
}

fn fithaw(dir: &MountDir) -> (ThawResult, String, Option<Errno>) {
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

/// The mount on top at a named path: it must exist and be a mount point (exit 3 otherwise, as
/// in `freeze`).
fn named_mount(table: &MountTable, name: &Path) -> anyhow::Result<(PathBuf, Expected)> {
    let canonical = std::fs::canonicalize(name).map_err(|e| {
        anyhow::anyhow!(
            "cannot thaw '{}': {}",
            name.display(),
            crate::sys::describe_io(&e)
        )
    })?;
    let Some(m) = table.by_mount_point(&canonical) else {
        bail!(
            "'{}' is not a mount point (thaw works on whole filesystems: name the directory a \
             filesystem is mounted on)",
            name.display()
        );
    };
    Ok((canonical, Expected::of(m)))
}

/// Put `/sys/kernel/rcu_expedited` back to 0 for a dead run that turned it on and could not
/// turn it off (its guardian died inside FIFREEZE). A note when it did.
fn restore_rcu(root: &SysRoot) -> Option<String> {
    let knob = RcuExpedite::open(&root.path(SYS_RCU_EXPEDITED)).ok()?;
    if knob.is_on() == Some(true) && knob.turn_off() {
        Some(
            "/sys/kernel/rcu_expedited was left at 1 by a snapguard run that died inside \
             FIFREEZE: set back to 0"
                .to_string(),
        )
    } else {
        None
    }
}

/// Thaw from the records (all of them, or the entries for `named`), then, with `force`, the
/// named mount points no record mentions. Returns the entries and notes.
pub fn thaw(
    root: &SysRoot,
    table: &MountTable,
    named: &[PathBuf],
    force: bool,
) -> anyhow::Result<(Vec<ThawEntry>, Vec<String>)> {
    let named: Vec<(PathBuf, Expected)> = named
        .iter()
        .map(|n| named_mount(table, n))
        .collect::<anyhow::Result<_>>()?;
    let proc_dir = root.path(PROC);
    let mut handled: Vec<PathBuf> = Vec::new();
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for path in record::list(root)? {
        let shown = path.display().to_string();
        let rec = match Record::read(&path) {
            Ok(r) => r,
            // Its run ended (and removed it) between the listing and the read: nothing left.
            Err(e) if vanished(&e) => continue,
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
        let owner_alive = rec.controller.is_alive(&proc_dir) || rec.guardian.is_alive(&proc_dir);
        let mut left = false;
        // Last frozen first, as the guardian thaws: a filesystem whose image lives on another
        // one of the set was frozen before it, and its FITHAW would write into it.
        for m in rec.mounts.iter().rev() {
            let is_named = named.is_empty()
                || named
                    .iter()
                    .any(|(p, _)| *p == m.mountpoint || *p == m.access);
            if !is_named {
                left |= standing(m, rec.live) != Standing::Nothing;
                continue;
            }
            handled.push(m.mountpoint.clone());
            handled.push(m.access.clone());
            let standing = standing(m, rec.live);
            if standing == Standing::Nothing {
                continue;
            }
            let by = format!(
                "{} by snapguard pid {}",
                match standing {
                    Standing::Frozen => "frozen",
                    _ => "maybe frozen",
                },
                rec.controller.pid
            );
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
                    rec.controller.pid, rec.guardian.pid
                );
                left = true;
            } else if standing == Standing::Unknown && !force {
                entry.reason = format!(
                    "{by}: its guardian died inside FIFREEZE (or the record could not be kept \
                     while its own filesystem was frozen), so whether this run's freeze took \
                     effect, or someone else's freeze made it fail, is unknown; if writes there \
                     block and no other tool froze it: snapguard thaw --force {}",
                    crate::shell::quote_path(&m.mountpoint)
                );
                left = true;
            } else {
                let (result, reason, errno) = thaw_proven(&m.access, &m.expected, table);
                entry.result = result;
                entry.reason = format!("{reason} ({by})");
                entry.errno = errno.map(|e| errno_name(e).to_string());
                // Thawed or found not frozen: done. Failed, or not reachable now (covered,
                // unmounted): the record stays for a later rescue.
                left |= matches!(result, ThawResult::Failed | ThawResult::Skipped);
            }
            entries.push(entry);
        }
        if rec.rcu_restore && !owner_alive {
            notes.extend(restore_rcu(root));
        }
        if !left && !owner_alive {
            record::remove(&path);
        }
    }
    for (p, expected) in &named {
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
            let (result, reason, errno) = thaw_proven(p, expected, table);
            entry.result = result;
            entry.reason = format!("{reason} (--force: no snapguard record)");
            entry.errno = errno.map(|e| errno_name(e).to_string());
        }
        entries.push(entry);
    }
    Ok((entries, notes))
}

/// Whether a record read failed because the file is gone (removed by its own run meanwhile).
fn vanished(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_removed_after_the_listing_is_not_reported() {
        let dir = std::env::temp_dir().join(format!("sg-vanished-{}", std::process::id()));
        let gone = Record::read(&dir.join("freeze-1.json")).unwrap_err();
        assert!(vanished(&gone), "{gone:#}");
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("freeze-2.json");
        std::fs::write(&bad, b"{").unwrap();
        let unreadable = Record::read(&bad).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!vanished(&unreadable), "{unreadable:#}");
    }

    fn mount(state: MountState) -> RecordMount {
        RecordMount {
            mountpoint: PathBuf::from("/m"),
            access: PathBuf::from("/m"),
            expected: Expected {
                mount_id: 1,
                dev: Some((7, 0)),
            },
            state,
        }
    }

    #[test]
    fn only_what_the_guardian_recorded_frozen_is_thawed_without_force() {
        assert_eq!(standing(&mount(MountState::Frozen), true), Standing::Frozen);
        assert_eq!(
            standing(&mount(MountState::ThawFailed), true),
            Standing::Frozen
        );
        assert_eq!(
            standing(&mount(MountState::Freezing), true),
            Standing::Unknown
        );
        assert_eq!(
            standing(&mount(MountState::Planned), true),
            Standing::Nothing
        );
        assert_eq!(
            standing(&mount(MountState::Planned), false),
            Standing::Unknown
        );
        assert_eq!(standing(&mount(MountState::Busy), false), Standing::Nothing);
        assert_eq!(
            standing(&mount(MountState::Thawed), true),
            Standing::Nothing
        );
    }
}
