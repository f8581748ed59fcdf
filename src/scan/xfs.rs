//! Assessment of an XFS volume: the primary superblock (CRC, `inprogress`, NEEDSREPAIR,
//! unknown feature bits) and the internal log's head and tail, found as xfsprogs'
//! `xlog_find_tail` finds them, turned into `state`, `needs_recovery` and findings.
//!
//! Severities follow shared/reference/ondisk-state.md §5 rows X1–X6: recorded damage is
//! critical in every context; a dirty log is expected (info) in a live filesystem or a
//! crash or frozen snapshot (a frozen XFS covers its log but writes no unmount record),
//! and a warning on a disk that should have been cleanly unmounted.

use super::remedy::{Location, quote};
use super::report_truncated;
use super::severity as rules;
use super::volume::{Volume, VolumeScan};
use crate::fs::xfs::{
    self, BBSIZE, CrcStatus, LogLocation, LogState, LogZeros, XFS_MAX_SECTORSIZE, XfsError,
    XfsSuperblock,
};
use crate::report::{Context, Status, TargetReport, XfsDetails, XfsLogPosition};
use std::io;

/// `state` when a mkfs or other offline tool did not finish (`sb_inprogress`).
pub const STATE_IN_PROGRESS: &str = "offline operation in progress";
/// `state` when incompat NEEDSREPAIR is set.
pub const STATE_NEEDS_REPAIR: &str = "needs repair";
/// `state` when the log head and tail differ.
pub const STATE_DIRTY_LOG: &str = "dirty log";
/// `state` when the log is clean and no flag is set.
pub const STATE_CLEAN: &str = "clean";

/// `lseek` calls spent mapping the holes of a log: a fresh or crash-copied sparse log is one
/// data run then one hole (two calls); a log written all over is one run (one call).
const MAX_HOLE_CALLS: usize = 6;

/// What became of the log search.
enum LogOutcome {
    /// `sb_logstart == 0`.
    External,
    /// The image ends before the filesystem does: not judged.
    NotChecked,
    /// Head and tail found.
    Found(LogState),
    /// The log is damaged: no head or tail (xfs_repair: "The log head and/or tail cannot
    /// be discovered").
    Corrupt(XfsError),
    /// The bytes could not be read.
    Unreadable(XfsError),
}

/// Assess the XFS volume and fill `report`. Read errors make the status `Unknown`.
pub fn assess(scan: &VolumeScan<'_>, report: &mut TargetReport) {
    super::assess_with(report, "xfs", |report| assess_inner(scan, report));
}

fn assess_inner(scan: &VolumeScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    report.fstype = Some("xfs".to_string());
    let volume = &scan.volume;
    let raw = volume
        .read_at(0, superblock_sector_len(volume))
        .map_err(|e| format!("cannot read the XFS superblock: {e}"))?;
    let sb = match XfsSuperblock::parse(&raw) {
        Ok(sb) => sb,
        Err(XfsError::Truncated { needed, got, .. }) => {
            let needed = format!("the XFS superblock sector needs {needed} bytes");
            report_truncated(
                report,
                &rules::XFS_TRUNCATED,
                &scan.location,
                got as u64,
                needed,
            );
            return Ok(());
        }
        Err(e) => return Err(format!("cannot parse the XFS superblock: {e}")),
    };

    if let CrcStatus::Invalid { stored, computed } = sb.crc {
        report.findings.push(
            rules::XFS_CRC_MISMATCH.finding(
                scan.context,
                format!(
                    "primary superblock CRC does not match (stored 0x{stored:08x}, computed 0x{computed:08x}): torn write or corruption; the kernel refuses to mount it{}",
                    secondary_note(volume, &sb)
                ),
            )
            .with_remedy(repair_command(&scan.location)),
        );
    }
    if let Some(unknown) = sb.unknown_features() {
        report.status = Status::Unknown;
        report.findings.push(rules::XFS_UNKNOWN_FEATURES.finding(
            scan.context,
            format!("unknown feature bits ({unknown}): newer than xfsprogs 6.1; snapguard cannot assess it"),
        ));
    }
    if sb.in_progress() {
        report.findings.push(
            rules::XFS_INPROGRESS.finding(
                scan.context,
                "sb_inprogress is set: mkfs or another offline tool did not finish; the kernel refuses to mount it (\"Offline file system operation in progress!\")",
            )
            .with_remedy(repair_command(&scan.location)),
        );
    }
    if sb.needs_repair() {
        report.findings.push(
            rules::XFS_NEEDS_REPAIR.finding(
                scan.context,
                "the NEEDSREPAIR feature is set: an xfs_repair was interrupted or the filesystem was marked for repair; the kernel refuses to mount it until xfs_repair completes",
            )
            .with_remedy(repair_command(&scan.location)),
        );
    }

    let truncated = sb.fs_bytes().is_some_and(|bytes| bytes > volume.size());
    if truncated {
        let needed = format!("the filesystem needs {} bytes", sb.fs_bytes().unwrap_or(0));
        report_truncated(
            report,
            &rules::XFS_TRUNCATED,
            &scan.location,
            volume.size(),
            needed,
        );
    }

    let outcome = if truncated {
        LogOutcome::NotChecked
    } else {
        search_log(volume, &sb)
    };
    findings_for_log(scan, &sb, &outcome, report);

    let log = match &outcome {
        LogOutcome::Found(st) => Some(st),
        _ => None,
    };
    report.needs_recovery = log.map(|st| !st.clean);
    report.fsck_reason = None;
    report.state = if sb.in_progress() {
        Some(STATE_IN_PROGRESS)
    } else if sb.needs_repair() {
        Some(STATE_NEEDS_REPAIR)
    } else {
        log.map(|st| {
            if st.clean {
                STATE_CLEAN
            } else {
                STATE_DIRTY_LOG
            }
        })
    }
    .map(str::to_string);
    report.xfs = Some(details(&sb, &outcome));
    Ok(())
}

/// How much to read for the superblock: its sector (`sb_sectsize`, read from the first
/// bytes, which the identification read already holds), or the largest sector XFS allows when
/// that field is not a valid size (the parser then says what is wrong).
fn superblock_sector_len(volume: &Volume<'_>) -> usize {
    let sectsize = volume
        .read_at(0, BBSIZE)
        .ok()
        .and_then(|b| {
            b.get(102..104)
                .map(|f| usize::from(u16::from_be_bytes([f[0], f[1]])))
        })
        .unwrap_or(0);
    if sectsize.is_power_of_two() && (BBSIZE..=XFS_MAX_SECTORSIZE).contains(&sectsize) {
        sectsize
    } else {
        XFS_MAX_SECTORSIZE
    }
}

/// What xfs_repair's phase 1 finds when the primary is bad: whether the secondary
/// superblock of AG 1 (same filesystem, valid CRC) can replace it. Critical either way
/// (scan::severity): the kernel reads only the primary.
fn secondary_note(volume: &Volume<'_>, primary: &XfsSuperblock) -> String {
    let offset = u64::from(primary.agblocks) * u64::from(primary.blocksize);
    let good = offset > 0
        && primary.agcount > 1
        && volume
            .read_exact_at(offset, XFS_MAX_SECTORSIZE, "the XFS secondary superblock")
            .ok()
            .and_then(|raw| XfsSuperblock::parse(&raw).ok())
            .is_some_and(|s| s.crc == CrcStatus::Valid && s.uuid == primary.uuid);
    if good {
        format!(
            "; the secondary superblock of AG 1 at byte {offset} is good, and xfs_repair rewrites the primary from it"
        )
    } else {
        "; no good secondary superblock in AG 1 either".to_string()
    }
}

/// Locate the log from the superblock and run the head/tail search on its blocks.
fn search_log(volume: &Volume<'_>, sb: &XfsSuperblock) -> LogOutcome {
    let (offset, len_bb) = match sb.log_location() {
        Ok(LogLocation::External) => return LogOutcome::External,
        Ok(LogLocation::Internal { offset, len_bb }) => (offset, len_bb),
        Err(e) => return LogOutcome::Corrupt(e),
    };
    let mut read = |first: u64, count: usize| -> io::Result<Vec<u8>> {
        let at = first
            .checked_mul(BBSIZE as u64)
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log offset overflows"))?;
        let len = count
            .checked_mul(BBSIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "log read too large"))?;
        volume.read_exact_at(at, len, "the XFS log")
    };
    // Holes of a sparse image read as zeros: the probes that land in one need no read.
    let log_bytes = len_bb.saturating_mul(BBSIZE as u64);
    let holes = volume.holes(offset, offset.saturating_add(log_bytes), MAX_HOLE_CALLS);
    let zeros = LogZeros::from_holes(offset, len_bb, &holes);
    match xfs::find_log_head_tail_sparse(len_bb, sb.has_logv2(), &zeros, &mut read) {
        Ok((st, _)) => LogOutcome::Found(st),
        Err(e) if e.is_log_corruption() => LogOutcome::Corrupt(e),
        Err(e) => LogOutcome::Unreadable(e),
    }
}

fn describe(st: &LogState) -> String {
    format!(
        "head block {} cycle {}, tail block {} cycle {}",
        st.head_block, st.head_cycle, st.tail_block, st.tail_cycle
    )
}

fn findings_for_log(
    scan: &VolumeScan<'_>,
    sb: &XfsSuperblock,
    outcome: &LogOutcome,
    report: &mut TargetReport,
) {
    match outcome {
        LogOutcome::NotChecked => {}
        LogOutcome::External => report.findings.push(rules::XFS_EXTERNAL_LOG.finding(
            scan.context,
            "the log is on an external device: clean or dirty could not be assessed without the log device",
        )),
        LogOutcome::Unreadable(e) => {
            report.status = Status::Unknown;
            report.error = Some(format!("cannot read the XFS log: {e}"));
        }
        LogOutcome::Corrupt(e) => report.findings.push(
            rules::XFS_LOG_UNREADABLE.finding(
                scan.context,
                format!(
                    "the log head or tail cannot be found ({e}); mount and xfs_repair will refuse it. Copy the filesystem before anything else: xfs_repair -L discards the log and is the last resort, never the first step"
                ),
            )
            .with_remedy(replay_then_repair_command(&scan.location)),
        ),
        LogOutcome::Found(st) if !st.clean => {
            let where_ = describe(st);
            let blocked = sb.in_progress()
                || sb.needs_repair()
                || matches!(sb.crc, CrcStatus::Invalid { .. });
            let mut message = match scan.context {
                Context::Live => format!("the log is active ({where_}): normal while mounted"),
                Context::Crash => format!(
                    "the log needs replay ({where_}): expected in a crash-consistent copy; mounting it replays the log"
                ),
                Context::Frozen => format!(
                    "the log needs replay ({where_}): expected in a frozen copy, since a frozen XFS covers its log but writes no unmount record; mounting it replays the log"
                ),
                Context::Offline => format!(
                    "the log needs replay ({where_}): the filesystem was not cleanly unmounted (crash, power loss or shutdown); xfs_repair refuses it until a mount replays the log. Do not start with xfs_repair -L: it discards the log"
                ),
            };
            if blocked {
                message.push_str(
                    "; the kernel will not mount this filesystem to replay the log, so if xfs_repair refuses it, copy the filesystem first: only then is xfs_repair -L the last resort",
                );
            }
            let mut finding = rules::XFS_DIRTY_LOG.finding(scan.context, message);
            if scan.context == Context::Offline {
                finding = finding.with_remedy(replay_then_repair_command(&scan.location));
            }
            report.findings.push(finding);
        }
        LogOutcome::Found(_) => {}
    }
}

/// `xfs_repair` on the filesystem, unmounting it first when needed.
fn repair_command(location: &Location) -> String {
    match location {
        Location::Mounted {
            device,
            is_root: true,
            ..
        } => format!(
            "the root filesystem cannot be unmounted: boot a rescue system and run xfs_repair {}",
            quote(device)
        ),
        mounted @ Location::Mounted { .. } => mounted.repair_command("xfs_repair", false),
        other => other.check_command("xfs_repair"),
    }
}

/// Replay the log with a mount and umount, then run `xfs_repair` (never `-L` first).
///
/// The replay mount always uses `nouuid`: a crash copy or restored disk usually has a twin
/// (the original) mounted on the same machine, and the kernel refuses a second XFS with the
/// same UUID. `nouuid` only skips that duplicate check; for a temporary mount that is
/// unmounted at once it changes nothing on disk, so it is always safe — and deciding from
/// the mount table at scan time would break when the twin is mounted later. The temporary
/// directory is removed whether the mount works or not, and the line fails when it did not.
fn replay_then_repair_command(location: &Location) -> String {
    match location {
        Location::Mounted {
            device,
            is_root: true,
            ..
        } => format!(
            "the root filesystem cannot be unmounted: boot a rescue system, mount and unmount {dev} to replay its log, then run xfs_repair {dev}",
            dev = quote(device)
        ),
        mounted @ Location::Mounted { .. } => mounted.repair_command("xfs_repair", false),
        other => other
            .replay_command(&["nouuid"], Some("xfs_repair"))
            .unwrap_or_default(),
    }
}

fn details(sb: &XfsSuperblock, outcome: &LogOutcome) -> XfsDetails {
    let log = match outcome {
        LogOutcome::Found(st) => Some(st),
        _ => None,
    };
    XfsDetails {
        version: sb.version(),
        block_size: sb.blocksize,
        sector_size: sb.sectsize,
        data_blocks: sb.dblocks,
        ag_count: sb.agcount,
        ag_blocks: sb.agblocks,
        label: sb.fname.clone(),
        uuid: crate::fs::uuid::format(&sb.uuid),
        log_start: sb.logstart,
        log_blocks: sb.logblocks,
        log_external: matches!(outcome, LogOutcome::External),
        log_head: log.map(|st| XfsLogPosition {
            block: st.head_block,
            cycle: st.head_cycle,
        }),
        log_tail: log.map(|st| XfsLogPosition {
            block: st.tail_block,
            cycle: st.tail_cycle,
        }),
        log_clean: log.map(|st| st.clean),
        log_unmount_record: log.map(|st| st.unmount_record),
        crc: match sb.crc {
            CrcStatus::Absent => "absent",
            CrcStatus::Valid => "ok",
            CrcStatus::Invalid { .. } => "bad",
        },
        inprogress: sb.in_progress(),
        needs_repair: sb.needs_repair(),
        features: sb.feature_names().into_iter().map(str::to_string).collect(),
        features_compat: sb.features_compat,
        features_ro_compat: sb.features_ro_compat,
        features_incompat: sb.features_incompat,
        features_log_incompat: sb.features_log_incompat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::remedy::Location;

    #[test]
    fn remedies_replay_before_repair_and_never_use_dash_l() {
        let cases = [
            Location::Device("/dev/sdb1".into()),
            Location::Image("/tmp/a b.img".into()),
            Location::ImagePartition {
                image: "/tmp/disk.img".into(),
                index: 2,
                offset: 1 << 20,
                size: 64 << 20,
            },
            Location::Mounted {
                device: "/dev/sdc".into(),
                mountpoint: "/data".into(),
                is_root: false,
                remount: None,
            },
        ];
        for loc in &cases[..3] {
            let cmd = replay_then_repair_command(loc);
            assert!(!cmd.contains(" -L"), "{cmd}");
            let repair = cmd.find("xfs_repair").expect("xfs_repair in the remedy");
            let replay = cmd.find("umount").expect("a umount replays the log");
            assert!(replay < repair, "{cmd}");
        }
        assert_eq!(
            replay_then_repair_command(&cases[1]),
            "mnt=$(mktemp -d) && { mount -o loop,nouuid '/tmp/a b.img' \"$mnt\" && umount \"$mnt\"; rc=$?; rmdir \"$mnt\"; [ \"$rc\" -eq 0 ]; } && xfs_repair '/tmp/a b.img'"
        );
        assert_eq!(repair_command(&cases[0]), "xfs_repair /dev/sdb1");
        // Mounted: `snapguard repair` unmounts, replays the log and repairs, then mounts back.
        assert_eq!(repair_command(&cases[3]), "snapguard repair /data");
        assert_eq!(
            replay_then_repair_command(&cases[3]),
            "snapguard repair /data"
        );
    }

    #[test]
    fn uuid_is_formatted_like_xfs_db() {
        let mut u = [0u8; 16];
        u[0] = 0xbf;
        u[15] = 0x88;
        assert_eq!(
            crate::fs::uuid::format(&u),
            "bf000000-0000-0000-0000-000000000088"
        );
    }
}
