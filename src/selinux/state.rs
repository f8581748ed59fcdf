//! S1–S4: kernel support and command line, runtime mode from selinuxfs, configuration vs
//! runtime (and a pending relabel), policy type. Parsing follows libselinux
//! (`selinux_config.c`, `init.c`) as selinux.md §1 describes it.

use super::{Input, read_input};
use crate::mount::MountTable;
use crate::report::{Check, CheckStatus, SelinuxMode};
use crate::root::{
    AUTORELABEL, ETC_SELINUX, PROC, PROC_CMDLINE, PROC_FILESYSTEMS, SELINUX_CONFIG, SYS_FS_SELINUX,
    SYS_KERNEL_LSM, SysRoot,
};

pub const S1_TITLE: &str = "kernel support";
pub const S2_TITLE: &str = "runtime mode";
pub const S3_TITLE: &str = "config vs runtime";
pub const S4_TITLE: &str = "policy type";

/// Policy types whose `unconfined` module lets the agent run unconfined.
const STOCK_TYPES: [&str; 3] = ["targeted", "default", "minimum"];

/// A root is live (a running system's `/proc` is there) unless it has no `/proc` at all. A
/// `/proc` that cannot be looked into is there: not readable is not offline.
pub fn is_live(root: &SysRoot) -> bool {
    ["self", "filesystems", "cmdline"]
        .iter()
        .any(|e| !matches!(root.path(PROC).join(e).try_exists(), Ok(false)))
}

/// The kernel command line as whitespace-separated tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    tokens: Vec<String>,
    /// False when `/proc/cmdline` could not be read.
    pub known: bool,
}

impl Cmdline {
    /// Parse command-line text.
    pub fn parse(text: &str) -> Self {
        Cmdline {
            tokens: text.split_whitespace().map(str::to_string).collect(),
            known: true,
        }
    }

    /// Read `<root>/proc/cmdline` (empty and unknown when absent).
    pub fn read(root: &SysRoot) -> Self {
        match read_input(&root.path(PROC_CMDLINE)) {
            Input::Text(t) => Cmdline::parse(&t),
            _ => Cmdline::default(),
        }
    }

    /// The value of the last `key=value` token, as the kernel's parser keeps the last.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.tokens
            .iter()
            .rev()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// `SELINUX=` from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    Enforcing,
    Permissive,
    Disabled,
}

impl ConfigMode {
    fn word(self) -> &'static str {
        match self {
            ConfigMode::Enforcing => "enforcing",
            ConfigMode::Permissive => "permissive",
            ConfigMode::Disabled => "disabled",
        }
    }
}

/// `/etc/selinux/config` parsed with libselinux's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelinuxConfig {
    /// The first `SELINUX=` at column 0 (case-sensitive key), value matched by prefix,
    /// case-insensitively; `None` when absent or not one of the three words.
    pub mode: Option<ConfigMode>,
    /// The last `SELINUXTYPE=` (key case-insensitive after leading blanks); `None` when
    /// absent (libselinux then uses `targeted`).
    pub policy_type: Option<String>,
}

/// Parse `/etc/selinux/config` text (selinux.md §1.3).
pub fn parse_config(text: &str) -> SelinuxConfig {
    let mut config = SelinuxConfig::default();
    let mut mode_seen = false;
    for line in text.split('\n') {
        // selinux_getenforcemode: "SELINUX=" at column 0, the first one wins.
        if !mode_seen {
            if let Some(value) = line.strip_prefix("SELINUX=") {
                mode_seen = true;
                let value = value.trim_start_matches([' ', '\t']).to_ascii_lowercase();
                config.mode = [
                    ConfigMode::Enforcing,
                    ConfigMode::Permissive,
                    ConfigMode::Disabled,
                ]
                .into_iter()
                .find(|m| value.starts_with(m.word()));
            }
        }
        // selinux_getpolicytype: leading blanks skipped, key case-insensitive, last wins.
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.starts_with('#') {
            continue;
        }
        let key = "SELINUXTYPE=";
        // `get`, not `[..]`: the line is untrusted text and may cut a character in two.
        if let Some(value) = trimmed
            .get(..key.len())
            .filter(|k| k.eq_ignore_ascii_case(key))
            .and_then(|_| trimmed.get(key.len()..))
        {
            let value = value.trim_end_matches(|c: char| c.is_whitespace() || c.is_control());
            if !value.is_empty() {
                config.policy_type = Some(value.to_string());
            }
        }
    }
    config
}

/// The configuration file as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Missing, unreadable, or its text.
    pub input: Input,
    /// Parsed, when read.
    pub parsed: Option<SelinuxConfig>,
}

impl ConfigFile {
    /// Read `<root>/etc/selinux/config`.
    pub fn read(root: &SysRoot) -> Self {
        let input = read_input(&root.path(SELINUX_CONFIG));
        let parsed = input.text().map(parse_config);
        ConfigFile { input, parsed }
    }

    /// `SELINUXTYPE`, defaulting to `targeted` as libselinux does.
    pub fn policy_type(&self) -> String {
        self.parsed
            .as_ref()
            .and_then(|c| c.policy_type.clone())
            .unwrap_or_else(|| "targeted".to_string())
    }

    /// `SELINUX=`.
    pub fn mode(&self) -> Option<ConfigMode> {
        self.parsed.as_ref().and_then(|c| c.mode)
    }
}

/// S1. Returns the check and, when SELinux is off, why (the rest is then skipped).
pub fn kernel_support(root: &SysRoot, live: bool, cmdline: &Cmdline) -> (Check, Option<String>) {
    let check = |status, msg: String| Check::new("S1", S1_TITLE, status, msg);
    if !live {
        return (
            check(
                CheckStatus::Skip,
                "offline root (no /proc): kernel state unknown, the configuration decides"
                    .to_string(),
            ),
            None,
        );
    }
    let off = |why: String| (check(CheckStatus::Pass, why.clone()), Some(why));
    if cmdline.get("selinux") == Some("0") {
        return off("SELinux is turned off on the kernel command line (selinux=0)".into());
    }
    let lsm = read_input(&root.path(SYS_KERNEL_LSM));
    if let Some(list) = lsm.text() {
        let list = list.trim();
        if !list.split(',').any(|l| l == "selinux") {
            return off(format!("SELinux is not an active LSM (lsm: {list})"));
        }
    }
    let filesystems = read_input(&root.path(PROC_FILESYSTEMS));
    if let Some(text) = filesystems.text() {
        if !text
            .lines()
            .any(|l| l.split_whitespace().last() == Some("selinuxfs"))
        {
            return off("the kernel has no SELinux (no selinuxfs in /proc/filesystems)".into());
        }
    }
    let mut notes = Vec::new();
    if filesystems.text().is_some() {
        notes.push("selinuxfs is registered".to_string());
    }
    if let Some(list) = lsm.text() {
        notes.push(format!("LSMs {}", list.trim()));
    }
    for key in ["enforcing", "security", "lsm", "autorelabel"] {
        if let Some(v) = cmdline.get(key) {
            notes.push(format!("{key}={v} on the command line"));
        }
    }
    if notes.is_empty() {
        return (
            check(
                CheckStatus::Skip,
                "neither /proc/filesystems nor /sys/kernel/security/lsm is readable".to_string(),
            ),
            None,
        );
    }
    (
        check(
            CheckStatus::Pass,
            format!("the kernel supports SELinux ({})", notes.join(", ")),
        ),
        None,
    )
}

/// S2. The mode everything else is judged in.
pub fn runtime_mode(
    root: &SysRoot,
    live: bool,
    kernel_off: Option<&str>,
    config: &ConfigFile,
    mounts: Option<&MountTable>,
) -> (Check, SelinuxMode) {
    let check = |status, msg: &str| Check::new("S2", S2_TITLE, status, msg);
    if kernel_off.is_some() {
        return (
            check(CheckStatus::Skip, "SELinux is off (S1)"),
            SelinuxMode::Absent,
        );
    }
    if !live {
        return match (&config.input, config.mode()) {
            (Input::Missing, _) => (
                check(
                    CheckStatus::Pass,
                    "offline root without /etc/selinux/config: SELinux is not configured",
                ),
                SelinuxMode::Absent,
            ),
            (Input::Unreadable(e), _) => (
                Check::cannot_read(
                    "S2",
                    S2_TITLE,
                    format!("cannot read /etc/selinux/config: {e} (needs root)"),
                ),
                SelinuxMode::Unknown,
            ),
            (_, Some(ConfigMode::Enforcing)) => (
                check(
                    CheckStatus::Pass,
                    "enforcing at the next boot (offline root: SELINUX=enforcing)",
                ),
                SelinuxMode::Enforcing,
            ),
            (_, Some(ConfigMode::Permissive)) => (
                check(
                    CheckStatus::Warn,
                    "permissive at the next boot (offline root: SELINUX=permissive): denials are logged, not enforced; the backup is not blocked by SELinux",
                ),
                SelinuxMode::Permissive,
            ),
            (_, Some(ConfigMode::Disabled) | None) => (
                check(
                    CheckStatus::Pass,
                    "SELinux disabled in /etc/selinux/config (offline root)",
                ),
                SelinuxMode::Disabled,
            ),
        };
    }
    let selinuxfs =
        mounts.and_then(|t| t.entries().iter().rev().find(|m| m.fs_type == "selinuxfs"));
    let enforce = read_input(&root.path(SYS_FS_SELINUX).join("enforce"));
    if let Some(m) = selinuxfs {
        if m.is_read_only() {
            return (
                check(
                    CheckStatus::Skip,
                    &format!(
                        "selinuxfs is mounted read-only at {} (a container): the host's SELinux decides; run snapguard selinux on the host",
                        m.mount_point.display()
                    ),
                ),
                SelinuxMode::Container,
            );
        }
    }
    match enforce {
        Input::Missing if selinuxfs.is_none() => (
            check(
                CheckStatus::Pass,
                "SELinux disabled: no policy loaded (selinuxfs is not mounted)",
            ),
            SelinuxMode::Disabled,
        ),
        Input::Missing => (
            check(
                CheckStatus::Skip,
                "selinuxfs is mounted but /sys/fs/selinux/enforce is missing",
            ),
            SelinuxMode::Container,
        ),
        Input::Unreadable(e) => (
            Check::cannot_read(
                "S2",
                S2_TITLE,
                format!("cannot read /sys/fs/selinux/enforce: {e}"),
            ),
            SelinuxMode::Unknown,
        ),
        Input::Text(t) => match t.trim_matches(|c: char| c.is_whitespace() || c == '\0') {
            "1" => (
                check(
                    CheckStatus::Pass,
                    "enforcing (/sys/fs/selinux/enforce is 1): checks S3-S11 decide",
                ),
                SelinuxMode::Enforcing,
            ),
            "0" => (
                check(
                    CheckStatus::Warn,
                    "permissive: denials are logged, not enforced; the backup is not blocked by SELinux",
                ),
                SelinuxMode::Permissive,
            ),
            other => (
                check(
                    CheckStatus::Skip,
                    &format!(
                        "/sys/fs/selinux/enforce holds '{}', not 0 or 1",
                        other.escape_debug()
                    ),
                ),
                SelinuxMode::Container,
            ),
        },
    }
}

/// S3. The configuration against the runtime, and a pending relabel.
pub fn config_consistency(
    root: &SysRoot,
    live: bool,
    mode: SelinuxMode,
    config: &ConfigFile,
    cmdline: &Cmdline,
) -> Check {
    let mut warns: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let configured = config.mode();
    let cmd_enforcing = cmdline.get("enforcing");
    match (&config.input, live) {
        (Input::Unreadable(e), _) => warns.push(format!("cannot read /etc/selinux/config: {e}")),
        (Input::Missing, true) if mode != SelinuxMode::Disabled => warns.push(
            "/etc/selinux/config is missing while SELinux is active: userspace (getenforce, restorecon) treats it as disabled".into(),
        ),
        (Input::Text(_), _) if configured.is_none() => {
            warns.push("/etc/selinux/config has no valid SELINUX= line at column 0".into())
        }
        _ => {}
    }
    if live {
        if let Some(cfg) = configured {
            match (mode, cfg) {
                (SelinuxMode::Enforcing, ConfigMode::Enforcing)
                | (SelinuxMode::Permissive, ConfigMode::Permissive)
                | (SelinuxMode::Disabled, ConfigMode::Disabled) => {
                    notes.push(format!("configured {} as running", cfg.word()))
                }
                (SelinuxMode::Permissive, ConfigMode::Enforcing) if cmd_enforcing == Some("0") => {
                    notes.push("permissive because of enforcing=0 on the kernel command line (SELINUX=enforcing)".into())
                }
                (SelinuxMode::Enforcing, ConfigMode::Permissive) if cmd_enforcing == Some("1") => {
                    notes.push("enforcing because of enforcing=1 on the kernel command line (SELINUX=permissive)".into())
                }
                (SelinuxMode::Disabled, _) => warns.push(format!(
                    "SELinux is off now but SELINUX={}: the next boot turns it on, with a relabel; run snapguard selinux again after it",
                    cfg.word()
                )),
                (running, cfg) => warns.push(format!(
                    "running {} but SELINUX={}: the next boot differs (setenforce was used, or the file changed since boot)",
                    match running {
                        SelinuxMode::Enforcing => "enforcing",
                        _ => "permissive",
                    },
                    cfg.word()
                )),
            }
        }
    } else if let Some(cfg) = configured {
        notes.push(format!("configured {}", cfg.word()));
    }
    let relabel_file = root.path(AUTORELABEL).exists();
    if relabel_file {
        warns.push("/.autorelabel exists: a full relabel runs at the next boot".into());
    } else if cmdline.get("autorelabel") == Some("1") {
        warns.push("autorelabel=1 on the kernel command line: every boot relabels".into());
    }
    if warns.is_empty() {
        let msg = if notes.is_empty() {
            "no configuration mismatch and no relabel pending".to_string()
        } else {
            format!("{}; no relabel pending", notes.join("; "))
        };
        Check::new("S3", S3_TITLE, CheckStatus::Pass, msg)
    } else {
        Check::new("S3", S3_TITLE, CheckStatus::Warn, warns.join("; ")).with_details(notes)
    }
}

/// S4. `SELINUXTYPE` and its policy directory.
pub fn policy_type_check(root: &SysRoot, config: &ConfigFile) -> Check {
    let ty = config.policy_type();
    let implicit = config
        .parsed
        .as_ref()
        .is_none_or(|c| c.policy_type.is_none());
    let shown = if implicit {
        format!("{ty} (SELINUXTYPE not set: the default)")
    } else {
        ty.clone()
    };
    let check = |status, msg: String| Check::new("S4", S4_TITLE, status, msg);
    if ty.contains('/') || ty == ".." || ty == "." {
        return check(
            CheckStatus::Warn,
            format!("SELINUXTYPE='{}' is not a policy name", ty.escape_debug()),
        );
    }
    if !root.path(ETC_SELINUX).join(&ty).is_dir() {
        return check(
            CheckStatus::Warn,
            format!(
                "policy {shown}: /etc/selinux/{ty}/ does not exist, so the labels and module store cannot be checked"
            ),
        );
    }
    if ty == "mls" {
        return check(
            CheckStatus::Warn,
            "policy mls: it has no unconfined module, so the agent runs in a confined domain (see S6, S9)".to_string(),
        );
    }
    if STOCK_TYPES.contains(&ty.as_str()) {
        check(
            CheckStatus::Pass,
            format!("policy {shown}: services started from bin_t files run unconfined"),
        )
    } else {
        check(
            CheckStatus::Pass,
            format!(
                "policy {shown}: not a stock name; S5 and S6 tell whether the agent runs unconfined"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A character cut in two by the key's length used to panic (issue 10).
    #[test]
    fn a_multibyte_character_where_the_key_ends_does_not_panic() {
        for line in [
            "SELINUXTYPEé",
            "SELINUXTYPé=x",
            "SELINUXTYP\u{1F600}",
            "é",
            "SELINUXTYPE=é",
        ] {
            let parsed = parse_config(line);
            assert_eq!(parsed.mode, None, "{line}");
        }
        assert_eq!(
            parse_config("SELINUXTYPEé\nselinuxtype=mls \n")
                .policy_type
                .as_deref(),
            Some("mls")
        );
        assert_eq!(
            parse_config("SELINUXTYPE=é\n").policy_type.as_deref(),
            Some("é")
        );
    }

    #[test]
    fn config_follows_libselinux_rules() {
        let c = parse_config(
            "# SELINUX=disabled\n  SELINUX=disabled\nSELINUX= Enforcing\nSELINUX=permissive\nselinuxtype=mls\n  SELINUXTYPE=targeted \r\nSETLOCALDEFS=0\n",
        );
        assert_eq!(c.mode, Some(ConfigMode::Enforcing));
        assert_eq!(c.policy_type.as_deref(), Some("targeted"));
        let c = parse_config("SELINUX=permissive\n");
        assert_eq!(c.mode, Some(ConfigMode::Permissive));
        assert_eq!(c.policy_type, None);
        assert_eq!(parse_config("SELINUX=bogus\n").mode, None);
        assert_eq!(parse_config("#SELINUXTYPE=mls\n").policy_type, None);
    }

    #[test]
    fn cmdline_last_token_wins() {
        let c = Cmdline::parse("ro selinux=1 enforcing=1 enforcing=0 security=selinux\n");
        assert_eq!(c.get("enforcing"), Some("0"));
        assert_eq!(c.get("selinux"), Some("1"));
        assert_eq!(c.get("lsm"), None);
        assert_eq!(c.get("security"), Some("selinux"));
    }
}
