//! Whole disks: unwrap a fixed VHD, then list the partitions of an MBR or GPT disk.

use super::volume::Volume;
use crate::fs::partition::{self, MbrKind, Partition, VhdFooter};
use crate::report::Finding;
use crate::sys::SourceFile;

/// Largest GPT entry array read (the spec's default is 128 × 128 bytes = 16 KiB).
const MAX_GPT_ENTRIES_BYTES: u64 = 1024 * 1024;

/// One partition to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// 1-based number, as Linux names `sdaN`.
    pub index: u32,
    /// `mbr` or `gpt`.
    pub scheme: &'static str,
    /// Byte offset in the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// The raw disk inside `source`: all of it, or a fixed VHD without its footer (with an
/// informational finding saying so). Dynamic and differencing VHDs cannot be read raw.
pub fn unwrap_container(source: &SourceFile) -> Result<(Volume<'_>, Option<Finding>), String> {
    let whole = Volume::whole(source);
    if source.size() < 1024 {
        return Ok((whole, None));
    }
    let tail = whole
        .read_at(source.size() - 512, 512)
        .map_err(|e| format!("cannot read the last sector: {e}"))?;
    match partition::vhd_fixed_footer(&tail) {
        None => Ok((whole, None)),
        Some(footer) if footer.is_fixed() => {
            let raw = source.size() - 512;
            // Before the context is known: the row is info in every context.
            let note = super::severity::DISK_VHD_FIXED.finding(
                crate::report::Context::Offline,
                format!(
                    "fixed VHD: scanning the {raw}-byte raw disk before the footer{}",
                    if footer.checksum_ok {
                        ""
                    } else {
                        " (the footer checksum does not match)"
                    }
                ),
            );
            Ok((Volume::prefix(source, raw), Some(note)))
        }
        Some(footer) => Err(format!(
            "a {} VHD cannot be read as a raw disk; convert it first: qemu-img convert -O raw IMAGE.vhd IMAGE.raw",
            match footer.disk_type {
                VhdFooter::DYNAMIC => "dynamic",
                VhdFooter::DIFFERENCING => "differencing",
                _ => "non-fixed",
            }
        )),
    }
}

/// The partitions of an MBR or GPT disk whose first bytes are `head`, in table order,
/// extended containers replaced by their logical partitions.
pub fn partitions(disk: &Volume<'_>, head: &[u8]) -> Result<Vec<Slice>, String> {
    if let Some(header) =
        partition::probe_gpt(head).map_err(|e| format!("invalid GPT header: {e}"))?
    {
        let offset = header
            .entries_offset()
            .ok_or("GPT entry array offset overflows")?;
        let len = header
            .entries_len()
            .filter(|&l| l <= MAX_GPT_ENTRIES_BYTES)
            .ok_or("GPT entry array too large")?;
        let entries = disk
            .read_exact_at(offset, len as usize, "the GPT entry array")
            .map_err(|e| format!("cannot read the GPT entries: {e}"))?;
        let parts = partition::parse_gpt_entries(&header, &entries)
            .map_err(|e| format!("invalid GPT: {e}"))?;
        return Ok(parts.iter().map(slice).collect());
    }
    let sector0 = head.get(..512).ok_or("shorter than one sector")?;
    match partition::parse_mbr(sector0).map_err(|e| format!("invalid MBR: {e}"))? {
        MbrKind::Partitions(primaries) => {
            let mut read_sector =
                |offset: u64| disk.read_exact_at(offset, 512, "an extended boot record");
            let logical = partition::extended_partitions(&primaries, 512, &mut read_sector)
                .map_err(|e| format!("invalid extended partition chain: {e}"))?;
            Ok(primaries
                .iter()
                .filter(|p| !p.is_extended())
                .chain(logical.iter())
                .map(slice)
                .collect())
        }
        MbrKind::Protective => Err("protective MBR but no valid GPT header".to_string()),
        MbrKind::None => Err("no valid partition table".to_string()),
    }
}

fn slice(p: &Partition) -> Slice {
    Slice {
        index: p.index,
        scheme: p.scheme.as_str(),
        offset: p.offset,
        size: p.size,
    }
}

/// The kernel's name for partition `index` of `disk`: `/dev/sdb` → `/dev/sdb2`,
/// `/dev/nvme0n1` or `/dev/loop0` → `…p2`.
pub fn partition_device_name(disk: &str, index: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{index}")
    } else {
        format!("{disk}{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_the_kernel() {
        assert_eq!(partition_device_name("/dev/sdb", 2), "/dev/sdb2");
        assert_eq!(partition_device_name("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
        assert_eq!(partition_device_name("/dev/loop3", 5), "/dev/loop3p5");
    }
}
