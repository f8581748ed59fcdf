//! What a first user of `freeze`, `freeze-test` and `thaw` runs into (privileged where a
//! filesystem is frozen): a mount point covered by a tmpfs, CMD's output going into the frozen
//! filesystem, where CMD's stdout goes, and every exit code of bad usage — each a test.

mod common;
mod freeze_support;

use common::{Mount, TestDir, require_root, run_snapguard};
use freeze_support::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn run(args: &[&OsStr]) -> common::Outcome {
    run_snapguard(args, T)
}

#[test]
fn a_mount_point_covered_by_a_tmpfs_is_reached_through_another_mount_or_failed() {
    if !require_root("a_mount_point_covered_by_a_tmpfs_is_reached_through_another_mount_or_failed")
    {
        return;
    }
    let dir = TestDir::new("freeze-covered");
    // (a) covered, with a bind mount of the same ext4 elsewhere.
    let reachable = TestFs::new(&dir, "reachable", "ext4", 32 * MIB);
    let bind_dir = dir.mkdir("bind");
    let _bind = Mount::bind(reachable.dir(), &bind_dir);
    let cover_a = Tmpfs::over(reachable.dir());
    // (b) covered, and no other mount of it.
    let hidden = TestFs::new(&dir, "hidden", "ext4", 32 * MIB);
    let cover_b = Tmpfs::over(hidden.dir());

    let out = run(&[
        OsStr::new("freeze-test"),
        OsStr::new("--json"),
        OsStr::new("--timeout"),
        OsStr::new("10s"),
        reachable.dir().as_os_str(),
        hidden.dir().as_os_str(),
    ]);
    let doc = out.json();
    assert_schema("freeze-test", &doc);
    let rows: Vec<&Value> = doc["mounts"].as_array().unwrap().iter().collect();
    let ext4 = |mp: &std::path::Path| {
        rows.iter()
            .find(|r| r["mountpoint"] == mp.to_str().unwrap() && r["fstype"] == "ext4")
            .copied()
            .unwrap_or_else(|| panic!("no ext4 row for {}: {doc:#}", mp.display()))
    };
    let a = ext4(reachable.dir());
    assert_eq!(a["verdict"], "freezable", "{a:#}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("reached through '{}'", bind_dir.display())),
        "{a:#}"
    );
    assert_eq!(a["thawed_by"], "snapguard", "{a:#}");
    let b = ext4(hidden.dir());
    assert_eq!(b["verdict"], "failed", "never unsupported: {b:#}");
    assert!(
        b["reason"].as_str().unwrap().contains("covered by a tmpfs"),
        "{b:#}"
    );
    assert!(b["freeze_ms"].is_null(), "no freeze is claimed: {b:#}");
    for r in &rows {
        if r["fstype"] == "tmpfs" {
            assert_eq!(r["verdict"], "unsupported", "{r:#}");
        }
    }
    assert_eq!(out.exit, 2, "a failure → 2\n{doc:#}");

    // `freeze` of the reachable one freezes the ext4 (proof: a write through the bind mount
    // blocks while CMD runs).
    let probe = dir.join("probe.out");
    // A write blocked by a freeze cannot be interrupted: probe from a background process.
    let script = format!(
        "(echo x > '{}/.probe') & w=$!; sleep 0.3; \
         if kill -0 $w 2>/dev/null; then echo blocked; else echo writable; fi > '{}'",
        bind_dir.display(),
        probe.display()
    );
    let out = run(&[
        OsStr::new("freeze"),
        OsStr::new("--json"),
        OsStr::new("--no-hooks"),
        OsStr::new("--timeout"),
        OsStr::new("10s"),
        reachable.dir().as_os_str(),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(&script),
    ]);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 0, "{doc:#}");
    assert_eq!(
        std::fs::read_to_string(&probe).unwrap().trim(),
        "blocked",
        "the ext4 under the tmpfs was frozen while CMD ran"
    );
    // `freeze` of the hidden one fails before anything is frozen.
    let marker = dir.join("cmd.ran");
    let out = run(&[
        OsStr::new("freeze"),
        OsStr::new("--json"),
        OsStr::new("--no-hooks"),
        hidden.dir().as_os_str(),
        OsStr::new("--"),
        OsStr::new("touch"),
        marker.as_os_str(),
    ]);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 125, "{doc:#}");
    assert_eq!(doc["outcome"], "freeze-failed", "{doc:#}");
    assert!(doc["window_ms"].is_null(), "{doc:#}");
    assert!(!marker.exists(), "CMD did not run");
    assert!(out.stderr.contains("covered by a tmpfs"), "{}", out.stderr);
    drop(cover_a);
    drop(cover_b);
    assert_writable(reachable.dir(), "reachable");
    assert_writable(hidden.dir(), "hidden");
}

#[test]
fn cmd_output_into_the_frozen_filesystem_does_not_block() {
    if !require_root("cmd_output_into_the_frozen_filesystem_does_not_block") {
        return;
    }
    let dir = TestDir::new("freeze-cmd-output");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let out_file = fs.dir().join("out.txt");
    let err_file = fs.dir().join("err.txt");
    for json in [false, true] {
        let start = Instant::now();
        let mut args = vec!["freeze", "--no-hooks", "--timeout", "5s"];
        if json {
            args.insert(0, "--json");
        }
        let status = Command::new(bin())
            .args(&args)
            .arg(fs.dir())
            .args([
                "--",
                "sh",
                "-c",
                "echo to-stdout; echo to-stderr >&2; seq 1 20000",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_file).unwrap())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .status()
            .unwrap();
        let took = start.elapsed();
        assert_eq!(status.code(), Some(0), "json={json}");
        assert!(took < Duration::from_secs(4), "no deadline: took {took:?}");
        let out = std::fs::read_to_string(&out_file).unwrap();
        let err = std::fs::read_to_string(&err_file).unwrap();
        assert!(err.contains("to-stderr"), "{err}");
        if json {
            // CMD's stdout goes to stderr: stdout holds only the report.
            assert!(
                err.contains("to-stdout") && err.contains("\n20000\n"),
                "{err}"
            );
            let doc: Value = serde_json::from_str(&out).expect("only the report on stdout");
            assert_eq!(doc["outcome"], "completed");
        } else {
            assert!(
                out.contains("to-stdout") && out.contains("\n20000\n"),
                "{out}"
            );
            assert!(out.contains("completed"), "{out}");
        }
        assert_writable(fs.dir(), &format!("json={json}"));
    }
}

#[test]
fn exit_codes_of_bad_usage() {
    let dir = TestDir::new("freeze-usage");
    let plain = dir.mkdir("plain");
    let missing = dir.join("missing");
    let bad_config = dir.join("bad.toml");
    std::fs::write(&bad_config, "[freeze]\nbogus = 1\n").unwrap();
    let zero_config = dir.join("zero.toml");
    std::fs::write(&zero_config, "[freeze]\ntimeout = 0\n").unwrap();
    let cases: Vec<(Vec<&OsStr>, i32, &str)> = vec![
        // freeze: its own failures are 125, never a status CMD could have.
        (
            vec![
                OsStr::new("--config"),
                bad_config.as_os_str(),
                OsStr::new("freeze"),
                OsStr::new("/"),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "unknown field",
        ),
        (
            vec![
                OsStr::new("--config"),
                zero_config.as_os_str(),
                OsStr::new("freeze"),
                OsStr::new("/"),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "out of range",
        ),
        (
            vec![
                OsStr::new("freeze"),
                OsStr::new("--bogus"),
                OsStr::new("/"),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "unexpected argument",
        ),
        (
            vec![
                OsStr::new("freeze"),
                OsStr::new("--timeout"),
                OsStr::new("0"),
                OsStr::new("/"),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "out of range",
        ),
        (
            vec![
                OsStr::new("freeze"),
                OsStr::new("--timeout"),
                OsStr::new("30d"),
                OsStr::new("/"),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "out of range",
        ),
        (
            vec![
                OsStr::new("freeze"),
                plain.as_os_str(),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            125,
            "not a mount point",
        ),
        (
            vec![OsStr::new("freeze"), OsStr::new("/")],
            125,
            "required arguments",
        ),
        // freeze-test and thaw: the Nagios UNKNOWN.
        (
            vec![
                OsStr::new("freeze-test"),
                OsStr::new("--timeout"),
                OsStr::new("0"),
            ],
            3,
            "out of range",
        ),
        (
            vec![
                OsStr::new("--config"),
                bad_config.as_os_str(),
                OsStr::new("freeze-test"),
                OsStr::new("--probe-only"),
            ],
            3,
            "unknown field",
        ),
        (
            vec![OsStr::new("thaw"), missing.as_os_str()],
            3,
            "No such file",
        ),
        (
            vec![OsStr::new("thaw"), OsStr::new("--force"), plain.as_os_str()],
            3,
            "not a mount point",
        ),
    ];
    for (args, code, text) in cases {
        let out = run(&args);
        assert_eq!(
            out.exit, code,
            "{args:?}\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        assert!(
            out.stderr.contains(text),
            "{args:?}: stderr lacks {text:?}: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr
                .trim()
                .lines()
                .filter(|l| l.starts_with("snapguard:"))
                .count()
                + out
                    .stderr
                    .trim()
                    .lines()
                    .filter(|l| l.starts_with("error:"))
                    .count(),
            1,
            "one error line: {}",
            out.stderr
        );
    }
}

#[test]
fn cmd_is_found_before_anything_is_frozen() {
    if !require_root("cmd_is_found_before_anything_is_frozen") {
        return;
    }
    let dir = TestDir::new("freeze-cmd-missing");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let not_exec = dir.join("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    for (cmd, code) in [
        (OsStr::new("no-such-command-anywhere"), 127),
        (not_exec.as_os_str(), 126),
        (dir.path().into_os_string().leak() as &OsStr, 126),
    ] {
        let out = run(&[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            cmd,
        ]);
        let doc = out.json();
        assert_schema("freeze", &doc);
        assert_eq!(out.exit, code, "{cmd:?}: {doc:#}");
        assert_eq!(doc["outcome"], "command-failed", "{doc:#}");
        assert!(
            doc["window_ms"].is_null(),
            "nothing may be frozen for a CMD that cannot run: {doc:#}"
        );
        assert!(doc["cmd"]["error"].is_string(), "{doc:#}");
        assert!(
            out.stderr.contains("snapguard: freeze command-failed"),
            "the reason on stderr even with --json: {}",
            out.stderr
        );
    }
}

#[test]
fn a_failed_freeze_says_why_on_stderr_in_every_mode() {
    if !require_root("a_failed_freeze_says_why_on_stderr_in_every_mode") {
        return;
    }
    let dir = TestDir::new("freeze-fail-stderr");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let foreign = fs.fsfreeze();
    for json in [false, true] {
        let mut args = vec![OsStr::new("freeze"), OsStr::new("--no-hooks")];
        if json {
            args.push(OsStr::new("--json"));
        }
        args.extend([fs.dir().as_os_str(), OsStr::new("--"), OsStr::new("true")]);
        let out = run(&args);
        assert_eq!(out.exit, 125, "{}", out.stdout);
        let line = out
            .stderr
            .lines()
            .find(|l| l.starts_with("snapguard: freeze freeze-failed"))
            .unwrap_or_else(|| panic!("no reason on stderr: {}", out.stderr));
        assert!(line.contains("EBUSY"), "{line}");
    }
    let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(200));
    assert!(blocked, "the foreign freeze is left in place");
    foreign.thaw();
    let _ = w.wait();
    assert_writable(fs.dir(), "after the foreign freeze");
}
