//! Quoting for a POSIX shell: every command snapguard prints (remedies, rescue commands) can be
//! pasted as it is, whatever the paths contain.

use std::borrow::Cow;

/// Quote `text` for a POSIX shell when it needs it (single quotes; `'` as `'\''`).
pub fn quote(text: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!("'{}'", text.replace('\'', r"'\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(quote("/dev/sdb1"), "/dev/sdb1");
        assert_eq!(quote("/mnt/a b"), "'/mnt/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("/var/lib/waagent(/.*)?"), "'/var/lib/waagent(/.*)?'");
    }
}
