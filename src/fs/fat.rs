//! FAT12/16/32 boot sector and the FAT[1] state bits: pure parsers, bytes in, structs
//! out, no I/O.
//!
//! Layout after the Microsoft FAT specification (fatgen103) and the names dosfstools uses
//! (`src/fsck.fat.h`, `src/boot.c`): the BIOS parameter block at 0x0B..0x24, then the
//! FAT12/16 extended BPB at 0x24 or the FAT32 one at 0x24..0x5A. Linux keeps its
//! "mounted" bit in the byte dosfstools calls the state byte: 0x25 on FAT12/16, 0x41 on
//! FAT32 (`FAT_STATE_DIRTY` = 0x01, `fat_set_state` in the kernel's `fs/fat/inode.c`).
//! Windows keeps its clean-shutdown and hard-error bits in FAT entry 1 instead.

use crate::fs::ext::bytes::{array, le_u16, le_u32, u8_at};

/// Boot-sector state byte on FAT12/16 (`boot_sector_16.reserved2`, BS_Reserved1).
pub const STATE_OFFSET_FAT16: usize = 0x25;
/// Boot-sector state byte on FAT32 (`boot_sector.reserved3`, BS_Reserved1).
pub const STATE_OFFSET_FAT32: usize = 0x41;
/// State bit: mounted read-write, not cleanly unmounted (`FAT_STATE_DIRTY`).
pub const STATE_DIRTY: u8 = 0x01;
/// State bit: Windows asks for a surface scan at the next check.
pub const STATE_SURFACE_TEST: u8 = 0x02;
/// FAT16 entry 1: clean shutdown (`FAT16_CLN_SHUT_BIT_MASK` in fatgen103).
pub const FAT16_CLEAN_SHUTDOWN: u32 = 0x8000;
/// FAT16 entry 1: no disk I/O errors (`FAT16_HRD_ERR_BIT_MASK`).
pub const FAT16_NO_HARD_ERROR: u32 = 0x4000;
/// FAT32 entry 1: clean shutdown (`FAT32_CLN_SHUT_BIT_MASK`).
pub const FAT32_CLEAN_SHUTDOWN: u32 = 0x0800_0000;
/// FAT32 entry 1: no disk I/O errors (`FAT32_HRD_ERR_BIT_MASK`).
pub const FAT32_NO_HARD_ERROR: u32 = 0x0400_0000;
/// Fewer clusters than this make a FAT12 volume (dosfstools `FAT12_THRESHOLD`).
pub const FAT12_THRESHOLD: u64 = 4085;
/// Extended boot signature: the volume id, label and type string are present.
pub const EXTENDED_BOOT_SIGNATURE: u8 = 0x29;

/// Why a FAT structure could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FatError {
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
    /// A BIOS parameter block field is impossible.
    #[error("FAT boot sector is corrupt: {0}")]
    Corrupt(String),
}

/// FAT entry width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatBits {
    /// 12-bit entries; FAT[1] carries no state bits.
    Fat12,
    /// 16-bit entries.
    Fat16,
    /// 32-bit entries (28 used).
    Fat32,
}

impl FatBits {
    /// 12, 16 or 32.
    pub fn bits(self) -> u8 {
        match self {
            FatBits::Fat12 => 12,
            FatBits::Fat16 => 16,
            FatBits::Fat32 => 32,
        }
    }
}

/// The boot sector fields that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSector {
    /// BPB_BytsPerSec (u16 at 0x0B).
    pub bytes_per_sector: u16,
    /// BPB_SecPerClus (u8 at 0x0D).
    pub sectors_per_cluster: u8,
    /// BPB_RsvdSecCnt (u16 at 0x0E): the first FAT starts after these.
    pub reserved_sectors: u16,
    /// BPB_NumFATs (u8 at 0x10).
    pub fats: u8,
    /// BPB_RootEntCnt (u16 at 0x11): 0 on FAT32.
    pub root_entries: u16,
    /// BPB_TotSec16 (0x13) or, when that is 0, BPB_TotSec32 (0x20).
    pub total_sectors: u32,
    /// BPB_Media (u8 at 0x15).
    pub media: u8,
    /// BPB_FATSz16 (0x16) or, when that is 0, BPB_FATSz32 (0x24): sectors per FAT.
    pub fat_length: u32,
    /// Data clusters, computed as dosfstools does.
    pub clusters: u64,
    /// FAT12, FAT16 or FAT32: FAT32 when BPB_FATSz16 is 0, else by cluster count.
    pub fat_bits: FatBits,
    /// The state byte (0x25 or 0x41).
    pub state: u8,
    /// Where [`BootSector::state`] was read.
    pub state_offset: usize,
    /// BS_VolID, when the extended boot signature (0x29) is present.
    pub volume_id: Option<u32>,
    /// BS_VolLab, trailing spaces removed, when the extended boot signature is present.
    pub label: Option<String>,
    /// BS_FilSysType, e.g. `FAT16`, trailing spaces removed (informational only).
    pub fs_type: String,
    /// BPB_BkBootSec on FAT32.
    pub backup_boot_sector: Option<u16>,
}

fn field(bytes: &[u8], offset: usize, len: usize) -> String {
    let raw = bytes.get(offset..offset.saturating_add(len)).unwrap_or(&[]);
    String::from_utf8_lossy(raw).trim_end().to_string()
}

impl BootSector {
    /// Parse the first 512 bytes (at least) of a FAT volume.
    pub fn parse(raw: &[u8]) -> Result<Self, FatError> {
        const NEED: usize = 512;
        if raw.len() < NEED {
            return Err(FatError::Truncated {
                what: "FAT boot sector",
                needed: NEED,
                got: raw.len(),
            });
        }
        let truncated = || FatError::Truncated {
            what: "FAT boot sector",
            needed: NEED,
            got: raw.len(),
        };
        let u16_at = |off: usize| le_u16(raw, off).ok_or_else(truncated);
        let u32_at = |off: usize| le_u32(raw, off).ok_or_else(truncated);
        let u8_of = |off: usize| u8_at(raw, off).ok_or_else(truncated);
        let corrupt = |msg: String| Err(FatError::Corrupt(msg));

        let bytes_per_sector = u16_at(0x0B)?;
        if !bytes_per_sector.is_power_of_two() || !(512..=4096).contains(&bytes_per_sector) {
            return corrupt(format!("bytes per sector {bytes_per_sector}"));
        }
        let sectors_per_cluster = u8_of(0x0D)?;
        if !sectors_per_cluster.is_power_of_two() {
            return corrupt(format!("sectors per cluster {sectors_per_cluster}"));
        }
        let reserved_sectors = u16_at(0x0E)?;
        if reserved_sectors == 0 {
            return corrupt("no reserved sectors".to_string());
        }
        let fats = u8_of(0x10)?;
        if fats == 0 {
            return corrupt("no FATs".to_string());
        }
        let root_entries = u16_at(0x11)?;
        let total16 = u16_at(0x13)?;
        let media = u8_of(0x15)?;
        let fat_length16 = u16_at(0x16)?;
        let total_sectors = if total16 != 0 {
            u32::from(total16)
        } else {
            u32_at(0x20)?
        };
        if total_sectors == 0 {
            return corrupt("total sectors 0".to_string());
        }
        let is_fat32 = fat_length16 == 0;
        let fat_length = if is_fat32 {
            u32_at(0x24)?
        } else {
            u32::from(fat_length16)
        };
        if fat_length == 0 {
            return corrupt("FAT length 0".to_string());
        }

        let bps = u64::from(bytes_per_sector);
        let root_dir_sectors = (u64::from(root_entries) * 32).div_ceil(bps);
        let meta_sectors = u64::from(reserved_sectors)
            + u64::from(fats) * u64::from(fat_length)
            + root_dir_sectors;
        let Some(data_sectors) = u64::from(total_sectors).checked_sub(meta_sectors) else {
            return corrupt(format!(
                "the FATs and root directory ({meta_sectors} sectors) do not fit in {total_sectors} sectors"
            ));
        };
        let clusters = data_sectors / u64::from(sectors_per_cluster);
        let fat_bits = if is_fat32 {
            FatBits::Fat32
        } else if clusters < FAT12_THRESHOLD {
            FatBits::Fat12
        } else {
            FatBits::Fat16
        };
        let (state_offset, ext_sig, id_off, label_off, type_off) = if is_fat32 {
            (STATE_OFFSET_FAT32, 0x42, 0x43, 0x47, 0x52)
        } else {
            (STATE_OFFSET_FAT16, 0x26, 0x27, 0x2B, 0x36)
        };
        let extended = u8_of(ext_sig)? == EXTENDED_BOOT_SIGNATURE;
        Ok(BootSector {
            bytes_per_sector,
            sectors_per_cluster,
            reserved_sectors,
            fats,
            root_entries,
            total_sectors,
            media,
            fat_length,
            clusters,
            fat_bits,
            state: u8_of(state_offset)?,
            state_offset,
            volume_id: if extended {
                Some(u32_at(id_off)?)
            } else {
                None
            },
            label: extended.then(|| field(raw, label_off, 11)),
            fs_type: field(raw, type_off, 8),
            backup_boot_sector: if is_fat32 { Some(u16_at(0x32)?) } else { None },
        })
    }

    /// Byte offset of the first FAT (`reserved_sectors × bytes_per_sector`).
    pub fn fat_offset(&self) -> u64 {
        u64::from(self.reserved_sectors) * u64::from(self.bytes_per_sector)
    }

    /// Bytes of the first FAT needed by [`Fat1::parse`]: entries 0 and 1.
    pub fn fat1_len(&self) -> usize {
        match self.fat_bits {
            FatBits::Fat12 => 3,
            FatBits::Fat16 => 4,
            FatBits::Fat32 => 8,
        }
    }

    /// Size of the filesystem in bytes (`total_sectors × bytes_per_sector`).
    pub fn fs_bytes(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(self.bytes_per_sector)
    }

    /// Boot-sector dirty bit (what Linux sets while mounted read-write).
    pub fn is_dirty(&self) -> bool {
        self.state & STATE_DIRTY != 0
    }

    /// The volume id as `XXXX-XXXX`, the way blkid prints a FAT UUID.
    pub fn volume_id_string(&self) -> Option<String> {
        self.volume_id
            .map(|id| format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF))
    }
}

/// The state bits of FAT entry 1 (FAT16 and FAT32 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fat1 {
    /// The raw entry (LE u16 or u32).
    pub raw: u32,
    /// Clean-shutdown bit set: the volume was dismounted properly.
    pub clean_shutdown: bool,
    /// Hard-error bit clear: disk I/O errors were seen (set means no errors).
    pub hard_error: bool,
}

impl Fat1 {
    /// Decode FAT[1] from the start of the first FAT (`first_fat` begins at
    /// [`BootSector::fat_offset`]); `None` on FAT12, which has no state bits.
    pub fn parse(bits: FatBits, first_fat: &[u8]) -> Result<Option<Self>, FatError> {
        let truncated = |needed| FatError::Truncated {
            what: "FAT entry 1",
            needed,
            got: first_fat.len(),
        };
        let (raw, clean, ok) = match bits {
            FatBits::Fat12 => return Ok(None),
            FatBits::Fat16 => (
                u32::from(le_u16(first_fat, 2).ok_or_else(|| truncated(4))?),
                FAT16_CLEAN_SHUTDOWN,
                FAT16_NO_HARD_ERROR,
            ),
            FatBits::Fat32 => (
                le_u32(first_fat, 4).ok_or_else(|| truncated(8))?,
                FAT32_CLEAN_SHUTDOWN,
                FAT32_NO_HARD_ERROR,
            ),
        };
        Ok(Some(Fat1 {
            raw,
            clean_shutdown: raw & clean != 0,
            hard_error: raw & ok == 0,
        }))
    }
}

/// Whether the first bytes look like a FAT boot sector at all (jump instruction plus a
/// parseable BPB). A cheap pre-check for callers; [`BootSector::parse`] is the real test.
pub fn looks_like_fat(raw: &[u8]) -> bool {
    let jump = array::<3>(raw, 0);
    matches!(jump, Some([0xEB, _, 0x90]) | Some([0xE9, _, _])) && BootSector::parse(raw).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The boot sector mkfs.fat 4.2 writes for `-F 16` on 16 MiB (relevant fields only).
    fn fat16() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 4;
        b[0x0E..0x10].copy_from_slice(&4u16.to_le_bytes());
        b[0x10] = 2;
        b[0x11..0x13].copy_from_slice(&512u16.to_le_bytes());
        b[0x13..0x15].copy_from_slice(&32768u16.to_le_bytes());
        b[0x15] = 0xF8;
        b[0x16..0x18].copy_from_slice(&32u16.to_le_bytes());
        b[0x26] = 0x29;
        b[0x27..0x2B].copy_from_slice(&0x1234_ABCDu32.to_le_bytes());
        b[0x2B..0x36].copy_from_slice(b"NO NAME    ");
        b[0x36..0x3E].copy_from_slice(b"FAT16   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    fn fat32() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        b[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        b[0x0D] = 1;
        b[0x0E..0x10].copy_from_slice(&32u16.to_le_bytes());
        b[0x10] = 2;
        b[0x15] = 0xF8;
        b[0x20..0x24].copy_from_slice(&131_072u32.to_le_bytes());
        b[0x24..0x28].copy_from_slice(&1008u32.to_le_bytes());
        b[0x2C..0x30].copy_from_slice(&2u32.to_le_bytes());
        b[0x32..0x34].copy_from_slice(&6u16.to_le_bytes());
        b[0x42] = 0x29;
        b[0x47..0x52].copy_from_slice(b"ESP        ");
        b[0x52..0x5A].copy_from_slice(b"FAT32   ");
        b
    }

    #[test]
    fn fat16_geometry_and_state() {
        let mut raw = fat16();
        let b = BootSector::parse(&raw).unwrap();
        assert_eq!(b.fat_bits, FatBits::Fat16);
        assert_eq!(b.clusters, 8167);
        assert_eq!(b.fat_offset(), 2048);
        assert_eq!(b.fs_bytes(), 16 << 20);
        assert_eq!(b.state_offset, 0x25);
        assert!(!b.is_dirty());
        assert_eq!(b.volume_id_string().as_deref(), Some("1234-ABCD"));
        assert_eq!(b.label.as_deref(), Some("NO NAME"));
        assert!(looks_like_fat(&raw));
        raw[0x25] = 1;
        assert!(BootSector::parse(&raw).unwrap().is_dirty());
    }

    #[test]
    fn fat32_and_fat12_detection() {
        let mut raw = fat32();
        let b = BootSector::parse(&raw).unwrap();
        assert_eq!(b.fat_bits, FatBits::Fat32);
        assert_eq!(b.clusters, 131_072 - 32 - 2016);
        assert_eq!(b.state_offset, 0x41);
        assert_eq!(b.label.as_deref(), Some("ESP"));
        assert_eq!(b.backup_boot_sector, Some(6));
        raw[0x41] = 1;
        assert!(BootSector::parse(&raw).unwrap().is_dirty());

        let mut small = fat16();
        small[0x13..0x15].copy_from_slice(&4096u16.to_le_bytes());
        small[0x16..0x18].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(BootSector::parse(&small).unwrap().fat_bits, FatBits::Fat12);
    }

    #[test]
    fn fat1_bits() {
        let f16 = [0xF8, 0xFF, 0xFF, 0xFF];
        let e = Fat1::parse(FatBits::Fat16, &f16).unwrap().unwrap();
        assert!(e.clean_shutdown && !e.hard_error);
        let e = Fat1::parse(FatBits::Fat16, &[0xF8, 0xFF, 0xFF, 0x7F])
            .unwrap()
            .unwrap();
        assert!(!e.clean_shutdown && !e.hard_error);
        let e = Fat1::parse(FatBits::Fat16, &[0xF8, 0xFF, 0xFF, 0xBF])
            .unwrap()
            .unwrap();
        assert!(e.clean_shutdown && e.hard_error);
        let f32 = [0xF8, 0xFF, 0xFF, 0x0F, 0xFF, 0xFF, 0xFF, 0x0B];
        let e = Fat1::parse(FatBits::Fat32, &f32).unwrap().unwrap();
        assert!(e.clean_shutdown && e.hard_error);
        assert_eq!(Fat1::parse(FatBits::Fat12, &[]).unwrap(), None);
        assert!(Fat1::parse(FatBits::Fat32, &f32[..7]).is_err());
    }

    #[test]
    fn rejects_nonsense() {
        assert!(matches!(
            BootSector::parse(&fat16()[..511]),
            Err(FatError::Truncated { .. })
        ));
        let mut b = fat16();
        b[0x0B] = 0;
        b[0x0C] = 3;
        assert!(matches!(BootSector::parse(&b), Err(FatError::Corrupt(_))));
        let mut b = fat16();
        b[0x13..0x15].copy_from_slice(&10u16.to_le_bytes());
        assert!(matches!(BootSector::parse(&b), Err(FatError::Corrupt(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = looks_like_fat(&bytes);
            if let Ok(b) = BootSector::parse(&bytes) {
                let _ = (b.fat_offset(), b.fs_bytes(), b.volume_id_string(), b.fat1_len());
                let _ = Fat1::parse(b.fat_bits, &bytes);
            }
            for bits in [FatBits::Fat12, FatBits::Fat16, FatBits::Fat32] {
                let _ = Fat1::parse(bits, &bytes);
            }
        }

        #[test]
        fn never_panics_on_a_mutated_boot_sector(
            edits in proptest::collection::vec((0usize..512, any::<u8>()), 0..32),
            fat32_base in any::<bool>(),
        ) {
            let mut b = if fat32_base { fat32() } else { fat16() };
            for (at, v) in edits {
                b[at] = v;
            }
            if let Ok(parsed) = BootSector::parse(&b) {
                let _ = (parsed.fat_offset(), parsed.fs_bytes(), parsed.volume_id_string());
            }
        }
    }
}
