//! Typed wrappers around the block-device ioctls snapguard uses.

use std::os::fd::AsRawFd;

// BLKGETSIZE64 is `_IOR(0x12, 114, size_t)` in <linux/fs.h>: it writes the device size in
// bytes as a u64 into the pointed-to buffer.
nix::ioctl_read!(blkgetsize64_raw, 0x12, 114, u64);

/// Size of the block device behind `fd`, in bytes.
pub fn block_device_size(fd: &impl AsRawFd) -> nix::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: the fd is open for the duration of the call and `size` is a valid, aligned u64
    // the kernel writes exactly 8 bytes into, as BLKGETSIZE64's definition says.
    unsafe { blkgetsize64_raw(fd.as_raw_fd(), &mut size) }?;
    Ok(size)
}
