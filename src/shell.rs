//! Quoting for a POSIX shell: every command snapguard prints (remedies, rescue commands) can be
//! pasted as it is, whatever the paths contain — spaces, quotes, newlines, bytes that are not
//! UTF-8 — and the quoted text itself holds only printable characters, so a terminal shows it
//! (and a log keeps it) unchanged.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&b)
}

/// Quote `text` for a POSIX shell when it needs it: as it is, in single quotes (`'` as `'\''`),
/// or, when it holds control characters, as `"$(printf '%b' '…')"` with those characters
/// escaped (a trailing newline is lost: command substitution drops it).
pub fn quote(text: &str) -> Cow<'_, str> {
    quote_bytes(text.as_bytes())
}

/// [`quote`] for a path, byte for byte (a name that is not UTF-8 is quoted exactly).
pub fn quote_path(path: &std::path::Path) -> String {
    quote_bytes(path.as_os_str().as_bytes()).into_owned()
}

/// [`quote`] for an OS string.
pub fn quote_os(text: &OsStr) -> String {
    quote_bytes(text.as_bytes()).into_owned()
}

fn quote_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if !bytes.is_empty() && bytes.iter().all(|&b| plain(b)) {
        // All ASCII: valid UTF-8.
        return Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default());
    }
    let printable = std::str::from_utf8(bytes).is_ok_and(|s| !s.chars().any(|c| c.is_control()));
    if printable {
        let s = std::str::from_utf8(bytes).unwrap_or_default();
        return Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")));
    }
    // printf's %b: \\ for a backslash, \0NNN (octal) for any other byte that is not printable
    // ASCII; the argument itself single-quoted.
    let mut escaped = String::new();
    for &b in bytes {
        match b {
            b'\\' => escaped.push_str(r"\\"),
            b'\'' => escaped.push_str(r"'\''"),
            0x20..=0x7e => escaped.push(char::from(b)),
            _ => {
                let _ = write!(escaped, "\\0{b:03o}");
            }
        }
    }
    Cow::Owned(format!("\"$(printf '%b' '{escaped}')\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(quote("/dev/sdb1"), "/dev/sdb1");
        assert_eq!(quote("/mnt/a b"), "'/mnt/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("/var/lib/waagent(/.*)?"), "'/var/lib/waagent(/.*)?'");
        assert_eq!(quote("/mnt/café"), "'/mnt/café'");
    }

    #[test]
    fn control_characters_and_other_bytes_survive_a_shell() {
        for name in [
            &b"/mnt/new\nline"[..],
            b"/mnt/tab\there",
            b"/mnt/caf\xe9",
            b"/mnt/it's\n\\x",
            b"/mnt/\x1b[31mred",
        ] {
            let q = quote_path(Path::new(OsStr::from_bytes(name)));
            assert!(!q.chars().any(|c| c.is_control()), "printable only: {q:?}");
            // The shell gives the exact bytes back.
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s' {q}"))
                .output()
                .unwrap();
            assert_eq!(out.stdout, name, "{q}");
        }
    }
}
