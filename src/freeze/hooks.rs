//! Freeze/thaw hooks: executables in `/etc/snapguard/hooks.d/`, run in name order with the
//! argument `freeze` before the first FIFREEZE, and in reverse order with `thaw` after the last
//! FITHAW (VMware's quiesce-script convention). Every hook that ran for `freeze`, even one that
//! failed, runs for `thaw`, so locks a hook took are released (qemu-ga forgets this).
//!
//! A hook runs as root, so only root may have put it there: the directory is reached from `/`
//! by [`crate::sys::trusted`]'s walk (every directory on the way, symbolic links included, owned
//! by root and writable by neither group nor others), each entry is opened relative to the
//! checked directory's fd (a symbolic link is walked with the same checks), and a hook must be
//! a regular file owned by root and not writable by group or others. One refused hook refuses
//! the whole run: nothing runs and nothing is frozen (Azure's pre/post scripts have the same
//! rule). Editor and package leftovers (`*~`, `*.bak`, `*.rpmnew`, `*.dpkg-*`, `*.sample`, ...),
//! dot files, non-executable files and anything that is not a regular file are skipped.
//!
//! A [`Hook`] holds the fd that was checked, and runs **through that fd**
//! ([`crate::sys::spawn::Program::Fd`]): a file renamed over the hook after the check is never
//! what runs. (A `#!` script therefore sees `/proc/self/fd/N` as `$0`.)
//!
//! Each hook runs with the argument `freeze` or `thaw`, a **fixed environment** and nothing of
//! snapguard's own: `PATH=/usr/sbin:/usr/bin:/sbin:/bin`, `SNAPGUARD_PHASE` (`freeze`/`thaw`)
//! and `SNAPGUARD_MOUNTS` (the mount points, one per line); an empty signal mask and default
//! signal dispositions; stdin from /dev/null, stdout and stderr to snapguard's stderr (or a
//! given fd); cwd `/`; in its own process group, which is killed when the hook times out.

use crate::report::HookRun;
use crate::sys::process::{DEV_NULL, NEUTRAL_CWD, signal_group};
use crate::sys::spawn::{Program, Spawn, adopt_inherited_fd};
use crate::sys::trusted::{TrustedDir, TrustedFile};
use nix::sys::signal::Signal;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `PATH` of every hook.
pub const HOOK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the hooks are, and whether the directory was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksDir {
    /// Absolute path.
    pub path: PathBuf,
    /// Given with `--hooks-dir` or `[freeze] hooks_dir`: it must exist. The default directory
    /// may be missing (no hooks).
    pub explicit: bool,
}

/// A checked hook: the display path (its name in the hooks directory) and the fd of the file
/// that was checked, which is what runs.
#[derive(Debug)]
pub struct Hook {
    /// The path in the hooks directory (shown in reports and as the hook's `argv[0]`).
    pub path: PathBuf,
    file: TrustedFile,
}

impl Hook {
    /// The fd of the checked file, to hand to a helper process that runs the hook later
    /// ([`crate::sys::spawn::Spawn::keep_fd`], then [`Hook::from_inherited_fd`] there).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Rebuild a hook in a helper process from fd number `raw` that its parent kept open for it
    /// and the hook's display `path`. The fd is adopted (owned from now on) and judged again
    /// (a regular file, owned by root, writable only by root).
    pub fn from_inherited_fd(raw: RawFd, path: PathBuf) -> anyhow::Result<Hook> {
        let fd = adopt_inherited_fd(raw).map_err(|e| {
            anyhow::anyhow!(
                "hook '{}': inherited fd {raw}: {}",
                path.display(),
                crate::sys::describe_io(&e)
            )
        })?;
        let file = TrustedFile::from_fd(fd, path.clone())
            .map_err(|e| anyhow::anyhow!("hook refused: {e}"))?;
        Ok(Hook { path, file })
    }
}

/// Names that are never hooks.
fn ignored(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "~", ".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", ".sample", ".swp", ".tmp",
    ];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s)) || name.contains(".dpkg-")
}

/// A report row for a hook (or the directory) that was refused.
fn refused(path: &Path, detail: String) -> HookRun {
    HookRun {
        path: path.display().to_string(),
        phase: "freeze",
        result: "refused",
        exit_code: None,
        duration_ms: 0.0,
        detail: Some(detail),
    }
}

/// The hooks to run, in order, each holding its checked fd; `Err` lists every refused hook (or
/// the refused directory): nothing may run then.
pub fn discover(dir: &HooksDir) -> Result<Vec<Hook>, Vec<HookRun>> {
    let checked = match TrustedDir::open(&dir.path) {
        Ok(d) => d,
        Err(e) if e.is_not_found() && !dir.explicit => return Ok(Vec::new()),
        Err(e) if e.is_not_found() => {
            let missing = if e.path() == dir.path {
                String::new()
            } else {
                format!(" ({e})")
            };
            return Err(vec![refused(
                &dir.path,
                format!(
                    "the hook directory '{}' does not exist{missing}; it was given with \
                     --hooks-dir or [freeze] hooks_dir, so it must",
                    dir.path.display()
                ),
            )]);
        }
        Err(e) => {
            return Err(vec![refused(
                &dir.path,
                format!("hook directory refused: {e}"),
            )]);
        }
    };
    let names = checked.entry_names().map_err(|e| {
        vec![refused(
            &dir.path,
            format!("cannot list the hook directory: {e}"),
        )]
    })?;
    let mut hooks = Vec::new();
    let mut refusals = Vec::new();
    for name in names {
        if ignored(&name.to_string_lossy()) {
            continue;
        }
        let path = dir.path.join(&name);
        let found = match checked.lookup(&name) {
            Ok(f) => f,
            // Removed meanwhile, or a symbolic link to nothing: not a hook.
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                refusals.push(refused(&path, format!("refused: {e}")));
                continue;
            }
        };
        if !found.is_regular_file() || found.mode() & 0o111 == 0 {
            continue; // not an executable file: documentation, disabled hooks, directories
        }
        match found.into_file() {
            Ok(file) => hooks.push(Hook { path, file }),
            Err(e) => refusals.push(refused(&path, format!("refused: {e}"))),
        }
    }
    if refusals.is_empty() {
        Ok(hooks)
    } else {
        Err(refusals)
    }
}

/// Run one hook with `phase` (`freeze` or `thaw`), its output on snapguard's stderr, killing
/// its process group after `timeout`.
pub fn run(hook: &Hook, phase: &'static str, mounts: &[PathBuf], timeout: Duration) -> HookRun {
    run_to(hook, phase, mounts, timeout, std::io::stderr().as_fd())
}

/// [`run`] with the hook's stdout and stderr going to `output`.
pub fn run_to(
    hook: &Hook,
    phase: &'static str,
    mounts: &[PathBuf],
    timeout: Duration,
    output: BorrowedFd<'_>,
) -> HookRun {
    run_watched(hook, phase, mounts, timeout, output, &mut |_| {})
}

/// [`run_to`], telling `started` the hook's pid (also its process group) as soon as it runs, so
/// that the guardian can wait for a freeze hook that is still running before it runs its thaw
/// hook.
pub fn run_watched(
    hook: &Hook,
    phase: &'static str,
    mounts: &[PathBuf],
    timeout: Duration,
    output: BorrowedFd<'_>,
    started: &mut dyn FnMut(u32),
) -> HookRun {
    let start = Instant::now();
    let list: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
    let mut result = HookRun {
        path: hook.path.display().to_string(),
        phase,
        result: "ok",
        exit_code: None,
        duration_ms: 0.0,
        detail: None,
    };
    let to_output = || {
        output
            .try_clone_to_owned()
            .map_or_else(|_| Stdio::null(), Stdio::from)
    };
    let spawned = Spawn::new(Program::Fd(hook.fd()))
        .arg0(hook.path.as_os_str())
        .arg(phase)
        .env_fixed([
            ("PATH", HOOK_PATH.to_string()),
            ("SNAPGUARD_PHASE", phase.to_string()),
            ("SNAPGUARD_MOUNTS", list.join("\n")),
        ])
        .stdin(std::fs::File::open(DEV_NULL).map_or_else(|_| Stdio::null(), Stdio::from))
        .stdout(to_output())
        .stderr(to_output())
        .cwd(NEUTRAL_CWD)
        .process_group(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            result.result = "error";
            result.detail = Some(format!("cannot run: {}", crate::sys::describe_io(&e)));
            result.duration_ms = super::ms(start.elapsed());
            return result;
        }
    };
    started(child.id());
    let deadline = start + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            let _ = signal_group(child.id(), Signal::SIGKILL);
            let _ = child.wait();
            result.result = "timeout";
            result.detail = Some(format!(
                "did not finish within {} s: its process group was killed",
                timeout.as_secs_f64()
            ));
            result.duration_ms = super::ms(start.elapsed());
            return result;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    result.duration_ms = super::ms(start.elapsed());
    match status {
        Some(s) if s.success() => result.exit_code = Some(0),
        Some(s) => {
            result.result = "failed";
            result.exit_code = s.code();
            result.detail = Some(match (s.code(), s.signal()) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => "ended abnormally".to_string(),
            });
        }
        None => {
            result.result = "error";
            result.detail = Some("cannot wait for it".to_string());
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_not_hooks() {
        for n in [
            "a~",
            "b.bak",
            "c.rpmnew",
            "d.dpkg-old",
            "e.sample",
            ".hidden",
        ] {
            assert!(ignored(n), "{n}");
        }
        assert!(!ignored("10-mysql"));
    }

    #[test]
    fn a_missing_directory_is_no_hooks_only_by_default() {
        let path = PathBuf::from("/nonexistent-snapguard/hooks.d");
        let default = HooksDir {
            path: path.clone(),
            explicit: false,
        };
        assert!(discover(&default).expect("no hooks").is_empty());
        let named = HooksDir {
            path,
            explicit: true,
        };
        let refusals = discover(&named).expect_err("refused");
        assert_eq!(refusals[0].result, "refused");
        assert_eq!(
            refusals[0].detail.as_deref(),
            Some(
                "the hook directory '/nonexistent-snapguard/hooks.d' does not exist \
                 ('/nonexistent-snapguard' does not exist); it was given with --hooks-dir or \
                 [freeze] hooks_dir, so it must"
            )
        );
    }

    #[test]
    fn a_world_writable_directory_is_refused() {
        let tmp = HooksDir {
            path: PathBuf::from("/tmp"),
            explicit: true,
        };
        let refusals = discover(&tmp).expect_err("refused");
        let detail = refusals[0].detail.as_deref().unwrap_or_default();
        assert!(
            detail.starts_with("hook directory refused: '/tmp' is writable"),
            "{detail}"
        );
    }

    #[test]
    fn a_hook_rebuilt_from_an_inherited_fd_runs_through_it() {
        use std::os::fd::IntoRawFd;
        let file = TrustedFile::open(Path::new("/bin/true")).expect("/bin/true is trusted");
        let raw = file
            .as_fd()
            .try_clone_to_owned()
            .expect("dup")
            .into_raw_fd();
        let hook = Hook::from_inherited_fd(raw, PathBuf::from("/etc/x/10-true")).expect("adopt");
        let null = std::fs::File::create(DEV_NULL).expect("/dev/null");
        let run = run_to(&hook, "thaw", &[], Duration::from_secs(10), null.as_fd());
        assert_eq!(run.result, "ok", "{:?}", run.detail);
        assert_eq!(run.path, "/etc/x/10-true");
        assert!(Hook::from_inherited_fd(raw + 100_000, PathBuf::from("/x")).is_err());
    }
}
