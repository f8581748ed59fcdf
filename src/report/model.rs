//! The report data model: what every command produces, serialised as-is to JSON.
//!
//! Field names are snake_case and stable (DESIGN.md §1): fields may be added, none renamed
//! without bumping [`SCHEMA_VERSION`]. Keep in sync with `docs/json-schema/scan-v1.schema.json`.

use serde::Serialize;

/// Version of the JSON documents; bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Expected or benign; worth knowing.
    Info,
    /// A check or replay will happen on restore or boot; act before the backup.
    Warning,
    /// Recorded corruption or an unusable filesystem.
    Critical,
}

/// The verdict on one target, which also decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing worse than informational findings.
    Ok,
    /// At least one warning.
    Warning,
    /// At least one critical finding.
    Critical,
    /// The target could not be assessed (bad input, unreadable, unsupported).
    Unknown,
}

impl Status {
    /// Status implied by the worst severity among findings.
    pub fn from_worst(worst: Option<Severity>) -> Self {
        match worst {
            None | Some(Severity::Info) => Status::Ok,
            Some(Severity::Warning) => Status::Warning,
            Some(Severity::Critical) => Status::Critical,
        }
    }

    /// Rank used to combine several statuses: critical beats unknown beats warning beats ok.
    pub fn rank(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }

    /// The Nagios exit code for a run whose worst status is this one.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// Upper-case label for human output, as monitoring plugins print it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One observation about a target: stable id, severity, one-line message, remedy command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `ext.not-clean`.
    pub id: &'static str,
    /// How bad it is in this context.
    pub severity: Severity,
    /// One line, no trailing period.
    pub message: String,
    /// The exact command that fixes it, when there is one.
    pub remedy: Option<String>,
}

impl Finding {
    /// A finding without a remedy.
    pub fn new(id: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Finding {
            id,
            severity,
            message: message.into(),
            remedy: None,
        }
    }

    /// Attach the remedy command.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }
}

/// Counts of targets (or mounts, or checks) by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warning: usize,
    pub critical: usize,
    pub unknown: usize,
}

impl Summary {
    /// Count one more item with `status`.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Ok => self.ok += 1,
            Status::Warning => self.warning += 1,
            Status::Critical => self.critical += 1,
            Status::Unknown => self.unknown += 1,
        }
    }

    /// The worst status counted, which decides the exit code.
    pub fn worst(&self) -> Status {
        if self.critical > 0 {
            Status::Critical
        } else if self.unknown > 0 {
            Status::Unknown
        } else if self.warning > 0 {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

/// In what situation the scanned bytes were captured; it changes what counts as normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// A filesystem mounted on this machine right now.
    Live,
    /// A device or image that should have been cleanly unmounted.
    Offline,
    /// A crash-consistent snapshot of a running system (`--snapshot crash`).
    Crash,
    /// A snapshot taken while the filesystem was frozen (`--snapshot frozen`).
    Frozen,
}

impl Context {
    /// The word users read (as in the JSON).
    pub fn word(self) -> &'static str {
        match self {
            Context::Live => "live",
            Context::Offline => "offline",
            Context::Crash => "crash",
            Context::Frozen => "frozen",
        }
    }
}

/// Where a partition sits inside a whole-disk target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRef {
    /// 1-based number, as Linux names `sdaN`.
    pub index: u32,
    /// `mbr` or `gpt`.
    pub scheme: &'static str,
    /// Byte offset from the start of the disk.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

/// The `scan` document.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub summary: Summary,
    pub targets: Vec<TargetReport>,
}

impl ScanReport {
    /// Build the document and its summary from the per-target results.
    pub fn new(targets: Vec<TargetReport>) -> Self {
        let mut summary = Summary::default();
        for target in &targets {
            summary.add(target.status);
        }
        ScanReport {
            schema_version: SCHEMA_VERSION,
            command: "scan",
            summary,
            targets,
        }
    }
}

/// The result for one scanned filesystem (or container, or unreadable target).
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// What was scanned, as named on the command line; partitions get `#pN`.
    pub target: String,
    /// The block device, when the target is or sits on one.
    pub device: Option<String>,
    /// Detected filesystem or container type.
    pub fstype: Option<String>,
    /// Where it is mounted (the first mount of the superblock).
    pub mountpoint: Option<String>,
    /// Further mount points of the same superblock (bind mounts).
    pub other_mountpoints: Vec<String>,
    /// How the bytes were captured.
    pub context: Context,
    /// Set when the target is one partition of a whole-disk image or device.
    pub partition: Option<PartitionRef>,
    /// The verdict.
    pub status: Status,
    /// For ext: exactly what `tune2fs -l` prints after `Filesystem state:`.
    pub state: Option<String>,
    /// For ext: incompat `needs_recovery`.
    pub needs_recovery: Option<bool>,
    /// For ext: the reason `e2fsck -n` prints before ", check forced.", or null.
    pub fsck_reason: Option<String>,
    /// Why the target could not be assessed at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ext2/3/4 details, the fields of `tune2fs -l` that matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<ExtDetails>,
    /// btrfs superblock details and device error counters (only for btrfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub btrfs: Option<BtrfsDetails>,
    /// FAT12/16/32 boot sector and FAT[1] state (only for FAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fat: Option<FatDetails>,
    /// exFAT boot sector details (only for exFAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exfat: Option<ExFatDetails>,
    /// f2fs superblock and current checkpoint details (only for f2fs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f2fs: Option<F2fsDetails>,
    /// XFS details: superblock geometry, features and the log head/tail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xfs: Option<XfsDetails>,
    /// Everything noticed, worst first.
    pub findings: Vec<Finding>,
}

impl TargetReport {
    /// An empty report for `target`, to be filled by the scanner.
    pub fn new(target: impl Into<String>, context: Context) -> Self {
        TargetReport {
            target: target.into(),
            device: None,
            fstype: None,
            mountpoint: None,
            other_mountpoints: Vec::new(),
            context,
            partition: None,
            status: Status::Ok,
            state: None,
            needs_recovery: None,
            fsck_reason: None,
            error: None,
            ext: None,
            btrfs: None,
            fat: None,
            exfat: None,
            f2fs: None,
            xfs: None,
            findings: Vec::new(),
        }
    }

    /// Sort findings worst first and derive the status, keeping an `Unknown` already set.
    pub fn finish(&mut self) {
        self.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let from_findings = Status::from_worst(self.findings.first().map(|f| f.severity));
        if self.status != Status::Unknown || from_findings == Status::Critical {
            self.status = from_findings;
        }
    }
}

/// One recorded ext4 error (first or last), as dumpe2fs prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtErrorRecord {
    pub time: u64,
    pub function: String,
    pub line: u32,
    pub inode: u32,
    pub block: u64,
    pub errcode: String,
}

/// The jbd2 journal superblock fields that matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalDetails {
    /// Non-zero: the log holds transactions to replay.
    pub start: u32,
    pub sequence: u32,
    /// Set by a journal abort, e.g. -5 (EIO).
    pub errno: i32,
}

/// Live error counters of a mounted ext4 from `/sys/fs/ext4/<dev>/`, ahead of the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveErrors {
    pub errors_count: u64,
    pub first_error_time: u64,
    pub first_error_func: String,
    pub first_error_line: u64,
    pub last_error_time: u64,
    pub last_error_func: String,
    pub last_error_line: u64,
}

/// ext2/3/4 superblock details for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtDetails {
    pub block_size: u64,
    pub blocks_count: u64,
    pub inodes_count: u32,
    pub label: String,
    pub uuid: String,
    pub last_mounted: String,
    pub features: Vec<std::borrow::Cow<'static, str>>,
    pub errors_behavior: &'static str,
    pub mount_count: u16,
    pub max_mount_count: i16,
    pub last_checked: u64,
    pub check_interval: u32,
    pub last_mount_time: u64,
    pub last_write_time: u64,
    /// `primary`, or `backup` when the primary was unusable.
    pub superblock: &'static str,
    /// `ok`, `bad` or `absent` (no metadata_csum).
    pub checksum: &'static str,
    pub error_count: u32,
    pub first_error: Option<ExtErrorRecord>,
    pub last_error: Option<ExtErrorRecord>,
    pub first_orphan_inode: Option<u32>,
    pub journal: Option<JournalDetails>,
    pub live_errors: Option<LiveErrors>,
}

/// A position in the XFS log: a 512-byte basic block counted from the start of the log,
/// and the log cycle written there (as `xfs_logprint -t` counts blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct XfsLogPosition {
    pub block: u64,
    pub cycle: u32,
}

/// XFS superblock and log details for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XfsDetails {
    /// Superblock version: 4, or 5 (CRC-enabled).
    pub version: u8,
    pub block_size: u32,
    pub sector_size: u16,
    pub data_blocks: u64,
    pub ag_count: u32,
    pub ag_blocks: u32,
    pub label: String,
    pub uuid: String,
    /// First log block (filesystem block); 0 for an external log.
    pub log_start: u64,
    pub log_blocks: u32,
    /// The log is on a separate device and was not assessed.
    pub log_external: bool,
    /// Where the next log write goes; null when the log was not assessed.
    pub log_head: Option<XfsLogPosition>,
    /// Where log recovery would start; null when the log was not assessed.
    pub log_tail: Option<XfsLogPosition>,
    /// head == tail (`xfs_logprint -t` `<CLEAN>`); null when the log was not assessed.
    pub log_clean: Option<bool>,
    /// The last record is an unmount record ending at the head.
    pub log_unmount_record: Option<bool>,
    /// `ok`, `bad` or `absent` (v4: no CRC).
    pub crc: &'static str,
    /// `sb_inprogress` is set.
    pub inprogress: bool,
    /// incompat NEEDSREPAIR is set.
    pub needs_repair: bool,
    /// Feature names as `xfs_db -c version` lists them.
    pub features: Vec<String>,
    pub features_compat: u32,
    pub features_ro_compat: u32,
    pub features_incompat: u32,
    pub features_log_incompat: u32,
}

/// One btrfs device's error counters (`btrfs device stats`), live from sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BtrfsDeviceErrors {
    pub devid: u64,
    pub write_errs: u64,
    pub read_errs: u64,
    pub flush_errs: u64,
    pub corruption_errs: u64,
    pub generation_errs: u64,
}

/// btrfs superblock details for the report (names as `btrfs inspect-internal dump-super`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BtrfsDetails {
    pub label: String,
    pub fsid: String,
    pub metadata_uuid: String,
    pub devid: u64,
    pub num_devices: u64,
    pub generation: u64,
    pub total_bytes: u64,
    pub bytes_used: u64,
    /// `dev_item.total_bytes`: the size this device should have.
    pub device_total_bytes: u64,
    pub sectorsize: u32,
    pub nodesize: u32,
    /// `crc32c`, `xxhash64`, `sha256`, `blake2b` or `unknown (N)`.
    pub csum_type: String,
    /// `ok`, `bad` or `not verified` (only crc32c is computed).
    pub checksum: &'static str,
    /// `primary`, `mirror 1` or `mirror 2`: the copy the details come from.
    pub superblock: &'static str,
    /// Byte offset of that copy.
    pub superblock_offset: u64,
    pub flags: u64,
    pub flag_names: Vec<String>,
    pub features: Vec<String>,
    /// Non-zero: an fsync log tree will be replayed at the next mount.
    pub log_root: u64,
    pub log_root_level: u8,
    /// Live counters from `/sys/fs/btrfs/<fsid>/devinfo/<devid>/error_stats`; null when
    /// not mounted here.
    pub device_errors: Option<Vec<BtrfsDeviceErrors>>,
}

/// FAT12/16/32 details for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FatDetails {
    /// 12, 16 or 32.
    pub fat_bits: u8,
    pub label: Option<String>,
    /// `XXXX-XXXX`, as blkid prints it.
    pub volume_id: Option<String>,
    pub bytes_per_sector: u16,
    pub sectors_per_cluster: u8,
    pub reserved_sectors: u16,
    pub fats: u8,
    pub total_sectors: u32,
    pub clusters: u64,
    /// The boot-sector state byte (0x25 on FAT12/16, 0x41 on FAT32); bit 0 = dirty.
    pub boot_state: u8,
    pub boot_dirty: bool,
    /// FAT entry 1 (null on FAT12 or when unreadable).
    pub fat1: Option<u32>,
    /// FAT[1] clean-shutdown bit (null on FAT12).
    pub fat1_clean_shutdown: Option<bool>,
    /// FAT[1] hard-error bit clear, i.e. disk errors recorded (null on FAT12).
    pub fat1_hard_error: Option<bool>,
}

/// exFAT details for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExFatDetails {
    /// `XXXX-XXXX`, as blkid prints it.
    pub volume_serial: String,
    /// `1.00`.
    pub revision: String,
    pub bytes_per_sector: u32,
    pub sectors_per_cluster: u32,
    /// In sectors.
    pub volume_length: u64,
    pub cluster_count: u32,
    pub fats: u8,
    /// Bit 1 VolumeDirty, bit 2 MediaFailure.
    pub volume_flags: u16,
    /// Null when the volume says "unknown" (0xFF).
    pub percent_in_use: Option<u8>,
    /// `ok`, `bad` or `unavailable`: the boot-region checksum.
    pub boot_checksum: &'static str,
}

/// One f2fs checkpoint pack as it was judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct F2fsPackDetails {
    /// 1 or 2, as f2fs-tools numbers them (`cur_cp`).
    pub pack: u8,
    /// First block of the pack.
    pub block: u64,
    /// `checkpoint_ver` when the pack is valid.
    pub version: Option<u64>,
    /// Why the pack is not valid (CRC, torn write, unreadable), or null.
    pub problem: Option<String>,
}

/// A recorded f2fs stop reason (`s_stop_reason[i]`) and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct F2fsStopReason {
    /// As f2fs-tools prints it, e.g. `write_fail`.
    pub reason: String,
    pub count: u8,
}

/// f2fs details for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct F2fsDetails {
    pub label: String,
    pub uuid: String,
    /// On-disk format `major.minor`, e.g. `1.15`.
    pub version: String,
    pub block_size: u64,
    pub block_count: u64,
    pub segment_count: u32,
    /// The superblock `feature` bits.
    pub features: u32,
    /// `primary` (byte 1024) or `backup` (byte 5120) when the primary was unusable.
    pub superblock: &'static str,
    /// `ok`, `bad` or `absent` (no sb_checksum feature): the superblock CRC.
    pub checksum: &'static str,
    /// The current checkpoint pack (1 or 2), null when neither is valid.
    pub checkpoint_pack: Option<u8>,
    pub checkpoint_version: Option<u64>,
    /// `ckpt_flags` of the current pack.
    pub checkpoint_flags: Option<u32>,
    /// The flag names fsck.f2fs prints after "checkpoint state = <hex> :".
    pub checkpoint_state: Vec<&'static str>,
    pub packs: Vec<F2fsPackDetails>,
    /// `s_stop_reason` (kernel 6.1+).
    pub stop_reasons: Vec<F2fsStopReason>,
    /// `s_errors` (kernel 6.2+), named as f2fs-tools prints them.
    pub errors: Vec<String>,
}

// ---- freeze-test, freeze, thaw (issue #4) ------------------------------------------------------
// Keep in sync with docs/json-schema/{freeze-test,freeze,thaw}-v1.schema.json.

/// What a freeze test (or a freeze) says about one mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// FIFREEZE and FITHAW both succeeded (or, with `--probe-only`, the type is known to).
    Freezable,
    /// The filesystem cannot be frozen (pseudo, memory, remote, or EOPNOTSUPP).
    Unsupported,
    /// Left out by configuration (a skip glob, an fstype list, Azure `MountsToSkip`).
    Skipped,
    /// Read-only superblock: nothing to flush, a snapshot of it is consistent already.
    ReadOnly,
    /// FIFREEZE said EBUSY: someone else holds a freeze; it was left as it is.
    AlreadyFrozen,
    /// The freeze or the thaw failed (errno in `errno`), or the mount could not be opened.
    Failed,
}

impl Verdict {
    /// Status for the summary and the exit code: freezable → ok, failed → critical, the rest
    /// → warning.
    pub fn status(self) -> Status {
        match self {
            Verdict::Freezable => Status::Ok,
            Verdict::Failed => Status::Critical,
            Verdict::Unsupported
            | Verdict::Skipped
            | Verdict::ReadOnly
            | Verdict::AlreadyFrozen => Status::Warning,
        }
    }

    /// The JSON spelling, for human output.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Freezable => "freezable",
            Verdict::Unsupported => "unsupported",
            Verdict::Skipped => "skipped",
            Verdict::ReadOnly => "read-only",
            Verdict::AlreadyFrozen => "already-frozen",
            Verdict::Failed => "failed",
        }
    }
}

/// Who thawed a mount that was frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThawedBy {
    /// The controller, in order.
    Snapguard,
    /// The guardian process on its own (deadline, controller death, signal).
    Guardian,
    /// snapguard's controller, after the guardian was proven gone (its last resort).
    Controller,
}

/// How the filesystem holding a loop device's image was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackingMatch {
    /// The path is proven to be the loop device's file (same device and inode); its mount from
    /// its mount id.
    DevIno,
    /// By the device number the loop device reports (the path is not, or no longer, that file).
    Device,
    /// By the path text alone (a `--root` that is not the running system).
    PathPrefix,
    /// Not found (not mounted here, or the loop device could not be asked).
    Unknown,
}

/// One image file under a loop-backed filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackingImage {
    /// The image file, as the loop driver reports it.
    pub file: String,
    /// The loop device reading it (`loop0`).
    #[serde(rename = "loop")]
    pub loop_device: String,
    /// A mount point of the filesystem holding it (frozen after this one), when known.
    pub mount: Option<String>,
    pub matched_by: BackingMatch,
}

/// One mount point in a freeze-test or freeze document.
#[derive(Debug, Clone, Serialize)]
pub struct MountVerdict {
    pub mountpoint: String,
    /// The block device (or mount source) behind it.
    pub device: Option<String>,
    pub fstype: String,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub reason: String,
    /// The errno name (`EBUSY`, `EOPNOTSUPP`, ...) when a call failed.
    pub errno: Option<String>,
    /// Set when this mount is another mount of a superblock listed under that mount point.
    pub duplicate_of: Option<String>,
    /// For a loop-backed filesystem: its (first) image file; all of them are in `backing`.
    pub backing_file: Option<String>,
    /// For a loop-backed filesystem: the mount point holding its (first) image (frozen after it).
    pub backing_mount: Option<String>,
    /// Every image file under a loop-backed filesystem (several through dm/md); empty otherwise.
    pub backing: Vec<BackingImage>,
    /// The pre-freeze sync (all its passes).
    pub sync_ms: Option<f64>,
    /// How many syncfs passes it took to converge.
    pub sync_passes: Option<u32>,
    /// FIFREEZE call.
    pub freeze_ms: Option<f64>,
    /// From FIFREEZE's return to FITHAW's call.
    pub frozen_ms: Option<f64>,
    /// FITHAW call.
    pub thaw_ms: Option<f64>,
    /// FIFREEZE return, in ms since the command started (freeze order).
    pub frozen_at_ms: Option<f64>,
    /// FITHAW return, in ms since the command started (thaw order).
    pub thawed_at_ms: Option<f64>,
    /// Who thawed it, when it was frozen.
    pub thawed_by: Option<ThawedBy>,
    /// Why it was thawed when it was (at snapguard's request, the deadline, a signal, ...).
    pub thaw_reason: Option<String>,
}

impl MountVerdict {
    /// A row with only the identity and a verdict.
    pub fn new(
        mountpoint: impl Into<String>,
        device: Option<String>,
        fstype: impl Into<String>,
        verdict: Verdict,
        reason: impl Into<String>,
    ) -> Self {
        MountVerdict {
            mountpoint: mountpoint.into(),
            device,
            fstype: fstype.into(),
            verdict,
            reason: reason.into(),
            errno: None,
            duplicate_of: None,
            backing_file: None,
            backing_mount: None,
            backing: Vec::new(),
            sync_ms: None,
            sync_passes: None,
            freeze_ms: None,
            frozen_ms: None,
            thaw_ms: None,
            frozen_at_ms: None,
            thawed_at_ms: None,
            thawed_by: None,
            thaw_reason: None,
        }
    }
}

/// Summary over mount rows: freezable → ok, failed → critical, everything else → warning.
pub fn verdict_summary(mounts: &[MountVerdict]) -> Summary {
    let mut summary = Summary::default();
    for m in mounts {
        summary.add(m.verdict.status());
    }
    summary
}

/// The `freeze-test` document.
#[derive(Debug, Clone, Serialize)]
pub struct FreezeTestReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub summary: Summary,
    /// Static verdicts only: nothing was frozen.
    pub probe_only: bool,
    /// The guardian's self-thaw deadline for each test freeze.
    pub timeout_ms: u64,
    pub mounts: Vec<MountVerdict>,
    /// Notes on the run (the guardian's limits, a lost guardian).
    pub messages: Vec<String>,
}

impl FreezeTestReport {
    /// Build the document and its summary.
    pub fn new(probe_only: bool, timeout_ms: u64, mounts: Vec<MountVerdict>) -> Self {
        FreezeTestReport {
            schema_version: SCHEMA_VERSION,
            command: "freeze-test",
            summary: verdict_summary(&mounts),
            probe_only,
            timeout_ms,
            mounts,
            messages: Vec::new(),
        }
    }
}

/// How a `freeze -- CMD` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeOutcome {
    /// Everything froze, CMD ran, everything thawed before the deadline.
    Completed,
    /// The deadline passed: the guardian thawed, CMD was terminated.
    Timeout,
    /// SIGTERM, SIGINT or SIGHUP reached snapguard while frozen: thawed at once.
    Interrupted,
    /// A mount could not be frozen: what was frozen was thawed, CMD did not run.
    FreezeFailed,
    /// A hook was refused, failed or timed out on `freeze`: nothing frozen, CMD did not run.
    HookFailed,
    /// CMD could not be started (not found, not executable).
    CommandFailed,
    /// A thaw failed (something may still be frozen), or a thaw hook failed.
    ThawFailed,
    /// The guardian thawed on its own (a signal to it) before CMD ended: the snapshot window was
    /// broken, CMD's status is not passed through.
    WindowBroken,
    /// The guardian could not start, died or stopped answering: snapguard thawed by itself
    /// what it had reported frozen.
    GuardianLost,
}

/// One hook execution.
#[derive(Debug, Clone, Serialize)]
pub struct HookRun {
    pub path: String,
    /// `freeze` or `thaw`.
    pub phase: &'static str,
    /// `ok`, `failed`, `timeout`, `refused` or `error` (could not start).
    pub result: &'static str,
    pub exit_code: Option<i32>,
    pub duration_ms: f64,
    pub detail: Option<String>,
}

/// What CMD did.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRun {
    pub argv: Vec<String>,
    pub pid: Option<u32>,
    /// Its exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// snapguard sent it SIGTERM (deadline or interruption), SIGKILL after the grace period.
    pub terminated: bool,
    pub duration_ms: f64,
    /// Why it could not start.
    pub error: Option<String>,
}

/// The `freeze` document.
#[derive(Debug, Clone, Serialize)]
pub struct FreezeReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub summary: Summary,
    pub outcome: FreezeOutcome,
    /// The exit code of this run (see `snapguard freeze --help`).
    pub exit_code: u8,
    pub timeout_ms: u64,
    /// First FIFREEZE call to last FITHAW return.
    pub window_ms: Option<f64>,
    pub mounts: Vec<MountVerdict>,
    pub hooks: Vec<HookRun>,
    pub cmd: Option<CommandRun>,
    /// Notes on what happened (guardian reports, signals), in order.
    pub messages: Vec<String>,
    /// Mount points this run froze that may still be frozen (a failed FITHAW, or the guardian
    /// died inside FIFREEZE): `snapguard thaw` them.
    pub still_frozen: Vec<String>,
    /// One line: why the run did not complete (null when it did).
    pub reason: Option<String>,
}

/// What `thaw` did to one mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThawResult {
    /// FITHAW succeeded.
    Thawed,
    /// FITHAW said EINVAL: it was not frozen.
    NotFrozen,
    /// Not touched (not snapguard's, or its owner is still running); the reason says how.
    Skipped,
    /// FITHAW failed, or the mount could not be opened.
    Failed,
}

impl ThawResult {
    /// Status: thawed / not-frozen → ok, skipped → warning, failed → critical.
    pub fn status(self) -> Status {
        match self {
            ThawResult::Thawed | ThawResult::NotFrozen => Status::Ok,
            ThawResult::Skipped => Status::Warning,
            ThawResult::Failed => Status::Critical,
        }
    }

    /// The JSON spelling.
    pub fn label(self) -> &'static str {
        match self {
            ThawResult::Thawed => "thawed",
            ThawResult::NotFrozen => "not-frozen",
            ThawResult::Skipped => "skipped",
            ThawResult::Failed => "failed",
        }
    }
}

/// One mount point in a thaw document.
#[derive(Debug, Clone, Serialize)]
pub struct ThawEntry {
    pub mountpoint: String,
    pub result: ThawResult,
    pub reason: String,
    pub errno: Option<String>,
    /// The record this entry came from (`/run/snapguard/freeze-PID.json`), if any.
    pub record: Option<String>,
}

/// The `thaw` document.
#[derive(Debug, Clone, Serialize)]
pub struct ThawReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub summary: Summary,
    pub mounts: Vec<ThawEntry>,
    /// Notes (a kernel knob a dead run left changed, put back).
    pub messages: Vec<String>,
}

impl ThawReport {
    /// Build the document and its summary.
    pub fn new(mounts: Vec<ThawEntry>) -> Self {
        let mut summary = Summary::default();
        for m in &mounts {
            summary.add(m.result.status());
        }
        ThawReport {
            schema_version: SCHEMA_VERSION,
            command: "thaw",
            summary,
            mounts,
            messages: Vec::new(),
        }
    }
}
// ---- end freeze-test, freeze, thaw ------------------------------------------------------------

// --- `snapguard selinux` ------------------------------------------------------------------
// Keep in sync with `docs/json-schema/selinux-v1.schema.json`.

/// The outcome of one `snapguard selinux` check. Ordered `Skip < Pass < Warn < Fail`, so the
/// maximum is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Not applicable here, or its inputs could not be read; does not affect the exit code.
    Skip,
    /// Nothing in the way.
    Pass,
    /// Worth fixing, or would block once enforcing; exit 1.
    Warn,
    /// Blocks the agent or the backup extension now; exit 2.
    Fail,
}

impl CheckStatus {
    /// Upper-case label for human output.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Skip => "SKIP",
            CheckStatus::Pass => "PASS",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One check of `snapguard selinux`: stable id, status, one-line message, remedy command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable identifier: `S1`…`S11` (SELinux, selinux.md §8), `L1`…`L3` (look-alikes).
    pub id: &'static str,
    /// Short name of what is checked (`agent domain`).
    pub title: &'static str,
    /// pass, warn, fail or skip.
    pub status: CheckStatus,
    /// One line, no trailing period.
    pub message: String,
    /// The exact command that fixes it, least privilege first; null when there is none.
    pub remedy: Option<String>,
    /// Evidence, one item a line (processes, files, denials); may be empty.
    pub details: Vec<String>,
    /// Skipped because its inputs exist but could not be read (permissions): the report's
    /// `unreadable` list, and "cannot tell" when the check decides the verdict.
    #[serde(skip)]
    pub unreadable: bool,
}

impl Check {
    /// A check with a status and message, no remedy, no details.
    pub fn new(
        id: &'static str,
        title: &'static str,
        status: CheckStatus,
        message: impl Into<String>,
    ) -> Self {
        Check {
            id,
            title,
            status,
            message: message.into(),
            remedy: None,
            details: Vec::new(),
            unreadable: false,
        }
    }

    /// A check skipped because its inputs could not be read (not root, a root-only file).
    pub fn cannot_read(id: &'static str, title: &'static str, message: impl Into<String>) -> Self {
        Check {
            unreadable: true,
            ..Check::new(id, title, CheckStatus::Skip, message)
        }
    }

    /// Attach the remedy command.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    /// Attach evidence lines.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }
}

/// Counts of checks by status, under the contract's summary keys (DESIGN.md §1): `ok` =
/// pass, `warning` = warn, `critical` = fail, `unknown` = skip (not applicable or not
/// readable; skips never change the exit code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckSummary {
    #[serde(rename = "ok")]
    pub pass: usize,
    #[serde(rename = "warning")]
    pub warn: usize,
    #[serde(rename = "critical")]
    pub fail: usize,
    #[serde(rename = "unknown")]
    pub skip: usize,
}

impl CheckSummary {
    /// Count `checks`.
    pub fn of(checks: &[Check]) -> Self {
        let mut s = CheckSummary::default();
        for c in checks {
            match c.status {
                CheckStatus::Pass => s.pass += 1,
                CheckStatus::Warn => s.warn += 1,
                CheckStatus::Fail => s.fail += 1,
                CheckStatus::Skip => s.skip += 1,
            }
        }
        s
    }

    /// The run's status: any fail is critical, else any warn is a warning; skips do not count.
    pub fn status(&self) -> Status {
        if self.fail > 0 {
            Status::Critical
        } else if self.warn > 0 {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

/// SELinux as found (runtime state, or the configured mode for an offline root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelinuxMode {
    /// Not in the kernel, not an active LSM, or `selinux=0`.
    Absent,
    /// In the kernel but no policy loaded (selinuxfs not mounted), or disabled in the config
    /// of an offline root.
    Disabled,
    /// Denials are logged, not enforced.
    Permissive,
    /// Denials are enforced.
    Enforcing,
    /// selinuxfs is mounted read-only: a container, whose host decides.
    Container,
    /// The mode could not be read (`/sys/fs/selinux/enforce`, or an offline root's
    /// `/etc/selinux/config`, not readable): the verdict is "cannot tell".
    Unknown,
}

/// The `snapguard selinux` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelinuxReport {
    pub schema_version: u32,
    /// Always `selinux`.
    pub command: &'static str,
    /// The directory read as `/` (`--root`).
    pub root: String,
    /// True when the root has no `/proc` (an offline disk): the mode is the configured one
    /// and the process checks are skipped.
    pub offline: bool,
    /// SELinux mode as found.
    pub mode: SelinuxMode,
    /// `SELINUXTYPE` (`targeted`, `mls`, `default`, ...), null when SELinux is absent.
    pub policy_type: Option<String>,
    /// The exit code's status: critical (2) when a check fails, else unknown (3) when the
    /// verdict cannot be told, else warning (1) when a check warns, else ok (0).
    pub status: Status,
    /// Counts of checks by status.
    pub summary: CheckSummary,
    /// True when nothing SELinux does keeps the agent from working: SELinux is not
    /// enforcing, or the unconfined module is there (S5), the agent runs unconfined or
    /// permissive (S6), no label under /var/lib/waagent is broken (S8) and no agent denial
    /// was enforced (S9). Look-alikes (L*) are not part of it. `None` ("cannot tell") when
    /// a check that decides it could not read its inputs and nothing else settles it.
    pub excluded: Option<bool>,
    /// One line: excluded, not excluded, or cannot tell, and why.
    pub verdict: String,
    /// Ids of the checks skipped because their inputs could not be read (needs root).
    pub unreadable: Vec<&'static str>,
    /// S1…S11, then L1…L3, in that order.
    pub checks: Vec<Check>,
}
