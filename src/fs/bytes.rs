//! Bounds-checked little/big-endian readers shared by every on-disk parser.
//!
//! Every reader returns `None` when the requested bytes are not all present, so no caller
//! can panic on short or hostile input.

/// The `N` bytes starting at `offset`, or `None` if any of them is missing.
pub(crate) fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    let slice = bytes.get(offset..end)?;
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    Some(out)
}

/// One byte at `offset`.
pub(crate) fn u8_at(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

/// Little-endian u16 at `offset`.
pub(crate) fn le_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    array(bytes, offset).map(u16::from_le_bytes)
}

/// Little-endian u32 at `offset`.
pub(crate) fn le_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    array(bytes, offset).map(u32::from_le_bytes)
}

/// Little-endian u64 at `offset`.
pub(crate) fn le_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    array(bytes, offset).map(u64::from_le_bytes)
}

/// Big-endian u16 at `offset`.
pub(crate) fn be_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    array(bytes, offset).map(u16::from_be_bytes)
}

/// Big-endian u64 at `offset`.
pub(crate) fn be_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    array(bytes, offset).map(u64::from_be_bytes)
}

/// Big-endian u32 at `offset`.
pub(crate) fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    array(bytes, offset).map(u32::from_be_bytes)
}

/// The bytes of a fixed-size C string field up to (not including) the first NUL,
/// decoded as lossy UTF-8. Missing bytes are treated as the end of the field.
pub(crate) fn c_string(bytes: &[u8], offset: usize, len: usize) -> String {
    let end = offset.saturating_add(len).min(bytes.len());
    let field = bytes.get(offset..end).unwrap_or_default();
    let used = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..used).unwrap_or_default()).into_owned()
}
