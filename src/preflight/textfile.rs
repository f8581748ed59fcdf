//! Atomic replacement of a file (the `--prometheus` textfile): a reader sees the old
//! content or the new, never a half-written file.
//!
//! A temporary file in the same directory (named `.NAME.tmp-PID`, which node_exporter's
//! `*.prom` glob does not match), created exclusively, mode 0644 whatever the umask, written,
//! fsync'd, renamed over NAME; then the directory is fsync'd so the rename survives a crash.

use anyhow::Context as _;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where `path`'s temporary file goes.
fn temp_path(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("'{}' does not name a file", path.display()))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(temp))
}

/// Replace `path` with `bytes` atomically (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = temp_path(path)?;
    // A temporary file left by a killed run of this pid is ours to replace.
    let _ = std::fs::remove_file(&temp);
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&temp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| {
            format!(
                "cannot write '{}' (through '{}')",
                path.display(),
                temp.display()
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_file_is_hidden_next_to_the_target() {
        let t = temp_path(Path::new("/var/lib/node_exporter/snapguard.prom")).unwrap();
        assert_eq!(t.parent(), Some(Path::new("/var/lib/node_exporter")));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".snapguard.prom.tmp-"), "{name}");
        assert!(!name.ends_with(".prom"));
        assert!(temp_path(Path::new("/")).is_err());
    }
}
