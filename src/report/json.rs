//! JSON renderer: one pretty-printed document per run, newline-terminated.

use serde::Serialize;
use std::io::{self, Write};

/// Serialise `document` to `out` followed by a newline, through a 32 KiB buffer: serde_json
/// writes token by token, and each token through `dyn Write` costs a call (a third of a
/// 100-image scan's CPU time), while building the whole document first made a growing Vec
/// touch (page-fault) three times its final size. A buffer of fixed size does neither.
pub fn write<T: Serialize>(document: &T, out: &mut dyn Write) -> io::Result<()> {
    let mut buffered = io::BufWriter::with_capacity(32 * 1024, out);
    serde_json::to_writer_pretty(&mut buffered, document).map_err(io::Error::other)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
}
