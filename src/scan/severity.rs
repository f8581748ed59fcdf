//! The one table of scan severities: every finding id (and each case of it that is judged
//! differently) with its severity in each context. The assessors take their severities from
//! here and the README's "Severities" table is checked against it.
//!
//! Rules the table follows (README "Severities"):
//! * recorded errors and anything that makes the kernel refuse to mount are critical in
//!   every context;
//! * a damaged primary superblock is critical for ext, XFS and btrfs even when a backup or
//!   mirror is good: their kernels read only the primary (ext4 without `-o sb=`, XFS's
//!   sector 0, btrfs's copy at 64 KiB) and refuse to mount until `e2fsck`, `xfs_repair`
//!   or `btrfs rescue super-recover` rewrites it. f2fs differs: its kernel and fsck.f2fs
//!   use the good backup on their own, so there it is a warning;
//! * a replay marker is info where it is expected (live, crash copy; XFS and f2fs also
//!   frozen) and a warning where it should not be;
//! * a bit that neither `tune2fs -l` nor `e2fsck` shows or acts on is info;
//! * a target that cannot be assessed (truncated, unknown features or checksum type)
//!   carries a warning and is `unknown`.

use crate::report::{Context, Finding, Severity};

/// One row: a finding id, the case (empty when the id has one), and its severity in the
/// contexts `live`, `crash`, `frozen`, `offline`, in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The finding id (JSON `id`).
    pub id: &'static str,
    /// Which case of the id, as the README names it; empty when the id has one case.
    pub case: &'static str,
    /// Severity when `live`, `crash`, `frozen`, `offline`.
    pub by_context: [Severity; 4],
}

impl Rule {
    /// The severity of this finding in `context`.
    pub const fn severity(&self, context: Context) -> Severity {
        self.by_context[match context {
            Context::Live => 0,
            Context::Crash => 1,
            Context::Frozen => 2,
            Context::Offline => 3,
        }]
    }

    /// A finding of this rule in `context`.
    pub fn finding(&self, context: Context, message: impl Into<String>) -> Finding {
        Finding::new(self.id, self.severity(context), message)
    }
}

/// The order of the context columns in [`Rule::by_context`] and the README table.
pub const CONTEXTS: [Context; 4] = [
    Context::Live,
    Context::Crash,
    Context::Frozen,
    Context::Offline,
];

macro_rules! rules {
    ($($name:ident = $id:literal, $case:literal, [$l:ident, $c:ident, $f:ident, $o:ident];)*) => {
        $(
            #[doc = concat!("`", $id, "` ", $case)]
            pub const $name: Rule = Rule {
                id: $id,
                case: $case,
                by_context: [sev!($l), sev!($c), sev!($f), sev!($o)],
            };
        )*
        /// Every rule, in README order.
        pub const TABLE: &[Rule] = &[$($name),*];
        /// The constant name of every rule, in [`TABLE`] order (for tests that tie code to rows).
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

macro_rules! sev {
    (I) => {
        Severity::Info
    };
    (W) => {
        Severity::Warning
    };
    (C) => {
        Severity::Critical
    };
}

rules! {
    SCAN_IN_USE = "scan.in-use", "image or device under a mounted loop device or stack", [I, I, I, I];
    DISK_NOT_SCANNED = "disk.not-scanned", "LVM2 PV, LUKS, swap or unknown partition", [I, I, I, I];
    DISK_VHD_FIXED = "disk.vhd-fixed", "", [I, I, I, I];

    EXT_JOURNAL_DEVICE = "ext.journal-device", "", [I, I, I, I];
    EXT_CHECKSUM_MISMATCH = "ext.checksum-mismatch", "primary superblock, backup good or not", [C, C, C, C];
    EXT_BACKUP_SUPERBLOCK_USED = "ext.backup-superblock-used", "", [I, I, I, I];
    EXT_SUPERBLOCK_CORRUPT = "ext.superblock-corrupt", "", [C, C, C, C];
    EXT_GROUP_DESCRIPTORS_BAD = "ext.group-descriptors-bad", "", [C, C, C, C];
    EXT_SUMMARY_COUNTS_DIFFER = "ext.summary-counts-differ", "", [I, I, I, I];
    EXT_UNKNOWN_FEATURES = "ext.unknown-features", "status unknown", [W, W, W, W];
    EXT_TRUNCATED = "ext.truncated", "status unknown", [W, W, W, W];
    EXT_ERRORS_FLAG = "ext.errors-flag", "", [C, C, C, C];
    EXT_NOT_CLEAN_BACKUP = "ext.not-clean", "read from the backup superblock", [W, W, W, W];
    EXT_NOT_CLEAN_NO_JOURNAL = "ext.not-clean", "no journal", [I, I, I, W];
    EXT_NOT_CLEAN_JOURNAL = "ext.not-clean", "with a journal", [W, W, W, W];
    EXT_ORPHAN_FS_STATE = "ext.orphan-fs-state", "", [I, I, I, I];
    EXT_FC_REPLAY_STATE = "ext.fc-replay-state", "", [I, I, I, I];
    EXT_NEEDS_RECOVERY_WITHOUT_JOURNAL = "ext.needs-recovery-without-journal", "", [C, C, C, C];
    EXT_NEEDS_RECOVERY = "ext.needs-recovery", "", [I, I, W, W];
    EXT_ORPHANS_PENDING = "ext.orphans-pending", "", [I, I, I, W];
    EXT_ERROR_HISTORY_FLAGGED = "ext.error-history", "errors flag set", [C, C, C, C];
    EXT_ERROR_HISTORY_UNFLAGGED = "ext.error-history", "errors flag clear", [W, W, W, W];
    EXT_EXTERNAL_JOURNAL = "ext.external-journal", "", [I, I, I, I];
    EXT_JOURNAL_INVALID = "ext.journal-invalid", "", [C, C, C, C];
    EXT_JOURNAL_ERRNO = "ext.journal-errno", "", [C, C, C, C];
    EXT_JOURNAL_DATA_FLAG_CLEAR = "ext.journal-data-flag-clear", "", [W, W, W, W];
    EXT_MOUNT_COUNT_DUE = "ext.mount-count-due", "", [I, I, I, I];
    EXT_LAST_CHECK_IN_FUTURE = "ext.last-check-in-future", "", [W, W, W, W];
    EXT_CHECK_INTERVAL_DUE = "ext.check-interval-due", "", [I, I, I, I];
    EXT_MMP_UNREADABLE = "ext.mmp-in-use", "MMP block unreadable", [W, W, W, W];
    EXT_MMP_IN_USE = "ext.mmp-in-use", "in use by a node", [I, W, W, W];
    EXT_MMP_FSCK_RUNNING = "ext.mmp-fsck-running", "", [W, W, W, W];
    EXT_LIVE_ERRORS_NONE = "ext.live-errors", "none, device unreadable", [I, I, I, I];
    EXT_LIVE_ERRORS = "ext.live-errors", "errors since mount", [C, C, C, C];

    XFS_TRUNCATED = "xfs.truncated", "status unknown", [W, W, W, W];
    XFS_CRC_MISMATCH = "xfs.crc-mismatch", "primary superblock", [C, C, C, C];
    XFS_UNKNOWN_FEATURES = "xfs.unknown-features", "status unknown", [W, W, W, W];
    XFS_INPROGRESS = "xfs.inprogress", "", [C, C, C, C];
    XFS_NEEDS_REPAIR = "xfs.needs-repair", "", [C, C, C, C];
    XFS_EXTERNAL_LOG = "xfs.external-log", "", [I, I, I, I];
    XFS_LOG_UNREADABLE = "xfs.log-unreadable", "", [C, C, C, C];
    XFS_DIRTY_LOG = "xfs.dirty-log", "", [I, I, I, W];

    BTRFS_TRUNCATED = "btrfs.truncated", "status unknown", [W, W, W, W];
    BTRFS_CSUM_MISMATCH = "btrfs.csum-mismatch", "primary superblock, mirror good or not", [C, C, C, C];
    BTRFS_INVALID_SUPERBLOCK = "btrfs.invalid-superblock", "primary superblock, mirror good or not", [C, C, C, C];
    BTRFS_MIRROR_USED = "btrfs.mirror-used", "", [I, I, I, I];
    BTRFS_CSUM_NOT_VERIFIED = "btrfs.csum-not-verified", "unknown checksum type, status unknown", [W, W, W, W];
    BTRFS_ERROR_FLAG = "btrfs.error-flag", "", [C, C, C, C];
    BTRFS_INTERRUPTED_OPERATION = "btrfs.interrupted-operation", "", [C, C, C, C];
    BTRFS_METADUMP_IMAGE = "btrfs.metadump-image", "", [W, W, W, W];
    BTRFS_SEED_DEVICE = "btrfs.seed-device", "", [I, I, I, I];
    BTRFS_LOG_TREE = "btrfs.log-tree", "", [I, I, W, W];
    BTRFS_DEVICE_IO_ERRORS = "btrfs.device-errors", "I/O errors only", [W, W, W, W];
    BTRFS_DEVICE_INTEGRITY_ERRORS = "btrfs.device-errors", "corruption or generation errors", [C, C, C, C];

    FAT_TRUNCATED = "fat.truncated", "status unknown", [W, W, W, W];
    FAT_HARD_ERRORS = "fat.hard-errors", "", [C, C, C, C];
    FAT_DIRTY = "fat.dirty", "", [I, I, I, W];

    EXFAT_TRUNCATED = "exfat.truncated", "status unknown", [W, W, W, W];
    EXFAT_CHECKSUM_MISMATCH = "exfat.checksum-mismatch", "", [C, C, C, C];
    EXFAT_MEDIA_FAILURE = "exfat.media-failure", "", [C, C, C, C];
    EXFAT_DIRTY = "exfat.dirty", "", [I, I, W, W];

    F2FS_TRUNCATED = "f2fs.truncated", "status unknown", [W, W, W, W];
    F2FS_CSUM_MISMATCH_BACKUP_GOOD = "f2fs.csum-mismatch", "primary superblock, backup good", [W, W, W, W];
    F2FS_CSUM_MISMATCH_NO_BACKUP = "f2fs.csum-mismatch", "primary superblock, backup bad", [C, C, C, C];
    F2FS_CSUM_MISMATCH_OTHER_PACK = "f2fs.csum-mismatch", "older checkpoint pack", [I, I, I, I];
    F2FS_INVALID_SUPERBLOCK_BACKUP_GOOD = "f2fs.invalid-superblock", "primary superblock, backup good", [W, W, W, W];
    F2FS_INVALID_SUPERBLOCK_NO_BACKUP = "f2fs.invalid-superblock", "primary superblock, backup bad", [C, C, C, C];
    F2FS_CHECKPOINT_UNREADABLE = "f2fs.checkpoint-unreadable", "", [C, C, C, C];
    F2FS_NEED_FSCK = "f2fs.need-fsck", "", [C, C, C, C];
    F2FS_ERRORS_CHECKPOINT = "f2fs.errors", "checkpoint error flag", [C, C, C, C];
    F2FS_ERRORS_SUPERBLOCK = "f2fs.errors", "errors in the superblock", [C, C, C, C];
    F2FS_NOT_UNMOUNTED = "f2fs.not-unmounted", "", [I, I, I, W];
    F2FS_STOP_REASON_FAULT = "f2fs.stop-reason", "a fault", [C, C, C, C];
    F2FS_STOP_REASON_SHUTDOWN = "f2fs.stop-reason", "shutdown only", [W, W, W, W];
}

/// The heading row of the README table.
pub const HEADER: &str = "| finding id | case | live | crash | frozen | offline |";

fn word(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// One README row of `rule`.
pub fn markdown_row(rule: &Rule) -> String {
    let cells: Vec<&str> = rule.by_context.iter().map(|s| word(*s)).collect();
    format!(
        "| `{}` | {} | {} |",
        rule.id,
        if rule.case.is_empty() { "" } else { rule.case },
        cells.join(" | ")
    )
}

/// The whole README table: header, separator and one row per rule.
pub fn markdown_table() -> String {
    let mut out = vec![HEADER.to_string(), "|---|---|---|---|---|---|".to_string()];
    out.extend(TABLE.iter().map(markdown_row));
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "<!-- severity-table:start -->";
    const END: &str = "<!-- severity-table:end -->";

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let start = readme
            .find(START)
            .expect("README has the severity table start marker");
        let end = readme
            .find(END)
            .expect("README has the severity table end marker");
        let section = readme[start + START.len()..end].trim();
        let expected = markdown_table();
        let got: Vec<&str> = section.lines().collect();
        let want: Vec<&str> = expected.lines().collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "README severity table line {}", i + 1);
        }
        assert_eq!(
            got.len(),
            want.len(),
            "README severity table has {} lines, the code {}; expected:\n{expected}",
            got.len(),
            want.len()
        );
    }

    #[test]
    fn rows_are_unique_and_ids_are_namespaced() {
        let mut seen = std::collections::BTreeSet::new();
        for rule in TABLE {
            assert!(seen.insert((rule.id, rule.case)), "duplicate row {rule:?}");
            let fs = rule.id.split('.').next().unwrap_or("");
            assert!(
                [
                    "scan", "disk", "ext", "xfs", "btrfs", "fat", "exfat", "f2fs"
                ]
                .contains(&fs),
                "{rule:?}"
            );
        }
        // An id with several rows names every case.
        for rule in TABLE {
            let rows = TABLE.iter().filter(|r| r.id == rule.id).count();
            assert!(rows == 1 || !rule.case.is_empty(), "{rule:?}");
        }
        assert_eq!(NAMES.len(), TABLE.len());
    }

    /// The assessors take every severity from this table: no finding in src/scan is built
    /// with a literal severity outside this file and the tests.
    #[test]
    fn scan_code_takes_severities_from_the_table() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/scan");
        let mut used = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("src/scan") {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs")
                || path.ends_with("severity.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                assert!(
                    !line.contains("Finding::new(") && !line.contains("Finding {"),
                    "{}:{}: a severity not taken from scan::severity: {line}",
                    path.display(),
                    n + 1
                );
            }
            for name in NAMES {
                if code.contains(&format!("severity::{name}"))
                    || code.contains(&format!("rules::{name}"))
                {
                    used.insert(*name);
                }
            }
        }
        let unused: Vec<&&str> = NAMES.iter().filter(|n| !used.contains(*n)).collect();
        assert!(unused.is_empty(), "rows no assessor uses: {unused:?}");
    }
}
