//! Assessment of a FAT12/16/32 volume: the boot-sector dirty bit that Linux keeps and
//! the FAT[1] clean-shutdown and hard-error bits that Windows keeps, turned into `state`
//! and findings with the semantics of `fsck.fat -n` (dosfstools 4.2: a set dirty bit or a
//! clear FAT[1] clean bit is "Dirty bit is set", exit 1; the hard-error bit is not
//! looked at).

use super::report_truncated;
use super::severity as rules;
use super::volume::VolumeScan;
use crate::fs::fat::{BootSector, Fat1};
use crate::report::{Context, FatDetails, Severity, TargetReport};
use std::io;

/// Assess the FAT volume and fill `report`. I/O errors become an `Unknown` status.
pub fn assess(scan: &VolumeScan<'_>, report: &mut TargetReport) {
    super::assess_with(report, "vfat", |report| assess_inner(scan, report));
}

fn assess_inner(scan: &VolumeScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    let volume = &scan.volume;
    let raw = match volume.read_exact_at(0, 512, "the FAT boot sector") {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            let needed = "a FAT boot sector needs 512 bytes";
            report_truncated(
                report,
                &rules::FAT_TRUNCATED,
                &scan.location,
                volume.size(),
                needed,
            );
            return Ok(());
        }
        Err(e) => return Err(format!("cannot read the boot sector: {e}")),
    };
    let boot = BootSector::parse(&raw).map_err(|e| format!("cannot parse the boot sector: {e}"))?;

    let fs_bytes = boot.fs_bytes();
    let truncated = fs_bytes > volume.size();
    if truncated {
        let needed = format!("the filesystem needs {fs_bytes} bytes");
        report_truncated(
            report,
            &rules::FAT_TRUNCATED,
            &scan.location,
            volume.size(),
            needed,
        );
    }

    // FAT[1] at the start of the first FAT; on a truncated image it may be missing.
    let fat1 = match volume.read_exact_at(boot.fat_offset(), boot.fat1_len(), "the first FAT") {
        Ok(bytes) => Fat1::parse(boot.fat_bits, &bytes).ok().flatten(),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
        Err(e) => return Err(format!("cannot read the first FAT: {e}")),
    };

    let fat_unclean = fat1.is_some_and(|f| !f.clean_shutdown);
    let hard_error = fat1.is_some_and(|f| f.hard_error);
    let dirty = boot.is_dirty() || fat_unclean;
    report.state = Some(
        if hard_error {
            "errors"
        } else if dirty {
            "dirty"
        } else {
            "clean"
        }
        .to_string(),
    );
    report.needs_recovery = None;
    report.fsck_reason = None;

    if hard_error {
        report.findings.push(
            rules::FAT_HARD_ERRORS.finding(
                scan.context,
                format!(
                    "FAT[1] (0x{:x}) has the hard-error bit clear: disk I/O errors were recorded (by Windows); fsck.fat does not look at this bit, so test the medium and let Windows chkdsk clear it",
                    fat1.map_or(0, |f| f.raw)
                ),
            )
            .with_remedy(scan.location.offline_command("fsck.fat -a -t")),
        );
    }
    if dirty {
        let why = match (boot.is_dirty(), fat_unclean) {
            (true, true) => format!(
                "the boot-sector dirty bit (byte 0x{:x}) is set and FAT[1] lacks the clean-shutdown bit",
                boot.state_offset
            ),
            (true, false) => format!(
                "the boot-sector dirty bit (byte 0x{:x}) is set",
                boot.state_offset
            ),
            _ => "FAT[1] lacks the clean-shutdown bit (set by Windows)".to_string(),
        };
        let context_note = match scan.context {
            Context::Live => {
                "normal while mounted read-write: Linux sets it at mount and clears it at unmount"
            }
            Context::Crash | Context::Frozen => {
                "expected in a copy of a read-write mounted FAT (an EFI system partition, say): Linux keeps the bit set while mounted and freezing does not clear it"
            }
            Context::Offline => {
                "the volume was not properly unmounted and some data may be corrupt; fsck.fat reports \"Dirty bit is set\" and exits 1"
            }
        };
        let mut finding =
            rules::FAT_DIRTY.finding(scan.context, format!("dirty: {why}: {context_note}"));
        if finding.severity != Severity::Info {
            finding = finding.with_remedy(scan.location.repair_command("fsck.fat -a", true));
        }
        report.findings.push(finding);
    }

    report.fat = Some(FatDetails {
        fat_bits: boot.fat_bits.bits(),
        label: boot.label.clone(),
        volume_id: boot.volume_id_string(),
        bytes_per_sector: boot.bytes_per_sector,
        sectors_per_cluster: boot.sectors_per_cluster,
        reserved_sectors: boot.reserved_sectors,
        fats: boot.fats,
        total_sectors: boot.total_sectors,
        clusters: boot.clusters,
        boot_state: boot.state,
        boot_dirty: boot.is_dirty(),
        fat1: fat1.map(|f| f.raw),
        fat1_clean_shutdown: fat1.map(|f| f.clean_shutdown),
        fat1_hard_error: fat1.map(|f| f.hard_error),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use crate::scan::remedy::Location;
    use crate::scan::volume::Volume;
    use crate::sys::SourceFile;
    use std::fs;
    use std::os::unix::fs::FileExt;

    /// A FAT16 volume of 16 MiB as mkfs.fat lays it out: 4 reserved sectors, FATs at 2048.
    fn fat16_boot() -> Vec<u8> {
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
        b[0x36..0x3E].copy_from_slice(b"FAT16   ");
        b
    }

    struct Image {
        _dir: tempfile::TempDir,
        source: SourceFile,
    }

    fn image(size: u64, state: u8, fat1: u16) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.img");
        let f = fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        let mut boot = fat16_boot();
        boot[0x25] = state;
        f.write_all_at(&boot, 0).unwrap();
        let mut fat = vec![0xF8, 0xFF];
        fat.extend_from_slice(&fat1.to_le_bytes());
        f.write_all_at(&fat, 2048).unwrap();
        drop(f);
        Image {
            source: SourceFile::open(&path).unwrap(),
            _dir: dir,
        }
    }

    fn run(img: &Image, context: Context) -> TargetReport {
        let scan = VolumeScan {
            volume: Volume::whole(&img.source),
            context,
            location: Location::Image("f.img".into()),
        };
        let mut report = TargetReport::new("f.img", context);
        assess(&scan, &mut report);
        report
    }

    #[test]
    fn clean_dirty_and_errors() {
        let r = run(&image(16 << 20, 0, 0xFFFF), Context::Offline);
        assert_eq!(r.state.as_deref(), Some("clean"));
        assert_eq!(r.status, Status::Ok);
        let d = r.fat.as_ref().unwrap();
        assert_eq!((d.fat_bits, d.fat1), (16, Some(0xFFFF)));

        let dirty = image(16 << 20, 1, 0xFFFF);
        let r = run(&dirty, Context::Offline);
        assert_eq!(r.state.as_deref(), Some("dirty"));
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.findings[0].id, "fat.dirty");
        assert_eq!(r.findings[0].remedy.as_deref(), Some("fsck.fat -a f.img"));
        for ctx in [Context::Crash, Context::Frozen, Context::Live] {
            assert_eq!(run(&dirty, ctx).status, Status::Ok, "{ctx:?}");
        }

        let r = run(&image(16 << 20, 0, 0x7FFF), Context::Offline);
        assert_eq!(r.state.as_deref(), Some("dirty"));
        assert!(r.findings[0].message.contains("clean-shutdown"));

        let r = run(&image(16 << 20, 1, 0xBFFF), Context::Crash);
        assert_eq!(r.state.as_deref(), Some("errors"));
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "fat.hard-errors");
    }

    #[test]
    fn truncated_and_garbage() {
        let r = run(&image(8 << 20, 0, 0xFFFF), Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.findings[0].id, "fat.truncated");

        let r = run(&image(1024, 0, 0xFFFF), Context::Offline);
        assert_eq!(r.status, Status::Unknown);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.img");
        fs::write(&path, vec![0u8; 100]).unwrap();
        let source = SourceFile::open(&path).unwrap();
        let scan = VolumeScan {
            volume: Volume::whole(&source),
            context: Context::Offline,
            location: Location::Image("z.img".into()),
        };
        let mut report = TargetReport::new("z.img", Context::Offline);
        assess(&scan, &mut report);
        assert_eq!(report.status, Status::Unknown);
        assert_eq!(report.findings[0].id, "fat.truncated");
    }
}
