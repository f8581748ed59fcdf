//! Skip rules: mount-point globs and fstype lists from `[freeze]` in the configuration, and
//! `MountsToSkip` from Azure's `/etc/azure/vmbackup.conf` when present. Each match says which
//! rule matched, so the report can explain every skip.

use crate::config::FreezeConfig;
use crate::root::{AZURE_VMBACKUP_CONF, SysRoot};
use anyhow::Context as _;
use globset::{Glob, GlobBuilder, GlobMatcher};
use std::path::Path;

/// The rules in force for one run.
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    globs: Vec<(String, GlobMatcher)>,
    fstypes: Vec<String>,
    azure: Vec<String>,
    azure_source: String,
}

impl SkipRules {
    /// Compile the configuration's globs and read Azure's `MountsToSkip` (unless disabled).
    pub fn load(config: &FreezeConfig, root: &SysRoot) -> anyhow::Result<Self> {
        let mut globs = Vec::new();
        for pattern in &config.skip {
            globs.push((pattern.clone(), compile(pattern)?));
        }
        let azure_path = root.path(AZURE_VMBACKUP_CONF);
        let azure = if config.azure_mounts_to_skip.unwrap_or(true) {
            match std::fs::read_to_string(&azure_path) {
                Ok(text) => azure_mounts_to_skip(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot read '{}'", azure_path.display()));
                }
            }
        } else {
            Vec::new()
        };
        Ok(SkipRules {
            globs,
            fstypes: config.skip_fstypes.clone(),
            azure,
            azure_source: format!("/{AZURE_VMBACKUP_CONF}"),
        })
    }

    /// Why the superblock of type `fstype` mounted at `mount_points` (the one it is listed under
    /// first, then its other mount points) is skipped, or `None`: the fstype rule, or the first
    /// mount point a path rule matches, named in the reason.
    pub fn why_skipped<'a>(
        &self,
        mount_points: impl IntoIterator<Item = &'a Path>,
        fstype: &str,
    ) -> Option<String> {
        if self.fstypes.iter().any(|t| t == fstype) {
            return Some(format!(
                "skipped by configuration: fstype {fstype} is in [freeze] skip_fstypes"
            ));
        }
        mount_points
            .into_iter()
            .find_map(|mp| self.why_path_skipped(mp))
    }

    /// The path rule that matches `mountpoint`, as a reason naming it.
    fn why_path_skipped(&self, mountpoint: &Path) -> Option<String> {
        let shown = mountpoint.to_string_lossy();
        if let Some((pattern, _)) = self.globs.iter().find(|(_, m)| m.is_match(mountpoint)) {
            return Some(format!(
                "skipped by configuration: {shown} matches [freeze] skip = \"{pattern}\""
            ));
        }
        if self.azure.iter().any(|p| p.as_str() == shown) {
            return Some(format!(
                "skipped: {shown} is listed in MountsToSkip of {} (Azure VM backup skips it too)",
                self.azure_source
            ));
        }
        None
    }
}

/// `*` and `?` stay within one path component (`/data/*` is not `/data/a/b`); `**` crosses.
fn compile(pattern: &str) -> anyhow::Result<GlobMatcher> {
    let glob: Glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .with_context(|| format!("invalid [freeze] skip pattern \"{pattern}\""))?;
    Ok(glob.compile_matcher())
}

/// `MountsToSkip` of `[SnapshotThread]` (comma-separated exact paths), as Azure's VMBackup reads
/// it with Python's ConfigParser: keys case-insensitive, `=` or `:`, `#`/`;` comment lines.
pub fn azure_mounts_to_skip(text: &str) -> Vec<String> {
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == "SnapshotThread";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            continue;
        };
        let (key, value) = (line[..split].trim(), line[split + 1..].trim());
        if key.eq_ignore_ascii_case("MountsToSkip") {
            return value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    if p.len() > 1 {
                        p.trim_end_matches('/').to_string()
                    } else {
                        p.to_string()
                    }
                })
                .collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_conf_is_read_like_configparser() {
        let text = "[SnapshotThread]\ntimeout = 60\nmountstoskip = /mnt/resource, /data/ ,\n\
                    [Other]\nMountsToSkip = /nope\n";
        assert_eq!(azure_mounts_to_skip(text), vec!["/mnt/resource", "/data"]);
        assert!(azure_mounts_to_skip("[Other]\nMountsToSkip=/x\n").is_empty());
        assert_eq!(
            azure_mounts_to_skip("# c\n[SnapshotThread]\nMountsToSkip: /a\n"),
            vec!["/a"]
        );
    }

    #[test]
    fn globs_fstypes_and_azure_each_explain_themselves() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/azure")).unwrap();
        std::fs::write(
            dir.path().join("etc/azure/vmbackup.conf"),
            "[SnapshotThread]\nMountsToSkip = /mnt/azure\n",
        )
        .unwrap();
        let config = FreezeConfig {
            skip: vec!["/mnt/resource".into(), "/data/*".into()],
            skip_fstypes: vec!["vfat".into()],
            ..FreezeConfig::default()
        };
        let rules = SkipRules::load(&config, &SysRoot::new(dir.path())).unwrap();
        let why = |p: &str, t: &str| rules.why_skipped([Path::new(p)], t);
        assert!(
            why("/mnt/resource", "ext4")
                .unwrap()
                .contains("/mnt/resource")
        );
        assert!(why("/data/a", "ext4").unwrap().contains("/data/*"));
        assert!(
            why("/data/a/b", "ext4").is_none(),
            "* stays in one component"
        );
        assert!(why("/data", "ext4").is_none());
        assert!(why("/boot/efi", "vfat").unwrap().contains("skip_fstypes"));
        assert!(why("/mnt/azure", "xfs").unwrap().contains("MountsToSkip"));
        assert!(why("/", "ext4").is_none());

        let off = FreezeConfig {
            azure_mounts_to_skip: Some(false),
            ..FreezeConfig::default()
        };
        let rules = SkipRules::load(&off, &SysRoot::new(dir.path())).unwrap();
        assert!(
            rules
                .why_skipped([Path::new("/mnt/azure")], "xfs")
                .is_none()
        );
    }

    #[test]
    fn any_mount_point_of_the_superblock_can_match_and_is_named() {
        let config = FreezeConfig {
            skip: vec!["/data".into()],
            azure_mounts_to_skip: Some(false),
            ..FreezeConfig::default()
        };
        let rules = SkipRules::load(&config, &SysRoot::new("/nonexistent")).unwrap();
        let listed = [Path::new("/srv/x"), Path::new("/mnt/b"), Path::new("/data")];
        assert_eq!(
            rules.why_skipped(listed, "ext4").as_deref(),
            Some("skipped by configuration: /data matches [freeze] skip = \"/data\"")
        );
        assert!(
            rules
                .why_skipped(listed[..2].iter().copied(), "ext4")
                .is_none()
        );
    }

    #[test]
    fn bad_glob_is_an_error() {
        let config = FreezeConfig {
            skip: vec!["/data/[".into()],
            ..FreezeConfig::default()
        };
        let err = SkipRules::load(&config, &SysRoot::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("/data/["), "{err}");
    }
}
