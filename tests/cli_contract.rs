//! The command line as an admin meets it (issue 10): logs fit for a file and a pipe (no
//! colour codes, timestamps in `--log-file`), `--json --format human` refused with the
//! command's usage code, the default configuration is the host's whatever `--root` says,
//! every `--help` shows its own command's exit codes, table headers carry their units, and
//! `rust-version` is the real minimum.

mod common;

use std::path::Path;

/// A root whose mountinfo does not parse: `snapguard selinux` logs one warning about it.
fn root_with_a_bad_mountinfo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("proc/self")).expect("mkdir");
    std::fs::write(dir.path().join("proc/self/mountinfo"), "garbage line\n").expect("write");
    std::fs::write(dir.path().join("proc/cmdline"), "ro\n").expect("write");
    dir
}

fn has_escape(bytes: &[u8]) -> bool {
    bytes.contains(&0x1b)
}

#[test]
fn log_file_has_timestamps_and_no_escape_byte() {
    let root = root_with_a_bad_mountinfo();
    let log = root.path().join("snapguard.log");
    let out = common::snapguard()
        .args(["-v", "selinux", "--root"])
        .arg(root.path())
        .arg("--log-file")
        .arg(&log)
        .env_remove("NO_COLOR")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let bytes = std::fs::read(&log).expect("the log file");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("WARN") && text.contains("ignoring"),
        "the warning reached the file: {text}"
    );
    assert!(!has_escape(&bytes), "escape byte in --log-file: {text:?}");
    for line in text.lines() {
        // 2026-12-05T09:27:30.846174Z  WARN ...
        let stamp = line.split_whitespace().next().unwrap_or("");
        let b = stamp.as_bytes();
        assert!(
            b.len() >= 20
                && b[..4].iter().all(u8::is_ascii_digit)
                && b[4] == b'-'
                && b[10] == b'T'
                && stamp.ends_with('Z'),
            "no RFC 3339 UTC timestamp at the start of {line:?}"
        );
    }
    assert!(out.stderr.is_empty(), "logs went to the file only: {out:?}");
}

#[test]
fn stderr_in_a_pipe_has_no_colour_codes() {
    let root = root_with_a_bad_mountinfo();
    let out = common::snapguard()
        .args(["-vv", "selinux", "--root"])
        .arg(root.path())
        .env_remove("NO_COLOR")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        !has_escape(&out.stderr),
        "escape byte on a piped stderr: {stderr:?}"
    );
    // No Rust debug formatting in what a user reads.
    for debug in ["Ok(", "Err(", "Some(", "None"] {
        assert!(!stderr.contains(debug), "{debug} in {stderr}");
    }
}

#[test]
fn json_with_format_human_is_refused_with_the_usage_code() {
    let root = tempfile::tempdir().expect("temp dir");
    let r = root.path().to_str().expect("UTF-8");
    for (args, code) in [
        (
            vec!["scan", "--json", "--format", "human", "/nonexistent"],
            3,
        ),
        (
            vec!["selinux", "--root", r, "--format", "human", "--json"],
            3,
        ),
        (
            vec!["--json", "freeze-test", "--probe-only", "--format", "human"],
            3,
        ),
        (
            vec!["freeze", "--json", "--format", "human", "--", "true"],
            125,
        ),
        (
            vec!["repair", "--dry-run", "--json", "--format", "human", "/x"],
            16,
        ),
    ] {
        let out = common::run_snapguard(&args, common::SCAN_TIMEOUT);
        assert_eq!(out.exit, code, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("--json and --format human"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed a report: {}",
            out.stdout
        );
    }
    // Saying the same thing twice is not a contradiction.
    let out = common::run_snapguard(
        ["selinux", "--root", r, "--format", "json", "--json"],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.json()["command"], "selinux", "{out:?}");
}

#[test]
fn the_default_configuration_is_the_hosts_not_one_under_root() {
    let root = tempfile::tempdir().expect("temp dir");
    let under_root = root.path().join("etc/snapguard/snapguard.toml");
    std::fs::create_dir_all(under_root.parent().expect("parent")).expect("mkdir");
    std::fs::write(&under_root, "this is [not toml\n").expect("write");
    if Path::new("/etc/snapguard/snapguard.toml").exists() {
        common::note("/etc/snapguard/snapguard.toml exists here: the host's file is read");
    }
    let out = common::run_snapguard(
        [
            "selinux".as_ref(),
            "--json".as_ref(),
            "--root".as_ref(),
            root.path().as_os_str(),
        ],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(
        out.json()["command"],
        "selinux",
        "a configuration under --root was read: {}",
        out.stderr
    );
    // Named with --config, it is read (and refused).
    let out = common::run_snapguard(
        [
            "selinux".as_ref(),
            "--root".as_ref(),
            root.path().as_os_str(),
            "--config".as_ref(),
            under_root.as_os_str(),
        ],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(
        out.stderr.contains("invalid configuration"),
        "{}",
        out.stderr
    );
}

fn help(args: &[&str]) -> String {
    let out = common::run_snapguard(args, common::SCAN_TIMEOUT);
    assert_eq!(out.exit, 0, "{args:?}: {out:?}");
    out.stdout
}

/// The text after the last "Exit status" heading.
fn exit_section(text: &str) -> &str {
    let at = text
        .rfind("Exit status")
        .unwrap_or_else(|| panic!("no exit status section in\n{text}"));
    &text[at..]
}

#[test]
fn every_help_shows_its_own_commands_exit_codes() {
    let top = help(&["--help"]);
    let top_exit = exit_section(&top);
    for needle in [
        "0  OK",
        "3  UNKNOWN",
        "124",
        "125",
        "126",
        "127",
        "128+N",
        "16 usage",
        "32 declined",
    ] {
        assert!(
            top_exit.contains(needle),
            "top-level help lacks {needle}:\n{top_exit}"
        );
    }

    let scan = help(&["scan", "--help"]);
    assert!(scan.contains("  f2fs "), "scan's help names f2fs:\n{scan}");
    assert!(exit_section(&scan).contains("f2fs"), "{scan}");

    let thaw = exit_section(&help(&["thaw", "--help"])).to_string();
    assert!(thaw.contains("a thaw failed"), "{thaw}");
    assert!(
        !thaw.contains("freezable"),
        "thaw shows freeze-test's codes:\n{thaw}"
    );

    let freeze_test = exit_section(&help(&["freeze-test", "--help"])).to_string();
    assert!(freeze_test.contains("freezable"), "{freeze_test}");
    assert!(!freeze_test.contains("thaw:"), "{freeze_test}");

    let freeze = exit_section(&help(&["freeze", "--help"])).to_string();
    assert!(freeze.contains("124") && freeze.contains("127"), "{freeze}");

    let repair = exit_section(&help(&["repair", "--help"])).to_string();
    assert!(repair.contains("32  declined"), "{repair}");

    let selinux = exit_section(&help(&["selinux", "--help"])).to_string();
    assert!(selinux.contains("cannot tell"), "{selinux}");
}

#[test]
fn table_headers_carry_their_units() {
    let out = common::run_snapguard(
        ["freeze-test", "--probe-only", "--all"],
        common::SCAN_TIMEOUT,
    );
    let header = out.stdout.lines().next().unwrap_or_default();
    for column in ["SYNC ms", "FREEZE ms", "FROZEN ms", "THAW ms"] {
        assert!(header.contains(column), "{column} in {header:?}\n{out:?}");
    }
}

/// let-chains are stable since Rust 1.88: a crate that uses them cannot claim less (and
/// clippy's MSRV lints read the same field).
#[test]
fn rust_version_is_the_real_minimum() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let value = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("rust-version in Cargo.toml");
    let parts: Vec<u32> = value
        .split('.')
        .map(|p| p.parse().expect("number"))
        .collect();
    let minor = parts.get(1).copied().unwrap_or(0);
    let uses_let_chains = walk_rs(&dir.join("src"))
        .iter()
        .any(|text| text.lines().any(|l| l.trim_start().starts_with("&& let ")));
    if uses_let_chains {
        assert!(
            parts[0] > 1 || minor >= 88,
            "the code uses let-chains (Rust 1.88) but rust-version is {value}"
        );
    }
}

fn walk_rs(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk_rs(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).expect("read"));
        }
    }
    out
}
