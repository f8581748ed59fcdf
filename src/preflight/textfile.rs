//! Atomic replacement of a file (the `--prometheus` textfile): a reader sees the old
//! content or the new, never a half-written file.
//!
//! A temporary file in the same directory (named `.NAME.tmp-PID`, which node_exporter's
//! `*.prom` glob does not match), created exclusively, mode 0644 whatever the umask, written,
//! fsync'd, renamed over NAME; then the directory is fsync'd so the rename survives a crash.
//! A run killed between create and rename (SIGKILL, `TimeoutStartSec=`'s SIGTERM) leaves its
//! temporary file; the next run removes those of processes that no longer exist (unlinking,
//! never following a symlink), so they do not pile up.

use anyhow::Context as _;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The prefix of `path`'s temporary files (`.NAME.tmp-`).
fn temp_prefix(path: &Path) -> anyhow::Result<std::ffi::OsString> {
    let name = path
        .file_name()
        .with_context(|| format!("'{}' does not name a file", path.display()))?;
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(".tmp-");
    Ok(temp)
}

/// Where `path`'s temporary file goes.
fn temp_path(path: &Path) -> anyhow::Result<PathBuf> {
    let mut temp = temp_prefix(path)?;
    temp.push(std::process::id().to_string());
    Ok(path.with_file_name(temp))
}

/// Remove `path`'s temporary files left by processes that no longer exist (best effort: a
/// directory that cannot be listed is left alone). Directories are not touched; a symlink is
/// unlinked, not followed.
fn remove_stale(path: &Path) {
    let Ok(prefix) = temp_prefix(path) else {
        return;
    };
    let prefix = prefix.to_string_lossy().into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|rest| rest.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || crate::sys::process::pid_alive(pid) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Replace `path` with `bytes` atomically (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = temp_path(path)?;
    remove_stale(path);
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
