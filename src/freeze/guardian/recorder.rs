//! The guardian's record writer, a thread of its own. Writing `/run/snapguard/freeze-PID.json`
//! blocks if the filesystem holding `/run` is frozen (by this run when `/run` is in the freeze
//! set, or by anybody else at any moment): on the guardian's main thread that write would keep
//! it from ever reaching its deadline. Here it only delays the record.
//!
//! The main thread publishes the latest states under a mutex it holds for a copy of a few
//! bytes (the writer copies them out and writes without holding it) and wakes the writer
//! through a non-blocking pipe; several updates while a write blocks collapse into one.

use crate::freeze::record::{MountState, RecordFile};
use crate::sys::process::{pipe, set_nonblocking};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the writer should put in the record next.
struct Latest {
    states: Vec<MountState>,
    live: bool,
    /// Bumped by every update; the writer publishes the last one it wrote in `written`.
    seq: u64,
    /// `Some(true)`: remove the record and stop; `Some(false)`: write it a last time and stop.
    finish: Option<bool>,
}

fn lock(m: &Mutex<Latest>) -> MutexGuard<'_, Latest> {
    // Nothing panics while holding it; a poisoned lock still holds valid states.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The main thread's handle on the writer.
pub struct Recorder {
    latest: Arc<Mutex<Latest>>,
    wake: File,
    done: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
}

impl Recorder {
    /// Start the writer thread for `file` (already written once by the caller).
    pub fn start(mut file: RecordFile) -> std::io::Result<Self> {
        let n = file.record.mounts.len();
        let latest = Arc::new(Mutex::new(Latest {
            states: file.record.mounts.iter().map(|m| m.state).collect(),
            live: file.record.live,
            seq: 0,
            finish: None,
        }));
        let (mut wake_r, wake_w) = pipe().map_err(std::io::Error::from)?;
        let _ = set_nonblocking(wake_w.as_fd());
        let done = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (shared, finished, wrote) =
            (Arc::clone(&latest), Arc::clone(&done), Arc::clone(&written));
        std::thread::Builder::new()
            .name("record".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut states: Vec<MountState> = Vec::with_capacity(n);
                let mut buf = [0u8; 64];
                loop {
                    // EOF (the main thread is gone) or an error: stop.
                    if !matches!(wake_r.read(&mut buf), Ok(k) if k > 0) {
                        break;
                    }
                    let (live, finish, seq) = {
                        let l = lock(&shared);
                        states.clear();
                        states.extend_from_slice(&l.states);
                        (l.live, l.finish, l.seq)
                    };
                    for (m, s) in file.record.mounts.iter_mut().zip(&states) {
                        m.state = *s;
                    }
                    file.record.live = live;
                    match finish {
                        Some(true) => {
                            file.remove();
                            break;
                        }
                        Some(false) => {
                            let _ = file.write();
                            break;
                        }
                        None => {
                            if file.write().is_ok() {
                                wrote.store(seq, Ordering::SeqCst);
                            }
                        }
                    }
                }
                finished.store(true, Ordering::SeqCst);
            })?;
        Ok(Recorder {
            latest,
            wake: wake_w,
            done,
            written,
        })
    }

    fn wake(&mut self) {
        // Full pipe: a wake-up is pending anyway.
        let _ = self.wake.write(&[1]);
    }

    /// Publish new states; the writer records them soon (never blocks the caller). Returns
    /// the update's sequence number.
    pub fn update(&mut self, states: &[MountState], live: bool) -> u64 {
        let seq = {
            let mut l = lock(&self.latest);
            l.states.clear();
            l.states.extend_from_slice(states);
            l.live = live;
            l.seq += 1;
            l.seq
        };
        self.wake();
        seq
    }

    /// Publish new states and wait up to `limit` until they are on disk (the last write before
    /// the record's own filesystem is frozen). Whether they are.
    pub fn update_and_wait(&mut self, states: &[MountState], live: bool, limit: Duration) -> bool {
        let seq = self.update(states, live);
        let end = Instant::now() + limit;
        while self.written.load(Ordering::SeqCst) < seq {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// The last word: remove the record (`remove`) or write it a last time, and wait up to
    /// `limit` for the writer to be done (a write blocked on a frozen `/run` is left behind).
    pub fn finish(mut self, states: &[MountState], remove: bool, limit: Duration) {
        {
            let mut l = lock(&self.latest);
            l.states.clear();
            l.states.extend_from_slice(states);
            l.live = true;
            l.finish = Some(remove);
        }
        self.wake();
        let end = Instant::now() + limit;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freeze::access::Expected;
    use crate::freeze::record::{Record, RecordMount, VERSION};
    use crate::sys::process::ProcessIdentity;
    use std::path::PathBuf;

    #[test]
    fn updates_reach_the_record_and_finish_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("freeze-1.json");
        let id = ProcessIdentity {
            pid: 1,
            start_time: 1,
        };
        let record = Record {
            version: VERSION,
            command: "freeze".into(),
            controller: id,
            guardian: id,
            live: true,
            rcu_restore: false,
            mounts: vec![RecordMount {
                mountpoint: PathBuf::from("/m"),
                access: PathBuf::from("/m"),
                expected: Expected {
                    mount_id: 1,
                    dev: None,
                },
                state: MountState::Planned,
            }],
        };
        let mut r = Recorder::start(RecordFile::new(&path, record).unwrap()).unwrap();
        r.update(&[MountState::Frozen], true);
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if Record::read(&path).is_ok_and(|rec| rec.mounts[0].state == MountState::Frozen) {
                break;
            }
            assert!(Instant::now() < end, "the update never reached the record");
            std::thread::sleep(Duration::from_millis(1));
        }
        r.finish(&[MountState::Thawed], true, Duration::from_secs(5));
        assert!(!path.exists());
    }
}
