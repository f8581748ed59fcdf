//! Attacks on the thaw guarantee that the other freeze tests do not make (privileged; every
//! filesystem is the test's own, on its own loop device). Each test here failed on the code it
//! was written against; see the comment on each for the attack and the rule it breaks:
//!
//! * a SIGSTOPped guardian keeps the filesystem frozen for two seconds past the deadline;
//! * after the controller's own fallback thaw (guardian lost), the record still says `frozen`:
//!   `snapguard thaw` (ExecStopPost= of the unit) then thaws someone else's freeze — in `freeze`
//!   when the controller dies before its end, in `freeze-test` even when nothing else dies;
//! * a catchable signal that kills by default but is not in the guardian's signalfd set
//!   (SIGABRT, SIGSEGV, SIGSYS sent with kill(2)) kills the guardian inside a blocking FIFREEZE:
//!   the filesystem is left frozen for good;
//! * a signal to the guardian before the first FIFREEZE is reported as a timeout (124);
//! * when the record's directory is on a filesystem of the freeze set, the "last write before
//!   its own filesystem is frozen" never happens (the record says `planned`, `live: true`);
//!   `freeze-test` does not even know: its guardian writes the record into the filesystem it
//!   froze and blocks there, far past the deadline;
//! * a record directory the guardian cannot write to is not reported: the run goes on with no
//!   rescue record and says nothing;
//! * the printed `snapguard thaw --force` remedy for a mount point whose name holds a newline
//!   does not work when pasted;
//! * the one-line failure summary on stderr names an unrelated warning instead of the failure;
//! * `/sys/kernel/rcu_expedited` is left at 1 for good when the guardian dies inside FIFREEZE;
//! * a foreign thaw inside the window (seen: FITHAW says EINVAL) still ends `completed` with
//!   CMD's status 0;
//! * a mount point whose name is not UTF-8 can never be frozen (and fails the whole run);
//! * `snapguard thaw` deletes the record of a frozen mount it could not reach (covered), so the
//!   next rescue finds nothing;
//! * a later run whose controller reuses a crashed run's pid destroys that run's record;
//! * the rescue thaws nested filesystems inner first and deadlocks (D state) on the outer one;
//! * after a controller kill during a freeze hook, the guardian runs the thaw hook while the
//!   freeze hook still runs (which then finishes last);
//! * a FITHAW that blocks (the image of a loop-backed filesystem on a filesystem someone else
//!   froze meanwhile) stalls the guardian's main thread: the other mounts stay frozen; the
//!   controller's own fallback FITHAW hangs it in D state;
//! * a stdout whose reader does not read blocks the controller after the thaw: CMD is not
//!   ended after --kill-after;
//! * a guardian left behind (FIFREEZE that does not return) keeps snapguard's stderr open, so a
//!   caller reading snapguard's output to its end hangs with the device.

mod common;
mod freeze_support;

use common::{Mount, TestDir, require_root, run_snapguard};
use freeze_support::*;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RCU_KNOB: &str = "/sys/kernel/rcu_expedited";

// ---- helpers ------------------------------------------------------------------------------------

fn guardian_of(rec: &Value) -> i32 {
    rec["guardian"]["pid"].as_i64().expect("guardian pid") as i32
}

/// Whether any thread of process `pid` is left (a guardian killed inside FIFREEZE is a zombie
/// leader with its worker thread still in the kernel).
fn any_thread_left(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !s.lines().any(|l| l == "Threads:\t0"))
            .unwrap_or(false)
}

fn signal(pid: i32, s: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
}

/// Time until a write into `dir` succeeds (bounded; thaws our own `dir` and panics beyond).
fn time_to_writable(dir: &Path, limit: Duration, context: &str) -> Duration {
    let start = Instant::now();
    let (_, mut w) = write_blocks(dir, Duration::ZERO);
    loop {
        if w.try_wait().expect("try_wait").is_some() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), dir.as_os_str()]);
            let _ = w.wait();
            panic!("{context}: {} still frozen after {limit:?}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILL, on drop, a process this test started (a controller, or the CMD it runs), so that a
/// failing test does not leave it running.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            signal(self.0, Signal::SIGKILL);
        }
    }
}

/// SIGCONT, on drop, a process this test stopped.
struct ContOnDrop(i32);

impl Drop for ContOnDrop {
    fn drop(&mut self) {
        signal(self.0, Signal::SIGCONT);
    }
}

/// Remove, on drop, the record a run of this test may have left in /run/snapguard (other tests
/// running `snapguard thaw` must not see it).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("json.tmp"));
    }
}

/// An ext4 (`inner`) whose image lives on another test ext4 (`outer`): holding `outer` frozen
/// makes the FIFREEZE of `inner` (with dirty data) block in the kernel. Dropped inner first
/// (thawed, unmounted, detached), then — once the inner loop device has really let go of its
/// image, which the kernel may defer while something (udev) still has it open — the outer one.
struct Nested {
    inner: Option<TestFs>,
    outer: Option<TestFs>,
}

impl Nested {
    fn new(dir: &TestDir) -> Self {
        let outer = TestFs::new(dir, "outer", "ext4", 128 * MIB);
        let inner = TestFs::in_dir(outer.dir(), dir, "inner", "ext4", 48 * MIB, None);
        Nested {
            inner: Some(inner),
            outer: Some(outer),
        }
    }

    fn inner(&self) -> &TestFs {
        self.inner.as_ref().expect("inner")
    }

    fn outer(&self) -> &TestFs {
        self.outer.as_ref().expect("outer")
    }

    /// Dirty data in the inner filesystem, then the outer frozen by "someone else" (this test).
    fn block(&self) -> common::Freeze {
        std::fs::write(self.inner().dir().join("dirty"), vec![7u8; 4 << 20])
            .expect("dirty the inner filesystem");
        self.outer().fsfreeze()
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        // A frozen outer one would block everything below: thaw it first (ours).
        if let Some(outer) = &self.outer {
            let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), outer.dir().as_os_str()]);
        }
        let image = self.inner.as_ref().map(|i| i.image.clone());
        drop(self.inner.take());
        if let Some(image) = image {
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && loop_backed_by(&image) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.outer.take());
    }
}

/// Whether some loop device still has `image` as its backing file.
fn loop_backed_by(image: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("loop/backing_file"))
            .is_ok_and(|b| Path::new(b.trim_end_matches('\n')) == image)
    })
}

/// `snapguard freeze --json` of `mount` (no pre-sync: FIFREEZE does all the flushing, so on a
/// `Nested` inner with the outer frozen it blocks), with `extra` options, CMD `sleep 30`.
fn start_freeze(dir: &TestDir, mount: &Path, tag: &str, extra: &[&str]) -> Background {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("freeze"),
        OsStr::new("--no-expedite-rcu"),
        OsStr::new("--json"),
        OsStr::new("--no-hooks"),
        OsStr::new("--sync-timeout"),
        OsStr::new("0"),
        OsStr::new("--kill-after"),
        OsStr::new("1s"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.extend([
        mount.as_os_str(),
        OsStr::new("--"),
        OsStr::new("sleep"),
        OsStr::new("30"),
    ]);
    Background::start(&dir.path(), tag, &args, false)
}

/// `snapguard thaw --json MOUNT` (named, so only records naming it are considered).
fn thaw_json(mount: &Path) -> Value {
    run_snapguard(
        [OsStr::new("thaw"), OsStr::new("--json"), mount.as_os_str()],
        Duration::from_secs(30),
    )
    .json()
}

/// Run `script` (sh) in a private mount namespace (`unshare -m --propagation private`), with
/// `$1`.. = `args`; returns its exit code. Mounts made by the script vanish with it.
fn in_private_mount_ns(script: &str, args: &[&OsStr]) -> Option<i32> {
    let _turn = common::mount_namespace_turn(false);
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("-m"),
        OsStr::new("--propagation"),
        OsStr::new("private"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(script),
        OsStr::new("sh"),
    ];
    all.extend_from_slice(args);
    let w = common::run_watched("unshare", &all, Duration::from_secs(30), |_| false);
    assert!(
        !w.timed_out,
        "the run in a private mount namespace hung: {w:?}"
    );
    w.exit
}

// ---- 1. a stopped guardian ---------------------------------------------------------------------

/// SIGSTOP the guardian while the filesystem is frozen. The guardian cannot thaw while stopped;
/// the controller is the only one left to keep the promise "frozen no longer than the deadline
/// (+1 s)". It only wakes the guardian (SIGCONT) at the deadline + `control::GRACE` (2 s) and
/// then pings it with a 2 s timeout: the filesystem stays frozen until the deadline + 2 s (and
/// up to + 4 s if the guardian is stopped again).
#[test]
fn a_stopped_guardian_still_thaws_within_a_second_of_the_deadline() {
    if !require_root("a_stopped_guardian_still_thaws_within_a_second_of_the_deadline") {
        return;
    }
    let dir = TestDir::new("atk-stopped-guardian");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let timeout = Duration::from_secs(2);
    let pid_file = dir.join("cmd.pid");
    let body = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut bg = Background::start(
        &dir.path(),
        "stop",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("2s"),
            OsStr::new("--kill-after"),
            OsStr::new("1s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    // CMD runs: everything is frozen and the guardian has answered the controller's ping.
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(10));
    let frozen_seen = Instant::now();
    let guardian = guardian_of(&rec);
    let _cont = ContOnDrop(guardian);
    signal(guardian, Signal::SIGSTOP);
    // Seen frozen after the FIFREEZE returned: the real frozen time is at least this long.
    let took = time_to_writable(fs.dir(), Duration::from_secs(8), "stopped guardian");
    let seen_frozen_for = frozen_seen.elapsed();
    let code = bg.wait(Duration::from_secs(20));
    let doc: Value = serde_json::from_str(&bg.stdout()).unwrap_or(Value::Null);
    let frozen_ms = doc["mounts"][0]["frozen_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        seen_frozen_for <= timeout + Duration::from_secs(1),
        "a SIGSTOPped guardian kept the filesystem frozen {seen_frozen_for:?} (writable {took:?} \
         after the stop; report frozen_ms {frozen_ms}), past the {timeout:?} deadline + 1 s \
         (exit {code:?})\n{doc:#}"
    );
    assert_writable(fs.dir(), "after the run");
}

// ---- 2. stale `frozen` records after the controller's own thaw ----------------------------------

/// The guardian is SIGKILLed while frozen; the controller, proven the guardian gone, thaws by
/// itself. But the record still says `frozen` until the very end of the run (after CMD's grace
/// period and the thaw hooks). If the controller dies meanwhile (the unit's stop timeout, the
/// OOM killer), the record outlives both with a lie in it, and `snapguard thaw` (the unit's
/// ExecStopPost=) thaws whatever freeze is there now: someone else's.
#[test]
fn a_record_left_after_the_controllers_fallback_thaw_does_not_thaw_a_foreign_freeze() {
    if !require_root(
        "a_record_left_after_the_controllers_fallback_thaw_does_not_thaw_a_foreign_freeze",
    ) {
        return;
    }
    let dir = TestDir::new("atk-stale-record");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let pid_file = dir.join("cmd.pid");
    // CMD ignores SIGTERM: the controller waits --kill-after (30 s) for it after the thaw.
    let body = format!(
        "trap '' TERM; echo $$ > '{}'; while :; do sleep 0.1; done",
        pid_file.display()
    );
    let mut bg = Background::start(
        &dir.path(),
        "stale",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            OsStr::new("--kill-after"),
            OsStr::new("30s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    sigkill(guardian_of(&rec));
    // The controller sees the guardian gone and thaws by itself.
    time_to_writable(
        fs.dir(),
        Duration::from_secs(3),
        "controller's fallback thaw",
    );
    std::thread::sleep(Duration::from_millis(300));
    // Someone else freezes the filesystem; then the controller dies (stop timeout, OOM).
    let foreign = fs.fsfreeze();
    sigkill(ctl as i32);
    assert_eq!(bg.wait(Duration::from_secs(5)), None, "killed");
    let left = record(ctl);
    let doc = thaw_json(fs.dir());
    let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(300));
    drop(foreign); // fsfreeze -u, errors ignored (snapguard may have thawed it already)
    let _ = w.wait();
    assert!(
        blocked,
        "`snapguard thaw` thawed a freeze snapguard did not take, from the record its \
         controller left after thawing by itself: record {left:#?}\nthaw: {doc:#}"
    );
}

/// Same lie in `freeze-test`, where nobody even has to die: its controller thaws by itself
/// after losing the guardian (here: SIGKILLed right after its FIFREEZE returned, while the
/// controller was briefly stopped) and exits normally, leaving the record `frozen` forever.
/// Any later `snapguard thaw` (an admin, the freeze unit's ExecStopPost=) thaws whatever freeze
/// that filesystem has then.
#[test]
fn freeze_test_leaves_no_frozen_record_after_its_own_fallback_thaw() {
    if !require_root("freeze_test_leaves_no_frozen_record_after_its_own_fallback_thaw") {
        return;
    }
    let dir = TestDir::new("atk-freeze-test-record");
    let n = Nested::new(&dir);
    let held = n.block();
    let mut bg = Background::start(
        &dir.path(),
        "ft",
        &[
            OsStr::new("freeze-test"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--sync-timeout"),
            OsStr::new("0"),
            OsStr::new("--timeout"),
            OsStr::new("15s"),
            n.inner().dir().as_os_str(),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let rec = wait_for_state(ctl, 0, "freezing", Duration::from_secs(20));
    let guardian = guardian_of(&rec);
    // The controller waits for the FIFREEZE; stop it there.
    signal(ctl as i32, Signal::SIGSTOP);
    let cont = ContOnDrop(ctl as i32);
    held.thaw();
    wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    sigkill(guardian);
    std::thread::sleep(Duration::from_millis(100));
    drop(cont);
    let code = bg.wait(Duration::from_secs(15));
    time_to_writable(
        n.inner().dir(),
        Duration::from_secs(1),
        "freeze-test fallback",
    );
    let left = record(ctl);
    // Someone else freezes the filesystem later; then `snapguard thaw` runs.
    let foreign = n.inner().fsfreeze();
    let doc = thaw_json(n.inner().dir());
    let (blocked, mut w) = write_blocks(n.inner().dir(), Duration::from_millis(300));
    drop(foreign); // fsfreeze -u, errors ignored (snapguard may have thawed it already)
    let _ = w.wait();
    assert!(
        blocked,
        "freeze-test (exit {code:?}) thawed by itself and left its record saying frozen \
         ({left:#?}); `snapguard thaw` then thawed someone else's freeze: {doc:#}"
    );
}

// ---- 3. catchable signals the guardian does not catch -------------------------------------------

/// "Thaws ... on any catchable signal". SIGABRT, SIGSYS and SIGSEGV sent with kill(2) are
/// catchable and terminate by default, but the guardian's signalfd set leaves them out: the
/// guardian dies like on SIGKILL (for SIGSEGV, at the second one: Rust's handler swallows the
/// first). Inside a blocking FIFREEZE that means nobody thaws the
/// filesystem when the FIFREEZE completes. With SIGTERM the same run thaws at once.
#[test]
fn fault_signals_sent_to_the_guardian_inside_fifreeze_still_thaw() {
    if !require_root("fault_signals_sent_to_the_guardian_inside_fifreeze_still_thaw") {
        return;
    }
    let dir = TestDir::new("atk-fault-signals");
    let n = Nested::new(&dir);
    for sig in [Signal::SIGABRT, Signal::SIGSYS, Signal::SIGSEGV] {
        let held = n.block();
        let mut bg = start_freeze(&dir, n.inner().dir(), sig.as_str(), &["--timeout", "3s"]);
        let ctl = bg.child.id();
        let _kill_ctl = KillOnDrop(ctl as i32);
        let _record = RemoveOnDrop(record_path(ctl));
        let rec = wait_for_state(ctl, 0, "freezing", Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(300));
        let guardian = guardian_of(&rec);
        signal(guardian, sig);
        if sig == Signal::SIGSEGV {
            // Rust's own SIGSEGV handler (stack-overflow detection) swallows the first one it
            // did not cause and restores the default action: the second one kills.
            std::thread::sleep(Duration::from_millis(50));
            signal(guardian, sig);
        }
        std::thread::sleep(Duration::from_millis(100));
        // The FIFREEZE completes once the outer filesystem is thawed ...
        held.thaw();
        // ... and what it froze must be thawed at once.
        time_to_writable(
            n.inner().dir(),
            Duration::from_secs(1),
            &format!("{sig} to the guardian inside FIFREEZE"),
        );
        bg.wait(Duration::from_secs(15));
        assert_writable(n.outer().dir(), &format!("{sig}: outer"));
    }
}

// ---- 4. a signal to the guardian before the first freeze ----------------------------------------

/// SIGTERM to the guardian while a freeze hook runs (nothing frozen yet). The guardian ends for
/// good; the controller reads its `K signal-15`, then opens a window (which forgets why the
/// guardian stopped), gets `Q` for its FIFREEZE and reports `timeout` with exit 124 — "the
/// deadline passed" — although no deadline was ever armed and nothing was frozen.
#[test]
fn a_signal_to_the_guardian_before_the_first_freeze_is_not_a_timeout() {
    if !require_root("a_signal_to_the_guardian_before_the_first_freeze_is_not_a_timeout") {
        return;
    }
    let dir = TestDir::new("atk-early-guardian-signal");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("atk-early-signal");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let ready = dir.join("hook.ready");
    script(
        &hooks.join("10-slow"),
        &format!(
            "if [ \"$1\" = freeze ]; then echo $PPID > '{}'; sleep 1; fi",
            ready.display()
        ),
        0o755,
    );
    script(&hooks.join("20-quick"), "true", 0o755);
    let cmd_ran = dir.join("cmd.ran");
    let mut bg = Background::start(
        &dir.path(),
        "early",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--hooks-dir"),
            hooks.as_os_str(),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("touch"),
            cmd_ran.as_os_str(),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    wait_for_pid_file(&ready, Duration::from_secs(20));
    let rec = record(ctl).expect("the guardian wrote the record");
    signal(guardian_of(&rec), Signal::SIGTERM);
    let code = bg.wait(Duration::from_secs(20));
    let doc: Value = serde_json::from_str(&bg.stdout()).expect("report");
    assert!(!cmd_ran.exists(), "CMD must not run");
    assert_writable(fs.dir(), "early guardian signal");
    assert!(
        code != Some(124) && doc["outcome"] != "timeout",
        "nothing was frozen and no deadline passed, yet the run says timeout (exit {code:?}):\n\
         {doc:#}\n{}",
        bg.stderr()
    );
    assert_eq!(code, Some(125), "{doc:#}");
}

// ---- 5. the record on a filesystem of the freeze set --------------------------------------------

/// The record's directory is on the filesystem being frozen (here: /run/snapguard bind-mounted
/// from it, in a private mount namespace). Design: the guardian writes the record one last time
/// before that FIFREEZE, with `live: false` and the mount `freezing`, so that a rescuer knows
/// its states may lag. In `Guardian::freeze` the state is set to `freezing` *before* that last
/// write, and `write_record` refuses to write while the record's own mount "may be frozen":
/// the write never happens. The record read while frozen says `planned`, `live: true`: if both
/// processes die now, `snapguard thaw` finds "nothing" for a filesystem that stays frozen.
#[test]
fn the_record_says_not_live_before_its_own_filesystem_is_frozen() {
    if !require_root("the_record_says_not_live_before_its_own_filesystem_is_frozen") {
        return;
    }
    let dir = TestDir::new("atk-record-on-frozen");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let rundir = fs.dir().join("run-snapguard");
    std::fs::create_dir(&rundir).expect("mkdir");
    std::fs::create_dir_all("/run/snapguard").expect("/run/snapguard");
    let seen = dir.join("record-while-frozen.json");
    let out = dir.join("ns.out");
    let err = dir.join("ns.err");
    // CMD copies the record (read from the frozen filesystem: reads are fine) to /tmp.
    let code = in_private_mount_ns(
        "mount --bind \"$1\" /run/snapguard || exit 90; \
         exec \"$2\" freeze --json --no-hooks --no-expedite-rcu --timeout 10s \"$3\" -- \
           sh -c 'cat /run/snapguard/freeze-*.json > \"$0\"' \"$4\" > \"$5\" 2> \"$6\"",
        &[
            rundir.as_os_str(),
            bin().as_os_str(),
            fs.dir().as_os_str(),
            seen.as_os_str(),
            out.as_os_str(),
            err.as_os_str(),
        ],
    );
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(code, Some(0), "the run itself: {stderr}");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&seen).expect("CMD's copy"))
        .expect("record json");
    assert_writable(fs.dir(), "record on the frozen filesystem");
    assert_eq!(
        rec["live"], false,
        "while its own filesystem is frozen the record must say live: false (its states may \
         lag; a rescuer must not trust `planned`): {rec:#}"
    );
    assert_ne!(rec["mounts"][0]["state"], "planned", "{rec:#}");
}

/// /run/snapguard exists but the guardian cannot write there (read-only, or full: ENOSPC).
/// `start_guardian` warns when it cannot *create* the directory ("no record of this run"), but
/// a record that cannot be *written* is ignored (`let _ = rec.write()`): the run freezes with
/// no rescue record and says nothing. If controller and guardian die, `snapguard thaw` says
/// "no snapguard record" for a filesystem snapguard left frozen.
#[test]
fn a_record_that_cannot_be_written_is_reported() {
    if !require_root("a_record_that_cannot_be_written_is_reported") {
        return;
    }
    let dir = TestDir::new("atk-record-ro");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    std::fs::create_dir_all("/run/snapguard").expect("/run/snapguard");
    let out = dir.join("ns.out");
    let err = dir.join("ns.err");
    let code = in_private_mount_ns(
        "mount -t tmpfs -o size=64k,mode=0700 tmpfs /run/snapguard || exit 90; \
         mount -o remount,ro /run/snapguard || exit 91; \
         exec \"$1\" freeze --json --no-hooks --no-expedite-rcu --timeout 10s \"$2\" -- true > \"$3\" 2> \"$4\"",
        &[
            bin().as_os_str(),
            fs.dir().as_os_str(),
            out.as_os_str(),
            err.as_os_str(),
        ],
    );
    assert_writable(fs.dir(), "record directory read-only");
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_default())
        .unwrap_or_default();
    let said = doc["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .any(|t| t.as_str().unwrap_or("").contains("record"))
        })
        .unwrap_or(false)
        || stderr.contains("record");
    let refused = code != Some(0) && doc["window_ms"].is_null();
    assert!(
        said || refused,
        "the guardian could not write its record, and the run froze anyway without a word \
         (exit {code:?}):\n{doc:#}\n{stderr}"
    );
}

// ---- 6. a remedy that does not paste ------------------------------------------------------------

/// A mount point whose name holds a newline (README: "strange mount names with \040 or
/// newlines"). When snapguard prints `snapguard thaw --force PATH` for it, `shell::quote` puts
/// the raw newline inside single quotes, and the human renderer's `sanitize` then turns it into
/// the two characters `\n`: pasted into a shell, the command names a path that does not exist
/// (exit 3) and the filesystem stays frozen.
#[test]
fn the_printed_thaw_force_remedy_works_for_a_mount_point_with_a_newline() {
    if !require_root("the_printed_thaw_force_remedy_works_for_a_mount_point_with_a_newline") {
        return;
    }
    let dir = TestDir::new("atk-newline-remedy");
    let n = Nested::new(&dir);
    let odd = dir.mkdir("new\nline");
    let bind = Mount::bind(n.inner().dir(), &odd);
    let held = n.block();
    let mut bg = start_freeze(&dir, bind.dir(), "nl", &["--timeout", "5s"]);
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let rec = wait_for_state(ctl, 0, "freezing", Duration::from_secs(20));
    let guardian = guardian_of(&rec);
    // Both die inside the FIFREEZE: its outcome is unknown, the rescue prints the remedy.
    sigkill_both(guardian, ctl as i32);
    bg.wait(Duration::from_secs(5));
    held.thaw();
    let end = Instant::now() + Duration::from_secs(5);
    while any_thread_left(guardian) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run_snapguard(
        [OsStr::new("thaw"), bind.dir().as_os_str()],
        Duration::from_secs(30),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    let remedy = text
        .lines()
        .find_map(|l| l.find("snapguard thaw --force").map(|p| l[p..].to_string()))
        .unwrap_or_else(|| panic!("no remedy printed:\n{text}"));
    // Pasted into bash, with `snapguard` being this build.
    let pasted = common::run_any(
        "bash",
        &[
            OsStr::new("-c"),
            OsStr::new(&format!("snapguard() {{ \"$0\" \"$@\"; }}; {remedy}")),
            bin().as_os_str(),
        ],
    );
    let thawed = pasted.exit == Some(0);
    // Whatever happened, ours is thawed before the guards unmount.
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), n.inner().dir().as_os_str()]);
    assert!(
        thawed,
        "the printed remedy does not work when pasted:\n  {remedy}\n{pasted:?}"
    );
    drop(bind);
}

// ---- 7. the one-line summary on stderr ----------------------------------------------------------

/// "A failure is also said in one line on stderr" (cron sends stdout to /dev/null). Without a
/// failed row, `problem_line` takes the first message, and the guardian's setup warnings come
/// first: on a machine where root lacks CAP_SYS_RESOURCE (containers) every timeout reads
/// "snapguard: freeze timeout (exit 124): the guardian could not protect itself from the OOM
/// killer ...". The line must say what failed.
#[test]
fn the_stderr_summary_names_the_failure_not_a_warning() {
    if !require_root("the_stderr_summary_names_the_failure_not_a_warning") {
        return;
    }
    let dir = TestDir::new("atk-summary-line");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let mut watched = std::process::Command::new("setpriv");
    watched
        .args(["--inh-caps=-sys_resource", "--bounding-set=-sys_resource"])
        .arg(bin())
        .args([
            "freeze",
            "--no-hooks",
            "--no-expedite-rcu",
            "--timeout",
            "1s",
            "--kill-after",
            "0",
        ])
        .arg(fs.dir())
        .args(["--", "sleep", "5"])
        .stdin(std::process::Stdio::null());
    let out = watched.output().expect("run snapguard under setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("snapguard: freeze "))
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    assert!(
        !line.contains("OOM") && line.contains("deadline"),
        "the one-line summary names a warning, not the failure: {line}"
    );
    assert_writable(fs.dir(), "summary line");
}

// ---- 8. the global RCU knob ---------------------------------------------------------------------

/// Puts `/sys/kernel/rcu_expedited` back to 0 on drop if this test found it at 0.
struct RcuRestore(bool);

impl Drop for RcuRestore {
    fn drop(&mut self) {
        if self.0 {
            let _ = std::fs::write(RCU_KNOB, b"0\n");
        }
    }
}

fn rcu_knob() -> Option<String> {
    std::fs::read_to_string(RCU_KNOB)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The guardian turns `/sys/kernel/rcu_expedited` on before FIFREEZE and off after it returns
/// (or after 100 ms, whichever comes first: a FIFREEZE blocked on a hung device does not keep
/// the machine in expedited mode). A guardian *and* controller SIGKILLed inside the FIFREEZE
/// cannot turn it off: the rescue that follows such a death (`snapguard thaw`, the freeze
/// unit's ExecStopPost=) must put it back, from the dead run's record. (Found: nothing did.)
#[test]
fn the_rcu_knob_is_not_left_on_when_the_guardian_dies_inside_fifreeze() {
    if !require_root("the_rcu_knob_is_not_left_on_when_the_guardian_dies_inside_fifreeze") {
        return;
    }
    if rcu_knob().is_none() {
        common::skip(
            "the_rcu_knob_is_not_left_on_when_the_guardian_dies_inside_fifreeze",
            "no /sys/kernel/rcu_expedited",
        );
        return;
    }
    let _restore = RcuRestore(true);
    let _ = std::fs::write(RCU_KNOB, b"0\n");
    let dir = TestDir::new("atk-rcu-knob");
    let n = Nested::new(&dir);
    let held = n.block();
    let mut bg = Background::start(
        &dir.path(),
        "rcu",
        &[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--sync-timeout"),
            OsStr::new("0"),
            OsStr::new("--timeout"),
            OsStr::new("5s"),
            n.inner().dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sleep"),
            OsStr::new("30"),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let rec = wait_for_state(ctl, 0, "freezing", Duration::from_secs(20));
    let guardian = guardian_of(&rec);
    // Our FIFREEZE blocks with the knob on (every other run in this test binary leaves the knob
    // alone: --no-expedite-rcu) for its first 100 ms: kill inside them.
    let seen = Instant::now();
    let mut during = rcu_knob().unwrap_or_default();
    while during != "1" && seen.elapsed() < Duration::from_millis(50) {
        std::thread::sleep(Duration::from_micros(200));
        during = rcu_knob().unwrap_or_default();
    }
    sigkill_both(guardian, ctl as i32);
    bg.wait(Duration::from_secs(5));
    held.thaw();
    let end = Instant::now() + Duration::from_secs(5);
    while any_thread_left(guardian) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The rescue that follows such a death (the unit's ExecStopPost=) puts the knob back, from
    // the dead run's record. (Any rescue does, also another test's running concurrently: the
    // knob is checked, not which rescue's note says so.)
    thaw_json(n.inner().dir());
    // Other snapguard runs may turn the knob on for milliseconds: left on means on every time.
    // (Sampled right away: on a shared machine another tool may put it back later.)
    let mut samples = Vec::new();
    for _ in 0..4 {
        samples.push(rcu_knob().unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    // What the dead guardian froze: ours, thawed here.
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), n.inner().dir().as_os_str()]);
    assert_eq!(
        during, "1",
        "the guardian expedites RCU around its FIFREEZE"
    );
    assert!(
        samples.iter().any(|s| s == "0"),
        "rcu_expedited left at 1 after the guardian died inside FIFREEZE: {samples:?}"
    );
}

// ---- 9. a foreign thaw inside the window --------------------------------------------------------

/// Someone thaws the filesystem while CMD runs (an admin's `fsfreeze -u`, another tool's
/// `thaw`, CMD itself): the snapshot CMD takes is no longer consistent. snapguard notices —
/// its own FITHAW says EINVAL and the row reads "someone else thawed it before snapguard did
/// (the frozen window was broken)" — yet the run's outcome is `completed` and the exit status
/// is CMD's 0, the very status the caller reads as "consistent snapshot".
#[test]
fn a_foreign_thaw_inside_the_window_is_not_reported_as_a_consistent_snapshot() {
    if !require_root("a_foreign_thaw_inside_the_window_is_not_reported_as_a_consistent_snapshot") {
        return;
    }
    let dir = TestDir::new("atk-foreign-thaw");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let body = format!("fsfreeze -u '{}' && sleep 0.2", fs.dir().display());
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("10s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        Duration::from_secs(30),
    );
    let doc = out.json();
    assert_writable(fs.dir(), "foreign thaw");
    let r = row(&doc, fs.dir());
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("window was broken"),
        "the row knows: {r:#}"
    );
    assert!(
        doc["outcome"] != "completed" && out.exit != 0,
        "the window was broken by a foreign thaw, yet exit {}, outcome {}: {doc:#}",
        out.exit,
        doc["outcome"]
    );
}

// ---- 10. a mount point whose name is not UTF-8 --------------------------------------------------

/// A mount point whose name is not UTF-8 (a Latin-1 directory name, a USB stick's label).
/// `freeze-test --probe-only` calls it freezable, but every real run fails before freezing
/// anything: the guardian's spec (and the record) serialise paths as JSON strings, so
/// `Spec::to_line` refuses. `freeze` then reports `guardian-lost` (125) and `freeze-test` exits
/// 3 — for the default set (no MOUNT), one such mount anywhere on the machine fails every
/// backup.
#[test]
fn a_mount_point_whose_name_is_not_utf8_can_be_frozen() {
    if !require_root("a_mount_point_whose_name_is_not_utf8_can_be_frozen") {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let dir = TestDir::new("atk-not-utf8");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let odd = dir.path().join(OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir(&odd).expect("mkdir");
    let bind = Mount::bind(fs.dir(), &odd);
    let cmd_ran = dir.join("cmd.ran");
    let out = run_snapguard(
        [
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("10s"),
            bind.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("touch"),
            cmd_ran.as_os_str(),
        ],
        Duration::from_secs(30),
    );
    assert_writable(fs.dir(), "not UTF-8");
    assert!(
        out.exit == 0 && cmd_ran.exists(),
        "a legitimate mount point with a non-UTF-8 name cannot be frozen (exit {}):\n{}\n{}",
        out.exit,
        out.stdout,
        out.stderr
    );
    drop(bind);
}

// ---- 11. the rescue forgets what it could not reach ---------------------------------------------

/// A tmpfs mounted over a mount point of ours; unmounted (the top mount there) on drop.
struct Cover(PathBuf);

impl Cover {
    fn over(dir: &Path) -> Self {
        common::run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new("size=1m"),
                OsStr::new("tmpfs"),
                dir.as_os_str(),
            ],
        );
        Cover(dir.to_path_buf())
    }
}

impl Drop for Cover {
    fn drop(&mut self) {
        let _ = common::run_any("umount", &[self.0.as_os_str()]);
    }
}

/// Controller and guardian are both SIGKILLed while frozen; the mount point is then covered
/// (an automount, a tmpfs). `snapguard thaw` cannot reach the frozen mount ("skipped: not
/// reachable any more") — and deletes the record anyway (`left` counts only failed thaws). Once
/// the cover is gone, `snapguard thaw` says "nothing to thaw" (exit 0) while the filesystem
/// snapguard froze stays frozen.
#[test]
fn the_rescue_keeps_the_record_of_a_mount_it_could_not_reach() {
    if !require_root("the_rescue_keeps_the_record_of_a_mount_it_could_not_reach") {
        return;
    }
    let dir = TestDir::new("atk-rescue-covered");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let pid_file = dir.join("cmd.pid");
    let body = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut bg = Background::start(
        &dir.path(),
        "covered",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    sigkill_both(guardian_of(&rec), ctl as i32);
    bg.wait(Duration::from_secs(5));
    let cover = Cover::over(fs.dir());
    let first = thaw_json(fs.dir());
    drop(cover);
    let second = thaw_json(fs.dir());
    let (blocked, mut w) = write_blocks(fs.dir(), Duration::from_millis(300));
    // Ours: thawed here whatever the rescue did.
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), fs.dir().as_os_str()]);
    let _ = w.wait();
    assert!(
        !blocked,
        "snapguard froze it, the first rescue could not reach it and dropped the record, the \
         second found nothing: still frozen.\nfirst: {first:#}\nsecond: {second:#}"
    );
}

// ---- 12. a reused controller pid overwrites a stale record --------------------------------------

/// Start `cmd` so that its pid is `want` (`/proc/sys/kernel/ns_last_pid`, as CRIU does; retried
/// when another process takes the pid first). Runs that got another pid are waited for.
fn spawn_with_pid(want: u32, cmd: &mut std::process::Command) -> std::process::Child {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", want - 1))
            .expect("write ns_last_pid");
        let mut child = cmd.spawn().expect("spawn");
        if child.id() == want {
            return child;
        }
        let _ = child.wait();
    }
    panic!("could not get pid {want} for the second run");
}

/// Records are named after the controller's pid alone (`freeze-PID.json`), and the guardian
/// creates its record by renaming over that name. pid_max is 32768 on a small VM: pids come
/// back. A run whose controller gets the pid of a run that crashed with a filesystem frozen
/// (its record is the only way to rescue it) replaces that record with its own, and removes it
/// when it ends cleanly: `snapguard thaw` then finds "no record" for the filesystem the first
/// run left frozen.
#[test]
fn a_new_run_with_a_reused_pid_does_not_destroy_a_stale_record() {
    if !require_root("a_new_run_with_a_reused_pid_does_not_destroy_a_stale_record") {
        return;
    }
    if std::fs::metadata("/proc/sys/kernel/ns_last_pid").is_err() {
        common::skip(
            "a_new_run_with_a_reused_pid_does_not_destroy_a_stale_record",
            "no /proc/sys/kernel/ns_last_pid",
        );
        return;
    }
    let dir = TestDir::new("atk-pid-reuse");
    let a = TestFs::new(&dir, "a", "ext4", 32 * MIB);
    let b = TestFs::new(&dir, "b", "ext4", 32 * MIB);
    // Run 1 on A: controller and guardian SIGKILLed while frozen: A stays frozen, its record
    // (the rescue's only clue) stays.
    let pid_file = dir.join("cmd.pid");
    let body = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut first = Background::start(
        &dir.path(),
        "first",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            a.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = first.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    sigkill_both(guardian_of(&rec), ctl as i32);
    first.wait(Duration::from_secs(5));
    sigkill(cmd);
    assert_eq!(
        record(ctl).map(|r| r["mounts"][0]["state"].clone()),
        Some(Value::from("frozen")),
        "the crashed run's record"
    );
    // Run 2 on B, later, whose controller happens to get the same pid; it ends cleanly.
    let mut second = std::process::Command::new(bin());
    second
        .args([
            "freeze",
            "--no-hooks",
            "--no-expedite-rcu",
            "--timeout",
            "10s",
        ])
        .arg(b.dir())
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = spawn_with_pid(ctl, &mut second);
    let status = child.wait().expect("second run");
    assert!(status.success(), "the second run: {status:?}");
    // The rescue for A.
    let doc = thaw_json(a.dir());
    let (blocked, mut w) = write_blocks(a.dir(), Duration::from_millis(300));
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), a.dir().as_os_str()]);
    let _ = w.wait();
    assert!(
        !blocked,
        "a later run with the same controller pid destroyed the record of a run that left \
         {} frozen; `snapguard thaw` cannot rescue it any more: {doc:#}",
        a.dir().display()
    );
}

// ---- 13. the guardian's thaw hook races the freeze hook it undoes -------------------------------

/// snapguard is SIGKILLed while a freeze hook runs (say, a database's "flush tables with read
/// lock"). The guardian sees the end of file and runs that hook's thaw hook at once — while the
/// freeze hook, in its own process group, is still running. The freeze hook finishes *after*
/// its thaw hook: the lock it takes is never released. (The controller's own path kills a
/// hook's group before going on; the guardian knows nothing of the running hook but its index.)
#[test]
fn after_a_controller_kill_the_thaw_hook_does_not_run_before_its_freeze_hook_ended() {
    if !require_root(
        "after_a_controller_kill_the_thaw_hook_does_not_run_before_its_freeze_hook_ended",
    ) {
        return;
    }
    let dir = TestDir::new("atk-hook-race");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("atk-hook-race");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let log = dir.join("hook.log");
    let ready = dir.join("hook.ready");
    script(
        &hooks.join("10-db"),
        &format!(
            "if [ \"$1\" = freeze ]; then echo 'freeze start' >> '{log}'; echo $PPID > '{ready}'; \
             sleep 1.5; echo 'freeze done: lock taken' >> '{log}'; \
             else echo 'thaw: lock released' >> '{log}'; fi",
            log = log.display(),
            ready = ready.display()
        ),
        0o755,
    );
    let mut bg = Background::start(
        &dir.path(),
        "hookrace",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--hooks-dir"),
            hooks.as_os_str(),
            OsStr::new("--timeout"),
            OsStr::new("10s"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    wait_for_pid_file(&ready, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(200));
    sigkill(ctl as i32);
    bg.wait(Duration::from_secs(5));
    // Long enough for the freeze hook to finish (1.5 s) and any thaw hook to run.
    std::thread::sleep(Duration::from_millis(2500));
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_writable(fs.dir(), "hook race");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("thaw: lock released"),
        "the thaw hook ran before its freeze hook ended; what the freeze hook did last stays \
         done: {lines:#?}"
    );
}

// ---- 14. a FITHAW that blocks ---------------------------------------------------------------------

/// FITHAW can block: ext4's unfreeze writes the superblock, and for a loop-backed ext4 that
/// write goes to an image on another filesystem — which someone else may have frozen meanwhile
/// (another freezer, an admin's `fsfreeze -f`). The guardian's *main* thread issues every
/// FITHAW, last first: while one blocks (D state) it thaws nothing else, answers no ping and
/// reads no signal. Here two loop-backed filesystems are frozen; the image of the one thawed
/// first lives on a filesystem that "someone else" freezes during the window. The other one,
/// which nothing prevents from thawing, stays frozen long past the deadline. (The controller
/// then declares the guardian unresponsive and tries its own FITHAW — starting with the
/// blocked one, so it hangs in D state too.)
#[test]
fn a_blocked_fithaw_does_not_keep_the_other_mounts_frozen() {
    if !require_root("a_blocked_fithaw_does_not_keep_the_other_mounts_frozen") {
        return;
    }
    let dir = TestDir::new("atk-blocked-fithaw");
    let d1 = TestDir::new("atk-blocked-fithaw-1");
    let d2 = TestDir::new("atk-blocked-fithaw-2");
    let one = Nested::new(&d1);
    let two = Nested::new(&d2);
    let order = dir.join("order");
    let body = format!(
        "printf '%s' \"$SNAPGUARD_FROZEN\" > '{}'; exec sleep 30",
        order.display()
    );
    let timeout = Duration::from_secs(2);
    let mut bg = Background::start(
        &dir.path(),
        "blocked",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("2s"),
            OsStr::new("--kill-after"),
            OsStr::new("1s"),
            one.inner().dir().as_os_str(),
            two.inner().dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let end = Instant::now() + Duration::from_secs(20);
    let frozen = loop {
        if let Ok(text) = std::fs::read_to_string(&order) {
            if text.lines().count() == 2 {
                break text;
            }
        }
        assert!(Instant::now() < end, "CMD did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    let started = Instant::now();
    // Thaw is last first: the last one frozen is thawed first.
    let first_thawed = Path::new(frozen.lines().last().expect("two lines")).to_path_buf();
    let (blocking, other) = if first_thawed == one.inner().dir() {
        (&one, &two)
    } else {
        (&two, &one)
    };
    // Someone else freezes the filesystem holding the image of the one thawed first. (Declared
    // last: dropped first, which unblocks everything.)
    let foreign = blocking.outer().fsfreeze();
    let limit = (timeout + Duration::from_secs(1)).saturating_sub(started.elapsed());
    let result = std::panic::catch_unwind(|| {
        time_to_writable(
            other.inner().dir(),
            limit + Duration::from_secs(3),
            "the mount whose FITHAW nothing blocks",
        )
    });
    let took = started.elapsed();
    drop(foreign);
    let _ = bg.wait(Duration::from_secs(20));
    assert!(
        result.is_ok() && took <= timeout + Duration::from_secs(1),
        "{} stayed frozen {took:?} ({timeout:?} deadline) because the FITHAW of {} blocked \
         the guardian's main thread:\n{}",
        other.inner().dir().display(),
        blocking.inner().dir().display(),
        bg.stdout()
    );
    assert_writable(
        blocking.inner().dir(),
        "blocked one, after the foreign thaw",
    );
}

/// The same blocking FITHAW, on the controller's side: the guardian is SIGKILLed while frozen
/// and the controller, proven it gone, thaws by itself — on its main thread, with no bound. The
/// image of the frozen filesystem lives on a filesystem someone else froze meanwhile: the
/// controller sits in D state (unkillable: SIGKILL, the unit's stop timeout, nothing ends it)
/// for as long as that foreign freeze lasts, and reports nothing.
#[test]
fn the_controllers_fallback_thaw_does_not_hang_it() {
    if !require_root("the_controllers_fallback_thaw_does_not_hang_it") {
        return;
    }
    let dir = TestDir::new("atk-fallback-hang");
    let n = Nested::new(&dir);
    let pid_file = dir.join("cmd.pid");
    let body = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut bg = Background::start(
        &dir.path(),
        "fallback",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--json"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            OsStr::new("--kill-after"),
            OsStr::new("1s"),
            n.inner().dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    // Someone else freezes the filesystem holding the inner one's image; then the guardian dies.
    let foreign = n.outer().fsfreeze();
    sigkill(guardian_of(&rec));
    let end = Instant::now() + Duration::from_secs(6);
    let mut exited = None;
    while Instant::now() < end {
        if let Some(st) = bg.child.try_wait().expect("try_wait") {
            exited = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let state = std::fs::read_to_string(format!("/proc/{ctl}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].trim_start().chars().next())
        });
    drop(foreign);
    let _ = bg.wait(Duration::from_secs(20));
    assert_writable(n.inner().dir(), "after the foreign thaw");
    assert!(
        exited.is_some(),
        "the controller still runs 6 s after losing its guardian (state {state:?}: D = stuck in \
         its own FITHAW behind the foreign freeze); it must not hang:\n{}",
        bg.stdout()
    );
}

// ---- 15. a stalled stdout reader ------------------------------------------------------------------

/// CMD's output is held in memory while frozen, then written to snapguard's stdout after the
/// thaw — with blocking writes from the controller's only thread. When stdout is a pipe whose
/// reader does not read (stopped, stuck, slow), the controller blocks there: CMD, past the
/// deadline, is not killed after --kill-after, the thaw hooks do not run, the guardian is not
/// told `D`. Nothing frozen is at stake any more, but the promised timeline is.
#[test]
fn a_stalled_stdout_reader_does_not_stop_cmd_from_being_ended() {
    if !require_root("a_stalled_stdout_reader_does_not_stop_cmd_from_being_ended") {
        return;
    }
    let dir = TestDir::new("atk-stalled-reader");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let pid_file = dir.join("cmd.pid");
    let body = format!(
        "echo $$ > '{}'; seq 1 200000; exec sleep 30",
        pid_file.display()
    );
    // A pipe nobody reads (its read end stays open here).
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut child = std::process::Command::new(bin())
        .args([
            "freeze",
            "--no-hooks",
            "--no-expedite-rcu",
            "--timeout",
            "1s",
            "--kill-after",
            "1s",
        ])
        .arg(fs.dir())
        .args(["--", "sh", "-c", &body])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn snapguard");
    let ctl = child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    let started = Instant::now();
    // Deadline 1 s, then SIGTERM, SIGKILL 1 s later: CMD must be gone well within 4 s.
    while alive(cmd) && started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cmd_alive = alive(cmd);
    assert_writable(fs.dir(), "stalled reader");
    drop(read_end); // the controller gets EPIPE and goes on
    signal(cmd, Signal::SIGKILL);
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !cmd_alive,
        "CMD still runs {:?} after it started (deadline 1 s, --kill-after 1 s): the controller \
         is blocked writing CMD's held output to a stdout nobody reads",
        started.elapsed()
    );
}

// ---- 16. the guardian keeps the caller's stderr open ----------------------------------------------

/// When a FIFREEZE does not return (a hung device; here: an image on a filesystem someone else
/// holds frozen), the controller ends the run and the guardian "stays to thaw it the moment it
/// returns" — holding a copy of snapguard's stderr (the hook output fd, kept in case the
/// controller dies). Whoever reads snapguard's output to its end (`out=$(snapguard freeze ...
/// 2>&1)`, a backup agent capturing it) waits for the guardian, not for snapguard: for as
/// long as the device hangs.
#[test]
fn the_callers_output_ends_when_snapguard_exits() {
    if !require_root("the_callers_output_ends_when_snapguard_exits") {
        return;
    }
    use std::io::Read;
    let dir = TestDir::new("atk-held-stderr");
    let n = Nested::new(&dir);
    let held = n.block();
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut child = std::process::Command::new(bin())
        .args([
            "freeze",
            "--no-hooks",
            "--no-expedite-rcu",
            "--sync-timeout",
            "0",
            "--timeout",
            "1s",
        ])
        .arg(n.inner().dir())
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(write_end))
        .spawn()
        .expect("spawn snapguard");
    let ctl = child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    // The run gives up on the FIFREEZE (deadline + watchdog) and exits.
    let end = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() >= end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        status.is_some(),
        "snapguard did not exit while the FIFREEZE hangs"
    );
    // Its stderr must reach end of file now.
    let mut reader = std::fs::File::from(read_end);
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&reader),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let eof_by = Instant::now() + Duration::from_secs(1);
    let mut text = Vec::new();
    let mut eof = false;
    while Instant::now() < eof_by {
        let mut buf = [0u8; 4096];
        match reader.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(k) => text.extend_from_slice(&buf[..k]),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Let the FIFREEZE return (the guardian thaws it at once and exits).
    held.thaw();
    time_to_writable(
        n.inner().dir(),
        Duration::from_secs(2),
        "after the outer thaw",
    );
    assert!(
        eof,
        "snapguard exited ({status:?}) but its stderr is still open (held by the guardian left \
         behind): a caller reading it to the end hangs with the device. It said:\n{}",
        String::from_utf8_lossy(&text)
    );
}

/// `freeze-test` never tells the guardian which mount holds the record (`record_mount: None`),
/// so when /run/snapguard is on a filesystem being tested (no tmpfs /run: minimal images,
/// some containers), the guardian writes its `frozen` record *into the filesystem it just
/// froze*: its main thread blocks in D state, it cannot thaw at the deadline, and the "brief"
/// test freeze lasts until the controller's watchdog gives up on the guardian and thaws by
/// itself — deadline + several seconds (64 s with the default 60 s deadline).
#[test]
fn freeze_test_with_the_record_on_the_tested_filesystem_thaws_by_the_deadline() {
    if !require_root("freeze_test_with_the_record_on_the_tested_filesystem_thaws_by_the_deadline") {
        return;
    }
    let dir = TestDir::new("atk-ft-record-on-frozen");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let rundir = fs.dir().join("run-snapguard");
    std::fs::create_dir(&rundir).expect("mkdir");
    std::fs::create_dir_all("/run/snapguard").expect("/run/snapguard");
    let out = dir.join("ns.out");
    let err = dir.join("ns.err");
    let started = Instant::now();
    let _code = in_private_mount_ns(
        "mount --bind \"$1\" /run/snapguard || exit 90; \
         exec \"$2\" freeze-test --json --no-expedite-rcu --timeout 2s \"$3\" > \"$4\" 2> \"$5\"",
        &[
            rundir.as_os_str(),
            bin().as_os_str(),
            fs.dir().as_os_str(),
            out.as_os_str(),
            err.as_os_str(),
        ],
    );
    let took = started.elapsed();
    assert_writable(fs.dir(), "freeze-test, record on the tested filesystem");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_default())
        .unwrap_or_default();
    let r = &doc["mounts"][0];
    let frozen_ms = r["frozen_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        frozen_ms <= 3000.0 && r["thawed_by"] != "controller",
        "a 2 s freeze-test kept the filesystem frozen {frozen_ms} ms (run took {took:?}), thawed \
         by {}: {doc:#}",
        r["thawed_by"]
    );
}

// ---- 17. the rescue deadlocks on nested filesystems -----------------------------------------------

/// The rescue thaws a record's entries in the order they are listed — freeze order, the
/// loop-backed filesystem before the one holding its image — instead of last first. The inner
/// filesystem's FITHAW writes its superblock through the loop device into the image on the
/// outer one, which is still frozen: `snapguard thaw` blocks in D state (unkillable) and never
/// reaches the outer one. The rescue meant to end a freeze deadlocks on it.
#[test]
fn the_rescue_thaws_nested_filesystems_outer_first() {
    if !require_root("the_rescue_thaws_nested_filesystems_outer_first") {
        return;
    }
    let dir = TestDir::new("atk-rescue-nested");
    let n = Nested::new(&dir);
    let pid_file = dir.join("cmd.pid");
    let body = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let mut bg = Background::start(
        &dir.path(),
        "nested",
        &[
            OsStr::new("freeze"),
            OsStr::new("--no-expedite-rcu"),
            OsStr::new("--no-hooks"),
            OsStr::new("--timeout"),
            OsStr::new("20s"),
            n.inner().dir().as_os_str(),
            n.outer().dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&body),
        ],
        false,
    );
    let ctl = bg.child.id();
    let _kill_ctl = KillOnDrop(ctl as i32);
    let _record = RemoveOnDrop(record_path(ctl));
    let cmd = wait_for_pid_file(&pid_file, Duration::from_secs(20));
    let _kill_cmd = KillOnDrop(cmd);
    wait_for_state(ctl, 1, "frozen", Duration::from_secs(5));
    let rec = wait_for_state(ctl, 0, "frozen", Duration::from_secs(5));
    // Both die while everything is frozen: the rescue's turn.
    sigkill_both(guardian_of(&rec), ctl as i32);
    bg.wait(Duration::from_secs(5));
    let mut rescue = std::process::Command::new(bin())
        .args(["thaw", "--json"])
        .arg(n.inner().dir())
        .arg(n.outer().dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn snapguard thaw");
    let end = Instant::now() + Duration::from_secs(5);
    let mut finished = false;
    while Instant::now() < end {
        if rescue.try_wait().expect("try_wait").is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Whatever happened: the outer one first (unblocks a stuck rescue), then the inner one.
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), n.outer().dir().as_os_str()]);
    let done_by = Instant::now() + Duration::from_secs(10);
    while rescue.try_wait().expect("try_wait").is_none() && Instant::now() < done_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = common::run_any("fsfreeze", &[OsStr::new("-u"), n.inner().dir().as_os_str()]);
    let out = rescue.wait_with_output().expect("rescue output");
    assert!(
        finished,
        "`snapguard thaw` was still blocked 5 s later (in the inner filesystem's FITHAW, behind \
         the outer one it had not thawed yet); it finished only once the test thawed the outer \
         one:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
