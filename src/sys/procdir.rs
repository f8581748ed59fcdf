//! One process's `/proc/PID` directory held open (`O_PATH`), and the cheap questions a holder
//! scan asks it without building a path or allocating per entry: the mount id behind the
//! `cwd`/`root`/`exe` magic links (statx), an open file's `mnt_id:` from `fdinfo/N`, and the
//! inode of a namespace link (`ns/mnt`).
//!
//! Errors are the raw errno: `ENOENT`/`ESRCH` mean the process (or that entry: a kernel thread
//! has no `exe`, a closed fd no `fdinfo/N`) is gone, `EACCES`/`EPERM` that the kernel's ptrace
//! check refused (a non-dumpable process, another user namespace, an LSM, `hidepid=`).

use super::statx::{Placement, mount_id_at, placement_at};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fstatat};
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The longest `fdinfo/N` name: `fdinfo/` + 10 digits + NUL.
const FDINFO_NAME_MAX: usize = 7 + 10 + 1;

/// How much of `fdinfo/N` is read: `pos:`, `flags:` and `mnt_id:` come first and fit in well
/// under 100 bytes; the rest (locks, inotify marks, epoll items) is never needed.
const FDINFO_READ: usize = 256;

/// An open `/proc/PID` directory.
#[derive(Debug)]
pub struct ProcDir {
    fd: OwnedFd,
}

impl ProcDir {
    /// Open `dir` (`<root>/proc/PID`) as an `O_PATH` directory.
    pub fn open(dir: &Path) -> Result<Self, Errno> {
        let raw = openat(
            None,
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: openat just returned this fd, so it is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(ProcDir { fd })
    }

    /// The mount id of what the entry `name` (`c"cwd"`, `c"root"`, `c"exe"`) leads to.
    pub fn mount_id(&self, name: &CStr) -> Result<u64, Errno> {
        mount_id_at(self.fd.as_fd(), name)
    }

    /// Mount id and device of what the entry `name` leads to (one statx).
    pub fn placement(&self, name: &CStr) -> Result<Placement, Errno> {
        placement_at(self.fd.as_fd(), name)
    }

    /// The `mnt_id:` of `fdinfo/<fd>`; `None` when the file has no such line (a fixture, or a
    /// kernel before 3.15).
    pub fn fdinfo_mount_id(&self, fd: u32) -> Result<Option<u64>, Errno> {
        let mut name = [0u8; FDINFO_NAME_MAX];
        let name = fdinfo_name(fd, &mut name);
        let raw = openat(
            Some(self.fd.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        )?;
        // SAFETY: openat just returned this fd, so it is open and owned by nobody else.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        let mut buf = [0u8; FDINFO_READ];
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
            }
        }
        Ok(parse_mnt_id(buf.get(..len).unwrap_or_default()))
    }

    /// The inode number of the entry `name` followed (`c"ns/mnt"`: the namespace's identity).
    pub fn inode(&self, name: &CStr) -> Result<u64, Errno> {
        fstatat(
            Some(self.fd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::empty(),
        )
        .map(|st| st.st_ino)
    }
}

/// Writes `fdinfo/<fd>\0` into `buf` and returns it as a C string.
fn fdinfo_name(fd: u32, buf: &mut [u8; FDINFO_NAME_MAX]) -> &CStr {
    const PREFIX: &[u8] = b"fdinfo/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..count].iter().rev().enumerate() {
        buf[PREFIX.len() + i] = *d;
    }
    let end = PREFIX.len() + count;
    buf[end] = 0;
    // The buffer holds ASCII digits and one terminating NUL at `end`, so this cannot fail;
    // an empty name (never produced) is the harmless fallback.
    CStr::from_bytes_with_nul(&buf[..=end]).unwrap_or_default()
}

/// The value of the `mnt_id:` line of an fdinfo text.
pub fn parse_mnt_id(text: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let value = line.strip_prefix(b"mnt_id:")?;
        let value = std::str::from_utf8(value).ok()?.trim();
        value.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_names_are_formatted_without_allocating() {
        let mut buf = [0u8; FDINFO_NAME_MAX];
        assert_eq!(fdinfo_name(0, &mut buf), c"fdinfo/0");
        assert_eq!(fdinfo_name(1234, &mut buf), c"fdinfo/1234");
        assert_eq!(fdinfo_name(u32::MAX, &mut buf), c"fdinfo/4294967295");
    }

    #[test]
    fn mnt_id_line_is_found() {
        assert_eq!(
            parse_mnt_id(b"pos:\t0\nflags:\t02100000\nmnt_id:\t31\nino:\t12\n"),
            Some(31)
        );
        assert_eq!(parse_mnt_id(b"pos:\t0\nflags:\t0\n"), None);
        assert_eq!(parse_mnt_id(b"mnt_id:\tx\n"), None);
        assert_eq!(parse_mnt_id(b""), None);
    }

    #[test]
    fn our_own_fd_and_cwd_resolve_to_mountinfo_ids() {
        let dir = ProcDir::open(Path::new("/proc/self")).unwrap();
        let file = std::fs::File::open("/proc/self/mountinfo").unwrap();
        let fd = u32::try_from(file.as_raw_fd()).unwrap();
        let by_fdinfo = dir.fdinfo_mount_id(fd).unwrap().unwrap();
        let by_statx = crate::sys::statx::mount_id(file.as_fd()).unwrap();
        assert_eq!(by_fdinfo, by_statx);
        assert!(dir.mount_id(c"cwd").is_ok());
        assert!(dir.inode(c"ns/mnt").unwrap() > 0);
        assert_eq!(dir.fdinfo_mount_id(999_999), Err(Errno::ENOENT));
    }
}
