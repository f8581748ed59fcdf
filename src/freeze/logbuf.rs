//! The log sink: tracing output goes to stderr or `--log-file`, except while snapguard holds a
//! filesystem frozen, when it is kept in memory and written out after the thaw.
//!
//! Either destination may live on a filesystem being frozen (a log file in `/var/log` while `/`
//! is frozen, stderr redirected into the mount under test): one write there would block the
//! controller in D state until the guardian's deadline. So the freeze engine calls [`hold`]
//! before the first FIFREEZE and [`release_avoiding`] after the last FITHAW. When a thaw failed
//! (a filesystem may still be frozen), output that could lead there is never written: the held
//! log stays in memory, and `main` asks [`may_block`] before it prints anything.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Upper bound of what is kept while held; beyond it lines are counted and dropped (a frozen
/// window lasts seconds, so this is never reached by normal logging).
const HOLD_LIMIT: usize = 4 << 20;

enum Destination {
    Stderr,
    File(File),
}

struct Inner {
    destination: Destination,
    holding: bool,
    buffer: Vec<u8>,
    dropped: usize,
    /// Superblocks that may still be frozen after a failed thaw, and the mount table to tell
    /// where an fd leads.
    still_frozen: Option<(Vec<(u32, u32)>, crate::mount::MountTable)>,
}

/// The process-wide sink.
pub struct LogSink {
    inner: Mutex<Inner>,
}

fn sink() -> &'static LogSink {
    static SINK: OnceLock<LogSink> = OnceLock::new();
    SINK.get_or_init(|| LogSink {
        inner: Mutex::new(Inner {
            destination: Destination::Stderr,
            holding: false,
            buffer: Vec::new(),
            dropped: 0,
            still_frozen: None,
        }),
    })
}

fn lock() -> MutexGuard<'static, Inner> {
    // A panic while logging must not silence the rest of the run.
    sink().inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Send logs to `file` instead of stderr (opened by the caller before anything is frozen).
pub fn set_file(file: File) {
    lock().destination = Destination::File(file);
}

/// From now on, keep log output in memory. Pre-allocates so that holding does not grow the heap
/// for ordinary amounts of logging.
pub fn hold() {
    let mut inner = lock();
    inner.holding = true;
    inner.buffer.reserve(64 * 1024);
}

/// Write out what was held and go back to writing directly.
pub fn release() {
    let mut inner = lock();
    inner.holding = false;
    let buffer = std::mem::take(&mut inner.buffer);
    let dropped = std::mem::take(&mut inner.dropped);
    let _ = write_to(&mut inner.destination, &buffer);
    if dropped > 0 {
        let note = format!("snapguard: {dropped} log bytes dropped while frozen (buffer full)\n");
        let _ = write_to(&mut inner.destination, note.as_bytes());
    }
}

/// After the last thaw: write out what was held, unless a filesystem that may still be frozen
/// (`still`, after a failed thaw) could be where it goes; then keep holding it, and remember
/// `still` for [`may_block`].
pub fn release_avoiding(still: &[(u32, u32)], table: &crate::mount::MountTable) {
    if still.is_empty() {
        release();
        return;
    }
    let blocked = {
        let mut inner = lock();
        inner.still_frozen = Some((still.to_vec(), table.clone()));
        match &inner.destination {
            Destination::Stderr => super::output::may_block(io::stderr().as_fd(), still, table),
            Destination::File(f) => super::output::may_block(f.as_fd(), still, table),
        }
    };
    if !blocked {
        release();
    }
}

/// Whether writing to `fd` could block on a filesystem that may still be frozen (only ever true
/// after a failed thaw).
pub fn may_block(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    match &lock().still_frozen {
        Some((still, table)) => super::output::may_block(fd, still, table),
        None => false,
    }
}

/// Whether output is being held.
pub fn is_holding() -> bool {
    lock().holding
}

fn write_to(destination: &mut Destination, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match destination {
        Destination::Stderr => {
            let mut err = io::stderr().lock();
            err.write_all(bytes)?;
            err.flush()
        }
        Destination::File(f) => f.write_all(bytes),
    }
}

/// A writer for `tracing_subscriber::fmt().with_writer(logbuf::writer)`.
pub fn writer() -> LogWriter {
    LogWriter
}

/// One handle on the sink (cheap; all state is in the sink).
#[derive(Debug, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = lock();
        if inner.holding {
            if inner.buffer.len() + buf.len() <= HOLD_LIMIT {
                inner.buffer.extend_from_slice(buf);
            } else {
                inner.dropped += buf.len();
            }
            return Ok(buf.len());
        }
        write_to(&mut inner.destination, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn held_output_reaches_the_file_only_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        set_file(File::create(&path).unwrap());
        let mut w = writer();
        w.write_all(b"before\n").unwrap();
        hold();
        assert!(is_holding());
        w.write_all(b"while frozen\n").unwrap();
        let mut text = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "before\n");
        release();
        text.clear();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "before\nwhile frozen\n");
        // Back to stderr for the other tests of this binary.
        lock().destination = Destination::Stderr;
    }
}
