//! Read-only access to what a scan reads: block devices and image files, by offset; and the
//! exclusive (`O_EXCL`) open that fences a block device while it is checked or repaired.

use super::{SysError, ioctl};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What kind of file a scan source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A block device node; `rdev` major/minor identify the superblock when mounted.
    Block { major: u32, minor: u32 },
    /// A regular file holding an image.
    Image,
}

/// A block device or image file opened read-only, with its size.
#[derive(Debug)]
pub struct SourceFile {
    file: File,
    path: PathBuf,
    size: u64,
    kind: DeviceKind,
    /// What the first read at offset 0 returned (the identification read, a few KiB): every
    /// later read inside it is served from here. The superblock and the descriptors right
    /// after it are then read from the source once, not once for identification and again
    /// by each parser.
    head: OnceLock<Vec<u8>>,
}

impl SourceFile {
    /// Open `path` read-only. Fails for anything that is not a block device or regular file.
    ///
    /// No `O_EXCL`: scanning a mounted device must not disturb it, and a buffered read sees
    /// the kernel's in-memory superblock, which is the live truth.
    pub fn open(path: &Path) -> Result<Self, SysError> {
        let io_err = |op, source| SysError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        // Open first, with O_NONBLOCK, and judge the type on the fd: a FIFO (or one swapped
        // in after a stat) cannot hang the open, and what is checked is what is read.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io_err("cannot open", e))?;
        let meta = file.metadata().map_err(|e| io_err("cannot stat", e))?;
        let file_type = meta.file_type();
        let kind = if file_type.is_block_device() {
            let rdev = meta.rdev();
            DeviceKind::Block {
                major: nix::sys::stat::major(rdev) as u32,
                minor: nix::sys::stat::minor(rdev) as u32,
            }
        } else if file_type.is_file() {
            DeviceKind::Image
        } else {
            return Err(io_err(
                "not a block device, image file or mount point:",
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        };
        let size = match kind {
            DeviceKind::Block { .. } => {
                ioctl::block_device_size(&file).map_err(|errno| SysError::Ioctl {
                    op: "BLKGETSIZE64",
                    path: path.to_path_buf(),
                    errno,
                })?
            }
            DeviceKind::Image => meta.len(),
        };
        Ok(SourceFile {
            file,
            path: path.to_path_buf(),
            size,
            kind,
            head: OnceLock::new(),
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes (device size, or file length).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Block device or image.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// Read up to `len` bytes at `offset`; shorter only at the end of the source.
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let available = self.size.saturating_sub(offset);
        let len = len.min(usize::try_from(available).unwrap_or(usize::MAX));
        if let Some(head) = self.head.get()
            && let Ok(start) = usize::try_from(offset)
            && let Some(bytes) = start.checked_add(len).and_then(|end| head.get(start..end))
        {
            return Ok(bytes.to_vec());
        }
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let pos = offset + filled as u64;
            match self.file.read_at(&mut buf[filled..], pos) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        if offset == 0 && filled > 0 {
            // Only the first such read is kept (a set `OnceLock` stays as it is).
            let _ = self.head.set(buf.clone());
        }
        Ok(buf)
    }
}

/// Open the block device `path` `O_RDONLY|O_EXCL`: the kernel claims the device for this open
/// file until it is closed, so while it is held the device cannot be mounted, and every other
/// `O_EXCL` open (e2fsck and xfs_repair in repair mode) fails with `EBUSY`; it fails with
/// `EBUSY` itself while the device is mounted or claimed (repair.md §2.1). Anything but a block
/// device is refused (`O_EXCL` without `O_CREAT` means nothing for other files).
///
/// Not a complete guarantee: writers that open without `O_EXCL` (a loop device stacked on it,
/// `fsck.fat`, `dd`) are not stopped.
pub fn open_exclusive(path: &Path) -> Result<std::os::fd::OwnedFd, SysError> {
    let io_err = |op, source| SysError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let is_block = |m: &std::fs::Metadata| m.file_type().is_block_device();
    let not_block = || {
        io_err(
            "not a block device:",
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    };
    // Checked before opening too: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(|e| io_err("cannot stat", e))?;
    if !is_block(&meta) {
        return Err(not_block());
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_err("cannot open exclusively", e))?;
    let meta = file.metadata().map_err(|e| io_err("cannot stat", e))?;
    if !is_block(&meta) {
        return Err(not_block());
    }
    Ok(file.into())
}
