//! CMD's output while filesystems are frozen. CMD inherits snapguard's stdout and stderr, which
//! may lead into the freeze set: a file on a frozen filesystem (`> /data/log`), a pipe whose
//! reader writes there (`| tee /var/log/x`), the journal (journald writes to `/var`). One write
//! there and CMD blocks until the deadline. So unless a destination is a terminal or another
//! character device (or a regular file on a filesystem outside the freeze set), CMD gets a pipe
//! instead; snapguard reads it into memory while anything is frozen and hands it on after the
//! thaw, then passes it through as it comes.
//!
//! Writing to the real destination is done by a thread per stream, never by the controller's
//! own thread: a destination nobody reads (a stopped reader, a full pipe) must not keep the
//! controller from ending CMD, running the thaw hooks and releasing the guardian. Memory is
//! bounded: past [`HOLD_LIMIT`] (held, or queued for a writer) snapguard stops reading that
//! pipe, so CMD waits on its own write instead of anything being dropped.

use crate::mount::MountTable;
use crate::sys::process::{pipe, set_nonblocking};
use crate::sys::statx::placement;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of one stream is kept in memory (held while frozen, or queued for its writer).
pub const HOLD_LIMIT: usize = 16 << 20;

/// Whether output to `dest` could block on a filesystem of the freeze set (`frozen`: their
/// superblocks' `major:minor`).
pub fn may_block(dest: BorrowedFd<'_>, frozen: &[(u32, u32)], table: &MountTable) -> bool {
    let Ok(p) = placement(dest) else {
        return true;
    };
    match u32::from(p.mode) & libc::S_IFMT {
        libc::S_IFCHR => false,
        libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR => table
            .entries()
            .iter()
            .find(|m| u64::from(m.mount_id) == p.mount_id)
            .is_none_or(|m| frozen.contains(&(m.major, m.minor))),
        // Pipes, sockets: whoever reads them may be blocked on a frozen filesystem.
        _ => true,
    }
}

/// The thread writing one stream to its real destination.
struct Writer {
    tx: Option<Sender<Vec<u8>>>,
    queued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(mut dest: File) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&queued);
        let thread = std::thread::Builder::new()
            .name("cmd-output".into())
            .spawn(move || {
                let mut broken = false;
                for chunk in rx {
                    // A destination that is gone (EPIPE) takes nothing more; CMD's pipe keeps
                    // being read so CMD never blocks on it.
                    if !broken && dest.write_all(&chunk).is_err() {
                        broken = true;
                    }
                    counter.fetch_sub(chunk.len(), Ordering::SeqCst);
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            queued,
            thread: Some(thread),
        })
    }

    fn send(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.queued.fetch_add(chunk.len(), Ordering::SeqCst);
        if let Some(tx) = &self.tx {
            if tx.send(chunk).is_err() {
                self.queued.store(0, Ordering::SeqCst);
            }
        }
    }

    fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// No more output: wait until everything queued is written (or the destination failed).
    fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Stream {
    read: File,
    writer: Writer,
    held: Vec<u8>,
    eof: bool,
}

/// The pipes between CMD and snapguard's real stdout/stderr.
pub struct CommandOutput {
    streams: Vec<Stream>,
    holding: bool,
}

impl CommandOutput {
    /// For each of CMD's destinations (`dests`: what CMD's stdout and stderr would be), the
    /// `Stdio` to give CMD: the destination itself, or a pipe that snapguard holds.
    pub fn prepare(
        dests: [BorrowedFd<'_>; 2],
        frozen: &[(u32, u32)],
        table: &MountTable,
    ) -> std::io::Result<(Self, [Stdio; 2])> {
        let mut streams = Vec::new();
        let mut stdio: Vec<Stdio> = Vec::with_capacity(2);
        for dest in dests {
            if may_block(dest, frozen, table) {
                let (read, write) = pipe().map_err(std::io::Error::from)?;
                let _ = set_nonblocking(read.as_fd());
                streams.push(Stream {
                    read,
                    writer: Writer::start(File::from(dest.try_clone_to_owned()?))?,
                    held: Vec::new(),
                    eof: false,
                });
                stdio.push(Stdio::from(write));
            } else {
                stdio.push(Stdio::from(dest.try_clone_to_owned()?));
            }
        }
        let [out, err]: [Stdio; 2] = stdio
            .try_into()
            .map_err(|_| std::io::Error::other("two destinations"))?;
        Ok((
            CommandOutput {
                streams,
                holding: true,
            },
            [out, err],
        ))
    }

    /// No pipes at all.
    pub fn none() -> Self {
        CommandOutput {
            streams: Vec::new(),
            holding: false,
        }
    }

    fn full(&self, s: &Stream) -> bool {
        if self.holding {
            s.held.len() >= HOLD_LIMIT
        } else {
            s.writer.queued() >= HOLD_LIMIT
        }
    }

    /// The pipes worth polling now (not at EOF, not over the memory bound).
    pub fn fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.streams
            .iter()
            .enumerate()
            .filter(|(_, s)| !(s.eof || self.full(s)))
            .map(|(i, s)| (i, s.read.as_fd()))
    }

    /// Read what stream `i` has (never blocks): held while frozen, handed to its writer
    /// otherwise.
    pub fn take(&mut self, i: usize) {
        let holding = self.holding;
        let Some(s) = self.streams.get_mut(i) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            let room = if holding {
                HOLD_LIMIT.saturating_sub(s.held.len())
            } else {
                HOLD_LIMIT.saturating_sub(s.writer.queued())
            };
            if room == 0 {
                return;
            }
            let want = room.min(buf.len());
            match s.read.read(&mut buf[..want]) {
                Ok(0) => {
                    s.eof = true;
                    return;
                }
                Ok(k) => {
                    if holding {
                        s.held.extend_from_slice(&buf[..k]);
                    } else {
                        s.writer.send(buf[..k].to_vec());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Nothing is frozen any more: hand on what was held, and pass through from now on.
    pub fn release(&mut self) {
        self.holding = false;
        for s in &mut self.streams {
            let held = std::mem::take(&mut s.held);
            s.writer.send(held);
        }
    }

    /// After CMD ended (and nothing is frozen): take what is left in the pipes, waiting at most
    /// `limit` for the last writers (CMD's own children may hold a pipe open).
    pub fn collect(&mut self, limit: Duration) {
        self.release();
        let end = Instant::now() + limit;
        for i in 0..self.streams.len() {
            loop {
                self.take(i);
                let Some(s) = self.streams.get(i) else { break };
                if s.eof || Instant::now() >= end {
                    break;
                }
                let mut set = crate::sys::process::PollSet::<1>::default();
                set.set(0, Some(s.read.as_fd()));
                let _ = set.wait(Some(end.saturating_duration_since(Instant::now())));
            }
        }
    }

    /// The very end of the run: wait until every writer has written what it was given (or
    /// found its destination gone). Like any program's last output, this may wait for a slow
    /// reader; nothing of the freeze depends on it any more.
    pub fn finish(&mut self) {
        for s in &mut self.streams {
            s.writer.finish();
        }
    }
}
