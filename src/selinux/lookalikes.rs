//! L1–L3: problems that are not SELinux but break the agent's extensions the same way
//! (selinux.md §7): `/var/lib/waagent` on a `noexec` mount (L1; extensions exit 126),
//! fapolicyd not trusting the agent path (L2; RHEL STIG), AppArmor confining the agent or
//! denying it (L3; Ubuntu).

use super::agent::AgentProcess;
use super::audit::decode_hex;
use super::denials::LogSet;
use super::{Input, Options, read_input, shell_quote};
use crate::mount::MountTable;
use crate::mount::mountinfo::unescape;
use crate::report::{Check, CheckStatus};
use crate::root::{
    APPARMOR_ENABLED, APPARMOR_PROFILES, ETC_APPARMOR_D, ETC_FAPOLICYD, ETC_FSTAB, PROC,
    RUN_FAPOLICYD, SYS_KERNEL_LSM, SysRoot, WAAGENT_LIB_DIR,
};
use std::path::Path;

pub const L1_TITLE: &str = "noexec mount";
pub const L2_TITLE: &str = "fapolicyd";
pub const L3_TITLE: &str = "AppArmor";

/// Paths and names that make a record or profile about the agent.
const AGENT_MARKERS: [&str; 8] = [
    "/var/lib/waagent",
    "/var/log/azure",
    "/var/log/waagent.log",
    "/etc/azure/",
    "/etc/waagent.conf",
    "WALinuxAgent",
    "Microsoft.Azure.RecoveryServices",
    "waagent",
];

/// `path` is `mount_point` or below it.
fn is_under(path: &str, mount_point: &str) -> bool {
    mount_point == "/"
        || path == mount_point
        || path
            .strip_prefix(mount_point)
            .is_some_and(|r| r.starts_with('/'))
}

fn has_option(options: &str, name: &str) -> bool {
    options.split(',').any(|o| o == name)
}

/// `(mount point, options)` of the fstab entry holding `path` (longest mount point).
pub fn fstab_entry_for(fstab: &str, path: &str) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in fstab.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(mp), Some(opts)) = (fields.get(1), fields.get(3)) else {
            continue;
        };
        let mp = String::from_utf8_lossy(&unescape(mp.as_bytes())).into_owned();
        if !is_under(path, &mp) {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| mp.len() >= b.len()) {
            best = Some((mp, opts.to_string()));
        }
    }
    best
}

/// L1.
pub fn noexec(root: &SysRoot, live: bool, mounts: Option<&MountTable>) -> Check {
    let c = |status, msg: String| Check::new("L1", L1_TITLE, status, msg);
    let path = WAAGENT_LIB_DIR;
    let fstab = read_input(&root.path(ETC_FSTAB));
    let fstab_noexec = fstab
        .text()
        .and_then(|t| fstab_entry_for(t, path))
        .filter(|(_, o)| has_option(o, "noexec"));
    let fstab_hint = |mp: &str| format!("remove noexec from the options of {mp} in /etc/fstab");
    if !live {
        return match (fstab.text(), fstab_noexec) {
            (None, _) => c(
                CheckStatus::Skip,
                "offline root without /etc/fstab: mount options unknown".into(),
            ),
            (Some(_), Some((mp, _))) => c(
                CheckStatus::Fail,
                format!("/etc/fstab mounts {mp}, which holds {path}, noexec: extensions will fail with exit code 126"),
            )
            .with_details(vec![fstab_hint(&mp)]),
            (Some(_), None) => c(
                CheckStatus::Pass,
                format!("/etc/fstab does not mount {path} noexec (offline root)"),
            ),
        };
    }
    let Some(table) = mounts else {
        return c(
            CheckStatus::Skip,
            "cannot read /proc/self/mountinfo: mount options unknown".into(),
        );
    };
    let holding = table
        .entries()
        .iter()
        .filter(|m| is_under(path, &m.mount_point.to_string_lossy()))
        .max_by_key(|m| m.mount_point.as_os_str().len());
    let Some(m) = holding else {
        return c(
            CheckStatus::Skip,
            format!("no mount in mountinfo holds {path}"),
        );
    };
    let mp = m.mount_point.to_string_lossy().into_owned();
    if has_option(&m.mount_options, "noexec") {
        // When fstab has it too, the remount alone does not survive a reboot.
        let details = fstab_noexec
            .map(|(f, _)| vec![fstab_hint(&f)])
            .unwrap_or_default();
        return c(
            CheckStatus::Fail,
            format!("{mp}, which holds {path}, is mounted noexec: extensions fail with exit code 126 (\"The noexec flag is set on /var\")"),
        )
        .with_remedy(format!("mount -o remount,exec {}", shell_quote(&mp)))
        .with_details(details);
    }
    if let Some((fmp, _)) = fstab_noexec {
        return c(
            CheckStatus::Warn,
            format!("{mp} is mounted exec now, but /etc/fstab mounts {fmp} noexec: the next boot breaks extensions"),
        )
        .with_details(vec![fstab_hint(&fmp)]);
    }
    c(
        CheckStatus::Pass,
        format!("{path} is on {mp} ({}), which allows exec", m.fs_type),
    )
}

/// An fapolicyd rule line that admits `dir` (`allow… perm=execute|any … : … dir=D/` with `D`
/// a prefix of `dir`, or an object of `all`).
pub fn rule_admits(line: &str, dir: &str) -> bool {
    let line = line.trim();
    if line.starts_with('#') || !line.starts_with("allow") {
        return false;
    }
    let Some((head, object)) = line.split_once(" : ") else {
        return false;
    };
    let perm = head
        .split_whitespace()
        .find_map(|t| t.strip_prefix("perm="))
        .unwrap_or("open");
    if !matches!(perm, "execute" | "any") {
        return false;
    }
    let object = object.trim();
    if object == "all" {
        return true;
    }
    let with_slash = format!("{}/", dir.trim_end_matches('/'));
    object.split_whitespace().any(|t| {
        t.strip_prefix("dir=")
            .is_some_and(|d| d.starts_with('/') && with_slash.starts_with(d) && d.ends_with('/'))
    })
}

fn process_running(root: &SysRoot, comm: &str) -> bool {
    let Ok(rd) = std::fs::read_dir(root.path(PROC)) else {
        return false;
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            read_input(&root.proc_entry(pid, "comm"))
                .text()
                .is_some_and(|t| t.trim_end() == comm)
        })
}

fn files_in(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix) && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// L2.
pub fn fapolicyd(root: &SysRoot, live: bool) -> Check {
    let c = |status, msg: String| Check::new("L2", L2_TITLE, status, msg);
    let etc = root.path(ETC_FAPOLICYD);
    if !etc.is_dir() {
        return c(CheckStatus::Pass, "fapolicyd is not installed".into());
    }
    let active = if live {
        process_running(root, "fapolicyd") || root.path(RUN_FAPOLICYD).is_dir()
    } else {
        crate::root::SYSTEMD_UNIT_DIRS.iter().any(|d| {
            root.path(d)
                .join("multi-user.target.wants/fapolicyd.service")
                .exists()
        })
    };
    if !active {
        return c(
            CheckStatus::Pass,
            if live {
                "fapolicyd is installed but not running".into()
            } else {
                "fapolicyd is installed but not enabled (offline root)".into()
            },
        );
    }
    let state = if live { "runs" } else { "is enabled" };
    let rules_d = etc.join("rules.d");
    let mut rule_files = files_in(&rules_d, ".rules");
    let legacy = etc.join("fapolicyd.rules");
    if legacy.is_file() {
        rule_files.push(legacy);
    }
    for f in &rule_files {
        let Input::Text(text) = read_input(f) else {
            continue;
        };
        if let Some((n, line)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| rule_admits(l, WAAGENT_LIB_DIR))
        {
            let shown = f
                .strip_prefix(root.base())
                .unwrap_or(f)
                .display()
                .to_string();
            return c(
                CheckStatus::Pass,
                format!(
                    "fapolicyd {state} and admits {WAAGENT_LIB_DIR}: /{shown}:{} '{}'",
                    n + 1,
                    line.trim()
                ),
            );
        }
    }
    let mut trust_files = files_in(&etc.join("trust.d"), "");
    trust_files.push(etc.join("fapolicyd.trust"));
    let trusted: usize = trust_files
        .iter()
        .filter_map(|f| read_input(f).text().map(str::to_string))
        .map(|t| {
            t.lines()
                .filter(|l| {
                    let p = l.split_whitespace().next().unwrap_or("");
                    p.starts_with(&format!("{WAAGENT_LIB_DIR}/"))
                })
                .count()
        })
        .sum();
    let rule = format!("allow perm=any all : dir={WAAGENT_LIB_DIR}/");
    let remedy = if rules_d.is_dir() {
        format!("echo '{rule}' > /etc/fapolicyd/rules.d/35-waagent.rules && fagenrules --load")
    } else {
        format!("sed -i '1i {rule}' /etc/fapolicyd/fapolicyd.rules && systemctl restart fapolicyd")
    };
    let details = vec![
        "check the rule syntax against fapolicyd.rules(5) of the installed version".to_string(),
        "fapolicyd can also deadlock safefreeze while /var is frozen (azure-linux-extensions #1868)".to_string(),
    ];
    if trusted > 0 {
        return c(
            CheckStatus::Warn,
            format!("fapolicyd {state} and trusts only {trusted} file(s) under {WAAGENT_LIB_DIR} by hash: the next extension update is denied"),
        )
        .with_remedy(remedy)
        .with_details(details);
    }
    c(
        CheckStatus::Fail,
        format!("fapolicyd {state} and neither its rules nor its trust files admit {WAAGENT_LIB_DIR}: extension handlers and safefreeze are denied"),
    )
    .with_remedy(remedy)
    .with_details(details)
}

/// An AppArmor audit record (`apparmor="DENIED"` or `"ALLOWED"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArmorRecord {
    pub denied: bool,
    pub secs: Option<u64>,
    pub operation: Option<String>,
    pub profile: Option<String>,
    pub name: Option<String>,
    pub comm: Option<String>,
    pub denied_mask: Option<String>,
}

/// The value of ` key=` in an audit line: quoted, or unquoted (hex decoded when it is).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("{key}=");
    let mut from = 0;
    while let Some(i) = line[from..].find(&pat) {
        let at = from + i;
        from = at + pat.len();
        let boundary = at == 0 || line[..at].ends_with([' ', ':']);
        if !boundary {
            continue;
        }
        let rest = &line[at + pat.len()..];
        if let Some(q) = rest.strip_prefix('"') {
            return q.find('"').map(|e| q[..e].to_string());
        }
        let raw: &str = rest.split_whitespace().next().unwrap_or("");
        return match decode_hex(raw) {
            Some(bytes) if !raw.is_empty() => Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => Some(raw.to_string()),
        };
    }
    None
}

/// Parse AppArmor records out of log text (audit.log, kernel logs, `journalctl -o json`).
pub fn parse_apparmor(text: &str) -> Vec<AppArmorRecord> {
    let mut out = Vec::new();
    for line in text.lines() {
        let owned;
        let line = if line.trim_start().starts_with('{') {
            match serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("MESSAGE")?.as_str().map(str::to_string))
            {
                Some(m) => {
                    owned = m;
                    owned.as_str()
                }
                None => continue,
            }
        } else {
            line
        };
        let verdict = match field(line, "apparmor").as_deref() {
            Some("DENIED") => true,
            Some("ALLOWED") => false,
            _ => continue,
        };
        let secs = line.find("audit(").and_then(|i| {
            let rest = &line[i + "audit(".len()..];
            rest.split(['.', ':']).next()?.parse().ok()
        });
        out.push(AppArmorRecord {
            denied: verdict,
            secs,
            operation: field(line, "operation"),
            profile: field(line, "profile"),
            name: field(line, "name"),
            comm: field(line, "comm"),
            denied_mask: field(line, "denied_mask"),
        });
    }
    out
}

fn mentions_agent(s: &str) -> bool {
    AGENT_MARKERS.iter().any(|m| s.contains(m))
}

impl AppArmorRecord {
    fn is_agent_related(&self) -> bool {
        self.name.as_deref().is_some_and(mentions_agent)
            || self.profile.as_deref().is_some_and(mentions_agent)
            || self
                .comm
                .as_deref()
                .is_some_and(|c| matches!(c, "waagent" | "safefreeze"))
    }

    fn describe(&self) -> String {
        format!(
            "apparmor={} operation={} profile={} name={} comm={} denied_mask={}",
            if self.denied { "DENIED" } else { "ALLOWED" },
            self.operation.as_deref().unwrap_or("?"),
            self.profile.as_deref().unwrap_or("?"),
            self.name.as_deref().unwrap_or("?"),
            self.comm.as_deref().unwrap_or("?"),
            self.denied_mask.as_deref().unwrap_or("?"),
        )
    }
}

/// `aa-complain` takes a program path or a profile file.
fn complain_remedy(root: &SysRoot, profile: &str) -> String {
    if profile.starts_with('/') {
        return format!("aa-complain {}", shell_quote(profile));
    }
    let dir = root.path(ETC_APPARMOR_D);
    let file = files_in(&dir, "").into_iter().find(|f| {
        read_input(f).text().is_some_and(|t| {
            t.contains(&format!("profile {profile} "))
                || t.contains(&format!("profile {profile}{{"))
        })
    });
    match file {
        Some(f) => {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("aa-complain /etc/apparmor.d/{}", shell_quote(&name))
        }
        None => format!("aa-complain {}", shell_quote(profile)),
    }
}

/// `name (mode)` lines of the loaded-profiles file.
fn parse_profiles(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let open = l.rfind(" (")?;
            let mode = l[open + 2..].strip_suffix(')')?;
            Some((l[..open].to_string(), mode.to_string()))
        })
        .collect()
}

/// L3. `agents` is `None` on an offline root; `logs` is loaded here when S9 did not.
pub fn apparmor(
    root: &SysRoot,
    live: bool,
    agents: Option<&Result<Vec<AgentProcess>, String>>,
    logs: &mut Option<LogSet>,
    options: &Options,
) -> Check {
    let c = |status, msg: String| Check::new("L3", L3_TITLE, status, msg);
    if !live {
        let dir = root.path(ETC_APPARMOR_D);
        if !dir.is_dir() {
            return c(
                CheckStatus::Pass,
                "AppArmor is not installed (offline root)".into(),
            );
        }
        let agent_files: Vec<String> = files_in(&dir, "")
            .into_iter()
            .filter(|f| {
                f.file_name()
                    .is_some_and(|n| mentions_agent(&n.to_string_lossy()))
                    || read_input(f).text().is_some_and(|t| {
                        t.lines().any(|l| {
                            let l = l.trim_start();
                            l.starts_with("profile") && mentions_agent(l)
                                || l.starts_with('/') && l.contains('{') && mentions_agent(l)
                        })
                    })
            })
            .map(|f| {
                format!(
                    "/{ETC_APPARMOR_D}/{}",
                    f.file_name().unwrap_or_default().to_string_lossy()
                )
            })
            .collect();
        return if agent_files.is_empty() {
            c(
                CheckStatus::Pass,
                "no AppArmor profile for the agent in /etc/apparmor.d (offline root)".into(),
            )
        } else {
            c(
                CheckStatus::Warn,
                format!(
                    "AppArmor profiles for the agent are installed: {}",
                    agent_files.join(", ")
                ),
            )
            .with_details(vec![
                "check their mode on the running system: aa-status".into(),
            ])
        };
    }
    let enabled_param = read_input(&root.path(APPARMOR_ENABLED))
        .text()
        .is_some_and(|t| t.trim() == "Y");
    let in_lsm = read_input(&root.path(SYS_KERNEL_LSM))
        .text()
        .is_some_and(|t| t.trim().split(',').any(|l| l == "apparmor"));
    if !enabled_param && !in_lsm {
        return c(CheckStatus::Pass, "AppArmor is not enabled".into());
    }
    let mut fails: Vec<String> = Vec::new();
    let mut warns: Vec<String> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    let mut remedy_profile: Option<String> = None;

    if let Some(Ok(agents)) = agents {
        for a in agents {
            let Some(label) = &a.apparmor else { continue };
            if label == "unconfined" {
                continue;
            }
            let (profile, mode) = match label.rsplit_once(" (") {
                Some((p, m)) => (p.to_string(), m.trim_end_matches(')').to_string()),
                None => (label.clone(), "enforce".to_string()),
            };
            let line = format!(
                "agent pid {} is confined by profile {profile} ({mode})",
                a.pid
            );
            if mode == "enforce" {
                fails.push(line);
            } else {
                warns.push(line);
            }
            remedy_profile.get_or_insert(profile);
        }
    }
    match read_input(&root.path(APPARMOR_PROFILES)) {
        Input::Text(t) => {
            for (name, mode) in parse_profiles(&t) {
                if mentions_agent(&name) {
                    let line = format!("profile {name} ({mode}) is loaded for the agent");
                    if mode == "enforce" {
                        fails.push(line);
                    } else {
                        warns.push(line);
                    }
                    remedy_profile.get_or_insert(name);
                }
            }
        }
        Input::Unreadable(e) => details.push(format!("loaded profiles not readable: {e}")),
        Input::Missing => {}
    }
    let logs = logs.get_or_insert_with(|| LogSet::load(root, options));
    let since = options.since();
    let records: Vec<AppArmorRecord> = logs
        .texts
        .iter()
        .flat_map(|t| parse_apparmor(t))
        .filter(|r| r.secs.is_none_or(|s| s >= since) && r.is_agent_related())
        .collect();
    let denied = records.iter().filter(|r| r.denied).count();
    let allowed = records.len() - denied;
    if denied > 0 {
        fails.push(format!(
            "{denied} AppArmor denial(s) of the agent in the last {} days",
            options.window_days
        ));
    }
    if allowed > 0 {
        warns.push(format!(
            "{allowed} complain-mode record(s) of the agent (would be denied in enforce mode)"
        ));
    }
    for r in records.iter().take(10) {
        details.push(r.describe());
        if let Some(p) = &r.profile {
            remedy_profile.get_or_insert(p.clone());
        }
    }
    let remedy = remedy_profile.map(|p| complain_remedy(root, &p));
    if !fails.is_empty() || !warns.is_empty() {
        details.push("or allow the access in /etc/apparmor.d/local/<profile> and reload it with apparmor_parser -r".into());
    }
    let (status, msg) = if !fails.is_empty() {
        (
            CheckStatus::Fail,
            fails
                .into_iter()
                .chain(warns)
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else if !warns.is_empty() {
        (CheckStatus::Warn, warns.join("; "))
    } else {
        (
            CheckStatus::Pass,
            "AppArmor is enabled, but no profile confines the agent and no agent denial was logged"
                .into(),
        )
    };
    let check = c(status, msg).with_details(details);
    match (status, remedy) {
        (CheckStatus::Fail | CheckStatus::Warn, Some(r)) => check.with_remedy(r),
        _ => check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_longest_mount_point_wins() {
        let fstab = "# c\nUUID=1 / ext4 defaults 0 1\nUUID=2 /var xfs defaults,noexec,nodev 0 2\nUUID=3 /var/lib/waagent\\040x ext4 defaults 0 2\n";
        let (mp, opts) = fstab_entry_for(fstab, "/var/lib/waagent").unwrap();
        assert_eq!(mp, "/var");
        assert!(has_option(&opts, "noexec"));
        assert_eq!(fstab_entry_for(fstab, "/home").unwrap().0, "/");
        assert!(!is_under("/variable", "/var"));
    }

    #[test]
    fn fapolicyd_rules() {
        assert!(rule_admits(
            "allow perm=execute all : dir=/var/lib/waagent/",
            "/var/lib/waagent"
        ));
        assert!(rule_admits(
            "allow perm=any uid=0 : dir=/var/",
            "/var/lib/waagent"
        ));
        assert!(rule_admits(
            "allow_audit perm=any all : all",
            "/var/lib/waagent"
        ));
        assert!(!rule_admits(
            "allow perm=open all : dir=/var/lib/waagent/",
            "/var/lib/waagent"
        ));
        assert!(!rule_admits(
            "deny_audit perm=execute all : all",
            "/var/lib/waagent"
        ));
        assert!(!rule_admits(
            "allow perm=execute all : dir=/var/lib/waagentX/",
            "/var/lib/waagent"
        ));
        assert!(!rule_admits(
            "allow perm=execute all : trust=1",
            "/var/lib/waagent"
        ));
        assert!(!rule_admits(
            "# allow perm=any all : all",
            "/var/lib/waagent"
        ));
    }

    #[test]
    fn apparmor_records_and_profiles() {
        let text = concat!(
            "type=AVC msg=audit(1700000000.123:45): apparmor=\"DENIED\" operation=\"exec\" profile=\"/usr/sbin/waagent\" name=\"/var/lib/waagent/x/handle.sh\" pid=1 comm=\"sh\" requested_mask=\"x\" denied_mask=\"x\" fsuid=0 ouid=0\n",
            "Nov 25 kernel: audit: type=1400 audit(1700000001.1:46): apparmor=\"ALLOWED\" operation=\"open\" profile=\"foo\" name=2F746D702F6120622F77616167656E74 comm=\"cat\"\n",
            "{\"MESSAGE\":\"AVC apparmor=\\\"DENIED\\\" operation=\\\"open\\\" profile=\\\"p\\\" name=\\\"/etc\\\" comm=\\\"x\\\"\"}\n",
            "type=AVC msg=audit(1.1:1): avc:  denied  { read } for pid=1\n",
        );
        let r = parse_apparmor(text);
        assert_eq!(r.len(), 3);
        assert!(r[0].denied && r[0].is_agent_related());
        assert_eq!(r[0].secs, Some(1_700_000_000));
        assert_eq!(r[1].name.as_deref(), Some("/tmp/a b/waagent"));
        assert!(!r[1].denied);
        assert_eq!(r[2].profile.as_deref(), Some("p"));
        assert!(!r[2].is_agent_related());
        assert_eq!(
            parse_profiles("/usr/sbin/waagent (enforce)\nsnap.x (complain)\n"),
            vec![
                ("/usr/sbin/waagent".to_string(), "enforce".to_string()),
                ("snap.x".to_string(), "complain".to_string())
            ]
        );
    }
}
