//! Environment checks from Azure's VM-backup troubleshooting guide (`E1`…`E14`): the Linux
//! agent and the VMSnapshot extension, the extension's own configuration, CPU/memory/I/O
//! pressure, duplicate mounts, DHCP on the primary interface, `/var` noexec, and TCP probes of
//! endpoints the user names.
//!
//! Everything is read under [`SysRoot`] (`--root DIR` fixtures work), processes and pressure
//! through the `procfs` crate. A check never says `pass` when it could not look: an input that
//! exists but cannot be read gives [`Check::cannot_read`]. The only network traffic is the TCP
//! connect of each `--probe HOST:PORT` ([`probe`]); without probes there is none.
//!
//! Ids are stable and documented in README.md ("Environment checks"); [`blocks_backup`] says
//! which failures stop a backup.

pub mod agent;
pub mod azure_config;
pub mod dhcp;
pub mod mounts;
pub mod netconf;
pub mod pressure;
pub mod probe;

use crate::report::model::{Check, CheckStatus};
use crate::root::SysRoot;
use std::time::Duration;

/// Default `--probe` connect timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the checks need from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOptions {
    /// `HOST:PORT` endpoints to TCP-connect to (`--probe`); empty: no network traffic at all.
    pub probes: Vec<String>,
    /// Connect timeout of each probe.
    pub probe_timeout: Duration,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            probes: Vec::new(),
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }
}

/// Ids of the checks whose `fail` stops a backup (README "Environment checks").
const BLOCKING_IDS: [&str; 7] = [
    agent::E1,
    agent::E2,
    agent::E4,
    azure_config::E7,
    mounts::E11,
    mounts::E13,
    probe::E14,
];

/// Run every environment check against `root`, in id order (`E14` once per probe).
pub fn check_environment(root: &SysRoot, opts: &EnvOptions) -> Vec<Check> {
    let facts = agent::AgentFacts::read(root);
    let mut checks = vec![
        agent::installed(root, &facts),
        agent::running(root, &facts),
        agent::version(root, &facts),
        agent::lib_dir(root, &facts),
        agent::snapshot_handler(&facts),
        azure_config::vmbackup_conf(root, facts.azure()),
        azure_config::script_plugin_conf(root, facts.azure()),
        pressure::psi(root),
        pressure::memory(root),
        mounts::fstab_duplicates_check(root),
        mounts::stacked_mounts(root),
        dhcp::primary_interface(root),
        mounts::var_exec(root),
    ];
    checks.extend(probe::probes(opts));
    checks
}

/// Whether `check` stops a backup: a `fail` of a check whose failure keeps the agent, the
/// extension or the freeze from working (README "Environment checks", column "blocks").
pub fn blocks_backup(check: &Check) -> bool {
    check.status == CheckStatus::Fail && BLOCKING_IDS.contains(&check.id)
}
