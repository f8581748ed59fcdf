//! Failure injection for the rollback tests: `SNAPGUARD_FAILPOINT=STEP` makes that step fail
//! as if its command had failed; `STEP:crash` ends the process at the start of the step with
//! no cleanup, as a SIGKILL would; `STEP:pause` waits there (up to a minute, less if a
//! signal arrives) so that a test can send a signal at a known point: it says so in the log
//! and, when `SNAPGUARD_FAILPOINT_PAUSED` names a file, creates that file. Several may be
//! given, comma-separated. Besides the steps, `consent` names the point right after the plan,
//! and `replay-mounted:crash` ends the process while the log replay mount is in place.
//!
//! Written by hand: the `fail` crate needs a compile-time feature, and these points must work
//! in the binary CI tests (a release build an admin runs ignores nothing: the variable is
//! read only by the repair command and only names steps).

/// The environment variable.
pub const VARIABLE: &str = "SNAPGUARD_FAILPOINT";

/// A file `STEP:pause` creates once it waits.
pub const PAUSED_FILE: &str = "SNAPGUARD_FAILPOINT_PAUSED";

/// How long `STEP:pause` waits at most.
pub const PAUSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The step fails with an injected error.
    Fail,
    /// The process exits at once (exit 8), leaving whatever state it was in.
    Crash,
    /// Wait (up to [`PAUSE_LIMIT`], or until a signal arrives), then go on.
    Pause,
}

/// The action armed for `step`, if any.
pub fn armed(step: &str) -> Option<Action> {
    let value = std::env::var(VARIABLE).ok()?;
    parse(&value, step)
}

fn parse(value: &str, step: &str) -> Option<Action> {
    value.split(',').map(str::trim).find_map(|item| {
        let (name, action) = item.split_once(':').unwrap_or((item, "fail"));
        let action = match action {
            "crash" => Action::Crash,
            "pause" => Action::Pause,
            _ => Action::Fail,
        };
        (name == step).then_some(action)
    })
}

/// Wait at `step` until a deferred signal arrives or [`PAUSE_LIMIT`] passes.
pub fn pause(step: &str) {
    tracing::warn!(
        "{VARIABLE}: paused before {step} (pid {})",
        std::process::id()
    );
    if let Some(file) = std::env::var_os(PAUSED_FILE) {
        let _ = std::fs::write(file, step);
    }
    let start = std::time::Instant::now();
    while crate::sys::interrupt::received().is_none() && start.elapsed() < PAUSE_LIMIT {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_actions() {
        assert_eq!(parse("unmount", "unmount"), Some(Action::Fail));
        assert_eq!(parse("fence, repair:crash", "repair"), Some(Action::Crash));
        assert_eq!(parse("fence", "repair"), None);
        assert_eq!(parse("check:pause", "check"), Some(Action::Pause));
        assert_eq!(parse("", "repair"), None);
    }
}
