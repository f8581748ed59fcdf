//! The severity table (`src/scan/severity.rs`, the README's "Severities") against fixtures:
//! each fixture is a real filesystem image made by its mkfs and changed the way its tools
//! (debugfs, tune2fs) or a crash would change it; every row it exercises must come out with
//! the table's severity in every context (live, crash, frozen, offline). A last test checks
//! that every row of the table is exercised by some fixture here.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::fixtures::{self, MIB};
use common::*;
use snapguard::report::{LiveErrors, Status, TargetReport};
use snapguard::root::SysRoot;
use snapguard::scan::assess_image;
use snapguard::scan::severity::{self as rules, CONTEXTS, Rule, TABLE};

/// An image plus what a mount would add.
struct Fixture {
    img: PathBuf,
    now: i64,
    live: Option<LiveErrors>,
    sys: Option<SysRoot>,
}

impl Fixture {
    fn image(img: PathBuf) -> Self {
        Fixture {
            img,
            now: 1_900_000_000,
            live: None,
            sys: None,
        }
    }
}

/// The full path of an admin tool; a missing tool fails under
/// `SNAPGUARD_REQUIRE_PRIVILEGED=1` and skips (with a note) otherwise.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        skip("severity fixtures", &format!("{name} is not installed"));
    }
    found
}

fn mkfs(dir: &TestDir, name: &str, size: u64, mkfs: &str, args: &[&str]) -> Option<PathBuf> {
    let t = tool(mkfs)?;
    let img = fixtures::sparse(dir, name, size);
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(img.as_os_str());
    run(&t.to_string_lossy(), &all);
    Some(img)
}

/// Assess the fixture in every context and check each rule's finding against the table.
fn check(what: &str, fx: &Fixture, expect: &[&Rule]) {
    for context in CONTEXTS {
        let report: TargetReport =
            assess_image(&fx.img, context, fx.now, fx.live.clone(), fx.sys.as_ref());
        for rule in expect {
            let found: Vec<_> = report.findings.iter().filter(|f| f.id == rule.id).collect();
            assert!(
                !found.is_empty(),
                "{what} ({context:?}): no {} finding: {:#?}",
                rule.id,
                report.findings
            );
            for f in found {
                assert_eq!(
                    f.severity,
                    rule.severity(context),
                    "{what} ({context:?}): {} ({}) {f:#?}",
                    rule.id,
                    rule.case
                );
            }
        }
        if expect.iter().any(|r| r.case.contains("status unknown"))
            && report.status != Status::Critical
        {
            assert_eq!(report.status, Status::Unknown, "{what} ({context:?})");
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn truncated_copy(dir: &TestDir, img: &Path, len: u64) -> PathBuf {
    let out = dir.join(format!(
        "{}.trunc",
        img.file_name().unwrap().to_string_lossy()
    ));
    fixtures::extract(img, 0, len, &out);
    out
}

// ---------------------------------------------------------------- ext2/3/4

fn ext4(dir: &TestDir, name: &str, features: &[&str]) -> Option<PathBuf> {
    tool("mke2fs")?;
    tool("debugfs")?;
    Some(fixtures::ext4(dir, name, features))
}

/// Byte offset of the journal superblock (journal inode 8, logical block 0).
fn journal_sb(img: &Path) -> u64 {
    let out = run(
        "debugfs",
        &[OsStr::new("-R"), OsStr::new("bmap <8> 0"), img.as_os_str()],
    );
    out.trim().parse::<u64>().expect("journal block") * 4096
}

#[test]
fn ext_rows() {
    let dir = TestDir::new("sev-ext");
    let Some(base) = ext4(&dir, "base.img", &[]) else {
        return;
    };
    let copy = |name: &str| {
        let p = dir.join(name);
        fixtures::sparse_copy(&base, &p);
        p
    };

    // 1 KiB blocks: 8 MiB groups, so the image has backup superblocks.
    let img = fixtures::mkfs(&dir, "csum.img", fixtures::Kind::Ext4, 1024, &[], 64 * MIB);
    fixtures::patch(&img, 1024 + 0x78, b"X");
    check(
        "bad primary checksum",
        &Fixture::image(img),
        &[
            &rules::EXT_CHECKSUM_MISMATCH,
            &rules::EXT_BACKUP_SUPERBLOCK_USED,
            &rules::EXT_NOT_CLEAN_BACKUP,
        ],
    );

    let debugfs_cases: &[(&str, &[&str], &[&Rule])] = &[
        (
            "free inodes above the inode count",
            &["ssv free_inodes_count 4000000"],
            &[&rules::EXT_SUPERBLOCK_CORRUPT],
        ),
        (
            "group 1 block bitmap outside the group",
            &["set_bg 0 block_bitmap 0"],
            &[&rules::EXT_GROUP_DESCRIPTORS_BAD],
        ),
        (
            "superblock free count off",
            &["ssv free_blocks_count 100"],
            &[&rules::EXT_SUMMARY_COUNTS_DIFFER],
        ),
        (
            "unknown incompat bit",
            &["ssv feature_incompat 0x400002c2"],
            &[&rules::EXT_UNKNOWN_FEATURES],
        ),
        ("errors flag", &["ssv state 3"], &[&rules::EXT_ERRORS_FLAG]),
        (
            "not clean with a journal",
            &["ssv state 0"],
            &[&rules::EXT_NOT_CLEAN_JOURNAL],
        ),
        (
            "orphan-recovery state bit",
            &["ssv state 5"],
            &[&rules::EXT_ORPHAN_FS_STATE],
        ),
        (
            "fast-commit replay state bit",
            &["ssv state 33"],
            &[&rules::EXT_FC_REPLAY_STATE],
        ),
        (
            "needs_recovery with a journal",
            &["feature needs_recovery"],
            &[&rules::EXT_NEEDS_RECOVERY],
        ),
        (
            "orphan list",
            &["ssv last_orphan 12"],
            &[&rules::EXT_ORPHANS_PENDING],
        ),
        (
            "error history with the flag",
            &[
                "ssv state 3",
                "ssv error_count 3",
                "ssv first_error_time 20240101120000",
                "ssv first_error_func ext4_lookup",
                "ssv first_error_line 1234",
            ],
            &[&rules::EXT_ERROR_HISTORY_FLAGGED, &rules::EXT_ERRORS_FLAG],
        ),
        (
            "error history without the flag",
            &[
                "ssv error_count 3",
                "ssv first_error_time 20240101120000",
                "ssv first_error_func ext4_lookup",
                "ssv first_error_line 1234",
            ],
            &[&rules::EXT_ERROR_HISTORY_UNFLAGGED],
        ),
        (
            "external journal",
            &["ssv journal_uuid 11111111-2222-3333-4444-555555555555"],
            &[&rules::EXT_EXTERNAL_JOURNAL],
        ),
        (
            "mount count due",
            &["ssv max_mnt_count 5", "ssv mnt_count 7"],
            &[&rules::EXT_MOUNT_COUNT_DUE],
        ),
    ];
    for (i, (what, requests, expect)) in debugfs_cases.iter().enumerate() {
        let img = copy(&format!("d{i}.img"));
        fixtures::debugfs_w_script(&img, requests);
        check(what, &Fixture::image(img), expect);
    }

    // Check interval: due when "now" is 10 days after mkfs, in the future when it is 1970.
    let img = copy("interval.img");
    fixtures::tune2fs(&img, &["-i", "1d"]);
    let mut fx = Fixture::image(img);
    fx.now = i64::from(le32(&fixtures::read_at(&fx.img, 1024 + 0x40, 4), 0)) + 10 * 86_400;
    check("check interval due", &fx, &[&rules::EXT_CHECK_INTERVAL_DUE]);
    fx.now = 1000;
    check(
        "last check in the future",
        &fx,
        &[&rules::EXT_LAST_CHECK_IN_FUTURE],
    );

    // Journal superblock edits (no metadata_csum: the jbd2 superblock has no checksum).
    let Some(plain) = ext4(&dir, "plain.img", &["^metadata_csum"]) else {
        return;
    };
    for (what, at, value, rule) in [
        (
            "journal errno",
            0x20,
            (-5i32).to_be_bytes(),
            &rules::EXT_JOURNAL_ERRNO,
        ),
        (
            "journal start with needs_recovery clear",
            0x1C,
            1i32.to_be_bytes(),
            &rules::EXT_JOURNAL_DATA_FLAG_CLEAR,
        ),
        (
            "journal magic gone",
            0x00,
            0i32.to_be_bytes(),
            &rules::EXT_JOURNAL_INVALID,
        ),
    ] {
        let img = dir.join(format!("j{at}.img"));
        fixtures::sparse_copy(&plain, &img);
        let jsb = journal_sb(&img);
        assert_eq!(
            be32(&fixtures::read_at(&img, jsb, 4), 0),
            0xC03B_3998,
            "jbd2 magic"
        );
        fixtures::patch(&img, jsb + at, &value);
        check(what, &Fixture::image(img), &[rule]);
    }

    // No journal.
    let Some(nj) = ext4(&dir, "nj.img", &["^has_journal"]) else {
        return;
    };
    let img = dir.join("nj-dirty.img");
    fixtures::sparse_copy(&nj, &img);
    fixtures::debugfs_w(&img, "ssv state 0");
    check(
        "not clean without a journal",
        &Fixture::image(img),
        &[&rules::EXT_NOT_CLEAN_NO_JOURNAL],
    );
    let img = dir.join("nj-recover.img");
    fixtures::sparse_copy(&nj, &img);
    fixtures::debugfs_w(&img, "feature needs_recovery");
    check(
        "needs_recovery without a journal",
        &Fixture::image(img),
        &[&rules::EXT_NEEDS_RECOVERY_WITHOUT_JOURNAL],
    );

    // MMP (no metadata_csum: the MMP block's checksum is not recomputed here).
    if let Some(mmp) = ext4(&dir, "mmp.img", &["mmp", "^metadata_csum"]) {
        let block =
            u64::from_le_bytes(fixtures::read_at(&mmp, 1024 + 0x168, 8).try_into().unwrap());
        for (what, at, bytes, rule) in [
            (
                "MMP in use",
                4u64,
                0x1234_5678u32.to_le_bytes(),
                &rules::EXT_MMP_IN_USE,
            ),
            (
                "MMP fsck running",
                4,
                0xE24D_4D50u32.to_le_bytes(),
                &rules::EXT_MMP_FSCK_RUNNING,
            ),
            (
                "MMP block unreadable",
                0,
                0u32.to_le_bytes(),
                &rules::EXT_MMP_UNREADABLE,
            ),
        ] {
            let img = dir.join(format!("mmp{}.img", bytes[0]));
            fixtures::sparse_copy(&mmp, &img);
            fixtures::patch(&img, block * 4096 + at, &bytes);
            check(what, &Fixture::image(img), &[rule]);
        }
    }

    if let Some(jdev) = mkfs(
        &dir,
        "jdev.img",
        16 * MIB,
        "mke2fs",
        &["-q", "-F", "-b", "4096", "-O", "journal_dev"],
    ) {
        check(
            "external journal device",
            &Fixture::image(jdev),
            &[&rules::EXT_JOURNAL_DEVICE],
        );
    }

    check(
        "truncated",
        &Fixture::image(truncated_copy(&dir, &base, 32 * MIB)),
        &[&rules::EXT_TRUNCATED],
    );

    let live = |errors_count| LiveErrors {
        errors_count,
        first_error_time: 1_700_000_000,
        first_error_func: "ext4_lookup".into(),
        first_error_line: 1,
        last_error_time: 1_700_000_000,
        last_error_func: "ext4_lookup".into(),
        last_error_line: 2,
    };
    let mut fx = Fixture::image(copy("live.img"));
    fx.live = Some(live(2));
    check("kernel error counters", &fx, &[&rules::EXT_LIVE_ERRORS]);
    let mut fx = Fixture::image(dir.join("unreadable-device"));
    fx.live = Some(live(0));
    check(
        "device unreadable, counters zero",
        &fx,
        &[&rules::EXT_LIVE_ERRORS_NONE],
    );
}

// ---------------------------------------------------------------- XFS

/// Recompute the v5 superblock CRC (CRC-32C of the sector with bytes 224..228 zeroed, LE).
fn xfs_fix_crc(img: &Path) {
    let mut sector = fixtures::read_at(img, 0, 512);
    sector[224..228].fill(0);
    let crc = crc32c::crc32c(&sector);
    fixtures::patch(img, 224, &crc.to_le_bytes());
}

#[test]
fn xfs_rows() {
    let dir = TestDir::new("sev-xfs");
    let Some(base) = mkfs(&dir, "base.img", 320 * MIB, "mkfs.xfs", &["-q", "-f"]) else {
        return;
    };
    let copy = |name: &str| {
        let p = dir.join(name);
        fixtures::sparse_copy(&base, &p);
        p
    };
    let img = copy("crc.img");
    fixtures::patch(&img, 108, b"Z");
    check(
        "bad primary CRC",
        &Fixture::image(img.clone()),
        &[&rules::XFS_CRC_MISMATCH],
    );
    // As xfs_repair's phase 1 does, the scan looks at AG 1's secondary superblock.
    let r = assess_image(&img, snapguard::report::Context::Offline, 0, None, None);
    let f = r
        .findings
        .iter()
        .find(|f| f.id == "xfs.crc-mismatch")
        .unwrap();
    assert!(
        f.message.contains("secondary superblock of AG 1 at byte") && f.message.contains("is good"),
        "{}",
        f.message
    );

    let sb = fixtures::read_at(&base, 0, 512);
    let incompat = be32(&sb, 216);
    for (what, at, bytes, rule) in [
        ("inprogress", 126usize, vec![1u8], &rules::XFS_INPROGRESS),
        (
            "needsrepair",
            216,
            (incompat | 0x10).to_be_bytes().to_vec(),
            &rules::XFS_NEEDS_REPAIR,
        ),
        (
            "unknown incompat bit",
            216,
            (incompat | 0x4000_0000).to_be_bytes().to_vec(),
            &rules::XFS_UNKNOWN_FEATURES,
        ),
        (
            "external log",
            48,
            0u64.to_be_bytes().to_vec(),
            &rules::XFS_EXTERNAL_LOG,
        ),
    ] {
        let img = copy(&format!("x{at}-{}.img", bytes[0]));
        fixtures::patch(&img, at as u64, &bytes);
        xfs_fix_crc(&img);
        check(what, &Fixture::image(img), &[rule]);
    }

    // The internal log: where it is, as the scanner's details say.
    let report = assess_image(&base, snapguard::report::Context::Offline, 0, None, None);
    let x = report.xfs.as_ref().expect("xfs details");
    let agblklog = u32::from(sb[124]);
    let start = x.log_start;
    let offset = ((start >> agblklog) * u64::from(x.ag_blocks) + (start & ((1 << agblklog) - 1)))
        * u64::from(x.block_size);
    let log_len = u64::from(x.log_blocks) * u64::from(x.block_size);

    let img = copy("garbage-log.img");
    fixtures::patch(&img, offset, &vec![0xAB; usize::try_from(log_len).unwrap()]);
    check(
        "log without record headers",
        &Fixture::image(img),
        &[&rules::XFS_LOG_UNREADABLE],
    );

    // mkfs leaves one unmount record; without its XLOG_UNMOUNT_TRANS flag the log is dirty
    // (head after the record, tail at the record), as a crash leaves it.
    let img = copy("dirty-log.img");
    let rec = fixtures::read_at(&img, offset, 1024);
    assert_eq!(
        be32(&rec, 0),
        0xFEED_BABE,
        "mkfs log record header at block 0"
    );
    assert_eq!(rec[512 + 9] & 0x20, 0x20, "mkfs writes an unmount record");
    fixtures::patch(&img, offset + 512 + 9, &[rec[512 + 9] & !0x20]);
    check("dirty log", &Fixture::image(img), &[&rules::XFS_DIRTY_LOG]);

    check(
        "truncated",
        &Fixture::image(truncated_copy(&dir, &base, 100 * MIB)),
        &[&rules::XFS_TRUNCATED],
    );
}

// ---------------------------------------------------------------- btrfs

const BTRFS_SB: u64 = 0x1_0000;

/// Change the primary superblock and recompute its crc32c.
fn btrfs_patch(img: &Path, at: usize, bytes: &[u8]) {
    let mut sb = fixtures::read_at(img, BTRFS_SB, 4096);
    sb[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&sb[32..]);
    sb[..32].fill(0);
    sb[..4].copy_from_slice(&crc.to_le_bytes());
    fixtures::patch(img, BTRFS_SB, &sb);
}

#[test]
fn btrfs_rows() {
    let dir = TestDir::new("sev-btrfs");
    let Some(base) = mkfs(&dir, "base.img", 128 * MIB, "mkfs.btrfs", &["-q", "-f"]) else {
        return;
    };
    let copy = |name: &str| {
        let p = dir.join(name);
        fixtures::sparse_copy(&base, &p);
        p
    };
    let flags = u64::from_le_bytes(
        fixtures::read_at(&base, BTRFS_SB + 0x38, 8)
            .try_into()
            .unwrap(),
    );

    let img = copy("csum.img");
    fixtures::patch(&img, BTRFS_SB + 0x12B, b"X");
    check(
        "bad primary checksum, good mirror",
        &Fixture::image(img.clone()),
        &[&rules::BTRFS_CSUM_MISMATCH, &rules::BTRFS_MIRROR_USED],
    );
    fixtures::patch(&img, 64 * MIB + 0x12B, b"X");
    check(
        "bad primary checksum, bad mirror",
        &Fixture::image(img),
        &[&rules::BTRFS_CSUM_MISMATCH],
    );
    let img = copy("bytenr.img");
    btrfs_patch(&img, 0x30, &4096u64.to_le_bytes());
    check(
        "primary with a wrong bytenr",
        &Fixture::image(img),
        &[&rules::BTRFS_INVALID_SUPERBLOCK, &rules::BTRFS_MIRROR_USED],
    );

    for (what, patch, rule) in [
        (
            "unknown checksum type",
            (0xC4usize, 7u64.to_le_bytes()[..2].to_vec()),
            &rules::BTRFS_CSUM_NOT_VERIFIED,
        ),
        (
            "ERROR flag",
            (0x38, (flags | 4).to_le_bytes().to_vec()),
            &rules::BTRFS_ERROR_FLAG,
        ),
        (
            "CHANGING_FSID flag",
            (0x38, (flags | 1 << 35).to_le_bytes().to_vec()),
            &rules::BTRFS_INTERRUPTED_OPERATION,
        ),
        (
            "METADUMP flag",
            (0x38, (flags | 1 << 33).to_le_bytes().to_vec()),
            &rules::BTRFS_METADUMP_IMAGE,
        ),
        (
            "SEEDING flag",
            (0x38, (flags | 1 << 32).to_le_bytes().to_vec()),
            &rules::BTRFS_SEED_DEVICE,
        ),
        (
            "log tree",
            (0x60, 30_474_240u64.to_le_bytes().to_vec()),
            &rules::BTRFS_LOG_TREE,
        ),
    ] {
        let img = copy(&format!("p{}-{}.img", patch.0, patch.1[0]));
        if rule.id == "btrfs.csum-not-verified" {
            // The checksum cannot be recomputed for a type btrfs does not define.
            fixtures::patch(&img, BTRFS_SB + patch.0 as u64, &patch.1);
        } else {
            btrfs_patch(&img, patch.0, &patch.1);
        }
        check(what, &Fixture::image(img), &[rule]);
    }

    // The kernel's device counters of a mounted btrfs, from a fixture /sys.
    let fsid = fixtures::read_at(&base, BTRFS_SB + 0x20, 16);
    let fsid = snapguard::fs::uuid::format(&fsid.try_into().unwrap());
    for (what, stats, rule) in [
        ("read errors", "1 0 0 0 0", &rules::BTRFS_DEVICE_IO_ERRORS),
        (
            "corruption errors",
            "0 0 0 2 0",
            &rules::BTRFS_DEVICE_INTEGRITY_ERRORS,
        ),
    ] {
        let root = dir.mkdir(format!("root-{}", rule.case.len()));
        let devinfo = root.join(format!("sys/fs/btrfs/{fsid}/devinfo/1"));
        std::fs::create_dir_all(&devinfo).unwrap();
        let v: Vec<&str> = stats.split(' ').collect();
        std::fs::write(
            devinfo.join("error_stats"),
            format!(
                "write_errs {}\nread_errs {}\nflush_errs {}\ncorruption_errs {}\ngeneration_errs {}\n",
                v[1], v[0], v[2], v[3], v[4]
            ),
        )
        .unwrap();
        let mut fx = Fixture::image(base.clone());
        fx.sys = Some(SysRoot::new(root));
        check(what, &fx, &[rule]);
    }

    check(
        "truncated",
        &Fixture::image(truncated_copy(&dir, &base, 32 * MIB)),
        &[&rules::BTRFS_TRUNCATED],
    );
}

// ---------------------------------------------------------------- FAT, exFAT

#[test]
fn fat_and_exfat_rows() {
    let dir = TestDir::new("sev-fat");
    if let Some(fat) = mkfs(&dir, "fat.img", 16 * MIB, "mkfs.fat", &["-F", "16"]) {
        let boot = fixtures::read_at(&fat, 0, 512);
        let fat_at = u64::from(u16::from_le_bytes([boot[0x0E], boot[0x0F]]))
            * u64::from(u16::from_le_bytes([boot[0x0B], boot[0x0C]]));
        let img = dir.join("dirty.img");
        fixtures::sparse_copy(&fat, &img);
        fixtures::patch(&img, 0x25, &[boot[0x25] | 1]);
        check("dirty bit", &Fixture::image(img), &[&rules::FAT_DIRTY]);
        let img = dir.join("hard.img");
        fixtures::sparse_copy(&fat, &img);
        fixtures::patch(&img, fat_at + 2, &0xBFFFu16.to_le_bytes());
        check(
            "hard-error bit clear",
            &Fixture::image(img),
            &[&rules::FAT_HARD_ERRORS],
        );
        check(
            "truncated",
            &Fixture::image(truncated_copy(&dir, &fat, 8 * MIB)),
            &[&rules::FAT_TRUNCATED],
        );
    }
    if let Some(ex) = mkfs(&dir, "exfat.img", 64 * MIB, "mkfs.exfat", &[]) {
        let flags = u16::from_le_bytes(fixtures::read_at(&ex, 0x6A, 2).try_into().unwrap());
        for (what, bits, rule) in [
            ("VolumeDirty", 2u16, &rules::EXFAT_DIRTY),
            ("MediaFailure", 4, &rules::EXFAT_MEDIA_FAILURE),
        ] {
            let img = dir.join(format!("ex{bits}.img"));
            fixtures::sparse_copy(&ex, &img);
            fixtures::patch(&img, 0x6A, &(flags | bits).to_le_bytes());
            check(what, &Fixture::image(img), &[rule]);
        }
        let img = dir.join("excsum.img");
        fixtures::sparse_copy(&ex, &img);
        let b = fixtures::read_at(&img, 0x100, 1)[0];
        fixtures::patch(&img, 0x100, &[b ^ 0xFF]);
        check(
            "boot-region checksum",
            &Fixture::image(img),
            &[&rules::EXFAT_CHECKSUM_MISMATCH],
        );
        check(
            "truncated",
            &Fixture::image(truncated_copy(&dir, &ex, 32 * MIB)),
            &[&rules::EXFAT_TRUNCATED],
        );
    }
}

// ---------------------------------------------------------------- f2fs

const F2FS_MAGIC: u32 = 0xF2F5_2010;

fn f2fs_crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!F2FS_MAGIC);
    h.update(data);
    !h.finalize()
}

/// Set and clear `ckpt_flags` bits in the current checkpoint pack; `corrupt_other` spoils
/// the CRC of the other pack instead.
fn f2fs_checkpoint(img: &Path, set: u32, clear: u32, corrupt_other: bool) {
    let sb = fixtures::read_at(img, 1024, 3072);
    let cp_blkaddr = u64::from(le32(&sb, 0x4C));
    let log_blocks_per_seg = le32(&sb, 20);
    let mut packs: Vec<(u64, Vec<u8>)> = (0..2)
        .map(|p| {
            let start = cp_blkaddr + (p << log_blocks_per_seg);
            (start, fixtures::read_at(img, start * 4096, 4096))
        })
        .collect();
    packs.sort_by_key(|(_, b)| std::cmp::Reverse(u64::from_le_bytes(b[0..8].try_into().unwrap())));
    if corrupt_other {
        let (start, block) = &packs[1];
        fixtures::patch(
            img,
            start * 4096 + 4092,
            &(!le32(block, 4092)).to_le_bytes(),
        );
        return;
    }
    let (start, mut block) = packs.swap_remove(0);
    let flags = (le32(&block, 0x84) | set) & !clear;
    block[0x84..0x88].copy_from_slice(&flags.to_le_bytes());
    let crc = f2fs_crc(&block[..4092]);
    block[4092..].copy_from_slice(&crc.to_le_bytes());
    let total = u64::from(le32(&block, 0x88));
    fixtures::patch(img, start * 4096, &block);
    fixtures::patch(img, (start + total - 1) * 4096, &block);
}

#[test]
fn f2fs_rows() {
    let dir = TestDir::new("sev-f2fs");
    let Some(base) = mkfs(
        &dir,
        "base.img",
        64 * MIB,
        "mkfs.f2fs",
        &["-q", "-O", "sb_checksum"],
    ) else {
        return;
    };
    let copy = |name: &str| {
        let p = dir.join(name);
        fixtures::sparse_copy(&base, &p);
        p
    };
    let img = copy("sb1.img");
    fixtures::patch(&img, 1024 + 124, b"X");
    check(
        "bad primary CRC, good backup",
        &Fixture::image(img.clone()),
        &[&rules::F2FS_CSUM_MISMATCH_BACKUP_GOOD],
    );
    fixtures::patch(&img, 4096 + 1024 + 124, b"X");
    check(
        "bad primary and backup CRC",
        &Fixture::image(img),
        &[&rules::F2FS_CSUM_MISMATCH_NO_BACKUP],
    );

    for (what, set, clear, rule) in [
        ("need fsck", 0x10u32, 0u32, &rules::F2FS_NEED_FSCK),
        ("error flag", 0x8, 0, &rules::F2FS_ERRORS_CHECKPOINT),
        ("no unmount flag", 0, 0x1, &rules::F2FS_NOT_UNMOUNTED),
    ] {
        let img = copy(&format!("cp{set}-{clear}.img"));
        f2fs_checkpoint(&img, set, clear, false);
        check(what, &Fixture::image(img), &[rule]);
    }
    let img = copy("other-pack.img");
    f2fs_checkpoint(&img, 0, 0, true);
    check(
        "older checkpoint pack bad",
        &Fixture::image(img),
        &[&rules::F2FS_CSUM_MISMATCH_OTHER_PACK],
    );

    // Superblock edits with the CRC recomputed: stop reasons, errors, bad geometry.
    let sb_patch = |img: &Path, copies: &[u64], at: usize, bytes: &[u8]| {
        for &copy in copies {
            let base_at = copy * 4096 + 1024;
            let mut sb = fixtures::read_at(img, base_at, 3072);
            sb[at..at + bytes.len()].copy_from_slice(bytes);
            let crc = f2fs_crc(&sb[..3068]);
            sb[3068..].copy_from_slice(&crc.to_le_bytes());
            fixtures::patch(img, base_at, &sb);
        }
    };
    for (what, at, bytes, rule) in [
        (
            "stop reason: shutdown only",
            2762usize,
            vec![1u8],
            &rules::F2FS_STOP_REASON_SHUTDOWN,
        ),
        (
            "stop reason: a fault",
            2763,
            vec![1u8],
            &rules::F2FS_STOP_REASON_FAULT,
        ),
        (
            "errors in the superblock",
            2794,
            vec![1u8],
            &rules::F2FS_ERRORS_SUPERBLOCK,
        ),
    ] {
        let img = copy(&format!("sb{at}.img"));
        sb_patch(&img, &[0, 1], at, &bytes);
        check(what, &Fixture::image(img), &[rule]);
    }
    let img = copy("geometry.img");
    sb_patch(&img, &[0], 20, &10u32.to_le_bytes());
    check(
        "primary with bad geometry, good backup",
        &Fixture::image(img.clone()),
        &[&rules::F2FS_INVALID_SUPERBLOCK_BACKUP_GOOD],
    );
    sb_patch(&img, &[1], 20, &10u32.to_le_bytes());
    check(
        "primary and backup with bad geometry",
        &Fixture::image(img),
        &[&rules::F2FS_INVALID_SUPERBLOCK_NO_BACKUP],
    );
    let img = copy("no-pack.img");
    let sb = fixtures::read_at(&img, 1024, 3072);
    for pack in 0..2u64 {
        let start = u64::from(le32(&sb, 0x4C)) + (pack << le32(&sb, 20));
        let crc = le32(&fixtures::read_at(&img, start * 4096, 4096), 4092);
        fixtures::patch(&img, start * 4096 + 4092, &(!crc).to_le_bytes());
    }
    check(
        "both checkpoint packs bad",
        &Fixture::image(img),
        &[&rules::F2FS_CHECKPOINT_UNREADABLE],
    );

    check(
        "truncated",
        &Fixture::image(truncated_copy(&dir, &base, 16 * MIB)),
        &[&rules::F2FS_TRUNCATED],
    );
}

// ---------------------------------------------------------------- disk

#[test]
fn disk_rows() {
    let dir = TestDir::new("sev-disk");
    if let Some(swap) = mkfs(&dir, "swap.img", 16 * MIB, "mkswap", &["-q"]) {
        check(
            "swap image",
            &Fixture::image(swap),
            &[&rules::DISK_NOT_SCANNED],
        );
    }
}

#[test]
fn vhd_row() {
    if tool("qemu-img").is_none() {
        return;
    }
    let dir = TestDir::new("sev-vhd");
    let Some(raw) = ext4(&dir, "raw.img", &[]) else {
        return;
    };
    let vhd = dir.join("disk.vhd");
    fixtures::vhd_fixed(&raw, &vhd);
    check("fixed VHD", &Fixture::image(vhd), &[&rules::DISK_VHD_FIXED]);
}

/// An image behind a mounted loop device: judged live, with the in-use finding at the table's
/// severity (only a real mount makes it, so this goes through the binary).
#[test]
fn an_image_behind_a_mounted_loop_device_is_in_use() {
    if !require_root("an_image_behind_a_mounted_loop_device_is_in_use") {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("severity-in-use");
    let Some(img) = ext4(&dir, "in-use.img", &[]) else {
        return;
    };
    let m = fixtures::loop_mount(&dir, &img, "in-use", None);
    let out = run_snapguard(
        [OsStr::new("--json"), OsStr::new("scan"), img.as_os_str()],
        std::time::Duration::from_secs(20),
    );
    m.unmount();
    let doc = out.json();
    let t = &doc["targets"][0];
    assert_eq!(t["context"], "live", "{t:#}");
    let rule = &rules::SCAN_IN_USE;
    let f = expect_finding(t, rule.id);
    let expected = serde_json::to_value(rule.severity(snapguard::report::Context::Live)).unwrap();
    assert_eq!(f["severity"], expected, "{f:#}");
}

/// Every row of the table is exercised by a fixture above.
#[test]
fn every_row_is_exercised() {
    let source = std::fs::read_to_string(file!()).expect("this test's source");
    let body = source
        .split("fn every_row_is_exercised")
        .next()
        .unwrap_or("");
    let mut missing = Vec::new();
    for (rule, name) in TABLE.iter().zip(rules::NAMES) {
        let used = body.contains(&format!("rules::{name},"))
            || body.contains(&format!("rules::{name}]"))
            || body.contains(&format!("rules::{name})"))
            || body.contains(&format!("rules::{name};"));
        if !used {
            missing.push(format!("{name} ({} {})", rule.id, rule.case));
        }
    }
    assert!(missing.is_empty(), "rows without a fixture: {missing:#?}");
}
