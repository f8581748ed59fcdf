//! Environment checks from Azure's troubleshooting guide (agent, extension, pressure, mounts,
//! DHCP, `/var` noexec, named endpoints).
//!
//! placeholder: replaced by the envcheck branch on merge

use crate::report::model::Check;
use crate::root::SysRoot;
use std::time::Duration;

/// What the environment checks may do beyond reading files.
pub struct EnvOptions {
    /// `HOST:PORT` endpoints to try to reach (`--probe`); none by default.
    pub probes: Vec<String>,
    /// How long one probe may take.
    pub probe_timeout: Duration,
}

/// Every environment check of `root` (placeholder: none).
pub fn check_environment(_root: &SysRoot, _opts: &EnvOptions) -> Vec<Check> {
    Vec::new()
}

/// Whether a failing `check` stops a backup (placeholder: never).
pub fn blocks_backup(_check: &Check) -> bool {
    false
}
