//! How a `freeze -- CMD` run ended, as pure decisions: which outcome and which exit status, from
//! the facts the session collected. Precedence, highest first:
//!
//! 1. something this run froze may still be frozen (a failed FITHAW, or the guardian died inside
//!    a FIFREEZE): `thaw-failed`, 125;
//! 2. the run stopped before CMD could run: its reason (hook, CMD not found, freeze failure,
//!    signal, deadline, guardian lost);
//! 3. the frozen window did not hold until CMD ended: interrupted by a signal to snapguard
//!    (128+N), the deadline (124), the guardian thawed on a signal or vanished (125) — CMD's own
//!    status is then *not* passed through, since its snapshot may be inconsistent;
//! 4. someone else thawed a mount while the window was open (FITHAW said EINVAL):
//!    `window-broken`, 125;
//! 5. a thaw hook failed: `thaw-failed`, 125;
//! 6. otherwise CMD's own status (128+N when a signal killed it).

use super::guardian::WindowEnd;
use crate::report::FreezeOutcome;

/// Exit codes of `freeze -- CMD` besides CMD's own status (timeout(1)'s reserved range).
pub mod exit {
    /// The deadline passed: the guardian thawed, CMD was terminated.
    pub const TIMEOUT: u8 = 124;
    /// snapguard failed: a freeze, a hook, a thaw, the guardian, or bad usage/configuration.
    pub const FAILED: u8 = 125;
    /// CMD was found but cannot be executed.
    pub const CANNOT_EXECUTE: u8 = 126;
    /// CMD was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// Why a run stopped before CMD ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A hook (or the hook directory) was refused by the ownership/mode checks.
    HookRefused,
    /// A freeze hook failed or timed out.
    HookFailed,
    /// CMD does not exist (found before anything was frozen).
    CommandNotFound,
    /// CMD exists but cannot be executed.
    CommandNotExecutable,
    /// A mount could not be opened as itself, synced, or frozen (EBUSY included).
    FreezeFailed,
    /// snapguard got signal N.
    Interrupted(i32),
    /// The guardian ended the window on its own (deadline, signal) while freezing.
    WindowEnded(WindowEnd),
    /// The guardian could not start, died or stopped answering.
    GuardianLost,
}

/// How the frozen window ended while CMD ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutcome {
    /// Held until snapguard asked for the thaw after CMD.
    Held,
    /// snapguard got signal N: it thawed at once.
    Interrupted(i32),
    /// The guardian thawed on its own (deadline, a signal to it).
    Guardian(WindowEnd),
    /// The guardian vanished; snapguard thawed what it had reported frozen.
    GuardianLost,
}

/// How CMD ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandEnd {
    Exited(i32),
    Signalled(i32),
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub stop: Option<Stop>,
    pub window: Option<WindowOutcome>,
    pub command: Option<CommandEnd>,
    /// CMD ended before the window was broken (its snapshot was taken while frozen).
    pub command_ended_in_window: bool,
    /// A FITHAW failed, or the guardian died inside a FIFREEZE.
    pub maybe_still_frozen: bool,
    /// A mount was no longer frozen when the thaw came (FITHAW: EINVAL): someone else thawed
    /// it at some moment of the window, which was therefore broken.
    pub thawed_by_someone_else: bool,
    pub thaw_hook_failed: bool,
}

fn signal_exit(n: i32) -> u8 {
    128u8.saturating_add(u8::try_from(n).unwrap_or(127))
}

fn stop_outcome(stop: Stop) -> (FreezeOutcome, u8) {
    match stop {
        Stop::HookRefused | Stop::HookFailed => (FreezeOutcome::HookFailed, exit::FAILED),
        Stop::CommandNotFound => (FreezeOutcome::CommandFailed, exit::NOT_FOUND),
        Stop::CommandNotExecutable => (FreezeOutcome::CommandFailed, exit::CANNOT_EXECUTE),
        Stop::FreezeFailed => (FreezeOutcome::FreezeFailed, exit::FAILED),
        Stop::Interrupted(n) => (FreezeOutcome::Interrupted, signal_exit(n)),
        Stop::WindowEnded(why) => window_broken(why),
        Stop::GuardianLost => (FreezeOutcome::GuardianLost, exit::FAILED),
    }
}

fn window_broken(why: WindowEnd) -> (FreezeOutcome, u8) {
    match why {
        WindowEnd::Deadline => (FreezeOutcome::Timeout, exit::TIMEOUT),
        WindowEnd::ControllerGone => (FreezeOutcome::GuardianLost, exit::FAILED),
        WindowEnd::Requested | WindowEnd::Signal(_) | WindowEnd::Error => {
            (FreezeOutcome::WindowBroken, exit::FAILED)
        }
    }
}

/// The outcome and exit status of a run.
pub fn decide(f: &Facts) -> (FreezeOutcome, u8) {
    if f.maybe_still_frozen {
        return (FreezeOutcome::ThawFailed, exit::FAILED);
    }
    if let Some(stop) = f.stop {
        return stop_outcome(stop);
    }
    match f.window {
        Some(WindowOutcome::Interrupted(n)) => {
            return (FreezeOutcome::Interrupted, signal_exit(n));
        }
        Some(WindowOutcome::Guardian(why)) if !f.command_ended_in_window => {
            return window_broken(why);
        }
        Some(WindowOutcome::GuardianLost) if !f.command_ended_in_window => {
            return (FreezeOutcome::GuardianLost, exit::FAILED);
        }
        _ => {}
    }
    if f.thawed_by_someone_else {
        return (FreezeOutcome::WindowBroken, exit::FAILED);
    }
    if f.thaw_hook_failed {
        return (FreezeOutcome::ThawFailed, exit::FAILED);
    }
    match f.command {
        Some(CommandEnd::Exited(code)) => (
            FreezeOutcome::Completed,
            u8::try_from(code).unwrap_or(exit::FAILED),
        ),
        Some(CommandEnd::Signalled(n)) => (FreezeOutcome::Completed, signal_exit(n)),
        None => (FreezeOutcome::Completed, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(code: i32, window: WindowOutcome) -> Facts {
        Facts {
            window: Some(window),
            command: Some(CommandEnd::Exited(code)),
            ..Facts::default()
        }
    }

    #[test]
    fn cmd_status_passes_through_only_when_the_window_held() {
        assert_eq!(
            decide(&ran(3, WindowOutcome::Held)),
            (FreezeOutcome::Completed, 3)
        );
        let killed = Facts {
            command: Some(CommandEnd::Signalled(9)),
            window: Some(WindowOutcome::Held),
            ..Facts::default()
        };
        assert_eq!(decide(&killed), (FreezeOutcome::Completed, 137));
        assert_eq!(
            decide(&ran(0, WindowOutcome::Guardian(WindowEnd::Deadline))),
            (FreezeOutcome::Timeout, 124)
        );
        assert_eq!(
            decide(&ran(0, WindowOutcome::Guardian(WindowEnd::Signal(15)))),
            (FreezeOutcome::WindowBroken, 125)
        );
        assert_eq!(
            decide(&ran(0, WindowOutcome::GuardianLost)),
            (FreezeOutcome::GuardianLost, 125)
        );
        assert_eq!(
            decide(&ran(0, WindowOutcome::Interrupted(2))),
            (FreezeOutcome::Interrupted, 130)
        );
        // CMD finished while frozen, the deadline came before snapguard's thaw request: the
        // snapshot was consistent.
        let mut f = ran(0, WindowOutcome::Guardian(WindowEnd::Deadline));
        f.command_ended_in_window = true;
        assert_eq!(decide(&f), (FreezeOutcome::Completed, 0));
    }

    #[test]
    fn something_still_frozen_beats_everything() {
        let mut f = ran(0, WindowOutcome::Interrupted(15));
        f.maybe_still_frozen = true;
        assert_eq!(decide(&f), (FreezeOutcome::ThawFailed, 125));
        let f = Facts {
            stop: Some(Stop::Interrupted(15)),
            maybe_still_frozen: true,
            ..Facts::default()
        };
        assert_eq!(decide(&f).0, FreezeOutcome::ThawFailed);
    }

    #[test]
    fn stops_before_cmd() {
        let stop = |s| {
            decide(&Facts {
                stop: Some(s),
                ..Facts::default()
            })
        };
        assert_eq!(
            stop(Stop::CommandNotFound),
            (FreezeOutcome::CommandFailed, 127)
        );
        assert_eq!(
            stop(Stop::CommandNotExecutable),
            (FreezeOutcome::CommandFailed, 126)
        );
        assert_eq!(stop(Stop::HookRefused), (FreezeOutcome::HookFailed, 125));
        assert_eq!(stop(Stop::FreezeFailed), (FreezeOutcome::FreezeFailed, 125));
        assert_eq!(
            stop(Stop::Interrupted(3)),
            (FreezeOutcome::Interrupted, 131)
        );
        assert_eq!(
            stop(Stop::WindowEnded(WindowEnd::Deadline)),
            (FreezeOutcome::Timeout, 124)
        );
        assert_eq!(stop(Stop::GuardianLost), (FreezeOutcome::GuardianLost, 125));
    }

    #[test]
    fn a_thaw_by_someone_else_breaks_the_window() {
        let mut f = ran(0, WindowOutcome::Held);
        f.thawed_by_someone_else = true;
        assert_eq!(decide(&f), (FreezeOutcome::WindowBroken, 125));
    }

    #[test]
    fn a_failed_thaw_hook_fails_an_otherwise_good_run() {
        let mut f = ran(0, WindowOutcome::Held);
        f.thaw_hook_failed = true;
        assert_eq!(decide(&f), (FreezeOutcome::ThawFailed, 125));
        // ... but does not hide a broken window.
        let mut f = ran(0, WindowOutcome::Guardian(WindowEnd::Deadline));
        f.thaw_hook_failed = true;
        assert_eq!(decide(&f), (FreezeOutcome::Timeout, 124));
    }
}
