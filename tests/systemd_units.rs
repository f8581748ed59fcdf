//! Checks the unit files in `systemd/`: required keys and sandbox settings (and, for the unit
//! that runs `freeze`, the rescue and stop settings it needs; for the repair unit, the absence
//! of every setting that gives it a mount namespace of its own), that their `ExecStart=`
//! arguments are accepted by the built binary, that their `Documentation=` pages are ones
//! `snapguard generate man` writes, and `systemd-analyze verify` on every unit, with the
//! examples as drop-ins of a backup service and of the repair timer.
//!
//! `snapguard preflight` is another branch's work: its unit's arguments are not run here.
//!
//! `systemd-analyze verify` runs only where it works: it needs no systemd as PID 1, but some
//! containers lack the tool or cannot load units at all. A missing tool is a skip
//! (`common::skip`: a failure under SNAPGUARD_REQUIRE_PRIVILEGED=1); a tool that rejects even
//! a trivial unit is a machine it cannot verify on (`common::not_here`: never a failure, but
//! listed in the summary). The key checks always run.

#![allow(
    clippy::print_stderr,
    reason = "a skipped check prints its reason, as DESIGN.md section 4 asks"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;

/// The read-only, sandboxed units.
const READ_ONLY: [&str; 2] = ["snapguard-preflight.service", "snapguard-scan.service"];
const TIMER: &str = "snapguard-scan.timer";
const REPAIR: &str = "snapguard-repair.service";
const REPAIR_TIMER: &str = "snapguard-repair.timer";
const REPAIR_FAILED: &str = "snapguard-repair-failed@.service";
/// Where the units expect the binary (scripts/install.sh rewrites it for --prefix).
const INSTALLED_BIN: &str = "/usr/local/bin/snapguard";

/// Every unit file in systemd/ (not the examples), sorted.
fn all_units() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(units_dir())
        .expect("systemd/")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".service") || n.ends_with(".timer"))
        .collect();
    names.sort();
    names
}

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// section -> key -> values in file order (systemd keys may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Minimal systemd unit parser: sections, `Key=value`, comments, backslash continuations.
fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            unit.entry(section.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not `Key=value` in [{section}]: {line:?}"));
        assert!(!section.is_empty(), "key {key:?} before any [Section]");
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn load(name: &str) -> (String, Unit) {
    let path = units_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let unit = parse_unit(&text);
    (text, unit)
}

/// The last value of a key (what systemd uses for single-valued keys).
fn get<'a>(unit: &'a Unit, name: &str, section: &str, key: &str) -> &'a str {
    unit.get(section)
        .and_then(|s| s.get(key))
        .and_then(|v| v.last())
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{name}: no {key}= in [{section}]"))
}

fn exec_start_argv(unit: &Unit, name: &str) -> Vec<String> {
    let exec = get(unit, name, "Service", "ExecStart");
    // Strip systemd's prefixes (-, @, :, +, !) before the path.
    let exec = exec.trim_start_matches(['-', '@', ':', '+', '!']);
    exec.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn read_only_units_have_required_keys_and_sandbox() {
    for name in READ_ONLY {
        let (_, unit) = load(name);
        assert!(
            unit.get("Unit")
                .and_then(|s| s.get("Documentation"))
                .is_some(),
            "{name}: no Documentation="
        );
        assert_eq!(get(&unit, name, "Service", "Type"), "oneshot", "{name}");

        let argv = exec_start_argv(&unit, name);
        let bin = Path::new(&argv[0]);
        assert!(
            bin.is_absolute(),
            "{name}: ExecStart= needs an absolute path, got {bin:?}"
        );
        assert_eq!(
            bin.file_name().unwrap(),
            "snapguard",
            "{name}: ExecStart={argv:?}"
        );
        if name == "snapguard-scan.service" {
            assert_eq!(argv.get(1).map(String::as_str), Some("scan"), "{argv:?}");
            assert!(
                argv.windows(2).any(|w| w == ["--format", "json"]),
                "{name}: ExecStart= should ask for --format json: {argv:?}"
            );
            // 1 (WARNING) is success; 2 (CRITICAL) and 3 (UNKNOWN) must fail the unit.
            let ok: Vec<&str> = get(&unit, name, "Service", "SuccessExitStatus")
                .split_whitespace()
                .collect();
            assert!(ok.contains(&"1"), "{name}: SuccessExitStatus= lacks 1");
            assert!(
                !ok.contains(&"2") && !ok.contains(&"3"),
                "{name}: CRITICAL/UNKNOWN must fail the unit: SuccessExitStatus={ok:?}"
            );
        } else {
            // preflight's systemd profile: 0 go, 1 blocked, 2 cannot tell; only 0 may pass.
            assert_eq!(
                argv[1..],
                ["preflight", "--profile", "systemd", "--json"],
                "{name}"
            );
            assert!(
                !unit["Service"].contains_key("SuccessExitStatus"),
                "{name}: 1 (blocked) and 2 (cannot tell) must fail the unit"
            );
            assert!(!get(&unit, name, "Service", "TimeoutStartSec").is_empty());
        }

        for (key, want) in [
            ("ProtectSystem", "strict"),
            ("ProtectHome", "read-only"),
            ("PrivateNetwork", "yes"),
            ("PrivateTmp", "yes"),
            ("NoNewPrivileges", "yes"),
            ("CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"),
            ("Nice", "10"),
        ] {
            assert_eq!(get(&unit, name, "Service", key), want, "{name}: {key}=");
        }
        // PrivateDevices=yes would hide the block devices the scan reads.
        let private_devices = unit["Service"].get("PrivateDevices").and_then(|v| v.last());
        assert!(
            !matches!(
                private_devices.map(String::as_str),
                Some("yes" | "true" | "1" | "on")
            ),
            "{name}: PrivateDevices= hides the block devices to scan"
        );
        assert!(
            unit["Service"].contains_key("IOSchedulingClass"),
            "{name}: no IOSchedulingClass="
        );
    }
}

#[test]
fn timer_triggers_scan_service() {
    let (_, unit) = load(TIMER);
    assert!(!get(&unit, TIMER, "Timer", "OnCalendar").is_empty());
    assert_eq!(get(&unit, TIMER, "Timer", "Persistent"), "true");
    assert!(!get(&unit, TIMER, "Timer", "RandomizedDelaySec").is_empty());
    let service = get(&unit, TIMER, "Timer", "Unit");
    assert!(
        units_dir().join(service).is_file(),
        "{TIMER}: Unit={service} is not in systemd/"
    );
    assert_eq!(get(&unit, TIMER, "Install", "WantedBy"), "timers.target");
}

/// The arguments a unit passes must be ones the binary accepts: `ARGS... --help` exits 0 only
/// when clap parsed everything before `--help`.
#[test]
fn exec_start_arguments_parse() {
    for name in all_units() {
        let name = name.as_str();
        if !name.ends_with(".service") || name == "snapguard-preflight.service" {
            continue;
        }
        let (_, unit) = load(name);
        let argv = exec_start_argv(&unit, name);
        if argv[0] != INSTALLED_BIN {
            continue;
        }
        // freeze's ExecStart= ends with `-- CMD`: clap takes --help as CMD there.
        let argv: Vec<&String> = argv.iter().take_while(|a| *a != "--").collect();
        Command::cargo_bin("snapguard")
            .expect("snapguard binary")
            .args(&argv[1..])
            .arg("--help")
            .assert()
            .success();
    }
}

/// Runs `systemd-analyze verify FILES` in `dir`, checking `Documentation=` man pages against
/// `man_dir` (a MANPATH) when given: Ok(diagnostics) or Err(why not).
fn analyze_verify(
    dir: &Path,
    files: &[&str],
    man_dir: Option<&Path>,
) -> Result<(bool, String), String> {
    let mut cmd = StdCommand::new("systemd-analyze");
    cmd.arg("verify");
    match man_dir {
        Some(man_dir) => cmd.arg("--man=yes").env("MANPATH", man_dir),
        None => cmd.arg("--man=no"),
    };
    let out = cmd
        .args(files.iter().map(|f| dir.join(f)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("systemd-analyze cannot run: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok((out.status.success(), text))
}

/// The man pages `snapguard generate man` writes, in `dir/man1` (a MANPATH for `man`).
fn generated_man_pages(dir: &Path) -> Vec<String> {
    let man1 = dir.join("man1");
    std::fs::create_dir_all(&man1).expect("man1");
    Command::cargo_bin("snapguard")
        .expect("snapguard binary")
        .args(["generate", "man"])
        .arg(&man1)
        .assert()
        .success();
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .expect("man1")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    pages.sort();
    pages
}

/// Every `Documentation=man:PAGE(1)` names a page `snapguard generate man` writes.
#[test]
fn documentation_names_generated_man_pages() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let pages = generated_man_pages(dir.path());
    assert!(pages.contains(&"snapguard.1".to_string()), "{pages:?}");
    assert!(
        pages.contains(&"snapguard-repair.1".to_string()),
        "{pages:?}"
    );
    for name in all_units() {
        let (_, unit) = load(&name);
        let docs = unit
            .get("Unit")
            .and_then(|s| s.get("Documentation"))
            .unwrap_or_else(|| panic!("{name}: no Documentation="));
        for doc in docs.iter().flat_map(|d| d.split_whitespace()) {
            let page = doc
                .strip_prefix("man:")
                .and_then(|p| p.strip_suffix("(1)"))
                .unwrap_or_else(|| panic!("{name}: Documentation={doc} is not man:PAGE(1)"));
            assert!(
                pages.contains(&format!("{page}.1")),
                "{name}: Documentation={doc}, but snapguard generate man writes {pages:?}"
            );
        }
    }
}

#[test]
fn systemd_analyze_verify() {
    let dir = tempfile::TempDir::new().expect("temp dir");

    // First a trivial, correct unit: if even that does not verify cleanly, this machine cannot
    // verify units (no systemd-analyze, a container without what it needs), so skip.
    std::fs::write(
        dir.path().join("snapguard-probe.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .expect("write probe unit");
    match analyze_verify(dir.path(), &["snapguard-probe.service"], None) {
        Err(why) => {
            common::skip("systemd_analyze_verify", &why);
            return;
        }
        Ok((false, text)) => {
            common::not_here(
                "systemd_analyze_verify",
                &format!("it rejects even a trivial unit here: {text}"),
            );
            return;
        }
        Ok((true, _)) => {}
    }

    // verify checks that ExecStart= exists, so point the copies at the binary under test.
    let bin = assert_cmd::cargo::cargo_bin("snapguard");
    let bin = bin.to_str().expect("utf-8 binary path");
    let copy = |text: &str| text.replace(INSTALLED_BIN, &format!("\"{bin}\""));
    let units = all_units();
    for name in &units {
        let (text, _) = load(name);
        std::fs::write(dir.path().join(name), copy(&text)).expect("write unit copy");
    }
    // The examples as drop-ins: of a backup service, and of the repair timer.
    std::fs::write(
        dir.path().join("mybackup.service"),
        "[Unit]\nDescription=a backup\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .expect("write backup unit");
    let mut drop_ins = Vec::new();
    for (example, unit) in [
        (
            "examples/backup.service.d/snapguard.conf",
            "mybackup.service",
        ),
        (
            "examples/snapguard-repair.timer.d/window.conf",
            REPAIR_TIMER,
        ),
    ] {
        let text = std::fs::read_to_string(units_dir().join(example)).expect("example");
        let name = Path::new(example).file_name().unwrap().to_owned();
        let target = dir.path().join(format!("{unit}.d"));
        std::fs::create_dir_all(&target).expect("drop-in dir");
        std::fs::write(target.join(&name), copy(&text)).expect("write drop-in");
        drop_ins.push(name.into_string().unwrap());
    }
    // The variant in the backup example, uncommented, must verify as well.
    let variant =
        std::fs::read_to_string(units_dir().join("examples/backup.service.d/snapguard.conf"))
            .expect("example")
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_uppercase() || c == '[') => {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
    assert!(
        variant.contains("\nExecCondition="),
        "no ExecCondition= variant"
    );
    std::fs::write(
        dir.path().join("mybackup2.service"),
        "[Unit]\nDescription=another backup\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .expect("write backup unit");
    std::fs::create_dir_all(dir.path().join("mybackup2.service.d")).expect("drop-in dir");
    std::fs::write(
        dir.path().join("mybackup2.service.d/snapguard.conf"),
        copy(&variant),
    )
    .expect("write drop-in");

    // With `man`, Documentation= is checked against the generated pages too.
    let man = tempfile::TempDir::new().expect("temp dir");
    let man_dir = if StdCommand::new("man").arg("--version").output().is_ok() {
        generated_man_pages(man.path());
        Some(man.path())
    } else {
        common::skip(
            "systemd_analyze_verify (Documentation= pages)",
            "no man here (apt-get install man-db)",
        );
        None
    };
    let mut files: Vec<&str> = units.iter().map(String::as_str).collect();
    files.extend(["mybackup.service", "mybackup2.service"]);
    let (ok, text) =
        analyze_verify(dir.path(), &files, man_dir).expect("systemd-analyze ran above");
    // verify exits 0 on unknown keys and bad values, so its diagnostics about our files count.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| {
            files.iter().any(|f| l.contains(f))
                || drop_ins.iter().any(|f| l.contains(f.as_str()))
                || l.contains("snapguard")
        })
        .collect();
    assert!(
        ok && ours.is_empty(),
        "systemd-analyze verify {files:?} (exit ok: {ok}):\n{text}"
    );
}

/// Every setting that gives a service a mount namespace of its own (systemd.exec(5)): with any
/// of them, repair's umount would only reach the service's private copy of the mount table.
const MOUNT_NAMESPACE_KEYS: [&str; 30] = [
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateMounts",
    "PrivateDevices",
    "PrivateNetwork",
    "PrivateUsers",
    "PrivateIPC",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectHostname",
    "ProtectClock",
    "ProtectProc",
    "ProcSubset",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "RootDirectory",
    "RootImage",
    "MountAPIVFS",
    "DynamicUser",
    "LogNamespace",
    "NetworkNamespacePath",
];

/// The maintenance-window repair: snapguard checks the window, never prompts, runs in the
/// host's mount namespace, and a failure is reported by the OnFailure= unit.
#[test]
fn the_repair_unit_runs_in_the_host_mount_namespace() {
    let (_, unit) = load(REPAIR);
    assert_eq!(get(&unit, REPAIR, "Service", "Type"), "oneshot");
    for key in MOUNT_NAMESPACE_KEYS {
        assert!(
            !unit["Service"].contains_key(key),
            "{REPAIR}: {key}= gives the repair a mount namespace of its own: its umount would \
             not reach the host"
        );
    }
    let argv = exec_start_argv(&unit, REPAIR);
    assert_eq!(argv[0], INSTALLED_BIN);
    assert!(argv.contains(&"repair".into()) && argv.contains(&"--maintenance".into()));
    assert!(
        !argv
            .iter()
            .any(|a| a.starts_with("--tier") || a.starts_with("--zero-log")),
        "the tier is the configuration's: {argv:?}"
    );
    // Outside the window (64), repaired (1) and reboot needed (2) are success; errors left (4),
    // operational (8) and usage (16) fail the unit.
    let ok: Vec<&str> = get(&unit, REPAIR, "Service", "SuccessExitStatus")
        .split_whitespace()
        .collect();
    assert!(ok.contains(&"64"), "{ok:?}");
    for failing in ["4", "8", "16"] {
        assert!(
            !ok.contains(&failing),
            "{failing} must fail the unit: {ok:?}"
        );
    }
    assert_eq!(get(&unit, REPAIR, "Service", "KillMode"), "mixed");
    assert!(!get(&unit, REPAIR, "Service", "TimeoutStartSec").is_empty());
    let on_failure = get(&unit, REPAIR, "Unit", "OnFailure");
    let template = on_failure.replace("%n", "");
    assert_eq!(template, REPAIR_FAILED, "{on_failure}");
    assert!(units_dir().join(REPAIR_FAILED).is_file());

    // The failure unit logs a critical message naming the failed unit.
    let (_, failed) = load(REPAIR_FAILED);
    let exec = get(&failed, REPAIR_FAILED, "Service", "ExecStart");
    assert!(exec.starts_with("/usr/bin/systemd-cat "), "{exec}");
    assert!(
        exec.contains("--priority=crit") && exec.contains("%i failed"),
        "{exec}"
    );

    let (_, timer) = load(REPAIR_TIMER);
    assert!(!get(&timer, REPAIR_TIMER, "Timer", "OnCalendar").is_empty());
    assert_eq!(get(&timer, REPAIR_TIMER, "Timer", "Persistent"), "true");
    assert_eq!(get(&timer, REPAIR_TIMER, "Timer", "Unit"), REPAIR);
    assert_eq!(
        get(&timer, REPAIR_TIMER, "Install", "WantedBy"),
        "timers.target"
    );
}

/// The unit that runs `freeze`: a rescue thaw after any end, a stop that reaches snapguard
/// first, no namespace sandboxing that would change the mount table it freezes.
#[test]
fn the_freeze_unit_rescues_and_stops_in_order() {
    let name = "snapguard-freeze@.service";
    let (_, unit) = load(name);
    assert_eq!(get(&unit, name, "Service", "Type"), "oneshot");
    let argv = exec_start_argv(&unit, name);
    assert_eq!(argv.get(1).map(String::as_str), Some("freeze"), "{argv:?}");
    assert!(argv.contains(&"--".to_string()), "{argv:?}");
    let post = get(&unit, name, "Service", "ExecStopPost");
    assert!(
        post.starts_with('-') && post.ends_with("snapguard thaw"),
        "ExecStopPost=-.../snapguard thaw, got {post:?}"
    );
    assert_eq!(get(&unit, name, "Service", "KillMode"), "mixed");
    assert!(!get(&unit, name, "Service", "TimeoutStopSec").is_empty());
    for key in [
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateMounts",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
    ] {
        assert!(
            !unit["Service"].contains_key(key),
            "{name}: {key}= gives the freeze a private mount table"
        );
    }
    // ExecStart= and ExecStopPost= are argument lists the binary accepts.
    for args in [
        argv[1..argv.iter().position(|a| a == "--").unwrap()].to_vec(),
        post.split_whitespace().skip(1).map(str::to_owned).collect(),
    ] {
        Command::cargo_bin("snapguard")
            .expect("snapguard binary")
            .args(&args)
            .arg("--help")
            .assert()
            .success();
    }
}
