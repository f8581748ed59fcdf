//! Finds and judges the jbd2 journal exactly as `e2fsck -n` does before deciding
//! (e2fsprogs 1.47 `e2fsck/journal.c`: `e2fsck_get_journal`, `e2fsck_journal_load`,
//! `e2fsck_journal_fix_bad_inode`), so that a journal e2fsck refuses is never reported as
//! fine, and a journal it accepts yields the `s_start` / `s_errno` it acts on.

use super::volume::Volume;
use crate::fs::ext::blockwalk::{self, BlockRange};
use crate::fs::ext::inode;
use crate::fs::ext::journal::{self, JBD2_SUPERBLOCK_V1, JBD2_SUPERBLOCK_V2, JournalSuperblock};
use crate::fs::ext::superblock::{ChecksumStatus, Superblock};

/// `JBD2_MIN_JOURNAL_BLOCKS`.
const MIN_JOURNAL_BLOCKS: u64 = 1024;
/// `JBD2_DEFAULT_FAST_COMMIT_BLOCKS`.
const DEFAULT_FAST_COMMIT_BLOCKS: u64 = 256;
/// `JBD2_KNOWN_INCOMPAT_FEATURES`: revoke, 64bit, async_commit, csum v2, csum v3, fast_commit.
const KNOWN_INCOMPAT: u32 = 0x3F;
/// `JBD2_FEATURE_COMPAT_CHECKSUM` (checksum v1).
const COMPAT_CHECKSUM_V1: u32 = 0x1;
const INCOMPAT_CSUM_V2: u32 = 0x8;
const INCOMPAT_CSUM_V3: u32 = 0x10;
const INCOMPAT_FAST_COMMIT: u32 = 0x20;
/// `JBD2_CRC32C_CHKSUM`.
const CRC32C_CHKSUM: u8 = 4;
/// `i_flags`: `EXT4_ENCRYPT_FL`.
const ENCRYPT_FL: u32 = 0x800;
/// `S_IFMT` / `S_IFREG`.
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;

/// What snapguard (and e2fsck) make of the journal.
#[derive(Debug)]
pub enum JournalOutcome {
    /// No journal features at all.
    None,
    /// Not looked at (the image is truncated, so its blocks are missing).
    NotChecked,
    /// The journal lives on another device (`s_journal_uuid` set); it is not assessed.
    External,
    /// The journal superblock loaded as e2fsck would load it.
    Loaded(JournalSuperblock),
    /// e2fsck -n gives up on the journal and stops before deciding; the text says why.
    Rejected(String),
}

/// Why `e2fsck_get_journal` failed, deciding what `fix_bad_inode` does with it.
enum GetError {
    /// BAD_INODE_NUM, BAD_BLOCK_NUM, JOURNAL_TOO_SMALL, NO_JOURNAL: "invalid journal inode".
    BadInode(String),
    /// Anything else (unreadable blocks): a plain fatal error.
    Other(String),
}

struct JournalInode {
    i_block: [u8; 60],
    extents: bool,
    size: u64,
    links: u16,
    mode: u16,
    flags: u32,
}

/// Judge the journal of `sb` on `volume`.
pub fn check(volume: &Volume<'_>, sb: &Superblock) -> JournalOutcome {
    let uuid_set = sb.journal_uuid.iter().any(|&b| b != 0);
    if !sb.has_journal()
        && !sb.needs_recovery()
        && sb.journal_inum == 0
        && sb.journal_dev == 0
        && !uuid_set
    {
        return JournalOutcome::None;
    }
    if uuid_set {
        return JournalOutcome::External;
    }
    let Some(block_size) = sb.block_size() else {
        return JournalOutcome::Rejected("invalid block size".into());
    };
    let (first_block, total_len) = match get_journal(volume, sb, block_size) {
        Ok(found) => found,
        Err(GetError::BadInode(why)) => return fix_bad_inode(sb, why),
        Err(GetError::Other(why)) => return JournalOutcome::Rejected(why),
    };
    let raw = match volume.read_block(first_block, block_size) {
        Ok(raw) => raw,
        Err(e) => {
            return JournalOutcome::Rejected(format!("cannot read the journal superblock: {e}"));
        }
    };
    load(sb, &raw, block_size, total_len)
}

/// `e2fsck_journal_fix_bad_inode` under -n: an invalid journal inode on a filesystem that
/// claims a journal (or needs recovery) is fatal; otherwise there simply is no journal.
fn fix_bad_inode(sb: &Superblock, why: String) -> JournalOutcome {
    if sb.has_journal() || sb.journal_inum != 0 {
        JournalOutcome::Rejected(format!("invalid journal inode {}: {why}", sb.journal_inum))
    } else if sb.needs_recovery() {
        JournalOutcome::Rejected("needs_recovery is set but there is no journal".into())
    } else {
        JournalOutcome::None
    }
}

/// `e2fsck_get_journal` for an internal journal: the inode from the inode table, or its
/// backup in `s_jnl_blocks` when that one is unusable. Returns the physical block of the
/// journal superblock and the journal length in blocks.
fn get_journal(
    volume: &Volume<'_>,
    sb: &Superblock,
    block_size: u64,
) -> Result<(u64, u64), GetError> {
    let groups = sb.group_count().unwrap_or(0);
    if sb.journal_inum == 0
        || u64::from(sb.journal_inum) > groups.saturating_mul(u64::from(sb.inodes_per_group))
    {
        return Err(GetError::BadInode(format!(
            "inode number {} out of range",
            sb.journal_inum
        )));
    }
    let from_table = read_inode(volume, sb, sb.journal_inum, block_size);
    let mut last_error = match &from_table {
        Ok(inode) => match usable(volume, sb, inode, block_size) {
            Ok(found) => return Ok(found),
            Err(e) => e,
        },
        Err(e) => GetError::Other(e.clone()),
    };
    if let (Some(i_block), Some(size)) = (
        journal::journal_inode_blocks(sb),
        journal::journal_inode_size(sb),
    ) {
        // e2fsck builds the stand-in inode with i_flags 0, so libext2fs walks the copy as a
        // block map even when it holds an extent tree (which then fails the walk).
        let extents = false;
        let backup = JournalInode {
            i_block,
            extents,
            size,
            links: 1,
            mode: S_IFREG | 0o600,
            flags: 0,
        };
        match usable(volume, sb, &backup, block_size) {
            Ok(found) => return Ok(found),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The inode checks of `e2fsck_get_journal` and the `process_journal_block` walk.
fn usable(
    volume: &Volume<'_>,
    sb: &Superblock,
    inode: &JournalInode,
    block_size: u64,
) -> Result<(u64, u64), GetError> {
    if inode.links == 0 || inode.mode & S_IFMT != S_IFREG || inode.flags & ENCRYPT_FL != 0 {
        return Err(GetError::BadInode(
            "not a regular, linked, unencrypted file".into(),
        ));
    }
    let blocks = inode.size / block_size;
    if blocks < MIN_JOURNAL_BLOCKS {
        return Err(GetError::BadInode(format!(
            "journal too small ({blocks} blocks)"
        )));
    }
    let range = BlockRange {
        first: u64::from(sb.first_data_block),
        end: sb.blocks_count,
    };
    let mut reader = |block: u64| volume.read_block(block, block_size);
    let walk = blockwalk::walk(
        &inode.i_block,
        inode.extents,
        block_size,
        range,
        blocks,
        &mut reader,
    );
    if walk.mapped.saturating_mul(block_size) < inode.size {
        return Err(GetError::BadInode(format!(
            "the journal maps only {} of its {blocks} blocks to valid blocks",
            walk.mapped
        )));
    }
    let first = walk
        .first_physical
        .ok_or_else(|| GetError::Other("journal block 0 is not mapped".into()))?;
    Ok((first, blocks))
}

/// `e2fsck_journal_load` (plus `fix_corrupt_super`, answered "no" under -n).
fn load(sb: &Superblock, raw: &[u8], block_size: u64, total_len: u64) -> JournalOutcome {
    let reject = |why: &str| JournalOutcome::Rejected(why.to_string());
    let magic = raw
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    if magic != journal::JBD2_MAGIC {
        return fix_bad_inode(sb, "no jbd2 magic in the journal's first block".into());
    }
    let blocktype = raw
        .get(4..8)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    if blocktype != JBD2_SUPERBLOCK_V1 && blocktype != JBD2_SUPERBLOCK_V2 {
        return reject(&format!("journal superblock has block type {blocktype}"));
    }
    let jsb = match JournalSuperblock::parse(raw) {
        Ok(jsb) => jsb,
        Err(e) => return reject(&format!("bad journal superblock: {e}")),
    };
    if blocktype == JBD2_SUPERBLOCK_V2 {
        if jsb.nr_users > 1 {
            return reject(&format!(
                "the journal has {} filesystem users (unsupported)",
                jsb.nr_users
            ));
        }
        if jsb.feature_incompat & !KNOWN_INCOMPAT != 0 {
            return reject(&format!(
                "unsupported journal incompat features 0x{:x}",
                jsb.feature_incompat
            ));
        }
        if jsb.feature_ro_compat != 0 {
            return reject(&format!(
                "unsupported journal ro_compat features 0x{:x}",
                jsb.feature_ro_compat
            ));
        }
        let v2 = jsb.feature_incompat & INCOMPAT_CSUM_V2 != 0;
        let v3 = jsb.feature_incompat & INCOMPAT_CSUM_V3 != 0;
        if v2 && v3 {
            return reject("journal claims both checksum v2 and v3");
        }
        if (v2 || v3) && jsb.feature_compat & COMPAT_CHECKSUM_V1 != 0 {
            return reject("journal claims checksum v1 and v2/v3");
        }
        if (v2 || v3) && jsb.checksum_type != CRC32C_CHKSUM {
            return reject(&format!(
                "unknown journal checksum type {}",
                jsb.checksum_type
            ));
        }
        if matches!(jsb.checksum_status, ChecksumStatus::Invalid { .. }) {
            return reject("the journal superblock checksum does not match");
        }
    }
    if u64::from(jsb.blocksize) != block_size {
        return reject(&format!(
            "journal block size {} differs from the filesystem's {block_size}",
            jsb.blocksize
        ));
    }
    if u64::from(jsb.maxlen) > total_len {
        return reject(&format!(
            "journal too short: {} blocks claimed, {total_len} in the inode",
            jsb.maxlen
        ));
    }
    if blocktype == JBD2_SUPERBLOCK_V2 && jsb.feature_incompat & INCOMPAT_FAST_COMMIT != 0 {
        let fc = raw
            .get(0x54..0x58)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let fc_blocks = if fc == 0 {
            DEFAULT_FAST_COMMIT_BLOCKS
        } else {
            u64::from(fc)
        };
        if u64::from(jsb.maxlen).saturating_sub(fc_blocks) < MIN_JOURNAL_BLOCKS {
            return reject("incorrect fast commit blocks");
        }
    }
    JournalOutcome::Loaded(jsb)
}

fn read_inode(
    volume: &Volume<'_>,
    sb: &Superblock,
    ino: u32,
    block_size: u64,
) -> Result<JournalInode, String> {
    let group = inode::inode_group(sb, ino).ok_or("inode number out of range")?;
    let desc_offset = inode::group_desc_offset(sb, group).ok_or("no group descriptor location")?;
    let desc_size = inode::group_desc_size(sb).ok_or("invalid descriptor size")?;
    let desc = volume
        .read_exact_at(desc_offset, desc_size as usize, "a group descriptor")
        .map_err(|e| e.to_string())?;
    let table = inode::inode_table_block(&desc, sb);
    let inodes_per_block = block_size / sb.effective_inode_size().max(1);
    let table_blocks = u64::from(sb.inodes_per_group).div_ceil(inodes_per_block.max(1));
    // ext2fs_read_inode: EXT2_ET_MISSING_INODE_TABLE / EXT2_ET_GDESC_BAD_INODE_TABLE.
    if table == 0
        || table < u64::from(sb.first_data_block)
        || table.saturating_add(table_blocks).saturating_sub(1) >= sb.blocks_count
    {
        return Err(format!(
            "the inode table of group {group} is outside the filesystem"
        ));
    }
    let location = inode::inode_location(sb, ino, table).ok_or("inode location overflows")?;
    let len = usize::try_from(sb.effective_inode_size()).map_err(|e| e.to_string())?;
    let bytes = volume
        .read_exact_at(location, len, "the journal inode")
        .map_err(|e| e.to_string())?;
    let le16 = |off: usize| {
        bytes
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .unwrap_or(0)
    };
    let flags = inode::inode_flags(&bytes).unwrap_or(0);
    Ok(JournalInode {
        i_block: inode::inode_i_block(&bytes).ok_or("short inode")?,
        extents: flags & inode::EXT4_EXTENTS_FL != 0,
        size: inode::inode_size_bytes(&bytes),
        links: le16(0x1A),
        mode: le16(0x00),
        flags,
    })
}
