//! `SysRoot`: where `/proc`, `/sys`, `/etc`, `/var` and `/run` are read from.
//!
//! Every kernel or configuration path the program reads goes through here, so that `--root DIR`
//! can point the whole program at a fixture tree (tests) or at an offline disk mounted
//! elsewhere. Device nodes named on the command line are not re-rooted: they are real.

use std::path::{Path, PathBuf};

/// The mount table of the calling process's mount namespace, relative to the root.
pub const MOUNTINFO: &str = "proc/self/mountinfo";
/// Per-filesystem ext4 attributes (`errors_count`, `first_error_*`, ...).
pub const SYS_FS_EXT4: &str = "sys/fs/ext4";
/// `major:minor` → device symlinks, used to find a device's kernel name.
pub const SYS_DEV_BLOCK: &str = "sys/dev/block";
/// Default configuration file.
pub const DEFAULT_CONFIG: &str = "etc/snapguard/snapguard.toml";
/// Block devices by kernel name (`loopN/loop/backing_file`, `dm-0/slaves/`).
pub const SYS_BLOCK: &str = "sys/block";
/// Where `freeze` keeps its per-run record of what it froze (tmpfs, never a frozen filesystem).
pub const RUN_DIR: &str = "run/snapguard";
/// Freeze/thaw hooks, run in name order with `freeze`, in reverse with `thaw`.
pub const HOOKS_DIR: &str = "etc/snapguard/hooks.d";
/// Azure VM backup's configuration; `[SnapshotThread] MountsToSkip` is honoured.
pub const AZURE_VMBACKUP_CONF: &str = "etc/azure/vmbackup.conf";

/// The directory that stands in for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    base: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot {
            base: PathBuf::from("/"),
        }
    }
}

impl SysRoot {
    /// A root at `base` (`/` for the running system).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        SysRoot { base: base.into() }
    }

    /// The directory standing in for `/`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this is the real root of the running system.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Resolve a root-relative path such as [`MOUNTINFO`].
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        let relative = relative.as_ref();
        let relative = relative.strip_prefix("/").unwrap_or(relative);
        self.base.join(relative)
    }

    /// `/sys/fs/ext4/<kernel_name>/<attribute>` under this root.
    pub fn ext4_attribute(&self, kernel_name: &str, attribute: &str) -> PathBuf {
        self.path(SYS_FS_EXT4).join(kernel_name).join(attribute)
    }

    /// `/sys/dev/block/<major>:<minor>` under this root.
    pub fn dev_block(&self, major: u32, minor: u32) -> PathBuf {
        self.path(SYS_DEV_BLOCK).join(format!("{major}:{minor}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_under_the_base() {
        let root = SysRoot::new("/tmp/fixture");
        assert_eq!(
            root.path(MOUNTINFO),
            Path::new("/tmp/fixture/proc/self/mountinfo")
        );
        assert_eq!(root.path("/etc/x"), Path::new("/tmp/fixture/etc/x"));
        assert_eq!(
            root.ext4_attribute("loop3", "errors_count"),
            Path::new("/tmp/fixture/sys/fs/ext4/loop3/errors_count")
        );
        assert!(SysRoot::default().is_host());
    }
}
