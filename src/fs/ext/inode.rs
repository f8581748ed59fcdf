//! Group descriptors and on-disk inodes: just enough to locate inode N (e.g. the journal inode when `s_jnl_blocks` is not usable) and read its `i_block`, size and flags.

use super::bytes::{array, le_u32};
use super::superblock::{
    EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER, EXT4_FEATURE_COMPAT_SPARSE_SUPER2, Superblock,
};

/// Group descriptor size without 64bit (`EXT2_MIN_DESC_SIZE`).
pub const EXT2_MIN_DESC_SIZE: u64 = 32;
/// Smallest group descriptor size with 64bit (`EXT2_MIN_DESC_SIZE_64BIT`).
pub const EXT2_MIN_DESC_SIZE_64BIT: u64 = 64;
/// Largest group descriptor size (`EXT2_MAX_DESC_SIZE`).
pub const EXT2_MAX_DESC_SIZE: u64 = 1024;
/// Inode flag: `i_block` holds an extent tree (`EXT4_EXTENTS_FL`, in `i_flags` at 0x20).
pub const EXT4_EXTENTS_FL: u32 = 0x0008_0000;
/// Inode flag: data stored inline in the inode (`EXT4_INLINE_DATA_FL`).
pub const EXT4_INLINE_DATA_FL: u32 = 0x1000_0000;
/// Size of the good-old (revision 0) inode (`EXT2_GOOD_OLD_INODE_SIZE`).
pub const EXT2_GOOD_OLD_INODE_SIZE: u64 = 128;

/// Size of one group descriptor: `s_desc_size` (0xFE) with 64bit (must be a power of two
/// from 64 to 1024, as libext2fs requires), else 32. `None` for an invalid `s_desc_size`.
pub fn group_desc_size(sb: &Superblock) -> Option<u64> {
    if !sb.is_64bit() {
        return Some(EXT2_MIN_DESC_SIZE);
    }
    let size = u64::from(sb.desc_size);
    let valid =
        size.is_power_of_two() && (EXT2_MIN_DESC_SIZE_64BIT..=EXT2_MAX_DESC_SIZE).contains(&size);
    valid.then_some(size)
}

/// Whether block group `group` holds a superblock (and descriptor) backup, like
/// `ext2fs_bg_has_super`: group 0 always; with sparse_super2 only `s_backup_bgs`; with
/// sparse_super groups 0, 1 and powers of 3, 5 and 7; otherwise every group.
pub fn group_has_superblock(sb: &Superblock, group: u64) -> bool {
    if group == 0 {
        return true;
    }
    if sb.feature_compat & EXT4_FEATURE_COMPAT_SPARSE_SUPER2 != 0 {
        return sb
            .backup_bgs
            .iter()
            .any(|&backup| u64::from(backup) == group);
    }
    if group <= 1 || sb.feature_ro_compat & EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER == 0 {
        return true;
    }
    if group.is_multiple_of(2) {
        return false;
    }
    [3u64, 5, 7].iter().any(|&base| is_power_of(group, base))
}

fn is_power_of(mut value: u64, base: u64) -> bool {
    while value > 1 && value.is_multiple_of(base) {
        value /= base;
    }
    value == 1
}

/// Byte offset (from the start of the filesystem) of the group descriptor of `group` in
/// the primary group descriptor table, honouring 64bit `s_desc_size` and meta_bg
/// (`ext2fs_descriptor_block_loc2`). `None` when the geometry is invalid, the group does
/// not exist, or the offset overflows.
pub fn group_desc_offset(sb: &Superblock, group: u64) -> Option<u64> {
    let block_size = sb.block_size()?;
    let desc_size = group_desc_size(sb)?;
    if group >= sb.group_count()? {
        return None;
    }
    let descs_per_block = block_size / desc_size;
    let desc_block_index = group / descs_per_block;
    let within_block = (group % descs_per_block).checked_mul(desc_size)?;
    let first_data_block = u64::from(sb.first_data_block);
    // With 1 KiB blocks and s_first_data_block 0 (bigalloc) block 1 is not the GDT.
    let zero_adjust = u64::from(block_size == 1024 && first_data_block == 0);
    let desc_block = if !sb.has_meta_bg() || desc_block_index < u64::from(sb.first_meta_bg) {
        first_data_block
            .checked_add(zero_adjust)?
            .checked_add(desc_block_index)?
            .checked_add(1)?
    } else {
        let meta_group_first = descs_per_block.checked_mul(desc_block_index)?;
        let group_start = u64::from(sb.blocks_per_group)
            .checked_mul(meta_group_first)?
            .checked_add(first_data_block)?;
        let has_super = u64::from(group_has_superblock(sb, meta_group_first));
        let adjust = if desc_block_index == 0 {
            zero_adjust
        } else {
            0
        };
        group_start.checked_add(has_super)?.checked_add(adjust)?
    };
    desc_block
        .checked_mul(block_size)?
        .checked_add(within_block)
}

/// `bg_inode_table_lo` (descriptor 0x08) | `bg_inode_table_hi` (0x28) << 32, the high
/// half only with 64bit and `s_desc_size` ≥ 64. Returns 0 (never a valid inode table
/// block) when `desc` is too short to hold the low half.
pub fn inode_table_block(desc: &[u8], sb: &Superblock) -> u64 {
    let lo = u64::from(le_u32(desc, 0x08).unwrap_or(0));
    let hi = if sb.is_64bit() && u64::from(sb.desc_size) >= EXT2_MIN_DESC_SIZE_64BIT {
        u64::from(le_u32(desc, 0x28).unwrap_or(0))
    } else {
        0
    };
    (hi << 32) | lo
}

/// The block group holding inode `ino`: (ino - 1) / `s_inodes_per_group`. `None` for
/// inode 0, an inode beyond `s_inodes_count`, or zero inodes per group.
pub fn inode_group(sb: &Superblock, ino: u32) -> Option<u64> {
    if ino == 0 || ino > sb.inodes_count || sb.inodes_per_group == 0 {
        return None;
    }
    Some(u64::from(ino - 1) / u64::from(sb.inodes_per_group))
}

/// Byte offset of inode `ino`, given the inode table block of its group (see
/// [`inode_group`], [`group_desc_offset`], [`inode_table_block`]). The inode size is 128
/// for revision 0, else `s_inode_size`, which must be a power of two from 128 up to the
/// block size. `None` for an invalid inode number or geometry, or on overflow.
pub fn inode_location(sb: &Superblock, ino: u32, inode_table_block: u64) -> Option<u64> {
    inode_group(sb, ino)?;
    let block_size = sb.block_size()?;
    let inode_size = sb.effective_inode_size();
    if !inode_size.is_power_of_two()
        || inode_size < EXT2_GOOD_OLD_INODE_SIZE
        || inode_size > block_size
    {
        return None;
    }
    let index = u64::from(ino - 1) % u64::from(sb.inodes_per_group);
    inode_table_block
        .checked_mul(block_size)?
        .checked_add(index.checked_mul(inode_size)?)
}

/// `i_block` (inode offset 0x28, 60 bytes): block map or extent tree root.
pub fn inode_i_block(inode: &[u8]) -> Option<[u8; 60]> {
    array(inode, 0x28)
}

/// `i_flags` (inode offset 0x20), e.g. [`EXT4_EXTENTS_FL`].
pub fn inode_flags(inode: &[u8]) -> Option<u32> {
    le_u32(inode, 0x20)
}

/// File size: `i_size_lo` (0x04) | `i_size_high` (0x6C) << 32. Missing bytes count as 0.
pub fn inode_size_bytes(inode: &[u8]) -> u64 {
    let lo = u64::from(le_u32(inode, 0x04).unwrap_or(0));
    let hi = u64::from(le_u32(inode, 0x6C).unwrap_or(0));
    (hi << 32) | lo
}

#[cfg(test)]
mod tests {
    use super::super::superblock::SUPERBLOCK_SIZE;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sparse_super_groups() {
        let mut raw = vec![0u8; SUPERBLOCK_SIZE];
        raw[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        raw[0x64] = 1; // sparse_super
        let sb = Superblock::parse(&raw).expect("sb");
        let with: Vec<u64> = (0..130).filter(|&g| group_has_superblock(&sb, g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
        raw[0x64] = 0;
        let sb = Superblock::parse(&raw).expect("sb");
        assert!((0..50).all(|g| group_has_superblock(&sb, g)));
        raw[0x5D] = 0x02; // sparse_super2
        raw[0x24C] = 1;
        raw[0x250] = 40;
        let sb = Superblock::parse(&raw).expect("sb");
        let with: Vec<u64> = (0..130).filter(|&g| group_has_superblock(&sb, g)).collect();
        assert_eq!(with, vec![0, 1, 40]);
    }

    #[test]
    fn short_inputs() {
        assert_eq!(inode_i_block(&[0u8; 0x63]), None);
        assert!(inode_i_block(&[0u8; 0x64]).is_some());
        assert_eq!(inode_size_bytes(&[]), 0);
        let mut inode = vec![0u8; 128];
        inode[4..8].copy_from_slice(&5u32.to_le_bytes());
        inode[0x6C..0x70].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(inode_size_bytes(&inode), (1u64 << 32) | 5);
        assert_eq!(inode_size_bytes(&inode[..0x10]), 5);
        assert_eq!(inode_flags(&inode[..0x23]), None);
    }

    fn random_superblock(mut raw: Vec<u8>) -> Superblock {
        raw.resize(SUPERBLOCK_SIZE, 0);
        raw[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        Superblock::parse(&raw).expect("magic set")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn helpers_never_panic(
            raw in proptest::collection::vec(any::<u8>(), 0..1024),
            small_fields in any::<bool>(),
            meta_bg in any::<bool>(),
            group in prop_oneof![0u64..100, any::<u64>()],
            ino in any::<u32>(),
            table in any::<u64>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut sb = random_superblock(raw);
            if small_fields {
                sb.log_block_size %= 8;
                sb.blocks_per_group %= 70000;
                sb.inodes_per_group %= 5000;
                sb.first_meta_bg %= 5;
                sb.desc_size = 1u16 << (sb.desc_size % 12);
                sb.inode_size = 1u16 << (sb.inode_size % 13);
                sb.blocks_count %= 1 << 40;
            }
            if meta_bg {
                sb.feature_incompat |= super::super::superblock::EXT2_FEATURE_INCOMPAT_META_BG;
            }
            let _ = group_desc_size(&sb);
            let _ = group_has_superblock(&sb, group);
            let _ = group_desc_offset(&sb, group);
            let _ = inode_table_block(&bytes, &sb);
            let _ = inode_group(&sb, ino);
            let _ = inode_location(&sb, ino, table);
            let _ = inode_i_block(&bytes);
            let _ = inode_flags(&bytes);
            let _ = inode_size_bytes(&bytes);
        }
    }
}
