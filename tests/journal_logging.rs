//! Logging under systemd: only when `$JOURNAL_STREAM` names the very stream stderr is
//! (dev:inode of fd 2) do logs go to the journal; a `$JOURNAL_STREAM` inherited by a process
//! whose stderr was redirected keeps stderr logging. Without a journald socket (as here) a
//! matching stream falls back to stderr too. The log line used is the warning of
//! `repair --maintenance` with `[repair] tier = "full"`, which comes before anything is done.

mod common;

use common::TestDir;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

const WARNING: &str = "a --maintenance run stops at preen";

/// Runs the warning-producing command with stderr into `stderr_file` and `journal_stream`
/// (None: unset); returns what landed in the file.
fn run_with(dir: &TestDir, stderr_file: &Path, journal_stream: Option<&str>) -> String {
    let conf = dir.join("snapguard.toml");
    // A window three days away: the run stops right after the warning (exit 64).
    let out = Command::new("date").arg("+%u").output().expect("date");
    let today: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("date");
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today - 1 + 3) % 7];
    std::fs::write(
        &conf,
        format!("[repair]\ntier = \"full\"\nwindow = \"{day} 00:00-24:00\"\n"),
    )
    .expect("config");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let file = std::fs::File::create(stderr_file).expect("stderr file");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("snapguard"));
    cmd.arg("--config")
        .arg(&conf)
        .args(["repair", "--maintenance"])
        .env_remove("SNAPGUARD_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    if let Some(value) = journal_stream {
        cmd.env("JOURNAL_STREAM", value);
    }
    let status = cmd.status().expect("run snapguard");
    assert_eq!(status.code(), Some(64));
    std::fs::read_to_string(stderr_file).expect("read stderr")
}

#[test]
fn a_journal_stream_that_is_not_stderr_keeps_stderr_logging() {
    let dir = TestDir::new("journal-mismatch");
    let err = dir.join("stderr");
    let text = run_with(&dir, &err, None);
    assert!(text.contains(WARNING), "{text}");
    // Another file's dev:inode, as a child with redirected stderr inherits it.
    let other = dir.join("other");
    std::fs::write(&other, "").expect("other");
    let meta = std::fs::metadata(&other).expect("stat");
    let text = run_with(&dir, &err, Some(&format!("{}:{}", meta.dev(), meta.ino())));
    assert!(text.contains(WARNING), "{text}");
    // Garbage is no stream at all.
    let text = run_with(&dir, &err, Some("journal"));
    assert!(text.contains(WARNING), "{text}");
}

#[test]
fn a_matching_stream_goes_to_the_journal_or_falls_back_to_stderr() {
    let dir = TestDir::new("journal-match");
    let err = dir.join("stderr");
    std::fs::write(&err, "").expect("create");
    let meta = std::fs::metadata(&err).expect("stat");
    // File::create truncates the same inode: dev:inode stay what they are now.
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let text = run_with(&dir, &err, Some(&stream));
    // tracing-journald sends to journald's socket; the path is systemd's, not snapguard's.
    let journald = Path::new("/run/systemd/journal/socket").exists();
    if journald {
        assert!(
            !text.contains(WARNING),
            "went to the journal, not stderr: {text}"
        );
    } else {
        assert!(
            text.contains(WARNING),
            "no journald socket here: stderr is the fallback: {text}"
        );
    }
    // The one-line problem summary is not a log record: always on stderr.
    assert!(text.contains("outside the maintenance window"), "{text}");
}
