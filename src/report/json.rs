//! JSON renderer: one pretty-printed document per run, newline-terminated.

use serde::Serialize;
use std::io::{self, Write};

/// Serialise `document` to `out` followed by a newline. The document is built in memory and
/// written at once: serde_json writes token by token, and each token through `dyn Write` costs
/// a call, which made writing a third of a 100-image scan's CPU time.
pub fn write<T: Serialize>(document: &T, out: &mut dyn Write) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(document).map_err(io::Error::other)?;
    bytes.push(b'\n');
    out.write_all(&bytes)?;
    out.flush()
}
