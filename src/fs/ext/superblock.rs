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
    pub fn feature_names(&self) -> Vec<String> {
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

/// Helpers shared by the unit tests of this module tree: build real images with the
/// e2fsprogs tools in a temporary directory and read back what dumpe2fs prints.
#[cfg(test)]
pub(crate) mod test_images {
    use std::collections::BTreeMap;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The path of an e2fsprogs tool, looked up in the sbin directories first.
    pub(crate) fn tool(name: &str) -> PathBuf {
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
            let candidate = Path::new(dir).join(name);
            if candidate.exists() {
                return candidate;
            }
        }
        PathBuf::from(name)
    }

    /// Runs a tool, panicking with its output when it fails; returns stdout.
    pub(crate) fn run(name: &str, args: &[&str]) -> String {
        let output = Command::new(tool(name))
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {name}: {err}"));
        assert!(
            output.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Creates a sparse image of `size_mib` MiB and formats it with `mkfs` (`-q -F` plus `args`).
    pub(crate) fn make_image(
        dir: &Path,
        name: &str,
        mkfs: &str,
        size_mib: u64,
        args: &[&str],
    ) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).expect("create image");
        file.set_len(size_mib * 1024 * 1024).expect("size image");
        drop(file);
        let path_str = path.to_str().expect("utf-8 path");
        let mut all = vec!["-q", "-F"];
        all.extend_from_slice(args);
        all.push(path_str);
        run(mkfs, &all);
        path
    }

    /// `len` bytes at `offset` of the file.
    pub(crate) fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
        let mut file = std::fs::File::open(path).expect("open image");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).expect("read");
        buf
    }

    /// Overwrites bytes at `offset` of the file.
    pub(crate) fn write_at(path: &Path, offset: u64, data: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open image rw");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(data).expect("write");
    }

    /// Runs `debugfs -w` with one request per line.
    pub(crate) fn debugfs_write(path: &Path, requests: &[&str]) {
        let script = path.with_extension("debugfs");
        std::fs::write(&script, requests.join("\n") + "\n").expect("write debugfs script");
        run(
            "debugfs",
            &[
                "-w",
                "-f",
                script.to_str().expect("utf-8"),
                path.to_str().expect("utf-8"),
            ],
        );
    }

    /// Parses `Key: value` lines of dumpe2fs output (first occurrence of each key wins).
    pub(crate) fn parse_fields(text: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                fields
                    .entry(key.trim().to_owned())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
        fields
    }

    /// `dumpe2fs -h` (with `-f` when `force`), parsed; tolerates a non-zero exit status
    /// (dumpe2fs exits non-zero on a bad checksum but still prints).
    pub(crate) fn dumpe2fs_header(path: &Path, force: bool) -> BTreeMap<String, String> {
        let mut args = vec!["-h"];
        if force {
            args.push("-f");
        }
        args.push(path.to_str().expect("utf-8"));
        let output = Command::new(tool("dumpe2fs"))
            .args(&args)
            .output()
            .expect("run dumpe2fs");
        parse_fields(&String::from_utf8_lossy(&output.stdout))
    }

    /// A field of dumpe2fs output that must be present.
    pub(crate) fn field<'a>(fields: &'a BTreeMap<String, String>, key: &str) -> &'a str {
        fields
            .get(key)
            .unwrap_or_else(|| panic!("dumpe2fs did not print {key:?}: {fields:#?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::test_images::*;
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn primary(path: &Path) -> (Vec<u8>, Superblock) {
        let raw = read_at(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
        let sb = Superblock::parse(&raw).expect("parse primary superblock");
        (raw, sb)
    }

    /// Asserts every header field we mirror equals what dumpe2fs prints.
    fn assert_matches_dumpe2fs(path: &Path) -> Superblock {
        let (raw, sb) = primary(path);
        let fields = dumpe2fs_header(path, false);
        assert_eq!(sb.state_string(), field(&fields, "Filesystem state"));
        let features = sb.feature_names();
        let expected_features = field(&fields, "Filesystem features");
        if features.is_empty() {
            assert_eq!(expected_features, "(none)");
        } else {
            assert_eq!(features.join(" "), expected_features);
        }
        assert_eq!(sb.blocks_count.to_string(), field(&fields, "Block count"));
        assert_eq!(sb.inodes_count.to_string(), field(&fields, "Inode count"));
        assert_eq!(
            sb.free_blocks_count.to_string(),
            field(&fields, "Free blocks")
        );
        assert_eq!(
            sb.free_inodes_count.to_string(),
            field(&fields, "Free inodes")
        );
        assert_eq!(sb.mnt_count.to_string(), field(&fields, "Mount count"));
        assert_eq!(
            sb.max_mnt_count.to_string(),
            field(&fields, "Maximum mount count")
        );
        assert_eq!(sb.errors_behavior(), field(&fields, "Errors behavior"));
        assert_eq!(
            sb.block_size().map(|b| b.to_string()).as_deref(),
            Some(field(&fields, "Block size"))
        );
        assert_eq!(
            sb.blocks_per_group.to_string(),
            field(&fields, "Blocks per group")
        );
        assert_eq!(
            sb.inodes_per_group.to_string(),
            field(&fields, "Inodes per group")
        );
        assert_eq!(
            sb.first_data_block.to_string(),
            field(&fields, "First block")
        );
        assert_eq!(
            crate::fs::uuid::format(&sb.uuid),
            field(&fields, "Filesystem UUID")
        );
        let label = if sb.volume_name.is_empty() {
            "<none>"
        } else {
            sb.volume_name.as_str()
        };
        assert_eq!(label, field(&fields, "Filesystem volume name"));
        assert_eq!(sb.inode_size.to_string(), field(&fields, "Inode size"));
        assert_eq!(sb.first_ino.to_string(), field(&fields, "First inode"));
        if sb.has_journal() {
            assert_eq!(sb.journal_inum.to_string(), field(&fields, "Journal inode"));
        }
        match fields.get("Checksum type").map(String::as_str) {
            Some("crc32c") => {
                assert!(sb.has_metadata_csum());
                assert_eq!(format!("{:#010x}", sb.checksum), field(&fields, "Checksum"));
                assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid);
            }
            _ => {
                assert!(!sb.has_metadata_csum());
                assert_eq!(verify_checksum(&raw), ChecksumStatus::Absent);
            }
        }
        assert!(sb.unknown_features().is_none());
        assert_eq!(
            sb.fs_bytes(),
            Some(sb.blocks_count * sb.block_size().expect("block size"))
        );
        sb
    }

    /// The first backup superblock sits where `backup_superblock_offsets` says first, and
    /// agrees with the primary.
    fn assert_backup_agrees(path: &Path, sb: &Superblock) {
        let candidates = backup_superblock_offsets(Some(sb));
        let (offset, block_size) = candidates[0];
        assert_eq!(Some(block_size), sb.block_size());
        let backup =
            Superblock::parse(&read_at(path, offset, SUPERBLOCK_SIZE)).expect("backup superblock");
        assert!(!features_differ(sb, &backup));
        assert_eq!(backup.uuid, sb.uuid);
        // The blind guess for the same block size finds the same copy.
        let guess = candidates
            .iter()
            .skip(1)
            .find(|(_, size)| *size == block_size)
            .copied();
        if guess.is_none() {
            // It was deduplicated because it is the same offset as the geometric one.
            assert!(candidates.iter().filter(|(off, _)| *off == offset).count() == 1);
        }
    }

    #[test]
    fn real_images_match_dumpe2fs() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let configs: &[(&str, &str, u64, &[&str])] = &[
            (
                "ext4-1k.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-L", "one-k"],
            ),
            (
                "ext4-4k-csum64.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "metadata_csum,64bit"],
            ),
            (
                "ext4-1k-csum64.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-O", "metadata_csum,64bit"],
            ),
            (
                "ext4-4k-nocsum.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "^metadata_csum"],
            ),
            (
                "ext4-1k-nocsum.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-O", "^metadata_csum,^64bit"],
            ),
            ("ext3-1k.img", "mkfs.ext3", 20, &["-b", "1024"]),
            ("ext3-4k.img", "mkfs.ext3", 160, &["-b", "4096"]),
            ("ext2-1k.img", "mkfs.ext2", 20, &["-b", "1024"]),
            (
                "ext2-4k.img",
                "mkfs.ext2",
                160,
                &["-b", "4096", "-L", "a-label-16chars!"],
            ),
        ];
        for (name, mkfs, size, args) in configs {
            let path = make_image(dir.path(), name, mkfs, *size, args);
            let sb = assert_matches_dumpe2fs(&path);
            assert_backup_agrees(&path, &sb);
            assert_eq!(sb.state_string(), "clean");
            assert!(!sb.needs_recovery());
            assert_eq!(sb.has_journal(), *mkfs != "mkfs.ext2", "{name}");
            assert_eq!(sb.has_extents(), *mkfs == "mkfs.ext4", "{name}");
            assert!(sb.first_error.is_none() && sb.last_error.is_none());
            assert_eq!(
                sb.group_count(),
                Some(
                    (sb.blocks_count - u64::from(sb.first_data_block))
                        .div_ceil(u64::from(sb.blocks_per_group))
                )
            );
        }
    }

    #[test]
    fn debugfs_edited_state_errors_and_counts() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "edit.img", "mkfs.ext4", 20, &["-b", "1024"]);
        for (state, expected) in [
            ("0", "not clean"),
            ("3", "clean with errors"),
            ("2", "not clean with errors"),
            ("5", "clean"),
            ("33", "clean"),
        ] {
            debugfs_write(&path, &[&format!("ssv state {state}")]);
            let sb = assert_matches_dumpe2fs(&path);
            assert_eq!(sb.state_string(), expected);
            assert_eq!(sb.state.to_string(), state);
        }
        debugfs_write(
            &path,
            &[
                "ssv state 1",
                "ssv mnt_count 7",
                "ssv max_mnt_count 5",
                "ssv errors 3",
            ],
        );
        let sb = assert_matches_dumpe2fs(&path);
        assert_eq!((sb.mnt_count, sb.max_mnt_count), (7, 5));
        assert_eq!(sb.errors_behavior(), "Panic");
        debugfs_write(&path, &["ssv errors 2"]);
        assert_eq!(
            assert_matches_dumpe2fs(&path).errors_behavior(),
            "Remount read-only"
        );
        debugfs_write(&path, &["ssv errors 9"]);
        assert_eq!(
            assert_matches_dumpe2fs(&path).errors_behavior(),
            "Unknown (continue)"
        );
        debugfs_write(
            &path,
            &[
                "ssv errors 1",
                "ssv max_mnt_count -1",
                "feature needs_recovery",
            ],
        );
        let sb = assert_matches_dumpe2fs(&path);
        assert!(sb.needs_recovery());
        assert!(
            sb.feature_names()
                .iter()
                .any(|name| name == "needs_recovery")
        );
        assert_eq!(sb.max_mnt_count, -1);
    }

    #[test]
    fn debugfs_error_history_matches_dumpe2fs() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "errors.img", "mkfs.ext4", 20, &["-b", "1024"]);
        debugfs_write(
            &path,
            &[
                "ssv error_count 3",
                "ssv first_error_time 20240101120000",
                "ssv first_error_func ext4_lookup",
                "ssv first_error_line 1234",
                "ssv first_error_ino 12",
                "ssv first_error_block 4321",
                "ssv last_error_time 20240102130000",
                "ssv last_error_line 99",
                "ssv last_orphan 12",
            ],
        );
        // debugfs 1.47.0 cannot set the errcode bytes: write 0x27A/0x27B directly and
        // re-seal the checksum.
        let (mut raw, _) = primary(&path);
        raw[0x27A] = 5;
        raw[0x27B] = 42;
        // A function name filling all 32 bytes, with no terminating NUL.
        raw[0x1E0..0x200].copy_from_slice(b"a_function_name_of_32_chars_abcd");
        let sealed = !crate::fs::crc::crc32c(&raw[..0x3FC]);
        raw[0x3FC..].copy_from_slice(&sealed.to_le_bytes());
        write_at(&path, SUPERBLOCK_OFFSET, &raw);
        let sb = assert_matches_dumpe2fs(&path);
        let fields = dumpe2fs_header(&path, false);
        assert_eq!(sb.error_count.to_string(), field(&fields, "FS Error count"));
        assert_eq!(
            sb.last_orphan.to_string(),
            field(&fields, "First orphan inode")
        );
        let first = sb.first_error.clone().expect("first error");
        assert_eq!(first.function, field(&fields, "First error function"));
        assert_eq!(first.line.to_string(), field(&fields, "First error line #"));
        assert_eq!(
            first.inode.to_string(),
            field(&fields, "First error inode #")
        );
        assert_eq!(
            first.block.to_string(),
            field(&fields, "First error block #")
        );
        assert_eq!(first.errcode_name(), field(&fields, "First error err"));
        assert_eq!(first.errcode_name(), "EFSCORRUPTED");
        // 2024-01-01 12:00:00 UTC.
        assert_eq!(first.time, 1_704_110_400);
        let last = sb.last_error.clone().expect("last error");
        assert_eq!(last.function, field(&fields, "Last error function"));
        assert_eq!(last.function.len(), 32);
        assert_eq!(last.line.to_string(), field(&fields, "Last error line #"));
        assert_eq!(last.time, 1_704_200_400);
        assert!(!fields.contains_key("Last error inode #"));
        assert_eq!(last.errcode_name(), field(&fields, "Last error err"));
        assert_eq!(last.errcode_name(), "UNKNOWN_ERRCODE_42");
        // Clearing the time hides the block even though the other fields stay.
        debugfs_write(&path, &["ssv first_error_time 0"]);
        let sb = assert_matches_dumpe2fs(&path);
        assert!(sb.first_error.is_none());
        assert!(!dumpe2fs_header(&path, false).contains_key("First error function"));
        assert!(sb.last_error.is_some());
    }

    #[test]
    fn corrupted_checksum_is_invalid() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(
            dir.path(),
            "csum.img",
            "mkfs.ext4",
            20,
            &["-O", "metadata_csum,64bit"],
        );
        let (raw, sb) = primary(&path);
        assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid);
        write_at(&path, SUPERBLOCK_OFFSET + 0x78, b"X");
        let (raw, corrupted) = primary(&path);
        assert_eq!(corrupted.volume_name, "X");
        match verify_checksum(&raw) {
            ChecksumStatus::Invalid { stored, computed } => {
                assert_eq!(stored, sb.checksum);
                assert_ne!(computed, stored);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        // Without metadata_csum there is nothing to verify.
        let path = make_image(
            dir.path(),
            "nocsum.img",
            "mkfs.ext4",
            20,
            &["-O", "^metadata_csum"],
        );
        write_at(&path, SUPERBLOCK_OFFSET + 0x78, b"X");
        assert_eq!(verify_checksum(&primary(&path).0), ChecksumStatus::Absent);
    }

    #[test]
    fn every_feature_bit_named_like_dumpe2fs() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "all.img", "mkfs.ext4", 20, &["-b", "1024"]);
        debugfs_write(
            &path,
            &[
                "ssv feature_compat 0xffffffff",
                "ssv feature_ro_compat 0xffffffff",
                "ssv feature_incompat 0xffffffff",
            ],
        );
        let (_, sb) = primary(&path);
        let fields = dumpe2fs_header(&path, true);
        assert_eq!(
            sb.feature_names().join(" "),
            field(&fields, "Filesystem features")
        );
        let unknown = sb.unknown_features().expect("unknown features");
        assert!(
            unknown.contains("lazy_bg") && unknown.contains("FEATURE_I31"),
            "{unknown}"
        );
        assert!(!unknown.contains("has_journal"), "{unknown}");
    }

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
