//! S6: the Azure Linux agent's processes (found in `<root>/proc/<pid>/cmdline`) and their
//! SELinux domain (`/proc/<pid>/attr/current`, or `attr/selinux/current` on kernels with
//! per-LSM attribute directories). The AppArmor label is read too, for look-alike L3.

use super::denials::DenialOutcome;
use super::{Input, UNCONFINED_AGENT_TYPES, read_input, shell_quote};
use crate::report::{Check, CheckStatus};
use crate::root::{PROC, SYSTEMD_UNIT_DIRS, SysRoot};

pub const S6_TITLE: &str = "agent domain";

/// Which agent process it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `waagent -daemon`.
    Daemon,
    /// `WALinuxAgent-<ver>.egg -run-exthandlers`.
    ExtHandler,
    /// Anything else running `waagent`.
    Other,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Daemon => "daemon",
            Role::ExtHandler => "extension handler",
            Role::Other => "agent",
        }
    }
}

/// One agent process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProcess {
    pub pid: u32,
    pub role: Role,
    /// The SELinux context, when `attr` holds one.
    pub selinux: Option<String>,
    /// The AppArmor label (`unconfined`, `name (enforce)`), when `attr` holds one.
    pub apparmor: Option<String>,
    /// Why the context could not be read.
    pub error: Option<String>,
}

impl AgentProcess {
    /// The type of the SELinux context.
    pub fn selinux_type(&self) -> Option<&str> {
        self.selinux
            .as_deref()
            .and_then(super::file_contexts::context_type)
    }
}

/// Is this argv the agent? The script or egg is argv[0] (run through its shebang) or the
/// first non-option argument of a `python*` interpreter; a process that merely mentions
/// the agent (`tail /var/log/waagent.log`, `ls /var/lib/waagent`) is not.
pub fn agent_role(argv: &[String]) -> Option<Role> {
    fn base(s: &str) -> &str {
        s.rsplit('/').next().unwrap_or(s)
    }
    let first = argv.first()?;
    let script = if base(first).starts_with("python") {
        argv.iter().skip(1).find(|a| !a.starts_with('-'))?
    } else {
        first
    };
    let name = base(script);
    let is_agent =
        name == "waagent" || (name.starts_with("WALinuxAgent-") && name.ends_with(".egg"));
    if !is_agent {
        return None;
    }
    Some(if argv.iter().any(|a| a == "-daemon") {
        Role::Daemon
    } else if argv.iter().any(|a| a == "-run-exthandlers") {
        Role::ExtHandler
    } else {
        Role::Other
    })
}

/// A context-looking attribute: `user:role:type[:level]`.
fn is_selinux_context(s: &str) -> bool {
    !s.contains(' ') && s.split(':').count() >= 3 && super::file_contexts::context_type(s).is_some()
}

fn read_attr(root: &SysRoot, pid: u32, rel: &str) -> Option<Result<String, String>> {
    match read_input(&root.proc_entry(pid, rel)) {
        Input::Missing => None,
        Input::Unreadable(e) => Some(Err(e)),
        Input::Text(t) => Some(Ok(t
            .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string())),
    }
}

/// Every agent process under `<root>/proc`, by pid.
pub fn find(root: &SysRoot) -> Result<Vec<AgentProcess>, String> {
    let proc_dir = root.path(PROC);
    let rd = std::fs::read_dir(&proc_dir)
        .map_err(|e| format!("cannot list /proc: {}", crate::sys::describe_io(&e)))?;
    let mut pids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let own = std::process::id();
    let mut found = Vec::new();
    let mut denied = 0usize;
    for pid in pids {
        if root.is_host() && pid == own {
            continue;
        }
        let raw = match std::fs::read(root.proc_entry(pid, "cmdline")) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                denied += 1;
                continue;
            }
            Err(_) => continue, // exited meanwhile
        };
        let argv: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(role) = agent_role(&argv) else {
            continue;
        };
        let mut p = AgentProcess {
            pid,
            role,
            selinux: None,
            apparmor: None,
            error: None,
        };
        let per_lsm_selinux = read_attr(root, pid, "attr/selinux/current");
        let per_lsm_apparmor = read_attr(root, pid, "attr/apparmor/current");
        let current = read_attr(root, pid, "attr/current");
        match per_lsm_selinux.or_else(|| current.clone()) {
            Some(Ok(v)) if is_selinux_context(&v) => p.selinux = Some(v),
            Some(Err(e)) => p.error = Some(e),
            _ => {}
        }
        match per_lsm_apparmor.or(current) {
            Some(Ok(v)) if !v.is_empty() && !is_selinux_context(&v) => p.apparmor = Some(v),
            _ => {}
        }
        found.push(p);
    }
    if found.is_empty() && denied > 0 {
        // Not "the agent is not running": it may be one of the processes not looked at.
        return Err(format!(
            "cannot read the command line of {denied} process(es) in /proc: permission denied (needs root)"
        ));
    }
    Ok(found)
}

/// The distinct SELinux types the agent runs in.
pub fn observed_types(agents: &[AgentProcess]) -> Vec<String> {
    let mut types: Vec<String> = agents
        .iter()
        .filter_map(|a| a.selinux_type().map(str::to_string))
        .collect();
    types.sort();
    types.dedup();
    types
}

/// `waagent` (RHEL) or `walinuxagent` (Debian, Ubuntu), from the unit files present.
pub fn unit_name(root: &SysRoot) -> &'static str {
    let debian = SYSTEMD_UNIT_DIRS
        .iter()
        .any(|d| root.path(d).join("walinuxagent.service").exists());
    if debian { "walinuxagent" } else { "waagent" }
}

/// S6. `agents` is the result of [`find`].
pub fn check(
    root: &SysRoot,
    agents: &Result<Vec<AgentProcess>, String>,
    permissive: &[String],
    denials: &DenialOutcome,
) -> Check {
    let c = |status, msg: String| Check::new("S6", S6_TITLE, status, msg);
    let agents = match agents {
        Err(e) => return Check::cannot_read("S6", S6_TITLE, e.clone()),
        Ok(a) => a,
    };
    if agents.is_empty() {
        let unit = unit_name(root);
        return c(
            CheckStatus::Warn,
            "the Azure Linux agent is not running (no waagent process), so its domain cannot be checked"
                .into(),
        )
        .with_remedy(format!("systemctl enable --now {unit}.service"));
    }
    let mut details = Vec::new();
    let mut unconfined = Vec::new();
    let mut perm = Vec::new();
    let mut confined: Vec<String> = Vec::new();
    let mut unreadable = 0;
    for a in agents {
        let what = format!("pid {} ({})", a.pid, a.role.label());
        match (a.selinux.as_deref(), a.selinux_type()) {
            (Some(ctx), Some(ty)) => {
                details.push(format!("{what}: {ctx}"));
                if UNCONFINED_AGENT_TYPES.contains(&ty) {
                    unconfined.push(ty.to_string());
                } else if permissive.iter().any(|p| p == ty) {
                    perm.push(ty.to_string());
                } else {
                    confined.push(ty.to_string());
                }
            }
            _ => {
                unreadable += 1;
                details.push(match &a.error {
                    Some(e) => format!("{what}: cannot read attr/current: {e}"),
                    None => format!("{what}: attr/current holds no SELinux context"),
                });
            }
        }
    }
    for v in [&mut unconfined, &mut perm, &mut confined] {
        v.sort();
        v.dedup();
    }
    if !confined.is_empty() {
        let blocking: usize = confined.iter().map(|t| denials.blocking_by_domain(t)).sum();
        let types = confined.join(", ");
        let first = &confined[0];
        let (status, tail) = if blocking > 0 {
            (
                CheckStatus::Fail,
                format!(", and {blocking} of its denials were enforced (S9)"),
            )
        } else {
            (
                CheckStatus::Warn,
                ": no enforced denial yet, but the extensions run with its limits".to_string(),
            )
        };
        return c(
            status,
            format!("the agent runs confined as {types}{tail}"),
        )
        .with_remedy(format!("semanage permissive -a {}", shell_quote(first)))
        .with_details(
            details
                .into_iter()
                .chain(std::iter::once(
                    "or make it start unconfined: restorecon -v /usr/sbin/waagent /usr/bin/python3*, and remove any SELinuxContext= from its unit".to_string(),
                ))
                .collect(),
        );
    }
    if unconfined.is_empty() && perm.is_empty() {
        let message =
            format!("{unreadable} agent process(es) found, but no SELinux context could be read");
        let check = if agents.iter().any(|a| a.error.is_some()) {
            Check::cannot_read("S6", S6_TITLE, format!("{message} (needs root)"))
        } else {
            c(CheckStatus::Skip, message)
        };
        return check.with_details(details);
    }
    let mut parts = Vec::new();
    if !unconfined.is_empty() {
        parts.push(format!("unconfined as {}", unconfined.join(", ")));
    }
    if !perm.is_empty() {
        parts.push(format!(
            "in the permissive domain {} (an exclusion: denials are logged, not enforced)",
            perm.join(", ")
        ));
    }
    c(
        CheckStatus::Pass,
        format!("the agent runs {}", parts.join(" and ")),
    )
    .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn agent_processes_are_recognised_and_lookalikes_are_not() {
        assert_eq!(
            agent_role(&argv("/usr/bin/python3 -u /usr/sbin/waagent -daemon")),
            Some(Role::Daemon)
        );
        assert_eq!(
            agent_role(&argv(
                "python3 -u bin/WALinuxAgent-2.9.1.1-py3.8.egg -run-exthandlers"
            )),
            Some(Role::ExtHandler)
        );
        assert_eq!(
            agent_role(&argv("/usr/sbin/waagent -daemon")),
            Some(Role::Daemon)
        );
        assert_eq!(agent_role(&argv("tail -f /var/log/waagent.log")), None);
        assert_eq!(agent_role(&argv("ls /var/lib/waagent")), None);
        assert_eq!(agent_role(&argv("/usr/bin/python3 -c import")), None);
        assert_eq!(agent_role(&[]), None);
    }

    #[test]
    fn contexts_are_told_from_apparmor_labels() {
        assert!(is_selinux_context(
            "system_u:system_r:unconfined_service_t:s0"
        ));
        assert!(is_selinux_context(
            "system_u:system_r:waagent_t:s0-s0:c0.c1023"
        ));
        assert!(!is_selinux_context("unconfined"));
        assert!(!is_selinux_context("/usr/sbin/waagent (enforce)"));
    }
}
