//! Pure on-disk parsers: bytes in, structs out, no I/O (callbacks where more bytes are
//! needed). Every parser survives arbitrary input without panicking.

pub mod ext;
pub mod partition;
pub mod signature;
