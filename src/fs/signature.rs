//! Identify what a volume (a partition or a whole device) contains from its first bytes.
//!
//! [`identify`] looks at the first 128 KiB (or fewer) bytes and recognises filesystems, volume
//! containers (LVM2, LUKS, swap) and partition tables. It only looks at magic numbers plus a few
//! cheap sanity checks; the per-filesystem parsers do the real validation. No I/O happens here.
//!
//! # Order of the checks
//!
//! Several signatures can coexist in one buffer (a FAT boot sector ends in `0x55AA` like an MBR;
//! swap and ext leave sector 0 free for a boot loader, which may itself carry `0x55AA`), so the
//! checks run from the most specific to the least:
//!
//! 1. LUKS — `LUKS\xba\xbe` at 0 (6-byte magic at the very start).
//! 2. XFS — `XFSB` at 0, with a power-of-two block size.
//! 3. LVM2 PV — `LABELONE` label in one of sectors 0–3 whose sector number and CRC agree, with
//!    `LVM2 001` at label + 0x18.
//! 4. swap — `SWAPSPACE2`/`SWAP-SPACE` (or a hibernation signature) at page size − 10, for page
//!    sizes 4 KiB, 8 KiB, 16 KiB and 64 KiB when the buffer is long enough. Swap keeps its first
//!    1024 bytes for a boot loader, so this must come before the sector-0 checks.
//! 5. ext2/3/4 — `0xEF53` at 1080 plus superblock sanity (block size, group sizes). The first
//!    1024 bytes are a boot block that may hold anything, including `0x55AA`.
//! 6. f2fs — `0xF2F52010` (LE) at 1024. Like ext, f2fs leaves its first 1024 bytes to a
//!    boot loader, so it must come before the sector-0 checks. It comes after ext: an ext
//!    superblock passes only with a sane ext geometry, which the f2fs superblock at the same
//!    place cannot have (its u16 at 1080 is the low half of `segment_count_sit`).
//! 7. btrfs — `_BHRfS_M` at 0x10040.
//! 8. NTFS — `NTFS    ` OEM id at 3.
//! 9. exFAT — `EXFAT   ` OEM id at 3.
//! 10. FAT — jump instruction + BPB sanity + (`FAT..` type string at 0x36/0x52 or `0x55AA`).
//! 11. GPT — `EFI PART` at 512 or 4096 (whole-disk image), or a protective MBR.
//! 12. MBR — `0x55AA` with a valid partition table (see [`super::partition::parse_mbr`]).
//! 13. f2fs by its backup superblock only — the magic at 4096 + 1024 with
//!     `log_blocks_per_seg` = 9, for an f2fs whose primary superblock is damaged. Last,
//!     because that byte range is free space in the boot area of other layouts (the MBR
//!     gap, say) where an old f2fs superblock can survive a repartition.
//!
//! Anything else is [`Content::Unknown`].

use super::bytes::{be_u32 as be32, le_u16 as le16, le_u32 as le32, le_u64 as le64};
use super::partition::{self, MbrKind};

/// What a volume contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// ext2, ext3 or ext4 filesystem (the ext parser tells which).
    Ext,
    /// XFS filesystem.
    Xfs,
    /// btrfs filesystem.
    Btrfs,
    /// FAT12/16/32 filesystem.
    Fat,
    /// exFAT filesystem.
    ExFat,
    /// f2fs filesystem.
    F2fs,
    /// NTFS filesystem.
    Ntfs,
    /// LVM2 physical volume.
    Lvm2Pv,
    /// LUKS encrypted volume with its header version (1 or 2).
    Luks {
        /// Header version (big-endian u16 at offset 6).
        version: u16,
    },
    /// Linux swap space (possibly holding a hibernation image).
    Swap,
    /// DOS/MBR partition table.
    Mbr,
    /// GPT partition table (or a protective MBR announcing one).
    Gpt,
    /// Nothing recognised.
    Unknown,
}

impl Content {
    /// A short human description for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Content::Ext => "ext2/ext3/ext4 filesystem",
            Content::Xfs => "XFS filesystem",
            Content::Btrfs => "btrfs filesystem",
            Content::Fat => "FAT filesystem",
            Content::ExFat => "exFAT filesystem",
            Content::F2fs => "f2fs filesystem",
            Content::Ntfs => "NTFS filesystem",
            Content::Lvm2Pv => "LVM2 physical volume",
            Content::Luks { .. } => "LUKS encrypted volume",
            Content::Swap => "swap space",
            Content::Mbr => "MBR partition table",
            Content::Gpt => "GPT partition table",
            Content::Unknown => "unknown content",
        }
    }
}

/// `bytes[off..off + magic.len()] == magic`, false when out of range.
fn has_at(bytes: &[u8], off: usize, magic: &[u8]) -> bool {
    off.checked_add(magic.len())
        .and_then(|end| bytes.get(off..end))
        .is_some_and(|s| s == magic)
}

/// Identify the content of a volume from its first bytes (128 KiB is enough for every check;
/// a shorter buffer just disables the checks that need more).
pub fn identify(head: &[u8]) -> Content {
    if let Some(version) = luks_version(head) {
        return Content::Luks { version };
    }
    if is_xfs(head) {
        return Content::Xfs;
    }
    if is_lvm2_pv(head) {
        return Content::Lvm2Pv;
    }
    if is_swap(head) {
        return Content::Swap;
    }
    if is_ext(head) {
        return Content::Ext;
    }
    if super::f2fs::has_primary_magic(head) {
        return Content::F2fs;
    }
    if has_at(head, 0x10040, b"_BHRfS_M") {
        return Content::Btrfs;
    }
    if has_at(head, 3, b"NTFS    ") {
        return Content::Ntfs;
    }
    if has_at(head, 3, b"EXFAT   ") {
        return Content::ExFat;
    }
    if is_fat(head) {
        return Content::Fat;
    }
    if has_at(head, 512, b"EFI PART") || has_at(head, 4096, b"EFI PART") {
        return Content::Gpt;
    }
    match partition::parse_mbr(head) {
        Ok(MbrKind::Protective) => Content::Gpt,
        Ok(MbrKind::Partitions(_)) => Content::Mbr,
        Ok(MbrKind::None) | Err(_) if super::f2fs::has_backup_magic(head) => Content::F2fs,
        Ok(MbrKind::None) | Err(_) => Content::Unknown,
    }
}

/// LUKS1/LUKS2 primary header magic at 0; returns the version (big-endian u16 at 6).
fn luks_version(head: &[u8]) -> Option<u16> {
    if !has_at(head, 0, b"LUKS\xba\xbe") {
        return None;
    }
    let b = head.get(6..8)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// XFS superblock: "XFSB" at 0 and a power-of-two block size (BE u32 at 4) in 512..=65536.
fn is_xfs(head: &[u8]) -> bool {
    has_at(head, 0, b"XFSB")
        && be32(head, 4).is_some_and(|bs| bs.is_power_of_two() && (512..=65536).contains(&bs))
}

/// The CRC LVM2 uses for its labels (`lib/misc/crc.c`): the reflected CRC-32 polynomial
/// 0xEDB88320 started from `initial`, without the final inversion of the IEEE CRC-32.
pub fn lvm_crc(initial: u32, data: &[u8]) -> u32 {
    super::crc::crc32_raw(initial, data)
}

/// Initial value of LVM2's label CRC (`INITIAL_CRC`).
pub const LVM_INITIAL_CRC: u32 = 0xf597_a6cf;

/// LVM2 label (`struct label_header`): in one of sectors 0..4, `LABELONE` at 0, `sector_xl`
/// (LE u64 at 8) equal to the sector number, `crc_xl` (LE u32 at 16) over bytes 20..512 of the
/// sector, and the type `LVM2 001` at 0x18. Same acceptance rule as libblkid.
fn is_lvm2_pv(head: &[u8]) -> bool {
    (0u64..4).any(|sector| {
        let Some(start) = usize::try_from(sector)
            .ok()
            .and_then(|s| s.checked_mul(512))
        else {
            return false;
        };
        let Some(label) = start.checked_add(512).and_then(|end| head.get(start..end)) else {
            return false;
        };
        has_at(label, 0, b"LABELONE")
            && has_at(label, 0x18, b"LVM2 001")
            && le64(label, 8) == Some(sector)
            && label
                .get(20..)
                .is_some_and(|rest| le32(label, 16) == Some(lvm_crc(LVM_INITIAL_CRC, rest)))
    })
}

/// Swap signature at the end of the first page, for the page sizes Linux uses.
fn is_swap(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 7] = [
        b"SWAPSPACE2",
        b"SWAP-SPACE",
        // Hibernation images written over a swap signature (libblkid's swsuspend list).
        b"S1SUSPEND",
        b"S2SUSPEND",
        b"ULSUSPEND",
        b"LINHIB0001",
        b"\xed\xc3\x02\xe9\x98\x56\xe5\x0c",
    ];
    [4096usize, 8192, 16384, 65536]
        .iter()
        .any(|&page| head.len() >= page && MAGICS.iter().any(|m| has_at(head, page - 10, m)))
}

/// ext2/3/4: superblock at 1024, magic 0xEF53 (LE) at 1024 + 0x38, plus sanity checks:
/// `s_inodes_count` > 0, `s_log_block_size` <= 6 (64 KiB), non-zero blocks and inodes per group.
fn is_ext(head: &[u8]) -> bool {
    const SB: usize = 1024;
    le16(head, SB + 0x38) == Some(0xEF53)
        && le32(head, SB).is_some_and(|n| n > 0)
        && le32(head, SB + 0x18).is_some_and(|l| l <= 6)
        && le32(head, SB + 0x20).is_some_and(|n| n > 0)
        && le32(head, SB + 0x28).is_some_and(|n| n > 0)
}

/// True when the BIOS parameter block of a FAT boot sector is plausible.
fn fat_bpb_sane(s: &[u8]) -> bool {
    let jump_ok = matches!(
        (s.first(), s.get(2)),
        (Some(0xEB), Some(0x90)) | (Some(0xE9), _)
    );
    let bytes_per_sector = le16(s, 0x0B);
    let sectors_per_cluster = s.get(0x0D).copied();
    let reserved = le16(s, 0x0E);
    let fats = s.get(0x10).copied();
    let media = s.get(0x15).copied();
    let total16 = le16(s, 0x13);
    let total32 = le32(s, 0x20);
    jump_ok
        && bytes_per_sector.is_some_and(|b| b.is_power_of_two() && (512..=4096).contains(&b))
        && sectors_per_cluster.is_some_and(|c| c.is_power_of_two())
        && reserved.is_some_and(|r| r >= 1)
        && fats.is_some_and(|f| (1..=2).contains(&f))
        && media.is_some_and(|m| m == 0xF0 || m >= 0xF8)
        && (total16.is_some_and(|t| t > 0) || total32.is_some_and(|t| t > 0))
}

/// FAT12/16/32 boot sector: a sane BPB and either a `FAT` type string (at 0x36 for FAT12/16,
/// at 0x52 for FAT32) or the `0x55AA` boot signature.
fn is_fat(head: &[u8]) -> bool {
    fat_bpb_sane(head)
        && (has_at(head, 0x36, b"FAT")
            || has_at(head, 0x52, b"FAT32   ")
            || has_at(head, 510, b"\x55\xAA"))
}

/// True when `sector0` is the boot sector of a filesystem (FAT, exFAT or NTFS) rather than a
/// master boot record, although it may end in `0x55AA`. Used by the MBR parser.
pub fn is_fs_boot_sector(sector0: &[u8]) -> bool {
    has_at(sector0, 3, b"NTFS    ") || has_at(sector0, 3, b"EXFAT   ") || is_fat(sector0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f2fs_backup_superblock_only_comes_last() {
        let mut h = vec![0u8; 8192];
        h[5120..5124].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        h[5140..5144].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(identify(&h), Content::F2fs);
        // A valid MBR wins over a stale backup superblock in the gap.
        h[446 + 4] = 0x83;
        h[446 + 8] = 0x00;
        h[446 + 9] = 0x08;
        h[446 + 12] = 0x00;
        h[446 + 13] = 0x08;
        h[510] = 0x55;
        h[511] = 0xAA;
        assert_eq!(identify(&h), Content::Mbr);
        let mut h = vec![0u8; 4096];
        h[1024..1028].copy_from_slice(&0xF2F5_2010u32.to_le_bytes());
        assert_eq!(identify(&h), Content::F2fs);
        assert_eq!(Content::F2fs.describe(), "f2fs filesystem");
    }

    /// Build an LVM2 PV label (layout from LVM2 `lib/label/label.h` and
    /// `lib/format_text/layout.h`) in `sector`, with a correct CRC. Synthetic because lvm2's
    /// `pvcreate` needs a block device.
    fn lvm_label(sector: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        let start = usize::try_from(sector).unwrap() * 512;
        let l = &mut h[start..start + 512];
        l[0..8].copy_from_slice(b"LABELONE");
        l[8..16].copy_from_slice(&sector.to_le_bytes());
        l[20..24].copy_from_slice(&32u32.to_le_bytes()); // offset_xl: pv_header at +32
        l[24..32].copy_from_slice(b"LVM2 001");
        l[32..64].copy_from_slice(b"Jq2xD0fFQn3dtoZgyX0SYAjbOgAbLmwr"); // pv uuid
        l[64..72].copy_from_slice(&(64u64 << 20).to_le_bytes()); // device size
        let crc = lvm_crc(LVM_INITIAL_CRC, &l[20..]);
        l[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn synthetic_lvm2() {
        assert_eq!(identify(&lvm_label(1)), Content::Lvm2Pv);
        assert_eq!(identify(&lvm_label(0)), Content::Lvm2Pv);
        assert_eq!(identify(&lvm_label(3)), Content::Lvm2Pv);
        // Wrong sector number in the label.
        let mut h = lvm_label(1);
        h[512 + 8] = 2;
        assert_eq!(identify(&h), Content::Unknown);
        // Bad CRC.
        let mut h = lvm_label(1);
        h[512 + 100] ^= 1;
        assert_eq!(identify(&h), Content::Unknown);
    }

    #[test]
    fn lvm_crc_matches_ieee_without_final_xor() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mut h = crc32fast::Hasher::new_with_initial(!LVM_INITIAL_CRC);
        h.update(&data);
        assert_eq!(lvm_crc(LVM_INITIAL_CRC, &data), !h.finalize());
        // Standard check value of CRC-32 ("123456789" -> 0xCBF43926).
        assert_eq!(!lvm_crc(0xFFFF_FFFF, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn synthetic_luks() {
        // LUKS1 phdr: magic, version BE u16, cipher name, ... (cryptsetup docs/on-disk-format).
        let mut h = vec![0u8; 4096];
        h[0..6].copy_from_slice(b"LUKS\xba\xbe");
        h[6..8].copy_from_slice(&1u16.to_be_bytes());
        h[8..11].copy_from_slice(b"aes");
        assert_eq!(identify(&h), Content::Luks { version: 1 });
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(identify(&h), Content::Luks { version: 2 });
        assert_eq!(identify(&h[..7]), Content::Unknown);
        assert_eq!(identify(&h).describe(), "LUKS encrypted volume");
    }

    #[test]
    fn synthetic_others() {
        let mut h = vec![0u8; 4096];
        h[3..11].copy_from_slice(b"NTFS    ");
        assert_eq!(identify(&h), Content::Ntfs);
        h[3..11].copy_from_slice(b"EXFAT   ");
        assert_eq!(identify(&h), Content::ExFat);
        let mut h = vec![0u8; 8192];
        h[8182..8192].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(identify(&h), Content::Swap);
        h[8182..8192].copy_from_slice(b"S1SUSPEND\0");
        assert_eq!(identify(&h), Content::Swap);
        assert_eq!(identify(&[]), Content::Unknown);
        assert_eq!(identify(&[0u8; 512]), Content::Unknown);
        assert_eq!(Content::Lvm2Pv.describe(), "LVM2 physical volume");
        assert_eq!(Content::Swap.describe(), "swap space");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..9000)) {
            let _ = identify(&bytes);
            let _ = is_fs_boot_sector(&bytes);
        }

        #[test]
        fn never_panics_with_magics(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 600..5000), which in 0usize..7) {
            let (off, magic): (usize, &[u8]) = [
                (0, &b"LUKS\xba\xbe"[..]), (0, b"XFSB"), (512, b"LABELONE"),
                (1080, b"\x53\xef"), (3, b"NTFS    "), (510, b"\x55\xaa"),
                (1024, b"\x10\x20\xf5\xf2"),
            ][which];
            if off + magic.len() <= bytes.len() {
                bytes[off..off + magic.len()].copy_from_slice(magic);
            }
            let _ = identify(&bytes);
        }
    }
}
