//! A signal to `snapguard repair` (systemd stopping it, Ctrl-C, a closed terminal) never
//! leaves a half-done change (privileged, loop-mounted ext4 the tests make):
//! * at the plan (before consent): exit 8, nothing changed, no record;
//! * after the unmount, before the read-only check: rolled back — mounted as before, same
//!   options and data, superblock untouched — exit 8, the record says `rolled-back` and names
//!   the signal;
//! * after the repair was recorded as started but before its command ran: rolled back too;
//! * while the repair command runs: the command is not killed (its open of the device is held
//!   with fanotify while the signal is sent, and it is still alive a second later), it ends,
//!   the read-only check runs, and the clean filesystem is mounted again: exit 1|8.
//!
//! Each test holds `common::mount_namespace_turn(true)` (repair tests are exclusive).

mod common;
mod freeze_support;

use common::repair::{UncleanExt4, hashes, mount_line, step, superblock_state, unclean_ext4};
use common::{TestDir, require_root};
use freeze_support::assert_schema;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A snapguard run we started; killed and reaped on drop (only this pid).
struct Run {
    child: Option<Child>,
}

impl Run {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Wait for the end (bounded): exit code, JSON document, stderr.
    fn finish(mut self) -> (i32, Value, String) {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(180) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("snapguard repair did not end within 180 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked at"), "panic:\n{stderr}");
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("snapguard died of a signal: {:?}\n{stderr}", out.status));
        let doc: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
        assert_schema("repair", &doc);
        (code, doc, stderr)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `snapguard repair --json --yes --trust-fence --backup-dir DIR/backup TARGET` in the
/// background, with `SNAPGUARD_FAILPOINT=failpoint` (if any) and the pause marker file.
fn start(dir: &TestDir, target: &Path, failpoint: Option<&str>) -> Run {
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let mut cmd = Command::new(exe);
    cmd.args(["repair", "--json", "--yes", "--trust-fence", "--backup-dir"])
        .arg(dir.join("backup"))
        .arg(target)
        .env("SNAPGUARD_FAILPOINT_PAUSED", dir.join("paused"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        cmd.env("SNAPGUARD_FAILPOINT", f);
    }
    let _ = fs::remove_file(dir.join("paused"));
    Run {
        child: Some(cmd.spawn().expect("spawn snapguard")),
    }
}

/// Wait until the run pauses at its failpoint.
fn wait_paused(dir: &TestDir, run: &mut Run) -> String {
    let start = Instant::now();
    loop {
        if let Ok(step) = fs::read_to_string(dir.join("paused")) {
            return step;
        }
        assert!(run.alive(), "snapguard ended before its failpoint paused");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "snapguard never paused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn record_of(target: &Value) -> Value {
    let path = target["record"].as_str().expect("record path");
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Rolled back after `signal`: exit 8, mounted as before with the same data, the superblock
/// untouched, the record `rolled-back` with an `interrupt` step naming the signal.
fn assert_rolled_back(
    fx: &UncleanExt4,
    before: &(String, String, PathBuf, String),
    sb_before: &[String],
    result: (i32, Value, String),
    signal: &str,
) {
    let (code, doc, stderr) = result;
    let t = &doc["targets"][0];
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "failed");
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("interrupted by {signal}")) && message.contains("rolled back"),
        "{message}"
    );
    assert!(
        stderr.contains(signal),
        "the one-line problem names it: {stderr}"
    );
    assert_eq!(
        mount_line(&fx.dir_path).as_ref(),
        Some(before),
        "mounted as before"
    );
    assert_eq!(hashes(&fx.dir_path), fx.files, "same data");
    assert_eq!(
        superblock_state(fx.lo.dev()),
        sb_before,
        "nothing was written"
    );
    assert!(
        step(t, "interrupt")
            .iter()
            .any(|s| s["detail"].as_str().unwrap().contains(signal)),
        "{doc:#}"
    );
    assert!(
        step(t, "rollback").iter().any(|s| s["result"] == "ok"),
        "{doc:#}"
    );
    let record = record_of(t);
    assert_eq!(record["phase"], "rolled-back", "{record:#}");
    assert!(
        record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "interrupt"),
        "the record says what happened: {record:#}"
    );
}

#[test]
fn sigterm_at_the_plan_changes_nothing() {
    if !require_root("sigterm_at_the_plan_changes_nothing") {
        return;
    }
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-sig-plan");
    let fx = unclean_ext4(&dir, "p");
    let before = mount_line(&fx.dir_path).unwrap();
    let sb_before = superblock_state(fx.lo.dev());

    let mut run = start(&dir, &fx.dir_path, Some("consent:pause"));
    assert_eq!(wait_paused(&dir, &mut run), "consent");
    kill(run.pid(), Signal::SIGTERM).unwrap();
    let (code, doc, stderr) = run.finish();
    let t = &doc["targets"][0];
    assert_eq!(code, 8, "{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "failed");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("interrupted by SIGTERM before anything was changed"),
        "{doc:#}"
    );
    assert!(t["record"].is_null(), "no record: nothing was started");
    assert!(
        ["quiesce", "unmount", "fence", "check", "repair"]
            .iter()
            .all(|name| step(t, name).iter().all(|s| s["result"] == "planned")),
        "only the plan, nothing carried out: {doc:#}"
    );
    assert_eq!(mount_line(&fx.dir_path).unwrap(), before);
    assert_eq!(hashes(&fx.dir_path), fx.files);
    assert_eq!(superblock_state(fx.lo.dev()), sb_before);
    drop(fx.mount);
}

#[test]
fn sigterm_after_the_unmount_rolls_back() {
    if !require_root("sigterm_after_the_unmount_rolls_back") {
        return;
    }
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-sig-unmounted");
    let fx = unclean_ext4(&dir, "u");
    let before = mount_line(&fx.dir_path).unwrap();
    let sb_before = superblock_state(fx.lo.dev());

    // Paused before the read-only check: unmounted and fenced.
    let mut run = start(&dir, &fx.dir_path, Some("check:pause"));
    assert_eq!(wait_paused(&dir, &mut run), "check");
    assert!(mount_line(&fx.dir_path).is_none(), "unmounted at the pause");
    kill(run.pid(), Signal::SIGTERM).unwrap();
    assert_rolled_back(&fx, &before, &sb_before, run.finish(), "SIGTERM");

    // SIGINT (Ctrl-C) and SIGHUP (the terminal went away) the same.
    for (signal, name) in [(Signal::SIGINT, "SIGINT"), (Signal::SIGHUP, "SIGHUP")] {
        let mut run = start(&dir, &fx.dir_path, Some("check:pause"));
        wait_paused(&dir, &mut run);
        kill(run.pid(), signal).unwrap();
        assert_rolled_back(&fx, &before, &sb_before, run.finish(), name);
    }
    drop(fx.mount);
}

#[test]
fn sigterm_after_the_repair_was_recorded_but_before_it_ran_rolls_back() {
    if !require_root("sigterm_after_the_repair_was_recorded_but_before_it_ran_rolls_back") {
        return;
    }
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-sig-prerepair");
    let fx = unclean_ext4(&dir, "r");
    let before = mount_line(&fx.dir_path).unwrap();
    let sb_before = superblock_state(fx.lo.dev());
    let mut run = start(&dir, &fx.dir_path, Some("repair:pause"));
    assert_eq!(wait_paused(&dir, &mut run), "repair");
    kill(run.pid(), Signal::SIGTERM).unwrap();
    let result = run.finish();
    let t = &result.1["targets"][0];
    let skipped = step(t, "repair");
    assert!(
        skipped.iter().any(|s| s["result"] == "skipped"),
        "the repair command never ran: {:#}",
        result.1
    );
    assert_rolled_back(&fx, &before, &sb_before, result, "SIGTERM");
    drop(fx.mount);
}

#[test]
fn sigterm_during_the_repair_command_lets_it_finish_then_verifies() {
    use nix::sys::fanotify::{
        EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
    };
    if !require_root("sigterm_during_the_repair_command_lets_it_finish_then_verifies") {
        return;
    }
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-sig-during");
    let fx = unclean_ext4(&dir, "d");
    let before = mount_line(&fx.dir_path).unwrap();

    // The repair command's exec waits for our answer (fanotify FAN_OPEN_EXEC_PERM on the
    // e2fsck binary: permission events exist for regular files only, not for the device node).
    // It is told apart by its parent (our snapguard) and the state record, which says
    // `repair-started` from just before the command is spawned. Every other exec (other
    // tests' e2fsck included) is allowed at once; closing the group (drop, also on a panic)
    // allows whatever is pending.
    let e2fsck = fs::canonicalize(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| Path::new(d).join("e2fsck"))
        .find(|p| p.exists())
        .expect("e2fsck"),
    )
    .unwrap();
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
    )
    .expect("fanotify_init (root, CONFIG_FANOTIFY_ACCESS_PERMISSIONS)");
    fan.mark(
        MarkFlags::FAN_MARK_ADD,
        MaskFlags::FAN_OPEN_EXEC_PERM,
        None,
        Some(&e2fsck),
    )
    .expect("fanotify_mark on e2fsck");
    let rdev = fs::metadata(fx.lo.dev()).unwrap().rdev();
    let record_path = format!(
        "/run/snapguard/repair-{}-{}.json",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    );
    let phase = || -> String {
        fs::read(&record_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["phase"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let parent = |pid: i32| -> Option<i32> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|v| v.trim().parse().ok())
    };

    let mut run = start(&dir, &fx.dir_path, None);
    let snapguard = run.pid();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The held event (its fd answers it), and when it was signalled.
    let mut held: Option<(nix::sys::fanotify::FanotifyEvent, i32, Instant)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the repair command never started"
        );
        if let Some((event, pid, since)) = &held {
            if since.elapsed() >= Duration::from_secs(1) {
                // A second after the signal: snapguard still waits, the command still lives.
                assert!(run.alive(), "snapguard waits for the repair command");
                assert!(
                    fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| !s.contains(") Z")),
                    "the repair command was not killed"
                );
                let fd = event.fd().unwrap();
                fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW))
                    .unwrap();
                break;
            }
        } else if !run.alive() {
            let (code, doc, stderr) = run.finish();
            panic!("snapguard ended ({code}) before the repair command ran:\n{doc:#}\n{stderr}");
        }
        let events = match fan.read_events() {
            Ok(e) => e,
            Err(nix::errno::Errno::EAGAIN) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(e) => panic!("fanotify read: {e}"),
        };
        for event in events {
            let Some(fd) = event.fd() else { continue };
            let pid = event.pid();
            let ours = parent(pid) == Some(snapguard.as_raw());
            if ours && held.is_none() && phase() == "repair-started" {
                // The repair command is being started and is held: signal snapguard now.
                kill(snapguard, Signal::SIGTERM).unwrap();
                held = Some((event, pid, Instant::now()));
                continue;
            }
            // Anything else (other tests' e2fsck too) goes on at once, also during the hold.
            fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW))
                .unwrap();
        }
    }
    drop(fan);
    let (code, doc, stderr) = run.finish();
    let t = &doc["targets"][0];
    assert_eq!(code, 1 | 8, "repaired, and interrupted: {doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "repaired", "{doc:#}");
    assert_eq!(
        step(t, "repair")[0]["result"],
        "ok",
        "the command finished: {doc:#}"
    );
    assert!(
        step(t, "interrupt")
            .iter()
            .any(|s| s["detail"].as_str().unwrap().contains("allowed to finish")),
        "{doc:#}"
    );
    assert_eq!(step(t, "verify")[0]["result"], "ok", "{doc:#}");
    assert!(t["freeze_test"].is_null(), "no freeze test after a signal");
    assert!(
        t["message"].as_str().unwrap().contains("SIGTERM"),
        "{doc:#}"
    );
    let after = mount_line(&fx.dir_path).expect("mounted again");
    assert_eq!(after, before, "same options");
    assert_eq!(hashes(&fx.dir_path), fx.files, "same data");
    let record = record_of(t);
    assert_eq!(record["phase"], "done", "{record:#}");
    assert!(
        record["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "interrupt"),
        "{record:#}"
    );
    drop(fx.mount);
}

#[test]
fn ctrl_c_at_the_prompt_changes_nothing() {
    interrupt_the_prompt("ctrl_c_at_the_prompt_changes_nothing", None);
}

/// systemd stopping a run that waits at the prompt (the prompt reads the terminal in raw mode,
/// so only the signal watcher sees it): the wait ends at once, nothing changed.
#[test]
fn sigterm_while_the_prompt_waits_changes_nothing() {
    interrupt_the_prompt(
        "sigterm_while_the_prompt_waits_changes_nothing",
        Some(Signal::SIGTERM),
    );
}

/// The pid of the `snapguard repair` whose command line names `marker`.
fn snapguard_with(marker: &str) -> Option<Pid> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(e.path().join("cmdline")).ok()?;
        let comm = fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim() == "snapguard" && String::from_utf8_lossy(&cmdline).contains(marker))
            .then(|| Pid::from_raw(pid))
    })
}

/// Ctrl-C typed at the prompt (`signal` None) or `signal` sent to snapguard while it waits.
fn interrupt_the_prompt(test: &str, signal: Option<Signal>) {
    use std::io::{Read as _, Write as _};
    use std::sync::{Arc, Mutex};
    if !require_root(test) {
        return;
    }
    let _turn = common::mount_namespace_turn(true);
    let dir = TestDir::new("repair-sig-prompt");
    let fx = unclean_ext4(&dir, "q");
    let before = mount_line(&fx.dir_path).unwrap();
    let sb_before = superblock_state(fx.lo.dev());

    // The prompt on a pseudo-terminal (script(1)); Ctrl-C is a 0x03 byte typed on it, which
    // the terminal turns into SIGINT for its foreground process group (snapguard).
    let exe = assert_cmd::cargo::cargo_bin("snapguard");
    let line = format!(
        "{} repair --trust-fence --backup-dir {} {}",
        exe.display(),
        dir.join("backup").display(),
        fx.dir_path.display()
    );
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1)");
    let mut run = Run { child: Some(child) };
    let mut stdin = run.child.as_mut().unwrap().stdin.take().unwrap();
    let mut stdout = run.child.as_mut().unwrap().stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let start = Instant::now();
    while !seen.lock().unwrap().contains("[y/N]") {
        assert!(
            run.alive(),
            "ended before the prompt: {}",
            seen.lock().unwrap()
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no prompt: {}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    match signal {
        None => {
            stdin.write_all(b"\x03").unwrap();
            stdin.flush().unwrap();
        }
        Some(signal) => {
            let marker = dir.join("backup").display().to_string();
            let pid = snapguard_with(&marker).expect("snapguard's pid");
            kill(pid, signal).unwrap();
        }
    }
    let mut child = run.child.take().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Ctrl-C did not end the prompt: {}", seen.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let _ = reader.join();
    let text = seen.lock().unwrap().clone();
    assert_eq!(status.code(), Some(8), "{text}");
    assert!(
        text.contains(&format!(
            "interrupted by {} before anything was changed",
            signal.unwrap_or(Signal::SIGINT).as_str()
        )),
        "{text}"
    );
    assert_eq!(mount_line(&fx.dir_path).unwrap(), before);
    assert_eq!(hashes(&fx.dir_path), fx.files);
    assert_eq!(superblock_state(fx.lo.dev()), sb_before);
    drop(fx.mount);
}
