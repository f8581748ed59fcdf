//! `snapguard freeze [MOUNT...] -- CMD`, plus the hidden helpers the freeze engine re-executes
//! the binary as (`__guardian`, `__syncfs`), and what the freeze commands share.

use super::{Cli, Outcome};
use crate::config::Config;
use crate::freeze::hooks::HooksDir;
use crate::freeze::outcome::exit;
use crate::freeze::presync;
use crate::freeze::session::{self, FreezeRun, Options};
use crate::freeze::{Plan, guardian, skip::SkipRules};
use crate::mount::MountTable;
use crate::report;
use crate::root::{HOOKS_DIR, MOUNTINFO, SysRoot};
use crate::sys::process::{SignalWatch, euid};
use anyhow::Context as _;
use clap::Args;
use clap::builder::{OsStringValueParser, TypedValueParser as _};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit codes of freeze-test (the Nagios convention).
pub const FREEZE_TEST_EXIT_HELP: &str = "\
Exit status:
  0  every mount point is freezable
  1  something was skipped, unsupported, read-only or already frozen by someone else
  2  a freeze or a thaw failed (errno in the report)
  3  could not run: bad usage, not a mount point, no privileges, unreadable configuration";

/// Exit codes of `freeze -- CMD`.
pub const FREEZE_EXIT_HELP: &str = "\
Exit status (CMD's own status is passed through only when the frozen window held until
CMD ended, as timeout(1) and env(1) do; snapguard's own codes are timeout(1)'s):
  N      CMD's exit status: everything froze, CMD ran, everything thawed in time
         (128+N when CMD was killed by signal N)
  124    the --timeout deadline passed: the guardian thawed, CMD got SIGTERM (SIGKILL
         after --kill-after)
  125    snapguard failed: a mount could not be frozen (what was frozen is thawed, CMD did
         not run), a hook was refused or failed, a thaw failed, the guardian thawed on a
         signal or was lost (outcome window-broken, guardian-lost), bad usage (also what
         the argument parser rejects) or configuration, not root, not a mount point
  126    CMD could not be executed (found before anything was frozen)
  127    CMD was not found (found before anything was frozen)
  128+N  snapguard got signal N (SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, ...): thawed at
         once, CMD got SIGTERM (or that signal) too
A failure is also said in one line on stderr, whatever the output format.";

/// `--help` text (also named on the `Command` variant, whose doc comment would replace it).
pub const HELP: &str = "\
Freeze mount points, run CMD while they are frozen (typically the snapshot trigger),
and thaw them again, with a thaw that is guaranteed.

Order: each loop-backed filesystem (directly, on a partition, or through dm/md) is frozen
before the filesystem holding its image file (otherwise its freeze-time sync would block
forever), the filesystem of `/` last; thaw is the reverse. Each mount point is opened
through a mount proven (statx mount id) to be the one mountinfo lists; a mount point
covered by another mount (a tmpfs over it) is reached through another mount of the same
filesystem, or the run fails saying so.

Short freezes: before each FIFREEZE, syncfs runs in passes while writers still run, until
a pass is quick (the passes converge on what writers add meanwhile; --sync-timeout is
their budget, 0 skips them), so FIFREEZE has milliseconds of flushing left. FIFREEZE
itself waits for three RCU grace periods, tens of milliseconds on a VM: snapguard turns
on expedited grace periods (/sys/kernel/rcu_expedited) just around each FIFREEZE and
restores the knob at once (--no-expedite-rcu, or [freeze] expedite_rcu = false, to
leave it alone: expedited grace periods interrupt every CPU briefly).

The guarantee: a guardian process (the same binary, re-executed before anything is
frozen; in its own session, so killing snapguard's process group does not reach it;
memory locked, spared by the OOM killer where allowed) is the only process that calls
FIFREEZE and FITHAW, through its own proven fds. It records each mount as freezing before
its FIFREEZE and frozen after (/run/snapguard/freeze-PID.json), keeps the --timeout
deadline (CLOCK_BOOTTIME: a suspended VM does not outlive it) running while a FIFREEZE
blocks, and thaws exactly what its FIFREEZE calls froze, last first: at snapguard's
request, at the deadline (a FIFREEZE that returns later is thawed at once), when
snapguard dies (even by SIGKILL: then it also ends CMD and runs the thaw hooks), and on
any catchable terminating signal. snapguard listens to it: a guardian that is gone or
does not answer before CMD starts aborts the run; a thaw it did on its own ends the
window (CMD gets SIGTERM, the exit status is not CMD's); snapguard itself thaws only once
the guardian is proven gone. A mount frozen by someone else (EBUSY) fails the run and is
never thawed by snapguard. `snapguard thaw` is the rescue if both processes die.

Nothing is written to a frozen filesystem: logs (stderr or --log-file) are held in
memory and written after the thaw; CMD's stdout and stderr, unless they are a terminal
(or a file outside the frozen filesystems), go through pipes that snapguard holds in
memory (up to 16 MiB each, then CMD waits) until the thaw. With --json, CMD's stdout
goes to stderr so that stdout holds only the report; otherwise to stdout.

CMD is found (PATH) before anything is frozen, keeps snapguard's environment and gets
SNAPGUARD_FROZEN (the frozen mount points, one per line, in freeze order),
SNAPGUARD_FROZEN_COUNT, SNAPGUARD_TIMEOUT_MS and SNAPGUARD_DEADLINE_LEFT_MS. When the
window ends before CMD does (deadline, signal), CMD gets SIGTERM, SIGKILL after
--kill-after.

Hooks: executables in /etc/snapguard/hooks.d/ (or --hooks-dir, or [freeze] hooks_dir;
a relative one is taken from the current directory, once, when the arguments are read)
run in name order with the argument `freeze` before the first freeze, and in reverse
order with `thaw` after the last thaw; every hook that ran for freeze runs for thaw, even
if it failed, and even if snapguard was killed (the guardian runs it). A hook directory
that was named but does not exist fails the run (125); the default one missing means no
hooks.
Only root may have put a hook there: every directory from / down to the hook (symbolic
links included, and what they point to) must be owned by root and not writable by group
or others, and so must the hook; otherwise it is refused and nothing is frozen. The
checked file is kept open and executed through that fd, so a file renamed over it after
the check never runs (a script's $0 is therefore /proc/self/fd/N).
A hook gets a fixed environment, nothing of snapguard's own:
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  SNAPGUARD_PHASE=freeze or thaw
  SNAPGUARD_MOUNTS=the mount points, one per line
stdin /dev/null, stdout and stderr to snapguard's stderr, cwd /, its own process group
(killed after --hook-timeout). A failing freeze hook stops the run before anything is
frozen.

CMD and hooks start with an empty signal mask and default signal dispositions, whatever
snapguard itself blocks or ignores.

Durations: --timeout 100ms..1h, --sync-timeout 0..1h, --hook-timeout 100ms..1h,
--kill-after 0..1h (e.g. 30, 30s, 500ms, 2m).

Needs root (CAP_SYS_ADMIN). Under systemd, see systemd/snapguard-freeze@.service for the
KillMode= and ExecStopPost= a unit running freeze needs.

Examples:
  snapguard freeze -- /usr/local/bin/take-snapshot
  snapguard freeze /data /var --timeout 30s -- az snapshot create ...
  snapguard --log-file /var/log/snapguard.log freeze -- true";

/// Parse `10s`, `500ms`, `2m` (humantime) or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 60, 10s, 500ms, 2m)"))
}

/// The live mount table.
pub fn load_table(root: &SysRoot) -> anyhow::Result<MountTable> {
    let path = root.path(MOUNTINFO);
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
    MountTable::from_mountinfo(&bytes).with_context(|| format!("invalid '{}'", path.display()))
}

/// The accepted range of each duration option: a deadline of 0 (or of days) is a mistake, not
/// a choice.
pub mod limits {
    use std::time::Duration;
    /// `--timeout`: the guardian's deadline.
    pub const TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(3600));
    /// `--sync-timeout` (0: no pre-freeze sync).
    pub const SYNC_TIMEOUT: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
    /// `--hook-timeout`.
    pub const HOOK_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(3600));
    /// `--kill-after` (0: SIGKILL right after SIGTERM).
    pub const KILL_AFTER: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
}

/// `d` within `range`, or a one-line reason.
fn within(d: Duration, (min, max): (Duration, Duration)) -> Result<Duration, String> {
    if d < min || d > max {
        return Err(format!(
            "{} is out of range: between {} and {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// `--timeout`.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    within(parse_duration(s)?, limits::TIMEOUT)
}

/// `--sync-timeout`.
pub fn parse_sync_timeout(s: &str) -> Result<Duration, String> {
    within(parse_duration(s)?, limits::SYNC_TIMEOUT)
}

/// `--hook-timeout`.
pub fn parse_hook_timeout(s: &str) -> Result<Duration, String> {
    within(parse_duration(s)?, limits::HOOK_TIMEOUT)
}

/// `--kill-after`.
pub fn parse_kill_after(s: &str) -> Result<Duration, String> {
    within(parse_duration(s)?, limits::KILL_AFTER)
}

/// Options from the command line, then the configuration (checked against the same limits),
/// then the defaults.
pub fn options(
    config: &Config,
    timeout: Option<Duration>,
    sync_timeout: Option<Duration>,
    hook_timeout: Option<Duration>,
    hooks: Option<HooksDir>,
    kill_after: Duration,
    no_expedite_rcu: bool,
) -> anyhow::Result<Options> {
    let f = &config.freeze;
    let pick = |flag: Option<Duration>, key: &str, configured: Option<u64>, default: u64, range| {
        match flag {
            Some(d) => Ok(d),
            None => within(Duration::from_secs(configured.unwrap_or(default)), range)
                .map_err(|e| anyhow::anyhow!("[freeze] {key} in the configuration: {e}")),
        }
    };
    Ok(Options {
        timeout: pick(timeout, "timeout", f.timeout, 60, limits::TIMEOUT)?,
        sync_timeout: pick(
            sync_timeout,
            "sync_timeout",
            f.sync_timeout,
            30,
            limits::SYNC_TIMEOUT,
        )?,
        hook_timeout: pick(
            hook_timeout,
            "hook_timeout",
            f.hook_timeout,
            30,
            limits::HOOK_TIMEOUT,
        )?,
        hooks,
        kill_after,
        expedite_rcu: !no_expedite_rcu && f.expedite_rcu.unwrap_or(true),
    })
}

/// The hook directory of a run: none with `--no-hooks`; `--hooks-dir` (made absolute by the
/// argument parser) or `[freeze] hooks_dir` (made absolute here, against the current
/// directory) must exist; the default may be missing.
fn choose_hooks_dir(
    no_hooks: bool,
    flag: Option<&Path>,
    configured: Option<&Path>,
    default: PathBuf,
) -> std::io::Result<Option<HooksDir>> {
    if no_hooks {
        return Ok(None);
    }
    Ok(Some(match flag.or(configured) {
        Some(dir) => HooksDir {
            path: std::path::absolute(dir)?,
            explicit: true,
        },
        None => HooksDir {
            path: default,
            explicit: false,
        },
    }))
}

/// Arguments of `snapguard freeze`.
#[derive(Debug, Args)]
#[command(long_about = HELP, after_long_help = FREEZE_EXIT_HELP)]
pub struct FreezeArgs {
    /// Self-thaw deadline from the first FIFREEZE (e.g. 30s) [default: 60s, or [freeze]
    /// timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Time budget of the pre-freeze sync of each mount; 0 skips it (the kernel's sync inside
    /// FIFREEZE then does all the flushing, as with fsfreeze) [default: 30s, or [freeze]
    /// sync_timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_sync_timeout)]
    pub sync_timeout: Option<Duration>,
    /// Timeout of each hook [default: 30s, or [freeze] hook_timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_hook_timeout)]
    pub hook_timeout: Option<Duration>,
    /// Hook directory, which must exist (a relative one is taken from the current directory)
    /// [default: [freeze] hooks_dir, or /etc/snapguard/hooks.d if it exists].
    #[arg(long, value_name = "DIR", conflicts_with = "no_hooks",
          value_parser = OsStringValueParser::new().try_map(std::path::absolute))]
    pub hooks_dir: Option<PathBuf>,
    /// Run no hooks.
    #[arg(long)]
    pub no_hooks: bool,
    /// After the deadline or a signal, CMD gets SIGTERM, then SIGKILL after this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_kill_after, default_value = "5s")]
    pub kill_after: Duration,
    /// Do not expedite RCU grace periods around FIFREEZE (see the help text) [default: expedite,
    /// or [freeze] expedite_rcu].
    #[arg(long)]
    pub no_expedite_rcu: bool,
    /// Mount points to freeze [default: every local block-backed filesystem].
    #[arg(value_name = "MOUNT")]
    pub mounts: Vec<PathBuf>,
    /// The command to run while frozen, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

/// A failure before anything was frozen: no report, exit 125.
pub fn cannot_run(e: anyhow::Error) -> Outcome {
    Outcome {
        render: Box::new(|_| Ok(())),
        problems: vec![format!("{e:#}")],
        exit_code: exit::FAILED,
    }
}

/// Run `freeze -- CMD`.
pub fn run(args: &FreezeArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    match run_inner(args, cli, config) {
        Ok(outcome) => Ok(outcome),
        Err(e) => Ok(cannot_run(e)),
    }
}

/// One line for stderr when a run did not complete (cron sends stdout to /dev/null).
fn problem_line(report: &report::FreezeReport) -> Option<String> {
    let reason = report.reason.as_ref()?;
    let outcome = serde_json::to_value(report.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    Some(format!(
        "freeze {outcome} (exit {}): {reason}",
        report.exit_code
    ))
}

fn run_inner(args: &FreezeArgs, cli: &Cli, config: &Config) -> anyhow::Result<Outcome> {
    let root = cli.sys_root();
    if !root.is_host() {
        anyhow::bail!("freeze works on the running system only (no --root)");
    }
    if euid() != 0 {
        anyhow::bail!("freeze needs root (CAP_SYS_ADMIN)");
    }
    // Blocked before any thread or child exists; taken through a signalfd while frozen.
    let signals = SignalWatch::new().context("cannot block signals")?;
    let table = load_table(&root)?;
    let (targets, order) = crate::freeze::prepare(&table, &args.mounts, false, &root)?;
    let skip = SkipRules::load(&config.freeze, &root)?;
    let hooks_dir = choose_hooks_dir(
        args.no_hooks,
        args.hooks_dir.as_deref(),
        config.freeze.hooks_dir.as_deref(),
        root.path(HOOKS_DIR),
    )
    .context("cannot resolve [freeze] hooks_dir")?;
    let opts = options(
        config,
        args.timeout,
        args.sync_timeout,
        args.hook_timeout,
        hooks_dir,
        args.kill_after,
        args.no_expedite_rcu,
    )?;
    let format = cli.output_format();
    let report = session::freeze(&FreezeRun {
        plan: Plan {
            targets: &targets,
            order: &order,
            table: &table,
            skip: &skip,
            opts: &opts,
            root: &root,
        },
        argv: &args.cmd,
        cmd_stdout_to_stderr: format == report::Format::Json,
        signals: &signals,
    });
    drop(signals);
    let exit_code = report.exit_code;
    let problems: Vec<String> = problem_line(&report).into_iter().collect();
    Ok(Outcome {
        render: Box::new(move |out| report::write_freeze(&report, format, out)),
        problems,
        exit_code,
    })
}

/// Hidden: `snapguard __guardian` (started by `freeze` and `freeze-test`; its instructions
/// come on stdin).
#[derive(Debug, Args)]
pub struct GuardianArgs {}

/// Run the guardian.
pub fn run_guardian(_args: &GuardianArgs) -> Outcome {
    Outcome {
        render: Box::new(|_| Ok(())),
        problems: Vec::new(),
        exit_code: guardian::serve::serve(),
    }
}

/// Hidden: `snapguard __fithaw FD` (the controller's own FITHAW once its guardian is gone).
#[derive(Debug, Args)]
pub struct FithawArgs {
    pub fd: i32,
}

/// Run the FITHAW helper.
pub fn run_fithaw(args: &FithawArgs) -> Outcome {
    Outcome {
        render: Box::new(|_| Ok(())),
        problems: Vec::new(),
        exit_code: crate::freeze::control::fithaw_main(args.fd),
    }
}

/// Hidden: `snapguard __syncfs PATH BUDGET_MS` (the converging pre-freeze sync).
#[derive(Debug, Args)]
pub struct SyncfsArgs {
    pub path: PathBuf,
    pub budget_ms: u64,
}

/// Run the pre-freeze sync helper.
pub fn run_syncfs(args: &SyncfsArgs) -> Outcome {
    let (code, line) = presync::helper(&args.path, Duration::from_millis(args.budget_ms));
    Outcome {
        render: Box::new(move |out| out.write_all(line.as_bytes())),
        problems: Vec::new(),
        exit_code: code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn hooks_dir_choice() {
        let default = PathBuf::from("/etc/snapguard/hooks.d");
        assert_eq!(
            choose_hooks_dir(true, Some(Path::new("/h")), None, default.clone()).unwrap(),
            None
        );
        assert_eq!(
            choose_hooks_dir(false, None, None, default.clone()).unwrap(),
            Some(HooksDir {
                path: default.clone(),
                explicit: false
            })
        );
        let flag = choose_hooks_dir(
            false,
            Some(Path::new("/flag")),
            Some(Path::new("/conf")),
            default.clone(),
        )
        .unwrap();
        assert_eq!(
            flag,
            Some(HooksDir {
                path: PathBuf::from("/flag"),
                explicit: true
            })
        );
        let relative = choose_hooks_dir(false, None, Some(Path::new("conf.d")), default)
            .unwrap()
            .unwrap();
        assert_eq!(
            relative.path,
            std::env::current_dir().unwrap().join("conf.d")
        );
        assert!(relative.explicit);
    }

    #[test]
    fn long_help_documents_hooks() {
        use clap::CommandFactory as _;
        let mut cli = crate::cli::Cli::command();
        for (name, text) in [
            ("freeze", HELP),
            ("freeze-test", crate::cli::freeze_test::HELP),
            ("thaw", crate::cli::thaw::HELP),
        ] {
            let help = cli
                .find_subcommand_mut(name)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            let first = text.lines().next().unwrap();
            assert!(
                help.contains(first),
                "{name} --help lacks its text:\n{help}"
            );
        }
        let help = cli
            .find_subcommand_mut("freeze")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "executed through that fd",
            "empty signal mask",
        ] {
            assert!(help.contains(needle), "{needle}");
        }
    }

    #[test]
    fn relative_hooks_dir_flag_is_made_absolute_when_parsed() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "snapguard",
            "freeze",
            "--hooks-dir",
            "rel/hooks",
            "--",
            "true",
        ])
        .expect("parses");
        let crate::cli::Command::Freeze(args) = cli.command else {
            panic!("not freeze: {:?}", cli.command);
        };
        assert_eq!(
            args.hooks_dir.unwrap(),
            std::env::current_dir().unwrap().join("rel/hooks")
        );
    }
}
