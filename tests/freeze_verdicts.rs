//! `snapguard freeze-test` on real loop-mounted filesystems (privileged): ext4, XFS and btrfs
//! are freezable; tmpfs unsupported; a read-only mount read-only; a bind mount a duplicate; a
//! filesystem frozen by `fsfreeze -f` already-frozen and still frozen afterwards; config skips;
//! exit codes; every document validated against its JSON Schema; every test filesystem accepts a
//! write within a second after each run.

mod common;
mod freeze_support;

use common::{Mount, TestDir, require_root, run_snapguard};
use freeze_support::*;
use std::ffi::OsStr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn ext4_xfs_btrfs_tmpfs_readonly_bind_and_foreign_freeze() {
    if !require_root("ext4_xfs_btrfs_tmpfs_readonly_bind_and_foreign_freeze") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-verdicts");
    let ext4 = TestFs::new(&dir, "ext4", "ext4", 64 * MIB);
    let xfs = TestFs::new(&dir, "xfs", "xfs", 320 * MIB);
    let btrfs = TestFs::new(&dir, "btrfs", "btrfs", 160 * MIB);
    let ro = TestFs::in_dir(&dir.path(), &dir, "ro", "ext4", 32 * MIB, Some("ro"));
    let tmpfs = Tmpfs::new(&dir, "tmpfs");
    let tmpfs_dir = tmpfs.dir().to_path_buf();
    let bind_dir = dir.mkdir("bind");
    let _bind = Mount::bind(ext4.dir(), &bind_dir);
    let foreign = TestFs::new(&dir, "foreign", "ext4", 32 * MIB);

    let frozen_by_other = foreign.fsfreeze();
    let args: Vec<&OsStr> = vec![
        OsStr::new("freeze-test"),
        OsStr::new("--json"),
        OsStr::new("--timeout"),
        OsStr::new("10s"),
        ext4.dir().as_os_str(),
        xfs.dir().as_os_str(),
        btrfs.dir().as_os_str(),
        ro.dir().as_os_str(),
        tmpfs_dir.as_os_str(),
        bind_dir.as_os_str(),
        foreign.dir().as_os_str(),
    ];
    let out = run_snapguard(&args, T);
    let doc = out.json();
    assert_schema("freeze-test", &doc);
    assert_eq!(
        out.exit, 1,
        "skipped/unsupported/already-frozen → 1\n{doc:#}"
    );
    for fs in [&ext4, &xfs, &btrfs] {
        let r = row(&doc, fs.dir());
        assert_eq!(r["verdict"], "freezable", "{r:#}");
        for k in ["sync_ms", "freeze_ms", "frozen_ms", "thaw_ms"] {
            assert!(r[k].as_f64().is_some(), "{k} missing in {r:#}");
        }
        assert_eq!(r["thawed_by"], "snapguard");
    }
    assert_eq!(row(&doc, &tmpfs_dir)["verdict"], "unsupported");
    assert_eq!(row(&doc, ro.dir())["verdict"], "read-only");
    let b = row(&doc, &bind_dir);
    assert_eq!(b["duplicate_of"], ext4.dir().to_str().unwrap(), "{b:#}");
    assert!(b["reason"].as_str().unwrap().contains("duplicate of"));
    let f = row(&doc, foreign.dir());
    assert_eq!(f["verdict"], "already-frozen", "{f:#}");
    assert_eq!(f["errno"], "EBUSY");

    // The foreign freeze is left as it is.
    let (blocked, mut writer) = write_blocks(foreign.dir(), Duration::from_millis(300));
    assert!(blocked, "snapguard thawed a freeze it did not make");
    frozen_by_other.thaw();
    let _ = writer.wait();
    for fs in [&ext4, &xfs, &btrfs, &foreign] {
        assert_writable(fs.dir(), "after freeze-test");
    }

    // Human output of the same run names the verdicts.
    let human = run_snapguard(
        [
            OsStr::new("freeze-test"),
            ext4.dir().as_os_str(),
            tmpfs_dir.as_os_str(),
        ],
        T,
    );
    assert_eq!(human.exit, 1);
    assert!(human.stdout.contains("freezable") && human.stdout.contains("unsupported"));
    assert_writable(ext4.dir(), "after the human run");
    timed(
        "ext4_xfs_btrfs_tmpfs_readonly_bind_and_foreign_freeze",
        start,
    );
}

#[test]
fn all_freezable_exits_0_and_probe_only_touches_nothing() {
    if !require_root("all_freezable_exits_0_and_probe_only_touches_nothing") {
        return;
    }
    let dir = TestDir::new("freeze-exit0");
    let a = TestFs::new(&dir, "a", "ext4", 32 * MIB);
    let out = run_snapguard(
        [
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            a.dir().as_os_str(),
        ],
        T,
    );
    assert_eq!(out.exit, 0, "{}", out.stdout);
    assert_writable(a.dir(), "after freeze-test");

    // --probe-only on a frozen filesystem: static verdict, no syncfs, no hang, still frozen.
    let held = a.fsfreeze();
    let out = run_snapguard(
        [
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            OsStr::new("--probe-only"),
            a.dir().as_os_str(),
        ],
        T,
    );
    let doc = out.json();
    assert_schema("freeze-test", &doc);
    assert_eq!(doc["probe_only"], true);
    let r = row(&doc, a.dir());
    assert_eq!(r["verdict"], "freezable");
    assert!(r["sync_ms"].is_null() && r["freeze_ms"].is_null());
    let (blocked, mut w) = write_blocks(a.dir(), Duration::from_millis(200));
    assert!(blocked);
    held.thaw();
    let _ = w.wait();
    assert_writable(a.dir(), "after probe-only");

    // The default set in probe-only mode (the host's own filesystems, never frozen here).
    let out = run_snapguard(
        [
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            OsStr::new("--probe-only"),
            OsStr::new("--all"),
        ],
        T,
    );
    assert!(out.exit <= 2, "{}", out.stderr);
    assert_schema("freeze-test", &out.json());
}

#[test]
fn config_skips_are_explained_and_bad_input_exits_3() {
    if !require_root("config_skips_are_explained_and_bad_input_exits_3") {
        return;
    }
    let dir = TestDir::new("freeze-skip");
    let a = TestFs::new(&dir, "a", "ext4", 32 * MIB);
    let b = TestFs::new(&dir, "b", "ext4", 32 * MIB);
    let cfg = config(
        &dir,
        &format!(
            "[freeze]\nskip = [\"{}/a\"]\nskip_fstypes = []\n",
            dir.path().display()
        ),
    );
    let out = run_snapguard(
        [
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            a.dir().as_os_str(),
            b.dir().as_os_str(),
        ],
        T,
    );
    let doc = out.json();
    assert_eq!(out.exit, 1);
    let r = row(&doc, a.dir());
    assert_eq!(r["verdict"], "skipped");
    assert!(
        r["reason"].as_str().unwrap().contains("[freeze] skip"),
        "{r:#}"
    );
    assert_eq!(row(&doc, b.dir())["verdict"], "freezable");

    let glob = config(
        &dir,
        &format!("[freeze]\nskip = [\"{}/*\"]\n", dir.path().display()),
    );
    let out = run_snapguard(
        [
            OsStr::new("--config"),
            glob.as_os_str(),
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            a.dir().as_os_str(),
            b.dir().as_os_str(),
        ],
        T,
    );
    let doc = out.json();
    assert_eq!(row(&doc, a.dir())["verdict"], "skipped");
    assert_eq!(row(&doc, b.dir())["verdict"], "skipped");

    let notmp = dir.mkdir("plain");
    let out = run_snapguard([OsStr::new("freeze-test"), notmp.as_os_str()], T);
    assert_eq!(out.exit, 3, "not a mount point → 3: {}", out.stderr);
    assert!(out.stderr.contains("not a mount point"), "{}", out.stderr);
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            notmp.as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        T,
    );
    assert_eq!(out.exit, 125, "freeze: cannot run → 125: {}", out.stderr);
    for fs in [&a, &b] {
        assert_writable(fs.dir(), "after skip runs");
    }
}

#[test]
fn freeze_runs_cmd_with_the_frozen_list_and_validates() {
    if !require_root("freeze_runs_cmd_with_the_frozen_list_and_validates") {
        return;
    }
    let dir = TestDir::new("freeze-cmd");
    let a = TestFs::new(&dir, "a", "ext4", 32 * MIB);
    let b = TestFs::new(&dir, "b", "xfs", 320 * MIB);
    let seen = dir.join("seen");
    let script = format!(
        "printf '%s' \"$SNAPGUARD_FROZEN\" > '{}'; exit 7",
        seen.display()
    );
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            a.dir().as_os_str(),
            b.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&script),
        ],
        T,
    );
    assert_eq!(
        out.exit, 7,
        "CMD's status is passed through\n{}",
        out.stdout
    );
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(doc["outcome"], "completed");
    assert_eq!(doc["cmd"]["exit_code"], 7);
    assert!(doc["window_ms"].as_f64().unwrap() > 0.0);
    let listed = std::fs::read_to_string(&seen).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for fs in [&a, &b] {
        assert!(listed.contains(&fs.dir().to_str().unwrap()));
        assert_eq!(row(&doc, fs.dir())["thawed_by"], "snapguard");
        assert_writable(fs.dir(), "after freeze");
    }

    // Not found → 127, nothing left frozen.
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            a.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("/nonexistent/cmd"),
        ],
        T,
    );
    assert_eq!(out.exit, 127);
    assert_schema("freeze", &out.json());
    assert_writable(a.dir(), "after CMD not found");

    // A foreign freeze in the set: freeze fails (125), ours are thawed, the foreign one stays.
    let held = b.fsfreeze();
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            a.dir().as_os_str(),
            b.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        T,
    );
    assert_eq!(out.exit, 125);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(doc["outcome"], "freeze-failed");
    assert_eq!(row(&doc, b.dir())["verdict"], "already-frozen");
    assert!(doc["cmd"].is_null(), "CMD must not run");
    assert_writable(a.dir(), "ours thawed after a failed freeze");
    let (blocked, mut w) = write_blocks(b.dir(), Duration::from_millis(200));
    assert!(blocked, "the foreign freeze was thawed");
    held.thaw();
    let _ = w.wait();
    assert_writable(b.dir(), "after the foreign thaw");
}
