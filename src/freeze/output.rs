//! CMD's output while filesystems are frozen. CMD inherits snapguard's stdout and stderr, which
//! may lead into the freeze set: a file on a frozen filesystem (`> /data/log`), a pipe whose
//! reader writes there (`| tee /var/log/x`), the journal (journald writes to `/var`). One write
//! there and CMD blocks until the deadline. So unless a destination is a terminal or another
//! character device (or a regular file on a filesystem outside the freeze set), CMD gets a pipe
//! instead; snapguard reads it into memory while anything is frozen and writes it out after the
//! thaw, then passes it through as it comes. Memory is bounded: past [`HOLD_LIMIT`] snapguard
//! stops reading that pipe, so CMD waits on its own write (until the thaw or the deadline)
//! instead of anything being dropped.

use crate::mount::MountTable;
use crate::sys::process::{pipe, set_nonblocking};
use crate::sys::statx::placement;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Stdio;

/// How much of one stream is kept while frozen.
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

struct Stream {
    read: File,
    dest: File,
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
                    dest: File::from(dest.try_clone_to_owned()?),
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

    /// The pipes worth polling now (not at EOF; not full while held).
    pub fn fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        let holding = self.holding;
        self.streams
            .iter()
            .enumerate()
            .filter(move |(_, s)| !(s.eof || holding && s.held.len() >= HOLD_LIMIT))
            .map(|(i, s)| (i, s.read.as_fd()))
    }

    /// Read what stream `i` has (never blocks): held while frozen, written through otherwise.
    pub fn take(&mut self, i: usize) {
        let holding = self.holding;
        let Some(s) = self.streams.get_mut(i) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            if holding && s.held.len() >= HOLD_LIMIT {
                return;
            }
            match s.read.read(&mut buf) {
                Ok(0) => {
                    s.eof = true;
                    return;
                }
                Ok(k) => {
                    if holding {
                        s.held.extend_from_slice(&buf[..k]);
                    } else {
                        // Nothing is frozen any more: a blocking write is fine.
                        let _ = s.dest.write_all(&buf[..k]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Nothing is frozen any more: write out what was held, and pass through from now on.
    pub fn release(&mut self) {
        self.holding = false;
        for s in &mut self.streams {
            let held = std::mem::take(&mut s.held);
            let _ = s.dest.write_all(&held);
        }
    }

    /// After CMD ended and nothing is frozen: pass on what is left in the pipes, waiting at most
    /// `limit` for the last writers (CMD's own children may hold the pipe open).
    pub fn drain(&mut self, limit: std::time::Duration) {
        self.release();
        let end = std::time::Instant::now() + limit;
        for i in 0..self.streams.len() {
            loop {
                self.take(i);
                let Some(s) = self.streams.get(i) else { break };
                if s.eof || std::time::Instant::now() >= end {
                    break;
                }
                let mut set = crate::sys::process::PollSet::<1>::default();
                set.set(0, Some(s.read.as_fd()));
                let _ = set.wait(Some(
                    end.saturating_duration_since(std::time::Instant::now()),
                ));
            }
        }
    }

    /// Bytes held right now (for the report).
    pub fn held_bytes(&self) -> usize {
        self.streams.iter().map(|s| s.held.len()).sum()
    }
}
