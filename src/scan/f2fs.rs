//! Assessment of an f2fs volume: the superblock (the backup copy when the primary is
//! unusable), the current checkpoint pack and its `ckpt_flags`, and the stop reasons and
//! errors the kernel recorded in the superblock, turned into `state`, `needs_recovery`
//! and findings.
//!
//! f2fs-tools 1.15 and the kernel agree on the signals: a checkpoint without
//! `CP_UMOUNT_FLAG` means the next mount rolls forward fsync'd data (fsck.f2fs prints
//! `sudden-power-off`); `CP_FSCK_FLAG`, `CP_QUOTA_NEED_FSCK_FLAG` or `CP_ERROR_FLAG`
//! means the kernel found corruption; `s_stop_reason` and `s_errors` (kernel 6.1/6.2)
//! record why checkpointing stopped and which inconsistencies were met. `fsck.f2fs -a`
//! at boot repairs only when those are set; `fsck.f2fs -f` always checks.

use super::report_truncated;
use super::severity as rules;
use super::volume::{Volume, VolumeScan};
use crate::fs::f2fs::{
    self, CP_BLOCK_SIZE, CP_ERROR, CP_FSCK, CP_ORPHAN_PRESENT, CP_QUOTA_NEED_FSCK, Checkpoint,
    ChecksumStatus, PackError, SUPER_SIZE, Superblock,
};
use crate::report::{Context, F2fsDetails, F2fsPackDetails, F2fsStopReason, TargetReport};
use std::io;

/// The checker every remedy runs.
const FSCK: &str = "fsck.f2fs -f";

/// Assess the f2fs volume and fill `report`. I/O errors become an `Unknown` status.
pub fn assess(scan: &VolumeScan<'_>, report: &mut TargetReport) {
    super::assess_with(report, "f2fs", |report| assess_inner(scan, report));
}

fn is_eof(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

/// One superblock copy that was read and judged.
struct Copy {
    sb: Superblock,
    index: usize,
    checksum: ChecksumStatus,
    problems: Vec<String>,
}

impl Copy {
    fn usable(&self) -> bool {
        matches!(
            self.checksum,
            ChecksumStatus::Valid | ChecksumStatus::Absent
        ) && self.problems.is_empty()
    }

    fn label(&self) -> &'static str {
        if self.index == 0 { "primary" } else { "backup" }
    }
}

/// Read and judge superblock copy `index`; `Ok(None)` when it has no f2fs magic.
fn read_copy(volume: &Volume<'_>, index: usize) -> io::Result<Option<Copy>> {
    let raw = volume.read_exact_at(f2fs::super_offset(index), SUPER_SIZE, "an f2fs superblock")?;
    let Ok(sb) = Superblock::parse(&raw) else {
        return Ok(None);
    };
    Ok(Some(Copy {
        checksum: sb.verify_checksum(&raw),
        problems: sb.problems(),
        sb,
        index,
    }))
}

/// The rules of a bad primary superblock: with a good backup, without one.
const INVALID_SUPERBLOCK: [&rules::Rule; 2] = [
    &rules::F2FS_INVALID_SUPERBLOCK_BACKUP_GOOD,
    &rules::F2FS_INVALID_SUPERBLOCK_NO_BACKUP,
];
const CSUM_MISMATCH: [&rules::Rule; 2] = [
    &rules::F2FS_CSUM_MISMATCH_BACKUP_GOOD,
    &rules::F2FS_CSUM_MISMATCH_NO_BACKUP,
];

/// Why a copy is unusable: the rules (backup good, backup bad) and a description.
fn describe_bad(copy: Option<&Copy>) -> ([&'static rules::Rule; 2], String) {
    match copy {
        None => (INVALID_SUPERBLOCK, "no f2fs magic (0xF2F52010)".to_string()),
        Some(c) => match c.checksum {
            ChecksumStatus::Invalid { stored, computed } => (
                CSUM_MISMATCH,
                format!(
                    "CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x}): torn write or corruption"
                ),
            ),
            ChecksumStatus::BadOffset(offset) => (
                CSUM_MISMATCH,
                format!("impossible CRC offset {offset} (want 3068)"),
            ),
            _ => (
                INVALID_SUPERBLOCK,
                format!("invalid geometry ({})", c.problems.join("; ")),
            ),
        },
    }
}

/// A checkpoint pack as read: valid with its header, or why not; `eof` when the image
/// ends before it.
struct Pack {
    start: u64,
    result: Result<Checkpoint, String>,
    eof: bool,
}

fn read_pack(volume: &Volume<'_>, sb: &Superblock, index: usize) -> Result<Pack, String> {
    let start = sb.cp_pack_block(index);
    let block_size = sb.block_size().unwrap_or(4096);
    let read = |blk: u64| -> Result<Option<Vec<u8>>, String> {
        let Some(offset) = blk.checked_mul(block_size) else {
            return Ok(None);
        };
        match volume.read_exact_at(offset, CP_BLOCK_SIZE, "an f2fs checkpoint block") {
            Ok(b) => Ok(Some(b)),
            Err(e) if is_eof(&e) => Ok(None),
            Err(e) => Err(format!("cannot read checkpoint block {blk}: {e}")),
        }
    };
    let eof = |what: String| Pack {
        start,
        result: Err(what),
        eof: true,
    };
    let Some(first) = read(start)? else {
        return Ok(eof(format!("block {start} is beyond the end of the image")));
    };
    let checked = Checkpoint::parse_verified(&first, "first")
        .and_then(|cp| cp.last_block_index(sb.blocks_per_seg()).map(|l| (cp, l)));
    let (cp, last_index) = match checked {
        Ok(found) => found,
        Err(e) => {
            return Ok(Pack {
                start,
                result: Err(e.to_string()),
                eof: false,
            });
        }
    };
    let last = start.saturating_add(last_index);
    let Some(last_block) = read(last)? else {
        return Ok(eof(format!(
            "last block {last} is beyond the end of the image"
        )));
    };
    let result = cp
        .validate_last(&last_block)
        .map(|()| cp)
        .map_err(|e: PackError| e.to_string());
    Ok(Pack {
        start,
        result,
        eof: false,
    })
}

fn assess_inner(scan: &VolumeScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    let volume = &scan.volume;
    let primary = match read_copy(volume, 0) {
        Ok(copy) => copy,
        Err(e) if is_eof(&e) => {
            let needed = "the f2fs superblock lies at byte 1024";
            report_truncated(
                report,
                &rules::F2FS_TRUNCATED,
                &scan.location,
                volume.size(),
                needed,
            );
            return Ok(());
        }
        Err(e) => return Err(format!("cannot read the superblock: {e}")),
    };

    let chosen = match primary {
        Some(copy) if copy.usable() => copy,
        primary => {
            let backup = match read_copy(volume, 1) {
                Ok(Some(copy)) if copy.usable() => Some(copy),
                Ok(_) => None,
                Err(e) if is_eof(&e) => None,
                Err(e) => return Err(format!("cannot read the backup superblock: {e}")),
            };
            let (rule, what) = describe_bad(primary.as_ref());
            let (rule, outcome) = if backup.is_some() {
                (
                    rule[0],
                    "the backup at byte 5120 is good and the kernel and fsck.f2fs use it; the kernel rewrites the broken copy at the next read-write mount (fsck.f2fs 1.15 does not)",
                )
            } else {
                (
                    rule[1],
                    "the backup at byte 5120 is bad too: the kernel refuses to mount (\"Can't find valid F2FS filesystem\") and fsck.f2fs gives up; restore the volume from a backup",
                )
            };
            report.findings.push(rule.finding(
                scan.context,
                format!("primary superblock at byte 1024: {what}; {outcome}"),
            ));
            match (backup, primary) {
                (Some(b), _) => b,
                (None, Some(p)) => p,
                (None, None) => {
                    report.state = None;
                    return Err("no valid f2fs superblock (primary and backup)".to_string());
                }
            }
        }
    };
    let sb = &chosen.sb;

    let mut truncated = false;
    if let Some(fs_bytes) = sb.fs_bytes() {
        if fs_bytes > volume.size() {
            truncated = true;
            let needed = format!(
                "the filesystem needs {fs_bytes} bytes ({} blocks)",
                sb.block_count
            );
            report_truncated(
                report,
                &rules::F2FS_TRUNCATED,
                &scan.location,
                volume.size(),
                needed,
            );
        }
    }

    let packs = [read_pack(volume, sb, 0)?, read_pack(volume, sb, 1)?];
    let versions = [0, 1].map(|i| packs[i].result.as_ref().ok().map(|cp| cp.version));
    let current = f2fs::current_pack(versions);
    let checkpoint = current.and_then(|i| packs[i].result.as_ref().ok());

    match (current, checkpoint) {
        (Some(cur), Some(cp)) => {
            let other = 1 - cur;
            if let Err(problem) = &packs[other].result {
                if !packs[other].eof {
                    report.findings.push(rules::F2FS_CSUM_MISMATCH_OTHER_PACK.finding(
                        scan.context,
                        format!(
                            "checkpoint pack {} at block {}: {problem}; pack {} (version {:#x}) is current and used by the kernel and fsck.f2fs, and the next checkpoint overwrites the bad one (a crash during a checkpoint write leaves this)",
                            other + 1,
                            packs[other].start,
                            cur + 1,
                            cp.version
                        ),
                    ));
                }
            }
            assess_checkpoint(scan, sb, cp, report);
        }
        _ => {
            let why: Vec<String> = packs
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "pack {} at block {}: {}",
                        i + 1,
                        p.start,
                        p.result.as_ref().err().map_or("?", String::as_str)
                    )
                })
                .collect();
            if truncated && packs.iter().any(|p| p.eof) {
                // Already unknown: the image is cut short; no verdict on the contents.
                if let Some(f) = report
                    .findings
                    .iter_mut()
                    .find(|f| f.id == "f2fs.truncated")
                {
                    f.message
                        .push_str(&format!("; no checkpoint readable ({})", why.join("; ")));
                }
            } else {
                report.state = Some("errors".to_string());
                report.findings.push(
                    rules::F2FS_CHECKPOINT_UNREADABLE.finding(
                        scan.context,
                        format!(
                            "no valid checkpoint pack ({}): the kernel refuses to mount (\"Failed to get valid F2FS checkpoint\")",
                            why.join("; ")
                        ),
                    )
                    .with_remedy(scan.location.offline_command(FSCK)),
                );
            }
        }
    }
    assess_superblock_records(scan, sb, report);

    report.fsck_reason = None;
    report.f2fs = Some(F2fsDetails {
        label: sb.label.clone(),
        uuid: sb.uuid_string(),
        version: format!("{}.{}", sb.major_ver, sb.minor_ver),
        block_size: sb.block_size().unwrap_or(0),
        block_count: sb.block_count,
        segment_count: sb.segment_count,
        features: sb.feature,
        superblock: chosen.label(),
        checksum: match chosen.checksum {
            ChecksumStatus::Valid => "ok",
            ChecksumStatus::Absent => "absent",
            ChecksumStatus::Invalid { .. } | ChecksumStatus::BadOffset(_) => "bad",
        },
        checkpoint_pack: current.and_then(|i| u8::try_from(i + 1).ok()),
        checkpoint_version: checkpoint.map(|cp| cp.version),
        checkpoint_flags: checkpoint.map(|cp| cp.flags),
        checkpoint_state: checkpoint.map_or_else(Vec::new, |cp| f2fs::flag_names(cp.flags)),
        packs: packs
            .iter()
            .enumerate()
            .map(|(i, p)| F2fsPackDetails {
                pack: if i == 0 { 1 } else { 2 },
                block: p.start,
                version: p.result.as_ref().ok().map(|cp| cp.version),
                problem: p.result.as_ref().err().cloned(),
            })
            .collect(),
        stop_reasons: sb
            .stop_reasons()
            .into_iter()
            .map(|(reason, count)| F2fsStopReason { reason, count })
            .collect(),
        errors: sb.error_names(),
    });
    Ok(())
}

/// `state`, `needs_recovery` and the findings from the current checkpoint's flags.
fn assess_checkpoint(
    scan: &VolumeScan<'_>,
    sb: &Superblock,
    cp: &Checkpoint,
    report: &mut TargetReport,
) {
    let recorded = !sb.stop_reasons().is_empty() || !sb.error_names().is_empty();
    let errors = cp.needs_fsck() || cp.error() || recorded;
    report.state = Some(
        if errors {
            "errors"
        } else if !cp.unmounted() {
            "dirty"
        } else {
            "clean"
        }
        .to_string(),
    );
    report.needs_recovery = Some(!cp.unmounted());
    let state = format!(
        "checkpoint state = {:x} : {}",
        cp.flags,
        f2fs::flag_names(cp.flags).join(" ")
    );

    if cp.needs_fsck() {
        let which: Vec<&str> = [(CP_FSCK, "fsck"), (CP_QUOTA_NEED_FSCK, "quota_need_fsck")]
            .iter()
            .filter(|(bit, _)| cp.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        report.findings.push(
            rules::F2FS_NEED_FSCK.finding(
                scan.context,
                format!(
                    "the kernel asked for fsck ({}; {state}): it found inconsistent metadata, and fsck.f2fs -a repairs at the next boot",
                    which.join(", ")
                ),
            )
            .with_remedy(scan.location.offline_command(FSCK)),
        );
    }
    if cp.flags & CP_ERROR != 0 {
        report.findings.push(
            rules::F2FS_ERRORS_CHECKPOINT.finding(
                scan.context,
                format!(
                    "the checkpoint carries the error flag ({state}): the kernel stopped checkpointing after an error and the filesystem went read-only"
                ),
            )
            .with_remedy(scan.location.offline_command(FSCK)),
        );
    }
    if !cp.unmounted() {
        let orphans = if cp.flags & CP_ORPHAN_PRESENT != 0 {
            "; orphan inodes are recorded and get released at mount"
        } else {
            ""
        };
        let note = match scan.context {
            Context::Live => {
                "normal while mounted: only a clean unmount writes a checkpoint with the unmount flag"
            }
            Context::Crash => {
                "expected in a crash-consistent copy: the next mount rolls forward the data fsync'd after the last checkpoint"
            }
            Context::Frozen => {
                "expected in a frozen copy: the freeze writes a checkpoint without the unmount flag, so roll-forward finds little or nothing to recover"
            }
            Context::Offline => {
                "the filesystem was not cleanly unmounted: the next read-write mount rolls forward fsync'd data; mount it once before running fsck.f2fs, which does not roll forward and may drop that data"
            }
        };
        report.findings.push(rules::F2FS_NOT_UNMOUNTED.finding(
            scan.context,
            format!(
                "sudden power-off: the current checkpoint (pack version {:#x}, {state}) lacks the unmount flag{orphans}: {note}",
                cp.version
            ),
        ));
    }
}

/// Findings from what the kernel recorded in the superblock: stop reasons and errors.
fn assess_superblock_records(scan: &VolumeScan<'_>, sb: &Superblock, report: &mut TargetReport) {
    let reasons = sb.stop_reasons();
    if !reasons.is_empty() {
        let list: Vec<String> = reasons
            .iter()
            .map(|(name, count)| format!("{name}({count})"))
            .collect();
        let (rule, note) = if sb.abnormal_stop() {
            (
                &rules::F2FS_STOP_REASON_FAULT,
                "the kernel stopped checkpointing after a fault; fsck.f2fs repairs and clears them",
            )
        } else {
            (
                &rules::F2FS_STOP_REASON_SHUTDOWN,
                "only an explicit shutdown (the F2FS_IOC_SHUTDOWN / goingdown ioctl) was recorded; data written after it was lost",
            )
        };
        report.state = Some("errors".to_string());
        report.findings.push(
            rule.finding(
                scan.context,
                format!(
                    "checkpoint stop reasons recorded in the superblock: {}: {note}",
                    list.join(" ")
                ),
            )
            .with_remedy(scan.location.offline_command(FSCK)),
        );
    }
    let errors = sb.error_names();
    if !errors.is_empty() {
        report.state = Some("errors".to_string());
        report.findings.push(
            rules::F2FS_ERRORS_SUPERBLOCK.finding(
                scan.context,
                format!(
                    "the kernel recorded filesystem errors in the superblock: {}: fsck.f2fs repairs and clears them",
                    errors.join(" ")
                ),
            )
            .with_remedy(scan.location.offline_command(FSCK)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::f2fs::{CP_UMOUNT, MAGIC, f2fs_crc32};
    use crate::report::Status;
    use crate::scan::remedy::Location;
    use crate::scan::volume::Volume;
    use crate::sys::SourceFile;
    use std::os::unix::fs::FileExt;

    /// A minimal synthetic f2fs: both superblocks, two packs of 2 blocks, 64 MiB.
    struct Image {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    fn cp_block(version: u64, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..8].copy_from_slice(&version.to_le_bytes());
        b[0x84..0x88].copy_from_slice(&flags.to_le_bytes());
        b[0x88..0x8C].copy_from_slice(&2u32.to_le_bytes());
        b[0xA4..0xA8].copy_from_slice(&4092u32.to_le_bytes());
        let crc = f2fs_crc32(MAGIC, &b[..4092]);
        b[4092..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn superblock() -> Vec<u8> {
        let mut s = vec![0u8; SUPER_SIZE];
        let put = |s: &mut Vec<u8>, off: usize, v: u32| {
            s[off..off + 4].copy_from_slice(&v.to_le_bytes());
        };
        put(&mut s, 0, MAGIC);
        s[4] = 1;
        s[6] = 15;
        put(&mut s, 8, 9);
        put(&mut s, 12, 3);
        put(&mut s, 16, 12);
        put(&mut s, 20, 9);
        put(&mut s, 24, 1);
        put(&mut s, 28, 1);
        s[36..44].copy_from_slice(&16384u64.to_le_bytes());
        put(&mut s, 48, 31);
        put(&mut s, 52, 2);
        put(&mut s, 72, 512);
        put(&mut s, 76, 512);
        put(&mut s, 80, 1536);
        put(&mut s, 96, 3);
        put(&mut s, 100, 1);
        put(&mut s, 104, 2);
        s
    }

    fn image(size: u64, sb: &[u8], packs: [(u64, u32); 2]) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.img");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        // Only what fits: writing past the end would grow the file.
        let put = |bytes: &[u8], at: u64| {
            let fits = usize::try_from(size.saturating_sub(at)).unwrap_or(usize::MAX);
            f.write_all_at(&bytes[..bytes.len().min(fits)], at).unwrap();
        };
        put(sb, 1024);
        put(sb, 4096 + 1024);
        for (i, (version, flags)) in packs.into_iter().enumerate() {
            let start = (512 + 512 * i as u64) * 4096;
            let b = cp_block(version, flags);
            put(&b, start);
            put(&b, start + 4096);
        }
        Image { _dir: dir, path }
    }

    fn run(img: &Image, context: Context) -> TargetReport {
        let source = SourceFile::open(&img.path).unwrap();
        let scan = VolumeScan {
            volume: Volume::whole(&source),
            context,
            location: Location::Image("g.img".into()),
        };
        let mut report = TargetReport::new("g.img", context);
        assess(&scan, &mut report);
        report
    }

    #[test]
    fn clean_dirty_errors_by_context() {
        let sb = superblock();
        let r = run(
            &image(64 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.state.as_deref(), Some("clean"), "{r:?}");
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.needs_recovery, Some(false));
        let d = r.f2fs.as_ref().unwrap();
        assert_eq!(
            (d.checkpoint_pack, d.checkpoint_version),
            (Some(1), Some(3))
        );
        assert_eq!(d.checkpoint_state, ["unmount"]);

        // Pack 2 is newer and dirty.
        let dirty = image(64 << 20, &sb, [(3, CP_UMOUNT), (4, 0)]);
        let r = run(&dirty, Context::Offline);
        assert_eq!(r.state.as_deref(), Some("dirty"));
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.needs_recovery, Some(true));
        assert_eq!(r.findings[0].id, "f2fs.not-unmounted");
        assert_eq!(r.f2fs.as_ref().unwrap().checkpoint_pack, Some(2));
        for ctx in [Context::Crash, Context::Frozen, Context::Live] {
            assert_eq!(run(&dirty, ctx).status, Status::Ok, "{ctx:?}");
        }

        let r = run(
            &image(64 << 20, &sb, [(5, CP_UMOUNT | CP_FSCK), (4, 0)]),
            Context::Crash,
        );
        assert_eq!(r.state.as_deref(), Some("errors"));
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "f2fs.need-fsck");
        assert_eq!(r.findings[0].remedy.as_deref(), Some("fsck.f2fs -f g.img"));

        let r = run(
            &image(64 << 20, &sb, [(5, CP_ERROR), (4, 0)]),
            Context::Live,
        );
        assert_eq!(r.state.as_deref(), Some("errors"));
        assert_eq!(r.status, Status::Critical);
    }

    #[test]
    fn stop_reasons_and_errors() {
        let mut sb = superblock();
        sb[2762] = 1;
        let r = run(
            &image(64 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.state.as_deref(), Some("errors"));
        assert_eq!(r.status, Status::Warning, "shutdown only: {r:?}");
        assert_eq!(r.findings[0].id, "f2fs.stop-reason");
        sb[2762 + 3] = 2;
        sb[2794] = 0x10;
        let r = run(
            &image(64 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.status, Status::Critical);
        let ids: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
        assert!(ids.contains(&"f2fs.stop-reason") && ids.contains(&"f2fs.errors"));
        assert!(
            r.findings
                .iter()
                .any(|f| f.message.contains("write_fail(2)"))
        );
        assert_eq!(r.f2fs.as_ref().unwrap().errors, ["corrupted_inode"]);
    }

    #[test]
    fn bad_superblocks_and_packs() {
        let mut sb = superblock();
        sb[2180..2184].copy_from_slice(&0x800u32.to_le_bytes());
        sb[32..36].copy_from_slice(&3068u32.to_le_bytes());
        let crc = f2fs_crc32(MAGIC, &sb[..3068]);
        sb[3068..].copy_from_slice(&crc.to_le_bytes());
        let good = run(
            &image(64 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(good.f2fs.as_ref().unwrap().checksum, "ok");
        assert_eq!(good.status, Status::Ok);

        // Both copies bad: critical.
        let mut bad = sb.clone();
        bad[3068] ^= 1;
        let r = run(
            &image(64 << 20, &bad, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.status, Status::Critical, "{r:?}");
        assert_eq!(r.findings[0].id, "f2fs.csum-mismatch");

        // Only the primary bad: the backup is used, a warning.
        let img = image(64 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&img.path)
            .unwrap()
            .write_all_at(&bad, 1024)
            .unwrap();
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Warning, "{r:?}");
        assert_eq!(r.f2fs.as_ref().unwrap().superblock, "backup");

        // No valid pack.
        let img = image(64 << 20, &superblock(), [(3, CP_UMOUNT), (2, 0)]);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img.path)
            .unwrap();
        f.write_all_at(&[0xFF], 512 * 4096 + 100).unwrap();
        let r = run(&img, Context::Offline);
        assert_eq!(r.f2fs.as_ref().unwrap().checkpoint_pack, Some(2));
        assert!(r.findings.iter().any(|f| f.id == "f2fs.csum-mismatch"));
        f.write_all_at(&[0xFF], 1024 * 4096 + 100).unwrap();
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "f2fs.checkpoint-unreadable");
    }

    #[test]
    fn truncated_images() {
        let sb = superblock();
        // Packs readable, the rest cut: unknown, still assessed.
        let r = run(
            &image(8 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.status, Status::Unknown, "{r:?}");
        assert_eq!(r.findings[0].id, "f2fs.truncated");
        assert_eq!(r.state.as_deref(), Some("clean"));
        // Cut before the packs.
        let r = run(
            &image(1 << 20, &sb, [(3, CP_UMOUNT), (2, 0)]),
            Context::Offline,
        );
        assert_eq!(r.status, Status::Unknown, "{r:?}");
        assert_eq!(r.findings.len(), 1);
        // Cut inside the superblock.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.img");
        std::fs::write(&path, [0u8; 2000]).unwrap();
        let r = run(&Image { _dir: dir, path }, Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.findings[0].id, "f2fs.truncated");
    }
}
