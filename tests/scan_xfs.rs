//! Differential tests of `snapguard scan --json` on XFS against `xfs_logprint -t` and
//! `xfs_db`, one test per fixture built at test time (shared/reference/ondisk-state.md §6):
//! fresh, crash copy, frozen copy, shutdown + umount, mount + umount, inprogress,
//! NEEDSREPAIR, bad CRC, a corrupt log, a truncated image and a live mount.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::fixtures::{self, LoopMount};
use common::*;
use serde_json::Value;

/// mkfs.xfs refuses data devices under 300 MiB.
const XFS_IMAGE: u64 = 320 << 20;

/// A sparse image with a fresh XFS.
fn mkfs_xfs(dir: &TestDir, name: &str) -> PathBuf {
    let img = dir.join(name);
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(XFS_IMAGE))
        .expect("create image");
    run(
        "mkfs.xfs",
        &[OsStr::new("-q"), OsStr::new("-f"), img.as_os_str()],
    );
    img
}

/// xfs_io writes, each file fsync'ed so the log holds them.
fn write_files(mnt: &Path) {
    std::fs::create_dir_all(mnt.join("d")).expect("mkdir on fixture");
    for i in 0..8 {
        let f = mnt.join("d").join(format!("f{i}"));
        run(
            "xfs_io",
            &[
                OsStr::new("-f"),
                OsStr::new("-c"),
                OsStr::new("pwrite -q 0 64k"),
                OsStr::new("-c"),
                OsStr::new("fsync"),
                f.as_os_str(),
            ],
        );
    }
}

fn mounted(dir: &TestDir, img: &Path, tag: &str) -> LoopMount {
    let m = fixtures::loop_mount(dir, img, tag, None);
    write_files(m.dir());
    m
}

fn xfs_db_sb(img: &Path, field: &str) -> String {
    let out = run(
        "xfs_db",
        &[
            OsStr::new("-r"),
            OsStr::new("-c"),
            OsStr::new("sb 0"),
            OsStr::new("-c"),
            OsStr::new(&format!("print {field}")),
            img.as_os_str(),
        ],
    );
    out.split_once(" = ")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("xfs_db print {field}: {out}"))
}

fn xfs_db_write(img: &Path, command: &str) {
    run(
        "xfs_db",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("sb 0"),
            OsStr::new("-c"),
            OsStr::new(command),
            img.as_os_str(),
        ],
    );
}

/// What `xfs_logprint -t` says: (tail, head, clean), or None when it cannot find them.
fn logprint(img: &Path) -> Option<(u64, u64, bool)> {
    let r = run_any("xfs_logprint", &[OsStr::new("-t"), img.as_os_str()]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("log tail:"))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["log", "tail:", tail, "head:", head, "state:", state] => Some((
            tail.parse().ok()?,
            head.parse().ok()?,
            match *state {
                "<CLEAN>" => true,
                "<DIRTY>" => false,
                _ => return None,
            },
        )),
        _ => None,
    }
}

/// Scan `img` (with `extra` args), check head/tail/clean against xfs_logprint -t, and
/// return the target and the exit code.
fn scan_and_compare(what: &str, img: &Path, extra: &[&str]) -> (Value, i32) {
    let reference = logprint(img);
    let mut args: Vec<&OsStr> = extra.iter().map(OsStr::new).collect();
    args.push(img.as_os_str());
    let (doc, exit) = scan_json(&args);
    let t = only_target(&doc).clone();
    assert_eq!(t["fstype"], "xfs", "{what}: {t:#}");
    let x = &t["xfs"];
    let (tail, head, clean) = reference
        .unwrap_or_else(|| panic!("{what}: xfs_logprint -t found no head/tail; ours {t:#}"));
    let ours = (
        x["log_tail"]["block"].as_u64(),
        x["log_head"]["block"].as_u64(),
        x["log_clean"].as_bool(),
    );
    assert_eq!(
        ours,
        (Some(tail), Some(head), Some(clean)),
        "{what}: ours (tail, head, clean) vs xfs_logprint -t; target {t:#}"
    );
    assert_eq!(t["needs_recovery"].as_bool(), Some(!clean), "{what}: {t:#}");
    assert!(t["fsck_reason"].is_null(), "{what}: {t:#}");
    assert_eq!(
        x["features_incompat"].as_u64(),
        u64::from_str_radix(
            xfs_db_sb(img, "features_incompat").trim_start_matches("0x"),
            16
        )
        .ok(),
        "{what}: incompat vs xfs_db"
    );
    note(&format!(
        "{what}: ours tail {:?} head {:?} clean {:?}; xfs_logprint -t tail {tail} head {head} clean {clean}",
        ours.0, ours.1, ours.2
    ));
    (t, exit)
}

fn severity<'a>(t: &'a Value, id: &str) -> &'a str {
    expect_finding(t, id)["severity"].as_str().unwrap_or("")
}

#[test]
fn fresh_xfs_is_clean() {
    if !require_root("fresh_xfs_is_clean") {
        return;
    }
    let dir = TestDir::new("xfs-fresh");
    let img = mkfs_xfs(&dir, "fresh.img");
    let (t, exit) = scan_and_compare("fresh", &img, &[]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["status"], "ok");
    assert!(finding_ids(&t).is_empty(), "{t:#}");
    assert_eq!(t["xfs"]["crc"], "ok");
    assert_eq!(t["xfs"]["version"], 5);
    assert_eq!(
        t["xfs"]["log_start"].as_u64().map(|v| v.to_string()),
        Some(xfs_db_sb(&img, "logstart"))
    );
}

#[test]
fn crash_copy_has_a_dirty_log_expected_in_a_crash_snapshot() {
    if !require_root("crash_copy_has_a_dirty_log_expected_in_a_crash_snapshot") {
        return;
    }
    let dir = TestDir::new("xfs-crash");
    let img = mkfs_xfs(&dir, "live.img");
    let copy = dir.join("crash.img");
    let m = mounted(&dir, &img, "crash");
    fixtures::sparse_copy(&img, &copy);
    m.unmount();

    let (t, exit) = scan_and_compare(
        "crash copy as crash snapshot",
        &copy,
        &["--snapshot", "crash"],
    );
    assert_eq!((exit, t["state"].as_str()), (0, Some("dirty log")), "{t:#}");
    assert_eq!(severity(&t, "xfs.dirty-log"), "info");

    // The same bytes said to be an offline disk: a warning with the replay remedy.
    let (t, exit) = scan_and_compare("crash copy as offline disk", &copy, &[]);
    assert_eq!(exit, 1, "{t:#}");
    let f = expect_finding(&t, "xfs.dirty-log");
    assert_eq!(f["severity"], "warning");
    let remedy = f["remedy"].as_str().expect("remedy");
    assert!(
        remedy.contains("mount -o loop")
            && remedy.contains("xfs_repair")
            // A token, not a substring: the temp dir's random name may contain "-L".
            && !remedy.split_whitespace().any(|word| word == "-L"),
        "{remedy}"
    );

    // A fully allocated copy (no holes: every probe is read) and one whose log has data
    // after a hole (a record's worth of nonzero bytes far into the zeroed part) agree with
    // xfs_logprint -t too, and the full copy says what the sparse one says.
    let full = dir.join("full.img");
    run(
        "cp",
        &[
            OsStr::new("--sparse=never"),
            copy.as_os_str(),
            full.as_os_str(),
        ],
    );
    let (tf, _) = scan_and_compare("fully allocated crash copy", &full, &[]);
    assert_eq!(tf["xfs"], t["xfs"], "{tf:#}");
    assert_eq!(tf["state"], t["state"]);
    let logstart: u64 = xfs_db_sb(&copy, "logstart").parse().unwrap();
    let blocksize: u64 = xfs_db_sb(&copy, "blocksize").parse().unwrap();
    let island = logstart * blocksize + 16 * 1024 * 1024;
    run(
        "dd",
        &[
            "if=/dev/urandom",
            &format!("of={}", copy.display()),
            "bs=4096",
            "count=4",
            &format!("seek={}", island / 4096),
            "conv=notrunc",
        ],
    );
    let (ti, _) = scan_and_compare("crash copy with data after a hole in its log", &copy, &[]);
    assert!(ti["xfs"].is_object(), "{ti:#}");

    // After the umount the original is clean again.
    let (t, exit) = scan_and_compare("original after umount", &img, &[]);
    assert_eq!((exit, t["state"].as_str()), (0, Some("clean")), "{t:#}");
}

#[test]
fn frozen_copy_has_a_dirty_log_that_is_expected() {
    if !require_root("frozen_copy_has_a_dirty_log_that_is_expected") {
        return;
    }
    let dir = TestDir::new("xfs-frozen");
    let img = mkfs_xfs(&dir, "live.img");
    let copy = dir.join("frozen.img");
    let m = mounted(&dir, &img, "frozen");
    let fr = Freeze::new(&m.mount);
    fixtures::sparse_copy(&img, &copy);
    fr.thaw();
    m.unmount();
    let (t, exit) = scan_and_compare("frozen copy", &copy, &["--snapshot", "frozen"]);
    assert_eq!((exit, t["state"].as_str()), (0, Some("dirty log")), "{t:#}");
    assert_eq!(severity(&t, "xfs.dirty-log"), "info");
}

#[test]
fn shutdown_then_umount_leaves_a_dirty_log() {
    if !require_root("shutdown_then_umount_leaves_a_dirty_log") {
        return;
    }
    let dir = TestDir::new("xfs-shutdown");
    let img = mkfs_xfs(&dir, "shutdown.img");
    let m = mounted(&dir, &img, "shutdown");
    run(
        "xfs_io",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("shutdown"),
            m.dir().as_os_str(),
        ],
    );
    m.unmount();
    let (t, exit) = scan_and_compare("shutdown", &img, &[]);
    assert_eq!((exit, t["state"].as_str()), (1, Some("dirty log")), "{t:#}");
    assert_eq!(severity(&t, "xfs.dirty-log"), "warning");
}

#[test]
fn mount_umount_is_clean() {
    if !require_root("mount_umount_is_clean") {
        return;
    }
    let dir = TestDir::new("xfs-cycled");
    let img = mkfs_xfs(&dir, "cycled.img");
    mounted(&dir, &img, "cycled").unmount();
    let (t, exit) = scan_and_compare("mount/umount", &img, &[]);
    assert_eq!((exit, t["state"].as_str()), (0, Some("clean")), "{t:#}");
    assert_eq!(t["xfs"]["log_unmount_record"], true);
}

#[test]
fn inprogress_needsrepair_and_bad_crc_are_critical() {
    if !require_root("inprogress_needsrepair_and_bad_crc_are_critical") {
        return;
    }
    let dir = TestDir::new("xfs-flags");
    let base = mkfs_xfs(&dir, "base.img");
    let incompat = u32::from_str_radix(
        xfs_db_sb(&base, "features_incompat").trim_start_matches("0x"),
        16,
    )
    .expect("incompat");

    let ip = dir.join("inprogress.img");
    fixtures::sparse_copy(&base, &ip);
    xfs_db_write(&ip, "write inprogress 1");
    let (t, exit) = scan_and_compare("inprogress", &ip, &[]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["state"], "offline operation in progress");
    assert_eq!(severity(&t, "xfs.inprogress"), "critical");

    let nr = dir.join("needsrepair.img");
    fixtures::sparse_copy(&base, &nr);
    xfs_db_write(
        &nr,
        &format!("write features_incompat {:#x}", incompat | 0x10),
    );
    let (t, exit) = scan_and_compare("needsrepair", &nr, &[]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["state"], "needs repair");
    assert_eq!(severity(&t, "xfs.needs-repair"), "critical");
    assert!(
        expect_finding(&t, "xfs.needs-repair")["remedy"]
            .as_str()
            .is_some_and(|r| r.starts_with("xfs_repair "))
    );

    let bad = dir.join("badcrc.img");
    fixtures::sparse_copy(&base, &bad);
    fixtures::patch(&bad, 108, b"X"); // fname byte, CRC left stale
    assert!(xfs_db_sb(&bad, "crc").contains("(bad)"));
    let (t, exit) = scan_and_compare("bad crc", &bad, &[]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["xfs"]["crc"], "bad");
    assert_eq!(severity(&t, "xfs.crc-mismatch"), "critical");
}

#[test]
fn a_log_without_record_headers_is_critical_and_truncation_is_unknown() {
    if !require_root("a_log_without_record_headers_is_critical_and_truncation_is_unknown") {
        return;
    }
    let dir = TestDir::new("xfs-badlog");
    let img = mkfs_xfs(&dir, "badlog.img");
    let (t, _) = scan_and_compare("before", &img, &[]);
    let x = &t["xfs"];
    let (start, blocks) = (
        x["log_start"].as_u64().unwrap(),
        x["log_blocks"].as_u64().unwrap(),
    );
    let (agblocks, bs) = (
        x["ag_blocks"].as_u64().unwrap(),
        x["block_size"].as_u64().unwrap(),
    );
    let agblklog: u32 = xfs_db_sb(&img, "agblklog").parse().unwrap();
    let offset = ((start >> agblklog) * agblocks + (start & ((1 << agblklog) - 1))) * bs;
    fixtures::patch(
        &img,
        offset,
        &vec![0xAB; usize::try_from(blocks * bs).unwrap()],
    );
    assert_eq!(
        logprint(&img),
        None,
        "xfs_logprint -t should fail on the garbage log"
    );
    let (doc, exit) = scan_json([img.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(severity(t, "xfs.log-unreadable"), "critical");
    assert!(
        t["needs_recovery"].is_null() && t["state"].is_null(),
        "{t:#}"
    );

    let trunc = dir.join("trunc.img");
    fixtures::extract(&mkfs_xfs(&dir, "whole.img"), 0, 100 << 20, &trunc);
    let (doc, exit) = scan_json([trunc.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!(exit, 3, "{t:#}");
    assert_eq!(t["status"], "unknown");
    expect_finding(t, "xfs.truncated");
    let tiny = dir.join("tiny.img");
    fixtures::extract(&trunc, 0, 300, &tiny);
    let (doc, exit) = scan_json([tiny.as_os_str()]);
    assert_eq!(exit, 3, "{doc:#}");
}

#[test]
fn a_live_mount_has_an_active_log_reported_as_info() {
    if !require_root("a_live_mount_has_an_active_log_reported_as_info") {
        return;
    }
    let dir = TestDir::new("xfs-live");
    let img = mkfs_xfs(&dir, "live.img");
    let m = mounted(&dir, &img, "live");
    let (doc, exit) = scan_json([m.dir().as_os_str()]);
    let t = only_target(&doc).clone();
    m.unmount();
    assert_eq!(t["context"], "live", "{t:#}");
    assert_eq!(t["fstype"], "xfs");
    assert_eq!(exit, 0, "{t:#}");
    if t["needs_recovery"] == true {
        assert_eq!(severity(&t, "xfs.dirty-log"), "info");
    }
}
