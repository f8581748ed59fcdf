//! The thaw guarantee at its weakest moments (privileged), on filesystems this test made on its
//! own loop devices:
//!
//! * the controller killed (SIGKILL, SIGQUIT, SIGUSR1, SIGALRM; 20× each) *inside* a FIFREEZE
//!   that takes over a second: every mount accepts a write by the deadline + 1 s and
//!   `snapguard thaw` has nothing left. The slow FIFREEZE is made real: the filesystem being
//!   frozen is a loop-mounted ext4 with dirty data whose image lives on another test ext4 that
//!   this test holds frozen (`fsfreeze -f`), so the inner freeze's sync blocks in the kernel
//!   until the test thaws the outer one;
//! * a FIFREEZE that returns after the deadline is thawed at once (exit 124);
//! * the guardian SIGKILLed between "ready" and the first freeze (20×): the run aborts, nothing
//!   is frozen, CMD does not run, exit 125, no record is left;
//! * SIGTERM to the guardian while CMD runs: thawed once, never a second FITHAW (a foreign
//!   freeze taken right after the guardian's thaw is still in place when the run ends), and the
//!   exit status is not CMD's;
//! * after a controller SIGKILL, CMD gets SIGTERM (its trap runs) and the thaw hooks run;
//! * at the deadline CMD gets SIGTERM and its trap runs.

mod common;
mod freeze_support;

use common::{TestDir, note, require_root, run_snapguard};
use freeze_support::*;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPEAT: usize = 20;

fn wait_gone(pid: i32, limit: Duration, what: &str) {
    let end = Instant::now() + limit;
    while alive(pid) {
        assert!(
            Instant::now() < end,
            "{what} (pid {pid}) still runs after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `snapguard thaw --json MOUNTS` finds nothing of a snapguard run left there: no record names
/// any of them (other tests' runs are left alone: only our mount points are named).
fn assert_nothing_to_thaw(mounts: &[&Path], context: &str) {
    let mut args = vec![OsStr::new("thaw"), OsStr::new("--json")];
    args.extend(mounts.iter().map(|m| m.as_os_str()));
    let out = run_snapguard(&args, Duration::from_secs(30));
    let doc = out.json();
    assert_schema("thaw", &doc);
    for m in doc["mounts"].as_array().expect("mounts") {
        assert!(
            m["record"].is_null() && m["result"] != "thawed",
            "{context}: a record is left: {doc:#}"
        );
    }
}

/// An ext4 (`inner`) whose image lives on another test ext4 (`outer`): holding `outer` frozen
/// makes the FIFREEZE of `inner` (with dirty data) block in the kernel.
struct Nested {
    inner: TestFs,
    outer: TestFs,
}

impl Nested {
    fn new(dir: &TestDir) -> Self {
        let outer = TestFs::new(dir, "outer", "ext4", 128 * MIB);
        let inner = TestFs::in_dir(outer.dir(), dir, "inner", "ext4", 48 * MIB, None);
        Nested { inner, outer }
    }

    /// Dirty data in the inner filesystem (not synced), then the outer frozen by "someone
    /// else" (this test).
    fn block(&self, round: usize) -> common::Freeze {
        std::fs::write(self.inner.dir().join("dirty"), vec![round as u8; 4 << 20])
            .expect("dirty the inner filesystem");
        self.outer.fsfreeze()
    }
}

/// `snapguard freeze` of the inner filesystem with no pre-sync (FIFREEZE does all the flushing,
/// so it blocks on the frozen outer one), deadline `timeout`.
fn start_slow_freeze(dir: &TestDir, n: &Nested, tag: &str, timeout: &str) -> Background {
    Background::start(
        &dir.path(),
        tag,
        &[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--sync-timeout"),
            OsStr::new("0"),
            OsStr::new("--timeout"),
            OsStr::new(timeout),
            OsStr::new("--kill-after"),
            OsStr::new("1s"),
            n.inner.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sleep"),
            OsStr::new("30"),
        ],
        false,
    )
}

/// The controller gets `signal` while the guardian's FIFREEZE has been blocked for over a
/// second; 20 times.
fn kill_inside_fifreeze(signal: Signal, test: &str) {
    if !require_root(test) {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new(&format!("freeze-in-fifreeze-{}", signal.as_str()));
    let n = Nested::new(&dir);
    let deadline = Duration::from_secs(3);
    let mut worst = Duration::ZERO;
    for round in 0..REPEAT {
        let held = n.block(round);
        let mut bg = start_slow_freeze(&dir, &n, "ctl", "3s");
        let ctl = bg.child.id();
        let rec = bg.wait_for_state(0, "freezing", Duration::from_secs(20));
        let freezing_since = Instant::now();
        let guardian = rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32;
        // FIFREEZE has now been blocked for over a second.
        std::thread::sleep(Duration::from_millis(1050));
        assert_eq!(
            record(ctl).map(|r| r["mounts"][0]["state"].clone()),
            Some(Value::from("freezing")),
            "round {round}: FIFREEZE must still be blocked"
        );
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(ctl as i32), signal);
        std::thread::sleep(Duration::from_millis(50));
        // The outer filesystem is released ("someone else" thaws it): the inner FIFREEZE
        // returns, and must be thawed at once.
        held.thaw();
        let left = (deadline + Duration::from_secs(1)).saturating_sub(freezing_since.elapsed());
        let took = time_to_writable(n.inner.dir(), left);
        worst = worst.max(freezing_since.elapsed());
        let code = bg.wait(Duration::from_secs(10));
        match signal {
            Signal::SIGKILL => assert_eq!(code, None, "round {round}: killed"),
            s => assert_eq!(
                code,
                Some(128 + s as i32),
                "round {round}: interrupted by {s}\n{}\n{}",
                bg.stdout(),
                bg.stderr()
            ),
        }
        if signal != Signal::SIGKILL {
            let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
            assert_schema("freeze", &doc);
            assert_eq!(doc["outcome"], "interrupted", "{doc:#}");
            assert!(doc["cmd"].is_null(), "CMD must not run: {doc:#}");
        }
        wait_gone(guardian, Duration::from_secs(5), "the guardian");
        assert_writable(n.inner.dir(), &format!("round {round}, inner"));
        assert_writable(n.outer.dir(), &format!("round {round}, outer"));
        assert!(record(ctl).is_none(), "round {round}: the record is left");
        assert_nothing_to_thaw(&[n.inner.dir(), n.outer.dir()], &format!("round {round}"));
        let _ = took;
    }
    note(&format!(
        "{test}: worst FIFREEZE start to writable {worst:?} (deadline {deadline:?}) over \
         {REPEAT} runs, {:.1} s",
        start.elapsed().as_secs_f64()
    ));
}

#[test]
fn sigkill_inside_a_slow_fifreeze_20x() {
    kill_inside_fifreeze(Signal::SIGKILL, "sigkill_inside_a_slow_fifreeze_20x");
}

#[test]
fn sigquit_inside_a_slow_fifreeze_20x() {
    kill_inside_fifreeze(Signal::SIGQUIT, "sigquit_inside_a_slow_fifreeze_20x");
}

#[test]
fn sigusr1_inside_a_slow_fifreeze_20x() {
    kill_inside_fifreeze(Signal::SIGUSR1, "sigusr1_inside_a_slow_fifreeze_20x");
}

#[test]
fn sigalrm_inside_a_slow_fifreeze_20x() {
    kill_inside_fifreeze(Signal::SIGALRM, "sigalrm_inside_a_slow_fifreeze_20x");
}

#[test]
fn a_fifreeze_returning_after_the_deadline_is_thawed_at_once() {
    if !require_root("a_fifreeze_returning_after_the_deadline_is_thawed_at_once") {
        return;
    }
    let dir = TestDir::new("freeze-late-fifreeze");
    let n = Nested::new(&dir);
    let held = n.block(0);
    let mut bg = start_slow_freeze(&dir, &n, "late", "1s");
    bg.wait_for_state(0, "freezing", Duration::from_secs(20));
    // Well past the 1 s deadline, the FIFREEZE is still blocked; then it returns.
    std::thread::sleep(Duration::from_millis(1800));
    held.thaw();
    let took = time_to_writable(n.inner.dir(), Duration::from_secs(1));
    let code = bg.wait(Duration::from_secs(15));
    let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
    assert_schema("freeze", &doc);
    assert_eq!(code, Some(124), "deadline → 124\n{doc:#}");
    assert_eq!(doc["outcome"], "timeout", "{doc:#}");
    assert!(doc["cmd"].is_null(), "CMD must not run: {doc:#}");
    let r = row(&doc, n.inner.dir());
    assert_eq!(r["thawed_by"], "guardian", "{r:#}");
    let frozen_ms = r["frozen_ms"].as_f64().expect("frozen_ms");
    assert!(
        frozen_ms < 100.0,
        "thawed at once after the late FIFREEZE returned, not {frozen_ms} ms later: {r:#}"
    );
    note(&format!(
        "late FIFREEZE: writable {took:?} after the outer thaw"
    ));
    assert_nothing_to_thaw(&[n.inner.dir(), n.outer.dir()], "late FIFREEZE");
}

/// A trusted hooks directory with one hook that logs "PHASE writable" (after writing into the
/// test filesystem, which must be thawed by then) or runs `on_freeze` when freezing.
fn logging_hook(trusted: &TrustedDir, fs: &TestFs, log: &Path, on_freeze: &str) -> PathBuf {
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let probe = fs.dir().join(".hook-probe");
    script(
        &hooks.join("10-log"),
        &format!(
            "if [ \"$1\" = freeze ]; then echo freeze >> '{log}'; {on_freeze}; \
             else echo x > '{probe}' && rm -f '{probe}' && echo \"thaw writable\" >> '{log}'; fi",
            log = log.display(),
            probe = probe.display()
        ),
        0o755,
    );
    hooks
}

#[test]
fn sigkill_of_the_guardian_before_the_first_freeze_aborts_20x() {
    if !require_root("sigkill_of_the_guardian_before_the_first_freeze_aborts_20x") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-kill-guardian-early");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-guardian-early");
    let log = dir.join("hooks.log");
    let ready = dir.join("hook.ready");
    let hooks = logging_hook(
        &trusted,
        &fs,
        &log,
        &format!("echo $PPID > '{}'; sleep 0.4", ready.display()),
    );
    let cmd_ran = dir.join("cmd.ran");
    for round in 0..REPEAT {
        let _ = std::fs::remove_file(&ready);
        let _ = std::fs::remove_file(&log);
        let mut bg = Background::start(
            &dir.path(),
            "early",
            &[
                OsStr::new("freeze"),
                OsStr::new("--json"),
                OsStr::new("--hooks-dir"),
                hooks.as_os_str(),
                OsStr::new("--timeout"),
                OsStr::new("10s"),
                fs.dir().as_os_str(),
                OsStr::new("--"),
                OsStr::new("touch"),
                cmd_ran.as_os_str(),
            ],
            false,
        );
        let ctl = wait_for_pid_file(&ready, Duration::from_secs(20));
        assert_eq!(
            ctl as u32,
            bg.child.id(),
            "the hook's parent is the controller"
        );
        let rec = record(bg.child.id()).expect("the guardian wrote the record");
        assert_eq!(
            rec["mounts"][0]["state"], "planned",
            "round {round}: {rec:#}"
        );
        let guardian = rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32;
        sigkill(guardian);
        let code = bg.wait(Duration::from_secs(15));
        let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
        assert_schema("freeze", &doc);
        assert_eq!(code, Some(125), "round {round}: {doc:#}\n{}", bg.stderr());
        assert_eq!(doc["outcome"], "guardian-lost", "{doc:#}");
        assert!(doc["window_ms"].is_null(), "nothing frozen: {doc:#}");
        assert!(!cmd_ran.exists(), "round {round}: CMD ran");
        assert!(
            bg.stderr().contains("guardian"),
            "stderr says why: {}",
            bg.stderr()
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap_or_default(),
            "freeze\nthaw writable\n",
            "round {round}: the thaw hook of the freeze hook that ran"
        );
        assert_writable(fs.dir(), &format!("round {round}"));
        assert!(
            record(bg.child.id()).is_none(),
            "round {round}: record left"
        );
    }
    assert_nothing_to_thaw(&[fs.dir()], "guardian killed early");
    timed(
        "sigkill_of_the_guardian_before_the_first_freeze_aborts_20x",
        start,
    );
}

/// `freeze M -- sh -c SCRIPT` where SCRIPT writes its pid to `pid_file`, traps SIGTERM into
/// `trap_log` and waits.
fn start_trapping(
    dir: &TestDir,
    fs: &TestFs,
    tag: &str,
    timeout: &str,
    extra: &[&OsStr],
) -> (Background, PathBuf, PathBuf) {
    let pid_file = dir.join(format!("{tag}.cmdpid"));
    let trap_log = dir.join(format!("{tag}.trap"));
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(&trap_log);
    let body = format!(
        "trap 'echo TERM >> \"{}\"; exit 7' TERM; echo $$ > '{}'; sleep 30 & wait",
        trap_log.display(),
        pid_file.display()
    );
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("freeze"),
        OsStr::new("--json"),
        OsStr::new("--timeout"),
        OsStr::new(timeout),
        OsStr::new("--kill-after"),
        OsStr::new("3s"),
    ];
    args.extend_from_slice(extra);
    args.extend([
        fs.dir().as_os_str(),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(&body),
    ]);
    let bg = Background::start(&dir.path(), tag, &args, false);
    (bg, pid_file, trap_log)
}

#[test]
fn sigterm_to_the_guardian_breaks_the_window_and_no_second_thaw_follows() {
    if !require_root("sigterm_to_the_guardian_breaks_the_window_and_no_second_thaw_follows") {
        return;
    }
    let dir = TestDir::new("freeze-guardian-sigterm");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    for round in 0..5 {
        let (mut bg, pid_file, trap_log) =
            start_trapping(&dir, &fs, "gterm", "20s", &[OsStr::new("--no-hooks")]);
        let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
        let rec = wait_for_state(bg.child.id(), 0, "frozen", Duration::from_secs(5));
        let guardian = rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(guardian), Signal::SIGTERM);
        time_to_writable(fs.dir(), Duration::from_secs(2));
        // Someone else freezes the filesystem right after the guardian's thaw.
        let foreign = fs.fsfreeze();
        let code = bg.wait(Duration::from_secs(15));
        let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
        assert_schema("freeze", &doc);
        let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(300));
        assert!(
            blocked,
            "round {round}: snapguard thawed a freeze it did not take\n{doc:#}"
        );
        foreign.thaw();
        let _ = w.wait();
        assert_eq!(code, Some(125), "round {round}: not CMD's status\n{doc:#}");
        assert_eq!(doc["outcome"], "window-broken", "{doc:#}");
        let r = row(&doc, fs.dir());
        assert_eq!(r["thawed_by"], "guardian", "{r:#}");
        assert!(
            doc["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m.as_str().unwrap_or("").contains("SIGTERM")),
            "{doc:#}"
        );
        assert_eq!(doc["cmd"]["terminated"], true, "{doc:#}");
        assert!(
            std::fs::read_to_string(&trap_log)
                .unwrap_or_default()
                .contains("TERM"),
            "CMD's trap ran"
        );
        wait_gone(cmd, Duration::from_secs(2), "CMD");
        wait_gone(guardian, Duration::from_secs(5), "the guardian");
        assert_writable(fs.dir(), &format!("round {round}"));
    }
    assert_nothing_to_thaw(&[fs.dir()], "guardian SIGTERM");
}

#[test]
fn after_a_controller_sigkill_cmd_is_ended_and_thaw_hooks_run() {
    if !require_root("after_a_controller_sigkill_cmd_is_ended_and_thaw_hooks_run") {
        return;
    }
    let dir = TestDir::new("freeze-orphan");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-orphan");
    let log = dir.join("hooks.log");
    let hooks = logging_hook(&trusted, &fs, &log, "true");
    for round in 0..5 {
        let _ = std::fs::remove_file(&log);
        let (mut bg, pid_file, trap_log) = start_trapping(
            &dir,
            &fs,
            "orphan",
            "20s",
            &[OsStr::new("--hooks-dir"), hooks.as_os_str()],
        );
        let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
        let rec = wait_for_state(bg.child.id(), 0, "frozen", Duration::from_secs(5));
        let guardian = rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32;
        sigkill(bg.child.id() as i32);
        assert_eq!(bg.wait(Duration::from_secs(5)), None);
        time_to_writable(fs.dir(), Duration::from_secs(1));
        // No orphan CMD: the guardian ends it (its trap runs), then runs the thaw hook.
        wait_gone(cmd, Duration::from_secs(3), "the orphaned CMD");
        assert!(
            std::fs::read_to_string(&trap_log)
                .unwrap_or_default()
                .contains("TERM"),
            "round {round}: CMD got SIGTERM"
        );
        wait_gone(guardian, Duration::from_secs(10), "the guardian");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap_or_default(),
            "freeze\nthaw writable\n",
            "round {round}: the thaw hook ran after the thaw"
        );
        assert!(
            record(bg.child.id()).is_none(),
            "round {round}: record left"
        );
    }
    assert_nothing_to_thaw(&[fs.dir()], "controller SIGKILL with hooks");
}

#[test]
fn at_the_deadline_cmd_gets_sigterm_and_its_trap_runs() {
    if !require_root("at_the_deadline_cmd_gets_sigterm_and_its_trap_runs") {
        return;
    }
    let dir = TestDir::new("freeze-deadline-trap");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let (mut bg, pid_file, trap_log) =
        start_trapping(&dir, &fs, "deadline", "1s", &[OsStr::new("--no-hooks")]);
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let code = bg.wait(Duration::from_secs(15));
    let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
    assert_schema("freeze", &doc);
    assert_eq!(code, Some(124), "{doc:#}");
    assert_eq!(
        doc["cmd"]["exit_code"], 7,
        "the trap's exit status: {doc:#}"
    );
    assert!(
        std::fs::read_to_string(&trap_log)
            .unwrap_or_default()
            .contains("TERM")
    );
    wait_gone(cmd, Duration::from_secs(1), "CMD");
    assert_writable(fs.dir(), "after the deadline");
}

#[test]
fn a_mount_thawed_by_someone_else_during_the_window_breaks_it() {
    if !require_root("a_mount_thawed_by_someone_else_during_the_window_breaks_it") {
        return;
    }
    let dir = TestDir::new("freeze-thawed-by-other");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let go = dir.join("go");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.01; done; exit 0",
        go.display()
    );
    let mut bg = Background::start(
        &dir.path(),
        "other-thaw",
        &[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&script),
        ],
        false,
    );
    wait_for_state(bg.child.id(), 0, "frozen", Duration::from_secs(20));
    // The admin thaws it under the run's feet (the run is alive: only --force does that).
    let out = run_snapguard(
        [
            OsStr::new("thaw"),
            OsStr::new("--json"),
            OsStr::new("--force"),
            fs.dir().as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(
        out.json()["mounts"][0]["result"],
        "thawed",
        "{}",
        out.stdout
    );
    std::fs::write(&go, "").unwrap();
    let code = bg.wait(Duration::from_secs(15));
    let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
    assert_schema("freeze", &doc);
    assert_eq!(code, Some(125), "CMD's 0 is not passed through: {doc:#}");
    assert_eq!(doc["outcome"], "window-broken", "{doc:#}");
    let r = row(&doc, fs.dir());
    assert_eq!(r["errno"], "EINVAL", "{r:#}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("someone else thawed it"),
        "{r:#}"
    );
    assert_writable(fs.dir(), "after the run");
}

#[test]
fn a_record_that_cannot_be_written_never_delays_the_thaw() {
    if !require_root("a_record_that_cannot_be_written_never_delays_the_thaw") {
        return;
    }
    // The namespace below lives as long as the run: a turn for the whole test.
    let _turn = common::mount_namespace_turn(false);
    let dir = TestDir::new("freeze-record-frozen");
    let runfs = TestFs::new(&dir, "runfs", "ext4", 32 * MIB);
    let d1 = TestFs::new(&dir, "d1", "ext4", 32 * MIB);
    let d2 = TestFs::new(&dir, "d2", "ext4", 32 * MIB);
    // In a private mount namespace, /run/snapguard is our `runfs` (the host's stays as it is):
    // the guardian's record lives on a filesystem this test can freeze under it.
    let script = format!(
        "mount --bind '{}' /run/snapguard && exec '{}' freeze --json --no-hooks --timeout 2s \
         '{}' '{}' -- sleep 30",
        runfs.dir().display(),
        bin().display(),
        d1.dir().display(),
        d2.dir().display()
    );
    std::fs::create_dir_all("/run/snapguard").expect("/run/snapguard");
    let mut bg = Background::start_program(
        &dir.path(),
        "record-frozen",
        OsStr::new("unshare"),
        &[
            OsStr::new("--mount"),
            OsStr::new("--propagation"),
            OsStr::new("private"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&script),
        ],
        false,
    );
    // Both frozen (read through the host's view of `runfs`).
    let record = |ctl: u32| -> Option<Value> {
        let text = std::fs::read_to_string(runfs.dir().join(format!("freeze-{ctl}.json"))).ok()?;
        serde_json::from_str(&text).ok()
    };
    let ctl = bg.child.id();
    let end = Instant::now() + Duration::from_secs(20);
    while !record(ctl).is_some_and(|r| r["mounts"][1]["state"] == "frozen") {
        assert!(Instant::now() < end, "never frozen: {:?}", record(ctl));
        std::thread::sleep(Duration::from_millis(5));
    }
    let frozen_at = Instant::now();
    // Someone freezes the filesystem holding the record: every record write now blocks.
    let held = runfs.fsfreeze();
    // The 2 s deadline must thaw both mounts although the record cannot follow.
    let limit = Duration::from_secs(3).saturating_sub(frozen_at.elapsed());
    time_to_writable(d2.dir(), limit);
    time_to_writable(
        d1.dir(),
        Duration::from_secs(3).saturating_sub(frozen_at.elapsed()),
    );
    held.thaw();
    let code = bg.wait(Duration::from_secs(15));
    assert_eq!(code, Some(124), "{}\n{}", bg.stdout(), bg.stderr());
    assert_writable(d1.dir(), "d1");
    assert_writable(d2.dir(), "d2");
}
