//! Many targets in one `snapguard scan`: they are scanned on every core, and the report must
//! be the one a target-by-target run gives: the same targets, in the order given, with the
//! same content, the same problems on stderr in the same order, the worst exit code. And the
//! list of loop devices, read once per run, still finds the image behind a mounted one
//! wherever it stands in the list.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;

use common::fixtures::{self, MIB};
use common::*;
use serde_json::Value;

/// A mix of verdicts, each with a twin, so that there are enough targets for every worker
/// (four per worker) and the workers finish out of order: XFS, a partitioned disk and the
/// problems take longer than a clean ext4.
fn mixed_targets(dir: &TestDir) -> Vec<PathBuf> {
    let clean = fixtures::ext4(dir, "clean.img", &[]);
    let not_clean = fixtures::ext4(dir, "not-clean.img", &[]);
    fixtures::debugfs_w(&not_clean, "ssv state 0");
    let errors = fixtures::mkfs(dir, "errors.img", fixtures::Kind::Ext4, 1024, &[], 16 * MIB);
    fixtures::debugfs_w_script(
        &errors,
        &[
            "ssv state 2",
            "ssv error_count 3",
            "ssv first_error_time 20240102030405",
            "ssv first_error_func ext4_lookup",
        ],
    );
    let ext2 = fixtures::mkfs(dir, "ext2.img", fixtures::Kind::Ext2, 1024, &[], 8 * MIB);
    let xfs = fixtures::made_by(dir, "xfs.img", 320 * MIB, "mkfs.xfs", &["-q", "-f"]);
    let empty = dir.join("empty.img");
    fs::write(&empty, b"").unwrap();
    let junk = dir.join("junk.img");
    fs::write(&junk, vec![0x5Au8; 64 * 1024]).unwrap();
    let not_a_mount = dir.mkdir("plain-dir");
    let missing = dir.join("missing.img");
    vec![
        clean.clone(),
        xfs.clone(),
        not_clean.clone(),
        missing.clone(),
        errors.clone(),
        junk.clone(),
        ext2.clone(),
        empty.clone(),
        not_a_mount.clone(),
        xfs,
        clean.clone(),
        errors,
        not_a_mount,
        not_clean,
        missing,
        ext2,
        junk,
        clean,
    ]
}

/// `snapguard scan --json TARGETS...`.
fn scan(targets: &[PathBuf]) -> Outcome {
    scan_json_full(targets.iter().map(|t| t.as_os_str()))
}

#[test]
fn many_targets_in_one_run_match_one_run_each() {
    let dir = TestDir::new("scan-many");
    let targets = mixed_targets(&dir);
    let all = scan(&targets);
    let doc = all.json();
    assert_schema("scan", &doc);

    let mut expected_targets = Vec::new();
    let mut expected_stderr = String::new();
    let mut worst = 0;
    for target in &targets {
        let one = scan(std::slice::from_ref(target));
        expected_targets.extend(one.json()["targets"].as_array().unwrap().iter().cloned());
        expected_stderr.push_str(&one.stderr);
        // CRITICAL beats UNKNOWN beats WARNING beats OK.
        let rank = |code: i32| [0, 1, 3, 2].iter().position(|&c| c == code).unwrap();
        if rank(one.exit) > rank(worst) {
            worst = one.exit;
        }
    }
    let got = targets_of(&doc);
    assert_eq!(got.len(), expected_targets.len(), "{doc:#}");
    for (i, (got, want)) in got.iter().zip(&expected_targets).enumerate() {
        assert_eq!(got, want, "target {i} differs from its own run");
    }
    assert_eq!(
        all.stderr, expected_stderr,
        "problems, in the targets' order"
    );
    assert_eq!(all.exit, worst, "{all:?}");
    assert_eq!(all.exit, 2, "the errors image is critical: {all:?}");

    // Reversed, the report is reversed.
    let reversed: Vec<PathBuf> = targets.iter().rev().cloned().collect();
    let back = scan(&reversed).json();
    let mut want: Vec<Value> = targets_of(&doc).clone();
    want.reverse();
    assert_eq!(targets_of(&back), &want);

    // The human report of the same run, twice: the same bytes.
    let args: Vec<&OsStr> = std::iter::once(OsStr::new("scan"))
        .chain(targets.iter().map(|t| t.as_os_str()))
        .collect();
    let first = run_snapguard(&args, SCAN_TIMEOUT);
    let second = run_snapguard(&args, SCAN_TIMEOUT);
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(first.stderr, second.stderr);
}

fn targets_of(doc: &Value) -> &Vec<Value> {
    doc["targets"].as_array().expect("a targets array")
}

#[test]
fn an_image_behind_a_mounted_loop_device_is_live_anywhere_in_a_long_list() {
    if !require_root("an_image_behind_a_mounted_loop_device_is_live_anywhere_in_a_long_list") {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("scan-many-in-use");
    let busy = fixtures::ext4(&dir, "busy.img", &[]);
    let idle: Vec<PathBuf> = (0..9)
        .map(|i| {
            fixtures::mkfs(
                &dir,
                &format!("idle-{i}.img"),
                fixtures::Kind::Ext4,
                1024,
                &[],
                8 * MIB,
            )
        })
        .collect();
    let m = fixtures::loop_mount(&dir, &busy, "busy", None);
    // The busy image first, in the middle and last: the loop list is read for the first
    // image and shared by the rest.
    let mut targets = vec![busy.clone()];
    targets.extend(idle[..5].iter().cloned());
    targets.push(busy.clone());
    targets.extend(idle[5..].iter().cloned());
    targets.push(busy.clone());
    let out = scan(&targets);
    let doc = out.json();
    let got = targets_of(&doc);
    assert_eq!(got.len(), targets.len(), "{doc:#}");
    for (t, path) in got.iter().zip(&targets) {
        assert_eq!(
            t["target"].as_str(),
            Some(&*path.to_string_lossy()),
            "{t:#}"
        );
        if *path == busy {
            assert_eq!(t["context"], "live", "{t:#}");
            let f = expect_finding(t, "scan.in-use");
            assert!(
                f["message"].as_str().unwrap().contains(m.lo.name()),
                "{f:#}"
            );
        } else {
            assert_eq!(t["context"], "offline", "{t:#}");
            assert!(finding(t, "scan.in-use").is_none(), "{t:#}");
        }
    }
    m.unmount();
}
