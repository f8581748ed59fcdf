//! systemd units in a repair (repair.md §7 rows 5, 6, 13): whether systemd is PID 1 (the
//! `sd_booted()` test, under `SysRoot`), which holders' units `--stop-units` may stop, the
//! `.mount`/`.automount` units of a mount point, and the `systemctl` calls themselves.
//!
//! `systemctl` runs like a checker ([`checker::run`]): argv, no shell, its own process group,
//! the fixed `PATH` [`checker::CHECKER_PATH`] (nothing from snapguard's environment), a timeout.

use super::checker::{self, Command};
use super::discover::{unit_file_exists, unit_name_path_escape};
use super::holders::unit_of_cgroup;
use crate::root::{PROC_SELF, SYSTEMD_BOOTED, SysRoot};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Bound on one `systemctl` call (systemd's own job timeouts are 90 s by default).
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether systemd runs this machine: `/run/systemd/system` is a directory (sd_booted(3)).
pub fn systemd_booted(root: &SysRoot) -> bool {
    std::fs::symlink_metadata(root.path(SYSTEMD_BOOTED)).is_ok_and(|m| m.is_dir())
}

/// Whether `--stop-units` may stop `unit`: a service, not a user manager (that would end a
/// user's whole session) and not `own` (the unit snapguard itself runs in). Scopes (login
/// sessions, `init.scope`) and other unit types are never stopped.
pub fn stoppable(unit: &str, own: Option<&str>) -> bool {
    unit.len() > ".service".len()
        && unit.ends_with(".service")
        && !unit.starts_with("user@")
        && !unit.starts_with("user-runtime-dir@")
        && Some(unit) != own
}

/// The unit snapguard runs in (from `/proc/self/cgroup`), if any.
pub fn own_unit(root: &SysRoot) -> Option<String> {
    let text = std::fs::read_to_string(root.path(PROC_SELF).join("cgroup")).ok()?;
    let path_of = |line: &str| line.splitn(3, ':').nth(2).map(str::to_string);
    let unified = text
        .lines()
        .find(|l| l.starts_with("0::"))
        .and_then(path_of);
    let named = text
        .lines()
        .find(|l| l.split(':').nth(1) == Some("name=systemd"))
        .and_then(path_of);
    unified
        .as_deref()
        .and_then(unit_of_cgroup)
        .or_else(|| named.as_deref().and_then(unit_of_cgroup))
}

/// What `--stop-units` means for one target's holders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No unit to stop (no `--stop-units`, or no holder in a stoppable unit).
    Nothing,
    /// Stop these units (each once, in the order their holders were listed).
    Stop(Vec<String>),
    /// Refuse before anything changes: the one-line reason.
    Refuse(String),
}

/// Decide from whether systemd is PID 1, `--stop-units`, our own unit and the holders' units.
pub fn decide(
    booted: bool,
    stop_units: bool,
    own: Option<&str>,
    holder_units: &[&str],
) -> Decision {
    if !stop_units {
        return Decision::Nothing;
    }
    let mut units: Vec<String> = Vec::new();
    for u in holder_units {
        if stoppable(u, own) && !units.iter().any(|x| x == u) {
            units.push((*u).to_string());
        }
    }
    if units.is_empty() {
        return Decision::Nothing;
    }
    if !booted {
        return Decision::Refuse(format!(
            "--stop-units: systemd is not running on this machine (no /run/systemd/system), so \
             the units of the processes in the way ({}) cannot be stopped; nothing was changed \
             (--terminate-holders ends the processes instead)",
            units.join(", ")
        ));
    }
    Decision::Stop(units)
}

/// The `.mount` unit of a mount point (every mount has one while systemd runs).
pub fn mount_unit(mount_point: &Path) -> Option<String> {
    unit_name_path_escape(mount_point).map(|n| format!("{n}.mount"))
}

/// The `.automount` unit of a mount point, when a unit file for it exists (not masked).
pub fn automount_unit(root: &SysRoot, mount_point: &Path) -> Option<String> {
    let name = unit_name_path_escape(mount_point).map(|n| format!("{n}.automount"))?;
    unit_file_exists(root, &name).then_some(name)
}

/// The `.mount` unit that `systemctl start` can mount again: only one with a unit file (fstab's
/// generator output, or a unit written by hand). A mount made by hand has a unit only while it
/// is mounted, so it comes back through mount(2) with the recorded options instead.
pub fn startable_mount_unit(root: &SysRoot, mount_point: &Path) -> Option<String> {
    let name = mount_unit(mount_point)?;
    unit_file_exists(root, &name).then_some(name)
}

/// `systemctl VERB -- UNIT`, as printed in the report.
pub fn command(verb: &str, unit: &str) -> Command {
    Command {
        program: "systemctl".into(),
        args: vec![OsString::from(verb), "--".into(), OsString::from(unit)],
    }
}

/// Run `systemctl VERB -- UNIT`; the command line on success, an error with systemctl's last
/// line otherwise.
pub fn systemctl(verb: &str, unit: &str) -> anyhow::Result<String> {
    let cmd = command(verb, unit);
    let run = checker::run(&cmd, SYSTEMCTL_TIMEOUT, None)?;
    if run.status.success() {
        Ok(cmd.display())
    } else {
        let last = run
            .output
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        anyhow::bail!(
            "`{}` exited with {}: {last}",
            cmd.display(),
            run.status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| c.to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture(booted: bool) -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        if booted {
            fs::create_dir_all(dir.path().join("run/systemd/system")).unwrap();
        } else {
            fs::create_dir_all(dir.path().join("run/systemd")).unwrap();
        }
        let root = SysRoot::new(dir.path());
        (dir, root)
    }

    #[test]
    fn systemd_is_pid_1_exactly_when_run_systemd_system_is_a_directory() {
        let (_d, root) = fixture(true);
        assert!(systemd_booted(&root));
        let (d, root) = fixture(false);
        assert!(!systemd_booted(&root));
        // A file of that name is not systemd.
        fs::write(d.path().join("run/systemd/system"), b"").unwrap();
        assert!(!systemd_booted(&root));
    }

    #[test]
    fn stop_units_without_systemd_refuses_with_one_line_naming_the_alternative() {
        let (_d, root) = fixture(false);
        let booted = systemd_booted(&root);
        match decide(booted, true, None, &["app.service", "app.service"]) {
            Decision::Refuse(line) => {
                assert!(!line.contains('\n'));
                assert!(line.contains("systemd is not running"), "{line}");
                assert!(line.contains("(app.service)"), "{line}");
                assert!(line.contains("--terminate-holders"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        // Without --stop-units, or with no stoppable unit, there is nothing to decide.
        assert_eq!(
            decide(booted, false, None, &["app.service"]),
            Decision::Nothing
        );
        assert_eq!(
            decide(booted, true, None, &["session-3.scope"]),
            Decision::Nothing
        );
        assert_eq!(decide(booted, true, None, &[]), Decision::Nothing);
    }

    #[test]
    fn stop_units_with_systemd_stops_each_service_once_never_scopes_or_our_own() {
        let (_d, root) = fixture(true);
        let booted = systemd_booted(&root);
        assert_eq!(
            decide(
                booted,
                true,
                Some("snapguard-repair.service"),
                &[
                    "db.service",
                    "session-4.scope",
                    "db.service",
                    "snapguard-repair.service",
                    "user@1000.service",
                    "web.service",
                    "init.scope",
                ]
            ),
            Decision::Stop(vec!["db.service".into(), "web.service".into()])
        );
    }

    #[test]
    fn own_unit_from_proc_self_cgroup() {
        let (d, root) = fixture(true);
        fs::create_dir_all(d.path().join("proc/self")).unwrap();
        fs::write(
            d.path().join("proc/self/cgroup"),
            "0::/system.slice/snapguard-repair.service\n",
        )
        .unwrap();
        assert_eq!(own_unit(&root).as_deref(), Some("snapguard-repair.service"));
        fs::write(
            d.path().join("proc/self/cgroup"),
            "9:name=systemd:/system.slice/cron.service\n0::/\n",
        )
        .unwrap();
        assert_eq!(own_unit(&root).as_deref(), Some("cron.service"));
        fs::write(d.path().join("proc/self/cgroup"), "0::/\n").unwrap();
        assert_eq!(own_unit(&root), None);
    }

    #[test]
    fn mount_units_start_only_with_a_unit_file() {
        let (d, root) = fixture(true);
        let mp = Path::new("/srv/data");
        assert_eq!(mount_unit(mp).as_deref(), Some("srv-data.mount"));
        assert_eq!(startable_mount_unit(&root, mp), None);
        assert_eq!(automount_unit(&root, mp), None);
        let generator = d.path().join("run/systemd/generator");
        fs::create_dir_all(&generator).unwrap();
        fs::write(generator.join("srv-data.mount"), "[Mount]\n").unwrap();
        fs::write(generator.join("srv-data.automount"), "[Automount]\n").unwrap();
        assert_eq!(
            startable_mount_unit(&root, mp).as_deref(),
            Some("srv-data.mount")
        );
        assert_eq!(
            automount_unit(&root, mp).as_deref(),
            Some("srv-data.automount")
        );
    }

    #[test]
    fn systemctl_commands_are_argv_with_a_double_dash() {
        assert_eq!(
            command("stop", "srv-data.mount").display(),
            "systemctl stop -- srv-data.mount"
        );
    }
}
