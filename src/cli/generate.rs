//! `snapguard generate` (hidden): man pages and shell completions from the clap definition,
//! for `scripts/install.sh` and packagers, so they never drift from `--help`.

use super::{Cli, Outcome};
use clap::{Args, CommandFactory as _, Subcommand};
use std::path::{Path, PathBuf};

/// Arguments of `snapguard generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: What,
}

/// What to generate.
#[derive(Debug, Subcommand)]
pub enum What {
    /// Man pages snapguard(1) and snapguard-COMMAND(1), one per command, written into DIR
    /// (which must exist); their names are printed, one a line.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL on standard output.
    Completions {
        #[arg(value_name = "SHELL", value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Run `snapguard generate`: 0 when written, 3 when the directory cannot be written.
pub fn run(args: &GenerateArgs) -> Outcome {
    match &args.what {
        What::Man { dir } => match man_pages(dir) {
            Ok(files) => Outcome {
                render: Box::new(move |out| {
                    for file in files {
                        writeln!(out, "{}", file.display())?;
                    }
                    Ok(())
                }),
                problems: Vec::new(),
                exit_code: 0,
            },
            Err(e) => Outcome {
                render: Box::new(|_| Ok(())),
                problems: vec![format!(
                    "generate man: cannot write into '{}': {}",
                    dir.display(),
                    crate::sys::describe_io(&e)
                )],
                exit_code: 3,
            },
        },
        What::Completions { shell } => {
            let shell = *shell;
            Outcome {
                render: Box::new(move |out| {
                    clap_complete::generate(shell, &mut public_command(), "snapguard", out);
                    Ok(())
                }),
                problems: Vec::new(),
                exit_code: 0,
            }
        }
    }
}

/// The command line without its hidden subcommands (the freeze engine's helpers, `generate`):
/// clap_complete's bash script offers hidden ones too, and nobody types them.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut public = clap::Command::new("snapguard")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        public = public.about(about.clone());
    }
    public
}

/// Write every page into `dir`; the paths written, snapguard.1 first.
pub fn man_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Build once so that global options appear on every command's page.
    cmd.build();
    let mut written = vec![clap_mangen::Man::new(cmd.clone()).generate_to(dir)?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.push(clap_mangen::Man::new(sub.clone()).generate_to(dir)?);
    }
    Ok(written)
}

/// The page names (`snapguard`, `snapguard-scan`, ...) `man_pages` writes, section 1.
pub fn man_page_names() -> Vec<String> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut names = vec![cmd.get_display_name().unwrap_or("snapguard").to_string()];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        names.push(
            sub.get_display_name()
                .unwrap_or_else(|| sub.get_name())
                .to_string(),
        );
    }
    names
}
