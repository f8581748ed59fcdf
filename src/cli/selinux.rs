//! `snapguard selinux`: arguments and glue to [`crate::selinux`].

use super::{Cli, Outcome};
use crate::config::Config;
use crate::report;
use crate::selinux::{self, DEFAULT_WINDOW_DAYS, Options};
use clap::Args;
use std::time::{SystemTime, UNIX_EPOCH};

pub const SELINUX_HELP: &str = "\
Azure's backup guide says: on a Linux VM with SELinux, exclude the agent path
/var/lib/waagent from the security policy. This command checks whether that holds and,
if not, prints the exact, least-privileged fix. On a stock targeted policy the agent
already runs unconfined (unconfined_service_t), so the checks look for the cases where it
does not, plus the look-alikes that break extensions the same way.

Checks (ids are stable; status pass, warn, fail or skip):
  S1   kernel support: /sys/kernel/security/lsm, /proc/filesystems, /proc/cmdline
  S2   runtime mode: /sys/fs/selinux/enforce (permissive = warn; disabled = nothing to do)
  S3   /etc/selinux/config against the runtime mode; /.autorelabel pending
  S4   policy type (SELINUXTYPE): mls has no unconfined domain
  S5   the unconfined module in the module store (store-root from semanage.conf; the
       /var/lib/selinux and RHEL 7 /etc/selinux layouts)
  S6   the agent's domain: /proc/<pid>/attr/current of waagent processes
  S7   customised permissive domains (semanage permissive -a)
  S8   security.selinux labels under /var/lib/waagent against file_contexts (+ .local)
  S9   AVC/USER_AVC denials of the agent in the last 7 days: audit.log and rotations
       (auditd.conf), else kernel logs and, on /, journalctl
  S10  the deny_execmem boolean
  S11  local policy modules, and which mention the agent
  L1   /var/lib/waagent on a noexec mount (mountinfo, /etc/fstab)
  L2   fapolicyd running without a rule or trust entry for /var/lib/waagent
  L3   AppArmor confining or denying the agent (profiles, audit and kernel logs)

The first line says whether the agent is excluded and why; then come the failing
checks with their remedies: restorecon for wrong labels, semanage permissive -a <type>
for a confined agent, a reviewed audit2allow module for specific denials. Nothing is ever
changed, and SELinux is never turned off.

Everything is read from files (no libselinux), under --root: point it at a fixture tree or
at an offline disk mounted elsewhere. A root without /proc is treated as offline: the mode
is the one in /etc/selinux/config and the process checks (S6) are skipped.

Needs root to read the module store, /proc/<pid>/attr and the audit log; without it those
checks are skipped, not passed, and listed in the JSON's \"unreadable\". When one that
decides the verdict (S2, S5, S6, S8, S9) could not be read, the verdict is \"cannot tell\"
and the exit 3, unless another check already fails (2) or shows the agent is not excluded.

Examples:
  snapguard selinux                              this machine
  snapguard selinux --root /mnt/rescue           an offline disk mounted at /mnt/rescue
  snapguard selinux --json | jq -r '.checks[] | select(.status == \"fail\") | .remedy'";

/// Exit codes of `snapguard selinux`.
pub const SELINUX_EXIT_HELP: &str = "\
Exit status:
  0  OK        excluded, nothing to fix (checks that do not apply do not count)
  1  WARNING   at least one check warns (permissive mode, a relabel pending, ...)
  2  CRITICAL  at least one check fails: the agent or its extensions are blocked
  3  UNKNOWN   cannot tell: the mode or a check that decides (S5, S6, S8, S9) could not
               be read (run as root); or could not run (--root missing or not a
               directory, bad configuration, bad usage)
CRITICAL beats UNKNOWN beats WARNING beats OK.
A broken pipe on standard output is not an error.";

/// Arguments of `snapguard selinux`.
#[derive(Debug, Args)]
#[command(long_about = SELINUX_HELP, after_long_help = SELINUX_EXIT_HELP)]
pub struct SelinuxArgs {}

/// Run the checks and package the report.
pub fn run(_args: &SelinuxArgs, cli: &Cli, _config: &Config) -> anyhow::Result<Outcome> {
    let report = report_of(&cli.sys_root())?;
    let exit_code = report.status.exit_code();
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_selinux(&report, format, out)),
        problems: Vec::new(),
        exit_code,
    })
}

/// The `selinux` report of `root`, nothing printed (`preflight` embeds it).
pub fn report_of(root: &crate::root::SysRoot) -> anyhow::Result<crate::report::SelinuxReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let options = Options {
        now,
        window_days: DEFAULT_WINDOW_DAYS,
    };
    selinux::run(root, &options)
}
