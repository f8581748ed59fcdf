//! FIFREEZE / FITHAW / syncfs on a mount point, with errnos kept and named.
//!
//! The kernel freezes a *superblock*: any fd of any mount of it will do, and a freeze outlives
//! the fd and the process that made it (freeze.md §5.2). What a freezer must therefore keep is
//! its own list of what it froze; this module only issues the calls.

use super::statx::{Placement, placement};
use nix::errno::Errno;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

// <linux/fs.h>: `#define FIFREEZE _IOWR('X', 119, int)` and `#define FITHAW _IOWR('X', 120, int)`.
// The kernel ignores the argument of both (fs/ioctl.c `ioctl_fsfreeze`/`ioctl_fsthaw`).
nix::ioctl_readwrite!(fifreeze_raw, b'X', 119, libc::c_int);
nix::ioctl_readwrite!(fithaw_raw, b'X', 120, libc::c_int);

/// A mount point opened the way freezers open it: `O_RDONLY|O_DIRECTORY`, close-on-exec.
///
/// Opening a directory read-only writes nothing (no atime update on open), so this is safe on
/// a frozen filesystem.
///
/// `placement` says which mount the opened directory is on (statx `STATX_MNT_ID`): callers
/// compare it with mountinfo before trusting the fd (see `freeze::access`).
#[derive(Debug)]
pub struct MountDir {
    file: File,
    /// `st_dev` of the opened directory.
    pub dev: u64,
    /// `st_ino` of the opened directory.
    pub ino: u64,
    /// The mount the fd is on, and its device number.
    pub placement: Placement,
}

impl MountDir {
    /// Open `path` (which must be a directory) and find out which mount it is on.
    pub fn open(path: &Path) -> Result<Self, Errno> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let meta = file
            .metadata()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let placement = placement(file.as_fd())?;
        Ok(MountDir {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            placement,
        })
    }

    /// FIFREEZE: freeze the superblock this directory lives on.
    ///
    /// `EBUSY`: already frozen by userspace (someone else, or a second mount of a superblock
    /// we froze); `EOPNOTSUPP`: the filesystem cannot be frozen; `EPERM`: no CAP_SYS_ADMIN.
    /// It may block for as long as the kernel's own sync of dirty data takes.
    pub fn freeze(&self) -> Result<(), Errno> {
        let mut unused: libc::c_int = 0;
        // SAFETY: the fd is open for the whole call; FIFREEZE is `_IOWR('X', 119, int)` and the
        // kernel neither reads nor writes through the pointer, which in any case points at a
        // valid, aligned c_int that lives across the call.
        unsafe { fifreeze_raw(self.file.as_raw_fd(), &mut unused) }.map(drop)
    }

    /// FITHAW: thaw the superblock. `EINVAL`: it was not frozen (by userspace).
    pub fn thaw(&self) -> Result<(), Errno> {
        thaw_fd(&self.file)
    }

    /// syncfs(2): write the superblock's dirty data and metadata. May block for long on a
    /// hung device; callers run it in a separate process with a deadline.
    pub fn syncfs(&self) -> Result<(), Errno> {
        nix::unistd::syncfs(self.file.as_raw_fd())
    }
}

impl AsFd for MountDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// FITHAW on any fd of the filesystem (used by the guardian, which holds plain `File`s).
pub fn thaw_fd(fd: &impl AsRawFd) -> Result<(), Errno> {
    let mut unused: libc::c_int = 0;
    // SAFETY: as for FIFREEZE: FITHAW is `_IOWR('X', 120, int)`, the fd is open for the call and
    // the kernel does not touch the argument, a valid c_int on our stack.
    unsafe { fithaw_raw(fd.as_raw_fd(), &mut unused) }.map(drop)
}

/// The symbolic name of an errno (`EBUSY`), as admins search for it.
pub fn errno_name(errno: Errno) -> &'static str {
    match errno {
        Errno::EOPNOTSUPP => "EOPNOTSUPP",
        Errno::EBUSY => "EBUSY",
        Errno::EACCES => "EACCES",
        Errno::EPERM => "EPERM",
        Errno::EINVAL => "EINVAL",
        Errno::ENOENT => "ENOENT",
        Errno::ENOTDIR => "ENOTDIR",
        Errno::ENOTTY => "ENOTTY",
        Errno::EIO => "EIO",
        Errno::EROFS => "EROFS",
        Errno::ETIMEDOUT => "ETIMEDOUT",
        Errno::EINTR => "EINTR",
        Errno::ENOSPC => "ENOSPC",
        Errno::ENXIO => "ENXIO",
        Errno::ENODEV => "ENODEV",
        other => other.desc(),
    }
}

/// What an errno means for a freeze or a thaw, in one line.
pub fn errno_meaning(errno: Errno, thawing: bool) -> &'static str {
    match (errno, thawing) {
        (Errno::EOPNOTSUPP, _) => "the filesystem type has no freeze support in this kernel",
        (Errno::EBUSY, false) => {
            "already frozen by someone else (another freezer holds it; it was left as it is)"
        }
        (Errno::EINVAL, true) => "it was not frozen (already thawed by someone else)",
        (Errno::EINVAL, false) => "the kernel refused: no block device behind it (old kernels)",
        (Errno::EACCES, _) => {
            "cannot open the mount point: permission denied (an SELinux or AppArmor policy, or \
             a directory mode)"
        }
        (Errno::EPERM, _) => {
            "not permitted: needs CAP_SYS_ADMIN in the filesystem's user namespace (run as \
             root, outside an unprivileged container)"
        }
        (Errno::ENOTTY, _) => "the ioctl is not implemented for this file",
        (Errno::EIO, _) => "I/O error from the device",
        (Errno::ETIMEDOUT, _) => "did not finish in time",
        _ => "unexpected error",
    }
}

/// `/sys/kernel/rcu_expedited`: while it is 1, synchronize_rcu() uses expedited grace periods.
///
/// FIFREEZE waits for an RCU grace period for each of its three freeze levels (the percpu
/// rw-semaphores of `sb_wait_write`); on a virtual machine with a low tick rate a normal grace
/// period takes 8-25 ms, so an idle FIFREEZE costs 25-75 ms of which two grace periods fall
/// inside the window where writers are blocked. Expedited, the whole FIFREEZE of an idle
/// filesystem takes a fraction of a millisecond. The knob is global: it is turned on just
/// around each FIFREEZE and restored right after (only if it still holds the value set), so
/// the rest of the system sees expedited grace periods (IPIs to every CPU) for milliseconds.
#[derive(Debug)]
pub struct RcuExpedite {
    file: File,
}

/// What [`RcuExpedite::engage`] changed, to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engaged {
    /// Turned on by us: write 0 back afterwards.
    TurnedOn,
    /// Already on (by the admin or another run), or not writable: leave it.
    Untouched,
}

impl RcuExpedite {
    /// Open the knob for reading and writing (root; absent or read-only in containers).
    pub fn open(path: &Path) -> Result<Self, Errno> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(RcuExpedite { file })
    }

    fn read(&self) -> Option<u8> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 8];
        let n = self.file.read_at(&mut buf, 0).ok()?;
        buf[..n].first().copied()
    }

    fn write(&self, value: &[u8]) -> bool {
        use std::os::unix::fs::FileExt;
        self.file.write_at(value, 0).is_ok()
    }

    /// Whether expedited grace periods are on (`None`: unreadable).
    pub fn is_on(&self) -> Option<bool> {
        match self.read()? {
            b'0' => Some(false),
            b'1' => Some(true),
            _ => None,
        }
    }

    /// Turn expedited grace periods off (a run that turned them on died before it could).
    pub fn turn_off(&self) -> bool {
        self.write(b"0\n")
    }

    /// Turn expedited grace periods on unless they are on already. No allocation.
    pub fn engage(&self) -> Engaged {
        if self.read() == Some(b'0') && self.write(b"1\n") {
            Engaged::TurnedOn
        } else {
            Engaged::Untouched
        }
    }

    /// Undo [`Self::engage`]: back to 0 if we turned it on and it is still on.
    pub fn release(&self, engaged: Engaged) {
        if engaged == Engaged::TurnedOn && self.read() == Some(b'1') {
            let _ = self.write(b"0\n");
        }
    }
}
