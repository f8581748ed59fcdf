//! `snapguard repair`: arguments, policy, the confirmation prompt, and glue to
//! [`crate::repair::machine`].

use super::{Cli, Outcome};
use crate::config::Config;
use crate::repair::machine::{self, ConcurrentRepair, Consent, UsageError};
use crate::repair::{Options, Tier, exit, state};
use crate::report::{self, Format, RepairTarget};
use crate::sys::process::euid;
use clap::Args;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

/// `--help` text.
pub const HELP: &str = "\
Take an unclean filesystem out of service, check and repair it, and put it back exactly
as it was: umount -> fsck -> mount, safely. Azure's fix for \"failed to freeze\" on an
unclean filesystem, done the way a careful storage engineer does it by hand.

Per filesystem: find every user (processes by cwd, root, exe, open files and memory maps;
mounts in every mount namespace; bind mounts, submounts, swap files, loop devices, stacked
devices; fstab and systemd units) and refuse with the list when anything is in the way;
print the plan and ask (default No); unmount (never lazy, never forced); fence the device
with an O_EXCL open; read-only check (e2fsck -fn, xfs_repair -n, fsck.fat -n, btrfs check
--readonly); replay the journal or log when needed; metadata backup (e2image -Q,
xfs_metadump) and e2fsck undo file on another filesystem; repair at the allowed tier;
check again; mount again with the recorded source, type, options, subvolume and
propagation, and compare with the recorded mountinfo; finally freeze-test it, since the
point is that the next backup can freeze it. A failure before the first write puts
everything back; a failed check after the repair leaves the filesystem UNMOUNTED on
purpose, with the state record in /run/snapguard saying why.

/, /usr and the filesystem holding snapguard are never unmounted: a boot-time check is
scheduled instead (tune2fs -c 1 for ext in fstab, else fsck.mode=force on the kernel
command line), with the command to undo it.

Tiers: check (read-only, never writes), preen (default: e2fsck -fp, xfs_repair,
fsck.fat -a), full (e2fsck -fy: may move files to lost+found). xfs_repair -L (zeroes the
log, loses its transactions) only with --zero-log naming the device. btrfs is checked,
never repaired automatically (btrfs check --repair is for developers' advice only).

Without TARGET: every mounted filesystem the scan does not call clean, one plan, one
question. A restarted run reads the state record first: a run that stopped before the
repair command is rolled back; one that stopped inside it is held for a human. A record is
only acted on for the filesystem it was written for (type and UUID): one on a device that
now holds another filesystem is refused; --discard-record forgets it. A held filesystem
that was mounted again by hand is reported as such; --resume then closes its record. The
restore mounts only on the directory the unmount uncovered, never through a symlink or on
a directory put in its place (refused, exit 8, record held).

systemd units: processes in the way are listed with their unit. --stop-units stops the
services that own them (systemctl stop; recorded first, so a crash still restarts them on
the next run) and starts them again once the mounts are back. When systemd is PID 1 the
filesystem is unmounted by stopping its .automount and .mount units and mounted again with
systemctl start (mount(2) with the recorded options when the .mount unit has no unit file).
Without systemd, --stop-units refuses (exit 8, nothing changed): use --terminate-holders.

Signals: SIGTERM, SIGINT (Ctrl-C), SIGHUP and SIGQUIT never stop a repair half-way. Before
consent: nothing changed, exit 8. Before the first write: rolled back (mounts and units as
they were), exit 8. While the repair command runs: it is allowed to finish (never killed),
then checked; clean -> mounted again, else held unmounted. The message and the state record
name the signal; 8 is added to the exit status. Checkers run in their own process group, so
Ctrl-C reaches only snapguard.

Needs root. Not on a terminal, --yes is required (exit 16 otherwise).

Examples:
  snapguard repair --dry-run /data          what would happen, nothing changed
  snapguard repair /data                    plan, ask, repair, remount, freeze-test
  snapguard repair --yes --terminate-holders /data   for a maintenance window
  snapguard repair --maintenance            what snapguard-repair.timer runs: only inside
                                            [repair] window, tier from the configuration
  snapguard repair --status                 state records of running or held repairs
  snapguard repair --resume /dev/sdb1       verify a held filesystem and mount it again
                                            (or close the record if mounted by hand)
  snapguard repair --discard-record /dev/sdb1   forget a stale state record";

/// Exit codes, fsck's bitmask.
pub const REPAIR_EXIT_HELP: &str = "\
Exit status (fsck's bitmask, OR-ed over the filesystems):
  0   nothing to do: clean
  1   repaired, verified and back in service
  2   boot-time check scheduled (/, /usr): reboot to run it
  4   errors left: the check found errors this tier may not fix, a repair left errors, a
      filesystem held for a human (unmounted, or mounted again by hand: --resume closes
      it), or --dry-run with work to do
  8   operational error: in use (the list is printed), refused by policy, another repair
      or fsck running, a step failed (rolled back), interrupted by a signal (OR-ed with
      the other bits: 9 = repaired, then interrupted), a record written for another
      filesystem, a mount point replaced while unmounted (record held), not root
  16  usage: bad arguments or configuration, no terminal and no --yes
  32  declined at the prompt
  64  --maintenance outside the [repair] window: nothing done (snapguard-repair.service
      counts it as success)";

/// Arguments of `snapguard repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Mount points or block devices [default: every mounted filesystem the scan does not
    /// call clean].
    #[arg(value_name = "TARGET")]
    pub targets: Vec<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do not ask (for timers and hooks); needed when there is no terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How far to go: check (read-only), preen (safe fixes), full (e2fsck -y). Default: the
    /// [repair] tier of the configuration, else preen.
    #[arg(long, value_enum, value_name = "TIER")]
    pub tier: Option<TierArg>,
    /// Check even when the scan says clean.
    #[arg(long)]
    pub force: bool,
    /// Stop the systemd services of processes in the way (started again afterwards); needs
    /// systemd as PID 1.
    #[arg(long)]
    pub stop_units: bool,
    /// End processes in the way: SIGTERM, then SIGKILL after --grace (through pidfds, start
    /// time re-checked; never by path).
    #[arg(long)]
    pub terminate_holders: bool,
    /// Time between SIGTERM and SIGKILL for --terminate-holders [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// Allow xfs_repair -L (zeroes the log: its transactions are lost) on exactly DEVICE.
    #[arg(long, value_name = "DEVICE")]
    pub zero_log: Option<PathBuf>,
    /// Go on when PID 1's mount namespace or parts of /proc cannot be read (containers,
    /// hardened /proc), relying on the unmount and the O_EXCL fence to prove the device free.
    #[arg(long)]
    pub trust_fence: bool,
    /// Directory for metadata backups and e2fsck undo files (never on the target)
    /// [default: /var/lib/snapguard/repair].
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Bound on each read-only check [default: 30m].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub check_timeout: Option<Duration>,
    /// Bound on each replay, backup and repair [default: 2h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub repair_timeout: Option<Duration>,
    /// Do not freeze-test the repaired filesystem.
    #[arg(long)]
    pub no_freeze_test: bool,
    /// Show the state records (running, held or interrupted repairs) and exit.
    #[arg(long, conflicts_with_all = ["dry_run", "resume"])]
    pub status: bool,
    /// Continue a repair held for a human: verify, and mount again when clean; when it was
    /// mounted again by hand, close its record (the hold is released).
    #[arg(long)]
    pub resume: bool,
    /// Forget the state record of each TARGET (a stale record, or a hold ended by hand) and
    /// change nothing else.
    #[arg(long, conflicts_with_all = ["dry_run", "resume", "status"])]
    pub discard_record: bool,
    /// Unattended run for a maintenance window (snapguard-repair.service): outside the
    /// configuration's [repair] window nothing is done (exit 64); the tier is the
    /// configuration's, at most preen (never full); never asks (as --yes).
    #[arg(long, conflicts_with_all = ["tier", "zero_log", "status", "resume", "discard_record"])]
    pub maintenance: bool,
}

/// `--tier` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierArg {
    Check,
    Preen,
    Full,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Tier {
        match t {
            TierArg::Check => Tier::Check,
            TierArg::Preen => Tier::Preen,
            TierArg::Full => Tier::Full,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    super::freeze::parse_duration(text)
}

/// The outcome of a run that could not start: one line, `code`.
pub fn cannot_run(e: anyhow::Error, code: u8) -> Outcome {
    Outcome {
        render: Box::new(|_| Ok(())),
        problems: vec![format!("repair: {e:#}")],
        exit_code: code,
    }
}

/// Run `snapguard repair`.
pub fn run(args: &RepairArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    let root = cli.sys_root();
    let format = cli.output_format();
    if args.status {
        return status(&root, format);
    }
    let options = match options(args, config) {
        Ok(o) => o,
        Err(e) => return Ok(cannot_run(e, exit::USAGE)),
    };
    if args.maintenance {
        if let Err(outcome) = maintenance_window(config) {
            return Ok(outcome);
        }
    }
    if euid() != 0 {
        return Ok(cannot_run(
            anyhow::anyhow!("needs root (it unmounts, fences and repairs block devices)"),
            exit::OPERATIONAL,
        ));
    }
    if !root.is_host() {
        return Ok(cannot_run(
            anyhow::anyhow!(
                "--root is for reading fixture trees; repair acts on this machine only"
            ),
            exit::USAGE,
        ));
    }
    // From here on SIGHUP, SIGINT, SIGQUIT and SIGTERM never end the run half-way: they are
    // taken by a watcher thread and the state machine winds down at a safe point (before any
    // other thread starts, so that every thread has them blocked).
    if let Err(e) = crate::sys::interrupt::defer() {
        return Ok(cannot_run(
            anyhow::anyhow!("cannot block termination signals: {}", e.desc()),
            exit::OPERATIONAL,
        ));
    }
    let yes = args.yes || args.maintenance;
    let mut ask = |plans: &[RepairTarget]| confirm(plans, yes);
    // The machine works from `/` (it must hold no filesystem): relative names are the caller's.
    let targets: Vec<PathBuf> = args.targets.iter().map(|t| absolute(t)).collect();
    match machine::run(&root, &options, &targets, &mut ask) {
        Ok(report) => {
            let problems = report
                .targets
                .iter()
                .filter(|t| t.outcome.exit_bit() >= exit::ERRORS_LEFT && !report.dry_run)
                .map(|t| format!("repair: {}: {}", t.target, t.message))
                .collect();
            let exit_code = report.exit_code;
            Ok(Outcome {
                render: Box::new(move |out| report::write_repair(&report, format, out)),
                problems,
                exit_code,
            })
        }
        Err(e) if e.downcast_ref::<UsageError>().is_some() => Ok(cannot_run(e, exit::USAGE)),
        Err(e) if e.downcast_ref::<ConcurrentRepair>().is_some() => {
            Ok(cannot_run(e, exit::OPERATIONAL))
        }
        Err(e) => Ok(cannot_run(e, exit::OPERATIONAL)),
    }
}

/// `--maintenance`: Ok inside the configured window; else the outcome that ends the run before
/// anything is touched (64 outside, 16 without a window, 8 when the clock cannot be read).
fn maintenance_window(config: &Config) -> Result<(), Outcome> {
    let Some(windows) = &config.repair.window else {
        return Err(cannot_run(
            anyhow::anyhow!(
                "--maintenance needs [repair] window in the configuration, e.g. window = \"Sun 02:00-04:00\""
            ),
            exit::USAGE,
        ));
    };
    let Some(now) = crate::sys::localtime::now() else {
        return Err(cannot_run(
            anyhow::anyhow!("--maintenance: cannot read the local time; nothing done"),
            exit::OPERATIONAL,
        ));
    };
    if !windows.contains(now) {
        return Err(cannot_run(
            anyhow::anyhow!("outside the maintenance window ({windows}, local time): nothing done"),
            exit::OUTSIDE_WINDOW,
        ));
    }
    tracing::info!("inside the maintenance window ({windows}): repairing");
    Ok(())
}

/// The options from the arguments within the `[repair]` policy.
fn options(args: &RepairArgs, config: &Config) -> anyhow::Result<Options> {
    let policy = &config.repair;
    let ceiling = policy.tier.unwrap_or(Tier::Preen).max(Tier::Check);
    let mut tier = args
        .tier
        .map(Tier::from)
        .unwrap_or(policy.tier.unwrap_or(Tier::Preen));
    if args.maintenance && tier > Tier::Preen {
        // The destructive tier (e2fsck -y: files may end in lost+found) is never unattended.
        tracing::warn!(
            "[repair] tier = \"{}\": a --maintenance run stops at preen; run the full tier by hand",
            tier.word()
        );
        tier = Tier::Preen;
    }
    if policy.tier.is_some() && tier > ceiling {
        anyhow::bail!(
            "--tier {} is above the configuration's [repair] tier = \"{}\"",
            tier.word(),
            ceiling.word()
        );
    }
    if args.stop_units && policy.stop_units == Some(false) {
        anyhow::bail!("--stop-units: the configuration says [repair] stop_units = false");
    }
    if args.terminate_holders && policy.terminate_holders == Some(false) {
        anyhow::bail!(
            "--terminate-holders: the configuration says [repair] terminate_holders = false"
        );
    }
    if args.zero_log.is_some() && tier == Tier::Check {
        anyhow::bail!("--zero-log needs a tier that writes (preen or full)");
    }
    if args.resume && args.targets.is_empty() {
        anyhow::bail!("--resume needs the TARGET (device or mount point) of the held repair");
    }
    if args.discard_record && args.targets.is_empty() {
        anyhow::bail!("--discard-record needs the TARGET (device or mount point) of the record");
    }
    for (flag, value) in [
        ("--check-timeout", args.check_timeout),
        ("--repair-timeout", args.repair_timeout),
    ] {
        if value.is_some_and(|d| d.is_zero()) {
            anyhow::bail!("{flag} 0: a checker given no time at all is stopped before it looks");
        }
    }
    // A protecting pattern that does not compile must not silently protect nothing.
    for pattern in &policy.never {
        globset::Glob::new(pattern).map_err(|e| {
            anyhow::anyhow!("[repair] never pattern '{pattern}' is not a glob: {e}")
        })?;
    }
    if let Some(device) = &args.zero_log {
        std::fs::canonicalize(device)
            .map_err(|e| anyhow::anyhow!("--zero-log '{}': {e}", device.display()))?;
    }
    Ok(Options {
        tier,
        dry_run: args.dry_run,
        force: args.force,
        stop_units: args.stop_units,
        terminate_holders: args.terminate_holders,
        grace: args
            .grace
            .or(policy.grace.map(Duration::from_secs))
            .unwrap_or(Duration::from_secs(10)),
        zero_log: args.zero_log.as_deref().map(absolute),
        trust_fence: args.trust_fence,
        backup_dir: absolute(
            &args
                .backup_dir
                .clone()
                .or(policy.backup_dir.clone())
                .unwrap_or_else(|| PathBuf::from("/var/lib/snapguard/repair")),
        ),
        check_timeout: args.check_timeout.unwrap_or(Duration::from_secs(30 * 60)),
        repair_timeout: args.repair_timeout.unwrap_or(Duration::from_secs(2 * 3600)),
        freeze_test: !args.no_freeze_test,
        never: policy.never.clone(),
        resume: args.resume,
        discard_record: args.discard_record,
    })
}

/// `path` made absolute against the working directory (the run itself works from `/`).
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Print the plan on stderr and ask on the terminal (default No).
fn confirm(plans: &[RepairTarget], yes: bool) -> Consent {
    let mut err = std::io::stderr().lock();
    let _ = report::human::write_repair_plan(plans, &mut err);
    drop(err);
    if yes {
        return Consent::Yes;
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Consent::NoTerminal;
    }
    let question = if plans.len() == 1 {
        "Carry out this plan?".to_string()
    } else {
        format!("Carry out this plan for {} filesystems?", plans.len())
    };
    match ask(question) {
        Some(true) => Consent::Yes,
        // No, Enter (the default), Esc, or a signal (the machine names it).
        _ => Consent::No,
    }
}

/// Ask `question` with dialoguer's confirm prompt (default No) on the terminal. The prompt runs
/// in a thread of its own so a termination signal can end the wait: the prompt reads the
/// terminal in raw mode and cannot be woken, so on a signal the terminal's settings are put
/// back and the thread is left blocked until the process exits. `None`: no answer (a signal,
/// Ctrl-C typed — counted as SIGINT —, Esc, or the terminal gone).
fn ask(question: String) -> Option<bool> {
    use nix::sys::termios::{SetArg, tcgetattr, tcsetattr};
    use std::sync::mpsc::{self, RecvTimeoutError};
    let saved = tcgetattr(std::io::stdin()).ok();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("prompt".into())
        .spawn(move || {
            let answer = dialoguer::Confirm::new()
                .with_prompt(question)
                .default(false)
                .interact_opt();
            let _ = tx.send(answer);
        });
    if spawned.is_err() {
        return None;
    }
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(answer)) => return answer,
            Ok(Err(dialoguer::Error::IO(e))) if e.kind() == std::io::ErrorKind::Interrupted => {
                crate::sys::interrupt::note(nix::sys::signal::Signal::SIGINT);
                let _ = writeln!(std::io::stderr());
                return None;
            }
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => return None,
            Err(RecvTimeoutError::Timeout) => {
                if crate::sys::interrupt::received().is_some() {
                    if let Some(saved) = &saved {
                        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
                    }
                    let _ = writeln!(std::io::stderr());
                    return None;
                }
            }
        }
    }
}

/// `--status`: every state record.
fn status(root: &crate::root::SysRoot, format: Format) -> anyhow::Result<Outcome> {
    let found = match state::records(root) {
        Ok(found) => found,
        Err(e) => return Ok(cannot_run(e, exit::OPERATIONAL)),
    };
    let records = found.readable;
    // Where the recorded filesystems are mounted now (no mountinfo, as in a fixture tree:
    // nowhere).
    let table = std::fs::read(root.path(crate::root::MOUNTINFO))
        .ok()
        .and_then(|b| crate::mount::table::MountTable::from_mountinfo(&b).ok());
    let mut entries: Vec<report::RepairStatusEntry> = records
        .iter()
        .map(|(path, r)| {
            let mounted_now = table
                .as_ref()
                .map(|t| machine::mounted_again(t, r))
                .unwrap_or_default();
            let hint = machine::record_hint(r, &mounted_now);
            (path, r, mounted_now, hint)
        })
        .map(|(path, r, mounted_now, hint)| report::RepairStatusEntry {
            record: path.display().to_string(),
            device: r.device.display().to_string(),
            fstype: r.fstype.clone(),
            // Spelled as in the record file (`rolled-back`, `repair-started`).
            phase: r.phase.name().to_string(),
            pid: r.pid,
            mountpoints: r
                .mounts
                .iter()
                .map(|m| m.mount_point.display().to_string())
                .collect(),
            updated: r.updated,
            last_step: r
                .steps
                .last()
                .map(|s| format!("{} {}: {}", s.step, s.result, s.detail)),
            mounted_now: mounted_now
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            hint,
        })
        .collect();
    // A record that cannot be read may be all that is left of a held repair: shown, exit 8.
    let mut problems = Vec::new();
    for (path, e) in &found.unreadable {
        let device = state::record_device(path)
            .map(|(major, minor)| format!("{major}:{minor}"))
            .unwrap_or_default();
        problems.push(format!("repair: unreadable state record: {e}"));
        entries.push(report::RepairStatusEntry {
            record: path.display().to_string(),
            device,
            fstype: String::new(),
            phase: "unreadable".into(),
            pid: 0,
            mountpoints: Vec::new(),
            updated: 0,
            last_step: Some(e.clone()),
            mounted_now: Vec::new(),
            hint: None,
        });
    }
    let held = records.iter().any(|(_, r)| !r.phase.is_final());
    let mut exit_code = if held {
        exit::ERRORS_LEFT
    } else {
        exit::NOTHING
    };
    if !found.unreadable.is_empty() {
        exit_code |= exit::OPERATIONAL;
    }
    let report = report::RepairStatusReport::new(entries);
    Ok(Outcome {
        render: Box::new(move |out| report::write_repair_status(&report, format, out)),
        problems,
        exit_code,
    })
}
