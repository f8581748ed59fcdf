//! Partition tables of whole-disk images and devices: MBR (with extended/logical partitions),
//! GPT, and the footer of fixed VHD files.
//!
//! Everything here is pure: byte slices in, structs out. The only reads happen through the
//! caller's `read_sector` callback when walking the chain of extended boot records.
//!
//! Partition numbers follow Linux's naming (`sdaN`): MBR primary slots are 1–4 by slot position,
//! logical partitions are numbered from 5 in chain order, GPT partitions are numbered by their
//! slot in the entry array (1-based), empty slots keep their number unused.

use super::bytes::{be_u32 as be32, be_u64 as be64, le_u32 as le32, le_u64 as le64};
use std::io;

use super::{crc, signature};

/// Which partitioning scheme a partition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// DOS master boot record (including logical partitions).
    Mbr,
    /// GUID partition table.
    Gpt,
}

impl Scheme {
    /// The name used in reports: `"mbr"` or `"gpt"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Mbr => "mbr",
            Scheme::Gpt => "gpt",
        }
    }
}

/// One partition, with its position in bytes from the start of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based partition number, as Linux names `sdaN`.
    pub index: u32,
    /// The table it was found in.
    pub scheme: Scheme,
    /// Byte offset of the first sector from the start of the disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// `"0x83"` style for MBR, the upper-case type GUID for GPT.
    pub type_id: String,
    /// GPT partition name (`None` for MBR and for empty names).
    pub name: Option<String>,
}

impl Partition {
    /// True for an MBR extended-partition container (types 0x05, 0x0F, 0x85), which holds
    /// logical partitions and no filesystem of its own.
    pub fn is_extended(&self) -> bool {
        self.scheme == Scheme::Mbr && matches!(self.type_id.as_str(), "0x05" | "0x0f" | "0x85")
    }
}

/// What sector 0 holds, as far as the MBR parser can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MbrKind {
    /// Not a partition table: no `0x55AA` signature, a filesystem boot sector (FAT, exFAT,
    /// NTFS), or partition entries that are not valid.
    None,
    /// A protective (or hybrid) MBR: some entry has type 0xEE, the disk is GPT-partitioned.
    Protective,
    /// A DOS partition table with its primary partitions (possibly none). Extended containers
    /// are included (see [`Partition::is_extended`]); use [`extended_partitions`] for the
    /// logical partitions inside them.
    Partitions(Vec<Partition>),
}

/// Errors from the partition-table parsers. Offsets are bytes from the start of the disk.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The buffer is shorter than the structure being parsed.
    #[error("{what}: need {need} bytes, got {got}")]
    TooShort {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        got: u64,
    },
    /// The sector size is not a power of two between 512 and 65536.
    #[error("unsupported sector size {0}")]
    BadSectorSize(u64),
    /// No `EFI PART` signature where the GPT header should be.
    #[error("no GPT header signature \"EFI PART\"")]
    NoGptSignature,
    /// A GPT header field is out of range.
    #[error("invalid GPT header: {0}")]
    InvalidGptHeader(&'static str),
    /// The GPT header CRC32 does not match.
    #[error("GPT header CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    GptHeaderCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the header.
        computed: u32,
    },
    /// The GPT partition-entry array CRC32 does not match.
    #[error(
        "GPT partition entries CRC32 mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )]
    GptEntriesCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the entries.
        computed: u32,
    },
    /// A GPT partition entry is inconsistent.
    #[error("invalid GPT partition entry {index}: {reason}")]
    InvalidGptEntry {
        /// 1-based slot number.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// An extended boot record is invalid.
    #[error("invalid extended boot record at byte {offset}: {reason}")]
    InvalidEbr {
        /// Byte offset of the EBR.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The EBR chain loops or is longer than [`MAX_EBRS`].
    #[error("extended boot record chain at byte {offset} loops or exceeds {MAX_EBRS} records")]
    EbrChainTooLong {
        /// Byte offset of the EBR where the walk stopped.
        offset: u64,
    },
    /// Reading an extended boot record failed.
    #[error("reading extended boot record at byte {offset}: {source}")]
    Io {
        /// Byte offset that was being read.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An offset or size computation overflowed.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
}

/// Longest EBR chain followed (the Linux kernel stops after 100 as well).
pub const MAX_EBRS: usize = 100;

/// Largest GPT partition-entry array accepted, in bytes (the kernel's limit is its kmalloc
/// maximum, 4 MiB on common configurations).
pub const MAX_GPT_ENTRIES_BYTES: u64 = 4 << 20;

fn check_sector_size(sector_size: u64) -> Result<(), PartitionError> {
    if sector_size.is_power_of_two() && (512..=65536).contains(&sector_size) {
        Ok(())
    } else {
        Err(PartitionError::BadSectorSize(sector_size))
    }
}

fn too_short(what: &'static str, need: usize, got: usize) -> PartitionError {
    PartitionError::TooShort {
        what,
        need: need as u64,
        got: got as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// MBR
// ---------------------------------------------------------------------------------------------

/// One raw 16-byte MBR/EBR partition entry.
#[derive(Debug, Clone, Copy)]
struct RawEntry {
    status: u8,
    kind: u8,
    start: u32,
    len: u32,
}

fn mbr_entries(sector: &[u8]) -> Option<[RawEntry; 4]> {
    let entry = |i: usize| -> Option<RawEntry> {
        let base = 446 + 16 * i;
        Some(RawEntry {
            status: *sector.get(base)?,
            kind: *sector.get(base + 4)?,
            start: le32(sector, base + 8)?,
            len: le32(sector, base + 12)?,
        })
    };
    Some([entry(0)?, entry(1)?, entry(2)?, entry(3)?])
}

fn has_boot_signature(sector: &[u8]) -> bool {
    sector.get(510..512) == Some(&[0x55, 0xAA][..])
}

fn is_extended_type(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

fn mbr_partition(
    index: u32,
    kind: u8,
    start_lba: u64,
    len: u32,
    sector_size: u64,
) -> Result<Partition, PartitionError> {
    Ok(Partition {
        index,
        scheme: Scheme::Mbr,
        offset: start_lba
            .checked_mul(sector_size)
            .ok_or(PartitionError::Overflow("MBR partition offset"))?,
        size: u64::from(len)
            .checked_mul(sector_size)
            .ok_or(PartitionError::Overflow("MBR partition size"))?,
        type_id: format!("0x{kind:02x}"),
        name: None,
    })
}

/// Parse sector 0 as an MBR with 512-byte sectors. See [`parse_mbr_sized`].
pub fn parse_mbr(sector0: &[u8]) -> Result<MbrKind, PartitionError> {
    parse_mbr_sized(sector0, 512)
}

/// Parse sector 0 as an MBR whose LBAs count `sector_size`-byte sectors (4096 on 4Kn disks).
///
/// Returns [`MbrKind::None`] when it is not a partition table: no `0x55AA` at 510, a FAT,
/// exFAT or NTFS boot sector, a status byte other than 0x00/0x80, a used entry (non-zero type)
/// starting at LBA 0 or with zero length, or two primary entries that overlap. Entries of type
/// 0 are empty slots. Any entry of type 0xEE makes it [`MbrKind::Protective`]. Only the four
/// primary slots are read; see [`extended_partitions`] for logical partitions.
///
/// Errors: a buffer shorter than 512 bytes, or a bad sector size.
pub fn parse_mbr_sized(sector0: &[u8], sector_size: u64) -> Result<MbrKind, PartitionError> {
    check_sector_size(sector_size)?;
    if sector0.len() < 512 {
        return Err(too_short("MBR", 512, sector0.len()));
    }
    if !has_boot_signature(sector0) || signature::is_fs_boot_sector(sector0) {
        return Ok(MbrKind::None);
    }
    let Some(entries) = mbr_entries(sector0) else {
        return Ok(MbrKind::None);
    };
    if entries.iter().any(|e| e.status != 0x00 && e.status != 0x80) {
        return Ok(MbrKind::None);
    }
    if entries.iter().any(|e| e.kind == 0xEE) {
        return Ok(MbrKind::Protective);
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut parts = Vec::new();
    for (slot, e) in (1u32..).zip(entries.iter()) {
        if e.kind == 0 {
            continue;
        }
        if e.start == 0 || e.len == 0 {
            return Ok(MbrKind::None);
        }
        let start = u64::from(e.start);
        let end = start + u64::from(e.len); // < 2^33, cannot overflow
        if ranges.iter().any(|&(s, en)| start < en && s < end) {
            return Ok(MbrKind::None);
        }
        ranges.push((start, end));
        parts.push(mbr_partition(slot, e.kind, start, e.len, sector_size)?);
    }
    Ok(MbrKind::Partitions(parts))
}

/// Walk the EBR chains of the extended partitions among `primaries` (as returned in
/// [`MbrKind::Partitions`]) and return the logical partitions, numbered from 5 in chain order
/// (continuing across several extended partitions, as Linux does).
///
/// `read_sector(offset)` must return at least 512 bytes read at byte `offset` of the disk.
/// In each EBR, non-extended entries are logical partitions (start relative to that EBR) and
/// the first extended entry links to the next EBR (start relative to the extended partition).
/// The chain ends at an EBR without a `0x55AA` signature or without a link.
///
/// Errors: a read error (with its offset), a short read, an EBR outside its extended
/// partition, a logical partition starting at its own EBR, or a chain that loops or is longer
/// than [`MAX_EBRS`].
pub fn extended_partitions(
    primaries: &[Partition],
    sector_size: u64,
    read_sector: &mut dyn FnMut(u64) -> io::Result<Vec<u8>>,
) -> Result<Vec<Partition>, PartitionError> {
    check_sector_size(sector_size)?;
    let mut out = Vec::new();
    let mut next_index: u32 = 5;
    for ext in primaries.iter().filter(|p| p.is_extended()) {
        let ext_start = ext.offset / sector_size;
        let ext_end = ext_start
            .checked_add(ext.size / sector_size)
            .ok_or(PartitionError::Overflow("extended partition end"))?;
        let mut visited: Vec<u64> = Vec::new();
        let mut ebr = ext_start;
        loop {
            let offset = ebr
                .checked_mul(sector_size)
                .ok_or(PartitionError::Overflow("EBR offset"))?;
            if visited.contains(&ebr) || visited.len() >= MAX_EBRS {
                return Err(PartitionError::EbrChainTooLong { offset });
            }
            visited.push(ebr);
            if ebr < ext_start || ebr >= ext_end {
                return Err(PartitionError::InvalidEbr {
                    offset,
                    reason: "outside its extended partition",
                });
            }
            let sector =
                read_sector(offset).map_err(|source| PartitionError::Io { offset, source })?;
            if sector.len() < 512 {
                return Err(too_short("extended boot record", 512, sector.len()));
            }
            if !has_boot_signature(&sector) {
                break;
            }
            let Some(entries) = mbr_entries(&sector) else {
                break;
            };
            let mut link = None;
            for e in entries.iter().filter(|e| e.kind != 0 && e.len != 0) {
                if is_extended_type(e.kind) {
                    if link.is_none() {
                        link = Some(
                            ext_start
                                .checked_add(u64::from(e.start))
                                .ok_or(PartitionError::Overflow("next EBR"))?,
                        );
                    }
                    continue;
                }
                if e.start == 0 {
                    return Err(PartitionError::InvalidEbr {
                        offset,
                        reason: "logical partition starts at its own EBR",
                    });
                }
                let start = ebr
                    .checked_add(u64::from(e.start))
                    .ok_or(PartitionError::Overflow("logical partition start"))?;
                out.push(mbr_partition(
                    next_index,
                    e.kind,
                    start,
                    e.len,
                    sector_size,
                )?);
                next_index = next_index
                    .checked_add(1)
                    .ok_or(PartitionError::Overflow("partition number"))?;
            }
            match link {
                Some(next) => ebr = next,
                None => break,
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// GPT
// ---------------------------------------------------------------------------------------------

/// A validated GPT header (UEFI spec, "GPT Header").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    /// Logical sector size the header was parsed with.
    pub sector_size: u64,
    /// Revision (0x00010000 for 1.0).
    pub revision: u32,
    /// Header size in bytes (92 in practice).
    pub header_size: u32,
    /// LBA of this header (1 for the primary, the last LBA for the backup).
    pub my_lba: u64,
    /// LBA of the other header.
    pub alternate_lba: u64,
    /// First LBA usable by partitions.
    pub first_usable_lba: u64,
    /// Last LBA usable by partitions.
    pub last_usable_lba: u64,
    /// Disk GUID, formatted like a type GUID.
    pub disk_guid: String,
    /// First LBA of the partition-entry array.
    pub partition_entry_lba: u64,
    /// Number of entries in the array.
    pub num_entries: u32,
    /// Size of one entry (128 × 2^n).
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc32: u32,
}

impl GptHeader {
    /// Byte offset of the partition-entry array from the start of the disk.
    pub fn entries_offset(&self) -> Option<u64> {
        self.partition_entry_lba.checked_mul(self.sector_size)
    }

    /// Length in bytes of the partition-entry array (`num_entries * entry_size`).
    pub fn entries_len(&self) -> Option<u64> {
        u64::from(self.num_entries).checked_mul(u64::from(self.entry_size))
    }
}

/// Format a 16-byte GUID as the UEFI spec does: the first three fields little-endian, the last
/// eight bytes in order, upper case (`0FC63DAF-8483-4772-8E79-3D69D8477DE4`).
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        g[3],
        g[2],
        g[1],
        g[0],
        g[5],
        g[4],
        g[7],
        g[6],
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

fn guid_at(bytes: &[u8], off: usize) -> Option<[u8; 16]> {
    bytes.get(off..off.checked_add(16)?)?.try_into().ok()
}

/// Parse a GPT header. `bytes` is the header's sector (LBA 1 for the primary header, i.e.
/// disk bytes from `sector_size`), at least `header_size` long.
///
/// Checks: `EFI PART` signature; 92 <= header_size <= sector_size; the header CRC32 (IEEE)
/// over `header_size` bytes with the CRC field zeroed; first usable <= last usable; entry size a
/// multiple of 128; entry array no larger than [`MAX_GPT_ENTRIES_BYTES`]; entry array LBA not
/// inside the first two sectors. `my_lba` is returned, not checked: the caller knows where it
/// read the header from.
pub fn parse_gpt_header(bytes: &[u8], sector_size: u64) -> Result<GptHeader, PartitionError> {
    check_sector_size(sector_size)?;
    if bytes.len() < 92 {
        return Err(too_short("GPT header", 92, bytes.len()));
    }
    if bytes.get(0..8) != Some(&b"EFI PART"[..]) {
        return Err(PartitionError::NoGptSignature);
    }
    let field32 = |off| le32(bytes, off).ok_or(PartitionError::InvalidGptHeader("truncated"));
    let field64 = |off| le64(bytes, off).ok_or(PartitionError::InvalidGptHeader("truncated"));
    let header_size = field32(12)?;
    if header_size < 92 || u64::from(header_size) > sector_size {
        return Err(PartitionError::InvalidGptHeader(
            "header size out of range (92..=sector size)",
        ));
    }
    let hs = usize::try_from(header_size)
        .map_err(|_| PartitionError::InvalidGptHeader("header size out of range"))?;
    let Some(header) = bytes.get(..hs) else {
        return Err(too_short("GPT header", hs, bytes.len()));
    };
    let stored = field32(16)?;
    let computed = crc::crc32(header.get(..16).unwrap_or_default());
    let computed = crc::crc32_append(computed, &[0u8; 4]);
    let computed = crc::crc32_append(computed, header.get(20..).unwrap_or_default());
    if computed != stored {
        return Err(PartitionError::GptHeaderCrc { stored, computed });
    }
    let first_usable_lba = field64(40)?;
    let last_usable_lba = field64(48)?;
    if first_usable_lba > last_usable_lba {
        return Err(PartitionError::InvalidGptHeader(
            "first usable LBA after last usable LBA",
        ));
    }
    let partition_entry_lba = field64(72)?;
    if partition_entry_lba < 2 {
        return Err(PartitionError::InvalidGptHeader(
            "partition entries overlap the MBR or the header",
        ));
    }
    let num_entries = field32(80)?;
    let entry_size = field32(84)?;
    if entry_size < 128 || entry_size % 128 != 0 {
        return Err(PartitionError::InvalidGptHeader(
            "partition entry size is not a multiple of 128",
        ));
    }
    if u64::from(num_entries).saturating_mul(u64::from(entry_size)) > MAX_GPT_ENTRIES_BYTES {
        return Err(PartitionError::InvalidGptHeader(
            "partition entry array too large",
        ));
    }
    let header = GptHeader {
        sector_size,
        revision: field32(8)?,
        header_size,
        my_lba: field64(24)?,
        alternate_lba: field64(32)?,
        first_usable_lba,
        last_usable_lba,
        disk_guid: format_guid(
            &guid_at(bytes, 56).ok_or(PartitionError::InvalidGptHeader("truncated"))?,
        ),
        partition_entry_lba,
        num_entries,
        entry_size,
        entries_crc32: field32(88)?,
    };
    if header.entries_offset().is_none() {
        return Err(PartitionError::Overflow("GPT entries offset"));
    }
    Ok(header)
}

/// Look for a primary GPT header in the first bytes of a disk, trying 512- and then 4096-byte
/// sectors (the header is at LBA 1). `Ok(None)` when neither place has `EFI PART`; an error
/// when the signature is there but the header is invalid.
pub fn probe_gpt(head: &[u8]) -> Result<Option<GptHeader>, PartitionError> {
    for ss in [512usize, 4096] {
        let Some(sector) = head.get(ss..ss.saturating_mul(2)) else {
            continue;
        };
        if sector.get(..8) == Some(&b"EFI PART"[..]) {
            return parse_gpt_header(sector, ss as u64).map(Some);
        }
    }
    Ok(None)
}

/// Parse the partition-entry array described by `header`. `entries` holds the array (at least
/// `num_entries * entry_size` bytes, read from [`GptHeader::entries_offset`]).
///
/// Verifies the array CRC32, skips entries with an all-zero type GUID, decodes the UTF-16LE
/// name (up to the first NUL; empty names give `None`). Errors on an entry whose last LBA is
/// before its first LBA, and on any overflowing offset.
pub fn parse_gpt_entries(
    header: &GptHeader,
    entries: &[u8],
) -> Result<Vec<Partition>, PartitionError> {
    check_sector_size(header.sector_size)?;
    let len = header
        .entries_len()
        .and_then(|l| usize::try_from(l).ok())
        .ok_or(PartitionError::Overflow("GPT entries length"))?;
    let Some(array) = entries.get(..len) else {
        return Err(too_short("GPT partition entries", len, entries.len()));
    };
    let computed = crc::crc32(array);
    if computed != header.entries_crc32 {
        return Err(PartitionError::GptEntriesCrc {
            stored: header.entries_crc32,
            computed,
        });
    }
    let size = usize::try_from(header.entry_size)
        .map_err(|_| PartitionError::Overflow("GPT entry size"))?;
    if size < 128 {
        return Err(PartitionError::InvalidGptHeader(
            "partition entry size below 128",
        ));
    }
    let mut out = Vec::new();
    for (index, e) in (1u32..).zip(array.chunks_exact(size)) {
        let bad = |reason| PartitionError::InvalidGptEntry { index, reason };
        let type_guid = guid_at(e, 0).ok_or(bad("truncated"))?;
        if type_guid == [0u8; 16] {
            continue;
        }
        let first = le64(e, 32).ok_or(bad("truncated"))?;
        let last = le64(e, 40).ok_or(bad("truncated"))?;
        if last < first {
            return Err(bad("last LBA before first LBA"));
        }
        let sectors = (last - first)
            .checked_add(1)
            .ok_or(PartitionError::Overflow("GPT partition size"))?;
        let units: Vec<u16> = e
            .get(56..128)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16_lossy(&units);
        out.push(Partition {
            index,
            scheme: Scheme::Gpt,
            offset: first
                .checked_mul(header.sector_size)
                .ok_or(PartitionError::Overflow("GPT partition offset"))?,
            size: sectors
                .checked_mul(header.sector_size)
                .ok_or(PartitionError::Overflow("GPT partition size"))?,
            type_id: format_guid(&type_guid),
            name: (!name.is_empty()).then_some(name),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// VHD
// ---------------------------------------------------------------------------------------------

/// The footer of a VHD file (Microsoft "Virtual Hard Disk Image Format Specification").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhdFooter {
    /// Disk type: 2 fixed, 3 dynamic, 4 differencing (see the associated constants).
    pub disk_type: u32,
    /// Current size of the virtual disk in bytes.
    pub current_size: u64,
    /// Whether the footer checksum (one's complement of the byte sum) matches.
    pub checksum_ok: bool,
}

impl VhdFooter {
    /// Disk type of a fixed VHD: the raw disk is the file minus the 512-byte footer.
    pub const FIXED: u32 = 2;
    /// Disk type of a dynamic (sparse) VHD.
    pub const DYNAMIC: u32 = 3;
    /// Disk type of a differencing VHD.
    pub const DIFFERENCING: u32 = 4;

    /// True for a fixed VHD, whose raw disk image is everything before the footer.
    pub fn is_fixed(&self) -> bool {
        self.disk_type == Self::FIXED
    }
}

/// Parse a VHD footer from the last 512 bytes of a file (when `last_512` is longer, its last
/// 512 bytes are used). `None` when the `conectix` cookie is absent or the buffer is short.
///
/// Any disk type is returned; check [`VhdFooter::is_fixed`] and `checksum_ok`. For a fixed VHD
/// the raw disk is the first `file_len - 512` bytes and `current_size` should equal that.
/// Footers of the old 511-byte form are not recognised.
pub fn vhd_fixed_footer(last_512: &[u8]) -> Option<VhdFooter> {
    let start = last_512.len().checked_sub(512)?;
    let f = last_512.get(start..)?;
    if f.get(..8)? != b"conectix" {
        return None;
    }
    let stored = be32(f, 0x40)?;
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(0x40..0x44).contains(i))
        .fold(0u32, |acc, (_, &b)| acc.wrapping_add(u32::from(b)));
    Some(VhdFooter {
        disk_type: be32(f, 0x3C)?,
        current_size: be64(f, 0x30)?,
        checksum_ok: !sum == stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_with_gaps_keeps_slot_numbers() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        // Slot 3 only.
        let e = 446 + 32;
        s[e + 4] = 0x83;
        s[e + 8..e + 12].copy_from_slice(&2048u32.to_le_bytes());
        s[e + 12..e + 16].copy_from_slice(&4096u32.to_le_bytes());
        let MbrKind::Partitions(p) = parse_mbr(&s).unwrap() else {
            panic!()
        };
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].index, 3);
        assert_eq!((p[0].offset, p[0].size), (2048 * 512, 4096 * 512));
        // 4Kn disk: LBAs are 4096-byte sectors.
        let MbrKind::Partitions(p) = parse_mbr_sized(&s, 4096).unwrap() else {
            panic!()
        };
        assert_eq!(p[0].offset, 2048 * 4096);
        // Invalid status byte: not a partition table.
        let mut bad = s.clone();
        bad[e] = 0x12;
        assert_eq!(parse_mbr(&bad).unwrap(), MbrKind::None);
        // Overlapping entries: not a partition table.
        let mut ov = s.clone();
        let e2 = 446;
        ov[e2 + 4] = 0x83;
        ov[e2 + 8..e2 + 12].copy_from_slice(&3000u32.to_le_bytes());
        ov[e2 + 12..e2 + 16].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(parse_mbr(&ov).unwrap(), MbrKind::None);
        // Used entry with zero length or start 0: not a partition table.
        let mut z = s.clone();
        z[e + 12..e + 16].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse_mbr(&z).unwrap(), MbrKind::None);
        // No signature.
        let mut ns = s.clone();
        ns[511] = 0;
        assert_eq!(parse_mbr(&ns).unwrap(), MbrKind::None);
        // Too short.
        assert!(matches!(
            parse_mbr(&s[..511]),
            Err(PartitionError::TooShort { .. })
        ));
    }

    fn ebr(entries: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        for (i, &(kind, start, len)) in entries.iter().enumerate() {
            let e = 446 + 16 * i;
            s[e + 4] = kind;
            s[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            s[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }

    #[test]
    fn ebr_loop_and_errors() {
        let ext = vec![mbr_partition(1, 0x05, 100, 1000, 512).unwrap()];
        // EBR pointing to itself.
        let r = extended_partitions(&ext, 512, &mut |_| Ok(ebr(&[(0x83, 1, 10), (0x05, 0, 50)])));
        assert!(matches!(r, Err(PartitionError::EbrChainTooLong { .. })));
        // EBR pointing outside the extended partition.
        let r = extended_partitions(&ext, 512, &mut |_| {
            Ok(ebr(&[(0x83, 1, 10), (0x05, 5000, 50)]))
        });
        assert!(matches!(r, Err(PartitionError::InvalidEbr { .. })));
        // I/O error carries the offset.
        let r = extended_partitions(&ext, 512, &mut |_| Err(io::Error::other("boom")));
        assert!(matches!(r, Err(PartitionError::Io { offset: 51200, .. })));
        // Short read.
        let r = extended_partitions(&ext, 512, &mut |_| Ok(vec![0u8; 10]));
        assert!(matches!(r, Err(PartitionError::TooShort { .. })));
        // Empty EBR (no signature) ends the chain.
        let r = extended_partitions(&ext, 512, &mut |_| Ok(vec![0u8; 512])).unwrap();
        assert!(r.is_empty());
        // A long but valid chain stops at MAX_EBRS.
        let big = vec![mbr_partition(1, 0x0F, 1, 100_000, 512).unwrap()];
        let r = extended_partitions(&big, 512, &mut |off| {
            let rel = u32::try_from(off / 512 - 1).unwrap();
            Ok(ebr(&[(0x83, 1, 1), (0x05, rel + 2, 2)]))
        });
        assert!(matches!(r, Err(PartitionError::EbrChainTooLong { .. })));
    }

    #[test]
    fn guid_formatting() {
        // Linux filesystem data GUID as stored on disk (mixed endian).
        let raw = [
            0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47,
            0x7D, 0xE4,
        ];
        assert_eq!(format_guid(&raw), "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn mbr_never_panics(mut s in proptest::collection::vec(any::<u8>(), 0..1024), sig in any::<bool>()) {
                if sig && s.len() >= 512 {
                    s[510] = 0x55;
                    s[511] = 0xAA;
                }
                let _ = parse_mbr(&s);
                let _ = parse_mbr_sized(&s, 4096);
            }

            #[test]
            fn ebr_walk_never_panics(
                sectors in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..8),
                start in any::<u32>(), len in any::<u32>(), ss_shift in 0u32..8,
            ) {
                let ss = 512u64 << ss_shift;
                let ext = Partition {
                    index: 1, scheme: Scheme::Mbr,
                    offset: u64::from(start).saturating_mul(ss),
                    size: u64::from(len).saturating_mul(ss),
                    type_id: "0x05".into(), name: None,
                };
                let mut n = 0usize;
                let _ = extended_partitions(&[ext], ss, &mut |_| {
                    n += 1;
                    let mut s = sectors[n % sectors.len()].clone();
                    if s.len() >= 512 { s[510] = 0x55; s[511] = 0xAA; }
                    Ok(s)
                });
            }

            #[test]
            fn gpt_header_never_panics(mut s in proptest::collection::vec(any::<u8>(), 0..1100), ss in prop_oneof![Just(512u64), Just(4096u64), any::<u64>()]) {
                if s.len() >= 8 { s[..8].copy_from_slice(b"EFI PART"); }
                let _ = parse_gpt_header(&s, ss);
                let _ = probe_gpt(&s);
            }

            #[test]
            fn gpt_entries_never_panics(
                entries in proptest::collection::vec(any::<u8>(), 0..2048),
                num in 0u32..20, size_mul in 0u32..4, crc_ok in any::<bool>(), ss in any::<u64>(),
            ) {
                let entry_size = 128 * size_mul;
                let len = (num * entry_size) as usize;
                let crc = if crc_ok && len <= entries.len() { crate::fs::crc::crc32(&entries[..len]) } else { 0 };
                let h = GptHeader {
                    sector_size: if crc_ok { 512 } else { ss }, revision: 0x10000, header_size: 92,
                    my_lba: 1, alternate_lba: 0, first_usable_lba: 34, last_usable_lba: 1000,
                    disk_guid: String::new(), partition_entry_lba: 2, num_entries: num,
                    entry_size, entries_crc32: crc,
                };
                let _ = parse_gpt_entries(&h, &entries);
            }

            #[test]
            fn vhd_never_panics(mut s in proptest::collection::vec(any::<u8>(), 0..1100)) {
                if s.len() >= 512 { let st = s.len() - 512; s[st..st + 8].copy_from_slice(b"conectix"); }
                let _ = vhd_fixed_footer(&s);
            }
        }
    }
}
