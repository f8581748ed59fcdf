//! The ext2/3/4 superblock (`struct ext2_super_block`, 1024 bytes at byte 1024): parsing, state and feature reporting, checksum verification and backup-superblock locations.

use super::ExtError;
use super::bytes::{array, c_string, le_u16, le_u32, le_u64, u8_at};
use super::features;

/// Byte offset of the primary superblock from the start of the filesystem, for every block size.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the on-disk superblock (`sizeof(struct ext2_super_block)`).
pub const SUPERBLOCK_SIZE: usize = 1024;
/// `EXT2_SUPER_MAGIC`, stored at superblock offset 0x38 (`s_magic`).
pub const EXT_MAGIC: u16 = 0xEF53;

/// `s_state` bit: unmounted cleanly (`EXT2_VALID_FS`).
pub const EXT2_VALID_FS: u16 = 0x0001;
/// `s_state` bit: errors detected (`EXT2_ERROR_FS`).
pub const EXT2_ERROR_FS: u16 = 0x0002;
/// `s_state` bit: orphan recovery in progress (`EXT3_ORPHAN_FS`, kernel `EXT4_ORPHAN_FS`).
pub const EXT3_ORPHAN_FS: u16 = 0x0004;
/// `s_state` bit: fast-commit replay in progress (`EXT4_FC_REPLAY`).
pub const EXT4_FC_REPLAY: u16 = 0x0020;

/// `s_errors`: continue on errors (`EXT2_ERRORS_CONTINUE`).
pub const EXT2_ERRORS_CONTINUE: u16 = 1;
/// `s_errors`: remount read-only (`EXT2_ERRORS_RO`).
pub const EXT2_ERRORS_RO: u16 = 2;
/// `s_errors`: panic (`EXT2_ERRORS_PANIC`).
pub const EXT2_ERRORS_PANIC: u16 = 3;

/// compat: directory preallocation (`EXT2_FEATURE_COMPAT_DIR_PREALLOC`).
pub const EXT2_FEATURE_COMPAT_DIR_PREALLOC: u32 = 0x0001;
/// compat: imagic inodes (`EXT2_FEATURE_COMPAT_IMAGIC_INODES`).
pub const EXT2_FEATURE_COMPAT_IMAGIC_INODES: u32 = 0x0002;
/// compat: has a journal (`EXT3_FEATURE_COMPAT_HAS_JOURNAL`).
pub const EXT3_FEATURE_COMPAT_HAS_JOURNAL: u32 = 0x0004;
/// compat: extended attributes (`EXT2_FEATURE_COMPAT_EXT_ATTR`).
pub const EXT2_FEATURE_COMPAT_EXT_ATTR: u32 = 0x0008;
/// compat: reserved GDT blocks for resize (`EXT2_FEATURE_COMPAT_RESIZE_INODE`).
pub const EXT2_FEATURE_COMPAT_RESIZE_INODE: u32 = 0x0010;
/// compat: hashed directories (`EXT2_FEATURE_COMPAT_DIR_INDEX`).
pub const EXT2_FEATURE_COMPAT_DIR_INDEX: u32 = 0x0020;
/// compat: lazy block groups (`EXT2_FEATURE_COMPAT_LAZY_BG`).
pub const EXT2_FEATURE_COMPAT_LAZY_BG: u32 = 0x0040;
/// compat: exclude bitmap, printed "snapshot_bitmap" (`EXT2_FEATURE_COMPAT_EXCLUDE_BITMAP`).
pub const EXT2_FEATURE_COMPAT_EXCLUDE_BITMAP: u32 = 0x0100;
/// compat: only two backup superblocks (`EXT4_FEATURE_COMPAT_SPARSE_SUPER2`).
pub const EXT4_FEATURE_COMPAT_SPARSE_SUPER2: u32 = 0x0200;
/// compat: fast commits in the journal (`EXT4_FEATURE_COMPAT_FAST_COMMIT`).
pub const EXT4_FEATURE_COMPAT_FAST_COMMIT: u32 = 0x0400;
/// compat: stable inode numbers (`EXT4_FEATURE_COMPAT_STABLE_INODES`).
pub const EXT4_FEATURE_COMPAT_STABLE_INODES: u32 = 0x0800;
/// compat: orphan file (`EXT4_FEATURE_COMPAT_ORPHAN_FILE`).
pub const EXT4_FEATURE_COMPAT_ORPHAN_FILE: u32 = 0x1000;

/// incompat: compression (`EXT2_FEATURE_INCOMPAT_COMPRESSION`).
pub const EXT2_FEATURE_INCOMPAT_COMPRESSION: u32 = 0x0001;
/// incompat: file type in directory entries (`EXT2_FEATURE_INCOMPAT_FILETYPE`).
pub const EXT2_FEATURE_INCOMPAT_FILETYPE: u32 = 0x0002;
/// incompat: journal needs replay, printed "needs_recovery" (`EXT3_FEATURE_INCOMPAT_RECOVER`).
pub const EXT3_FEATURE_INCOMPAT_RECOVER: u32 = 0x0004;
/// incompat: this is an external journal device (`EXT3_FEATURE_INCOMPAT_JOURNAL_DEV`).
pub const EXT3_FEATURE_INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// incompat: meta block groups (`EXT2_FEATURE_INCOMPAT_META_BG`).
pub const EXT2_FEATURE_INCOMPAT_META_BG: u32 = 0x0010;
/// incompat: extents (`EXT3_FEATURE_INCOMPAT_EXTENTS`).
pub const EXT3_FEATURE_INCOMPAT_EXTENTS: u32 = 0x0040;
/// incompat: 64-bit block numbers (`EXT4_FEATURE_INCOMPAT_64BIT`).
pub const EXT4_FEATURE_INCOMPAT_64BIT: u32 = 0x0080;
/// incompat: multiple mount protection (`EXT4_FEATURE_INCOMPAT_MMP`).
pub const EXT4_FEATURE_INCOMPAT_MMP: u32 = 0x0100;
/// incompat: flexible block groups (`EXT4_FEATURE_INCOMPAT_FLEX_BG`).
pub const EXT4_FEATURE_INCOMPAT_FLEX_BG: u32 = 0x0200;
/// incompat: extended attributes in inodes (`EXT4_FEATURE_INCOMPAT_EA_INODE`).
pub const EXT4_FEATURE_INCOMPAT_EA_INODE: u32 = 0x0400;
/// incompat: data in directory entries (`EXT4_FEATURE_INCOMPAT_DIRDATA`).
pub const EXT4_FEATURE_INCOMPAT_DIRDATA: u32 = 0x1000;
/// incompat: metadata checksum seed in the superblock (`EXT4_FEATURE_INCOMPAT_CSUM_SEED`).
pub const EXT4_FEATURE_INCOMPAT_CSUM_SEED: u32 = 0x2000;
/// incompat: large directories (`EXT4_FEATURE_INCOMPAT_LARGEDIR`).
pub const EXT4_FEATURE_INCOMPAT_LARGEDIR: u32 = 0x4000;
/// incompat: inline data (`EXT4_FEATURE_INCOMPAT_INLINE_DATA`).
pub const EXT4_FEATURE_INCOMPAT_INLINE_DATA: u32 = 0x8000;
/// incompat: encryption (`EXT4_FEATURE_INCOMPAT_ENCRYPT`).
pub const EXT4_FEATURE_INCOMPAT_ENCRYPT: u32 = 0x10000;
/// incompat: case-insensitive names (`EXT4_FEATURE_INCOMPAT_CASEFOLD`).
pub const EXT4_FEATURE_INCOMPAT_CASEFOLD: u32 = 0x20000;

/// ro_compat: sparse superblock backups (`EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER`).
pub const EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER: u32 = 0x0001;
/// ro_compat: files over 2 GiB (`EXT2_FEATURE_RO_COMPAT_LARGE_FILE`).
pub const EXT2_FEATURE_RO_COMPAT_LARGE_FILE: u32 = 0x0002;
/// ro_compat: huge files (`EXT4_FEATURE_RO_COMPAT_HUGE_FILE`).
pub const EXT4_FEATURE_RO_COMPAT_HUGE_FILE: u32 = 0x0008;
/// ro_compat: group descriptor checksums, printed "uninit_bg" (`EXT4_FEATURE_RO_COMPAT_GDT_CSUM`).
pub const EXT4_FEATURE_RO_COMPAT_GDT_CSUM: u32 = 0x0010;
/// ro_compat: more than 65000 subdirectories (`EXT4_FEATURE_RO_COMPAT_DIR_NLINK`).
pub const EXT4_FEATURE_RO_COMPAT_DIR_NLINK: u32 = 0x0020;
/// ro_compat: large inodes reserve extra space (`EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE`).
pub const EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE: u32 = 0x0040;
/// ro_compat: snapshots (`EXT4_FEATURE_RO_COMPAT_HAS_SNAPSHOT`).
pub const EXT4_FEATURE_RO_COMPAT_HAS_SNAPSHOT: u32 = 0x0080;
/// ro_compat: quota inodes (`EXT4_FEATURE_RO_COMPAT_QUOTA`).
pub const EXT4_FEATURE_RO_COMPAT_QUOTA: u32 = 0x0100;
/// ro_compat: cluster allocation (`EXT4_FEATURE_RO_COMPAT_BIGALLOC`).
pub const EXT4_FEATURE_RO_COMPAT_BIGALLOC: u32 = 0x0200;
/// ro_compat: metadata checksums (`EXT4_FEATURE_RO_COMPAT_METADATA_CSUM`).
pub const EXT4_FEATURE_RO_COMPAT_METADATA_CSUM: u32 = 0x0400;
/// ro_compat: replicas (`EXT4_FEATURE_RO_COMPAT_REPLICA`).
pub const EXT4_FEATURE_RO_COMPAT_REPLICA: u32 = 0x0800;
/// ro_compat: may only be mounted read-only (`EXT4_FEATURE_RO_COMPAT_READONLY`).
pub const EXT4_FEATURE_RO_COMPAT_READONLY: u32 = 0x1000;
/// ro_compat: project quotas (`EXT4_FEATURE_RO_COMPAT_PROJECT`).
pub const EXT4_FEATURE_RO_COMPAT_PROJECT: u32 = 0x2000;
/// ro_compat: shared blocks (`EXT4_FEATURE_RO_COMPAT_SHARED_BLOCKS`).
pub const EXT4_FEATURE_RO_COMPAT_SHARED_BLOCKS: u32 = 0x4000;
/// ro_compat: fs-verity (`EXT4_FEATURE_RO_COMPAT_VERITY`).
pub const EXT4_FEATURE_RO_COMPAT_VERITY: u32 = 0x8000;
/// ro_compat: the orphan file may be non-empty (`EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT`).
pub const EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;

/// `s_checksum_type` value for CRC-32C (`EXT2_CRC32C_CHKSUM`).
pub const EXT2_CRC32C_CHKSUM: u8 = 1;
/// `s_jnl_backup_type` value meaning `s_jnl_blocks` holds the journal inode's i_block (`EXT3_JNL_BACKUP_BLOCKS`).
pub const EXT3_JNL_BACKUP_BLOCKS: u8 = 1;

/// Largest valid `s_log_block_size` (64 KiB blocks; `EXT2_MAX_BLOCK_LOG_SIZE` - 10).
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// Offset of `s_checksum`, also the length of the checksummed region.
const CHECKSUM_OFFSET: usize = 0x3FC;

/// One recorded filesystem error: the `s_first_error_*` or `s_last_error_*` block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorRecord {
    /// Seconds since the epoch: `s_first_error_time` (0x198, hi byte 0x278) or
    /// `s_last_error_time` (0x1CC, hi byte 0x279).
    pub time: u64,
    /// Inode involved: `s_first_error_ino` (0x19C) / `s_last_error_ino` (0x1D0); 0 if none.
    pub inode: u32,
    /// Block involved: `s_first_error_block` (0x1A0) / `s_last_error_block` (0x1D8); 0 if none.
    pub block: u64,
    /// Kernel function: `s_first_error_func` (0x1A8, 32 bytes) / `s_last_error_func` (0x1E0).
    pub function: String,
    /// Source line: `s_first_error_line` (0x1C8) / `s_last_error_line` (0x1D4).
    pub line: u32,
    /// `EXT4_ERR_*` code: `s_first_error_errcode` (0x27A) / `s_last_error_errcode` (0x27B).
    pub errcode: u8,
}

impl ErrorRecord {
    /// The errcode as dumpe2fs prints it on "First error err:" (e.g. `EFSCORRUPTED`).
    pub fn errcode_name(&self) -> String {
        features::errcode_name(self.errcode)
    }
}

/// The fields of `struct ext2_super_block` that snapguard uses, named after the kernel
/// fields minus the `s_` prefix. All on-disk values are little-endian.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Superblock {
    /// `s_inodes_count` (0x00).
    pub inodes_count: u32,
    /// `s_blocks_count_lo` (0x04) | `s_blocks_count_hi` (0x150) << 32, the hi part only with incompat 64bit.
    pub blocks_count: u64,
    /// `s_free_blocks_count_lo` (0x0C) | `s_free_blocks_hi` (0x158) << 32, the hi part only with 64bit.
    pub free_blocks_count: u64,
    /// `s_free_inodes_count` (0x10).
    pub free_inodes_count: u32,
    /// `s_first_data_block` (0x14): 1 for 1 KiB blocks, else 0.
    pub first_data_block: u32,
    /// `s_log_block_size` (0x18): block size is 1024 << this.
    pub log_block_size: u32,
    /// `s_log_cluster_size` (0x1C).
    pub log_cluster_size: u32,
    /// `s_blocks_per_group` (0x20).
    pub blocks_per_group: u32,
    /// `s_inodes_per_group` (0x28).
    pub inodes_per_group: u32,
    /// `s_mtime` (0x2C, hi byte 0x275): last mount time.
    pub mtime: u64,
    /// `s_wtime` (0x30, hi byte 0x274): last superblock write time.
    pub wtime: u64,
    /// `s_mnt_count` (0x34): mounts since the last check.
    pub mnt_count: u16,
    /// `s_max_mnt_count` (0x36, signed): ≤ 0 disables the mount-count check.
    pub max_mnt_count: i16,
    /// `s_magic` (0x38): always [`EXT_MAGIC`] after a successful parse.
    pub magic: u16,
    /// `s_state` (0x3A): [`EXT2_VALID_FS`], [`EXT2_ERROR_FS`], ...
    pub state: u16,
    /// `s_errors` (0x3C): behaviour on errors.
    pub errors: u16,
    /// `s_minor_rev_level` (0x3E).
    pub minor_rev_level: u16,
    /// `s_lastcheck` (0x40, hi byte 0x277): time of the last check.
    pub lastcheck: u64,
    /// `s_checkinterval` (0x44): seconds between forced checks, 0 = disabled.
    pub checkinterval: u32,
    /// `s_creator_os` (0x48): 0 = Linux.
    pub creator_os: u32,
    /// `s_rev_level` (0x4C): 0 = good old, 1 = dynamic.
    pub rev_level: u32,
    /// `s_first_ino` (0x54): first non-reserved inode (rev 1 only).
    pub first_ino: u32,
    /// `s_inode_size` (0x58): on-disk inode size (rev 1 only; rev 0 means 128).
    pub inode_size: u16,
    /// `s_feature_compat` (0x5C).
    pub feature_compat: u32,
    /// `s_feature_incompat` (0x60).
    pub feature_incompat: u32,
    /// `s_feature_ro_compat` (0x64).
    pub feature_ro_compat: u32,
    /// `s_uuid` (0x68).
    pub uuid: [u8; 16],
    /// `s_volume_name` (0x78, 16 bytes): up to the first NUL, lossy UTF-8.
    pub volume_name: String,
    /// `s_last_mounted` (0x88, 64 bytes): up to the first NUL, lossy UTF-8.
    pub last_mounted: String,
    /// `s_journal_uuid` (0xD0): UUID of an external journal.
    pub journal_uuid: [u8; 16],
    /// `s_journal_inum` (0xE0): journal inode, normally 8.
    pub journal_inum: u32,
    /// `s_journal_dev` (0xE4): device number of an external journal.
    pub journal_dev: u32,
    /// `s_last_orphan` (0xE8): head of the orphan inode list, 0 = none.
    pub last_orphan: u32,
    /// `s_jnl_backup_type` (0xFD): [`EXT3_JNL_BACKUP_BLOCKS`] when `jnl_blocks` is valid.
    pub jnl_backup_type: u8,
    /// `s_desc_size` (0xFE): group descriptor size with 64bit.
    pub desc_size: u16,
    /// `s_first_meta_bg` (0x104): first meta block group (meta_bg only).
    pub first_meta_bg: u32,
    /// `s_mkfs_time` (0x108, hi byte 0x276).
    pub mkfs_time: u64,
    /// `s_jnl_blocks` (0x10C): the journal inode's i_block[15], then i_size_high, i_size.
    pub jnl_blocks: [u32; 17],
    /// `s_mmp_update_interval` (0x166).
    pub mmp_update_interval: u16,
    /// `s_mmp_block` (0x168): block holding the MMP structure.
    pub mmp_block: u64,
    /// `s_backup_bgs` (0x24C): the two backup groups with sparse_super2.
    pub backup_bgs: [u32; 2],
    /// `s_checksum_type` (0x175): 1 = CRC-32C.
    pub checksum_type: u8,
    /// `s_kbytes_written` (0x178): lifetime KiB written.
    pub kbytes_written: u64,
    /// `s_error_count` (0x194): errors since the last check.
    pub error_count: u32,
    /// The `s_first_error_*` block, `Some` only when `s_first_error_time` is non-zero.
    pub first_error: Option<ErrorRecord>,
    /// The `s_last_error_*` block, `Some` only when `s_last_error_time` is non-zero.
    pub last_error: Option<ErrorRecord>,
    /// `s_orphan_file_inum` (0x280).
    pub orphan_file_inum: u32,
    /// `s_checksum` (0x3FC).
    pub checksum: u32,
}

/// Result of checking `s_checksum` (metadata_csum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChecksumStatus {
    /// No checksum to verify (feature off, unknown checksum type, or too few bytes).
    Absent,
    /// The stored checksum matches.
    Valid,
    /// The stored checksum does not match the computed one.
    Invalid {
        /// Value stored on disk.
        stored: u32,
        /// Value computed from the bytes.
        computed: u32,
    },
}

/// A time stored as a low u32 plus a high byte (`s_*_time` + `s_*_time_hi`).
fn split_time(raw: &[u8], lo_offset: usize, hi_offset: usize) -> u64 {
    let lo = u64::from(le_u32(raw, lo_offset).unwrap_or(0));
    let hi = u64::from(u8_at(raw, hi_offset).unwrap_or(0));
    (hi << 32) | lo
}

/// Field offsets of one error block (first or last).
struct ErrorOffsets {
    time: usize,
    time_hi: usize,
    inode: usize,
    block: usize,
    function: usize,
    line: usize,
    errcode: usize,
}

const FIRST_ERROR: ErrorOffsets = ErrorOffsets {
    time: 0x198,
    time_hi: 0x278,
    inode: 0x19C,
    block: 0x1A0,
    function: 0x1A8,
    line: 0x1C8,
    errcode: 0x27A,
};

const LAST_ERROR: ErrorOffsets = ErrorOffsets {
    time: 0x1CC,
    time_hi: 0x279,
    inode: 0x1D0,
    block: 0x1D8,
    function: 0x1E0,
    line: 0x1D4,
    errcode: 0x27B,
};

fn error_record(raw: &[u8], offsets: &ErrorOffsets) -> Option<ErrorRecord> {
    let time = split_time(raw, offsets.time, offsets.time_hi);
    if time == 0 {
        return None;
    }
    Some(ErrorRecord {
        time,
        inode: le_u32(raw, offsets.inode).unwrap_or(0),
        block: le_u64(raw, offsets.block).unwrap_or(0),
        function: c_string(raw, offsets.function, 32),
        line: le_u32(raw, offsets.line).unwrap_or(0),
        errcode: u8_at(raw, offsets.errcode).unwrap_or(0),
    })
}

impl Superblock {
    /// Parses the first 1024 bytes of `bytes` (the superblock itself, i.e. bytes
    /// 1024..2048 of the filesystem for the primary copy). Only the magic is checked;
    /// every other field is taken as found.
    pub fn parse(bytes: &[u8]) -> Result<Self, ExtError> {
        let raw: [u8; SUPERBLOCK_SIZE] = array(bytes, 0).ok_or(ExtError::Truncated {
            what: "ext superblock",
            needed: SUPERBLOCK_SIZE,
            got: bytes.len(),
        })?;
        let raw = &raw[..];
        let u16_at = |offset| le_u16(raw, offset).unwrap_or(0);
        let u32_at = |offset| le_u32(raw, offset).unwrap_or(0);
        let magic = u16_at(0x38);
        if magic != EXT_MAGIC {
            return Err(ExtError::BadMagic {
                what: "ext superblock",
                found: u32::from(magic),
            });
        }
        let feature_incompat = u32_at(0x60);
        let is_64bit = feature_incompat & EXT4_FEATURE_INCOMPAT_64BIT != 0;
        let with_hi = |lo: u32, hi_offset: usize| {
            let hi = if is_64bit { u32_at(hi_offset) } else { 0 };
            (u64::from(hi) << 32) | u64::from(lo)
        };
        let mut jnl_blocks = [0u32; 17];
        for (index, slot) in jnl_blocks.iter_mut().enumerate() {
            *slot = u32_at(0x10C + 4 * index);
        }
        Ok(Superblock {
            inodes_count: u32_at(0x00),
            blocks_count: with_hi(u32_at(0x04), 0x150),
            free_blocks_count: with_hi(u32_at(0x0C), 0x158),
            free_inodes_count: u32_at(0x10),
            first_data_block: u32_at(0x14),
            log_block_size: u32_at(0x18),
            log_cluster_size: u32_at(0x1C),
            blocks_per_group: u32_at(0x20),
            inodes_per_group: u32_at(0x28),
            mtime: split_time(raw, 0x2C, 0x275),
            wtime: split_time(raw, 0x30, 0x274),
            mnt_count: u16_at(0x34),
            max_mnt_count: i16::from_le_bytes(u16_at(0x36).to_le_bytes()),
            magic,
            state: u16_at(0x3A),
            errors: u16_at(0x3C),
            minor_rev_level: u16_at(0x3E),
            lastcheck: split_time(raw, 0x40, 0x277),
            checkinterval: u32_at(0x44),
            creator_os: u32_at(0x48),
            rev_level: u32_at(0x4C),
            first_ino: u32_at(0x54),
            inode_size: u16_at(0x58),
            feature_compat: u32_at(0x5C),
            feature_incompat,
            feature_ro_compat: u32_at(0x64),
            uuid: array(raw, 0x68).unwrap_or_default(),
            volume_name: c_string(raw, 0x78, 16),
            last_mounted: c_string(raw, 0x88, 64),
            journal_uuid: array(raw, 0xD0).unwrap_or_default(),
            journal_inum: u32_at(0xE0),
            journal_dev: u32_at(0xE4),
            last_orphan: u32_at(0xE8),
            jnl_backup_type: u8_at(raw, 0xFD).unwrap_or(0),
            desc_size: u16_at(0xFE),
            first_meta_bg: u32_at(0x104),
            mkfs_time: split_time(raw, 0x108, 0x276),
            jnl_blocks,
            mmp_update_interval: u16_at(0x166),
            mmp_block: le_u64(raw, 0x168).unwrap_or(0),
            backup_bgs: [u32_at(0x24C), u32_at(0x250)],
            checksum_type: u8_at(raw, 0x175).unwrap_or(0),
            kbytes_written: le_u64(raw, 0x178).unwrap_or(0),
            error_count: u32_at(0x194),
            first_error: error_record(raw, &FIRST_ERROR),
            last_error: error_record(raw, &LAST_ERROR),
            orphan_file_inum: u32_at(0x280),
            checksum: u32_at(CHECKSUM_OFFSET),
        })
    }

    /// Block size in bytes (`1024 << s_log_block_size`), or `None` when
    /// `s_log_block_size` > 6 (more than 64 KiB, invalid).
    pub fn block_size(&self) -> Option<u64> {
        if self.log_block_size > MAX_LOG_BLOCK_SIZE {
            return None;
        }
        1024u64.checked_shl(self.log_block_size)
    }

    /// Number of block groups: ceil((blocks_count - first_data_block) / blocks_per_group).
    /// `None` when blocks_per_group is 0 or blocks_count ≤ first_data_block.
    pub fn group_count(&self) -> Option<u64> {
        let per_group = u64::from(self.blocks_per_group);
        if per_group == 0 {
            return None;
        }
        let data_blocks = self
            .blocks_count
            .checked_sub(u64::from(self.first_data_block))?;
        if data_blocks == 0 {
            return None;
        }
        Some(data_blocks.div_ceil(per_group))
    }

    /// Size of the filesystem in bytes (blocks_count × block size), `None` on overflow or an invalid block size.
    pub fn fs_bytes(&self) -> Option<u64> {
        self.blocks_count.checked_mul(self.block_size()?)
    }

    /// The on-disk inode size: 128 for revision 0 (`EXT2_GOOD_OLD_INODE_SIZE`), else `s_inode_size`.
    pub fn effective_inode_size(&self) -> u64 {
        if self.rev_level == 0 {
            128
        } else {
            u64::from(self.inode_size)
        }
    }

    /// compat has_journal (0x4).
    pub fn has_journal(&self) -> bool {
        self.feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL != 0
    }

    /// incompat needs_recovery (0x4): the journal must be replayed.
    pub fn needs_recovery(&self) -> bool {
        self.feature_incompat & EXT3_FEATURE_INCOMPAT_RECOVER != 0
    }

    /// incompat journal_dev (0x8): this is an external journal device, not a filesystem.
    pub fn is_journal_device(&self) -> bool {
        self.feature_incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV != 0
    }

    /// ro_compat metadata_csum (0x400) and `s_checksum_type` == 1 (CRC-32C).
    pub fn has_metadata_csum(&self) -> bool {
        self.feature_ro_compat & EXT4_FEATURE_RO_COMPAT_METADATA_CSUM != 0
            && self.checksum_type == EXT2_CRC32C_CHKSUM
    }

    /// incompat mmp (0x100).
    pub fn has_mmp(&self) -> bool {
        self.feature_incompat & EXT4_FEATURE_INCOMPAT_MMP != 0
    }

    /// incompat 64bit (0x80).
    pub fn is_64bit(&self) -> bool {
        self.feature_incompat & EXT4_FEATURE_INCOMPAT_64BIT != 0
    }

    /// compat orphan_file (0x1000).
    pub fn has_orphan_file(&self) -> bool {
        self.feature_compat & EXT4_FEATURE_COMPAT_ORPHAN_FILE != 0
    }

    /// ro_compat orphan_present (0x10000): the orphan file may hold entries.
    pub fn orphan_present(&self) -> bool {
        self.feature_ro_compat & EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT != 0
    }

    /// incompat extent (0x40).
    pub fn has_extents(&self) -> bool {
        self.feature_incompat & EXT3_FEATURE_INCOMPAT_EXTENTS != 0
    }

    /// incompat meta_bg (0x10).
    pub fn has_meta_bg(&self) -> bool {
        self.feature_incompat & EXT2_FEATURE_INCOMPAT_META_BG != 0
    }

    /// "Filesystem state:" exactly as tune2fs -l / dumpe2fs print it: "clean" or
    /// "not clean" from [`EXT2_VALID_FS`], plus " with errors" for [`EXT2_ERROR_FS`].
    /// Other bits (orphan, fast-commit replay) are not shown, as in e2p.
    pub fn state_string(&self) -> &'static str {
        let valid = self.state & EXT2_VALID_FS != 0;
        let errors = self.state & EXT2_ERROR_FS != 0;
        match (valid, errors) {
            (true, false) => "clean",
            (false, false) => "not clean",
            (true, true) => "clean with errors",
            (false, true) => "not clean with errors",
        }
    }

    /// "Errors behavior:" as dumpe2fs prints it from `s_errors`.
    pub fn errors_behavior(&self) -> &'static str {
        match self.errors {
            EXT2_ERRORS_CONTINUE => "Continue",
            EXT2_ERRORS_RO => "Remount read-only",
            EXT2_ERRORS_PANIC => "Panic",
            _ => "Unknown (continue)",
        }
    }

    /// The "Filesystem features:" names in dumpe2fs order and spelling, unknown bits as
    /// `FEATURE_<C|I|R><bit>`. Empty when no bit is set (dumpe2fs prints "(none)").
    pub fn feature_names(&self) -> Vec<std::borrow::Cow<'static, str>> {
        features::feature_names(
            self.feature_compat,
            self.feature_incompat,
            self.feature_ro_compat,
        )
    }

    /// `None` when e2fsck 1.47 supports every feature bit set; otherwise a description
    /// naming the unsupported ones (e2fsck refuses such a filesystem).
    pub fn unknown_features(&self) -> Option<String> {
        let names = features::unsupported_feature_names(
            self.feature_compat,
            self.feature_incompat,
            self.feature_ro_compat,
        );
        if names.is_empty() {
            None
        } else {
            Some(format!(
                "unsupported feature(s) for e2fsck 1.47: {}",
                names.join(" ")
            ))
        }
    }
}

/// Verifies `s_checksum` on the raw 1024 superblock bytes. A checksum is present only with
/// ro_compat metadata_csum and `s_checksum_type` == 1; it is the raw CRC-32C (seed ~0, no
/// final XOR) of bytes 0..0x3FC, i.e. `!crc32c(..)` of a standard implementation.
/// Fewer than 1024 bytes give [`ChecksumStatus::Absent`].
pub fn verify_checksum(raw: &[u8]) -> ChecksumStatus {
    let Some(ro_compat) = le_u32(raw, 0x64) else {
        return ChecksumStatus::Absent;
    };
    let checksum_type = u8_at(raw, 0x175);
    let (Some(covered), Some(stored)) = (raw.get(..CHECKSUM_OFFSET), le_u32(raw, CHECKSUM_OFFSET))
    else {
        return ChecksumStatus::Absent;
    };
    if ro_compat & EXT4_FEATURE_RO_COMPAT_METADATA_CSUM == 0
        || checksum_type != Some(EXT2_CRC32C_CHKSUM)
    {
        return ChecksumStatus::Absent;
    }
    let computed = !crate::fs::crc::crc32c(covered);
    if computed == stored {
        ChecksumStatus::Valid
    } else {
        ChecksumStatus::Invalid { stored, computed }
    }
}

/// Candidate byte offsets of backup superblocks, with the block size each assumes, in the
/// order e2fsck tries them (e2fsck/util.c `get_backup_sb`): first group 1 of the primary's
/// geometry (`s_first_data_block + s_blocks_per_group`) when that geometry is sane, then
/// the blind guesses for block sizes 1 KiB..64 KiB (block `blocksize * 8`, +1 for 1 KiB).
/// Duplicates are dropped. A superblock found at one of them is parsed with [`Superblock::parse`].
pub fn backup_superblock_offsets(primary: Option<&Superblock>) -> Vec<(u64, u64)> {
    let mut candidates: Vec<(u64, u64)> = Vec::new();
    let geometric = primary.and_then(|sb| {
        let block_size = sb.block_size()?;
        if sb.blocks_per_group == 0 {
            return None;
        }
        let block = u64::from(sb.blocks_per_group) + u64::from(sb.first_data_block);
        Some((block.checked_mul(block_size)?, block_size))
    });
    candidates.extend(geometric);
    for log in 0..=MAX_LOG_BLOCK_SIZE {
        let block_size = 1024u64 << log;
        let mut block = block_size * 8;
        if block_size == 1024 {
            block += 1;
        }
        let offset = block * block_size;
        if !candidates.iter().any(|&(seen, _)| seen == offset) {
            candidates.push((offset, block_size));
        }
    }
    candidates
}

/// incompat bits e2fsck ignores when comparing with a backup (`FEATURE_INCOMPAT_IGNORE`):
/// extent and needs_recovery.
const BACKUP_IGNORED_INCOMPAT: u32 = EXT3_FEATURE_INCOMPAT_EXTENTS | EXT3_FEATURE_INCOMPAT_RECOVER;
/// ro_compat bits e2fsck ignores when comparing with a backup (`FEATURE_RO_COMPAT_IGNORE`):
/// large_file, dir_nlink and orphan_present.
const BACKUP_IGNORED_RO_COMPAT: u32 = EXT2_FEATURE_RO_COMPAT_LARGE_FILE
    | EXT4_FEATURE_RO_COMPAT_DIR_NLINK
    | EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT;

/// Mirrors e2fsck's `check_backup_super_block` ("primary superblock features different
/// from backup"): a backup that fails e2fsck's sanity test (rev > 1, block size > 64 KiB,
/// inode size < 128) is skipped, i.e. reported as not different; otherwise the two differ
/// when compat, incompat (ignoring extent and needs_recovery), ro_compat (ignoring
/// large_file, dir_nlink, orphan_present), the block count, the inode count or the UUID differ.
pub fn features_differ(primary: &Superblock, backup: &Superblock) -> bool {
    let backup_sane = backup.magic == EXT_MAGIC
        && backup.rev_level <= 1
        && backup.log_block_size <= MAX_LOG_BLOCK_SIZE
        && backup.effective_inode_size() >= 128;
    if !backup_sane {
        return false;
    }
    primary.feature_compat != backup.feature_compat
        || primary.feature_incompat & !BACKUP_IGNORED_INCOMPAT
            != backup.feature_incompat & !BACKUP_IGNORED_INCOMPAT
        || primary.feature_ro_compat & !BACKUP_IGNORED_RO_COMPAT
            != backup.feature_ro_compat & !BACKUP_IGNORED_RO_COMPAT
        || primary.blocks_count != backup.blocks_count
        || primary.inodes_count != backup.inodes_count
        || primary.uuid != backup.uuid
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_features_is_empty() {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        raw[0x38..0x3A].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        let sb = Superblock::parse(&raw).expect("parse");
        assert!(sb.feature_names().is_empty());
        assert_eq!(sb.state_string(), "not clean");
        assert_eq!(sb.errors_behavior(), "Unknown (continue)");
        assert_eq!(sb.block_size(), Some(1024));
        assert_eq!(sb.group_count(), None);
    }

    #[test]
    fn parse_rejects_short_and_bad_magic() {
        assert!(matches!(
            Superblock::parse(&[0u8; 1023]),
            Err(ExtError::Truncated {
                needed: 1024,
                got: 1023,
                ..
            })
        ));
        assert!(matches!(
            Superblock::parse(&[0u8; 1024]),
            Err(ExtError::BadMagic { found: 0, .. })
        ));
        let message = Superblock::parse(&[]).expect_err("empty").to_string();
        assert_eq!(message, "ext superblock truncated: need 1024 bytes, got 0");
    }

    #[test]
    fn hi_fields_and_64bit() {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        raw[0x38..0x3A].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        raw[0x04..0x08].copy_from_slice(&5u32.to_le_bytes());
        raw[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        raw[0x30..0x34].copy_from_slice(&7u32.to_le_bytes());
        raw[0x274] = 2;
        raw[0x18] = 6;
        let sb = Superblock::parse(&raw).expect("parse");
        assert_eq!(sb.blocks_count, 5, "hi ignored without 64bit");
        assert_eq!(sb.wtime, (2u64 << 32) | 7);
        assert_eq!(sb.block_size(), Some(65536));
        raw[0x60] = 0x80;
        raw[0x18] = 7;
        let sb = Superblock::parse(&raw).expect("parse");
        assert_eq!(sb.blocks_count, (1u64 << 32) | 5);
        assert_eq!(sb.block_size(), None);
        assert_eq!(sb.fs_bytes(), None);
    }

    #[test]
    fn backup_offsets_order() {
        let guesses = backup_superblock_offsets(None);
        assert_eq!(
            guesses,
            vec![
                (8193 * 1024, 1024),
                (16384 * 2048, 2048),
                (32768 * 4096, 4096),
                (65536 * 8192, 8192),
                (131072 * 16384, 16384),
                (262144 * 32768, 32768),
                (524288 * 65536, 65536),
            ]
        );
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        raw[0x38..0x3A].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        raw[0x18] = 2;
        raw[0x20..0x24].copy_from_slice(&32768u32.to_le_bytes());
        let sb = Superblock::parse(&raw).expect("parse");
        let with_primary = backup_superblock_offsets(Some(&sb));
        assert_eq!(with_primary[0], (32768 * 4096, 4096));
        assert_eq!(with_primary.len(), 7, "the 4k guess is deduplicated");
        raw[0x20..0x24].copy_from_slice(&16384u32.to_le_bytes());
        let sb = Superblock::parse(&raw).expect("parse");
        let with_primary = backup_superblock_offsets(Some(&sb));
        assert_eq!(with_primary[0], (16384 * 4096, 4096));
        assert_eq!(with_primary.len(), 8);
    }

    #[test]
    fn features_differ_ignores_what_e2fsck_ignores() {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        raw[0x38..0x3A].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        raw[0x4C] = 1;
        raw[0x58] = 0; // inode size 256
        raw[0x59] = 1;
        raw[0x5C] = 0x3c;
        let primary = Superblock::parse(&raw).expect("parse");
        let mut other = primary.clone();
        other.feature_incompat |= EXT3_FEATURE_INCOMPAT_RECOVER | EXT3_FEATURE_INCOMPAT_EXTENTS;
        other.feature_ro_compat |= EXT2_FEATURE_RO_COMPAT_LARGE_FILE
            | EXT4_FEATURE_RO_COMPAT_DIR_NLINK
            | EXT4_FEATURE_RO_COMPAT_ORPHAN_PRESENT;
        other.state = 0;
        other.mnt_count = 9;
        assert!(!features_differ(&primary, &other));
        let mut differs = primary.clone();
        differs.feature_compat |= EXT2_FEATURE_COMPAT_DIR_PREALLOC;
        assert!(features_differ(&primary, &differs));
        let mut differs = primary.clone();
        differs.feature_ro_compat |= EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
        assert!(features_differ(&primary, &differs));
        let mut differs = primary.clone();
        differs.blocks_count += 1;
        assert!(features_differ(&primary, &differs));
        let mut differs = primary.clone();
        differs.uuid[3] ^= 1;
        assert!(features_differ(&primary, &differs));
        // An insane backup is skipped, as e2fsck does.
        let mut insane = differs.clone();
        insane.rev_level = 2;
        assert!(!features_differ(&primary, &insane));
        let mut insane = differs;
        insane.inode_size = 64;
        assert!(!features_differ(&primary, &insane));
    }

    fn exercise(sb: &Superblock, raw: &[u8]) {
        let _ = sb.block_size();
        let _ = sb.group_count();
        let _ = sb.fs_bytes();
        let _ = sb.feature_names();
        let _ = sb.unknown_features();
        let _ = sb.state_string();
        let _ = sb.errors_behavior();
        let _ = sb.first_error.as_ref().map(ErrorRecord::errcode_name);
        let _ = backup_superblock_offsets(Some(sb));
        let _ = features_differ(sb, sb);
        let _ = verify_checksum(raw);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            if let Ok(sb) = Superblock::parse(&bytes) {
                exercise(&sb, &bytes);
            }
            let _ = verify_checksum(&bytes);
        }

        #[test]
        fn parse_with_magic_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 1024..1100)) {
            bytes[0x38] = 0x53;
            bytes[0x39] = 0xEF;
            let sb = Superblock::parse(&bytes).expect("magic is set");
            exercise(&sb, &bytes);
        }
    }
}
