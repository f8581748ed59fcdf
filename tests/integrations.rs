//! The backup-agent integrations in `scripts/`, run the way their agents run them, with the
//! real binary (`SNAPGUARD`): Azure's VMSnapshot pre/post scripts as ScriptRunner starts them
//! (`sh SCRIPT PARAMS...`) and the qemu-ga fsfreeze hook (`SCRIPT freeze|thaw`), against the
//! `--root` fixture trees of `tests/preflight.rs`: exit codes for a healthy machine, warnings
//! only, each blocker, "cannot tell", and a snapguard that is missing, crashes or hangs; the
//! one-line output; the JSON report; snapguard's own E7 check on the installed sample
//! configuration; shellcheck.

mod common;

use common::preflight_root::{
    FixtureRoot, ROOT_LINE, confined_agent, ext4_on_loop, line, unclean_ext4_on_loop, vfat_on_loop,
};
use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn pre_script() -> PathBuf {
    repo_path("scripts/azure/snapguard-pre.sh")
}

fn post_script() -> PathBuf {
    repo_path("scripts/azure/snapguard-post.sh")
}

fn qga_hook() -> PathBuf {
    repo_path("scripts/qemu-ga/snapguard")
}

fn snapguard_bin() -> &'static str {
    env!("CARGO_BIN_EXE_snapguard")
}

/// A finished script.
#[derive(Debug)]
struct Script {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `sh SCRIPT ARGS...` with `SNAPGUARD=snapguard` (none when `None`), the Azure report
/// directory `logdir`, stdin closed, and `env` added.
fn sh(script: &Path, args: &[&OsStr], snapguard: Option<&OsStr>, logdir: &Path) -> Script {
    sh_env(script, args, snapguard, logdir, &[])
}

fn sh_env(
    script: &Path,
    args: &[&OsStr],
    snapguard: Option<&OsStr>,
    logdir: &Path,
    env: &[(&str, &OsStr)],
) -> Script {
    let mut cmd = Command::new("sh");
    cmd.arg(script)
        .args(args)
        .stdin(Stdio::null())
        .env("SNAPGUARD_AZURE_LOGDIR", logdir)
        // Not this machine's /etc/azure configuration (its timeoutInSeconds).
        .env(
            "SNAPGUARD_AZURE_CONFIG",
            "/nonexistent-snapguard-azure-config",
        )
        .env_remove("SNAPGUARD_AZURE_TIMEOUT")
        .env_remove("SNAPGUARD_QGA_TIMEOUT")
        .env_remove("RUST_LOG");
    match snapguard {
        Some(bin) => cmd.env("SNAPGUARD", bin),
        None => cmd.env_remove("SNAPGUARD"),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(std::env::temp_dir());
    let start = Instant::now();
    let out = cmd.output().expect("run sh");
    Script {
        code: out.status.code().expect("sh exits, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// The Azure pre-script on a fixture root, with the real binary: `sh pre.sh --root ROOT
/// --config CONFIG EXTRA...`. Checks what holds for every run: one short line on stdout,
/// nothing on stderr, no temporary file left.
fn azure_pre(fx: &FixtureRoot, logdir: &Path, extra: &[&str]) -> Script {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--root"),
        fx.root.as_os_str(),
        OsStr::new("--config"),
        fx.config.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let ran = sh(&pre_script(), &args, Some(snapguard_bin().as_ref()), logdir);
    assert_one_short_line(&ran);
    ran
}

fn assert_one_short_line(ran: &Script) {
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{ran:?}");
    assert!(lines[0].starts_with("snapguard-azure: "), "{ran:?}");
    assert!(lines[0].len() <= 240, "{} bytes: {ran:?}", lines[0].len());
    assert!(ran.stderr.is_empty(), "{ran:?}");
    assert!(
        lines[0].starts_with(&format!("snapguard-azure: exit {} ", ran.code)),
        "the line names the exit code: {ran:?}"
    );
}

/// The report the pre-script left in `logdir`: private, complete, no temporary file beside it.
fn report(logdir: &Path) -> Value {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(logdir), 0o700, "{}", logdir.display());
    let file = logdir.join("azure-pre.json");
    assert_eq!(mode(&file), 0o600);
    let leftovers: Vec<String> = std::fs::read_dir(logdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".azure-pre"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// snapguard's own report, as the pre-script kept it.
fn preflight_report(logdir: &Path, code: i32) -> Value {
    let doc = report(logdir);
    assert_schema("preflight", &doc);
    assert_eq!(doc["profile"], "azure");
    assert_eq!(doc["exit_code"], code, "{doc:#}");
    doc
}

/// The post-script, twice (Azure may run it again): 0 both times, one line naming the
/// pre-script's result.
fn azure_post_twice(logdir: &Path, expect: &str) {
    for _ in 0..2 {
        let ran = sh(
            &post_script(),
            &[OsStr::new("ignored")],
            Some(snapguard_bin().as_ref()),
            logdir,
        );
        assert_eq!(ran.code, 0, "{ran:?}");
        assert_eq!(ran.stdout.lines().count(), 1, "{ran:?}");
        assert!(ran.stderr.is_empty(), "{ran:?}");
        assert!(
            ran.stdout
                .starts_with("snapguard-azure: snapshot finished; ")
                && ran.stdout.contains(expect),
            "expected {expect:?}: {ran:?}"
        );
    }
}

/// The qemu-ga hook with stdio on /dev/null, as qemu-ga runs it: its exit code.
fn qga_quiet(args: &[&OsStr], snapguard: &OsStr) -> i32 {
    Command::new("sh")
        .arg(qga_hook())
        .args(args)
        .env("SNAPGUARD", snapguard)
        .env_remove("SNAPGUARD_QGA_TIMEOUT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run hook")
        .code()
        .expect("exits")
}

/// `hook freeze --root ROOT --config CONFIG` (extra arguments go to snapguard).
fn qga_freeze(fx: &FixtureRoot) -> Script {
    let args = [
        OsStr::new("freeze"),
        OsStr::new("--root"),
        fx.root.as_os_str(),
        OsStr::new("--config"),
        fx.config.as_os_str(),
    ];
    let ran = sh(
        &qga_hook(),
        &args,
        Some(snapguard_bin().as_ref()),
        &fx.dir.join("unused"),
    );
    assert!(ran.stdout.is_empty(), "{ran:?}");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
    assert!(ran.stderr.starts_with("snapguard-qemu-ga: "), "{ran:?}");
    // The same run with qemu-ga's stdio gives the same code.
    assert_eq!(qga_quiet(&args, snapguard_bin().as_ref()), ran.code);
    ran
}

#[test]
fn pre_script_and_freeze_hook_on_real_loop_devices() {
    if !require_root("integrations_loop_devices") {
        return;
    }
    let scratch = TestDir::new("integrations-images");
    let (_, clean) = ext4_on_loop(&scratch, "clean.img");
    let data = line(30, &clean, "/data", "ext4");

    // Healthy: Azure's 0, qemu-ga's 0. A report directory that exists with mode 0755 is made
    // private.
    let healthy = FixtureRoot::new("azure-healthy", &format!("{ROOT_LINE}{data}"));
    let logdir = healthy.dir.mkdir("log");
    std::fs::set_permissions(&logdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ran = azure_pre(&healthy, &logdir, &[]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("healthy"), "{ran:?}");
    let doc = preflight_report(&logdir, 0);
    assert_eq!(doc["decision"], "go");
    assert_eq!(doc["status"], "ok", "{doc:#}");
    azure_post_twice(&logdir, "azure-pre.json: go, exit 0");
    let ran = qga_freeze(&healthy);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("go: snapguard preflight: "), "{ran:?}");

    // Warnings only: a vfat that cannot be frozen, skipped by configuration. Azure's 2.
    let vfat = vfat_on_loop(&scratch, "efi.img");
    let warn = FixtureRoot::new(
        "azure-warnings",
        &format!("{ROOT_LINE}{data}{}", line(32, &vfat, "/boot/efi", "vfat")),
    );
    let logdir = warn.dir.join("log");
    // Not skipped yet: blocked.
    let ran = azure_pre(&warn, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout
            .contains("BLOCKED: freeze-test /boot/efi: cannot be frozen"),
        "{ran:?}"
    );
    assert_eq!(qga_freeze(&warn).code, 1);
    std::fs::write(&warn.config, "[freeze]\nskip = [\"/boot/efi\"]\n").unwrap();
    let ran = azure_pre(&warn, &logdir, &[]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stdout.contains("warnings that do not block"), "{ran:?}");
    let doc = preflight_report(&logdir, 2);
    assert_eq!(doc["decision"], "go");
    assert_eq!(doc["status"], "warning");
    azure_post_twice(&logdir, "go, exit 2");
    // The systemd profile goes on with warnings: the hook lets the freeze happen.
    assert_eq!(qga_freeze(&warn).code, 0);

    // An unclean ext4 the mount table lists: Azure fails the pre-script; the hook says no.
    let unclean = unclean_ext4_on_loop(&scratch, "unclean.img");
    let fx = FixtureRoot::new(
        "azure-unclean",
        &format!("{ROOT_LINE}{data}{}", line(31, &unclean, "/srv", "ext4")),
    );
    let logdir = fx.dir.join("log");
    let ran = azure_pre(&fx, &logdir, &[]);
    assert!(ran.code != 0 && ran.code != 2, "{ran:?}");
    assert_eq!(ran.code, 1, "{ran:?}");
    let blocked = format!("BLOCKED: scan {}: not clean", unclean.dev().display());
    assert!(ran.stdout.contains(&blocked), "{ran:?}");
    let doc = preflight_report(&logdir, 1);
    assert_eq!(doc["decision"], "blocked");
    azure_post_twice(&logdir, "blocked, exit 1");
    let ran = qga_freeze(&fx);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains(&format!(
            "blocked: backup blocked by: scan {}: not clean",
            unclean.dev().display()
        )),
        "{ran:?}"
    );

    // A confined agent (SELinux blocks it): a failure code for Azure too.
    let fx = FixtureRoot::new("azure-confined", &format!("{ROOT_LINE}{data}"));
    confined_agent(&fx.root);
    let logdir = fx.dir.join("log");
    let ran = azure_pre(&fx, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("BLOCKED: selinux S6"), "{ran:?}");
    preflight_report(&logdir, 1);
    assert_eq!(qga_freeze(&fx).code, 1);
}

#[test]
fn pre_script_fails_when_blocked_undecided_or_snapguard_cannot_run() {
    // A device the mount table names but that does not exist: it cannot be assessed, which
    // blocks (no loop device needed).
    let fx = FixtureRoot::new(
        "azure-unassessed",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    let logdir = fx.dir.join("log");
    let ran = azure_pre(&fx, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout
            .contains("BLOCKED: scan /dev/snapguard-test-absent: could not be assessed"),
        "{ran:?}"
    );
    assert!(
        ran.stdout.contains(&format!(
            "report {}",
            logdir.join("azure-pre.json").display()
        )),
        "{ran:?}"
    );
    let doc = preflight_report(&logdir, 1);
    assert_eq!(doc["decision"], "blocked");
    // snapguard's stderr is kept beside the report, not sent to Azure's pipes.
    let stderr = std::fs::read_to_string(logdir.join("azure-pre.stderr")).unwrap();
    assert!(stderr.contains("snapguard-test-absent"), "{stderr}");

    // Cannot tell (no mount table): a failure, not a warning.
    let undecided = FixtureRoot::new("azure-undecided", "");
    std::fs::remove_file(undecided.root.join("proc/self/mountinfo")).unwrap();
    let ran = azure_pre(&undecided, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout
            .contains("CANNOT TELL: scan: cannot read the mount table"),
        "{ran:?}"
    );
    assert_eq!(preflight_report(&logdir, 1)["decision"], "cannot-tell");

    // A usage error (snapguard's 3): a failure, with a report saying why.
    let ran = azure_pre(&fx, &logdir, &["--no-such-option"]);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stdout.contains("FAILED: snapguard exited 3"), "{ran:?}");
    let doc = report(&logdir);
    assert_eq!(doc["decision"], "error");
    assert_eq!(doc["exit_code"], 3);
    assert!(
        doc["error"].as_str().unwrap().contains("--no-such-option"),
        "{doc}"
    );
    azure_post_twice(&logdir, "error, exit 3");

    // No snapguard: SNAPGUARD naming nothing, or none on PATH nor at the default path.
    let ran = sh(
        &pre_script(),
        &[],
        Some(fx.dir.join("absent").as_os_str()),
        &logdir,
    );
    assert_one_short_line(&ran);
    assert_eq!(ran.code, 127, "{ran:?}");
    assert!(
        ran.stdout.contains("FAILED: no snapguard binary"),
        "{ran:?}"
    );
    assert_eq!(report(&logdir)["exit_code"], 127);
    if Path::new("/usr/local/bin/snapguard").exists() {
        note("pre-script without SNAPGUARD: /usr/local/bin/snapguard exists here, not run");
    } else {
        let empty = fx.dir.mkdir("empty-path");
        let path = format!("{}:/usr/bin:/bin", empty.display());
        let ran = sh_env(
            &pre_script(),
            &[],
            None,
            &logdir,
            &[("PATH", OsStr::new(&path))],
        );
        assert_eq!(ran.code, 127, "{ran:?}");
        assert!(
            ran.stdout.contains("/usr/local/bin/snapguard"),
            "names where it looked: {ran:?}"
        );
    }

    // A snapguard that crashes, one that exits 0 without a report, one that hangs.
    let fake = |name: &str, body: &str| {
        let p = fx.dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    // Killed by a signal (TERM: no core file).
    let crash = fake("crash", "echo 'about to crash' >&2; kill -TERM $$");
    let ran = sh(&pre_script(), &[], Some(crash.as_os_str()), &logdir);
    assert_one_short_line(&ran);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(
        ran.stdout
            .contains("FAILED: snapguard exited 143: about to crash"),
        "{ran:?}"
    );
    assert_eq!(report(&logdir)["decision"], "error");
    let silent = fake("silent", "exit 0");
    let ran = sh(&pre_script(), &[], Some(silent.as_os_str()), &logdir);
    assert_one_short_line(&ran);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stdout.contains("without a report"), "{ran:?}");

    let pidfile = fx.dir.join("hang.pid");
    let hang = fake(
        "hang",
        &format!(
            "trap '' TERM; echo $$ > '{}'; while :; do sleep 1; done",
            pidfile.display()
        ),
    );
    let ran = sh_env(
        &pre_script(),
        &[],
        Some(hang.as_os_str()),
        &logdir,
        &[("SNAPGUARD_AZURE_TIMEOUT", OsStr::new("1"))],
    );
    assert_one_short_line(&ran);
    assert_eq!(ran.code, 124, "{ran:?}");
    assert!(ran.stdout.contains("did not finish within 1 s"), "{ran:?}");
    // 1 s, then TERM (ignored), then KILL 2 s later: well before Azure's 30 s.
    assert!(ran.took < Duration::from_secs(10), "{ran:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    wait_until("the hung snapguard is gone", || !proc_dir.exists());
    assert_eq!(report(&logdir)["exit_code"], 124);
    azure_post_twice(&logdir, "error, exit 124");
}

#[test]
fn post_script_without_a_report_still_succeeds() {
    let dir = TestDir::new("azure-post");
    // Never ran, and a report directory that cannot exist (a file is in the way).
    std::fs::write(dir.join("file"), "").unwrap();
    for logdir in [dir.join("never"), dir.join("file/sub")] {
        azure_post_twice(&logdir, "no pre-script report at ");
    }
    // A report that is not JSON at all.
    let logdir = dir.mkdir("garbage");
    std::fs::write(logdir.join("azure-pre.json"), "\0\u{1}not json").unwrap();
    azure_post_twice(&logdir, "azure-pre.json: unreadable");
    // The pre-script with a report directory it cannot create still runs and still decides.
    let fx = FixtureRoot::new(
        "azure-nodir",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    let ran = azure_pre(&fx, &dir.join("file/sub"), &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("no report: cannot create"), "{ran:?}");
}

#[test]
fn freeze_hook_protocol() {
    let bin: &OsStr = snapguard_bin().as_ref();
    let unused = Path::new("/nonexistent-snapguard-log");
    // thaw: nothing, 0 (even without a snapguard).
    for snapguard in [bin, OsStr::new("/nonexistent")] {
        let ran = sh(&qga_hook(), &[OsStr::new("thaw")], Some(snapguard), unused);
        assert_eq!(ran.code, 0, "{ran:?}");
        assert!(ran.stdout.is_empty() && ran.stderr.is_empty(), "{ran:?}");
    }
    // Anything else: usage error 2.
    for args in [&[][..], &["bogus"], &[""], &["FREEZE"]] {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let ran = sh(&qga_hook(), &args, Some(bin), unused);
        assert_eq!(ran.code, 2, "{args:?}: {ran:?}");
        assert!(ran.stderr.starts_with("usage: "), "{ran:?}");
        assert_eq!(qga_quiet(&args, bin), 2);
    }
    // freeze, blocked: a device that cannot be assessed.
    let fx = FixtureRoot::new(
        "qga-unassessed",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    let ran = qga_freeze(&fx);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains(
            "blocked: backup blocked by: scan /dev/snapguard-test-absent: could not be assessed"
        ),
        "{ran:?}"
    );
    // freeze, cannot tell: 3.
    std::fs::remove_file(fx.root.join("proc/self/mountinfo")).unwrap();
    let ran = qga_freeze(&fx);
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.contains("cannot tell: "), "{ran:?}");
    // freeze without a snapguard, or with a bad option: 4.
    assert_eq!(
        qga_quiet(&[OsStr::new("freeze")], OsStr::new("/nonexistent")),
        4
    );
    let ran = sh(
        &qga_hook(),
        &[OsStr::new("freeze"), OsStr::new("--no-such-option")],
        Some(bin),
        unused,
    );
    assert_eq!(ran.code, 4, "{ran:?}");
    assert!(ran.stderr.contains("snapguard exited 3"), "{ran:?}");
    // Killed at once (the OOM killer's KILL): a crash, not a time-out.
    let dir = TestDir::new("qga-killed");
    let killed = fake_tool(&dir.path(), "killed", "echo 'about to die'; kill -KILL $$");
    let ran = sh(
        &qga_hook(),
        &[OsStr::new("freeze")],
        Some(killed.as_os_str()),
        unused,
    );
    assert_eq!(ran.code, 4, "{ran:?}");
    assert!(
        ran.stderr.contains("snapguard exited 137: about to die"),
        "{ran:?}"
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
}

/// `scripts/install.sh` into `dest` with the test binary.
fn install(dest: &Path) {
    let out = Command::new("bash")
        .arg(repo_path("scripts/install.sh"))
        .arg("--binary")
        .arg(snapguard_bin())
        .env("DESTDIR", dest)
        .output()
        .expect("install.sh");
    assert!(out.status.success(), "{out:?}");
}

/// The E7 item of `snapguard --root ROOT preflight --json`.
fn e7(root: &Path) -> Value {
    let out = run_snapguard(
        [
            OsStr::new("--root"),
            root.as_os_str(),
            OsStr::new("--config"),
            root.join("etc/snapguard/snapguard.toml").as_os_str(),
            OsStr::new("preflight"),
            OsStr::new("--json"),
        ],
        SCAN_TIMEOUT,
    );
    let doc = out.json();
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["section"] == "environment" && i["id"] == "E7")
        .cloned()
        .unwrap_or_else(|| panic!("no E7 item: {doc:#}"))
}

#[test]
fn e7_accepts_the_installed_sample_configuration() {
    // Root-owned files need root.
    if !require_root("integrations_e7_sample") {
        return;
    }
    let dir = TestDir::new("azure-e7");
    let root = dir.path();
    install(&root);
    // README's steps: copy the sample to /etc/azure, root:root, mode 600; the scripts stay
    // where install.sh put them (root:root, mode 700).
    let sample = root.join("usr/local/share/snapguard/azure/VMSnapshotScriptPluginConfig.json");
    let conf = root.join("etc/azure/VMSnapshotScriptPluginConfig.json");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    run(
        "install",
        &[
            OsStr::new("-o"),
            OsStr::new("root"),
            OsStr::new("-g"),
            OsStr::new("root"),
            OsStr::new("-m"),
            OsStr::new("600"),
            sample.as_os_str(),
            conf.as_os_str(),
        ],
    );
    let item = e7(&root);
    assert_eq!(item["status"], "ok", "{item:#}");
    assert_eq!(item["blocks_backup"], false);
    assert!(
        item["message"].as_str().unwrap().contains("is valid"),
        "{item:#}"
    );

    // The check can fail: a readable configuration, a group-writable script.
    let set_mode = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(&conf, 0o644);
    let item = e7(&root);
    assert_eq!(item["status"], "critical", "{item:#}");
    assert_eq!(item["blocks_backup"], true);
    set_mode(&conf, 0o600);
    let pre = root.join("usr/local/share/snapguard/azure/snapguard-pre.sh");
    set_mode(&pre, 0o770);
    let item = e7(&root);
    assert_eq!(item["status"], "critical", "{item:#}");
    assert!(
        item["message"]
            .as_str()
            .unwrap()
            .contains("/usr/local/share/snapguard/azure/snapguard-pre.sh"),
        "{item:#}"
    );
    set_mode(&pre, 0o700);
    assert_eq!(e7(&root)["status"], "ok");
}

#[test]
fn scripts_are_posix_sh_and_shellcheck_clean() {
    let scripts = [pre_script(), post_script(), qga_hook()];
    for script in &scripts {
        let text = std::fs::read_to_string(script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{}", script.display());
        for shell in ["sh", "dash", "bash"] {
            let out = match Command::new(shell).arg("-n").arg(script).output() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && shell == "dash" => {
                    continue; // no dash here; sh was checked
                }
                r => r.expect("run the shell"),
            };
            assert!(
                out.status.success(),
                "{shell} -n {}: {out:?}",
                script.display()
            );
        }
    }
    // The hook must be executable for qemu-ga and its dispatcher.
    let mode = std::fs::metadata(qga_hook()).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    let have_shellcheck = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_shellcheck {
        skip(
            "scripts_are_posix_sh_and_shellcheck_clean",
            "no shellcheck here (apt-get install shellcheck)",
        );
        return;
    }
    let out = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .args(&scripts)
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A mount table naming a device that does not exist: snapguard blocks (exit 1), quickly.
fn unassessed(tag: &str) -> FixtureRoot {
    FixtureRoot::new(
        tag,
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    )
}

/// An executable shell script `dir/name` with `body`.
fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn scripts_do_not_wait_on_a_stuck_journal() {
    // A `logger` that never returns (journald stuck): Azure never kills a late script, and
    // qemu-ga waits for its hook, so each script must give up on the journal by itself.
    let fx = unassessed("stuck-logger");
    let fakes = fx.dir.mkdir("bin");
    fake_tool(&fakes, "logger", "exec sleep 20");
    let path = format!("{}:/usr/bin:/bin", fakes.display());
    let logdir = fx.dir.join("log");
    let env = [("PATH", OsStr::new(&path))];
    let bin: &OsStr = snapguard_bin().as_ref();
    let target = [
        OsStr::new("--root"),
        fx.root.as_os_str(),
        OsStr::new("--config"),
        fx.config.as_os_str(),
    ];
    let mut freeze = vec![OsStr::new("freeze")];
    freeze.extend(target);
    let (pre, post, hook) = std::thread::scope(|s| {
        let pre = s.spawn(|| sh_env(&pre_script(), &target, Some(bin), &logdir, &env));
        let hook = s.spawn(|| sh_env(&qga_hook(), &freeze, Some(bin), &logdir, &env));
        let post = s.spawn(|| sh_env(&post_script(), &[], Some(bin), &logdir, &env));
        (
            pre.join().unwrap(),
            post.join().unwrap(),
            hook.join().unwrap(),
        )
    });
    assert_one_short_line(&pre);
    assert_eq!(pre.code, 1, "{pre:?}");
    assert_eq!(hook.code, 1, "{hook:?}");
    assert_eq!(post.code, 0, "{post:?}");
    for ran in [&pre, &post, &hook] {
        assert!(ran.took < Duration::from_secs(10), "{ran:?}");
    }
}

/// `sh pre.sh` started in the background with a snapguard that records its PID in `pidfile`
/// and sleeps: the shell and snapguard's PID.
fn pre_script_running(
    fx: &FixtureRoot,
    logdir: &Path,
    limit: &str,
) -> (std::process::Child, nix::unistd::Pid) {
    let pidfile = fx.dir.join("sleeper.pid");
    let _ = std::fs::remove_file(&pidfile);
    let sleeper = fake_tool(
        &fx.dir.path(),
        "sleeper",
        &format!(
            "echo $$ > '{}.new'; mv '{0}.new' '{0}'; exec sleep 30",
            pidfile.display()
        ),
    );
    let child = Command::new("sh")
        .arg(pre_script())
        .env("SNAPGUARD", &sleeper)
        .env("SNAPGUARD_AZURE_LOGDIR", logdir)
        .env("SNAPGUARD_AZURE_TIMEOUT", limit)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sh");
    wait_until("the fake snapguard runs", || pidfile.exists());
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, nix::unistd::Pid::from_raw(pid))
}

fn temporary_files(logdir: &Path) -> Vec<String> {
    std::fs::read_dir(logdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".azure-pre"))
        .collect()
}

#[test]
fn pre_script_killed_stops_snapguard_and_leaves_no_temporary_file() {
    use nix::sys::signal::{Signal, kill};
    let fx = unassessed("azure-killed");
    let logdir = fx.dir.join("log");
    let gone = |pid: nix::unistd::Pid| {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        move || !dir.exists()
    };

    // TERM (an operator, a service manager): snapguard stops at once, not at the time limit
    // (60 s here), and the temporary report goes.
    let (mut sh, snapguard) = pre_script_running(&fx, &logdir, "60");
    kill(nix::unistd::Pid::from_raw(sh.id() as i32), Signal::SIGTERM).unwrap();
    let status = sh.wait().unwrap();
    wait_until("snapguard stopped with the pre-script", gone(snapguard));
    assert!(!status.success(), "{status:?}");
    assert_eq!(temporary_files(&logdir), Vec::<String>::new());

    // KILL cannot be caught: snapguard ends at the time limit (1 s, then TERM), and the
    // next run removes the temporary report and stderr the killed one left.
    let (mut sh, snapguard) = pre_script_running(&fx, &logdir, "1");
    kill(nix::unistd::Pid::from_raw(sh.id() as i32), Signal::SIGKILL).unwrap();
    sh.wait().unwrap();
    wait_until("snapguard stopped at the time limit", gone(snapguard));
    assert_eq!(temporary_files(&logdir).len(), 2);
    let ran = azure_pre(&fx, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    preflight_report(&logdir, 1);
}

#[test]
fn pre_script_writes_no_report_through_a_directory_it_does_not_own() {
    let fx = unassessed("azure-logdir-owner");
    let victim = fx.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let elsewhere = fx.dir.mkdir("elsewhere");

    // A symlink to another directory: nothing is written there, and the verdict still stands.
    let link = fx.dir.join("log-link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let ran = azure_pre(&fx, &link, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("no report: "), "{ran:?}");
    assert!(
        ran.stdout.contains("is a symlink or not owned by"),
        "{ran:?}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A directory another user owns, holding a symlink where snapguard's stderr goes: root
    // must not truncate the file it points at.
    if !require_root("integrations_logdir_owner") {
        return;
    }
    let theirs = fx.dir.mkdir("theirs");
    std::os::unix::fs::symlink(&victim, theirs.join("azure-pre.stderr")).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let ran = azure_pre(&fx, &theirs, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout.contains("is a symlink or not owned by"),
        "{ran:?}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!theirs.join("azure-pre.json").exists());
}

#[test]
fn scripts_print_one_line_whatever_the_report_directory_is_named() {
    // Spaces, a newline and a tab in SNAPGUARD_AZURE_LOGDIR: still one line for Azure.
    let fx = unassessed("azure-odd-logdir");
    let logdir = fx.dir.join("log dir\nsecond line\tand a tab");
    let ran = azure_pre(&fx, &logdir, &[]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("BLOCKED: scan "), "{ran:?}");
    preflight_report(&logdir, 1);
    azure_post_twice(
        &logdir,
        "log dir second line and a tab/azure-pre.json: blocked, exit 1",
    );
}

#[test]
fn pre_script_ends_snapguard_before_azure_gives_up_on_it() {
    // Azure waits timeoutInSeconds for the pre-script, then goes on with the snapshot without
    // killing it: with a timeoutInSeconds of 6, the default limit (25 s) would leave
    // snapguard reading devices during the snapshot. The limit follows the configuration.
    let fx = unassessed("azure-config-timeout");
    let conf = fx.dir.join("VMSnapshotScriptPluginConfig.json");
    std::fs::write(
        &conf,
        "{\n    \"timeoutInSeconds\": 6,\n    \"pluginName\": \"ScriptRunner\"\n}\n",
    )
    .unwrap();
    let hang = fake_tool(&fx.dir.path(), "hang", "exec sleep 60");
    let logdir = fx.dir.join("log");
    let ran = sh_env(
        &pre_script(),
        &[],
        Some(hang.as_os_str()),
        &logdir,
        &[("SNAPGUARD_AZURE_CONFIG", conf.as_os_str())],
    );
    assert_one_short_line(&ran);
    assert_eq!(ran.code, 124, "{ran:?}");
    assert!(ran.stdout.contains("did not finish within 1 s"), "{ran:?}");
    assert!(ran.took < Duration::from_secs(6), "{ran:?}");
    assert_eq!(report(&logdir)["exit_code"], 124);
}

#[test]
fn concurrent_pre_scripts_keep_their_own_stderr() {
    // Azure retries while a late run still goes (it never kills one), or two backups overlap:
    // each run names its own snapguard's error, and no temporary file is left.
    let fx = unassessed("azure-concurrent");
    let logdir = fx.dir.join("log");
    let started = fx.dir.join("slow.started");
    let slow = fake_tool(
        &fx.dir.path(),
        "slow",
        &format!(
            "echo 'slow run error' >&2; touch '{}'; sleep 1; exit 3",
            started.display()
        ),
    );
    let fast = fake_tool(&fx.dir.path(), "fast", "echo 'fast run error' >&2; exit 3");
    let (slow_ran, fast_ran) = std::thread::scope(|s| {
        let slow_ran = s.spawn(|| sh(&pre_script(), &[], Some(slow.as_os_str()), &logdir));
        wait_until("the slow run started", || started.exists());
        let fast_ran = sh(&pre_script(), &[], Some(fast.as_os_str()), &logdir);
        (slow_ran.join().unwrap(), fast_ran)
    });
    for (ran, own) in [(&slow_ran, "slow run error"), (&fast_ran, "fast run error")] {
        assert_one_short_line(ran);
        assert_eq!(ran.code, 3, "{ran:?}");
        assert!(
            ran.stdout.contains(&format!("snapguard exited 3: {own}")),
            "{ran:?}"
        );
    }
    // The last to finish left its report and its stderr.
    assert!(
        report(&logdir)["error"]
            .as_str()
            .unwrap()
            .contains("slow run error")
    );
    assert_eq!(
        std::fs::read_to_string(logdir.join("azure-pre.stderr")).unwrap(),
        "slow run error\n"
    );
}
