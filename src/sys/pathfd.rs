//! Directories opened without following any symlink (`openat2` with `RESOLVE_NO_SYMLINKS`,
//! `O_PATH|O_NOFOLLOW|O_DIRECTORY`), and the `/proc/self/fd/N` name that makes mount(2) act on
//! exactly such an fd: a mount point checked once is never resolved by path again. A private
//! clone of one mount (`open_tree`) shows what a mount point covers while it is mounted.

use super::statx::{Placement, placement};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// `OPEN_TREE_CLONE` (linux/mount.h): a detached copy of the mount, not an `O_PATH` fd.
const OPEN_TREE_CLONE: libc::c_uint = 1;

/// Where this process's open fds are named (a magic link per fd).
const PROC_SELF_FD: &str = "/proc/self/fd";

/// A directory held open with `O_PATH`, reached without following a symlink.
#[derive(Debug)]
pub struct DirFd {
    fd: OwnedFd,
}

impl DirFd {
    /// Open the directory `path` (absolute, or relative to `dir`) with `O_PATH|O_NOFOLLOW|
    /// O_DIRECTORY` and `RESOLVE_NO_SYMLINKS`: `ELOOP` when any component is a symlink,
    /// `ENOTDIR` when the last is no directory, `ENOSYS` before Linux 5.6.
    pub fn open(dir: Option<&DirFd>, path: &Path) -> Result<DirFd, Errno> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.fd.as_raw_fd());
        let raw = openat2(dirfd, path, how)?;
        // SAFETY: openat2 returned a new fd that nothing else owns; OwnedFd closes it once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(DirFd { fd })
    }

    /// A private, detached copy of the one mount `path` leads to, at its root (`open_tree`
    /// with `OPEN_TREE_CLONE` and no `AT_RECURSIVE`: no submount is copied). Below it, a mount
    /// point shows the directory its mount covers. Gone when the fd is closed. `ENOSYS` before
    /// Linux 5.2, `EPERM` without `CAP_SYS_ADMIN`.
    pub fn clone_mount(path: &Path) -> Result<DirFd, Errno> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
        let flags = OPEN_TREE_CLONE
            | libc::O_CLOEXEC as libc::c_uint
            | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint
            | libc::AT_NO_AUTOMOUNT as libc::c_uint;
        // SAFETY: `path` is a NUL-terminated string that outlives the call; open_tree reads
        // only it and returns a new fd or -1 with errno set.
        let rc =
            unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
        if rc < 0 {
            return Err(Errno::last());
        }
        let raw = RawFd::try_from(rc).map_err(|_| Errno::EBADF)?;
        // SAFETY: open_tree returned a new fd that nothing else owns; OwnedFd closes it once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(DirFd { fd })
    }

    /// Mount id, device and inode of the directory.
    pub fn placement(&self) -> Result<Placement, Errno> {
        placement(self.fd.as_fd())
    }

    /// A path that names exactly this directory (`/proc/self/fd/N`): valid while `self` lives.
    /// mount(2) given it as the target mounts on this directory, whatever its path is now.
    pub fn proc_path(&self) -> PathBuf {
        Path::new(PROC_SELF_FD).join(self.fd.as_raw_fd().to_string())
    }

    /// The fd.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_refused_anywhere_in_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let opened = match DirFd::open(None, &real.join("sub")) {
            Ok(d) => d,
            Err(Errno::ENOSYS) => return, // before Linux 5.6
            Err(e) => panic!("openat2: {e}"),
        };
        let meta = std::fs::metadata(real.join("sub")).unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(opened.placement().unwrap().ino, meta.ino());
        assert_eq!(
            std::fs::metadata(opened.proc_path()).unwrap().ino(),
            meta.ino()
        );
        // A final symlink: O_NOFOLLOW|O_DIRECTORY answers ENOTDIR before openat2 can say ELOOP.
        assert!(matches!(
            DirFd::open(None, &dir.path().join("link")).unwrap_err(),
            Errno::ELOOP | Errno::ENOTDIR
        ));
        assert_eq!(
            DirFd::open(None, &dir.path().join("link/sub")).unwrap_err(),
            Errno::ELOOP
        );
        let parent = DirFd::open(None, &real).unwrap();
        assert_eq!(
            DirFd::open(Some(&parent), Path::new("sub"))
                .unwrap()
                .placement()
                .unwrap()
                .ino,
            meta.ino()
        );
        std::fs::write(dir.path().join("file"), b"").unwrap();
        assert_eq!(
            DirFd::open(None, &dir.path().join("file")).unwrap_err(),
            Errno::ENOTDIR
        );
    }
}
