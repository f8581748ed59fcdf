//! The guardian: a separate process that issues every FIFREEZE and every FITHAW of a run, so
//! that whatever dies, what snapguard froze is thawed by its deadline, and nothing snapguard did
//! not freeze is ever thawed by it.
//!
//! It is the running binary re-executed (`/proc/self/exe`, resolved by the kernel at exec time,
//! before anything is frozen) as the hidden subcommand `snapguard __guardian`, started through
//! [`crate::sys::spawn`] (empty signal mask, no environment, cwd `/`, stderr `/dev/null`). It
//! leaves the controller's session (`setsid`), blocks every terminating signal into a signalfd,
//! asks the OOM killer to spare it, reads its [`spec::Spec`] (the first line on stdin), opens its
//! *own* fds of the mount points and checks each is the mount the controller proved (mount id and
//! device, see [`crate::freeze::access`]), starts its FIFREEZE worker thread, locks its memory and
//! says `R`. See [`serve`] for how it runs and [`client`] for the controller's side.
//!
//! Protocol ([`protocol`]; one ASCII line per message, far below PIPE_BUF, so writes are atomic):
//!
//! | controller → guardian | meaning |
//! |---|---|
//! | `W` | open a window (its CLOCK_BOOTTIME deadline starts at its first FIFREEZE) |
//! | `Z i` | freeze mount `i` (the guardian records `freezing`, then `frozen`) |
//! | `U` | thaw everything the window froze, last first, and close it |
//! | `C pid start` | CMD's pid and start time: end it (pidfd) if the controller dies |
//! | `H k` / `h k` | freeze hook `k` is about to run / thaw hook `k` is run by the controller |
//! | `I k pid start` | freeze hook `k` runs as `pid`: waited for before its thaw hook |
//! | `P` | ping |
//! | `D` | done: thaw what is left, write the last record, exit |
//!
//! | guardian → controller | meaning |
//! |---|---|
//! | `R mlocked oom rcu record` | ready |
//! | `E step i errno` | setup failed; the guardian exits |
//! | `A ns` | the window's deadline (CLOCK_BOOTTIME) |
//! | `F i s e` / `B i s e` / `N i errno s e` | FIFREEZE of `i` froze / said EBUSY / failed |
//! | `Q i` | freeze refused: no open window (it ended, or the guardian is stopping) |
//! | `X i errno s e` | FITHAW of `i` (errno 0: thawed) |
//! | `K why` | a window ended: `request`, `deadline`, `eof`, `signal-N`, `error` |
//! | `k why` | the window is ending on the guardian's own (same reasons), sent before its thaws |
//! | `P` / `c 0|1` | pong / CMD watched |
//!
//! The controller never calls FIFREEZE or FITHAW itself, with one exception: once the guardian
//! is proven gone (end of file on its pipe: no thread of it is left), the controller thaws what
//! the guardian had reported frozen and not thawed; a FIFREEZE that was in flight when it died
//! is reported as possibly frozen, never thawed blindly (it may have failed with EBUSY because
//! someone else froze the filesystem).

pub mod client;
pub mod protocol;
pub mod recorder;
pub mod serve;
pub mod spec;

pub use client::{GuardianClient, SUBCOMMAND};
pub use protocol::{Event, Request, WindowEnd};
pub use spec::{Spec, SpecHook, SpecMount};
