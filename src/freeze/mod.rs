//! `freeze-test`, `freeze -- CMD` and `thaw`: which mount points can be frozen, freezing them
//! in a safe order with a guaranteed thaw, and the rescue thaw.
//!
//! The pieces, in the order a run uses them:
//!
//! * [`select`] (here): which superblocks, named how, with their other mount points;
//! * [`probe`]: the static verdict of each (configuration skip, pseudo, remote, read-only,
//!   known fstype) before anything is opened;
//! * [`plan`]: loop-device backing files and the freeze order (inner before the filesystem
//!   holding its image, the superblock of `/` last), from [`stack`] (the loop devices under a
//!   block device, through partitions and dm/md) and [`holder`] (which mount holds an image);
//! * [`access`]: each superblock opened through a mount proven to be the one mountinfo lists;
//! * [`guardian`]: the separate process that issues every FIFREEZE and FITHAW and thaws on the
//!   deadline, the controller's death or a signal; [`control`]: the controller's side of it;
//! * [`presync`]: the bounded, converging syncfs before each FIFREEZE;
//! * [`session`] (`freeze -- CMD`, with [`command`], [`output`] and [`outcome`]) and
//!   [`test_run`] (`freeze-test`), both writing [`rows`];
//! * [`hooks`], [`record`] (`/run/snapguard`), [`skip`], [`logbuf`] (no log writes while frozen);
//! * [`rescue`]: `snapguard thaw`.

pub mod access;
pub mod command;
pub mod control;
pub mod guardian;
pub mod holder;
pub mod hooks;
pub mod logbuf;
pub mod outcome;
pub mod output;
pub mod path_json;
pub mod plan;
pub mod presync;
pub mod probe;
pub mod record;
pub mod rescue;
pub mod rows;
pub mod session;
pub mod skip;
pub mod stack;
pub mod test_run;

use crate::mount::{MountTable, is_block_backed, is_pseudo_fstype};
use anyhow::bail;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One superblock to consider, under the mount point it is named by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The mount point used to open it (the one named on the command line, or the mount of the
    /// whole filesystem).
    pub mountpoint: PathBuf,
    /// `major:minor` of the superblock as mountinfo shows it.
    pub major: u32,
    pub minor: u32,
    pub fstype: String,
    /// The mount source (`/dev/vda1`, `tmpfs`, `server:/export`).
    pub source: Option<String>,
    /// The superblock is read-only.
    pub read_only: bool,
    /// Other mount points of the same superblock that are listed as duplicates.
    pub duplicates: Vec<PathBuf>,
    /// For a loop-backed filesystem (directly, through a partition, or through dm/md): each
    /// image file under it and where that file lives. Empty when not loop-backed.
    pub backing: Vec<plan::Backing>,
    /// Some mount of this superblock is `/` (whether or not it is listed here).
    pub holds_root: bool,
}

impl Target {
    /// Whether this superblock backs `/` (frozen last): `/` is its mount point, one of its
    /// duplicates (btrfs with the top-level subvolume listed before `/`, a bind mount of the root
    /// filesystem listed first), or any other mount of it (`freeze /mnt/top` alone).
    pub fn is_root(&self) -> bool {
        let root = Path::new("/");
        self.holds_root || self.mountpoint == root || self.duplicates.iter().any(|d| d == root)
    }

    /// The mount point first, then the duplicates.
    pub fn mount_points(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.mountpoint.as_path())
            .chain(self.duplicates.iter().map(PathBuf::as_path))
    }
}

/// Whether some mount of `major:minor` is `/`.
fn holds_root(table: &MountTable, major: u32, minor: u32) -> bool {
    table
        .by_devno(major, minor)
        .any(|m| m.mount_point == Path::new("/"))
}

/// The targets of a run: the superblocks of the named mount points (each named mount point is
/// listed; one named twice or sharing a superblock with an earlier one becomes a duplicate;
/// where several filesystems are mounted on the same path, every one of them is a target, the
/// covered ones included), or without names every local block-backed superblock (btrfs
/// included), or with `all` every superblock. Default order: reverse mountinfo order (later,
/// deeper mounts first).
pub fn select(table: &MountTable, named: &[PathBuf], all: bool) -> anyhow::Result<Vec<Target>> {
    let mut targets: Vec<Target> = Vec::new();
    if named.is_empty() {
        for sb in table.superblocks().into_iter().rev() {
            let m = &sb.primary;
            let local = is_block_backed(m) && !is_pseudo_fstype(&m.fs_type);
            if !all && !local {
                continue;
            }
            targets.push(Target {
                mountpoint: m.mount_point.clone(),
                major: sb.major,
                minor: sb.minor,
                fstype: m.fs_type.clone(),
                source: m.source.as_ref().map(|s| s.to_string_lossy().into_owned()),
                read_only: m.super_is_read_only(),
                duplicates: sb.others.iter().map(|o| o.mount_point.clone()).collect(),
                backing: Vec::new(),
                holds_root: holds_root(table, sb.major, sb.minor),
            });
        }
        return Ok(targets);
    }
    let mut by_sb: HashMap<(u32, u32), usize> = HashMap::new();
    for name in named {
        let canonical = std::fs::canonicalize(name).map_err(|e| {
            anyhow::anyhow!("'{}': {}", name.display(), crate::sys::describe_io(&e))
        })?;
        // Every filesystem mounted on this path, the covered ones first (mountinfo order).
        let stacked: Vec<&crate::mount::MountInfo> = table
            .entries()
            .iter()
            .filter(|m| m.mount_point == canonical)
            .collect();
        if stacked.is_empty() {
            bail!(
                "'{}' is not a mount point (freeze works on whole filesystems: name the \
                 directory a filesystem is mounted on)",
                name.display()
            );
        }
        for m in stacked {
            match by_sb.get(&(m.major, m.minor)) {
                Some(&i) => {
                    if targets[i].mountpoint != canonical
                        && !targets[i].duplicates.contains(&canonical)
                    {
                        targets[i].duplicates.push(canonical.clone());
                    }
                }
                None => {
                    by_sb.insert((m.major, m.minor), targets.len());
                    targets.push(Target {
                        mountpoint: canonical.clone(),
                        major: m.major,
                        minor: m.minor,
                        fstype: m.fs_type.clone(),
                        source: m.source.as_ref().map(|s| s.to_string_lossy().into_owned()),
                        read_only: m.super_is_read_only(),
                        duplicates: Vec::new(),
                        backing: Vec::new(),
                        holds_root: holds_root(table, m.major, m.minor),
                    });
                }
            }
        }
    }
    Ok(targets)
}

/// What `freeze` and `freeze-test` both work from: the targets in freeze order, the mount
/// table they came from, the skip rules, the options and the root.
pub struct Plan<'a> {
    pub targets: &'a [Target],
    /// Indexes into `targets`, in freeze order.
    pub order: &'a [usize],
    pub table: &'a MountTable,
    pub skip: &'a skip::SkipRules,
    pub opts: &'a session::Options,
    pub root: &'a crate::root::SysRoot,
}

/// Targets resolved, with backing files and the order to freeze in.
pub fn prepare(
    table: &MountTable,
    named: &[PathBuf],
    all: bool,
    root: &crate::root::SysRoot,
) -> anyhow::Result<(Vec<Target>, Vec<usize>)> {
    let mut targets = select(table, named, all)?;
    plan::resolve_backing(&mut targets, table, root);
    let order = plan::freeze_order(&targets).map_err(anyhow::Error::msg)?;
    Ok((targets, order))
}

/// Milliseconds of a duration, for reports.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
60 27 7:1 / /mnt/a rw,relatime - ext4 /dev/loop1 rw
61 27 7:1 / /mnt/bind rw,relatime - ext4 /dev/loop1 rw
62 27 0:50 / /mnt/t rw - tmpfs tmpfs rw
63 27 0:51 /@home /home rw - btrfs /dev/loop2 rw
64 27 7:3 / /mnt/ro ro - xfs /dev/loop3 ro
";

    #[test]
    fn default_set_is_block_backed_reverse_order_with_duplicates() {
        let t = MountTable::from_mountinfo(TABLE).unwrap();
        let sel = select(&t, &[], false).unwrap();
        let names: Vec<&Path> = sel.iter().map(|t| t.mountpoint.as_path()).collect();
        assert_eq!(
            names,
            vec![
                Path::new("/mnt/ro"),
                Path::new("/home"),
                Path::new("/mnt/a"),
                Path::new("/")
            ]
        );
        assert_eq!(sel[2].duplicates, vec![PathBuf::from("/mnt/bind")]);
        assert!(sel[0].read_only);
        assert_eq!(select(&t, &[], true).unwrap().len(), 6);
    }
}
