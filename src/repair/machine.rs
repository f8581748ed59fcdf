//! The repair state machine (repair.md §7): prepare every target (discover, assess, plan),
//! ask once, then per target quiesce → unmount → fence → check → replay → backup → repair →
//! verify → restore → freeze test, writing the state record at every transition. Any failure
//! before the first write rolls back to the mounts as they were; a failure after it leaves the
//! filesystem unmounted for a human, with the record saying why.

use super::autoclear::{self, AutoclearLoop};
use super::boot_check::{self, BootFacts};
use super::checker::{self, Phase as CheckPhase, Verdict};
use super::discover::{self, Discovery};
use super::failpoint::{self, Action};
use super::mountops::{self, Fence};
use super::quiesce::{self, Ended};
use super::state::{self, Locks, Phase, Record, RecordedMount};
use super::subject::{self, Subject};
use super::units::{self, Decision};
use super::{FsKind, Options, Tier};
use crate::mount::mountinfo::MountInfo;
use crate::mount::table::MountTable;
use crate::report::{
    BackupReport, Blocker, BootCheckReport, RepairOutcome, RepairReport, RepairStep, RepairTarget,
    Status, TargetReport,
};
use crate::root::{MOUNTINFO, PROC, SysRoot};
use crate::shell::quote_path;
use crate::sys::interrupt;
use crate::sys::process::ProcessIdentity;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The admin's answer to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Go ahead.
    Yes,
    /// Declined at the prompt.
    No,
    /// No terminal to ask on, and no `--yes`.
    NoTerminal,
}

/// A usage error: the run stops before anything, exit 16.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// One target being worked on.
struct Job {
    subject: Subject,
    kind: FsKind,
    report: RepairTarget,
    record: Record,
    /// The scan before anything changed.
    scan: Option<TargetReport>,
    /// The device is held open with O_EXCL while set.
    fence: Option<Fence>,
    /// Mounts (as recorded) that are unmounted right now.
    unmounted: Vec<RecordedMount>,
    /// Whether the journal/log must be replayed before a check can be trusted.
    needs_replay: bool,
    /// The name every backup file of this run starts with (chosen once, never an earlier
    /// run's: see [`Machine::backup_path`]).
    backup_stem: Option<PathBuf>,
    /// The planned work is a boot-time check (root and friends).
    boot_check: bool,
    /// Prepared work remains (no outcome decided yet).
    pending: bool,
    /// The holders' units `--stop-units` will stop (systemd is PID 1).
    units_to_stop: Vec<String>,
    /// A recorded mount point was found replaced (a symlink, another directory) at restore.
    mount_point_replaced: bool,
    /// The loop device under it detaches itself at its last close (`mount -o loop`), as the
    /// plan saw it: its flag is cleared while unmounted.
    autoclear: Option<AutoclearLoop>,
}

/// Run `repair` for `targets` (empty: every filesystem the scan reports unclean). `ask` is
/// called once with the plans of every target that has work, unless `--dry-run`.
pub fn run(
    root: &SysRoot,
    options: &Options,
    targets: &[PathBuf],
    ask: &mut dyn FnMut(&[RepairTarget]) -> Consent,
) -> anyhow::Result<RepairReport> {
    let _ = std::env::set_current_dir("/");
    let table = load_table(root)?;
    let mut machine = Machine {
        root,
        options,
        table,
        messages: Vec::new(),
        booted: units::systemd_booted(root),
        own_unit: units::own_unit(root),
    };
    // Forgetting a record unmounts nothing: the namespace does not matter.
    if !options.discard_record {
        machine.check_namespace()?;
    }
    let _locks = machine.lock()?;
    let mut jobs = machine.prepare(targets)?;
    let pending: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].pending).collect();
    let mut exit_override = None;
    if !pending.is_empty() {
        if options.dry_run {
            for &i in &pending {
                jobs[i].report.outcome = if jobs[i].boot_check {
                    RepairOutcome::BootCheckScheduled
                } else {
                    RepairOutcome::Planned
                };
                jobs[i].report.message = "dry run: nothing was changed".into();
                jobs[i].pending = false;
            }
        } else {
            let plans: Vec<RepairTarget> =
                pending.iter().map(|&i| jobs[i].report.clone()).collect();
            if failpoint::armed("consent") == Some(Action::Pause) {
                failpoint::pause("consent");
            }
            let consent = ask(&plans);
            match consent {
                // A signal at the prompt (Ctrl-C) or before it: whatever the answer, the
                // interruption below marks every pending job, and nothing is executed.
                _ if interrupt::received().is_some() => {}
                Consent::Yes => {}
                Consent::No => {
                    for &i in &pending {
                        jobs[i].report.outcome = RepairOutcome::Declined;
                        jobs[i].report.message = "declined: nothing was changed".into();
                        jobs[i].pending = false;
                    }
                }
                Consent::NoTerminal => {
                    for &i in &pending {
                        jobs[i].report.outcome = RepairOutcome::Refused;
                        jobs[i].report.message =
                            "no terminal to ask on and no --yes: nothing was changed".into();
                        jobs[i].pending = false;
                    }
                    exit_override = Some(super::exit::USAGE);
                }
            }
        }
    }
    if let Some(signal) = interrupt::received() {
        // During PLAN/CONFIRM: nothing was changed, nothing will be.
        for job in jobs.iter_mut().filter(|j| j.pending) {
            job.report.outcome = RepairOutcome::Failed;
            job.report.message = format!(
                "interrupted by {} before anything was changed: nothing was changed",
                signal.as_str()
            );
            job.pending = false;
        }
    }
    for job in jobs.iter_mut().filter(|j| j.pending) {
        machine.execute(job);
    }
    let mut report = RepairReport::new(
        jobs.into_iter().map(|j| j.report).collect(),
        options.dry_run,
        0,
    );
    report.messages = machine.messages;
    if let Some(code) = exit_override {
        report.exit_code = code;
    }
    if let Some(signal) = interrupt::received() {
        // Whatever was reached, the run was cut short: the operational bit says so.
        report.exit_code |= super::exit::OPERATIONAL;
        report.messages.push(format!(
            "interrupted by {}: wound down safely (see the steps)",
            signal.as_str()
        ));
    }
    Ok(report)
}

struct Machine<'a> {
    root: &'a SysRoot,
    options: &'a Options,
    table: MountTable,
    messages: Vec<String>,
    /// systemd is PID 1: units are stopped and started through `systemctl`.
    booted: bool,
    /// The unit snapguard runs in (never stopped).
    own_unit: Option<String>,
}

fn load_table(root: &SysRoot) -> anyhow::Result<MountTable> {
    let path = root.path(MOUNTINFO);
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
    MountTable::from_mountinfo(&bytes).with_context(|| format!("invalid '{}'", path.display()))
}

impl Machine<'_> {
    // ---- INIT -----------------------------------------------------------------------------

    /// Our mount namespace must be PID 1's: an unmount in a private namespace does not reach
    /// the host (repair.md §1.4).
    fn check_namespace(&mut self) -> anyhow::Result<()> {
        let ours = std::fs::read_link(self.root.proc_entry(std::process::id(), "ns/mnt"));
        let init = std::fs::read_link(self.root.proc_entry(1, "ns/mnt"));
        match (ours, init) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (Ok(_), Ok(_)) if self.options.trust_fence => {
                self.messages.push(
                    "snapguard runs in a mount namespace other than PID 1's (--trust-fence): \
                     unmounts do not reach the host; the O_EXCL fence must prove the device free"
                        .into(),
                );
                Ok(())
            }
            (Ok(_), Ok(_)) => anyhow::bail!(
                "snapguard runs in a mount namespace other than PID 1's (a sandboxed unit or a \
                 container): an unmount here does not reach the host; run it on the host, or \
                 pass --trust-fence to rely on the O_EXCL fence alone"
            ),
            (_, Err(e)) if self.options.trust_fence => {
                self.messages.push(format!(
                    "PID 1's mount namespace cannot be read ({e}); going on with --trust-fence: \
                     the unmount and the O_EXCL fence prove the device free"
                ));
                Ok(())
            }
            (_, Err(e)) => anyhow::bail!(
                "cannot tell whether snapguard runs in PID 1's mount namespace (/proc/1/ns/mnt: \
                 {e}); pass --trust-fence to rely on the unmount and the O_EXCL fence alone"
            ),
            (Err(e), _) => Err(e).context("cannot read our own mount namespace"),
        }
    }

    fn lock(&self) -> anyhow::Result<Locks> {
        // The fsck lock is per disk; one tool-wide lock is enough to keep two repairs apart,
        // the disk locks are taken per job.
        Locks::take(self.root).map_err(|e| anyhow::anyhow!(ConcurrentRepair(e.to_string())))
    }

    // ---- DISCOVER, ASSESS, PLAN -----------------------------------------------------------

    fn prepare(&mut self, targets: &[PathBuf]) -> anyhow::Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let found = state::records(self.root)?;
        for (path, e) in &found.unreadable {
            self.messages.push(format!(
                "unreadable state record '{}' ({e}): its device is refused until it is \
                 inspected and removed; the others go on",
                path.display()
            ));
        }
        let records = found.readable;
        let named: Vec<PathBuf> = if targets.is_empty() {
            self.unclean_filesystems()?
        } else {
            targets.to_vec()
        };
        // An interrupted run comes first: its record knows the mounts it took away (a mount
        // point it unmounted is no mount point now, so TARGET is matched against the record).
        let mut handled: Vec<PathBuf> = Vec::new();
        // Unfinished records first; `--discard-record` also takes a finished one, but only for
        // a TARGET no unfinished record names (a week-old "done" record of the same loop
        // device name must not stand in for the hold the admin means).
        let (unfinished, finished): (Vec<_>, Vec<_>) =
            records.iter().partition(|(_, r)| !r.phase.is_final());
        let candidates = unfinished
            .into_iter()
            .map(|entry| (entry, false))
            .chain(finished.into_iter().map(|entry| (entry, true)));
        for ((path, record), is_final) in candidates {
            if (is_final && !self.options.discard_record) || run_alive(self.root, record) {
                continue;
            }
            // By device number, not path text: a symlink or /dev/disk/by-* alias of the device
            // must find the record too (else an interrupted repair would be retried), and a
            // reused name (/dev/loop1p1 of another test, another disk) must not. The path text
            // only counts once no block device answers to it (the device is gone).
            let names = |t: &PathBuf| match block_device_number(t) {
                Some(number) => number == (record.major, record.minor),
                None => t == &record.device || record.mounts.iter().any(|m| &m.mount_point == t),
            };
            let matched: Vec<PathBuf> = targets
                .iter()
                .filter(|t| names(t) && !(is_final && handled.contains(t)))
                .cloned()
                .collect();
            if (targets.is_empty() && !is_final) || !matched.is_empty() {
                handled.extend(matched);
                handled.push(record.device.clone());
                jobs.push(self.resume_job(path, record.clone()));
            }
        }
        for target in named {
            if handled.contains(&target) {
                continue;
            }
            if self.options.discard_record {
                let mut report = RepairTarget::new(target.display().to_string());
                report.outcome = RepairOutcome::NothingToDo;
                report.message = "no repair record names it: nothing to discard".into();
                jobs.push(report_only(&target, report));
                continue;
            }
            let subject = subject::resolve(&target, &self.table);
            if let Ok(subject) = &subject {
                if handled.contains(&subject.device) {
                    continue;
                }
            }
            if self.options.resume {
                // `--resume` verifies and remounts a held filesystem; it never starts a repair.
                return Err(anyhow::anyhow!(UsageError(format!(
                    "--resume: no held repair of '{}' (no unfinished state record names it; \
                     `snapguard repair --status` lists them): nothing was changed",
                    target.display()
                ))));
            }
            let subject = subject.map_err(|e| anyhow::anyhow!(UsageError(e.to_string())))?;
            // One filesystem named twice (its mount point and its device; two mount points of
            // it without TARGET) is one job: a second would unmount, back up and repair it
            // again after the first put it back, with the same backup names.
            if jobs.iter().any(|j| j.subject.dev == subject.dev) {
                continue;
            }
            let unreadable = found
                .unreadable
                .iter()
                .find(|(path, _)| state::record_device(path) == Some(subject.dev));
            if let Some((path, e)) = unreadable {
                // It may be the only memory of a held or interrupted repair of this device.
                let mut job = self.new_job(subject);
                job.report.message = format!(
                    "its state record is unreadable ({e}): it may be all that is left of an \
                     interrupted repair; inspect it, remove it once the filesystem is known to \
                     be as it should (`rm {}`), then run again; nothing was changed",
                    quote_path(path)
                );
                jobs.push(job);
                continue;
            }
            jobs.push(self.prepare_job(subject));
        }
        Ok(jobs)
    }

    /// Without TARGET: every mounted block filesystem the scan does not call clean.
    fn unclean_filesystems(&mut self) -> anyhow::Result<Vec<PathBuf>> {
        let options = crate::scan::ScanOptions {
            targets: Vec::new(),
            snapshot: None,
            now: now(),
            skip_fstypes: Vec::new(),
            skip_mountpoints: Vec::new(),
        };
        let (report, _) = crate::scan::run(&options, self.root)?;
        Ok(report
            .targets
            .iter()
            .filter(|t| t.status != Status::Ok)
            .filter_map(|t| t.mountpoint.as_ref().map(PathBuf::from))
            .collect())
    }

    fn prepare_job(&mut self, subject: Subject) -> Job {
        let mut job = self.new_job(subject);
        if let Err(e) = self.plan(&mut job) {
            job.report.outcome = RepairOutcome::Failed;
            job.report.message = format!("{e:#}");
            job.pending = false;
        }
        job
    }

    /// A job for `subject`, nothing assessed yet (outcome: failed, nothing pending).
    fn new_job(&self, subject: Subject) -> Job {
        let mut report = RepairTarget::new(&subject.name);
        report.device = Some(subject.device.display().to_string());
        report.mountpoints = subject
            .mounts
            .iter()
            .map(|m| m.mount_point.display().to_string())
            .collect();
        let record = Record {
            version: state::RECORD_VERSION,
            pid: std::process::id(),
            start_time: ProcessIdentity::myself(&self.root.path(PROC))
                .map(|i| i.start_time)
                .unwrap_or(0),
            device: subject.device.clone(),
            major: subject.dev.0,
            minor: subject.dev.1,
            kind: FsKind::Ext,
            fstype: String::new(),
            uuid: None,
            mounts: subject.mounts.iter().map(RecordedMount::from).collect(),
            stopped_units: Vec::new(),
            phase: Phase::Discovered,
            replay_mount: None,
            autoclear: false,
            loop_image: None,
            steps: Vec::new(),
            updated: 0,
        };
        Job {
            kind: FsKind::Ext,
            subject,
            report,
            record,
            scan: None,
            fence: None,
            unmounted: Vec::new(),
            needs_replay: false,
            backup_stem: None,
            boot_check: false,
            pending: false,
            units_to_stop: Vec::new(),
            mount_point_replaced: false,
            autoclear: None,
        }
    }

    /// Assess and plan one job; sets `pending` when there is work to confirm.
    fn plan(&mut self, job: &mut Job) -> anyhow::Result<()> {
        // ASSESS with the scanner.
        let started = Instant::now();
        let scan = self.scan(&job.subject.device)?;
        let fs_type = job
            .subject
            .fs_type
            .clone()
            .or_else(|| scan.fstype.clone())
            .unwrap_or_default();
        job.report.fstype = Some(fs_type.clone());
        job.report.state_before = Some(describe_scan(&scan));
        let Some(kind) = FsKind::from_fs_type(&fs_type) else {
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!(
                "{} is not a filesystem repair knows (ext2/3/4, XFS, btrfs, FAT)",
                if fs_type.is_empty() {
                    "unknown type"
                } else {
                    &fs_type
                }
            );
            return Ok(());
        };
        job.kind = kind;
        job.record.kind = kind;
        job.record.fstype = fs_type.clone();
        job.record.uuid = fs_uuid(&scan);
        push(
            job,
            "assess",
            "ok",
            format!("scan: {}", describe_scan(&scan)),
            None,
            started,
        );
        job.needs_replay = needs_replay(&scan);
        let clean = scan.status == Status::Ok;
        job.scan = Some(scan);
        if let Some(rule) = self.never_touched(&job.subject) {
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!("the configuration says never to touch it ({rule})");
            return Ok(());
        }
        if clean && !self.options.force {
            job.report.outcome = RepairOutcome::NothingToDo;
            job.report.message =
                "the scan says clean: nothing to do (--force checks anyway)".into();
            return Ok(());
        }
        // ROOT? `/`, `/usr`, the filesystem holding snapguard itself.
        if let Some(why) = self.cannot_unmount(&job.subject) {
            return self.plan_boot_check(job, why);
        }
        // DISCOVER: every user of the superblock.
        let started = Instant::now();
        let (major, minor) = job.subject.sb.unwrap_or(job.subject.dev);
        let discovery = discover::discover(self.root, major, minor)
            .with_context(|| format!("cannot discover the users of {}", job.subject.name))?;
        let (in_the_way, trusted) = blockers(&discovery, &job.subject, self.options);
        job.report.blockers = in_the_way;
        job.report.trusted = trusted;
        let hard: Vec<Blocker> = job
            .report
            .blockers
            .iter()
            .filter(|b| !self.may_pass(b))
            .cloned()
            .collect();
        push(
            job,
            "discover",
            if hard.is_empty() { "ok" } else { "refused" },
            discovery_summary(&discovery),
            None,
            started,
        );
        if !hard.is_empty() {
            let list: Vec<String> = hard.iter().map(blocker_line).collect();
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!(
                "in use, nothing was changed: {}{}",
                list.join("; "),
                self.refusal_hint(&hard)
            );
            return Ok(());
        }
        let holder_units: Vec<&str> = job
            .report
            .blockers
            .iter()
            .filter(|b| b.kind == "process")
            .filter_map(|b| b.unit.as_deref())
            .collect();
        match units::decide(
            self.booted,
            self.options.stop_units,
            self.own_unit.as_deref(),
            &holder_units,
        ) {
            Decision::Nothing => {}
            Decision::Stop(list) => job.units_to_stop = list,
            Decision::Refuse(line) => {
                job.report.outcome = RepairOutcome::Refused;
                job.report.message = line;
                return Ok(());
            }
        }
        if let Some(why) = self.backup_dir_on_target(&job.subject) {
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!("{why}: choose another --backup-dir; nothing was changed");
            return Ok(());
        }
        // A read-only device (`mount -o loop,ro`) cannot be repaired: refused before the
        // umount, instead of holding a filesystem unmounted for a write that cannot happen.
        if job.subject.read_only(self.root) {
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!(
                "{} is a read-only block device (a read-only loop device: `mount -o loop,ro`; \
                 `blockdev --setro`): a repair cannot write it; nothing was changed (unmount it \
                 and repair the device or image set up read-write)",
                quote_path(&job.subject.device)
            );
            return Ok(());
        }
        if let Some(why) = self.image_attached_twice(&job.subject) {
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!("{why}; nothing was changed");
            return Ok(());
        }
        // `mount -o loop`: the umount would detach the device under the fence and the check.
        match autoclear::find(self.root, job.subject.disk_name(self.root).as_deref()) {
            Ok(found) => job.autoclear = found,
            Err(e) => {
                job.report.outcome = RepairOutcome::Refused;
                job.report.message = format!("{e}: nothing was changed");
                return Ok(());
            }
        }
        self.record_covered_directories(job);
        self.plan_steps(job);
        job.pending = true;
        Ok(())
    }

    /// The directory under each mount point (device and inode), seen through a private clone
    /// of its parent mount while it is still mounted: the restore mounts on that directory
    /// only. Left unset where it cannot be seen (a mount stacked on its parent's mount point,
    /// no `open_tree`): then it is taken right after the unmount.
    fn record_covered_directories(&self, job: &mut Job) {
        let entries = self.table.entries();
        for m in &mut job.record.mounts {
            let Some(parent) = entries.iter().find(|e| e.mount_id == m.parent_id) else {
                continue;
            };
            // Something else stacked on the parent's mount point would be what the clone shows.
            let stacked = entries.iter().any(|e| {
                e.parent_id == parent.mount_id
                    && e.mount_point == parent.mount_point
                    && e.mount_id != m.mount_id
            });
            if !stacked {
                m.directory = mountops::MountPoint::covered(
                    &parent.mount_point,
                    (parent.major, parent.minor),
                    &m.mount_point,
                )
                .ok();
            }
        }
    }

    fn may_pass(&self, b: &Blocker) -> bool {
        match b.kind.as_str() {
            "process" => {
                self.options.terminate_holders
                    || self.options.stop_units
                        && b.unit
                            .as_deref()
                            .is_some_and(|u| units::stoppable(u, self.own_unit.as_deref()))
            }
            "unreadable-process" => self.options.trust_fence,
            _ => false,
        }
    }

    fn refusal_hint(&self, hard: &[Blocker]) -> String {
        let mut hints = Vec::new();
        if hard.iter().any(|b| b.kind == "process") {
            hints.push("--terminate-holders ends the processes (SIGTERM, then SIGKILL)");
            if hard.iter().any(|b| {
                b.unit
                    .as_deref()
                    .is_some_and(|u| units::stoppable(u, self.own_unit.as_deref()))
            }) {
                hints.push("--stop-units stops their systemd services and restarts them after");
            }
        }
        if hard.iter().any(|b| b.kind == "unreadable-process") {
            hints.push(
                "--trust-fence goes on when /proc cannot be read fully, relying on the unmount \
                 and the O_EXCL fence",
            );
        }
        if hard
            .iter()
            .any(|b| !matches!(b.kind.as_str(), "process" | "unreadable-process"))
        {
            hints.push("mounts, swap, loop devices and other namespaces must be released by hand");
        }
        if hints.is_empty() {
            String::new()
        } else {
            format!(" ({})", hints.join("; "))
        }
    }

    fn plan_steps(&self, job: &mut Job) {
        let base = self.backup_path(job, "");
        let dev = &job.subject.device;
        let kind = job.kind;
        let mut planned = Vec::new();
        for u in &job.units_to_stop {
            planned.push((
                "stop-unit",
                format!("stop {u} (its processes hold the filesystem; started again after)"),
                Some(units::command("stop", u).display()),
            ));
        }
        let automounts: Vec<String> = if self.booted {
            job.subject
                .mounts
                .iter()
                .rev()
                .filter_map(|m| units::automount_unit(self.root, &m.mount_point))
                .collect()
        } else {
            Vec::new()
        };
        for a in &automounts {
            planned.push((
                "stop-unit",
                format!("stop {a} so that no access mounts it again (started again after)"),
                Some(units::command("stop", a).display()),
            ));
        }
        if self.options.terminate_holders && job.report.blockers.iter().any(|b| b.kind == "process")
        {
            planned.push((
                "quiesce",
                format!(
                    "end the holding processes: SIGTERM, SIGKILL after {} s",
                    self.options.grace.as_secs()
                ),
                None,
            ));
        }
        if let Some(l) = &job.autoclear {
            planned.push((
                "autoclear",
                format!(
                    "loop device {}: autoclear cleared while unmounted, set again after the mount \
                     ({}without it the umount would detach the device)",
                    l.node.display(),
                    l.image
                        .as_ref()
                        .map(|i| format!("image {}; ", i.display()))
                        .unwrap_or_default()
                ),
                None,
            ));
        }
        for m in job.subject.mounts.iter().rev() {
            let unit = units::mount_unit(&m.mount_point).filter(|_| self.booted);
            planned.push((
                "unmount",
                match &unit {
                    Some(u) => format!(
                        "systemd unmounts {} ({u}; never lazy, never forced)",
                        m.mount_point.display()
                    ),
                    None => format!(
                        "umount {} (never lazy, never forced)",
                        m.mount_point.display()
                    ),
                },
                unit.map(|u| units::command("stop", &u).display()),
            ));
        }
        planned.push((
            "fence",
            format!("hold {} open with O_EXCL", dev.display()),
            None,
        ));
        let check = checker::read_only_check(kind, dev);
        planned.push(("check", "read-only check".into(), Some(check.display())));
        if job.needs_replay {
            let what = match checker::replay(kind, dev) {
                Some(checker::Replay::Command(c)) => Some(c.display()),
                _ => None,
            };
            planned.push((
                "replay",
                "replay the journal/log if it is still dirty once unmounted, then check again"
                    .into(),
                what,
            ));
        }
        if self.options.tier > Tier::Check {
            if let Some(backup) = checker::metadata_backup(kind, dev, &base) {
                planned.push((
                    "backup",
                    format!(
                        "metadata backup to {} (free there: {})",
                        self.options.backup_dir.display(),
                        free_space(&self.options.backup_dir)
                    ),
                    Some(backup.display()),
                ));
            }
            let zero_log = self.zero_log_allowed(job);
            match checker::repair(kind, dev, self.options.tier, zero_log, None) {
                Some(c) => planned.push((
                    "repair",
                    format!("repair at tier {}", tier_name(self.options.tier)),
                    Some(c.display()),
                )),
                None => planned.push((
                    "repair",
                    "no automatic repair for this filesystem: check only".into(),
                    None,
                )),
            }
            planned.push((
                "verify",
                "read-only check again".into(),
                Some(check.display()),
            ));
        }
        for m in &job.subject.mounts {
            let unit =
                units::startable_mount_unit(self.root, &m.mount_point).filter(|_| self.booted);
            planned.push((
                "restore",
                format!(
                    "mount {} again with {} / {}",
                    m.mount_point.display(),
                    m.mount_options,
                    m.super_options
                ),
                unit.map(|u| units::command("start", &u).display()),
            ));
        }
        for u in automounts
            .iter()
            .rev()
            .chain(job.units_to_stop.iter().rev())
        {
            planned.push((
                "start-unit",
                format!("start {u} again"),
                Some(units::command("start", u).display()),
            ));
        }
        if self.options.freeze_test {
            planned.push((
                "freeze-test",
                "can the repaired filesystem be frozen".into(),
                None,
            ));
        }
        for (step, detail, command) in planned {
            job.report.steps.push(RepairStep {
                step: step.into(),
                result: "planned".into(),
                detail,
                command,
                exit_status: None,
                duration_ms: 0,
            });
        }
    }

    /// The backup directory must not be on the filesystem being repaired: checked at plan
    /// time, through its nearest existing ancestor, before anything is touched.
    fn backup_dir_on_target(&self, subject: &Subject) -> Option<String> {
        let dir = &self.options.backup_dir;
        let existing = dir.ancestors().find(|p| p.exists())?;
        let canonical = std::fs::canonicalize(existing).ok()?;
        if subject
            .mounts
            .iter()
            .any(|m| m.mount_point != Path::new("/") && canonical.starts_with(&m.mount_point))
        {
            return Some(format!(
                "the backup directory {} is on the filesystem being repaired",
                dir.display()
            ));
        }
        let sb = subject.sb?;
        let id = crate::sys::statx::mount_id_of_path(&canonical).ok()?;
        self.table
            .entries()
            .iter()
            .any(|m| u64::from(m.mount_id) == id && (m.major, m.minor) == sb)
            .then(|| {
                format!(
                    "the backup directory {} is on the filesystem being repaired",
                    dir.display()
                )
            })
    }

    fn zero_log_allowed(&self, job: &Job) -> bool {
        self.options
            .zero_log
            .as_ref()
            .is_some_and(|d| std::fs::canonicalize(d).ok().as_ref() == Some(&job.subject.device))
    }

    fn plan_boot_check(&mut self, job: &mut Job, why: String) -> anyhow::Result<()> {
        let passno = fstab_passno(self.root, &job.subject);
        let max = job
            .scan
            .as_ref()
            .and_then(|s| s.ext.as_ref())
            .map(|e| i32::from(e.max_mount_count));
        let facts = BootFacts::read(self.root, passno, max);
        let plan = boot_check::plan(job.kind, &job.subject.device, &facts);
        job.report.boot_check = Some(BootCheckReport {
            mechanism: plan.mechanism.into(),
            why: plan.why.clone(),
            commands: plan.commands.clone(),
            undo: plan.undo.clone(),
            manual: plan.manual,
            applied: false,
        });
        job.report.message = format!("{why}: never unmounted; a boot-time check instead");
        job.boot_check = true;
        job.pending = true;
        for c in &plan.commands {
            job.report.steps.push(RepairStep {
                step: "boot-check".into(),
                result: "planned".into(),
                detail: plan.mechanism.into(),
                command: Some(c.clone()),
                exit_status: None,
                duration_ms: 0,
            });
        }
        Ok(())
    }

    /// Why this filesystem must never be unmounted, if it must not.
    fn cannot_unmount(&self, subject: &Subject) -> Option<String> {
        for m in &subject.mounts {
            if m.mount_point == Path::new("/") {
                return Some("it is the root filesystem".into());
            }
            if m.mount_point == Path::new("/usr") {
                return Some("it is /usr".into());
            }
        }
        let sb = subject.sb?;
        let holds = |path: &Path| {
            crate::sys::statx::mount_id_of_path(path)
                .ok()
                .and_then(|id| {
                    self.table
                        .entries()
                        .iter()
                        .find(|m| u64::from(m.mount_id) == id)
                })
                .is_some_and(|m| (m.major, m.minor) == sb)
        };
        if let Ok(exe) = std::fs::read_link(self.root.path("proc/self/exe")) {
            if holds(&exe) {
                return Some(format!("it holds snapguard itself ({})", exe.display()));
            }
        }
        if let Ok(cwd) = std::fs::read_link(self.root.proc_entry(1, "cwd")) {
            if holds(&cwd) {
                return Some("it holds PID 1's working directory".into());
            }
        }
        None
    }

    fn never_touched(&self, subject: &Subject) -> Option<String> {
        // The device by every name it is known by: admins write stable names
        // (`/dev/mapper/vg-db`, `/dev/disk/by-uuid/...`), the kernel name is `/dev/dm-3`.
        let mut names: Vec<String> = std::iter::once(subject.device.display().to_string())
            .chain(
                subject
                    .mounts
                    .iter()
                    .map(|m| m.mount_point.display().to_string()),
            )
            .chain(
                subject
                    .mounts
                    .iter()
                    .filter_map(|m| m.source.as_ref())
                    .map(|s| s.to_string_lossy().into_owned()),
            )
            .collect();
        names.extend(device_aliases(&subject.device));
        self.options.never.iter().find_map(|pattern| {
            let glob = globset::Glob::new(pattern).ok()?.compile_matcher();
            if let Some(n) = names.iter().find(|n| glob.is_match(n.as_str())) {
                return Some(format!("[repair] never pattern '{pattern}' matches {n}"));
            }
            // A pattern that names a path (any symlink to the device or to a mount point)
            // matches what it leads to.
            let target = std::fs::canonicalize(pattern).ok()?;
            (target == subject.device || subject.mounts.iter().any(|m| m.mount_point == target))
                .then(|| {
                    format!(
                        "[repair] never pattern '{pattern}' leads to {}",
                        target.display()
                    )
                })
        })
    }

    fn scan(&self, device: &Path) -> anyhow::Result<TargetReport> {
        let options = crate::scan::ScanOptions {
            targets: vec![device.to_path_buf()],
            snapshot: None,
            now: now(),
            skip_fstypes: Vec::new(),
            skip_mountpoints: Vec::new(),
        };
        let (report, _) = crate::scan::run(&options, self.root)?;
        report
            .targets
            .into_iter()
            .next()
            .context("the scan returned nothing")
    }

    /// `DIR/NAME-FSTYPE-SECONDS[-N]` + `suffix`. The stem is chosen once per run and is one no
    /// file in the backup directory starts with: two runs in the same second (a rerun right
    /// after a rollback, a loop number reused) must neither overwrite the earlier metadata image
    /// nor hand `e2fsck -z` an earlier run's undo file (it refuses one of another filesystem).
    fn backup_path(&self, job: &mut Job, suffix: &str) -> PathBuf {
        if job.backup_stem.is_none() {
            let name = job
                .subject
                .kernel_name(self.root)
                .unwrap_or_else(|| format!("{}-{}", job.subject.dev.0, job.subject.dev.1));
            let first = format!("{name}-{}-{}", job.record.fstype, now());
            let taken = |stem: &str| {
                std::fs::read_dir(&self.options.backup_dir).is_ok_and(|entries| {
                    entries.filter_map(Result::ok).any(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n == stem || n.starts_with(&format!("{stem}."))
                    })
                })
            };
            let stem = (0u32..)
                .map(|n| {
                    if n == 0 {
                        first.clone()
                    } else {
                        format!("{first}-{n}")
                    }
                })
                .find(|stem| !taken(stem))
                .unwrap_or(first);
            job.backup_stem = Some(self.options.backup_dir.join(stem));
        }
        let stem = job.backup_stem.clone().unwrap_or_default();
        let mut path = stem.into_os_string();
        path.push(suffix);
        PathBuf::from(path)
    }

    // ---- resume ---------------------------------------------------------------------------

    fn resume_job(&mut self, path: &Path, record: Record) -> Job {
        let subject = Subject {
            name: record.device.display().to_string(),
            device: record.device.clone(),
            dev: (record.major, record.minor),
            sb: record.mounts.first().map(|m| (m.major, m.minor)),
            fs_type: Some(record.fstype.clone()),
            mounts: record.mounts.iter().map(MountInfo::from).collect(),
        };
        let mut report = RepairTarget::new(&subject.name);
        report.device = Some(record.device.display().to_string());
        report.fstype = Some(record.fstype.clone());
        report.mountpoints = subject
            .mounts
            .iter()
            .map(|m| m.mount_point.display().to_string())
            .collect();
        report.record = Some(path.display().to_string());
        let mut job = Job {
            kind: record.kind,
            subject,
            report,
            record: record.clone(),
            scan: None,
            fence: None,
            unmounted: Vec::new(),
            needs_replay: false,
            backup_stem: None,
            boot_check: false,
            pending: false,
            units_to_stop: Vec::new(),
            mount_point_replaced: false,
            autoclear: None,
        };
        let mounted_now = mounted_again(&self.table, &record);
        job.unmounted = record
            .mounts
            .iter()
            .filter(|m| !mounted_now.contains(&m.mount_point))
            .cloned()
            .collect();
        let started = Instant::now();
        let previous = format!(
            "an earlier repair (pid {}) stopped at phase {}",
            record.pid,
            record.phase.name()
        );
        let device = quote_path(&job.subject.device);
        if self.options.discard_record {
            self.discard(&mut job, path, &previous);
            return job;
        }
        if block_device_number(&record.device) != Some((record.major, record.minor)) {
            // The disk was pulled, the loop device detached, or the node names another device
            // now: nothing of the record can be acted on, and a fence error would blame "in use".
            push(
                &mut job,
                "resume",
                "refused",
                format!(
                    "{previous}: {} is not the block device {}:{} any more",
                    record.device.display(),
                    record.major,
                    record.minor
                ),
                None,
                started,
            );
            job.report.message = format!(
                "{previous}, and its device {} ({}:{}) no longer exists: nothing can be verified \
                 or mounted again; find where the filesystem went, then forget the record {} \
                 (`snapguard repair --discard-record {device}`)",
                record.device.display(),
                record.major,
                record.minor,
                path.display(),
            );
            return job;
        }
        // The record is only ever acted on for the filesystem it was written for, and a loop
        // device's only while the same number still reads the same file.
        if let Err(why) = self
            .same_filesystem(&job)
            .and_then(|()| self.same_loop_image(&job))
        {
            push(&mut job, "resume", "refused", why.clone(), None, started);
            job.report.outcome = RepairOutcome::Refused;
            job.report.message = format!(
                "{why}: nothing was done; if the record is stale, `snapguard repair \
                 --discard-record {device}` removes it"
            );
            return job;
        }
        if self.options.dry_run {
            // A dry run describes what a real run would do with the record; it changes nothing.
            push(
                &mut job,
                "resume",
                "planned",
                format!("{previous}: a real run would act on its record first"),
                None,
                started,
            );
            job.report.outcome = RepairOutcome::Planned;
            job.report.message = format!("dry run: {previous}; nothing was changed");
            return job;
        }
        if !self.undo_replay_mount(&mut job, &previous) {
            return job;
        }
        let all_back = job.unmounted.is_empty() && !record.mounts.is_empty();
        let some_back = !mounted_now.is_empty() && !job.unmounted.is_empty();
        let list = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match record.phase {
            Phase::Discovered | Phase::Quiesced | Phase::Unmounting | Phase::Fenced => {
                push(
                    &mut job,
                    "resume",
                    "ok",
                    format!("{previous}, before any write: restoring the mounts"),
                    None,
                    started,
                );
                self.remove_replay_leftovers(&mut job);
                self.restore(&mut job);
                if job.unmounted.is_empty() {
                    job.record.phase = Phase::RolledBack;
                    self.save(&mut job);
                    job.report.outcome = RepairOutcome::Failed;
                    job.report.message = format!(
                        "{previous} before any write; its mounts are back, unchanged: run repair again"
                    );
                } else {
                    self.restore_failed(&mut job, &previous);
                }
            }
            // Remounting had begun after a clean verify, and every mount is back.
            Phase::Verified | Phase::Restoring if all_back => {
                push(
                    &mut job,
                    "resume",
                    "ok",
                    format!("{previous} after the verify passed; every mount is back"),
                    None,
                    started,
                );
                self.close_mounted_again(&mut job, &previous, RepairOutcome::Repaired);
            }
            Phase::RepairStarted | Phase::Repaired | Phase::Held if all_back => {
                let on = list(&mounted_now);
                if self.options.resume {
                    push(
                        &mut job,
                        "resume",
                        "ok",
                        format!(
                            "{previous}; mounted again since on {on} (not by snapguard): the hold is released"
                        ),
                        None,
                        started,
                    );
                    self.close_mounted_again(&mut job, &previous, RepairOutcome::NothingToDo);
                } else {
                    push(
                        &mut job,
                        "resume",
                        "refused",
                        format!("{previous}; mounted again since on {on} (not by snapguard)"),
                        None,
                        started,
                    );
                    job.report.outcome = RepairOutcome::Held;
                    job.report.message = format!(
                        "{previous} and holds it for a human, but {device} has been mounted again \
                         since on {on} (not by snapguard): check it (`snapguard scan {device}`), \
                         then `snapguard repair --resume {device}` releases the hold"
                    );
                }
            }
            Phase::RepairStarted
            | Phase::Repaired
            | Phase::Held
            | Phase::Verified
            | Phase::Restoring
                if some_back =>
            {
                let on = list(&mounted_now);
                let off: Vec<PathBuf> = job
                    .unmounted
                    .iter()
                    .map(|m| m.mount_point.clone())
                    .collect();
                let off = list(&off);
                push(
                    &mut job,
                    "resume",
                    "refused",
                    format!("{previous}; mounted again on {on} but not on {off}"),
                    None,
                    started,
                );
                job.report.outcome = RepairOutcome::Held;
                job.report.message = format!(
                    "{previous}; {device} is mounted again on {on} but not on {off}, so it can \
                     neither be checked (it is mounted) nor released (not all is back): unmount \
                     {on} and `snapguard repair --resume {device}` verifies and remounts all, or \
                     mount {off} by hand too and `--resume` releases the hold"
                );
            }
            Phase::RepairStarted => {
                push(
                    &mut job,
                    "resume",
                    "refused",
                    format!("{previous}: the repair command never reported back"),
                    None,
                    started,
                );
                self.hold_after_interruption(&mut job, &previous);
            }
            Phase::Held if !self.options.resume => {
                push(
                    &mut job,
                    "resume",
                    "refused",
                    format!("{previous}: held for a human"),
                    None,
                    started,
                );
                job.report.outcome = RepairOutcome::Held;
                job.report.message = format!(
                    "{previous}: left unmounted for a human; inspect it with `{}`, then `snapguard repair --resume {device}` verifies and remounts it",
                    checker::read_only_check(job.kind, &job.subject.device).display(),
                );
            }
            _ => {
                push(
                    &mut job,
                    "resume",
                    "ok",
                    format!("{previous}: verifying, then restoring"),
                    None,
                    started,
                );
                if self.fence(&mut job).is_ok() && self.verify(&mut job) {
                    self.finish(&mut job);
                }
            }
        }
        if job.report.message.is_empty() {
            // Never an empty reason: the last step that did not succeed says why.
            let why = job
                .report
                .steps
                .iter()
                .rev()
                .find(|s| s.result != "ok")
                .map(|s| format!("{} {}: {}", s.step, s.result, s.detail))
                .unwrap_or_else(|| "see the steps".into());
            job.report.message = format!("{previous}; {why}");
        }
        job
    }

    /// A log replay mount the interrupted run left (the record names it before mounting):
    /// unmount it before anything else. False when it cannot be (the job says why).
    fn undo_replay_mount(&mut self, job: &mut Job, previous: &str) -> bool {
        let Some(dir) = job.record.replay_mount.clone() else {
            return true;
        };
        let started = Instant::now();
        let mounted = self
            .table
            .entries()
            .iter()
            .any(|e| e.mount_point == dir && is_mount_of(e, &job.record));
        let unmounted = if mounted {
            mountops::unmount(&dir)
        } else {
            Ok(())
        };
        if let Err(e) = unmounted {
            let why = format!(
                "cannot unmount the log replay mount {} the interrupted run left: {}",
                dir.display(),
                e.desc()
            );
            push(job, "replay", "failed", why.clone(), None, started);
            job.report.outcome = RepairOutcome::Failed;
            job.report.message = format!(
                "{previous}; {why}: nothing else was done; `umount {}` by hand, then run again",
                quote_path(&dir)
            );
            return false;
        }
        let _ = std::fs::remove_dir(&dir);
        job.record.replay_mount = None;
        self.save(job);
        if let Ok(table) = load_table(self.root) {
            self.table = table;
        }
        push(
            job,
            "replay",
            "ok",
            if mounted {
                format!(
                    "the log replay mount {} the interrupted run left is unmounted",
                    dir.display()
                )
            } else {
                format!(
                    "the log replay mount {} the interrupted run named was not mounted",
                    dir.display()
                )
            },
            None,
            started,
        );
        true
    }

    /// The record must describe the filesystem on the device now: same type and UUID.
    fn same_filesystem(&self, job: &Job) -> Result<(), String> {
        let record = &job.record;
        let device = quote_path(&record.device);
        let now = self.scan(&record.device).map_err(|e| {
            format!(
                "cannot read {device} to confirm it still holds the filesystem the repair record \
                 was written for ({e:#})"
            )
        })?;
        let fstype = now.fstype.clone().unwrap_or_default();
        let uuid = fs_uuid(&now);
        let same_type = FsKind::from_fs_type(&fstype) == Some(record.kind)
            && (fstype == record.fstype || record.kind == FsKind::Fat);
        if same_type && uuid == record.uuid {
            return Ok(());
        }
        let show = |t: &str, u: &Option<String>| {
            format!(
                "{} UUID {}",
                if t.is_empty() { "unknown type" } else { t },
                u.as_deref().unwrap_or("(none)")
            )
        };
        Err(format!(
            "the repair record was written for {} on {device} ({}:{}), but {device} now holds {}: \
             another filesystem took the device number since (a reused loop device, a replaced \
             disk, a new mkfs)",
            show(&record.fstype, &record.uuid),
            record.major,
            record.minor,
            show(&fstype, &uuid)
        ))
    }

    /// A record that names the file its loop device read (its autoclear flag was cleared):
    /// the device must read that file still.
    fn same_loop_image(&self, job: &Job) -> Result<(), String> {
        let Some(recorded) = &job.record.loop_image else {
            return Ok(());
        };
        let Some(disk) = job.subject.disk_name(self.root) else {
            return Err(format!(
                "cannot find the loop device of {} to confirm it still reads the image of the \
                 repair record",
                job.subject.device.display()
            ));
        };
        autoclear::same_image(self.root, &disk, recorded)?;
        match self.image_attached_twice(&job.subject) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// A loop device whose file another loop device reads too (`losetup -f IMG` twice): the
    /// one-line refusal, since a check or mount through it writes under the other.
    fn image_attached_twice(&self, subject: &Subject) -> Option<String> {
        let disk = subject.disk_name(self.root)?;
        let others = autoclear::same_file_elsewhere(self.root, &disk);
        if others.is_empty() {
            return None;
        }
        let node = autoclear::node(&disk);
        Some(format!(
            "the file loop device {} reads{} is attached again as {} (`losetup -f` of the same \
             image): a repair through {} would write under it; detach the other (`losetup -d`) \
             first",
            node.display(),
            autoclear::backing_file(self.root, &disk)
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default(),
            others.join(", "),
            node.display()
        ))
    }

    /// Every recorded mount is back (mounted by hand, or by a run that stopped before writing
    /// `done`): compare them with the record, scan the filesystem (read-only), close the record.
    fn close_mounted_again(&mut self, job: &mut Job, previous: &str, outcome: RepairOutcome) {
        for m in job.record.mounts.clone() {
            let before = MountInfo::from(&m);
            let diffs = self.compare(&before);
            let detail = if diffs.is_empty() {
                format!("{} mounted as recorded", m.mount_point.display())
            } else {
                format!(
                    "{} mounted; differs: {}",
                    m.mount_point.display(),
                    diffs.join("; ")
                )
            };
            job.report.differences.extend(diffs);
            push(job, "restore", "ok", detail, None, Instant::now());
        }
        self.set_autoclear_again(job);
        job.record.phase = Phase::Done;
        self.save(job);
        let scan = self.scan(&job.subject.device);
        if let Ok(after) = &scan {
            job.report.state_after = Some(describe_scan(after));
        }
        let device = quote_path(&job.subject.device);
        match scan {
            Ok(after) if after.status == Status::Ok => {
                job.report.outcome = outcome;
                job.report.message = format!(
                    "{previous}; {device} is mounted again and the scan says clean: the record is \
                     closed"
                );
            }
            Ok(after) => {
                job.report.outcome = RepairOutcome::ErrorsLeft;
                job.report.message = format!(
                    "{previous}; {device} is mounted again, the record is closed, but the scan \
                     says {}: `snapguard repair {device}` checks it again",
                    describe_scan(&after)
                );
            }
            Err(e) => {
                job.report.outcome = RepairOutcome::ErrorsLeft;
                job.report.message = format!(
                    "{previous}; {device} is mounted again and the record is closed, but it could \
                     not be scanned ({e:#}): `snapguard repair {device}` checks it again"
                );
            }
        }
        if !job.report.differences.is_empty() {
            job.report
                .message
                .push_str("; the mounts differ from the record (see `mounted; differs`)");
        }
    }

    /// `--discard-record`: forget a record (stale, or a hold the admin ends by hand); nothing
    /// else is touched.
    fn discard(&mut self, job: &mut Job, path: &Path, previous: &str) {
        let started = Instant::now();
        match job.record.remove(self.root) {
            Ok(()) => {
                push(
                    job,
                    "discard-record",
                    "ok",
                    format!("{} removed", path.display()),
                    None,
                    started,
                );
                job.report.outcome = RepairOutcome::NothingToDo;
                job.report.message = format!(
                    "{previous}; its record {} is discarded; nothing else was changed (mounted \
                     now: {})",
                    path.display(),
                    if job.unmounted.is_empty() {
                        "all its mount points".to_string()
                    } else if job.unmounted.len() == job.record.mounts.len() {
                        "none of its mount points".to_string()
                    } else {
                        "some of its mount points".to_string()
                    }
                );
                if let Some(dir) = &job.record.replay_mount {
                    job.report.message.push_str(&format!(
                        "; its log replay mount {} may still be mounted: `umount` it by hand",
                        quote_path(dir)
                    ));
                }
                let disk = job.subject.disk_name(self.root);
                // A device detached since, whose number now reads another image, is not ours
                // to detach: say so instead of naming it for `losetup -d`.
                let reused = match (&job.record.loop_image, &disk) {
                    (Some(recorded), Some(disk)) if job.record.autoclear => {
                        autoclear::same_image(self.root, disk, recorded).err()
                    }
                    _ => None,
                };
                let sharing = match (&disk, job.record.autoclear) {
                    (Some(disk), true) => self.autoclear_holds_on(job, disk),
                    _ => Vec::new(),
                };
                if let Some(why) = reused {
                    job.report.message.push_str(&format!(
                        "; {why}: the device the record cleared autoclear on is gone, and this \
                         one is not detached or changed"
                    ));
                } else if !sharing.is_empty() {
                    // `losetup -d` now would take the disk away under the other held one.
                    job.report.message.push_str(&format!(
                        "; loop device {} keeps its autoclear flag cleared: the repair of {} on \
                         the same disk is unfinished, and its record sets it again once mounted",
                        disk.as_deref().map_or_else(
                            || job.subject.device.display().to_string(),
                            |d| autoclear::node(d).display().to_string()
                        ),
                        sharing.join(", ")
                    ));
                } else if job.record.autoclear {
                    let node = disk
                        .as_deref()
                        .map_or_else(|| job.subject.device.clone(), autoclear::node);
                    job.report.message.push_str(&format!(
                        "; loop device {} keeps its autoclear flag cleared (it stays attached \
                         after a umount): `losetup -d {}` detaches it (at once when unused, at \
                         the umount while mounted)",
                        node.display(),
                        quote_path(&node)
                    ));
                }
            }
            Err(e) => {
                push(
                    job,
                    "discard-record",
                    "failed",
                    format!("{e:#}"),
                    None,
                    started,
                );
                job.report.outcome = RepairOutcome::Failed;
                job.report.message = format!("{e:#}");
            }
        }
        job.report.record = None;
    }

    /// The restore of a resumed record left mounts unmounted: say which and why.
    fn restore_failed(&mut self, job: &mut Job, previous: &str) {
        job.report.outcome = RepairOutcome::Failed;
        job.report.message = format!("{previous}; {}", not_mounted_message(job));
    }

    /// Any replay mount (`/run/snapguard/replay-PID`) of this filesystem the record does not
    /// name (a run of an older snapguard, a record written before the mount was named): a
    /// mount nobody knows about, which keeps its superblock alive. Take it away (exactly that
    /// mount, by its mount id).
    fn remove_replay_leftovers(&mut self, job: &mut Job) {
        let run_dir = self.root.path(crate::root::RUN_DIR);
        let sb = job.subject.sb.unwrap_or(job.subject.dev);
        let device = job.subject.device.clone();
        let leftovers: Vec<MountInfo> = self
            .table
            .entries()
            .iter()
            .filter(|m| {
                m.mount_point.parent() == Some(run_dir.as_path())
                    && m.mount_point
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("replay-"))
                    && ((m.major, m.minor) == sb
                        || m.source
                            .as_ref()
                            .and_then(|s| std::fs::canonicalize(s).ok())
                            .is_some_and(|s| s == device))
            })
            .cloned()
            .collect();
        for m in leftovers {
            let started = Instant::now();
            match mountops::unmount_recorded(&m.mount_point, m.mount_id) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(&m.mount_point);
                    push(
                        job,
                        "unmount",
                        "ok",
                        format!(
                            "{} unmounted (left by the interrupted run's log replay)",
                            m.mount_point.display()
                        ),
                        None,
                        started,
                    );
                }
                Err(e) => push(
                    job,
                    "unmount",
                    "failed",
                    format!(
                        "{} (left by the interrupted run's log replay): {e}",
                        m.mount_point.display()
                    ),
                    None,
                    started,
                ),
            }
        }
        if let Ok(table) = load_table(self.root) {
            self.table = table;
        }
    }

    /// §7: a REPAIR that started and never reported: fence, read-only check, stop for a human.
    fn hold_after_interruption(&mut self, job: &mut Job, previous: &str) {
        if self.fence(job).is_ok() {
            let _ = self.check(job, "check");
        }
        job.record.phase = Phase::Held;
        self.save(job);
        job.fence = None;
        job.report.outcome = RepairOutcome::Held;
        job.report.message = format!(
            "{previous}: a repair was interrupted, so the filesystem is left unmounted for a \
             human (never retried automatically); inspect it with `{}`, then `snapguard repair \
             --resume {}` verifies and remounts it",
            checker::read_only_check(job.kind, &job.subject.device).display(),
            quote_path(&job.subject.device)
        );
    }

    // ---- execution ------------------------------------------------------------------------

    fn execute(&mut self, job: &mut Job) {
        job.pending = false;
        job.report.steps.retain(|s| s.result != "planned");
        if let Some(signal) = interrupt::received() {
            job.report.outcome = RepairOutcome::Failed;
            job.report.message = format!(
                "interrupted by {} before this filesystem was started: nothing was changed",
                signal.as_str()
            );
            return;
        }
        if job.boot_check {
            self.apply_boot_check(job);
            return;
        }
        let disk = job.subject.disk_name(self.root);
        let _fsck_lock = match state::fsck_lock(self.root, disk.as_deref()) {
            Ok(lock) => lock,
            Err(e) => {
                job.report.outcome = RepairOutcome::Failed;
                job.report.message = format!("{e}: nothing was changed");
                return;
            }
        };
        job.report.record = Some(
            state::record_path(self.root, job.record.major, job.record.minor)
                .display()
                .to_string(),
        );
        self.save(job);
        if let Err(e) = self.take_out_of_service(job) {
            job.report.message = format!("{e:#}");
            self.rollback(job);
            return;
        }
        // The journal/log as the unmount left it (a mounted ext4 always says needs_recovery).
        if let Ok(offline) = self.scan(&job.subject.device) {
            job.needs_replay = needs_replay(&offline);
        }
        // CHECK (+ REPLAY).
        let verdict = match self.check(job, "check") {
            Ok(v) => v,
            Err(e) => {
                job.report.message = format!("read-only check failed: {e:#}");
                self.rollback(job);
                return;
            }
        };
        let verdict = if job.needs_replay || verdict == Verdict::DirtyLog {
            match self.replay(job) {
                Ok(()) => match self.check(job, "check") {
                    Ok(v) => v,
                    Err(e) => {
                        job.report.message =
                            format!("read-only check after the replay failed: {e:#}");
                        self.rollback(job);
                        return;
                    }
                },
                Err(e) => {
                    job.report.message = format!("journal/log replay failed: {e:#}");
                    self.rollback(job);
                    return;
                }
            }
        } else {
            verdict
        };
        if self.options.tier == Tier::Check {
            let errors = verdict != Verdict::Clean;
            self.restore(job);
            self.finish_restore(
                job,
                if errors {
                    RepairOutcome::ErrorsLeft
                } else {
                    RepairOutcome::NothingToDo
                },
                if errors {
                    "the check found errors; --tier check never writes"
                } else {
                    "the check found nothing to repair"
                },
            );
            return;
        }
        // BACKUP before the first write.
        if let Err(e) = self.backup(job) {
            job.report.message = format!("metadata backup failed, nothing was written: {e:#}");
            self.rollback(job);
            return;
        }
        // REPAIR.
        match self.repair(job) {
            Ok(RepairRun::Ran(
                Verdict::Clean | Verdict::Repaired | Verdict::RepairedRebootNeeded,
            )) => {}
            Ok(RepairRun::NotAvailable) if verdict == Verdict::Clean => {
                self.restore(job);
                self.finish_restore(
                    job,
                    RepairOutcome::NothingToDo,
                    "the read-only check says clean (this filesystem has no automatic repair, \
                     none was needed); mounted as before",
                );
                return;
            }
            Ok(RepairRun::NotAvailable) => {
                self.restore(job);
                self.finish_restore(
                    job,
                    RepairOutcome::ErrorsLeft,
                    "no automatic repair exists for this filesystem (snapguard never runs \
                     `btrfs check --repair`): the errors the check found are left; mounted as before",
                );
                return;
            }
            Ok(RepairRun::Injected) => {
                job.report.message = match interrupt::received() {
                    Some(signal) => format!(
                        "interrupted by {} before the repair command ran: nothing was written",
                        signal.as_str()
                    ),
                    None => {
                        "injected failure before the repair command ran: nothing was written".into()
                    }
                };
                self.rollback(job);
                return;
            }
            Ok(RepairRun::Ran(v)) => {
                // Errors left or an operational error: check again to record the state, hold.
                let _ = self.fence(job);
                let after = self.check(job, "verify").ok();
                self.hold(
                    job,
                    &format!(
                        "the repair ended with {} (read-only check after it: {})",
                        verdict_name(v),
                        after.map(verdict_name).unwrap_or("could not run")
                    ),
                );
                return;
            }
            Err(e) => {
                let _ = self.fence(job);
                self.hold(job, &format!("the repair could not complete: {e:#}"));
                return;
            }
        }
        // VERIFY.
        if !(self.fence(job).is_ok() && self.verify(job)) {
            return;
        }
        self.finish(job);
    }
}

/// What the REPAIR step did.
enum RepairRun {
    /// The repair command ran; its verdict.
    Ran(Verdict),
    /// This filesystem has no automatic repair (btrfs).
    NotAvailable,
    /// A failpoint stopped it before the command started.
    Injected,
}

/// Another repair (or fsck) holds the lock: exit 8.
#[derive(Debug, thiserror::Error)]
#[error("{0}: refusing to start a second repair")]
pub struct ConcurrentRepair(pub String);

impl Machine<'_> {
    /// QUIESCE, UNMOUNT, FENCE.
    fn take_out_of_service(&mut self, job: &mut Job) -> anyhow::Result<()> {
        if job.report.blockers.iter().any(|b| b.kind == "process") || !job.units_to_stop.is_empty()
        {
            self.quiesce(job)?;
        }
        // Re-discover: nothing may hold it now but its own mounts (and, with --trust-fence,
        // unreadable /proc entries, which the fence then proves idle).
        let (major, minor) = job.subject.sb.unwrap_or(job.subject.dev);
        let again = discover::discover(self.root, major, minor)?;
        let (left, _trusted) = blockers(&again, &job.subject, self.options);
        if !left.is_empty() {
            let list: Vec<String> = left.iter().map(blocker_line).collect();
            anyhow::bail!("still in use after quiescing: {}", list.join("; "));
        }
        self.clear_autoclear(job)?;
        job.record.phase = Phase::Unmounting;
        self.save(job);
        let mounts: Vec<RecordedMount> = job.record.mounts.iter().rev().cloned().collect();
        if self.booted {
            // `.automount` units first: an access must not mount it again behind our back.
            for m in &mounts {
                if let Some(unit) = units::automount_unit(self.root, &m.mount_point) {
                    self.stop_unit(job, &unit)?;
                }
            }
        }
        for m in mounts {
            let unit = units::mount_unit(&m.mount_point).filter(|_| self.booted);
            self.step(job, "unmount", |this, job| {
                let command = match &unit {
                    // systemd is PID 1: it unmounts through its `.mount` unit (and so knows
                    // the mount is gone on purpose); never lazy, never forced either. Only
                    // while the path still leads to the planned mount.
                    Some(u) => {
                        mountops::still_the_recorded_mount(&m.mount_point, m.mount_id)?;
                        Some(units::systemctl("stop", u)?)
                    }
                    None => {
                        mountops::unmount_recorded(&m.mount_point, m.mount_id).map_err(
                            |e| match e {
                                mountops::UnmountError::Sys(errno) => anyhow::anyhow!(
                                    "umount {}: {}{}",
                                    m.mount_point.display(),
                                    errno.desc(),
                                    if errno == nix::errno::Errno::EBUSY {
                                        " (something started using it after the scan; nothing \
                                         is forced)"
                                    } else {
                                        ""
                                    }
                                ),
                                replaced => anyhow::anyhow!(replaced),
                            },
                        )?;
                        None
                    }
                };
                // The directory it covered, now visible: the restore mounts on it and on
                // nothing else (a symlink or another directory in its place is refused). Taken
                // at plan time when it could be: then it must be the same directory now.
                let mut m = m.clone();
                let covered = mountops::MountPoint::open(&m.mount_point, m.directory.as_ref());
                if m.directory.is_none() {
                    m.directory = covered.as_ref().ok().map(mountops::MountPoint::identity);
                }
                if let Some(r) = job
                    .record
                    .mounts
                    .iter_mut()
                    .find(|r| r.mount_id == m.mount_id)
                {
                    r.directory = m.directory;
                }
                job.unmounted.push(m.clone());
                this.save(job);
                this.table = load_table(this.root)?;
                if this
                    .table
                    .entries()
                    .iter()
                    .any(|e| e.mount_id == m.mount_id)
                {
                    // Something else was on top at that path: the recorded mount was never
                    // taken away, so there is nothing of ours to mount back there.
                    job.unmounted.retain(|u| u != &m);
                    anyhow::bail!(
                        "{} is still in mountinfo after umount (the path led to another mount)",
                        m.mount_point.display()
                    );
                }
                if let Err(e @ mountops::MountPointError::Replaced { .. }) = &covered {
                    anyhow::bail!(
                        "{} unmounted, but {e} (it changed since the plan)",
                        m.mount_point.display()
                    );
                }
                Ok((
                    match covered {
                        Ok(_) => format!("{} unmounted", m.mount_point.display()),
                        Err(e) => format!(
                            "{} unmounted (the directory under it could not be identified: {e})",
                            m.mount_point.display()
                        ),
                    },
                    command,
                    None,
                ))
            })?;
        }
        self.fence(job)?;
        job.record.phase = Phase::Fenced;
        self.save(job);
        Ok(())
    }

    /// End the holding processes (`--terminate-holders`). Rounds, because a holder's children
    /// inherit its cwd and fds: a shell loop killed mid-iteration leaves its `sleep` holding.
    fn quiesce(&mut self, job: &mut Job) -> anyhow::Result<()> {
        let (major, minor) = job.subject.sb.unwrap_or(job.subject.dev);
        if self.booted && self.options.stop_units {
            // The units as they are now (a holder may have moved or gone since the plan).
            let now = discover::discover(self.root, major, minor)?;
            let holder_units: Vec<&str> = now
                .holders
                .processes
                .iter()
                .filter_map(|p| p.unit.as_deref())
                .collect();
            if let Decision::Stop(list) =
                units::decide(true, true, self.own_unit.as_deref(), &holder_units)
            {
                for unit in list {
                    self.stop_unit(job, &unit)?;
                }
            }
        }
        if !self.options.terminate_holders {
            job.record.phase = Phase::Quiesced;
            self.save(job);
            return Ok(());
        }
        let proc_dir = self.root.path(PROC);
        let grace = self.options.grace;
        let me = std::process::id();
        self.step(job, "quiesce", |this, _| {
            let mut done = Vec::new();
            for _round in 0..5 {
                // Fresh identities (pid + start time), re-checked through the pidfd in `end`.
                let discovery = discover::discover(this.root, major, minor)?;
                let holders: Vec<_> = discovery
                    .holders
                    .processes
                    .iter()
                    .filter(|h| h.pid != me)
                    .collect();
                if holders.is_empty() {
                    return Ok((format!("ended: {}", done.join(", ")), None, None));
                }
                for holder in holders {
                    match quiesce::end(&proc_dir, holder, grace) {
                        Ended::Survived(why) => anyhow::bail!(
                            "pid {} ({}) could not be ended: {why}",
                            holder.pid,
                            holder.command
                        ),
                        how => done.push(format!("pid {} {}", holder.pid, how.label())),
                    }
                }
            }
            anyhow::bail!(
                "processes keep appearing on it after 5 rounds: {}",
                done.join(", ")
            )
        })?;
        job.record.phase = Phase::Quiesced;
        self.save(job);
        Ok(())
    }

    /// `systemctl stop UNIT`, recorded in the state record BEFORE it is stopped: a crash
    /// right after still finds it there, and the next run's rollback starts it again.
    fn stop_unit(&mut self, job: &mut Job, unit: &str) -> anyhow::Result<()> {
        if !job.record.stopped_units.iter().any(|u| u == unit) {
            job.record.stopped_units.push(unit.to_string());
        }
        self.save(job);
        let unit = unit.to_string();
        self.step(job, "stop-unit", |_, _| {
            let command = units::systemctl("stop", &unit)?;
            Ok((format!("{unit} stopped"), Some(command), Some(0)))
        })
    }

    /// Start again every unit this run (or the interrupted run of the record) stopped, last
    /// stopped first; only once every mount is back (a service started on an empty mount
    /// point would write into the parent filesystem).
    fn restart_units(&mut self, job: &mut Job) {
        let stopped: Vec<String> = job.record.stopped_units.iter().rev().cloned().collect();
        for unit in stopped {
            let started = Instant::now();
            if !self.booted {
                push(
                    job,
                    "start-unit",
                    "failed",
                    format!("{unit}: systemd is not running, it cannot be started"),
                    None,
                    started,
                );
                continue;
            }
            match units::systemctl("start", &unit) {
                Ok(command) => {
                    job.record.stopped_units.retain(|u| u != &unit);
                    push(
                        job,
                        "start-unit",
                        "ok",
                        format!("{unit} started"),
                        Some(command),
                        started,
                    );
                }
                Err(e) => push(
                    job,
                    "start-unit",
                    "failed",
                    format!("{e:#}"),
                    Some(units::command("start", &unit).display()),
                    started,
                ),
            }
            self.save(job);
        }
        if !job.record.stopped_units.is_empty() {
            let line = format!(
                "units stopped by this repair could not be started again: {}",
                job.record.stopped_units.join(", ")
            );
            job.report.message = if job.report.message.is_empty() {
                line
            } else {
                format!("{}; {line}", job.report.message)
            };
        }
    }

    /// FENCE: no mount of the superblock anywhere, then an O_EXCL open of the device.
    fn fence(&mut self, job: &mut Job) -> anyhow::Result<()> {
        if job.fence.is_some() {
            return Ok(());
        }
        let device = job.subject.device.clone();
        self.step(job, "fence", |_, job| {
            let fence = Fence::take(&device).with_context(|| {
                format!(
                    "{} is still in use (O_EXCL open refused): a mount in another namespace, \
                     a lazy unmount, swap, a loop or dm device on it",
                    device.display()
                )
            })?;
            job.fence = Some(fence);
            Ok((format!("{} held with O_EXCL", device.display()), None, None))
        })
    }

    fn release_fence(job: &mut Job) {
        if let Some(fence) = job.fence.take() {
            fence.release();
        }
    }

    /// A read-only check under the fence.
    fn check(&mut self, job: &mut Job, name: &str) -> anyhow::Result<Verdict> {
        let command = checker::read_only_check(job.kind, &job.subject.device);
        let timeout = self.options.check_timeout;
        let kind = job.kind;
        let mut verdict = Verdict::OperationalError;
        let device = job.subject.device.clone();
        // Before the first write a signal stops a read-only check (and the run rolls back);
        // after it, the check decides between back in service and held, so it runs to its end.
        let limits = checker::Limits {
            stop_on_interrupt: job.record.phase < Phase::RepairStarted,
            ..checker::Limits::new(timeout)
        };
        self.step(job, name, |_, job| {
            // btrfs check opens the device with O_EXCL itself: it cannot run under our fence,
            // and its own exclusive open is the fence while it runs.
            let refence = kind == FsKind::Btrfs && job.fence.is_some();
            if refence {
                Self::release_fence(job);
            }
            let run = checker::run_with(&command, limits, None);
            if refence {
                job.fence = Some(Fence::take(&device)?);
            }
            let run = run?;
            if limits.stop_on_interrupt {
                if let Some(signal) = interrupt::received() {
                    anyhow::bail!(
                        "interrupted by {} during the read-only check ({} was stopped: it only \
                         reads)",
                        signal.as_str(),
                        command.program
                    );
                }
            }
            if run.timed_out {
                anyhow::bail!(
                    "{} did not finish within --check-timeout ({}) and was stopped",
                    command.program,
                    seconds(timeout)
                );
            }
            verdict = checker::interpret(kind, CheckPhase::ReadOnly, run.status, &run.output);
            let detail = format!("{}: {}", verdict_name(verdict), last_line(&run.output));
            if verdict == Verdict::OperationalError {
                anyhow::bail!("{} could not check: {detail}", command.program);
            }
            Ok((detail, Some(command.display()), run.status.code()))
        })?;
        Ok(verdict)
    }

    /// REPLAY: the journal or log, so that the check sees current metadata.
    fn replay(&mut self, job: &mut Job) -> anyhow::Result<()> {
        let kind = job.kind;
        let device = job.subject.device.clone();
        let timeout = self.options.repair_timeout;
        let replay = match kind {
            FsKind::Btrfs => Some(checker::Replay::MountUnmount),
            _ => checker::replay(kind, &device),
        };
        let Some(replay) = replay else {
            return Ok(());
        };
        let run_dir = self.root.path(crate::root::RUN_DIR);
        let fs_type = job.record.fstype.clone();
        self.step(job, "replay", |this, job| match replay {
            checker::Replay::Command(command) => {
                let run = checker::run(&command, timeout, None)?;
                if run.timed_out {
                    anyhow::bail!(
                        "{} did not finish within --repair-timeout ({}) and was stopped",
                        command.program,
                        seconds(timeout)
                    );
                }
                let v = checker::interpret(kind, CheckPhase::Replay, run.status, &run.output);
                if matches!(v, Verdict::OperationalError | Verdict::Cancelled) {
                    anyhow::bail!("{}: {}", verdict_name(v), last_line(&run.output));
                }
                Ok((
                    format!("{}: {}", verdict_name(v), last_line(&run.output)),
                    Some(command.display()),
                    run.status.code(),
                ))
            }
            checker::Replay::MountUnmount => {
                // The kernel replays the log at mount: a private temporary mount point under
                // /run, fence dropped just before and taken again right after. The record names
                // the mount before it exists, so a crash while it is mounted is undone by the
                // next run.
                let dir = run_dir.join(format!("replay-{}", std::process::id()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create '{}'", dir.display()))?;
                job.record.replay_mount = Some(dir.clone());
                this.save(job);
                Self::release_fence(job);
                let request = mountops::MountRequest {
                    source: device.clone(),
                    target: dir.clone(),
                    fs_type: fs_type.clone(),
                    flags: nix::mount::MsFlags::MS_NOSUID
                        | nix::mount::MsFlags::MS_NODEV
                        | nix::mount::MsFlags::MS_NOEXEC,
                    data: String::new(),
                };
                let mounted = mountops::mount(&request);
                if mounted.is_ok() && failpoint::armed("replay-mounted") == Some(Action::Crash) {
                    std::process::exit(i32::from(super::exit::OPERATIONAL));
                }
                let unmounted = mounted.as_ref().ok().map(|()| mountops::unmount(&dir));
                mounted.context("mount to replay the log")?;
                if let Some(Err(e)) = unmounted {
                    anyhow::bail!(
                        "umount {} after the replay mount: {} (the record names it: the next \
                         run unmounts it)",
                        dir.display(),
                        e.desc()
                    );
                }
                let _ = std::fs::remove_dir(&dir);
                job.record.replay_mount = None;
                this.save(job);
                job.fence = Some(Fence::take(&device)?);
                Ok((
                    "the kernel replayed the log (mount + umount on a private directory)".into(),
                    None,
                    None,
                ))
            }
        })
    }

    /// BACKUP: metadata image on another filesystem, before the first write.
    fn backup(&mut self, job: &mut Job) -> anyhow::Result<()> {
        let dir = self.options.backup_dir.clone();
        let base = self.backup_path(job, "");
        let Some(command) = checker::metadata_backup(job.kind, &job.subject.device, &base) else {
            push(
                job,
                "backup",
                "skipped",
                "no metadata image tool for this filesystem".into(),
                None,
                Instant::now(),
            );
            return Ok(());
        };
        let timeout = self.options.repair_timeout;
        let mounts = job.record.mounts.clone();
        let sb = job.subject.sb;
        let mut result = None;
        self.step(job, "backup", |this, _| {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create '{}'", dir.display()))?;
            // Never on the filesystem being repaired (it is unmounted now, so a path under one of
            // its mount points lands on the parent: hidden once it is mounted again).
            let canonical = std::fs::canonicalize(&dir)?;
            if mounts
                .iter()
                .any(|m| canonical.starts_with(&m.mount_point) && m.mount_point != Path::new("/"))
            {
                anyhow::bail!(
                    "the backup directory {} is under the filesystem being repaired",
                    canonical.display()
                );
            }
            if let (Some(sb), Ok(id)) = (sb, crate::sys::statx::mount_id_of_path(&canonical)) {
                let table = load_table(this.root)?;
                if table
                    .entries()
                    .iter()
                    .any(|m| u64::from(m.mount_id) == id && (m.major, m.minor) == sb)
                {
                    anyhow::bail!("the backup directory is on the filesystem being repaired");
                }
            }
            let run = checker::run(&command, timeout, None)?;
            if run.timed_out {
                anyhow::bail!(
                    "{} did not finish within --repair-timeout ({}) and was stopped",
                    command.program,
                    seconds(timeout)
                );
            }
            if !run.status.success() {
                anyhow::bail!(
                    "{} {}: {}",
                    command.program,
                    match run.status.code() {
                        Some(code) => format!("exited with status {code}"),
                        None => "was killed by a signal".to_string(),
                    },
                    last_line(&run.output)
                );
            }
            let written = newest_with_prefix(&base);
            let bytes = written
                .as_ref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .unwrap_or(0);
            if bytes == 0 {
                anyhow::bail!("{} wrote nothing", command.program);
            }
            let path = written.unwrap_or(base.clone());
            result = Some((path.clone(), bytes));
            Ok((
                format!("{} ({} bytes)", path.display(), bytes),
                Some(command.display()),
                run.status.code(),
            ))
        })?;
        if let Some((path, bytes)) = result {
            job.report.backup = Some(BackupReport {
                path: path.display().to_string(),
                bytes,
                undo_file: None,
            });
        }
        Ok(())
    }

    /// REPAIR at the allowed tier. The fence is dropped right before e2fsck and xfs_repair
    /// (they take O_EXCL themselves) and kept for fsck.fat (it takes nothing).
    fn repair(&mut self, job: &mut Job) -> anyhow::Result<RepairRun> {
        let zero_log = self.zero_log_allowed(job);
        let undo = match job.kind {
            FsKind::Ext => Some(self.backup_path(job, ".e2undo")),
            _ => None,
        };
        let Some(command) = checker::repair(
            job.kind,
            &job.subject.device,
            self.options.tier,
            zero_log,
            undo.as_deref(),
        ) else {
            return Ok(RepairRun::NotAvailable);
        };
        job.record.phase = Phase::RepairStarted;
        job.record.steps = job.report.steps.clone();
        job.record.steps.push(RepairStep {
            step: "repair".into(),
            result: "started".into(),
            detail: "no result recorded: the run was interrupted".into(),
            command: Some(command.display()),
            exit_status: None,
            duration_ms: 0,
        });
        self.save(job);
        match failpoint::armed("repair") {
            Some(Action::Crash) => std::process::exit(i32::from(super::exit::OPERATIONAL)),
            Some(Action::Pause) => failpoint::pause("repair"),
            Some(Action::Fail) => {
                push(
                    job,
                    "repair",
                    "failed",
                    "injected failure (SNAPGUARD_FAILPOINT) before the command ran".into(),
                    Some(command.display()),
                    Instant::now(),
                );
                return Ok(RepairRun::Injected);
            }
            None => {}
        }
        if let Some(signal) = interrupt::received() {
            push(
                job,
                "repair",
                "skipped",
                format!(
                    "interrupted by {} before the command ran: nothing was written",
                    signal.as_str()
                ),
                Some(command.display()),
                Instant::now(),
            );
            return Ok(RepairRun::Injected);
        }
        if job.kind != FsKind::Fat {
            Self::release_fence(job);
        }
        let started = Instant::now();
        let progress = super::progress::Progress::new(&format!(
            "{} {}",
            command.program,
            job.subject.device.display()
        ));
        let mut on_progress = |f: f64| progress.set(f);
        let run = checker::run(
            &command,
            self.options.repair_timeout,
            Some(&mut on_progress),
        );
        progress.finish();
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                push(
                    job,
                    "repair",
                    "failed",
                    format!("{e:#}"),
                    Some(command.display()),
                    started,
                );
                return Err(e);
            }
        };
        let verdict = checker::interpret(job.kind, CheckPhase::Repair, run.status, &run.output);
        let ok = matches!(
            verdict,
            Verdict::Clean | Verdict::Repaired | Verdict::RepairedRebootNeeded
        );
        let stopped = if run.timed_out {
            format!(
                "stopped at --repair-timeout ({}): ",
                seconds(self.options.repair_timeout)
            )
        } else {
            String::new()
        };
        push_full(
            job,
            "repair",
            if ok { "ok" } else { "failed" },
            format!(
                "{stopped}{}: {}",
                verdict_name(verdict),
                last_line(&run.output)
            ),
            Some(command.display()),
            run.status.code(),
            started,
        );
        if let (Some(undo), Some(backup)) = (&undo, job.report.backup.as_mut()) {
            if undo.exists() {
                backup.undo_file = Some(undo.display().to_string());
            }
        }
        if let Some(signal) = interrupt::received() {
            push(
                job,
                "interrupt",
                "received",
                format!(
                    "{} during the repair command: it was allowed to finish (never killed \
                     mid-write); the read-only check decides between mounting it again and \
                     holding it",
                    signal.as_str()
                ),
                None,
                Instant::now(),
            );
        }
        job.record.phase = Phase::Repaired;
        self.save(job);
        Ok(RepairRun::Ran(verdict))
    }

    /// VERIFY: the read-only check must say clean; otherwise hold.
    fn verify(&mut self, job: &mut Job) -> bool {
        let verdict = if failpoint::armed("verify").is_some() {
            push(
                job,
                "verify",
                "failed",
                "injected failure (SNAPGUARD_FAILPOINT)".into(),
                None,
                Instant::now(),
            );
            Err(anyhow::anyhow!("injected failure"))
        } else {
            self.check(job, "verify")
        };
        match verdict {
            Ok(Verdict::Clean) => {
                job.record.phase = Phase::Verified;
                self.save(job);
                true
            }
            Ok(v) => {
                self.hold(
                    job,
                    &format!("the check after the repair says {}", verdict_name(v)),
                );
                false
            }
            Err(e) => {
                self.hold(
                    job,
                    &format!("the check after the repair could not run: {e:#}"),
                );
                false
            }
        }
    }

    /// HOLD_UNMOUNTED: loud, record kept, exit 4.
    fn hold(&mut self, job: &mut Job, why: &str) {
        Self::release_fence(job);
        job.record.phase = Phase::Held;
        self.save(job);
        job.report.outcome = RepairOutcome::Held;
        job.report.message = format!(
            "{why}; {} is LEFT UNMOUNTED on purpose (a known-bad filesystem is not put back for a \
             backup); mount points that were on it: {}; see `snapguard repair --status`, repair \
             by hand (`{}`), then `snapguard repair --resume {}` verifies and remounts it",
            job.subject.device.display(),
            job.record
                .mounts
                .iter()
                .map(|m| m.mount_point.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            checker::manual_repair(job.kind, &job.subject.device).display(),
            quote_path(&job.subject.device)
        );
        if !job.record.stopped_units.is_empty() {
            job.report.message.push_str(&format!(
                "; the units it stopped stay stopped until then: {}",
                job.record.stopped_units.join(", ")
            ));
        }
        if job.record.autoclear {
            job.report.message.push_str(&format!(
                "; loop device {} stays attached until then (its autoclear flag is cleared while \
                 unmounted and set again once it is mounted)",
                job.autoclear.as_ref().map_or_else(
                    || job.subject.device.display().to_string(),
                    |l| l.describe()
                )
            ));
        }
        tracing::error!("{}", job.report.message);
    }

    /// RESTORE, freeze test, final scan: the end of a successful repair.
    fn finish(&mut self, job: &mut Job) {
        self.restore(job);
        self.finish_restore(
            job,
            RepairOutcome::Repaired,
            "repaired, verified and back in service",
        );
    }

    fn finish_restore(&mut self, job: &mut Job, outcome: RepairOutcome, message: &str) {
        if !job.unmounted.is_empty() {
            job.report.outcome = RepairOutcome::Failed;
            job.report.message = not_mounted_message(job);
            return;
        }
        job.record.phase = Phase::Done;
        self.save(job);
        let signal = interrupt::received();
        if outcome == RepairOutcome::Repaired && self.options.freeze_test && signal.is_none() {
            self.freeze_test(job);
        }
        if let Ok(after) = self.scan(&job.subject.device) {
            job.report.state_after = Some(describe_scan(&after));
        }
        job.report.outcome = outcome;
        if job.report.message.is_empty() || outcome == RepairOutcome::Repaired {
            job.report.message = message.into();
        } else {
            job.report.message = format!("{}; {message}", job.report.message);
        }
        if let Some(signal) = signal {
            job.report.message.push_str(&format!(
                "; {} arrived during the repair command, which was allowed to finish (the \
                 freeze test was skipped)",
                signal.as_str()
            ));
        }
        if !job.report.differences.is_empty() {
            job.report
                .message
                .push_str("; the mounts differ from before (see `mount differs`)");
        }
    }

    /// Put back every mount this run took away, parents first, with the recorded options.
    fn restore(&mut self, job: &mut Job) {
        Self::release_fence(job);
        self.remount(job);
        if job.unmounted.is_empty() {
            self.set_autoclear_again(job);
            self.restart_units(job);
        }
    }

    /// Before the first umount: a loop device that detaches itself at its last close
    /// (`mount -o loop`) gets its flag cleared, so that it outlives the umount. The record says
    /// so before the flag is touched (a crash right after still sets it again).
    fn clear_autoclear(&mut self, job: &mut Job) -> anyhow::Result<()> {
        // As it is now (the plan's view may be minutes old).
        let disk = job.subject.disk_name(self.root);
        let found = autoclear::find(self.root, disk.as_deref())?;
        let Some(l) = found else {
            return self.share_autoclear(job, disk.as_deref());
        };
        // Which file it reads, before anything changes: a later run acts on the record only
        // while the same number reads the same file (loop numbers are reused).
        job.record.loop_image = Some(autoclear::image(&l)?);
        job.record.autoclear = true;
        self.save(job);
        self.step(job, "autoclear", |_, _| {
            autoclear::set(&l.node, false)?;
            Ok((
                format!(
                    "loop device {}: autoclear cleared while unmounted (set again after the mount)",
                    l.describe()
                ),
                None,
                None,
            ))
        })?;
        job.autoclear = Some(l);
        Ok(())
    }

    /// The flag is cleared already because another repair holds a filesystem of the same loop
    /// disk (a partition) with it cleared: this record shares that duty, so that whichever
    /// of them is mounted again last sets it (never while the other is unmounted).
    fn share_autoclear(&mut self, job: &mut Job, disk: Option<&str>) -> anyhow::Result<()> {
        let Some(disk) = disk else {
            return Ok(());
        };
        let others = self.autoclear_holds_on(job, disk);
        if others.is_empty() {
            return Ok(());
        }
        let l = AutoclearLoop {
            node: autoclear::node(disk),
            image: autoclear::backing_file(self.root, disk),
        };
        job.record.loop_image = Some(autoclear::image(&l)?);
        job.record.autoclear = true;
        self.save(job);
        push(
            job,
            "autoclear",
            "ok",
            format!(
                "loop device {}: autoclear already cleared by the repair of {} on the same disk \
                 (set again once every filesystem on it is mounted)",
                l.describe(),
                others.join(", ")
            ),
            None,
            Instant::now(),
        );
        job.autoclear = Some(l);
        Ok(())
    }

    /// The devices of other unfinished repairs of the loop disk `disk` that cleared (or share)
    /// its autoclear flag.
    fn autoclear_holds_on(&self, job: &Job, disk: &str) -> Vec<String> {
        let Ok(records) = state::records(self.root) else {
            return Vec::new();
        };
        records
            .readable
            .iter()
            .map(|(_, r)| r)
            .filter(|r| (r.major, r.minor) != (job.record.major, job.record.minor))
            .filter(|r| r.autoclear && !r.phase.is_final())
            .filter(|r| subject::disk_of(self.root, (r.major, r.minor)).as_deref() == Some(disk))
            .map(|r| r.device.display().to_string())
            .collect()
    }

    /// Once the filesystem is mounted again: set the autoclear flag this run (or the
    /// interrupted run of the record) cleared. Never while it is unmounted: with no mount
    /// holding the device, our own close would detach it.
    fn set_autoclear_again(&mut self, job: &mut Job) {
        if !job.record.autoclear {
            return;
        }
        if let Ok(table) = load_table(self.root) {
            self.table = table;
        }
        if mounted_again(&self.table, &job.record).is_empty() {
            return;
        }
        let started = Instant::now();
        let Some(disk) = job.subject.disk_name(self.root) else {
            push(
                job,
                "autoclear",
                "failed",
                format!(
                    "cannot find the loop device of {} to set autoclear again",
                    job.subject.device.display()
                ),
                None,
                started,
            );
            return;
        };
        let node = autoclear::node(&disk);
        let others = self.autoclear_holds_on(job, &disk);
        if !others.is_empty() {
            // Another filesystem of the same disk is held unmounted with the flag cleared: set
            // now, the next umount of this one would detach the disk under it. Its record sets
            // the flag once it is mounted again.
            job.record.autoclear = false;
            push(
                job,
                "autoclear",
                "ok",
                format!(
                    "loop device {}: autoclear left cleared while the repair of {} on the same \
                     disk is unfinished (its record sets it again once mounted)",
                    node.display(),
                    others.join(", ")
                ),
                None,
                started,
            );
            self.save(job);
            return;
        }
        match autoclear::set(&node, true) {
            Ok(()) => {
                job.record.autoclear = false;
                push(
                    job,
                    "autoclear",
                    "ok",
                    format!(
                        "loop device {}: autoclear set again (a umount detaches it, as before)",
                        node.display()
                    ),
                    None,
                    started,
                );
                self.save(job);
            }
            Err(e) => {
                let line = format!(
                    "{e}: it stays attached after a umount; `losetup -d {}` detaches it (at the \
                     umount while mounted)",
                    quote_path(&node)
                );
                push(job, "autoclear", "failed", line.clone(), None, started);
                self.save(job);
                self.messages.push(line);
            }
        }
    }

    /// The mounts of [`Self::restore`]: through `systemctl start` for a `.mount` unit with a
    /// unit file when systemd is PID 1, else mount(2) with the recorded options.
    fn remount(&mut self, job: &mut Job) {
        if job.unmounted.is_empty() {
            return;
        }
        // Before the first write a restore keeps the record's phase (Unmounting, Fenced): if it
        // fails or is killed, the next run knows nothing was written and mounts them back
        // (§7), instead of verifying a filesystem that was never repaired and holding it.
        if job.record.phase >= Phase::RepairStarted {
            job.record.phase = Phase::Restoring;
            self.save(job);
        }
        let device = job.subject.device.clone();
        let mut order: Vec<RecordedMount> = job.unmounted.clone();
        // Parents before children: recorded order is mountinfo order; unmounted is reversed.
        order.sort_by_key(|m| job.record.mounts.iter().position(|r| r == m));
        let injected = failpoint::armed("restore").is_some();
        let mut primary: Option<MountInfo> = None;
        let mut replaced = false;
        for m in order {
            let before = MountInfo::from(&m);
            let unit =
                units::startable_mount_unit(self.root, &m.mount_point).filter(|_| self.booted);
            let result = if injected {
                Err(anyhow::anyhow!("injected failure (SNAPGUARD_FAILPOINT)"))
            } else {
                mount_back(&before, &m, primary.as_ref(), &device, unit.as_deref()).or_else(|e| {
                    if e.downcast_ref::<mountops::MountPointError>().is_some() {
                        Err(e)
                    } else {
                        mount_back(&before, &m, primary.as_ref(), &device, unit.as_deref())
                    }
                })
            };
            if let Err(e) = &result {
                replaced |= e.downcast_ref::<mountops::MountPointError>().is_some();
            }
            let started = Instant::now();
            let command = unit
                .as_deref()
                .map(|u| units::command("start", u).display());
            match result {
                Ok(()) => {
                    job.unmounted.retain(|u| u != &m);
                    let diffs = self.compare(&before);
                    let detail = if diffs.is_empty() {
                        format!("{} mounted as before", m.mount_point.display())
                    } else {
                        format!(
                            "{} mounted; differs: {}",
                            m.mount_point.display(),
                            diffs.join("; ")
                        )
                    };
                    job.report.differences.extend(diffs);
                    push(job, "restore", "ok", detail, command, started);
                    primary.get_or_insert(before);
                }
                Err(e) => {
                    push(
                        job,
                        "restore",
                        "failed",
                        format!("{}: {e:#}", m.mount_point.display()),
                        command,
                        started,
                    );
                }
            }
        }
        if replaced {
            job.mount_point_replaced = true;
            // A mount point that is not the directory it was is for a human to look at: the
            // record is held, never resumed into the wrong place.
            job.record.phase = Phase::Held;
            self.save(job);
        }
        if let Ok(table) = load_table(self.root) {
            self.table = table;
        }
    }

    fn compare(&mut self, before: &MountInfo) -> Vec<String> {
        match load_table(self.root) {
            Ok(table) => {
                let diffs = match table.by_mount_point(&before.mount_point) {
                    Some(after) => mountops::differences(before, after),
                    None => vec!["not in mountinfo after mount".into()],
                };
                self.table = table;
                diffs
            }
            Err(e) => vec![format!("cannot read mountinfo to verify: {e:#}")],
        }
    }

    /// Failure before any write: put everything back as it was.
    fn rollback(&mut self, job: &mut Job) {
        if let Some(signal) = interrupt::received() {
            push(
                job,
                "interrupt",
                "received",
                format!(
                    "{} before the first write: rolling back (mounts and units as they were)",
                    signal.as_str()
                ),
                None,
                Instant::now(),
            );
            job.report.message = format!(
                "interrupted by {}: rolled back before the first write, nothing was written ({})",
                signal.as_str(),
                job.report.message
            );
        }
        // Every rollback happens before the first write (an injected repair failure stops
        // before its command runs): the record must say so whatever happens next.
        if job.record.phase > Phase::Fenced {
            job.record.phase = Phase::Fenced;
        }
        self.restore(job);
        let restored = job.unmounted.is_empty();
        push(
            job,
            "rollback",
            if restored { "ok" } else { "failed" },
            if restored {
                "mounted as before; nothing was written"
            } else {
                "could not mount everything again"
            }
            .into(),
            None,
            Instant::now(),
        );
        if restored {
            job.record.phase = Phase::RolledBack;
        }
        self.save(job);
        job.report.outcome = RepairOutcome::Failed;
        if !restored {
            if job.mount_point_replaced {
                // A plain rerun would be refused the same way: say what to look at.
                let why = not_mounted_message(job);
                job.report
                    .message
                    .push_str(&format!("; and the rollback {why}"));
            } else {
                job.report.message.push_str(&format!(
                    "; and the rollback could not mount everything again (nothing was written): \
                     `snapguard repair {}` mounts them back as recorded",
                    quote_path(&job.subject.device)
                ));
            }
        }
    }

    fn apply_boot_check(&mut self, job: &mut Job) {
        let Some(plan) = job.report.boot_check.clone() else {
            return;
        };
        job.report.outcome = RepairOutcome::BootCheckScheduled;
        if plan.manual {
            push(
                job,
                "boot-check",
                "skipped",
                "to be done by hand (printed above)".into(),
                None,
                Instant::now(),
            );
            return;
        }
        for c in &plan.commands {
            let started = Instant::now();
            let words: Vec<String> = shell_words(c);
            let Some((program, args)) = words.split_first() else {
                continue;
            };
            let command = checker::Command {
                program: program.clone(),
                args: args.iter().map(Into::into).collect(),
            };
            match checker::run(&command, self.options.check_timeout, None) {
                Ok(run) if run.status.success() => push(
                    job,
                    "boot-check",
                    "ok",
                    "scheduled".into(),
                    Some(c.clone()),
                    started,
                ),
                Ok(run) => {
                    push(
                        job,
                        "boot-check",
                        "failed",
                        last_line(&run.output).into(),
                        Some(c.clone()),
                        started,
                    );
                    job.report.outcome = RepairOutcome::Failed;
                }
                Err(e) => {
                    push(
                        job,
                        "boot-check",
                        "failed",
                        format!("{e:#}"),
                        Some(c.clone()),
                        started,
                    );
                    job.report.outcome = RepairOutcome::Failed;
                }
            }
        }
        if let Some(b) = job.report.boot_check.as_mut() {
            b.applied = job.report.outcome == RepairOutcome::BootCheckScheduled;
        }
    }

    /// The point of the repair: can the next backup freeze it? `snapguard freeze-test` on the
    /// first mount point, as a child (its guardian and record work as in any other run).
    fn freeze_test(&mut self, job: &mut Job) {
        let Some(mount) = job.record.mounts.first().map(|m| m.mount_point.clone()) else {
            return;
        };
        let started = Instant::now();
        let exe = PathBuf::from("/proc/self/exe");
        let child = crate::sys::spawn::Spawn::new(crate::sys::spawn::Program::Path(&exe))
            .arg0("snapguard")
            .args(["-q", "freeze-test", "--json"])
            .arg(mount.as_os_str())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .process_group(true)
            .spawn()
            .and_then(|c| c.wait_with_output());
        let verdict = child.ok().and_then(|out| {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            doc["mounts"].as_array()?.first()?["verdict"]
                .as_str()
                .map(str::to_string)
        });
        let result = if verdict.as_deref() == Some("freezable") {
            "ok"
        } else {
            "failed"
        };
        let detail = verdict
            .clone()
            .unwrap_or_else(|| "freeze-test did not report".into());
        push(
            job,
            "freeze-test",
            result,
            detail,
            Some(format!("snapguard freeze-test {}", quote_path(&mount))),
            started,
        );
        job.report.freeze_test = verdict;
    }

    fn save(&mut self, job: &mut Job) {
        job.record.steps = job.report.steps.clone();
        if let Err(e) = job.record.save(self.root) {
            // The record is the restart's memory; without it, say so loudly but go on: stopping
            // half-way would be worse.
            let line = format!("{e:#}");
            tracing::error!("{line}");
            if !self.messages.contains(&line) {
                self.messages.push(line);
            }
        }
    }

    /// Run one step with its failpoint, timing and report line.
    fn step<F>(&mut self, job: &mut Job, name: &str, body: F) -> anyhow::Result<()>
    where
        F: FnOnce(&mut Self, &mut Job) -> anyhow::Result<(String, Option<String>, Option<i32>)>,
    {
        let started = Instant::now();
        let signal = interrupt::received().filter(|_| job.record.phase < Phase::RepairStarted);
        let result = match failpoint::armed(name) {
            _ if signal.is_some() => Err(anyhow::anyhow!(
                "interrupted by {} before this step: nothing more is done",
                signal.map_or("a signal", |s| s.as_str())
            )),
            Some(Action::Crash) => {
                self.save(job);
                std::process::exit(i32::from(super::exit::OPERATIONAL));
            }
            Some(Action::Pause) => {
                self.save(job);
                failpoint::pause(name);
                match interrupt::received() {
                    Some(s) => Err(anyhow::anyhow!(
                        "interrupted by {} before this step: nothing more is done",
                        s.as_str()
                    )),
                    None => body(self, job),
                }
            }
            Some(Action::Fail) => Err(anyhow::anyhow!(
                "injected failure (SNAPGUARD_FAILPOINT={name})"
            )),
            None => body(self, job),
        };
        match result {
            Ok((detail, command, status)) => {
                push_full(job, name, "ok", detail, command, status, started);
                Ok(())
            }
            Err(e) => {
                push_full(job, name, "failed", format!("{e:#}"), None, None, started);
                Err(e)
            }
        }
    }
}

/// Mount one recorded mount again: the first as a primary mount of the device, the others as
/// binds of it where they can be reached from it. The mount point is opened first (no symlink
/// on the way) and must be the directory the unmount uncovered; it is mounted on through its
/// fd, so its path is never resolved again.
fn mount_back(
    before: &MountInfo,
    recorded: &RecordedMount,
    primary: Option<&MountInfo>,
    device: &Path,
    unit: Option<&str>,
) -> anyhow::Result<()> {
    // The directory the unmount uncovered, and nothing else: a replaced mount point is refused
    // before anything mounts on it (systemd's unit included).
    let at = mountops::MountPoint::open(&recorded.mount_point, recorded.directory.as_ref())?;
    if let Some(unit) = unit {
        // systemd mounts it from its unit (fstab's options); the caller compares the result
        // with the recorded line like any other mount.
        units::systemctl("start", unit)?;
        return mountops::apply_propagation(&before.mount_point, &before.optional_fields);
    }
    let request = match primary.and_then(|p| mountops::bind_request(before, p)) {
        Some(bind) => bind,
        None => mountops::primary_request(before, device),
    };
    mountops::mount_on(&request, &at)?;
    at.apply_propagation(&before.optional_fields)
}

/// A job that only reports (`--discard-record` of a TARGET no record names): nothing to run.
fn report_only(target: &Path, report: RepairTarget) -> Job {
    Job {
        subject: Subject {
            name: target.display().to_string(),
            device: target.to_path_buf(),
            dev: (0, 0),
            sb: None,
            fs_type: None,
            mounts: Vec::new(),
        },
        kind: FsKind::Ext,
        report,
        record: Record {
            version: state::RECORD_VERSION,
            pid: 0,
            start_time: 0,
            device: target.to_path_buf(),
            major: 0,
            minor: 0,
            kind: FsKind::Ext,
            fstype: String::new(),
            uuid: None,
            mounts: Vec::new(),
            stopped_units: Vec::new(),
            phase: Phase::Discovered,
            replay_mount: None,
            autoclear: false,
            loop_image: None,
            steps: Vec::new(),
            updated: 0,
        },
        scan: None,
        fence: None,
        unmounted: Vec::new(),
        needs_replay: false,
        backup_stem: None,
        boot_check: false,
        pending: false,
        mount_point_replaced: false,
        units_to_stop: Vec::new(),
        autoclear: None,
    }
}

/// Why a restore left mounts unmounted, and what the admin does about it: one line.
fn not_mounted_message(job: &Job) -> String {
    let why: Vec<String> = job
        .report
        .steps
        .iter()
        .filter(|s| s.step == "restore" && s.result == "failed")
        .map(|s| s.detail.clone())
        .collect();
    let device = quote_path(&job.subject.device);
    let remedy = if job.mount_point_replaced {
        format!(
            "check what replaced it; put the original directory back and `snapguard repair \
             --resume {device}` mounts it, or mount it by hand with the recorded options \
             (`snapguard repair --status`) and `--resume` closes the record"
        )
    } else {
        format!("fix the cause, then `snapguard repair --resume {device}`")
    };
    let what = if why.is_empty() {
        job.unmounted
            .iter()
            .map(|m| m.mount_point.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        why.join("; ")
    };
    format!(
        "could not mount again: {what}; {} is left unmounted, the record ({}) keeps the original \
         mount lines: {remedy}",
        job.subject.device.display(),
        job.record.phase.name(),
    )
}

fn push(
    job: &mut Job,
    step: &str,
    result: &str,
    detail: String,
    command: Option<String>,
    started: Instant,
) {
    push_full(job, step, result, detail, command, None, started);
}

fn push_full(
    job: &mut Job,
    step: &str,
    result: &str,
    detail: String,
    command: Option<String>,
    exit_status: Option<i32>,
    started: Instant,
) {
    job.report.steps.push(RepairStep {
        step: step.into(),
        result: result.into(),
        detail,
        command,
        exit_status,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
}

/// Everything that would stop an unmount or make it a lie, named.
/// What is in the way of unmounting, and (second) what is not counted as in the way because
/// `--trust-fence` lets it pass: processes whose /proc entries or mount namespace cannot be
/// read (PID 1 in hardened sandboxes), one entry per pid. Without the flag those are in the way.
fn blockers(d: &Discovery, subject: &Subject, options: &Options) -> (Vec<Blocker>, Vec<Blocker>) {
    let mut out = Vec::new();
    let mut unreadable: Vec<Blocker> = Vec::new();
    let blocker = |kind: &str, how: String| Blocker {
        kind: kind.into(),
        pid: None,
        command: None,
        unit: None,
        how,
    };
    for p in &d.holders.processes {
        let how: Vec<String> = p.holds.iter().map(describe_hold).collect();
        out.push(Blocker {
            kind: "process".into(),
            pid: Some(p.pid),
            command: Some(p.command.clone()),
            unit: p.unit.clone(),
            how: how.join(", "),
        });
    }
    for u in &d.holders.unreadable {
        unreadable.push(Blocker {
            kind: "unreadable-process".into(),
            pid: Some(u.pid),
            command: u.command.clone(),
            unit: None,
            how: u.what.clone(),
        });
    }
    if d.mounts.len() > 1 {
        for m in d.mounts.iter().skip(1) {
            out.push(blocker(
                "other-mount",
                format!(
                    "also mounted on {} (bind mount or another subvolume)",
                    m.mount_point.display()
                ),
            ));
        }
    }
    for m in &d.submounts {
        out.push(blocker(
            "submount",
            format!(
                "{} ({}) is mounted below it",
                m.mount_point.display(),
                m.fs_type
            ),
        ));
    }
    for n in &d.other_namespaces {
        out.push(Blocker {
            kind: "other-namespace".into(),
            pid: Some(n.pid),
            command: None,
            unit: None,
            how: format!(
                "mounted on {} in mount namespace {} (pid {})",
                n.mount.mount_point.display(),
                n.namespace,
                n.pid
            ),
        });
    }
    for pid in &d.unreadable_namespaces {
        const NS: &str = "its mount namespace cannot be read";
        match unreadable.iter_mut().find(|b| b.pid == Some(*pid)) {
            Some(b) => b.how = format!("{}; {NS}", b.how),
            None => unreadable.push(Blocker {
                kind: "unreadable-process".into(),
                pid: Some(*pid),
                command: None,
                unit: None,
                how: NS.into(),
            }),
        }
    }
    for s in &d.swap_files {
        out.push(blocker(
            "swap",
            format!("swap file {} (swapoff it first)", s.display()),
        ));
    }
    for l in &d.loop_devices {
        out.push(blocker(
            "loop",
            format!(
                "/dev/{} is backed by {}",
                l.device,
                l.backing_file.display()
            ),
        ));
    }
    for h in &d.block_holders {
        out.push(blocker(
            "block-holder",
            format!("{h} is stacked on {}", subject.device.display()),
        ));
    }
    if options.trust_fence {
        (out, unreadable)
    } else {
        out.extend(unreadable);
        (out, Vec::new())
    }
}

fn describe_hold(h: &super::holders::Hold) -> String {
    use super::holders::Hold;
    match h {
        Hold::Cwd => "cwd".into(),
        Hold::Root => "root".into(),
        Hold::Exe => "exe".into(),
        Hold::Fd { fd, path } => format!("fd {fd} {}", path.display()),
        Hold::Map { path } => format!("maps {}", path.display()),
    }
}

fn blocker_line(b: &Blocker) -> String {
    match (b.pid, &b.command) {
        (Some(pid), Some(c)) => format!("{} pid {pid} ({c}): {}", b.kind, b.how),
        (Some(pid), None) => format!("{} pid {pid}: {}", b.kind, b.how),
        _ => format!("{}: {}", b.kind, b.how),
    }
}

fn discovery_summary(d: &Discovery) -> String {
    format!(
        "{} mount(s) here, {} below, {} in other namespaces, {} holding process(es), {} unreadable, {} swap, {} loop, {} stacked; fstab: {}; units: {}",
        d.mounts.len(),
        d.submounts.len(),
        d.other_namespaces.len(),
        d.holders.processes.len(),
        d.holders.unreadable.len() + d.unreadable_namespaces.len(),
        d.swap_files.len(),
        d.loop_devices.len(),
        d.block_holders.len(),
        if d.fstab.is_empty() {
            "none".to_string()
        } else {
            d.fstab
                .iter()
                .map(|f| f.file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        if d.units.is_empty() {
            "none".to_string()
        } else {
            d.units.join(", ")
        },
    )
}

fn describe_scan(t: &TargetReport) -> String {
    let mut s = t.status.label().to_lowercase();
    if let Some(state) = &t.state {
        s.push_str(&format!(", state {state}"));
    }
    if let Some(reason) = &t.fsck_reason {
        s.push_str(&format!(", e2fsck: {reason}"));
    }
    if let Some(f) = t.findings.first() {
        s.push_str(&format!(": {}", f.message));
    }
    s
}

/// Whether the scan says the journal or log holds transactions a read-only check would miss.
fn needs_replay(scan: &TargetReport) -> bool {
    scan.needs_recovery == Some(true)
        || scan.findings.iter().any(|f| {
            matches!(
                f.id,
                "ext.needs-recovery" | "xfs.dirty-log" | "btrfs.log-tree"
            )
        })
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Clean => "clean",
        Verdict::ErrorsFound => "errors found",
        Verdict::Repaired => "repaired",
        Verdict::RepairedRebootNeeded => "repaired (reboot advised)",
        Verdict::ErrorsLeft => "errors left",
        Verdict::DirtyLog => "dirty log",
        Verdict::OperationalError => "operational error",
        Verdict::Cancelled => "cancelled",
    }
}

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Check => "check",
        Tier::Preen => "preen",
        Tier::Full => "full",
    }
}

/// A duration as the options spell it (`1.5 s`).
fn seconds(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The filesystem's UUID as the scan read it (btrfs: its fsid; FAT: the volume id).
fn fs_uuid(scan: &TargetReport) -> Option<String> {
    scan.ext
        .as_ref()
        .map(|e| e.uuid.clone())
        .or_else(|| scan.xfs.as_ref().map(|x| x.uuid.clone()))
        .or_else(|| scan.btrfs.as_ref().map(|b| b.fsid.clone()))
        .or_else(|| scan.fat.as_ref().and_then(|f| f.volume_id.clone()))
        .filter(|u| !u.is_empty())
}

/// The recorded mount points at which `table` shows the record's filesystem mounted now (with
/// the recorded type, from the recorded device: a btrfs mount shows an anonymous device
/// number, so its source names the device).
pub fn mounted_again(table: &MountTable, record: &Record) -> Vec<PathBuf> {
    let ours = |e: &MountInfo| is_mount_of(e, record);
    record
        .mounts
        .iter()
        .filter(|m| {
            table
                .entries()
                .iter()
                .any(|e| e.mount_point == m.mount_point && e.fs_type == m.fs_type && ours(e))
        })
        .map(|m| m.mount_point.clone())
        .collect()
}

/// One line on what to do about a record that is not final (`--status`).
pub fn record_hint(r: &Record, mounted_now: &[PathBuf]) -> Option<String> {
    if r.phase.is_final() {
        return None;
    }
    let device = crate::shell::quote_path(&r.device);
    if let Some(dir) = &r.replay_mount {
        return Some(format!(
            "interrupted (or running) with the log replay mount {} in place: the next \
             `snapguard repair {device}` unmounts it and carries on from the record",
            crate::shell::quote_path(dir)
        ));
    }
    let all_back = !r.mounts.is_empty() && mounted_now.len() == r.mounts.len();
    Some(
        match r.phase {
            Phase::RepairStarted | Phase::Repaired | Phase::Held if all_back => format!(
                "mounted again since (not by snapguard): check it (`snapguard scan {device}`), then \
             `snapguard repair --resume {device}` releases the hold"
            ),
            _ if !mounted_now.is_empty() && !all_back => format!(
                "mounted again on part of its mount points only: unmount them and `snapguard repair \
             --resume {device}`, or mount the rest and `--resume`"
            ),
            Phase::Held => format!(
                "held unmounted for a human: check or repair it by hand, then `snapguard repair \
             --resume {device}` verifies and remounts it"
            ),
            Phase::RepairStarted => format!(
                "a repair was interrupted (or is running): the next `snapguard repair {device}` \
             holds it for a human"
            ),
            _ => format!(
                "interrupted (or running): the next `snapguard repair {device}` carries on from \
             the record"
            ),
        } + &format!("; `snapguard repair --discard-record {device}` forgets a stale record"),
    )
}

/// Whether a mountinfo line is a mount of the record's device (by device number, or for
/// btrfs, whose lines show an anonymous number, by source).
fn is_mount_of(e: &MountInfo, record: &Record) -> bool {
    (e.major, e.minor) == (record.major, record.minor)
        || e.source.as_ref().is_some_and(|s| {
            let s = Path::new(s);
            s == record.device
                || std::fs::canonicalize(s)
                    .is_ok_and(|c| std::fs::canonicalize(&record.device).is_ok_and(|d| d == c))
        })
}

/// The udev and device-mapper names (`/dev/disk/by-*/...`, `/dev/mapper/...`) that lead to
/// `device`.
fn device_aliases(device: &Path) -> Vec<String> {
    let mut dirs = vec![PathBuf::from("/dev/mapper")];
    if let Ok(entries) = std::fs::read_dir("/dev/disk") {
        dirs.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path()))
        .filter(|p| std::fs::canonicalize(p).ok().as_deref() == Some(device))
        .map(|p| p.display().to_string())
        .collect()
}

/// The device number of a block device node (following symlinks), if `path` is one.
fn block_device_number(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type()
        .is_block_device()
        .then(|| (libc::major(meta.rdev()), libc::minor(meta.rdev())))
}

/// Whether the run that wrote `record` is still alive (pid and start time).
fn run_alive(root: &SysRoot, record: &Record) -> bool {
    ProcessIdentity {
        pid: record.pid,
        start_time: record.start_time,
    }
    .is_alive(&root.path(PROC))
}

/// The fstab pass number of the subject's first mount point.
fn fstab_passno(root: &SysRoot, subject: &Subject) -> Option<u32> {
    let text = std::fs::read(root.path("etc/fstab")).ok()?;
    let mount = subject.mounts.first()?.mount_point.clone();
    discover::parse_fstab(&text)
        .into_iter()
        .find(|e| e.file == mount)
        .map(|e| e.passno)
}

fn free_space(dir: &Path) -> String {
    let probe = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(probe) {
        Ok(s) => format!(
            "{} MiB",
            s.blocks_available() * s.fragment_size() / (1024 * 1024)
        ),
        Err(e) => format!("unknown ({})", e.desc()),
    }
}

/// The newest file whose name starts with `base`'s name (tools add their own suffixes).
fn newest_with_prefix(base: &Path) -> Option<PathBuf> {
    let dir = base.parent()?;
    let prefix = base.file_name()?.to_string_lossy().into_owned();
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n == prefix || n.starts_with(&format!("{prefix}."))
        })
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".e2undo"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// Split a printed command back into words (single quotes as `shell::quote` writes them).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::holders::{Hold, Holders, ProcessHolder, UnreadableProcess};
    use std::time::Duration;

    fn options(trust_fence: bool) -> Options {
        Options {
            tier: Tier::Preen,
            dry_run: false,
            force: false,
            stop_units: false,
            terminate_holders: false,
            grace: Duration::from_secs(1),
            zero_log: None,
            trust_fence,
            backup_dir: PathBuf::from("/backup"),
            check_timeout: Duration::from_secs(1),
            repair_timeout: Duration::from_secs(1),
            freeze_test: false,
            never: Vec::new(),
            resume: false,
            discard_record: false,
        }
    }

    /// PID 1 unreadable twice over (its links and its mount namespace), one real holder.
    fn discovery() -> Discovery {
        Discovery {
            superblock: (7, 3),
            mounts: Vec::new(),
            submounts: Vec::new(),
            other_namespaces: Vec::new(),
            unreadable_namespaces: vec![1],
            swap_files: Vec::new(),
            loop_devices: Vec::new(),
            block_holders: Vec::new(),
            fstab: Vec::new(),
            units: Vec::new(),
            holders: Holders {
                processes: vec![ProcessHolder {
                    pid: 42,
                    start_time: 1,
                    command: "sleep 60".into(),
                    unit: None,
                    holds: vec![Hold::Cwd],
                }],
                unreadable: vec![UnreadableProcess {
                    pid: 1,
                    command: Some("/init".into()),
                    what: "cwd: Permission denied".into(),
                }],
            },
        }
    }

    fn subject() -> Subject {
        Subject {
            name: "/mnt".into(),
            device: PathBuf::from("/dev/loop3"),
            dev: (7, 3),
            sb: Some((7, 3)),
            fs_type: Some("ext4".into()),
            mounts: Vec::new(),
        }
    }

    #[test]
    fn trust_fence_moves_unreadable_processes_out_of_the_way_one_entry_per_pid() {
        let (in_the_way, trusted) = blockers(&discovery(), &subject(), &options(true));
        let kinds: Vec<(&str, Option<u32>)> = in_the_way
            .iter()
            .map(|b| (b.kind.as_str(), b.pid))
            .collect();
        assert_eq!(kinds, vec![("process", Some(42))]);
        assert_eq!(trusted.len(), 1, "{trusted:?}");
        assert_eq!(trusted[0].pid, Some(1));
        assert_eq!(trusted[0].kind, "unreadable-process");
        assert_eq!(
            trusted[0].how,
            "cwd: Permission denied; its mount namespace cannot be read"
        );
    }

    #[test]
    fn without_trust_fence_unreadable_processes_are_in_the_way() {
        let (in_the_way, trusted) = blockers(&discovery(), &subject(), &options(false));
        assert!(trusted.is_empty());
        assert!(
            in_the_way
                .iter()
                .any(|b| b.kind == "unreadable-process" && b.pid == Some(1)),
            "{in_the_way:?}"
        );
    }

    fn record(phase: Phase, lines: &[&str]) -> Record {
        Record {
            version: state::RECORD_VERSION,
            pid: 1,
            start_time: 1,
            device: "/dev/loop7".into(),
            major: 7,
            minor: 7,
            kind: FsKind::Ext,
            fstype: "ext4".into(),
            uuid: Some("u".into()),
            mounts: lines
                .iter()
                .map(|l| {
                    RecordedMount::from(
                        &crate::mount::mountinfo::parse_line(l.as_bytes()).expect("line"),
                    )
                })
                .collect(),
            stopped_units: Vec::new(),
            phase,
            replay_mount: None,
            autoclear: false,
            loop_image: None,
            steps: Vec::new(),
            updated: 0,
        }
    }

    const DATA: &str = "45 27 7:7 / /data rw,noatime - ext4 /dev/loop7 rw";
    const OTHER: &str = "46 27 7:7 / /other rw,noatime - ext4 /dev/loop7 rw";

    #[test]
    fn a_hold_mounted_again_by_hand_is_named_with_its_way_out() {
        let r = record(Phase::Held, &[DATA, OTHER]);
        let table = |text: &str| MountTable::from_mountinfo(text.as_bytes()).unwrap();
        // Nothing back: held unmounted.
        let none = table("27 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
        assert!(mounted_again(&none, &r).is_empty());
        let hint = record_hint(&r, &[]).unwrap();
        assert!(hint.contains("held unmounted"), "{hint}");
        // Another filesystem on the mount point is not ours.
        let foreign = table(
            "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n50 27 8:2 / /data rw - ext4 /dev/sda2 rw\n",
        );
        assert!(mounted_again(&foreign, &r).is_empty());
        // All back (the same device number): --resume releases it.
        let back = table(
            "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n60 27 7:7 / /data rw - ext4 /dev/loop7 rw\n\
             61 27 7:7 / /other rw - ext4 /dev/loop7 rw\n",
        );
        let now = mounted_again(&back, &r);
        assert_eq!(now, vec![PathBuf::from("/data"), PathBuf::from("/other")]);
        let hint = record_hint(&r, &now).unwrap();
        assert!(
            hint.contains("mounted again") && hint.contains("--resume /dev/loop7"),
            "{hint}"
        );
        // Part back.
        let hint = record_hint(&r, &now[..1]).unwrap();
        assert!(hint.contains("part of its mount points"), "{hint}");
        // A final record needs nothing.
        assert_eq!(record_hint(&record(Phase::Done, &[DATA]), &now), None);
    }
}
