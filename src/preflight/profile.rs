//! Exit-code profiles of `preflight`: one run, the exit code its caller understands
//! (Nagios, systemd's `ExecCondition=`, Azure's VMSnapshot pre-script).

use crate::report::{Decision, Status};

/// Who reads the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Monitoring plugins: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the worst status; a
    /// blocking item is at least CRITICAL).
    Nagios,
    /// The same codes as nagios, for a person at a terminal.
    Human,
    /// systemd ExecCondition=/ExecStartPre=: 0 go, 1 blocked, 2 cannot tell (never 255).
    Systemd,
    /// Azure VMSnapshot pre-script: 0 healthy, 2 go with warnings, 1 blocked or cannot tell.
    Azure,
}

/// Exit codes of the systemd profile.
pub mod systemd {
    /// Nothing blocks the backup.
    pub const GO: u8 = 0;
    /// Something blocks it.
    pub const BLOCKED: u8 = 1;
    /// A section could not run or could not tell.
    pub const CANNOT_TELL: u8 = 2;
}

/// Exit codes of the Azure profile (ScriptRunner: 0 and 2 are success, the rest fails).
pub mod azure {
    /// Healthy: no finding worth a warning.
    pub const HEALTHY: u8 = 0;
    /// Blocked, or cannot tell: Azure fails the pre-script.
    pub const FAILED: u8 = 1;
    /// Findings, none blocking: Azure goes on (a warning).
    pub const WARNINGS: u8 = 2;
}

impl Profile {
    /// The JSON spelling.
    pub fn word(self) -> &'static str {
        match self {
            Profile::Nagios => "nagios",
            Profile::Human => "human",
            Profile::Systemd => "systemd",
            Profile::Azure => "azure",
        }
    }

    /// The exit code for a run that decided `decision` with worst status `status` (already
    /// at least critical when blocked).
    pub fn exit_code(self, decision: Decision, status: Status) -> u8 {
        match self {
            Profile::Nagios | Profile::Human => match decision {
                Decision::Blocked => Status::Critical.exit_code(),
                _ => status.exit_code(),
            },
            Profile::Systemd => match decision {
                Decision::Go => systemd::GO,
                Decision::Blocked => systemd::BLOCKED,
                Decision::CannotTell => systemd::CANNOT_TELL,
            },
            Profile::Azure => match decision {
                Decision::Blocked | Decision::CannotTell => azure::FAILED,
                Decision::Go if status == Status::Ok => azure::HEALTHY,
                Decision::Go => azure::WARNINGS,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_maps_every_outcome() {
        use Decision::*;
        use Status::*;
        let cases = [
            (Go, Ok, [0, 0, 0]),
            (Go, Warning, [1, 0, 2]),
            // A critical finding that does not block (an environment check): go, with it.
            (Go, Critical, [2, 0, 2]),
            (Blocked, Critical, [2, 1, 1]),
            (CannotTell, Unknown, [3, 2, 1]),
        ];
        for (decision, status, [nagios, systemd, azure]) in cases {
            assert_eq!(Profile::Nagios.exit_code(decision, status), nagios);
            assert_eq!(Profile::Human.exit_code(decision, status), nagios);
            assert_eq!(Profile::Systemd.exit_code(decision, status), systemd);
            assert_eq!(Profile::Azure.exit_code(decision, status), azure);
        }
    }

    #[test]
    fn systemd_never_exits_255_and_azure_go_codes_are_0_and_2() {
        for d in [Decision::Go, Decision::Blocked, Decision::CannotTell] {
            for s in [
                Status::Ok,
                Status::Warning,
                Status::Critical,
                Status::Unknown,
            ] {
                assert_ne!(Profile::Systemd.exit_code(d, s), 255);
                let azure = Profile::Azure.exit_code(d, s);
                assert_eq!(azure == 0 || azure == 2, d == Decision::Go, "{d:?} {s:?}");
            }
        }
    }
}
