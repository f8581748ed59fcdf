//! `snapguard scan`: find unclean filesystems with the semantics of tune2fs and e2fsck.
//!
//! Flow: resolve targets (devices, images, mount points, or every mounted block
//! filesystem) → open read-only → split whole disks into partitions → identify each
//! volume → assess it (ext, XFS, btrfs, FAT, exFAT, f2fs) → one [`TargetReport`] each.

pub mod btrfs;
pub mod disk;
pub mod e2fsck_sim;
pub mod exfat;
pub mod ext;
pub mod f2fs;
pub mod fat;
pub mod fsck_reason;
pub mod inuse;
pub mod journal;
pub mod live;
pub mod remedy;
pub mod severity;
pub mod target;
pub mod volume;
pub mod workers;
pub mod xfs;

use crate::fs::signature::{self, Content};
use crate::mount::table::{MountTable, SuperblockMounts};
use crate::report::{Context, PartitionRef, ScanReport, Status, TargetReport};
use crate::root::{MOUNTINFO, SysRoot};
use crate::sys::SourceFile;
use anyhow::Context as _;
use remedy::Location;
use std::path::PathBuf;
use target::Resolved;
use volume::{Volume, VolumeScan};

/// What is read first to identify a volume: enough for ext, XFS, LUKS, LVM2, 4 KiB-page
/// swap, FAT, f2fs (both superblock copies end at 8 KiB), and MBR/GPT with 512- or
/// 4096-byte sectors.
const IDENTIFY_FIRST: usize = 8 * 1024;
/// What is read when that is not enough (btrfs's superblock sits at 64 KiB, swap on
/// 64 KiB pages at 64 KiB - 10).
const IDENTIFY_MORE: usize = 128 * 1024;

/// What the admin says an image is a copy of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Snapshot {
    /// A crash-consistent copy of a running system (no freeze).
    Crash,
    /// A copy taken while the filesystems were frozen.
    Frozen,
}

/// The scan request.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Devices, images or mount points; empty = every mounted block filesystem.
    pub targets: Vec<PathBuf>,
    /// Context for images and unmounted devices.
    pub snapshot: Option<Snapshot>,
    /// Unix time used for the check-interval rules.
    pub now: i64,
    /// Filesystem types left out when no TARGET is given (configuration).
    pub skip_fstypes: Vec<String>,
    /// Mount points left out when no TARGET is given (configuration).
    pub skip_mountpoints: Vec<String>,
}

/// One line per target that could not even be opened, for stderr.
pub type Problems = Vec<String>;

/// Run the scan. `Err` only when nothing can run at all (no mount table to list).
pub fn run(options: &ScanOptions, root: &SysRoot) -> anyhow::Result<(ScanReport, Problems)> {
    let mountinfo_path = root.path(MOUNTINFO);
    let table = match read_proc_file(&mountinfo_path) {
        Ok(text) => MountTable::from_mountinfo(&text).with_context(|| {
            format!(
                "cannot parse the mount table '{}'",
                mountinfo_path.display()
            )
        })?,
        Err(e) if options.targets.is_empty() => {
            return Err(e).with_context(|| {
                format!("cannot read the mount table '{}'", mountinfo_path.display())
            });
        }
        Err(e) => {
            tracing::warn!(
                "cannot read '{}': {}; mount points cannot be resolved",
                mountinfo_path.display(),
                crate::sys::describe_io(&e)
            );
            MountTable::default()
        }
    };

    let mut problems = Vec::new();
    // Read once, for the first image, and shared by the rest (and by no device target).
    let loops = inuse::LoopDevices::new(root);
    let resolved: Vec<Result<Resolved, (String, String)>> = if options.targets.is_empty() {
        let all = target::mounted_block_filesystems(&table);
        let total = all.len();
        let kept: Vec<_> = all
            .into_iter()
            .filter(|r| !is_skipped(r, options))
            .map(Ok)
            .collect();
        if kept.is_empty() {
            problems.push(if total == 0 {
                "nothing to scan: no block-backed filesystem is mounted".to_string()
            } else {
                format!(
                    "nothing to scan: all {total} mounted block filesystems are skipped by the configuration (skip_fstypes, skip_mountpoints)"
                )
            });
        }
        kept
    } else {
        options
            .targets
            .iter()
            .map(|t| {
                target::resolve(t, &table, root, &loops).map_err(|e| (t.display().to_string(), e.0))
            })
            .collect()
    };
    // The targets are independent: scanned on every core, reported in their order.
    let scanned = workers::map_in_order(&resolved, |item| {
        let mut reports = Vec::new();
        let mut problems = Vec::new();
        match item {
            Ok(resolved) => {
                scan_resolved(resolved, options, root, &mut reports, &mut problems);
                if resolved.mounts.is_none()
                    && let Some(holder) = &resolved.in_use
                {
                    withhold_offline_remedies(&mut reports, holder);
                }
            }
            Err((name, message)) => {
                problems.push(message.clone());
                reports.push(unscannable_report(name, message.clone(), &table, options));
            }
        }
        (reports, problems)
    });
    let mut reports = Vec::with_capacity(scanned.len());
    for (target_reports, target_problems) in scanned {
        reports.extend(target_reports);
        problems.extend(target_problems);
    }
    Ok((ScanReport::new(reports), problems))
}

/// Read a `/proc` file whole. Such files report a size of 0, so `fs::read` starts with a
/// 32-byte read and doubles (eight system calls for a small mount table): one 64 KiB buffer
/// takes a typical mount table in one.
fn read_proc_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(64 * 1024);
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether the configuration leaves this mounted filesystem out of a scan of everything.
fn is_skipped(resolved: &Resolved, options: &ScanOptions) -> bool {
    let Some(mounts) = &resolved.mounts else {
        return false;
    };
    let mount_point = mounts.primary.mount_point.to_string_lossy();
    let skipped = options.skip_fstypes.contains(&mounts.primary.fs_type)
        || options.skip_mountpoints.iter().any(|m| *m == mount_point);
    if skipped {
        tracing::info!(
            "skipping '{mount_point}' ({}): excluded by the configuration",
            mounts.primary.fs_type
        );
    }
    skipped
}

/// The report of a TARGET that cannot be scanned; a mount point (tmpfs, nfs, ...) is
/// reported for what it is: its type, where it is mounted, live.
fn unscannable_report(
    name: &str,
    message: String,
    table: &MountTable,
    options: &ScanOptions,
) -> TargetReport {
    let mount = std::fs::canonicalize(name)
        .ok()
        .and_then(|p| table.by_mount_point(&p).cloned());
    let Some(mount) = mount else {
        return unassessable(name.to_string(), context_for(None, false, options), message);
    };
    let mut report = unassessable(name.to_string(), Context::Live, message);
    report.fstype = Some(mount.fs_type.clone());
    report.mountpoint = Some(mount.mount_point.display().to_string());
    if let Some(source) = &mount.source {
        report.device = Some(source.to_string_lossy().into_owned());
    }
    report
}

/// A target in use through a mounted stack (an image behind a loop device whose partition is
/// mounted, a disk whose partition is): its remedies would be offline checkers (`e2fsck -p IMG`,
/// `losetup --offset … && e2fsck`) writing under a mounted filesystem. None is printed; the
/// message says to fix it through the mount instead.
fn withhold_offline_remedies(reports: &mut [TargetReport], holder: &str) {
    for finding in reports.iter_mut().flat_map(|r| r.findings.iter_mut()) {
        if finding.remedy.take().is_some() {
            finding.message.push_str(&format!(
                "; no fix printed here: this is in use ({holder}), so an offline checker would write under a mounted filesystem: fix it through its mount point (snapguard repair MOUNT)"
            ));
        }
    }
}

fn context_for(mounts: Option<&SuperblockMounts>, in_use: bool, options: &ScanOptions) -> Context {
    match (mounts, options.snapshot) {
        (Some(_), _) => Context::Live,
        (None, _) if in_use => Context::Live,
        (None, Some(Snapshot::Crash)) => Context::Crash,
        (None, Some(Snapshot::Frozen)) => Context::Frozen,
        (None, None) => Context::Offline,
    }
}

fn unassessable(name: String, context: Context, message: String) -> TargetReport {
    let mut report = TargetReport::new(name, context);
    report.status = Status::Unknown;
    report.error = Some(message);
    report
}

fn scan_resolved(
    resolved: &Resolved,
    options: &ScanOptions,
    root: &SysRoot,
    reports: &mut Vec<TargetReport>,
    problems: &mut Problems,
) {
    let context = context_for(resolved.mounts.as_ref(), resolved.in_use.is_some(), options);
    let mut base = TargetReport::new(resolved.name.clone(), context);
    if let Some(holder) = &resolved.in_use {
        // As e2fsck warns "is mounted": the data is changing under the reader.
        base.findings.push(severity::SCAN_IN_USE.finding(
            context,
            format!("in use: {holder}; judged as a live filesystem, not an offline copy"),
        ));
    }
    if resolved.is_device {
        base.device = Some(resolved.path.display().to_string());
    }
    if let Some(mounts) = &resolved.mounts {
        base.mountpoint = Some(mounts.primary.mount_point.display().to_string());
        base.other_mountpoints = mounts
            .others
            .iter()
            .map(|m| m.mount_point.display().to_string())
            .collect();
        base.fstype = Some(mounts.primary.fs_type.clone());
    }
    let fail = |mut report: TargetReport, message: String, problems: &mut Problems| {
        problems.push(message.clone());
        report.status = Status::Unknown;
        report.error = Some(message);
        report
    };

    let live = resolved.mounts.as_ref().and_then(|m| {
        let name = live::kernel_name(root, m.major, m.minor)?;
        live::ext4_errors(root, &name)
    });
    let source = match SourceFile::open(&resolved.path) {
        Ok(source) => source,
        Err(e) => {
            let mut report = fail(
                base,
                format!("cannot scan '{}': {e}", resolved.name),
                problems,
            );
            if let (Some(live), Some(location)) = (live, mounted_location(resolved, root)) {
                // The device cannot be read (a container's device cgroup, say), but the
                // kernel's own error counters still tell whether errors happened since mount.
                ext::assess_live_only(live, &location, &mut report);
            }
            reports.push(report);
            return;
        }
    };
    if source.size() == 0 {
        reports.push(fail(
            base,
            format!("cannot scan '{}': it is empty (0 bytes)", resolved.name),
            problems,
        ));
        return;
    }
    let whole = match disk::unwrap_container(&source) {
        Ok((volume, note)) => {
            if let Some(note) = note {
                base.findings.push(note);
            }
            volume
        }
        Err(message) => {
            reports.push(fail(
                base,
                format!("cannot scan '{}': {message}", resolved.name),
                problems,
            ));
            return;
        }
    };
    let (content, head) = match identify_volume(&whole) {
        Ok(found) => found,
        Err(e) => {
            reports.push(fail(
                base,
                format!("cannot read '{}': {e}", resolved.name),
                problems,
            ));
            return;
        }
    };
    if matches!(content, Content::Mbr | Content::Gpt) {
        match disk::partitions(&whole, &head) {
            Ok(parts) if !parts.is_empty() => {
                for part in parts {
                    let volume = whole.slice(part.offset, part.size);
                    let mut report = base.clone();
                    report.target = format!("{}#p{}", resolved.name, part.index);
                    report.partition = Some(PartitionRef {
                        index: part.index,
                        scheme: part.scheme,
                        offset: part.offset,
                        size: part.size,
                    });
                    let location = if resolved.is_device {
                        Location::Device(remedy::operand(&disk::partition_device_name(
                            &resolved.path.display().to_string(),
                            part.index,
                        )))
                    } else {
                        Location::ImagePartition {
                            image: remedy::operand(&resolved.name),
                            index: part.index,
                            offset: part.offset,
                            size: part.size,
                        }
                    };
                    let content = identify_volume(&volume).map_or(Content::Unknown, |(c, _)| c);
                    assess_volume(volume, content, true, location, None, options, &mut report);
                    reports.push(report);
                }
            }
            Ok(_) => reports.push(fail(
                base,
                format!(
                    "cannot scan '{}': the partition table has no partitions",
                    resolved.name
                ),
                problems,
            )),
            Err(message) => reports.push(fail(
                base,
                format!("cannot scan '{}': {message}", resolved.name),
                problems,
            )),
        }
        return;
    }

    let location = match mounted_location(resolved, root) {
        Some(location) => location,
        None if resolved.is_device => Location::Device(remedy::operand(&resolved.name)),
        None => Location::Image(remedy::operand(&resolved.name)),
    };
    let mut report = base;
    let mounted = resolved.mounts.as_ref().map(|_| Mounted {
        ext4_errors: live,
        sys: root,
    });
    assess_volume(
        whole,
        content,
        false,
        location,
        mounted,
        options,
        &mut report,
    );
    if report.status == Status::Unknown {
        if let Some(error) = &report.error {
            problems.push(format!("cannot assess '{}': {error}", resolved.name));
        } else if let Some(first) = report.findings.first() {
            problems.push(format!(
                "cannot assess '{}': {}",
                resolved.name, first.message
            ));
        }
    }
    reports.push(report);
}

fn mounted_location(resolved: &Resolved, root: &SysRoot) -> Option<Location> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let m = resolved.mounts.as_ref()?;
    let primary = &m.primary;
    let options = remedy::remount_options(primary);
    // An autoclear loop device (mount -o loop) is gone after umount: name the image. The
    // device number is the node's (btrfs reports an anonymous 0:N in mountinfo).
    let (major, minor) = std::fs::metadata(&resolved.path)
        .ok()
        .filter(|meta| meta.file_type().is_block_device())
        .map_or((m.major, m.minor), |meta| {
            let rdev = meta.rdev();
            (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            )
        });
    let loop_image = inuse::loop_info(root, major, minor)
        .filter(|l| l.autoclear && l.offset == 0 && !l.backing_file.is_empty())
        .map(|l| l.backing_file);
    Some(Location::Mounted {
        device: resolved.path.display().to_string(),
        mountpoint: primary.mount_point.display().to_string(),
        is_root: primary.mount_point == std::path::Path::new("/"),
        remount: Some(remedy::Remount {
            fstype: primary.fs_type.clone(),
            options,
            loop_image,
        }),
    })
}

/// What is known about a volume because it is mounted on this machine right now.
struct Mounted<'a> {
    /// The ext4 error counters from `/sys/fs/ext4/<dev>/`.
    ext4_errors: Option<crate::report::LiveErrors>,
    /// Where the btrfs device error counters are read (`/sys/fs/btrfs/<fsid>/`).
    sys: &'a SysRoot,
}

fn assess_volume(
    volume: Volume<'_>,
    content: Content,
    is_partition: bool,
    location: Location,
    mounted: Option<Mounted<'_>>,
    options: &ScanOptions,
    report: &mut TargetReport,
) {
    let (live, sys) = match mounted {
        Some(m) => (m.ext4_errors, Some(m.sys)),
        None => (None, None),
    };
    let context = report.context;
    match content {
        Content::Ext => {
            let scan = ext::ExtScan {
                volume,
                context,
                location,
                live,
                now: options.now,
            };
            ext::assess(&scan, report);
        }
        Content::Xfs => xfs::assess(
            &VolumeScan {
                volume,
                context,
                location,
            },
            report,
        ),
        Content::Btrfs => {
            let scan = btrfs::BtrfsScan {
                volume,
                context,
                location,
                sys,
            };
            btrfs::assess(&scan, report);
        }
        Content::Fat => fat::assess(
            &VolumeScan {
                volume,
                context,
                location,
            },
            report,
        ),
        Content::ExFat => exfat::assess(
            &VolumeScan {
                volume,
                context,
                location,
            },
            report,
        ),
        Content::F2fs => f2fs::assess(
            &VolumeScan {
                volume,
                context,
                location,
            },
            report,
        ),
        Content::Lvm2Pv | Content::Luks { .. } | Content::Swap => {
            report.fstype = Some(fstype_of(&content).to_string());
            report.findings.push(severity::DISK_NOT_SCANNED.finding(
                context,
                format!("{}: not a filesystem, not scanned", content.describe()),
            ));
            report.finish();
        }
        Content::Unknown if is_partition => {
            report.findings.push(severity::DISK_NOT_SCANNED.finding(
                context,
                "no known filesystem signature: unknown contents, not scanned",
            ));
            report.finish();
        }
        Content::Unknown => {
            report.status = Status::Unknown;
            report.error =
                Some("no known filesystem, partition table or volume signature".to_string());
        }
        other => {
            report.fstype = Some(fstype_of(&other).to_string());
            report.status = Status::Unknown;
            report.error = Some(format!(
                "{} is not supported by this version of snapguard scan",
                other.describe()
            ));
        }
    }
}

/// Run one assessor's body: name the filesystem type, turn an error the body could not get
/// past (an unreadable block) into an `unknown` status with its message, then derive the
/// status from the findings.
pub(crate) fn assess_with(
    report: &mut TargetReport,
    fstype: &str,
    body: impl FnOnce(&mut TargetReport) -> Result<(), String>,
) {
    report.fstype = Some(fstype.to_string());
    if let Err(error) = body(report) {
        report.status = Status::Unknown;
        report.error = Some(error);
    }
    report.finish();
}

/// Record that the volume is shorter than the filesystem needs (`needed` says what needs
/// how much): a truncated image or a wrong partition table. Blocks past the end are missing,
/// not corrupt, so the target cannot be assessed: its status becomes `unknown`.
pub(crate) fn report_truncated(
    report: &mut TargetReport,
    rule: &severity::Rule,
    location: &Location,
    size: u64,
    needed: impl std::fmt::Display,
) {
    report.status = Status::Unknown;
    report.findings.push(rule.finding(
        report.context,
        format!(
            "{needed} but the {} holds only {size} bytes: truncated image or wrong partition table",
            location.medium()
        ),
    ));
}

/// Identify a volume from its first bytes, reading more only when the first read is not
/// conclusive; also returns the bytes read.
fn identify_volume(volume: &Volume<'_>) -> std::io::Result<(Content, Vec<u8>)> {
    let head = volume.read_at(0, IDENTIFY_FIRST)?;
    let content = identify(&head);
    if content != Content::Unknown || volume.size() <= IDENTIFY_FIRST as u64 {
        return Ok((content, head));
    }
    let head = volume.read_at(0, IDENTIFY_MORE)?;
    Ok((identify(&head), head))
}

/// Identify a volume; an ext magic alone is enough for the ext assessment, which reports
/// a damaged superblock itself rather than calling the volume unknown.
fn identify(head: &[u8]) -> Content {
    match signature::identify(head) {
        Content::Unknown if head.get(1080..1082) == Some(&[0x53, 0xEF][..]) => Content::Ext,
        content => content,
    }
}

fn fstype_of(content: &Content) -> &'static str {
    match content {
        Content::Ext => "ext4",
        Content::Xfs => "xfs",
        Content::Btrfs => "btrfs",
        Content::Fat => "vfat",
        Content::ExFat => "exfat",
        Content::F2fs => "f2fs",
        Content::Ntfs => "ntfs",
        Content::Lvm2Pv => "lvm2",
        Content::Luks { .. } => "luks",
        Content::Swap => "swap",
        _ => "unknown",
    }
}

/// Assess one image file as if it had been captured in `context`, without a mount table:
/// what the severity tests use to put every row of [`severity::TABLE`] through every
/// context. `live` stands for the ext4 counters of a mounted filesystem (reported alone when
/// the image cannot be opened, as for an unreadable mounted device) and `sys` for the root
/// whose `/sys/fs/btrfs` holds the btrfs device counters.
pub fn assess_image(
    path: &std::path::Path,
    context: Context,
    now: i64,
    live: Option<crate::report::LiveErrors>,
    sys: Option<&SysRoot>,
) -> TargetReport {
    let name = path.display().to_string();
    let mut report = TargetReport::new(name.clone(), context);
    let source = match SourceFile::open(path) {
        Ok(source) => source,
        Err(e) => {
            report.status = Status::Unknown;
            report.error = Some(format!("cannot scan '{name}': {e}"));
            if let Some(live) = live {
                ext::assess_live_only(live, &Location::Image(name), &mut report);
            }
            return report;
        }
    };
    let whole = match disk::unwrap_container(&source) {
        Ok((volume, note)) => {
            report.findings.extend(note);
            volume
        }
        Err(message) => return unassessable(name, context, message),
    };
    let content = match identify_volume(&whole) {
        Ok((content, _)) => content,
        Err(e) => return unassessable(name, context, e.to_string()),
    };
    let options = ScanOptions {
        targets: Vec::new(),
        snapshot: None,
        now,
        skip_fstypes: Vec::new(),
        skip_mountpoints: Vec::new(),
    };
    let no_sys = SysRoot::new("/nonexistent/snapguard-assess-image");
    let mounted = (live.is_some() || sys.is_some()).then(|| Mounted {
        ext4_errors: live,
        sys: sys.unwrap_or(&no_sys),
    });
    assess_volume(
        whole,
        content,
        false,
        Location::Image(name),
        mounted,
        &options,
        &mut report,
    );
    report
}
