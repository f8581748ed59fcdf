//! Pure on-disk parsers: bytes in, structs out, no I/O (callbacks where more bytes are
//! needed). Every parser survives arbitrary input without panicking.

pub mod btrfs;
pub(crate) mod bytes;
pub mod crc;
pub mod exfat;
pub mod ext;
pub mod f2fs;
pub mod fat;
pub mod partition;
pub mod signature;
pub mod uuid;
pub mod xfs;
