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

impl Config {
    /// Load `path`; when `required` is false a missing file gives the defaults.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
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
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
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
}
