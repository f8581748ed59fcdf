//! JSON renderer: one pretty-printed document per run, newline-terminated.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// Serialise `document` to `out` followed by a newline, through a 32 KiB buffer: serde_json
/// writes token by token, and each token through `dyn Write` costs a call (a third of a
/// 100-image scan's CPU time), while building the whole document first made a growing Vec
/// touch (page-fault) three times its final size. A buffer of fixed size does neither.
/// The layout is serde_json's pretty one, byte for byte (see [`Pretty`]).
pub fn write<T: Serialize>(document: &T, out: &mut dyn Write) -> io::Result<()> {
    let mut buffered = io::BufWriter::with_capacity(32 * 1024, out);
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffered, Pretty::default());
    document
        .serialize(&mut serializer)
        .map_err(io::Error::other)?;
    buffered.write_all(b"\n")?;
    buffered.flush()
}

/// A comma, a newline and the deepest indentation written at once; deeper levels (none in
/// our reports) take more writes.
const BREAK: &[u8; 2 + 2 * 32] =
    b",\n                                                                ";

/// serde_json's `PrettyFormatter` with two-space indents, writing each line break and its
/// indentation in one write instead of one per level: a 100-image report has ~10 000 of them,
/// 4-5 levels deep, and every write into the buffer is a call and a copy (measured with
/// callgrind: about a tenth of the instructions of a 100-image ext scan).
#[derive(Debug, Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// `,\n` (or `\n` when `first`) and the indentation of the current depth.
    fn line_break<W: ?Sized + Write>(&self, writer: &mut W, first: bool) -> io::Result<()> {
        let start = usize::from(first);
        let spaces = 2 * self.depth;
        if let Some(line) = BREAK.get(start..2 + spaces) {
            return writer.write_all(line);
        }
        writer.write_all(&BREAK[start..2])?;
        for _ in 0..self.depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        if self.has_value {
            self.line_break(writer, true)?;
        }
        writer.write_all(bracket)
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.line_break(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.line_break(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(value: &serde_json::Value) -> String {
        let mut out = Vec::new();
        write(value, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_bytes_as_serde_json_pretty() {
        let mut deep = serde_json::json!("leaf");
        for i in 0..40 {
            deep = if i % 2 == 0 {
                serde_json::json!([deep, i, {}])
            } else {
                serde_json::json!({ "k": deep, "e": [], "s": "a\"b\n" })
            };
        }
        for value in [
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!({"a": [1, {"b": []}, {"c": {"d": null}}], "e": "x"}),
            deep,
        ] {
            let expected = serde_json::to_string_pretty(&value).unwrap() + "\n";
            assert_eq!(ours(&value), expected);
        }
    }
}
