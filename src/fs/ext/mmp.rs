//! The multiple-mount-protection block (`struct mmp_struct`, little-endian) at `s_mmp_block`.

use super::ExtError;
use super::bytes::{array, c_string, le_u16, le_u32, le_u64};

/// `EXT4_MMP_MAGIC` at offset 0x00 (`mmp_magic`).
pub const MMP_MAGIC: u32 = 0x004D_4D50;
/// `mmp_seq` after a clean unmount (`EXT4_MMP_SEQ_CLEAN`).
pub const MMP_SEQ_CLEAN: u32 = 0xFF4D_4D50;
/// `mmp_seq` while e2fsck runs (`EXT4_MMP_SEQ_FSCK`).
pub const MMP_SEQ_FSCK: u32 = 0xE24D_4D50;
/// Largest sequence number a live mount uses (`EXT4_MMP_SEQ_MAX`).
pub const MMP_SEQ_MAX: u32 = 0xE24D_4D4F;
/// Bytes of `struct mmp_struct` this parser needs (up to and including `mmp_check_interval`).
pub const MMP_MIN_SIZE: usize = 0x72;

/// The fields of `struct mmp_struct` that snapguard uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mmp {
    /// `mmp_magic` (0x00): always [`MMP_MAGIC`] after a successful parse.
    pub magic: u32,
    /// `mmp_seq` (0x04): see [`MmpState`].
    pub seq: u32,
    /// `mmp_time` (0x08): last update, seconds since the epoch.
    pub time: u64,
    /// `mmp_nodename` (0x10, 64 bytes): host that last updated the block.
    pub nodename: String,
    /// `mmp_bdevname` (0x50, 32 bytes): block device name on that host.
    pub bdevname: String,
    /// `mmp_check_interval` (0x70): seconds between updates.
    pub check_interval: u16,
}

/// What `mmp_seq` says about the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MmpState {
    /// [`MMP_SEQ_CLEAN`]: cleanly unmounted.
    Clean,
    /// [`MMP_SEQ_FSCK`]: e2fsck is (or was) running.
    FsckRunning,
    /// Any other value: a node has (or had) it mounted.
    InUse(u32),
}

impl Mmp {
    /// Parses an MMP block (at least the first [`MMP_MIN_SIZE`] bytes); checks the magic only.
    pub fn parse(bytes: &[u8]) -> Result<Self, ExtError> {
        let header: [u8; MMP_MIN_SIZE] = array(bytes, 0).ok_or(ExtError::Truncated {
            what: "mmp block",
            needed: MMP_MIN_SIZE,
            got: bytes.len(),
        })?;
        let magic = le_u32(&header, 0x00).unwrap_or(0);
        if magic != MMP_MAGIC {
            return Err(ExtError::BadMagic {
                what: "mmp block",
                found: magic,
            });
        }
        Ok(Mmp {
            magic,
            seq: le_u32(&header, 0x04).unwrap_or(0),
            time: le_u64(&header, 0x08).unwrap_or(0),
            nodename: c_string(&header, 0x10, 64),
            bdevname: c_string(&header, 0x50, 32),
            check_interval: le_u16(&header, 0x70).unwrap_or(0),
        })
    }

    /// Interprets `mmp_seq`.
    pub fn state(&self) -> MmpState {
        match self.seq {
            MMP_SEQ_CLEAN => MmpState::Clean,
            MMP_SEQ_FSCK => MmpState::FsckRunning,
            other => MmpState::InUse(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn states_and_errors() {
        let mut raw = vec![0u8; 1024];
        raw[..4].copy_from_slice(&MMP_MAGIC.to_le_bytes());
        for (seq, state) in [
            (MMP_SEQ_CLEAN, MmpState::Clean),
            (MMP_SEQ_FSCK, MmpState::FsckRunning),
            (42, MmpState::InUse(42)),
            (MMP_SEQ_MAX, MmpState::InUse(MMP_SEQ_MAX)),
        ] {
            raw[4..8].copy_from_slice(&seq.to_le_bytes());
            assert_eq!(Mmp::parse(&raw).expect("mmp").state(), state);
        }
        raw[0x10..0x14].copy_from_slice(b"node");
        raw[0x50..0x70].copy_from_slice(&[b'd'; 32]);
        let mmp = Mmp::parse(&raw[..MMP_MIN_SIZE]).expect("minimal");
        assert_eq!(mmp.nodename, "node");
        assert_eq!(mmp.bdevname.len(), 32);
        assert!(matches!(
            Mmp::parse(&raw[..MMP_MIN_SIZE - 1]),
            Err(ExtError::Truncated { .. })
        ));
        raw[0] = 0;
        assert!(matches!(Mmp::parse(&raw), Err(ExtError::BadMagic { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..1100), magic in any::<bool>()) {
            if magic && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&MMP_MAGIC.to_le_bytes());
            }
            if let Ok(mmp) = Mmp::parse(&bytes) {
                let _ = mmp.state();
            }
        }
    }
}
