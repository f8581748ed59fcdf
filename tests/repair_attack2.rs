//! A second hostile review of `snapguard repair` (repair.md §7 and §8), after
//! `repair_attack.rs`: a mount point path replaced between the plan and the unmount, relative
//! spellings, backup names that collide, the remedies the tool prints (pasted), `--resume`
//! without a held record, unreadable or orphaned state records, and the `[repair] never`
//! policy. Each test names the finding it demonstrates; each failed before its fix.
//!
//! Every run passes `--trust-fence` (this sandbox cannot read `/proc/1/ns/mnt`), and every test
//! that runs a repair takes the exclusive mount-namespace turn.

mod common;

use common::repair::{
    EXT4_OPTS, RUN_LIMIT, UncleanExt4, mount_line, one_at_a_time, repair, repair_env, step,
    unclean_ext4,
};
use common::{TestDir, require_root, run, run_any};
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Unmounts every mount on the given directories on drop (plain umount, repeated while the
/// directory is still a mount point: a test may leave two mounts stacked there).
struct Unmounter(Vec<PathBuf>);

impl Drop for Unmounter {
    fn drop(&mut self) {
        for dir in &self.0 {
            for _ in 0..4 {
                if mount_line(dir).is_none() {
                    break;
                }
                run_any("umount", &[dir.as_os_str()]);
            }
        }
    }
}

/// A child we started; killed and reaped on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes a file on drop (state records a test writes into the shared /run/snapguard).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn forget_record(fx: &UncleanExt4) {
    let _ = fs::remove_file(fx.record_path());
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finding 1: the unmount acts on the recorded mount point *path*. Replace the path between the
/// plan and the unmount (here while the prompt waits: rename the parent directory, which moves
/// the mount along, and mount someone's tmpfs at the old path) and repair unmounts that tmpfs —
/// its files are gone for good — then "rolls back" by mounting the ext4 a second time there.
#[test]
fn the_unmount_never_takes_away_a_mount_that_replaced_the_target_path() {
    if !require_root("the_unmount_never_takes_away_a_mount_that_replaced_the_target_path") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-swap");
    let mut fx = unclean_ext4(&dir, "fs");
    fx.mount.take().expect("mounted").unmount();
    let old = dir.join("p/mnt");
    let moved = dir.join("q/mnt");
    fs::create_dir_all(&old).unwrap();
    let _cleanup = Unmounter(vec![old.clone(), moved.clone()]);
    run(
        "mount",
        &[
            OsStr::new("-o"),
            OsStr::new(EXT4_OPTS),
            fx.lo.dev().as_os_str(),
            old.as_os_str(),
        ],
    );
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let out_path = dir.join("script.out");
    let line = format!(
        "{} repair --trust-fence --backup-dir {} {}",
        exe.display(),
        dir.join("backup").display(),
        old.display()
    );
    let child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn script");
    let mut child = Guarded(child);
    wait_for("the prompt", RUN_LIMIT, || {
        fs::read_to_string(&out_path).is_ok_and(|s| s.contains("Carry out"))
    });
    // The swap, while the admin reads the plan.
    fs::rename(dir.join("p"), dir.join("q")).unwrap();
    fs::create_dir_all(&old).unwrap();
    run(
        "mount",
        &[
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("tmpfs"),
            old.as_os_str(),
        ],
    );
    fs::write(old.join("precious"), b"someone else's data\n").unwrap();
    {
        let mut stdin = child.0.stdin.take().unwrap();
        stdin.write_all(b"y").unwrap();
    }
    let end = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "repair hung");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    let precious = fs::read(old.join("precious")).ok();
    let at_old = mount_line(&old).map(|l| l.3);
    let at_moved = mount_line(&moved).map(|l| l.3);
    forget_record(&fx);
    assert_eq!(
        precious.as_deref(),
        Some(&b"someone else's data\n"[..]),
        "the tmpfs now at the old path was unmounted, its files lost:\n{output}"
    );
    assert_eq!(
        at_old.as_deref(),
        Some("tmpfs"),
        "the tmpfs is still what is mounted at the old path:\n{output}"
    );
    assert_eq!(
        at_moved.as_deref(),
        Some(fx.lo.dev().to_str().unwrap()),
        "the ext4 stays where it went"
    );
    assert_eq!(status.code(), Some(8), "refused: exit 8\n{output}");
}

/// Finding 2: `repair` changes its working directory to `/` before it resolves TARGET and
/// `--backup-dir`: `cd /srv && snapguard repair data` looks for `/data` (another filesystem, or
/// a usage error), and a relative backup directory is created under `/`.
#[test]
fn relative_target_and_backup_dir_are_taken_from_the_working_directory() {
    if !require_root("relative_target_and_backup_dir_are_taken_from_the_working_directory") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-relative");
    let fx = unclean_ext4(&dir, "rel");
    let out = common::snapguard()
        .current_dir(dir.path())
        .args([
            "repair",
            "--json",
            "--trust-fence",
            "--dry-run",
            "--backup-dir",
            "relbackup",
            "rel",
        ])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    forget_record(&fx);
    assert_eq!(out.status.code(), Some(4), "planned\n{doc:#}\n{stderr}");
    let t = &doc["targets"][0];
    assert_eq!(t["device"], fx.lo.dev().to_str().unwrap(), "{doc:#}");
    let backup = step(t, "backup");
    let detail = backup
        .first()
        .map(|s| s["detail"].to_string())
        .unwrap_or_default();
    let want = dir.join("relbackup");
    assert!(
        detail.contains(want.to_str().unwrap()),
        "the backup goes to {} (got {detail})",
        want.display()
    );
}

/// A real e2fsck undo file of another filesystem, and a stand-in for an earlier metadata image.
fn earlier_backups(dir: &TestDir, backup: &Path, name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let other = common::fixtures::mkfs(
        dir,
        "other.img",
        common::fixtures::Kind::Ext4,
        4096,
        &[],
        16 * common::repair::MIB,
    );
    let undo = dir.join("other.e2undo");
    run_any(
        "e2fsck",
        &[
            OsStr::new("-fp"),
            OsStr::new("-z"),
            undo.as_os_str(),
            other.as_os_str(),
        ],
    );
    let undo_bytes = fs::read(&undo).expect("e2fsck wrote an undo file");
    fs::create_dir_all(backup).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut kept = Vec::new();
    for t in now..now + 90 {
        let image = backup.join(format!("{name}-ext4-{t}.qcow2"));
        let content = format!("the metadata image of an earlier repair at {t}\n").into_bytes();
        fs::write(&image, &content).unwrap();
        kept.push((image, content));
        let u = backup.join(format!("{name}-ext4-{t}.e2undo"));
        fs::write(&u, &undo_bytes).unwrap();
        kept.push((u, undo_bytes.clone()));
    }
    kept
}

/// Finding 3: backup and undo files are named DEVICE-FSTYPE-SECONDS. Two repairs of the same
/// device name in one second (a rerun right after a rollback, a loop number reused) collide:
/// e2image overwrites the earlier metadata image, and `e2fsck -z` refuses the earlier undo file
/// ("Wrong undo file", exit 8), so a perfectly repairable filesystem is held unmounted.
#[test]
fn a_repair_never_reuses_the_backup_names_of_an_earlier_one() {
    if !require_root("a_repair_never_reuses_the_backup_names_of_an_earlier_one") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-names");
    let fx = unclean_ext4(&dir, "nm");
    let backup = dir.join("backup");
    let earlier = earlier_backups(&dir, &backup, fx.lo.name());
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    let mounted = mount_line(&fx.dir_path).is_some();
    if !mounted {
        fx.mount_again();
    }
    forget_record(&fx);
    let overwritten: Vec<String> = earlier
        .iter()
        .filter(|(p, c)| fs::read(p).ok().as_ref() != Some(c))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        overwritten.is_empty(),
        "earlier backups overwritten: {overwritten:?}\n{doc:#}"
    );
    assert_eq!(code, 1, "repaired\n{doc:#}\n{stderr}");
    assert!(mounted, "back in service");
}

/// The command in the first backquotes after `marker` in `message`.
fn quoted_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let start = rest.find('`')? + 1;
    let len = rest[start..].find('`')?;
    Some(&rest[start..start + len])
}

/// Finding 4: a filesystem held unmounted after a failed check says "repair by hand
/// (`e2fsck -fn DEV`)": that is the read-only check, which never repairs anything. Pasted, the
/// errors stay, and `--resume` holds it again, for ever.
#[test]
fn the_hold_message_names_a_command_that_repairs() {
    if !require_root("the_hold_message_names_a_command_that_repairs") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-byhand");
    let fx = unclean_ext4(&dir, "bh");
    // A check that fails after the repair: the run holds with the message; the errors are made
    // again by hand below so that the pasted command has something to repair.
    let (code, doc, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    assert_eq!(code, 4, "held\n{doc:#}");
    let message = doc["targets"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let command = quoted_after(&message, "repair by hand")
        .unwrap_or_else(|| panic!("a command is named: {message}"))
        .to_string();
    common::fixtures::debugfs_w_script(fx.lo.dev(), &["sif <12> links_count 7", "ssv state 0"]);
    // Paste it on a terminal, answering yes to every question.
    let pasted = run_any(
        "sh",
        &[
            OsStr::new("-c"),
            OsStr::new(&format!(
                "yes | head -n 1000 | script -qec '{command}' /dev/null"
            )),
        ],
    );
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    let mounted = mount_line(&fx.dir_path).is_some();
    if !mounted {
        run_any("e2fsck", &[OsStr::new("-fy"), fx.lo.dev().as_os_str()]);
        fx.mount_again();
    }
    forget_record(&fx);
    assert!(
        !command.contains("-fn"),
        "the 'repair by hand' command is the read-only check: {command}\n{}",
        pasted.stdout
    );
    assert!(
        code == 0 || code == 1,
        "after pasting `{command}`, --resume puts it back\n{doc:#}\n{stderr}"
    );
    assert!(mounted);
}

/// Finding 5: `--resume` ("continue a repair held for a human: verify, and mount again") on a
/// device with no held repair silently runs a whole new repair: unmount, e2fsck -fp (writes),
/// remount — with `--yes`, unattended.
#[test]
fn resume_without_a_held_record_changes_nothing() {
    if !require_root("resume_without_a_held_record_changes_nothing") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-resume");
    let fx = unclean_ext4(&dir, "rs");
    let line = mount_line(&fx.dir_path).unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[
            OsStr::new("--yes"),
            OsStr::new("--resume"),
            fx.lo.dev().as_os_str(),
        ],
    );
    let after_line = mount_line(&fx.dir_path);
    let ran = doc["targets"][0]["steps"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["step"] == "repair"));
    forget_record(&fx);
    assert!(!ran, "--resume ran a new repair:\n{doc:#}");
    assert_eq!(after_line.as_ref(), Some(&line), "mounted as before");
    assert_eq!(code, 16, "a usage error\n{doc:#}\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("no held repair"), "{stderr}");
}

/// Finding 6: one unreadable record in /run/snapguard (a torn write by another tool, a disk
/// full while saving) makes every repair on the machine fail, whatever its target, and
/// `repair --status` exits 3 — which in repair's fsck bitmask reads "repaired (1) + reboot
/// needed (2)".
#[test]
fn an_unreadable_record_is_shown_and_blocks_only_its_own_device() {
    let dir = TestDir::new("rattack2-garbage");
    let run_dir = dir.join("run/snapguard");
    fs::create_dir_all(&run_dir).unwrap();
    fs::write(run_dir.join("repair-4095-99.json"), b"garbage{").unwrap();
    let out = common::snapguard()
        .arg("--root")
        .arg(dir.path())
        .args(["repair", "--status", "--json"])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(8),
        "an unreadable record is an operational problem (8), not 3\n{doc:#}\n{stderr}"
    );
    assert_eq!(doc["records"][0]["phase"], "unreadable", "{doc:#}");
    if !require_root("an_unreadable_record_is_shown_and_blocks_only_its_own_device") {
        return;
    }
    let _turn = one_at_a_time();
    let fx = unclean_ext4(&dir, "gb");
    let garbage = PathBuf::from("/run/snapguard/repair-4095-99.json");
    fs::create_dir_all("/run/snapguard").unwrap();
    fs::write(&garbage, b"garbage{").unwrap();
    let _gone = RemoveOnDrop(garbage);
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--dry-run"), fx.dir_path.as_os_str()]);
    forget_record(&fx);
    assert_eq!(
        code, 4,
        "another device's broken record does not stop this one\n{doc:#}\n{stderr}"
    );
    // The device's own unreadable record does stop it.
    let own = fx.record_path();
    fs::write(&own, b"{\"version\": 1, \"phase\":").unwrap();
    let _own_gone = RemoveOnDrop(own.clone());
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert!(
        stderr.contains(own.to_str().unwrap()),
        "names the record: {stderr}"
    );
    assert!(mount_line(&fx.dir_path).is_some());
}

/// Finding 7: a held record whose device is gone (disk pulled, loop device detached) cannot be
/// resumed and says nothing useful: an empty message, exit 8, and a fence error that blames
/// "still in use". Every later run without TARGET trips over it the same way.
#[test]
fn a_record_of_a_vanished_device_says_so() {
    if !require_root("a_record_of_a_vanished_device_says_so") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-vanished");
    let gone = dir.join("gone-device");
    let mnt = dir.mkdir("ghost");
    let record = serde_json::json!({
        "version": 1, "pid": 999_999, "start_time": 1, "device": gone,
        "major": 4095, "minor": 98, "kind": "ext", "fstype": "ext4",
        "mounts": [{
            "mount_id": 999_998, "parent_id": 1, "major": 4095, "minor": 98, "root": "/",
            "mount_point": mnt, "mount_options": "rw", "optional_fields": [],
            "fs_type": "ext4", "source": gone, "super_options": "rw"
        }],
        "stopped_units": [], "phase": "held", "steps": [], "updated": 0
    });
    let path = PathBuf::from("/run/snapguard/repair-4095-98.json");
    fs::create_dir_all("/run/snapguard").unwrap();
    fs::write(&path, record.to_string()).unwrap();
    let _gone = RemoveOnDrop(path.clone());
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), gone.as_os_str()]);
    let message = doc["targets"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert!(
        message.contains("no longer exists") && message.contains(path.to_str().unwrap()),
        "the message says the device is gone and names the record: {message:?}\n{stderr}"
    );
}

/// Finding 8: a `[repair] never` pattern that is not a valid glob (`{` left open) is silently
/// dropped: the filesystem it was written to protect is planned (and with --yes repaired).
#[test]
fn an_invalid_never_glob_is_a_usage_error() {
    if !require_root("an_invalid_never_glob_is_a_usage_error") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-never");
    let fx = unclean_ext4(&dir, "nv");
    let config = dir.join("snapguard.toml");
    fs::write(
        &config,
        format!(
            "[repair]\nnever = [\"{}/{{nv,other\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = common::snapguard()
        .arg("--config")
        .arg(&config)
        .args(["repair", "--json", "--trust-fence", "--dry-run"])
        .arg(&fx.dir_path)
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    forget_record(&fx);
    assert_eq!(out.status.code(), Some(16), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("never"), "{stderr}");
}

/// Finding 9: a rollback whose remount fails (here injected; for real: the mount point renamed
/// or busy, an orphaned checker still holding the device) records the filesystem as `held`.
/// Nothing was ever written, yet the next run holds it "for a human", and `--resume` verifies
/// it — it is still as unclean as before the run — and holds it again "after the repair", for
/// ever. §7: a run that stopped before the repair resumes at RESTORE.
#[test]
fn a_failed_rollback_is_mounted_back_by_the_next_run() {
    if !require_root("a_failed_rollback_is_mounted_back_by_the_next_run") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-rollback");
    let fx = unclean_ext4(&dir, "rb");
    let before = mount_line(&fx.dir_path).unwrap();
    let (code, doc, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "backup,restore")],
    );
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert!(mount_line(&fx.dir_path).is_none(), "the remount failed");
    // What the message says to run (this sandbox's runs add --trust-fence and --json).
    let message = doc["targets"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let remedy = quoted_after(&message, "could not mount everything again").map(str::to_string);
    // Its last word, when it names the device (else the device: a plain rerun).
    let target: PathBuf = remedy
        .as_deref()
        .and_then(|r| r.rsplit(' ').next())
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| fx.lo.dev().to_path_buf());
    let (code2, doc2, stderr2) = repair(&dir, &[target.as_os_str()]);
    let after = mount_line(&fx.dir_path);
    let phase = fs::read(fx.record_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["phase"].as_str().map(str::to_string));
    if after.is_none() {
        fx.mount_again();
    }
    forget_record(&fx);
    assert!(remedy.is_some(), "the message names a command: {message}");
    assert_eq!(
        after.as_ref(),
        Some(&before),
        "the next run (`{}`) mounts it back as it was\n{doc2:#}\n{stderr2}",
        remedy.unwrap_or_default()
    );
    assert_eq!(phase.as_deref(), Some("rolled-back"), "code {code2}");
}

/// Finding 10: a checker stopped by snapguard's own time limit is reported with the checker's
/// last words: `--check-timeout 1ms` says "e2fsck could not check: operational error:
/// Warning! /dev/loopN is in use." (it is not: it was SIGTERMed), and a metadata image stopped
/// at `--repair-timeout` says "e2image exited with None". `--check-timeout 0` is accepted.
#[test]
fn a_checker_stopped_at_the_timeout_is_reported_as_such() {
    if !require_root("a_checker_stopped_at_the_timeout_is_reported_as_such") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-timeout");
    let fx = unclean_ext4(&dir, "to");
    let before = mount_line(&fx.dir_path).unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[
            OsStr::new("--yes"),
            OsStr::new("--check-timeout"),
            OsStr::new("1ms"),
            fx.dir_path.as_os_str(),
        ],
    );
    let message = doc["targets"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let after = mount_line(&fx.dir_path);
    let (zero, _, zero_err) = repair(
        &dir,
        &[
            OsStr::new("--yes"),
            OsStr::new("--check-timeout"),
            OsStr::new("0"),
            fx.dir_path.as_os_str(),
        ],
    );
    forget_record(&fx);
    assert_eq!(after.as_ref(), Some(&before), "rolled back");
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert!(
        message.contains("--check-timeout") && !message.contains("in use"),
        "the message says the time limit stopped it: {message}"
    );
    assert_eq!(zero, 16, "--check-timeout 0 is a usage error: {zero_err}");
}

/// Finding 11: `[repair] never` is matched against the kernel's device name and the mount
/// points only. A policy written with the stable names admins use (`/dev/mapper/vg-db`, a
/// `/dev/disk/by-uuid/...` link — here a symlink standing for them) protects nothing: the
/// device is `/dev/dm-3` (`/dev/loopN`) to repair, which plans it (and with --yes repairs it).
#[test]
fn a_never_rule_naming_the_device_by_a_link_protects_it() {
    if !require_root("a_never_rule_naming_the_device_by_a_link_protects_it") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-never-link");
    let fx = unclean_ext4(&dir, "nl");
    let alias = dir.join("by-uuid-standin");
    std::os::unix::fs::symlink(fx.lo.dev(), &alias).unwrap();
    let config = dir.join("snapguard.toml");
    fs::write(
        &config,
        format!("[repair]\nnever = [\"{}\"]\n", alias.display()),
    )
    .unwrap();
    let out = common::snapguard()
        .arg("--config")
        .arg(&config)
        .args(["repair", "--json", "--trust-fence", "--dry-run"])
        .arg(&fx.dir_path)
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    forget_record(&fx);
    let t = &doc["targets"][0];
    assert_eq!(t["outcome"], "refused", "{doc:#}");
    assert!(
        t["message"].as_str().unwrap_or("").contains("never"),
        "{doc:#}"
    );
    assert_eq!(out.status.code(), Some(8));
}

/// Finding 12: the XFS/btrfs log replay mounts the device on `/run/snapguard/replay-PID` and
/// unmounts it. A run killed in between (the kernel's log recovery is the slow part of that
/// mount) leaves that private mount behind; the next run "rolls back" around it, so the
/// filesystem ends up mounted twice — once where nobody looks, keeping its superblock alive —
/// and the record says rolled back. Here the killed run's leftovers are made by hand (a crash
/// at the check, then the replay mount), on ext4 for speed: the path is the same for any type.
#[test]
fn a_replay_mount_left_by_a_killed_run_is_taken_away() {
    if !require_root("a_replay_mount_left_by_a_killed_run_is_taken_away") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-replay");
    let fx = unclean_ext4(&dir, "rp");
    let before = mount_line(&fx.dir_path).unwrap();
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "check:crash")],
    );
    assert_eq!(code, 8);
    assert!(mount_line(&fx.dir_path).is_none());
    // pid_max is at most 2^22: no live run has this pid.
    let leftover = PathBuf::from("/run/snapguard/replay-4194305");
    fs::create_dir_all(&leftover).unwrap();
    let _cleanup = Unmounter(vec![leftover.clone()]);
    run("mount", &[fx.lo.dev().as_os_str(), leftover.as_os_str()]);
    let (_, doc, stderr) = repair(&dir, &[fx.lo.dev().as_os_str()]);
    let left = mount_line(&leftover).is_some();
    let after = mount_line(&fx.dir_path);
    drop(_cleanup);
    let _ = fs::remove_dir(&leftover);
    forget_record(&fx);
    assert!(
        !left,
        "the replay mount is still there: the filesystem is mounted twice\n{doc:#}\n{stderr}"
    );
    assert_eq!(after.as_ref(), Some(&before), "mounted back as before");
}

/// Finding 13: one filesystem named twice (`repair MNT DEV`; without TARGET, two mount points
/// of it) makes two jobs in one plan. The first repairs it and mounts it back; the second then
/// unmounts it again, writes its metadata image over the first one's (same name: same device,
/// same second) and hands e2fsck the first run's undo file, which it refuses — the freshly
/// repaired filesystem is held UNMOUNTED, exit 5.
#[test]
fn one_filesystem_named_twice_is_repaired_once() {
    if !require_root("one_filesystem_named_twice_is_repaired_once") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("rattack2-twice");
    let fx = unclean_ext4(&dir, "tw");
    let before = mount_line(&fx.dir_path).unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[
            OsStr::new("--yes"),
            fx.dir_path.as_os_str(),
            fx.lo.dev().as_os_str(),
        ],
    );
    let after = mount_line(&fx.dir_path);
    if after.is_none() {
        fx.mount_again();
    }
    forget_record(&fx);
    assert_eq!(
        after.as_ref().map(|l| &l.0),
        Some(&before.0),
        "mounted\n{doc:#}"
    );
    assert_eq!(code, 1, "repaired once\n{doc:#}\n{stderr}");
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(1), "{doc:#}");
}
