//! `snapguard selinux`: is the Azure Linux agent (`/var/lib/waagent`, the agent's domain)
//! excluded from SELinux enforcement, and if not, the exact fix (selinux.md §8), plus the
//! look-alikes that fail the same way (§7: noexec, fapolicyd, AppArmor).
//!
//! Everything is read from files under [`SysRoot`] (no libselinux), so `--root` can point at
//! a fixture tree or an offline disk. A root without `/proc` is *offline*: the mode is the
//! configured one and process checks are skipped.
//!
//! Remedies are commands for the checked system: under `--root DIR` they act on DIR
//! ([`remedy`]).
//!
//! Check ids: `S1`…`S11` are selinux.md §8's SELinux checks, `L1`…`L3` the look-alikes.
//! Order of evaluation differs from the order shown (S6 needs S7 and S9), but every check is
//! always present in the report, `skip` when it does not apply.

pub mod agent;
pub mod audit;
pub mod booleans;
pub mod denials;
pub mod file_contexts;
pub mod labels;
pub mod lookalikes;
pub mod remedy;
pub mod state;
pub mod store;

use crate::mount::MountTable;
use crate::report::{
    Check, CheckStatus, CheckSummary, SCHEMA_VERSION, SelinuxMode, SelinuxReport, Status,
};
use crate::root::{MOUNTINFO, PID1_MOUNTINFO, SysRoot};
use anyhow::Context as _;
use std::io::{self, Read};
use std::path::Path;

/// Default time window for denials: `ausearch -ts week-ago` covers the same.
pub const DEFAULT_WINDOW_DAYS: u64 = 7;

/// Types in which the agent runs unconfined (selinux.md §2.1).
pub const UNCONFINED_AGENT_TYPES: [&str; 3] = ["unconfined_service_t", "initrc_t", "unconfined_t"];

/// What the run needs from outside the root.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The current time, epoch seconds (the window for denials ends here).
    pub now: u64,
    /// Denials older than this many days are ignored.
    pub window_days: u64,
}

impl Options {
    /// The start of the denial window, epoch seconds.
    pub fn since(&self) -> u64 {
        self.now.saturating_sub(self.window_days * 86_400)
    }
}

/// A file read that may legitimately fail: absent, or unreadable (permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// No such file.
    Missing,
    /// Exists but could not be read; the reason, one line.
    Unreadable(String),
    /// The contents (invalid UTF-8 replaced).
    Text(String),
}

impl Input {
    /// The text, if it was read.
    pub fn text(&self) -> Option<&str> {
        match self {
            Input::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Read a whole (small) file.
pub fn read_input(path: &Path) -> Input {
    read_input_tail(path, u64::MAX)
}

/// Read at most the last `max` bytes of a file (logs), starting at a line boundary.
pub fn read_input_tail(path: &Path, max: u64) -> Input {
    let result = (|| -> io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        if len > max {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(len - max))?;
        }
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        if len > max {
            if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
                bytes.drain(..=nl);
            }
        }
        Ok(bytes)
    })();
    match result {
        Ok(bytes) => Input::Text(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Input::Missing,
        Err(e) => Input::Unreadable(crate::sys::describe_io(&e)),
    }
}

/// Quote a path or argument for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    crate::shell::quote(s).into_owned()
}

/// Run every check against `root`. Errors only when the root itself is unusable.
pub fn run(root: &SysRoot, options: &Options) -> anyhow::Result<SelinuxReport> {
    let meta = std::fs::metadata(root.base())
        .with_context(|| format!("cannot read the root '{}'", root.base().display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "the root '{}' is not a directory",
        root.base().display()
    );
    let live = state::is_live(root);
    let mounts = if live { read_mounts(root) } else { None };
    let cmdline = state::Cmdline::read(root);
    let config = state::ConfigFile::read(root);

    let (s1, kernel_off) = state::kernel_support(root, live, &cmdline);
    let (s2, mode) =
        state::runtime_mode(root, live, kernel_off.as_deref(), &config, mounts.as_ref());
    let active = matches!(mode, SelinuxMode::Enforcing | SelinuxMode::Permissive);
    let inactive_reason = match mode {
        SelinuxMode::Absent => "SELinux is not in use (S1)",
        SelinuxMode::Disabled => "SELinux is disabled (S2)",
        SelinuxMode::Container => "the host's SELinux applies, not this container's (S2)",
        SelinuxMode::Unknown => "the SELinux mode could not be read (S2)",
        _ => "",
    };
    let skip = |id, title| Check::new(id, title, CheckStatus::Skip, inactive_reason);

    let s3 = match mode {
        SelinuxMode::Absent | SelinuxMode::Container | SelinuxMode::Unknown => {
            skip("S3", state::S3_TITLE)
        }
        _ => state::config_consistency(root, live, mode, &config, &cmdline),
    };

    // Processes are needed by S6 and by the AppArmor look-alike, SELinux or not.
    let agents = if live { Some(agent::find(root)) } else { None };
    let mut logs: Option<denials::LogSet> = None;
    let policy_type = config.policy_type();

    let mut selinux_checks = Vec::new();
    if active {
        let s4 = state::policy_type_check(root, &config);
        let store = store::Store::locate(root, &policy_type);
        let permissive = store.permissive_types();
        let agent_list = agents.as_ref().and_then(|a| a.as_ref().ok());
        let observed: Vec<String> = agent_list
            .map(|a| agent::observed_types(a))
            .unwrap_or_default();
        let s5 = store.unconfined_check(&policy_type, &observed, &permissive);
        let s7 = store.permissive_check(&permissive, &observed);
        let s8 = labels::check(root, &policy_type);
        let log_set = denials::LogSet::load(root, options);
        let outcome = denials::evaluate(root, &log_set, &observed, &permissive, mode, options);
        let s9 = denials::check(&log_set, &outcome, options);
        logs = Some(log_set);
        let s6 = match &agents {
            None => Check::new(
                "S6",
                agent::S6_TITLE,
                CheckStatus::Skip,
                "offline root: no processes to look at",
            ),
            Some(found) => agent::check(root, found, &permissive, &outcome),
        };
        let s10 = booleans::check(root, live, &store);
        let s11 = store.local_modules_check(&observed);
        selinux_checks = vec![s4, s5, s6, s7, s8, s9, s10, s11];
        if mode == SelinuxMode::Permissive {
            for c in &mut selinux_checks {
                cap_permissive(c);
            }
        }
    } else {
        for (id, title) in [
            ("S4", state::S4_TITLE),
            ("S5", store::S5_TITLE),
            ("S6", agent::S6_TITLE),
            ("S7", store::S7_TITLE),
            ("S8", labels::S8_TITLE),
            ("S9", denials::S9_TITLE),
            ("S10", booleans::S10_TITLE),
            ("S11", store::S11_TITLE),
        ] {
            selinux_checks.push(skip(id, title));
        }
    }

    let l1 = lookalikes::noexec(root, live, mounts.as_ref());
    let l2 = lookalikes::fapolicyd(root, live);
    let l3 = lookalikes::apparmor(root, live, agents.as_ref(), &mut logs, options);

    let mut checks = vec![s1, s2, s3];
    checks.extend(selinux_checks);
    checks.extend([l1, l2, l3]);
    // `--root DIR`: every remedy acts on DIR, never on the host running the check.
    for c in &mut checks {
        if let Some(r) = &c.remedy {
            c.remedy = Some(remedy::for_root(root, &policy_type, r));
        }
        c.message = remedy::detail_for_root(root, &policy_type, &c.message);
        for d in &mut c.details {
            *d = remedy::detail_for_root(root, &policy_type, d);
        }
    }

    let (excluded, verdict) = verdict(mode, live, &checks);
    let summary = CheckSummary::of(&checks);
    // CRITICAL beats UNKNOWN beats WARNING beats OK: a failure settles "not excluded" even
    // when something else could not be read; a warning does not hide a "cannot tell".
    let status = match summary.status() {
        Status::Critical => Status::Critical,
        _ if excluded.is_none() => Status::Unknown,
        other => other,
    };
    let unreadable = checks
        .iter()
        .filter(|c| c.unreadable)
        .map(|c| c.id)
        .collect();
    Ok(SelinuxReport {
        schema_version: SCHEMA_VERSION,
        command: "selinux",
        root: root.base().display().to_string(),
        offline: !live,
        mode,
        policy_type: (mode != SelinuxMode::Absent).then_some(policy_type),
        status,
        summary,
        excluded,
        verdict,
        unreadable,
        checks,
    })
}

/// The mount table as the host (and the agent) sees it: `<root>/proc/1/mountinfo`, since the
/// caller may run in a namespace of its own (the preflight unit's ProtectKernelTunables= and
/// ProtectSystem= make every mount there read-only, selinuxfs included, which would read as a
/// container); `<root>/proc/self/mountinfo` when PID 1's is missing or unreadable; `None` when
/// neither can be read and parsed.
fn read_mounts(root: &SysRoot) -> Option<MountTable> {
    if let Ok(bytes) = std::fs::read(root.path(PID1_MOUNTINFO)) {
        if let Ok(table) = MountTable::from_mountinfo(&bytes) {
            return Some(table);
        }
    }
    let path = root.path(MOUNTINFO);
    let bytes = std::fs::read(&path).ok()?;
    match MountTable::from_mountinfo(&bytes) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("ignoring '{}': {e}", path.display());
            None
        }
    }
}

/// In permissive mode nothing is enforced: a problem is a warning ("would block once
/// enforcing"), never a failure.
fn cap_permissive(check: &mut Check) {
    if check.status == CheckStatus::Fail {
        check.status = CheckStatus::Warn;
        check.message = format!("{} (would block once enforcing)", check.message);
    }
}

fn status_of<'a>(checks: &'a [Check], id: &str) -> Option<&'a Check> {
    checks.iter().find(|c| c.id == id)
}

/// The head of a check message: up to its first explanation (`: `, ` (`, `, e.g.`, `, and`).
fn short(message: &str) -> String {
    let end = [": ", " (", ", e.g.", ", and "]
        .iter()
        .filter_map(|sep| message.find(sep))
        .min()
        .unwrap_or(message.len());
    message[..end].to_string()
}

/// Checks whose answer decides the verdict in enforcing mode (selinux.md §8).
const DECIDING: [&str; 4] = ["S5", "S6", "S8", "S9"];

/// The one-line answer (selinux.md §8, "How to combine the results"): excluded when SELinux
/// is not enforcing, or when S5 and S8 and S9 have no failure and S6 passes (or was skipped
/// on an offline root). `None`, "cannot tell", when the mode (S2) or a deciding check could
/// not be read and no other check already shows the agent is not excluded: a run without
/// the rights to look never says "excluded".
fn verdict(mode: SelinuxMode, live: bool, checks: &[Check]) -> (Option<bool>, String) {
    let st = |id: &str| status_of(checks, id).map_or(CheckStatus::Skip, |c| c.status);
    let unread = |id: &str| status_of(checks, id).is_some_and(|c| c.unreadable);
    let msg = |id: &str| status_of(checks, id).map_or(String::new(), |c| short(&c.message));
    let reason = |id: &str| format!("{} ({id})", msg(id));
    let not_read: Vec<&str> = DECIDING.iter().copied().filter(|id| unread(id)).collect();
    let (excluded, mut line) = match mode {
        SelinuxMode::Absent => (
            Some(true),
            format!("excluded: SELinux is not in use: {}", msg("S1")),
        ),
        SelinuxMode::Disabled => (Some(true), format!("excluded: {}", msg("S2"))),
        SelinuxMode::Container => (Some(true), format!("excluded here: {}", msg("S2"))),
        SelinuxMode::Unknown => (None, format!("cannot tell: {}; run as root", reason("S2"))),
        SelinuxMode::Permissive => {
            let would: Vec<&str> = checks
                .iter()
                .filter(|c| c.id.starts_with('S') && c.id != "S2" && c.status == CheckStatus::Warn)
                .map(|c| c.id)
                .collect();
            let mut tail = if would.is_empty() {
                String::new()
            } else {
                format!("; to review before enforcing: {}", would.join(", "))
            };
            if !not_read.is_empty() {
                tail.push_str(&format!("; not read (needs root): {}", not_read.join(", ")));
            }
            (
                Some(true),
                format!("excluded: SELinux is permissive, denials are logged, not enforced{tail}"),
            )
        }
        SelinuxMode::Enforcing => {
            let s6_ok = match st("S6") {
                CheckStatus::Pass => true,
                // Not read is not a reason either way: it is in `not_read`.
                CheckStatus::Skip => !live || unread("S6"),
                _ => false,
            };
            let mut reasons = Vec::new();
            if st("S5") == CheckStatus::Fail {
                reasons.push(reason("S5"));
            }
            if !s6_ok {
                reasons.push(reason("S6"));
            }
            if st("S8") == CheckStatus::Fail {
                reasons.push(reason("S8"));
            }
            if st("S9") == CheckStatus::Fail {
                reasons.push(reason("S9"));
            }
            let unknown: Vec<String> = not_read.iter().map(|id| reason(id)).collect();
            if !reasons.is_empty() {
                let mut line = format!("not excluded: {}", reasons.join("; "));
                if !not_read.is_empty() {
                    line.push_str(&format!("; not read (needs root): {}", not_read.join(", ")));
                }
                (Some(false), line)
            } else if !unknown.is_empty() {
                (
                    None,
                    format!(
                        "cannot tell: SELinux is enforcing and {}; run as root",
                        unknown.join("; ")
                    ),
                )
            } else {
                let how = if live {
                    msg("S6")
                } else {
                    "offline root: the module store, labels and logs allow the agent".to_string()
                };
                (
                    Some(true),
                    format!("excluded: SELinux is enforcing and {how}"),
                )
            }
        }
    };
    let lookalikes: Vec<String> = checks
        .iter()
        .filter(|c| c.id.starts_with('L') && c.status == CheckStatus::Fail)
        .map(|c| format!("{} ({})", short(&c.message), c.id))
        .collect();
    if !lookalikes.is_empty() {
        let joiner = if excluded == Some(true) {
            "but the agent is still blocked"
        } else {
            "also"
        };
        line = format!("{line}; {joiner}: {}", lookalikes.join("; "));
    }
    (excluded, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_only_when_needed() {
        assert_eq!(shell_quote("/var/lib/waagent"), "/var/lib/waagent");
        assert_eq!(
            shell_quote("/var/lib/waagent(/.*)?"),
            "'/var/lib/waagent(/.*)?'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn tail_reads_start_at_a_line_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "first line\nsecond\nthird\n").unwrap();
        assert_eq!(read_input_tail(&p, 10).text(), Some("third\n"));
        assert_eq!(read_input(&p).text(), Some("first line\nsecond\nthird\n"));
        assert_eq!(read_input(&dir.path().join("none")), Input::Missing);
        assert!(matches!(read_input(dir.path()), Input::Unreadable(_)));
    }
}
