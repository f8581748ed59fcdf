//! Predicts what `e2fsck -n` decides before its passes: the "check forced" reason, or none.
//!
//! This mirrors e2fsprogs 1.47 `e2fsck/unix.c` `check_if_skip()` and the parts of
//! `e2fsck_check_ext3_journal()` that change the in-memory superblock under `-n`. The
//! order of the tests is e2fsck's, and so are the texts (without e2fsck's leading space).
//! Pure: everything it needs is passed in.

use crate::fs::ext::superblock::{EXT2_ERROR_FS, EXT2_VALID_FS, Superblock};

/// How far back e2fsck accepts a last-check time in the future (`accept_time_fudge`,
/// default on: one day).
const TIME_FUDGE_SECS: i64 = 86_400;

/// What e2fsck -n does with the journal before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalVerdict {
    /// No journal features at all: nothing to check.
    NoJournal,
    /// The journal superblock loaded; these are its fields.
    Loaded { start: u32, errno: i32 },
    /// e2fsck cannot load or make sense of the journal (bad inode, bad superblock,
    /// unsupported journal features, needs_recovery without a journal, external journal
    /// not available): under `-n` it aborts before deciding anything.
    Fatal,
}

/// Inputs beyond the superblock that e2fsck's decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct FsckInputs {
    /// Outcome of the journal checks.
    pub journal: JournalVerdict,
    /// e2fsck's superblock/group-descriptor checks found a problem and cleared its
    /// in-memory "valid" flag (`ext2fs_unmark_valid`).
    pub marked_invalid: bool,
    /// Unix time "now", as e2fsck would read it.
    pub now: i64,
}

/// The decision: `None` means e2fsck -n prints `clean` and skips the check (or aborts
/// before deciding, see [`JournalVerdict::Fatal`]).
pub fn fsck_reason(sb: &Superblock, inputs: &FsckInputs) -> Option<String> {
    let mut state = sb.state;
    match inputs.journal {
        JournalVerdict::Fatal => return None,
        JournalVerdict::Loaded { errno, .. } if errno != 0 && !sb.needs_recovery() => {
            // A journal abort recorded in the journal: e2fsck marks the fs as having errors.
            state |= EXT2_ERROR_FS;
        }
        _ => {}
    }
    // An orphan file with orphans present forces a full check without any message.
    if sb.has_orphan_file() && sb.orphan_present() {
        return None;
    }
    // e2fsck 1.47 reads only the low 32 bits of s_lastcheck here.
    let lastcheck_raw = i64::from(sb.lastcheck as u32);
    let lastcheck = if lastcheck_raw > inputs.now {
        lastcheck_raw - TIME_FUDGE_SECS
    } else {
        lastcheck_raw
    };
    let max_mnt_count = sb.max_mnt_count;
    let reason = if state & EXT2_ERROR_FS != 0 || inputs.marked_invalid {
        "contains a file system with errors".to_string()
    } else if state & EXT2_VALID_FS == 0 {
        "was not cleanly unmounted".to_string()
    } else if max_mnt_count > 0 && u32::from(sb.mnt_count) >= max_mnt_count as u32 {
        // (The "primary superblock features different from backup" test sits before this
        // one in e2fsck but is skipped for read-only checks, so -n never prints it.)
        format!(
            "has been mounted {} times without being checked",
            sb.mnt_count
        )
    } else if sb.checkinterval != 0 && inputs.now < lastcheck {
        "has filesystem last checked time in the future".to_string()
    } else if sb.checkinterval != 0 && inputs.now - lastcheck >= i64::from(sb.checkinterval) {
        let days = (inputs.now - lastcheck_raw) / 86_400;
        // e2fsck prints this with %u of an unsigned int.
        format!("has gone {} days without being checked", days as u32)
    } else {
        return None;
    };
    Some(reason)
}
