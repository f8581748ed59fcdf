//! The thaw guarantee under violence (privileged), each case repeated 20 times on its own
//! loop-mounted ext4: SIGKILL of the controller while frozen (the guardian thaws at once, well
//! within the deadline plus one second); SIGKILL of the controller's whole process group
//! (the guardian is in its own session); SIGKILL of CMD; CMD hanging on a write into the
//! frozen filesystem (thawed at the deadline, exit 124). Then the rescue: controller *and*
//! guardian SIGKILLed, `snapguard thaw` thaws from the record. After every run every test
//! filesystem accepts a write within a second.

mod common;
mod freeze_support;

use common::{TestDir, require_root};
use freeze_support::*;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

const REPEAT: usize = 20;

/// `snapguard freeze --timeout T M -- sh -c 'echo $$ > PIDFILE; BODY'`, waited until CMD runs
/// (so everything is frozen).
fn start_frozen(
    dir: &TestDir,
    fs: &TestFs,
    tag: &str,
    timeout: &str,
    body: &str,
    own_group: bool,
) -> (Background, i32) {
    let pid_file = dir.join(format!("{tag}.cmdpid"));
    let _ = std::fs::remove_file(&pid_file);
    let script = format!("echo $$ > '{}'; {body}", pid_file.display());
    let bg = Background::start(
        &dir.path(),
        tag,
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new(timeout),
            OsStr::new("--kill-after"),
            OsStr::new("1s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&script),
        ],
        own_group,
    );
    let cmd_pid = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    (bg, cmd_pid)
}

#[test]
fn sigkill_of_the_controller_is_thawed_by_the_guardian_20x() {
    if !require_root("sigkill_of_the_controller_is_thawed_by_the_guardian_20x") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-kill-ctl");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let mut worst = Duration::ZERO;
    for i in 0..REPEAT {
        let (mut bg, cmd) = start_frozen(&dir, &fs, "ctl", "2s", "sleep 30", false);
        let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(20));
        assert!(blocked, "run {i}: not frozen while CMD runs");
        sigkill(bg.child.id() as i32);
        let took = time_to_writable(fs.dir(), Duration::from_secs(3));
        worst = worst.max(took);
        assert!(
            bg.wait(Duration::from_secs(5)).is_none(),
            "killed by SIGKILL"
        );
        let _ = w.wait();
        sigkill(cmd); // the orphaned CMD (ours)
        assert_writable(fs.dir(), &format!("run {i}"));
    }
    note_worst("controller SIGKILL", worst);
    timed(
        "sigkill_of_the_controller_is_thawed_by_the_guardian_20x",
        start,
    );
}

#[test]
fn sigkill_of_the_controllers_process_group_is_thawed_20x() {
    if !require_root("sigkill_of_the_controllers_process_group_is_thawed_20x") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-kill-pgrp");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let mut worst = Duration::ZERO;
    for i in 0..REPEAT {
        let (mut bg, _cmd) = start_frozen(&dir, &fs, "pg", "2s", "sleep 30", true);
        // `kill -KILL -- -PGID`: the group we created for this snapguard (controller + CMD).
        let pgid = bg.child.id() as i32;
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::SIGKILL);
        let took = time_to_writable(fs.dir(), Duration::from_secs(3));
        worst = worst.max(took);
        assert!(bg.wait(Duration::from_secs(5)).is_none());
        assert_writable(fs.dir(), &format!("run {i}"));
    }
    note_worst("process-group SIGKILL", worst);
    timed(
        "sigkill_of_the_controllers_process_group_is_thawed_20x",
        start,
    );
}

#[test]
fn sigkill_of_cmd_thaws_and_reports_137_20x() {
    if !require_root("sigkill_of_cmd_thaws_and_reports_137_20x") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-kill-cmd");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    for i in 0..REPEAT {
        let (mut bg, cmd) = start_frozen(&dir, &fs, "cmd", "2s", "exec sleep 30", false);
        sigkill(cmd);
        let code = bg.wait(Duration::from_secs(5));
        assert_eq!(code, Some(137), "run {i}: 128+SIGKILL\n{}", bg.stderr());
        assert!(
            bg.stdout().contains("killed by signal 9"),
            "{}",
            bg.stdout()
        );
        assert_writable(fs.dir(), &format!("run {i}"));
    }
    timed("sigkill_of_cmd_thaws_and_reports_137_20x", start);
}

#[test]
fn cmd_hanging_on_a_frozen_write_is_thawed_at_the_deadline_20x() {
    if !require_root("cmd_hanging_on_a_frozen_write_is_thawed_at_the_deadline_20x") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-kill-hang");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let target = fs.dir().join("hang");
    let body = format!("echo x > '{}'; sleep 30", target.display());
    for i in 0..REPEAT {
        let t0 = Instant::now();
        let (mut bg, _cmd) = start_frozen(&dir, &fs, "hang", "1s", &body, false);
        let code = bg.wait(Duration::from_secs(10));
        let took = t0.elapsed();
        assert_eq!(code, Some(124), "run {i}: deadline → 124\n{}", bg.stdout());
        assert!(
            took < Duration::from_secs(1) + Duration::from_secs(3),
            "run {i}: took {took:?}"
        );
        assert!(
            bg.stdout().contains("the guardian thawed"),
            "{}",
            bg.stdout()
        );
        assert_writable(fs.dir(), &format!("run {i}"));
    }
    timed(
        "cmd_hanging_on_a_frozen_write_is_thawed_at_the_deadline_20x",
        start,
    );
}

#[test]
fn thaw_rescues_when_controller_and_guardian_are_both_killed() {
    if !require_root("thaw_rescues_when_controller_and_guardian_are_both_killed") {
        return;
    }
    let dir = TestDir::new("freeze-rescue");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let (mut bg, cmd) = start_frozen(&dir, &fs, "rescue", "60s", "sleep 60", false);
    let ctl = bg.child.id();
    let record = format!("/run/snapguard/freeze-{ctl}.json");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).expect("record exists"))
            .expect("record json");
    assert_eq!(rec["mounts"][0]["state"], "frozen", "{rec:#}");
    let guardian = rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32;
    sigkill_both(guardian, ctl as i32);
    assert!(bg.wait(Duration::from_secs(5)).is_none());
    let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(200));
    assert!(blocked, "nobody should have thawed yet");

    // A thaw of some other mount point leaves ours alone; a plain directory is bad usage.
    let other = TestFs::new(&dir, "other", "ext4", 32 * MIB);
    let out = common::run_snapguard(
        [
            OsStr::new("thaw"),
            OsStr::new("--json"),
            other.dir().as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.exit, 1, "not ours, no --force → skipped");
    assert_schema("thaw", &out.json());
    let plain = dir.mkdir("plain");
    let out = common::run_snapguard(
        [OsStr::new("thaw"), OsStr::new("--force"), plain.as_os_str()],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.exit, 3,
        "not a mount point → usage error\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("not a mount point"), "{}", out.stderr);

    let out = common::run_snapguard(
        [
            OsStr::new("thaw"),
            OsStr::new("--json"),
            fs.dir().as_os_str(),
        ],
        Duration::from_secs(30),
    );
    let doc = out.json();
    assert_schema("thaw", &doc);
    assert_eq!(out.exit, 0, "{doc:#}");
    assert_eq!(doc["mounts"][0]["result"], "thawed", "{doc:#}");
    let _ = w.wait();
    sigkill(cmd);
    assert_writable(fs.dir(), "after snapguard thaw");
    assert!(!Path::new(&record).exists(), "the record is removed");

    // --force on a foreign freeze.
    let held = fs.fsfreeze();
    let out = common::run_snapguard(
        [
            OsStr::new("thaw"),
            OsStr::new("--json"),
            fs.dir().as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.exit, 1, "no record, no --force → skipped");
    let out = common::run_snapguard(
        [
            OsStr::new("thaw"),
            OsStr::new("--json"),
            OsStr::new("--force"),
            fs.dir().as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.exit, 0);
    assert_eq!(out.json()["mounts"][0]["result"], "thawed");
    assert_writable(fs.dir(), "after thaw --force");
    drop(held);
}

fn note_worst(what: &str, worst: Duration) {
    common::note(&format!(
        "{what}: worst time to writable {worst:?} over {REPEAT} runs"
    ));
}
