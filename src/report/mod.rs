//! Reports: the data model and the only code that writes to stdout (human and JSON renderers).

pub mod human;
pub mod json;
pub mod model;

pub use model::*;

use std::io::{self, Write};

/// Output format chosen with `--format` / `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal, like `tune2fs -l` plus findings.
    Human,
    /// One JSON document (DESIGN.md §1), for hooks and monitoring.
    Json,
}

/// Write `report` to `out` in `format`.
pub fn write_scan(report: &ScanReport, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Human => human::write_scan(report, out),
        Format::Json => json::write(report, out),
    }
}
