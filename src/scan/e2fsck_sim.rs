//! Simulates what `e2fsck -n` (e2fsprogs 1.47.0) does before `check_if_skip`: which superblock it opens (primary or a backup), whether `check_super_block` clears its "valid" flag, or whether it aborts first.
//!
//! The flow mirrors `e2fsck/unix.c` `main` (the `try_open_fs` / "trying backup blocks"
//! / "Trying to load superblock despite errors" / "going back to original superblock"
//! logic), `e2fsck/util.c` `get_backup_sb`, and, through the pure rules of
//! [`crate::fs::ext::groups`], `ext2fs_open2`, `ext2fs_check_desc` and
//! `check_super_block`. All reads go through the [`Volume`].

use super::remedy::Location;
use super::severity as rules;
use super::volume::Volume;
use crate::fs::ext::groups::{
    self, DescProblem, Geometry, GroupDesc, InvalidKind, OpenError, OpenOptions, SbExtra,
};
use crate::fs::ext::superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock};
use crate::report::{Context, Finding};

/// Descriptor tables larger than this are not read: the simulation gives up instead
/// (64 MiB holds 2 Mi descriptors, 256 TiB of filesystem with 128 MiB groups).
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// Which superblock e2fsck ends up using.
// One value per scanned volume: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SuperblockChoice {
    /// The primary superblock at byte 1024.
    Primary,
    /// A backup superblock.
    Backup {
        /// Its byte offset in the volume.
        offset: u64,
        /// The backup as parsed.
        superblock: Superblock,
    },
}

/// The outcome of [`simulate`].
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The superblock e2fsck checks.
    pub superblock: SuperblockChoice,
    /// `check_super_block` (or a problem answered "no") cleared the valid flag: e2fsck
    /// reports "contains a file system with errors".
    pub marked_invalid: bool,
    /// `Some(why)` when e2fsck -n stops before deciding anything.
    pub aborted: Option<String>,
    /// Why `ext2fs_open2` rejected the primary superblock (first attempt).
    pub primary_open_error: Option<OpenError>,
    /// Why `ext2fs_check_desc` rejected the primary's descriptors.
    pub primary_desc_error: Option<DescProblem>,
    /// Why the backup e2fsck tried could not be used, when it could not.
    pub backup_error: Option<String>,
    /// What `check_super_block` reported (superblock, descriptor and device-size problems).
    pub invalid: Vec<groups::Invalid>,
    /// Sum of the groups' free blocks and free inodes, against the superblock's totals,
    /// when they differ (e2fsck 1.47.0 does not count that as an error).
    pub summary_mismatch: Option<SummaryCounts>,
    /// Set when the simulation could not be carried out (then nothing else is claimed).
    pub inconclusive: Option<String>,
}

/// Group sums against superblock totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryCounts {
    /// Sum of the groups' free blocks.
    pub group_free_blocks: u64,
    /// `s_free_blocks_count`.
    pub sb_free_blocks: u64,
    /// Sum of the groups' free inodes.
    pub group_free_inodes: u32,
    /// `s_free_inodes_count`.
    pub sb_free_inodes: u32,
}

impl Simulation {
    fn new() -> Self {
        Simulation {
            superblock: SuperblockChoice::Primary,
            marked_invalid: false,
            aborted: None,
            primary_open_error: None,
            primary_desc_error: None,
            backup_error: None,
            invalid: Vec::new(),
            summary_mismatch: None,
            inconclusive: None,
        }
    }

    /// The superblock e2fsck uses: `primary` or the backup.
    pub fn chosen<'a>(&'a self, primary: &'a Superblock) -> &'a Superblock {
        match &self.superblock {
            SuperblockChoice::Primary => primary,
            SuperblockChoice::Backup { superblock, .. } => superblock,
        }
    }

    /// Findings for what the simulation found: `ext.superblock-corrupt` (critical),
    /// `ext.group-descriptors-bad` (critical) and `ext.summary-counts-differ` (info:
    /// the kernel does not keep the superblock totals exact while mounted, and e2fsck
    /// 1.47.0 just recomputes them). A bad primary checksum is left to the caller's
    /// `ext.checksum-mismatch`; a device smaller than the filesystem to `ext.truncated`.
    pub fn findings(&self, location: &Location, context: Context) -> Vec<Finding> {
        let mut findings = Vec::new();
        // Built only for a finding that needs it: most filesystems have none.
        let remedy = || location.repair_command("e2fsck -f", false);
        let mut sb_problems: Vec<String> = Vec::new();
        if let Some(error) = &self.primary_open_error {
            if !matches!(error, OpenError::SbCsumInvalid { .. }) {
                sb_problems.push(format!(
                    "libext2fs rejects the primary superblock ({error})"
                ));
            }
        }
        sb_problems.extend(
            self.invalid
                .iter()
                .filter(|i| i.kind == InvalidKind::Superblock)
                .map(|i| i.message.clone()),
        );
        let desc_problems: Vec<String> = self
            .primary_desc_error
            .iter()
            .map(|p| format!("ext2fs_check_desc: {p}"))
            .chain(
                self.invalid
                    .iter()
                    .filter(|i| i.kind == InvalidKind::Descriptor)
                    .map(|i| i.message.clone()),
            )
            .collect();
        let outcome = self.outcome_text();
        if !sb_problems.is_empty() || (self.aborted.is_some() && desc_problems.is_empty()) {
            let mut message = sb_problems.join("; ");
            if message.is_empty() {
                message = "e2fsck cannot use the superblock".into();
            }
            findings.push(
                rules::EXT_SUPERBLOCK_CORRUPT
                    .finding(context, format!("{message}; {outcome}"))
                    .with_remedy(remedy()),
            );
        }
        if !desc_problems.is_empty() {
            let shown: Vec<&str> = desc_problems.iter().take(5).map(String::as_str).collect();
            let more = desc_problems.len().saturating_sub(shown.len());
            let mut message = format!("group descriptors are damaged: {}", shown.join("; "));
            if more > 0 {
                message.push_str(&format!(" (and {more} more)"));
            }
            findings.push(
                rules::EXT_GROUP_DESCRIPTORS_BAD
                    .finding(context, format!("{message}; {outcome}"))
                    .with_remedy(remedy()),
            );
        }
        if let Some(counts) = &self.summary_mismatch {
            let why = match context {
                Context::Live | Context::Crash | Context::Frozen => {
                    "normal while mounted: the kernel keeps the totals in per-CPU counters and writes them back at unmount"
                }
                Context::Offline => {
                    "e2fsck recomputes the totals from the groups; this alone does not force a check"
                }
            };
            findings.push(rules::EXT_SUMMARY_COUNTS_DIFFER.finding(
                context,
                format!(
                    "the superblock totals ({} free blocks, {} free inodes) differ from the sum over the groups ({} free blocks, {} free inodes): {why}",
                    counts.sb_free_blocks, counts.sb_free_inodes, counts.group_free_blocks, counts.group_free_inodes
                ),
            ));
        }
        findings
    }

    fn outcome_text(&self) -> String {
        if let Some(why) = &self.aborted {
            return format!("e2fsck -n aborts before checking ({why})");
        }
        let mut text = match &self.superblock {
            SuperblockChoice::Backup { offset, .. } => {
                format!("e2fsck uses the backup superblock at byte {offset}")
            }
            SuperblockChoice::Primary => match &self.backup_error {
                Some(why) => {
                    format!("the backup is no better ({why}), so e2fsck goes back to the primary")
                }
                None => "e2fsck uses the primary superblock".to_string(),
            },
        };
        if self.marked_invalid {
            text.push_str(" and forces a full check (\"contains a file system with errors\")");
        }
        text
    }
}

/// A filesystem as `ext2fs_open2` opened it.
struct Opened {
    sb: Superblock,
    extra: SbExtra,
    geom: Geometry,
    descs: Vec<GroupDesc>,
}

/// Why an open attempt produced nothing usable.
enum Failure {
    Open(OpenError),
    /// Too big to simulate.
    Inconclusive(String),
}

/// Where to read the superblock: `None` for the primary, else (block, block size).
type SbLocation = Option<(u64, u64)>;

/// `try_open_fs` → `ext2fs_open2` with e2fsck's flags for `-n` (read-only, no MMP).
fn open_fs(
    volume: &Volume<'_>,
    primary_raw: &[u8],
    at: SbLocation,
    ignore_sb_errors: bool,
) -> Result<Opened, Failure> {
    let raw = match at {
        None => primary_raw.to_vec(),
        Some((block, block_size)) => {
            let offset = block.checked_mul(block_size).ok_or_else(|| {
                Failure::Open(OpenError::ShortRead("backup superblock offset".into()))
            })?;
            volume
                .read_exact_at(offset, SUPERBLOCK_SIZE, "a backup superblock")
                .map_err(|e| Failure::Open(OpenError::ShortRead(e.to_string())))?
        }
    };
    // The checksum is verified before the magic.
    groups::superblock_checksum(&raw).map_err(Failure::Open)?;
    let sb = Superblock::parse(&raw).map_err(|_| Failure::Open(OpenError::BadMagic))?;
    let options = OpenOptions {
        ignore_sb_errors,
        block_size: at.map(|(_, bs)| bs),
    };
    let geom = groups::validate_superblock(&sb, &raw, options).map_err(Failure::Open)?;
    let extra = SbExtra::parse(&raw);
    let table_bytes = geom.desc_blocks.saturating_mul(geom.block_size);
    if table_bytes > MAX_TABLE_BYTES {
        return Err(Failure::Inconclusive(format!(
            "the descriptor table is {table_bytes} bytes"
        )));
    }
    let group_block = at.map_or(0, |(block, _)| block);
    let mut table = Vec::with_capacity(usize::try_from(table_bytes).unwrap_or(0));
    let block_len = usize::try_from(geom.block_size).unwrap_or(0);
    for block in groups::descriptor_table_blocks(&sb, &geom, group_block) {
        let bytes = block
            .checked_mul(geom.block_size)
            .ok_or_else(|| "descriptor block offset overflows".to_string())
            .and_then(|offset| {
                volume
                    .read_exact_at(offset, block_len, "a group descriptor block")
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| Failure::Open(OpenError::ShortRead(e)))?;
        table.extend_from_slice(&bytes);
    }
    let mut descs = groups::parse_descs(&sb, &extra, &geom, &table)
        .ok_or_else(|| Failure::Open(OpenError::ShortRead("descriptor table too short".into())))?;
    if at.is_some_and(|(block, _)| block > 1) {
        groups::reset_for_backup(&sb, &mut descs);
    }
    Ok(Opened {
        sb,
        extra,
        geom,
        descs,
    })
}

/// `get_backup_sb` when no filesystem could be opened: unless a block size is already
/// known, probe blocks 8193 (1 KiB), 16384, 32768, … for a superblock with the ext
/// magic and that block size; default to block 8193 of 1 KiB.
fn blind_backup(volume: &Volume<'_>, known_block_size: Option<u64>) -> (u64, u64) {
    let location = |block_size: u64| (block_size * 8 + u64::from(block_size == 1024), block_size);
    if let Some(block_size) = known_block_size {
        return location(block_size);
    }
    for log in 0..=6u32 {
        let block_size = 1024u64 << log;
        let (block, _) = location(block_size);
        let Ok(raw) =
            volume.read_exact_at(block * block_size, SUPERBLOCK_SIZE, "a backup superblock")
        else {
            continue;
        };
        if let Ok(sb) = Superblock::parse(&raw) {
            if sb.block_size() == Some(block_size) {
                return (block, block_size);
            }
        }
    }
    location(1024)
}

/// Simulate `e2fsck -n` up to `check_if_skip`. `primary` was parsed from
/// `primary_raw`, the 1024 bytes at byte 1024 of the volume.
pub fn simulate(volume: &Volume<'_>, primary: &Superblock, primary_raw: &[u8]) -> Simulation {
    let mut sim = Simulation::new();
    // The primary was parsed by the caller; e2fsck re-reads it from `primary_raw`.
    let _ = primary;
    let mut ignore_sb_errors = false;
    let mut known_block_size: Option<u64> = None;
    // At most two rounds: the second is e2fsck's "restart" with EXT2_FLAG_IGNORE_SB_ERRORS.
    for round in 0..2 {
        let first = open_fs(volume, primary_raw, None, ignore_sb_errors);
        let desc_problem = match &first {
            Ok(fs) => groups::check_desc(&fs.sb, &fs.extra, &fs.geom, &fs.descs).err(),
            Err(_) => None,
        };
        if round == 0 {
            if let Err(Failure::Open(error)) = &first {
                sim.primary_open_error = Some(error.clone());
            }
        }
        if desc_problem.is_some() && sim.primary_desc_error.is_none() {
            sim.primary_desc_error = desc_problem;
        }
        let wants_backup = match &first {
            Err(Failure::Open(error)) => error.tries_backup(),
            Err(Failure::Inconclusive(_)) => false,
            Ok(fs) => desc_problem.is_some() && fs.geom.group_count > 1,
        };
        let mut orig_error: Option<OpenError> = None;
        let mut backup_at: SbLocation = None;
        let opened = if wants_backup {
            let location = match &first {
                Ok(fs) => (
                    u64::from(fs.sb.blocks_per_group) + u64::from(fs.sb.first_data_block),
                    fs.geom.block_size,
                ),
                Err(_) => blind_backup(volume, known_block_size),
            };
            known_block_size = Some(location.1);
            let second = open_fs(volume, primary_raw, Some(location), ignore_sb_errors);
            match (first, second) {
                (Ok(primary_fs), Err(failure)) => {
                    // "... while using the backup blocks" / "going back to original superblock".
                    sim.backup_error = Some(describe(&failure));
                    Ok(primary_fs)
                }
                (Ok(_), Ok(backup_fs)) => {
                    backup_at = Some(location);
                    Ok(backup_fs)
                }
                (Err(failure), second) => {
                    if let Failure::Open(error) = failure {
                        orig_error = Some(error);
                    }
                    if let Err(f) = &second {
                        sim.backup_error = Some(describe(f));
                    }
                    backup_at = Some(location);
                    second
                }
            }
        } else {
            first
        };
        match opened {
            Err(Failure::Inconclusive(why)) => {
                sim.inconclusive = Some(why);
                return sim;
            }
            Err(Failure::Open(error)) => {
                let error = orig_error.unwrap_or(error);
                if error.retries_ignoring_errors() && !ignore_sb_errors {
                    // "Trying to load superblock despite errors..." → restart.
                    ignore_sb_errors = true;
                    continue;
                }
                sim.aborted = Some(format!("cannot open the filesystem: {error}"));
                return sim;
            }
            Ok(fs) => {
                if let Some((block, block_size)) = backup_at {
                    sim.superblock = SuperblockChoice::Backup {
                        offset: block * block_size,
                        superblock: fs.sb.clone(),
                    };
                }
                finish(volume, &fs, &mut sim);
                return sim;
            }
        }
    }
    sim.aborted = Some("cannot open the filesystem".into());
    sim
}

fn describe(failure: &Failure) -> String {
    match failure {
        Failure::Open(error) => error.to_string(),
        Failure::Inconclusive(why) => why.clone(),
    }
}

/// After a successful open: e2fsck's feature check in `main` ("has unsupported
/// feature(s)" → fatal), then `check_super_block`.
fn finish(volume: &Volume<'_>, fs: &Opened, sim: &mut Simulation) {
    if let Some(unknown) = fs.sb.unknown_features() {
        sim.aborted = Some(unknown);
        return;
    }
    let device_blocks = Some(volume.size() / fs.geom.block_size.max(1));
    let check = groups::check_super_block(&fs.sb, &fs.extra, &fs.geom, &fs.descs, device_blocks);
    if let Some(why) = check.abort {
        sim.aborted = Some(why);
        return;
    }
    sim.marked_invalid = !check.invalid.is_empty();
    sim.invalid = check.invalid;
    if check.group_free_blocks != fs.sb.free_blocks_count
        || check.group_free_inodes != fs.sb.free_inodes_count
    {
        sim.summary_mismatch = Some(SummaryCounts {
            group_free_blocks: check.group_free_blocks,
            sb_free_blocks: fs.sb.free_blocks_count,
            group_free_inodes: check.group_free_inodes,
            sb_free_inodes: fs.sb.free_inodes_count,
        });
    }
}

/// Reads the primary superblock bytes and simulates; a convenience for tests.
pub fn simulate_volume(volume: &Volume<'_>) -> Option<Simulation> {
    let raw = volume
        .read_exact_at(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, "the ext superblock")
        .ok()?;
    let primary = Superblock::parse(&raw).ok()?;
    Some(simulate(volume, &primary, &raw))
}
