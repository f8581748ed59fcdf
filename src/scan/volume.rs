//! A volume: a byte range of a source (a whole device or image, or one partition of it).

use super::remedy::Location;
use crate::report::Context;
use crate::sys::SourceFile;
use std::io;

/// A window `[offset, offset + size)` onto an open source.
#[derive(Debug, Clone, Copy)]
pub struct Volume<'a> {
    source: &'a SourceFile,
    offset: u64,
    size: u64,
}

impl<'a> Volume<'a> {
    /// The whole of `source`.
    pub fn whole(source: &'a SourceFile) -> Self {
        Volume {
            source,
            offset: 0,
            size: source.size(),
        }
    }

    /// The first `size` bytes of `source` (a fixed VHD without its footer).
    pub fn prefix(source: &'a SourceFile, size: u64) -> Self {
        Volume {
            source,
            offset: 0,
            size: size.min(source.size()),
        }
    }

    /// A sub-range (a partition), clipped to what the source really has.
    pub fn slice(&self, offset: u64, size: u64) -> Self {
        let start = self
            .offset
            .saturating_add(offset)
            .min(self.offset + self.size);
        let end = start.saturating_add(size).min(self.offset + self.size);
        Volume {
            source: self.source,
            offset: start,
            size: end - start,
        }
    }

    /// Size of the window in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset of the window in the source.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The source it reads from.
    pub fn source(&self) -> &'a SourceFile {
        self.source
    }

    /// Read up to `len` bytes at `offset` inside the window (short at its end).
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let len = len.min(usize::try_from(self.size - offset).unwrap_or(usize::MAX));
        self.source.read_at(self.offset + offset, len)
    }

    /// The holes (byte ranges that read as zeros) of `[from, to)` inside the window, as
    /// offsets inside the window, from at most `max_calls` `lseek` calls; empty for a block
    /// device or where the filesystem cannot tell (see [`SourceFile::holes`]).
    pub fn holes(&self, from: u64, to: u64, max_calls: usize) -> Vec<std::ops::Range<u64>> {
        let to = to.min(self.size);
        if from >= to {
            return Vec::new();
        }
        self.source
            .holes(self.offset + from, self.offset + to, max_calls)
            .holes
            .into_iter()
            .map(|h| h.start - self.offset..h.end - self.offset)
            .collect()
    }

    /// Read filesystem block `block` of `block_size` bytes (whole, or an error).
    pub fn read_block(&self, block: u64, block_size: u64) -> io::Result<Vec<u8>> {
        let offset = block.checked_mul(block_size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("block {block} overflows"),
            )
        })?;
        let len = usize::try_from(block_size).map_err(io::Error::other)?;
        self.read_exact_at(offset, len, "a filesystem block")
    }

    /// Read exactly `len` bytes at `offset`, or fail with `UnexpectedEof` naming `what`.
    pub fn read_exact_at(&self, offset: u64, len: usize, what: &str) -> io::Result<Vec<u8>> {
        let bytes = self.read_at(offset, len)?;
        if bytes.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{what} at byte {offset} lies beyond the end ({} bytes)",
                    self.size
                ),
            ));
        }
        Ok(bytes)
    }
}

/// What every filesystem assessor gets: the bytes, how they were captured (which changes
/// what counts as normal), and where they live (for remedy commands).
#[derive(Debug, Clone)]
pub struct VolumeScan<'a> {
    /// The bytes of the filesystem.
    pub volume: Volume<'a>,
    /// How the bytes were captured.
    pub context: Context,
    /// Where it lives, for remedy commands.
    pub location: Location,
}
