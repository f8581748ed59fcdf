//! f2fs superblock and checkpoint packs: pure parsers, bytes in, structs out, no I/O.
//!
//! Layout after the kernel's `include/linux/f2fs_fs.h` and f2fs-tools (`fsck/mount.c`):
//!
//! * Two superblock copies, `struct f2fs_super_block` (3072 bytes), at byte 1024 of block 0
//!   and of block 1 (4096 + 1024). Both tools use the first copy that passes their checks.
//! * With feature `sb_checksum` (0x800) the superblock carries a CRC at `checksum_offset`
//!   (always 3068): the raw CRC-32 (IEEE, reflected) seeded with the magic 0xF2F52010,
//!   without the final inversion, over the bytes before it.
//! * Two checkpoint packs, at `cp_blkaddr` and at `cp_blkaddr + 2^log_blocks_per_seg` (in
//!   blocks). A pack starts and ends with a copy of `struct f2fs_checkpoint`; each copy
//!   has the same CRC at its `checksum_offset` (normally 4092). A pack is valid when both
//!   copies pass the CRC and carry the same `checkpoint_ver`; the current pack is the
//!   valid one with the later version (`ver_after`, a wrapping comparison; pack 1 wins a
//!   tie), as `get_valid_checkpoint` picks it.
//! * `ckpt_flags` (checkpoint + 0x84) says whether the last checkpoint was written at a
//!   clean unmount (`CP_UMOUNT_FLAG`) and whether the kernel asked for fsck. The
//!   superblock's `s_stop_reason` (counts) and `s_errors` (a bitmap) record why the kernel
//!   stopped checkpointing and which inconsistencies it met (kernel 6.1 and 6.2).

use super::bytes::{array, le_u16, le_u32, le_u64};

/// The superblock magic (`F2FS_SUPER_MAGIC`), LE u32 at superblock + 0.
pub const MAGIC: u32 = 0xF2F5_2010;
/// Byte offset of the superblock inside its block (`F2FS_SUPER_OFFSET`).
pub const SUPER_OFFSET: u64 = 1024;
/// Size of `struct f2fs_super_block`.
pub const SUPER_SIZE: usize = 3072;
/// Where the superblock CRC lives when `sb_checksum` is on (`SB_CHKSUM_OFFSET`).
pub const SB_CHKSUM_OFFSET: u32 = 3068;
/// Feature bit: the superblock carries a CRC (`F2FS_FEATURE_SB_CHKSUM`).
pub const FEATURE_SB_CHKSUM: u32 = 0x0800;
/// Smallest and largest block sizes f2fs-tools accept (4 KiB and 16 KiB pages).
pub const MIN_LOG_BLOCKSIZE: u32 = 12;
/// See [`MIN_LOG_BLOCKSIZE`].
pub const MAX_LOG_BLOCKSIZE: u32 = 14;
/// The only segment size f2fs supports: 512 blocks.
pub const LOG_BLOCKS_PER_SEG: u32 = 9;
/// Smallest checkpoint `checksum_offset` (`CP_MIN_CHKSUM_OFFSET`: the end of the fixed
/// part, where `sit_nat_version_bitmap` starts at 0xC0).
pub const CP_MIN_CHKSUM_OFFSET: u32 = 0xC0;
/// The usual checkpoint `checksum_offset`: the last 4 bytes of a 4 KiB block
/// (`CP_CHKSUM_OFFSET`).
pub const CP_CHKSUM_OFFSET: u32 = 4092;
/// Checkpoint blocks are 4 KiB (`F2FS_BLKSIZE`) in every f2fs-tools release that checks
/// their CRC; the CRC covers this much.
pub const CP_BLOCK_SIZE: usize = 4096;

/// `ckpt_flags` bits (`CP_*_FLAG` in `f2fs_fs.h`).
pub const CP_UMOUNT: u32 = 0x0001;
/// Orphan inodes are recorded in the pack.
pub const CP_ORPHAN_PRESENT: u32 = 0x0002;
/// Compacted summaries.
pub const CP_COMPACT_SUM: u32 = 0x0004;
/// The kernel stopped checkpointing after an error (`f2fs_stop_checkpoint`).
pub const CP_ERROR: u32 = 0x0008;
/// The kernel asked for a full fsck (`SBI_NEED_FSCK` written out).
pub const CP_FSCK: u32 = 0x0010;
/// Written by a fast-boot (Android) checkpoint.
pub const CP_FASTBOOT: u32 = 0x0020;
/// Roll-forward recovery checks node CRCs.
pub const CP_CRC_RECOVERY: u32 = 0x0040;
/// The NAT bits at the end of the pack are valid.
pub const CP_NAT_BITS: u32 = 0x0080;
/// Discard was done.
pub const CP_TRIMMED: u32 = 0x0100;
/// Roll-forward recovery without node CRCs.
pub const CP_NOCRC_RECOVERY: u32 = 0x0200;
/// The checkpoint CRC moved before the large NAT bitmap.
pub const CP_LARGE_NAT_BITMAP: u32 = 0x0400;
/// Quota files need fsck.
pub const CP_QUOTA_NEED_FSCK: u32 = 0x0800;
/// Mounted with `checkpoint=disable`.
pub const CP_DISABLED: u32 = 0x1000;
/// `checkpoint=disable` quick variant (fsck.f2fs prints no name for it).
pub const CP_DISABLED_QUICK: u32 = 0x2000;
/// An online resize was in progress.
pub const CP_RESIZEFS: u32 = 0x4000;

/// The flags fsck.f2fs names, in the order `print_cp_state` prints them.
const FLAG_NAMES: [(u32, &str); 14] = [
    (CP_QUOTA_NEED_FSCK, "quota_need_fsck"),
    (CP_LARGE_NAT_BITMAP, "large_nat_bitmap"),
    (CP_NOCRC_RECOVERY, "allow_nocrc"),
    (CP_TRIMMED, "trimmed"),
    (CP_NAT_BITS, "nat_bits"),
    (CP_CRC_RECOVERY, "crc"),
    (CP_FASTBOOT, "fastboot"),
    (CP_FSCK, "fsck"),
    (CP_ERROR, "error"),
    (CP_COMPACT_SUM, "compacted_summary"),
    (CP_ORPHAN_PRESENT, "orphan_inodes"),
    (CP_DISABLED, "disabled"),
    (CP_RESIZEFS, "resizefs"),
    (CP_UMOUNT, "unmount"),
];

/// `s_stop_reason[i]` names, as f2fs-tools prints them (`stop_reason_str`).
const STOP_REASONS: [&str; 13] = [
    "shutdown",
    "fault_inject",
    "meta_page",
    "write_fail",
    "corrupted_summary",
    "update_inode",
    "flush_fail",
    "no_segment",
    "corrupted_free_bitmap",
    "corrupted nid",
    "read_meta_fail",
    "read_node_fail",
    "read_data_fail",
];
/// Index of `STOP_CP_REASON_SHUTDOWN`: an admin's shutdown ioctl, not a fault.
pub const STOP_REASON_SHUTDOWN: usize = 0;

/// `s_errors` bit names, as f2fs-tools prints them (`errors_str`).
const ERROR_NAMES: [&str; 17] = [
    "corrupted_cluster",
    "fail_decompression",
    "invalid_blkaddr",
    "corrupted_dirent",
    "corrupted_inode",
    "inconsistent_summary",
    "inconsistent_footer",
    "inconsistent_sum_type",
    "corrupted_journal",
    "inconsistent_node_count",
    "inconsistent_block_count",
    "invalid_curseg",
    "inconsistent_sit",
    "corrupted_verity_xattr",
    "corrupted_xattr",
    "invalid_node_reference",
    "inconsistent_nat",
];

/// Why an f2fs structure could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum F2fsError {
    /// Fewer bytes than the structure needs.
    #[error("{what} truncated: need {needed} bytes, got {got}")]
    Truncated {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// The magic number is wrong: not an f2fs superblock.
    #[error("bad magic 0x{0:08x} (want 0xf2f52010)")]
    BadMagic(u32),
}

/// The raw CRC-32 f2fs uses (`f2fs_cal_crc32`): IEEE polynomial, reflected, started from
/// `seed`, no final inversion. Chains: `f2fs_crc32(f2fs_crc32(s, a), b) == f2fs_crc32(s, a ++ b)`.
pub fn f2fs_crc32(seed: u32, data: &[u8]) -> u32 {
    super::crc::crc32_raw(seed, data)
}

/// Byte offset of superblock copy `copy` (0 or 1) from the start of the volume.
pub fn super_offset(copy: usize) -> u64 {
    (copy as u64) * 4096 + SUPER_OFFSET
}

/// Result of checking a CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// The CRC matches.
    Valid,
    /// The CRC does not match.
    Invalid {
        /// The CRC on disk.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// `checksum_offset` is impossible, so no CRC can be checked.
    BadOffset(u32),
    /// The superblock has no CRC (feature `sb_checksum` off, the mkfs default).
    Absent,
}

/// The superblock fields that matter (offsets from the start of the superblock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// `major_ver` (u16 at 4).
    pub major_ver: u16,
    /// `minor_ver` (u16 at 6).
    pub minor_ver: u16,
    /// `log_sectorsize` (u32 at 8).
    pub log_sectorsize: u32,
    /// `log_sectors_per_block` (u32 at 12).
    pub log_sectors_per_block: u32,
    /// `log_blocksize` (u32 at 16): 12 for 4 KiB blocks.
    pub log_blocksize: u32,
    /// `log_blocks_per_seg` (u32 at 20): always 9.
    pub log_blocks_per_seg: u32,
    /// `segs_per_sec` (u32 at 24).
    pub segs_per_sec: u32,
    /// `secs_per_zone` (u32 at 28).
    pub secs_per_zone: u32,
    /// `checksum_offset` (u32 at 32): 3068 with `sb_checksum`, else 0.
    pub checksum_offset: u32,
    /// `block_count` (u64 at 36): the size of the filesystem in blocks.
    pub block_count: u64,
    /// `section_count` (u32 at 44).
    pub section_count: u32,
    /// `segment_count` (u32 at 48).
    pub segment_count: u32,
    /// `segment_count_ckpt` (u32 at 52).
    pub segment_count_ckpt: u32,
    /// `segment0_blkaddr` (u32 at 72).
    pub segment0_blkaddr: u32,
    /// `cp_blkaddr` (u32 at 76 = 0x4C): the first checkpoint pack, in blocks.
    pub cp_blkaddr: u32,
    /// `sit_blkaddr` (u32 at 80): where the checkpoint area ends.
    pub sit_blkaddr: u32,
    /// `root_ino`, `node_ino`, `meta_ino` (u32 at 96, 100, 104): 3, 1, 2.
    pub reserved_inos: [u32; 3],
    /// `uuid` (16 bytes at 108).
    pub uuid: [u8; 16],
    /// `volume_name` (512 UTF-16LE units at 124), up to the first NUL.
    pub label: String,
    /// `cp_payload` (u32 at 1664): extra blocks after the first checkpoint block.
    pub cp_payload: u32,
    /// `feature` (u32 at 2180).
    pub feature: u32,
    /// `s_stop_reason` (32 u8 counters at 2762), indexed by `STOP_CP_REASON_*`.
    pub stop_reason: [u8; 32],
    /// `s_errors` (16-byte LE bitmap at 2794), bits `ERROR_*`.
    pub errors: [u8; 16],
    /// `crc` (u32 at 3068).
    pub crc: u32,
}

impl Superblock {
    /// Parse a superblock copy (at least [`SUPER_SIZE`] bytes, starting at the superblock).
    pub fn parse(raw: &[u8]) -> Result<Self, F2fsError> {
        if raw.len() < SUPER_SIZE {
            return Err(F2fsError::Truncated {
                what: "f2fs superblock",
                needed: SUPER_SIZE,
                got: raw.len(),
            });
        }
        let truncated = || F2fsError::Truncated {
            what: "f2fs superblock",
            needed: SUPER_SIZE,
            got: raw.len(),
        };
        let u32_at = |off: usize| le_u32(raw, off).ok_or_else(truncated);
        let magic = u32_at(0)?;
        if magic != MAGIC {
            return Err(F2fsError::BadMagic(magic));
        }
        let units: Vec<u16> = (0..512)
            .map_while(|i| le_u16(raw, 124 + 2 * i))
            .take_while(|&u| u != 0)
            .collect();
        Ok(Superblock {
            major_ver: le_u16(raw, 4).ok_or_else(truncated)?,
            minor_ver: le_u16(raw, 6).ok_or_else(truncated)?,
            log_sectorsize: u32_at(8)?,
            log_sectors_per_block: u32_at(12)?,
            log_blocksize: u32_at(16)?,
            log_blocks_per_seg: u32_at(20)?,
            segs_per_sec: u32_at(24)?,
            secs_per_zone: u32_at(28)?,
            checksum_offset: u32_at(32)?,
            block_count: le_u64(raw, 36).ok_or_else(truncated)?,
            section_count: u32_at(44)?,
            segment_count: u32_at(48)?,
            segment_count_ckpt: u32_at(52)?,
            segment0_blkaddr: u32_at(72)?,
            cp_blkaddr: u32_at(76)?,
            sit_blkaddr: u32_at(80)?,
            reserved_inos: [u32_at(96)?, u32_at(100)?, u32_at(104)?],
            uuid: array(raw, 108).ok_or_else(truncated)?,
            label: String::from_utf16_lossy(&units),
            cp_payload: u32_at(1664)?,
            feature: u32_at(2180)?,
            stop_reason: array(raw, 2762).ok_or_else(truncated)?,
            errors: array(raw, 2794).ok_or_else(truncated)?,
            crc: u32_at(3068)?,
        })
    }

    /// Check the CRC of the raw superblock `raw` this was parsed from
    /// (`verify_sb_chksum`): only when feature `sb_checksum` is set.
    pub fn verify_checksum(&self, raw: &[u8]) -> ChecksumStatus {
        if self.feature & FEATURE_SB_CHKSUM == 0 {
            return ChecksumStatus::Absent;
        }
        if self.checksum_offset != SB_CHKSUM_OFFSET {
            return ChecksumStatus::BadOffset(self.checksum_offset);
        }
        let Some(covered) = raw.get(..SB_CHKSUM_OFFSET as usize) else {
            return ChecksumStatus::BadOffset(self.checksum_offset);
        };
        let computed = f2fs_crc32(MAGIC, covered);
        if computed == self.crc {
            ChecksumStatus::Valid
        } else {
            ChecksumStatus::Invalid {
                stored: self.crc,
                computed,
            }
        }
    }

    /// What makes this superblock unusable, after the geometry checks of f2fs-tools'
    /// `sanity_check_raw_super` that matter for finding the checkpoint; empty when sane.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(MIN_LOG_BLOCKSIZE..=MAX_LOG_BLOCKSIZE).contains(&self.log_blocksize) {
            out.push(format!("log_blocksize {}", self.log_blocksize));
        }
        if self.log_blocks_per_seg != LOG_BLOCKS_PER_SEG {
            out.push(format!("log_blocks_per_seg {}", self.log_blocks_per_seg));
        }
        if !(9..=12).contains(&self.log_sectorsize)
            || self
                .log_sectorsize
                .saturating_add(self.log_sectors_per_block)
                != self.log_blocksize
        {
            out.push(format!(
                "log_sectorsize {} with log_sectors_per_block {}",
                self.log_sectorsize, self.log_sectors_per_block
            ));
        }
        if self.segment_count == 0 || u64::from(self.segment_count) > self.block_count >> 9 {
            out.push(format!(
                "segment_count {} for block_count {}",
                self.segment_count, self.block_count
            ));
        }
        if self.segment0_blkaddr != self.cp_blkaddr {
            out.push(format!(
                "segment0_blkaddr {} differs from cp_blkaddr {}",
                self.segment0_blkaddr, self.cp_blkaddr
            ));
        }
        let cp_end = u64::from(self.segment_count_ckpt) << LOG_BLOCKS_PER_SEG;
        if self.segment_count_ckpt < 2
            || u64::from(self.cp_blkaddr) + cp_end != u64::from(self.sit_blkaddr)
        {
            out.push(format!(
                "checkpoint area {}+{} segments does not end at sit_blkaddr {}",
                self.cp_blkaddr, self.segment_count_ckpt, self.sit_blkaddr
            ));
        }
        if self.cp_payload > (1 << LOG_BLOCKS_PER_SEG) - 2 {
            out.push(format!("cp_payload {}", self.cp_payload));
        }
        if self.reserved_inos != [3, 1, 2] {
            out.push(format!(
                "root/node/meta inodes {}, {}, {} (want 3, 1, 2)",
                self.reserved_inos[0], self.reserved_inos[1], self.reserved_inos[2]
            ));
        }
        out
    }

    /// Block size in bytes (`1 << log_blocksize`), `None` when absurd.
    pub fn block_size(&self) -> Option<u64> {
        (self.log_blocksize <= 20).then(|| 1u64 << self.log_blocksize)
    }

    /// Size of the filesystem in bytes (`block_count × block size`).
    pub fn fs_bytes(&self) -> Option<u64> {
        self.block_count.checked_mul(self.block_size()?)
    }

    /// The first block of checkpoint pack `pack` (0 or 1): `cp_blkaddr`, then one
    /// segment further.
    pub fn cp_pack_block(&self, pack: usize) -> u64 {
        u64::from(self.cp_blkaddr) + ((pack as u64) << self.log_blocks_per_seg.min(32))
    }

    /// Blocks per segment (512).
    pub fn blocks_per_seg(&self) -> u64 {
        1u64 << self.log_blocks_per_seg.min(32)
    }

    /// The recorded stop reasons with their counts, named as f2fs-tools prints them.
    pub fn stop_reasons(&self) -> Vec<(String, u8)> {
        self.stop_reason
            .iter()
            .enumerate()
            .filter(|(_, count)| **count != 0)
            .map(|(i, &count)| {
                let name = STOP_REASONS
                    .get(i)
                    .map_or_else(|| format!("reason_{i}"), |n| (*n).to_string());
                (name, count)
            })
            .collect()
    }

    /// Whether a stop reason other than an admin's shutdown is recorded (f2fs-tools'
    /// `is_checkpoint_stop(sb, true)`, which makes fsck.f2fs repair).
    pub fn abnormal_stop(&self) -> bool {
        self.stop_reason
            .iter()
            .enumerate()
            .any(|(i, &c)| i != STOP_REASON_SHUTDOWN && c != 0)
    }

    /// The recorded error bits, named as f2fs-tools prints them.
    pub fn error_names(&self) -> Vec<String> {
        (0..self.errors.len() * 8)
            .filter(|&bit| {
                self.errors
                    .get(bit / 8)
                    .is_some_and(|b| b & (1 << (bit % 8)) != 0)
            })
            .map(|bit| {
                ERROR_NAMES
                    .get(bit)
                    .map_or_else(|| format!("error_{bit}"), |n| (*n).to_string())
            })
            .collect()
    }

    /// The UUID in the usual 8-4-4-4-12 form.
    pub fn uuid_string(&self) -> String {
        crate::fs::uuid::format(&self.uuid)
    }
}

/// The fields of `struct f2fs_checkpoint` that matter (offsets from the block start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `checkpoint_ver` (u64 at 0).
    pub version: u64,
    /// `user_block_count` (u64 at 8).
    pub user_block_count: u64,
    /// `valid_block_count` (u64 at 16).
    pub valid_block_count: u64,
    /// `free_segment_count` (u32 at 32).
    pub free_segment_count: u32,
    /// `ckpt_flags` (u32 at 0x84).
    pub flags: u32,
    /// `cp_pack_total_block_count` (u32 at 0x88): blocks in the pack, both copies included.
    pub pack_total_blocks: u32,
    /// `valid_node_count` (u32 at 0x90).
    pub valid_node_count: u32,
    /// `valid_inode_count` (u32 at 0x94).
    pub valid_inode_count: u32,
    /// `checksum_offset` (u32 at 0xA4): 4092 normally.
    pub checksum_offset: u32,
    /// `elapsed_time` (u64 at 0xA8): seconds the filesystem has been mounted.
    pub elapsed_time: u64,
}

/// Why a checkpoint pack is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Fewer bytes than a checkpoint block.
    #[error("checkpoint block truncated ({0} bytes)")]
    Truncated(usize),
    /// `checksum_offset` outside [0xC0, 4092].
    #[error("{which} checkpoint block has an impossible CRC offset {offset}")]
    BadCrcOffset {
        /// `first` or `last`.
        which: &'static str,
        /// The offset read.
        offset: u32,
    },
    /// The CRC does not match.
    #[error(
        "{which} checkpoint block CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
    )]
    Crc {
        /// `first` or `last`.
        which: &'static str,
        /// The CRC on disk.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// `cp_pack_total_block_count` is 0 or longer than a segment.
    #[error("pack length {0} blocks is impossible")]
    BadLength(u32),
    /// The two copies carry different versions: the pack was torn while being written.
    #[error(
        "first block has version {first:#x} but the last has {last:#x} (torn checkpoint write)"
    )]
    VersionMismatch {
        /// Version in the first block.
        first: u64,
        /// Version in the last block.
        last: u64,
    },
}

impl Checkpoint {
    /// Parse a checkpoint block without checking its CRC.
    pub fn parse(block: &[u8]) -> Result<Self, PackError> {
        let t = || PackError::Truncated(block.len());
        let u32_at = |off| le_u32(block, off).ok_or_else(t);
        let u64_at = |off| le_u64(block, off).ok_or_else(t);
        if block.len() < CP_BLOCK_SIZE {
            return Err(t());
        }
        Ok(Checkpoint {
            version: u64_at(0)?,
            user_block_count: u64_at(8)?,
            valid_block_count: u64_at(16)?,
            free_segment_count: u32_at(32)?,
            flags: u32_at(0x84)?,
            pack_total_blocks: u32_at(0x88)?,
            valid_node_count: u32_at(0x90)?,
            valid_inode_count: u32_at(0x94)?,
            checksum_offset: u32_at(0xA4)?,
            elapsed_time: u64_at(0xA8)?,
        })
    }

    /// Parse a checkpoint block and check its CRC (`verify_checksum_chksum` and
    /// `f2fs_checkpoint_chksum`: over [0, offset), and, when the CRC sits before the end
    /// of the block, continued over the bytes after it).
    pub fn parse_verified(block: &[u8], which: &'static str) -> Result<Self, PackError> {
        let cp = Self::parse(block)?;
        let offset = cp.checksum_offset;
        if !(CP_MIN_CHKSUM_OFFSET..=CP_CHKSUM_OFFSET).contains(&offset) {
            return Err(PackError::BadCrcOffset { which, offset });
        }
        let at = offset as usize;
        let stored = le_u32(block, at).ok_or(PackError::Truncated(block.len()))?;
        let head = block.get(..at).ok_or(PackError::Truncated(block.len()))?;
        let mut computed = f2fs_crc32(MAGIC, head);
        if offset < CP_CHKSUM_OFFSET {
            let tail = block
                .get(at + 4..CP_BLOCK_SIZE)
                .ok_or(PackError::Truncated(block.len()))?;
            computed = f2fs_crc32(computed, tail);
        }
        if stored != computed {
            return Err(PackError::Crc {
                which,
                stored,
                computed,
            });
        }
        Ok(cp)
    }

    /// The block index (from the pack start) of the pack's last block, which repeats the
    /// header; `Err` when the length is impossible for a segment of `blocks_per_seg`.
    pub fn last_block_index(&self, blocks_per_seg: u64) -> Result<u64, PackError> {
        let total = u64::from(self.pack_total_blocks);
        if total < 2 || total > blocks_per_seg {
            return Err(PackError::BadLength(self.pack_total_blocks));
        }
        Ok(total - 1)
    }

    /// Check the pack's last block against this first block (`validate_checkpoint`).
    pub fn validate_last(&self, last: &[u8]) -> Result<(), PackError> {
        let tail = Self::parse_verified(last, "last")?;
        if tail.version != self.version {
            return Err(PackError::VersionMismatch {
                first: self.version,
                last: tail.version,
            });
        }
        Ok(())
    }

    /// Cleanly unmounted: the last checkpoint was written at unmount (`CP_UMOUNT_FLAG`).
    pub fn unmounted(&self) -> bool {
        self.flags & CP_UMOUNT != 0
    }

    /// The kernel asked for fsck (`CP_FSCK_FLAG` or `CP_QUOTA_NEED_FSCK_FLAG`).
    pub fn needs_fsck(&self) -> bool {
        self.flags & (CP_FSCK | CP_QUOTA_NEED_FSCK) != 0
    }

    /// The kernel stopped checkpointing after an error (`CP_ERROR_FLAG`).
    pub fn error(&self) -> bool {
        self.flags & CP_ERROR != 0
    }
}

/// The names fsck.f2fs prints after `Info: checkpoint state = <hex> : ` for `flags`, in
/// its order; `sudden-power-off` stands for a clear `unmount` bit.
pub fn flag_names(flags: u32) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if flags & CP_UMOUNT == 0 {
        out.push("sudden-power-off");
    }
    out
}

/// `ver_after(a, b)` of f2fs: `a` is later than `b`, with wrap-around.
pub fn ver_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// Which pack (0 or 1) is current, given the versions of the valid packs; `None` when
/// neither is valid. Pack 1 (index 0) wins a tie, as in `get_valid_checkpoint`.
pub fn current_pack(versions: [Option<u64>; 2]) -> Option<usize> {
    match versions {
        [Some(v1), Some(v2)] => Some(if ver_after(v2, v1) { 1 } else { 0 }),
        [Some(_), None] => Some(0),
        [None, Some(_)] => Some(1),
        [None, None] => None,
    }
}

/// Whether `head` (the first bytes of a volume) holds the f2fs magic at byte 1024, where
/// the primary superblock starts. Used by volume identification.
pub fn has_primary_magic(head: &[u8]) -> bool {
    le_u32(head, SUPER_OFFSET as usize) == Some(MAGIC)
}

/// Whether `head` holds a plausible backup superblock (the magic at 4096 + 1024 and
/// `log_blocks_per_seg` = 9 at + 20), for a volume whose primary is damaged.
pub fn has_backup_magic(head: &[u8]) -> bool {
    const AT: usize = 4096 + SUPER_OFFSET as usize;
    le_u32(head, AT) == Some(MAGIC) && le_u32(head, AT + 20) == Some(LOG_BLOCKS_PER_SEG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_matches_the_reference_variant() {
        // zlib: crc32(data, seed ^ ~0) ^ ~0.
        assert_eq!(!f2fs_crc32(0xFFFF_FFFF, b"123456789"), 0xCBF4_3926);
        let data: Vec<u8> = (0..=255u8).collect();
        let whole = f2fs_crc32(MAGIC, &data);
        assert_eq!(
            f2fs_crc32(f2fs_crc32(MAGIC, &data[..100]), &data[100..]),
            whole
        );
    }

    #[test]
    fn flags_names_and_versions() {
        assert_eq!(
            flag_names(0x194),
            [
                "trimmed",
                "nat_bits",
                "fsck",
                "compacted_summary",
                "sudden-power-off"
            ]
        );
        assert_eq!(
            flag_names(CP_QUOTA_NEED_FSCK | CP_ERROR | CP_UMOUNT | CP_DISABLED_QUICK),
            ["quota_need_fsck", "error", "unmount"]
        );
        assert!(ver_after(1, 0));
        assert!(ver_after(0, u64::MAX));
        assert!(!ver_after(5, 5));
        assert_eq!(current_pack([Some(7), Some(8)]), Some(1));
        assert_eq!(current_pack([Some(8), Some(8)]), Some(0));
        assert_eq!(current_pack([None, None]), None);
    }

    #[test]
    fn stop_reasons_and_errors() {
        let mut raw = vec![0u8; SUPER_SIZE];
        raw[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        raw[2762] = 2;
        raw[2762 + 3] = 1;
        raw[2762 + 31] = 1;
        raw[2794] = 0b0001_0000;
        raw[2794 + 2] = 0b0000_0001;
        raw[2794 + 15] = 0x80;
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(
            sb.stop_reasons(),
            [
                ("shutdown".to_string(), 2),
                ("write_fail".to_string(), 1),
                ("reason_31".to_string(), 1)
            ]
        );
        assert!(sb.abnormal_stop());
        assert_eq!(
            sb.error_names(),
            ["corrupted_inode", "inconsistent_nat", "error_127"]
        );
        raw[2762 + 3] = 0;
        raw[2762 + 31] = 0;
        assert!(!Superblock::parse(&raw).unwrap().abnormal_stop());
        assert!(!sb.problems().is_empty());
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert!(matches!(
            Superblock::parse(&[0u8; 100]),
            Err(F2fsError::Truncated { .. })
        ));
        assert_eq!(
            Superblock::parse(&[0u8; SUPER_SIZE]),
            Err(F2fsError::BadMagic(0))
        );
        assert_eq!(Checkpoint::parse(&[0u8; 10]), Err(PackError::Truncated(10)));
        assert!(!has_primary_magic(&[0u8; 8192]) && !has_backup_magic(&[0u8; 8192]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let _ = (has_primary_magic(&bytes), has_backup_magic(&bytes));
            if let Ok(sb) = Superblock::parse(&bytes) {
                let _ = (sb.verify_checksum(&bytes), sb.problems(), sb.fs_bytes());
                let _ = (sb.stop_reasons(), sb.error_names(), sb.cp_pack_block(1));
            }
            if let Ok(cp) = Checkpoint::parse_verified(&bytes, "first") {
                let _ = cp.last_block_index(512);
                let _ = cp.validate_last(&bytes);
            }
            let _ = Checkpoint::parse(&bytes).map(|c| flag_names(c.flags));
        }

        #[test]
        fn never_panics_with_a_magic(
            mut bytes in proptest::collection::vec(any::<u8>(), SUPER_SIZE..SUPER_SIZE + 64),
            feature in any::<bool>(),
            offset in any::<u32>(),
            log_seg in any::<u32>(),
        ) {
            bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            bytes[20..24].copy_from_slice(&log_seg.to_le_bytes());
            bytes[32..36].copy_from_slice(&offset.to_le_bytes());
            if feature {
                bytes[2180..2184].copy_from_slice(&FEATURE_SB_CHKSUM.to_le_bytes());
            }
            let sb = Superblock::parse(&bytes).unwrap();
            let _ = (sb.verify_checksum(&bytes), sb.problems(), sb.fs_bytes());
            let _ = (sb.cp_pack_block(1), sb.blocks_per_seg(), sb.block_size());
        }

        #[test]
        fn never_panics_on_checkpoint_fields(
            mut block in proptest::collection::vec(any::<u8>(), CP_BLOCK_SIZE..CP_BLOCK_SIZE + 1),
            offset in any::<u32>(),
            total in any::<u32>(),
        ) {
            block[0xA4..0xA8].copy_from_slice(&offset.to_le_bytes());
            block[0x88..0x8C].copy_from_slice(&total.to_le_bytes());
            let _ = Checkpoint::parse_verified(&block, "first");
            let cp = Checkpoint::parse(&block).unwrap();
            let _ = cp.last_block_index(512);
            let _ = cp.validate_last(&block);
        }
    }
}
