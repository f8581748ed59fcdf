//! Differential tests of the ext parsers (superblock, group descriptors, inodes, journal,
//! MMP) and of the e2fsck simulation against e2fsprogs (mkfs.ext2/3/4, dumpe2fs, debugfs) on
//! images built at test time, moved out of the unit tests so that `cargo test --lib` spawns
//! no tool and runs as any user. The images are plain files (no root needed); without
//! e2fsprogs the tests skip, which fails under `SNAPGUARD_REQUIRE_PRIVILEGED=1`.

mod common;

/// Build real images with the e2fsprogs tools in a temporary directory and read back what
/// dumpe2fs prints.
mod images {
    use std::collections::BTreeMap;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    pub use super::common::tool;

    /// The e2fsprogs tools these tests drive.
    const TOOLS: [&str; 5] = ["mkfs.ext2", "mkfs.ext3", "mkfs.ext4", "dumpe2fs", "debugfs"];

    /// True when e2fsprogs is installed; otherwise `test` is skipped (a failure under
    /// `SNAPGUARD_REQUIRE_PRIVILEGED=1`).
    pub fn usable(test: &str) -> bool {
        super::common::have_tools(test, &TOOLS)
    }

    /// Runs a tool, panicking with its output when it fails; returns stdout.
    pub fn run(name: &str, args: &[&str]) -> String {
        let output = Command::new(tool(name))
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {name}: {err}"));
        assert!(
            output.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Creates a sparse image of `size_mib` MiB and formats it with `mkfs` (`-q -F` plus `args`).
    pub fn make_image(dir: &Path, name: &str, mkfs: &str, size_mib: u64, args: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).expect("create image");
        file.set_len(size_mib * 1024 * 1024).expect("size image");
        drop(file);
        let path_str = path.to_str().expect("utf-8 path");
        let mut all = vec!["-q", "-F"];
        all.extend_from_slice(args);
        all.push(path_str);
        run(mkfs, &all);
        path
    }

    /// `len` bytes at `offset` of the file.
    pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
        let mut file = std::fs::File::open(path).expect("open image");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).expect("read");
        buf
    }

    /// Overwrites bytes at `offset` of the file.
    pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open image rw");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(data).expect("write");
    }

    /// Runs `debugfs -w` with one request per line.
    pub fn debugfs_write(path: &Path, requests: &[&str]) {
        let script = path.with_extension("debugfs");
        std::fs::write(&script, requests.join("\n") + "\n").expect("write debugfs script");
        run(
            "debugfs",
            &[
                "-w",
                "-f",
                script.to_str().expect("utf-8"),
                path.to_str().expect("utf-8"),
            ],
        );
    }

    /// Parses `Key: value` lines of dumpe2fs output (first occurrence of each key wins).
    pub fn parse_fields(text: &str) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                fields
                    .entry(key.trim().to_owned())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
        fields
    }

    /// `dumpe2fs -h` (with `-f` when `force`), parsed; tolerates a non-zero exit status
    /// (dumpe2fs exits non-zero on a bad checksum but still prints).
    pub fn dumpe2fs_header(path: &Path, force: bool) -> BTreeMap<String, String> {
        let mut args = vec!["-h"];
        if force {
            args.push("-f");
        }
        args.push(path.to_str().expect("utf-8"));
        let output = Command::new(tool("dumpe2fs"))
            .args(&args)
            .output()
            .expect("run dumpe2fs");
        parse_fields(&String::from_utf8_lossy(&output.stdout))
    }

    /// A field of dumpe2fs output that must be present.
    pub fn field<'a>(fields: &'a BTreeMap<String, String>, key: &str) -> &'a str {
        fields
            .get(key)
            .unwrap_or_else(|| panic!("dumpe2fs did not print {key:?}: {fields:#?}"))
    }
}

/// `fs::ext::superblock` against dumpe2fs -h, with debugfs-edited states.
mod superblock {
    use super::images::*;
    use snapguard::fs::ext::superblock::*;
    use std::path::Path;

    fn primary(path: &Path) -> (Vec<u8>, Superblock) {
        let raw = read_at(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
        let sb = Superblock::parse(&raw).expect("parse primary superblock");
        (raw, sb)
    }

    /// Asserts every header field we mirror equals what dumpe2fs prints.
    fn assert_matches_dumpe2fs(path: &Path) -> Superblock {
        let (raw, sb) = primary(path);
        let fields = dumpe2fs_header(path, false);
        assert_eq!(sb.state_string(), field(&fields, "Filesystem state"));
        let features = sb.feature_names();
        let expected_features = field(&fields, "Filesystem features");
        if features.is_empty() {
            assert_eq!(expected_features, "(none)");
        } else {
            assert_eq!(features.join(" "), expected_features);
        }
        assert_eq!(sb.blocks_count.to_string(), field(&fields, "Block count"));
        assert_eq!(sb.inodes_count.to_string(), field(&fields, "Inode count"));
        assert_eq!(
            sb.free_blocks_count.to_string(),
            field(&fields, "Free blocks")
        );
        assert_eq!(
            sb.free_inodes_count.to_string(),
            field(&fields, "Free inodes")
        );
        assert_eq!(sb.mnt_count.to_string(), field(&fields, "Mount count"));
        assert_eq!(
            sb.max_mnt_count.to_string(),
            field(&fields, "Maximum mount count")
        );
        assert_eq!(sb.errors_behavior(), field(&fields, "Errors behavior"));
        assert_eq!(
            sb.block_size().map(|b| b.to_string()).as_deref(),
            Some(field(&fields, "Block size"))
        );
        assert_eq!(
            sb.blocks_per_group.to_string(),
            field(&fields, "Blocks per group")
        );
        assert_eq!(
            sb.inodes_per_group.to_string(),
            field(&fields, "Inodes per group")
        );
        assert_eq!(
            sb.first_data_block.to_string(),
            field(&fields, "First block")
        );
        assert_eq!(
            snapguard::fs::uuid::format(&sb.uuid),
            field(&fields, "Filesystem UUID")
        );
        let label = if sb.volume_name.is_empty() {
            "<none>"
        } else {
            sb.volume_name.as_str()
        };
        assert_eq!(label, field(&fields, "Filesystem volume name"));
        assert_eq!(sb.inode_size.to_string(), field(&fields, "Inode size"));
        assert_eq!(sb.first_ino.to_string(), field(&fields, "First inode"));
        if sb.has_journal() {
            assert_eq!(sb.journal_inum.to_string(), field(&fields, "Journal inode"));
        }
        match fields.get("Checksum type").map(String::as_str) {
            Some("crc32c") => {
                assert!(sb.has_metadata_csum());
                assert_eq!(format!("{:#010x}", sb.checksum), field(&fields, "Checksum"));
                assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid);
            }
            _ => {
                assert!(!sb.has_metadata_csum());
                assert_eq!(verify_checksum(&raw), ChecksumStatus::Absent);
            }
        }
        assert!(sb.unknown_features().is_none());
        assert_eq!(
            sb.fs_bytes(),
            Some(sb.blocks_count * sb.block_size().expect("block size"))
        );
        sb
    }

    /// The first backup superblock sits where `backup_superblock_offsets` says first, and
    /// agrees with the primary.
    fn assert_backup_agrees(path: &Path, sb: &Superblock) {
        let candidates = backup_superblock_offsets(Some(sb));
        let (offset, block_size) = candidates[0];
        assert_eq!(Some(block_size), sb.block_size());
        let backup =
            Superblock::parse(&read_at(path, offset, SUPERBLOCK_SIZE)).expect("backup superblock");
        assert!(!features_differ(sb, &backup));
        assert_eq!(backup.uuid, sb.uuid);
        // The blind guess for the same block size finds the same copy.
        let guess = candidates
            .iter()
            .skip(1)
            .find(|(_, size)| *size == block_size)
            .copied();
        if guess.is_none() {
            // It was deduplicated because it is the same offset as the geometric one.
            assert!(candidates.iter().filter(|(off, _)| *off == offset).count() == 1);
        }
    }

    #[test]
    fn real_images_match_dumpe2fs() {
        if !usable("real_images_match_dumpe2fs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let configs: &[(&str, &str, u64, &[&str])] = &[
            (
                "ext4-1k.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-L", "one-k"],
            ),
            (
                "ext4-4k-csum64.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "metadata_csum,64bit"],
            ),
            (
                "ext4-1k-csum64.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-O", "metadata_csum,64bit"],
            ),
            (
                "ext4-4k-nocsum.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "^metadata_csum"],
            ),
            (
                "ext4-1k-nocsum.img",
                "mkfs.ext4",
                20,
                &["-b", "1024", "-O", "^metadata_csum,^64bit"],
            ),
            ("ext3-1k.img", "mkfs.ext3", 20, &["-b", "1024"]),
            ("ext3-4k.img", "mkfs.ext3", 160, &["-b", "4096"]),
            ("ext2-1k.img", "mkfs.ext2", 20, &["-b", "1024"]),
            (
                "ext2-4k.img",
                "mkfs.ext2",
                160,
                &["-b", "4096", "-L", "a-label-16chars!"],
            ),
        ];
        for (name, mkfs, size, args) in configs {
            let path = make_image(dir.path(), name, mkfs, *size, args);
            let sb = assert_matches_dumpe2fs(&path);
            assert_backup_agrees(&path, &sb);
            assert_eq!(sb.state_string(), "clean");
            assert!(!sb.needs_recovery());
            assert_eq!(sb.has_journal(), *mkfs != "mkfs.ext2", "{name}");
            assert_eq!(sb.has_extents(), *mkfs == "mkfs.ext4", "{name}");
            assert!(sb.first_error.is_none() && sb.last_error.is_none());
            assert_eq!(
                sb.group_count(),
                Some(
                    (sb.blocks_count - u64::from(sb.first_data_block))
                        .div_ceil(u64::from(sb.blocks_per_group))
                )
            );
        }
    }

    #[test]
    fn debugfs_edited_state_errors_and_counts() {
        if !usable("debugfs_edited_state_errors_and_counts") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "edit.img", "mkfs.ext4", 20, &["-b", "1024"]);
        for (state, expected) in [
            ("0", "not clean"),
            ("3", "clean with errors"),
            ("2", "not clean with errors"),
            ("5", "clean"),
            ("33", "clean"),
        ] {
            debugfs_write(&path, &[&format!("ssv state {state}")]);
            let sb = assert_matches_dumpe2fs(&path);
            assert_eq!(sb.state_string(), expected);
            assert_eq!(sb.state.to_string(), state);
        }
        debugfs_write(
            &path,
            &[
                "ssv state 1",
                "ssv mnt_count 7",
                "ssv max_mnt_count 5",
                "ssv errors 3",
            ],
        );
        let sb = assert_matches_dumpe2fs(&path);
        assert_eq!((sb.mnt_count, sb.max_mnt_count), (7, 5));
        assert_eq!(sb.errors_behavior(), "Panic");
        debugfs_write(&path, &["ssv errors 2"]);
        assert_eq!(
            assert_matches_dumpe2fs(&path).errors_behavior(),
            "Remount read-only"
        );
        debugfs_write(&path, &["ssv errors 9"]);
        assert_eq!(
            assert_matches_dumpe2fs(&path).errors_behavior(),
            "Unknown (continue)"
        );
        debugfs_write(
            &path,
            &[
                "ssv errors 1",
                "ssv max_mnt_count -1",
                "feature needs_recovery",
            ],
        );
        let sb = assert_matches_dumpe2fs(&path);
        assert!(sb.needs_recovery());
        assert!(
            sb.feature_names()
                .iter()
                .any(|name| name == "needs_recovery")
        );
        assert_eq!(sb.max_mnt_count, -1);
    }

    #[test]
    fn debugfs_error_history_matches_dumpe2fs() {
        if !usable("debugfs_error_history_matches_dumpe2fs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "errors.img", "mkfs.ext4", 20, &["-b", "1024"]);
        debugfs_write(
            &path,
            &[
                "ssv error_count 3",
                "ssv first_error_time 20240101120000",
                "ssv first_error_func ext4_lookup",
                "ssv first_error_line 1234",
                "ssv first_error_ino 12",
                "ssv first_error_block 4321",
                "ssv last_error_time 20240102130000",
                "ssv last_error_line 99",
                "ssv last_orphan 12",
            ],
        );
        // debugfs 1.47.0 cannot set the errcode bytes: write 0x27A/0x27B directly and
        // re-seal the checksum.
        let (mut raw, _) = primary(&path);
        raw[0x27A] = 5;
        raw[0x27B] = 42;
        // A function name filling all 32 bytes, with no terminating NUL.
        raw[0x1E0..0x200].copy_from_slice(b"a_function_name_of_32_chars_abcd");
        let sealed = !crc32c::crc32c(&raw[..0x3FC]);
        raw[0x3FC..].copy_from_slice(&sealed.to_le_bytes());
        write_at(&path, SUPERBLOCK_OFFSET, &raw);
        let sb = assert_matches_dumpe2fs(&path);
        let fields = dumpe2fs_header(&path, false);
        assert_eq!(sb.error_count.to_string(), field(&fields, "FS Error count"));
        assert_eq!(
            sb.last_orphan.to_string(),
            field(&fields, "First orphan inode")
        );
        let first = sb.first_error.clone().expect("first error");
        assert_eq!(first.function, field(&fields, "First error function"));
        assert_eq!(first.line.to_string(), field(&fields, "First error line #"));
        assert_eq!(
            first.inode.to_string(),
            field(&fields, "First error inode #")
        );
        assert_eq!(
            first.block.to_string(),
            field(&fields, "First error block #")
        );
        assert_eq!(first.errcode_name(), field(&fields, "First error err"));
        assert_eq!(first.errcode_name(), "EFSCORRUPTED");
        // 2024-01-01 12:00:00 UTC.
        assert_eq!(first.time, 1_704_110_400);
        let last = sb.last_error.clone().expect("last error");
        assert_eq!(last.function, field(&fields, "Last error function"));
        assert_eq!(last.function.len(), 32);
        assert_eq!(last.line.to_string(), field(&fields, "Last error line #"));
        assert_eq!(last.time, 1_704_200_400);
        assert!(!fields.contains_key("Last error inode #"));
        assert_eq!(last.errcode_name(), field(&fields, "Last error err"));
        assert_eq!(last.errcode_name(), "UNKNOWN_ERRCODE_42");
        // Clearing the time hides the block even though the other fields stay.
        debugfs_write(&path, &["ssv first_error_time 0"]);
        let sb = assert_matches_dumpe2fs(&path);
        assert!(sb.first_error.is_none());
        assert!(!dumpe2fs_header(&path, false).contains_key("First error function"));
        assert!(sb.last_error.is_some());
    }

    #[test]
    fn corrupted_checksum_is_invalid() {
        if !usable("corrupted_checksum_is_invalid") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(
            dir.path(),
            "csum.img",
            "mkfs.ext4",
            20,
            &["-O", "metadata_csum,64bit"],
        );
        let (raw, sb) = primary(&path);
        assert_eq!(verify_checksum(&raw), ChecksumStatus::Valid);
        write_at(&path, SUPERBLOCK_OFFSET + 0x78, b"X");
        let (raw, corrupted) = primary(&path);
        assert_eq!(corrupted.volume_name, "X");
        match verify_checksum(&raw) {
            ChecksumStatus::Invalid { stored, computed } => {
                assert_eq!(stored, sb.checksum);
                assert_ne!(computed, stored);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        // Without metadata_csum there is nothing to verify.
        let path = make_image(
            dir.path(),
            "nocsum.img",
            "mkfs.ext4",
            20,
            &["-O", "^metadata_csum"],
        );
        write_at(&path, SUPERBLOCK_OFFSET + 0x78, b"X");
        assert_eq!(verify_checksum(&primary(&path).0), ChecksumStatus::Absent);
    }

    #[test]
    fn every_feature_bit_named_like_dumpe2fs() {
        if !usable("every_feature_bit_named_like_dumpe2fs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "all.img", "mkfs.ext4", 20, &["-b", "1024"]);
        debugfs_write(
            &path,
            &[
                "ssv feature_compat 0xffffffff",
                "ssv feature_ro_compat 0xffffffff",
                "ssv feature_incompat 0xffffffff",
            ],
        );
        let (_, sb) = primary(&path);
        let fields = dumpe2fs_header(&path, true);
        assert_eq!(
            sb.feature_names().join(" "),
            field(&fields, "Filesystem features")
        );
        let unknown = sb.unknown_features().expect("unknown features");
        assert!(
            unknown.contains("lazy_bg") && unknown.contains("FEATURE_I31"),
            "{unknown}"
        );
        assert!(!unknown.contains("has_journal"), "{unknown}");
    }
}

/// `fs::ext::groups`: descriptor checks on fresh and damaged images.
mod groups {
    use super::images::{make_image, read_at, usable, write_at};
    use snapguard::fs::ext::groups::*;
    use snapguard::fs::ext::superblock::Superblock;

    fn load(path: &std::path::Path) -> (Superblock, Vec<u8>, SbExtra, Geometry, Vec<GroupDesc>) {
        let raw = read_at(path, 1024, 1024);
        let sb = Superblock::parse(&raw).expect("superblock");
        let extra = SbExtra::parse(&raw);
        let geom = validate_superblock(&sb, &raw, OpenOptions::default()).expect("valid");
        let mut table = Vec::new();
        for block in descriptor_table_blocks(&sb, &geom, 0) {
            table.extend(read_at(
                path,
                block * geom.block_size,
                geom.block_size as usize,
            ));
        }
        let descs = parse_descs(&sb, &extra, &geom, &table).expect("descs");
        (sb, raw, extra, geom, descs)
    }

    #[test]
    fn fresh_images_pass_every_check() {
        if !usable("fresh_images_pass_every_check") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: [(&str, &str, &[&str]); 6] = [
            ("a.img", "mkfs.ext4", &["-b", "1024"]),
            (
                "b.img",
                "mkfs.ext4",
                &["-b", "4096", "-O", "^metadata_csum,uninit_bg"],
            ),
            ("c.img", "mkfs.ext4", &["-b", "4096", "-O", "64bit"]),
            (
                "d.img",
                "mkfs.ext4",
                &[
                    "-b",
                    "1024",
                    "-O",
                    "^64bit,^metadata_csum,meta_bg,^resize_inode",
                ],
            ),
            ("e.img", "mkfs.ext2", &[]),
            ("f.img", "mkfs.ext3", &["-b", "2048"]),
        ];
        for (name, mkfs, args) in cases {
            let path = make_image(dir.path(), name, mkfs, 300, args);
            let (sb, _raw, extra, geom, descs) = load(&path);
            assert!(geom.group_count > 1, "{name}");
            assert_eq!(check_desc(&sb, &extra, &geom, &descs), Ok(()), "{name}");
            let check = check_super_block(&sb, &extra, &geom, &descs, Some(sb.blocks_count));
            assert_eq!(check.abort, None, "{name}");
            assert!(check.invalid.is_empty(), "{name}: {:?}", check.invalid);
            assert_eq!(check.group_free_blocks, sb.free_blocks_count, "{name}");
            assert_eq!(check.group_free_inodes, sb.free_inodes_count, "{name}");
        }
    }

    #[test]
    fn detects_descriptor_damage() {
        if !usable("detects_descriptor_damage") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(dir.path(), "g.img", "mkfs.ext4", 32, &["-b", "1024"]);
        let (sb, _raw, _extra, geom, _descs) = load(&path);
        let gdt = descriptor_table_blocks(&sb, &geom, 0)[0] * geom.block_size;
        // Group 1's block bitmap moved onto block 1, the primary superblock: flex_bg allows
        // a bitmap outside its group, but not on reserved metadata.
        write_at(&path, gdt + geom.desc_size, &1u32.to_le_bytes());
        let (sb, _raw, extra, geom, descs) = load(&path);
        assert_eq!(
            check_desc(&sb, &extra, &geom, &descs),
            Err(DescProblem::BlockBitmap { group: 1, block: 1 })
        );
        let check = check_super_block(&sb, &extra, &geom, &descs, None);
        assert!(
            check.invalid.iter().any(|i| i.message.contains("checksum")),
            "{:?}",
            check.invalid
        );
    }

    #[test]
    fn open_rules() {
        if !usable("open_rules") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(
            dir.path(),
            "h.img",
            "mkfs.ext4",
            16,
            &["-b", "1024", "-O", "^metadata_csum"],
        );
        let raw = read_at(&path, 1024, 1024);
        let mut bad = raw.clone();
        bad[0x58] = 0;
        bad[0x59] = 0;
        let sb = Superblock::parse(&bad).expect("parse");
        assert!(matches!(
            validate_superblock(&sb, &bad, OpenOptions::default()),
            Err(OpenError::Corrupt(_))
        ));
        assert!(superblock_open_problem(&sb, &bad).is_some());
        let sb = Superblock::parse(&raw).expect("parse");
        assert_eq!(superblock_open_problem(&sb, &raw), None);
    }
}

/// `fs::ext::inode`: descriptors and inode locations against dumpe2fs and debugfs.
mod inode {
    use super::images::*;
    use snapguard::fs::ext::inode::*;
    use snapguard::fs::ext::superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock};
    use std::path::Path;

    fn superblock(path: &Path) -> Superblock {
        Superblock::parse(&read_at(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)).expect("superblock")
    }

    /// "Inode table at A-B" of every group, from the full dumpe2fs output.
    fn dumpe2fs_inode_tables(path: &Path) -> Vec<u64> {
        let out = run("dumpe2fs", &[path.to_str().expect("utf-8")]);
        out.lines()
            .filter_map(|line| line.trim().strip_prefix("Inode table at "))
            .map(|rest| {
                let first = rest.split('-').next().expect("range");
                first.parse().expect("block number")
            })
            .collect()
    }

    /// (block, byte offset in block) that `debugfs imap` reports for an inode.
    fn debugfs_imap(path: &Path, ino: u32) -> (u64, u64) {
        let out = run(
            "debugfs",
            &[
                "-R",
                &format!("imap <{ino}>"),
                path.to_str().expect("utf-8"),
            ],
        );
        let line = out
            .lines()
            .find_map(|line| line.trim().strip_prefix("located at block "))
            .expect("imap output");
        let (block, offset) = line.split_once(", offset ").expect("imap format");
        let offset = u64::from_str_radix(offset.trim().trim_start_matches("0x"), 16).expect("hex");
        (block.trim().parse().expect("block"), offset)
    }

    fn check_image(path: &Path) {
        let sb = superblock(path);
        let block_size = sb.block_size().expect("block size");
        let desc_len = usize::try_from(group_desc_size(&sb).expect("desc size")).expect("usize");
        let expected = dumpe2fs_inode_tables(path);
        assert_eq!(Some(expected.len() as u64), sb.group_count());
        for (group, &table) in expected.iter().enumerate() {
            let group = group as u64;
            let offset = group_desc_offset(&sb, group).expect("descriptor offset");
            let desc = read_at(path, offset, desc_len);
            assert_eq!(
                inode_table_block(&desc, &sb),
                table,
                "group {group} of {path:?}"
            );
        }
        assert_eq!(group_desc_offset(&sb, expected.len() as u64), None);
        let last_inode = sb.inodes_count;
        for ino in [
            1,
            2,
            8,
            11,
            sb.inodes_per_group,
            sb.inodes_per_group + 1,
            last_inode,
        ] {
            let group = inode_group(&sb, ino).expect("group");
            let desc = read_at(path, group_desc_offset(&sb, group).expect("desc"), desc_len);
            let location =
                inode_location(&sb, ino, inode_table_block(&desc, &sb)).expect("location");
            let (block, within) = debugfs_imap(path, ino);
            assert_eq!(
                location,
                block * block_size + within,
                "inode {ino} of {path:?}"
            );
        }
        assert_eq!(inode_group(&sb, 0), None);
        assert_eq!(inode_group(&sb, last_inode + 1), None);
        // The root directory inode: a directory of one block.
        let group = inode_group(&sb, 2).expect("group");
        let desc = read_at(path, group_desc_offset(&sb, group).expect("desc"), desc_len);
        let root = read_at(
            path,
            inode_location(&sb, 2, inode_table_block(&desc, &sb)).expect("location"),
            usize::from(sb.inode_size),
        );
        assert_eq!(inode_size_bytes(&root), block_size);
        assert!(inode_i_block(&root).is_some());
    }

    #[test]
    fn descriptors_and_inodes_match_dumpe2fs_and_debugfs() {
        if !usable("descriptors_and_inodes_match_dumpe2fs_and_debugfs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let configs: &[(&str, &str, u64, &[&str])] = &[
            (
                "ext4-1k-32desc.img",
                "mkfs.ext4",
                80,
                &["-b", "1024", "-O", "^64bit"],
            ),
            (
                "ext4-1k-64desc.img",
                "mkfs.ext4",
                80,
                &["-b", "1024", "-O", "64bit,metadata_csum"],
            ),
            ("ext4-4k.img", "mkfs.ext4", 300, &["-b", "4096"]),
            (
                "ext4-1k-metabg.img",
                "mkfs.ext4",
                300,
                &["-b", "1024", "-O", "meta_bg,^resize_inode,64bit"],
            ),
            (
                "ext4-1k-metabg-32.img",
                "mkfs.ext4",
                300,
                &["-b", "1024", "-O", "meta_bg,^resize_inode,^64bit"],
            ),
            (
                "ext4-1k-sparse2.img",
                "mkfs.ext4",
                80,
                &["-b", "1024", "-O", "sparse_super2"],
            ),
            ("ext3-1k.img", "mkfs.ext3", 40, &["-b", "1024", "-I", "128"]),
            ("ext2-2k.img", "mkfs.ext2", 40, &["-b", "2048"]),
        ];
        for (name, mkfs, size, args) in configs {
            let path = make_image(dir.path(), name, mkfs, *size, args);
            check_image(&path);
        }
    }
}

/// `fs::ext::journal`: the journal superblock and block map against dumpe2fs and debugfs.
mod journal {
    use super::images::*;
    use snapguard::fs::ext::inode::{
        EXT4_EXTENTS_FL, group_desc_offset, group_desc_size, inode_flags, inode_group,
        inode_i_block, inode_location, inode_size_bytes, inode_table_block,
    };
    use snapguard::fs::ext::journal::*;
    use snapguard::fs::ext::superblock::{
        ChecksumStatus, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock,
    };
    use std::path::Path;

    fn file_reader(
        path: &Path,
        block_size: u64,
    ) -> impl FnMut(u64) -> std::io::Result<Vec<u8>> + '_ {
        move |block| {
            let len = usize::try_from(block_size).map_err(std::io::Error::other)?;
            Ok(read_at(path, block * block_size, len))
        }
    }

    /// The journal inode's i_block read the long way: group descriptor → inode table → inode.
    fn journal_inode_from_table(path: &Path, sb: &Superblock) -> Vec<u8> {
        let group = inode_group(sb, sb.journal_inum).expect("group");
        let desc_offset = group_desc_offset(sb, group).expect("descriptor offset");
        let desc_len = usize::try_from(group_desc_size(sb).expect("desc size")).expect("usize");
        let desc = read_at(path, desc_offset, desc_len);
        let table = inode_table_block(&desc, sb);
        let location = inode_location(sb, sb.journal_inum, table).expect("inode location");
        read_at(path, location, usize::from(sb.inode_size))
    }

    fn debugfs_bmap(path: &Path, logical: u64) -> Option<u64> {
        let out = run(
            "debugfs",
            &[
                "-R",
                &format!("bmap <8> {logical}"),
                path.to_str().expect("utf-8"),
            ],
        );
        let value: u64 = out.trim().parse().expect("bmap output");
        (value != 0).then_some(value)
    }

    /// Finds and parses the journal superblock, checking it against dumpe2fs and the
    /// mapping against debugfs.
    fn check_journal(path: &Path) -> JournalSuperblock {
        let raw = read_at(path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE);
        let sb = Superblock::parse(&raw).expect("superblock");
        let block_size = sb.block_size().expect("block size");
        let i_block = journal_inode_blocks(&sb).expect("s_jnl_blocks backup");
        let inode = journal_inode_from_table(path, &sb);
        assert_eq!(
            inode_i_block(&inode),
            Some(i_block),
            "backup equals the inode's i_block"
        );
        assert_eq!(Some(inode_size_bytes(&inode)), journal_inode_size(&sb));
        let extents = inode_flags(&inode).expect("flags") & EXT4_EXTENTS_FL != 0;
        assert_eq!(extents, sb.has_extents());

        let mut reader = file_reader(path, block_size);
        let first = map_logical_block(&i_block, 0, block_size, &mut reader)
            .expect("map")
            .expect("journal block 0 is mapped");
        let jsb = JournalSuperblock::parse(&read_at(path, first * block_size, 1024))
            .expect("jbd2 superblock");
        let fields = dumpe2fs_header(path, false);
        assert_eq!(
            format!("0x{:08x}", jsb.sequence),
            field(&fields, "Journal sequence")
        );
        assert_eq!(jsb.start.to_string(), field(&fields, "Journal start"));
        assert_eq!(
            jsb.maxlen.to_string(),
            field(&fields, "Total journal blocks")
        );
        assert_eq!(u64::from(jsb.blocksize), block_size);
        assert_eq!(jsb.blocktype, JBD2_SUPERBLOCK_V2);
        match fields.get("Journal errno") {
            Some(errno) => assert_eq!(&jsb.errno.to_string(), errno),
            None => assert_eq!(jsb.errno, 0),
        }
        match fields.get("Journal checksum type").map(String::as_str) {
            Some("crc32c") => {
                assert_eq!(jsb.checksum_status, ChecksumStatus::Valid);
                assert_eq!(
                    format!("{:#010x}", jsb.checksum),
                    field(&fields, "Journal checksum")
                );
            }
            _ => assert_eq!(jsb.checksum_status, ChecksumStatus::Absent),
        }
        let last = u64::from(jsb.maxlen) - 1;
        for logical in [
            0,
            1,
            11,
            12,
            13,
            100,
            267,
            268,
            269,
            600,
            1035,
            last,
            last + 1,
            last + 5000,
        ] {
            let ours = map_logical_block(&i_block, logical, block_size, &mut reader).expect("map");
            assert_eq!(
                ours,
                debugfs_bmap(path, logical),
                "logical block {logical} of {path:?}"
            );
            let layout = if extents {
                BlockLayout::Extents
            } else {
                BlockLayout::BlockMap
            };
            let forced = map_logical_block_with(&i_block, logical, block_size, layout, &mut reader)
                .expect("map");
            assert_eq!(forced, ours);
        }
        jsb
    }

    #[test]
    fn real_journals_match_dumpe2fs_and_debugfs() {
        if !usable("real_journals_match_dumpe2fs_and_debugfs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let configs: &[(&str, &str, u64, &[&str])] = &[
            ("ext4-1k.img", "mkfs.ext4", 20, &["-b", "1024"]),
            (
                "ext4-4k.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "metadata_csum,64bit"],
            ),
            (
                "ext4-4k-nocsum.img",
                "mkfs.ext4",
                160,
                &["-b", "4096", "-O", "^metadata_csum"],
            ),
            ("ext3-1k.img", "mkfs.ext3", 20, &["-b", "1024"]),
            ("ext3-4k.img", "mkfs.ext3", 160, &["-b", "4096"]),
            (
                "ext3-2k-big-journal.img",
                "mkfs.ext3",
                200,
                &["-b", "2048", "-J", "size=64"],
            ),
        ];
        for (name, mkfs, size, args) in configs {
            let path = make_image(dir.path(), name, mkfs, *size, args);
            let jsb = check_journal(&path);
            assert_eq!(jsb.start, 0, "{name}: fresh journal is empty");
        }
    }

    #[test]
    fn journal_with_transactions_and_checksum() {
        if !usable("journal_with_transactions_and_checksum") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        let path = make_image(dir.path(), "tx.img", "mkfs.ext4", 20, &["-b", "1024"]);
        let payload = dir.path().join("payload.bin");
        std::fs::write(&payload, vec![0xA5u8; 1024]).expect("payload");
        debugfs_write(
            &path,
            &["jo -c", &format!("jw -b 333 {}", payload.display()), "jc"],
        );
        let jsb = check_journal(&path);
        assert_ne!(jsb.start, 0);
        assert_eq!(jsb.checksum_status, ChecksumStatus::Valid);
        assert!(jsb.feature_incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3 != 0);
        let sb =
            Superblock::parse(&read_at(&path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)).expect("sb");
        assert!(sb.needs_recovery());

        // Corrupt one byte of the journal superblock: the checksum is reported, not fatal.
        let block_size = sb.block_size().expect("bs");
        let i_block = journal_inode_blocks(&sb).expect("i_block");
        let first = map_logical_block(&i_block, 0, block_size, &mut file_reader(&path, block_size))
            .expect("map")
            .expect("mapped");
        let mut raw = read_at(&path, first * block_size, 1024);
        raw[0x1C] ^= 0x40;
        let corrupted = JournalSuperblock::parse(&raw).expect("still parses");
        assert!(matches!(
            corrupted.checksum_status,
            ChecksumStatus::Invalid { stored, .. } if stored == jsb.checksum
        ));
    }
}

/// `fs::ext::mmp`: the MMP block mkfs writes, against dumpe2fs.
mod mmp {
    use super::images::*;
    use snapguard::fs::ext::mmp::*;
    use snapguard::fs::ext::superblock::{SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, Superblock};

    #[test]
    fn mkfs_mmp_block_matches_dumpe2fs() {
        if !usable("mkfs_mmp_block_matches_dumpe2fs") {
            return;
        }
        let dir = tempfile::TempDir::new().expect("tempdir");
        for args in [
            &["-b", "1024", "-O", "mmp"][..],
            &["-b", "4096", "-O", "mmp,^metadata_csum"][..],
        ] {
            let path = make_image(dir.path(), "mmp.img", "mkfs.ext4", 40, args);
            let sb =
                Superblock::parse(&read_at(&path, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)).expect("sb");
            assert!(sb.has_mmp());
            let fields = dumpe2fs_header(&path, false);
            assert_eq!(sb.mmp_block.to_string(), field(&fields, "MMP block number"));
            assert_eq!(
                sb.mmp_update_interval.to_string(),
                field(&fields, "MMP update interval")
            );
            let block_size = sb.block_size().expect("block size");
            let raw = read_at(&path, sb.mmp_block * block_size, 1024);
            let mmp = Mmp::parse(&raw).expect("mmp");
            assert_eq!(format!("{:#x}", mmp.magic), field(&fields, "mmp_magic"));
            assert_eq!(format!("{:#x}", mmp.seq), field(&fields, "mmp_sequence"));
            assert_eq!(
                mmp.check_interval.to_string(),
                field(&fields, "mmp_check_interval")
            );
            assert_eq!(mmp.time.to_string(), field(&fields, "mmp_update_time"));
            assert_eq!(mmp.nodename, field(&fields, "mmp_node_name"));
            assert_eq!(mmp.bdevname, field(&fields, "mmp_device_name"));
            assert_eq!(mmp.state(), MmpState::Clean);
        }
    }
}

/// `scan::e2fsck_sim`: which superblock e2fsck would open, on real and damaged images.
mod e2fsck_sim {
    use super::images::{make_image, read_at, usable, write_at};
    use snapguard::fs::ext::groups::{InvalidKind, OpenError};
    use snapguard::scan::e2fsck_sim::*;
    use snapguard::scan::volume::Volume;
    use snapguard::sys::SourceFile;
    use std::path::Path;

    fn run(path: &Path) -> Simulation {
        let source = SourceFile::open(path).expect("open image");
        let volume = Volume::whole(&source);
        simulate_volume(&volume).expect("ext superblock")
    }

    #[test]
    fn fresh_image_is_clean() {
        if !usable("fresh_image_is_clean") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(dir.path(), "a.img", "mkfs.ext4", 32, &["-b", "1024"]);
        let sim = run(&path);
        assert!(matches!(sim.superblock, SuperblockChoice::Primary));
        assert!(!sim.marked_invalid);
        assert_eq!(sim.aborted, None);
        assert!(sim.summary_mismatch.is_none());
    }

    #[test]
    fn bad_primary_descriptors_use_the_backup() {
        if !usable("bad_primary_descriptors_use_the_backup") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(
            dir.path(),
            "b.img",
            "mkfs.ext4",
            32,
            &["-b", "1024", "-O", "^metadata_csum"],
        );
        // Group 0's block bitmap → block 1 (the superblock): ext2fs_check_desc fails.
        write_at(&path, 2048, &1u32.to_le_bytes());
        let sim = run(&path);
        assert!(sim.primary_desc_error.is_some());
        match &sim.superblock {
            SuperblockChoice::Backup { offset, superblock } => {
                assert_eq!(*offset, 8193 * 1024);
                // ext2fs_flush writes backups without the valid bit.
                assert_eq!(superblock.state & 1, 0);
            }
            other => panic!("expected the backup, got {other:?}"),
        }
    }

    #[test]
    fn zero_inode_size_falls_back_and_abort_rules() {
        if !usable("zero_inode_size_falls_back_and_abort_rules") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(dir.path(), "c.img", "mkfs.ext2", 16, &["-b", "1024"]);
        let mut raw = read_at(&path, 1024, 1024);
        raw[0x58] = 0;
        raw[0x59] = 0;
        write_at(&path, 1024, &raw);
        let sim = run(&path);
        assert!(matches!(
            sim.primary_open_error,
            Some(OpenError::Corrupt(_))
        ));
        assert!(matches!(sim.superblock, SuperblockChoice::Backup { .. }));
        assert_eq!(sim.aborted, None);
    }

    #[test]
    fn truncated_device_marks_invalid() {
        if !usable("truncated_device_marks_invalid") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = make_image(dir.path(), "d.img", "mkfs.ext4", 16, &["-b", "1024"]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(15 << 20)
            .expect("truncate");
        let sim = run(&path);
        assert!(sim.marked_invalid);
        assert!(
            sim.invalid
                .iter()
                .any(|i| i.kind == InvalidKind::DeviceSize)
        );
    }
}
