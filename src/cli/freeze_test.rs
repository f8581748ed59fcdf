//! `snapguard freeze-test`: arguments and glue to [`crate::freeze`].

use super::freeze::{
    FREEZE_TEST_EXIT_HELP, load_table, options, parse_sync_timeout, parse_timeout,
};
use super::{Cli, Outcome};
use crate::config::Config;
use crate::freeze::Plan;
use crate::freeze::skip::SkipRules;
use crate::freeze::test_run::{self, TestRun};
use crate::report::{self, FreezeTestReport};
use crate::root::SysRoot;
use crate::sys::process::{SignalWatch, euid};
use anyhow::{Context as _, bail};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `--help` text (also named on the `Command` variant, whose doc comment would replace it).
pub const HELP: &str = "\
Can every mount point be frozen for a file-system-consistent snapshot? (Azure's
\"failed to freeze one or more mount points\" is the most common Linux backup failure.)

For each mount point, a static verdict first, without opening anything: skipped by
configuration ([freeze] skip globs and skip_fstypes in the config file, MountsToSkip in
/etc/azure/vmbackup.conf), pseudo or memory filesystem, remote filesystem, a type without
freeze support, read-only, loop-backed (and where its image lives: it is frozen before
that filesystem). Other mounts of the same superblock (bind mounts, btrfs subvolumes) are
listed as \"duplicate of\" the first and share its verdict.

Then, unless --probe-only, each freezable superblock is really frozen and thawed, one at
a time, through a mount proven (statx mount id) to be the one listed (a mount point covered
by a tmpfs is reached through another mount of the same filesystem, or fails saying so):
the converging pre-freeze syncfs first, then FIFREEZE and FITHAW, with sync_ms,
sync_passes, freeze_ms, frozen_ms and thaw_ms. As for `freeze`, a guardian process issues
both calls (each test freeze in its own --timeout window), records them in
/run/snapguard/freeze-PID.json, and thaws even if snapguard is killed; RCU grace periods
are expedited around FIFREEZE unless --no-expedite-rcu. A filesystem someone else froze
(FIFREEZE gives EBUSY) is reported already-frozen and left frozen. Errors are named
(EOPNOTSUPP, EBUSY, EACCES, EPERM, EINVAL) with their meaning. Nothing is written to any
filesystem; logs are held in memory while a filesystem is frozen. A signal (SIGTERM,
SIGINT, ...) thaws the current test freeze at once and stops the test.

Verdicts: freezable, unsupported, skipped, read-only, already-frozen, failed.

Without MOUNT: every local block-backed filesystem (btrfs included); --all adds pseudo,
tmpfs and remote ones (reported, never opened). A real freeze needs root
(CAP_SYS_ADMIN); --probe-only needs no privileges.

Examples:
  snapguard freeze-test                      every local filesystem, really frozen briefly
  snapguard freeze-test --probe-only --all   static verdicts of every mount, as any user
  snapguard freeze-test /data /var --json";

/// Arguments of `snapguard freeze-test`.
#[derive(Debug, Args)]
#[command(long_about = HELP, after_long_help = FREEZE_TEST_EXIT_HELP)]
pub struct FreezeTestArgs {
    /// Also list pseudo, memory (tmpfs) and remote filesystems (reported, never opened).
    #[arg(long)]
    pub all: bool,
    /// Static verdicts only: nothing is opened or frozen, no privileges needed.
    #[arg(long)]
    pub probe_only: bool,
    /// The guardian thaws a test freeze after this long (e.g. 10s, 500ms) [default: 60s,
    /// or [freeze] timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Time budget of the pre-freeze sync of each mount; 0 skips it [default: 30s, or [freeze]
    /// sync_timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_sync_timeout)]
    pub sync_timeout: Option<Duration>,
    /// Do not expedite RCU grace periods around FIFREEZE [default: expedite, or [freeze]
    /// expedite_rcu].
    #[arg(long)]
    pub no_expedite_rcu: bool,
    /// Mount points to test [default: every local block-backed filesystem].
    #[arg(value_name = "MOUNT")]
    pub mounts: Vec<PathBuf>,
}

/// Run the test and package the report.
pub fn run(args: &FreezeTestArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    let report = report_of(args, &cli.sys_root(), config)?;
    let exit_code = report.summary.worst().exit_code();
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_freeze_test(&report, format, out)),
        problems: Vec::new(),
        exit_code,
    })
}

/// The `freeze-test` report for `args` under `root`, nothing printed (`preflight` embeds
/// it). A real freeze (no `--probe-only`) needs the host's root and CAP_SYS_ADMIN.
pub fn report_of(
    args: &FreezeTestArgs,
    root: &SysRoot,
    config: &Config,
) -> anyhow::Result<FreezeTestReport> {
    if !args.probe_only {
        if !root.is_host() {
            bail!(
                "a real freeze needs the running system's mount table: use --probe-only with --root"
            );
        }
        if euid() != 0 {
            bail!(
                "a real freeze needs root (CAP_SYS_ADMIN); run as root, or use --probe-only for \
                 the static verdicts"
            );
        }
    }
    // Taken through a signalfd: a signal thaws the current test freeze at once and stops the
    // test (the guardian covers SIGKILL).
    let signals = if args.probe_only {
        None
    } else {
        Some(SignalWatch::new().context("cannot block signals")?)
    };
    let table = load_table(root)?;
    let (targets, order) = crate::freeze::prepare(&table, &args.mounts, args.all, root)?;
    let skip = SkipRules::load(&config.freeze, root)?;
    let opts = options(
        config,
        args.timeout,
        args.sync_timeout,
        None,
        None,
        Duration::ZERO,
        args.no_expedite_rcu,
    )?;
    let report = test_run::freeze_test(&TestRun {
        plan: Plan {
            targets: &targets,
            order: &order,
            table: &table,
            skip: &skip,
            opts: &opts,
            root,
        },
        signals: signals.as_ref(),
    })?;
    // A signal taken during the test is consumed here, not delivered when the mask is lifted.
    let _interrupted = signals.as_ref().and_then(|s| s.take());
    drop(signals);
    Ok(report)
}
