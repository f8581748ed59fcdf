//! `snapguard preflight`: arguments and glue. Runs the sections through the other commands'
//! report functions, hands the reports to [`crate::preflight`] and writes the textfile.

use super::freeze_test::{self, FreezeTestArgs};
use super::{Cli, Outcome, scan, selinux};
use crate::config::Config;
use crate::envcheck::{self, EnvOptions};
use crate::preflight::profile::Profile;
use crate::preflight::{self, Sections, prometheus, textfile};
use crate::report;
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `--help` text (also named on the `Command` variant, whose doc comment would replace it).
pub const HELP: &str = "\
Every read-only check in one run, one report, one exit code: for a backup hook
(systemd ExecCondition=/ExecStartPre=, Azure's VMSnapshot pre-script), a monitor (Nagios,
node_exporter's textfile collector), or an admin before a backup.

Sections:
  scan         every mounted local block filesystem, as `snapguard scan` without TARGET
               (the configuration's [scan] skip_fstypes and skip_mountpoints apply)
  freeze-test  static verdicts of every local block-backed mount, as `snapguard freeze-test
               --probe-only` (nothing is opened or frozen); --freeze-test freezes and thaws
               each for real, as `snapguard freeze-test` (root, and not with --root)
  selinux      as `snapguard selinux`: is the Azure agent kept from working
  environment  the environment checks (agent, extension, pressure, mounts, DHCP, /var
               noexec); --probe HOST:PORT adds a reachability check, never by default

What blocks a backup (JSON \"blocks_backup\": true, human \"backup blocked by: ...\"),
decided apart from severity:
  scan         a filesystem the backup would copy that is not clean or needs journal/log
               recovery (at warning or worse in its context: ext.not-clean,
               ext.needs-recovery, ext.orphans-pending, xfs.dirty-log, btrfs.log-tree,
               fat.dirty, exfat.dirty, f2fs.not-unmounted), that has recorded errors or
               corrupt metadata (critical), or that could not be assessed (unknown)
  freeze-test  a mount that cannot be frozen: unsupported, failed, or already frozen by
               someone else; not one skipped by configuration ([freeze] skip and
               skip_fstypes, Azure MountsToSkip) and not a read-only one
  selinux      a failing check: SELinux (or a look-alike) blocks the agent now
  environment  the checks their module marks blocking
A blocking item is reported critical whatever its own severity.

Everything is read through --root, like the other commands; --prometheus FILE is a
real path, written atomically (a temporary file in FILE's directory, fsync, rename; mode
0644) in addition to the normal output, with snapguard_preflight_blocked,
snapguard_preflight_cannot_tell, snapguard_preflight_status, snapguard_section_status,
snapguard_check_status{section,id}, snapguard_check_blocks_backup{section,id},
snapguard_filesystem_clean{device,mountpoint,fstype},
snapguard_filesystem_status{device,mountpoint,fstype},
snapguard_mount_freezable{mountpoint,fstype,verdict},
snapguard_preflight_duration_seconds and snapguard_preflight_last_run_timestamp_seconds.
A file that cannot be written is reported on stderr and does not change the exit code.

Examples:
  snapguard preflight                                   an admin, before a backup
  snapguard preflight --profile systemd -q              ExecCondition= of a backup unit
  snapguard preflight --profile azure -q                Azure's pre-script (0 or 2 = go)
  snapguard preflight --prometheus /var/lib/node_exporter/snapguard.prom
  snapguard preflight --json | jq -r '.blocked_by[]'";

/// Exit codes of `snapguard preflight`, per profile.
pub const EXIT_HELP: &str = "\
Exit status depends on --profile:
  nagios (default), human: the worst status; a blocking item counts as CRITICAL
    0  OK        nothing to report
    1  WARNING   warnings only, nothing blocks
    2  CRITICAL  something blocks the backup, or a critical finding
    3  UNKNOWN   cannot tell: a section could not run or could not read what decides it
                 (and nothing blocks)
  systemd: for ExecCondition= or ExecStartPre= of the backup unit (never 255, which
  ExecCondition= treats as a failure of the unit)
    0  go        nothing blocks the backup (warnings may remain)
    1  blocked   something blocks the backup
    2  cannot tell  a section could not run or could not tell
    Under ExecCondition= any of 1-254 skips the backup quietly (the unit is not failed);
    under ExecStartPre= or a Requires= dependency it fails the backup unit.
  azure: Azure's VMSnapshot pre-script convention (ScriptRunner: 0 and 2 go on, anything
  else fails the pre-script)
    0  healthy   nothing to report
    2  warnings  findings that do not block (go on)
    1  blocked   something blocks the backup, or cannot tell
In every profile, 3 means snapguard could not run at all (bad usage, unreadable
configuration).
A broken pipe on standard output is not an error.";

/// Arguments of `snapguard preflight`.
#[derive(Debug, Args)]
#[command(long_about = HELP, after_long_help = EXIT_HELP)]
pub struct PreflightArgs {
    /// Exit-code convention: nagios (default), human (same codes), systemd, azure.
    #[arg(long, value_enum, value_name = "PROFILE", default_value = "nagios")]
    pub profile: Profile,
    /// Freeze and thaw each mount for real instead of the static verdicts (root; not with
    /// --root).
    #[arg(long)]
    pub freeze_test: bool,
    /// Also check that HOST:PORT can be reached over TCP (repeatable); never by default.
    #[arg(long = "probe", value_name = "HOST:PORT", value_parser = parse_probe)]
    pub probes: Vec<String>,
    /// Time allowed for each --probe as a whole: resolution and every address (100ms to 60s).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_probe_timeout)]
    pub probe_timeout: Duration,
    /// Also write the result as a node_exporter textfile-collector file, atomically.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// `--probe`: `HOST:PORT` with a non-empty host and a port in 1-65535 (`[v6]:PORT` for
/// IPv6), exactly the syntax the E14 check accepts, so that a typo is a usage error and not a
/// failed check that blocks the backup.
pub fn parse_probe(s: &str) -> Result<String, String> {
    envcheck::probe::parse_endpoint(s)
        .map(|_| s.to_string())
        .map_err(|why| format!("'{s}': {why} (expected HOST:PORT)"))
}

/// `--probe-timeout`: a duration from 100 ms to 60 s (a probe is meant to be short).
pub fn parse_probe_timeout(s: &str) -> Result<Duration, String> {
    let d = super::freeze::parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(60) {
        return Err(format!("{s} is out of range: between 100ms and 60s"));
    }
    Ok(d)
}

/// Run every section and package the report.
pub fn run(args: &PreflightArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let root = cli.sys_root();
    let mut problems = Vec::new();
    let scan = match scan::report_of(&[], None, &root, config) {
        Ok((report, scan_problems)) => {
            problems.extend(scan_problems);
            let status = scan::status(&report);
            Ok((report, status))
        }
        Err(e) => Err(format!("{e:#}")),
    };
    let freeze_args = FreezeTestArgs {
        all: false,
        probe_only: !args.freeze_test,
        timeout: None,
        sync_timeout: None,
        no_expedite_rcu: false,
        mounts: Vec::new(),
    };
    let freeze_test =
        freeze_test::report_of(&freeze_args, &root, config).map_err(|e| format!("{e:#}"));
    let selinux = selinux::report_of(&root).map_err(|e| format!("{e:#}"));
    let env_options = EnvOptions {
        probes: args.probes.clone(),
        probe_timeout: args.probe_timeout,
    };
    let environment = envcheck::check_environment(&root, &env_options)
        .into_iter()
        .map(|c| {
            let blocks = envcheck::blocks_backup(&c);
            (c, blocks)
        })
        .collect();
    let report = preflight::assemble(
        Sections {
            scan,
            freeze_test,
            selinux,
            environment,
        },
        args.profile,
        !args.freeze_test,
        start.elapsed().as_secs_f64() * 1000.0,
    );
    if let Some(path) = &args.prometheus {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let text = prometheus::render(&report, now);
        if let Err(e) = textfile::write_atomic(path, text.as_bytes()) {
            problems.push(format!("{e:#}"));
        }
    }
    let exit_code = report.exit_code;
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_preflight(&report, format, out)),
        problems,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_probe;

    #[test]
    fn probes_are_host_and_port() {
        assert!(parse_probe("example.com:443").is_ok());
        assert!(parse_probe("[2001:db8::1]:443").is_ok());
        assert!(parse_probe("example.com").is_err());
        assert!(parse_probe(":443").is_err());
        assert!(parse_probe("example.com:0").is_err());
        assert!(parse_probe("example.com:70000").is_err());
        assert!(parse_probe("::1:22").is_err());
        assert!(parse_probe("[::1]22").is_err());
        assert!(super::parse_probe_timeout("3s").is_ok());
        assert!(super::parse_probe_timeout("0").is_err());
        assert!(super::parse_probe_timeout("2m").is_err());
    }
}
