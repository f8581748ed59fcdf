//! `repair --maintenance` and the configuration file's rules, through the binary: outside the
//! `[repair] window` nothing is done (exit 64, before any privilege or device is looked at);
//! inside it the run goes on; no window is a usage error; the tier stops at preen; a config
//! that is not root's (or writable by others) is refused with the fix, with each command's
//! exit status for a configuration error.

mod common;

use common::{TestDir, run_snapguard};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn config(dir: &TestDir, text: &str) -> PathBuf {
    let path = dir.join("snapguard.toml");
    std::fs::write(&path, text).expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// Today's weekday as `date` sees it in local time, 0 = Monday.
fn today() -> u8 {
    let out = Command::new("date").arg("+%u").output().expect("date");
    let n: u8 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("date +%u");
    n - 1
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn repair_maintenance(config: &Path, extra: &[&str]) -> common::Outcome {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("repair"),
        OsStr::new("--maintenance"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    run_snapguard(args, T)
}

#[test]
fn outside_the_window_nothing_is_done() {
    let dir = TestDir::new("maint-outside");
    // A whole day three days from now: neither today nor yesterday (whose window could run
    // past midnight), even if the day changes while the test runs.
    let day = DAYS[usize::from((today() + 3) % 7)];
    let conf = config(
        &dir,
        &format!("[repair]\nwindow = [\"{day} 00:00-24:00\"]\ntier = \"check\"\n"),
    );
    let out = repair_maintenance(&conf, &["--json", "/nonexistent-snapguard-target"]);
    assert_eq!(out.exit, 64, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "outside the maintenance window ({day} 00:00-24:00, local time): nothing done"
        )),
        "{}",
        out.stderr
    );
    // Nothing ran: no report, and the missing target was never looked at.
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!out.stderr.contains("nonexistent"), "{}", out.stderr);
}

#[test]
fn inside_the_window_the_run_goes_on_at_most_preen() {
    let dir = TestDir::new("maint-inside");
    let conf = config(
        &dir,
        "[repair]\nwindow = \"00:00-24:00\"\ntier = \"full\"\n",
    );
    let out = repair_maintenance(&conf, &["--dry-run", "/nonexistent-snapguard-target"]);
    assert!(
        out.exit != 64 && out.exit != 16 && out.exit != 0,
        "past the window it fails for its own reasons (root, namespace, target): {out:?}"
    );
    assert!(
        !out.stderr.contains("outside the maintenance window"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("a --maintenance run stops at preen"),
        "the full tier is never unattended: {}",
        out.stderr
    );
}

#[test]
fn no_window_or_a_chosen_tier_is_a_usage_error() {
    let dir = TestDir::new("maint-usage");
    let conf = config(&dir, "[repair]\ntier = \"preen\"\n");
    let out = repair_maintenance(&conf, &[]);
    assert_eq!(out.exit, 16, "{out:?}");
    assert!(
        out.stderr.contains("--maintenance needs [repair] window"),
        "{}",
        out.stderr
    );

    let conf = config(&dir, "[repair]\nwindow = \"00:00-24:00\"\n");
    for extra in [["--tier", "full"], ["--zero-log", "/dev/null"]] {
        let out = repair_maintenance(&conf, &extra);
        assert_eq!(out.exit, 16, "{extra:?}: {out:?}");
        assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    }
}

#[test]
fn a_bad_window_names_file_and_line() {
    let dir = TestDir::new("maint-bad");
    let conf = config(
        &dir,
        "[repair]\ntier = \"preen\"\n\nwindow = \"Sun 2am-4am\"\n",
    );
    let out = repair_maintenance(&conf, &[]);
    assert_eq!(out.exit, 16, "{out:?}");
    let want = format!(
        "snapguard: repair: invalid configuration {}:4: window \"Sun 2am-4am\"",
        conf.display()
    );
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
}

/// As root a `--config` file must be root's and writable by root only (the file itself);
/// each command exits with its configuration-error status. A non-root user's own file is not
/// checked.
#[test]
fn a_config_others_can_write_is_refused_as_root() {
    let dir = TestDir::new("config-trust");
    let conf = config(&dir, "[scan]\nskip_fstypes = [\"vfat\"]\n");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    if snapguard::sys::process::euid() != 0 {
        // Not root: the caller's own file configures only the caller's runs.
        let out = run_snapguard(
            [
                OsStr::new("--config"),
                conf.as_os_str(),
                OsStr::new("scan"),
                OsStr::new("/nonexistent-snapguard"),
            ],
            T,
        );
        assert!(
            !out.stderr.contains("configuration refused"),
            "{}",
            out.stderr
        );
        return;
    }
    // The refusal comes before anything runs: freeze never gets to `/`.
    for (cmd, code) in [
        (vec!["scan", "/nonexistent-snapguard"], 3),
        (vec!["freeze-test", "--probe-only", "/"], 3),
        (vec!["freeze", "/", "--", "/bin/true"], 125),
        (vec!["repair", "--dry-run", "/nonexistent-snapguard"], 16),
    ] {
        let mut args = vec![OsStr::new("--config"), conf.as_os_str()];
        args.extend(cmd.iter().map(OsStr::new));
        let out = run_snapguard(args, T);
        assert_eq!(out.exit, code, "{cmd:?}: {out:?}");
        let want = format!(
            "configuration refused: '{}' is writable by its group (mode 0664); chmod g-w it",
            conf.display()
        );
        assert!(out.stderr.contains(&want), "{cmd:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{cmd:?}: {}", out.stderr);
    }
}

/// The default file is walked from `/` (every directory root's, not group/world-writable):
/// checked here through the library on a file in a world-writable temp directory.
#[test]
fn the_default_rule_checks_every_directory() {
    use snapguard::config::{Config, ConfigError, Trust};
    let tmp = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix("snapguard-config-walk-")
        .tempdir_in(&tmp)
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = dir.path().join("snapguard.toml");
    std::fs::write(&path, "").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = Config::load(&path, true, Trust::Path).unwrap_err();
    assert!(matches!(err, ConfigError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("chmod"), "{err}");
}
