//! Extended attributes: the `security.selinux` label of a file, read with `lgetxattr` (a
//! symlink's own label, never its target's), through the safe `xattr` crate.

use std::io;
use std::path::{Path, PathBuf};

/// The attribute holding a file's SELinux context.
pub const SELINUX_XATTR: &str = "security.selinux";

/// Why a label could not be read. A file without the attribute is not an error.
#[derive(Debug, thiserror::Error)]
pub enum XattrError {
    /// The filesystem does not support extended attributes (ENOTSUP).
    #[error("'{path}': the filesystem does not support extended attributes")]
    NotSupported { path: PathBuf },
    /// Any other failure, with the errno.
    #[error("reading {name} of '{path}': {}", super::describe_io(source))]
    Io {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The SELinux label of `path` without following a final symlink, with the one trailing
/// NUL that the kernel and libselinux store removed. `Ok(None)`: the file has no label.
pub fn selinux_label(path: &Path) -> Result<Option<String>, XattrError> {
    match ::xattr::get(path, SELINUX_XATTR) {
        Ok(None) => Ok(None),
        Ok(Some(mut value)) => {
            if value.last() == Some(&0) {
                value.pop();
            }
            Ok(Some(String::from_utf8_lossy(&value).into_owned()))
        }
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(XattrError::NotSupported {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(XattrError::Io {
            name: SELINUX_XATTR,
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_io_error_and_keeps_the_path() {
        let err = selinux_label(Path::new("/nonexistent/snapguard-xattr")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/snapguard-xattr"),
            "{err}"
        );
    }

    #[test]
    fn an_absent_label_is_none_also_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        match selinux_label(&plain) {
            Ok(None) => {}
            Ok(Some(l)) => panic!("fresh file has label {l}"),
            // No xattr support at all on this filesystem: nothing more to test.
            Err(XattrError::NotSupported { .. }) => return,
            Err(e) => panic!("{e}"),
        }
        // Reading a set label (needs CAP_SYS_ADMIN to set) is tested in
        // tests/selinux_checks.rs.
        // lgetxattr: a symlink's own (absent) label, not its target's.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert_eq!(selinux_label(&link).unwrap(), None);
    }
}
