//! Assessment of a btrfs volume: the primary superblock (or a good mirror when the
//! primary is bad), its flags and pending log tree, and, when the filesystem is mounted
//! here, the kernel's per-device error counters, turned into `state`, `needs_recovery`
//! and findings.
//!
//! btrfs has no clean/dirty flag. The signals, after btrfs-progs `disk-io.c` and the
//! kernel: the superblock checksum, `BTRFS_SUPER_FLAG_ERROR`, the flags an interrupted
//! btrfstune or conversion leaves, `log_root` (an fsync log tree replayed at the next
//! mount; fsfreeze commits the transaction and clears it) and the device error counters.

use super::remedy::{Location, quote};
use super::report_truncated;
use super::severity as rules;
use super::volume::Volume;
use crate::fs::btrfs::{
    self, ChecksumStatus, DeviceErrorStats, FLAG_CHANGING_BG_TREE, FLAG_CHANGING_CSUM_LEGACY,
    FLAG_CHANGING_DATA_CSUM, FLAG_CHANGING_FSID, FLAG_CHANGING_FSID_V2, FLAG_CHANGING_META_CSUM,
    SUPER_INFO_OFFSET, SUPER_INFO_SIZE, SUPER_MIRROR_MAX, Superblock,
};
use crate::report::{BtrfsDetails, BtrfsDeviceErrors, Context, Severity, Status, TargetReport};
use crate::root::SysRoot;
use std::io;

/// Root-relative directory of the kernel's per-filesystem btrfs attributes.
pub const SYS_FS_BTRFS: &str = "sys/fs/btrfs";

/// Everything the assessment needs besides the bytes.
#[derive(Debug, Clone)]
pub struct BtrfsScan<'a> {
    /// The bytes of the filesystem (one device of it).
    pub volume: Volume<'a>,
    /// How the bytes were captured.
    pub context: Context,
    /// Where it lives, for remedy commands.
    pub location: Location,
    /// Where `/sys` is read from, when the filesystem is mounted on this machine; `None`
    /// for images and unmounted devices (no live counters then).
    pub sys: Option<&'a SysRoot>,
}

/// One superblock copy that was read and judged.
struct Copy {
    sb: Superblock,
    offset: u64,
    mirror: usize,
    checksum: ChecksumStatus,
    problems: Vec<String>,
}

impl Copy {
    fn usable(&self) -> bool {
        !matches!(self.checksum, ChecksumStatus::Invalid { .. }) && self.problems.is_empty()
    }

    fn label(&self) -> &'static str {
        match self.mirror {
            0 => "primary",
            1 => "mirror 1",
            _ => "mirror 2",
        }
    }
}

/// Assess the btrfs volume and fill `report`. I/O errors become an `Unknown` status.
pub fn assess(scan: &BtrfsScan<'_>, report: &mut TargetReport) {
    super::assess_with(report, "btrfs", |report| assess_inner(scan, report));
}

/// The error counters of every device of the mounted btrfs `fsid`, from
/// `<root>/sys/fs/btrfs/<fsid>/devinfo/<devid>/error_stats`, sorted by devid. Empty when
/// the filesystem is not mounted (no such directory) or the kernel is too old to have
/// `error_stats` (added in 5.14).
pub fn btrfs_error_stats(root: &SysRoot, fsid: &str) -> Vec<(u64, DeviceErrorStats)> {
    if fsid.is_empty() || fsid.contains('/') || fsid.starts_with('.') {
        return Vec::new();
    }
    let dir = root.path(SYS_FS_BTRFS).join(fsid).join("devinfo");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, DeviceErrorStats)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let devid = entry.file_name().to_str()?.parse::<u64>().ok()?;
            let text = std::fs::read_to_string(entry.path().join("error_stats")).ok()?;
            Some((devid, DeviceErrorStats::parse_sysfs(&text)?))
        })
        .collect();
    out.sort_by_key(|(devid, _)| *devid);
    out
}

fn is_eof(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

fn read_copy(volume: &Volume<'_>, mirror: usize) -> io::Result<Option<Copy>> {
    let offset = btrfs::super_offset(mirror);
    let raw = volume.read_exact_at(offset, SUPER_INFO_SIZE, "a btrfs superblock")?;
    let Ok(sb) = Superblock::parse(&raw) else {
        return Ok(None);
    };
    let checksum = btrfs::verify_checksum(&raw);
    let mut problems = sb.problems();
    if sb.bytenr != offset {
        problems.insert(
            0,
            format!("bytenr {} does not match its offset {offset}", sb.bytenr),
        );
    }
    Ok(Some(Copy {
        sb,
        offset,
        mirror,
        checksum,
        problems,
    }))
}

/// btrfs-progs `btrfs_read_dev_super` with SBREAD_RECOVER, mirrors only: the valid copy
/// with the highest generation among copies of one filesystem.
fn best_mirror(volume: &Volume<'_>) -> Option<Copy> {
    let mut best: Option<Copy> = None;
    let mut fsid = None;
    for mirror in 1..SUPER_MIRROR_MAX {
        if !btrfs::mirror_fits(mirror, volume.size()) {
            break;
        }
        let Ok(Some(copy)) = read_copy(volume, mirror) else {
            continue;
        };
        if !copy.usable() {
            continue;
        }
        match fsid {
            None => fsid = Some(copy.sb.fsid),
            Some(f) if f != copy.sb.fsid => continue,
            Some(_) => {}
        }
        if best
            .as_ref()
            .is_none_or(|b| copy.sb.generation > b.sb.generation)
        {
            best = Some(copy);
        }
    }
    best
}

fn assess_inner(scan: &BtrfsScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    let volume = &scan.volume;
    let primary = match read_copy(volume, 0) {
        Ok(copy) => copy,
        Err(e) if is_eof(&e) => {
            let needed = format!("the btrfs superblock lies at byte {SUPER_INFO_OFFSET}");
            report_truncated(
                report,
                &rules::BTRFS_TRUNCATED,
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
            let mirror = best_mirror(volume);
            // Critical with or without a good mirror (severity.rs): the kernel reads only the
            // primary, so the filesystem does not mount until it is rewritten.
            let (rule, what) = describe_bad_primary(primary.as_ref());
            let mut finding = rule.finding(
                scan.context,
                format!(
                    "primary superblock at byte {SUPER_INFO_OFFSET}: {what}; the kernel reads only the primary, so mounting fails until it is repaired"
                ),
            );
            match &mirror {
                Some(m) => {
                    finding.message.push_str(&format!(
                        "; {} at byte {} is good (generation {})",
                        m.label(),
                        m.offset,
                        m.sb.generation
                    ));
                    finding = finding.with_remedy(
                        scan.location
                            .offline_command("btrfs rescue super-recover -y"),
                    );
                }
                None => finding
                    .message
                    .push_str("; no good superblock mirror found"),
            }
            report.findings.push(finding);
            match (mirror, primary) {
                (Some(m), primary) => {
                    let primary_generation = primary
                        .as_ref()
                        .map(|p| format!(", the primary says {}", p.sb.generation))
                        .unwrap_or_default();
                    report.findings.push(rules::BTRFS_MIRROR_USED.finding(
                        scan.context,
                        format!(
                            "assessed from superblock {} at byte {} (generation {}{primary_generation}); mirrors are written only at transaction commit, so a log tree recorded only in the primary is not visible here",
                            m.label(),
                            m.offset,
                            m.sb.generation
                        ),
                    ));
                    m
                }
                (None, Some(p)) => p,
                (None, None) => {
                    return Err(
                        "no valid btrfs superblock (primary unreadable, no good mirror)"
                            .to_string(),
                    );
                }
            }
        }
    };
    let sb = &chosen.sb;

    let device_bytes = sb.dev_item.total_bytes;
    if device_bytes > volume.size() {
        let needed = format!(
            "the filesystem's device {} needs {device_bytes} bytes",
            sb.dev_item.devid
        );
        report_truncated(
            report,
            &rules::BTRFS_TRUNCATED,
            &scan.location,
            volume.size(),
            needed,
        );
    }

    let live_errors = scan.sys.map(|root| {
        btrfs_error_stats(root, &crate::fs::uuid::format(&sb.fsid))
            .into_iter()
            .map(|(devid, s)| BtrfsDeviceErrors {
                devid,
                write_errs: s.write_errs,
                read_errs: s.read_errs,
                flush_errs: s.flush_errs,
                corruption_errs: s.corruption_errs,
                generation_errs: s.generation_errs,
            })
            .collect::<Vec<_>>()
    });
    let live_errors = live_errors.filter(|devices| !devices.is_empty());
    let any_device_errors = live_errors.as_ref().is_some_and(|devices| {
        devices.iter().any(|d| {
            d.write_errs + d.read_errs + d.flush_errs + d.corruption_errs + d.generation_errs > 0
        })
    });

    report.state = Some(state_string(sb, any_device_errors).to_string());
    report.needs_recovery = Some(sb.log_root != 0);
    report.fsck_reason = None;

    findings_for_flags(scan, sb, report);
    findings_for_log(scan, sb, report);
    if let ChecksumStatus::NotVerified(kind) = chosen.checksum {
        // btrfs-progs and the kernel refuse an unknown checksum type ("unsupported
        // checksum algorithm"): newer than this snapguard, so it cannot be assessed.
        report.status = Status::Unknown;
        report.findings.push(rules::BTRFS_CSUM_NOT_VERIFIED.finding(
            scan.context,
            format!(
                "the superblock uses the {} checksum, which this snapguard does not know (btrfs-progs and the kernel refuse it as an unsupported checksum algorithm): integrity not verified, snapguard cannot assess it",
                kind.name()
            ),
        ));
    }
    if let Some(devices) = &live_errors {
        findings_for_device_errors(scan, devices, report);
    }

    report.btrfs = Some(BtrfsDetails {
        label: sb.label.clone(),
        fsid: crate::fs::uuid::format(&sb.fsid),
        metadata_uuid: crate::fs::uuid::format(&sb.effective_metadata_uuid()),
        devid: sb.dev_item.devid,
        num_devices: sb.num_devices,
        generation: sb.generation,
        total_bytes: sb.total_bytes,
        bytes_used: sb.bytes_used,
        device_total_bytes: sb.dev_item.total_bytes,
        sectorsize: sb.sectorsize,
        nodesize: sb.nodesize,
        csum_type: sb.csum_type.name(),
        checksum: match chosen.checksum {
            ChecksumStatus::Valid => "ok",
            ChecksumStatus::Invalid { .. } => "bad",
            ChecksumStatus::NotVerified(_) => "not verified",
        },
        superblock: chosen.label(),
        superblock_offset: chosen.offset,
        flags: sb.flags,
        flag_names: sb.flag_names(),
        features: sb.feature_names(),
        log_root: sb.log_root,
        log_root_level: sb.log_root_level,
        device_errors: live_errors,
    });
    Ok(())
}

/// The rule and the reason for a primary superblock that cannot be used.
fn describe_bad_primary(primary: Option<&Copy>) -> (&'static rules::Rule, String) {
    match primary {
        None => (
            &rules::BTRFS_INVALID_SUPERBLOCK,
            "not a btrfs superblock (bad magic)".to_string(),
        ),
        Some(copy) => match copy.checksum {
            ChecksumStatus::Invalid { stored, computed } => (
                &rules::BTRFS_CSUM_MISMATCH,
                format!(
                    "{} checksum mismatch (stored {stored}, computed {computed}): torn write or corruption",
                    copy.sb.csum_type.name()
                ),
            ),
            _ => (
                &rules::BTRFS_INVALID_SUPERBLOCK,
                format!(
                    "checksum matches but it has invalid members ({})",
                    copy.problems.join("; ")
                ),
            ),
        },
    }
}

/// The `state` string: the most severe of `errors`, `interrupted operation`,
/// `log replay pending`, `clean`.
fn state_string(sb: &Superblock, device_errors: bool) -> &'static str {
    if sb.has_error_flag() || device_errors {
        "errors"
    } else if sb.interrupted_operations() != 0 {
        "interrupted operation"
    } else if sb.log_root != 0 {
        "log replay pending"
    } else {
        "clean"
    }
}

fn interrupted_names(bits: u64) -> Vec<&'static str> {
    [
        (FLAG_CHANGING_FSID, "CHANGING_FSID (btrfstune -u/-U)"),
        (FLAG_CHANGING_FSID_V2, "CHANGING_FSID_V2 (btrfstune -m/-M)"),
        (
            FLAG_CHANGING_CSUM_LEGACY,
            "CHANGING_CSUM (checksum conversion, btrfs-progs 6.0-6.4)",
        ),
        (
            FLAG_CHANGING_BG_TREE,
            "CHANGING_BG_TREE (block-group-tree conversion)",
        ),
        (
            FLAG_CHANGING_DATA_CSUM,
            "CHANGING_DATA_CSUM (data checksum conversion)",
        ),
        (
            FLAG_CHANGING_META_CSUM,
            "CHANGING_META_CSUM (metadata checksum conversion)",
        ),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

fn findings_for_flags(scan: &BtrfsScan<'_>, sb: &Superblock, report: &mut TargetReport) {
    if sb.has_error_flag() {
        report.findings.push(
            rules::BTRFS_ERROR_FLAG.finding(
                scan.context,
                "the superblock has the ERROR flag (\"Errors detected\"): the kernel found the filesystem broken and will treat it as failed (read-only) at mount",
            )
            .with_remedy(scan.location.offline_command("btrfs check --readonly")),
        );
    }
    let interrupted = sb.interrupted_operations();
    if interrupted != 0 {
        report.findings.push(rules::BTRFS_INTERRUPTED_OPERATION.finding(
            scan.context,
            format!(
                "an offline btrfs-progs operation was interrupted: {}; the kernel refuses or mistrusts the filesystem until the same btrfstune command is run again on the unmounted device to finish it",
                interrupted_names(interrupted).join(", ")
            ),
        ));
    }
    if sb.is_metadump() {
        report.findings.push(rules::BTRFS_METADUMP_IMAGE.finding(
            scan.context,
            "the filesystem was restored from a btrfs-image metadata dump (METADUMP flag): it has metadata but no file data",
        ));
    }
    if sb.is_seeding() {
        report.findings.push(rules::BTRFS_SEED_DEVICE.finding(
            scan.context,
            "this is a read-only seed device (SEEDING flag)",
        ));
    }
}

fn findings_for_log(scan: &BtrfsScan<'_>, sb: &Superblock, report: &mut TargetReport) {
    if sb.log_root == 0 {
        return;
    }
    let what = format!(
        "an fsync log tree is pending (log_root {}, level {})",
        sb.log_root, sb.log_root_level
    );
    let why = match scan.context {
        Context::Live => {
            "normal while mounted: fsync writes go to the log until the next transaction commit"
        }
        Context::Crash => {
            "expected in a crash-consistent copy taken after fsync activity; the kernel replays it at the first mount"
        }
        Context::Frozen => {
            "although the copy is said to be frozen: fsfreeze commits the transaction and clears log_root, so the freeze did not take"
        }
        Context::Offline => {
            "the filesystem was not cleanly unmounted after fsync activity (crash, power loss or shutdown); the next mount replays it"
        }
    };
    let mut finding = rules::BTRFS_LOG_TREE.finding(scan.context, format!("{what}: {why}"));
    if finding.severity != Severity::Info {
        finding.message.push_str(
            "; mounting it once replays the log and keeps the data; only if that mount fails on the log, 'btrfs rescue zero-log' discards it and LOSES every write fsynced since the last transaction commit",
        );
        // The fix is the replay mount the message describes, never zero-log: pasted as the
        // fix, zero-log would throw away every write fsynced since the last commit.
        if let Some(replay) = scan.location.replay_command(&[], None) {
            finding = finding.with_remedy(replay);
        }
    }
    report.findings.push(finding);
}

fn findings_for_device_errors(
    scan: &BtrfsScan<'_>,
    devices: &[BtrfsDeviceErrors],
    report: &mut TargetReport,
) {
    let mut integrity = false;
    let mut parts = Vec::new();
    for d in devices {
        let counters = [
            ("write_errs", d.write_errs),
            ("read_errs", d.read_errs),
            ("flush_errs", d.flush_errs),
            ("corruption_errs", d.corruption_errs),
            ("generation_errs", d.generation_errs),
        ];
        let nonzero: Vec<String> = counters
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        if nonzero.is_empty() {
            continue;
        }
        integrity |= d.corruption_errs > 0 || d.generation_errs > 0;
        parts.push(format!("devid {}: {}", d.devid, nonzero.join(", ")));
    }
    if parts.is_empty() {
        return;
    }
    let (rule, tail) = if integrity {
        (
            &rules::BTRFS_DEVICE_INTEGRITY_ERRORS,
            "checksum or generation errors: data or metadata read back wrong",
        )
    } else {
        (
            &rules::BTRFS_DEVICE_IO_ERRORS,
            "I/O errors from the device; check its health",
        )
    };
    let mut finding = rule.finding(
        scan.context,
        format!(
            "the kernel's device error counters are not zero ({}): {tail}; they persist until 'btrfs device stats --reset'",
            parts.join("; ")
        ),
    );
    if let Location::Mounted { mountpoint, .. } = &scan.location {
        finding = finding.with_remedy(format!("btrfs scrub start -B {}", quote(mountpoint)));
    }
    report.findings.push(finding);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use crate::sys::SourceFile;
    use std::fs;

    fn sample(bytenr: u64, generation: u64, log_root: u64, flags: u64) -> Vec<u8> {
        let mut sb = vec![0u8; SUPER_INFO_SIZE];
        let fsid = [0x22u8; 16];
        sb[0x20..0x30].copy_from_slice(&fsid);
        sb[0x30..0x38].copy_from_slice(&bytenr.to_le_bytes());
        sb[0x38..0x40].copy_from_slice(&flags.to_le_bytes());
        sb[0x40..0x48].copy_from_slice(&btrfs::MAGIC);
        sb[0x48..0x50].copy_from_slice(&generation.to_le_bytes());
        sb[0x50..0x58].copy_from_slice(&30_588_928u64.to_le_bytes());
        sb[0x58..0x60].copy_from_slice(&22_036_480u64.to_le_bytes());
        sb[0x60..0x68].copy_from_slice(&log_root.to_le_bytes());
        sb[0x70..0x78].copy_from_slice(&(128u64 << 20).to_le_bytes());
        sb[0x88..0x90].copy_from_slice(&1u64.to_le_bytes());
        sb[0x90..0x94].copy_from_slice(&4096u32.to_le_bytes());
        sb[0x94..0x98].copy_from_slice(&16384u32.to_le_bytes());
        sb[0xA0..0xA4].copy_from_slice(&129u32.to_le_bytes());
        sb[0xC9..0xD1].copy_from_slice(&1u64.to_le_bytes());
        sb[0xD1..0xD9].copy_from_slice(&(128u64 << 20).to_le_bytes());
        sb[0xC9 + 82..0xC9 + 98].copy_from_slice(&fsid);
        let crc = crate::fs::crc::crc32c(&sb[32..]);
        sb[0..4].copy_from_slice(&crc.to_le_bytes());
        sb
    }

    struct Image {
        _dir: tempfile::TempDir,
        source: SourceFile,
    }

    fn image(size: u64, copies: &[(u64, Vec<u8>)]) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.img");
        let f = fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        use std::os::unix::fs::FileExt;
        for (off, bytes) in copies {
            f.write_all_at(bytes, *off).unwrap();
        }
        drop(f);
        let source = SourceFile::open(&path).unwrap();
        Image { _dir: dir, source }
    }

    fn run(img: &Image, context: Context) -> TargetReport {
        let scan = BtrfsScan {
            volume: Volume::whole(&img.source),
            context,
            location: Location::Image("b.img".into()),
            sys: None,
        };
        let mut report = TargetReport::new("b.img", context);
        assess(&scan, &mut report);
        report
    }

    fn ids(r: &TargetReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.id).collect()
    }

    const SIZE: u64 = 128 << 20;

    #[test]
    fn clean_and_log_tree_by_context() {
        let img = image(
            SIZE,
            &[(SUPER_INFO_OFFSET, sample(SUPER_INFO_OFFSET, 6, 0, 1))],
        );
        let r = run(&img, Context::Offline);
        assert_eq!(r.state.as_deref(), Some("clean"));
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.needs_recovery, Some(false));
        assert_eq!(r.btrfs.as_ref().unwrap().checksum, "ok");

        let img = image(
            SIZE,
            &[(
                SUPER_INFO_OFFSET,
                sample(SUPER_INFO_OFFSET, 6, 30_474_240, 1),
            )],
        );
        for (ctx, status) in [
            (Context::Crash, Status::Ok),
            (Context::Live, Status::Ok),
            (Context::Frozen, Status::Warning),
            (Context::Offline, Status::Warning),
        ] {
            let r = run(&img, ctx);
            assert_eq!(r.state.as_deref(), Some("log replay pending"), "{ctx:?}");
            assert_eq!(r.needs_recovery, Some(true));
            assert_eq!(r.status, status, "{ctx:?}: {:?}", r.findings);
            let f = &r.findings[0];
            assert_eq!(f.id, "btrfs.log-tree");
            if status == Status::Warning {
                assert_eq!(
                    f.remedy.as_deref(),
                    Some(
                        "mnt=$(mktemp -d) && { mount -o loop b.img \"$mnt\" && umount \"$mnt\"; rc=$?; rmdir \"$mnt\"; [ \"$rc\" -eq 0 ]; }"
                    )
                );
                assert!(f.message.contains("LOSES"));
            } else {
                assert!(f.remedy.is_none());
            }
        }
    }

    #[test]
    fn error_and_interrupted_flags_are_critical_everywhere() {
        let flags = 1 | btrfs::FLAG_ERROR | btrfs::FLAG_CHANGING_META_CSUM;
        let img = image(
            SIZE,
            &[(SUPER_INFO_OFFSET, sample(SUPER_INFO_OFFSET, 6, 4096, flags))],
        );
        for ctx in [
            Context::Live,
            Context::Crash,
            Context::Frozen,
            Context::Offline,
        ] {
            let r = run(&img, ctx);
            assert_eq!(r.status, Status::Critical);
            assert_eq!(r.state.as_deref(), Some("errors"));
            assert!(ids(&r).contains(&"btrfs.error-flag"));
            assert!(ids(&r).contains(&"btrfs.interrupted-operation"));
        }
        let flags = 1 | btrfs::FLAG_CHANGING_FSID;
        let img = image(
            SIZE,
            &[(SUPER_INFO_OFFSET, sample(SUPER_INFO_OFFSET, 6, 0, flags))],
        );
        assert_eq!(
            run(&img, Context::Offline).state.as_deref(),
            Some("interrupted operation")
        );
    }

    #[test]
    fn bad_primary_falls_back_to_the_mirror() {
        let mut bad = sample(SUPER_INFO_OFFSET, 7, 0, 1);
        bad[0x12B] = b'X';
        let mirror = btrfs::super_offset(1);
        let img = image(
            SIZE,
            &[
                (SUPER_INFO_OFFSET, bad.clone()),
                (mirror, sample(mirror, 6, 0, 1)),
            ],
        );
        // Critical even with a good mirror: the kernel reads only the primary.
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Critical, "{:?}", r.findings);
        assert_eq!(ids(&r), ["btrfs.csum-mismatch", "btrfs.mirror-used"]);
        let d = r.btrfs.as_ref().unwrap();
        assert_eq!(d.superblock, "mirror 1");
        assert_eq!(d.generation, 6);
        assert!(
            r.findings[0]
                .remedy
                .as_deref()
                .unwrap()
                .contains("super-recover")
        );

        // Without a mirror (image too small for one), the bad primary is critical.
        let img = image(32 << 20, &[(SUPER_INFO_OFFSET, bad)]);
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(r.findings[0].id, "btrfs.csum-mismatch");
        assert_eq!(r.btrfs.as_ref().unwrap().checksum, "bad");
    }

    #[test]
    fn truncated_images_are_unknown() {
        let img = image(
            32 << 20,
            &[(SUPER_INFO_OFFSET, sample(SUPER_INFO_OFFSET, 6, 0, 1))],
        );
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert!(ids(&r).contains(&"btrfs.truncated"));

        let img = image(0x10800, &[]);
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(ids(&r), ["btrfs.truncated"]);
    }

    #[test]
    fn sha256_superblocks_are_verified_and_unknown_types_are_not() {
        let mut raw = sample(SUPER_INFO_OFFSET, 6, 0, 1);
        raw[0xC4] = 2;
        let sum = btrfs::CsumType::Sha256.digest(&raw[32..]).unwrap();
        raw[..32].copy_from_slice(sum.as_bytes());
        let img = image(SIZE, &[(SUPER_INFO_OFFSET, raw.clone())]);
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Ok, "{:?}", r.findings);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        let d = r.btrfs.as_ref().unwrap();
        assert_eq!((d.checksum, d.csum_type.as_str()), ("ok", "sha256"));

        raw[0] ^= 0xFF;
        let img = image(SIZE, &[(SUPER_INFO_OFFSET, raw.clone())]);
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Critical);
        assert_eq!(ids(&r), ["btrfs.csum-mismatch"]);
        assert!(r.findings[0].message.contains("sha256 checksum mismatch"));

        raw[0xC4] = 7;
        let img = image(SIZE, &[(SUPER_INFO_OFFSET, raw)]);
        let r = run(&img, Context::Offline);
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(ids(&r), ["btrfs.csum-not-verified"]);
        assert_eq!(r.btrfs.as_ref().unwrap().checksum, "not verified");
    }

    fn fixture_root(fsid: &str, stats: &[(&str, &str)]) -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        for (devid, text) in stats {
            let d = root
                .path(SYS_FS_BTRFS)
                .join(fsid)
                .join("devinfo")
                .join(devid);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("error_stats"), text).unwrap();
        }
        (dir, root)
    }

    #[test]
    fn error_stats_from_a_fixture_root() {
        let fsid = "22222222-2222-2222-2222-222222222222";
        let (_dir, root) = fixture_root(
            fsid,
            &[
                (
                    "2",
                    "write_errs 0\nread_errs 3\nflush_errs 0\ncorruption_errs 0\ngeneration_errs 0\n",
                ),
                (
                    "1",
                    "write_errs 0\nread_errs 0\nflush_errs 0\ncorruption_errs 0\ngeneration_errs 0\n",
                ),
                ("features", "x"),
            ],
        );
        let stats = btrfs_error_stats(&root, fsid);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].0, 1);
        assert_eq!(stats[1].1.read_errs, 3);
        assert!(btrfs_error_stats(&root, "../etc").is_empty());
        assert!(btrfs_error_stats(&root, "00000000-0000-0000-0000-000000000000").is_empty());

        let img = image(
            SIZE,
            &[(SUPER_INFO_OFFSET, sample(SUPER_INFO_OFFSET, 6, 0, 1))],
        );
        let scan = BtrfsScan {
            volume: Volume::whole(&img.source),
            context: Context::Live,
            location: Location::Mounted {
                device: "/dev/loop9".into(),
                mountpoint: "/mnt/b".into(),
                is_root: false,
                remount: None,
            },
            sys: Some(&root),
        };
        let mut report = TargetReport::new("/mnt/b", Context::Live);
        assess(&scan, &mut report);
        assert_eq!(report.status, Status::Warning, "{:?}", report.findings);
        assert_eq!(report.state.as_deref(), Some("errors"));
        let f = &report.findings[0];
        assert_eq!(f.id, "btrfs.device-errors");
        assert!(f.message.contains("devid 2: read_errs 3"));
        assert_eq!(f.remedy.as_deref(), Some("btrfs scrub start -B /mnt/b"));
        assert_eq!(
            report
                .btrfs
                .as_ref()
                .unwrap()
                .device_errors
                .as_ref()
                .unwrap()
                .len(),
            2
        );

        let (_dir2, root2) = fixture_root(
            fsid,
            &[(
                "1",
                "write_errs 0\nread_errs 0\nflush_errs 0\ncorruption_errs 1\ngeneration_errs 0\n",
            )],
        );
        let scan = BtrfsScan {
            sys: Some(&root2),
            ..scan
        };
        let mut report = TargetReport::new("/mnt/b", Context::Live);
        assess(&scan, &mut report);
        assert_eq!(report.status, Status::Critical);
    }
}
