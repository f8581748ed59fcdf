//! The `snapguard` binary: parse arguments, set up logging, run, map the outcome to an
//! exit code. The only place besides `report/` that writes to stdout or stderr.
#![allow(clippy::print_stderr)]

use clap::Parser;
use snapguard::cli::{self, Cli};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

/// UNKNOWN: could not run (bad usage, unreadable configuration, no mount table).
const EXIT_UNKNOWN: u8 = 3;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let informational =
                matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            // clap prints help to stdout and usage errors to stderr by itself.
            let _ = e.print();
            if informational {
                return ExitCode::from(0);
            }
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            return ExitCode::from(cli::usage_exit_code(cli::subcommand_of(&args).as_deref()));
        }
    };
    if let Some(conflict) = cli.usage_conflict() {
        use clap::CommandFactory;
        let _ = Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, conflict)
            .print();
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        return ExitCode::from(cli::usage_exit_code(cli::subcommand_of(&args).as_deref()));
    }
    init_logging(&cli);
    match cli::run(&cli) {
        Ok(outcome) => {
            // After a failed thaw, stdout or stderr may lead into a filesystem that is still
            // frozen: one write there and snapguard never exits. The exit code still tells.
            use snapguard::freeze::logbuf::may_block;
            if !may_block(io::stderr().as_fd()) {
                for problem in &outcome.problems {
                    eprintln!("snapguard: {}", without_os_error_codes(problem));
                }
            }
            if may_block(io::stdout().as_fd()) {
                return ExitCode::from(outcome.exit_code);
            }
            // Stdout is line-buffered; one report is thousands of lines, so batch them.
            let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
            match (outcome.render)(&mut out).and_then(|()| out.flush()) {
                Ok(()) => {}
                // A closed pipe (`snapguard scan | head`) is not an error.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    eprintln!("snapguard: cannot write the report: {e}");
                    return ExitCode::from(EXIT_UNKNOWN);
                }
            }
            ExitCode::from(outcome.exit_code)
        }
        Err(e) => {
            eprintln!("snapguard: {}", without_os_error_codes(&format!("{e:#}")));
            ExitCode::from(EXIT_UNKNOWN)
        }
    }
}

/// Logs go to stderr through tracing, or to the journal with priorities (ERROR 3, WARN 4,
/// INFO 5, DEBUG 6, TRACE 7) when stderr is the journal stream systemd connected
/// (`$JOURNAL_STREAM` matching fstat of fd 2) and its socket answers; `--log-file` wins over
/// both. `SNAPGUARD_LOG` (an env-filter) overrides -v/-q.
fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SNAPGUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Opened now, before anything is frozen; the sink holds output while frozen.
    let mut to_file = false;
    if let Some(path) = &cli.log_file {
        match open_log_file(path) {
            Ok(file) => {
                snapguard::freeze::logbuf::set_file(file);
                to_file = true;
            }
            Err(why) => eprintln!(
                "snapguard: cannot open the log file '{}': {why}; logging to stderr",
                path.display()
            ),
        }
    }
    if !to_file && snapguard::sys::journal::stderr_is_journal() {
        // No socket (journald not running, a container): stderr, which the journal may still
        // read, without priorities.
        if let Ok(layer) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt as _;
            use tracing_subscriber::util::SubscriberInitExt as _;
            tracing_subscriber::registry()
                .with(filter)
                .with(layer.with_syslog_identifier("snapguard".into()))
                .init();
            return;
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(snapguard::freeze::logbuf::writer)
        .with_target(false);
    if to_file {
        // A file is read later and elsewhere: when (UTC, RFC 3339), and never colour codes.
        builder
            .with_ansi(false)
            .with_timer(tracing_subscriber::fmt::time::SystemTime)
            .init();
    } else {
        // Colour only for a person at a terminal (not with NO_COLOR, not on TERM=dumb, which
        // shows escape codes as text): never in a pipe,
        // a journal or a file stderr was redirected to.
        use std::io::IsTerminal;
        let colour = io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        builder.with_ansi(colour).without_time().init();
    }
}

/// Open the `--log-file` for appending without hanging: `O_NONBLOCK` makes a FIFO nobody reads
/// fail at once (ENXIO) instead of blocking the open forever; writes are blocking again after.
fn open_log_file(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => "it is a FIFO that no process reads".to_string(),
            _ => snapguard::sys::describe_io(&e),
        })?;
    snapguard::sys::process::clear_nonblocking(file.as_fd()).map_err(|e| e.desc().to_string())?;
    Ok(file)
}

/// Drop Rust's " (os error N)" suffixes: the errno's text is already in the message.
fn without_os_error_codes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(" (os error ") {
        out.push_str(&rest[..start]);
        let tail = &rest[start + " (os error ".len()..];
        match tail.find(')') {
            Some(end) if tail[..end].bytes().all(|b| b.is_ascii_digit()) => rest = &tail[end + 1..],
            _ => {
                out.push_str(" (os error ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_error_codes_are_dropped() {
        assert_eq!(
            super::without_os_error_codes(
                "cannot read 'x': No such file or directory (os error 2)"
            ),
            "cannot read 'x': No such file or directory"
        );
        assert_eq!(
            super::without_os_error_codes("a (os error x) b"),
            "a (os error x) b"
        );
    }
}
