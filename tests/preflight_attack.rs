//! Hostile cases of `snapguard preflight` found in review: what a killed run leaves in the
//! node_exporter textfile directory, and how errors read.

mod common;

use common::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// An empty fixture root (no mount table: preflight cannot tell, exit 3) and an empty config.
fn fixture(dir: &TestDir) -> (PathBuf, PathBuf) {
    let root = dir.mkdir("root");
    let config = dir.join("snapguard.toml");
    std::fs::write(&config, "").unwrap();
    (root, config)
}

fn preflight(root: &Path, config: &Path, extra: &[&str]) -> Outcome {
    let mut args: Vec<OsString> = vec![
        "--root".into(),
        root.into(),
        "--config".into(),
        config.into(),
        "preflight".into(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    run_snapguard(args, TIMEOUT)
}

/// The pid of a process that has ended (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// A run killed (SIGKILL, or SIGTERM from TimeoutStartSec=) between creating its temporary
/// file and renaming it leaves `.NAME.tmp-PID` behind; the next run removes the ones of dead
/// processes, and nothing else: not a live run's, not another file's, and never through a
/// symlink.
#[test]
fn temporary_files_of_killed_runs_are_removed_by_the_next_run() {
    let dir = TestDir::new("preflight-stale-tmp");
    let (root, config) = fixture(&dir);
    let out_dir = dir.mkdir("textfile");
    let prom = out_dir.join("snapguard.prom");
    let dead = dead_pid();
    let stale = out_dir.join(format!(".snapguard.prom.tmp-{dead}"));
    std::fs::write(&stale, "# half a file\nsnapguard_preflight_bl").unwrap();
    // A live process's temporary file (a concurrent run) is kept.
    let live = out_dir.join(format!(".snapguard.prom.tmp-{}", std::process::id()));
    std::fs::write(&live, "in progress").unwrap();
    // A symlink with a stale name: the link goes, its target stays.
    let target = dir.join("precious");
    std::fs::write(&target, "keep me").unwrap();
    let dead2 = dead_pid();
    let link = out_dir.join(format!(".snapguard.prom.tmp-{dead2}"));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // Not ours: another file's temporary, a name that is not a pid, a directory.
    let other = out_dir.join(format!(".other.prom.tmp-{dead}"));
    std::fs::write(&other, "x").unwrap();
    let not_pid = out_dir.join(".snapguard.prom.tmp-abc");
    std::fs::write(&not_pid, "x").unwrap();
    let a_dir = out_dir.join(format!(".snapguard.prom.tmp-{}", dead_pid()));
    std::fs::create_dir(&a_dir).unwrap();

    let out = preflight(&root, &config, &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(prom.is_file(), "{out:?}");
    assert!(
        !stale.exists(),
        "a dead run's temporary file is left forever"
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "a stale symlink is left"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(live.exists(), "a live process's temporary file was removed");
    assert!(other.exists() && not_pid.exists() && a_dir.is_dir());
}

/// Every `--probe` the checks would call invalid is a usage error (exit 3, nothing run), not
/// an E14 failure that blocks the backup: the command line and E14 agree on the syntax.
#[test]
fn a_probe_the_checks_reject_is_a_usage_error() {
    let dir = TestDir::new("preflight-bad-probe");
    let (root, config) = fixture(&dir);
    for bad in [
        "::1:22",
        "[::1]",
        "[::1]22",
        "host:",
        "host:0",
        "host:65536",
        "",
    ] {
        let out = preflight(&root, &config, &["--json", "--probe", bad]);
        assert_eq!(out.exit, 3, "{bad:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{bad:?} ran: {out:?}");
        assert!(out.stderr.contains("--probe"), "{bad:?}: {out:?}");
    }
    for good in ["[::1]:9", "127.0.0.1:9", "localhost:9"] {
        let out = preflight(&root, &config, &["--json", "--probe", good]);
        assert!(!out.stdout.is_empty(), "{good:?}: {out:?}");
    }
}

/// SELinux enforcing and the agent confined as waagent_t, one of its denials enforced an hour
/// ago (as tests/preflight.rs's fixture), with selinuxfs listed in the mount tables.
fn confined_agent(root: &Path, own_selinuxfs_opts: &str, pid1_selinuxfs_opts: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let table = |opts: &str| {
        format!(
            "20 1 0:20 / / rw - tmpfs tmpfs rw\n21 20 0:5 / /proc rw,nosuid - proc proc rw\n\
             22 20 0:21 / /sys {opts},nosuid,nodev,noexec - sysfs sysfs rw\n\
             23 22 0:22 / /sys/fs/selinux {opts},nosuid,noexec,relatime - selinuxfs selinuxfs rw\n"
        )
    };
    let files: [(&str, String); 10] = [
        ("proc/self/mountinfo", table(own_selinuxfs_opts)),
        ("proc/1/mountinfo", table(pid1_selinuxfs_opts)),
        (
            "proc/filesystems",
            "nodev\tproc\nnodev\tselinuxfs\n\text4\n".into(),
        ),
        ("proc/cmdline", "root=/dev/sda ro\n".into()),
        ("sys/kernel/security/lsm", "capability,selinux".into()),
        ("sys/fs/selinux/enforce", "1".into()),
        (
            "etc/selinux/config",
            "SELINUX=enforcing\nSELINUXTYPE=targeted\n".into(),
        ),
        (
            "proc/1234/cmdline",
            "/usr/bin/python3\0-u\0/usr/sbin/waagent\0-daemon\0".into(),
        ),
        (
            "proc/1234/attr/current",
            "system_u:system_r:waagent_t:s0\0".into(),
        ),
        (
            "var/log/audit/audit.log",
            format!(
                "type=AVC msg=audit({}.123:4521): avc:  denied  {{ execute }} for  pid=3120 comm=\"sh\" path=\"/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0/main/handle.sh\" dev=\"dm-3\" ino=393281 scontext=system_u:system_r:waagent_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0\n",
                now - 3600
            ),
        ),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// The preflight unit has ProtectKernelTunables=yes (and ProtectSystem=strict): in its mount
/// namespace /sys and the selinuxfs under it carry the per-mount "ro" flag, which a container
/// also shows. PID 1's table says whether the host's selinuxfs is read-only: under the unit a
/// confined agent must still stop the backup.
#[test]
fn a_read_only_selinuxfs_in_the_unit_s_own_namespace_is_not_a_container() {
    let dir = TestDir::new("preflight-selinux-ro");
    let (root, config) = fixture(&dir);
    confined_agent(&root, "ro", "rw");
    let out = preflight(&root, &config, &["--json", "--profile", "systemd"]);
    let doc = out.json();
    let blocked: Vec<String> = doc["blocked_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        blocked.iter().any(|w| w.starts_with("selinux S6")),
        "exit {}: {blocked:?}\n{:#}",
        out.exit,
        doc["selinux"]["checks"]
    );
    assert_eq!(out.exit, 1);

    // A real container: read-only for PID 1 too. The host's SELinux decides (not judged here).
    let dir = TestDir::new("preflight-selinux-container");
    let (root, config) = fixture(&dir);
    confined_agent(&root, "ro", "ro");
    let out = preflight(&root, &config, &["--json", "--profile", "systemd"]);
    let doc = out.json();
    let container = doc["selinux"]["checks"].as_array().is_some_and(|checks| {
        checks.iter().any(|c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains("read-only") && m.contains("container"))
        })
    });
    assert!(container, "{:#}", doc["selinux"]);
}

/// A `--prometheus` FILE that cannot be written (a directory, a directory that is not
/// there): one clear line on stderr naming it, no Rust "(os error N)" noise, no temporary file
/// left, and the exit code still the checks' (3 here: no mount table).
#[test]
fn an_unwritable_textfile_is_one_clear_line_and_does_not_change_the_exit_code() {
    let dir = TestDir::new("preflight-unwritable");
    let (root, config) = fixture(&dir);
    let a_dir = dir.mkdir("is-a-directory.prom");
    let missing = dir.join("no-such-dir/snapguard.prom");
    for target in [&a_dir, &missing] {
        let out = preflight(&root, &config, &["--prometheus", target.to_str().unwrap()]);
        assert_eq!(out.exit, 3, "{out:?}");
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("cannot write"))
            .unwrap_or_else(|| panic!("no error line: {out:?}"));
        assert!(line.contains(&target.display().to_string()), "{line}");
        assert!(!line.contains("(os error"), "{line}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
