//! Freeze order and logging while frozen (privileged).
//!
//! * A loop-backed ext4 whose image lives on another loop-mounted ext4 is frozen inner first
//!   and thawed outer first, even when named outer first. The proof is twofold: the report's
//!   monotonic timestamps, and the fact that the run finishes at all with dirty data in the
//!   inner filesystem: frozen the other way round, the inner freeze's sync would write into the
//!   frozen outer image and block until the guardian's deadline (exit 124).
//! * The same through a partition: the inner ext4 is on `/dev/loopNp1` of a GPT disk image that
//!   lives on the outer filesystem (`losetup --partscan`); the partition leads to its whole
//!   loop device, whose image is proven to be on the outer mount (`matched_by: dev-ino`).
//!   This kernel has no device-mapper or md, so dm/md stacks (several loops, nested, over
//!   partitions) are covered by the sysfs fixture unit tests of `freeze::stack` and
//!   `freeze::plan` only.
//! * `--log-file` inside a frozen mount does not deadlock: the log lines written while frozen
//!   reach the file after the thaw.

mod common;
mod freeze_support;

use common::{TestDir, require_root, run_snapguard};
use freeze_support::*;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

#[test]
fn loop_backed_inner_is_frozen_first_and_thawed_last() {
    if !require_root("loop_backed_inner_is_frozen_first_and_thawed_last") {
        return;
    }
    let dir = TestDir::new("freeze-order");
    let outer = TestFs::new(&dir, "outer", "ext4", 128 * MIB);
    let inner = TestFs::in_dir(outer.dir(), &dir, "inner", "ext4", 48 * MIB, None);
    for round in 0..3 {
        // Dirty data in the inner filesystem, so its freeze has to write into the image.
        std::fs::write(inner.dir().join("dirty"), vec![round as u8; 8 << 20]).unwrap();
        let out = run_snapguard(
            [
                OsStr::new("freeze"),
                OsStr::new("--json"),
                OsStr::new("--no-hooks"),
                OsStr::new("--timeout"),
                OsStr::new("10s"),
                outer.dir().as_os_str(),
                inner.dir().as_os_str(),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            Duration::from_secs(60),
        );
        let doc = out.json();
        assert_schema("freeze", &doc);
        assert_eq!(out.exit, 0, "{doc:#}");
        let (o, i) = (row(&doc, outer.dir()), row(&doc, inner.dir()));
        assert_eq!(i["backing_mount"], outer.dir().to_str().unwrap(), "{i:#}");
        assert_backing(i, &inner.image, inner.dev.name(), outer.dir());
        let f =
            |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r:#}"));
        assert!(
            f(i, "frozen_at_ms") < f(o, "frozen_at_ms"),
            "inner must be frozen first: {doc:#}"
        );
        assert!(
            f(o, "thawed_at_ms") < f(i, "thawed_at_ms"),
            "outer must be thawed first: {doc:#}"
        );
        assert!(f(o, "frozen_ms") < 10_000.0, "no deadline thaw");
        assert_eq!(i["thawed_by"], "snapguard");
        assert_writable(inner.dir(), "inner");
        assert_writable(outer.dir(), "outer");
    }
    // freeze-test lists the dependency too.
    let out = run_snapguard(
        [
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            inner.dir().as_os_str(),
        ],
        Duration::from_secs(60),
    );
    let doc = out.json();
    assert!(
        row(&doc, inner.dir())["reason"]
            .as_str()
            .unwrap()
            .contains("loop-backed"),
        "{doc:#}"
    );
    assert_writable(inner.dir(), "inner after freeze-test");
}

/// The row's one `backing` entry names `image` on `loop_name`, held by `outer`, proven by
/// dev/inode.
fn assert_backing(row: &serde_json::Value, image: &Path, loop_name: &str, outer: &Path) {
    let backing = row["backing"].as_array().expect("backing array");
    assert_eq!(backing.len(), 1, "{row:#}");
    let b = &backing[0];
    assert_eq!(b["file"], image.to_str().unwrap(), "{row:#}");
    assert_eq!(b["loop"], loop_name, "{row:#}");
    assert_eq!(b["mount"], outer.to_str().unwrap(), "{row:#}");
    assert_eq!(b["matched_by"], "dev-ino", "{row:#}");
}

#[test]
fn a_filesystem_on_a_loop_partition_is_frozen_before_the_one_holding_the_disk_image() {
    if !require_root(
        "a_filesystem_on_a_loop_partition_is_frozen_before_the_one_holding_the_disk_image",
    ) {
        return;
    }
    let dir = TestDir::new("freeze-order-part");
    // Declared outer first: dropped last (inner thawed, unmounted and detached before).
    let outer = TestFs::new(&dir, "outer", "ext4", 128 * MIB);
    let inner = PartitionedTestFs::in_dir(outer.dir(), &dir, "inner", 48 * MIB);
    // Dirty data in the inner filesystem, so its freeze has to write into the outer image.
    std::fs::write(inner.dir().join("dirty"), vec![7u8; 8 << 20]).unwrap();
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("10s"),
            outer.dir().as_os_str(),
            inner.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        Duration::from_secs(60),
    );
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 0, "{doc:#}");
    let (o, i) = (row(&doc, outer.dir()), row(&doc, inner.dir()));
    assert_eq!(i["device"], inner.partition.to_str().unwrap(), "{i:#}");
    assert_eq!(i["backing_mount"], outer.dir().to_str().unwrap(), "{i:#}");
    assert_eq!(i["backing_file"], inner.image.to_str().unwrap(), "{i:#}");
    assert_backing(i, &inner.image, inner.dev.name(), outer.dir());
    // The outer filesystem is loop-backed too (its image is in the temp dir).
    assert_eq!(
        o["backing"][0]["file"],
        outer.image.to_str().unwrap(),
        "{o:#}"
    );
    assert_eq!(o["backing"][0]["loop"], outer.dev.name(), "{o:#}");
    assert_eq!(o["backing"][0]["matched_by"], "dev-ino", "{o:#}");
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r:#}"));
    assert!(
        f(i, "frozen_at_ms") < f(o, "frozen_at_ms"),
        "inner must be frozen first: {doc:#}"
    );
    assert!(
        f(o, "thawed_at_ms") < f(i, "thawed_at_ms"),
        "outer must be thawed first: {doc:#}"
    );
    assert_eq!(i["thawed_by"], "snapguard");
    assert_writable(inner.dir(), "inner");
    assert_writable(outer.dir(), "outer");

    // freeze-test lists the dependency: the image and the mount holding it.
    let out = run_snapguard(
        [
            OsStr::new("freeze-test"),
            OsStr::new("--json"),
            inner.dir().as_os_str(),
        ],
        Duration::from_secs(60),
    );
    let doc = out.json();
    assert_schema("freeze-test", &doc);
    let i = row(&doc, inner.dir());
    let reason = i["reason"].as_str().unwrap();
    let expected = format!(
        "loop-backed: image {} ({}) on {}",
        inner.image.display(),
        inner.dev.name(),
        outer.dir().display()
    );
    assert!(reason.contains(&expected), "{reason}");
    assert_backing(i, &inner.image, inner.dev.name(), outer.dir());
    assert_writable(inner.dir(), "inner after freeze-test");
}

#[test]
fn log_file_inside_a_frozen_mount_does_not_deadlock() {
    if !require_root("log_file_inside_a_frozen_mount_does_not_deadlock") {
        return;
    }
    let dir = TestDir::new("freeze-logfile");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let log = fs.dir().join("snapguard.log");
    for _ in 0..3 {
        let out = run_snapguard(
            [
                OsStr::new("-vv"),
                OsStr::new("--log-file"),
                log.as_os_str(),
                OsStr::new("freeze"),
                OsStr::new("--no-hooks"),
                OsStr::new("--timeout"),
                OsStr::new("5s"),
                fs.dir().as_os_str(),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(out.exit, 0, "{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("completed"), "{}", out.stdout);
        assert_writable(fs.dir(), "after a run logging into the frozen mount");
    }
    // Same with stderr itself redirected into the frozen mount.
    let err_file = fs.dir().join("stderr.txt");
    let status = std::process::Command::new(bin())
        .args([
            OsStr::new("-vv"),
            OsStr::new("freeze"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("5s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("frozen") || text.contains("freeze"),
        "log lines held while frozen reach the file: {text}"
    );
    assert_writable(fs.dir(), "after stderr into the frozen mount");
}
