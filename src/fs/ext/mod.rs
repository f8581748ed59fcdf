//! Pure on-disk parsers for ext2/ext3/ext4 superblocks, the jbd2 journal superblock, MMP blocks and the inode/extent structures needed to find the journal: bytes in, structs out, no I/O.

pub mod blockwalk;
pub mod features;
pub mod groups;
pub mod inode;
pub mod journal;
pub mod mmp;
pub mod superblock;

mod error;

pub use error::ExtError;

/// The bounds-checked readers, shared with the other parsers.
pub(crate) use super::bytes;
