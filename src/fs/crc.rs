//! CRC-32 (IEEE: GPT, f2fs, LVM2) and CRC-32C (Castagnoli: ext4, jbd2, XFS, btrfs), in
//! software first.
//!
//! The hardware path of the `crc32c` crate first asks the CPU what it supports: a dozen
//! `CPUID` instructions, each a trap to the hypervisor on a virtual machine (65 µs in all,
//! measured on a nested VM), once per process. A scan checksums superblocks and descriptors,
//! about 1 KiB per filesystem, which software (eight bytes a step from tables built at compile
//! time, 0.75 ns a byte there) does in under a microsecond. So CRC-32C runs in software until
//! [`SOFTWARE_CRC32C_BYTES`] have been checksummed, about what the detection costs, and
//! switches to the hardware path after that: never more than twice the cost of the better
//! choice, whatever the number of filesystems. Both give the same values. CRC-32 (IEEE) is
//! only ever used on a few KiB (GPT, f2fs checkpoints, LVM2 labels): software only.

use std::sync::atomic::{AtomicUsize, Ordering};

/// CRC-32C bytes computed in software per process before the hardware path takes over.
pub const SOFTWARE_CRC32C_BYTES: usize = 64 * 1024;

/// What is left of [`SOFTWARE_CRC32C_BYTES`].
static SOFTWARE_CRC32C_LEFT: AtomicUsize = AtomicUsize::new(SOFTWARE_CRC32C_BYTES);

/// The reflected CRC-32 polynomial (zlib, GPT).
const IEEE: u32 = 0xEDB8_8320;
/// The reflected CRC-32C polynomial.
const CASTAGNOLI: u32 = 0x82F6_3B78;

/// Slicing-by-8 tables: `t[0]` is the classic byte table, `t[k][b]` the CRC of byte `b`
/// followed by `k` zero bytes.
type Tables = [[u32; 256]; 8];

const fn tables(poly: u32) -> Tables {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

static IEEE_TABLES: Tables = tables(IEEE);
static CASTAGNOLI_TABLES: Tables = tables(CASTAGNOLI);

/// The register after `data`, from `crc`: no inversion on either side.
fn update(t: &Tables, mut crc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let lo = crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        let byte = |v: u32, shift: u32| usize::from((v >> shift) as u8);
        crc = t[7][byte(lo, 0)]
            ^ t[6][byte(lo, 8)]
            ^ t[5][byte(lo, 16)]
            ^ t[4][byte(lo, 24)]
            ^ t[3][byte(hi, 0)]
            ^ t[2][byte(hi, 8)]
            ^ t[1][byte(hi, 16)]
            ^ t[0][byte(hi, 24)];
    }
    for &b in words.remainder() {
        crc = (crc >> 8) ^ t[0][usize::from((crc as u8) ^ b)];
    }
    crc
}

/// CRC-32C of `data` (initial `!0`, final inversion): the `crc32c` crate's `crc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// CRC-32C of what gave `crc`, followed by `data`: the `crc32c` crate's `crc32c_append`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let in_software = SOFTWARE_CRC32C_LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(data.len())
        })
        .is_ok();
    if in_software {
        crc32c_software(crc, data)
    } else {
        crc32c::crc32c_append(crc, data)
    }
}

/// [`crc32c_append`] in software.
fn crc32c_software(crc: u32, data: &[u8]) -> u32 {
    !update(&CASTAGNOLI_TABLES, !crc, data)
}

/// CRC-32 (IEEE) of `data`, as zlib and GPT compute it: `crc32fast::hash`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_append(0, data)
}

/// CRC-32 (IEEE) of what gave `crc`, followed by `data`.
pub fn crc32_append(crc: u32, data: &[u8]) -> u32 {
    !update(&IEEE_TABLES, !crc, data)
}

/// The raw CRC-32 (IEEE) register after `data` from `register`, without the inversions (f2fs
/// and LVM2 start from their own seeds and keep the register as it is).
pub fn crc32_raw(register: u32, data: &[u8]) -> u32 {
    update(&IEEE_TABLES, register, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn check_values() {
        // The catalogue's check values (CRC-32/ISO-HDLC and CRC-32/ISCSI of "123456789").
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32c_software(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // Past the software budget, the hardware path gives the same.
        let big = vec![0xA5u8; SOFTWARE_CRC32C_BYTES + 1];
        assert_eq!(crc32c(&big), crc32c_software(0, &big));
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32c(b""), 0);
    }

    proptest! {
        #[test]
        fn same_as_the_crates(data in proptest::collection::vec(any::<u8>(), 0..3000),
                              split in any::<prop::sample::Index>(), seed in any::<u32>()) {
            prop_assert_eq!(crc32c_software(0, &data), crc32c::crc32c(&data));
            prop_assert_eq!(crc32c(&data), crc32c::crc32c(&data));
            prop_assert_eq!(crc32(&data), crc32fast::hash(&data));
            let (a, b) = data.split_at(split.index(data.len() + 1));
            prop_assert_eq!(crc32c_software(crc32c_software(0, a), b), crc32c::crc32c(&data));
            prop_assert_eq!(crc32c_append(crc32c(a), b), crc32c::crc32c(&data));
            prop_assert_eq!(crc32_append(crc32(a), b), crc32fast::hash(&data));
            let mut h = crc32fast::Hasher::new_with_initial(!seed);
            h.update(&data);
            prop_assert_eq!(crc32_raw(seed, &data), !h.finalize());
        }
    }
}
