//! Error type shared by the ext2/3/4, jbd2 and MMP parsers.

/// Why an on-disk ext structure could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ExtError {
    /// Fewer bytes were supplied than the structure needs.
    #[error("{what} truncated: need {needed} bytes, got {got}")]
    Truncated {
        /// The structure being parsed, e.g. "ext superblock".
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes supplied.
        got: usize,
    },
    /// The magic number did not match.
    #[error("{what}: bad magic {found:#x}")]
    BadMagic {
        /// The structure being parsed.
        what: &'static str,
        /// The value found where the magic should be.
        found: u32,
    },
    /// The structure is internally inconsistent.
    #[error("{what} is corrupt: {detail}")]
    Corrupt {
        /// The structure being parsed.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The structure is valid but uses something this parser does not handle.
    #[error("{what} is not supported: {detail}")]
    Unsupported {
        /// The structure being parsed.
        what: &'static str,
        /// What is not supported.
        detail: String,
    },
    /// The block-reading callback failed.
    #[error("i/o error reading {what} at block {block}: {source}")]
    Io {
        /// What was being read, e.g. "extent index block".
        what: &'static str,
        /// The physical block number that was requested.
        block: u64,
        /// The error returned by the callback.
        #[source]
        source: std::io::Error,
    },
}
