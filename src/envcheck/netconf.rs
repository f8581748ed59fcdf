//! Pure parsers for the network configuration E12 reads: `/proc/net/route`, systemd-networkd
//! `.network` files, NetworkManager keyfiles, ifupdown's `interfaces`, a YAML subset for
//! netplan and cloud-init, RHEL `ifcfg-*` files, and DHCP lease files. Text in, structs out,
//! no I/O, no panics on any input.

use globset::GlobBuilder;

/// How a configuration source sets up IPv4 on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// DHCP (or an equivalent: `auto`, `dhcp4: true`).
    Dhcp,
    /// Static addresses.
    Static,
}

/// The interface of the default IPv4 route with the lowest metric (`/proc/net/route`:
/// destination and mask `00000000`, flag `RTF_UP`).
pub fn default_route_interface(text: &str) -> Option<String> {
    let mut best: Option<(u64, &str)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(flags), Some(metric), Some(mask)) =
            (f.first(), f.get(1), f.get(3), f.get(6), f.get(7))
        else {
            continue;
        };
        let up = u32::from_str_radix(flags, 16).is_ok_and(|fl| fl & 1 == 1);
        if *dest != "00000000" || *mask != "00000000" || !up {
            continue;
        }
        let metric = metric.parse().unwrap_or(u64::MAX);
        if best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, iface));
        }
    }
    best.map(|(_, i)| i.to_string())
}

/// INI-style `key=value` lines grouped by `[section]`, shared by networkd and NetworkManager:
/// `(section, key, value)`, comments (`#`, `;`) skipped.
fn ini_pairs(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// A MAC address in canonical form (lower case, `:`-separated), if it is one.
pub fn normalise_mac(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .trim_matches('"')
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..6).filter_map(|i| lower.get(i * 2..i * 2 + 2)).collect();
    Some(pairs.join(":"))
}

/// A shell-style glob (`eth*`, `en[ops]*`) matches `name`; a bad pattern matches nothing.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .is_ok_and(|g| g.compile_matcher().is_match(name))
}

/// The parts of a systemd-networkd `.network` file that decide DHCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkdFile {
    /// `[Match] Name=` globs (`!` negates the list); empty with `has_match` false: matches all.
    pub names: Vec<String>,
    /// `[Match] MACAddress=` (canonical).
    pub macs: Vec<String>,
    /// Whether `[Match]` has any other condition we cannot evaluate (Driver=, Path=, …).
    pub other_match: bool,
    /// `[Network] DHCP=`.
    pub dhcp: Option<String>,
    /// An `Address=` in `[Network]` or an `[Address]` section.
    pub has_address: bool,
}

/// Parse a `.network` file.
pub fn parse_networkd(text: &str) -> NetworkdFile {
    let mut f = NetworkdFile::default();
    for (section, key, value) in ini_pairs(text) {
        match (section.as_str(), key.as_str()) {
            ("Match", "Name") if value.is_empty() => f.names.clear(),
            ("Match", "Name") => f.names.extend(value.split_whitespace().map(str::to_string)),
            ("Match", "MACAddress") => f
                .macs
                .extend(value.split_whitespace().filter_map(normalise_mac)),
            ("Match", _) => f.other_match = true,
            ("Network", "DHCP") => f.dhcp = Some(value.to_ascii_lowercase()),
            ("Network", "Address") | ("Address", "Address") if !value.is_empty() => {
                f.has_address = true
            }
            _ => {}
        }
    }
    f
}

impl NetworkdFile {
    /// Whether it applies to `iface` (with MAC `mac`); `None` when it depends on a condition
    /// that is not evaluated here.
    pub fn applies(&self, iface: &str, mac: Option<&str>) -> Option<bool> {
        let (neg, names): (Vec<&String>, Vec<&String>) =
            self.names.iter().partition(|n| n.starts_with('!'));
        let mut ok = true;
        if !names.is_empty() {
            ok &= names.iter().any(|n| glob_matches(n, iface));
        }
        if !neg.is_empty() {
            ok &= !neg.iter().any(|n| {
                n.trim_start_matches('!')
                    .split_whitespace()
                    .any(|p| glob_matches(p, iface))
            });
        }
        if !self.macs.is_empty() {
            match mac {
                Some(m) => ok &= self.macs.iter().any(|x| x == m),
                None => return None,
            }
        }
        if ok && self.other_match {
            return None;
        }
        Some(ok)
    }

    /// What it configures.
    pub fn method(&self) -> Option<Method> {
        match self.dhcp.as_deref() {
            Some("yes" | "true" | "ipv4" | "both" | "on" | "1") => Some(Method::Dhcp),
            _ if self.has_address => Some(Method::Static),
            _ => None,
        }
    }
}

/// The parts of a NetworkManager keyfile that decide DHCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NmConnection {
    /// `[connection] id=`.
    pub id: Option<String>,
    /// `[connection] interface-name=`.
    pub interface_name: Option<String>,
    /// `[ethernet] mac-address=` (canonical).
    pub mac: Option<String>,
    /// `[ipv4] method=`.
    pub method: Option<String>,
}

/// Parse a `.nmconnection` keyfile.
pub fn parse_nmconnection(text: &str) -> NmConnection {
    let mut c = NmConnection::default();
    for (section, key, value) in ini_pairs(text) {
        match (section.as_str(), key.as_str()) {
            ("connection", "id") => c.id = Some(value),
            ("connection", "interface-name") => c.interface_name = Some(value),
            ("ethernet" | "802-3-ethernet", "mac-address") => c.mac = normalise_mac(&value),
            ("ipv4", "method") => c.method = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    c
}

impl NmConnection {
    /// Whether it applies to `iface` (with MAC `mac`); a profile bound to neither a name
    /// nor a MAC applies to any ethernet device.
    pub fn applies(&self, iface: &str, mac: Option<&str>) -> bool {
        match (&self.interface_name, &self.mac) {
            (Some(n), _) => n == iface,
            (None, Some(m)) => mac == Some(m.as_str()),
            (None, None) => true,
        }
    }

    /// What it configures (`auto`: DHCP, `manual`: static; missing: NetworkManager's
    /// default, `auto`).
    pub fn method(&self) -> Option<Method> {
        match self.method.as_deref() {
            None | Some("auto") => Some(Method::Dhcp),
            Some("manual") => Some(Method::Static),
            _ => None,
        }
    }
}

/// `iface NAME inet METHOD` stanzas of an ifupdown `interfaces` file: `(name, method)`.
pub fn parse_ifupdown(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next()?;
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["iface", name, "inet", method, ..] => Some((name.to_string(), method.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// An ifupdown method: `dhcp` → DHCP, `static` → static, anything else (`manual`,
/// `loopback`) says nothing.
pub fn ifupdown_method(method: &str) -> Option<Method> {
    match method {
        "dhcp" => Some(Method::Dhcp),
        "static" => Some(Method::Static),
        _ => None,
    }
}

/// The parts of a RHEL `ifcfg-*` file that decide DHCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ifcfg {
    pub device: Option<String>,
    pub hwaddr: Option<String>,
    pub bootproto: Option<String>,
    pub has_ipaddr: bool,
}

/// Parse an `ifcfg-*` file (shell `KEY=value`, quotes removed).
pub fn parse_ifcfg(text: &str) -> Ifcfg {
    let mut c = Ifcfg::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "DEVICE" => c.device = Some(v),
            "HWADDR" => c.hwaddr = normalise_mac(&v),
            "BOOTPROTO" => c.bootproto = Some(v.to_ascii_lowercase()),
            k if k.starts_with("IPADDR") && !v.is_empty() => c.has_ipaddr = true,
            _ => {}
        }
    }
    c
}

impl Ifcfg {
    /// What it configures: `dhcp`/`bootp` → DHCP, `none`/`static`/empty with `IPADDR` → static.
    pub fn method(&self) -> Option<Method> {
        match self.bootproto.as_deref() {
            Some("dhcp" | "bootp") => Some(Method::Dhcp),
            Some("none" | "static" | "") | None if self.has_ipaddr => Some(Method::Static),
            Some("static") => Some(Method::Static),
            _ => None,
        }
    }
}

/// One scalar of a YAML document: the path of keys leading to it and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlScalar {
    pub path: Vec<String>,
    pub value: String,
}

/// The YAML subset netplan and cloud-init network configs are written in: block mappings by
/// indentation, `key: value`, `- item` lists (items recorded under their list's key), inline
/// `{a: b, c: d}` mappings and `[a, b]` lists one level deep, `#` comments, quotes removed.
/// Anything else (anchors, multi-line strings) is read as plain text or skipped.
pub fn parse_yaml_subset(text: &str) -> Vec<YamlScalar> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for raw in text.lines() {
        let line = strip_yaml_comment(raw);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let mut indent = line.len() - line.trim_start().len();
        let mut body = line.trim();
        while let Some(rest) = body
            .strip_prefix("- ")
            .or_else(|| (body == "-").then_some(""))
        {
            indent += body.len() - rest.len();
            body = rest.trim_start();
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let path = |extra: &[&str]| -> Vec<String> {
            stack
                .iter()
                .map(|(_, k)| k.clone())
                .chain(extra.iter().map(|s| s.to_string()))
                .collect()
        };
        match split_yaml_key(body) {
            Some((key, value)) if value.is_empty() => stack.push((indent, key)),
            Some((key, value)) => {
                for (sub, v) in inline_values(&value) {
                    let p = match &sub {
                        Some(s) => path(&[&key, s]),
                        None => path(&[&key]),
                    };
                    out.push(YamlScalar { path: p, value: v });
                }
            }
            None if !body.is_empty() => out.push(YamlScalar {
                path: path(&[]),
                value: unquote(body),
            }),
            None => {}
        }
    }
    out
}

/// `line` without a `#` comment (one at the start or after a blank, outside quotes).
fn strip_yaml_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_blank = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_blank => return &line[..i],
            None => {}
        }
        prev_blank = c.is_whitespace();
    }
    line
}

/// `key: value` (value may be empty) or `None` for a plain scalar.
fn split_yaml_key(body: &str) -> Option<(String, String)> {
    let (key, value) = if let Some(k) = body.strip_suffix(':') {
        (k, "")
    } else {
        let at = body.find(": ")?;
        (&body[..at], &body[at + 2..])
    };
    if key.is_empty() || key.starts_with(['{', '[']) {
        return None;
    }
    Some((unquote(key), value.trim().to_string()))
}

/// `{a: b, c: d}` → `[(Some(a), b), (Some(c), d)]`; `[x, y]` → `[(None, x), (None, y)]`;
/// a scalar → `[(None, scalar)]`.
fn inline_values(value: &str) -> Vec<(Option<String>, String)> {
    if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
        return inner
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                Some((Some(unquote(k.trim())), unquote(v.trim())))
            })
            .collect();
    }
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        return inner
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (None, unquote(v)))
            .collect();
    }
    vec![(None, unquote(value))]
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

/// One interface of a netplan (or cloud-init version 2) network config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetplanIface {
    /// The id under `ethernets:` (`eth0`, or a name like `primary` with a `match:`).
    pub id: String,
    pub set_name: Option<String>,
    pub match_name: Option<String>,
    pub match_mac: Option<String>,
    pub dhcp4: Option<bool>,
    pub has_addresses: bool,
}

/// The interfaces of a netplan document (`network: ethernets|bonds|bridges|vlans|wifis: ID:`).
pub fn parse_netplan(text: &str) -> Vec<NetplanIface> {
    let mut ifaces: Vec<NetplanIface> = Vec::new();
    for s in parse_yaml_subset(text) {
        let p: Vec<&str> = s.path.iter().map(String::as_str).collect();
        let ["network", kind, id, rest @ ..] = p.as_slice() else {
            continue;
        };
        if !matches!(*kind, "ethernets" | "bonds" | "bridges" | "vlans" | "wifis") {
            continue;
        }
        let i = match ifaces.iter().position(|i| i.id == *id) {
            Some(i) => i,
            None => {
                ifaces.push(NetplanIface {
                    id: id.to_string(),
                    ..Default::default()
                });
                ifaces.len() - 1
            }
        };
        let iface = &mut ifaces[i];
        match rest {
            ["dhcp4"] => iface.dhcp4 = yaml_bool(&s.value),
            ["set-name"] => iface.set_name = Some(s.value.clone()),
            ["match", "name"] => iface.match_name = Some(s.value.clone()),
            ["match", "macaddress"] => iface.match_mac = normalise_mac(&s.value),
            ["addresses", ..] if s.value.contains('.') => iface.has_addresses = true,
            _ => {}
        }
    }
    ifaces
}

/// YAML 1.1 booleans as netplan accepts them.
pub fn yaml_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" => Some(true),
        "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

impl NetplanIface {
    /// Whether it applies to `iface` with MAC `mac`.
    pub fn applies(&self, iface: &str, mac: Option<&str>) -> bool {
        if let Some(n) = &self.set_name {
            if n == iface {
                return true;
            }
        }
        let has_match = self.match_name.is_some() || self.match_mac.is_some();
        if !has_match {
            return self.id == iface;
        }
        self.match_name
            .as_deref()
            .is_none_or(|n| glob_matches(n, iface))
            && self.match_mac.as_deref().is_none_or(|m| mac == Some(m))
    }

    /// What it configures (netplan's default is no DHCP: addresses → static).
    pub fn method(&self) -> Option<Method> {
        match self.dhcp4 {
            Some(true) => Some(Method::Dhcp),
            _ if self.has_addresses => Some(Method::Static),
            Some(false) => Some(Method::Static),
            None => None,
        }
    }
}

/// The interfaces named in a dhclient lease file (`interface "eth0";`).
pub fn parse_dhclient_leases(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("interface")?.trim();
            let name = rest.strip_suffix(';')?.trim().trim_matches('"');
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A systemd-networkd lease file (`run/systemd/netif/leases/<ifindex>`): its `ADDRESS=`.
pub fn parse_networkd_lease(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("ADDRESS="))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}
