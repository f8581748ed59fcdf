//! The configuration file (`/etc/snapguard/snapguard.toml`): a missing default file means
//! defaults; a file given with `--config` must exist; unknown keys are errors, so typos
//! do not silently change behaviour.

use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    /// When `repair --maintenance` may run: `"Sun 02:00-04:00"` or a list of such windows,
    /// local time (default none: `--maintenance` refuses).
    #[serde(default)]
    pub window: Option<crate::repair::window::Windows>,
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

/// How much a configuration file must be trusted before it is read. The configuration says
/// what `repair` may do and where `freeze` finds the hooks it runs as root, so whoever can
/// write it can make root act: the same rule as the hooks (root-owned, not writable by group or
/// others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The file and every directory from `/` to it (symbolic links walked and checked too):
    /// the default file `/etc/snapguard/snapguard.toml`, whoever runs snapguard (a
    /// misconfigured system file is refused for everyone, with the fix).
    Path,
    /// The file itself, judged on the opened fd: a `--config FILE` when running as root. Its
    /// directories are the caller's choice (the file was named on the command line).
    File,
    /// Not checked: a `--config FILE` when not running as root, which configures only runs
    /// with the caller's own privileges.
    Unchecked,
}

impl Trust {
    /// The rule for a file named with `--config` (`explicit`) or the default one, for a
    /// process with effective uid `euid`.
    pub fn for_file(explicit: bool, euid: u32) -> Trust {
        match (explicit, euid) {
            (false, _) => Trust::Path,
            (true, 0) => Trust::File,
            (true, _) => Trust::Unchecked,
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It does not exist.
    #[error("cannot read the configuration '{}': it does not exist", path.display())]
    Missing { path: PathBuf },
    /// It (or a directory on the way) fails the ownership and mode rule.
    #[error("configuration refused: {why}")]
    Untrusted { why: String },
    /// It cannot be read, or is no regular file.
    #[error("cannot read the configuration '{}': {why}", path.display())]
    Unreadable { path: PathBuf, why: String },
    /// It is no valid configuration: `path:LINE: message`, as compilers write it.
    #[error("invalid configuration {}{}: {}", path.display(),
            why.line.map(|l| format!(":{l}")).unwrap_or_default(), why.message)]
    Invalid { path: PathBuf, why: ParseError },
}

/// A configuration file is small: more is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Open `path` under `trust`: `O_NONBLOCK` (a FIFO cannot hang the open), judged a regular file
/// on the fd. `Ok(None)`: it does not exist.
fn open_config(path: &Path, trust: Trust) -> Result<Option<std::fs::File>, ConfigError> {
    use crate::sys::trusted::{TrustError, TrustedFile, untrusted};
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let unreadable = |why: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let file = if trust == Trust::Path {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        match TrustedFile::open(&absolute) {
            Ok(file) => {
                use std::os::fd::AsFd as _;
                let fd = file
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| unreadable(crate::sys::describe_io(&e)))?;
                std::fs::File::from(fd)
            }
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e @ TrustError::Untrusted { .. }) => {
                return Err(ConfigError::Untrusted { why: e.to_string() });
            }
            Err(TrustError::WrongType { what, .. }) => {
                return Err(unreadable(format!("it is {what}, not a regular file")));
            }
            Err(e) => return Err(unreadable(e.to_string())),
        }
    } else {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(crate::sys::describe_io(&e))),
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| unreadable(crate::sys::describe_io(&e)))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(unreadable(format!("it is {kind}")));
    }
    if trust == Trust::File {
        if let Some(why) = untrusted(meta.uid(), meta.mode() & 0o7777) {
            return Err(ConfigError::Untrusted {
                why: format!("'{}' {why}", path.display()),
            });
        }
    }
    Ok(Some(file))
}

/// The text of an open configuration file, at most [`MAX_CONFIG_BYTES`].
fn read_config_text(file: std::fs::File) -> Result<String, String> {
    use std::io::Read as _;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| crate::sys::describe_io(&e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "larger than {MAX_CONFIG_BYTES} bytes: not a configuration file"
        ));
    }
    Ok(text)
}

impl Config {
    /// Load `path` under `trust`; when `required` is false a missing file gives the defaults.
    pub fn load(path: &Path, required: bool, trust: Trust) -> Result<Self, ConfigError> {
        let Some(file) = open_config(path, trust)? else {
            if required {
                return Err(ConfigError::Missing {
                    path: path.to_path_buf(),
                });
            }
            return Ok(Config::default());
        };
        let text = read_config_text(file).map_err(|why| ConfigError::Unreadable {
            path: path.to_path_buf(),
            why,
        })?;
        Self::parse(&text).map_err(|why| ConfigError::Invalid {
            path: path.to_path_buf(),
            why,
        })
    }

    /// Parse the TOML text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        // toml's messages span several lines; keep the first for a one-line error.
        toml::from_str(text).map_err(|e| ParseError {
            line: e
                .span()
                .map(|span| text.get(..span.start).unwrap_or(text).matches('\n').count() + 1),
            message: e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_string(),
        })
    }
}

/// A TOML or value error, with the 1-based line toml's span points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line of the offending key or value, when toml knows it.
    pub line: Option<usize>,
    /// toml's message, first line only.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_files_give_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(
            Config::load(Path::new("/nonexistent/snapguard.toml"), false, Trust::Path).unwrap(),
            Config::default()
        );
        assert!(Config::load(Path::new("/nonexistent/snapguard.toml"), true, Trust::Path).is_err());
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

    /// The documented example (installed as /etc/snapguard/snapguard.toml.example).
    const EXAMPLE: &str = include_str!("../config/snapguard.toml.example");

    /// The example with its settings uncommented: `#key = value` lines (prose has a space
    /// after `#`).
    fn uncommented_example() -> String {
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The keys `Config` accepts in `[section]` (or the sections, for ""), from serde's own
    /// "unknown field `x`, expected one of `a`, `b`" message: no list to keep in step by hand.
    fn accepted_keys(section: &str) -> Vec<String> {
        let probe = if section.is_empty() {
            "zz_probe = 1\n".to_string()
        } else {
            format!("[{section}]\nzz_probe = 1\n")
        };
        let message = Config::parse(&probe).unwrap_err().message;
        let (_, expected) = message
            .split_once("expected one of ")
            .or_else(|| message.split_once("expected "))
            .unwrap_or_else(|| panic!("no field list in: {message}"));
        // Two fields read "expected `a` or `b`"; more, "expected one of `a`, `b`, `c`".
        expected
            .replace(" or ", ",")
            .split(',')
            .map(|k| k.trim().trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn the_example_documents_every_key_and_parses() {
        let text = uncommented_example();
        let parsed = Config::parse(&text).unwrap_or_else(|e| panic!("the example: {e}"));
        assert!(parsed.repair.window.is_some());
        let doc: toml::Table = text.parse().expect("TOML");
        let sections = accepted_keys("");
        assert_eq!(sections, ["scan", "freeze", "repair"]);
        for section in &sections {
            let table = doc
                .get(section)
                .and_then(|t| t.as_table())
                .unwrap_or_else(|| panic!("the example has no [{section}]"));
            for key in accepted_keys(section) {
                assert!(
                    table.contains_key(&key),
                    "[{section}] {key} is not documented in config/snapguard.toml.example"
                );
            }
        }
    }

    #[test]
    fn the_example_is_the_defaults() {
        // Every value in the example is the default, except the window, which is an example.
        let mut parsed = Config::parse(&uncommented_example()).unwrap();
        parsed.repair.window = None;
        let Config {
            scan,
            freeze,
            repair,
        } = parsed;
        assert_eq!(scan, ScanConfig::default());
        assert!(freeze.skip.is_empty() && freeze.skip_fstypes.is_empty());
        assert_eq!(freeze.timeout, Some(60));
        assert_eq!(freeze.hook_timeout, Some(30));
        assert_eq!(freeze.sync_timeout, Some(30));
        assert_eq!(
            freeze.hooks_dir.as_deref(),
            Some(Path::new("/").join(crate::root::HOOKS_DIR).as_path())
        );
        assert_eq!(freeze.azure_mounts_to_skip, Some(true));
        assert_eq!(freeze.expedite_rcu, Some(true));
        assert_eq!(repair.tier, Some(crate::repair::Tier::Preen));
        assert_eq!(repair.stop_units, Some(true));
        assert_eq!(repair.terminate_holders, Some(true));
        assert!(repair.never.is_empty());
        assert_eq!(repair.grace, Some(10));
    }

    #[test]
    fn bad_values_name_the_line() {
        let e = Config::parse("[freeze]\n\ntimeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Config::parse("[repair]\ntier = \"brutal\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("brutal"), "{e}");
        let e =
            Config::parse("[repair]\nwindow = [\"Sun 02:00-04:00\",\n  \"Mon 9\"]\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: window \"Mon 9\""), "{e}");
        let e = ConfigError::Invalid {
            path: PathBuf::from("/etc/snapguard/snapguard.toml"),
            why: Config::parse("[scan]\nskip = 1\n").unwrap_err(),
        };
        assert!(
            e.to_string().starts_with(
                "invalid configuration /etc/snapguard/snapguard.toml:2: unknown field `skip`"
            ),
            "{e}"
        );
    }

    #[test]
    fn who_must_own_the_file() {
        assert_eq!(Trust::for_file(false, 0), Trust::Path);
        assert_eq!(Trust::for_file(false, 1000), Trust::Path);
        assert_eq!(Trust::for_file(true, 0), Trust::File);
        assert_eq!(Trust::for_file(true, 1000), Trust::Unchecked);
    }
}
