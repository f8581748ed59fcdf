//! What the controller tells the guardian before anything else: the first line on the
//! guardian's stdin, one JSON document (so the argument list stays short and
//! `/proc/PID/cmdline` shows no mount paths).

use crate::freeze::access::Expected;
use crate::freeze::path_json;
use crate::sys::process::ProcessIdentity;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The largest spec line the guardian accepts.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// One mount the guardian may freeze, by index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecMount {
    /// The mount point the report names.
    #[serde(with = "path_json")]
    pub mountpoint: PathBuf,
    /// The directory to open (the mount point, or another mount of the same superblock).
    #[serde(with = "path_json")]
    pub access: PathBuf,
    /// What the opened directory must be (checked again by the guardian).
    pub expected: Expected,
}

/// A checked hook the guardian may have to run with `thaw`: its display path and the number of
/// the fd (inherited, close-on-exec cleared) it is executed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecHook {
    #[serde(with = "path_json")]
    pub path: PathBuf,
    pub fd: i32,
}

/// Everything the guardian needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `freeze` or `freeze-test` (for the record).
    pub command: String,
    /// The controller, as the record names it.
    pub controller: ProcessIdentity,
    /// Each window's deadline, counted from its first FIFREEZE.
    pub timeout_ms: u64,
    /// After the controller died: CMD gets SIGTERM, then SIGKILL after this.
    pub kill_after_ms: u64,
    /// Timeout of each thaw hook the guardian runs.
    pub hook_timeout_ms: u64,
    /// Where to write the record (none: no record).
    #[serde(with = "path_json::option")]
    pub record: Option<PathBuf>,
    /// The mount (index) whose filesystem holds the record, when it is in the set.
    pub record_mount: Option<usize>,
    pub mounts: Vec<SpecMount>,
    pub hooks: Vec<SpecHook>,
    /// Inherited fd where hook output goes (the controller's stderr); none: /dev/null.
    pub hook_output_fd: Option<i32>,
    /// Turn on expedited RCU grace periods around each FIFREEZE (see
    /// [`crate::sys::freeze::RcuExpedite`]).
    pub expedite_rcu: bool,
}

impl Spec {
    /// The line to send (JSON has no raw newline in it). Fails for a path that is not UTF-8.
    pub fn to_line(&self) -> anyhow::Result<Vec<u8>> {
        let mut line = serde_json::to_vec(self).map_err(|e| {
            anyhow::anyhow!(
                "cannot describe the mounts to the guardian (a path that is not UTF-8?): {e}"
            )
        })?;
        line.push(b'\n');
        Ok(line)
    }

    /// Parse the line (without its newline).
    pub fn from_line(line: &[u8]) -> Option<Self> {
        serde_json::from_slice(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_one_line() {
        let spec = Spec {
            command: "freeze".into(),
            controller: ProcessIdentity {
                pid: 1,
                start_time: 2,
            },
            timeout_ms: 60_000,
            kill_after_ms: 5_000,
            hook_timeout_ms: 30_000,
            record: Some(PathBuf::from("/run/snapguard/freeze-1.json")),
            record_mount: None,
            mounts: vec![SpecMount {
                mountpoint: PathBuf::from("/mnt/new\nline"),
                access: PathBuf::from("/mnt/new\nline"),
                expected: Expected {
                    mount_id: 3,
                    dev: None,
                },
            }],
            hooks: vec![],
            hook_output_fd: Some(2),
            expedite_rcu: true,
        };
        let line = spec.to_line().unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(Spec::from_line(&line[..line.len() - 1]), Some(spec));
    }
}
