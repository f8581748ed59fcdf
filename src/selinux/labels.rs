//! S8: the `security.selinux` labels under `/var/lib/waagent` (and of `/usr/sbin/waagent`)
//! against what the policy's `file_contexts` (+ `.homedirs`, `.local`, `.subs*`) expect —
//! what `restorecon -Rn` would report, compared by type only.

use super::file_contexts::{FileContexts, FileType, context_type};
use super::{Input, read_input};
use crate::report::{Check, CheckStatus};
use crate::root::{ETC_SELINUX, SysRoot, WAAGENT_BIN, WAAGENT_LIB_DIR};
use crate::sys::xattr::{XattrError, selinux_label};
use std::os::unix::fs::MetadataExt;

pub const S8_TITLE: &str = "labels under /var/lib/waagent";

/// Types that mean "never labelled properly" (selinux.md §8 S8).
pub const BAD_TYPES: [&str; 7] = [
    "unlabeled_t",
    "file_t",
    "default_t",
    "user_tmp_t",
    "tmp_t",
    "user_home_t",
    "admin_home_t",
];
/// At most this many entries are checked under `/var/lib/waagent`.
const MAX_ENTRIES: usize = 20_000;
/// Examples listed per problem.
const MAX_EXAMPLES: usize = 10;

/// Load the policy's file contexts from `<root>/etc/selinux/<type>/contexts/files/`.
pub fn load_file_contexts(root: &SysRoot, policy_type: &str) -> Result<FileContexts, String> {
    let dir = root
        .path(ETC_SELINUX)
        .join(policy_type)
        .join("contexts/files");
    let shown = format!("/{ETC_SELINUX}/{policy_type}/contexts/files/file_contexts");
    let base = match read_input(&dir.join("file_contexts")) {
        Input::Text(t) => t,
        Input::Missing => return Err(format!("{shown} is missing")),
        Input::Unreadable(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let opt = |suffix: &str| {
        read_input(&dir.join(format!("file_contexts.{suffix}")))
            .text()
            .map(str::to_string)
    };
    let (homedirs, local, subs_dist, subs) =
        (opt("homedirs"), opt("local"), opt("subs_dist"), opt("subs"));
    FileContexts::from_texts(
        &base,
        homedirs.as_deref(),
        local.as_deref(),
        subs_dist.as_deref(),
        subs.as_deref(),
    )
    .map_err(|e| format!("{shown}: {e}"))
}

/// One labelled path found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    path: String,
    actual: Option<String>,
    expected: Option<String>,
}

impl Problem {
    fn describe(&self) -> String {
        let actual = self.actual.as_deref().unwrap_or("no label");
        match &self.expected {
            Some(e) => format!("{}: {actual}, expected {e}", self.path),
            None => format!("{}: {actual}", self.path),
        }
    }
}

/// The paths to check: `/var/lib/waagent` and everything under it (no symlink followed, at
/// most [`MAX_ENTRIES`]), then `/usr/sbin/waagent` when present. `Err` names a directory
/// that could not be listed for lack of rights: a partial walk would pass unseen files.
fn walk(root: &SysRoot) -> Result<(Vec<(String, u32)>, bool), String> {
    let mut out = Vec::new();
    let mut truncated = false;
    let mut stack = vec![WAAGENT_LIB_DIR.to_string()];
    while let Some(path) = stack.pop() {
        if out.len() >= MAX_ENTRIES {
            truncated = true;
            break;
        }
        let Ok(meta) = std::fs::symlink_metadata(root.host(&path)) else {
            continue;
        };
        out.push((path.clone(), meta.mode()));
        if meta.is_dir() {
            match std::fs::read_dir(root.host(&path)) {
                Ok(rd) => {
                    let mut names: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    stack.extend(names.into_iter().rev().map(|n| format!("{path}/{n}")));
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(format!(
                        "cannot list {path}: {} (needs root)",
                        crate::sys::describe_io(&e)
                    ));
                }
                Err(_) => {}
            }
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(root.host(WAAGENT_BIN)) {
        out.push((WAAGENT_BIN.to_string(), meta.mode()));
    }
    Ok((out, truncated))
}

/// S8.
pub fn check(root: &SysRoot, policy_type: &str) -> Check {
    let c = |status, msg: String| Check::new("S8", S8_TITLE, status, msg);
    match std::fs::symlink_metadata(root.host(WAAGENT_LIB_DIR)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Check::cannot_read(
                "S8",
                S8_TITLE,
                format!(
                    "cannot look at {WAAGENT_LIB_DIR}: {} (needs root)",
                    crate::sys::describe_io(&e)
                ),
            );
        }
        Err(_) => {
            return c(
                CheckStatus::Skip,
                format!("{WAAGENT_LIB_DIR} does not exist (the agent is not installed here)"),
            );
        }
    }
    let fc = load_file_contexts(root, policy_type);
    // Without file_contexts only broken labels can be found: never "as the policy expects".
    let fc_unreadable = fc.is_err()
        && matches!(
            read_input(
                &root
                    .path(ETC_SELINUX)
                    .join(policy_type)
                    .join("contexts/files/file_contexts")
            ),
            Input::Unreadable(_)
        );
    let mut notes = Vec::new();
    let local_rules: Vec<String> = match &fc {
        Ok(fc) => fc
            .local_rules_for(WAAGENT_LIB_DIR)
            .iter()
            .map(|s| {
                format!(
                    "local rule '{}' -> {} ({}:{})",
                    s.pattern,
                    s.context.as_deref().unwrap_or("<<none>>"),
                    s.source,
                    s.line
                )
            })
            .collect(),
        Err(e) => {
            notes.push(format!("expected labels unknown: {e}"));
            Vec::new()
        }
    };
    let (paths, truncated) = match walk(root) {
        Ok(w) => w,
        Err(e) => return Check::cannot_read("S8", S8_TITLE, e),
    };
    let mut bad = Vec::new();
    let mut differ = Vec::new();
    let mut ok = 0usize;
    let mut no_rule = 0usize;
    for (path, mode) in &paths {
        let label = match selinux_label(&root.host(path)) {
            Ok(l) => l,
            Err(XattrError::NotSupported { .. }) => {
                return c(
                    CheckStatus::Skip,
                    format!(
                        "the filesystem holding {path} has no extended attributes, so no labels to check"
                    ),
                );
            }
            Err(e) => {
                return Check::cannot_read("S8", S8_TITLE, format!("cannot read labels: {e}"));
            }
        };
        let actual_type = label.as_deref().and_then(context_type).map(str::to_string);
        let expected = fc
            .as_ref()
            .ok()
            .and_then(|fc| fc.lookup(path, FileType::from_mode(*mode)));
        let expected_ctx = expected.and_then(|s| s.context.clone());
        let expected_type = expected.and_then(|s| s.context_type()).map(str::to_string);
        let problem = Problem {
            path: path.clone(),
            actual: label.clone(),
            expected: expected_ctx,
        };
        match actual_type.as_deref() {
            None => bad.push(problem),
            Some(t) if BAD_TYPES.contains(&t) => bad.push(problem),
            Some(t) => match expected_type.as_deref() {
                Some(e) if e != t => differ.push(problem),
                Some(_) => ok += 1,
                None => {
                    no_rule += usize::from(fc.is_ok() && expected.is_none());
                    ok += 1;
                }
            },
        }
    }
    let checked = paths.len();
    let lib_problem = bad
        .iter()
        .chain(&differ)
        .any(|p| p.path.starts_with(WAAGENT_LIB_DIR));
    let bin_problem = bad.iter().chain(&differ).any(|p| p.path == WAAGENT_BIN);
    let targets = match (lib_problem, bin_problem) {
        (true, true) => format!("{WAAGENT_LIB_DIR} {WAAGENT_BIN}"),
        (false, true) => WAAGENT_BIN.to_string(),
        _ => WAAGENT_LIB_DIR.to_string(),
    };
    let remedy = format!("restorecon -Rv {targets}");
    let mut details: Vec<String> = local_rules.clone();
    details.extend(bad.iter().take(MAX_EXAMPLES).map(Problem::describe));
    details.extend(differ.iter().take(MAX_EXAMPLES).map(Problem::describe));
    if truncated {
        notes.push(format!("only the first {MAX_ENTRIES} entries were checked"));
    }
    if no_rule > 0 {
        notes.push(format!("{no_rule} without a matching file_contexts rule"));
    }
    let local_note = if local_rules.is_empty() {
        String::new()
    } else {
        format!(
            "; a local fcontext rule covers {WAAGENT_LIB_DIR} (an exclusion customisation exists)"
        )
    };
    let note_tail = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    if !bad.is_empty() {
        let mut kinds: Vec<String> = Vec::new();
        let missing = bad.iter().filter(|p| p.actual.is_none()).count();
        if missing > 0 {
            kinds.push(format!("{missing} without a label"));
        }
        let mut by_type: std::collections::BTreeMap<String, usize> = Default::default();
        for p in bad.iter().filter(|p| p.actual.is_some()) {
            let t = p.actual.as_deref().and_then(context_type).unwrap_or("?");
            *by_type.entry(t.to_string()).or_default() += 1;
        }
        kinds.extend(by_type.iter().map(|(t, n)| format!("{n} {t}")));
        let differ_tail = if differ.is_empty() {
            String::new()
        } else {
            format!(", {} more differ from the policy", differ.len())
        };
        return c(
            CheckStatus::Fail,
            format!(
                "{} of {checked} entries have broken labels ({}){differ_tail}: confined and unconfined domains alike are denied{local_note}{note_tail}",
                bad.len(),
                kinds.join(", ")
            ),
        )
        .with_remedy(remedy)
        .with_details(details);
    }
    if !differ.is_empty() {
        let first = &differ[0];
        let actual_t = first
            .actual
            .as_deref()
            .and_then(context_type)
            .unwrap_or("?");
        let custom = if local_rules.is_empty() {
            format!(
                "; to keep a custom type instead: semanage fcontext -a -t {actual_t} '{WAAGENT_LIB_DIR}(/.*)?' && restorecon -Rv {WAAGENT_LIB_DIR}"
            )
        } else {
            "; the local rule was added but restorecon was not run".to_string()
        };
        return c(
            CheckStatus::Warn,
            format!(
                "{} of {checked} entries differ from the policy: restorecon would change them (dry run: restorecon -Rnv {targets}){custom}{note_tail}",
                differ.len()
            ),
        )
        .with_remedy(remedy)
        .with_details(details);
    }
    if let Err(e) = &fc {
        if fc_unreadable {
            return Check::cannot_read(
                "S8",
                S8_TITLE,
                format!(
                    "no broken label among {checked} entries, but the expected labels are unknown: {e} (needs root)"
                ),
            );
        }
        return c(
            CheckStatus::Warn,
            format!(
                "no broken label among {checked} entries, but the expected labels are unknown ({e}): restorecon cannot work without them either{local_note}"
            ),
        )
        .with_details(details);
    }
    c(
        CheckStatus::Pass,
        format!(
            "all {ok} entries checked carry the labels the policy expects{local_note}{note_tail}"
        ),
    )
    .with_details(details)
}
