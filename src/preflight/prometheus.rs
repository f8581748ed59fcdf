//! The `--prometheus` textfile: node_exporter's textfile-collector format (the Prometheus
//! text exposition format 0.0.4), built as a string from the report. Pure: writing it is
//! [`super::textfile`]'s job.

use crate::report::{Decision, PreflightReport, Status, TargetReport, Verdict};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A label value as the exposition format wants it: `\` `"` and newline escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family being written: HELP and TYPE once, then samples with unique label sets
/// (a duplicate — two mounts on one path — keeps the first, as the format forbids repeats).
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    seen: BTreeSet<String>,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        Family {
            out,
            name,
            seen: BTreeSet::new(),
        }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        let mut set = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                set.push(',');
            }
            let _ = write!(set, "{k}=\"{}\"", escape_label(v));
        }
        if !self.seen.insert(set.clone()) {
            return;
        }
        let value = if value.is_nan() {
            "NaN".to_string()
        } else {
            format!("{value}")
        };
        if set.is_empty() {
            let _ = writeln!(self.out, "{} {value}", self.name);
        } else {
            let _ = writeln!(self.out, "{}{{{set}}} {value}", self.name);
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The whole textfile for `report`, run at Unix time `now` (seconds).
pub fn render(report: &PreflightReport, now: f64) -> String {
    let mut out = String::new();
    Family::new(
        &mut out,
        "snapguard_preflight_blocked",
        "1 when at least one check blocks the backup (snapguard preflight), else 0.",
    )
    .sample(&[], bool_value(report.decision == Decision::Blocked));
    Family::new(
        &mut out,
        "snapguard_preflight_cannot_tell",
        "1 when nothing found blocks the backup but a section could not run or could not tell.",
    )
    .sample(&[], bool_value(report.decision == Decision::CannotTell));
    Family::new(
        &mut out,
        "snapguard_preflight_status",
        "Worst status of the run: 0 ok, 1 warning, 2 critical, 3 unknown (Nagios codes).",
    )
    .sample(&[], f64::from(report.status.exit_code()));
    let mut sections = Family::new(
        &mut out,
        "snapguard_section_status",
        "Status of each preflight section: 0 ok, 1 warning, 2 critical, 3 unknown.",
    );
    for s in &report.sections {
        sections.sample(
            &[("section", s.section.word())],
            f64::from(s.status.exit_code()),
        );
    }
    let mut checks = Family::new(
        &mut out,
        "snapguard_check_status",
        "Status of each check (filesystem, mount, SELinux or environment check): 0 ok or not \
         applicable, 1 warning, 2 critical, 3 unknown.",
    );
    for i in &report.items {
        checks.sample(
            &[("section", i.section.word()), ("id", &i.id)],
            f64::from(i.status.status().exit_code()),
        );
    }
    let mut blocks = Family::new(
        &mut out,
        "snapguard_check_blocks_backup",
        "1 when this check blocks the backup, else 0.",
    );
    for i in &report.items {
        blocks.sample(
            &[("section", i.section.word()), ("id", &i.id)],
            bool_value(i.blocks_backup),
        );
    }
    let mut clean = Family::new(
        &mut out,
        "snapguard_filesystem_clean",
        "1 when the filesystem is clean enough to back up, 0 when not clean or with recorded \
         errors, NaN when it could not be assessed.",
    );
    let targets = report.scan.as_ref().map_or(&[][..], |s| &s.targets[..]);
    for t in targets {
        let value = match t.status {
            Status::Unknown => f64::NAN,
            _ => bool_value(super::blocking::filesystem_blocks(t).is_none()),
        };
        clean.sample(&fs_labels(t), value);
    }
    let mut fs_status = Family::new(
        &mut out,
        "snapguard_filesystem_status",
        "Scan status of each filesystem: 0 ok, 1 warning, 2 critical, 3 unknown (the scan's \
         own, before blocking).",
    );
    for t in targets {
        fs_status.sample(&fs_labels(t), f64::from(t.status.exit_code()));
    }
    let mut freezable = Family::new(
        &mut out,
        "snapguard_mount_freezable",
        "1 when the mount point can be frozen (verdict freezable), 0 otherwise; the verdict \
         label says which (skipped and read-only do not block a backup).",
    );
    if let Some(ft) = &report.freeze_test {
        for m in &ft.mounts {
            freezable.sample(
                &[
                    ("mountpoint", &m.mountpoint),
                    ("fstype", &m.fstype),
                    ("verdict", m.verdict.label()),
                ],
                bool_value(m.verdict == Verdict::Freezable),
            );
        }
    }
    Family::new(
        &mut out,
        "snapguard_preflight_duration_seconds",
        "How long the preflight run took.",
    )
    .sample(&[], report.duration_ms / 1000.0);
    Family::new(
        &mut out,
        "snapguard_preflight_last_run_timestamp_seconds",
        "Unix time of the last preflight run that wrote this file.",
    )
    .sample(&[], now);
    out
}

fn fs_labels(t: &TargetReport) -> [(&'static str, &str); 3] {
    [
        ("device", t.device.as_deref().unwrap_or(&t.target)),
        ("mountpoint", t.mountpoint.as_deref().unwrap_or("")),
        ("fstype", t.fstype.as_deref().unwrap_or("")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd é"), "a\\\\b\\\"c\\nd é");
    }

    #[test]
    fn duplicate_label_sets_keep_the_first_and_nan_is_spelled_nan() {
        let mut out = String::new();
        let mut f = Family::new(&mut out, "x", "help");
        f.sample(&[("a", "1")], 1.0);
        f.sample(&[("a", "1")], 2.0);
        f.sample(&[("a", "2")], f64::NAN);
        assert_eq!(
            out,
            "# HELP x help\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"2\"} NaN\n"
        );
    }
}
