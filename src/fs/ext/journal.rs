//! The jbd2 journal superblock (big-endian) and the logical→physical block mapping (extent tree or classic block map) needed to find it inside the journal inode.

use super::ExtError;
use super::bytes::{array, be_u32, le_u16, le_u32, u8_at};
use super::superblock::{ChecksumStatus, EXT3_JNL_BACKUP_BLOCKS, Superblock};

/// `JBD2_MAGIC_NUMBER`, big-endian at journal superblock offset 0x00 (`h_magic`).
pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `h_blocktype` of a version 1 journal superblock (`JBD2_SUPERBLOCK_V1`).
pub const JBD2_SUPERBLOCK_V1: u32 = 3;
/// `h_blocktype` of a version 2 journal superblock (`JBD2_SUPERBLOCK_V2`).
pub const JBD2_SUPERBLOCK_V2: u32 = 4;
/// Size of `journal_superblock_t`, the region covered by its checksum.
pub const JOURNAL_SUPERBLOCK_SIZE: usize = 1024;

/// Journal incompat: revoke records (`JBD2_FEATURE_INCOMPAT_REVOKE`).
pub const JBD2_FEATURE_INCOMPAT_REVOKE: u32 = 0x01;
/// Journal incompat: 64-bit block numbers (`JBD2_FEATURE_INCOMPAT_64BIT`).
pub const JBD2_FEATURE_INCOMPAT_64BIT: u32 = 0x02;
/// Journal incompat: asynchronous commit (`JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT`).
pub const JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT: u32 = 0x04;
/// Journal incompat: checksum v2 (`JBD2_FEATURE_INCOMPAT_CSUM_V2`).
pub const JBD2_FEATURE_INCOMPAT_CSUM_V2: u32 = 0x08;
/// Journal incompat: checksum v3 (`JBD2_FEATURE_INCOMPAT_CSUM_V3`).
pub const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
/// Journal incompat: fast commits (`JBD2_FEATURE_INCOMPAT_FAST_COMMIT`).
pub const JBD2_FEATURE_INCOMPAT_FAST_COMMIT: u32 = 0x20;

/// Offset of `s_checksum` in the journal superblock.
const JOURNAL_CHECKSUM_OFFSET: usize = 0xFC;

/// `EXT3_EXT_MAGIC`, the little-endian u16 that starts every extent-tree node (`eh_magic`).
pub const EXTENT_HEADER_MAGIC: u16 = 0xF30A;
/// `EXT4_MAX_EXTENT_DEPTH`: deepest extent tree the kernel accepts.
pub const MAX_EXTENT_DEPTH: u16 = 5;
/// Size of `i_block` (`EXT2_N_BLOCKS` × 4 bytes).
pub const I_BLOCK_SIZE: usize = 60;
/// Size of an extent header, extent or index entry.
const EXTENT_ENTRY_SIZE: usize = 12;
/// ee_len values above this mark an uninitialized extent (`EXT_INIT_MAX_LEN`).
const EXT_INIT_MAX_LEN: u16 = 32768;

/// The fields of `journal_superblock_t` that snapguard uses. All on-disk values are big-endian.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalSuperblock {
    /// `h_blocktype` (0x04): 3 = v1, 4 = v2.
    pub blocktype: u32,
    /// `s_blocksize` (0x0C): journal block size.
    pub blocksize: u32,
    /// `s_maxlen` (0x10): journal length in blocks.
    pub maxlen: u32,
    /// `s_first` (0x14): first block of log information.
    pub first: u32,
    /// `s_sequence` (0x18): first commit ID expected in the log.
    pub sequence: u32,
    /// `s_start` (0x1C): block of the start of the log; 0 = the log is empty.
    pub start: u32,
    /// `s_errno` (0x20, signed): error recorded by a journal abort, e.g. -5 (EIO).
    pub errno: i32,
    /// `s_feature_compat` (0x24).
    pub feature_compat: u32,
    /// `s_feature_incompat` (0x28).
    pub feature_incompat: u32,
    /// `s_feature_ro_compat` (0x2C).
    pub feature_ro_compat: u32,
    /// `s_nr_users` (0x40): filesystems sharing the journal.
    pub nr_users: u32,
    /// `s_checksum_type` (0x50): 4 = CRC-32C.
    pub checksum_type: u8,
    /// `s_checksum` (0xFC).
    pub checksum: u32,
    /// Result of verifying `s_checksum` (only with csum v2/v3).
    pub checksum_status: ChecksumStatus,
}

impl JournalSuperblock {
    /// Parses a jbd2 superblock from the first 1024 bytes of the journal's first block.
    /// Fails on a wrong magic or a blocktype other than 3 or 4; a bad checksum is only
    /// recorded in [`JournalSuperblock::checksum_status`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ExtError> {
        let raw: [u8; JOURNAL_SUPERBLOCK_SIZE] = array(bytes, 0).ok_or(ExtError::Truncated {
            what: "jbd2 superblock",
            needed: JOURNAL_SUPERBLOCK_SIZE,
            got: bytes.len(),
        })?;
        let u32_at = |offset| be_u32(&raw, offset).unwrap_or(0);
        let magic = u32_at(0x00);
        if magic != JBD2_MAGIC {
            return Err(ExtError::BadMagic {
                what: "jbd2 superblock",
                found: magic,
            });
        }
        let blocktype = u32_at(0x04);
        if blocktype != JBD2_SUPERBLOCK_V1 && blocktype != JBD2_SUPERBLOCK_V2 {
            return Err(ExtError::Corrupt {
                what: "jbd2 superblock",
                detail: format!("block type {blocktype} is not a superblock (3 or 4)"),
            });
        }
        let feature_incompat = u32_at(0x28);
        let checksum = u32_at(JOURNAL_CHECKSUM_OFFSET);
        let checksum_status = if feature_incompat
            & (JBD2_FEATURE_INCOMPAT_CSUM_V2 | JBD2_FEATURE_INCOMPAT_CSUM_V3)
            != 0
        {
            let mut zeroed = raw;
            if let Some(field) =
                zeroed.get_mut(JOURNAL_CHECKSUM_OFFSET..JOURNAL_CHECKSUM_OFFSET + 4)
            {
                field.fill(0);
            }
            let computed = !crate::fs::crc::crc32c(&zeroed);
            if computed == checksum {
                ChecksumStatus::Valid
            } else {
                ChecksumStatus::Invalid {
                    stored: checksum,
                    computed,
                }
            }
        } else {
            ChecksumStatus::Absent
        };
        Ok(JournalSuperblock {
            blocktype,
            blocksize: u32_at(0x0C),
            maxlen: u32_at(0x10),
            first: u32_at(0x14),
            sequence: u32_at(0x18),
            start: u32_at(0x1C),
            errno: i32::from_be_bytes(u32_at(0x20).to_be_bytes()),
            feature_compat: u32_at(0x24),
            feature_incompat,
            feature_ro_compat: u32_at(0x2C),
            nr_users: u32_at(0x40),
            checksum_type: u8_at(&raw, 0x50).unwrap_or(0),
            checksum,
            checksum_status,
        })
    }
}

/// The journal inode's `i_block` as its raw 60 little-endian bytes, copied from
/// `s_jnl_blocks[0..15]` (superblock 0x10C), when `s_jnl_backup_type` (0xFD) is
/// [`EXT3_JNL_BACKUP_BLOCKS`]; `None` otherwise (then read inode `s_journal_inum`).
pub fn journal_inode_blocks(sb: &Superblock) -> Option<[u8; 60]> {
    if sb.jnl_backup_type != EXT3_JNL_BACKUP_BLOCKS {
        return None;
    }
    let mut i_block = [0u8; I_BLOCK_SIZE];
    for (chunk, word) in i_block.chunks_exact_mut(4).zip(sb.jnl_blocks.iter()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(i_block)
}

/// The journal inode's size in bytes from the `s_jnl_blocks` backup (i_size_high in
/// word 15, i_size in word 16), when `s_jnl_backup_type` is [`EXT3_JNL_BACKUP_BLOCKS`].
pub fn journal_inode_size(sb: &Superblock) -> Option<u64> {
    if sb.jnl_backup_type != EXT3_JNL_BACKUP_BLOCKS {
        return None;
    }
    Some((u64::from(sb.jnl_blocks[15]) << 32) | u64::from(sb.jnl_blocks[16]))
}

/// How `i_block` is to be interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLayout {
    /// Extent tree when `i_block` starts with a valid extent header, else block map.
    Auto,
    /// Extent tree (inode flag `EXT4_EXTENTS_FL`).
    Extents,
    /// Classic direct/indirect block map.
    BlockMap,
}

/// Maps logical block `logical` of an inode to its physical block, reading any index or
/// indirect block it needs through `read_block` (physical block number → block bytes).
/// Extent trees (header 0xF30A, depth ≤ 5) and the classic block map (direct 0..11,
/// indirect 12, double 13, triple 14) are both handled; an `i_block` that starts with a
/// valid extent header is taken as an extent tree. `Ok(None)` is a hole. An
/// uninitialized extent still maps to its physical block.
pub fn map_logical_block(
    i_block: &[u8; 60],
    logical: u64,
    block_size: u64,
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> Result<Option<u64>, ExtError> {
    map_logical_block_with(i_block, logical, block_size, BlockLayout::Auto, read_block)
}

/// [`map_logical_block`] with the layout chosen by the caller (e.g. from the inode's
/// `EXT4_EXTENTS_FL`), which avoids mistaking a block map whose first pointer happens to
/// look like an extent header.
pub fn map_logical_block_with(
    i_block: &[u8; 60],
    logical: u64,
    block_size: u64,
    layout: BlockLayout,
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> Result<Option<u64>, ExtError> {
    if !block_size.is_power_of_two() || !(1024..=65536).contains(&block_size) {
        return Err(ExtError::Unsupported {
            what: "block mapping",
            detail: format!("block size {block_size}"),
        });
    }
    let use_extents = match layout {
        BlockLayout::Extents => true,
        BlockLayout::BlockMap => false,
        BlockLayout::Auto => verify_extent_header(i_block, None).is_ok(),
    };
    if use_extents {
        map_extent_tree(i_block, logical, block_size, read_block)
    } else {
        map_block_map(i_block, logical, block_size, read_block)
    }
}

/// A checked extent-tree node header (`struct ext3_extent_header`).
pub(crate) struct ExtentHeader {
    pub(crate) entries: usize,
    pub(crate) depth: u16,
}

/// Checks a node like `ext2fs_extent_header_verify`: magic, eh_max fits the node (and is
/// not more than 2 below what fits), eh_entries ≤ eh_max, depth ≤ 5, and the depth
/// expected from the parent when there is one.
pub(crate) fn verify_extent_header(
    node: &[u8],
    expected_depth: Option<u16>,
) -> Result<ExtentHeader, ExtError> {
    let corrupt = |detail: String| ExtError::Corrupt {
        what: "extent tree node",
        detail,
    };
    let header = |offset| {
        le_u16(node, offset).ok_or(ExtError::Truncated {
            what: "extent tree node",
            needed: EXTENT_ENTRY_SIZE,
            got: node.len(),
        })
    };
    let magic = header(0)?;
    if magic != EXTENT_HEADER_MAGIC {
        return Err(ExtError::BadMagic {
            what: "extent tree node",
            found: u32::from(magic),
        });
    }
    let entries = usize::from(header(2)?);
    let max = usize::from(header(4)?);
    let depth = header(6)?;
    let capacity = node.len().saturating_sub(EXTENT_ENTRY_SIZE) / EXTENT_ENTRY_SIZE;
    if max > capacity || max < capacity.saturating_sub(2) {
        return Err(corrupt(format!(
            "eh_max {max} does not fit a node with room for {capacity} entries"
        )));
    }
    if entries > max {
        return Err(corrupt(format!(
            "eh_entries {entries} exceeds eh_max {max}"
        )));
    }
    if depth > MAX_EXTENT_DEPTH {
        return Err(corrupt(format!("depth {depth} exceeds {MAX_EXTENT_DEPTH}")));
    }
    if let Some(expected) = expected_depth.filter(|&expected| expected != depth) {
        return Err(corrupt(format!("depth {depth}, expected {expected}")));
    }
    Ok(ExtentHeader { entries, depth })
}

/// Reads one block through the callback, keeping at most `block_size` bytes.
pub(crate) fn fetch_block(
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
    block: u64,
    block_size: u64,
    what: &'static str,
) -> Result<Vec<u8>, ExtError> {
    let mut data = read_block(block).map_err(|source| ExtError::Io {
        what,
        block,
        source,
    })?;
    let limit = usize::try_from(block_size).unwrap_or(usize::MAX);
    data.truncate(limit);
    Ok(data)
}

fn map_extent_tree(
    i_block: &[u8; 60],
    logical: u64,
    block_size: u64,
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> Result<Option<u64>, ExtError> {
    // Extent logical block numbers are 32 bits: anything beyond cannot be mapped.
    let Ok(logical) = u32::try_from(logical) else {
        return Ok(None);
    };
    let mut node: Vec<u8> = i_block.to_vec();
    let mut expected_depth: Option<u16> = None;
    // At most MAX_EXTENT_DEPTH index levels plus the leaf.
    for _ in 0..=MAX_EXTENT_DEPTH {
        let header = verify_extent_header(&node, expected_depth)?;
        // The last entry whose first logical block is ≤ the one wanted.
        let mut chosen: Option<usize> = None;
        for index in 0..header.entries {
            let offset = EXTENT_ENTRY_SIZE * (index + 1);
            let first = le_u32(&node, offset).ok_or(ExtError::Truncated {
                what: "extent tree node",
                needed: offset + EXTENT_ENTRY_SIZE,
                got: node.len(),
            })?;
            if first > logical {
                break;
            }
            chosen = Some(offset);
        }
        let Some(offset) = chosen else {
            return Ok(None);
        };
        let entry: [u8; EXTENT_ENTRY_SIZE] = array(&node, offset).ok_or(ExtError::Truncated {
            what: "extent tree node",
            needed: offset + EXTENT_ENTRY_SIZE,
            got: node.len(),
        })?;
        let first = le_u32(&entry, 0).unwrap_or(0);
        if header.depth == 0 {
            // struct ext3_extent: ee_block, ee_len, ee_start_hi, ee_start_lo.
            let raw_len = le_u16(&entry, 4).unwrap_or(0);
            let len = if raw_len > EXT_INIT_MAX_LEN {
                raw_len - EXT_INIT_MAX_LEN
            } else {
                raw_len
            };
            let start_hi = u64::from(le_u16(&entry, 6).unwrap_or(0));
            let start_lo = u64::from(le_u32(&entry, 8).unwrap_or(0));
            let within = u64::from(logical - first);
            if within >= u64::from(len) {
                return Ok(None);
            }
            let physical =
                ((start_hi << 32) | start_lo)
                    .checked_add(within)
                    .ok_or(ExtError::Corrupt {
                        what: "extent",
                        detail: "physical block overflows".to_owned(),
                    })?;
            return Ok(Some(physical));
        }
        // struct ext3_extent_idx: ei_block, ei_leaf_lo, ei_leaf_hi.
        let leaf_lo = u64::from(le_u32(&entry, 4).unwrap_or(0));
        let leaf_hi = u64::from(le_u16(&entry, 8).unwrap_or(0));
        let child = (leaf_hi << 32) | leaf_lo;
        if child == 0 {
            return Err(ExtError::Corrupt {
                what: "extent index",
                detail: "points to block 0".to_owned(),
            });
        }
        expected_depth = Some(header.depth - 1);
        node = fetch_block(read_block, child, block_size, "extent tree block")?;
    }
    Err(ExtError::Corrupt {
        what: "extent tree",
        detail: format!("deeper than {MAX_EXTENT_DEPTH} levels"),
    })
}

fn map_block_map(
    i_block: &[u8; 60],
    logical: u64,
    block_size: u64,
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> Result<Option<u64>, ExtError> {
    const DIRECT: u64 = 12;
    let per_block = block_size / 4;
    let pointer_at = |words: &[u8], index: u64| -> Result<u32, ExtError> {
        let offset = usize::try_from(index)
            .ok()
            .and_then(|index| index.checked_mul(4))
            .ok_or(ExtError::Corrupt {
                what: "block map",
                detail: "pointer index overflows".to_owned(),
            })?;
        le_u32(words, offset).ok_or(ExtError::Truncated {
            what: "indirect block",
            needed: offset.saturating_add(4),
            got: words.len(),
        })
    };
    if logical < DIRECT {
        let block = pointer_at(i_block, logical)?;
        return Ok((block != 0).then_some(u64::from(block)));
    }
    // Work out which tree (single, double, triple indirect) holds the block, and the
    // index of the block within that tree.
    let mut remaining = logical - DIRECT;
    let mut span = per_block;
    let mut levels = 1u32;
    let mut root_slot = DIRECT;
    loop {
        if remaining < span {
            break;
        }
        remaining -= span;
        levels += 1;
        root_slot += 1;
        if levels > 3 {
            return Ok(None);
        }
        span = match span.checked_mul(per_block) {
            Some(span) => span,
            None => return Ok(None),
        };
    }
    let mut block = u64::from(pointer_at(i_block, root_slot)?);
    // Walk down: at each level, the index is the digit of `remaining` in base per_block.
    for level in (0..levels).rev() {
        if block == 0 {
            return Ok(None);
        }
        let divisor = per_block.checked_pow(level).ok_or(ExtError::Corrupt {
            what: "block map",
            detail: "index overflows".to_owned(),
        })?;
        let index = (remaining / divisor) % per_block;
        let words = fetch_block(read_block, block, block_size, "indirect block")?;
        block = u64::from(pointer_at(&words, index)?);
    }
    Ok((block != 0).then_some(block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn journal_superblock_errors() {
        assert!(matches!(
            JournalSuperblock::parse(&[0u8; 100]),
            Err(ExtError::Truncated {
                needed: 1024,
                got: 100,
                ..
            })
        ));
        let mut raw = vec![0u8; 1024];
        assert!(matches!(
            JournalSuperblock::parse(&raw),
            Err(ExtError::BadMagic { found: 0, .. })
        ));
        raw[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
        raw[4..8].copy_from_slice(&5u32.to_be_bytes());
        assert!(matches!(
            JournalSuperblock::parse(&raw),
            Err(ExtError::Corrupt { .. })
        ));
        raw[4..8].copy_from_slice(&3u32.to_be_bytes());
        raw[0x20..0x24].copy_from_slice(&(-5i32).to_be_bytes());
        let jsb = JournalSuperblock::parse(&raw).expect("v1");
        assert_eq!(jsb.errno, -5);
        assert_eq!(jsb.checksum_status, ChecksumStatus::Absent);
    }

    #[test]
    fn no_backup_no_blocks() {
        let mut raw = vec![0u8; 1024];
        raw[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        let sb = Superblock::parse(&raw).expect("sb");
        assert_eq!(journal_inode_blocks(&sb), None);
        assert_eq!(journal_inode_size(&sb), None);
    }

    /// An in-memory disk of 1 KiB blocks.
    struct Disk {
        blocks: HashMap<u64, Vec<u8>>,
    }

    impl Disk {
        fn reader(&self) -> impl FnMut(u64) -> std::io::Result<Vec<u8>> + '_ {
            |block| {
                self.blocks.get(&block).cloned().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such block")
                })
            }
        }
    }

    fn extent_node(size: usize, depth: u16, entries: &[[u8; 12]]) -> Vec<u8> {
        let mut node = vec![0u8; size];
        let max = u16::try_from((size - 12) / 12).expect("max");
        node[0..2].copy_from_slice(&EXTENT_HEADER_MAGIC.to_le_bytes());
        node[2..4].copy_from_slice(&u16::try_from(entries.len()).expect("n").to_le_bytes());
        node[4..6].copy_from_slice(&max.to_le_bytes());
        node[6..8].copy_from_slice(&depth.to_le_bytes());
        for (index, entry) in entries.iter().enumerate() {
            node[12 * (index + 1)..12 * (index + 2)].copy_from_slice(entry);
        }
        node
    }

    fn leaf(first: u32, len: u16, start: u64) -> [u8; 12] {
        let mut entry = [0u8; 12];
        entry[0..4].copy_from_slice(&first.to_le_bytes());
        entry[4..6].copy_from_slice(&len.to_le_bytes());
        entry[6..8].copy_from_slice(&u16::try_from(start >> 32).expect("hi").to_le_bytes());
        entry[8..12].copy_from_slice(
            &u32::try_from(start & 0xFFFF_FFFF)
                .expect("lo")
                .to_le_bytes(),
        );
        entry
    }

    fn index(first: u32, child: u64) -> [u8; 12] {
        let mut entry = [0u8; 12];
        entry[0..4].copy_from_slice(&first.to_le_bytes());
        entry[4..8].copy_from_slice(
            &u32::try_from(child & 0xFFFF_FFFF)
                .expect("lo")
                .to_le_bytes(),
        );
        entry[8..10].copy_from_slice(&u16::try_from(child >> 32).expect("hi").to_le_bytes());
        entry
    }

    fn root(node: Vec<u8>) -> [u8; 60] {
        node.try_into().expect("60 bytes")
    }

    #[test]
    fn deep_extent_tree() {
        // depth 2: root → index blocks 100/101 → leaves 200/201/202.
        let mut disk = Disk {
            blocks: HashMap::new(),
        };
        disk.blocks.insert(
            100,
            extent_node(1024, 1, &[index(0, 200), index(1000, 201)]),
        );
        disk.blocks
            .insert(101, extent_node(1024, 1, &[index(5000, 202)]));
        disk.blocks.insert(
            200,
            extent_node(1024, 0, &[leaf(0, 10, 7000), leaf(20, 32768 + 5, 8000)]),
        );
        disk.blocks.insert(
            201,
            extent_node(1024, 0, &[leaf(1000, 100, (3u64 << 32) | 50)]),
        );
        disk.blocks
            .insert(202, extent_node(1024, 0, &[leaf(5000, 1, 9000)]));
        let i_block = root(extent_node(60, 2, &[index(0, 100), index(5000, 101)]));
        let mut read = disk.reader();
        let mut map = |logical| map_logical_block(&i_block, logical, 1024, &mut read).expect("map");
        assert_eq!(map(0), Some(7000));
        assert_eq!(map(9), Some(7009));
        assert_eq!(map(10), None, "hole after the first extent");
        assert_eq!(map(22), Some(8002), "uninitialized extent still maps");
        assert_eq!(map(25), None);
        assert_eq!(map(1099), Some((3u64 << 32) | 149));
        assert_eq!(map(1100), None);
        assert_eq!(map(5000), Some(9000));
        assert_eq!(map(5001), None);
        assert_eq!(map(u64::from(u32::MAX) + 1), None);
    }

    #[test]
    fn corrupt_extent_trees_are_errors() {
        let mut disk = Disk {
            blocks: HashMap::new(),
        };
        // An index that points at itself: the depth check stops the loop.
        disk.blocks
            .insert(100, extent_node(1024, 1, &[index(0, 100)]));
        let i_block = root(extent_node(60, 2, &[index(0, 100)]));
        let result = map_logical_block(&i_block, 0, 1024, &mut disk.reader());
        assert!(
            matches!(result, Err(ExtError::Corrupt { .. })),
            "{result:?}"
        );
        // Too deep.
        let i_block = root(extent_node(60, 6, &[index(0, 100)]));
        let result =
            map_logical_block_with(&i_block, 0, 1024, BlockLayout::Extents, &mut disk.reader());
        assert!(
            matches!(result, Err(ExtError::Corrupt { .. })),
            "{result:?}"
        );
        // A child block the callback cannot read.
        let i_block = root(extent_node(60, 1, &[index(0, 555)]));
        let result = map_logical_block(&i_block, 0, 1024, &mut disk.reader());
        assert!(
            matches!(result, Err(ExtError::Io { block: 555, .. })),
            "{result:?}"
        );
        // A child that is not an extent node.
        disk.blocks.insert(556, vec![0u8; 1024]);
        let i_block = root(extent_node(60, 1, &[index(0, 556)]));
        let result = map_logical_block(&i_block, 0, 1024, &mut disk.reader());
        assert!(
            matches!(result, Err(ExtError::BadMagic { .. })),
            "{result:?}"
        );
        // Invalid block size.
        let result = map_logical_block(&i_block, 0, 1000, &mut disk.reader());
        assert!(
            matches!(result, Err(ExtError::Unsupported { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn block_map_all_levels() {
        let per = 256u64; // 1 KiB blocks.
        let mut disk = Disk {
            blocks: HashMap::new(),
        };
        let words = |entries: &[(u64, u32)]| {
            let mut block = vec![0u8; 1024];
            for &(slot, value) in entries {
                let at = usize::try_from(slot * 4).expect("slot");
                block[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            block
        };
        let mut i_block = [0u8; 60];
        for slot in 0..12u32 {
            let at = usize::try_from(slot * 4).expect("slot");
            i_block[at..at + 4].copy_from_slice(&(1000 + slot).to_le_bytes());
        }
        i_block[44..48].copy_from_slice(&0u32.to_le_bytes()); // direct block 11 is a hole
        i_block[48..52].copy_from_slice(&50u32.to_le_bytes());
        i_block[52..56].copy_from_slice(&60u32.to_le_bytes());
        i_block[56..60].copy_from_slice(&70u32.to_le_bytes());
        disk.blocks.insert(50, words(&[(0, 2000), (255, 2255)]));
        disk.blocks.insert(60, words(&[(0, 61), (3, 62)]));
        disk.blocks.insert(61, words(&[(0, 3000), (255, 3255)]));
        disk.blocks.insert(62, words(&[(7, 3777)]));
        disk.blocks.insert(70, words(&[(1, 71)]));
        disk.blocks.insert(71, words(&[(2, 72)]));
        disk.blocks.insert(72, words(&[(3, 4444)]));
        let mut read = disk.reader();
        let mut map = |logical| map_logical_block(&i_block, logical, 1024, &mut read).expect("map");
        assert_eq!(map(0), Some(1000));
        assert_eq!(map(10), Some(1010));
        assert_eq!(map(11), None);
        assert_eq!(map(12), Some(2000));
        assert_eq!(map(12 + 255), Some(2255));
        assert_eq!(map(12 + 1), None);
        let double = 12 + per;
        assert_eq!(map(double), Some(3000));
        assert_eq!(map(double + 255), Some(3255));
        assert_eq!(map(double + 3 * per + 7), Some(3777));
        assert_eq!(map(double + 2 * per), None);
        let triple = double + per * per;
        assert_eq!(map(triple + per * per + 2 * per + 3), Some(4444));
        assert_eq!(map(triple), None);
        assert_eq!(
            map(triple + per * per * per),
            None,
            "beyond the triple-indirect tree"
        );
        assert_eq!(map(u64::MAX), None);
    }

    #[test]
    fn short_indirect_block_is_truncated() {
        let mut i_block = [0u8; 60];
        i_block[48..52].copy_from_slice(&50u32.to_le_bytes());
        let mut read = |_block: u64| Ok(vec![0u8; 16]);
        let result = map_logical_block(&i_block, 12 + 100, 1024, &mut read);
        assert!(
            matches!(result, Err(ExtError::Truncated { .. })),
            "{result:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn journal_parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..1100), magic in any::<bool>(), v2 in any::<bool>()) {
            if magic && bytes.len() >= 8 {
                bytes[..4].copy_from_slice(&JBD2_MAGIC.to_be_bytes());
                bytes[4..8].copy_from_slice(&(if v2 { 4u32 } else { 3u32 }).to_be_bytes());
            }
            let _ = JournalSuperblock::parse(&bytes);
        }

        #[test]
        fn map_never_panics(
            mut i_block in proptest::array::uniform32(any::<u8>()).prop_flat_map(|head| {
                proptest::array::uniform28(any::<u8>()).prop_map(move |tail| {
                    let mut full = [0u8; 60];
                    full[..32].copy_from_slice(&head);
                    full[32..].copy_from_slice(&tail);
                    full
                })
            }),
            extent_magic in any::<bool>(),
            depth in 0u16..8,
            logical in prop_oneof![0u64..20_000_000, any::<u64>()],
            log_block in 0u32..8,
            seed in any::<u64>(),
            lengths in proptest::collection::vec(0usize..5000, 1..8),
        ) {
            if extent_magic {
                i_block[0..2].copy_from_slice(&EXTENT_HEADER_MAGIC.to_le_bytes());
                i_block[4..6].copy_from_slice(&4u16.to_le_bytes());
                i_block[6..8].copy_from_slice(&depth.to_le_bytes());
                i_block[2] %= 5;
                i_block[3] = 0;
            }
            let block_size = 1024u64 << log_block;
            let mut state = seed;
            let mut calls = 0usize;
            let mut read = |_block: u64| {
                let len = lengths[calls % lengths.len()];
                calls += 1;
                let mut data = Vec::with_capacity(len);
                for index in 0..len {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let mut byte = (state >> 33) as u8;
                    // Make extent headers likely so the tree walk goes deep.
                    if index < 2 && state % 3 == 0 {
                        byte = EXTENT_HEADER_MAGIC.to_le_bytes()[index];
                    }
                    data.push(byte);
                }
                Ok(data)
            };
            let _ = map_logical_block(&i_block, logical, block_size, &mut read);
            let _ = map_logical_block_with(&i_block, logical, block_size, BlockLayout::BlockMap, &mut read);
            let _ = map_logical_block_with(&i_block, logical, block_size, BlockLayout::Extents, &mut read);
        }
    }
}
