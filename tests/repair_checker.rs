//! `repair::checker` against real filesystems made here on loop devices (privileged): the
//! read-only check, replay, repair and verify of ext4, XFS, FAT32 and btrfs, with each tool's
//! exit code read through `checker::interpret`, and the metadata backups.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fixtures::{self, MIB};
use common::*;
use snapguard::repair::checker::{self, Phase, Replay, Verdict};
use snapguard::repair::mountops::{self, Fence};
use snapguard::repair::{FsKind, Tier};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` and interprets it as `phase` of `kind`.
fn verdict(kind: FsKind, phase: Phase, cmd: &checker::Command) -> (Verdict, checker::Run) {
    let run =
        checker::run(cmd, TIMEOUT, None).unwrap_or_else(|e| panic!("{}: {e:#}", cmd.display()));
    let v = checker::interpret(kind, phase, run.status, &run.output);
    note(&format!(
        "{} -> {:?} {v:?} in {:?}",
        cmd.display(),
        run.status,
        run.duration
    ));
    (v, run)
}

fn read_only(kind: FsKind, dev: &Path) -> (Verdict, checker::Run) {
    verdict(kind, Phase::ReadOnly, &checker::read_only_check(kind, dev))
}

fn repair(kind: FsKind, dev: &Path, tier: Tier, undo: Option<&Path>) -> (Verdict, checker::Run) {
    let cmd = checker::repair(kind, dev, tier, false, undo).expect("a repair command");
    verdict(kind, Phase::Repair, &cmd)
}

/// ext4 with a file whose inode says 5 links (preen fixes it) and the state "not clean".
fn preenable_ext4(dir: &TestDir) -> PathBuf {
    let img = fixtures::ext4(dir, "preen.img", &[]);
    fs::write(dir.join("payload"), b"hello\n").expect("payload");
    let payload = dir.join("payload");
    fixtures::debugfs_w(&img, &format!("write {} f1", payload.display()));
    fixtures::debugfs_w(&img, "sif <12> links_count 5");
    fixtures::debugfs_w(&img, "ssv state 0");
    img
}

#[test]
fn ext4_preenable_inconsistency_is_found_repaired_and_then_clean() {
    if !require_root("ext4_preenable_inconsistency_is_found_repaired_and_then_clean") {
        return;
    }
    let dir = TestDir::new("rchk-ext4");
    let img = preenable_ext4(&dir);
    let lo = LoopDevice::attach(&img);
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(v, Verdict::ErrorsFound, "{}", run.output);
    assert_eq!(run.status.code(), Some(4));

    // Preen with an undo file, streaming progress.
    let undo = dir.join("undo.e2undo");
    let cmd = checker::repair(FsKind::Ext, lo.dev(), Tier::Preen, false, Some(&undo))
        .expect("preen command");
    let mut fractions = Vec::new();
    let mut cb = |f: f64| fractions.push(f);
    let run = checker::run(&cmd, TIMEOUT, Some(&mut cb)).expect("preen");
    let v = checker::interpret(FsKind::Ext, Phase::Repair, run.status, &run.output);
    assert_eq!(v, Verdict::Repaired, "{}", run.output);
    assert!(run.output.contains("FIXED"), "{}", run.output);
    assert!(!fractions.is_empty(), "no progress from -C");
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert_eq!(fractions.last().copied(), Some(1.0), "{fractions:?}");
    assert!(fs::metadata(&undo).expect("undo file").len() > 0);

    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(v, Verdict::Clean, "{}", run.output);
}

#[test]
fn ext4_root_inode_turned_regular_is_left_by_preen() {
    if !require_root("ext4_root_inode_turned_regular_is_left_by_preen") {
        return;
    }
    let dir = TestDir::new("rchk-root");
    let img = fixtures::ext4(&dir, "root.img", &[]);
    fixtures::debugfs_w(&img, "sif <2> mode 0100644");
    let lo = LoopDevice::attach(&img);
    // -fn: 12 (4 + 8, "aborting"): errors exist for certain.
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(run.status.code(), Some(12), "{}", run.output);
    assert_eq!(v, Verdict::ErrorsFound);
    let (v, run) = repair(FsKind::Ext, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::ErrorsLeft, "{}", run.output);
    assert!(
        run.output.contains("UNEXPECTED INCONSISTENCY"),
        "{}",
        run.output
    );
    // Full needs an undo file.
    assert_eq!(
        checker::repair(FsKind::Ext, lo.dev(), Tier::Full, false, None),
        None
    );
}

#[test]
fn ext4_under_the_fence_repair_is_refused_and_read_only_still_checks() {
    if !require_root("ext4_under_the_fence_repair_is_refused_and_read_only_still_checks") {
        return;
    }
    let dir = TestDir::new("rchk-fence");
    let img = preenable_ext4(&dir);
    let lo = LoopDevice::attach(&img);
    let fence = Fence::take(lo.dev()).expect("fence");
    let (v, run) = repair(FsKind::Ext, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::OperationalError, "{}", run.output);
    assert_eq!(run.status.code(), Some(8));
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(v, Verdict::ErrorsFound, "{}", run.output);
    fence.release();
    let (v, _) = repair(FsKind::Ext, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::Repaired);
}

#[test]
fn ext4_journal_replay_and_metadata_backup() {
    if !require_root("ext4_journal_replay_and_metadata_backup") {
        return;
    }
    let dir = TestDir::new("rchk-journal");
    let img = fixtures::shutdown_image(&dir);
    let lo = LoopDevice::attach(&img);
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(v, Verdict::DirtyLog, "{}", run.output);
    let Some(Replay::Command(cmd)) = checker::replay(FsKind::Ext, lo.dev()) else {
        panic!("ext replays with a command")
    };
    let (v, run) = verdict(FsKind::Ext, Phase::Replay, &cmd);
    assert_eq!(v, Verdict::Clean, "{}", run.output);
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert_eq!(v, Verdict::Clean, "{}", run.output);

    let dest = dir.join("meta");
    let cmd = checker::metadata_backup(FsKind::Ext, lo.dev(), &dest).expect("e2image");
    let run = checker::run(&cmd, TIMEOUT, None).expect("e2image");
    assert!(run.status.success(), "{}", run.output);
    let len = fs::metadata(dir.join("meta.qcow2")).expect("qcow2").len();
    assert!(len > 0);
}

/// A 320 MiB XFS on a loop device whose log holds transactions (mount, write,
/// `xfs_io -x -c "shutdown -f"` — flush the log, then shut down — umount).
fn dirty_xfs(dir: &TestDir) -> (LoopDevice, PathBuf) {
    let img = fixtures::made_by(dir, "xfs.img", 320 * MIB, "mkfs.xfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt-xfs");
    let m = Mount::new(lo.dev(), &mnt, None);
    for i in 0..4 {
        let d = mnt.join(format!("d{i}"));
        fs::create_dir(&d).expect("mkdir");
        fs::write(d.join("f"), b"x\n").expect("write");
    }
    run(
        "xfs_io",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("shutdown -f"),
            mnt.as_os_str(),
        ],
    );
    m.unmount();
    (lo, img)
}

#[test]
fn xfs_dirty_log_is_replayed_by_mount_and_unmount() {
    if !require_root("xfs_dirty_log_is_replayed_by_mount_and_unmount") {
        return;
    }
    let dir = TestDir::new("rchk-xfs");
    let (lo, _img) = dirty_xfs(&dir);
    let (v, run) = read_only(FsKind::Xfs, lo.dev());
    assert_eq!(v, Verdict::DirtyLog, "{}", run.output);
    assert_eq!(run.status.code(), Some(1), "-n: 1, like corruption");
    let (v, run) = repair(FsKind::Xfs, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::DirtyLog, "{}", run.output);
    assert_eq!(run.status.code(), Some(2));

    // Metadata backup before anything writes.
    let dest = dir.join("meta");
    let cmd = checker::metadata_backup(FsKind::Xfs, lo.dev(), &dest).expect("xfs_metadump");
    let run = checker::run(&cmd, TIMEOUT, None).expect("xfs_metadump");
    assert!(run.status.success(), "{}", run.output);
    assert!(fs::metadata(dir.join("meta.metadump")).expect("dump").len() > 0);

    assert_eq!(
        checker::replay(FsKind::Xfs, lo.dev()),
        Some(Replay::MountUnmount)
    );
    let scratch = dir.mkdir("scratch");
    mountops::replay_by_mount(lo.dev(), "xfs", &scratch).expect("replay");
    assert_eq!(fs::read_dir(&scratch).expect("scratch").count(), 0);
    let (v, run) = read_only(FsKind::Xfs, lo.dev());
    assert_eq!(v, Verdict::Clean, "{}", run.output);
    let (v, run) = repair(FsKind::Xfs, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::Clean, "{}", run.output);
}

#[test]
fn xfs_read_only_check_of_a_mounted_filesystem_is_an_operational_error() {
    if !require_root("xfs_read_only_check_of_a_mounted_filesystem_is_an_operational_error") {
        return;
    }
    let dir = TestDir::new("rchk-xfsmnt");
    let img = fixtures::made_by(&dir, "xfs.img", 320 * MIB, "mkfs.xfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let _m = Mount::new(lo.dev(), &mnt, None);
    // xfs_repair -n exits 1 here, as it does for corruption.
    let (v, run) = read_only(FsKind::Xfs, lo.dev());
    assert_eq!(run.status.code(), Some(1), "{}", run.output);
    assert_eq!(v, Verdict::OperationalError, "{}", run.output);
}

#[test]
fn fat32_dirty_bit_is_found_repaired_and_then_clean() {
    if !require_root("fat32_dirty_bit_is_found_repaired_and_then_clean") {
        return;
    }
    let dir = TestDir::new("rchk-fat");
    let img = fixtures::made_by(&dir, "fat.img", 64 * MIB, "mkfs.fat", &["-F", "32"]);
    fixtures::patch(&img, 0x41, &[1]);
    let lo = LoopDevice::attach(&img);
    let (v, run) = read_only(FsKind::Fat, lo.dev());
    assert_eq!(v, Verdict::ErrorsFound, "{}", run.output);
    let (v, run) = repair(FsKind::Fat, lo.dev(), Tier::Preen, None);
    assert_eq!(v, Verdict::Repaired, "{}", run.output);
    let (v, run) = read_only(FsKind::Fat, lo.dev());
    assert_eq!(v, Verdict::Clean, "{}", run.output);
    assert_eq!(
        checker::metadata_backup(FsKind::Fat, lo.dev(), &dir.join("m")),
        None
    );
    // Whether this kernel could mount it at all (the checks above never need to).
    let vfat = fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("vfat"));
    if !vfat {
        note(
            "fat32_dirty_bit_is_found_repaired_and_then_clean: no vfat in /proc/filesystems: FAT was checked and repaired but cannot be mounted on this kernel",
        );
    }
}

#[test]
fn btrfs_fresh_is_clean_and_never_repaired() {
    if !require_root("btrfs_fresh_is_clean_and_never_repaired") {
        return;
    }
    let dir = TestDir::new("rchk-btrfs");
    let img = fixtures::made_by(&dir, "btrfs.img", 200 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    let lo = LoopDevice::attach(&img);
    let (v, run) = read_only(FsKind::Btrfs, lo.dev());
    assert_eq!(v, Verdict::Clean, "{}", run.output);
    assert_eq!(
        checker::repair(FsKind::Btrfs, lo.dev(), Tier::Full, true, None),
        None
    );
    assert_eq!(checker::replay(FsKind::Btrfs, lo.dev()), None);
    assert_eq!(
        checker::metadata_backup(FsKind::Btrfs, lo.dev(), &dir.join("m")),
        None
    );
    // Not btrfs at all: the tool cannot open it, which is not "errors found".
    let other = fixtures::ext4(&dir, "ext.img", &[]);
    let lo2 = LoopDevice::attach(&other);
    let (v, run) = read_only(FsKind::Btrfs, lo2.dev());
    assert_eq!(v, Verdict::OperationalError, "{}", run.output);
}

#[test]
fn ext4_read_only_check_of_a_mounted_filesystem_is_an_operational_error() {
    if !require_root("ext4_read_only_check_of_a_mounted_filesystem_is_an_operational_error") {
        return;
    }
    let dir = TestDir::new("rchk-extmnt");
    let img = fixtures::ext4(&dir, "e.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("mnt");
    let m = Mount::new(lo.dev(), &mnt, None);
    fixtures::write_files(m.dir());
    // e2fsck -fn warns "is mounted" and exits 0 (even when it declines fixes).
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert!(run.output.contains("is mounted"), "{}", run.output);
    assert_eq!(v, Verdict::OperationalError, "{}", run.output);
    m.unmount();
    // Under our own fence it says "in use" and still checks: a clean result counts.
    let fence = Fence::take(lo.dev()).expect("fence");
    let (v, run) = read_only(FsKind::Ext, lo.dev());
    assert!(run.output.contains("in use"), "{}", run.output);
    assert_eq!(v, Verdict::Clean, "{}", run.output);
    fence.release();
}
