//! `repair::mountops` on real mounts of filesystems made here on loop devices (privileged):
//! unmount, restore from the recorded mountinfo line with the same options, subvolume and
//! per-mount flags (`differences` empty), busy unmounts, and the O_EXCL fence.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use common::fixtures::{self, MIB};
use common::*;
use snapguard::mount::MountInfo;
use snapguard::repair::mountops::{self, Fence};

/// This process's mountinfo line for `mount_point` (the topmost one when stacked).
fn line_of(mount_point: &Path) -> Option<MountInfo> {
    let text = fs::read("/proc/self/mountinfo").expect("read mountinfo");
    snapguard::mount::parse_all(&text)
        .expect("parse mountinfo")
        .into_iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
}

fn expect_line(mount_point: &Path) -> MountInfo {
    line_of(mount_point).unwrap_or_else(|| panic!("{} is not mounted", mount_point.display()))
}

/// Unmount with `mountops::unmount` and check it is gone from mountinfo.
fn unmount_checked(mount_point: &Path) {
    mountops::unmount(mount_point)
        .unwrap_or_else(|e| panic!("unmount {}: {e}", mount_point.display()));
    assert!(
        line_of(mount_point).is_none(),
        "{} still listed",
        mount_point.display()
    );
}

fn assert_same(before: &MountInfo, after: &MountInfo) {
    let d = mountops::differences(before, after);
    assert!(
        d.is_empty(),
        "differences {d:?}\nbefore {before:?}\nafter  {after:?}"
    );
}

/// Record, unmount, restore with `primary_request`, compare.
fn round_trip(dev: &Path, mnt: &Path) -> (MountInfo, MountInfo) {
    let before = expect_line(mnt);
    unmount_checked(mnt);
    let req = mountops::primary_request(&before, dev);
    mountops::mount(&req).unwrap_or_else(|e| panic!("{req:?}: {e:#}"));
    mountops::apply_propagation(mnt, &before.optional_fields).expect("propagation");
    let after = expect_line(mnt);
    assert_same(&before, &after);
    (before, after)
}

#[test]
fn ext4_hardening_flags_and_options_come_back() {
    if !require_root("ext4_hardening_flags_and_options_come_back") {
        return;
    }
    let dir = TestDir::new("rmnt-ext4");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(
        lo.dev(),
        &mnt,
        Some("noatime,nodev,nosuid,errors=remount-ro,commit=30"),
    );
    let (_, after) = round_trip(lo.dev(), &mnt);
    for o in ["noatime", "nodev", "nosuid"] {
        assert!(after.mount_options.split(',').any(|w| w == o), "{after:?}");
    }
    for o in ["errors=remount-ro", "commit=30"] {
        assert!(after.super_options.split(',').any(|w| w == o), "{after:?}");
    }
}

#[test]
fn ext4_data_journal_sync_lazytime_and_strictatime_come_back() {
    if !require_root("ext4_data_journal_sync_lazytime_and_strictatime_come_back") {
        return;
    }
    let dir = TestDir::new("rmnt-ext4j");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(
        lo.dev(),
        &mnt,
        Some("data=journal,sync,lazytime,strictatime,nodiratime,noexec"),
    );
    round_trip(lo.dev(), &mnt);
}

#[test]
fn xfs_options_are_accepted_back() {
    if !require_root("xfs_options_are_accepted_back") {
        return;
    }
    let dir = TestDir::new("rmnt-xfs");
    let img = fixtures::made_by(&dir, "x.img", 320 * MIB, "mkfs.xfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(lo.dev(), &mnt, Some("logbufs=4,logbsize=64k,noatime"));
    let (_, after) = round_trip(lo.dev(), &mnt);
    assert!(after.super_options.contains("logbufs=4"), "{after:?}");
}

#[test]
fn btrfs_subvolume_comes_back_as_the_same_tree() {
    if !require_root("btrfs_subvolume_comes_back_as_the_same_tree") {
        return;
    }
    let dir = TestDir::new("rmnt-btrfs");
    let img = fixtures::made_by(&dir, "b.img", 200 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let top = dir.mkdir("top");
    let sub = dir.mkdir("sub");
    let _mt = Mount::new(lo.dev(), &top, None);
    run(
        "btrfs",
        &[
            OsStr::new("subvolume"),
            OsStr::new("create"),
            top.join("sub").as_os_str(),
        ],
    );
    fs::write(top.join("sub/only-in-sub"), b"sub\n").expect("write");
    let _ms = Mount::new(lo.dev(), &sub, Some("subvol=sub,noatime"));
    let top_rec = expect_line(&top);
    let sub_rec = expect_line(&sub);
    assert_eq!(sub_rec.root, Path::new("/sub"));

    // Deepest first; both share the superblock, which lives until the last one goes.
    unmount_checked(&sub);
    unmount_checked(&top);
    assert!(Fence::take(lo.dev()).is_ok(), "superblock gone");
    // A plain mount of the device would show the top-level tree at the sub mount point.
    mountops::mount(&mountops::primary_request(&top_rec, lo.dev())).expect("top");
    assert_same(&top_rec, &expect_line(&top));

    // As a bind from the primary (its root is below the primary's).
    let bind = mountops::bind_request(&sub_rec, &top_rec).expect("reachable from the top");
    assert_eq!(bind.source, top.join("sub"));
    mountops::mount(&bind).expect("bind");
    assert_same(&sub_rec, &expect_line(&sub));
    assert!(sub.join("only-in-sub").exists());

    // As a primary of its own (subvol= from the recorded root).
    unmount_checked(&sub);
    let req = mountops::primary_request(&sub_rec, lo.dev());
    assert!(req.data.contains("subvol=/sub"), "{req:?}");
    mountops::mount(&req).expect("sub as primary");
    assert_same(&sub_rec, &expect_line(&sub));
    assert!(sub.join("only-in-sub").exists());
    assert!(!top.join("only-in-sub").exists());
}

#[test]
fn a_read_only_bind_comes_back_read_only() {
    if !require_root("a_read_only_bind_comes_back_read_only") {
        return;
    }
    let dir = TestDir::new("rmnt-robind");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let view = dir.mkdir("view");
    let _m = Mount::new(lo.dev(), &mnt, Some("nodev"));
    fs::create_dir(mnt.join("inner")).expect("mkdir");
    fs::write(mnt.join("inner/file"), b"x").expect("write");
    let _b = Mount::bind(&mnt.join("inner"), &view);
    run(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new("remount,bind,ro,nosuid"),
            view.as_os_str(),
        ],
    );
    let primary = expect_line(&mnt);
    let before = expect_line(&view);
    assert!(before.is_read_only(), "{before:?}");
    assert_eq!(before.root, Path::new("/inner"));

    unmount_checked(&view);
    let req = mountops::bind_request(&before, &primary).expect("reachable");
    assert_eq!(req.source, mnt.join("inner"));
    mountops::mount(&req).expect("bind");
    let after = expect_line(&view);
    assert!(after.is_read_only(), "{after:?}");
    assert_same(&before, &after);
    assert!(fs::write(view.join("file"), b"y").is_err(), "read-only");
    assert!(fs::read(view.join("file")).is_ok());
    // The primary itself stayed writable.
    assert!(!expect_line(&mnt).is_read_only());
}

#[test]
fn unmount_of_a_busy_mount_is_ebusy_and_leaves_it_mounted() {
    if !require_root("unmount_of_a_busy_mount_is_ebusy_and_leaves_it_mounted") {
        return;
    }
    let dir = TestDir::new("rmnt-busy");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(lo.dev(), &mnt, None);
    let held = fs::File::create(mnt.join("held")).expect("open a file on it");
    assert_eq!(mountops::unmount(&mnt), Err(nix::errno::Errno::EBUSY));
    assert!(line_of(&mnt).is_some(), "still mounted");
    assert!(mnt.join("held").exists());
    drop(held);
    // The guard unmounts it.
}

#[test]
fn the_fence_fails_while_mounted_and_blocks_mounting_while_held() {
    if !require_root("the_fence_fails_while_mounted_and_blocks_mounting_while_held") {
        return;
    }
    let dir = TestDir::new("rmnt-fence");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(lo.dev(), &mnt, Some("nosuid"));
    let e = Fence::take(lo.dev()).expect_err("mounted: EBUSY");
    let busy = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EBUSY))
    }) || format!("{e:#}").contains("busy");
    assert!(busy, "{e:#}");

    let before = expect_line(&mnt);
    unmount_checked(&mnt);
    let fence = Fence::take(lo.dev()).expect("unmounted: fenced");
    assert_eq!(fence.device(), lo.dev());
    let req = mountops::primary_request(&before, lo.dev());
    let e = mountops::mount(&req).expect_err("fenced: mount fails");
    assert!(line_of(&mnt).is_none(), "not mounted: {e:#}");
    assert!(
        e.chain()
            .any(|c| c.downcast_ref::<nix::errno::Errno>() == Some(&nix::errno::Errno::EBUSY)),
        "{e:#}"
    );
    // A second fence fails too.
    assert!(Fence::take(lo.dev()).is_err());
    fence.release();
    mountops::mount(&req).expect("mount after release");
    assert_same(&before, &expect_line(&mnt));
}

#[test]
fn the_fence_refuses_what_is_not_a_block_device() {
    // Needs no privilege: nothing is opened exclusively.
    let dir = TestDir::new("rmnt-notblk");
    let file = dir.join("plain");
    fs::write(&file, b"x").expect("write");
    let e = Fence::take(&file).expect_err("a regular file");
    assert!(format!("{e:#}").contains("not a block device"), "{e:#}");
    assert!(Fence::take(&dir.join("missing")).is_err());
}

/// `mount --make-PROPAGATION DIR`.
fn make(propagation: &str, dir: &Path) {
    run(
        "mount",
        &[
            OsStr::new(&format!("--make-{propagation}")),
            dir.as_os_str(),
        ],
    );
}

#[test]
fn propagation_types_come_back() {
    if !require_root("propagation_types_come_back") {
        return;
    }
    let dir = TestDir::new("rmnt-prop");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(lo.dev(), &mnt, None);
    for p in ["shared", "unbindable", "private"] {
        make(p, &mnt);
        let (before, after) = round_trip(lo.dev(), &mnt);
        let want = match p {
            "shared" => mountops::Propagation::Shared,
            "unbindable" => mountops::Propagation::Unbindable,
            _ => mountops::Propagation::Private,
        };
        assert_eq!(mountops::propagation_of(&before.optional_fields), want);
        assert_eq!(mountops::propagation_of(&after.optional_fields), want);
    }
}

#[test]
fn a_slave_bind_of_a_shared_mount_comes_back_a_slave() {
    if !require_root("a_slave_bind_of_a_shared_mount_comes_back_a_slave") {
        return;
    }
    let dir = TestDir::new("rmnt-slave");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let view = dir.mkdir("view");
    let _m = Mount::new(lo.dev(), &mnt, None);
    make("shared", &mnt);
    let _b = Mount::bind(&mnt, &view);
    make("slave", &view);
    let primary = expect_line(&mnt);
    let before = expect_line(&view);
    assert_eq!(
        mountops::propagation_of(&before.optional_fields),
        mountops::Propagation::Slave,
        "{before:?}"
    );
    unmount_checked(&view);
    let req = mountops::bind_request(&before, &primary).expect("reachable");
    mountops::mount(&req).expect("bind");
    mountops::apply_propagation(&view, &before.optional_fields).expect("slave");
    let after = expect_line(&view);
    assert_same(&before, &after);
    // A bind of a shared mount joins its peer group, so the slave follows the same master.
    assert_eq!(before.optional_fields, after.optional_fields);
}

#[test]
fn btrfs_subvolume_with_a_comma_in_its_name_comes_back_by_id() {
    if !require_root("btrfs_subvolume_with_a_comma_in_its_name_comes_back_by_id") {
        return;
    }
    let dir = TestDir::new("rmnt-comma");
    let img = fixtures::made_by(&dir, "b.img", 200 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let top = dir.mkdir("top");
    let sub = dir.mkdir("sub");
    let mt = Mount::new(lo.dev(), &top, None);
    run(
        "btrfs",
        &[
            OsStr::new("subvolume"),
            OsStr::new("create"),
            top.join("a,b").as_os_str(),
        ],
    );
    fs::write(top.join("a,b/marker"), b"x").expect("write");
    mt.unmount();
    // mountinfo shows `subvol=/a\054b`, which the parser decodes to a comma.
    let _ms = Mount::new(lo.dev(), &sub, Some("subvolid=256"));
    let before = expect_line(&sub);
    assert_eq!(before.root, Path::new("/a,b"));
    let req = mountops::primary_request(&before, lo.dev());
    assert!(!req.data.contains("subvol="), "{req:?}");
    assert!(req.data.contains("subvolid=256"), "{req:?}");
    round_trip(lo.dev(), &sub);
    assert!(sub.join("marker").exists());
}

/// The line of the mount `m` is mounted on (its parent).
fn parent_of(m: &MountInfo) -> MountInfo {
    let text = fs::read("/proc/self/mountinfo").expect("read mountinfo");
    snapguard::mount::parse_all(&text)
        .expect("parse mountinfo")
        .into_iter()
        .find(|p| p.mount_id == m.parent_id)
        .expect("parent mount listed")
}

#[test]
fn the_covered_directory_is_seen_while_mounted_and_a_bind_comes_back_through_its_fd() {
    use std::os::unix::fs::MetadataExt as _;
    if !require_root(
        "the_covered_directory_is_seen_while_mounted_and_a_bind_comes_back_through_its_fd",
    ) {
        return;
    }
    let dir = TestDir::new("rmnt-covered");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let view = dir.mkdir("view");
    let under = fs::metadata(&mnt).expect("stat");
    let under_view = fs::metadata(&view).expect("stat");
    let _m = Mount::new(lo.dev(), &mnt, Some("nodev"));
    let line = expect_line(&mnt);
    let parent = parent_of(&line);
    let seen =
        mountops::MountPoint::covered(&parent.mount_point, (parent.major, parent.minor), &mnt)
            .expect("the directory under the mount, seen through a clone of the parent mount");
    assert_eq!(seen.ino, under.ino());
    assert_eq!(
        libc::makedev(seen.dev_major, seen.dev_minor),
        under.dev(),
        "{seen}"
    );
    assert_ne!(fs::metadata(&mnt).unwrap().dev(), under.dev(), "mounted");
    // A read-only bind, restored on the verified directory through its fd: flags kept.
    fs::create_dir(mnt.join("inner")).expect("mkdir");
    let _b = Mount::bind(&mnt.join("inner"), &view);
    run(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new("remount,bind,ro,nosuid"),
            view.as_os_str(),
        ],
    );
    let before = expect_line(&view);
    let view_id = mountops::MountPoint::covered(
        &parent_of(&before).mount_point,
        (parent.major, parent.minor),
        &view,
    )
    .expect("covered");
    assert_eq!(view_id.ino, under_view.ino());
    unmount_checked(&view);
    let at = mountops::MountPoint::open(&view, Some(&view_id)).expect("the same directory");
    let req = mountops::bind_request(&before, &expect_line(&mnt)).expect("reachable");
    mountops::mount_on(&req, &at).unwrap_or_else(|e| panic!("{req:?}: {e:#}"));
    at.apply_propagation(&before.optional_fields)
        .expect("propagation");
    let after = expect_line(&view);
    assert!(after.is_read_only(), "{after:?}");
    assert_same(&before, &after);
    // Not the directory recorded: refused, nothing mounted.
    let wrong = mountops::DirIdentity {
        ino: view_id.ino + 1,
        ..view_id
    };
    unmount_checked(&view);
    assert!(matches!(
        mountops::MountPoint::open(&view, Some(&wrong)),
        Err(mountops::MountPointError::Replaced { .. })
    ));
}
