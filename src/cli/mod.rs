//! Command-line interface: global options, the subcommand enum and dispatch. Glue only.

pub mod freeze;
pub mod freeze_test;
pub mod generate;
pub mod preflight;
pub mod repair;
pub mod scan;
pub mod selinux;
pub mod thaw;

use crate::config::Config;
use crate::report::Format;
use crate::root::{DEFAULT_CONFIG, SysRoot};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes of every command, shown at the end of the top-level `--help`; each command's
/// own `--help` has its own.
pub const EXIT_STATUS_HELP: &str = "\
Exit status (each command's --help has the details):
  scan, freeze-test, thaw, selinux: the Nagios convention
    0  OK        clean, freezable, thawed, excluded
    1  WARNING   the worst finding or check is a warning (thaw: a mount skipped)
    2  CRITICAL  a critical finding, a failed freeze or thaw, a failing check
    3  UNKNOWN   could not assess or could not run: bad usage, unreadable target or
                 configuration, unknown filesystem, no privileges (selinux: cannot tell)
    CRITICAL beats UNKNOWN beats WARNING beats OK.
  freeze -- CMD: CMD's status passed through, and timeout(1)'s for its own
    124 deadline passed, 125 snapguard failed (also bad usage and configuration),
    126 CMD not executable, 127 CMD not found, 128+N snapguard got signal N
  preflight: by --profile: nagios (default) and human as above (anything blocking a
    backup is at least 2); systemd 0 go, 1 blocked, 2 cannot tell; azure 0 healthy,
    2 warnings only (Azure goes on), 1 blocked or cannot tell
  repair: fsck's bitmask, OR-ed over the filesystems
    0 clean, 1 repaired, 2 reboot needed, 4 errors left, 8 operational error,
    16 usage, 32 declined at the prompt, 64 --maintenance outside the window
A broken pipe on standard output is not an error.";

/// snapguard: will this machine give a consistent snapshot, and if not, why and how to fix it.
#[derive(Debug, Parser)]
#[command(name = "snapguard", version, about, long_about = None, after_long_help = EXIT_STATUS_HELP)]
pub struct Cli {
    /// Output format [default: human].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Same as --format json (with --format human it is an error).
    #[arg(long, global = true)]
    pub json: bool,
    /// Write logs to FILE (appended) instead of stderr. Held in memory while anything is
    /// frozen, like stderr, so it may live on a filesystem being frozen.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Read /proc, /sys, /etc, /var and /run under DIR instead of / (fixture trees, offline
    /// disks mounted elsewhere). Device and image paths given as arguments are not re-rooted.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output on stderr (errors only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Configuration file [default: the host's /etc/snapguard/snapguard.toml, never one under
    /// --root; a missing default file means defaults].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find unclean filesystems, with exactly the semantics of tune2fs -l and e2fsck.
    // A variant's doc comment replaces the Args struct's `long_about`: repeat it here.
    #[command(long_about = scan::SCAN_HELP, after_long_help = scan::SCAN_EXIT_HELP)]
    Scan(scan::ScanArgs),
    // ---- freeze (issue #4) ----
    /// Can every mount point be frozen? Static verdicts, then a real freeze and thaw of each.
    #[command(name = "freeze-test", long_about = freeze_test::HELP,
              after_long_help = freeze::FREEZE_TEST_EXIT_HELP)]
    FreezeTest(freeze_test::FreezeTestArgs),
    /// Freeze mount points, run CMD, thaw: a guardian guarantees the thaw.
    #[command(long_about = freeze::HELP, after_long_help = freeze::FREEZE_EXIT_HELP)]
    Freeze(freeze::FreezeArgs),
    /// Rescue: thaw what a dead snapguard run froze (--force: any frozen mount named).
    #[command(long_about = thaw::HELP, after_long_help = thaw::THAW_EXIT_HELP)]
    Thaw(thaw::ThawArgs),
    /// Internal: the guardian process of a freeze.
    #[command(name = "__guardian", hide = true)]
    Guardian(freeze::GuardianArgs),
    /// Internal: one FITHAW through an inherited fd.
    #[command(name = "__fithaw", hide = true)]
    Fithaw(freeze::FithawArgs),
    /// Internal: one bounded syncfs.
    #[command(name = "__syncfs", hide = true)]
    Syncfs(freeze::SyncfsArgs),
    // ---- end freeze ----
    /// Is /var/lib/waagent excluded from SELinux enforcement, and if not, the exact fix.
    #[command(long_about = selinux::SELINUX_HELP, after_long_help = selinux::SELINUX_EXIT_HELP)]
    Selinux(selinux::SelinuxArgs),
    /// Every read-only check at once, what blocks a backup, one exit code per --profile.
    #[command(long_about = preflight::HELP, after_long_help = preflight::EXIT_HELP)]
    Preflight(preflight::PreflightArgs),
    /// umount -> fsck -> mount, safely: a plan, a prompt, a fence, a backup, a verified remount.
    #[command(long_about = repair::HELP, after_long_help = repair::REPAIR_EXIT_HELP)]
    Repair(repair::RepairArgs),
    /// Internal: man pages and shell completions (scripts/install.sh).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

impl Cli {
    /// The output format after `--json`.
    pub fn output_format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format.unwrap_or(Format::Human)
        }
    }

    /// A combination of options clap cannot refuse by itself, as a usage error's text.
    pub fn usage_conflict(&self) -> Option<&'static str> {
        (self.json && self.format == Some(Format::Human))
            .then_some("--json and --format human contradict each other: give one")
    }

    /// The root everything system-wide is read under, made absolute: remedies name it, and a
    /// relative `--root` in them would act on another directory when pasted elsewhere.
    pub fn sys_root(&self) -> SysRoot {
        SysRoot::new(std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone()))
    }

    /// Load the configuration named by `--config`, or the default one if present.
    /// Ownership rules ([`crate::config::Trust`]): the default file and every directory
    /// above it must be root's and writable by root only; a `--config FILE` must be when
    /// running as root (the file itself); a non-root caller's own `--config FILE` is not checked.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        use crate::config::Trust;
        let euid = crate::sys::process::euid();
        let loaded = match &self.config {
            Some(path) => Config::load(path, true, Trust::for_file(true, euid)),
            // The host's, never one under --root: a fixture tree or an offline disk does not
            // configure the snapguard that reads it.
            None => Config::load(
                std::path::Path::new(DEFAULT_CONFIG),
                false,
                Trust::for_file(false, euid),
            ),
        };
        Ok(loaded?)
    }
}

/// Writes a command's report to stdout (deferred so `main` owns the output stream).
pub type Render = Box<dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>>;

/// What a command hands back to `main`: the document to print and the exit code.
pub struct Outcome {
    /// Writes the report in the chosen format.
    pub render: Render,
    /// One line each for stderr (targets that could not be assessed).
    pub problems: Vec<String>,
    /// The process exit code.
    pub exit_code: u8,
}

/// The exit status for bad usage of the subcommand named `name` (from a command line that did
/// not parse): 125 for `freeze` (CMD's statuses pass through, so snapguard's own failures use
/// timeout(1)'s 125), 3 (UNKNOWN) for every other command.
pub fn usage_exit_code(name: Option<&str>) -> u8 {
    match name {
        Some("freeze") => crate::freeze::outcome::exit::FAILED,
        Some("repair") => crate::repair::exit::USAGE,
        _ => 3,
    }
}

/// Which subcommand a command line that did not parse was meant for, as far as clap can tell.
pub fn subcommand_of(args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()
        .and_then(|m| m.subcommand_name().map(str::to_string))
}

/// Run the chosen subcommand.
pub fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    // The freeze engine's helpers read no configuration: they must start fast and fail only
    // for their own reasons.
    match &cli.command {
        Command::Guardian(args) => return Ok(freeze::run_guardian(args)),
        Command::Syncfs(args) => return Ok(freeze::run_syncfs(args)),
        Command::Fithaw(args) => return Ok(freeze::run_fithaw(args)),
        // Reads nothing but the clap definition.
        Command::Generate(args) => return Ok(generate::run(args)),
        _ => {}
    }
    let config = match cli.load_config() {
        Ok(c) => c,
        // `freeze` keeps 0-123 and 126-255 for CMD: its own failures are 125 (timeout(1)).
        Err(e) if matches!(cli.command, Command::Freeze(_)) => return Ok(freeze::cannot_run(e)),
        Err(e) if matches!(cli.command, Command::Repair(_)) => {
            return Ok(repair::cannot_run(e, crate::repair::exit::USAGE));
        }
        Err(e) => return Err(e),
    };
    match &cli.command {
        Command::Scan(args) => scan::run(args, cli, &config),
        Command::FreezeTest(args) => freeze_test::run(args, cli, &config),
        Command::Freeze(args) => freeze::run(args, cli, &config),
        Command::Thaw(args) => thaw::run(args, cli),
        Command::Guardian(_) | Command::Syncfs(_) | Command::Fithaw(_) | Command::Generate(_) => {
            unreachable!("handled above")
        }
        Command::Selinux(args) => selinux::run(args, cli, &config),
        Command::Repair(args) => repair::run(args, cli, &config),
        Command::Preflight(args) => preflight::run(args, cli, &config),
    }
}
