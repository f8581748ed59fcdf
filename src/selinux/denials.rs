//! S9: recent AVC / USER_AVC denials touching the agent, from the audit log and its rotated
//! copies (`log_file` and `num_logs` from `/etc/audit/auditd.conf`). Without an audit log,
//! the kernel logs (`/var/log/messages`, `kern.log`, `syslog`) are read, and on the running
//! system (`--root /`) also journald, through `journalctl -o json` limited to the window.
//!
//! The window is the last [`super::DEFAULT_WINDOW_DAYS`] days (what `ausearch -ts week-ago`
//! shows). A denial whose source domain is now a customised permissive domain (S7) is
//! counted as resolved: that domain cannot be enforced any more.

use super::audit::{self, AgentMatch, Avc, Verdict};
use super::{Input, Options, read_input, read_input_tail, shell_quote};
use crate::report::{Check, CheckStatus, SelinuxMode};
use crate::root::{AUDITD_CONF, KERNEL_LOGS, SysRoot, WAAGENT_CONF};
use crate::sys::spawn::{Program, Spawn};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub const S9_TITLE: &str = "recent denials";

/// At most this much of each log file is read (its end).
const MAX_LOG_BYTES: u64 = 64 << 20;
/// At most this much journalctl output is read.
const MAX_JOURNAL_BYTES: u64 = 64 << 20;
/// journalctl is given this long.
pub const JOURNAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Denials listed in the details.
const MAX_LISTED: usize = 10;

/// The logs read, as text.
#[derive(Debug, Clone, Default)]
pub struct LogSet {
    /// What was read (paths of the checked system, or `journald (…)`).
    pub sources: Vec<String>,
    /// The contents, one entry per source.
    pub texts: Vec<String>,
    /// Sources that exist but could not be read, with the reason.
    pub unreadable: Vec<String>,
    /// Where the audit log was expected.
    pub expected: String,
}

impl LogSet {
    /// Read the audit log and its rotations; fall back to kernel logs and, on `/`, journald.
    pub fn load(root: &SysRoot, options: &Options) -> LogSet {
        let conf = read_input(&root.path(AUDITD_CONF));
        let settings = audit::auditd_log_settings(conf.text().unwrap_or(""));
        let mut set = LogSet::default();
        let mut audit_found = false;
        if let Some(file) = &settings.log_file {
            set.expected = file.clone();
            let max = if settings.keep_logs {
                audit::MAX_ROTATED
            } else {
                settings.num_logs.saturating_sub(1) as usize
            };
            for (i, name) in audit::rotated_names(file, max).into_iter().enumerate() {
                match read_input_tail(&root.host(&name), MAX_LOG_BYTES) {
                    Input::Text(t) => {
                        audit_found = true;
                        set.sources.push(name);
                        set.texts.push(t);
                    }
                    Input::Unreadable(e) => {
                        audit_found = true;
                        set.unreadable.push(format!("{name}: {e}"));
                    }
                    // Rotations are consecutive: the first gap ends them.
                    Input::Missing if i > 0 => break,
                    Input::Missing => {}
                }
            }
        } else {
            set.expected = "none (auditd.conf: no log file)".into();
        }
        if audit_found {
            return set;
        }
        for name in KERNEL_LOGS {
            match read_input_tail(&root.host(name), MAX_LOG_BYTES) {
                Input::Text(t) => {
                    set.sources.push(name.to_string());
                    set.texts.push(t);
                }
                Input::Unreadable(e) => set.unreadable.push(format!("{name}: {e}")),
                Input::Missing => {}
            }
        }
        if root.is_host() {
            match journal(options) {
                Ok(text) => {
                    set.sources.push(format!(
                        "journald (journalctl _AUDIT_TYPE_NAME=AVC/USER_AVC, last {} days)",
                        options.window_days
                    ));
                    set.texts.push(text);
                }
                Err(e) => set.unreadable.push(format!("journald: {e}")),
            }
        }
        set
    }

    /// Nothing was read at all.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// `journalctl -o json … --since=@<epoch>`, argv only, bounded in time and size.
pub fn journal(options: &Options) -> Result<String, String> {
    let mut child = Spawn::new(Program::Path(Path::new("journalctl")))
        .args(audit::JOURNALCTL_ARGS.iter().copied())
        .arg(format!("--since=@{}", options.since()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run journalctl: {}", crate::sys::describe_io(&e)))?;
    let stdout = child.stdout.take().ok_or("journalctl has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.take(MAX_JOURNAL_BYTES).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + JOURNAL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for journalctl: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    match status {
        None => Err(format!(
            "journalctl did not finish within {}s",
            JOURNAL_TIMEOUT.as_secs()
        )),
        Some(s) if !s.success() && out.is_empty() => Err(format!("journalctl failed ({s})")),
        Some(_) => Ok(String::from_utf8_lossy(&out).into_owned()),
    }
}

/// Agent-related denials in the window, classified.
#[derive(Debug, Clone, Default)]
pub struct DenialOutcome {
    /// Enforced (`permissive=0`, or unknown while enforcing) and still possible.
    pub blocking: Vec<Avc>,
    /// Logged only (`permissive=1`) outside a customised permissive domain.
    pub logged: Vec<Avc>,
    /// From a domain that is now a customised permissive domain.
    pub now_permissive: Vec<Avc>,
    /// Every AVC record in the window, agent-related or not.
    pub total_in_window: usize,
}

impl DenialOutcome {
    /// Enforced denials whose source type is `domain`.
    pub fn blocking_by_domain(&self, domain: &str) -> usize {
        self.blocking
            .iter()
            .filter(|a| a.scontext_type() == Some(domain))
            .count()
    }
}

/// `Lib.Dir` from `/etc/waagent.conf`, when set.
fn agent_lib_dir(root: &SysRoot) -> Option<String> {
    let text = read_input(&root.path(WAAGENT_CONF));
    text.text()?.lines().rev().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let (k, v) = l.split_once('=')?;
        (k.trim() == "Lib.Dir").then(|| v.trim().to_string())
    })
}

/// Parse, keep agent-related denials in the window, classify.
pub fn evaluate(
    root: &SysRoot,
    logs: &LogSet,
    observed: &[String],
    permissive: &[String],
    mode: SelinuxMode,
    options: &Options,
) -> DenialOutcome {
    let mut m = AgentMatch::default();
    if let Some(dir) = agent_lib_dir(root) {
        m.lib_dir = dir;
    }
    // An unconfined domain is shared with every other service: matching on it would
    // blame the agent for their denials.
    m.agent_domains = observed
        .iter()
        .filter(|t| !super::UNCONFINED_AGENT_TYPES.contains(&t.as_str()))
        .cloned()
        .collect();
    classify(logs, &m, permissive, mode, options)
}

fn classify(
    logs: &LogSet,
    m: &AgentMatch,
    permissive: &[String],
    mode: SelinuxMode,
    options: &Options,
) -> DenialOutcome {
    let since = options.since();
    let mut out = DenialOutcome::default();
    let mut seen = HashSet::new();
    for text in &logs.texts {
        for avc in audit::parse_log(text) {
            if !avc.is_since(since) {
                continue;
            }
            // The same record can be in audit.log and the journal, or in two kernel logs.
            if let Some(stamp) = avc.stamp {
                let key = (
                    stamp,
                    avc.kind.type_number(),
                    avc.permissions.clone(),
                    avc.scontext.clone(),
                    avc.tcontext.clone(),
                );
                if !seen.insert(key) {
                    continue;
                }
            }
            out.total_in_window += 1;
            if !audit::is_agent_related_with(&avc, m) {
                continue;
            }
            let domain_permissive = avc
                .scontext_type()
                .is_some_and(|t| permissive.iter().any(|p| p == t));
            match avc.verdict() {
                Verdict::Granted => {}
                _ if domain_permissive => out.now_permissive.push(avc),
                Verdict::Blocking => out.blocking.push(avc),
                Verdict::DeniedModeUnknown if mode == SelinuxMode::Enforcing => {
                    out.blocking.push(avc)
                }
                Verdict::DeniedModeUnknown | Verdict::WouldBlockIfEnforcing => out.logged.push(avc),
            }
        }
    }
    out
}

/// One denial, one line: time, permissions, process, object, contexts.
pub fn describe(avc: &Avc) -> String {
    let when = avc
        .stamp
        .and_then(|s| crate::report::human::utc_seconds(s.secs))
        .unwrap_or_else(|| "?".into());
    let mut parts = vec![
        when,
        avc.kind.type_name().to_string(),
        format!("{{ {} }}", avc.permissions.join(" ")),
    ];
    if let Some(c) = &avc.comm {
        parts.push(format!("comm={c}"));
    }
    if let Some(p) = avc.path.as_ref().or(avc.name.as_ref()) {
        parts.push(p.clone());
    }
    parts.push(format!(
        "{} -> {}",
        avc.scontext_type().unwrap_or("?"),
        avc.tcontext_type().unwrap_or("?")
    ));
    if let Some(c) = &avc.tclass {
        parts.push(format!("tclass={c}"));
    }
    parts.push(match avc.permissive {
        Some(true) => "permissive=1".into(),
        Some(false) => "permissive=0".into(),
        None => "permissive=?".into(),
    });
    parts.join(" ")
}

/// `ausearch -ts` keyword covering the window.
fn ausearch_since(days: u64) -> &'static str {
    match days {
        0 | 1 => "yesterday",
        2..=7 => "week-ago",
        _ => "this-year",
    }
}

/// The reviewed-module remedy: build, read, then install.
fn audit2allow_remedy(denials: &[Avc], options: &Options) -> String {
    let mut comms: Vec<&str> = denials.iter().filter_map(|a| a.comm.as_deref()).collect();
    comms.sort_unstable();
    comms.dedup();
    let filter = match comms.as_slice() {
        [one] => format!(" -c {}", shell_quote(one)),
        _ => String::new(),
    };
    format!(
        "ausearch -m AVC,USER_AVC -ts {}{filter} --raw | audit2allow -M waagent_local && less waagent_local.te && semodule -i waagent_local.pp",
        ausearch_since(options.window_days)
    )
}

/// S9.
pub fn check(logs: &LogSet, outcome: &DenialOutcome, options: &Options) -> Check {
    let c = |status, msg: String| Check::new("S9", S9_TITLE, status, msg);
    let window = format!("the last {} days", options.window_days);
    if logs.is_empty() {
        return if logs.unreadable.is_empty() {
            c(
                CheckStatus::Skip,
                format!(
                    "no audit log found (expected {}), nor a kernel log or journal with AVC records",
                    logs.expected
                ),
            )
        } else {
            Check::cannot_read(
                "S9",
                S9_TITLE,
                format!(
                    "cannot read the logs (needs root): {}",
                    logs.unreadable.join("; ")
                ),
            )
        };
    }
    let sources = logs.sources.join(", ");
    if !outcome.blocking.is_empty() {
        let n = outcome.blocking.len();
        let mut types: Vec<&str> = outcome
            .blocking
            .iter()
            .filter_map(|a| a.scontext_type())
            .collect();
        types.sort_unstable();
        types.dedup();
        let details: Vec<String> =
            outcome
                .blocking
                .iter()
                .take(MAX_LISTED)
                .map(describe)
                .chain(types.iter().map(|t| {
                    format!("alternative for the whole domain: semanage permissive -a {t}")
                }))
                .collect();
        return c(
            CheckStatus::Fail,
            format!(
                "{n} enforced denial(s) of the agent in {window}, e.g. {}",
                describe(&outcome.blocking[0])
            ),
        )
        .with_remedy(audit2allow_remedy(&outcome.blocking, options))
        .with_details(details);
    }
    if !outcome.logged.is_empty() {
        let n = outcome.logged.len();
        return c(
            CheckStatus::Warn,
            format!(
                "{n} denial(s) of the agent logged but not enforced in {window} (permissive): they would block once enforcing, e.g. {}",
                describe(&outcome.logged[0])
            ),
        )
        .with_remedy(audit2allow_remedy(&outcome.logged, options))
        .with_details(outcome.logged.iter().take(MAX_LISTED).map(describe).collect());
    }
    if !outcome.now_permissive.is_empty() {
        let mut types: Vec<&str> = outcome
            .now_permissive
            .iter()
            .filter_map(|a| a.scontext_type())
            .collect();
        types.sort_unstable();
        types.dedup();
        return c(
            CheckStatus::Pass,
            format!(
                "{} denial(s) of the agent in {window}, all from {} which is now a permissive domain: logged, not enforced",
                outcome.now_permissive.len(),
                types.join(", ")
            ),
        )
        .with_details(
            outcome
                .now_permissive
                .iter()
                .take(MAX_LISTED)
                .map(describe)
                .collect(),
        );
    }
    c(
        CheckStatus::Pass,
        format!(
            "no denial of the agent in {window} ({} AVC record(s) in the window; read {sources})",
            outcome.total_in_window
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ausearch_window_keywords() {
        assert_eq!(ausearch_since(7), "week-ago");
        assert_eq!(ausearch_since(1), "yesterday");
        assert_eq!(ausearch_since(30), "this-year");
    }
}
