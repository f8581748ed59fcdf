//! LOOP_GET_STATUS64: which file a loop device reads, asked of the device itself, as the
//! `(st_dev, st_ino)` pair that proves a path is that file (what `losetup` compares too), and
//! its flags; LOOP_SET_STATUS64 to turn its autoclear flag off and on again.

use super::SysError;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `LO_NAME_SIZE` of `<linux/loop.h>`.
const LO_NAME_SIZE: usize = 64;
/// `LO_KEY_SIZE` of `<linux/loop.h>`.
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` of `<linux/loop.h>`, field for field.
#[repr(C)]
#[allow(
    dead_code,
    reason = "the kernel's layout: every field must be there even where it is never read"
)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);

/// `LO_FLAGS_AUTOCLEAR` of `<linux/loop.h>`: the device detaches itself at its last close
/// (what `mount -o loop` sets).
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

// <linux/loop.h>: `#define LOOP_GET_STATUS64 0x4C05`, an old-style number (not `_IOR`-encoded)
// that copies a `struct loop_info64` out to the pointer.
nix::ioctl_read_bad!(loop_get_status64_raw, 0x4C05, LoopInfo64);

// <linux/loop.h>: `#define LOOP_SET_STATUS64 0x4C04`, old-style too: it copies a
// `struct loop_info64` in from the pointer.
nix::ioctl_write_ptr_bad!(loop_set_status64_raw, 0x4C04, LoopInfo64);

/// What a bound loop device says about its backing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopStatus {
    /// `st_dev` of the backing file (the filesystem holding it), encoded as stat(2) encodes it.
    pub backing_dev: u64,
    /// `st_ino` of the backing file.
    pub backing_ino: u64,
    /// Where in the file the device starts, in bytes.
    pub offset: u64,
    /// The backing file's name as given when the device was set up, cut to 63 bytes by the
    /// kernel (sysfs `loop/backing_file` has the whole current path; this is a hint only).
    pub file_name: Vec<u8>,
    /// `lo_flags` (`LO_FLAGS_READ_ONLY` 1, `LO_FLAGS_AUTOCLEAR` 4, `LO_FLAGS_PARTSCAN` 8, ...).
    pub flags: u32,
}

impl LoopStatus {
    /// Whether the device detaches itself at its last close.
    pub fn autoclear(&self) -> bool {
        self.flags & LO_FLAGS_AUTOCLEAR != 0
    }
}

/// LOOP_GET_STATUS64 on the loop device node `dev` (`/dev/loop0`: the whole device, not a
/// partition).
///
/// The node is opened `O_RDONLY|O_CLOEXEC|O_NONBLOCK`, never `O_EXCL` and never for writing:
/// opening a loop device that a mount or a device-mapper table holds does not disturb it (an
/// autoclear device is only released on the *last* close, and the holder keeps it open).
/// Errors: the open's (`EACCES` without root, `ENOENT`), or `ENXIO` from the ioctl when no file
/// is bound.
pub fn loop_status(dev: &Path) -> Result<LoopStatus, SysError> {
    let file = open(dev)?;
    let info = get_status(&file, dev)?;
    let name_len = info
        .lo_file_name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(LO_NAME_SIZE);
    Ok(LoopStatus {
        backing_dev: info.lo_device,
        backing_ino: info.lo_inode,
        offset: info.lo_offset,
        file_name: info.lo_file_name[..name_len].to_vec(),
        flags: info.lo_flags,
    })
}

/// Turn the autoclear flag of the loop device node `dev` on or off (LOOP_GET_STATUS64, then
/// LOOP_SET_STATUS64 with the same status and only `LO_FLAGS_AUTOCLEAR` changed: the kernel
/// lets SET_STATUS change autoclear and partscan only, and the offset and size limit given
/// back unchanged cause no resize). Returns whether the flag was set before.
///
/// The node is opened as [`loop_status`] opens it (read-only, never `O_EXCL`: setting the
/// status needs `CAP_SYS_ADMIN` then, and a writable open of a mounted device may be refused).
/// Turning the flag ON with no other opener (no mount) would detach the device at our own close:
/// callers do that only while the filesystem on it is mounted.
/// Errors: the open's, `ENXIO` when no file is bound, `EPERM` without `CAP_SYS_ADMIN`.
pub fn set_autoclear(dev: &Path, on: bool) -> Result<bool, SysError> {
    let file = open(dev)?;
    let mut info = get_status(&file, dev)?;
    let was = info.lo_flags & LO_FLAGS_AUTOCLEAR != 0;
    if was == on {
        return Ok(was);
    }
    if on {
        info.lo_flags |= LO_FLAGS_AUTOCLEAR;
    } else {
        info.lo_flags &= !LO_FLAGS_AUTOCLEAR;
    }
    // SAFETY: the fd is open for the whole call; LOOP_SET_STATUS64 reads exactly one
    // `struct loop_info64` (232 bytes, the layout mirrored and size-checked above) through the
    // pointer, which points at a live, initialised `LoopInfo64` on our stack, and writes
    // nothing back. On a file that is not a loop device the ioctl fails with ENOTTY.
    unsafe { loop_set_status64_raw(file.as_raw_fd(), &info) }.map_err(|errno| SysError::Ioctl {
        op: "LOOP_SET_STATUS64",
        path: dev.to_path_buf(),
        errno,
    })?;
    Ok(was)
}

/// Open a loop device node read-only, never exclusively.
fn open(dev: &Path) -> Result<std::fs::File, SysError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(dev)
        .map_err(|source| SysError::Io {
            op: "cannot open loop device",
            path: dev.to_path_buf(),
            source,
        })
}

/// LOOP_GET_STATUS64 on an open loop device node.
fn get_status(file: &std::fs::File, dev: &Path) -> Result<LoopInfo64, SysError> {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: 0,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; LO_KEY_SIZE],
        lo_init: [0; 2],
    };
    // SAFETY: the fd is open for the whole call; LOOP_GET_STATUS64 writes exactly one
    // `struct loop_info64` (232 bytes, the layout mirrored and size-checked above) through the
    // pointer, which points at a live, aligned, writable `LoopInfo64` on our stack. On a file
    // that is not a loop device the ioctl fails with ENOTTY and writes nothing.
    unsafe { loop_get_status64_raw(file.as_raw_fd(), &mut info) }.map_err(|errno| {
        SysError::Ioctl {
            op: "LOOP_GET_STATUS64",
            path: dev.to_path_buf(),
            errno,
        }
    })?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_loop_device_is_an_ioctl_error() {
        let f = tempfile::NamedTempFile::new().unwrap();
        match loop_status(f.path()) {
            Err(SysError::Ioctl { op, errno, .. }) => {
                assert_eq!(op, "LOOP_GET_STATUS64");
                assert_eq!(errno, nix::errno::Errno::ENOTTY);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            loop_status(Path::new("/nonexistent/loop0")),
            Err(SysError::Io { .. })
        ));
        match set_autoclear(f.path(), false) {
            Err(SysError::Ioctl { op, errno, .. }) => {
                assert_eq!(op, "LOOP_GET_STATUS64");
                assert_eq!(errno, nix::errno::Errno::ENOTTY);
            }
            other => panic!("{other:?}"),
        }
    }
}
