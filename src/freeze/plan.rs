//! The freeze order. A filesystem on a loop device must be frozen *before* the filesystem that
//! holds its image file: its freeze-time sync writes into the image, and if the outer one is
//! already frozen that write blocks the freezer in D state for good (freeze.md §5.3). Thaw is
//! the exact reverse. The superblock that backs `/` goes last (everything else on the machine
//! logs into it).
//!
//! Each target's loop devices come from [`stack`](super::stack) (partitions, dm/md slaves,
//! nested), where each image lives from [`holder`](super::holder) (proven by dev/inode on the
//! running system).

use super::Target;
use super::holder::{self, HolderLookup, Host, LiveSystem, MatchedBy};
use super::stack;
use crate::mount::MountTable;
use crate::report::{BackingImage, BackingMatch};
use crate::root::{SYS_CLASS_BLOCK, SysRoot};
use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One image file under a loop-backed filesystem (a target on dm/md over several loop devices
/// has several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// The image file as sysfs prints it now (without the `" (deleted)"` suffix).
    pub file: PathBuf,
    /// sysfs marks the image as deleted.
    pub deleted: bool,
    /// The loop device reading it (`loop0`: the whole device, also for `loop0p1`).
    pub loop_name: String,
    /// The mounted filesystem holding the image, or why that is unknown.
    pub holder: HolderLookup,
}

impl Backing {
    /// The report's view of it.
    pub fn report(&self) -> BackingImage {
        let found = self.holder.found();
        BackingImage {
            file: self.file.display().to_string(),
            loop_device: self.loop_name.clone(),
            mount: found.map(|h| h.mount_point.display().to_string()),
            matched_by: match found.map(|h| h.matched_by) {
                Some(MatchedBy::DevIno) => BackingMatch::DevIno,
                Some(MatchedBy::Device) => BackingMatch::Device,
                Some(MatchedBy::PathPrefix) => BackingMatch::PathPrefix,
                None => BackingMatch::Unknown,
            },
        }
    }

    /// `image FILE (loopN) on MOUNT`, saying how sure that is.
    fn describe(&self) -> String {
        let deleted = if self.deleted { ", deleted" } else { "" };
        let place = match &self.holder {
            HolderLookup::Found(h) => {
                let how = match h.matched_by {
                    MatchedBy::DevIno => "",
                    MatchedBy::Device => {
                        " (by device number: the path is not the loop device's file)"
                    }
                    MatchedBy::PathPrefix => " (by path only, unproven)",
                };
                format!("on {}{how}", h.mount_point.display())
            }
            HolderLookup::Unknown { why } => format!("on an unknown filesystem ({why})"),
        };
        format!(
            "image {} ({}{deleted}) {place}",
            self.file.display(),
            self.loop_name
        )
    }
}

/// The report's sentence about a target's images (`None` when it is not loop-backed): every
/// image, where it lives, and what that means for the order.
pub fn describe_backing(backing: &[Backing]) -> Option<String> {
    if backing.is_empty() {
        return None;
    }
    let images: Vec<String> = backing.iter().map(Backing::describe).collect();
    let any_found = backing.iter().any(|b| b.holder.found().is_some());
    let any_unknown = backing.iter().any(|b| b.holder.found().is_none());
    let order = match (any_found, any_unknown) {
        (true, false) => "frozen before the filesystems holding its images",
        (false, _) => "frozen before every filesystem that is not loop-backed",
        (true, true) => {
            "frozen before the filesystems holding its images, and before every filesystem \
             that is not loop-backed"
        }
    };
    Some(format!("loop-backed: {}; {order}", images.join("; ")))
}

/// Loop devices lead to each other in a cycle: no order can freeze them safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("loop devices back each other in a cycle: {}", list(.mountpoints))]
pub struct BackingCycle {
    /// The targets that could not be ordered.
    pub mountpoints: Vec<PathBuf>,
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sysfs directory of the block device under a target. A btrfs superblock has an anonymous
/// `0:N`, so its mount source is used: on the host the device node's `rdev`, for another root
/// the source's file name under `/sys/class/block` (device nodes are only opened on the host).
fn sysfs_dir(t: &Target, root: &SysRoot) -> Option<PathBuf> {
    if t.major != 0 {
        return Some(root.dev_block(t.major, t.minor));
    }
    let source = Path::new(t.source.as_ref()?);
    if !root.is_host() {
        return Some(root.path(SYS_CLASS_BLOCK).join(source.file_name()?));
    }
    let meta = std::fs::metadata(source).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some(root.dev_block(
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    ))
}

/// Fill in each target's [`Backing`]s: every loop device under it and where its image lives.
/// Device nodes and host paths are only opened when `root` is the host (see [`holder`]).
pub fn resolve_backing(targets: &mut [Target], table: &MountTable, root: &SysRoot) {
    let host = Host;
    let live: Option<&dyn LiveSystem> = root.is_host().then_some(&host as &dyn LiveSystem);
    resolve_backing_with(targets, table, root, live);
}

fn resolve_backing_with(
    targets: &mut [Target],
    table: &MountTable,
    root: &SysRoot,
    live: Option<&dyn LiveSystem>,
) {
    for t in targets.iter_mut() {
        let Some(dir) = sysfs_dir(t, root) else {
            continue;
        };
        let found = stack::loops_under(root, &dir);
        if found.too_deep {
            tracing::warn!(
                "'{}': device stack deeper than {} levels; loop devices below were not looked for",
                t.mountpoint.display(),
                stack::MAX_DEPTH
            );
        }
        t.backing = found
            .loops
            .into_iter()
            .map(|lp| Backing {
                holder: holder::locate(&lp, table, live),
                file: lp.backing_file,
                deleted: lp.deleted,
                loop_name: lp.loop_name,
            })
            .collect();
    }
}

/// The order to freeze `targets` in (indexes): every loop-backed target before each target
/// holding one of its images; one whose image's holder is unknown before every target that is
/// not loop-backed; the superblock backing `/` last; otherwise the given order.
pub fn freeze_order(targets: &[Target]) -> Result<Vec<usize>, BackingCycle> {
    let n = targets.len();
    // frozen_after[i]: the targets that must wait until i is frozen.
    let mut frozen_after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, t) in targets.iter().enumerate() {
        for b in &t.backing {
            for (j, other) in targets.iter().enumerate() {
                let must_wait = match &b.holder {
                    HolderLookup::Found(h) => other.major == h.major && other.minor == h.minor,
                    HolderLookup::Unknown { .. } => other.backing.is_empty(),
                };
                if i != j && must_wait {
                    frozen_after[i].insert(j);
                }
            }
        }
    }
    let mut waiting_for: Vec<usize> = vec![0; n];
    for &j in frozen_after.iter().flatten() {
        waiting_for[j] += 1;
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let ready = |i: usize| !done[i] && waiting_for[i] == 0;
        let next = (0..n)
            .find(|&i| ready(i) && !targets[i].is_root())
            .or_else(|| (0..n).find(|&i| ready(i)));
        let Some(i) = next else {
            return Err(BackingCycle {
                mountpoints: (0..n)
                    .filter(|&i| !done[i])
                    .map(|i| targets[i].mountpoint.clone())
                    .collect(),
            });
        };
        done[i] = true;
        order.push(i);
        for &j in &frozen_after[i] {
            waiting_for[j] -= 1;
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::super::holder::{FileId, Holder, MatchedBy, OpenedImage};
    use super::super::stack::fixture::*;
    use super::*;
    use nix::errno::Errno;

    fn holder(major: u32, minor: u32) -> HolderLookup {
        HolderLookup::Found(Holder {
            major,
            minor,
            mount_point: PathBuf::from("/somewhere"),
            matched_by: MatchedBy::DevIno,
        })
    }

    fn unknown() -> HolderLookup {
        HolderLookup::Unknown {
            why: "not mounted here".into(),
        }
    }

    fn t(mp: &str, major: u32, minor: u32, holders: Vec<HolderLookup>) -> Target {
        Target {
            mountpoint: PathBuf::from(mp),
            major,
            minor,
            fstype: "ext4".into(),
            source: None,
            read_only: false,
            duplicates: Vec::new(),
            holds_root: false,
            backing: holders
                .into_iter()
                .enumerate()
                .map(|(k, holder)| Backing {
                    file: PathBuf::from(format!("/img{k}")),
                    deleted: false,
                    loop_name: format!("loop{k}"),
                    holder,
                })
                .collect(),
        }
    }

    fn names(targets: &[Target]) -> Vec<&str> {
        freeze_order(targets)
            .unwrap()
            .iter()
            .map(|&i| targets[i].mountpoint.to_str().unwrap())
            .collect()
    }

    #[test]
    fn inner_before_outer_and_root_last() {
        // /outer holds the image of /inner; / holds the image of /outer.
        let targets = vec![
            t("/", 254, 0, vec![]),
            t("/outer", 7, 0, vec![holder(254, 0)]),
            t("/other", 8, 1, vec![]),
            t("/inner", 7, 1, vec![holder(7, 0)]),
        ];
        assert_eq!(names(&targets), vec!["/other", "/inner", "/outer", "/"]);
    }

    #[test]
    fn every_backing_counts() {
        // /striped is dm over two loops whose images live on /a and /b.
        let targets = vec![
            t("/a", 8, 1, vec![]),
            t("/b", 8, 2, vec![]),
            t("/c", 8, 3, vec![]),
            t("/striped", 253, 0, vec![holder(8, 2), holder(8, 1)]),
        ];
        assert_eq!(names(&targets), vec!["/c", "/striped", "/a", "/b"]);
    }

    #[test]
    fn an_unknown_holder_goes_before_everything_not_loop_backed() {
        let targets = vec![
            t("/plain", 8, 1, vec![]),
            t("/known", 7, 0, vec![holder(8, 1)]),
            t("/", 254, 0, vec![]),
            t("/lost", 7, 1, vec![unknown()]),
            t("/also-loop", 7, 2, vec![holder(9, 9)]),
        ];
        // /known and /also-loop are loop-backed: no constraint with /lost among them.
        assert_eq!(
            names(&targets),
            vec!["/known", "/lost", "/plain", "/also-loop", "/"]
        );
    }

    #[test]
    fn root_is_the_superblock_backing_slash_under_any_of_its_mount_points() {
        // btrfs: the top-level subvolume at /mnt/top listed first, `/` (subvol=@) a duplicate.
        let mut top = t("/mnt/top", 0, 30, vec![]);
        top.duplicates = vec![PathBuf::from("/"), PathBuf::from("/home")];
        assert!(top.is_root());
        let targets = vec![top, t("/data", 8, 1, vec![]), t("/srv", 8, 2, vec![])];
        assert_eq!(names(&targets), vec!["/data", "/srv", "/mnt/top"]);
        assert!(!t("/mnt", 8, 1, vec![]).is_root());
    }

    #[test]
    fn the_reason_names_every_image_and_where_it_lives() {
        let mut target = t("/striped", 253, 0, vec![holder(8, 2), unknown()]);
        target.backing[1].deleted = true;
        let text = describe_backing(&target.backing).unwrap();
        assert_eq!(
            text,
            "loop-backed: image /img0 (loop0) on /somewhere; image /img1 (loop1, deleted) on an \
             unknown filesystem (not mounted here); frozen before the filesystems holding its \
             images, and before every filesystem that is not loop-backed"
        );
        assert_eq!(describe_backing(&[]), None);
        let rows: Vec<_> = target.backing.iter().map(Backing::report).collect();
        assert_eq!(rows[0].mount.as_deref(), Some("/somewhere"));
        assert_eq!(rows[0].matched_by, BackingMatch::DevIno);
        assert_eq!(
            (rows[1].mount.as_deref(), rows[1].matched_by),
            (None, BackingMatch::Unknown)
        );
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"file": "/img1", "loop": "loop1", "mount": null, "matched_by": "unknown"})
        );
    }

    #[test]
    fn cycles_are_refused() {
        let targets = vec![
            t("/ok", 8, 1, vec![]),
            t("/a", 7, 0, vec![holder(7, 1)]),
            t("/b", 7, 1, vec![holder(7, 0)]),
        ];
        let err = freeze_order(&targets).unwrap_err();
        assert_eq!(
            err.mountpoints,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(err.to_string().contains("cycle: /a, /b"), "{err}");
    }

    /// The host, scripted: loop0's image proven on mount 60 (/outer); loop1's deleted.
    struct Scripted;

    impl LiveSystem for Scripted {
        fn loop_backing_id(&self, loop_name: &str) -> Result<FileId, String> {
            match loop_name {
                "loop0" => Ok(FileId {
                    dev: 0x700,
                    ino: 12,
                }),
                "loop1" => Ok(FileId {
                    dev: 0x700,
                    ino: 13,
                }),
                _ => Err("ENXIO".into()),
            }
        }
        fn open_image(&self, path: &Path) -> Result<OpenedImage, String> {
            match path.to_str() {
                Some("/outer/a.img") => Ok(OpenedImage {
                    id: FileId {
                        dev: 0x700,
                        ino: 12,
                    },
                    mount_id: Ok(60),
                }),
                _ => Err(Errno::ENOENT.desc().into()),
            }
        }
        fn mount_point_dev(&self, _: &Path) -> Option<u64> {
            None
        }
    }

    #[test]
    fn backings_resolved_from_a_sysfs_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop0", "7:16", "/outer/a.img");
        partition(dir.path(), "loop0", "loop0p1", "259:0");
        loop_disk(dir.path(), "loop1", "7:17", "/outer/b.img (deleted)");
        stacked(dir.path(), "dm-0", "253:0", &["loop0p1", "loop1"]);
        let table = MountTable::from_mountinfo(
            b"27 1 254:0 / / rw - ext4 /dev/vda rw\n\
              60 27 7:0 / /outer rw - ext4 /dev/loop7 rw\n\
              70 27 259:0 / /inner rw - ext4 /dev/loop0p1 rw\n\
              71 27 253:0 / /striped rw - xfs /dev/dm-0 rw\n",
        )
        .unwrap();
        let targets = || {
            vec![
                t("/outer", 7, 0, vec![]),
                t("/inner", 259, 0, vec![]),
                t("/striped", 253, 0, vec![]),
            ]
        };

        // The host: proven by dev/ino, the deleted one by device number.
        let mut on_host = targets();
        resolve_backing_with(&mut on_host, &table, &root, Some(&Scripted));
        let inner = &on_host[1].backing;
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].loop_name, "loop0");
        let h = inner[0].holder.found().unwrap();
        assert_eq!((h.major, h.minor, h.matched_by), (7, 0, MatchedBy::DevIno));
        let striped: Vec<_> = on_host[2]
            .backing
            .iter()
            .map(|b| {
                (
                    b.loop_name.as_str(),
                    b.deleted,
                    b.holder.found().unwrap().matched_by,
                )
            })
            .collect();
        assert_eq!(
            striped,
            vec![
                ("loop0", false, MatchedBy::DevIno),
                ("loop1", true, MatchedBy::Device)
            ]
        );
        assert!(on_host[0].backing.is_empty());
        assert_eq!(names(&on_host), vec!["/inner", "/striped", "/outer"]);

        // A fixture root: the path text only.
        let mut offline = targets();
        resolve_backing(&mut offline, &table, &root);
        assert!(
            offline[1..].iter().flat_map(|t| &t.backing).all(|b| b
                .holder
                .found()
                .unwrap()
                .matched_by
                == MatchedBy::PathPrefix)
        );
        assert_eq!(names(&offline), vec!["/inner", "/striped", "/outer"]);
    }

    #[test]
    fn btrfs_on_a_fixture_root_is_found_by_its_source_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        loop_disk(dir.path(), "loop3", "7:3", "/srv/pool.img");
        let mut b = t("/pool", 0, 44, vec![]);
        b.fstype = "btrfs".into();
        b.source = Some("/dev/loop3".into());
        let table =
            MountTable::from_mountinfo(b"60 1 8:1 / /srv rw - ext4 /dev/sda1 rw\n").unwrap();
        let mut targets = vec![b];
        resolve_backing(&mut targets, &table, &root);
        let h = targets[0].backing[0].holder.found().unwrap();
        assert_eq!((h.major, h.minor), (8, 1));
    }
}
