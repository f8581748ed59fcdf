//! E8–E9: CPU, memory and I/O pressure (PSI, `/proc/pressure/*`) and available memory
//! (`/proc/meminfo`), both parsed by the `procfs` crate. Azure's guide: above 90 % CPU or
//! memory, "snapshot tasks queue and time out".
//!
//! procfs's parsers index by byte (`&line[5..]`, `field[..len - 1]`) and multiply kB values
//! unchecked, so each is handed only text that cannot make it panic: ASCII lines, long enough,
//! `kB` values of at most 15 digits.

use crate::report::model::{Check, CheckStatus};
use crate::root::{PROC_MEMINFO, PROC_PRESSURE, SysRoot};
use crate::selinux::{Input, read_input};
use procfs::{FromRead, Meminfo, PressureRecord};

pub const E8: &str = "E8";
pub const E9: &str = "E9";
const E8_TITLE: &str = "CPU, memory and I/O pressure";
const E9_TITLE: &str = "available memory";

/// `some avg60` at or above this percentage warns (Azure: "above 90 %").
pub const PRESSURE_WARN: f32 = 90.0;
/// `MemAvailable` below this share of `MemTotal` warns.
pub const MEM_AVAILABLE_MIN: f64 = 0.10;

/// One `/proc/pressure/<resource>` file: the `some` line, and `full` when present (CPU has none
/// before Linux 5.13).
#[derive(Debug, Clone)]
pub struct Psi {
    pub some: PressureRecord,
    pub full: Option<PressureRecord>,
}

/// Parse a PSI file with procfs's record parser; `None` without a valid `some` line.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let record = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .filter(|l| l.is_ascii() && l.len() > prefix.len())
            .and_then(|l| procfs::parse_pressure_record(l).ok())
    };
    let some = record("some ")?;
    let valid = |r: &PressureRecord| {
        [r.avg10, r.avg60, r.avg300]
            .iter()
            .all(|v| v.is_finite() && (0.0..=100.0).contains(v))
    };
    if !valid(&some) {
        return None;
    }
    Some(Psi {
        some,
        full: record("full ").filter(valid),
    })
}

/// `(MemTotal, MemAvailable)` in bytes from `/proc/meminfo` text, parsed by procfs; `None`
/// when it lacks the fields procfs requires. `MemAvailable` is `None` before Linux 3.14.
pub fn parse_meminfo(text: &str) -> Option<(u64, Option<u64>)> {
    let safe: String = text
        .lines()
        .filter(|l| meminfo_line_is_safe(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    let info = Meminfo::from_read(safe.as_bytes()).ok()?;
    Some((info.mem_total, info.mem_available))
}

/// `Name:   12345 kB` or `Name: 12345`: ASCII, a colon-terminated name, at most 15 digits.
fn meminfo_line_is_safe(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
        return false;
    };
    let unit_ok = match fields.next() {
        None => true,
        Some(u) => u == "kB" && fields.next().is_none(),
    };
    line.is_ascii()
        && name.len() > 1
        && name.ends_with(':')
        && (1..=15).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_digit())
        && unit_ok
}

/// E8.
pub fn psi(root: &SysRoot) -> Check {
    let c = |status, msg: String| Check::new(E8, E8_TITLE, status, msg);
    let mut details = Vec::new();
    let mut high = Vec::new();
    let mut missing = Vec::new();
    for resource in ["cpu", "memory", "io"] {
        let path = root.path(PROC_PRESSURE).join(resource);
        let text = match read_input(&path) {
            Input::Missing => {
                missing.push(resource);
                continue;
            }
            Input::Unreadable(why) if why.contains("ermission denied") => {
                return Check::cannot_read(
                    E8,
                    E8_TITLE,
                    format!("cannot read /proc/pressure/{resource}: {why}"),
                );
            }
            // EOPNOTSUPP: the kernel has PSI but it was disabled at boot (psi=0).
            Input::Unreadable(why) => {
                return c(
                    CheckStatus::Skip,
                    format!(
                        "pressure stall information is disabled (/proc/pressure/{resource}: {why}): cannot tell"
                    ),
                );
            }
            Input::Text(t) => t,
        };
        let Some(p) = parse_psi(&text) else {
            return c(
                CheckStatus::Skip,
                format!("/proc/pressure/{resource} has no valid `some` line: cannot tell"),
            );
        };
        let full = p
            .full
            .as_ref()
            .map_or(String::new(), |f| format!(", full avg60 {:.1} %", f.avg60));
        details.push(format!(
            "{resource}: some avg10 {:.1} %, avg60 {:.1} %, avg300 {:.1} %{full}",
            p.some.avg10, p.some.avg60, p.some.avg300
        ));
        if p.some.avg60 >= PRESSURE_WARN {
            high.push(format!("{resource} {:.1} %", p.some.avg60));
        }
    }
    if missing.len() == 3 {
        return c(
            CheckStatus::Skip,
            "no /proc/pressure (kernel before 4.20, or built without PSI): cannot tell".into(),
        );
    }
    if !missing.is_empty() {
        return c(
            CheckStatus::Skip,
            format!("/proc/pressure lacks {}: cannot tell", missing.join(", ")),
        )
        .with_details(details);
    }
    if !high.is_empty() {
        return c(
            CheckStatus::Warn,
            format!(
                "tasks stalled over the last minute: {} of the time (at {PRESSURE_WARN:.0} % and above, snapshot tasks queue and time out)",
                high.join(", ")
            ),
        )
        .with_remedy("ps -eo pid,comm,%cpu,%mem,stat --sort=-%cpu | head -n 15")
        .with_details(details);
    }
    c(
        CheckStatus::Pass,
        format!(
            "tasks stalled less than {PRESSURE_WARN:.0} % of the last minute on CPU, memory and I/O"
        ),
    )
    .with_details(details)
}

/// E9.
pub fn memory(root: &SysRoot) -> Check {
    let c = |status, msg: String| Check::new(E9, E9_TITLE, status, msg);
    let text = match read_input(&root.path(PROC_MEMINFO)) {
        Input::Missing => {
            return c(
                CheckStatus::Skip,
                "no /proc/meminfo (offline root): cannot tell".into(),
            );
        }
        Input::Unreadable(why) => {
            return Check::cannot_read(E9, E9_TITLE, format!("cannot read /proc/meminfo: {why}"));
        }
        Input::Text(t) => t,
    };
    let Some((total, available)) = parse_meminfo(&text) else {
        return c(
            CheckStatus::Skip,
            "/proc/meminfo lacks MemTotal or the other fields every kernel writes: cannot tell"
                .into(),
        );
    };
    let Some(available) = available else {
        return c(
            CheckStatus::Skip,
            "/proc/meminfo has no MemAvailable (kernel before 3.14): cannot tell".into(),
        );
    };
    if total == 0 {
        return c(CheckStatus::Skip, "MemTotal is 0: cannot tell".into());
    }
    let mib = |b: u64| b / (1024 * 1024);
    let share = available as f64 / total as f64;
    let detail = vec![format!(
        "MemAvailable {} MiB of MemTotal {} MiB ({:.1} %)",
        mib(available),
        mib(total),
        share * 100.0
    )];
    if share < MEM_AVAILABLE_MIN {
        return c(
            CheckStatus::Warn,
            format!(
                "only {:.1} % of memory is available (memory over 90 % used: snapshot tasks queue and time out)",
                share * 100.0
            ),
        )
        .with_remedy("ps -eo pid,comm,rss --sort=-rss | head -n 15")
        .with_details(detail);
    }
    c(
        CheckStatus::Pass,
        format!("{:.1} % of memory is available", share * 100.0),
    )
    .with_details(detail)
}
