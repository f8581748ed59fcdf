//! Attacks on `snapguard repair` (a hostile review of repair.md §7 and §8): interrupted runs
//! and the next run, state changed between check and use, odd target spellings. Each test that
//! failed before its fix names the finding it demonstrates.
//!
//! Every run passes `--trust-fence` (this sandbox cannot read `/proc/1/ns/mnt`), and every test
//! takes the exclusive mount-namespace turn (`common::mount_namespace_turn(true)`).

mod common;
mod freeze_support;

use common::repair::make_unclean;
use common::{LoopDevice, Mount, TestDir, fixtures, require_root, run, run_any};
use freeze_support::assert_schema;
use serde_json::Value;
use snapguard::mount::table::MountTable;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const RUN_LIMIT: Duration = Duration::from_secs(180);
const EXT4_OPTS: &str = "noatime,nodev,nosuid";

fn one_at_a_time() -> nix::fcntl::Flock<fs::File> {
    common::mount_namespace_turn(true)
}

/// `snapguard repair --json --trust-fence --backup-dir DIR/backup ARGS...` with `env`.
fn repair_env(dir: &TestDir, args: &[&OsStr], env: &[(&str, &str)]) -> (i32, Value, String) {
    let backup = dir.join("backup");
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("repair"),
        OsStr::new("--json"),
        OsStr::new("--trust-fence"),
        OsStr::new("--backup-dir"),
        backup.as_os_str(),
    ];
    all.extend_from_slice(args);
    let mut cmd = common::snapguard();
    cmd.args(&all).timeout(RUN_LIMIT);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("spawn snapguard");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("snapguard killed: {:?}\n{stderr}", out.status));
    assert!(!stderr.contains("panicked at"), "panic:\n{stderr}");
    let doc: Value = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
    };
    if !doc.is_null() {
        assert_schema("repair", &doc);
    }
    (code, doc, stderr)
}

fn repair(dir: &TestDir, args: &[&OsStr]) -> (i32, Value, String) {
    repair_env(dir, args, &[])
}

fn table() -> MountTable {
    MountTable::from_mountinfo(&fs::read("/proc/self/mountinfo").unwrap()).unwrap()
}

fn mounted_at(dir: &Path) -> bool {
    table().by_mount_point(dir).is_some()
}

fn step<'a>(target: &'a Value, name: &str) -> Vec<&'a Value> {
    target["steps"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["step"] == name).collect())
        .unwrap_or_default()
}

/// An unclean ext4 (a wrong link count and state 0 set with debugfs) mounted on DIR/NAME.
struct Fixture {
    lo: LoopDevice,
    mnt: PathBuf,
    _mount: Option<Mount>,
}

impl Fixture {
    fn record_path(&self) -> PathBuf {
        let devt = self.lo.dev_t();
        let (major, minor) = devt.split_once(':').unwrap();
        PathBuf::from(format!("/run/snapguard/repair-{major}-{minor}.json"))
    }

    fn record_phase(&self) -> Option<String> {
        let bytes = fs::read(self.record_path()).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["phase"].as_str().map(str::to_string)
    }

    /// The record of this test's device must not outlive the test: the loop number is reused
    /// by the next test, and a stale record would be applied to that one.
    fn forget_record(&self) {
        let _ = fs::remove_file(self.record_path());
    }
}

fn unclean_ext4(dir: &TestDir, name: &str) -> Fixture {
    let img = fixtures::mkfs(
        dir,
        &format!("{name}.img"),
        fixtures::Kind::Ext4,
        4096,
        &[],
        64 * MIB,
    );
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir(name);
    let m = Mount::new(lo.dev(), &mnt, Some(EXT4_OPTS));
    fs::write(mnt.join("file"), vec![7u8; 300_000]).unwrap();
    run("sync", &[OsStr::new("-f"), mnt.as_os_str()]);
    let ino = fs::metadata(mnt.join("file")).unwrap().ino();
    m.unmount();
    make_unclean(lo.dev(), ino);
    let m = Mount::new(lo.dev(), &mnt, Some(EXT4_OPTS));
    // A stale record of an earlier user of this loop number would be resumed: not ours.
    let fx = Fixture {
        lo,
        mnt,
        _mount: Some(m),
    };
    fx.forget_record();
    fx
}

/// Finding 1: a crash inside the repair command leaves a `repair-started` record; the next run
/// that names the device through a symlink (`/dev/disk/by-uuid/...`, `/dev/mapper/...`, any
/// alias) is not matched with the record (matched by literal path), so it runs a fresh repair
/// on the interrupted filesystem (an automatic retry), overwrites the record with `done` and
/// leaves the original mount point unmounted with no record that says so.
#[test]
fn a_device_alias_does_not_bypass_an_interrupted_repair() {
    if !require_root("a_device_alias_does_not_bypass_an_interrupted_repair") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-alias");
    let fx = unclean_ext4(&dir, "al");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "repair:crash")],
    );
    assert_eq!(code, 8);
    assert_eq!(fx.record_phase().as_deref(), Some("repair-started"));
    let alias = dir.join("disk-by-alias");
    std::os::unix::fs::symlink(fx.lo.dev(), &alias).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), alias.as_os_str()]);
    let t = &doc["targets"][0];
    let phase = fx.record_phase();
    let reran = !step(t, "repair").is_empty();
    fx.forget_record();
    assert!(
        !reran,
        "the interrupted repair was run again automatically:\n{doc:#}"
    );
    assert_eq!(code, 4, "held for a human\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "held", "{doc:#}");
    assert_eq!(
        phase.as_deref(),
        Some("held"),
        "the record of the interrupted run is kept"
    );
}

/// Finding 2: restore mounts on the recorded mount point path with mount(2), which follows
/// symlinks: a mount point directory replaced by a symlink while the filesystem is held (or
/// between unmount and restore) gets the filesystem mounted over the symlink's target (here a
/// directory standing for /etc), and the run still says "repaired, back in service", exit 1.
#[test]
fn restore_never_follows_a_symlink_that_replaced_the_mount_point() {
    if !require_root("restore_never_follows_a_symlink_that_replaced_the_mount_point") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-symlink");
    let fx = unclean_ext4(&dir, "sy");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    assert_eq!(code, 4, "held");
    assert!(!mounted_at(&fx.mnt));
    // The record names the directory under the mount point (taken at plan time).
    let record: Value = serde_json::from_slice(&fs::read(fx.record_path()).unwrap()).unwrap();
    let under = fs::metadata(&fx.mnt).unwrap();
    assert_eq!(
        record["mounts"][0]["directory"]["ino"].as_u64(),
        Some(under.ino()),
        "{record:#}"
    );
    let elsewhere = dir.mkdir("etc-standin");
    fs::write(elsewhere.join("passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::remove_dir(&fx.mnt).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &fx.mnt).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    let wrong = mounted_at(&elsewhere);
    if wrong {
        run("umount", &[elsewhere.as_os_str()]);
    }
    let phase = fx.record_phase();
    fs::remove_file(&fx.mnt).unwrap();
    fs::create_dir(&fx.mnt).unwrap();
    fx.forget_record();
    assert_eq!(phase.as_deref(), Some("held"), "kept for a human");
    assert!(
        doc["targets"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("symlink"),
        "{doc:#}"
    );
    assert!(
        !wrong,
        "mounted over the symlink's target {}:\n{doc:#}",
        elsewhere.display()
    );
    assert_eq!(
        code & 8,
        8,
        "a restore that differs is exit 8\n{doc:#}\n{stderr}"
    );
}

/// Finding 2, the same with a directory: the mount point removed and made again (another
/// inode) while the filesystem is held is not the directory that was unmounted: refused, the
/// record held, nothing mounted.
#[test]
fn restore_never_mounts_on_another_directory_put_in_place_of_the_mount_point() {
    if !require_root("restore_never_mounts_on_another_directory_put_in_place_of_the_mount_point") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-newdir");
    let fx = unclean_ext4(&dir, "nd");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    assert_eq!(code, 4, "held");
    // Made before the old one goes, so it cannot reuse its inode.
    let other = dir.mkdir("nd-other");
    fs::remove_dir(&fx.mnt).unwrap();
    fs::rename(&other, &fx.mnt).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    let mounted = mounted_at(&fx.mnt);
    if mounted {
        run("umount", &[fx.mnt.as_os_str()]);
    }
    let phase = fx.record_phase();
    fx.forget_record();
    assert!(!mounted, "mounted on the new directory:\n{doc:#}");
    assert_eq!(code & 8, 8, "{doc:#}\n{stderr}");
    assert_eq!(phase.as_deref(), Some("held"), "kept for a human");
    assert!(
        doc["targets"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("another directory"),
        "{doc:#}"
    );
}

/// Finding 3: `--dry-run` ("print the plan and change nothing") on a device with an interrupted
/// record really resumes it: it remounts the filesystem and rewrites the record.
#[test]
fn dry_run_never_resumes_an_interrupted_record() {
    if !require_root("dry_run_never_resumes_an_interrupted_record") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-dry");
    let fx = unclean_ext4(&dir, "dr");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "check:crash")],
    );
    assert_eq!(code, 8);
    assert_eq!(fx.record_phase().as_deref(), Some("fenced"));
    assert!(!mounted_at(&fx.mnt));
    let (_, doc, _) = repair(&dir, &[OsStr::new("--dry-run"), fx.lo.dev().as_os_str()]);
    let mounted = mounted_at(&fx.mnt);
    let phase = fx.record_phase();
    if !mounted {
        // Put it back the way the tool would (a real run resumes at RESTORE).
        repair(&dir, &[OsStr::new("--yes"), fx.lo.dev().as_os_str()]);
    }
    fx.forget_record();
    assert!(!mounted, "--dry-run mounted the filesystem:\n{doc:#}");
    assert_eq!(
        phase.as_deref(),
        Some("fenced"),
        "--dry-run rewrote the record"
    );
}

/// Finding 4: an interrupted repair that an admin finished by hand (e2fsck -fy, mount) is
/// reported "HELD UNMOUNTED ... left unmounted" although it is mounted, and the documented way
/// out, `snapguard repair --resume DEVICE`, fails with exit 8 and an empty message: the record
/// can only be deleted by hand.
#[test]
fn a_held_filesystem_mounted_by_hand_can_be_resumed() {
    if !require_root("a_held_filesystem_mounted_by_hand_can_be_resumed") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-byhand");
    let fx = unclean_ext4(&dir, "bh");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "repair:crash")],
    );
    assert_eq!(code, 8);
    // The admin's manual repair and mount.
    run_any("e2fsck", &[OsStr::new("-fy"), fx.lo.dev().as_os_str()]);
    let _by_hand = Mount::new(fx.lo.dev(), &fx.mnt, Some(EXT4_OPTS));
    // A run without --resume, and --status, say it is mounted again and what to do.
    let (code, doc, _) = repair(&dir, &[OsStr::new("--yes"), fx.lo.dev().as_os_str()]);
    let said = doc["targets"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let status = common::snapguard()
        .args(["repair", "--status", "--json"])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
    let entry = status["records"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|e| e["device"] == fx.lo.dev().display().to_string())
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(code, 4, "still held until --resume\n{doc:#}");
    assert!(
        said.contains("mounted again") && said.contains("--resume"),
        "{said}"
    );
    assert_eq!(
        entry["mounted_now"][0],
        fx.mnt.display().to_string(),
        "{status:#}"
    );
    assert!(
        entry["hint"].as_str().unwrap_or("").contains("--resume"),
        "{status:#}"
    );
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    let t = &doc["targets"][0];
    let phase = fx.record_phase();
    fx.forget_record();
    assert!(
        !t["message"].as_str().unwrap_or("").is_empty(),
        "a reason is given\n{doc:#}"
    );
    assert!(
        code == 0 || code == 1,
        "--resume of a filesystem that is clean and mounted as recorded ends the hold\n{doc:#}\n{stderr}"
    );
    assert!(
        matches!(phase.as_deref(), Some("done" | "rolled-back")),
        "record final, got {phase:?}"
    );
}

/// Finding 5: the record is keyed by device number only and carries no filesystem identity.
/// After an interrupted run, the device gets a different filesystem (a replaced disk, a loop
/// number reused by another image, an admin's mkfs); the next `repair DEVICE` resumes the old
/// record and mounts the new, unrelated filesystem on the old mount point with the old options.
#[test]
fn a_record_is_never_resumed_onto_a_different_filesystem() {
    if !require_root("a_record_is_never_resumed_onto_a_different_filesystem") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-reuse");
    let fx = unclean_ext4(&dir, "ru");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "check:crash")],
    );
    assert_eq!(code, 8);
    assert_eq!(fx.record_phase().as_deref(), Some("fenced"));
    // Another filesystem on the same device number.
    run(
        "mkfs.ext4",
        &[
            OsStr::new("-q"),
            OsStr::new("-F"),
            OsStr::new("-L"),
            OsStr::new("other"),
            fx.lo.dev().as_os_str(),
        ],
    );
    let (code, doc, _) = repair(&dir, &[OsStr::new("--yes"), fx.lo.dev().as_os_str()]);
    let mounted = mounted_at(&fx.mnt);
    if mounted {
        run("umount", &[fx.mnt.as_os_str()]);
    }
    let phase = fx.record_phase();
    let (discard, _, _) = repair(
        &dir,
        &[OsStr::new("--discard-record"), fx.lo.dev().as_os_str()],
    );
    let left = fx.record_path().exists();
    fx.forget_record();
    assert!(
        !mounted,
        "a different filesystem was mounted on the recorded mount point:\n{doc:#}"
    );
    assert_eq!(code, 8, "refused\n{doc:#}");
    let message = doc["targets"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("UUID") && message.contains("--discard-record"),
        "{message}"
    );
    assert_eq!(
        phase.as_deref(),
        Some("fenced"),
        "the record is left as it was"
    );
    assert_eq!(discard, 0, "--discard-record forgets it");
    assert!(!left, "the record file is gone");
}

/// Finding 6: `--backup-dir` on the filesystem being repaired is refused only after the unmount:
/// the run unmounts, creates the directory on the parent filesystem inside the empty mount point
/// (hidden again once it is remounted), and only then refuses and rolls back. The plan even
/// prints the target's own free space as the backup space.
#[test]
fn a_backup_dir_on_the_target_is_refused_before_anything_changes() {
    if !require_root("a_backup_dir_on_the_target_is_refused_before_anything_changes") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-backupdir");
    let fx = unclean_ext4(&dir, "bd");
    let inside = fx.mnt.join("bk");
    let out = common::snapguard()
        .args(["repair", "--json", "--trust-fence", "--yes", "--backup-dir"])
        .arg(&inside)
        .arg(&fx.mnt)
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let t = &doc["targets"][0];
    let unmounted = !step(t, "unmount").is_empty();
    assert!(mounted_at(&fx.mnt), "rolled back at least");
    // What is under the mount point on the parent filesystem?
    let shadow = dir.mkdir("shadow");
    let parent = Mount::bind(&dir.path(), &shadow);
    let left = shadow.join("bd").join("bk").exists();
    drop(parent);
    fx.forget_record();
    assert!(!unmounted, "refused only after unmounting:\n{doc:#}");
    assert!(
        !left,
        "a directory was created under the mount point on the parent fs"
    );
    assert_eq!(out.status.code(), Some(8));
}

/// Finding 7 (fixed): `repair --status` spelled the phase from Rust's Debug name
/// (`rolledback`, `repairstarted`), not as the record file and the docs spell it
/// (`rolled-back`, `repair-started`): scripts matching the record's words missed them.
#[test]
fn status_spells_the_phase_as_the_record_does() {
    let dir = TestDir::new("rattack-status");
    let run_dir = dir.join("run/snapguard");
    fs::create_dir_all(&run_dir).unwrap();
    let record = serde_json::json!({
        "version": 1, "pid": 999_999, "start_time": 1, "device": "/dev/loop99",
        "major": 7, "minor": 99, "kind": "ext", "fstype": "ext4", "mounts": [],
        "stopped_units": [], "phase": "repair-started", "steps": [], "updated": 0
    });
    fs::write(run_dir.join("repair-7-99.json"), record.to_string()).unwrap();
    let out = common::snapguard()
        .arg("--root")
        .arg(dir.path())
        .args(["repair", "--status", "--json"])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["records"][0]["phase"], "repair-started", "{doc:#}");
    assert_eq!(out.status.code(), Some(4), "a non-final record: exit 4");
}

/// The XFS log replay mounts the filesystem on a private directory under /run/snapguard: a
/// crash while it is mounted must not leave it mounted for good. The record names the mount
/// before it is made; the next run unmounts it, then rolls back as for any crash before a write.
#[test]
fn a_crash_during_the_log_replay_mount_is_unmounted_by_the_next_run() {
    if !require_root("a_crash_during_the_log_replay_mount_is_unmounted_by_the_next_run") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack-replay");
    let img = dir.join("x.img");
    fs::File::create(&img).unwrap().set_len(320 * MIB).unwrap();
    run("mkfs.xfs", &[OsStr::new("-q"), img.as_os_str()]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("x");
    let m = Mount::new(lo.dev(), &mnt, Some("noatime"));
    let fx = Fixture {
        lo,
        mnt,
        _mount: None,
    };
    fx.forget_record();
    // A dirty log, on an unmounted device: the repair replays it by mount + umount.
    fs::write(fx.mnt.join("late"), b"written before the shutdown").unwrap();
    run(
        "xfs_io",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("shutdown -f"),
            fx.mnt.as_os_str(),
        ],
    );
    m.unmount();
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.lo.dev().as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "replay-mounted:crash")],
    );
    let record: Value = fs::read(fx.record_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let scratch = record["replay_mount"].as_str().map(PathBuf::from);
    let left_mounted = scratch.as_deref().is_some_and(mounted_at);
    let (code2, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.lo.dev().as_os_str()]);
    let still = scratch.as_deref().is_some_and(mounted_at);
    if still {
        if let Some(s) = &scratch {
            run("umount", &[s.as_os_str()]);
        }
    }
    let phase = fx.record_phase();
    let replay_mount_kept = fs::read(fx.record_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| !v["replay_mount"].is_null());
    fx.forget_record();
    assert_eq!(code, 8, "the crash");
    assert!(
        left_mounted,
        "the record names the replay mount, mounted at the crash: {record:#}"
    );
    assert!(
        !still,
        "the next run left the replay mount mounted:\n{doc:#}\n{stderr}"
    );
    let t = &doc["targets"][0];
    assert!(
        step(t, "replay").iter().any(
            |s| s["result"] == "ok" && s["detail"].as_str().unwrap_or("").contains("unmounted")
        ),
        "{doc:#}"
    );
    assert_eq!(code2, 8, "rolled back, run again\n{doc:#}");
    assert_eq!(phase.as_deref(), Some("rolled-back"), "{doc:#}");
    assert!(!replay_mount_kept, "the record no longer names it");
    assert!(
        scratch.is_some_and(|s| !s.exists()),
        "the private directory is removed"
    );
}
