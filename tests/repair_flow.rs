//! `snapguard repair` end to end on loop-mounted filesystems the tests make (privileged): an
//! unclean ext4 repaired and back with the same options and data, XFS (dirty log), btrfs
//! (subvolume), FAT (dirty bit), the consent rules (no terminal, a declined prompt on a
//! pseudo-terminal, --dry-run), every failpoint, concurrent runs, and `/`.
//!
//! This sandbox cannot read `/proc/1/ns/mnt` or PID 1's fds even as root, so every run passes
//! `--trust-fence` (the unmount and the O_EXCL fence prove the device free); one test checks
//! that without it the run refuses and says why.

mod common;

use common::repair::{
    EXT4_OPTS, MIB, RUN_LIMIT, forget_record, hashes, mount_line, one_at_a_time, repair,
    repair_env, scan_status, step, superblock_state, unclean_ext4, write_files,
};
use common::{
    LoopDevice, Mount, TestDir, assert_schema, require_root, run, run_any, run_snapguard,
};
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The remedy the scan prints for finding `id` of `target`.
fn scan_remedy(target: &Path, id: &str) -> String {
    let out = run_snapguard(
        [OsStr::new("scan"), OsStr::new("--json"), target.as_os_str()],
        Duration::from_secs(60),
    );
    let doc = out.json();
    common::expect_finding(&doc["targets"][0], id)["remedy"]
        .as_str()
        .unwrap_or_else(|| panic!("{id} has no remedy: {doc:#}"))
        .to_string()
}

/// Runs a printed `snapguard repair ...` remedy through `sh` as pasted, with `snapguard`
/// standing for this build and the repair options the tests need added after the subcommand.
fn paste_repair_remedy(dir: &TestDir, remedy: &str) -> (i32, Value, String) {
    let shim = r#"snapguard() { sub=$1; shift; "$SG" "$sub" --json --yes --trust-fence --backup-dir "$BACKUP" "$@"; }"#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{shim}\n{remedy}"))
        .env("SG", env!("CARGO_BIN_EXE_snapguard"))
        .env("BACKUP", dir.join("backup"))
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the pasted remedy printed no JSON ({e}):\n{stdout}\n{stderr}"));
    assert_schema("repair", &doc);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

#[test]
fn an_unclean_ext4_is_repaired_and_back_with_its_options_and_data() {
    if !require_root("an_unclean_ext4_is_repaired_and_back_with_its_options_and_data") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-ext4");
    // A space in the mount point: the scan's remedy must still paste.
    let fx = unclean_ext4(&dir, "my data");
    let before = mount_line(&fx.dir_path).unwrap();
    let (status, state) = scan_status(&fx.dir_path);
    assert_ne!(
        status, "ok",
        "the fixture must be unclean for the scan (state {state:?})"
    );

    // The scan's remedy is `snapguard repair MOUNT`; it is run as an admin pastes it (with
    // this sandbox's --trust-fence, and --yes as there is no terminal).
    let remedy = scan_remedy(&fx.dir_path, "ext.not-clean");
    assert_eq!(
        remedy,
        format!("snapguard repair '{}'", fx.dir_path.display()),
        "the remedy for a mounted unclean ext4"
    );
    let (code, doc, stderr) = paste_repair_remedy(&dir, &remedy);
    let t = &doc["targets"][0];
    assert_eq!(code, 1, "repaired = 1\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "repaired");
    let after = mount_line(&fx.dir_path).expect("mounted again at the same mount point");
    assert_eq!(after.0, before.0, "per-mount options");
    assert_eq!(after.1, before.1, "superblock options");
    assert_eq!(after.3, before.3, "source");
    assert_eq!(t["differences"], Value::Array(vec![]), "{doc:#}");
    assert_eq!(
        hashes(&fx.dir_path),
        fx.files,
        "every file has the same SHA-256"
    );
    let (status, state) = scan_status(&fx.dir_path);
    assert_eq!(status, "ok", "clean after the repair (state {state:?})");
    let backup = t["backup"]["path"].as_str().expect("metadata backup");
    assert!(fs::metadata(backup).unwrap().len() > 0);
    assert!(Path::new(backup).starts_with(dir.join("backup")));
    assert_eq!(t["freeze_test"], "freezable");
    for s in [
        "unmount", "fence", "check", "backup", "repair", "verify", "restore",
    ] {
        assert!(
            step(t, s).iter().all(|x| x["result"] == "ok") && !step(t, s).is_empty(),
            "step {s}: {doc:#}"
        );
    }
    let repair_step = step(t, "repair")[0];
    assert!(
        repair_step["command"]
            .as_str()
            .unwrap()
            .contains("e2fsck -fp")
    );
    drop(fx.mount);
    drop(fx.lo);
}

#[test]
fn xfs_and_a_dirty_log_device_are_checked_replayed_and_repaired() {
    if !require_root("xfs_and_a_dirty_log_device_are_checked_replayed_and_repaired") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-xfs");
    // A mounted XFS with options, checked with --force: back with the same options.
    let img = dir.join("x.img");
    fs::File::create(&img).unwrap().set_len(320 * MIB).unwrap();
    run("mkfs.xfs", &[OsStr::new("-q"), img.as_os_str()]);
    let lo = LoopDevice::attach(&img);
    forget_record(&lo);
    let mnt = dir.mkdir("x");
    let m = Mount::new(lo.dev(), &mnt, Some("noatime,nodev"));
    write_files(&mnt);
    let files = hashes(&mnt);
    let before = mount_line(&mnt).unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[OsStr::new("--yes"), OsStr::new("--force"), mnt.as_os_str()],
    );
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    let after = mount_line(&mnt).expect("mounted again");
    assert_eq!((after.0, after.1), (before.0, before.1));
    assert_eq!(hashes(&mnt), files);
    assert_eq!(doc["targets"][0]["freeze_test"], "freezable");
    assert!(
        step(&doc["targets"][0], "backup")[0]["command"]
            .as_str()
            .unwrap()
            .contains("xfs_metadump")
    );

    // A dirty log left by a shutdown, on an unmounted device: replayed by mount + umount.
    fs::write(mnt.join("late"), b"written before the shutdown").unwrap();
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
    let (status, _) = scan_status(lo.dev());
    assert_ne!(status, "ok", "a dirty log is unclean");
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), lo.dev().as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert_eq!(step(t, "replay")[0]["result"], "ok", "{doc:#}");
    let (status, _) = scan_status(lo.dev());
    assert_eq!(status, "ok");
    let logprint = run_any("xfs_logprint", &[OsStr::new("-t"), lo.dev().as_os_str()]);
    assert!(
        logprint.stdout.contains("<CLEAN>"),
        "xfs_logprint -t agrees the log is clean:\n{}",
        logprint.stdout
    );
}

#[test]
fn a_btrfs_subvolume_comes_back_as_the_same_subvolume() {
    if !require_root("a_btrfs_subvolume_comes_back_as_the_same_subvolume") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-btrfs");
    let img = dir.join("b.img");
    fs::File::create(&img).unwrap().set_len(256 * MIB).unwrap();
    run("mkfs.btrfs", &[OsStr::new("-q"), img.as_os_str()]);
    let lo = LoopDevice::attach(&img);
    forget_record(&lo);
    let top = dir.mkdir("top");
    let m = Mount::new(lo.dev(), &top, None);
    run(
        "btrfs",
        &[
            OsStr::new("subvolume"),
            OsStr::new("create"),
            top.join("sub").as_os_str(),
        ],
    );
    fs::write(top.join("sub/only-in-sub"), b"sub").unwrap();
    m.unmount();
    let mnt = dir.mkdir("sub");
    let _m = Mount::new(lo.dev(), &mnt, Some("subvol=sub,noatime"));
    let before = mount_line(&mnt).unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[OsStr::new("--yes"), OsStr::new("--force"), mnt.as_os_str()],
    );
    let t = &doc["targets"][0];
    assert_eq!(
        code, 0,
        "checked clean, no repair needed\n{doc:#}\n{stderr}"
    );
    assert_eq!(t["outcome"], "nothing-to-do");
    assert!(
        step(t, "check")[0]["command"]
            .as_str()
            .unwrap()
            .contains("btrfs check --readonly")
    );
    let after = mount_line(&mnt).expect("mounted again");
    assert_eq!(after.2, before.2, "same subvolume root");
    assert_eq!(after.0, before.0);
    assert!(
        mnt.join("only-in-sub").exists(),
        "the subvolume, not the top level"
    );
}

#[test]
fn a_fat_filesystem_with_the_dirty_bit_is_repaired() {
    if !require_root("a_fat_filesystem_with_the_dirty_bit_is_repaired") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-fat");
    let img = dir.join("f.img");
    fs::File::create(&img).unwrap().set_len(64 * MIB).unwrap();
    run(
        "mkfs.fat",
        &[OsStr::new("-F"), OsStr::new("32"), img.as_os_str()],
    );
    // Byte 0x41 of a FAT32 boot sector: the dirty bit.
    let mut bytes = fs::read(&img).unwrap();
    bytes[0x41] |= 1;
    fs::write(&img, &bytes).unwrap();
    let lo = LoopDevice::attach(&img);
    forget_record(&lo);
    let (status, _) = scan_status(lo.dev());
    assert_ne!(status, "ok");
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), lo.dev().as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    let t = &doc["targets"][0];
    assert!(
        step(t, "repair")[0]["command"]
            .as_str()
            .unwrap()
            .contains("fsck.fat -a")
    );
    let (status, _) = scan_status(lo.dev());
    assert_eq!(status, "ok");
    let check = run_any("fsck.fat", &[OsStr::new("-n"), lo.dev().as_os_str()]);
    assert_eq!(check.exit, Some(0), "fsck.fat -n agrees: {}", check.stdout);
}

#[test]
fn consent_no_terminal_declined_prompt_and_dry_run_change_nothing() {
    if !require_root("consent_no_terminal_declined_prompt_and_dry_run_change_nothing") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-consent");
    let fx = unclean_ext4(&dir, "c");
    let before = mount_line(&fx.dir_path).unwrap();
    let sb_before = superblock_state(fx.lo.dev());

    // No terminal, no --yes: 16, nothing changed.
    let (code, doc, stderr) = repair(&dir, &[fx.dir_path.as_os_str()]);
    assert_eq!(code, 16, "{doc:#}\n{stderr}");
    assert!(
        stderr.contains("Carry out") || stderr.contains("unmount"),
        "the plan is printed: {stderr}"
    );
    assert_eq!(mount_line(&fx.dir_path).unwrap(), before);

    // --dry-run: the plan, nothing changed, 4 (work to do).
    let (code, doc, _) = repair(&dir, &[OsStr::new("--dry-run"), fx.dir_path.as_os_str()]);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(doc["targets"][0]["outcome"], "planned");
    assert!(doc["dry_run"].as_bool().unwrap());
    assert_eq!(mount_line(&fx.dir_path).unwrap(), before);

    // A declined prompt on a pseudo-terminal (script(1)): 32, nothing changed.
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let line = format!(
        "printf 'n\\n' | script -qec '{} repair --trust-fence --backup-dir {} {}' /dev/null",
        exe.display(),
        dir.join("backup").display(),
        fx.dir_path.display()
    );
    let out = run_any("sh", &[OsStr::new("-c"), OsStr::new(&line)]);
    assert_eq!(
        out.exit,
        Some(32),
        "declined = 32\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("Carry out this plan?"),
        "{}",
        out.stdout
    );
    assert_eq!(mount_line(&fx.dir_path).unwrap(), before);
    drop(fx.mount);
    assert_eq!(
        superblock_state(fx.lo.dev()),
        sb_before,
        "superblock unchanged"
    );
}

#[test]
fn every_failpoint_leaves_the_filesystem_mounted_as_before_or_held() {
    if !require_root("every_failpoint_leaves_the_filesystem_mounted_as_before_or_held") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-fail");
    let fx = unclean_ext4(&dir, "f");
    let before = mount_line(&fx.dir_path).unwrap();
    for point in ["unmount", "fence", "check", "backup", "repair", "restore"] {
        let (code, doc, stderr) = repair_env(
            &dir,
            &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
            &[("SNAPGUARD_FAILPOINT", point)],
        );
        let t = &doc["targets"][0];
        if point == "restore" {
            // The repair went through; the restore failed: never half-done silently.
            assert_eq!(code & 8, 8, "{point}: {doc:#}\n{stderr}");
            assert!(mount_line(&fx.dir_path).is_none() || t["outcome"] == "failed");
            // Put it back by hand for the next round (what the message tells an admin).
            run(
                "mount",
                &[
                    OsStr::new("-o"),
                    OsStr::new(EXT4_OPTS),
                    fx.lo.dev().as_os_str(),
                    fx.dir_path.as_os_str(),
                ],
            );
            continue;
        }
        assert_eq!(code, 8, "{point}: operational error\n{doc:#}\n{stderr}");
        assert_eq!(t["outcome"], "failed", "{point}");
        assert_eq!(
            mount_line(&fx.dir_path).unwrap(),
            before,
            "{point}: mounted as before"
        );
        assert!(
            step(t, "rollback").iter().any(|s| s["result"] == "ok"),
            "{point}: {doc:#}"
        );
        let record: Value =
            serde_json::from_slice(&fs::read(t["record"].as_str().expect("record path")).unwrap())
                .unwrap();
        assert_eq!(
            record["phase"], "rolled-back",
            "{point}: the record says what happened"
        );
    }
    drop(fx.mount);
}

#[test]
fn a_failed_verify_holds_the_filesystem_unmounted_with_the_message() {
    if !require_root("a_failed_verify_holds_the_filesystem_unmounted_with_the_message") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-verify");
    let fx = unclean_ext4(&dir, "v");
    let (code, doc, stderr) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "verify")],
    );
    let t = &doc["targets"][0];
    assert_eq!(code, 4, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "held");
    assert!(t["message"].as_str().unwrap().contains("LEFT UNMOUNTED"));
    assert!(
        stderr.contains("LEFT UNMOUNTED"),
        "said loudly on stderr: {stderr}"
    );
    assert!(mount_line(&fx.dir_path).is_none(), "not mounted again");
    // --status shows it; --resume verifies and mounts it again.
    let status = run_snapguard(
        [
            OsStr::new("repair"),
            OsStr::new("--status"),
            OsStr::new("--json"),
        ],
        RUN_LIMIT,
    );
    assert_eq!(status.exit, 4);
    assert!(status.stdout.contains("\"held\""), "{}", status.stdout);
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    assert!(
        mount_line(&fx.dir_path).is_some(),
        "mounted again after --resume"
    );
    drop(fx.mount);
}

#[test]
fn a_crash_inside_repair_stops_the_next_run_for_a_human() {
    if !require_root("a_crash_inside_repair_stops_the_next_run_for_a_human") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-crash");
    let fx = unclean_ext4(&dir, "k");
    let (code, _, _) = repair_env(
        &dir,
        &[OsStr::new("--yes"), fx.dir_path.as_os_str()],
        &[("SNAPGUARD_FAILPOINT", "repair:crash")],
    );
    assert_eq!(code, 8);
    assert!(mount_line(&fx.dir_path).is_none());
    // The next run (same target, a mount point no longer mounted) stops for a human.
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    let t = &doc["targets"][0];
    assert_eq!(code, 4, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "held");
    assert!(
        t["message"].as_str().unwrap().contains("interrupted"),
        "{doc:#}"
    );
    assert!(
        mount_line(&fx.dir_path).is_none(),
        "never auto-remounted after an interrupted repair"
    );
    // And again: still held (never retried automatically).
    let (code, doc, _) = repair(&dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    assert_eq!(code, 4, "{doc:#}");
    // The human's way out.
    let (code, doc, stderr) = repair(&dir, &[OsStr::new("--resume"), fx.lo.dev().as_os_str()]);
    assert!(code == 1 || code == 4, "{doc:#}\n{stderr}");
    drop(fx.mount);
}

#[test]
fn a_second_concurrent_repair_is_refused_and_changes_nothing() {
    if !require_root("a_second_concurrent_repair_is_refused_and_changes_nothing") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-concurrent");
    let fx = unclean_ext4(&dir, "cc");
    // The first run waits in QUIESCE for a holder that ignores SIGTERM (grace 4 s).
    let holder = common::Sleeper::spawn(
        "sh",
        &[
            "-c",
            "trap '' TERM; cd \"$1\" && while :; do sleep 0.1; done",
            "sh",
            &fx.dir_path.to_string_lossy(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let first = std::process::Command::new(&exe)
        .args([
            "repair",
            "--json",
            "--yes",
            "--trust-fence",
            "--terminate-holders",
            "--grace",
            "4s",
            "--backup-dir",
        ])
        .arg(dir.join("backup"))
        .arg(&fx.dir_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock (its record names it), however loaded the machine.
    let record = fx.record_path();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let pid = fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["pid"].as_u64());
        if pid == Some(u64::from(first.id())) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mounted = mount_line(&fx.dir_path);
    let (code, _, stderr) = repair(&dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    assert_eq!(code, 8, "the second run is refused: {stderr}");
    assert!(stderr.contains("another repair"), "{stderr}");
    assert_eq!(
        mount_line(&fx.dir_path),
        mounted,
        "the second run changed nothing"
    );
    let out = first.wait_with_output().unwrap();
    drop(holder);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(fx.mount);
}

#[test]
fn the_root_filesystem_gets_a_boot_time_check_plan() {
    if !require_root("the_root_filesystem_gets_a_boot_time_check_plan") {
        return;
    }
    let _turn = one_at_a_time();
    let dir = TestDir::new("repair-root");
    let table_before = fs::read("/proc/self/mountinfo").unwrap();
    let (code, doc, stderr) = repair(
        &dir,
        &[
            OsStr::new("--dry-run"),
            OsStr::new("--force"),
            OsStr::new("/"),
        ],
    );
    assert_eq!(code, 2, "{doc:#}\n{stderr}");
    let t = &doc["targets"][0];
    assert_eq!(t["outcome"], "boot-check-scheduled");
    let mechanism = t["boot_check"]["mechanism"].as_str().unwrap();
    assert!(!mechanism.is_empty());
    assert!(!t["boot_check"]["undo"].as_array().unwrap().is_empty());
    assert_eq!(t["boot_check"]["applied"], false);
    assert!(step(t, "unmount").is_empty(), "nothing unmounted");
    assert_eq!(
        fs::read("/proc/self/mountinfo").unwrap().len(),
        table_before.len()
    );
}

#[test]
fn bad_targets_and_options_are_usage_errors() {
    let dir = TestDir::new("repair-usage");
    let out = run_snapguard(
        [
            OsStr::new("repair"),
            OsStr::new("--tier"),
            OsStr::new("bogus"),
        ],
        RUN_LIMIT,
    );
    assert_eq!(out.exit, 16, "{}", out.stderr);
    if !require_root("bad_targets_and_options_are_usage_errors") {
        return;
    }
    let _turn = one_at_a_time();
    let (code, _, stderr) = repair(
        &dir,
        &[OsStr::new("--yes"), dir.join("missing").as_os_str()],
    );
    assert_eq!(code, 16, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let plain = dir.mkdir("plain");
    let (code, _, stderr) = repair(&dir, &[OsStr::new("--yes"), plain.as_os_str()]);
    assert_eq!(code, 16, "{stderr}");
    assert!(
        stderr.contains("neither a mount point nor a block device"),
        "{stderr}"
    );
}
