//! Pure mountinfo parsing (with full `\ooo` unescaping) and a mount table keyed by superblock.
//!
//! No I/O happens here: callers read `<root>/proc/self/mountinfo` through `SysRoot` and hand the
//! bytes to [`MountTable::from_mountinfo`] or [`mountinfo::parse`].

pub mod mountinfo;
pub mod table;

pub use mountinfo::{MountInfo, MountInfoError, MountInfoErrorKind, parse, parse_all, parse_line};
pub use table::{MountTable, SuperblockMounts, is_block_backed, is_pseudo_fstype};
