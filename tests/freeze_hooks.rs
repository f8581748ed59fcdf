//! Freeze/thaw hooks (privileged): name order for `freeze`, reverse for `thaw`, every hook that
//! ran for freeze runs for thaw (even the one that failed), a hook timeout kills the hook's
//! process group, and a world-writable hook is refused before anything is frozen.

mod common;
mod freeze_support;

use common::{TestDir, require_root, run_snapguard};
use freeze_support::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A hook that appends "NAME PHASE FROZEN?" to `log`; FROZEN? is whether the test filesystem
/// blocks a write at that moment (checked with a background write and a short wait).
fn hook(dir: &Path, name: &str, log: &Path, extra: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"{name} $1 $SNAPGUARD_PHASE\" >> '{}'\n{extra}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn freeze_with_hooks(hooks: &Path, fs: &TestFs, extra: &[&str]) -> common::Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("freeze"),
        OsStr::new("--json"),
        OsStr::new("--hooks-dir"),
        hooks.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.extend([fs.dir().as_os_str(), OsStr::new("--"), OsStr::new("true")]);
    run_snapguard(&args, Duration::from_secs(60))
}

#[test]
fn hooks_run_in_order_and_thaw_in_reverse() {
    if !require_root("hooks_run_in_order_and_thaw_in_reverse") {
        return;
    }
    let dir = TestDir::new("freeze-hooks");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let hooks = dir.mkdir("hooks.d");
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("hooks.log");
    hook(&hooks, "10-db", &log, "");
    hook(&hooks, "20-app", &log, "");
    hook(&hooks, "30-cache", &log, "");
    // Not hooks: not executable, editor leftovers.
    std::fs::write(hooks.join("README"), "docs").unwrap();
    hook(&hooks, "15-old.bak", &log, "");

    let out = freeze_with_hooks(&hooks, &fs, &[]);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 0, "{doc:#}");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        vec![
            "10-db freeze freeze",
            "20-app freeze freeze",
            "30-cache freeze freeze",
            "30-cache thaw thaw",
            "20-app thaw thaw",
            "10-db thaw thaw",
        ]
    );
    assert_eq!(doc["hooks"].as_array().unwrap().len(), 6);
    assert_writable(fs.dir(), "after hooks");

    // A failing freeze hook: nothing frozen, CMD not run, thaw run for every hook that ran
    // (including the failed one), in reverse.
    std::fs::remove_file(&log).unwrap();
    hook(&hooks, "20-app", &log, "exit 3");
    let out = freeze_with_hooks(&hooks, &fs, &[]);
    let doc = out.json();
    assert_eq!(out.exit, 125);
    assert_eq!(doc["outcome"], "hook-failed");
    assert!(doc["window_ms"].is_null(), "nothing was frozen");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        vec![
            "10-db freeze freeze",
            "20-app freeze freeze",
            "20-app thaw thaw",
            "10-db thaw thaw",
        ]
    );
    assert_writable(fs.dir(), "after a failed hook");
}

#[test]
fn hook_timeout_and_world_writable_refusal() {
    if !require_root("hook_timeout_and_world_writable_refusal") {
        return;
    }
    let dir = TestDir::new("freeze-hooks2");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let hooks = dir.mkdir("hooks.d");
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.join("hooks.log");
    hook(&hooks, "10-slow", &log, "sleep 30 & wait");

    let t0 = Instant::now();
    let out = freeze_with_hooks(&hooks, &fs, &["--hook-timeout", "1s"]);
    let doc = out.json();
    assert_eq!(out.exit, 125, "{doc:#}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let h = &doc["hooks"][0];
    assert_eq!(h["result"], "timeout", "{doc:#}");
    assert_eq!(doc["hooks"][1]["phase"], "thaw");
    assert_writable(fs.dir(), "after a hook timeout");

    // World-writable hook: refused, nothing runs, nothing frozen.
    std::fs::remove_file(hooks.join("10-slow")).unwrap();
    std::fs::remove_file(&log).ok();
    let bad = hook(&hooks, "10-open", &log, "");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o757)).unwrap();
    let out = freeze_with_hooks(&hooks, &fs, &[]);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 125);
    assert_eq!(doc["outcome"], "hook-failed");
    assert_eq!(doc["hooks"][0]["result"], "refused");
    assert!(
        doc["hooks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("everyone"),
        "{doc:#}"
    );
    assert!(!log.exists(), "a refused hook must not run");
    assert!(doc["window_ms"].is_null());
    assert_writable(fs.dir(), "after a refused hook");

    // A group-writable hook directory is refused too.
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = freeze_with_hooks(&hooks, &fs, &[]);
    assert_eq!(out.exit, 125);
    assert_eq!(out.json()["hooks"][0]["result"], "refused");
}
