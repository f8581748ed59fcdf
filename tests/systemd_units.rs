//! Checks the unit files in `systemd/`: required keys and sandbox settings (and, for the unit
//! that runs `freeze`, the rescue and stop settings it needs), that their `ExecStart=`
//! arguments are accepted by the built binary, and `systemd-analyze verify`.
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

const SERVICES: [&str; 2] = ["snapguard-preflight.service", "snapguard-scan.service"];
const TIMER: &str = "snapguard-scan.timer";

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
fn services_have_required_keys_and_sandbox() {
    for name in SERVICES {
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
        assert_eq!(
            argv.get(1).map(String::as_str),
            Some("scan"),
            "{name}: {argv:?}"
        );
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
    for name in SERVICES {
        let (_, unit) = load(name);
        let argv = exec_start_argv(&unit, name);
        Command::cargo_bin("snapguard")
            .expect("snapguard binary")
            .args(&argv[1..])
            .arg("--help")
            .assert()
            .success();
    }
}

/// Runs `systemd-analyze verify --man=no FILES` in `dir`: Ok(diagnostics) or Err(why not).
fn analyze_verify(dir: &Path, files: &[&str]) -> Result<(bool, String), String> {
    let out = StdCommand::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(files.iter().map(|f| dir.join(f)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("systemd-analyze cannot run: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok((out.status.success(), text))
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
    match analyze_verify(dir.path(), &["snapguard-probe.service"]) {
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
    let mut files = Vec::new();
    for name in SERVICES.into_iter().chain([TIMER]) {
        let (text, unit) = load(name);
        let text = if unit.contains_key("Service") {
            let installed = &exec_start_argv(&unit, name)[0];
            text.replace(
                &format!("ExecStart={installed} "),
                &format!("ExecStart=\"{bin}\" "),
            )
        } else {
            text
        };
        std::fs::write(dir.path().join(name), text).expect("write unit copy");
        files.push(name);
    }
    let (ok, text) = analyze_verify(dir.path(), &files).expect("systemd-analyze ran above");
    // verify exits 0 on unknown keys and bad values, so its diagnostics about our files count.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| files.iter().any(|f| l.contains(f)))
        .collect();
    assert!(
        ok && ours.is_empty(),
        "systemd-analyze verify {files:?} (exit ok: {ok}):\n{text}"
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
