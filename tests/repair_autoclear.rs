//! `snapguard repair` of a filesystem mounted with `mount -o loop IMG M` (privileged): the loop
//! device `mount` sets up has the autoclear flag, so the kernel would detach it at the umount.
//! The repair clears the flag before the umount and sets it again once the filesystem is
//! mounted back, on success, rollback and `--resume`: the device survives the fence, check and
//! hold, and after the repair a plain `umount M` still detaches it.

mod common;

use common::fixtures;
use common::repair::{
    EXT4_OPTS, MIB, RUN_LIMIT, hashes, make_unclean, mount_line, one_at_a_time, repair, repair_env,
    scan_status, step, write_files,
};
use common::{TestDir, require_root, run, run_any, run_snapguard, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// An unclean ext4 image mounted with `mount -o loop,OPTS IMG M`: files written, unmounted, a
/// preenable inconsistency (a wrong link count) and state 0 set with debugfs on the image,
/// mounted again. Drop unmounts it and detaches any loop device still backed by the image.
struct LoopMounted {
    img: PathBuf,
    mnt: PathBuf,
    files: BTreeMap<String, String>,
}

impl LoopMounted {
    fn new(dir: &TestDir, name: &str) -> Self {
        let img = fixtures::mkfs(
            dir,
            &format!("{name}.img"),
            fixtures::Kind::Ext4,
            4096,
            &[],
            64 * MIB,
        );
        let img = fs::canonicalize(&img).unwrap();
        let mnt = dir.mkdir(name);
        let mut me = LoopMounted {
            img,
            mnt,
            files: BTreeMap::new(),
        };
        me.mount(EXT4_OPTS);
        write_files(&me.mnt);
        me.files = hashes(&me.mnt);
        let ino = fs::metadata(me.mnt.join("file3")).unwrap().ino();
        let first = me.loop_name();
        run("umount", &[me.mnt.as_os_str()]);
        wait_until("the autoclear loop device detaches at umount", || {
            backing(&first).as_deref() != Some(me.img.as_path())
        });
        make_unclean(&me.img, ino);
        me.mount(EXT4_OPTS);
        // A record left by an earlier user of this loop number is not this filesystem's.
        let _ = fs::remove_file(me.record_path());
        me
    }

    /// `mount -o loop,OPTS IMG M`.
    fn mount(&self, opts: &str) {
        run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new(&format!("loop,{opts}")),
                self.img.as_os_str(),
                self.mnt.as_os_str(),
            ],
        );
    }

    /// `loopN` of the mount at M (its mountinfo source).
    fn loop_name(&self) -> String {
        let (_, _, _, source) = mount_line(&self.mnt).expect("M is mounted");
        let name = Path::new(&source)
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a device source")
            .to_string();
        assert!(name.starts_with("loop"), "mounted from {source}");
        assert_eq!(
            backing(&name).as_deref(),
            Some(self.img.as_path()),
            "{name} is backed by our image"
        );
        name
    }

    /// `/run/snapguard/repair-MAJ-MIN.json` of the loop device M is mounted from.
    fn record_path(&self) -> PathBuf {
        let devt = fs::read_to_string(format!("/sys/block/{}/dev", self.loop_name())).unwrap();
        let (major, minor) = devt.trim().split_once(':').unwrap();
        PathBuf::from(format!("/run/snapguard/repair-{major}-{minor}.json"))
    }
}

impl Drop for LoopMounted {
    fn drop(&mut self) {
        for _ in 0..10 {
            if mount_line(&self.mnt).is_none() {
                break;
            }
            run_any("umount", &[self.mnt.as_os_str()]);
        }
        // Detach only devices whose backing file is our image.
        let Ok(entries) = fs::read_dir("/sys/block") else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("loop") && backing(&name).as_deref() == Some(self.img.as_path()) {
                run_any("losetup", &["-d", &format!("/dev/{name}")]);
            }
        }
    }
}

/// The backing file of `loopN`, while it is bound.
fn backing(name: &str) -> Option<PathBuf> {
    let raw = fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(raw.trim_end_matches('\n')))
}

/// `/sys/block/loopN/loop/autoclear` (`None` once the device is detached).
fn autoclear(name: &str) -> Option<String> {
    fs::read_to_string(format!("/sys/block/{name}/loop/autoclear"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// After the repair: `umount M` alone detaches the loop device (the flag works again).
fn umount_detaches(fx: &LoopMounted, name: &str) {
    run("umount", &[fx.mnt.as_os_str()]);
    wait_until(
        "the loop device detaches at umount after the repair",
        || backing(name).as_deref() != Some(fx.img.as_path()),
    );
}

fn record(path: &Path) -> Option<Value> {
    fs::read(path)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("a JSON record"))
}

#[test]
fn a_mount_o_loop_ext4_is_repaired_and_its_loop_device_autoclears_again() {
    if !require_root("a_mount_o_loop_ext4_is_repaired_and_its_loop_device_autoclears_again") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear");
    let fx = LoopMounted::new(&dir, "ac");
    let name = fx.loop_name();
    assert_eq!(
        autoclear(&name).as_deref(),
        Some("1"),
        "mount -o loop sets it"
    );
    let before = mount_line(&fx.mnt).unwrap();
    let (status, state) = scan_status(&fx.mnt);
    assert_ne!(
        status, "ok",
        "the fixture must be unclean (state {state:?})"
    );
    // What the scan tells the admin to run for exactly this mount.
    let scan = run_snapguard(
        [OsStr::new("scan"), OsStr::new("--json"), fx.mnt.as_os_str()],
        RUN_LIMIT,
    )
    .json();
    assert_eq!(
        common::expect_finding(&scan["targets"][0], "ext.not-clean")["remedy"],
        format!("snapguard repair {}", fx.mnt.display()),
        "{scan:#}"
    );

    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.mnt.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(code, 1, "a successful repair exits 1:\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "repaired", "{doc:#}");
    assert_eq!(mount_line(&fx.mnt).unwrap(), before, "mounted as before");
    assert_eq!(
        fx.loop_name(),
        name,
        "mounted again from the same loop device"
    );
    assert_eq!(hashes(&fx.mnt), fx.files, "every file has the same SHA-256");
    assert_eq!(
        autoclear(&name).as_deref(),
        Some("1"),
        "autoclear set again after the mount"
    );
    let steps = step(t, "autoclear");
    assert_eq!(steps.len(), 2, "cleared, then set again: {doc:#}");
    assert!(steps.iter().all(|s| s["result"] == "ok"), "{doc:#}");
    let (status, state) = scan_status(&fx.mnt);
    assert_eq!(status, "ok", "clean after the repair (state {state:?})");
    if let Some(r) = record(&fx.record_path()) {
        assert_eq!(r["phase"], "done", "{r:#}");
    }
    umount_detaches(&fx, &name);
}

#[test]
fn the_dry_run_plan_says_autoclear_is_cleared_while_unmounted() {
    if !require_root("the_dry_run_plan_says_autoclear_is_cleared_while_unmounted") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-plan");
    let fx = LoopMounted::new(&dir, "acp");
    let name = fx.loop_name();
    let before = mount_line(&fx.mnt).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--dry-run"), fx.mnt.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(code, 4, "a plan not carried out:\n{doc:#}\n{stderr}");
    let planned = step(t, "autoclear");
    assert_eq!(planned.len(), 1, "{doc:#}");
    let detail = planned[0]["detail"].as_str().unwrap();
    assert_eq!(planned[0]["result"], "planned");
    assert!(
        detail.contains(&format!(
            "loop device /dev/{name}: autoclear cleared while unmounted, set again after the mount"
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&fx.img.display().to_string()),
        "names the image: {detail}"
    );
    // The step comes before the unmount.
    let order: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let at = |s: &str| order.iter().position(|x| *x == s).unwrap();
    assert!(at("autoclear") < at("unmount"), "{order:?}");
    assert_eq!(mount_line(&fx.mnt).unwrap(), before, "nothing changed");
    assert_eq!(autoclear(&name).as_deref(), Some("1"), "nothing changed");
}

#[test]
fn a_failed_step_rolls_back_on_the_same_loop_device_with_autoclear_set_again() {
    if !require_root("a_failed_step_rolls_back_on_the_same_loop_device_with_autoclear_set_again") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-rollback");
    let fx = LoopMounted::new(&dir, "acr");
    let name = fx.loop_name();
    let before = mount_line(&fx.mnt).unwrap();
    // The flag step itself, the umount right after the flag was cleared (nothing unmounted),
    // and the checker after the umount and the fence.
    for point in ["autoclear", "unmount", "check"] {
        let (code, doc, stderr) = repair_env(
            &dir,
            &[OsStr::new("--yes"), fx.mnt.as_os_str()],
            &[("SNAPGUARD_FAILPOINT", point)],
        );
        let t = &doc["targets"][0];
        assert_eq!(code, 8, "{point}: a failed step:\n{doc:#}\n{stderr}");
        assert_eq!(t["outcome"], "failed", "{point}");
        if point == "check" {
            assert!(
                step(t, "fence").iter().any(|s| s["result"] == "ok"),
                "the device survived the umount and was fenced: {doc:#}"
            );
        }
        assert!(
            step(t, "rollback").iter().any(|s| s["result"] == "ok"),
            "{point}: {doc:#}"
        );
        assert_eq!(
            mount_line(&fx.mnt).unwrap(),
            before,
            "{point}: mounted as before"
        );
        assert_eq!(fx.loop_name(), name, "{point}: on the same loop device");
        assert_eq!(
            autoclear(&name).as_deref(),
            Some("1"),
            "{point}: the rollback leaves autoclear set: {doc:#}"
        );
        let r = record(&fx.record_path()).expect("the record of the rollback");
        assert_eq!(r["phase"], "rolled-back", "{point}: {r:#}");
        assert_eq!(r["autoclear"], false, "{point}: {r:#}");
    }
    assert_eq!(hashes(&fx.mnt), fx.files);
    umount_detaches(&fx, &name);
}

#[test]
fn a_held_repair_keeps_the_loop_device_until_resume_mounts_it_and_sets_autoclear() {
    if !require_root(
        "a_held_repair_keeps_the_loop_device_until_resume_mounts_it_and_sets_autoclear",
    ) {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-hold");
    let fx = LoopMounted::new(&dir, "ach");
    let name = fx.loop_name();
    let record_path = fx.record_path();
    let (code, doc, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    let t = &doc["targets"][0];
    assert_eq!(code, 4, "held:\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "held");
    assert!(mount_line(&fx.mnt).is_none(), "left unmounted");
    assert_eq!(
        backing(&name).as_deref(),
        Some(fx.img.as_path()),
        "the loop device stays attached while held"
    );
    assert_eq!(
        autoclear(&name).as_deref(),
        Some("0"),
        "autoclear stays cleared while unmounted"
    );
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("/dev/{name}")) && message.contains("autoclear"),
        "the hold says the device stays attached: {message}"
    );
    let r = record(&record_path).expect("the record of the hold");
    assert_eq!(r["phase"], "held");
    assert_eq!(r["autoclear"], true, "{r:#}");

    let dev = PathBuf::from(format!("/dev/{name}"));
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), dev.as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert!(mount_line(&fx.mnt).is_some(), "mounted again by --resume");
    assert_eq!(fx.loop_name(), name);
    assert_eq!(
        autoclear(&name).as_deref(),
        Some("1"),
        "--resume sets autoclear again after the mount"
    );
    umount_detaches(&fx, &name);
}

#[test]
fn a_crash_while_unmounted_leaves_the_device_attached_and_the_next_run_sets_autoclear_again() {
    if !require_root(
        "a_crash_while_unmounted_leaves_the_device_attached_and_the_next_run_sets_autoclear_again",
    ) {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-crash");
    let fx = LoopMounted::new(&dir, "acc");
    let name = fx.loop_name();
    let record_path = fx.record_path();
    let before = mount_line(&fx.mnt).unwrap();
    // Killed at the start of the check: unmounted and fenced, nothing written.
    let (code, _, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "check:crash")],
    );
    assert_eq!(code, 8, "{stderr}");
    assert!(mount_line(&fx.mnt).is_none(), "left unmounted by the crash");
    assert_eq!(
        backing(&name).as_deref(),
        Some(fx.img.as_path()),
        "the loop device outlived the umount and the crash"
    );
    assert_eq!(autoclear(&name).as_deref(), Some("0"));
    let r = record(&record_path).expect("the record the crash left");
    assert_eq!(r["phase"], "fenced", "{r:#}");
    assert_eq!(r["autoclear"], true, "the record says to set it again");

    // The next run reads the record: mounts it back and sets the flag again.
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.mnt.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(code, 8, "rolled back, run again:\n{doc:#}\n{stderr}");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("its mounts are back"),
        "{doc:#}"
    );
    assert_eq!(mount_line(&fx.mnt).unwrap(), before, "mounted as before");
    assert_eq!(fx.loop_name(), name);
    assert_eq!(autoclear(&name).as_deref(), Some("1"), "{doc:#}");
    let r = record(&record_path).expect("the closed record");
    assert_eq!(r["phase"], "rolled-back", "{r:#}");
    assert_eq!(r["autoclear"], false, "{r:#}");
    assert_eq!(hashes(&fx.mnt), fx.files);
    umount_detaches(&fx, &name);
}

/// Detaches, on drop, every loop device backed by `image` (only ever our own file).
struct DetachOnDrop(PathBuf);

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        let Ok(entries) = fs::read_dir("/sys/block") else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("loop") && backing(&name).as_deref() == Some(self.0.as_path()) {
                run_any("losetup", &["-d", &format!("/dev/{name}")]);
            }
        }
    }
}

#[test]
fn a_hold_whose_loop_number_now_reads_another_image_is_refused_by_resume() {
    if !require_root("a_hold_whose_loop_number_now_reads_another_image_is_refused_by_resume") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-reused");
    let fx = LoopMounted::new(&dir, "acu");
    let name = fx.loop_name();
    let dev = PathBuf::from(format!("/dev/{name}"));
    let (code, doc, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    assert_eq!(code, 4, "held:\n{doc:#}\n{stderr}");
    assert_eq!(backing(&name).as_deref(), Some(fx.img.as_path()));
    // The admin detaches the held device (its flag is cleared: it stays until then) and the
    // same loop number is taken for another image: a copy of it, so the same UUID.
    let copy = dir.join("copy.img");
    fs::copy(&fx.img, &copy).unwrap();
    let copy = fs::canonicalize(&copy).unwrap();
    let _copy_guard = DetachOnDrop(copy.clone());
    run("losetup", &[OsStr::new("-d"), dev.as_os_str()]);
    wait_until("the held loop device detaches", || {
        backing(&name).as_deref() != Some(fx.img.as_path())
    });
    run("losetup", &[dev.as_os_str(), copy.as_os_str()]);
    assert_eq!(backing(&name).as_deref(), Some(copy.as_path()));
    assert_eq!(autoclear(&name).as_deref(), Some("0"));

    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), dev.as_os_str()]);
    let t = &doc["targets"][0];
    assert!(
        mount_line(&fx.mnt).is_none(),
        "another image was mounted on M:\n{doc:#}\n{stderr}"
    );
    assert_eq!(
        autoclear(&name).as_deref(),
        Some("0"),
        "autoclear set on a device the record did not clear it on:\n{doc:#}"
    );
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused", "{doc:#}");
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains(&copy.display().to_string()) && message.contains("--discard-record"),
        "names the image it reads now and the way out: {message}"
    );
    // Forgetting the record must not tell the admin to detach someone else's device.
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--discard-record"), dev.as_os_str()]);
    let message = doc["targets"][0]["message"].as_str().unwrap();
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert!(
        !message.contains("losetup -d"),
        "the loop device reads another image now: {message}"
    );
    assert!(
        message.contains(&copy.display().to_string()),
        "says what it reads now: {message}"
    );
    assert_eq!(backing(&name).as_deref(), Some(copy.as_path()));
    run("losetup", &[OsStr::new("-d"), dev.as_os_str()]);
}

#[test]
fn a_read_only_loop_device_is_refused_before_anything_is_unmounted() {
    if !require_root("a_read_only_loop_device_is_refused_before_anything_is_unmounted") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-ro");
    let fx = LoopMounted::new(&dir, "acro");
    // `mount -o loop,ro` sets up a read-only loop device: no repair can write it.
    let first = fx.loop_name();
    run("umount", &[fx.mnt.as_os_str()]);
    wait_until("the autoclear loop device detaches at umount", || {
        backing(&first).as_deref() != Some(fx.img.as_path())
    });
    fx.mount(&format!("ro,{EXT4_OPTS}"));
    let name = fx.loop_name();
    assert_eq!(
        fs::read_to_string(format!("/sys/block/{name}/ro"))
            .unwrap()
            .trim(),
        "1"
    );
    let _ = fs::remove_file(fx.record_path());
    let before = mount_line(&fx.mnt).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.mnt.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(
        mount_line(&fx.mnt).as_ref(),
        Some(&before),
        "left mounted as it was:\n{doc:#}\n{stderr}"
    );
    assert_eq!(autoclear(&name).as_deref(), Some("1"), "{doc:#}");
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused", "{doc:#}");
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains("read-only") && message.contains(&format!("/dev/{name}")),
        "{message}"
    );
    assert!(step(t, "unmount").is_empty(), "{doc:#}");
    assert!(
        record(&fx.record_path()).is_none(),
        "no record: nothing changed"
    );
    umount_detaches(&fx, &name);
}

/// Unmounts the mount points on drop (a test that failed half-way leaves none behind).
struct UnmountOnDrop(Vec<PathBuf>);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        for m in &self.0 {
            for _ in 0..3 {
                if mount_line(m).is_none() {
                    break;
                }
                run_any("umount", &[m.as_os_str()]);
            }
        }
    }
}

/// One image, two partitions, each an unclean ext4, both mounted from the same loop disk
/// whose autoclear flag is set; both then held by a repair (the first one clears the flag).
fn two_held_partitions(dir: &TestDir) -> (common::LoopDevice, [PathBuf; 2], UnmountOnDrop) {
    let img = dir.join("parts.img");
    fs::File::create(&img).unwrap().set_len(160 * MIB).unwrap();
    let mut sfdisk = std::process::Command::new("sfdisk")
        .args([OsStr::new("-q"), img.as_os_str()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    use std::io::Write as _;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2048, size=131072, type=83\nstart=133120, type=83\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let lo = common::LoopDevice::attach_partitioned(&img);
    let parts = [lo.partition(1), lo.partition(2)];
    let mnts = [dir.mkdir("p1"), dir.mkdir("p2")];
    let unmount = UnmountOnDrop(mnts.to_vec());
    for (part, mnt) in parts.iter().zip(&mnts) {
        run(
            "mkfs.ext4",
            &[OsStr::new("-q"), OsStr::new("-F"), part.as_os_str()],
        );
        run(
            "debugfs",
            &[
                OsStr::new("-w"),
                OsStr::new("-R"),
                OsStr::new("ssv state 0"),
                part.as_os_str(),
            ],
        );
        run("mount", &[part.as_os_str(), mnt.as_os_str()]);
        let devt = fs::metadata(part).unwrap().rdev();
        let _ = fs::remove_file(format!(
            "/run/snapguard/repair-{}-{}.json",
            libc::major(devt),
            libc::minor(devt)
        ));
    }
    snapguard::sys::loopdev::set_autoclear(lo.dev(), true).unwrap();
    assert_eq!(autoclear(lo.name()).as_deref(), Some("1"));

    for mnt in &mnts {
        let (code, doc, stderr) = repair_env(
            dir,
            &[OsStr::new("--yes"), mnt.as_os_str()],
            &[("SNAPGUARD_FAILPOINT", "verify")],
        );
        assert_eq!(code, 4, "held:\n{doc:#}\n{stderr}");
    }
    assert_eq!(autoclear(lo.name()).as_deref(), Some("0"));
    (lo, parts, unmount)
}

#[test]
fn two_holds_on_one_autoclear_loop_disk_keep_it_attached_until_both_are_mounted() {
    if !require_root("two_holds_on_one_autoclear_loop_disk_keep_it_attached_until_both_are_mounted")
    {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-parts");
    let (lo, parts, unmount) = two_held_partitions(&dir);
    let mnts = unmount.0.clone();
    // The first hold is closed: its filesystem is mounted again, but the second one is still
    // held unmounted on the same disk, so the flag stays cleared.
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), parts[0].as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert!(mount_line(&mnts[0]).is_some());
    assert_eq!(
        autoclear(lo.name()).as_deref(),
        Some("0"),
        "autoclear set while the other partition is held unmounted:\n{doc:#}"
    );
    // The admin's umount of the first one must not take the held one's device away.
    run("umount", &[mnts[0].as_os_str()]);
    assert_eq!(
        backing(lo.name()).as_deref(),
        Some(dir.join("parts.img").as_path())
    );
    run("mount", &[parts[0].as_os_str(), mnts[0].as_os_str()]);
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), parts[1].as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert!(mount_line(&mnts[1]).is_some());
    assert_eq!(
        autoclear(lo.name()).as_deref(),
        Some("1"),
        "the last hold closed sets it again:\n{doc:#}"
    );
}

#[test]
fn the_same_image_behind_a_second_loop_device_is_refused_by_plan_and_resume() {
    if !require_root("the_same_image_behind_a_second_loop_device_is_refused_by_plan_and_resume") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-twice");
    let fx = LoopMounted::new(&dir, "act");
    let name = fx.loop_name();
    let dev = PathBuf::from(format!("/dev/{name}"));
    let other_mnt = dir.mkdir("other");
    let _unmount = UnmountOnDrop(vec![other_mnt.clone()]);
    // The same image attached a second time (`losetup -f IMG`) and mounted read-only there:
    // a repair through the first device would write under that mount.
    let second = |what: &str| {
        let lo = common::LoopDevice::attach(&fx.img);
        run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new("ro"),
                lo.dev().as_os_str(),
                other_mnt.as_os_str(),
            ],
        );
        assert!(mount_line(&other_mnt).is_some(), "{what}");
        lo
    };
    let lo = second("before the repair");
    let before = mount_line(&fx.mnt).unwrap();
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.mnt.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(
        mount_line(&fx.mnt).as_ref(),
        Some(&before),
        "left mounted:\n{doc:#}\n{stderr}"
    );
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused", "{doc:#}");
    assert!(
        t["message"].as_str().unwrap().contains(lo.name()),
        "names the other loop device: {doc:#}"
    );
    run("umount", &[other_mnt.as_os_str()]);
    drop(lo);

    // Held, then the image is attached and mounted a second time: --resume must not verify
    // and mount the first device under it.
    let (code, doc, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.mnt.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    assert_eq!(code, 4, "held:\n{doc:#}\n{stderr}");
    let lo = second("during the hold");
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), dev.as_os_str()]);
    let t = &doc["targets"][0];
    assert!(
        mount_line(&fx.mnt).is_none(),
        "mounted while the image is mounted through {}:\n{doc:#}\n{stderr}",
        lo.name()
    );
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused", "{doc:#}");
    assert_eq!(autoclear(&name).as_deref(), Some("0"));
    run("umount", &[other_mnt.as_os_str()]);
    drop(lo);
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), dev.as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert_eq!(autoclear(&name).as_deref(), Some("1"));
    umount_detaches(&fx, &name);
}

#[test]
fn discarding_one_of_two_holds_on_a_loop_disk_names_no_losetup_d() {
    if !require_root("discarding_one_of_two_holds_on_a_loop_disk_names_no_losetup_d") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-autoclear-parts-discard");
    let (lo, parts, _unmount) = two_held_partitions(&dir);
    let (code, doc, stderr) = repair(
        &dir,
        &[OsStr::new("--discard-record"), parts[0].as_os_str()],
    );
    let message = doc["targets"][0]["message"].as_str().unwrap();
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    // `losetup -d` of the disk now (nothing mounted) would take the held partition away.
    assert!(
        !message.contains("losetup -d"),
        "the other partition is still held on this disk: {message}"
    );
    assert!(
        message.contains(&parts[1].display().to_string()),
        "{message}"
    );
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), parts[1].as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert_eq!(autoclear(lo.name()).as_deref(), Some("1"));
}

/// A record of another device that had the same name (a loop partition's number is dynamic:
/// `/dev/loop1p1` of an earlier run was 259:0, today's is another number), unfinished or
/// finished, never stands in for the device that has the name now: `--resume` finds no hold of
/// it, `--discard-record` nothing to discard, and the other record stays (it is `--status`'s to
/// show). Found in a loaded CI run, where one test's stale hold made another test's `--resume`
/// of its own `/dev/loop1p2` refuse.
#[test]
fn a_record_of_another_device_with_the_same_name_is_not_this_device_s() {
    if !require_root("a_record_of_another_device_with_the_same_name_is_not_this_device_s") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-same-name");
    let img = fixtures::ext4(&dir, "fs.img", &[]);
    let lo = common::LoopDevice::attach(&img);
    // A device number nothing has: 259 is blkext, minors this high are not handed out here.
    let minor = 900_000 + std::process::id() % 90_000;
    let record = PathBuf::from(format!("/run/snapguard/repair-259-{minor}.json"));
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(record.clone());
    let write = |phase: &str| {
        let doc = serde_json::json!({
            "version": 1, "pid": 4_194_303, "start_time": 1,
            "device": lo.dev().display().to_string(), "major": 259, "minor": minor,
            "kind": "ext", "fstype": "ext4", "uuid": null, "mounts": [],
            "stopped_units": [], "phase": phase, "steps": [], "updated": 0
        });
        fs::create_dir_all("/run/snapguard").unwrap();
        fs::write(&record, serde_json::to_vec(&doc).unwrap()).unwrap();
    };

    write("held");
    let (code, _, stderr) = repair(&dir, &[OsStr::new("--resume"), lo.dev().as_os_str()]);
    assert_eq!(code, 16, "the stale hold is not this device's:\n{stderr}");
    assert!(stderr.contains("no held repair"), "{stderr}");
    assert!(record.exists(), "another device's record was touched");

    write("done");
    let (code, doc, stderr) = repair(
        &dir,
        &[OsStr::new("--discard-record"), lo.dev().as_os_str()],
    );
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    assert_eq!(doc["targets"][0]["outcome"], "nothing-to-do", "{doc:#}");
    assert!(record.exists(), "another device's record was discarded");
}
