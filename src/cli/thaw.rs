//! `snapguard thaw`: arguments and glue to [`crate::freeze::rescue`].

use super::freeze::FREEZE_TEST_EXIT_HELP;
use super::{Cli, Outcome};
use crate::freeze::rescue;
use crate::report;
use crate::sys::process::euid;
use clap::Args;
use std::path::PathBuf;

/// `--help` text (also named on the `Command` variant, whose doc comment would replace it).
pub const HELP: &str = "\
Rescue: thaw what a snapguard freeze left frozen. Normally nothing is: the guardian
thaws on the deadline, on snapguard's death and on signals. This is for the case where
both processes died (e.g. both SIGKILLed, or the OOM killer).

Without --force, only mount points recorded as frozen by a snapguard run
(/run/snapguard/freeze-PID.json) whose controller and guardian are both gone are thawed,
and only if each is still the same filesystem (st_dev and inode of its root). A freeze by
another tool (fsfreeze, a backup agent) is never touched.

With --force: the records' mounts are thawed even while their run is alive, and every
MOUNT named is thawed even without a record, whoever froze it. Emergency alternative
when nothing else works: `echo j > /proc/sysrq-trigger` thaws every frozen filesystem.

Needs root (CAP_SYS_ADMIN).

Examples:
  snapguard thaw                 thaw what dead snapguard runs froze
  snapguard thaw /data           only /data, if a snapguard run froze it
  snapguard thaw --force /data   thaw /data whoever froze it";

/// Arguments of `snapguard thaw`.
#[derive(Debug, Args)]
#[command(long_about = HELP, after_long_help = FREEZE_TEST_EXIT_HELP)]
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
    let report = rescue::thaw(&cli.sys_root(), &args.mounts, args.force)?;
    let exit_code = report.summary.worst().exit_code();
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_thaw(&report, format, out)),
        problems: Vec::new(),
        exit_code,
    })
}
