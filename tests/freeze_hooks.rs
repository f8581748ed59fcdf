//! Freeze/thaw hooks (privileged): name order for `freeze`, reverse for `thaw`, every hook that
//! ran for freeze runs for thaw (even the one that failed), a hook timeout kills the hook's
//! process group, untrusted hooks and directories (also behind symbolic links) are refused
//! before anything is frozen, a hook swapped after the check never runs, hooks get a fixed
//! environment, CMD and hooks start with an empty signal mask and default dispositions, and
//! the hook directory is resolved once and must exist when named.
//!
//! Hook directories live under `target/tmp` (see `TrustedDir`): `/tmp` is 1777 and would be
//! refused. The test filesystems and logs stay in `/tmp` (`TestDir`).

mod common;
mod freeze_support;

use common::{TestDir, note, require_root, run_snapguard};
use freeze_support::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A hook that appends "NAME ARG1 SNAPGUARD_PHASE" to `log`, then runs `extra`.
fn hook(dir: &Path, name: &str, log: &Path, extra: &str) -> PathBuf {
    script(
        &dir.join(name),
        &format!(
            "echo \"{name} $1 $SNAPGUARD_PHASE\" >> '{}'\n{extra}\nexit 0",
            log.display()
        ),
        0o755,
    )
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

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asserts a run was refused before anything: exit 125, `hook-failed`, first hook row refused
/// with a detail containing `detail`, nothing frozen, CMD not run.
fn assert_refused(out: &common::Outcome, detail: &str) -> serde_json::Value {
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 125, "{doc:#}");
    assert_eq!(doc["outcome"], "hook-failed", "{doc:#}");
    assert_eq!(doc["hooks"][0]["result"], "refused", "{doc:#}");
    let text = doc["hooks"][0]["detail"].as_str().unwrap_or_default();
    assert!(text.contains(detail), "{text:?} lacks {detail:?}\n{doc:#}");
    assert!(doc["window_ms"].is_null(), "nothing was frozen: {doc:#}");
    assert!(doc["cmd"].is_null(), "CMD did not run: {doc:#}");
    doc
}

#[test]
fn hooks_run_in_order_and_thaw_in_reverse() {
    if !require_root("hooks_run_in_order_and_thaw_in_reverse") {
        return;
    }
    let dir = TestDir::new("freeze-hooks");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-order");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let log = dir.join("hooks.log");
    hook(&hooks, "10-db", &log, "");
    hook(&hooks, "20-app", &log, "");
    hook(&hooks, "30-cache", &log, "");
    // Not hooks: not executable, editor leftovers, directories.
    std::fs::write(hooks.join("README"), "docs").unwrap();
    hook(&hooks, "15-old.bak", &log, "");
    trusted.mkdir("hooks.d/25-subdir", 0o755);

    let out = freeze_with_hooks(&hooks, &fs, &[]);
    let doc = out.json();
    assert_schema("freeze", &doc);
    assert_eq!(out.exit, 0, "{doc:#}");
    assert_eq!(
        lines(&log),
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
    assert_eq!(
        doc["hooks"][0]["path"],
        hooks.join("10-db").display().to_string()
    );
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
    assert_eq!(
        lines(&log),
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
fn hook_timeout_and_untrusted_refusals() {
    if !require_root("hook_timeout_and_untrusted_refusals") {
        return;
    }
    let dir = TestDir::new("freeze-hooks2");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-refusals");
    let hooks = trusted.mkdir("hooks.d", 0o755);
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
    hook(&hooks, "05-fine", &log, "");
    let bad = hook(&hooks, "10-open", &log, "");
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o757)).unwrap();
    let doc = assert_refused(&freeze_with_hooks(&hooks, &fs, &[]), "everyone");
    assert_eq!(doc["hooks"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["hooks"][0]["path"], bad.display().to_string());
    assert!(!log.exists(), "no hook may run when one is refused");
    assert_writable(fs.dir(), "after a refused hook");

    // A hook not owned by root.
    std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&bad, Some(65534), None).unwrap();
    assert_refused(
        &freeze_with_hooks(&hooks, &fs, &[]),
        "is owned by uid 65534, not root",
    );
    std::os::unix::fs::chown(&bad, Some(0), None).unwrap();

    // A group-writable hook directory.
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_refused(
        &freeze_with_hooks(&hooks, &fs, &[]),
        &format!(
            "'{}' is writable by its group (mode 0775); chmod g-w it",
            hooks.display()
        ),
    );
    // A sticky, world-writable one (as /tmp): no exception.
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_refused(&freeze_with_hooks(&hooks, &fs, &[]), "chmod go-w it");
    // A group-writable directory above it.
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(trusted.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_refused(
        &freeze_with_hooks(&hooks, &fs, &[]),
        &format!("'{}' is writable by its group", trusted.path().display()),
    );
    std::fs::set_permissions(trusted.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!log.exists(), "no hook ran");
}

#[test]
fn symbolic_links_are_walked_with_the_same_checks() {
    if !require_root("symbolic_links_are_walked_with_the_same_checks") {
        return;
    }
    let dir = TestDir::new("freeze-hooks-links");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-links");
    let log = dir.join("hooks.log");

    // A hooks directory reached through a symlink whose target is group-writable: refused,
    // and the message names the target.
    let open_dir = trusted.mkdir("open.d", 0o775);
    hook(&open_dir, "10-a", &log, "");
    std::os::unix::fs::symlink(&open_dir, trusted.join("via-link.d")).unwrap();
    assert_refused(
        &freeze_with_hooks(&trusted.join("via-link.d"), &fs, &[]),
        &format!("'{}' is writable by its group", open_dir.display()),
    );
    // The same through a relative link into a trusted directory: runs.
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(trusted.join("via-link.d")).unwrap();
    std::os::unix::fs::symlink("open.d", trusted.join("via-link.d")).unwrap();
    let out = freeze_with_hooks(&trusted.join("via-link.d"), &fs, &[]);
    assert_eq!(out.exit, 0, "{}", out.stdout);
    assert_eq!(lines(&log), ["10-a freeze freeze", "10-a thaw thaw"]);
    std::fs::remove_file(&log).unwrap();

    // A hook that is a symlink to a trusted script elsewhere: runs, named by its link.
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let lib = trusted.mkdir("lib", 0o755);
    hook(&lib, "real-hook", &log, "");
    std::os::unix::fs::symlink("../lib/real-hook", hooks.join("20-linked")).unwrap();
    let out = freeze_with_hooks(&hooks, &fs, &[]);
    let doc = out.json();
    assert_eq!(out.exit, 0, "{doc:#}");
    assert_eq!(
        doc["hooks"][0]["path"],
        hooks.join("20-linked").display().to_string()
    );
    assert_eq!(
        lines(&log),
        ["real-hook freeze freeze", "real-hook thaw thaw"]
    );
    // ... and to a script in a group-writable directory: refused.
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_refused(
        &freeze_with_hooks(&hooks, &fs, &[]),
        &format!("'{}' is writable by its group", lib.display()),
    );
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A symlink loop in the hooks directory is refused (not followed forever).
    std::fs::remove_file(hooks.join("20-linked")).unwrap();
    std::os::unix::fs::symlink("30-loop", hooks.join("30-loop")).unwrap();
    assert_refused(
        &freeze_with_hooks(&hooks, &fs, &[]),
        "more than 40 symbolic links",
    );
    assert_writable(fs.dir(), "after the link cases");
}

/// The trusted walk itself, on trees only root can make: FIFOs do not hang it, `..` is a real
/// step through a checked directory, and an inherited hook fd is judged again.
#[test]
fn trusted_walk_edge_cases() {
    use snapguard::sys::trusted::{TrustError, TrustedDir as Walked, TrustedFile};
    if !require_root("trusted_walk_edge_cases") {
        return;
    }
    let trusted = TrustedDir::new("walk");
    let fifo = trusted.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let t0 = Instant::now();
    let e = TrustedFile::open(&fifo).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(
        e.to_string(),
        format!("'{}' is a FIFO, not a regular file", fifo.display())
    );

    let open = trusted.mkdir("open", 0o777);
    trusted.mkdir("open/sub", 0o755);
    trusted.mkdir("hooks.d", 0o755);
    let e = Walked::open(&open.join("sub/../../hooks.d")).unwrap_err();
    assert!(
        matches!(&e, TrustError::Untrusted { path, .. } if *path == open),
        "{e}"
    );
    let ok = Walked::open(&trusted.join("hooks.d/../hooks.d/.")).unwrap();
    assert_eq!(ok.path(), trusted.join("hooks.d"));

    let target = script(&trusted.join("tool"), "exit 0", 0o755);
    let file = TrustedFile::open(&target).unwrap();
    let hook = {
        use std::os::fd::{AsFd, IntoRawFd};
        let raw = file.as_fd().try_clone_to_owned().unwrap().into_raw_fd();
        snapguard::freeze::hooks::Hook::from_inherited_fd(raw, PathBuf::from("/x/10-tool")).unwrap()
    };
    let run = snapguard::freeze::hooks::run(&hook, "freeze", &[], Duration::from_secs(10));
    assert_eq!(run.result, "ok", "{:?}", run.detail);
    assert_eq!(run.path, "/x/10-tool");
}

/// A thread renaming hard links of `sources` (in turn) over `target` as fast as it can,
/// through `tmp` in the same filesystem. Stopped and joined on drop too (a failing test must
/// not leave it writing while its directories are removed).
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Swapper {
    fn start(sources: &[&Path], target: &Path, tmp: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sources: Vec<PathBuf> = sources.iter().map(|p| p.to_path_buf()).collect();
        let (target, tmp) = (target.to_path_buf(), tmp.to_path_buf());
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for src in &sources {
                    let _ = std::fs::remove_file(&tmp);
                    if std::fs::hard_link(src, &tmp).is_ok()
                        && std::fs::rename(&tmp, &target).is_ok()
                    {
                        swaps += 1;
                    }
                }
            }
            let _ = std::fs::remove_file(&tmp);
            swaps
        });
        Swapper {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop; the number of swaps done.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hooks swapped by rename between snapguard's check and the exec: what runs is always what
/// was checked. A background thread renames two hard links over `10-x` as fast as it can: A
/// (root's, 0755) and B (0777, refused if seen). Every run must run A or be refused; B never
/// runs. (With exec by path after a check, B runs within a few dozen attempts.)
#[test]
fn a_hook_swapped_after_the_check_never_runs() {
    if !require_root("a_hook_swapped_after_the_check_never_runs") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("freeze-hooks-swap");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-swap");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let side = trusted.mkdir("side", 0o755);
    let log = dir.join("hooks.log");
    let cmd_log = dir.join("cmd.log");
    let a = script(
        &side.join("A"),
        &format!("echo \"A $1\" >> '{}'", log.display()),
        0o755,
    );
    let b = script(
        &side.join("B"),
        &format!("echo \"B RAN\" >> '{}'", log.display()),
        0o777,
    );
    let target = hooks.join("10-x");
    std::fs::hard_link(&a, &target).unwrap();

    let swapper = Swapper::start(&[&b, &a], &target, &side.join("next"));
    let (mut ran, mut refused) = (0, 0);
    for i in 0..50 {
        let out = run_snapguard(
            [
                OsStr::new("freeze"),
                OsStr::new("--json"),
                OsStr::new("--hooks-dir"),
                hooks.as_os_str(),
                OsStr::new("--timeout"),
                OsStr::new("10s"),
                fs.dir().as_os_str(),
                OsStr::new("--"),
                OsStr::new("sh"),
                OsStr::new("-c"),
                OsStr::new("echo cmd >> \"$1\""),
                OsStr::new("sh"),
                cmd_log.as_os_str(),
            ],
            Duration::from_secs(60),
        );
        let doc = out.json();
        match out.exit {
            0 => {
                ran += 1;
                assert_eq!(doc["hooks"][0]["result"], "ok", "run {i}: {doc:#}");
                assert_eq!(doc["hooks"][1]["result"], "ok", "run {i}: {doc:#}");
            }
            125 => {
                refused += 1;
                assert_eq!(doc["outcome"], "hook-failed", "run {i}: {doc:#}");
                assert_eq!(doc["hooks"][0]["result"], "refused", "run {i}: {doc:#}");
                assert!(doc["window_ms"].is_null(), "run {i}: {doc:#}");
                assert!(doc["cmd"].is_null(), "run {i}: {doc:#}");
            }
            other => panic!("run {i}: exit {other}: {doc:#}"),
        }
        let seen = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !seen.contains("B RAN"),
            "run {i}: the swapped-in hook ran:\n{seen}"
        );
    }
    let swaps = swapper.stop();
    let seen = lines(&log);
    assert_eq!(
        seen.iter().filter(|l| *l == "A freeze").count(),
        ran,
        "{seen:?}"
    );
    assert_eq!(seen.iter().filter(|l| *l == "A thaw").count(), ran);
    assert_eq!(
        lines(&cmd_log).len(),
        ran,
        "CMD ran exactly in the runs that passed"
    );
    note(&format!(
        "swap race: {ran} runs ran A, {refused} were refused, {swaps} swaps"
    ));
    assert!(swaps > 100, "the swapper barely ran ({swaps} swaps)");
    assert_writable(fs.dir(), "after the swap race");
    timed("a_hook_swapped_after_the_check_never_runs", start);
}

/// Run `snapguard ARGS` from `sh` with SIGUSR1 ignored and `LEAK=1` in its environment,
/// in `cwd`. Returns (exit code, stdout).
fn snapguard_from_shell(args: &[&OsStr], cwd: &Path) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' USR1; exec \"$0\" \"$@\"")
        .arg(bin())
        .args(args)
        .env("LEAK", "1")
        .env_remove("SNAPGUARD_LOG")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run snapguard through sh");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `SigBlk`/`SigIgn` masks in a copy of `/proc/self/status`.
fn masks(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mask = |field: &str| {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in {text}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    (mask("SigBlk:"), mask("SigIgn:"))
}

/// Bits of signals that glibc reserves (32, 33) and will not let anyone reset.
const GLIBC_RESERVED: u64 = (1 << 31) | (1 << 32);
const SIGUSR1_BIT: u64 = 1 << (10 - 1);

/// An awk program writing its own `/proc/self/status` to `DIR/ARG1-status` and its whole
/// environment to `DIR/ARG1-env`. awk, not sh: dash empties its signal mask when it starts,
/// which would hide an inherited mask.
fn probe_program(dir: &Path) -> String {
    format!(
        "BEGIN {{ out = \"{}/\" ARGV[1]; \
           while ((getline line < \"/proc/self/status\") > 0) print line > (out \"-status\"); \
           for (k in ENVIRON) print k \"=\" ENVIRON[k] > (out \"-env\"); exit 0 }}",
        dir.display()
    )
}

#[test]
fn hooks_and_cmd_start_clean() {
    if !require_root("hooks_and_cmd_start_clean") {
        return;
    }
    let dir = TestDir::new("freeze-hooks-clean");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-clean");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let out = dir.path();
    let program = probe_program(&out);
    let probe = hooks.join("10-probe");
    std::fs::write(&probe, format!("#!/usr/bin/awk -f\n{program}\n")).unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The trick works: what that shell execs has SIGUSR1 ignored.
    let control = Command::new("sh")
        .arg("-c")
        .arg("trap '' USR1; exec awk \"$0\" control")
        .arg(&program)
        .status()
        .unwrap();
    assert!(control.success());
    assert_ne!(masks(&out.join("control-status")).1 & SIGUSR1_BIT, 0);

    // snapguard blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD while it runs, and was started
    // with SIGUSR1 ignored and LEAK=1: none of that may reach CMD or a hook.
    let (exit, stdout) = snapguard_from_shell(
        &[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--hooks-dir"),
            hooks.as_os_str(),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("awk"),
            OsStr::new(&program),
            OsStr::new("cmd"),
        ],
        Path::new("/"),
    );
    assert_eq!(exit, 0, "{stdout}");
    for probe in ["cmd", "freeze", "thaw"] {
        let (blocked, ignored) = masks(&out.join(format!("{probe}-status")));
        assert_eq!(blocked, 0, "{probe}: SigBlk {blocked:016x}");
        assert_eq!(
            ignored & !GLIBC_RESERVED,
            0,
            "{probe}: SigIgn {ignored:016x}"
        );
    }

    // Hooks: exactly the fixed environment.
    for phase in ["freeze", "thaw"] {
        let mut env = lines(&out.join(format!("{phase}-env")));
        env.sort();
        assert_eq!(
            env,
            [
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                format!("SNAPGUARD_MOUNTS={}", fs.dir().display()),
                format!("SNAPGUARD_PHASE={phase}"),
            ],
            "{phase} hook"
        );
    }
    // CMD: the caller's environment (LEAK=1 included) plus snapguard's variables.
    let env = lines(&out.join("cmd-env"));
    assert!(env.contains(&"LEAK=1".to_string()), "{env:?}");
    assert!(
        env.contains(&format!("SNAPGUARD_FROZEN={}", fs.dir().display())),
        "{env:?}"
    );
    assert_writable(fs.dir(), "after the clean-start probes");
}

#[test]
fn hooks_dir_is_resolved_once_and_must_exist_when_named() {
    if !require_root("hooks_dir_is_resolved_once_and_must_exist_when_named") {
        return;
    }
    let dir = TestDir::new("freeze-hooks-dir");
    let fs = TestFs::new(&dir, "m", "ext4", 32 * MIB);
    let trusted = TrustedDir::new("hooks-dir");
    let hooks = trusted.mkdir("hooks.d", 0o755);
    let log = dir.join("hooks.log");
    hook(&hooks, "10-rel", &log, "");

    // Relative to the cwd, resolved when the arguments are read (the report shows the
    // absolute path; hooks run with cwd / and still are the right ones).
    let (exit, stdout) = snapguard_from_shell(
        &[
            OsStr::new("freeze"),
            OsStr::new("--json"),
            OsStr::new("--hooks-dir"),
            OsStr::new("./hooks.d"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        &trusted.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(exit, 0, "{doc:#}");
    assert_eq!(
        doc["hooks"][0]["path"],
        hooks.join("10-rel").display().to_string(),
        "{doc:#}"
    );
    assert_eq!(lines(&log), ["10-rel freeze freeze", "10-rel thaw thaw"]);

    // The same through [freeze] hooks_dir in a config file.
    std::fs::remove_file(&log).unwrap();
    let conf = config(&dir, "[freeze]\nhooks_dir = \"hooks.d\"\n");
    let (exit, stdout) = snapguard_from_shell(
        &[
            OsStr::new("--config"),
            conf.as_os_str(),
            OsStr::new("freeze"),
            OsStr::new("--json"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        &trusted.path(),
    );
    assert_eq!(exit, 0, "{stdout}");
    assert_eq!(lines(&log), ["10-rel freeze freeze", "10-rel thaw thaw"]);

    // Named but missing: refused (125), nothing frozen, CMD not run.
    let missing = trusted.join("missing.d");
    let doc = assert_refused(&freeze_with_hooks(&missing, &fs, &[]), "does not exist");
    assert_eq!(doc["hooks"][0]["path"], missing.display().to_string());
    let conf = config(
        &dir,
        &format!("[freeze]\nhooks_dir = \"{}\"\n", missing.display()),
    );
    let out = run_snapguard(
        [
            OsStr::new("--config"),
            conf.as_os_str(),
            OsStr::new("freeze"),
            OsStr::new("--json"),
            fs.dir().as_os_str(),
            OsStr::new("--"),
            OsStr::new("true"),
        ],
        Duration::from_secs(60),
    );
    assert_refused(&out, "does not exist");

    // The default directory missing means no hooks (only checkable where it is missing).
    if Path::new("/etc/snapguard/hooks.d").exists() {
        note("hooks_dir: /etc/snapguard/hooks.d exists here: default-missing case not checked");
    } else {
        let out = run_snapguard(
            [
                OsStr::new("freeze"),
                OsStr::new("--json"),
                fs.dir().as_os_str(),
                OsStr::new("--"),
                OsStr::new("true"),
            ],
            Duration::from_secs(60),
        );
        let doc = out.json();
        assert_eq!(out.exit, 0, "{doc:#}");
        assert_eq!(doc["hooks"].as_array().map(Vec::len), Some(0), "{doc:#}");
    }
    assert_writable(fs.dir(), "after the hooks-dir cases");
}
