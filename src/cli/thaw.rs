//! `snapguard thaw`: arguments and glue to [`crate::freeze::rescue`].

use super::{Cli, Outcome};
use crate::freeze::rescue;
use crate::report::{self, ThawReport};
use crate::sys::process::euid;
use clap::Args;
use std::path::PathBuf;

/// `--help` text (also named on the `Command` variant, whose doc comment would replace it).
pub const HELP: &str = "\
Rescue: thaw what a snapguard freeze left frozen. Normally nothing is: the guardian
thaws on the deadline, on snapguard's death and on signals. This is for the case where
both processes died (e.g. both SIGKILLed, or the OOM killer).

Without --force, only mount points the guardian of a snapguard run recorded as frozen
(/run/snapguard/freeze-PID.json) are thawed, once that run's controller and guardian are
both gone (recognised by pid and start time), and only through a directory proven to be
the very mount that was frozen (its mount id and device). A freeze by another tool
(fsfreeze, a backup agent; FIFREEZE said EBUSY) is never touched. An entry whose guardian
died inside FIFREEZE is reported as maybe frozen and left alone: that FIFREEZE may have
failed because someone else had frozen the filesystem.

With --force: the records' mounts are thawed even while their run is alive, maybe
frozen entries too, and every MOUNT named is thawed even without a record, whoever froze
it. MOUNT must be a mount point (exit 3 otherwise). Emergency alternative
when nothing else works: `echo j > /proc/sysrq-trigger` thaws every frozen filesystem.

Needs root (CAP_SYS_ADMIN).

Examples:
  snapguard thaw                 thaw what dead snapguard runs froze
  snapguard thaw /data           only /data, if a snapguard run froze it
  snapguard thaw --force /data   thaw /data whoever froze it";

/// Exit codes of `snapguard thaw`.
pub const THAW_EXIT_HELP: &str = "\
Exit status:
  0  everything asked for is thawed, or was not frozen (nothing to do is 0 too)
  1  a mount was skipped: not frozen by snapguard, its run still alive, or maybe frozen
     by someone else (the report says which; --force overrides)
  2  a thaw failed: FITHAW returned an error, or the mount could not be opened
  3  could not run: bad usage, not root, MOUNT not a mount point, unreadable
     configuration
A broken pipe on standard output is not an error.";

/// Arguments of `snapguard thaw`.
#[derive(Debug, Args)]
#[command(long_about = HELP, after_long_help = THAW_EXIT_HELP)]
pub struct ThawArgs {
    /// Thaw even without a record, or while the freezing run is alive.
    #[arg(long)]
    pub force: bool,
    /// Mount points to thaw [default: every mount point in a record].
    #[arg(value_name = "MOUNT")]
    pub mounts: Vec<PathBuf>,
}

/// Run the rescue thaw.
pub fn run(args: &ThawArgs, cli: &Cli) -> anyhow::Result<Outcome> {
    if euid() != 0 {
        anyhow::bail!("thaw needs root (CAP_SYS_ADMIN)");
    }
    let root = cli.sys_root();
    let table = super::freeze::load_table(&root)?;
    let (entries, notes) = rescue::thaw(&root, &table, &args.mounts, args.force)?;
    let mut report = ThawReport::new(entries);
    report.messages = notes;
    let exit_code = report.summary.worst().exit_code();
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_thaw(&report, format, out)),
        problems: Vec::new(),
        exit_code,
    })
}
