//! Freeze/thaw hooks: executables in `/etc/snapguard/hooks.d/`, run in name order with the
//! argument `freeze` before the first FIFREEZE, and in reverse order with `thaw` after the last
//! FITHAW (VMware's quiesce-script convention). Every hook that ran for `freeze`, even one that
//! failed, runs for `thaw`, so locks a hook took are released (qemu-ga forgets this).
//!
//! A hook runs as root, so it must be owned by root and not writable by group or others, in a
//! directory that is owned by root and not writable by group or others either; otherwise the
//! whole run is refused (Azure's pre/post scripts have the same rule). Editor and package
//! leftovers (`*~`, `*.bak`, `*.rpmnew`, `*.dpkg-*`, `*.sample`, ...) and dot files are ignored.
//!
//! Each hook runs with stdin from /dev/null, stdout and stderr to snapguard's stderr, cwd `/`,
//! in its own process group (a timeout kills the whole group), and with `SNAPGUARD_PHASE` and
//! `SNAPGUARD_MOUNTS` (newline-separated mount points) in its environment.

use crate::report::HookRun;
use crate::sys::process::{DEV_NULL, NEUTRAL_CWD, signal_group};
use nix::sys::signal::Signal;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names that are never hooks.
fn ignored(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "~", ".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", ".sample", ".swp", ".tmp",
    ];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s)) || name.contains(".dpkg-")
}

/// Why `meta` (of a hook or its directory) is not trusted, if it is not.
fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    if meta.uid() != 0 {
        return Some(format!("owned by uid {}, not root", meta.uid()));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Some(format!(
            "writable by {} (mode {:04o}); chmod go-w it",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        ));
    }
    None
}

/// The hooks to run, in order; `Err` lists every refused hook (nothing may run then).
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, Vec<HookRun>> {
    let refuse = |path: &Path, why: String| HookRun {
        path: path.display().to_string(),
        phase: "freeze",
        result: "refused",
        exit_code: None,
        duration_ms: 0.0,
        detail: Some(why),
    };
    let dir_meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![refuse(
                dir,
                format!(
                    "cannot read the hook directory: {}",
                    crate::sys::describe_io(&e)
                ),
            )]);
        }
    };
    if let Some(why) = untrusted(&dir_meta) {
        return Err(vec![refuse(dir, format!("hook directory {why}"))]);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![refuse(
                dir,
                format!(
                    "cannot list the hook directory: {}",
                    crate::sys::describe_io(&e)
                ),
            )]);
        }
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    let mut hooks = Vec::new();
    let mut refused = Vec::new();
    for name in names {
        if ignored(&name.to_string_lossy()) {
            continue;
        }
        let path = dir.join(&name);
        // Follow symlinks: what runs is the target, so the target is what must be trusted.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue; // not an executable file: documentation, disabled hooks
        }
        match untrusted(&meta) {
            Some(why) => refused.push(refuse(&path, format!("refused: {why}"))),
            None => hooks.push(path),
        }
    }
    if refused.is_empty() {
        Ok(hooks)
    } else {
        Err(refused)
    }
}

/// Run one hook with `phase` (`freeze` or `thaw`), killing its process group after `timeout`.
pub fn run(hook: &Path, phase: &'static str, mounts: &[PathBuf], timeout: Duration) -> HookRun {
    let start = Instant::now();
    let list: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
    let mut result = HookRun {
        path: hook.display().to_string(),
        phase,
        result: "ok",
        exit_code: None,
        duration_ms: 0.0,
        detail: None,
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let spawned = Command::new(hook)
        .arg(phase)
        .env("SNAPGUARD_PHASE", phase)
        .env("SNAPGUARD_MOUNTS", list.join("\n"))
        .stdin(std::fs::File::open(DEV_NULL).map_or_else(|_| Stdio::null(), Stdio::from))
        .stdout(stdout)
        .stderr(stderr)
        .current_dir(NEUTRAL_CWD)
        .process_group(0)
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
}
