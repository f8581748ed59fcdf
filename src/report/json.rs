//! JSON renderer: one pretty-printed document per run, newline-terminated.

use serde::Serialize;
use std::io::{self, Write};

/// Serialise `document` to `out` followed by a newline.
pub fn write<T: Serialize>(document: &T, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, document).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    out.flush()
}
