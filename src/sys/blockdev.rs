//! Read-only access to what a scan reads: block devices and image files, by offset; and the
//! exclusive (`O_EXCL`) open that fences a block device while it is checked or repaired.

use super::{SysError, ioctl};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
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
        // Read into uninitialised capacity: zeroing the buffer first (`vec![0; len]`) cost
        // more than the read itself for superblock-sized reads from the page cache.
        let mut buf: Vec<u8> = Vec::with_capacity(len);
        while buf.len() < len {
            let pos = offset + buf.len() as u64;
            let pos = libc::off_t::try_from(pos).map_err(|_| io::ErrorKind::InvalidInput)?;
            let want = len - buf.len();
            let spare = &mut buf.spare_capacity_mut()[..want];
            // SAFETY: pread writes at most `spare.len()` bytes to `spare`, memory owned by
            // `buf` and valid for writes; the descriptor belongs to `self.file`, open for the
            // whole call.
            let n = unsafe {
                libc::pread(
                    self.file.as_raw_fd(),
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    pos,
                )
            };
            let n = match usize::try_from(n) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            };
            // SAFETY: the kernel initialised the first `n` bytes of the spare capacity
            // (n <= spare.len(), so within the allocation).
            unsafe { buf.set_len(buf.len() + n) };
        }
        let filled = buf.len();
        if offset == 0 && filled > 0 {
            // Only the first such read is kept (a set `OnceLock` stays as it is).
            let _ = self.head.set(buf.clone());
        }
        Ok(buf)
    }
}

/// Where a byte range of a source is known to read as zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoleMap {
    /// Holes, ascending and disjoint, each inside the asked range.
    pub holes: Vec<std::ops::Range<u64>>,
    /// How far the map is complete: bytes from the start of the asked range up to here are
    /// either in `holes` or data; nothing is known past it.
    pub mapped_to: u64,
}

impl SourceFile {
    /// The holes of an image file in `[from, to)`, found with `lseek(SEEK_HOLE/SEEK_DATA)`
    /// walking forward from `from`, at most `max_calls` calls. A hole reads as zeros, so a
    /// reader can answer a read inside one without issuing it. Empty (nothing mapped) for a
    /// block device (the kernel reports it all as data), and where the filesystem does not
    /// support the calls or one fails: the caller then reads everything, as before.
    ///
    /// A snapshot of the file as it is now, like every read: a file being written to may
    /// change after it.
    pub fn holes(&self, from: u64, to: u64, max_calls: usize) -> HoleMap {
        let mut map = HoleMap {
            holes: Vec::new(),
            mapped_to: from,
        };
        if self.kind != DeviceKind::Image {
            return map;
        }
        let to = to.min(self.size);
        let fd = self.file.as_raw_fd();
        let seek = |pos: u64, whence| -> Option<u64> {
            let pos = libc::off_t::try_from(pos).ok()?;
            match nix::unistd::lseek(fd, pos, whence) {
                Ok(found) => u64::try_from(found).ok(),
                // SEEK_DATA past the last data: the rest of the file is a hole.
                Err(nix::errno::Errno::ENXIO)
                    if matches!(whence, nix::unistd::Whence::SeekData) =>
                {
                    Some(u64::MAX)
                }
                Err(_) => None,
            }
        };
        let mut pos = from;
        let mut calls = 0;
        // Begin with SEEK_HOLE: a log (or most metadata) starts with data, and one call then
        // maps that first run.
        while pos < to && calls < max_calls {
            calls += 1;
            let Some(hole) = seek(pos, nix::unistd::Whence::SeekHole) else {
                break;
            };
            if hole < pos {
                break; // not what the contract says; trust nothing more
            }
            pos = hole.min(to);
            map.mapped_to = pos;
            if pos >= to || calls >= max_calls {
                break;
            }
            calls += 1;
            let Some(data) = seek(pos, nix::unistd::Whence::SeekData) else {
                break;
            };
            if data <= pos {
                break; // raced with a writer, or a filesystem that reports no holes
            }
            let end = data.min(to);
            map.holes.push(pos..end);
            pos = end;
            map.mapped_to = pos;
        }
        map
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

#[cfg(test)]
mod tests {
    use super::SourceFile;
    use std::io::Write;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_return_the_file_bytes_and_stop_at_its_end() {
        let bytes = pattern(10_000);
        let mut image = tempfile::NamedTempFile::new().unwrap();
        image.write_all(&bytes).unwrap();
        let source = SourceFile::open(image.path()).unwrap();
        assert_eq!(source.read_at(0, 8192).unwrap(), bytes[..8192]);
        // Served from the first read, and read from the file past it.
        assert_eq!(source.read_at(1024, 1024).unwrap(), bytes[1024..2048]);
        assert_eq!(source.read_at(8000, 1000).unwrap(), bytes[8000..9000]);
        assert_eq!(source.read_at(9000, 4096).unwrap(), bytes[9000..]);
        assert!(source.read_at(10_000, 512).unwrap().is_empty());
        assert!(source.read_at(u64::MAX, 512).unwrap().is_empty());
    }

    #[test]
    fn a_file_cut_short_after_the_open_gives_a_short_read() {
        let bytes = pattern(10_000);
        let mut image = tempfile::NamedTempFile::new().unwrap();
        image.write_all(&bytes).unwrap();
        let source = SourceFile::open(image.path()).unwrap();
        image.as_file().set_len(9_000).unwrap();
        assert_eq!(source.read_at(8500, 1000).unwrap(), bytes[8500..9000]);
    }
}
