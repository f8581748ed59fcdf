//! E6–E7: the VMSnapshot extension's own configuration. E6 is `/etc/azure/vmbackup.conf`
//! (INI read with Python's ConfigParser: `[SnapshotThread] timeout`, `MountsToSkip`, …); E7 is
//! `/etc/azure/VMSnapshotScriptPluginConfig.json` (pre/post scripts, repair.md §5.4), whose
//! permission rules the extension enforces: config and scripts owned by root with no
//! group/other permission bits, else "InsufficientPermission" and the backup fails.

use crate::mount::MountTable;
use crate::report::model::{Check, CheckStatus};
use crate::root::{AZURE_SCRIPT_PLUGIN_CONF, AZURE_VMBACKUP_CONF, MOUNTINFO, SysRoot};
use crate::selinux::{Input, read_input, shell_quote};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const E6: &str = "E6";
pub const E7: &str = "E7";
const E6_TITLE: &str = "vmbackup.conf";
const E7_TITLE: &str = "pre/post-script configuration";

/// The extension caps `timeoutInSeconds` at this many seconds.
pub const MAX_SCRIPT_TIMEOUT: i64 = 1800;

/// One `key = value` of an INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The section it is in (`SnapshotThread`).
    pub section: String,
    /// The key, lower-cased (ConfigParser's `optionxform`).
    pub key: String,
    /// The value, trimmed; continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// An INI file read as Python's ConfigParser reads it: `[section]` headers, `key = value` or
/// `key: value`, `#`/`;` comment lines, indented continuation lines. Lines it would reject
/// are listed as `(line number, why)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub entries: Vec<IniEntry>,
    pub errors: Vec<(usize, String)>,
}

impl Ini {
    /// The value of `key` (any case) in `section`; the last one wins as in ConfigParser's
    /// non-strict mode.
    pub fn get(&self, section: &str, key: &str) -> Option<&IniEntry> {
        let key = key.to_ascii_lowercase();
        self.entries
            .iter()
            .rev()
            .find(|e| e.section == section && e.key == key)
    }
}

/// Parse INI text (never panics).
pub fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::default();
    let mut section: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented {
            if let Some(last) = ini.entries.last_mut() {
                if last.line < line_no && section.as_deref() == Some(last.section.as_str()) {
                    last.value.push('\n');
                    last.value.push_str(trimmed);
                    continue;
                }
            }
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            continue;
        }
        let Some(current) = &section else {
            ini.errors
                .push((line_no, "a key before any [section] header".into()));
            continue;
        };
        let Some(split) = trimmed.find(['=', ':']) else {
            ini.errors
                .push((line_no, format!("not `key = value`: {}", shorten(trimmed))));
            continue;
        };
        let key = trimmed[..split].trim();
        if key.is_empty() {
            ini.errors.push((line_no, "an empty key".into()));
            continue;
        }
        ini.entries.push(IniEntry {
            section: current.clone(),
            key: key.to_ascii_lowercase(),
            value: trimmed[split + 1..].trim().to_string(),
            line: line_no,
        });
    }
    ini
}

/// At most 60 characters of `s`, for messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Ownership and permission problems of a file the extension reads, as it judges them:
/// owned by root, no group/other bits (`InsufficientPermission`).
fn permission_problems(meta: &std::fs::Metadata, shown: &str, want: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if meta.uid() != 0 {
        problems.push(format!("{shown} is owned by uid {}, not root", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        problems.push(format!(
            "{shown} has mode {mode:04o}: group/other permissions must be 0 ({want})"
        ));
    }
    problems
}

/// `chown root:root P && chmod MODE P` for each path (under the root).
fn fix_permissions(root: &SysRoot, paths: &[(String, &str)]) -> String {
    paths
        .iter()
        .map(|(p, mode)| {
            let q = shell_quote(&root.host(p).to_string_lossy());
            format!("chown root:root {q} && chmod {mode} {q}")
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Directories through which a user other than root could replace `absolute` (a file as the
/// checked system names it), with why: owned by another uid, or writable by group or others
/// without the sticky bit. Both the directories of the name and, when it is (or passes
/// through) a symbolic link, those of where it leads are judged; the root directory of
/// `root` and what lies above it are not (a fixture's location is the caller's).
fn replaceable_by_others(root: &SysRoot, absolute: &str) -> Vec<(String, String)> {
    let base = root.base();
    let lexical = Path::new(absolute.trim_start_matches('/')).to_path_buf();
    let mut candidates: Vec<PathBuf> = lexical.ancestors().skip(1).map(Path::to_path_buf).collect();
    if let Ok(real) = std::fs::canonicalize(root.host(absolute)) {
        if let Ok(rel) = real.strip_prefix(base) {
            candidates.extend(rel.ancestors().skip(1).map(Path::to_path_buf));
        }
    }
    let mut found: Vec<(String, String)> = Vec::new();
    for rel in candidates {
        if rel.as_os_str().is_empty() {
            continue;
        }
        let shown = format!("/{}", rel.display());
        if found.iter().any(|(d, _)| *d == shown) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(base.join(&rel)) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        let why = if meta.uid() != 0 {
            format!("owned by uid {}", meta.uid())
        } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            format!("writable by group or others (mode {mode:04o})")
        } else {
            continue;
        };
        found.push((shown, why));
    }
    found
}

/// E6.
pub fn vmbackup_conf(root: &SysRoot, azure: bool) -> Check {
    let c = |status, msg: String| Check::new(E6, E6_TITLE, status, msg);
    let path = root.path(AZURE_VMBACKUP_CONF);
    let shown = format!("/{AZURE_VMBACKUP_CONF}");
    let text = match read_input(&path) {
        Input::Missing if !azure => {
            return c(
                CheckStatus::Skip,
                "not an Azure VM, and no /etc/azure/vmbackup.conf".into(),
            );
        }
        Input::Missing => {
            return c(
                CheckStatus::Pass,
                format!(
                    "no {shown}: the extension's defaults apply (60 s self-thaw timeout, no MountsToSkip)"
                ),
            );
        }
        Input::Unreadable(why) => {
            return Check::cannot_read(E6, E6_TITLE, format!("cannot read {shown}: {why}"));
        }
        Input::Text(t) => t,
    };
    let ini = parse_ini(&text);
    let mut problems: Vec<String> = ini
        .errors
        .iter()
        .map(|(n, why)| format!("{shown} line {n}: {why} (Python's ConfigParser rejects the file)"))
        .collect();
    let mut details = Vec::new();
    for key in ["timeout", "SafeFreezeWaitInSeconds"] {
        if let Some(e) = ini.get("SnapshotThread", key) {
            match e.value.parse::<u64>() {
                Ok(n) if n > 0 => details.push(format!("[SnapshotThread] {key} = {n}")),
                _ => problems.push(format!(
                    "{shown} line {}: {key} = {:?} is not a positive number of seconds",
                    e.line, e.value
                )),
            }
        }
    }
    let skip = crate::freeze::skip::azure_mounts_to_skip(&text);
    if !skip.is_empty() {
        details.push(format!(
            "[SnapshotThread] MountsToSkip = {}",
            skip.join(", ")
        ));
        if let Input::Text(mi) = read_input(&root.path(MOUNTINFO)) {
            if let Ok(table) = MountTable::from_mountinfo(mi.as_bytes()) {
                for p in &skip {
                    if table.by_mount_point(Path::new(p)).is_none() {
                        problems.push(format!(
                            "MountsToSkip lists {p}, which is not a mount point (entries are exact mount-point paths; a typo means the mount is frozen)"
                        ));
                    }
                }
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            problems.push(format!(
                "{shown} can be changed by a user other than root (uid {}, mode {:04o}): anyone could make the backup skip mounts",
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
    }
    if problems.is_empty() {
        return c(CheckStatus::Pass, format!("{shown} is valid")).with_details(details);
    }
    let remedy = format!(
        "chown root:root {q} && chmod 644 {q} && vi {q}",
        q = shell_quote(&path.to_string_lossy())
    );
    c(CheckStatus::Warn, format!("{shown}: {}", problems[0]))
        .with_remedy(remedy)
        .with_details(problems.into_iter().chain(details).collect())
}

/// A JSON value's integer, if it is one (`30`, or `"30"` as some configs write it).
fn as_int(v: &serde_json::Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A JSON value's boolean (`true`, or `"true"`/`"True"` as the Python extension accepts).
fn as_bool(v: &serde_json::Value) -> Option<bool> {
    v.as_bool().or_else(|| match v.as_str()?.trim() {
        s if s.eq_ignore_ascii_case("true") => Some(true),
        s if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

/// E7.
pub fn script_plugin_conf(root: &SysRoot, azure: bool) -> Check {
    let c = |status, msg: String| Check::new(E7, E7_TITLE, status, msg);
    let path = root.path(AZURE_SCRIPT_PLUGIN_CONF);
    let shown = format!("/{AZURE_SCRIPT_PLUGIN_CONF}");
    let text = match read_input(&path) {
        Input::Missing => {
            let why = if azure {
                "no pre/post scripts configured: snapshots run without application scripts"
            } else {
                "not an Azure VM, and no pre/post-script configuration"
            };
            return c(CheckStatus::Skip, format!("no {shown}: {why}"));
        }
        Input::Unreadable(why) => {
            return Check::cannot_read(E7, E7_TITLE, format!("cannot read {shown}: {why}"));
        }
        Input::Text(t) => t,
    };
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut details = Vec::new();
    let mut chmods: Vec<(String, &str)> = Vec::new();
    if let Ok(meta) = std::fs::metadata(&path) {
        let p = permission_problems(&meta, &shown, "mode 600");
        if !p.is_empty() {
            chmods.push((shown.clone(), "600"));
        }
        fails.extend(p);
    }
    // Directories a user could replace the configuration or a script through (the
    // extension does not look, but a user who can swap them runs code as root).
    let mut dir_warns = Vec::new();
    let mut dir_fixes: Vec<String> = Vec::new();
    let mut note_dirs = |what: &str, absolute: &str| {
        for (dir, why) in replaceable_by_others(root, absolute) {
            if dir_fixes.contains(&dir) {
                continue;
            }
            dir_warns.push(format!(
                "{dir} is {why}: a user other than root can replace {what} that the extension runs as root"
            ));
            dir_fixes.push(dir);
        }
    };
    note_dirs(&format!("{shown} (and so the scripts)"), &shown);
    let doc: serde_json::Value = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return c(
                CheckStatus::Fail,
                format!(
                    "{shown} is not valid JSON ({e}): the pre-script fails and the backup with it"
                ),
            )
            .with_remedy(format!(
                "python3 -m json.tool {}",
                shell_quote(&path.to_string_lossy())
            ))
            .with_details(fails);
        }
    };
    let Some(obj) = doc.as_object() else {
        return c(
            CheckStatus::Fail,
            format!("{shown} is not a JSON object: the pre-script fails and the backup with it"),
        )
        .with_details(fails);
    };
    if let Some(name) = obj.get("pluginName").and_then(|v| v.as_str()) {
        if name != "ScriptRunner" {
            warns.push(format!(
                "pluginName is {name:?}: the extension expects \"ScriptRunner\""
            ));
        }
    }
    for (key, which) in [("preScriptLocation", "pre"), ("postScriptLocation", "post")] {
        let Some(v) = obj.get(key) else { continue };
        let Some(loc) = v.as_str() else {
            fails.push(format!("{key} is not a string"));
            continue;
        };
        if loc.trim().is_empty() {
            continue;
        }
        let script = root.host(loc);
        match std::fs::metadata(&script) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fails.push(format!(
                    "{key} {loc} does not exist: the {which}-script fails"
                ));
            }
            Err(e) => warns.push(format!(
                "{key} {loc} cannot be looked at: {}",
                crate::sys::describe_io(&e)
            )),
            Ok(m) if !m.is_file() => {
                fails.push(format!("{key} {loc} is not a regular file"));
            }
            Ok(m) => {
                note_dirs(&format!("the {which}-script {loc}"), loc);
                let p = permission_problems(&m, loc, "mode 700");
                if !p.is_empty() {
                    chmods.push((loc.to_string(), "700"));
                }
                fails.extend(p);
                details.push(format!("{which}-script: {loc}"));
            }
        }
        let params = format!("{which}ScriptParams");
        if let Some(p) = obj.get(&params) {
            let ok = p
                .as_array()
                .is_some_and(|a| a.iter().all(serde_json::Value::is_string));
            if !ok {
                warns.push(format!("{params} is not a list of strings"));
            }
        }
    }
    match obj.get("timeoutInSeconds") {
        None => details.push("timeoutInSeconds: 30 (default)".into()),
        Some(v) => match as_int(v) {
            Some(t) if (1..=MAX_SCRIPT_TIMEOUT).contains(&t) => {
                details.push(format!("timeoutInSeconds: {t}"))
            }
            Some(t) => warns.push(format!(
                "timeoutInSeconds is {t}, outside 1..{MAX_SCRIPT_TIMEOUT} (the extension caps it at {MAX_SCRIPT_TIMEOUT})"
            )),
            None => warns.push(format!("timeoutInSeconds is not a number: {v}")),
        },
    }
    for key in ["preScriptNoOfRetries", "postScriptNoOfRetries"] {
        if let Some(v) = obj.get(key) {
            if as_int(v).is_none_or(|n| n < 0) {
                warns.push(format!("{key} is not a non-negative number: {v}"));
            }
        }
    }
    if let Some(v) = obj.get("ScriptsExecutionPollTimeSeconds") {
        if as_int(v).is_none_or(|n| !(1..=5).contains(&n)) {
            warns.push(format!(
                "ScriptsExecutionPollTimeSeconds is {v}, outside 1..5"
            ));
        }
    }
    match obj.get("fsFreezeEnabled").map(as_bool) {
        Some(Some(false)) => warns.push(
            "fsFreezeEnabled is false: filesystems are not frozen, so snapshots are only crash-consistent"
                .into(),
        ),
        Some(None) => warns.push("fsFreezeEnabled is not true or false".into()),
        _ => {}
    }
    if let Some(v) = obj.get("continueBackupOnFailure") {
        if as_bool(v) == Some(true) {
            details.push("continueBackupOnFailure: a failed pre-script falls back to a file-system-consistent backup".into());
        }
    }
    if !fails.is_empty() {
        let perms = !chmods.is_empty();
        let mut check = c(
            CheckStatus::Fail,
            format!(
                "{}{}",
                fails[0],
                if perms {
                    " (the extension stops with InsufficientPermission)"
                } else {
                    ""
                }
            ),
        );
        check = if perms {
            check.with_remedy(fix_permissions(root, &chmods))
        } else {
            check.with_remedy(format!("vi {}", shell_quote(&path.to_string_lossy())))
        };
        return check.with_details(
            fails
                .into_iter()
                .chain(dir_warns)
                .chain(warns)
                .chain(details)
                .collect(),
        );
    }
    if !dir_warns.is_empty() {
        let remedy = dir_fixes
            .iter()
            .map(|d| {
                let q = shell_quote(&root.host(d).to_string_lossy());
                format!("chown root:root {q} && chmod go-w {q}")
            })
            .collect::<Vec<_>>()
            .join(" && ");
        return c(CheckStatus::Warn, dir_warns[0].clone())
            .with_remedy(remedy)
            .with_details(dir_warns.into_iter().chain(warns).chain(details).collect());
    }
    if !warns.is_empty() {
        let remedy = format!("vi {}", shell_quote(&path.to_string_lossy()));
        return c(CheckStatus::Warn, format!("{shown}: {}", warns[0]))
            .with_remedy(remedy)
            .with_details(warns.into_iter().chain(details).collect());
    }
    c(
        CheckStatus::Pass,
        format!("{shown} is valid, root-owned and private; its scripts exist and are root-only"),
    )
    .with_details(details)
}
