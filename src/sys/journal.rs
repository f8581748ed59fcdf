//! Is standard error the systemd journal? systemd sets `$JOURNAL_STREAM` to `DEV:INODE` of the
//! stream it connects to stdout/stderr; only when that matches `fstat(2)` of fd 2 is stderr
//! still that stream (a child whose stderr was redirected inherits the variable too).

use std::os::fd::AsRawFd as _;

/// `DEV:INODE` (decimal, as systemd writes them) from `$JOURNAL_STREAM`.
pub fn parse_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Whether stderr is the journal stream `$JOURNAL_STREAM` names.
pub fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_stream(&v))
    else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) {
        Ok(st) => (st.st_dev, st.st_ino) == expected,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_values() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_stream(" 0:1\n"), Some((0, 1)));
        for bad in ["", "8", "8:", ":1", "x:1", "8:1:2", "-1:5"] {
            assert_eq!(parse_stream(bad), None, "{bad:?}");
        }
    }
}
