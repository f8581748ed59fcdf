//! Assessment of an ext2/3/4 volume: superblock (or a backup), journal, MMP and live
//! counters turned into `state`, `needs_recovery`, `fsck_reason` and findings.

use super::fsck_reason::{FsckInputs, JournalVerdict, fsck_reason};
use super::journal::{self, JournalOutcome};
use super::remedy::Location;
use super::report_truncated;
use super::severity as rules;
use super::volume::Volume;
use crate::fs::ext::ExtError;
use crate::fs::ext::mmp::{Mmp, MmpState};
use crate::fs::ext::superblock::{
    self, ChecksumStatus, EXT2_ERROR_FS, EXT2_VALID_FS, EXT3_ORPHAN_FS, EXT4_FC_REPLAY,
    ErrorRecord, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock,
};
use crate::report::{
    Context, ExtDetails, ExtErrorRecord, JournalDetails, LiveErrors, Severity, Status, TargetReport,
};

/// Everything the assessment needs besides the bytes.
#[derive(Debug, Clone)]
pub struct ExtScan<'a> {
    /// The bytes of the filesystem.
    pub volume: Volume<'a>,
    /// How the bytes were captured.
    pub context: Context,
    /// Where it lives, for remedy commands.
    pub location: Location,
    /// `/sys/fs/ext4/<dev>/` counters when mounted.
    pub live: Option<LiveErrors>,
    /// Unix time now.
    pub now: i64,
}

/// Assess the ext volume and fill `report`. I/O errors become an `Unknown` status.
pub fn assess(scan: &ExtScan<'_>, report: &mut TargetReport) {
    if let Err(error) = assess_inner(scan, report) {
        report.status = Status::Unknown;
        report.error = Some(error);
    }
    report.finish();
}

fn assess_inner(scan: &ExtScan<'_>, report: &mut TargetReport) -> Result<(), String> {
    let volume = &scan.volume;
    let raw = volume
        .read_exact_at(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, "the ext superblock")
        .map_err(|e| format!("cannot read the superblock: {e}"))?;
    let primary =
        Superblock::parse(&raw).map_err(|e| format!("cannot parse the superblock: {e}"))?;
    report.fstype = Some(fstype_name(&primary).to_string());

    if primary.is_journal_device() {
        // dumpe2fs prints a journal device's superblock like any other; e2fsck refuses it.
        report.state = Some(primary.state_string().to_string());
        report.needs_recovery = Some(primary.needs_recovery());
        report.findings.push(rules::EXT_JOURNAL_DEVICE.finding(
            scan.context,
            "this is an external ext3/ext4 journal device, not a filesystem; it is checked together with its filesystem",
        ));
        return Ok(());
    }

    let checksum = superblock::verify_checksum(&raw);
    let (sb, which) = match checksum {
        ChecksumStatus::Invalid { stored, computed } => {
            let mut finding = rules::EXT_CHECKSUM_MISMATCH.finding(
                scan.context,
                format!(
                    "primary superblock checksum does not match (stored 0x{stored:08x}, computed 0x{computed:08x}): torn write or corruption; tune2fs and the kernel refuse it"
                ),
            )
            .with_remedy(scan.location.repair_command("e2fsck -f", false));
            match find_backup(volume) {
                Some((backup, offset)) => {
                    report.findings.push(finding);
                    report.findings.push(rules::EXT_BACKUP_SUPERBLOCK_USED.finding(
                        scan.context,
                        format!("reporting the backup superblock at byte {offset}, which e2fsck also falls back to"),
                    ));
                    (backup, "backup")
                }
                None => {
                    finding
                        .message
                        .push_str("; no usable backup superblock found");
                    report.findings.push(finding);
                    (primary, "primary")
                }
            }
        }
        _ => (primary, "primary"),
    };

    report.state = Some(sb.state_string().to_string());
    report.needs_recovery = Some(sb.needs_recovery());
    report.fstype = Some(fstype_name(&sb).to_string());

    if let Some(unknown) = sb.unknown_features() {
        report.status = Status::Unknown;
        report.findings.push(rules::EXT_UNKNOWN_FEATURES.finding(
            scan.context,
            format!("unknown feature bits ({unknown}): e2fsck refuses to check it and snapguard cannot assess it"),
        ));
    }

    let truncated = sb
        .fs_bytes()
        .is_some_and(|fs_bytes| fs_bytes > volume.size());
    if let Some(fs_bytes) = sb.fs_bytes() {
        if truncated {
            let needed = format!("the filesystem needs {fs_bytes} bytes");
            report_truncated(
                report,
                &rules::EXT_TRUNCATED,
                &scan.location,
                volume.size(),
                needed,
            );
        }
    }

    // Blocks past the end of a truncated image are missing, not corrupt: judging the
    // journal or MMP block from them would invent problems.
    let (journal, mmp) = if truncated {
        (JournalOutcome::NotChecked, None)
    } else {
        (journal::check(volume, &sb), read_mmp(volume, &sb))
    };
    let verdict = match &journal {
        JournalOutcome::None | JournalOutcome::NotChecked => JournalVerdict::NoJournal,
        JournalOutcome::Loaded(j) => JournalVerdict::Loaded {
            start: j.start,
            errno: j.errno,
        },
        JournalOutcome::External | JournalOutcome::Rejected(_) => JournalVerdict::Fatal,
    };
    let inputs = FsckInputs {
        journal: verdict,
        marked_invalid: false,
        now: scan.now,
    };
    report.fsck_reason = fsck_reason(&sb, &inputs);

    // >>> e2fsck pre-check simulation (src/scan/e2fsck_sim.rs) >>>
    // Which superblock e2fsck -n opens (ext2fs_open2 / ext2fs_check_desc failures send it
    // to a backup), whether check_super_block marks the filesystem invalid, or whether it
    // aborts first. `state`/`needs_recovery` stay as set above (dumpe2fs -h does not fall
    // back); only `fsck_reason` follows e2fsck's choice.
    if sb.unknown_features().is_some() {
        // e2fsck refuses the filesystem ("has unsupported feature(s)") before deciding;
        // ext.unknown-features already makes the target unknown.
        report.fsck_reason = None;
    } else if let Ok(parsed_primary) = Superblock::parse(&raw) {
        use super::e2fsck_sim::{SuperblockChoice, simulate};
        let sim = simulate(volume, &parsed_primary, &raw);
        if sim.inconclusive.is_none() {
            let (reason_sb, journal_verdict) = match &sim.superblock {
                SuperblockChoice::Backup { superblock, .. } if which == "primary" => {
                    let outcome = if truncated {
                        JournalOutcome::NotChecked
                    } else {
                        journal::check(volume, superblock)
                    };
                    let verdict = match &outcome {
                        JournalOutcome::None | JournalOutcome::NotChecked => {
                            JournalVerdict::NoJournal
                        }
                        JournalOutcome::Loaded(j) => JournalVerdict::Loaded {
                            start: j.start,
                            errno: j.errno,
                        },
                        JournalOutcome::External | JournalOutcome::Rejected(_) => {
                            JournalVerdict::Fatal
                        }
                    };
                    (superblock, verdict)
                }
                _ => (&sb, verdict),
            };
            let inputs = FsckInputs {
                journal: journal_verdict,
                marked_invalid: sim.marked_invalid,
                now: scan.now,
            };
            report.fsck_reason = if sim.aborted.is_some() {
                None
            } else {
                fsck_reason(reason_sb, &inputs)
            };
            report
                .findings
                .extend(sim.findings(&scan.location, scan.context));
        }
    }
    // <<< e2fsck pre-check simulation <<<

    findings_for_state(scan, &sb, which == "backup", report);
    findings_for_history(scan, &sb, report);
    findings_for_journal(scan, &sb, &journal, report);
    findings_for_schedule(scan, &sb, report);
    if let Some(mmp) = &mmp {
        findings_for_mmp(scan, mmp, report);
    }
    if let Some(live) = &scan.live {
        findings_for_live(scan, live, report);
    }

    report.ext = Some(details(
        &sb,
        which,
        checksum_label(&checksum),
        &journal,
        scan.live.clone(),
    ));
    Ok(())
}

/// When the device cannot be read but the filesystem is a mounted ext4: report the
/// kernel's live error counters, which alone can still prove errors. The target stays
/// `unknown` unless they do.
pub fn assess_live_only(live: LiveErrors, location: &Location, report: &mut TargetReport) {
    if live.errors_count == 0 {
        report.findings.push(rules::EXT_LIVE_ERRORS_NONE.finding(
            report.context,
            "the kernel recorded no errors on this filesystem since it was mounted (its on-disk state could not be read)",
        ));
    }
    findings_for_live_at(location, &live, report);
    report.finish();
}

/// `ext2`, `ext3` or `ext4`, the way blkid names them.
fn fstype_name(sb: &Superblock) -> &'static str {
    // Features that only ext4 has (blkid's EXT3_FEATURE_*_UNSUPPORTED sets).
    const EXT4_ONLY_INCOMPAT: u32 =
        0x0040 | 0x0080 | 0x0200 | 0x0400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000;
    const EXT4_ONLY_RO_COMPAT: u32 = 0x0008 | 0x0010 | 0x0020 | 0x0040 | 0x0200 | 0x0400;
    if sb.feature_incompat & EXT4_ONLY_INCOMPAT != 0
        || sb.feature_ro_compat & EXT4_ONLY_RO_COMPAT != 0
    {
        "ext4"
    } else if sb.has_journal() {
        "ext3"
    } else {
        "ext2"
    }
}

/// e2fsck's blind search for a backup superblock: 1 KiB to 64 KiB block sizes, accepting
/// the first one with the ext magic, a matching block size and a valid (or no) checksum.
fn find_backup(volume: &Volume<'_>) -> Option<(Superblock, u64)> {
    for (offset, block_size) in superblock::backup_superblock_offsets(None) {
        let Ok(raw) = volume.read_exact_at(offset, SUPERBLOCK_SIZE, "a backup superblock") else {
            continue;
        };
        let Ok(candidate) = Superblock::parse(&raw) else {
            continue;
        };
        if candidate.block_size() != Some(block_size) {
            continue;
        }
        if matches!(
            superblock::verify_checksum(&raw),
            ChecksumStatus::Invalid { .. }
        ) {
            continue;
        }
        return Some((candidate, offset));
    }
    None
}

fn read_mmp(volume: &Volume<'_>, sb: &Superblock) -> Option<Result<Mmp, String>> {
    if !sb.has_mmp() {
        return None;
    }
    let block_size = sb.block_size()?;
    Some(
        volume
            .read_block(sb.mmp_block, block_size)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Mmp::parse(&bytes).map_err(|e: ExtError| e.to_string())),
    )
}

fn findings_for_state(
    scan: &ExtScan<'_>,
    sb: &Superblock,
    from_backup: bool,
    report: &mut TargetReport,
) {
    // Built only for a finding that needs it: most filesystems have none.
    let check = || scan.location.repair_command("e2fsck -f", false);
    if sb.state & EXT2_ERROR_FS != 0 {
        report.findings.push(
            rules::EXT_ERRORS_FLAG.finding(
                scan.context,
                "the kernel or e2fsck recorded filesystem errors (state 'with errors'); e2fsck will force a full check",
            )
            .with_remedy(check()),
        );
    }
    if sb.state & EXT2_VALID_FS == 0 {
        let mounted_like = matches!(
            scan.context,
            Context::Live | Context::Crash | Context::Frozen
        );
        let (rule, message) = if from_backup {
            (
                &rules::EXT_NOT_CLEAN_BACKUP,
                "not clean: backup superblocks are always written without the clean flag, so e2fsck running from the backup will check the filesystem",
            )
        } else if !sb.has_journal() && mounted_like {
            (
                &rules::EXT_NOT_CLEAN_NO_JOURNAL,
                "not clean: a filesystem without a journal is marked not clean while mounted; a snapshot of it needs e2fsck on restore",
            )
        } else if !sb.has_journal() {
            (
                &rules::EXT_NOT_CLEAN_NO_JOURNAL,
                "not clean: the filesystem was not cleanly unmounted (or was mounted while already not clean); e2fsck will force a check",
            )
        } else {
            (
                &rules::EXT_NOT_CLEAN_JOURNAL,
                "not clean: the filesystem was not cleanly unmounted (or was mounted while already not clean); e2fsck will force a check",
            )
        };
        let mut finding = rule.finding(scan.context, message);
        if finding.severity != Severity::Info {
            finding = finding.with_remedy(check());
        }
        report.findings.push(finding);
    }
    if sb.state & EXT3_ORPHAN_FS != 0 {
        report.findings.push(rules::EXT_ORPHAN_FS_STATE.finding(
            scan.context,
            "state has the orphan-recovery bit (0x4): an orphan cleanup was interrupted; tune2fs -l, e2fsck and the kernel ignore this bit, and pending orphans are judged on their own",
        ));
    }
    if sb.state & EXT4_FC_REPLAY != 0 {
        report.findings.push(rules::EXT_FC_REPLAY_STATE.finding(
            scan.context,
            "state has the fast-commit replay bit (0x20): a fast-commit replay was interrupted; tune2fs -l and e2fsck ignore this bit and the kernel masks it off at mount",
        ));
    }
    if sb.needs_recovery() {
        if !sb.has_journal() {
            report.findings.push(
                rules::EXT_NEEDS_RECOVERY_WITHOUT_JOURNAL.finding(
                    scan.context,
                    "needs_recovery is set but the filesystem has no journal: inconsistent flags, e2fsck -n aborts",
                )
                .with_remedy(scan.location.repair_command("e2fsck -p", false)),
            );
        } else {
            let message = match scan.context {
                Context::Live => "the journal is in use (normal while mounted)",
                Context::Crash => {
                    "the journal needs replay: expected in a crash-consistent copy; the kernel or e2fsck replays it on restore"
                }
                Context::Frozen => {
                    "the journal needs replay although the copy is said to be frozen: a frozen ext4 has needs_recovery clear, so the freeze did not take"
                }
                Context::Offline => {
                    "the journal needs replay: the filesystem was not cleanly unmounted (crash, power loss or shutdown)"
                }
            };
            let mut finding = rules::EXT_NEEDS_RECOVERY.finding(scan.context, message);
            if scan.context == Context::Offline {
                finding = finding.with_remedy(scan.location.repair_command("e2fsck -p", false));
            }
            report.findings.push(finding);
        }
    }
    let orphan_file_pending = sb.has_orphan_file() && sb.orphan_present();
    if sb.last_orphan != 0 || orphan_file_pending {
        let what = if sb.last_orphan != 0 {
            format!(
                "orphan inode list pending (first orphan inode {})",
                sb.last_orphan
            )
        } else {
            "orphan file has entries (orphan_present): e2fsck will run a full check".to_string()
        };
        report.findings.push(rules::EXT_ORPHANS_PENDING.finding(
            scan.context,
            format!("{what}: deleted-but-open files or truncates in flight, processed at the next mount or e2fsck"),
        ));
    }
}

fn findings_for_history(scan: &ExtScan<'_>, sb: &Superblock, report: &mut TargetReport) {
    if sb.error_count == 0 && sb.first_error.is_none() && sb.last_error.is_none() {
        return;
    }
    let describe = |label: &str, r: &ErrorRecord| {
        let code = r.errcode_name();
        format!(
            "{label} {}:{} at {}{}{}{}",
            r.function,
            r.line,
            crate::report::human::time_or_na(r.time),
            if r.inode != 0 {
                format!(" inode {}", r.inode)
            } else {
                String::new()
            },
            if r.block != 0 {
                format!(" block {}", r.block)
            } else {
                String::new()
            },
            if code.is_empty() {
                String::new()
            } else {
                format!(" ({code})")
            }
        )
    };
    let mut parts = vec![format!(
        "{} error(s) recorded since the last check",
        sb.error_count
    )];
    if let Some(r) = &sb.first_error {
        parts.push(describe("first", r));
    }
    if let Some(r) = &sb.last_error {
        parts.push(describe("last", r));
    }
    let flagged = sb.state & EXT2_ERROR_FS != 0;
    let (rule, tail) = if flagged {
        (&rules::EXT_ERROR_HISTORY_FLAGGED, "")
    } else {
        (
            &rules::EXT_ERROR_HISTORY_UNFLAGGED,
            "; the error flag is clear, so e2fsck will not check on its own",
        )
    };
    report.findings.push(
        rule.finding(scan.context, format!("{}{tail}", parts.join("; ")))
            .with_remedy(scan.location.repair_command("e2fsck -f", false)),
    );
}

fn findings_for_journal(
    scan: &ExtScan<'_>,
    sb: &Superblock,
    journal: &JournalOutcome,
    report: &mut TargetReport,
) {
    match journal {
        JournalOutcome::None | JournalOutcome::NotChecked => {}
        JournalOutcome::External => report.findings.push(rules::EXT_EXTERNAL_JOURNAL.finding(
            scan.context,
            "the journal is on an external device: not assessed (scan the journal device too)",
        )),
        JournalOutcome::Rejected(why) => {
            if sb.needs_recovery() && !sb.has_journal() {
                return; // reported as ext.needs-recovery-without-journal
            }
            report.findings.push(
                rules::EXT_JOURNAL_INVALID
                    .finding(
                        scan.context,
                        format!(
                            "journal: {why}; e2fsck stops until the journal is repaired or removed"
                        ),
                    )
                    .with_remedy(scan.location.repair_command("e2fsck -f", false)),
            );
        }
        JournalOutcome::Loaded(j) => {
            if j.errno != 0 {
                report.findings.push(
                    rules::EXT_JOURNAL_ERRNO.finding(
                        scan.context,
                        format!(
                            "the journal was aborted with errno {} ({}): the kernel marks the filesystem with errors at the next mount",
                            j.errno,
                            errno_name(j.errno)
                        ),
                    )
                    .with_remedy(scan.location.repair_command("e2fsck -f", false)),
                );
            }
            if j.start != 0 && sb.has_journal() && !sb.needs_recovery() {
                report.findings.push(
                    rules::EXT_JOURNAL_DATA_FLAG_CLEAR.finding(
                        scan.context,
                        format!("the journal holds transactions (start {}) but needs_recovery is clear: e2fsck will ask whether to replay it", j.start),
                    )
                    .with_remedy(scan.location.repair_command("e2fsck -f", false)),
                );
            }
        }
    }
}

fn findings_for_schedule(scan: &ExtScan<'_>, sb: &Superblock, report: &mut TargetReport) {
    if sb.max_mnt_count > 0 && i64::from(sb.mnt_count) >= i64::from(sb.max_mnt_count) {
        report.findings.push(rules::EXT_MOUNT_COUNT_DUE.finding(
            scan.context,
            format!(
                "mounted {} times, maximum {}: a boot-time fsck will check it",
                sb.mnt_count, sb.max_mnt_count
            ),
        ));
    }
    if sb.checkinterval != 0 {
        let lastcheck = sb.lastcheck as i64;
        if lastcheck > scan.now {
            report.findings.push(rules::EXT_LAST_CHECK_IN_FUTURE.finding(
                scan.context,
                format!(
                    "last checked {} is in the future: clock skew; e2fsck forces a check once it is more than a day ahead",
                    crate::report::human::time_or_na(sb.lastcheck)
                ),
            ));
        } else if scan.now - lastcheck >= i64::from(sb.checkinterval) {
            report.findings.push(rules::EXT_CHECK_INTERVAL_DUE.finding(
                scan.context,
                format!(
                    "not checked for {} days, interval {} days: a boot-time fsck will check it",
                    (scan.now - lastcheck) / 86_400,
                    sb.checkinterval / 86_400
                ),
            ));
        }
    }
}

fn findings_for_mmp(scan: &ExtScan<'_>, mmp: &Result<Mmp, String>, report: &mut TargetReport) {
    match mmp {
        Err(why) => report.findings.push(rules::EXT_MMP_UNREADABLE.finding(
            scan.context,
            format!("multi-mount protection block unreadable: {why}"),
        )),
        Ok(mmp) => match mmp.state() {
            MmpState::Clean => {}
            MmpState::FsckRunning => report.findings.push(rules::EXT_MMP_FSCK_RUNNING.finding(
                scan.context,
                format!(
                    "multi-mount protection says e2fsck is running on node '{}'",
                    mmp.nodename
                ),
            )),
            MmpState::InUse(seq) => {
                report.findings.push(rules::EXT_MMP_IN_USE.finding(
                    scan.context,
                    format!(
                        "multi-mount protection says the filesystem is in use by node '{}' (device '{}', sequence 0x{seq:08x})",
                        mmp.nodename, mmp.bdevname
                    ),
                ));
            }
        },
    }
}

fn findings_for_live(scan: &ExtScan<'_>, live: &LiveErrors, report: &mut TargetReport) {
    findings_for_live_at(&scan.location, live, report);
}

fn findings_for_live_at(location: &Location, live: &LiveErrors, report: &mut TargetReport) {
    if live.errors_count == 0 {
        return;
    }
    report.findings.push(
        rules::EXT_LIVE_ERRORS.finding(
            report.context,
            format!(
                "the kernel recorded {} error(s) on this mounted filesystem (first {}:{}, last {}:{} at {}); the disk may not show them yet",
                live.errors_count,
                live.first_error_func,
                live.first_error_line,
                live.last_error_func,
                live.last_error_line,
                crate::report::human::time_or_na(live.last_error_time)
            ),
        )
        .with_remedy(location.repair_command("e2fsck -f", false)),
    );
}

fn errno_name(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno.saturating_abs());
    if e == nix::errno::Errno::UnknownErrno {
        format!("errno {errno}")
    } else {
        format!("{e:?}: {}", e.desc())
    }
}

fn checksum_label(status: &ChecksumStatus) -> &'static str {
    match status {
        ChecksumStatus::Absent => "absent",
        ChecksumStatus::Valid => "ok",
        ChecksumStatus::Invalid { .. } => "bad",
    }
}

fn record(r: &ErrorRecord) -> ExtErrorRecord {
    ExtErrorRecord {
        time: r.time,
        function: r.function.clone(),
        line: r.line,
        inode: r.inode,
        block: r.block,
        errcode: r.errcode_name(),
    }
}

fn details(
    sb: &Superblock,
    which: &'static str,
    checksum: &'static str,
    journal: &JournalOutcome,
    live: Option<LiveErrors>,
) -> ExtDetails {
    ExtDetails {
        block_size: sb.block_size().unwrap_or(0),
        blocks_count: sb.blocks_count,
        inodes_count: sb.inodes_count,
        label: sb.volume_name.clone(),
        uuid: crate::fs::uuid::format(&sb.uuid),
        last_mounted: sb.last_mounted.clone(),
        features: sb.feature_names(),
        errors_behavior: sb.errors_behavior(),
        mount_count: sb.mnt_count,
        max_mount_count: sb.max_mnt_count,
        last_checked: sb.lastcheck,
        check_interval: sb.checkinterval,
        last_mount_time: sb.mtime,
        last_write_time: sb.wtime,
        superblock: which,
        checksum,
        error_count: sb.error_count,
        first_error: sb.first_error.as_ref().map(record),
        last_error: sb.last_error.as_ref().map(record),
        first_orphan_inode: (sb.last_orphan != 0).then_some(sb.last_orphan),
        journal: match journal {
            JournalOutcome::Loaded(j) => Some(JournalDetails {
                start: j.start,
                sequence: j.sequence,
                errno: j.errno,
            }),
            _ => None,
        },
        live_errors: live,
    }
}
