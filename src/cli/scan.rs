//! `snapguard scan`: arguments and glue to [`crate::scan`].

use super::{Cli, Outcome};
use crate::config::Config;
use crate::report;
use crate::scan::{self, ScanOptions, Snapshot};
use clap::Args;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub const SCAN_HELP: &str = "\
Reads superblocks directly (read-only opens, nothing is written, no external tools) and
reports, for each filesystem, whether a snapshot of it would be consistent, plus findings
with the command that fixes each:
  ext2/3/4  the state exactly as `tune2fs -l` prints it, whether the journal needs
            recovery, the reason `e2fsck -n` would give for forcing a check, error history
  XFS       CRC, inprogress, NEEDSREPAIR, and a dirty log (head/tail as xfs_logprint -t)
  btrfs     checksums (with the mirrors), ERROR and interrupted-operation flags, a pending
            fsync log, and the device error counters of a mounted btrfs
  FAT/exFAT the dirty and error bits
  f2fs      both superblocks (CRC), the current checkpoint pack and its flags as
            fsck.f2fs names them, the stop reasons and errors the kernel recorded

TARGET may be a block device, an image file (a bare filesystem, an MBR or GPT whole-disk
image whose partitions are scanned one by one as IMAGE#pN, or a fixed VHD), or a mount
point. Without TARGET, every mounted filesystem backed by a block device is scanned,
each superblock once (bind mounts are listed with it).

A mounted filesystem is scanned `live` (the journal is expected to be in use, and the
kernel's error counters in /sys are read too); an unmounted device or image is `offline`
(it should have been cleanly unmounted). Use --snapshot for an image that is a copy of a
running system: a journal or log to replay is normal in a crash copy, and a red flag in a
frozen copy of ext4 or btrfs (a frozen XFS keeps a dirty log). Recorded errors are critical
in every context.

Needs read access to the devices (root, or the disk group). Safe on mounted filesystems.

Examples:
  snapguard scan                          every mounted block filesystem
  snapguard scan /data /dev/sdc1          a mount point and a device
  snapguard scan --snapshot frozen vm.img a disk image copied while frozen
  snapguard scan --json | jq '.targets[] | select(.status != \"ok\")'";

/// Exit codes of `snapguard scan`.
pub const SCAN_EXIT_HELP: &str = "\
Exit status (the Nagios convention; the worst target decides):
  0  OK        every target is clean (ext2/3/4, XFS, btrfs, FAT, exFAT, f2fs)
  1  WARNING   the worst finding is a warning
  2  CRITICAL  at least one critical finding (recorded errors, corrupt superblock)
  3  UNKNOWN   could not assess: bad usage or configuration, unreadable or truncated target,
               unknown filesystem, features or checksum type, a TARGET that is
               not a block filesystem (tmpfs, FIFO, socket, directory),
               nothing to scan (every mount skipped by the configuration, no block
               filesystem mounted)
When targets differ, CRITICAL beats UNKNOWN beats WARNING beats OK.
A broken pipe on standard output is not an error.";

/// Arguments of `snapguard scan`.
#[derive(Debug, Args)]
#[command(long_about = SCAN_HELP, after_long_help = SCAN_EXIT_HELP)]
pub struct ScanArgs {
    /// What the images or unmounted devices are copies of: a crash-consistent copy of a
    /// running system, or a copy taken while frozen. Without it they are assumed to have
    /// been cleanly unmounted. Ignored for mounted filesystems, which are always live.
    #[arg(long, value_enum, value_name = "KIND")]
    pub snapshot: Option<Snapshot>,
    /// Block devices, image files or mount points [default: every mounted block filesystem].
    #[arg(value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
}

/// Run the scan and package the report.
pub fn run(args: &ScanArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    let (report, problems) = report_of(&args.targets, args.snapshot, &cli.sys_root(), config)?;
    let exit_code = exit_code(&report);
    let format = cli.output_format();
    Ok(Outcome {
        render: Box::new(move |out| report::write_scan(&report, format, out)),
        problems,
        exit_code,
    })
}

/// The scan report of `targets` (none: every mounted block filesystem, minus the
/// configuration's `[scan]` skips), and one line per target that could not be opened.
/// Nothing is printed (`preflight` embeds it).
pub fn report_of(
    targets: &[PathBuf],
    snapshot: Option<Snapshot>,
    root: &crate::root::SysRoot,
    config: &Config,
) -> anyhow::Result<(crate::report::ScanReport, scan::Problems)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let options = ScanOptions {
        targets: targets.to_vec(),
        snapshot,
        now,
        skip_fstypes: config.scan.skip_fstypes.clone(),
        skip_mountpoints: config.scan.skip_mountpoints.clone(),
    };
    scan::run(&options, root)
}

/// The status of a scan: the worst target's, and UNKNOWN when nothing was looked at
/// (`scan::run` said why in its problems).
pub fn status(report: &crate::report::ScanReport) -> crate::report::Status {
    if report.targets.is_empty() {
        crate::report::Status::Unknown
    } else {
        report.summary.worst()
    }
}

/// The Nagios exit code of a scan (see [`status`]).
pub fn exit_code(report: &crate::report::ScanReport) -> u8 {
    status(report).exit_code()
}
