//! The btrfs superblock (`struct btrfs_super_block`, 4096 bytes at 64 KiB, mirrors at
//! 64 MiB and 256 GiB) and the per-device error counters: pure parsers, bytes or text in,
//! structs out, no I/O.
//!
//! Layout and rules follow btrfs-progs `kernel-shared/uapi/btrfs_tree.h`,
//! `kernel-shared/ctree.h` and `kernel-shared/disk-io.c` (`btrfs_check_super`,
//! `btrfs_read_dev_super`). All fields are little-endian. Offsets below are relative to
//! the start of the superblock copy.

use crate::fs::ext::bytes::{array, c_string, le_u16, le_u32, le_u64, u8_at};

/// Byte offset of the primary superblock (`BTRFS_SUPER_INFO_OFFSET`).
pub const SUPER_INFO_OFFSET: u64 = 0x1_0000;
/// Size of one superblock copy (`BTRFS_SUPER_INFO_SIZE`).
pub const SUPER_INFO_SIZE: usize = 4096;
/// Number of superblock copies per device (`BTRFS_SUPER_MIRROR_MAX`).
pub const SUPER_MIRROR_MAX: usize = 3;
/// `BTRFS_SUPER_MIRROR_SHIFT`: copy `i ≥ 1` lives at 16 KiB << (12 × i).
pub const SUPER_MIRROR_SHIFT: u32 = 12;
/// `BTRFS_MAGIC`, the eight bytes `_BHRfS_M` at offset 0x40.
pub const MAGIC: [u8; 8] = *b"_BHRfS_M";
/// Size of the checksum field at offset 0 (`BTRFS_CSUM_SIZE`); the checksum covers
/// bytes `0x20..0x1000`.
pub const CSUM_SIZE: usize = 32;
/// Deepest tree level plus one (`BTRFS_MAX_LEVEL`).
pub const MAX_LEVEL: u8 = 8;
/// Largest node and sector size (`BTRFS_MAX_METADATA_BLOCKSIZE`).
pub const MAX_METADATA_BLOCKSIZE: u32 = 65536;
/// Size of the system chunk array (`BTRFS_SYSTEM_CHUNK_ARRAY_SIZE`).
pub const SYSTEM_CHUNK_ARRAY_SIZE: u32 = 2048;
/// `sizeof(struct btrfs_disk_key) + sizeof(struct btrfs_chunk)` with one stripe: the
/// smallest non-empty system chunk array.
pub const MIN_SYS_ARRAY_SIZE: u32 = 17 + 80;

/// `flags` bit 0: `BTRFS_HEADER_FLAG_WRITTEN`, normally set.
pub const FLAG_WRITTEN: u64 = 1 << 0;
/// `flags` bit 1: `BTRFS_HEADER_FLAG_RELOC`.
pub const FLAG_RELOC: u64 = 1 << 1;
/// `BTRFS_SUPER_FLAG_ERROR`: the kernel found the filesystem broken ("Errors detected").
pub const FLAG_ERROR: u64 = 1 << 2;
/// `BTRFS_SUPER_FLAG_SEEDING`: a read-only seed device.
pub const FLAG_SEEDING: u64 = 1 << 32;
/// `BTRFS_SUPER_FLAG_METADUMP`: restored from `btrfs-image` (metadata only, no data).
pub const FLAG_METADUMP: u64 = 1 << 33;
/// `BTRFS_SUPER_FLAG_METADUMP_V2`: as [`FLAG_METADUMP`], newer format.
pub const FLAG_METADUMP_V2: u64 = 1 << 34;
/// `BTRFS_SUPER_FLAG_CHANGING_FSID`: `btrfstune -u` was interrupted.
pub const FLAG_CHANGING_FSID: u64 = 1 << 35;
/// `BTRFS_SUPER_FLAG_CHANGING_FSID_V2`: `btrfstune -m/-M` (metadata_uuid) was interrupted.
pub const FLAG_CHANGING_FSID_V2: u64 = 1 << 36;
/// Bit 37: `CHANGING_CSUM` / `CHANGING_META_CSUM` in btrfs-progs 6.0–6.4 (experimental
/// checksum conversion), before the values moved to bits 39 and 40.
pub const FLAG_CHANGING_CSUM_LEGACY: u64 = 1 << 37;
/// `BTRFS_SUPER_FLAG_CHANGING_BG_TREE`: block-group-tree conversion interrupted.
pub const FLAG_CHANGING_BG_TREE: u64 = 1 << 38;
/// `BTRFS_SUPER_FLAG_CHANGING_DATA_CSUM`: data checksum conversion interrupted.
pub const FLAG_CHANGING_DATA_CSUM: u64 = 1 << 39;
/// `BTRFS_SUPER_FLAG_CHANGING_META_CSUM`: metadata checksum conversion interrupted.
pub const FLAG_CHANGING_META_CSUM: u64 = 1 << 40;

/// Flags left behind by an offline btrfs-progs operation that did not finish; the kernel
/// rejects or mistrusts a filesystem carrying them.
pub const INTERRUPTED_OPERATION_FLAGS: u64 = FLAG_CHANGING_FSID
    | FLAG_CHANGING_FSID_V2
    | FLAG_CHANGING_CSUM_LEGACY
    | FLAG_CHANGING_BG_TREE
    | FLAG_CHANGING_DATA_CSUM
    | FLAG_CHANGING_META_CSUM;

/// incompat `METADATA_UUID`: `metadata_uuid` (0x23B) is the UUID stamped in metadata.
pub const INCOMPAT_METADATA_UUID: u64 = 1 << 10;

const FLAG_NAMES: [(u64, &str); 12] = [
    (FLAG_WRITTEN, "WRITTEN"),
    (FLAG_RELOC, "RELOC"),
    (FLAG_ERROR, "ERROR"),
    (FLAG_SEEDING, "SEEDING"),
    (FLAG_METADUMP, "METADUMP"),
    (FLAG_METADUMP_V2, "METADUMP_V2"),
    (FLAG_CHANGING_FSID, "CHANGING_FSID"),
    (FLAG_CHANGING_FSID_V2, "CHANGING_FSID_V2"),
    (FLAG_CHANGING_CSUM_LEGACY, "CHANGING_CSUM"),
    (FLAG_CHANGING_BG_TREE, "CHANGING_BG_TREE"),
    (FLAG_CHANGING_DATA_CSUM, "CHANGING_DATA_CSUM"),
    (FLAG_CHANGING_META_CSUM, "CHANGING_META_CSUM"),
];

const COMPAT_RO_NAMES: [(u64, &str); 4] = [
    (1 << 0, "FREE_SPACE_TREE"),
    (1 << 1, "FREE_SPACE_TREE_VALID"),
    (1 << 2, "VERITY"),
    (1 << 3, "BLOCK_GROUP_TREE"),
];

const INCOMPAT_NAMES: [(u64, &str); 16] = [
    (1 << 0, "MIXED_BACKREF"),
    (1 << 1, "DEFAULT_SUBVOL"),
    (1 << 2, "MIXED_GROUPS"),
    (1 << 3, "COMPRESS_LZO"),
    (1 << 4, "COMPRESS_ZSTD"),
    (1 << 5, "BIG_METADATA"),
    (1 << 6, "EXTENDED_IREF"),
    (1 << 7, "RAID56"),
    (1 << 8, "SKINNY_METADATA"),
    (1 << 9, "NO_HOLES"),
    (INCOMPAT_METADATA_UUID, "METADATA_UUID"),
    (1 << 11, "RAID1C34"),
    (1 << 12, "ZONED"),
    (1 << 13, "EXTENT_TREE_V2"),
    (1 << 14, "RAID_STRIPE_TREE"),
    (1 << 16, "SIMPLE_QUOTA"),
];

/// Byte offset of superblock copy `mirror` (`btrfs_sb_offset`): 64 KiB, 64 MiB, 256 GiB.
pub fn super_offset(mirror: usize) -> u64 {
    if mirror == 0 {
        return SUPER_INFO_OFFSET;
    }
    let shift = SUPER_MIRROR_SHIFT.saturating_mul(u32::try_from(mirror).unwrap_or(u32::MAX));
    (16u64 * 1024).checked_shl(shift).unwrap_or(u64::MAX)
}

/// Whether copy `mirror` is written on a device of `device_bytes` bytes: btrfs-progs and
/// the kernel write a copy only when it ends within the device.
pub fn mirror_fits(mirror: usize, device_bytes: u64) -> bool {
    super_offset(mirror)
        .checked_add(SUPER_INFO_SIZE as u64)
        .is_some_and(|end| end <= device_bytes)
}

/// Why a btrfs structure could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtrfsError {
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
    /// The magic at 0x40 is not `_BHRfS_M`.
    #[error("btrfs superblock: bad magic {found:02x?}")]
    BadMagic {
        /// The eight bytes found instead.
        found: [u8; 8],
    },
}

/// `csum_type` (u16 at 0xC4): the checksum algorithm of the filesystem
/// (`BTRFS_CSUM_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumType {
    /// 0, `BTRFS_CSUM_TYPE_CRC32`: standard CRC-32C, 4 bytes.
    Crc32c,
    /// 1, `BTRFS_CSUM_TYPE_XXHASH`: xxHash64, 8 bytes.
    Xxhash64,
    /// 2, `BTRFS_CSUM_TYPE_SHA256`: 32 bytes.
    Sha256,
    /// 3, `BTRFS_CSUM_TYPE_BLAKE2`: BLAKE2b-256, 32 bytes.
    Blake2b,
    /// Anything else: btrfs-progs says "unsupported checksum algorithm".
    Unknown(u16),
}

impl CsumType {
    /// Decode the on-disk value.
    pub fn from_raw(raw: u16) -> Self {
        match raw {
            0 => CsumType::Crc32c,
            1 => CsumType::Xxhash64,
            2 => CsumType::Sha256,
            3 => CsumType::Blake2b,
            other => CsumType::Unknown(other),
        }
    }

    /// The name `btrfs inspect-internal dump-super` prints after the number.
    pub fn name(self) -> String {
        match self {
            CsumType::Crc32c => "crc32c".to_string(),
            CsumType::Xxhash64 => "xxhash64".to_string(),
            CsumType::Sha256 => "sha256".to_string(),
            CsumType::Blake2b => "blake2b".to_string(),
            CsumType::Unknown(n) => format!("unknown ({n})"),
        }
    }
}

/// The part of `struct btrfs_dev_item` (98 bytes at superblock 0xC9) that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevItem {
    /// `devid` (+0).
    pub devid: u64,
    /// `total_bytes` (+8): size of this device as the filesystem uses it.
    pub total_bytes: u64,
    /// `bytes_used` (+16).
    pub bytes_used: u64,
    /// `uuid` (+66): the device UUID.
    pub uuid: [u8; 16],
    /// `fsid` (+82): must equal the metadata UUID.
    pub fsid: [u8; 16],
}

/// The fields of `struct btrfs_super_block` needed to judge the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// `csum` (0x00, 32 bytes).
    pub csum: [u8; CSUM_SIZE],
    /// `fsid` (0x20): the filesystem UUID, also the `/sys/fs/btrfs/<fsid>` name.
    pub fsid: [u8; 16],
    /// `bytenr` (0x30): where this copy says it lives.
    pub bytenr: u64,
    /// `flags` (0x38): `BTRFS_SUPER_FLAG_*` and header flags.
    pub flags: u64,
    /// `generation` (0x48): transaction id of the last commit.
    pub generation: u64,
    /// `root` (0x50): logical address of the root tree.
    pub root: u64,
    /// `chunk_root` (0x58).
    pub chunk_root: u64,
    /// `log_root` (0x60): non-zero when an fsync log tree waits to be replayed.
    pub log_root: u64,
    /// `total_bytes` (0x70): size of all devices.
    pub total_bytes: u64,
    /// `bytes_used` (0x78).
    pub bytes_used: u64,
    /// `num_devices` (0x88).
    pub num_devices: u64,
    /// `sectorsize` (0x90).
    pub sectorsize: u32,
    /// `nodesize` (0x94).
    pub nodesize: u32,
    /// `stripesize` (0x9C).
    pub stripesize: u32,
    /// `sys_chunk_array_size` (0xA0).
    pub sys_chunk_array_size: u32,
    /// `chunk_root_generation` (0xA4).
    pub chunk_root_generation: u64,
    /// `compat_flags` (0xAC).
    pub compat_flags: u64,
    /// `compat_ro_flags` (0xB4).
    pub compat_ro_flags: u64,
    /// `incompat_flags` (0xBC).
    pub incompat_flags: u64,
    /// `csum_type` (0xC4).
    pub csum_type: CsumType,
    /// `root_level` (0xC6).
    pub root_level: u8,
    /// `chunk_root_level` (0xC7).
    pub chunk_root_level: u8,
    /// `log_root_level` (0xC8).
    pub log_root_level: u8,
    /// `dev_item` (0xC9): the device this copy was read from.
    pub dev_item: DevItem,
    /// `label` (0x12B, 256 bytes, NUL-terminated when shorter).
    pub label: String,
    /// `metadata_uuid` (0x23B); meaningful only with incompat `METADATA_UUID`.
    pub metadata_uuid: [u8; 16],
}

fn need(bytes: &[u8], len: usize) -> Result<(), BtrfsError> {
    if bytes.len() < len {
        return Err(BtrfsError::Truncated {
            what: "btrfs superblock",
            needed: len,
            got: bytes.len(),
        });
    }
    Ok(())
}

impl Superblock {
    /// Parse one 4096-byte superblock copy. Only the size and the magic are checked;
    /// [`verify_checksum`] and [`Superblock::problems`] judge the rest.
    pub fn parse(raw: &[u8]) -> Result<Self, BtrfsError> {
        need(raw, SUPER_INFO_SIZE)?;
        let truncated = || BtrfsError::Truncated {
            what: "btrfs superblock",
            needed: SUPER_INFO_SIZE,
            got: raw.len(),
        };
        let magic: [u8; 8] = array(raw, 0x40).ok_or_else(truncated)?;
        if magic != MAGIC {
            return Err(BtrfsError::BadMagic { found: magic });
        }
        let u64_at = |off: usize| le_u64(raw, off).ok_or_else(truncated);
        let u32_at = |off: usize| le_u32(raw, off).ok_or_else(truncated);
        let u8_of = |off: usize| u8_at(raw, off).ok_or_else(truncated);
        const DEV: usize = 0xC9;
        Ok(Superblock {
            csum: array(raw, 0).ok_or_else(truncated)?,
            fsid: array(raw, 0x20).ok_or_else(truncated)?,
            bytenr: u64_at(0x30)?,
            flags: u64_at(0x38)?,
            generation: u64_at(0x48)?,
            root: u64_at(0x50)?,
            chunk_root: u64_at(0x58)?,
            log_root: u64_at(0x60)?,
            total_bytes: u64_at(0x70)?,
            bytes_used: u64_at(0x78)?,
            num_devices: u64_at(0x88)?,
            sectorsize: u32_at(0x90)?,
            nodesize: u32_at(0x94)?,
            stripesize: u32_at(0x9C)?,
            sys_chunk_array_size: u32_at(0xA0)?,
            chunk_root_generation: u64_at(0xA4)?,
            compat_flags: u64_at(0xAC)?,
            compat_ro_flags: u64_at(0xB4)?,
            incompat_flags: u64_at(0xBC)?,
            csum_type: CsumType::from_raw(le_u16(raw, 0xC4).ok_or_else(truncated)?),
            root_level: u8_of(0xC6)?,
            chunk_root_level: u8_of(0xC7)?,
            log_root_level: u8_of(0xC8)?,
            dev_item: DevItem {
                devid: u64_at(DEV)?,
                total_bytes: u64_at(DEV + 8)?,
                bytes_used: u64_at(DEV + 16)?,
                uuid: array(raw, DEV + 66).ok_or_else(truncated)?,
                fsid: array(raw, DEV + 82).ok_or_else(truncated)?,
            },
            label: c_string(raw, 0x12B, 256),
            metadata_uuid: array(raw, 0x23B).ok_or_else(truncated)?,
        })
    }

    /// The UUID stamped into metadata blocks: `metadata_uuid` with incompat
    /// `METADATA_UUID`, else `fsid`.
    pub fn effective_metadata_uuid(&self) -> [u8; 16] {
        if self.incompat_flags & INCOMPAT_METADATA_UUID != 0 {
            self.metadata_uuid
        } else {
            self.fsid
        }
    }

    /// `flags & BTRFS_SUPER_FLAG_ERROR`.
    pub fn has_error_flag(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }

    /// The interrupted-operation flags that are set (see [`INTERRUPTED_OPERATION_FLAGS`]).
    pub fn interrupted_operations(&self) -> u64 {
        self.flags & INTERRUPTED_OPERATION_FLAGS
    }

    /// Whether the image was restored from a metadata dump (no file data).
    pub fn is_metadump(&self) -> bool {
        self.flags & (FLAG_METADUMP | FLAG_METADUMP_V2) != 0
    }

    /// Whether this is a seed device.
    pub fn is_seeding(&self) -> bool {
        self.flags & FLAG_SEEDING != 0
    }

    /// Names of the set `flags` bits as dump-super prints them; unknown bits as hex.
    pub fn flag_names(&self) -> Vec<String> {
        names(self.flags, &FLAG_NAMES)
    }

    /// Names of the set `compat_ro_flags` and `incompat_flags` bits.
    pub fn feature_names(&self) -> Vec<String> {
        let mut all = names(self.compat_ro_flags, &COMPAT_RO_NAMES);
        all.extend(names(self.incompat_flags, &INCOMPAT_NAMES));
        all
    }

    /// The sanity checks of btrfs-progs `btrfs_check_super` after the checksum, as
    /// messages; empty when the copy is sane. A copy failing any of them is rejected
    /// ("superblock checksum matches but it has invalid members").
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, level) in [
            ("tree_root", self.root_level),
            ("chunk_root", self.chunk_root_level),
            ("log_root", self.log_root_level),
        ] {
            if level >= MAX_LEVEL {
                out.push(format!("{name} level too big: {level} >= {MAX_LEVEL}"));
            }
        }
        for (name, addr) in [
            ("tree_root", self.root),
            ("chunk_root", self.chunk_root),
            ("log_root", self.log_root),
        ] {
            if addr % 4096 != 0 {
                out.push(format!("{name} block unaligned: {addr}"));
            }
        }
        let sector_ok =
            |s: u32| s.is_power_of_two() && (4096..=MAX_METADATA_BLOCKSIZE).contains(&s);
        if !sector_ok(self.sectorsize) {
            out.push(format!("invalid sectorsize: {}", self.sectorsize));
        }
        if !self.nodesize.is_power_of_two()
            || self.nodesize < self.sectorsize.max(4096)
            || self.nodesize > MAX_METADATA_BLOCKSIZE
        {
            out.push(format!("invalid nodesize: {}", self.nodesize));
        }
        if self.total_bytes == 0 {
            out.push("invalid total_bytes 0".to_string());
        }
        if self.num_devices == 0 {
            out.push("number of devices is 0".to_string());
        }
        if self.dev_item.fsid != self.effective_metadata_uuid() {
            out.push("dev_item UUID does not match fsid".to_string());
        }
        if self.sys_chunk_array_size > SYSTEM_CHUNK_ARRAY_SIZE {
            out.push(format!(
                "system chunk array too big {} > {SYSTEM_CHUNK_ARRAY_SIZE}",
                self.sys_chunk_array_size
            ));
        } else if self.sys_chunk_array_size < MIN_SYS_ARRAY_SIZE {
            out.push(format!(
                "system chunk array too small {} < {MIN_SYS_ARRAY_SIZE}",
                self.sys_chunk_array_size
            ));
        }
        out
    }
}

fn names(bits: u64, table: &[(u64, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut known = 0u64;
    for &(bit, name) in table {
        known |= bit;
        if bits & bit != 0 {
            out.push(name.to_string());
        }
    }
    let unknown = bits & !known;
    if unknown != 0 {
        out.push(format!("unknown 0x{unknown:x}"));
    }
    out
}

/// A checksum as stored in `csum` (its first `len` bytes, in on-disk order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csum {
    bytes: [u8; CSUM_SIZE],
    len: usize,
}

impl Csum {
    fn new(value: &[u8]) -> Self {
        let mut bytes = [0u8; CSUM_SIZE];
        let len = value.len().min(CSUM_SIZE);
        bytes[..len].copy_from_slice(&value[..len]);
        Csum { bytes, len }
    }

    /// The checksum bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Display for Csum {
    /// `0x` and the bytes in on-disk order, as `btrfs inspect-internal dump-super` prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("0x")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The result of checking the superblock checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// The checksum matches.
    Valid,
    /// The checksum does not match.
    Invalid {
        /// The value stored at offset 0.
        stored: Csum,
        /// The checksum of bytes `0x20..0x1000`.
        computed: Csum,
    },
    /// An algorithm btrfs does not define (`csum_type` > 3): parsed, not verified.
    NotVerified(CsumType),
}

impl CsumType {
    /// The checksum of `body` as btrfs stores it, `None` for an unknown type: crc32c is the
    /// standard CRC-32C (with final XOR) stored LE; xxhash64 is XXH64 with seed 0 stored LE;
    /// sha256 is SHA-256; blake2b is BLAKE2b with a 32-byte digest (btrfs-progs
    /// `btrfs_csum_data`, the kernel's `crc32c`, `xxhash64`, `sha256`, `blake2b-256`).
    pub fn digest(self, body: &[u8]) -> Option<Csum> {
        use sha2::Digest as _;
        match self {
            CsumType::Crc32c => Some(Csum::new(&super::crc::crc32c(body).to_le_bytes())),
            CsumType::Xxhash64 => {
                Some(Csum::new(&xxhash_rust::xxh64::xxh64(body, 0).to_le_bytes()))
            }
            CsumType::Sha256 => Some(Csum::new(&sha2::Sha256::digest(body))),
            CsumType::Blake2b => Some(Csum::new(
                &blake2::Blake2b::<blake2::digest::consts::U32>::digest(body),
            )),
            CsumType::Unknown(_) => None,
        }
    }
}

/// Check the checksum of one 4096-byte copy: the checksum of `csum_type` over bytes
/// `0x20..0x1000`, compared with the first bytes of `csum` (4 for crc32c, 8 for
/// xxhash64, 32 for sha256 and blake2b).
pub fn verify_checksum(raw: &[u8]) -> ChecksumStatus {
    let csum_type = CsumType::from_raw(le_u16(raw, 0xC4).unwrap_or(u16::MAX));
    let stored_all = raw.get(..CSUM_SIZE).unwrap_or(&[]);
    let Some(body) = raw.get(CSUM_SIZE..SUPER_INFO_SIZE) else {
        return ChecksumStatus::Invalid {
            stored: Csum::new(stored_all),
            computed: Csum::new(&[]),
        };
    };
    let Some(computed) = csum_type.digest(body) else {
        return ChecksumStatus::NotVerified(csum_type);
    };
    let stored = Csum::new(stored_all.get(..computed.len).unwrap_or(stored_all));
    if stored == computed {
        ChecksumStatus::Valid
    } else {
        ChecksumStatus::Invalid { stored, computed }
    }
}

/// One device's error counters (`btrfs device stats`; `BTRFS_DEV_STAT_*` order), as the
/// kernel keeps them in `/sys/fs/btrfs/<fsid>/devinfo/<devid>/error_stats` and in the
/// `DEV_STATS` persistent item of the device tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceErrorStats {
    /// `write_errs`: EIO or EREMOTEIO from the lower layers on write.
    pub write_errs: u64,
    /// `read_errs`: likewise on read.
    pub read_errs: u64,
    /// `flush_errs`: failed flush requests.
    pub flush_errs: u64,
    /// `corruption_errs`: checksum errors, bytenr errors or contents illegal.
    pub corruption_errs: u64,
    /// `generation_errs`: an old generation of a block was read (lost writes).
    pub generation_errs: u64,
}

impl DeviceErrorStats {
    /// Parse the `error_stats` text: one `name value` pair a line. Unknown names and
    /// malformed lines are ignored; `None` when no known counter was found at all.
    pub fn parse_sysfs(text: &str) -> Option<Self> {
        let mut stats = DeviceErrorStats::default();
        let mut seen = false;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let slot = match name {
                "write_errs" => &mut stats.write_errs,
                "read_errs" => &mut stats.read_errs,
                "flush_errs" => &mut stats.flush_errs,
                "corruption_errs" => &mut stats.corruption_errs,
                "generation_errs" => &mut stats.generation_errs,
                _ => continue,
            };
            *slot = value;
            seen = true;
        }
        seen.then_some(stats)
    }

    /// Decode the `btrfs_dev_stats_item` payload (key `DEV_STATS PERSISTENT_ITEM devid`):
    /// the five counters as LE u64 in the order above. Extra trailing values are ignored.
    pub fn parse_item(item: &[u8]) -> Result<Self, BtrfsError> {
        let v = |i: usize| {
            le_u64(item, i * 8).ok_or(BtrfsError::Truncated {
                what: "btrfs dev stats item",
                needed: 40,
                got: item.len(),
            })
        };
        Ok(DeviceErrorStats {
            write_errs: v(0)?,
            read_errs: v(1)?,
            flush_errs: v(2)?,
            corruption_errs: v(3)?,
            generation_errs: v(4)?,
        })
    }

    /// I/O errors: write + read + flush.
    pub fn io_errors(&self) -> u64 {
        self.write_errs
            .saturating_add(self.read_errs)
            .saturating_add(self.flush_errs)
    }

    /// Integrity errors: corruption + generation.
    pub fn integrity_errors(&self) -> u64 {
        self.corruption_errs.saturating_add(self.generation_errs)
    }

    /// Whether any counter is non-zero.
    pub fn any(&self) -> bool {
        self.io_errors() > 0 || self.integrity_errors() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal sane superblock copy at `bytenr` with a correct crc32c.
    pub(crate) fn sample(bytenr: u64, generation: u64) -> Vec<u8> {
        let mut sb = vec![0u8; SUPER_INFO_SIZE];
        let fsid = [0x11u8; 16];
        sb[0x20..0x30].copy_from_slice(&fsid);
        sb[0x30..0x38].copy_from_slice(&bytenr.to_le_bytes());
        sb[0x38..0x40].copy_from_slice(&FLAG_WRITTEN.to_le_bytes());
        sb[0x40..0x48].copy_from_slice(&MAGIC);
        sb[0x48..0x50].copy_from_slice(&generation.to_le_bytes());
        sb[0x50..0x58].copy_from_slice(&30_588_928u64.to_le_bytes());
        sb[0x58..0x60].copy_from_slice(&22_036_480u64.to_le_bytes());
        sb[0x70..0x78].copy_from_slice(&(256u64 << 20).to_le_bytes());
        sb[0x78..0x80].copy_from_slice(&147_456u64.to_le_bytes());
        sb[0x88..0x90].copy_from_slice(&1u64.to_le_bytes());
        sb[0x90..0x94].copy_from_slice(&4096u32.to_le_bytes());
        sb[0x94..0x98].copy_from_slice(&16384u32.to_le_bytes());
        sb[0x9C..0xA0].copy_from_slice(&4096u32.to_le_bytes());
        sb[0xA0..0xA4].copy_from_slice(&129u32.to_le_bytes());
        sb[0xB4..0xBC].copy_from_slice(&3u64.to_le_bytes());
        sb[0xBC..0xC4].copy_from_slice(&0x341u64.to_le_bytes());
        sb[0xC9..0xD1].copy_from_slice(&1u64.to_le_bytes());
        sb[0xD1..0xD9].copy_from_slice(&(256u64 << 20).to_le_bytes());
        sb[0xC9 + 82..0xC9 + 98].copy_from_slice(&fsid);
        sb[0x12B..0x12F].copy_from_slice(b"data");
        reseal(&mut sb);
        sb
    }

    /// Recompute the crc32c of a copy after editing it.
    pub(crate) fn reseal(sb: &mut [u8]) {
        let crc = crate::fs::crc::crc32c(&sb[CSUM_SIZE..SUPER_INFO_SIZE]);
        sb[0..4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn parses_the_fields_dump_super_shows() {
        let raw = sample(SUPER_INFO_OFFSET, 7);
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(sb.bytenr, 65536);
        assert_eq!(sb.generation, 7);
        assert_eq!(sb.log_root, 0);
        assert_eq!(sb.csum_type, CsumType::Crc32c);
        assert_eq!(sb.dev_item.devid, 1);
        assert_eq!(sb.dev_item.total_bytes, 256 << 20);
        assert_eq!(sb.label, "data");
        assert_eq!(sb.flag_names(), ["WRITTEN"]);
        assert_eq!(
            sb.feature_names(),
            [
                "FREE_SPACE_TREE",
                "FREE_SPACE_TREE_VALID",
                "MIXED_BACKREF",
                "EXTENDED_IREF",
                "SKINNY_METADATA",
                "NO_HOLES"
            ]
        );
        assert!(sb.problems().is_empty(), "{:?}", sb.problems());
        assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid);
        assert_eq!(
            crate::fs::uuid::format(&sb.fsid),
            "11111111-1111-1111-1111-111111111111"
        );
    }

    #[test]
    fn checksum_mismatch_and_other_algorithms() {
        let mut raw = sample(SUPER_INFO_OFFSET, 7);
        raw[0x12B] = b'X';
        assert!(matches!(
            verify_checksum(&raw),
            ChecksumStatus::Invalid { .. }
        ));
        // Every btrfs algorithm is computed and stored in its own width.
        for (kind, len) in [(1u16, 8usize), (2, 32), (3, 32)] {
            raw[0xC4..0xC6].copy_from_slice(&kind.to_le_bytes());
            let csum = CsumType::from_raw(kind)
                .digest(&raw[CSUM_SIZE..SUPER_INFO_SIZE])
                .unwrap();
            assert_eq!(csum.as_bytes().len(), len);
            raw[..CSUM_SIZE].fill(0);
            raw[..len].copy_from_slice(csum.as_bytes());
            assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid, "type {kind}");
            raw[0x12B] ^= 1;
            let ChecksumStatus::Invalid { stored, computed } = verify_checksum(&raw) else {
                panic!("type {kind}: one flipped byte is not caught");
            };
            assert_eq!(stored, csum);
            assert_ne!(computed, csum);
            raw[0x12B] ^= 1;
        }
        raw[0xC4] = 9;
        assert_eq!(
            verify_checksum(&raw),
            ChecksumStatus::NotVerified(CsumType::Unknown(9))
        );
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(sb.csum_type.name(), "unknown (9)");
    }

    /// Published test vectors: the crates compute the variants btrfs uses (XXH64 seed 0,
    /// SHA-256, BLAKE2b with a 32-byte digest, not a truncated BLAKE2b-512).
    #[test]
    fn digests_match_published_vectors() {
        let hex = |c: Csum| c.to_string();
        assert_eq!(
            hex(CsumType::Crc32c.digest(b"123456789").unwrap()),
            "0x839206e3"
        );
        assert_eq!(
            hex(CsumType::Xxhash64.digest(b"").unwrap()),
            "0x99e9d85137db46ef"
        );
        assert_eq!(
            hex(CsumType::Sha256.digest(b"abc").unwrap()),
            "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(CsumType::Blake2b.digest(b"abc").unwrap()),
            "0xbddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        assert_eq!(CsumType::Unknown(4).digest(b"abc"), None);
    }

    #[test]
    fn flags_and_problems() {
        let mut raw = sample(SUPER_INFO_OFFSET, 7);
        let flags = FLAG_WRITTEN | FLAG_ERROR | FLAG_CHANGING_FSID_V2 | (1 << 50);
        raw[0x38..0x40].copy_from_slice(&flags.to_le_bytes());
        raw[0x60..0x68].copy_from_slice(&4097u64.to_le_bytes());
        raw[0x94..0x98].copy_from_slice(&1000u32.to_le_bytes());
        let sb = Superblock::parse(&raw).unwrap();
        assert!(sb.has_error_flag());
        assert_eq!(sb.interrupted_operations(), FLAG_CHANGING_FSID_V2);
        assert_eq!(
            sb.flag_names(),
            [
                "WRITTEN",
                "ERROR",
                "CHANGING_FSID_V2",
                "unknown 0x4000000000000"
            ]
        );
        let problems = sb.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("log_root block unaligned"))
        );
        assert!(problems.iter().any(|p| p.contains("invalid nodesize")));
    }

    #[test]
    fn rejects_short_input_and_bad_magic() {
        let raw = sample(SUPER_INFO_OFFSET, 1);
        assert!(matches!(
            Superblock::parse(&raw[..4095]),
            Err(BtrfsError::Truncated { .. })
        ));
        let mut bad = raw.clone();
        bad[0x40] = b'x';
        assert!(matches!(
            Superblock::parse(&bad),
            Err(BtrfsError::BadMagic { .. })
        ));
    }

    #[test]
    fn mirror_offsets_and_fit() {
        assert_eq!(super_offset(0), 0x1_0000);
        assert_eq!(super_offset(1), 0x400_0000);
        assert_eq!(super_offset(2), 0x40_0000_0000);
        assert!(!mirror_fits(1, 64 << 20));
        assert!(mirror_fits(1, (64 << 20) + 4096));
        assert!(!mirror_fits(2, 128 << 20));
        assert_eq!(super_offset(usize::MAX), u64::MAX);
    }

    #[test]
    fn error_stats_from_sysfs_and_item() {
        let text = "write_errs 0\nread_errs 2\nflush_errs 0\ncorruption_errs 5\ngeneration_errs 1\nbogus\nnew_counter 9\n";
        let s = DeviceErrorStats::parse_sysfs(text).unwrap();
        assert_eq!(s.read_errs, 2);
        assert_eq!(s.corruption_errs, 5);
        assert_eq!(s.io_errors(), 2);
        assert_eq!(s.integrity_errors(), 6);
        assert!(DeviceErrorStats::parse_sysfs("").is_none());
        let mut item = Vec::new();
        for v in [1u64, 2, 3, 4, 5] {
            item.extend_from_slice(&v.to_le_bytes());
        }
        let s = DeviceErrorStats::parse_item(&item).unwrap();
        assert_eq!(s.generation_errs, 5);
        assert!(DeviceErrorStats::parse_item(&item[..39]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = verify_checksum(&bytes);
            if let Ok(sb) = Superblock::parse(&bytes) {
                let _ = (sb.problems(), sb.flag_names(), sb.feature_names());
            }
            let _ = DeviceErrorStats::parse_item(&bytes);
            let _ = DeviceErrorStats::parse_sysfs(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_with_the_magic_in_place(mut bytes in proptest::collection::vec(any::<u8>(), 4096..4200)) {
            bytes[0x40..0x48].copy_from_slice(&MAGIC);
            let sb = Superblock::parse(&bytes).unwrap();
            let _ = (sb.problems(), sb.flag_names(), sb.feature_names(), sb.csum_type.name());
            let _ = verify_checksum(&bytes);
        }
    }
}
