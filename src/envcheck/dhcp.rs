//! E12: DHCP on the primary interface (Azure requires it: a static address breaks the
//! agent's and the extension's connection to the platform). The primary interface is the one
//! of the default route (PID 1's `/proc/1/net/route`, the host's network namespace even
//! under `PrivateNetwork=yes`; `/proc/net/route` when that is missing); its configuration is read from every place a
//! distribution keeps it (systemd-networkd, NetworkManager, ifupdown, netplan, cloud-init,
//! RHEL ifcfg) and, failing those, its DHCP leases. No network traffic.

use super::agent::{Listing, list_dir};
use super::netconf::{
    Method, default_route_interface, ifupdown_method, normalise_mac, parse_dhclient_leases,
    parse_ifcfg, parse_ifupdown, parse_netplan, parse_networkd, parse_networkd_lease,
    parse_nmconnection,
};
use crate::report::model::{Check, CheckStatus};
use crate::root::{
    CLOUD_CFG_D, DHCP_LEASE_DIRS, IFCFG_DIR, IFUPDOWN_INTERFACES, IFUPDOWN_INTERFACES_D,
    NETPLAN_DIRS, NETWORKD_DIRS, NETWORKD_LEASES, NM_CONNECTION_DIRS, PROC_1_NET_ROUTE,
    PROC_NET_ROUTE, SYS_CLASS_NET, SysRoot,
};
use crate::selinux::{Input, read_input, shell_quote};

pub const E12: &str = "E12";
const E12_TITLE: &str = "DHCP on the primary interface";

/// What one configuration file says about the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Evidence {
    /// The file, as the checked system names it.
    file: String,
    method: Method,
    /// The command that switches this source to DHCP.
    fix: String,
}

/// Everything read for one interface.
#[derive(Debug, Default)]
struct Findings {
    evidence: Vec<Evidence>,
    unreadable: Vec<String>,
    leases: Vec<String>,
}

impl Findings {
    fn add(&mut self, file: &str, method: Option<Method>, fix: impl FnOnce() -> String) {
        if let Some(method) = method {
            self.evidence.push(Evidence {
                file: format!("/{file}"),
                method,
                fix: fix(),
            });
        }
    }
}

/// Read `rel`, noting it when unreadable.
fn read(root: &SysRoot, rel: &str, findings: &mut Findings) -> Option<String> {
    match read_input(&root.path(rel)) {
        Input::Text(t) => Some(t),
        Input::Missing => None,
        Input::Unreadable(why) => {
            findings.unreadable.push(format!("/{rel}: {why}"));
            None
        }
    }
}

/// The files of `dir` whose names end with `suffix`, as root-relative paths.
fn files(root: &SysRoot, dir: &str, suffix: &str, findings: &mut Findings) -> Vec<String> {
    match list_dir(&root.path(dir)) {
        Listing::Names(names) => names
            .into_iter()
            .filter(|n| n.ends_with(suffix))
            .map(|n| format!("{dir}/{n}"))
            .collect(),
        Listing::Unreadable(why) => {
            findings.unreadable.push(format!("/{dir}: {why}"));
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// A file path of the checked system, quoted for a command.
fn q(root: &SysRoot, rel: &str) -> String {
    shell_quote(&root.path(rel).to_string_lossy())
}

/// E12.
pub fn primary_interface(root: &SysRoot) -> Check {
    let c = |status, msg: String| Check::new(E12, E12_TITLE, status, msg);
    // PID 1's table first: the caller may be in a private network namespace (the preflight
    // unit's PrivateNetwork=yes, `unshare -n`) whose table has no default route. Without it
    // (an offline fixture, hidepid=) the caller's own.
    let route = match read_input(&root.path(PROC_1_NET_ROUTE)) {
        text @ Input::Text(_) => text,
        _ => read_input(&root.path(PROC_NET_ROUTE)),
    };
    let route = match route {
        Input::Missing => {
            return c(
                CheckStatus::Skip,
                "no /proc/net/route (offline root): the primary interface cannot be told".into(),
            );
        }
        Input::Unreadable(why) => {
            return Check::cannot_read(
                E12,
                E12_TITLE,
                format!("cannot read /proc/net/route: {why}"),
            );
        }
        Input::Text(t) => t,
    };
    let Some(iface) = default_route_interface(&route) else {
        return c(
            CheckStatus::Skip,
            "no default IPv4 route: the primary interface cannot be told".into(),
        );
    };
    let mac = read_input(&root.path(SYS_CLASS_NET).join(&iface).join("address"))
        .text()
        .and_then(normalise_mac);
    let f = gather(root, &iface, mac.as_deref());
    let mut details: Vec<String> = f
        .evidence
        .iter()
        .map(|e| {
            let m = match e.method {
                Method::Dhcp => "DHCP",
                Method::Static => "static",
            };
            format!("{}: {m}", e.file)
        })
        .collect();
    details.extend(f.leases.iter().map(|l| format!("lease: {l}")));
    details.extend(f.unreadable.iter().map(|u| format!("unreadable: {u}")));
    if let Some(st) = f.evidence.iter().find(|e| e.method == Method::Static) {
        return c(
            CheckStatus::Warn,
            format!(
                "{iface} (the default route's interface) has a static IPv4 configuration in {}: Azure requires DHCP, a static address loses the platform's connection when it changes",
                st.file
            ),
        )
        .with_remedy(st.fix.clone())
        .with_details(details);
    }
    if !f.unreadable.is_empty() {
        return Check::cannot_read(
            E12,
            E12_TITLE,
            format!(
                "network configuration files could not be read, one may set {iface} static: cannot tell"
            ),
        )
        .with_details(details);
    }
    if let Some(d) = f.evidence.first() {
        return c(
            CheckStatus::Pass,
            format!(
                "{iface} (the default route's interface) uses DHCP ({})",
                d.file
            ),
        )
        .with_details(details);
    }
    if !f.leases.is_empty() {
        return c(
            CheckStatus::Pass,
            format!("{iface} (the default route's interface) holds a DHCP lease; no configuration file names it"),
        )
        .with_details(details);
    }
    c(
        CheckStatus::Skip,
        format!(
            "no configuration or DHCP lease found for {iface}: cannot tell whether it uses DHCP"
        ),
    )
}

/// Read every source for `iface`.
fn gather(root: &SysRoot, iface: &str, mac: Option<&str>) -> Findings {
    let mut f = Findings::default();
    let host = root.is_host();
    // systemd-networkd: the first file (by name, across directories) that matches wins.
    let mut network_files: Vec<String> = NETWORKD_DIRS
        .iter()
        .flat_map(|d| files(root, d, ".network", &mut f))
        .collect();
    network_files.sort_by(|a, b| a.rsplit('/').next().cmp(&b.rsplit('/').next()));
    for file in network_files {
        let Some(text) = read(root, &file, &mut f) else {
            continue;
        };
        let n = parse_networkd(&text);
        if n.applies(iface, mac) == Some(true) {
            let path = q(root, &file);
            let fix = if n.dhcp.is_some() {
                format!("sed -i 's/^DHCP=.*/DHCP=ipv4/' {path}")
            } else {
                format!("sed -i '/^\\[Network\\]/a DHCP=ipv4' {path}")
            };
            let fix = if host {
                format!("{fix} && networkctl reload")
            } else {
                fix
            };
            f.add(&file, n.method(), || fix);
            break;
        }
    }
    // NetworkManager keyfiles.
    for dir in NM_CONNECTION_DIRS {
        for file in files(root, dir, ".nmconnection", &mut f) {
            let Some(text) = read(root, &file, &mut f) else {
                continue;
            };
            let n = parse_nmconnection(&text);
            if !n.applies(iface, mac) {
                continue;
            }
            let fix = match (&n.id, host) {
                (Some(id), true) => format!(
                    "nmcli connection modify {id} ipv4.method auto ipv4.addresses '' && nmcli connection up {id}",
                    id = shell_quote(id)
                ),
                _ => format!(
                    "sed -i '/^\\[ipv4\\]/,/^\\[/ s/^method=.*/method=auto/' {}",
                    q(root, &file)
                ),
            };
            f.add(&file, n.method(), || fix);
        }
    }
    // ifupdown.
    let mut ifupdown = vec![IFUPDOWN_INTERFACES.to_string()];
    ifupdown.extend(files(root, IFUPDOWN_INTERFACES_D, "", &mut f));
    for file in ifupdown {
        let Some(text) = read(root, &file, &mut f) else {
            continue;
        };
        for (name, method) in parse_ifupdown(&text) {
            if name == iface {
                let fix = format!(
                    "sed -i 's/^\\(\\s*iface {iface} inet\\) static/\\1 dhcp/' {}",
                    q(root, &file)
                );
                f.add(&file, ifupdown_method(&method), || fix);
            }
        }
    }
    // netplan, and cloud-init's own network config (version 2 is netplan's format).
    let mut yaml: Vec<String> = NETPLAN_DIRS
        .iter()
        .flat_map(|d| files(root, d, ".yaml", &mut f))
        .collect();
    yaml.extend(files(root, CLOUD_CFG_D, ".cfg", &mut f));
    for file in yaml {
        let Some(text) = read(root, &file, &mut f) else {
            continue;
        };
        for n in parse_netplan(&text) {
            if !n.applies(iface, mac) {
                continue;
            }
            let fix = if file.starts_with(CLOUD_CFG_D) {
                format!("sed -i 's/dhcp4: *false/dhcp4: true/' {}", q(root, &file))
            } else if host {
                format!("netplan set ethernets.{}.dhcp4=true && netplan apply", n.id)
            } else {
                format!(
                    "netplan set --root-dir {} ethernets.{}.dhcp4=true",
                    shell_quote(&root.base().to_string_lossy()),
                    n.id
                )
            };
            f.add(&file, n.method(), || fix);
        }
    }
    // RHEL ifcfg.
    for file in files(root, IFCFG_DIR, "", &mut f) {
        let Some(name) = file
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_prefix("ifcfg-"))
        else {
            continue;
        };
        if name == "lo" {
            continue;
        }
        let Some(text) = read(root, &file, &mut f) else {
            continue;
        };
        let c = parse_ifcfg(&text);
        let applies = match (&c.device, &c.hwaddr) {
            (Some(d), _) => d == iface,
            (None, Some(h)) => mac == Some(h.as_str()),
            (None, None) => name == iface,
        };
        if applies {
            let fix = format!(
                "sed -i 's/^BOOTPROTO=.*/BOOTPROTO=dhcp/' {}",
                q(root, &file)
            );
            f.add(&file, c.method(), || fix);
        }
    }
    leases(root, iface, &mut f);
    f
}

/// DHCP leases held for `iface`: dhclient/NetworkManager/dhcpcd lease files naming it, and
/// systemd-networkd's lease for its interface index.
fn leases(root: &SysRoot, iface: &str, f: &mut Findings) {
    for dir in DHCP_LEASE_DIRS {
        for file in files(root, dir, "", f) {
            let name = file.rsplit('/').next().unwrap_or_default();
            if !(name.ends_with(".lease") || name.ends_with(".leases")) {
                continue;
            }
            let stem = name.trim_end_matches(".leases").trim_end_matches(".lease");
            if stem == iface
                || stem.ends_with(&format!("-{iface}"))
                || stem.ends_with(&format!(".{iface}"))
            {
                f.leases.push(format!("/{file}"));
                continue;
            }
            if let Some(text) = read(root, &file, f) {
                if parse_dhclient_leases(&text).iter().any(|n| n == iface) {
                    f.leases.push(format!("/{file}"));
                }
            }
        }
    }
    let index = read_input(&root.path(SYS_CLASS_NET).join(iface).join("ifindex"));
    if let Some(index) = index.text().map(str::trim).filter(|i| !i.is_empty()) {
        let file = format!("{NETWORKD_LEASES}/{index}");
        if let Some(text) = read(root, &file, f) {
            if let Some(addr) = parse_networkd_lease(&text) {
                f.leases.push(format!("/{file} ({addr})"));
            }
        }
    }
}
