//! Deferred termination signals: SIGHUP, SIGINT, SIGQUIT and SIGTERM are blocked in every
//! thread and taken by one watcher thread (`sigwait`), which only remembers them; the work
//! polls [`received`] at safe points and winds down itself (repair rolls back instead of
//! dying half-way). Children spawned through [`super::spawn`] start with an empty mask and
//! default dispositions, so they are not affected.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use std::sync::atomic::{AtomicI32, Ordering};

/// The signals that are deferred.
pub const DEFERRED: [Signal; 4] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
];

/// The first deferred signal that arrived (0: none).
static FIRST: AtomicI32 = AtomicI32::new(0);

/// Block [`DEFERRED`] in this thread (and so in every thread started after it) and start the
/// watcher. Call before any other thread is started. Idempotent enough: a second call blocks
/// again and starts a second watcher, which is harmless.
pub fn defer() -> Result<(), nix::errno::Errno> {
    let mut set = SigSet::empty();
    for s in DEFERRED {
        set.add(s);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                match set.wait() {
                    Ok(signal) => {
                        let _ = FIRST.compare_exchange(
                            0,
                            signal as i32,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        tracing::warn!("{}: winding down safely (see --help)", signal.as_str());
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
        })
        .map(|_| ())
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)))
}

/// Count `signal` as received although no signal was sent: a Ctrl-C typed at a prompt that
/// reads the terminal in raw mode arrives as a byte, and means the same as SIGINT.
pub fn note(signal: Signal) {
    let _ = FIRST.compare_exchange(0, signal as i32, Ordering::SeqCst, Ordering::SeqCst);
}

/// The first deferred signal received so far, if any.
pub fn received() -> Option<Signal> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}
