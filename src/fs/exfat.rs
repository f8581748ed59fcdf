//! The exFAT main boot sector and boot-region checksum: pure parsers, bytes in, structs
//! out, no I/O.
//!
//! Layout after the Microsoft exFAT specification §3.1 and the kernel's
//! `fs/exfat/exfat_raw.h` (`struct boot_sector`) and `fs/exfat/super.c`
//! (`exfat_read_boot_sector`, `exfat_verify_boot_region`). All fields are little-endian.
//! The boot region is sectors 0..=11: the main boot sector, eight extended boot sectors,
//! the OEM parameters, a reserved sector and the checksum sector.

use crate::fs::ext::bytes::{array, le_u16, le_u32, le_u64, u8_at};

/// `STR_EXFAT`, the FileSystemName at offset 3.
pub const NAME: [u8; 8] = *b"EXFAT   ";
/// VolumeFlags (u16 at 0x6A) bit 0: the second FAT is active.
pub const ACTIVE_FAT: u16 = 0x0001;
/// VolumeFlags bit 1 (`VOLUME_DIRTY`): modifications in progress, not cleanly unmounted.
pub const VOLUME_DIRTY: u16 = 0x0002;
/// VolumeFlags bit 2 (`MEDIA_FAILURE`): the medium reported read or write failures.
pub const MEDIA_FAILURE: u16 = 0x0004;
/// VolumeFlags bit 3: ClearToZero (no meaning defined).
pub const CLEAR_TO_ZERO: u16 = 0x0008;
/// Offset of VolumeFlags; it and PercentInUse (0x70) are left out of the checksum.
pub const VOLUME_FLAGS_OFFSET: usize = 0x6A;
/// Offset of PercentInUse.
pub const PERCENT_IN_USE_OFFSET: usize = 0x70;
/// Sectors covered by the boot checksum (main boot sector up to the reserved sector).
pub const CHECKSUMMED_SECTORS: usize = 11;

/// Why an exFAT structure could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExFatError {
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
    /// The FileSystemName is not `EXFAT   `.
    #[error("not an exFAT boot sector (file system name {0:02x?})")]
    BadName([u8; 8]),
    /// A field the kernel validates is impossible.
    #[error("exFAT boot sector is corrupt: {0}")]
    Corrupt(String),
}

/// The main boot sector fields that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSector {
    /// PartitionOffset (u64 at 0x40), in sectors.
    pub partition_offset: u64,
    /// VolumeLength (u64 at 0x48), in sectors.
    pub volume_length: u64,
    /// FatOffset (u32 at 0x50), in sectors.
    pub fat_offset: u32,
    /// FatLength (u32 at 0x54), in sectors.
    pub fat_length: u32,
    /// ClusterHeapOffset (u32 at 0x58), in sectors.
    pub cluster_heap_offset: u32,
    /// ClusterCount (u32 at 0x5C).
    pub cluster_count: u32,
    /// FirstClusterOfRootDirectory (u32 at 0x60).
    pub root_cluster: u32,
    /// VolumeSerialNumber (u32 at 0x64).
    pub volume_serial: u32,
    /// FileSystemRevision (u16 at 0x68): major in the high byte.
    pub revision: u16,
    /// VolumeFlags (u16 at 0x6A).
    pub volume_flags: u16,
    /// BytesPerSectorShift (u8 at 0x6C), 9..=12.
    pub bytes_per_sector_shift: u8,
    /// SectorsPerClusterShift (u8 at 0x6D).
    pub sectors_per_cluster_shift: u8,
    /// NumberOfFats (u8 at 0x6E), 1 or 2.
    pub fats: u8,
    /// PercentInUse (u8 at 0x70); 0xFF means unknown.
    pub percent_in_use: u8,
}

impl BootSector {
    /// Parse the main boot sector (at least 512 bytes), with the checks the kernel makes
    /// before mounting (`exfat_read_boot_sector`).
    pub fn parse(raw: &[u8]) -> Result<Self, ExFatError> {
        const NEED: usize = 512;
        let truncated = || ExFatError::Truncated {
            what: "exFAT boot sector",
            needed: NEED,
            got: raw.len(),
        };
        if raw.len() < NEED {
            return Err(truncated());
        }
        let name: [u8; 8] = array(raw, 3).ok_or_else(truncated)?;
        if name != NAME {
            return Err(ExFatError::BadName(name));
        }
        let corrupt = |m: String| Err(ExFatError::Corrupt(m));
        if raw
            .get(0x0B..0x40)
            .is_some_and(|z| z.iter().any(|&b| b != 0))
        {
            return corrupt("MustBeZero (0x0B..0x40) is not zero".to_string());
        }
        let u64_at = |o: usize| le_u64(raw, o).ok_or_else(truncated);
        let u32_at = |o: usize| le_u32(raw, o).ok_or_else(truncated);
        let u8_of = |o: usize| u8_at(raw, o).ok_or_else(truncated);
        let bytes_per_sector_shift = u8_of(0x6C)?;
        if !(9..=12).contains(&bytes_per_sector_shift) {
            return corrupt(format!("bytes per sector shift {bytes_per_sector_shift}"));
        }
        let sectors_per_cluster_shift = u8_of(0x6D)?;
        if u32::from(bytes_per_sector_shift) + u32::from(sectors_per_cluster_shift) > 25 {
            return corrupt(format!(
                "sectors per cluster shift {sectors_per_cluster_shift} (clusters over 32 MiB)"
            ));
        }
        let fats = u8_of(0x6E)?;
        if fats != 1 && fats != 2 {
            return corrupt(format!("number of FATs {fats}"));
        }
        if le_u16(raw, 510) != Some(0xAA55) {
            return corrupt("boot signature is not 0xAA55".to_string());
        }
        Ok(BootSector {
            partition_offset: u64_at(0x40)?,
            volume_length: u64_at(0x48)?,
            fat_offset: u32_at(0x50)?,
            fat_length: u32_at(0x54)?,
            cluster_heap_offset: u32_at(0x58)?,
            cluster_count: u32_at(0x5C)?,
            root_cluster: u32_at(0x60)?,
            volume_serial: u32_at(0x64)?,
            revision: le_u16(raw, 0x68).ok_or_else(truncated)?,
            volume_flags: le_u16(raw, VOLUME_FLAGS_OFFSET).ok_or_else(truncated)?,
            bytes_per_sector_shift,
            sectors_per_cluster_shift,
            fats,
            percent_in_use: u8_of(PERCENT_IN_USE_OFFSET)?,
        })
    }

    /// Bytes per sector (512..=4096).
    pub fn bytes_per_sector(&self) -> u32 {
        1u32 << self.bytes_per_sector_shift.min(31)
    }

    /// Sectors per cluster.
    pub fn sectors_per_cluster(&self) -> u32 {
        1u32 << self.sectors_per_cluster_shift.min(31)
    }

    /// Size of the volume in bytes (`VolumeLength × bytes per sector`), saturating.
    pub fn fs_bytes(&self) -> u64 {
        self.volume_length
            .saturating_mul(u64::from(self.bytes_per_sector()))
    }

    /// Bytes of the boot region that [`verify_boot_checksum`] needs: 12 sectors.
    pub fn boot_region_len(&self) -> usize {
        12 * self.bytes_per_sector() as usize
    }

    /// VolumeDirty bit.
    pub fn is_dirty(&self) -> bool {
        self.volume_flags & VOLUME_DIRTY != 0
    }

    /// MediaFailure bit.
    pub fn media_failure(&self) -> bool {
        self.volume_flags & MEDIA_FAILURE != 0
    }

    /// The serial as `XXXX-XXXX`, the way blkid prints an exFAT UUID.
    pub fn serial_string(&self) -> String {
        format!(
            "{:04X}-{:04X}",
            self.volume_serial >> 16,
            self.volume_serial & 0xFFFF
        )
    }

    /// FileSystemRevision as `major.minor` (`1.00`).
    pub fn revision_string(&self) -> String {
        format!("{}.{:02}", self.revision >> 8, self.revision & 0xFF)
    }
}

/// The boot checksum (spec §3.4): over the first 11 sectors, skipping VolumeFlags and
/// PercentInUse, `checksum = rotate_right(checksum, 1) + byte`.
pub fn boot_checksum(region: &[u8], bytes_per_sector: usize) -> Option<u32> {
    let len = CHECKSUMMED_SECTORS.checked_mul(bytes_per_sector)?;
    let covered = region.get(..len)?;
    let mut sum = 0u32;
    for (i, &byte) in covered.iter().enumerate() {
        if i == VOLUME_FLAGS_OFFSET || i == VOLUME_FLAGS_OFFSET + 1 || i == PERCENT_IN_USE_OFFSET {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(u32::from(byte));
    }
    Some(sum)
}

/// The result of checking the boot checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// Every u32 of the checksum sector (sector 11) equals the computed value.
    Valid,
    /// At least one differs; the kernel refuses to mount ("Invalid boot checksum").
    Invalid {
        /// The first u32 of the checksum sector.
        stored: u32,
        /// The computed value.
        computed: u32,
    },
    /// Fewer than 12 sectors were supplied.
    Unavailable,
}

/// Check the boot-region checksum of `region` (at least 12 sectors of `bytes_per_sector`).
pub fn verify_boot_checksum(region: &[u8], bytes_per_sector: usize) -> ChecksumStatus {
    let Some(computed) = boot_checksum(region, bytes_per_sector) else {
        return ChecksumStatus::Unavailable;
    };
    let start = CHECKSUMMED_SECTORS * bytes_per_sector;
    let Some(sector) = start
        .checked_add(bytes_per_sector)
        .and_then(|end| region.get(start..end))
    else {
        return ChecksumStatus::Unavailable;
    };
    let stored = le_u32(sector, 0).unwrap_or(0);
    let all_match = sector
        .chunks_exact(4)
        .all(|w| le_u32(w, 0) == Some(computed));
    if all_match {
        ChecksumStatus::Valid
    } else {
        ChecksumStatus::Invalid { stored, computed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 12-sector boot region like mkfs.exfat's for 64 MiB, with its checksum sector.
    fn region(flags: u16) -> Vec<u8> {
        let bps = 512usize;
        let mut r = vec![0u8; 12 * bps];
        r[0..3].copy_from_slice(&[0xEB, 0x76, 0x90]);
        r[3..11].copy_from_slice(&NAME);
        r[0x48..0x50].copy_from_slice(&131_072u64.to_le_bytes());
        r[0x50..0x54].copy_from_slice(&2048u32.to_le_bytes());
        r[0x54..0x58].copy_from_slice(&64u32.to_le_bytes());
        r[0x58..0x5C].copy_from_slice(&4096u32.to_le_bytes());
        r[0x5C..0x60].copy_from_slice(&15_872u32.to_le_bytes());
        r[0x60..0x64].copy_from_slice(&5u32.to_le_bytes());
        r[0x64..0x68].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        r[0x68..0x6A].copy_from_slice(&0x0100u16.to_le_bytes());
        r[0x6C] = 9;
        r[0x6D] = 3;
        r[0x6E] = 1;
        r[510] = 0x55;
        r[511] = 0xAA;
        let sum = boot_checksum(&r, bps).unwrap();
        for w in r[11 * bps..].chunks_exact_mut(4) {
            w.copy_from_slice(&sum.to_le_bytes());
        }
        r[0x6A..0x6C].copy_from_slice(&flags.to_le_bytes());
        r
    }

    #[test]
    fn parses_flags_and_geometry() {
        let r = region(VOLUME_DIRTY | MEDIA_FAILURE);
        let b = BootSector::parse(&r).unwrap();
        assert!(b.is_dirty() && b.media_failure());
        assert_eq!(b.bytes_per_sector(), 512);
        assert_eq!(b.sectors_per_cluster(), 8);
        assert_eq!(b.fs_bytes(), 64 << 20);
        assert_eq!(b.boot_region_len(), 6144);
        assert_eq!(b.serial_string(), "DEAD-BEEF");
        assert_eq!(b.revision_string(), "1.00");
        let clean = BootSector::parse(&region(0)).unwrap();
        assert!(!clean.is_dirty() && !clean.media_failure());
    }

    #[test]
    fn checksum_ignores_the_flags_but_not_the_rest() {
        let mut r = region(VOLUME_DIRTY);
        assert_eq!(verify_boot_checksum(&r, 512), ChecksumStatus::Valid);
        r[PERCENT_IN_USE_OFFSET] = 42;
        assert_eq!(verify_boot_checksum(&r, 512), ChecksumStatus::Valid);
        r[0x64] ^= 1;
        assert!(matches!(
            verify_boot_checksum(&r, 512),
            ChecksumStatus::Invalid { .. }
        ));
        assert_eq!(
            verify_boot_checksum(&r[..6000], 512),
            ChecksumStatus::Unavailable
        );
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        let mut r = region(0);
        r[0x20] = 1;
        assert!(matches!(BootSector::parse(&r), Err(ExFatError::Corrupt(_))));
        let mut r = region(0);
        r[0x6E] = 3;
        assert!(matches!(BootSector::parse(&r), Err(ExFatError::Corrupt(_))));
        let mut r = region(0);
        r[3] = b'F';
        assert!(matches!(BootSector::parse(&r), Err(ExFatError::BadName(_))));
        assert!(matches!(
            BootSector::parse(&region(0)[..100]),
            Err(ExFatError::Truncated { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..7000), bps in 0usize..5000) {
            let _ = verify_boot_checksum(&bytes, bps);
            let _ = boot_checksum(&bytes, usize::MAX);
            if let Ok(b) = BootSector::parse(&bytes) {
                let _ = (b.fs_bytes(), b.boot_region_len(), b.serial_string(), b.revision_string());
            }
        }

        #[test]
        fn never_panics_on_a_mutated_boot_sector(edits in proptest::collection::vec((0usize..512, any::<u8>()), 0..24)) {
            let mut r = region(0);
            for (at, v) in edits {
                r[at] = v;
            }
            if let Ok(b) = BootSector::parse(&r) {
                let _ = verify_boot_checksum(&r, b.bytes_per_sector() as usize);
                let _ = (b.fs_bytes(), b.boot_region_len());
            }
        }
    }
}
