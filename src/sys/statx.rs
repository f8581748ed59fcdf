//! statx(2) for what stat(2) does not say: the mount a file was reached through (its mount id,
//! the first field of mountinfo; Linux ≥ 5.8). That id is what proves that an opened directory
//! is the mount mountinfo lists (a tmpfs mounted over a mount point, or a remount, gives
//! another one).

use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where an open file lives, as statx tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The mount id (mountinfo's first field).
    pub mount_id: u64,
    /// `major:minor` of the file's device (`st_dev`; for btrfs, the subvolume's anonymous
    /// device, not the superblock's).
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u16,
}

/// The mount id of the mount `fd` was opened through (an `O_PATH` fd will do).
///
/// `EOPNOTSUPP` when the kernel does not report mount ids (before 5.8 `STATX_MNT_ID` is
/// silently left out of the answer).
pub fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    placement(fd).map(|p| p.mount_id)
}

/// Mount id, device, inode and mode of an open fd.
pub fn placement(fd: BorrowedFd<'_>) -> Result<Placement, Errno> {
    let st = statx_mount(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)?;
    Ok(Placement {
        mount_id: st.stx_mnt_id,
        dev_major: st.stx_dev_major,
        dev_minor: st.stx_dev_minor,
        ino: st.stx_ino,
        mode: st.stx_mode,
    })
}

/// The mount id of `path` itself: a final symlink is not followed and an automount point is
/// not triggered. `EINVAL` for a path with a NUL byte.
pub fn mount_id_of_path(path: &Path) -> Result<u64, Errno> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    statx_mount(
        libc::AT_FDCWD,
        &path,
        libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
    )
    .map(|st| st.stx_mnt_id)
}

/// The mount id of what `name` (relative to `dir`) leads to, following a final symlink —
/// including `/proc/PID/cwd`, `root`, `exe` and `fd/N` magic links, which lead to the file
/// itself even when its path is gone (deleted, lazily unmounted) — but never triggering an
/// automount. `EACCES` when the kernel's ptrace check refuses the magic link.
pub fn mount_id_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<u64, Errno> {
    placement_at(dir, name).map(|p| p.mount_id)
}

/// Mount id, device, inode and mode of what `name` (relative to `dir`) leads to, following a
/// final symlink as [`mount_id_at`] does.
pub fn placement_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<Placement, Errno> {
    let st = statx_mount(dir.as_raw_fd(), name, libc::AT_NO_AUTOMOUNT)?;
    Ok(Placement {
        mount_id: st.stx_mnt_id,
        dev_major: st.stx_dev_major,
        dev_minor: st.stx_dev_minor,
        ino: st.stx_ino,
        mode: st.stx_mode,
    })
}

/// statx asking for the mount id (plus the basic stat fields); `EOPNOTSUPP` without a mount id.
fn statx_mount(dirfd: libc::c_int, path: &CStr, flags: libc::c_int) -> Result<libc::statx, Errno> {
    let mut buf = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `dirfd` is either
    // AT_FDCWD or a fd borrowed for the duration of the call; `buf` points at writable,
    // aligned memory of the size of `struct statx`, which is all the kernel writes.
    let rc = unsafe {
        libc::statx(
            dirfd,
            path.as_ptr(),
            flags | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_MNT_ID | libc::STATX_BASIC_STATS,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: `struct statx` is plain integers, so the zeroed buffer was already a valid value,
    // and the kernel filled it in on success.
    let st = unsafe { buf.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Reads the mountinfo of this process (a test may read /proc directly).
    fn mount_ids() -> Vec<u64> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn mount_id_of_a_directory_is_in_mountinfo() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(dir.path()).unwrap();
        let by_fd = match mount_id(file.as_fd()) {
            Ok(id) => id,
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => return, // kernel before 5.8
            Err(e) => panic!("statx: {e}"),
        };
        assert_eq!(mount_id_of_path(dir.path()).unwrap(), by_fd);
        assert!(mount_ids().contains(&by_fd), "{by_fd} not in mountinfo");
        assert_eq!(
            mount_id_of_path(Path::new("/nonexistent/x")),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            mount_id_of_path(Path::new("a\0b")),
            Err(Errno::EINVAL),
            "NUL in a path"
        );
    }
}
