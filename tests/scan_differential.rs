//! Differential tests of `snapguard scan` against `dumpe2fs -h` and `e2fsck -n`, one test per
//! ext fixture built at test time (see shared/reference/ondisk-state.md §6).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::fixtures::{self, Kind, MIB};
use common::reference::{self, DumpeFields, EfsckOutcome};
use common::*;
use serde_json::Value;

/// What the reference tools say about one filesystem image.
struct Reference {
    dumpe: Option<DumpeFields>,
    fsck: EfsckOutcome,
}

fn reference(img: &Path) -> Reference {
    let r = Reference {
        dumpe: reference::dumpe2fs_h(img),
        fsck: reference::e2fsck_n_reason(img),
    };
    assert!(
        !r.fsck.timed_out,
        "e2fsck -n {} did not finish: {:?}",
        img.display(),
        r.fsck.output
    );
    r
}

fn dumpe(r: &Reference, img: &Path) -> DumpeFields {
    r.dumpe
        .clone()
        .unwrap_or_else(|| panic!("dumpe2fs -h cannot read the fixture {}", img.display()))
}

/// `state` and `needs_recovery` equal dumpe2fs (when it reads the image) and `fsck_reason`
/// equals what e2fsck -n printed before ", check forced." (null when it printed no such line).
fn assert_agrees(what: &str, target: &Value, dumpe: Option<&DumpeFields>, fsck: &EfsckOutcome) {
    let mut bad = Vec::new();
    if let Some(d) = dumpe {
        if target["state"].as_str() != Some(d.state.as_str()) {
            bad.push(format!(
                "state: ours {} vs dumpe2fs {:?}",
                target["state"], d.state
            ));
        }
        if target["needs_recovery"].as_bool() != Some(d.needs_recovery) {
            bad.push(format!(
                "needs_recovery: ours {} vs dumpe2fs {}",
                target["needs_recovery"], d.needs_recovery
            ));
        }
    }
    let ours = &target["fsck_reason"];
    let ok = match &fsck.reason {
        Some(r) => ours.as_str() == Some(r.as_str()),
        None => ours.is_null(),
    };
    if !ok {
        bad.push(format!(
            "fsck_reason: ours {ours} vs e2fsck -n {:?} (e2fsck said clean: {}, exit {:?})",
            fsck.reason, fsck.clean, fsck.exit
        ));
    }
    assert!(
        bad.is_empty(),
        "{what}: snapguard disagrees with the reference tools:\n  {}\ntarget: {target:#}",
        bad.join("\n  ")
    );
}

/// Scans one image, checks it against the reference tools, returns (target, exit).
fn scan_and_compare(what: &str, img: &Path, extra: &[&str]) -> (Value, i32, Reference) {
    let r = reference(img);
    let mut args: Vec<&OsStr> = extra.iter().map(OsStr::new).collect();
    args.push(img.as_os_str());
    let (doc, exit) = scan_json(&args);
    let t = only_target(&doc).clone();
    assert_agrees(what, &t, r.dumpe.as_ref(), &r.fsck);
    (t, exit, r)
}

fn severity<'a>(target: &'a Value, id: &str) -> &'a str {
    expect_finding(target, id)["severity"]
        .as_str()
        .unwrap_or("<none>")
}

fn assert_critical(target: &Value, id: &str) {
    assert_eq!(
        severity(target, id),
        "critical",
        "{id} must be critical: {target:#}"
    );
}

fn assert_status_exit(target: &Value, exit: i32, status: &str, code: i32) {
    assert_eq!(
        target["status"].as_str(),
        Some(status),
        "status (exit {exit}): {target:#}"
    );
    assert_eq!(exit, code, "exit code for status {status}: {target:#}");
}

fn blkid_type(img: &Path) -> String {
    run(
        "blkid",
        &[
            OsStr::new("-p"),
            OsStr::new("-o"),
            OsStr::new("value"),
            OsStr::new("-s"),
            OsStr::new("TYPE"),
            img.as_os_str(),
        ],
    )
    .trim()
    .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Fresh filesystems

fn fresh(kind: Kind, block_size: u32, features: &[&str]) {
    let dir = TestDir::new("fresh");
    let img = fixtures::mkfs(&dir, "fresh.img", kind, block_size, features, 64 * MIB);
    let what = format!("fresh {} {block_size} {features:?}", kind.name());
    let (t, exit, r) = scan_and_compare(&what, &img, &[]);
    let d = dumpe(&r, &img);
    assert_eq!(
        t["fstype"].as_str(),
        Some(blkid_type(&img).as_str()),
        "{what}: fstype vs blkid"
    );
    let ours: BTreeSet<&str> = t["ext"]["features"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no ext.features: {t:#}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let theirs: BTreeSet<&str> = d.features.iter().map(String::as_str).collect();
    assert_eq!(ours, theirs, "{what}: ext.features vs dumpe2fs");
    assert_eq!(
        t["ext"]["block_size"].as_i64(),
        d.block_size(),
        "{what}: block size"
    );
    assert_eq!(
        t["ext"]["checksum"].as_str(),
        Some(if theirs.contains("metadata_csum") {
            "ok"
        } else {
            "absent"
        }),
        "{what}: ext.checksum"
    );
    let loud: Vec<&Value> = t["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(
        loud.is_empty(),
        "{what}: a fresh fs has no warning: {loud:#?}"
    );
    assert_status_exit(&t, exit, "ok", 0);
}

#[test]
fn diff_ext2_fresh_4k() {
    fresh(Kind::Ext2, 4096, &[]);
}

#[test]
fn diff_ext2_fresh_1k() {
    fresh(Kind::Ext2, 1024, &[]);
}

#[test]
fn diff_ext3_fresh_4k() {
    fresh(Kind::Ext3, 4096, &[]);
}

#[test]
fn diff_ext3_fresh_1k() {
    fresh(Kind::Ext3, 1024, &[]);
}

#[test]
fn diff_ext4_fresh_4k_csum_64bit() {
    fresh(Kind::Ext4, 4096, &["metadata_csum", "64bit"]);
}

#[test]
fn diff_ext4_fresh_4k_no_csum_no_64bit() {
    fresh(Kind::Ext4, 4096, &["^metadata_csum", "^64bit"]);
}

#[test]
fn diff_ext4_fresh_4k_csum_no_64bit() {
    fresh(Kind::Ext4, 4096, &["metadata_csum", "^64bit"]);
}

#[test]
fn diff_ext4_fresh_4k_no_csum_64bit() {
    fresh(Kind::Ext4, 4096, &["^metadata_csum", "64bit"]);
}

#[test]
fn diff_ext4_fresh_1k_csum_64bit() {
    fresh(Kind::Ext4, 1024, &["metadata_csum", "64bit"]);
}

#[test]
fn diff_ext4_fresh_1k_no_csum_no_64bit() {
    fresh(Kind::Ext4, 1024, &["^metadata_csum", "^64bit"]);
}

// ---------------------------------------------------------------------------------------------
// State flags set with debugfs

fn with_state(state: u32) -> (TestDir, PathBuf) {
    let dir = TestDir::new("state");
    let img = fixtures::ext4(&dir, "state.img", &[]);
    fixtures::debugfs_w(&img, &format!("ssv state {state}"));
    (dir, img)
}

#[test]
fn diff_ext4_not_clean() {
    let (_dir, img) = with_state(0);
    let (t, exit, _) = scan_and_compare("not clean", &img, &[]);
    expect_finding(&t, "ext.not-clean");
    assert!(finding(&t, "ext.errors-flag").is_none(), "{t:#}");
    assert_status_exit(&t, exit, "warning", 1);
}

#[test]
fn diff_ext4_clean_with_errors() {
    let (_dir, img) = with_state(3);
    let (t, exit, _) = scan_and_compare("clean with errors", &img, &[]);
    assert_critical(&t, "ext.errors-flag");
    assert!(finding(&t, "ext.not-clean").is_none(), "{t:#}");
    assert_status_exit(&t, exit, "critical", 2);
}

#[test]
fn diff_ext4_not_clean_with_errors() {
    let (_dir, img) = with_state(2);
    let (t, exit, _) = scan_and_compare("not clean with errors", &img, &[]);
    assert_critical(&t, "ext.errors-flag");
    expect_finding(&t, "ext.not-clean");
    assert_status_exit(&t, exit, "critical", 2);
}

#[test]
fn diff_ext4_error_history_state_clean() {
    let dir = TestDir::new("errhist");
    let img = fixtures::ext4(&dir, "errhist.img", &[]);
    fixtures::debugfs_w_script(
        &img,
        &[
            "ssv error_count 3",
            "ssv first_error_time 20240101120000",
            "ssv first_error_func ext4_lookup",
            "ssv first_error_line 1234",
            "ssv first_error_ino 12",
            "ssv last_error_time 20240301080000",
            "ssv last_error_func ext4_find_entry",
            "ssv last_error_line 99",
        ],
    );
    let (t, _exit, r) = scan_and_compare("error history", &img, &[]);
    let d = dumpe(&r, &img);
    expect_finding(&t, "ext.error-history");
    let ext = &t["ext"];
    assert_eq!(
        ext["error_count"].as_i64(),
        Some(d.error_count()),
        "error_count: {ext:#}"
    );
    assert_eq!(
        ext["first_error"]["function"].as_str(),
        d.get("First error function"),
        "first_error.function: {ext:#}"
    );
    assert_eq!(
        ext["first_error"]["line"].as_i64(),
        d.get_i64("First error line #"),
        "first_error.line: {ext:#}"
    );
    assert_eq!(
        ext["first_error"]["inode"].as_i64(),
        d.get_i64("First error inode #"),
        "first_error.inode: {ext:#}"
    );
    assert_eq!(
        ext["last_error"]["function"].as_str(),
        d.get("Last error function"),
        "last_error.function: {ext:#}"
    );
    assert_ne!(t["status"], "ok", "recorded errors are not ok: {t:#}");
}

// ---------------------------------------------------------------------------------------------
// Snapshots of mounted filesystems (need loop devices)

#[test]
fn diff_ext4_crash_copy_needs_recovery() {
    if !require_root("diff_ext4_crash_copy_needs_recovery") {
        return;
    }
    let dir = TestDir::new("crash");
    let img = fixtures::crash_copy(&dir);
    let (t, _exit, r) = scan_and_compare("crash copy (offline)", &img, &[]);
    let d = dumpe(&r, &img);
    assert!(d.needs_recovery, "fixture: a crash copy has needs_recovery");
    expect_finding(&t, "ext.needs-recovery");
    assert_eq!(
        t["ext"]["journal"]["start"].as_i64(),
        d.journal_start(),
        "journal start: {t:#}"
    );

    let (crash, _, _) = scan_and_compare(
        "crash copy --snapshot crash",
        &img,
        &["--snapshot", "crash"],
    );
    assert_eq!(crash["context"], "crash", "{crash:#}");
    assert_eq!(severity(&crash, "ext.needs-recovery"), "info", "{crash:#}");

    let (frozen, _, _) = scan_and_compare(
        "crash copy --snapshot frozen",
        &img,
        &["--snapshot", "frozen"],
    );
    assert_eq!(frozen["context"], "frozen", "{frozen:#}");
    assert_eq!(
        severity(&frozen, "ext.needs-recovery"),
        "warning",
        "a frozen snapshot with needs_recovery means the freeze did not take: {frozen:#}"
    );
}

#[test]
fn diff_ext4_frozen_copy() {
    if !require_root("diff_ext4_frozen_copy") {
        return;
    }
    let dir = TestDir::new("frozen");
    let img = fixtures::frozen_copy(&dir);
    for mode in ["frozen", "crash"] {
        let what = format!("frozen copy --snapshot {mode}");
        let (t, _exit, r) = scan_and_compare(&what, &img, &["--snapshot", mode]);
        assert!(
            !dumpe(&r, &img).needs_recovery,
            "fixture: freeze clears needs_recovery"
        );
        assert_eq!(t["context"], mode, "{what}: {t:#}");
        assert!(
            finding(&t, "ext.needs-recovery").is_none(),
            "{what}: {:?}",
            finding_ids(&t)
        );
    }
}

#[test]
fn diff_ext4_shutdown_persistent_needs_recovery() {
    if !require_root("diff_ext4_shutdown_persistent_needs_recovery") {
        return;
    }
    let dir = TestDir::new("shutdown");
    let img = fixtures::shutdown_image(&dir);
    let (t, _exit, r) = scan_and_compare("shutdown + umount", &img, &[]);
    assert!(
        dumpe(&r, &img).needs_recovery,
        "fixture: needs_recovery survives umount"
    );
    expect_finding(&t, "ext.needs-recovery");
    assert_ne!(t["status"], "ok", "{t:#}");
}

#[test]
fn diff_ext4_journal_errno_after_abort() {
    if !require_root("diff_ext4_journal_errno_after_abort") {
        return;
    }
    let dir = TestDir::new("abort");
    let img = fixtures::journal_abort_image(&dir);
    let (t, exit, r) = scan_and_compare("journal abort", &img, &[]);
    let d = dumpe(&r, &img);
    let errno = d.journal_errno();
    assert!(
        errno.is_some_and(|e| e != 0),
        "fixture: dumpe2fs shows a Journal errno: {:?}",
        d.fields
    );
    assert_eq!(
        t["ext"]["journal"]["errno"].as_i64(),
        errno,
        "journal errno: {t:#}"
    );
    assert_critical(&t, "ext.journal-errno");
    assert_status_exit(&t, exit, "critical", 2);
}

#[test]
fn diff_ext4_nojournal_mounted_copy() {
    if !require_root("diff_ext4_nojournal_mounted_copy") {
        return;
    }
    let dir = TestDir::new("nojournal");
    let img = fixtures::nojournal_mounted_copy(&dir);
    let (t, _exit, r) = scan_and_compare("no-journal mounted copy", &img, &[]);
    assert!(!dumpe(&r, &img).features.iter().any(|f| f == "has_journal"));
    expect_finding(&t, "ext.not-clean");
}

// ---------------------------------------------------------------------------------------------
// Periodic checks (tune2fs)

#[test]
fn diff_ext4_mount_count_due() {
    let dir = TestDir::new("mntcount");
    let img = fixtures::ext4(&dir, "mntcount.img", &[]);
    fixtures::tune2fs(&img, &["-c", "5", "-C", "7"]);
    let (t, _exit, r) = scan_and_compare("mount count due", &img, &[]);
    let d = dumpe(&r, &img);
    expect_finding(&t, "ext.mount-count-due");
    assert_eq!(
        t["ext"]["mount_count"].as_i64(),
        d.get_i64("Mount count"),
        "{t:#}"
    );
    assert_eq!(
        t["ext"]["max_mount_count"].as_i64(),
        d.get_i64("Maximum mount count"),
        "{t:#}"
    );
}

#[test]
fn diff_ext4_interval_due() {
    let dir = TestDir::new("interval");
    let img = fixtures::ext4(&dir, "interval.img", &[]);
    fixtures::tune2fs(&img, &["-i", "1d", "-T", "20200101"]);
    let (t, _exit, r) = scan_and_compare("check interval due", &img, &[]);
    let d = dumpe(&r, &img);
    expect_finding(&t, "ext.check-interval-due");
    assert_eq!(
        t["ext"]["check_interval"].as_i64(),
        d.get_i64("Check interval"),
        "{t:#}"
    );
}

#[test]
fn diff_ext4_last_check_in_future() {
    let dir = TestDir::new("future");
    let img = fixtures::ext4(&dir, "future.img", &[]);
    let when = fixtures::date_in_days(10);
    fixtures::tune2fs(&img, &["-i", "1d", "-T", &when]);
    let (t, _exit, _r) = scan_and_compare("last check in the future", &img, &[]);
    expect_finding(&t, "ext.last-check-in-future");
}

#[test]
fn diff_ext4_orphans() {
    let dir = TestDir::new("orphans");
    let img = fixtures::ext4(&dir, "orphans.img", &[]);
    fixtures::debugfs_w(&img, "ssv last_orphan 12");
    let (t, _exit, r) = scan_and_compare("orphans", &img, &[]);
    let d = dumpe(&r, &img);
    assert!(
        d.first_orphan_inode().is_some(),
        "fixture: dumpe2fs shows the orphan"
    );
    expect_finding(&t, "ext.orphans-pending");
    assert_eq!(
        t["ext"]["first_orphan_inode"].as_i64(),
        d.first_orphan_inode(),
        "{t:#}"
    );
}

#[test]
fn diff_ext4_needs_recovery_without_journal() {
    let dir = TestDir::new("nrnojournal");
    let img = fixtures::ext4(&dir, "nr.img", &["^has_journal"]);
    fixtures::debugfs_w(&img, "feature needs_recovery");
    let (t, exit, r) = scan_and_compare("needs_recovery without journal", &img, &[]);
    assert!(dumpe(&r, &img).needs_recovery, "fixture");
    assert_critical(&t, "ext.needs-recovery-without-journal");
    assert_status_exit(&t, exit, "critical", 2);
}

// ---------------------------------------------------------------------------------------------
// Damaged superblocks

/// First backup superblock (block number) as dumpe2fs lists it.
fn first_backup_sb(img: &Path) -> u64 {
    let out = run("dumpe2fs", &[img.as_os_str()]);
    out.lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Backup superblock at ")?;
            rest.split(',').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no backup superblock in dumpe2fs {}", img.display()))
}

#[test]
fn diff_ext4_bad_primary_checksum_good_backup() {
    let dir = TestDir::new("badcsum");
    // 160 MiB with 4 KiB blocks: two groups, so there is a backup at the start of group 1.
    let img = fixtures::mkfs(
        &dir,
        "badcsum.img",
        Kind::Ext4,
        4096,
        &["metadata_csum"],
        160 * MIB,
    );
    let backup = first_backup_sb(&img);
    let at = 1024 + 0x78;
    let byte = fixtures::read_at(&img, at, 1)[0];
    fixtures::patch(&img, at, &[byte ^ 0x58]);

    let primary = reference::dumpe2fs_h(&img);
    assert!(
        primary.as_ref().is_some_and(|p| p.checksum_mismatch),
        "fixture: dumpe2fs reports the bad primary checksum: {primary:?}"
    );
    let d = reference::dumpe2fs_h_with(
        &img,
        &[
            "-o",
            &format!("superblock={backup}"),
            "-o",
            "blocksize=4096",
        ],
    )
    .expect("dumpe2fs reads the backup superblock");
    let fsck = reference::e2fsck_n_reason(&img);
    assert!(!fsck.timed_out);

    let (doc, exit) = scan_json([img.as_os_str()]);
    let t = only_target(&doc);
    assert_agrees("bad primary checksum (vs backup)", t, Some(&d), &fsck);
    assert_critical(t, "ext.checksum-mismatch");
    assert_eq!(t["ext"]["superblock"], "backup", "{t:#}");
    assert_status_exit(t, exit, "critical", 2);
}

#[test]
fn diff_ext4_unknown_incompat_bit() {
    let dir = TestDir::new("unknownfeat");
    let img = fixtures::ext4(&dir, "unknown.img", &[]);
    let raw = fixtures::read_at(&img, 1024 + 0x60, 4);
    let incompat = u32::from_le_bytes(raw.try_into().expect("4 bytes")) | 0x8000_0000;
    fixtures::debugfs_w(&img, &format!("ssv feature_incompat {incompat:#x}"));
    let (t, exit, r) = scan_and_compare("unknown incompat bit", &img, &[]);
    assert!(
        r.fsck
            .output
            .iter()
            .any(|l| l.contains("unsupported feature")),
        "fixture: e2fsck refuses it: {:?}",
        r.fsck.output
    );
    expect_finding(&t, "ext.unknown-features");
    assert_status_exit(&t, exit, "unknown", 3);
}

// ---------------------------------------------------------------------------------------------
// Whole-disk images

/// Copies a filesystem image into a disk image at `offset`.
fn insert(fs_img: &Path, disk: &Path, offset: u64) {
    let data = std::fs::read(fs_img).expect("read fs image");
    fixtures::patch(disk, offset, &data);
}

/// A partitioned disk: p1 fresh (mkfs -E offset), p2 "not clean" (built apart, then copied in).
fn two_part_disk(dir: &TestDir, name: &str, scheme: &str) -> PathBuf {
    let part = 32 * MIB;
    let (img, parts) = fixtures::partitioned_disk(dir, name, scheme, 80 * MIB, part, 2);
    let p2 = fixtures::mkfs(dir, "p2.img", Kind::Ext4, 4096, &[], parts[1].size);
    fixtures::debugfs_w(&p2, "ssv state 0");
    insert(&p2, &img, parts[1].offset);
    img
}

/// Each partition of `disk` (as sfdisk reads it) is a target `DISK#pN` agreeing with the
/// reference tools run on the extracted partition.
fn check_partitions(dir: &TestDir, disk: &Path) {
    let (label, parts) = fixtures::sfdisk_parts(disk);
    let scheme = if label == "dos" {
        "mbr"
    } else {
        label.as_str()
    };
    let (doc, _exit) = scan_json([disk.as_os_str()]);
    let disk_s = disk.to_string_lossy();
    let names: BTreeSet<String> = targets(&doc)
        .iter()
        .filter_map(|t| t["target"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = parts
        .iter()
        .map(|p| format!("{disk_s}#p{}", p.index))
        .collect();
    assert_eq!(names, want, "targets of {disk_s}: {doc:#}");
    for p in &parts {
        let t = target_named(&doc, &format!("{disk_s}#p{}", p.index));
        let piece = dir.join(format!("extracted-p{}.img", p.index));
        fixtures::extract(disk, p.offset, p.size, &piece);
        let r = reference(&piece);
        assert_agrees(
            &format!("{disk_s}#p{}", p.index),
            t,
            r.dumpe.as_ref(),
            &r.fsck,
        );
        assert_eq!(
            t["fstype"].as_str(),
            Some(blkid_type(&piece).as_str()),
            "{t:#}"
        );
        let part = &t["partition"];
        assert_eq!(part["index"].as_u64(), Some(p.index), "{t:#}");
        assert_eq!(part["scheme"].as_str(), Some(scheme), "{t:#}");
        assert_eq!(part["offset"].as_u64(), Some(p.offset), "{t:#}");
        assert_eq!(part["size"].as_u64(), Some(p.size), "{t:#}");
    }
}

#[test]
fn diff_mbr_disk_two_ext4() {
    let dir = TestDir::new("mbr");
    let img = two_part_disk(&dir, "mbr.img", "dos");
    check_partitions(&dir, &img);
}

#[test]
fn diff_gpt_disk_two_ext4() {
    let dir = TestDir::new("gpt");
    let img = two_part_disk(&dir, "gpt.img", "gpt");
    check_partitions(&dir, &img);
}

#[test]
fn diff_vhd_fixed_ext4() {
    let dir = TestDir::new("vhd");
    let raw = fixtures::ext4(&dir, "raw.img", &[]);
    fixtures::debugfs_w(&raw, "ssv state 0");
    let vhd = dir.join("disk.vhd");
    fixtures::vhd_fixed(&raw, &vhd);
    // The reference tools read the VHD's data area directly (the footer is past the fs).
    let r = reference(&vhd);
    assert!(r.dumpe.is_some(), "fixture: dumpe2fs reads the fixed VHD");
    let (doc, _exit) = scan_json([vhd.as_os_str()]);
    let t = only_target(&doc);
    assert!(
        t["target"]
            .as_str()
            .is_some_and(|s| s.starts_with(&*vhd.to_string_lossy())),
        "{t:#}"
    );
    assert_agrees("fixed VHD", t, r.dumpe.as_ref(), &r.fsck);
    assert_eq!(
        t["fstype"].as_str(),
        Some(blkid_type(&raw).as_str()),
        "{t:#}"
    );
}

#[test]
fn diff_vhd_fixed_mbr_two_ext4() {
    let dir = TestDir::new("vhdmbr");
    let raw = two_part_disk(&dir, "raw-disk.img", "dos");
    let vhd = dir.join("disk.vhd");
    fixtures::vhd_fixed(&raw, &vhd);
    check_partitions(&dir, &vhd);
}

// ---------------------------------------------------------------------------------------------
// Exit codes (Nagios): 0 ok, 1 warning, 2 critical, 3 unknown; critical > unknown > warning > ok

fn summary(doc: &Value) -> [i64; 4] {
    ["ok", "warning", "critical", "unknown"].map(|k| {
        doc["summary"][k]
            .as_i64()
            .unwrap_or_else(|| panic!("summary.{k} missing: {doc:#}"))
    })
}

#[test]
fn exit_0_clean() {
    let dir = TestDir::new("exit0");
    let img = fixtures::ext4(&dir, "ok.img", &[]);
    let (doc, exit) = scan_json([img.as_os_str()]);
    assert_eq!(exit, 0, "{doc:#}");
    assert_eq!(summary(&doc), [1, 0, 0, 0], "{doc:#}");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["command"], "scan");
}

#[test]
fn exit_1_warning() {
    let (_dir, img) = with_state(0);
    let (doc, exit) = scan_json([img.as_os_str()]);
    assert_eq!(exit, 1, "{doc:#}");
    assert_eq!(summary(&doc), [0, 1, 0, 0], "{doc:#}");
}

#[test]
fn exit_2_critical() {
    let (_dir, img) = with_state(3);
    let (doc, exit) = scan_json([img.as_os_str()]);
    assert_eq!(exit, 2, "{doc:#}");
    assert_eq!(summary(&doc), [0, 0, 1, 0], "{doc:#}");
}

#[test]
fn exit_3_unknown() {
    let dir = TestDir::new("exit3");
    let img = fixtures::ext4(&dir, "unknown.img", &[]);
    let raw = fixtures::read_at(&img, 1024 + 0x60, 4);
    let incompat = u32::from_le_bytes(raw.try_into().expect("4 bytes")) | 0x8000_0000;
    fixtures::debugfs_w(&img, &format!("ssv feature_incompat {incompat:#x}"));
    let (doc, exit) = scan_json([img.as_os_str()]);
    assert_eq!(exit, 3, "{doc:#}");
    assert_eq!(summary(&doc), [0, 0, 0, 1], "{doc:#}");
}

#[test]
fn exit_precedence_over_several_targets() {
    let dir = TestDir::new("precedence");
    let ok = fixtures::ext4(&dir, "ok.img", &[]);
    let warn = fixtures::ext4(&dir, "warn.img", &[]);
    fixtures::debugfs_w(&warn, "ssv state 0");
    let crit = fixtures::ext4(&dir, "crit.img", &[]);
    fixtures::debugfs_w(&crit, "ssv state 3");
    let unknown = dir.join("empty.img");
    std::fs::write(&unknown, b"").expect("empty file");

    let cases: [(&[&Path], i32); 4] = [
        (&[&ok, &warn], 1),
        (&[&warn, &unknown], 3),
        (&[&unknown, &crit, &ok], 2),
        (&[&ok, &ok], 0),
    ];
    for (imgs, want) in cases {
        let out = scan_json_full(imgs.iter().map(|p| p.as_os_str()));
        assert_eq!(out.exit, want, "{imgs:?}: {}", out.stdout);
        let doc = out.json();
        assert_eq!(
            summary(&doc).iter().sum::<i64>(),
            imgs.len() as i64,
            "{imgs:?}: {doc:#}"
        );
    }
}
