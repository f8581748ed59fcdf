//! Assessment of an exFAT volume: VolumeFlags (VolumeDirty, MediaFailure) and the
//! boot-region checksum, turned into `state` and findings.
//!
//! Linux (`fs/exfat/super.c`) sets VolumeDirty before modifying the volume and clears it
//! in `sync_fs` and at unmount, so a frozen (synced) copy reads clean; MediaFailure stays
//! until a checker clears it. `fsck.exfat -n` (exfatprogs 1.2) reports a dirty volume as
//! clean and exits 0, `fsck.exfat -a` clears VolumeDirty; neither clears MediaFailure.

use super::report_truncated;
use super::severity as rules;
use super::volume::VolumeScan;
use crate::fs::exfat::{self, BootSector, ChecksumStatus};
use crate::report::{Context, ExFatDetails, Severity, TargetReport};
use std::io;

/// Assess the exFAT volume and fill `report`. I/O errors become an `Unknown` status.
pub fn assess(scan: &VolumeScan<'_>, report: &mut TargetReport) {
    super::assess_with(report, "exfat", |report| assess_inner(scan, report));
}

fn truncated(scan: &VolumeScan<'_>, report: &mut TargetReport, what: String) {
    report_truncated(
        report,
        &rules::EXFAT_TRUNCATED,
        &scan.location,
        scan.volume.size(),
        what,
    );
}

fn assess_inner(scan: &VolumeScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    let volume = &scan.volume;
    let raw = match volume.read_exact_at(0, 512, "the exFAT boot sector") {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            truncated(scan, report, "the exFAT boot sector needs 512 bytes".into());
            return Ok(());
        }
        Err(e) => return Err(format!("cannot read the boot sector: {e}")),
    };
    let boot = BootSector::parse(&raw).map_err(|e| format!("cannot parse the boot sector: {e}"))?;

    let fs_bytes = boot.fs_bytes();
    if fs_bytes > volume.size() {
        truncated(
            scan,
            report,
            format!("the filesystem needs {fs_bytes} bytes"),
        );
    }
    let bps = boot.bytes_per_sector() as usize;
    let checksum = match volume.read_exact_at(0, boot.boot_region_len(), "the exFAT boot region") {
        Ok(region) => exfat::verify_boot_checksum(&region, bps),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => ChecksumStatus::Unavailable,
        Err(e) => return Err(format!("cannot read the boot region: {e}")),
    };

    let dirty = boot.is_dirty();
    let media_failure = boot.media_failure();
    let bad_checksum = matches!(checksum, ChecksumStatus::Invalid { .. });
    report.state = Some(
        if media_failure || bad_checksum {
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

    if let ChecksumStatus::Invalid { stored, computed } = checksum {
        report.findings.push(
            rules::EXFAT_CHECKSUM_MISMATCH.finding(
                scan.context,
                format!(
                    "boot-region checksum does not match (stored 0x{stored:08x}, computed 0x{computed:08x}): the kernel refuses to mount it (\"Invalid boot checksum\")"
                ),
            )
            .with_remedy(scan.location.offline_command("fsck.exfat -y")),
        );
    }
    if media_failure {
        report.findings.push(rules::EXFAT_MEDIA_FAILURE.finding(
            scan.context,
            format!(
                "VolumeFlags 0x{:04x} has MediaFailure: the medium reported read or write errors; fsck.exfat does not clear this bit, check the medium",
                boot.volume_flags
            ),
        ));
    }
    if dirty {
        let why = match scan.context {
            Context::Live => {
                "normal while a modification is in progress; Linux clears it at the next sync"
            }
            Context::Crash => "expected in a crash-consistent copy of a volume being modified",
            Context::Frozen => {
                "although the copy is said to be frozen: freezing syncs the volume, which clears the bit, so the freeze did not take"
            }
            Context::Offline => {
                "the volume was not properly unmounted and some data may be corrupt"
            }
        };
        let mut finding = rules::EXFAT_DIRTY.finding(
            scan.context,
            format!(
                "VolumeFlags 0x{:04x} has VolumeDirty: {why}",
                boot.volume_flags
            ),
        );
        if finding.severity != Severity::Info {
            finding = finding.with_remedy(scan.location.offline_command("fsck.exfat -a"));
        }
        report.findings.push(finding);
    }

    report.exfat = Some(ExFatDetails {
        volume_serial: boot.serial_string(),
        revision: boot.revision_string(),
        bytes_per_sector: boot.bytes_per_sector(),
        sectors_per_cluster: boot.sectors_per_cluster(),
        volume_length: boot.volume_length,
        cluster_count: boot.cluster_count,
        fats: boot.fats,
        volume_flags: boot.volume_flags,
        percent_in_use: (boot.percent_in_use != 0xFF).then_some(boot.percent_in_use),
        boot_checksum: match checksum {
            ChecksumStatus::Valid => "ok",
            ChecksumStatus::Invalid { .. } => "bad",
            ChecksumStatus::Unavailable => "unavailable",
        },
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

    fn region(flags: u16) -> Vec<u8> {
        let bps = 512usize;
        let mut r = vec![0u8; 12 * bps];
        r[0..3].copy_from_slice(&[0xEB, 0x76, 0x90]);
        r[3..11].copy_from_slice(&exfat::NAME);
        r[0x48..0x50].copy_from_slice(&131_072u64.to_le_bytes());
        r[0x68..0x6A].copy_from_slice(&0x0100u16.to_le_bytes());
        r[0x6C] = 9;
        r[0x6D] = 3;
        r[0x6E] = 1;
        r[510] = 0x55;
        r[511] = 0xAA;
        let sum = exfat::boot_checksum(&r, bps).unwrap();
        for w in r[11 * bps..].chunks_exact_mut(4) {
            w.copy_from_slice(&sum.to_le_bytes());
        }
        r[0x6A..0x6C].copy_from_slice(&flags.to_le_bytes());
        r
    }

    fn run(size: u64, boot: &[u8], context: Context) -> TargetReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.img");
        let f = fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        f.write_all_at(boot, 0).unwrap();
        drop(f);
        let source = SourceFile::open(&path).unwrap();
        let scan = VolumeScan {
            volume: Volume::whole(&source),
            context,
            location: Location::Image("x.img".into()),
        };
        let mut report = TargetReport::new("x.img", context);
        assess(&scan, &mut report);
        report
    }

    #[test]
    fn flags_by_context() {
        let r = run(64 << 20, &region(0), Context::Offline);
        assert_eq!(r.state.as_deref(), Some("clean"));
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.exfat.as_ref().unwrap().boot_checksum, "ok");

        let dirty = region(exfat::VOLUME_DIRTY);
        for (ctx, status) in [
            (Context::Offline, Status::Warning),
            (Context::Frozen, Status::Warning),
            (Context::Crash, Status::Ok),
            (Context::Live, Status::Ok),
        ] {
            let r = run(64 << 20, &dirty, ctx);
            assert_eq!(r.state.as_deref(), Some("dirty"));
            assert_eq!(r.status, status, "{ctx:?}");
        }
        let r = run(64 << 20, &dirty, Context::Offline);
        assert_eq!(r.findings[0].remedy.as_deref(), Some("fsck.exfat -a x.img"));

        let r = run(
            64 << 20,
            &region(exfat::VOLUME_DIRTY | exfat::MEDIA_FAILURE),
            Context::Crash,
        );
        assert_eq!(r.state.as_deref(), Some("errors"));
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "exfat.media-failure");
    }

    #[test]
    fn checksum_and_truncation() {
        let mut bad = region(0);
        bad[0x64] = 7;
        let r = run(64 << 20, &bad, Context::Offline);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "exfat.checksum-mismatch");

        let r = run(32 << 20, &region(0), Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.findings[0].id, "exfat.truncated");

        let r = run(600, &region(0)[..600], Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.exfat.as_ref().unwrap().boot_checksum, "unavailable");
    }
}
