//! The configuration file (`/etc/snapguard/snapguard.toml`): a missing default file means
//! defaults; a file given with `--config` must exist; unknown keys are errors, so typos
//! do not silently change behaviour.

use anyhow::Context as _;
use serde::Deserialize;
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[scan]` section.
    #[serde(default)]
    pub scan: ScanConfig,
    /// `[freeze]` section (freeze-test, freeze, thaw).
    #[serde(default)]
    pub freeze: FreezeConfig,
    /// `[repair]` section: the policy for unattended repairs.
    #[serde(default)]
    pub repair: RepairConfig,
}

/// `[repair]`: how far `repair` may go on this machine, whoever runs it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepairConfig {
    /// The highest tier allowed, also the default: `check`, `preen` (default) or `full`.
    #[serde(default)]
    pub tier: Option<crate::repair::Tier>,
    /// Whether `--stop-units` may stop systemd units (default true).
    #[serde(default)]
    pub stop_units: Option<bool>,
    /// Whether `--terminate-holders` may end processes (default true).
    #[serde(default)]
    pub terminate_holders: Option<bool>,
    /// Globs of mount points and devices repair never touches, e.g. `["/srv/db*", "/dev/sdb*"]`.
    #[serde(default)]
    pub never: Vec<String>,
    /// Where metadata backups and e2fsck undo files go (default /var/lib/snapguard/repair).
    #[serde(default)]
    pub backup_dir: Option<std::path::PathBuf>,
    /// Seconds between SIGTERM and SIGKILL for `--terminate-holders` (default 10).
    #[serde(default)]
    pub grace: Option<u64>,
}

/// `[freeze]`: what is never frozen, and the timeouts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// Mount-point globs never frozen, e.g. `["/mnt/resource", "/data/*"]` (`*` stays within
    /// one path component, `**` crosses them).
    #[serde(default)]
    pub skip: Vec<String>,
    /// Filesystem types never frozen, e.g. `["vfat"]`.
    #[serde(default)]
    pub skip_fstypes: Vec<String>,
    /// Self-thaw deadline in seconds (default 60, as Azure's).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Per-hook timeout in seconds (default 30).
    #[serde(default)]
    pub hook_timeout: Option<u64>,
    /// Bound on the syncfs before each freeze, in seconds (default 30).
    #[serde(default)]
    pub sync_timeout: Option<u64>,
    /// Hook directory, which must exist; a relative one is taken from the current directory
    /// (default `/etc/snapguard/hooks.d`, where missing means no hooks).
    #[serde(default)]
    pub hooks_dir: Option<std::path::PathBuf>,
    /// Read `MountsToSkip` from `/etc/azure/vmbackup.conf` (default true).
    #[serde(default)]
    pub azure_mounts_to_skip: Option<bool>,
    /// Expedite RCU grace periods around each FIFREEZE (default true).
    #[serde(default)]
    pub expedite_rcu: Option<bool>,
}

/// `[scan]`: what a scan without TARGET leaves out.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    /// Filesystem types not scanned when no TARGET is given (e.g. `["vfat"]`).
    #[serde(default)]
    pub skip_fstypes: Vec<String>,
    /// Mount points not scanned when no TARGET is given (exact paths).
    #[serde(default)]
    pub skip_mountpoints: Vec<String>,
}

/// A configuration file is small: more is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of a configuration file: opened `O_NONBLOCK` (a FIFO cannot hang the open), judged
/// a regular file on the fd (a FIFO, `/dev/zero` or a directory is refused, not read forever),
/// at most [`MAX_CONFIG_BYTES`].
fn read_config_text(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(Error::new(ErrorKind::InvalidInput, format!("it is {kind}")));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not a configuration file"),
        ));
    }
    Ok(text)
}

impl Config {
    /// Load `path`; when `required` is false a missing file gives the defaults.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Self> {
        let text = match read_config_text(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the configuration '{}'", path.display())
                });
            }
        };
        Self::parse(&text).with_context(|| format!("invalid configuration '{}'", path.display()))
    }

    /// Parse the TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        // toml's messages span several lines; keep the first for a one-line error.
        toml::from_str(text).map_err(|e| {
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_string();
            match e.span() {
                Some(span) => {
                    let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
                    anyhow::anyhow!("line {line}: {message}")
                }
                None => anyhow::anyhow!(message),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_files_give_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(
            Config::load(Path::new("/nonexistent/snapguard.toml"), false).unwrap(),
            Config::default()
        );
        assert!(Config::load(Path::new("/nonexistent/snapguard.toml"), true).is_err());
    }

    #[test]
    fn typos_are_errors_with_a_line_number() {
        let config = Config::parse("[scan]\nskip_fstypes = [\"vfat\"]\n").unwrap();
        assert_eq!(config.scan.skip_fstypes, vec!["vfat"]);
        let err = Config::parse("[scan]\nskip_fstype = [\"vfat\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 2: unknown field `skip_fstype`"),
            "{err}"
        );
    }

    #[test]
    fn freeze_section() {
        let config = Config::parse(
            "[freeze]\nskip = [\"/mnt/resource\", \"/data/*\"]\nskip_fstypes = [\"vfat\"]\ntimeout = 30\n",
        )
        .unwrap();
        assert_eq!(config.freeze.skip, vec!["/mnt/resource", "/data/*"]);
        assert_eq!(config.freeze.timeout, Some(30));
        assert!(Config::parse("[freeze]\nskips = []\n").is_err());
    }
}
