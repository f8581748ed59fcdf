//! Block group descriptors and the superblock sanity rules e2fsprogs 1.47.0 applies before a check (`ext2fs_open2`, `ext2fs_check_desc`, e2fsck's `check_super_block`): pure, bytes and parsed superblocks in, verdicts out.
//!
//! Each rule names the e2fsprogs function it mirrors. Everything here is computed with
//! checked or wrapping arithmetic so that hostile bytes can never panic.

use super::bytes::{le_u16, le_u32};
use super::features::E2FSCK_SUPPORTED_INCOMPAT;
use super::inode::group_has_superblock;
use super::superblock::{
    EXT_MAGIC, EXT2_FEATURE_INCOMPAT_META_BG, EXT3_FEATURE_INCOMPAT_JOURNAL_DEV,
    EXT4_FEATURE_INCOMPAT_64BIT, EXT4_FEATURE_INCOMPAT_CSUM_SEED, EXT4_FEATURE_INCOMPAT_FLEX_BG,
    EXT4_FEATURE_RO_COMPAT_BIGALLOC, EXT4_FEATURE_RO_COMPAT_GDT_CSUM,
    EXT4_FEATURE_RO_COMPAT_METADATA_CSUM, Superblock,
};
use std::fmt;

/// `bg_flags`: inode table and bitmap not initialized (`EXT2_BG_INODE_UNINIT`).
pub const EXT2_BG_INODE_UNINIT: u16 = 0x0001;
/// `bg_flags`: block bitmap not initialized (`EXT2_BG_BLOCK_UNINIT`).
pub const EXT2_BG_BLOCK_UNINIT: u16 = 0x0002;
/// `bg_flags`: inode table zeroed (`EXT2_BG_INODE_ZEROED`).
pub const EXT2_BG_INODE_ZEROED: u16 = 0x0004;

/// Size of a 32-bit group descriptor (`EXT2_MIN_DESC_SIZE`).
const MIN_DESC_SIZE: u64 = 32;
/// Smallest descriptor with 64bit (`EXT2_MIN_DESC_SIZE_64BIT`).
const MIN_DESC_SIZE_64BIT: u64 = 64;
/// Largest descriptor (`EXT2_MAX_DESC_SIZE`).
const MAX_DESC_SIZE: u64 = 1024;
/// `EXT2_MAX_BLOCK_LOG_SIZE - EXT2_MIN_BLOCK_LOG_SIZE`.
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// `EXT2_MAX_CLUSTER_LOG_SIZE - EXT2_MIN_CLUSTER_LOG_SIZE`.
const MAX_LOG_CLUSTER_SIZE: u32 = 19;
/// `EXT2_MAX_CLUSTERS_PER_GROUP`: (1 << 16) - 8.
const MAX_CLUSTERS_PER_GROUP: u64 = (1 << 16) - 8;
/// Offset of `bg_checksum` in a descriptor.
const BG_CHECKSUM_OFFSET: usize = 0x1E;
/// `EXT2_GOOD_OLD_FIRST_INO`.
const GOOD_OLD_FIRST_INO: u64 = 11;
/// `EXT2_GOOD_OLD_INODE_SIZE`.
const GOOD_OLD_INODE_SIZE: u64 = 128;

/// Superblock fields the checks need that [`Superblock`] does not carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SbExtra {
    /// `s_r_blocks_count` (| `s_r_blocks_count_hi` << 32 with 64bit).
    pub r_blocks_count: u64,
    /// `s_clusters_per_group` (0x24).
    pub clusters_per_group: u32,
    /// `s_reserved_gdt_blocks` (0xCE).
    pub reserved_gdt_blocks: u16,
    /// `s_min_extra_isize` (0x15C).
    pub min_extra_isize: u16,
    /// `s_want_extra_isize` (0x15E).
    pub want_extra_isize: u16,
    /// `s_usr_quota_inum`, `s_grp_quota_inum`, `s_prj_quota_inum`.
    pub quota_inums: [u32; 3],
    /// `s_checksum_seed` (0x270).
    pub checksum_seed: u32,
}

impl SbExtra {
    /// Reads the fields from the raw 1024 superblock bytes; missing bytes read as 0.
    pub fn parse(raw: &[u8]) -> Self {
        let u32_at = |offset| le_u32(raw, offset).unwrap_or(0);
        let u16_at = |offset| le_u16(raw, offset).unwrap_or(0);
        let is_64bit = u32_at(0x60) & EXT4_FEATURE_INCOMPAT_64BIT != 0;
        let r_hi = if is_64bit {
            u64::from(u32_at(0x154))
        } else {
            0
        };
        SbExtra {
            r_blocks_count: (r_hi << 32) | u64::from(u32_at(0x08)),
            clusters_per_group: u32_at(0x24),
            reserved_gdt_blocks: u16_at(0xCE),
            min_extra_isize: u16_at(0x15C),
            want_extra_isize: u16_at(0x15E),
            quota_inums: [u32_at(0x240), u32_at(0x244), u32_at(0x26C)],
            checksum_seed: u32_at(0x270),
        }
    }
}

/// What libext2fs derives from a superblock when it opens a filesystem (`fs->blocksize`,
/// `fs->group_desc_count`, `fs->desc_blocks`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// `fs->blocksize`.
    pub block_size: u64,
    /// `EXT2FS_CLUSTER_RATIO(fs)`: blocks per cluster.
    pub cluster_ratio: u64,
    /// `EXT2_DESC_SIZE(sb)`: `s_desc_size` with 64bit, else 32.
    pub desc_size: u64,
    /// `EXT2_DESC_PER_BLOCK(sb)`.
    pub descs_per_block: u64,
    /// `EXT2_INODE_SIZE(sb)`.
    pub inode_size: u64,
    /// `fs->inode_blocks_per_group` (computed in 32 bits, as libext2fs does).
    pub inode_blocks_per_group: u64,
    /// `fs->group_desc_count`.
    pub group_count: u64,
    /// `fs->desc_blocks`.
    pub desc_blocks: u64,
}

/// Why `ext2fs_open2` (or e2fsck right after it) refuses a superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// `EXT2_ET_BAD_MAGIC`.
    BadMagic,
    /// `EXT2_ET_SB_CSUM_INVALID`.
    SbCsumInvalid {
        /// `s_checksum` as stored.
        stored: u32,
        /// The CRC-32C computed over the superblock.
        computed: u32,
    },
    /// `EXT2_ET_UNKNOWN_CSUM`: metadata_csum with `s_checksum_type` other than crc32c.
    UnknownCsum(u8),
    /// `EXT2_ET_REV_TOO_HIGH`.
    RevTooHigh(u32),
    /// `EXT2_ET_UNSUPP_FEATURE`: unknown incompat bits or a journal device.
    UnsupportedFeature(String),
    /// `EXT2_ET_CORRUPT_SUPERBLOCK`, with what libext2fs tripped over.
    Corrupt(String),
    /// `EXT2_ET_BAD_DESC_SIZE`.
    BadDescSize(u16),
    /// `EXT2_ET_UNEXPECTED_BLOCK_SIZE` (a backup with another block size).
    UnexpectedBlockSize {
        /// The block size e2fsck asked for.
        expected: u64,
        /// The block size the superblock has.
        found: u64,
    },
    /// The superblock or descriptor table cannot be read (`EXT2_ET_SHORT_READ`).
    ShortRead(String),
    /// e2fsprogs 1.47.0 itself crashes on these values (division by zero).
    Crash(String),
}

impl OpenError {
    /// The errors after which e2fsck (unix.c `main`) tries the backup superblocks.
    pub fn tries_backup(&self) -> bool {
        matches!(
            self,
            OpenError::BadMagic | OpenError::SbCsumInvalid { .. } | OpenError::Corrupt(_)
        )
    }

    /// The errors after which e2fsck retries with `EXT2_FLAG_IGNORE_SB_ERRORS`
    /// ("Trying to load superblock despite errors...").
    pub fn retries_ignoring_errors(&self) -> bool {
        matches!(self, OpenError::Corrupt(_) | OpenError::BadDescSize(_))
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::BadMagic => write!(f, "bad magic number in super-block"),
            OpenError::SbCsumInvalid { stored, computed } => write!(
                f,
                "superblock checksum does not match superblock (stored 0x{stored:08x}, computed 0x{computed:08x})"
            ),
            OpenError::UnknownCsum(kind) => write!(f, "unknown checksum algorithm {kind}"),
            OpenError::RevTooHigh(rev) => write!(f, "filesystem revision {rev} too high"),
            OpenError::UnsupportedFeature(what) => {
                write!(f, "filesystem has unsupported feature(s): {what}")
            }
            OpenError::Corrupt(what) => write!(f, "the ext2 superblock is corrupt: {what}"),
            OpenError::BadDescSize(size) => {
                write!(f, "block group descriptor size incorrect ({size})")
            }
            OpenError::UnexpectedBlockSize { expected, found } => {
                write!(
                    f,
                    "filesystem has unexpected block size {found} (expected {expected})"
                )
            }
            OpenError::ShortRead(what) => write!(
                f,
                "attempt to read block from filesystem resulted in short read: {what}"
            ),
            OpenError::Crash(what) => write!(f, "e2fsprogs 1.47.0 crashes on it: {what}"),
        }
    }
}

/// Options of one `ext2fs_open2` call, as e2fsck makes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// `EXT2_FLAG_IGNORE_SB_ERRORS` (e2fsck's second attempt).
    pub ignore_sb_errors: bool,
    /// The block size passed with an explicit superblock location (backups).
    pub block_size: Option<u64>,
}

fn corrupt(what: impl Into<String>) -> OpenError {
    OpenError::Corrupt(what.into())
}

/// The raw CRC-32C (`ext2fs_crc32c_le`, no final inversion) continuing from `seed`.
fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crate::fs::crc::crc32c_append(!seed, data)
}

/// `ext2fs_superblock_csum_verify` / `ext2fs_verify_csum_type`: `Err` when metadata_csum
/// is set and the checksum type is unknown or the checksum does not match.
pub fn superblock_checksum(raw: &[u8]) -> Result<(), OpenError> {
    let ro_compat = le_u32(raw, 0x64).unwrap_or(0);
    if ro_compat & EXT4_FEATURE_RO_COMPAT_METADATA_CSUM == 0 {
        return Ok(());
    }
    let mut result = Ok(());
    let kind = raw.get(0x175).copied().unwrap_or(0);
    if kind != 1 {
        result = Err(OpenError::UnknownCsum(kind));
    }
    if let (Some(covered), Some(stored)) = (raw.get(..0x3FC), le_u32(raw, 0x3FC)) {
        let computed = crc32c_raw(!0, covered);
        if computed != stored {
            result = Err(OpenError::SbCsumInvalid { stored, computed });
        }
    }
    result
}

/// `EXT2_INODE_SIZE`: 128 for revision 0, else `s_inode_size`.
fn inode_size(sb: &Superblock) -> u64 {
    sb.effective_inode_size()
}

/// `EXT2_DESC_SIZE`: `s_desc_size` with 64bit, else 32.
fn desc_size(sb: &Superblock) -> u64 {
    if sb.is_64bit() {
        u64::from(sb.desc_size)
    } else {
        MIN_DESC_SIZE
    }
}

/// `EXT2_MAX_BLOCKS_PER_GROUP`: ((1 << 16) - 8) × blocks per cluster.
fn max_blocks_per_group(ratio: u64) -> u64 {
    MAX_CLUSTERS_PER_GROUP.saturating_mul(ratio)
}

/// Mirrors the validations of `ext2fs_open2` (lib/ext2fs/openfs.c, 1.47.0) up to the
/// point where the descriptors are read, in its order: checksum, magic, revision,
/// incompat features (a read-only open ignores ro_compat), block size, cluster size,
/// inode size, descriptor size (skipped with `ignore_sb_errors`), blocks per group vs
/// clusters per group, expected block size, journal device, inodes per group, the
/// group geometry, the group count, `s_inodes_count` (skipped with `ignore_sb_errors`)
/// and `s_first_meta_bg` (skipped with `ignore_sb_errors`). `raw` is the 1024 bytes
/// the superblock was parsed from.
pub fn validate_superblock(
    sb: &Superblock,
    raw: &[u8],
    options: OpenOptions,
) -> Result<Geometry, OpenError> {
    superblock_checksum(raw)?;
    if sb.magic != EXT_MAGIC {
        return Err(OpenError::BadMagic);
    }
    if sb.rev_level > 1 {
        return Err(OpenError::RevTooHigh(sb.rev_level));
    }
    let unknown = sb.feature_incompat & !E2FSCK_SUPPORTED_INCOMPAT;
    if unknown != 0 {
        return Err(OpenError::UnsupportedFeature(format!(
            "incompat 0x{unknown:x}"
        )));
    }
    if sb.feature_incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV != 0 {
        return Err(OpenError::UnsupportedFeature(
            "journal_dev (an external journal device)".into(),
        ));
    }
    if sb.log_block_size > MAX_LOG_BLOCK_SIZE {
        return Err(corrupt(format!(
            "s_log_block_size {} is too large",
            sb.log_block_size
        )));
    }
    let bigalloc = sb.feature_ro_compat & EXT4_FEATURE_RO_COMPAT_BIGALLOC != 0;
    if !bigalloc && sb.log_block_size != sb.log_cluster_size {
        return Err(corrupt(format!(
            "s_log_cluster_size {} differs from s_log_block_size {} without bigalloc",
            sb.log_cluster_size, sb.log_block_size
        )));
    }
    let block_size = 1024u64 << sb.log_block_size;
    let isize = inode_size(sb);
    if isize < GOOD_OLD_INODE_SIZE || isize > block_size || !isize.is_power_of_two() {
        return Err(corrupt(format!("inode size {isize} is invalid")));
    }
    if !options.ignore_sb_errors && sb.is_64bit() {
        let size = u64::from(sb.desc_size);
        if !(MIN_DESC_SIZE_64BIT..=MAX_DESC_SIZE).contains(&size) || !size.is_power_of_two() {
            return Err(OpenError::BadDescSize(sb.desc_size));
        }
    }
    let extra = SbExtra::parse(raw);
    let ratio_bits = sb.log_cluster_size.wrapping_sub(sb.log_block_size);
    let clusters_shifted = u32::try_from(
        u64::from(extra.clusters_per_group)
            .checked_shl(ratio_bits)
            .unwrap_or(u64::MAX),
    )
    .ok();
    if clusters_shifted != Some(sb.blocks_per_group) {
        return Err(corrupt(format!(
            "s_blocks_per_group {} does not match s_clusters_per_group {}",
            sb.blocks_per_group, extra.clusters_per_group
        )));
    }
    let cluster_ratio = 1u64.checked_shl(ratio_bits).unwrap_or(0);
    // C computes this in 32-bit unsigned arithmetic.
    let inode_blocks_per_group = u64::from(
        sb.inodes_per_group
            .wrapping_mul(isize as u32)
            .wrapping_add(block_size as u32 - 1)
            / block_size as u32,
    );
    if let Some(expected) = options.block_size {
        if expected != block_size {
            return Err(OpenError::UnexpectedBlockSize {
                expected,
                found: block_size,
            });
        }
    }
    if sb.inodes_per_group == 0 {
        return Err(corrupt("s_inodes_per_group is 0"));
    }
    let dsize = desc_size(sb);
    if dsize == 0 {
        return Err(OpenError::Crash(
            "s_desc_size 0 with 64bit: division by zero in ext2fs_open2".into(),
        ));
    }
    let descs_per_block = block_size / dsize;
    let bpg = u64::from(sb.blocks_per_group);
    let inodes_per_block = block_size / isize;
    let max_inodes_per_group = (1u64 << 16) - inodes_per_block;
    if bpg == 0
        || bpg > max_blocks_per_group(cluster_ratio)
        || inode_blocks_per_group > max_inodes_per_group
        || descs_per_block == 0
        || u64::from(sb.first_data_block) >= sb.blocks_count
    {
        return Err(corrupt(format!(
            "group geometry is impossible (blocks per group {bpg}, inode blocks per group {inode_blocks_per_group}, descriptor size {dsize}, first data block {}, blocks {})",
            sb.first_data_block, sb.blocks_count
        )));
    }
    let group_count = (sb.blocks_count - u64::from(sb.first_data_block)).div_ceil(bpg);
    if group_count >> 32 != 0 {
        return Err(corrupt(format!("{group_count} block groups is too many")));
    }
    if !options.ignore_sb_errors
        && group_count * u64::from(sb.inodes_per_group) != u64::from(sb.inodes_count)
    {
        return Err(corrupt(format!(
            "s_inodes_count {} is not {group_count} groups × {} inodes per group",
            sb.inodes_count, sb.inodes_per_group
        )));
    }
    let desc_blocks = group_count.div_ceil(descs_per_block);
    if !options.ignore_sb_errors && sb.has_meta_bg() && u64::from(sb.first_meta_bg) > desc_blocks {
        return Err(corrupt(format!(
            "s_first_meta_bg {} is beyond the {desc_blocks} descriptor blocks",
            sb.first_meta_bg
        )));
    }
    Ok(Geometry {
        block_size,
        cluster_ratio,
        desc_size: dsize,
        descs_per_block,
        inode_size: isize,
        inode_blocks_per_group,
        group_count,
        desc_blocks,
    })
}

/// Why libext2fs refuses the (primary) superblock in `raw`, or `None` when
/// `ext2fs_open2` accepts it. A convenience over [`validate_superblock`].
pub fn superblock_open_problem(sb: &Superblock, raw: &[u8]) -> Option<String> {
    validate_superblock(sb, raw, OpenOptions::default())
        .err()
        .map(|e| e.to_string())
}

/// `ext2fs_group_first_block2`.
fn group_first_block(sb: &Superblock, group: u64) -> u64 {
    u64::from(sb.first_data_block)
        .saturating_add(group.saturating_mul(u64::from(sb.blocks_per_group)))
}

/// `ext2fs_group_last_block2`.
fn group_last_block(sb: &Superblock, geom: &Geometry, group: u64) -> u64 {
    if group + 1 == geom.group_count {
        sb.blocks_count.saturating_sub(1)
    } else {
        group_first_block(sb, group)
            .saturating_add(u64::from(sb.blocks_per_group))
            .saturating_sub(1)
    }
}

/// The blocks holding the descriptor table, in table order, the way `ext2fs_open2`
/// reads them: `group_block` is 0 for the primary, else the block number of the backup
/// superblock. The first `s_first_meta_bg` blocks (all of them without meta_bg) follow
/// the superblock; meta_bg blocks sit in their meta group (`ext2fs_descriptor_block_loc2`).
pub fn descriptor_table_blocks(sb: &Superblock, geom: &Geometry, group_block: u64) -> Vec<u64> {
    let first_data_block = u64::from(sb.first_data_block);
    let group_zero_adjust =
        u64::from(group_block == 0 && first_data_block == 0 && geom.block_size == 1024);
    let group_block = if group_block == 0 {
        first_data_block
    } else {
        group_block
    };
    let first_meta_bg = if sb.has_meta_bg() {
        u64::from(sb.first_meta_bg).min(geom.desc_blocks)
    } else {
        geom.desc_blocks
    };
    let mut blocks = Vec::new();
    for i in 0..geom.desc_blocks {
        let block = if i < first_meta_bg {
            group_block
                .saturating_add(group_zero_adjust)
                .saturating_add(1)
                .saturating_add(i)
        } else {
            meta_bg_descriptor_block(sb, geom, group_block, i)
        };
        blocks.push(block);
    }
    blocks
}

/// `ext2fs_descriptor_block_loc2` for a meta_bg descriptor block.
fn meta_bg_descriptor_block(sb: &Superblock, geom: &Geometry, group_block: u64, i: u64) -> u64 {
    let zero_adjust = u64::from(i == 0 && geom.block_size == 1024 && geom.cluster_ratio > 1);
    let bg = geom.descs_per_block.saturating_mul(i);
    let mut has_super = u64::from(group_has_superblock(sb, bg));
    let mut block = group_first_block(sb, bg);
    let bpg = u64::from(sb.blocks_per_group);
    if group_block != u64::from(sb.first_data_block)
        && block.saturating_add(has_super).saturating_add(bpg) < sb.blocks_count
    {
        block = block.saturating_add(bpg);
        has_super = u64::from(group_has_superblock(sb, bg.saturating_add(1)));
    }
    block.saturating_add(has_super).saturating_add(zero_adjust)
}

/// One block group descriptor (`struct ext4_group_desc`), 64-bit fields joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupDesc {
    /// `bg_block_bitmap` (| `_hi` << 32).
    pub block_bitmap: u64,
    /// `bg_inode_bitmap` (| `_hi` << 32).
    pub inode_bitmap: u64,
    /// `bg_inode_table` (| `_hi` << 32).
    pub inode_table: u64,
    /// `bg_free_blocks_count` (clusters; | `_hi` << 16).
    pub free_blocks_count: u32,
    /// `bg_free_inodes_count` (| `_hi` << 16).
    pub free_inodes_count: u32,
    /// `bg_used_dirs_count` (| `_hi` << 16).
    pub used_dirs_count: u32,
    /// `bg_flags`.
    pub flags: u16,
    /// `bg_itable_unused` (| `_hi` << 16).
    pub itable_unused: u32,
    /// `bg_checksum` as stored.
    pub checksum: u16,
    /// `ext2fs_group_desc_csum` of the stored bytes; `None` without gdt_csum/metadata_csum.
    pub computed_checksum: Option<u16>,
}

impl GroupDesc {
    /// `ext2fs_group_desc_csum_verify`: true without a descriptor checksum feature.
    pub fn checksum_ok(&self) -> bool {
        self.computed_checksum.is_none_or(|c| c == self.checksum)
    }
}

/// `ext2fs_has_group_desc_csum`: metadata_csum or gdt_csum (uninit_bg).
pub fn has_group_desc_csum(sb: &Superblock) -> bool {
    sb.feature_ro_compat & (EXT4_FEATURE_RO_COMPAT_METADATA_CSUM | EXT4_FEATURE_RO_COMPAT_GDT_CSUM)
        != 0
}

/// `ext2fs_crc16` (CRC-16/ARC polynomial, reflected, no final inversion).
pub fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `fs->csum_seed` (`ext2fs_init_csum_seed`): `s_checksum_seed` with metadata_csum_seed,
/// else the raw CRC-32C of the UUID.
pub fn csum_seed(sb: &Superblock, extra: &SbExtra) -> u32 {
    if sb.feature_incompat & EXT4_FEATURE_INCOMPAT_CSUM_SEED != 0 {
        extra.checksum_seed
    } else {
        crc32c_raw(!0, &sb.uuid)
    }
}

/// `ext2fs_group_desc_csum` of descriptor `group` whose bytes are `desc`
/// (`EXT2_DESC_SIZE` of them): with metadata_csum the low 16 bits of the CRC-32C of the
/// group number and the descriptor (checksum field as zero); otherwise the crc16 of the
/// UUID, the group number and the descriptor without its checksum field.
pub fn group_desc_csum(sb: &Superblock, extra: &SbExtra, group: u32, desc: &[u8]) -> u16 {
    let group_le = group.to_le_bytes();
    if sb.feature_ro_compat & EXT4_FEATURE_RO_COMPAT_METADATA_CSUM != 0 {
        let mut crc = crc32c_raw(csum_seed(sb, extra), &group_le);
        let head = desc
            .get(..BG_CHECKSUM_OFFSET.min(desc.len()))
            .unwrap_or_default();
        crc = crc32c_raw(crc, head);
        if desc.len() > BG_CHECKSUM_OFFSET {
            let zeros = [0u8; 2];
            let take = (desc.len() - BG_CHECKSUM_OFFSET).min(2);
            crc = crc32c_raw(crc, zeros.get(..take).unwrap_or_default());
        }
        crc = crc32c_raw(crc, desc.get(BG_CHECKSUM_OFFSET + 2..).unwrap_or_default());
        return (crc & 0xFFFF) as u16;
    }
    let mut crc = crc16(!0, &sb.uuid);
    crc = crc16(crc, &group_le);
    crc = crc16(
        crc,
        desc.get(..BG_CHECKSUM_OFFSET.min(desc.len()))
            .unwrap_or_default(),
    );
    crc16(crc, desc.get(BG_CHECKSUM_OFFSET + 2..).unwrap_or_default())
}

/// Parses descriptor `group` of the descriptor table `table` (the descriptor blocks
/// concatenated). High halves are read with 64bit, as `blknum.c` does; bytes missing at
/// the end read as 0. `None` when the descriptor's first 32 bytes are not all present.
pub fn parse_desc(
    sb: &Superblock,
    extra: &SbExtra,
    geom: &Geometry,
    table: &[u8],
    group: u64,
) -> Option<GroupDesc> {
    let start = usize::try_from(group.checked_mul(geom.desc_size)?).ok()?;
    let size = usize::try_from(geom.desc_size).ok()?;
    let bytes = table.get(start..start.checked_add(size)?.min(table.len()))?;
    if bytes.len() < MIN_DESC_SIZE as usize {
        return None;
    }
    // With 64bit libext2fs reads a struct ext4_group_desc (64 bytes) at the descriptor.
    let wide = table
        .get(start..start.saturating_add(64).min(table.len()))
        .unwrap_or_default();
    let is_64bit = sb.is_64bit();
    let u16_at = |offset: usize| u32::from(le_u16(bytes, offset).unwrap_or(0));
    let u32_at = |offset: usize| le_u32(bytes, offset).unwrap_or(0);
    let hi16 = |offset: usize| {
        if is_64bit {
            u32::from(le_u16(wide, offset).unwrap_or(0)) << 16
        } else {
            0
        }
    };
    let hi32 = |offset: usize| {
        if is_64bit {
            u64::from(le_u32(wide, offset).unwrap_or(0)) << 32
        } else {
            0
        }
    };
    let computed_checksum =
        has_group_desc_csum(sb).then(|| group_desc_csum(sb, extra, group as u32, bytes));
    Some(GroupDesc {
        block_bitmap: u64::from(u32_at(0x00)) | hi32(0x20),
        inode_bitmap: u64::from(u32_at(0x04)) | hi32(0x24),
        inode_table: u64::from(u32_at(0x08)) | hi32(0x28),
        free_blocks_count: u16_at(0x0C) | hi16(0x2C),
        free_inodes_count: u16_at(0x0E) | hi16(0x2E),
        used_dirs_count: u16_at(0x10) | hi16(0x30),
        flags: le_u16(bytes, 0x12).unwrap_or(0),
        itable_unused: u16_at(0x1C) | hi16(0x32),
        checksum: le_u16(bytes, BG_CHECKSUM_OFFSET).unwrap_or(0),
        computed_checksum,
    })
}

/// All `geom.group_count` descriptors of `table`; `None` when the table is too short.
pub fn parse_descs(
    sb: &Superblock,
    extra: &SbExtra,
    geom: &Geometry,
    table: &[u8],
) -> Option<Vec<GroupDesc>> {
    (0..geom.group_count)
        .map(|g| parse_desc(sb, extra, geom, table, g))
        .collect()
}

/// What `ext2fs_open2` does to descriptors read through a backup superblock when the
/// filesystem has descriptor checksums: clear both UNINIT flags and `bg_itable_unused`
/// and recompute the checksum.
pub fn reset_for_backup(sb: &Superblock, descs: &mut [GroupDesc]) {
    if !has_group_desc_csum(sb) {
        return;
    }
    for desc in descs {
        desc.flags &= !(EXT2_BG_BLOCK_UNINIT | EXT2_BG_INODE_UNINIT);
        desc.itable_unused = 0;
        desc.computed_checksum = Some(desc.checksum);
    }
}

/// Why `ext2fs_check_desc` rejects a descriptor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescProblem {
    /// `EXT2_ET_BAD_DESC_SIZE`: the descriptor size is not a power of two.
    BadDescSize(u64),
    /// `EXT2_ET_GDESC_BAD_BLOCK_MAP`.
    BlockBitmap {
        /// The group.
        group: u64,
        /// Its block bitmap location.
        block: u64,
    },
    /// `EXT2_ET_GDESC_BAD_INODE_MAP`.
    InodeBitmap {
        /// The group.
        group: u64,
        /// Its inode bitmap location.
        block: u64,
    },
    /// `EXT2_ET_GDESC_BAD_INODE_TABLE`.
    InodeTable {
        /// The group.
        group: u64,
        /// Its inode table location.
        block: u64,
    },
}

impl fmt::Display for DescProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescProblem::BadDescSize(size) => {
                write!(f, "block group descriptor size incorrect ({size})")
            }
            DescProblem::BlockBitmap { group, block } => {
                write!(
                    f,
                    "corrupt group descriptor: bad block for block bitmap (group {group}, block {block})"
                )
            }
            DescProblem::InodeBitmap { group, block } => {
                write!(
                    f,
                    "corrupt group descriptor: bad block for inode bitmap (group {group}, block {block})"
                )
            }
            DescProblem::InodeTable { group, block } => {
                write!(
                    f,
                    "corrupt group descriptor: bad block for inode table (group {group}, block {block})"
                )
            }
        }
    }
}

/// A set of block ranges (inclusive), clipped to the bitmap's `[start, end]` like a
/// libext2fs block bitmap. The ranges are kept sorted, disjoint and not adjacent in a Vec:
/// groups are marked in ascending order, so a mark almost always extends or follows the last
/// range, and a binary search finds the rest (a BTreeMap cost a node allocation per range and
/// a fifth of the e2fsck simulation).
struct BlockSet {
    start: u64,
    end: u64,
    ranges: Vec<(u64, u64)>,
}

impl BlockSet {
    fn new(start: u64, end: u64) -> Self {
        BlockSet {
            start,
            end,
            ranges: Vec::new(),
        }
    }

    /// Whether any block of `[first, last]` is marked.
    fn any(&self, first: u64, last: u64) -> bool {
        // The first range that ends at or after `first`; the ends ascend like the starts.
        let i = self.ranges.partition_point(|&(_, end)| end < first);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= last)
    }

    /// Marks `count` blocks from `first` (blocks outside the bitmap are ignored).
    fn mark(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        let last = first.saturating_add(count - 1).min(self.end);
        let first = first.max(self.start);
        if first > last {
            return;
        }
        // Ranges [i, j) overlap or touch [first, last]: they merge with it into one.
        let i = self
            .ranges
            .partition_point(|&(_, end)| end.saturating_add(1) < first);
        let j = self
            .ranges
            .partition_point(|&(start, _)| start <= last.saturating_add(1));
        if i == j {
            self.ranges.insert(i, (first, last));
        } else {
            let merged = (first.min(self.ranges[i].0), last.max(self.ranges[j - 1].1));
            self.ranges[i] = merged;
            self.ranges.drain(i + 1..j);
        }
    }
}

/// `ext2fs_reserve_super_and_bgd` (via `ext2fs_super_and_bgd_loc2`): marks the superblock
/// and group descriptor blocks (old-style table plus reserved GDT blocks, or the meta_bg
/// block) of `group`.
fn reserve_super_and_bgd(
    sb: &Superblock,
    extra: &SbExtra,
    geom: &Geometry,
    group: u64,
    set: &mut BlockSet,
) {
    let mut group_block = group_first_block(sb, group);
    if group_block == 0 && geom.block_size == 1024 {
        group_block = 1;
    }
    let meta_bg = sb.feature_incompat & EXT2_FEATURE_INCOMPAT_META_BG != 0;
    let old_desc_blocks = if meta_bg {
        u64::from(sb.first_meta_bg)
    } else {
        geom.desc_blocks
            .saturating_add(u64::from(extra.reserved_gdt_blocks))
    };
    let has_super = group_has_superblock(sb, group);
    let super_blk = if has_super { group_block } else { 0 };
    let meta_bg_size = geom.descs_per_block.max(1);
    let mut old_desc_blk = 0;
    let mut new_desc_blk = 0;
    if !meta_bg || group / meta_bg_size < u64::from(sb.first_meta_bg) {
        if has_super {
            old_desc_blk = group_block.saturating_add(1);
        }
    } else {
        let index = group % meta_bg_size;
        if index == 0 || index == 1 || index == meta_bg_size - 1 {
            new_desc_blk = group_block.saturating_add(u64::from(has_super));
        }
    }
    if super_blk != 0 || group == 0 {
        set.mark(super_blk, 1);
    }
    if group == 0 && geom.block_size == 1024 && geom.cluster_ratio > 1 {
        set.mark(0, 1);
    }
    if old_desc_blk != 0 {
        let mut count = old_desc_blocks;
        if old_desc_blk.saturating_add(count) >= sb.blocks_count {
            count = sb.blocks_count.saturating_sub(old_desc_blk);
        }
        set.mark(old_desc_blk, count);
    }
    if new_desc_blk != 0 {
        set.mark(new_desc_blk, 1);
    }
}

/// Mirrors `ext2fs_check_desc` (lib/ext2fs/check_desc.c, 1.47.0): the descriptor size
/// must be a power of two; then, after reserving every group's superblock and
/// descriptor blocks, each group's block bitmap, inode bitmap and inode table must lie
/// inside the group (anywhere in the filesystem with flex_bg) and must not overlap
/// anything reserved or claimed before. It does NOT verify descriptor checksums (e2fsck
/// does that later, in `check_super_block`).
pub fn check_desc(
    sb: &Superblock,
    extra: &SbExtra,
    geom: &Geometry,
    descs: &[GroupDesc],
) -> Result<(), DescProblem> {
    if !geom.desc_size.is_power_of_two() {
        return Err(DescProblem::BadDescSize(geom.desc_size));
    }
    let flex_bg = sb.feature_incompat & EXT4_FEATURE_INCOMPAT_FLEX_BG != 0;
    let fs_first = u64::from(sb.first_data_block);
    let fs_last = sb.blocks_count.saturating_sub(1);
    let mut set = BlockSet::new(fs_first, fs_last);
    for group in 0..geom.group_count {
        reserve_super_and_bgd(sb, extra, geom, group, &mut set);
    }
    for (group, desc) in (0u64..).zip(descs.iter()) {
        let (first, last) = if flex_bg {
            (fs_first, fs_last)
        } else {
            (
                group_first_block(sb, group),
                group_last_block(sb, geom, group),
            )
        };
        let block = desc.block_bitmap;
        if block < first || block > last || set.any(block, block) {
            return Err(DescProblem::BlockBitmap { group, block });
        }
        set.mark(block, 1);
        let block = desc.inode_bitmap;
        if block < first || block > last || set.any(block, block) {
            return Err(DescProblem::InodeBitmap { group, block });
        }
        set.mark(block, 1);
        let block = desc.inode_table;
        let table_last = block
            .saturating_add(geom.inode_blocks_per_group)
            .saturating_sub(1);
        if block < first
            || table_last > last
            || (geom.inode_blocks_per_group > 0 && set.any(block, table_last))
        {
            return Err(DescProblem::InodeTable { group, block });
        }
        set.mark(block, geom.inode_blocks_per_group);
    }
    Ok(())
}

/// The area a [`Invalid`] finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// A superblock field.
    Superblock,
    /// A group descriptor.
    Descriptor,
    /// The device is smaller than the filesystem (`PR_0_FS_SIZE_WRONG`).
    DeviceSize,
}

/// One problem e2fsck -n reports and answers "no" to, clearing its "valid" flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What it is about.
    pub kind: InvalidKind,
    /// e2fsck's wording, roughly.
    pub message: String,
}

/// The outcome of [`check_super_block`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperCheck {
    /// `Some` when a check aborts e2fsck (`PR_0_MISC_CORRUPT_SUPER` and friends set
    /// `E2F_FLAG_ABORT`): e2fsck exits before deciding anything.
    pub abort: Option<String>,
    /// Problems that make e2fsck -n treat the filesystem as having errors.
    pub invalid: Vec<Invalid>,
    /// Sum of the groups' free blocks (in blocks, `EXT2FS_C2B`).
    pub group_free_blocks: u64,
    /// Sum of the groups' free inodes (32-bit, as e2fsck sums them).
    pub group_free_inodes: u32,
}

/// `check_super_value`: `Some(message)` when `value` fails the min/max/power-of-two test.
fn bad_value(
    name: &str,
    value: u64,
    min: Option<u64>,
    max: Option<u64>,
    log2: bool,
) -> Option<String> {
    let fails = min.is_some_and(|m| value < m)
        || max.is_some_and(|m| value > m)
        || (log2 && value & value.wrapping_sub(1) != 0);
    fails.then(|| format!("corruption found in superblock ({name} = {value})"))
}

/// Mirrors e2fsck's `check_super_block` (e2fsck/super.c, 1.47.0) as run by `e2fsck -n`
/// on a filesystem libext2fs opened (`geom`, `descs` as opened: backups already reset).
/// `device_blocks` is the device size in filesystem blocks, when known.
///
/// Aborting tests (`check_super_value` → `PR_0_MISC_CORRUPT_SUPER`, `PR_0_INODE_COUNT_BIG`,
/// `PR_0_INODE_COUNT_WRONG` answered "no", `PR_0_FIRST_DATA_BLOCK`) stop at the first hit.
/// Every problem e2fsck asks about without `PR_NO_OK` clears the valid flag under -n:
/// device smaller than the filesystem, bad `s_min/want_extra_isize`, `s_first_meta_bg`
/// too big; per group: bitmaps or inode table outside the group, free/dirs counts above
/// the per-group maximum, descriptor checksum mismatch, UNINIT flags or
/// `bg_itable_unused` without a checksum feature, BLOCK_UNINIT on the last group,
/// `bg_itable_unused` above the free inodes; superblock free counts above the totals;
/// invalid quota inode numbers (`e2fsck_validate_quota_inodes`). The sum of the groups'
/// free counts differing from the superblock's totals is NOT a problem in 1.47.0: e2fsck
/// only updates the totals, and only when it may write.
pub fn check_super_block(
    sb: &Superblock,
    extra: &SbExtra,
    geom: &Geometry,
    descs: &[GroupDesc],
    device_blocks: Option<u64>,
) -> SuperCheck {
    let mut out = SuperCheck::default();
    let block_size = geom.block_size;
    let ratio = geom.cluster_ratio.max(1);
    let inodes_per_block = block_size / geom.inode_size.max(1);
    let bpg = u64::from(sb.blocks_per_group);
    let max_inodes_per_group = (1u64 << 16).saturating_sub(inodes_per_block);
    // unsigned int ipg_max = inodes_per_block * (blocks_per_group - 4), in 64 bits then truncated.
    let mut ipg_max = u64::from(inodes_per_block.wrapping_mul(bpg.wrapping_sub(4)) as u32);
    ipg_max = ipg_max.min(max_inodes_per_group);
    let cpg_max = block_size.saturating_mul(8).min(MAX_CLUSTERS_PER_GROUP);
    let bpg_max = block_size
        .saturating_mul(8)
        .saturating_mul(ratio)
        .min(max_blocks_per_group(ratio)) as u32;
    let mut blks_max = (1u64 << 32).saturating_mul(max_blocks_per_group(ratio));
    blks_max = blks_max.min(if sb.is_64bit() {
        (1 << 48) - 1
    } else {
        (1 << 32) - 1
    });

    let checks = [
        bad_value(
            "inodes_count",
            u64::from(sb.inodes_count),
            Some(1),
            None,
            false,
        ),
        bad_value(
            "blocks_count",
            sb.blocks_count,
            Some(1),
            Some(blks_max),
            false,
        ),
        bad_value(
            "first_data_block",
            u64::from(sb.first_data_block),
            None,
            Some(sb.blocks_count),
            false,
        ),
        bad_value(
            "log_block_size",
            u64::from(sb.log_block_size),
            Some(0),
            Some(u64::from(MAX_LOG_BLOCK_SIZE)),
            false,
        ),
        bad_value(
            "log_cluster_size",
            u64::from(sb.log_cluster_size),
            Some(u64::from(sb.log_block_size)),
            Some(u64::from(MAX_LOG_CLUSTER_SIZE)),
            false,
        ),
        bad_value(
            "clusters_per_group",
            u64::from(extra.clusters_per_group),
            Some(8),
            Some(cpg_max),
            false,
        ),
        bad_value(
            "blocks_per_group",
            bpg,
            Some(8),
            Some(u64::from(bpg_max)),
            false,
        ),
        bad_value(
            "inodes_per_group",
            u64::from(sb.inodes_per_group),
            Some(inodes_per_block),
            Some(ipg_max),
            false,
        ),
        bad_value(
            "r_blocks_count",
            extra.r_blocks_count,
            None,
            Some(sb.blocks_count / 2),
            false,
        ),
        bad_value(
            "reserved_gdt_blocks",
            u64::from(extra.reserved_gdt_blocks),
            None,
            Some(block_size / 4),
            false,
        ),
        bad_value(
            "desc_size",
            u64::from(sb.desc_size),
            None,
            Some(MAX_DESC_SIZE),
            true,
        ),
    ];
    if let Some(why) = checks.into_iter().flatten().next() {
        out.abort = Some(why);
        return out;
    }
    let should_be = u64::from(sb.inodes_per_group) * geom.group_count;
    if should_be > u64::from(u32::MAX) {
        out.abort = Some(format!(
            "superblock would have too many inodes ({should_be})"
        ));
        return out;
    }
    if u64::from(sb.inodes_count) != should_be {
        out.abort = Some(format!(
            "inode count in superblock is {}, should be {should_be} (not fixed under -n: corruption found in superblock)",
            sb.inodes_count
        ));
        return out;
    }
    if sb.rev_level > 0 {
        if let Some(why) = bad_value(
            "first_ino",
            u64::from(sb.first_ino),
            Some(GOOD_OLD_FIRST_INO),
            Some(u64::from(sb.inodes_count)),
            false,
        ) {
            out.abort = Some(why);
            return out;
        }
    }
    if let Some(why) = bad_value(
        "inode_size",
        geom.inode_size,
        Some(GOOD_OLD_INODE_SIZE),
        Some(block_size),
        true,
    ) {
        out.abort = Some(why);
        return out;
    }
    if bpg != u64::from(extra.clusters_per_group).saturating_mul(ratio) {
        out.abort = Some(format!(
            "corruption found in superblock (block_size = {})",
            u64::from(extra.clusters_per_group).saturating_mul(ratio)
        ));
        return out;
    }
    if let Some(device) = device_blocks {
        if device < sb.blocks_count {
            out.invalid.push(Invalid {
                kind: InvalidKind::DeviceSize,
                message: format!(
                    "the filesystem size (according to the superblock) is {} blocks, the device holds {device}",
                    sb.blocks_count
                ),
            });
        }
    }
    let first_data_should_be = u32::from(sb.log_block_size == 0 && ratio == 1);
    if sb.first_data_block != first_data_should_be {
        out.abort = Some(format!(
            "superblock first_data_block = {}, should have been {first_data_should_be}",
            sb.first_data_block
        ));
        return out;
    }
    if geom.inode_size > GOOD_OLD_INODE_SIZE {
        let min = 4u16;
        let max = geom.inode_size - GOOD_OLD_INODE_SIZE;
        for (name, value) in [
            ("required", extra.min_extra_isize),
            ("desired", extra.want_extra_isize),
        ] {
            if value != 0 && (value < min || u64::from(value) > max || value & 3 != 0) {
                out.invalid.push(Invalid {
                    kind: InvalidKind::Superblock,
                    message: format!("bad {name} extra isize in superblock ({value})"),
                });
            }
        }
    }
    if sb.has_meta_bg() && u64::from(sb.first_meta_bg) > geom.desc_blocks {
        out.invalid.push(Invalid {
            kind: InvalidKind::Superblock,
            message: format!(
                "first_meta_bg is too big ({}, max value {})",
                sb.first_meta_bg, geom.desc_blocks
            ),
        });
    }

    let flex_bg = sb.feature_incompat & EXT4_FEATURE_INCOMPAT_FLEX_BG != 0;
    let csum_flag = has_group_desc_csum(sb);
    let mut first_block = u64::from(sb.first_data_block);
    let mut last_block = sb.blocks_count.saturating_sub(1);
    let mut free_blocks: u64 = 0;
    let mut free_inodes: u32 = 0;
    let mut push = |message: String| {
        out.invalid.push(Invalid {
            kind: InvalidKind::Descriptor,
            message,
        })
    };
    for (group, desc) in (0u64..).zip(descs.iter()) {
        if !flex_bg {
            first_block = group_first_block(sb, group);
            last_block = group_last_block(sb, geom, group);
        }
        if desc.block_bitmap < first_block || desc.block_bitmap > last_block {
            push(format!(
                "block bitmap for group {group} is not in group (block {})",
                desc.block_bitmap
            ));
        }
        if desc.inode_bitmap < first_block || desc.inode_bitmap > last_block {
            push(format!(
                "inode bitmap for group {group} is not in group (block {})",
                desc.inode_bitmap
            ));
        }
        let table_last = desc
            .inode_table
            .wrapping_add(geom.inode_blocks_per_group)
            .wrapping_sub(1);
        if desc.inode_table < first_block || table_last > last_block {
            push(format!(
                "inode table for group {group} is not in group (block {})",
                desc.inode_table
            ));
        }
        free_blocks = free_blocks.wrapping_add(u64::from(desc.free_blocks_count));
        free_inodes = free_inodes.wrapping_add(desc.free_inodes_count);
        if u64::from(desc.free_blocks_count) > bpg
            || desc.free_inodes_count > sb.inodes_per_group
            || desc.used_dirs_count > sb.inodes_per_group
        {
            push(format!(
                "group {group} counts are out of range ({} free blocks, {} free inodes, {} directories)",
                desc.free_blocks_count, desc.free_inodes_count, desc.used_dirs_count
            ));
        }
        if !desc.checksum_ok() {
            push(format!(
                "group descriptor {group} checksum is 0x{:04x}, should be 0x{:04x}",
                desc.checksum,
                desc.computed_checksum.unwrap_or(0)
            ));
        }
        if !csum_flag
            && (desc.flags & (EXT2_BG_BLOCK_UNINIT | EXT2_BG_INODE_UNINIT) != 0
                || desc.itable_unused != 0)
        {
            push(format!(
                "group descriptor {group} marked uninitialized without feature set"
            ));
        }
        if group + 1 == geom.group_count && desc.flags & EXT2_BG_BLOCK_UNINIT != 0 {
            push("last group block bitmap uninitialized".to_string());
        }
        if csum_flag
            && (desc.itable_unused > desc.free_inodes_count
                || desc.itable_unused > sb.inodes_per_group)
        {
            push(format!(
                "group descriptor {group} has invalid unused inodes count {}",
                desc.itable_unused
            ));
        }
    }
    out.group_free_blocks = free_blocks.wrapping_mul(ratio);
    out.group_free_inodes = free_inodes;
    if sb.free_blocks_count > sb.blocks_count || sb.free_inodes_count > sb.inodes_count {
        out.invalid.push(Invalid {
            kind: InvalidKind::Superblock,
            message: format!(
                "superblock free counts exceed the totals ({} free of {} blocks, {} free of {} inodes)",
                sb.free_blocks_count, sb.blocks_count, sb.free_inodes_count, sb.inodes_count
            ),
        });
    }
    // e2fsck_validate_quota_inodes (e2fsck/quota.c): reserved inodes other than the old
    // quota inodes 3 and 4, or beyond s_inodes_count.
    for (name, ino) in ["user", "group", "project"]
        .into_iter()
        .zip(extra.quota_inums)
    {
        let reserved = matches!(ino, 1 | 2 | 5 | 6 | 7 | 8 | 9 | 10);
        if ino != 0 && (reserved || ino > sb.inodes_count) {
            out.invalid.push(Invalid {
                kind: InvalidKind::Superblock,
                message: format!("invalid {name} quota inode {ino}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The range set answers like a plain bitmap of the same blocks, whatever the marks.
        #[test]
        fn block_set_agrees_with_a_bitmap(
            marks in proptest::collection::vec((0u64..200, 0u64..20), 0..40),
            probes in proptest::collection::vec((0u64..220, 0u64..10), 1..20),
        ) {
            let (start, end) = (5u64, 180u64);
            let mut set = BlockSet::new(start, end);
            let mut bits = [false; 240];
            for (first, count) in marks {
                set.mark(first, count);
                for block in first..first + count {
                    if (start..=end).contains(&block) {
                        bits[block as usize] = true;
                    }
                }
                for pair in set.ranges.windows(2) {
                    proptest::prop_assert!(pair[0].1 + 1 < pair[1].0, "sorted, apart: {:?}", set.ranges);
                }
            }
            for (first, len) in probes {
                let last = first + len;
                let expected = (first..=last).any(|b| bits[b as usize]);
                proptest::prop_assert_eq!(set.any(first, last), expected);
            }
        }
    }

    #[test]
    fn crc16_matches_known_vector() {
        // CRC-16/ARC of "123456789" with init 0 is 0xBB3D.
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn never_panics(mut raw in proptest::collection::vec(any::<u8>(), 1024..1100), table in proptest::collection::vec(any::<u8>(), 0..4096)) {
                raw[0x38] = 0x53;
                raw[0x39] = 0xEF;
                let Ok(sb) = Superblock::parse(&raw) else { return Ok(()) };
                let extra = SbExtra::parse(&raw);
                let _ = superblock_open_problem(&sb, &raw);
                for ignore in [false, true] {
                    let opts = OpenOptions { ignore_sb_errors: ignore, block_size: None };
                    if let Ok(geom) = validate_superblock(&sb, &raw, opts) {
                        let small = Geometry { group_count: geom.group_count.min(64), ..geom };
                        let _ = descriptor_table_blocks(&sb, &small, 0);
                        let _ = descriptor_table_blocks(&sb, &small, 8193);
                        let descs: Vec<GroupDesc> = (0..small.group_count).filter_map(|g| parse_desc(&sb, &extra, &small, &table, g)).collect();
                        let _ = check_desc(&sb, &extra, &small, &descs);
                        let _ = check_super_block(&sb, &extra, &small, &descs, Some(1000));
                    }
                }
            }

            #[test]
            fn checks_never_panic_on_any_geometry(
                mut raw in proptest::collection::vec(any::<u8>(), 1024..1025),
                table in proptest::collection::vec(any::<u8>(), 0..2048),
                block_size in 0u64..(1 << 20),
                desc_size in 0u64..2048,
                inode_size in 0u64..(1 << 17),
                ipb in any::<u64>(),
                groups in 0u64..16,
                desc_blocks in any::<u64>(),
                ratio in any::<u64>(),
                device in any::<Option<u64>>(),
            ) {
                raw[0x38] = 0x53;
                raw[0x39] = 0xEF;
                let sb = Superblock::parse(&raw).expect("magic set");
                let extra = SbExtra::parse(&raw);
                let geom = Geometry {
                    block_size,
                    cluster_ratio: ratio,
                    desc_size,
                    descs_per_block: block_size.checked_div(desc_size).unwrap_or(0),
                    inode_size,
                    inode_blocks_per_group: ipb,
                    group_count: groups,
                    desc_blocks,
                };
                let descs: Vec<GroupDesc> = (0..groups).filter_map(|g| parse_desc(&sb, &extra, &geom, &table, g)).collect();
                let _ = check_desc(&sb, &extra, &geom, &descs);
                let _ = check_super_block(&sb, &extra, &geom, &descs, device);
                let small = Geometry { desc_blocks: desc_blocks % 64, ..geom };
                let _ = descriptor_table_blocks(&sb, &small, 0);
                let _ = descriptor_table_blocks(&sb, &small, 1);
            }

            #[test]
            fn desc_parsing_never_panics(table in proptest::collection::vec(any::<u8>(), 0..300), group in 0u64..20, dsize in 0u64..2048) {
                let mut raw = vec![0u8; 1024];
                raw[0x38] = 0x53;
                raw[0x39] = 0xEF;
                raw[0x60] = 0x80;
                raw[0x64] = 0x10;
                let sb = Superblock::parse(&raw).expect("parse");
                let extra = SbExtra::parse(&raw);
                let geom = Geometry { block_size: 1024, cluster_ratio: 1, desc_size: dsize, descs_per_block: 1, inode_size: 128, inode_blocks_per_group: 1, group_count: 20, desc_blocks: 20 };
                let _ = parse_desc(&sb, &extra, &geom, &table, group);
            }
        }
    }
}
