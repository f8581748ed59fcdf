//! S10: the `deny_execmem` boolean, which takes `execmem` away from unconfined domains too
//! (`unconfined.if` grants it only while the boolean is off), breaking Python extensions
//! that need executable memory (ctypes/libffi callbacks).
//!
//! Live: `/sys/fs/selinux/booleans/deny_execmem` (`"<current> <pending>"`). Offline: the
//! store's `booleans.local` (what `setsebool -P` wrote); absent there means the policy default
//! (off in the stock policies).

use super::store::{Store, local_boolean};
use super::{Input, read_input};
use crate::report::{Check, CheckStatus};
use crate::root::{SYS_FS_SELINUX, SysRoot};

pub const S10_TITLE: &str = "deny_execmem";

const BOOLEAN: &str = "deny_execmem";

/// `"1 1"` → (current, pending).
pub fn parse_boolean(text: &str) -> Option<(bool, Option<bool>)> {
    let mut it = text.split_whitespace().map(|t| match t {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    });
    let current = it.next()??;
    let pending = it.next().flatten();
    Some((current, pending))
}

/// S10.
pub fn check(root: &SysRoot, live: bool, store: &Store) -> Check {
    let c = |status, msg: String| Check::new("S10", S10_TITLE, status, msg);
    let remedy = format!("setsebool -P {BOOLEAN} 0");
    let warn_msg = "deny_execmem is on: unconfined domains lose execmem too, so the agent's Python extensions can fail";
    if !live {
        return match local_boolean(store, BOOLEAN) {
            Some(true) => c(
                CheckStatus::Warn,
                format!("{warn_msg} (booleans.local, offline root)"),
            )
            .with_remedy(remedy),
            Some(false) => c(
                CheckStatus::Pass,
                "deny_execmem is off (booleans.local, offline root)".into(),
            ),
            None => c(
                CheckStatus::Pass,
                "deny_execmem is not set locally (offline root): the policy default, off".into(),
            ),
        };
    }
    let path = root.path(SYS_FS_SELINUX).join("booleans").join(BOOLEAN);
    match read_input(&path) {
        Input::Missing => c(
            CheckStatus::Pass,
            "the loaded policy has no deny_execmem boolean".into(),
        ),
        Input::Unreadable(e) => Check::cannot_read(
            "S10",
            S10_TITLE,
            format!("cannot read /sys/fs/selinux/booleans/{BOOLEAN}: {e}"),
        ),
        Input::Text(t) => match parse_boolean(&t) {
            None => c(
                CheckStatus::Skip,
                format!(
                    "/sys/fs/selinux/booleans/{BOOLEAN} holds '{}'",
                    t.trim().escape_debug()
                ),
            ),
            Some((true, _)) => c(CheckStatus::Warn, warn_msg.to_string()).with_remedy(remedy),
            Some((false, Some(true))) => c(
                CheckStatus::Warn,
                "deny_execmem is off now but pending on (it turns on at the next policy commit)"
                    .into(),
            )
            .with_remedy(remedy),
            Some((false, _)) => c(CheckStatus::Pass, "deny_execmem is off".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_files() {
        assert_eq!(parse_boolean("1 1"), Some((true, Some(true))));
        assert_eq!(parse_boolean("0 1\n"), Some((false, Some(true))));
        assert_eq!(parse_boolean("0"), Some((false, None)));
        assert_eq!(parse_boolean("x 1"), None);
        assert_eq!(parse_boolean(""), None);
    }
}
