//! S5, S7, S11: the policy module store, read as directories (no libsemanage).
//!
//! Layouts (selinux.md §3.1): `<store-root>/<type>/active/modules/<priority>/<name>/` with
//! `store-root` from `/etc/selinux/semanage.conf` (default `/var/lib/selinux`; Fedora ≥23,
//! RHEL 8+, Debian), `/etc/selinux/<type>/active/modules/<priority>/<name>/` (RHEL 7), and
//! `/etc/selinux/<type>/modules/active/modules/<name>.pp` (RHEL 6). A disabled module is an
//! empty file `modules/disabled/<name>` (RHEL 6: `<name>.pp.disabled`). A
//! `semanage permissive -a T` is a module `permissive_T` at priority 400 whose `cil`
//! (bzip2-compressed or plain) is `(typepermissive T)`.

use super::{Input, read_input, shell_quote};
use crate::report::{Check, CheckStatus};
use crate::root::{ETC_SELINUX, SEMANAGE_CONF, SysRoot};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const S5_TITLE: &str = "unconfined module";
pub const S7_TITLE: &str = "permissive domains";
pub const S11_TITLE: &str = "local modules";

/// libsemanage's `store-root` when semanage.conf does not set it.
pub const DEFAULT_STORE_ROOT: &str = "/var/lib/selinux";
/// The priority distribution modules are installed at; others are local.
const DISTRO_PRIORITY: u16 = 100;
/// Local module contents larger than this are not inspected.
const MAX_MODULE_BYTES: u64 = 8 << 20;

/// `store-root` from semanage.conf text (`key = value`, `#` comments, `[section]` blocks
/// ignored), or the default.
pub fn store_root(semanage_conf: Option<&str>) -> String {
    let mut root = None;
    let mut in_block = false;
    for line in semanage_conf.unwrap_or("").lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with("[end]") {
            in_block = false;
            continue;
        }
        if line.starts_with('[') {
            in_block = true;
            continue;
        }
        if in_block {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "store-root" {
                let v = v.trim().trim_matches('"');
                if !v.is_empty() {
                    root = Some(v.to_string());
                }
            }
        }
    }
    root.unwrap_or_else(|| DEFAULT_STORE_ROOT.to_string())
}

/// Which on-disk layout the store has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `modules/<priority>/<name>/` (libsemanage ≥ 2.4).
    Priorities,
    /// `modules/<name>.pp` (RHEL 6).
    Legacy,
}

/// One installed module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// `None` in the legacy layout.
    pub priority: Option<u16>,
    /// The module's directory (or `.pp` file).
    pub path: PathBuf,
}

/// The module store as found.
#[derive(Debug, Clone)]
pub struct Store {
    /// The `modules` directory under the root, when one was found.
    pub modules_dir: Option<PathBuf>,
    /// Same, as a path of the checked system (for messages).
    pub shown: String,
    pub layout: Layout,
    /// Where it was looked for (for a skip message).
    pub looked: Vec<String>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Enabled modules.
    pub modules: Vec<Module>,
    /// Disabled module names.
    pub disabled: BTreeSet<String>,
    /// The store's `active/` directory (`booleans.local`), under the root.
    pub active_dir: Option<PathBuf>,
}

impl Store {
    /// Find and list the store of policy `policy_type`.
    pub fn locate(root: &SysRoot, policy_type: &str) -> Store {
        let conf = read_input(&root.path(SEMANAGE_CONF));
        let store_root = store_root(conf.text());
        let etc = format!("/{ETC_SELINUX}/{policy_type}");
        let candidates = [
            (
                format!("{}/{policy_type}/active", store_root.trim_end_matches('/')),
                "modules",
                Layout::Priorities,
            ),
            (format!("{etc}/active"), "modules", Layout::Priorities),
            (format!("{etc}/modules/active"), "modules", Layout::Legacy),
        ];
        let mut store = Store {
            modules_dir: None,
            shown: String::new(),
            layout: Layout::Priorities,
            looked: Vec::new(),
            error: None,
            modules: Vec::new(),
            disabled: BTreeSet::new(),
            active_dir: None,
        };
        for (active, sub, layout) in candidates {
            let shown = format!("{active}/{sub}");
            store.looked.push(shown.clone());
            let dir = root.host(&active).join(sub);
            // Missing and unreadable differ: a store behind a root-only directory is there,
            // and not having read it is not the same as not having one.
            let unreadable = match std::fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => None,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    Some(crate::sys::describe_io(&e))
                }
                _ => continue,
            };
            store.modules_dir = Some(dir.clone());
            store.active_dir = Some(root.host(&active));
            store.shown = shown;
            store.layout = layout;
            store.error = unreadable;
            if store.error.is_none() {
                if let Err(e) = store.list(&dir) {
                    store.error = Some(e);
                }
            }
            break;
        }
        store
    }

    fn list(&mut self, dir: &Path) -> Result<(), String> {
        let entries = read_dir_names(dir)?;
        match self.layout {
            Layout::Legacy => {
                for name in entries {
                    if let Some(m) = name.strip_suffix(".pp.disabled") {
                        self.disabled.insert(m.to_string());
                    } else if let Some(m) = name.strip_suffix(".pp") {
                        self.modules.push(Module {
                            name: m.to_string(),
                            priority: None,
                            path: dir.join(&name),
                        });
                    }
                }
            }
            Layout::Priorities => {
                for entry in entries {
                    let sub = dir.join(&entry);
                    if entry == "disabled" {
                        self.disabled.extend(read_dir_names(&sub)?);
                    } else if let Ok(priority) = entry.parse::<u16>() {
                        if !sub.is_dir() {
                            continue;
                        }
                        for name in read_dir_names(&sub)? {
                            self.modules.push(Module {
                                path: sub.join(&name),
                                name,
                                priority: Some(priority),
                            });
                        }
                    }
                }
            }
        }
        // A disabled module is not active at any priority.
        let disabled = self.disabled.clone();
        self.modules.retain(|m| !disabled.contains(&m.name));
        Ok(())
    }

    /// A skip check when the store is missing or unreadable.
    fn unusable(&self, id: &'static str, title: &'static str) -> Option<Check> {
        if self.modules_dir.is_none() {
            return Some(Check::new(
                id,
                title,
                CheckStatus::Skip,
                format!(
                    "no module store found (looked in {})",
                    self.looked.join(", ")
                ),
            ));
        }
        self.error.as_ref().map(|e| {
            Check::cannot_read(
                id,
                title,
                format!(
                    "cannot read the module store {}: {e} (needs root)",
                    self.shown
                ),
            )
        })
    }

    /// Modules installed at a priority other than the distribution's (and legacy-layout
    /// modules are all treated as distribution ones, except `permissive_*`).
    fn local_modules(&self) -> Vec<&Module> {
        self.modules
            .iter()
            .filter(|m| match m.priority {
                Some(p) => p != DISTRO_PRIORITY,
                None => m.name.starts_with("permissive_"),
            })
            .collect()
    }

    /// Customised permissive types: `permissive_<type>` modules, and `typepermissive`
    /// statements in other local modules. Sorted, unique.
    pub fn permissive_types(&self) -> Vec<String> {
        let mut set = BTreeSet::new();
        for m in self.local_modules() {
            if let Some(t) = m.name.strip_prefix("permissive_") {
                set.insert(t.to_string());
            } else if let Some(text) = module_text(m) {
                set.extend(typepermissive_statements(&text));
            }
        }
        set.into_iter().collect()
    }

    /// S5: the `unconfined` module, which provides `unconfined_service_t`.
    pub fn unconfined_check(
        &self,
        policy_type: &str,
        observed: &[String],
        permissive: &[String],
    ) -> Check {
        if let Some(c) = self.unusable("S5", S5_TITLE) {
            return c;
        }
        let check = |status, msg: String| Check::new("S5", S5_TITLE, status, msg);
        let confined: Vec<&String> = observed
            .iter()
            .filter(|t| !super::UNCONFINED_AGENT_TYPES.contains(&t.as_str()))
            .collect();
        let all_permissive =
            !confined.is_empty() && confined.iter().all(|t| permissive.contains(t));
        let permissive_remedy = confined
            .first()
            .map(|t| format!("semanage permissive -a {}", shell_quote(t)));
        let installed: Vec<String> = self
            .modules
            .iter()
            .filter(|m| m.name == "unconfined")
            .map(|m| m.priority.map_or("legacy".to_string(), |p| p.to_string()))
            .collect();
        if !installed.is_empty() {
            return check(
                CheckStatus::Pass,
                format!(
                    "the unconfined module is installed (priority {}) and enabled: unconfined_service_t exists",
                    installed.join(", ")
                ),
            );
        }
        let disabled = self.disabled.contains("unconfined");
        let what = if disabled {
            format!(
                "the unconfined module is disabled ({}/disabled/unconfined): unconfined_service_t does not exist, so the agent cannot run unconfined",
                self.shown
            )
        } else {
            format!(
                "the unconfined module is not installed in {}: unconfined_service_t does not exist, so the agent cannot run unconfined",
                self.shown
            )
        };
        if all_permissive {
            let types: Vec<&str> = confined.iter().map(|t| t.as_str()).collect();
            return check(
                CheckStatus::Warn,
                format!(
                    "{what}; the agent's domain {} is permissive instead",
                    types.join(", ")
                ),
            );
        }
        if policy_type == "mls" && !disabled {
            // Expected under mls (S4 already says so): the agent must be made permissive.
            let c = check(CheckStatus::Warn, format!("{what} (as always under mls)"));
            return match permissive_remedy {
                Some(r) => c.with_remedy(r),
                None => c,
            };
        }
        let c = check(CheckStatus::Fail, what);
        if disabled {
            // Least privilege when the module was disabled on purpose: the agent's own domain.
            let mut c = c.with_remedy("semodule -e unconfined");
            if let Some(r) = permissive_remedy {
                c.details
                    .push(format!("if unconfined stays disabled on purpose: {r}"));
            }
            c
        } else {
            match permissive_remedy {
                Some(r) => c.with_remedy(r),
                None => c,
            }
        }
    }

    /// S7: customised permissive domains (information; S6 and S9 use them).
    pub fn permissive_check(&self, permissive: &[String], observed: &[String]) -> Check {
        if let Some(c) = self.unusable("S7", S7_TITLE) {
            return c;
        }
        let mut msg = if permissive.is_empty() {
            "no customised permissive domains".to_string()
        } else {
            format!("customised permissive domains: {}", permissive.join(", "))
        };
        let agent: Vec<&String> = observed.iter().filter(|t| permissive.contains(t)).collect();
        if !agent.is_empty() {
            let names: Vec<&str> = agent.iter().map(|s| s.as_str()).collect();
            msg.push_str(&format!(
                " (the agent's domain {} is among them: an exclusion)",
                names.join(", ")
            ));
        }
        if self.modules.iter().any(|m| m.name == "permissivedomains") {
            msg.push_str("; the policy also has built-in ones (semanage permissive -l)");
        }
        Check::new("S7", S7_TITLE, CheckStatus::Pass, msg)
    }

    /// S11: local modules, and which of them mention the agent.
    pub fn local_modules_check(&self, observed: &[String]) -> Check {
        if let Some(c) = self.unusable("S11", S11_TITLE) {
            return c;
        }
        let mut needles: Vec<String> =
            vec!["waagent".into(), "walinuxagent".into(), "var_lib_t".into()];
        needles.extend(
            observed
                .iter()
                .filter(|t| !super::UNCONFINED_AGENT_TYPES.contains(&t.as_str()))
                .cloned(),
        );
        let mut shown = Vec::new();
        let mut details = Vec::new();
        let mut mentioning = Vec::new();
        for m in self.local_modules() {
            if m.name.starts_with("permissive_") {
                continue;
            }
            let prio = m.priority.map_or(String::new(), |p| format!(" at {p}"));
            let text = module_text(m);
            let hits: Vec<&str> = match &text {
                Some(t) => {
                    let lower = t.to_ascii_lowercase();
                    needles
                        .iter()
                        .filter(|n| lower.contains(&n.to_ascii_lowercase()))
                        .map(|n| n.as_str())
                        .collect()
                }
                None => Vec::new(),
            };
            if hits.is_empty() {
                shown.push(format!("{}{prio}", m.name));
            } else {
                mentioning.push(m.name.clone());
                shown.push(format!("{}{prio} (mentions {})", m.name, hits.join(", ")));
                if let Some(t) = &text {
                    details.extend(
                        t.lines()
                            .filter(|l| {
                                let l = l.to_ascii_lowercase();
                                needles.iter().any(|n| l.contains(&n.to_ascii_lowercase()))
                            })
                            .take(5)
                            .map(|l| format!("{}: {}", m.name, l.trim())),
                    );
                }
            }
            if text.is_none() {
                details.push(format!("{}: contents not readable", m.name));
            }
        }
        let msg = if shown.is_empty() {
            "no local modules besides permissive ones".to_string()
        } else {
            format!("local modules: {}", shown.join(", "))
        };
        Check::new("S11", S11_TITLE, CheckStatus::Pass, msg).with_details(details)
    }
}

/// Names in a directory, sorted.
fn read_dir_names(dir: &Path) -> Result<Vec<String>, String> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| format!("'{}': {}", dir.display(), crate::sys::describe_io(&e)))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The module's CIL text: `cil` in its directory (bzip2 or plain), or a legacy `.pp` file
/// read as bytes (only grep-able).
pub fn module_text(m: &Module) -> Option<String> {
    let file = if m.path.is_dir() {
        m.path.join("cil")
    } else {
        m.path.clone()
    };
    let meta = std::fs::metadata(&file).ok()?;
    if meta.len() > MAX_MODULE_BYTES {
        return None;
    }
    let bytes = std::fs::read(&file).ok()?;
    decode_module(&bytes)
}

/// Plain text, or bzip2 (magic `BZh`) decompressed (bounded).
pub fn decode_module(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"BZh") {
        let mut out = Vec::new();
        bzip2::read::MultiBzDecoder::new(bytes)
            .take(MAX_MODULE_BYTES)
            .read_to_end(&mut out)
            .ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    } else {
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// The types of `(typepermissive T)` statements in CIL text.
pub fn typepermissive_statements(cil: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = cil;
    while let Some(i) = rest.find("(typepermissive") {
        rest = &rest[i + "(typepermissive".len()..];
        let ty: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if !ty.is_empty() {
            out.push(ty);
        }
    }
    out
}

/// `booleans.local` of the store (offline S10): `name=value` lines.
pub fn local_boolean(store: &Store, name: &str) -> Option<bool> {
    let dir = store.active_dir.as_ref()?;
    let text = match read_input(&dir.join("booleans.local")) {
        Input::Text(t) => t,
        _ => return None,
    };
    text.lines().rev().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == name).then(|| matches!(v.trim(), "1" | "true" | "on"))
    })
}

/// A `BTreeMap` of module name to priorities, for tests and debugging.
pub fn module_map(store: &Store) -> BTreeMap<String, Vec<Option<u16>>> {
    let mut map: BTreeMap<String, Vec<Option<u16>>> = BTreeMap::new();
    for m in &store.modules {
        map.entry(m.name.clone()).or_default().push(m.priority);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_root_from_semanage_conf() {
        assert_eq!(store_root(None), DEFAULT_STORE_ROOT);
        let conf = "# comment\nmodule-store = direct\n[setfiles]\nstore-root = /nope\n[end]\nstore-root = /etc/selinux\n";
        assert_eq!(store_root(Some(conf)), "/etc/selinux");
        assert_eq!(store_root(Some("store-root=/x/y\n")), "/x/y");
    }

    #[test]
    fn typepermissive_and_bzip2() {
        assert_eq!(
            typepermissive_statements(
                "(typepermissive initrc_t)\n( typepermissive x)(typepermissive  waagent_t )"
            ),
            vec!["initrc_t", "waagent_t"]
        );
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        std::io::Write::write_all(&mut enc, b"(typepermissive initrc_t)").unwrap();
        let bz = enc.finish().unwrap();
        assert!(bz.starts_with(b"BZh"));
        assert_eq!(
            decode_module(&bz).as_deref(),
            Some("(typepermissive initrc_t)")
        );
        assert_eq!(decode_module(b"BZh9garbage"), None);
    }

    #[test]
    fn both_layouts_and_disabled_modules() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let m = dir.path().join("etc/selinux/targeted/active/modules");
        std::fs::create_dir_all(m.join("100/unconfined")).unwrap();
        std::fs::create_dir_all(m.join("100/base")).unwrap();
        std::fs::create_dir_all(m.join("400/permissive_waagent_t")).unwrap();
        std::fs::create_dir_all(m.join("disabled")).unwrap();
        std::fs::write(m.join("disabled/unconfined"), b"").unwrap();
        let store = Store::locate(&root, "targeted");
        assert_eq!(store.shown, "/etc/selinux/targeted/active/modules");
        assert!(store.disabled.contains("unconfined"));
        assert!(!module_map(&store).contains_key("unconfined"));
        assert_eq!(store.permissive_types(), vec!["waagent_t"]);

        let legacy = dir.path().join("etc/selinux/mls/modules/active/modules");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("unconfined.pp.disabled"), b"").unwrap();
        std::fs::write(legacy.join("apache.pp"), b"").unwrap();
        let store = Store::locate(&root, "mls");
        assert_eq!(store.layout, Layout::Legacy);
        assert!(store.disabled.contains("unconfined"));
        assert!(module_map(&store).contains_key("apache"));
    }
}
