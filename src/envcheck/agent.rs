//! E1–E5: the Azure Linux agent (installed, running, its version), its state directory
//! `/var/lib/waagent` and the VMSnapshot extension's handler there. No process is spawned: the
//! version comes from the installed package files and the `WALinuxAgent-<ver>` directories the
//! agent's auto-update unpacks; processes are read with `procfs` under the root.

use crate::report::model::{Check, CheckStatus};
use crate::root::{
    AZURE_ASSET_TAG, DMI_CHASSIS_ASSET_TAG, ETC_OS_RELEASE, PROC, PYTHON_LIB_DIRS, SysRoot,
    VMSNAPSHOT_HANDLER_PREFIX, WAAGENT_BINS, WAAGENT_LIB_DIR,
};
use crate::selinux::agent::{Role, agent_role};
use crate::selinux::{read_input, shell_quote};
use procfs::ProcError;
use procfs::process::Process;
use std::io::ErrorKind;

pub const E1: &str = "E1";
pub const E2: &str = "E2";
pub const E3: &str = "E3";
pub const E4: &str = "E4";
pub const E5: &str = "E5";
const E1_TITLE: &str = "Azure Linux agent installed";
const E2_TITLE: &str = "Azure Linux agent running";
const E3_TITLE: &str = "Azure Linux agent version";
const E4_TITLE: &str = "agent state directory";
const E5_TITLE: &str = "VMSnapshot extension handler";

/// The oldest agent Microsoft supports extensions with ("Minimum version support for virtual
/// machine agents in Azure": 2.2.10 for Linux).
pub const MIN_AGENT_VERSION: &str = "2.2.10";

/// Run from any machine with the Azure CLI: a backup installs the VMSnapshot extension
/// (placeholders in angle brackets).
const BACKUP_NOW: &str = "az backup protection backup-now --resource-group <rg> --vault-name <vault> --container-name <vm> --item-name <vm> --backup-management-type AzureIaasVM";

/// A directory listing that may legitimately fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// No such directory.
    Missing,
    /// The path exists but is not a directory.
    NotADirectory,
    /// It exists but cannot be listed (permissions); the reason.
    Unreadable(String),
    /// The entry names, sorted.
    Names(Vec<String>),
}

/// List a directory's entry names.
pub fn list_dir(path: &std::path::Path) -> Listing {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Listing::Missing,
        Err(e) => return Listing::Unreadable(crate::sys::describe_io(&e)),
        Ok(m) if !m.is_dir() => return Listing::NotADirectory,
        Ok(_) => {}
    }
    match std::fs::read_dir(path) {
        Err(e) => Listing::Unreadable(crate::sys::describe_io(&e)),
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Listing::Names(names)
        }
    }
}

/// What the agent checks share, read once.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    /// Agent executables found (`/usr/sbin/waagent`).
    pub binaries: Vec<String>,
    /// The Python package's directory (`/usr/lib/python3/dist-packages/azurelinuxagent`).
    pub package: Option<String>,
    /// The installed package's version (egg-info/dist-info name or `version.py`).
    pub package_version: Option<String>,
    /// Package directories that could not be listed.
    pub unreadable: Vec<String>,
    /// `/var/lib/waagent`.
    pub lib_dir: Listing,
    /// The Azure chassis asset tag is present.
    pub azure_asset_tag: bool,
}

impl AgentFacts {
    /// Look at the root.
    pub fn read(root: &SysRoot) -> Self {
        let binaries = WAAGENT_BINS
            .iter()
            .filter(|b| root.path(b).is_file())
            .map(|b| format!("/{b}"))
            .collect();
        let mut facts = AgentFacts {
            binaries,
            package: None,
            package_version: None,
            unreadable: Vec::new(),
            lib_dir: list_dir(&root.host(WAAGENT_LIB_DIR)),
            azure_asset_tag: read_input(&root.path(DMI_CHASSIS_ASSET_TAG))
                .text()
                .is_some_and(|t| t.trim() == AZURE_ASSET_TAG),
        };
        facts.find_package(root);
        facts
    }

    /// `usr/lib*/python3*/{site,dist}-packages/{azurelinuxagent,WALinuxAgent-*}`.
    fn find_package(&mut self, root: &SysRoot) {
        for lib in PYTHON_LIB_DIRS {
            let Listing::Names(pythons) = list_dir(&root.path(lib)) else {
                continue;
            };
            for python in pythons.iter().filter(|p| p.starts_with("python3")) {
                for kind in ["site-packages", "dist-packages"] {
                    let rel = format!("{lib}/{python}/{kind}");
                    let names = match list_dir(&root.path(&rel)) {
                        Listing::Names(n) => n,
                        Listing::Unreadable(why) => {
                            self.unreadable.push(format!("/{rel}: {why}"));
                            continue;
                        }
                        _ => continue,
                    };
                    if names.iter().any(|n| n == "azurelinuxagent") {
                        let dir = format!("{rel}/azurelinuxagent");
                        self.package.get_or_insert(format!("/{dir}"));
                        let version_py = root.path(format!("{dir}/common/version.py"));
                        if let Some(v) = read_input(&version_py).text().and_then(version_py_value) {
                            self.package_version.get_or_insert(v);
                        }
                    }
                    for n in &names {
                        if let Some(v) = egg_info_version(n) {
                            self.package_version.get_or_insert(v);
                            self.package.get_or_insert(format!("/{rel}/{n}"));
                        }
                    }
                }
            }
        }
    }

    /// Whether anything is installed.
    pub fn installed(&self) -> bool {
        !self.binaries.is_empty() || self.package.is_some()
    }

    /// Whether `/var/lib/waagent` exists (listable or not).
    pub fn lib_dir_exists(&self) -> bool {
        !matches!(self.lib_dir, Listing::Missing)
    }

    /// Whether this looks like an Azure VM at all: an agent, its state directory, or the
    /// Azure chassis asset tag.
    pub fn azure(&self) -> bool {
        self.installed() || self.lib_dir_exists() || self.azure_asset_tag
    }

    /// `WALinuxAgent-<ver>` directories in `/var/lib/waagent` (auto-updated agents), sorted
    /// by version.
    pub fn updated_versions(&self) -> Vec<String> {
        let Listing::Names(names) = &self.lib_dir else {
            return Vec::new();
        };
        let mut v: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix("WALinuxAgent-"))
            .filter(|v| parse_version(v).is_some())
            .map(str::to_string)
            .collect();
        v.sort_by_key(|v| parse_version(v));
        v
    }

    /// The newest version present: the package's or an auto-updated one (the agent runs the
    /// newest it has, unless auto-update is off).
    pub fn newest_version(&self) -> Option<String> {
        self.updated_versions()
            .into_iter()
            .chain(self.package_version.clone())
            .max_by_key(|v| parse_version(v))
    }

    fn not_azure(&self, id: &'static str, title: &'static str) -> Check {
        Check::new(
            id,
            title,
            CheckStatus::Skip,
            "not an Azure VM: no Azure Linux agent, no /var/lib/waagent and no Azure chassis asset tag",
        )
    }
}

/// `AGENT_VERSION = '2.2.53'` in `azurelinuxagent/common/version.py`.
pub fn version_py_value(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("AGENT_VERSION")?.trim_start();
        let value = rest.strip_prefix('=')?.trim();
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        parse_version(value).map(|_| value.to_string())
    })
}

/// `WALinuxAgent-2.2.45.egg-info`, `WALinuxAgent-2.9.1.1-py3.8.egg-info`, `…dist-info`.
pub fn egg_info_version(name: &str) -> Option<String> {
    let rest = name.strip_prefix("WALinuxAgent-")?;
    let rest = rest
        .strip_suffix(".egg-info")
        .or_else(|| rest.strip_suffix(".dist-info"))?;
    let version = rest.split('-').next()?;
    parse_version(version).map(|_| version.to_string())
}

/// `2.9.1.1` → `[2, 9, 1, 1]`; `None` unless dot-separated numbers.
pub fn parse_version(v: &str) -> Option<Vec<u64>> {
    if v.is_empty() {
        return None;
    }
    v.split('.').map(|p| p.parse().ok()).collect()
}

/// The package manager command installing or updating the agent on this distribution
/// (`etc/os-release`), acting on `root`.
fn package_command(root: &SysRoot, upgrade: bool) -> String {
    let text = read_input(&root.path(ETC_OS_RELEASE));
    let ids: String = text
        .text()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .map(|v| v.trim_matches('"').to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let has = |w: &str| ids.split_whitespace().any(|i| i == w);
    let cmd = match (
        has("debian") || has("ubuntu"),
        has("suse") || has("sles") || has("opensuse"),
    ) {
        (true, _) if upgrade => "apt-get install -y --only-upgrade walinuxagent",
        (true, _) => "apt-get install -y walinuxagent",
        (_, true) if upgrade => "zypper update -y python-azure-agent",
        (_, true) => "zypper install -y python-azure-agent",
        _ if upgrade => "dnf upgrade -y WALinuxAgent",
        _ => "dnf install -y WALinuxAgent",
    };
    in_root(root, cmd)
}

/// `cmd` run inside `root` (`chroot DIR cmd`), unchanged for the host.
pub fn in_root(root: &SysRoot, cmd: &str) -> String {
    if root.is_host() {
        cmd.to_string()
    } else {
        format!(
            "chroot {} {cmd}",
            shell_quote(&root.base().to_string_lossy())
        )
    }
}

/// `systemctl` starting the agent's unit (`--root=DIR … enable` for another root).
fn start_agent(root: &SysRoot) -> String {
    let unit = crate::selinux::agent::unit_name(root);
    if root.is_host() {
        format!("systemctl enable --now {unit}.service")
    } else {
        format!(
            "systemctl --root={} enable {unit}.service",
            shell_quote(&root.base().to_string_lossy())
        )
    }
}

/// E1.
pub fn installed(root: &SysRoot, facts: &AgentFacts) -> Check {
    with_install_remedy(installed_inner(facts), root)
}

fn installed_inner(facts: &AgentFacts) -> Check {
    if !facts.azure() {
        return facts.not_azure(E1, E1_TITLE);
    }
    if facts.installed() {
        let version = facts
            .package_version
            .as_deref()
            .map_or(String::new(), |v| format!(" {v}"));
        let mut details = facts.binaries.clone();
        details.extend(facts.package.clone());
        return Check::new(
            E1,
            E1_TITLE,
            CheckStatus::Pass,
            format!("WALinuxAgent{version} is installed"),
        )
        .with_details(details);
    }
    if !facts.unreadable.is_empty() {
        return Check::cannot_read(
            E1,
            E1_TITLE,
            "no waagent executable, and Python package directories could not be listed: cannot tell whether the agent is installed",
        )
        .with_details(facts.unreadable.clone());
    }
    let why = if facts.lib_dir_exists() {
        "/var/lib/waagent exists"
    } else {
        "the chassis asset tag is Azure's"
    };
    Check::new(
        E1,
        E1_TITLE,
        CheckStatus::Fail,
        format!(
            "an Azure VM ({why}) without the Azure Linux agent: no /usr/sbin/waagent, no azurelinuxagent package; the backup extension cannot run"
        ),
    )
}

/// E1's remedy needs the root: attach it here.
fn with_install_remedy(check: Check, root: &SysRoot) -> Check {
    if check.status == CheckStatus::Fail {
        check.with_remedy(package_command(root, false))
    } else {
        check
    }
}

/// Every agent process under `<root>/proc`, read with `procfs`: `(pid, role)`, or why the
/// processes could not be looked at.
pub fn agent_processes(root: &SysRoot) -> Result<Vec<(u32, Role)>, String> {
    let proc_dir = root.path(PROC);
    let names = match list_dir(&proc_dir) {
        Listing::Names(n) => n,
        Listing::Unreadable(why) => return Err(format!("cannot list /proc: {why}")),
        _ => return Err("no /proc under the root (offline)".into()),
    };
    let own = std::process::id();
    let mut found = Vec::new();
    let mut denied = 0usize;
    for pid in names.iter().filter_map(|n| n.parse::<u32>().ok()) {
        if root.is_host() && pid == own {
            continue;
        }
        let argv = match Process::new_with_root(proc_dir.join(pid.to_string()))
            .and_then(|p| p.cmdline())
        {
            Ok(argv) => argv,
            Err(ProcError::PermissionDenied(_)) => {
                denied += 1;
                continue;
            }
            Err(_) => continue, // exited meanwhile, or not a process directory
        };
        if let Some(role) = agent_role(&argv) {
            found.push((pid, role));
        }
    }
    if found.is_empty() && denied > 0 {
        return Err(format!(
            "cannot read the command line of {denied} process(es): permission denied (needs root)"
        ));
    }
    Ok(found)
}

/// E2.
pub fn running(root: &SysRoot, facts: &AgentFacts) -> Check {
    let check = running_inner(root, facts);
    if check.status == CheckStatus::Fail || check.status == CheckStatus::Warn {
        check.with_remedy(start_agent(root))
    } else {
        check
    }
}

fn running_inner(root: &SysRoot, facts: &AgentFacts) -> Check {
    if !facts.azure() {
        return facts.not_azure(E2, E2_TITLE);
    }
    let c = |status, msg: String| Check::new(E2, E2_TITLE, status, msg);
    if !root.path(PROC).exists() {
        return c(
            CheckStatus::Skip,
            "offline root (no /proc): whether the agent runs cannot be seen".into(),
        );
    }
    let processes = match agent_processes(root) {
        Ok(p) => p,
        Err(why) => {
            return Check::cannot_read(E2, E2_TITLE, format!("{why}: cannot tell"));
        }
    };
    let details: Vec<String> = processes
        .iter()
        .map(|(pid, role)| {
            let what = match role {
                Role::Daemon => "daemon",
                Role::ExtHandler => "extension handler",
                Role::Other => "agent",
            };
            format!("pid {pid}: {what}")
        })
        .collect();
    if processes.is_empty() {
        return c(
            CheckStatus::Fail,
            "no waagent process runs: extensions (the VM backup's snapshot) are not run".into(),
        );
    }
    if processes.iter().any(|(_, r)| *r == Role::ExtHandler) {
        return c(
            CheckStatus::Pass,
            "the agent and its extension handler (-run-exthandlers) run".into(),
        )
        .with_details(details);
    }
    c(
        CheckStatus::Warn,
        "the agent runs but no extension handler process (-run-exthandlers): extensions do not run until it starts".into(),
    )
    .with_details(details)
}

/// E3.
pub fn version(root: &SysRoot, facts: &AgentFacts) -> Check {
    if !facts.azure() {
        return facts.not_azure(E3, E3_TITLE);
    }
    let c = |status, msg: String| Check::new(E3, E3_TITLE, status, msg);
    let mut details = Vec::new();
    if let Some(v) = &facts.package_version {
        details.push(format!("installed package: {v}"));
    }
    for v in facts.updated_versions() {
        details.push(format!("auto-update: /var/lib/waagent/WALinuxAgent-{v}"));
    }
    let Some(newest) = facts.newest_version() else {
        if let Listing::Unreadable(why) = &facts.lib_dir {
            return Check::cannot_read(
                E3,
                E3_TITLE,
                format!(
                    "no version in the package files and /var/lib/waagent cannot be listed ({why}): cannot tell"
                ),
            );
        }
        return c(
            CheckStatus::Skip,
            "no agent version found (no egg-info/dist-info, version.py or WALinuxAgent-* directory): cannot tell".into(),
        );
    };
    if parse_version(&newest) < parse_version(MIN_AGENT_VERSION) {
        return c(
            CheckStatus::Warn,
            format!("agent {newest} is older than {MIN_AGENT_VERSION}, the oldest Azure supports extensions with"),
        )
        .with_remedy(package_command(root, true))
        .with_details(details);
    }
    c(CheckStatus::Pass, format!("agent {newest}")).with_details(details)
}

/// E4.
pub fn lib_dir(root: &SysRoot, facts: &AgentFacts) -> Check {
    if !facts.azure() {
        return facts.not_azure(E4, E4_TITLE);
    }
    let c = |status, msg: &str| Check::new(E4, E4_TITLE, status, msg.to_string());
    match &facts.lib_dir {
        Listing::Names(_) | Listing::Unreadable(_) => {
            c(CheckStatus::Pass, "/var/lib/waagent is present")
        }
        Listing::NotADirectory => c(
            CheckStatus::Fail,
            "/var/lib/waagent is not a directory: the agent cannot install extensions",
        )
        .with_remedy(start_agent(root)),
        Listing::Missing => c(
            CheckStatus::Fail,
            "/var/lib/waagent is missing: the agent never ran here, or it was removed; extensions cannot be installed",
        )
        .with_remedy(start_agent(root)),
    }
}

/// E5.
pub fn snapshot_handler(facts: &AgentFacts) -> Check {
    if !facts.azure() {
        return facts.not_azure(E5, E5_TITLE);
    }
    let c = |status, msg: String| Check::new(E5, E5_TITLE, status, msg);
    let names = match &facts.lib_dir {
        Listing::Names(n) => n,
        Listing::Unreadable(why) => {
            return Check::cannot_read(
                E5,
                E5_TITLE,
                format!("cannot list /var/lib/waagent ({why}): cannot tell"),
            );
        }
        _ => {
            return c(
                CheckStatus::Skip,
                "no /var/lib/waagent directory (E4): no handler can be there".into(),
            );
        }
    };
    let mut handlers: Vec<&str> = names
        .iter()
        .filter(|n| n.starts_with(VMSNAPSHOT_HANDLER_PREFIX))
        .filter(|n| !n.ends_with(".zip"))
        .map(String::as_str)
        .collect();
    handlers.sort_by_key(|n| parse_version(&n[VMSNAPSHOT_HANDLER_PREFIX.len()..]));
    let Some(newest) = handlers.last() else {
        return c(
            CheckStatus::Warn,
            format!(
                "no {VMSNAPSHOT_HANDLER_PREFIX}* handler in /var/lib/waagent: the backup extension is not installed yet (Azure installs it with the first backup; if backups fail with UserErrorVmNotInDesirableState, it cannot be installed)"
            ),
        )
        .with_remedy(BACKUP_NOW);
    };
    c(
        CheckStatus::Pass,
        format!(
            "VMSnapshot extension {} is installed",
            &newest[VMSNAPSHOT_HANDLER_PREFIX.len()..]
        ),
    )
    .with_details(
        handlers
            .iter()
            .map(|h| format!("/var/lib/waagent/{h}"))
            .collect(),
    )
}
