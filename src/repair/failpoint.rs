//! Failure injection for the rollback tests: `SNAPGUARD_FAILPOINT=STEP` makes that step fail
//! as if its command had failed; `STEP:crash` ends the process at the start of the step with
//! no cleanup, as a SIGKILL would. Several may be given, comma-separated. One point is not a
//! step: `replay-mounted:crash` ends the process while the log replay mount is in place.
//!
//! Written by hand: the `fail` crate needs a compile-time feature, and these points must work
//! in the binary CI tests (a release build an admin runs ignores nothing: the variable is
//! read only by the repair command and only names steps).

/// The environment variable.
pub const VARIABLE: &str = "SNAPGUARD_FAILPOINT";

/// What an armed failpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The step fails with an injected error.
    Fail,
    /// The process exits at once (exit 8), leaving whatever state it was in.
    Crash,
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
            _ => Action::Fail,
        };
        (name == step).then_some(action)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_actions() {
        assert_eq!(parse("unmount", "unmount"), Some(Action::Fail));
        assert_eq!(parse("fence, repair:crash", "repair"), Some(Action::Crash));
        assert_eq!(parse("fence", "repair"), None);
        assert_eq!(parse("", "repair"), None);
    }
}
