//! Reports: the data model and the only code that writes to stdout (human and JSON renderers).

pub mod human;
pub mod human_preflight;
pub mod json;
pub mod model;
pub mod preflight;
pub mod repair;

pub use model::*;
pub use preflight::*;
pub use repair::*;

use std::io::{self, Write};

/// Output format chosen with `--format` / `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Human,
    /// One JSON document on stdout, for hooks and monitoring (schema_version 1).
    Json,
}

/// Write `report` to `out` in `format`.
pub fn write_scan(report: &ScanReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::write_scan(report, out),
        Format::Json => json::write(report, out),
    }
}

// ---- freeze-test, freeze, thaw (issue #4) ------------------------------------------------------
/// Write a `freeze-test` document.
pub fn write_freeze_test(
    report: &FreezeTestReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::write_freeze_test(report, out),
        Format::Json => json::write(report, out),
    }
}

/// Write a `freeze` document.
pub fn write_freeze(report: &FreezeReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::write_freeze(report, out),
        Format::Json => json::write(report, out),
    }
}

/// Write a `thaw` document.
pub fn write_thaw(report: &ThawReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::write_thaw(report, out),
        Format::Json => json::write(report, out),
    }
}
// ---- end freeze-test, freeze, thaw ------------------------------------------------------------

/// Write the `snapguard selinux` report to `out` in `format`.
pub fn write_selinux(
    report: &SelinuxReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::write_selinux(report, out),
        Format::Json => json::write(report, out),
    }
}

/// Write a `repair` document.
pub fn write_repair(report: &RepairReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::write_repair(report, out),
        Format::Json => json::write(report, out),
    }
}

/// Write a `repair --status` document.
pub fn write_repair_status(
    report: &RepairStatusReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human::write_repair_status(report, out),
        Format::Json => json::write(report, out),
    }
}

/// Write a `preflight` document.
pub fn write_preflight(
    report: &PreflightReport,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human_preflight::write_preflight(report, out),
        Format::Json => json::write(report, out),
    }
}
