//! E10, E11, E13: mount problems Azure's guide names as causes of failed freezes and failed
//! extensions: the same mount point twice in `/etc/fstab` (E10), a block filesystem stacked
//! on another at the same mount point in mountinfo (E11: the hidden one cannot be thawed,
//! "Failed to FITHAW"), and `/var/lib/waagent` on a `noexec` mount (E13: extensions exit 126).
//! E11 and E13 judge PID 1's mount table (the host's, as the agent sees it), not the caller's:
//! the preflight unit's own namespace has PrivateTmp='s bind mounts stacked on /tmp.

use crate::mount::{MountInfo, MountTable, is_block_backed};
use crate::repair::discover::parse_fstab;
use crate::report::model::{Check, CheckStatus};
use crate::root::{ETC_FSTAB, MOUNTINFO, PID1_MOUNTINFO, SysRoot, VAR_DIR, WAAGENT_LIB_DIR};
use crate::selinux::lookalikes::fstab_entry_for;
use crate::selinux::{Input, read_input, shell_quote};
use std::collections::BTreeMap;

pub const E10: &str = "E10";
pub const E11: &str = "E11";
pub const E13: &str = "E13";
const E10_TITLE: &str = "duplicate fstab entries";
const E11_TITLE: &str = "stacked mounts";
const E13_TITLE: &str = "/var allows exec";

/// A mount point without its trailing slashes (`/data/` and `/data` are the same).
fn normalise(mp: &str) -> String {
    let t = mp.trim_end_matches('/');
    if t.is_empty() { "/".into() } else { t.into() }
}

/// Mount points listed more than once in fstab text: `(mount point, line numbers)`. Swap
/// entries (`none`, `swap`, type `swap`) are not mounts.
pub fn fstab_duplicates(text: &[u8]) -> Vec<(String, Vec<usize>)> {
    let mut by_point: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in parse_fstab(text) {
        let mp = e.file.to_string_lossy();
        if e.vfstype == "swap" || !mp.starts_with('/') {
            continue;
        }
        by_point.entry(normalise(&mp)).or_default().push(e.line);
    }
    by_point.into_iter().filter(|(_, l)| l.len() > 1).collect()
}

/// The root's mount table as the host (and the agent that freezes) sees it, or the check to
/// return instead: PID 1's, since the caller may run in a mount namespace of its own (the
/// preflight unit's PrivateTmp= stacks bind mounts on /tmp and /var/tmp there); the caller's
/// own when PID 1's is missing (a fixture, hidepid=) or unreadable.
fn mount_table(root: &SysRoot, id: &'static str, title: &'static str) -> Result<MountTable, Check> {
    if let Input::Text(t) = read_input(&root.path(PID1_MOUNTINFO)) {
        if let Ok(table) = MountTable::from_mountinfo(t.as_bytes()) {
            return Ok(table);
        }
    }
    match read_input(&root.path(MOUNTINFO)) {
        Input::Missing => Err(Check::new(
            id,
            title,
            CheckStatus::Skip,
            "no /proc/self/mountinfo (offline root): what is mounted cannot be seen",
        )),
        Input::Unreadable(why) => Err(Check::cannot_read(
            id,
            title,
            format!("cannot read /proc/self/mountinfo: {why}"),
        )),
        Input::Text(t) => MountTable::from_mountinfo(t.as_bytes()).map_err(|e| {
            Check::new(
                id,
                title,
                CheckStatus::Skip,
                format!("cannot parse /proc/self/mountinfo ({e}): cannot tell"),
            )
        }),
    }
}

/// `path` under the root, for messages that name a file of the checked system.
fn rooted(root: &SysRoot, path: &str) -> String {
    root.host(path).to_string_lossy().into_owned()
}

/// E10.
pub fn fstab_duplicates_check(root: &SysRoot) -> Check {
    let c = |status, msg: String| Check::new(E10, E10_TITLE, status, msg);
    let text = match read_input(&root.path(ETC_FSTAB)) {
        Input::Missing => return c(CheckStatus::Skip, "no /etc/fstab".into()),
        Input::Unreadable(why) => {
            return Check::cannot_read(E10, E10_TITLE, format!("cannot read /etc/fstab: {why}"));
        }
        Input::Text(t) => t,
    };
    let dups = fstab_duplicates(text.as_bytes());
    let Some((first_mp, first_lines)) = dups.first() else {
        return c(
            CheckStatus::Pass,
            "no mount point is listed twice in /etc/fstab".into(),
        );
    };
    let details = dups
        .iter()
        .map(|(mp, lines)| {
            let l: Vec<String> = lines.iter().map(usize::to_string).collect();
            format!("{mp}: lines {}", l.join(", "))
        })
        .collect();
    let last = first_lines.last().copied().unwrap_or(1);
    c(
        CheckStatus::Warn,
        format!(
            "/etc/fstab mounts {first_mp} {} times: the next boot stacks the mounts, and the hidden one cannot be frozen or thawed",
            first_lines.len()
        ),
    )
    .with_remedy(format!(
        "vi +{last} {}",
        shell_quote(&rooted(root, ETC_FSTAB))
    ))
    .with_details(details)
}

/// Block-backed mounts stacked on the same mount point: `(mount point, mounts bottom first)`.
pub fn stacked(table: &MountTable) -> Vec<(String, Vec<&MountInfo>)> {
    let mut by_point: BTreeMap<String, Vec<&MountInfo>> = BTreeMap::new();
    for m in table.entries().iter().filter(|m| is_block_backed(m)) {
        by_point
            .entry(m.mount_point.to_string_lossy().into_owned())
            .or_default()
            .push(m);
    }
    by_point.into_iter().filter(|(_, v)| v.len() > 1).collect()
}

/// E11.
pub fn stacked_mounts(root: &SysRoot) -> Check {
    let table = match mount_table(root, E11, E11_TITLE) {
        Ok(t) => t,
        Err(check) => return check,
    };
    let c = |status, msg: String| Check::new(E11, E11_TITLE, status, msg);
    let found = stacked(&table);
    let Some((mp, mounts)) = found.first() else {
        return c(
            CheckStatus::Pass,
            "no block filesystem is mounted twice on the same mount point".into(),
        );
    };
    let details = found
        .iter()
        .flat_map(|(mp, ms)| {
            ms.iter().map(move |m| {
                format!(
                    "{mp}: mount {} of {} ({}, {}:{})",
                    m.mount_id,
                    m.source
                        .as_ref()
                        .map_or("?".into(), |s| s.to_string_lossy().into_owned()),
                    m.fs_type,
                    m.major,
                    m.minor
                )
            })
        })
        .collect();
    c(
        CheckStatus::Fail,
        format!(
            "{mp} has {} block filesystems mounted on it: the hidden one cannot be reached to freeze or thaw it (\"Failed to FITHAW\"), so the freeze fails",
            mounts.len()
        ),
    )
    .with_remedy(format!("umount {}", shell_quote(&rooted(root, mp))))
    .with_details(details)
}

/// E13.
pub fn var_exec(root: &SysRoot) -> Check {
    let table = match mount_table(root, E13, E13_TITLE) {
        Ok(t) => t,
        Err(check) => return check,
    };
    let c = |status, msg: String| Check::new(E13, E13_TITLE, status, msg);
    let path = WAAGENT_LIB_DIR;
    let under = |mp: &str| {
        mp == "/" || path == mp || path.strip_prefix(mp).is_some_and(|r| r.starts_with('/'))
    };
    let holding = table
        .entries()
        .iter()
        .filter(|m| under(&m.mount_point.to_string_lossy()))
        .max_by_key(|m| (m.mount_point.as_os_str().len(), m.mount_id));
    let Some(m) = holding else {
        return c(
            CheckStatus::Skip,
            format!("no mount in mountinfo holds {path}: cannot tell"),
        );
    };
    let mp = m.mount_point.to_string_lossy().into_owned();
    let noexec = m.mount_options.split(',').any(|o| o == "noexec");
    let fstab = read_input(&root.path(ETC_FSTAB));
    let fstab_noexec = fstab
        .text()
        .and_then(|t| fstab_entry_for(t, path))
        .filter(|(_, o)| o.split(',').any(|o| o == "noexec"));
    if !noexec {
        let mut check = c(
            CheckStatus::Pass,
            format!("{path} is on {mp} ({}), mounted with exec", m.fs_type),
        );
        if let Some((fmp, _)) = fstab_noexec {
            check = check.with_details(vec![format!(
                "but /etc/fstab mounts {fmp} noexec: the next boot breaks extensions (snapguard selinux, L1)"
            )]);
        }
        return check;
    }
    let fstab_line = fstab_noexec.map(|(fmp, _)| {
        format!(
            "remove noexec from the options of {fmp} in {} too, or the next boot sets it again",
            rooted(root, ETC_FSTAB)
        )
    });
    let remedy = if root.is_host() {
        format!("mount -o remount,exec {}", shell_quote(&mp))
    } else {
        format!(
            "remove noexec from the options of {mp} in {}",
            rooted(root, ETC_FSTAB)
        )
    };
    let which = if mp == VAR_DIR {
        "/var is".to_string()
    } else {
        format!("{mp}, which holds {path}, is")
    };
    c(
        CheckStatus::Fail,
        format!(
            "{which} mounted noexec: the agent runs extension binaries from {path}, so the backup extension fails (exit code 126)"
        ),
    )
    .with_remedy(remedy)
    .with_details(fstab_line.into_iter().collect())
}
