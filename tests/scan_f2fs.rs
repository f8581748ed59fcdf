//! `snapguard scan --json` on f2fs images built here with mkfs.f2fs and patched from the
//! test (the reference's §6 recipe: set `ckpt_flags` in the current checkpoint pack,
//! recompute its CRC, copy the header to the pack's last block), checked against what
//! `fsck.f2fs --dry-run` and `dump.f2fs` print on their `checkpoint state` line. The
//! kernel here has no f2fs module, so everything is offline. A missing tool skips its
//! test with a note.

mod common;

use std::path::{Path, PathBuf};

use common::fixtures::{self, MIB};
use common::*;
use serde_json::Value;

/// mkfs.f2fs 1.15 refuses anything below ~50 MiB.
const SIZE: u64 = 64 * MIB;
const MAGIC: u32 = 0xF2F5_2010;

/// The full path of an admin tool, or `None` with a note when it is not installed.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        common::skip(test, &format!("{name} is not installed"));
    }
    found
}

/// `mkfs.f2fs -q [extra] IMG` on a new sparse image.
fn f2fs_image(dir: &TestDir, name: &str, extra: &[&str], test: &str) -> Option<PathBuf> {
    let mkfs = tool("mkfs.f2fs", test)?;
    let img = dir.join(name);
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(SIZE))
        .expect("create image");
    let mut args: Vec<&std::ffi::OsStr> = vec!["-q".as_ref()];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    args.push(img.as_os_str());
    run(&mkfs.to_string_lossy(), &args);
    Some(img)
}

/// The raw f2fs CRC: CRC-32/IEEE seeded with the magic, no final XOR (zlib's
/// `crc32(data, seed ^ ~0) ^ ~0`).
fn f2fs_crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!MAGIC);
    h.update(data);
    !h.finalize()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Set and clear `ckpt_flags` bits in the current checkpoint pack (the higher
/// `checkpoint_ver`), recompute the CRC and copy the header to the last block of the
/// pack. Returns the new flags.
fn patch_checkpoint(img: &Path, set: u32, clear: u32) -> u32 {
    let sb = fixtures::read_at(img, 1024, 3072);
    let cp_blkaddr = u64::from(le32(&sb, 0x4C));
    let log_blocks_per_seg = le32(&sb, 20);
    let packs: Vec<(u64, Vec<u8>)> = (0..2)
        .map(|p| {
            let start = cp_blkaddr + (p << log_blocks_per_seg);
            (start, fixtures::read_at(img, start * 4096, 4096))
        })
        .collect();
    let (start, mut block) = packs
        .into_iter()
        .max_by_key(|(_, b)| u64::from_le_bytes(b[0..8].try_into().unwrap()))
        .unwrap();
    let flags = (le32(&block, 0x84) | set) & !clear;
    block[0x84..0x88].copy_from_slice(&flags.to_le_bytes());
    assert_eq!(le32(&block, 0xA4), 4092, "checksum_offset");
    let crc = f2fs_crc(&block[..4092]);
    block[4092..].copy_from_slice(&crc.to_le_bytes());
    let total = u64::from(le32(&block, 0x88));
    fixtures::patch(img, start * 4096, &block);
    fixtures::patch(img, (start + total - 1) * 4096, &block);
    flags
}

/// The `checkpoint state` line of `fsck.f2fs --dry-run` and of `dump.f2fs`: the flags in
/// hex and the names after the colon.
fn tool_checkpoint_state(img: &Path) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for (name, args) in [("fsck.f2fs", vec!["--dry-run"]), ("dump.f2fs", vec![])] {
        let Some(t) = tool(name, "checkpoint state") else {
            continue;
        };
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.push(img.as_os_str());
        let ran = run_any(&t.to_string_lossy(), &all);
        let text = format!("{}{}", ran.stdout, ran.stderr);
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Info: checkpoint state = "))
            .unwrap_or_else(|| panic!("{name} printed no checkpoint state:\n{text}"));
        let (hex, names) = line.split_once(':').expect("state line has a colon");
        out.push((
            u32::from_str_radix(hex.trim(), 16).expect("hex flags"),
            names.split_whitespace().map(str::to_string).collect(),
        ));
    }
    out
}

fn scan_one<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Value, i32) {
    let (doc, exit) = scan_json(args);
    (only_target(&doc).clone(), exit)
}

/// snapguard and the f2fs tools agree on the current checkpoint's flags and names.
fn assert_agrees_with_tools(t: &Value, img: &Path) {
    let d = &t["f2fs"];
    let flags = d["checkpoint_flags"].as_u64().expect("checkpoint_flags") as u32;
    let names: Vec<String> = d["checkpoint_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for (tool_flags, tool_names) in tool_checkpoint_state(img) {
        assert_eq!(tool_flags, flags, "{t:#}");
        assert_eq!(tool_names, names, "{t:#}");
    }
    let umount = flags & 1 != 0;
    assert_eq!(t["needs_recovery"], !umount, "{t:#}");
}

#[test]
fn fresh_image_is_clean() {
    let dir = TestDir::new("f2fs-fresh");
    let Some(img) = f2fs_image(&dir, "fresh.img", &[], "f2fs_fresh_image_is_clean") else {
        return;
    };
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["fstype"], "f2fs");
    assert_eq!(t["status"], "ok");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["needs_recovery"], false);
    assert_eq!(t["fsck_reason"], Value::Null);
    assert_eq!(t["f2fs"]["checkpoint_pack"], 1);
    assert_eq!(t["f2fs"]["checksum"], "absent");
    assert!(finding_ids(&t).is_empty(), "{t:#}");
    assert_agrees_with_tools(&t, &img);
}

#[test]
fn umount_cleared_is_dirty() {
    let dir = TestDir::new("f2fs-dirty");
    let Some(img) = f2fs_image(&dir, "dirty.img", &[], "f2fs_umount_cleared_is_dirty") else {
        return;
    };
    let flags = patch_checkpoint(&img, 0, 0x1);
    assert_eq!(flags & 1, 0);
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 1, "{t:#}");
    assert_eq!(t["status"], "warning");
    assert_eq!(t["state"], "dirty");
    assert_eq!(t["needs_recovery"], true);
    let f = expect_finding(&t, "f2fs.not-unmounted");
    assert_eq!(f["severity"], "warning");
    assert_agrees_with_tools(&t, &img);
    assert!(
        t["f2fs"]["checkpoint_state"]
            .as_array()
            .unwrap()
            .contains(&Value::from("sudden-power-off")),
        "{t:#}"
    );

    // A crash-consistent copy of a running system: expected, info only.
    let (t, exit) = scan_one(&[img.as_os_str(), "--snapshot".as_ref(), "crash".as_ref()]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["context"], "crash");
    assert_eq!(t["state"], "dirty");
    assert_eq!(expect_finding(&t, "f2fs.not-unmounted")["severity"], "info");
}

#[test]
fn fsck_flag_is_errors() {
    let dir = TestDir::new("f2fs-fsck");
    let Some(img) = f2fs_image(&dir, "fsck.img", &[], "f2fs_fsck_flag_is_errors") else {
        return;
    };
    patch_checkpoint(&img, 0x10, 0);
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["status"], "critical");
    assert_eq!(t["state"], "errors");
    assert_eq!(t["needs_recovery"], false);
    let f = expect_finding(&t, "f2fs.need-fsck");
    assert_eq!(f["severity"], "critical");
    assert_eq!(
        f["remedy"].as_str(),
        Some(format!("fsck.f2fs -f {}", img.display()).as_str()),
        "{f:#}"
    );
    assert_agrees_with_tools(&t, &img);

    // The reference's example: fsck set and unmount clear, "194 : ... fsck ...
    // sudden-power-off"; critical in every context.
    patch_checkpoint(&img, 0, 0x1);
    let (t, exit) = scan_one(&[img.as_os_str(), "--snapshot".as_ref(), "crash".as_ref()]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["f2fs"]["checkpoint_flags"], 0x194);
    expect_finding(&t, "f2fs.not-unmounted");
    assert_agrees_with_tools(&t, &img);
}

#[test]
fn bad_superblock_crc() {
    let dir = TestDir::new("f2fs-sbcrc");
    let Some(img) = f2fs_image(
        &dir,
        "sb.img",
        &["-O", "sb_checksum"],
        "f2fs_bad_superblock_crc",
    ) else {
        return;
    };
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["f2fs"]["checksum"], "ok");

    // The first label byte changed in the primary without fixing the CRC: fsck.f2fs says
    // "Invalid SB CRC" and uses the backup, as snapguard does (warning).
    fixtures::patch(&img, 1024 + 124, b"X");
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 1, "{t:#}");
    assert_eq!(
        expect_finding(&t, "f2fs.csum-mismatch")["severity"],
        "warning"
    );
    assert_eq!(t["f2fs"]["superblock"], "backup");
    assert_agrees_with_tools(&t, &img);

    // Both copies bad: no valid superblock, fsck.f2fs gives up; critical.
    fixtures::patch(&img, 4096 + 1024 + 124, b"X");
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["status"], "critical");
    assert_eq!(
        expect_finding(&t, "f2fs.csum-mismatch")["severity"],
        "critical"
    );
    if let Some(fsck) = tool("fsck.f2fs", "f2fs_bad_superblock_crc") {
        let ran = run_any(
            &fsck.to_string_lossy(),
            &[std::ffi::OsStr::new("--dry-run"), img.as_os_str()],
        );
        let text = format!("{}{}", ran.stdout, ran.stderr);
        assert!(text.contains("Invalid SB CRC"), "{text}");
        assert_ne!(ran.exit, Some(0), "{text}");
    }
}

#[test]
fn truncated_image_gives_exit_3() {
    let dir = TestDir::new("f2fs-trunc");
    let Some(img) = f2fs_image(&dir, "t.img", &[], "f2fs_truncated_image_gives_exit_3") else {
        return;
    };
    for (name, len) in [("cut.img", 3 * MIB), ("tiny.img", 3000)] {
        let cut = dir.join(name);
        fixtures::extract(&img, 0, len, &cut);
        let out = scan_json_full([&cut]);
        let doc = out.json();
        assert_eq!(out.exit, 3, "{name}: {doc:#}");
        let t = only_target(&doc);
        assert_eq!(t["status"], "unknown");
        assert_eq!(t["fstype"], "f2fs", "{name}: {doc:#}");
        expect_finding(t, "f2fs.truncated");
    }
}

/// `fs::f2fs` (superblock, checkpoint packs, CRC) on images mkfs.f2fs wrote, moved out of the
/// unit tests so that `cargo test --lib` spawns no tool.
mod parser {
    use super::common;
    use snapguard::fs::f2fs::*;
    use std::io::Read;
    use std::path::Path;
    use std::process::Command;

    /// A fresh 64 MiB image (mkfs.f2fs 1.15 needs a bit over 48 MiB), first 5 MiB read.
    /// `None` when mkfs.f2fs is missing: `test` is then skipped (a failure under
    /// `SNAPGUARD_REQUIRE_PRIVILEGED=1`).
    fn image(test: &str, extra: &[&str]) -> Option<(tempfile::TempDir, Vec<u8>)> {
        if !common::have_tools(test, &["mkfs.f2fs"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let out = Command::new(common::tool("mkfs.f2fs"))
            .arg("-q")
            .args(extra)
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Some((dir, read_head(&path, 5 << 20)))
    }

    fn read_head(path: &Path, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        std::fs::File::open(path)
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        buf
    }

    fn sb_bytes(img: &[u8], copy: usize) -> &[u8] {
        let at = super_offset(copy) as usize;
        &img[at..at + SUPER_SIZE]
    }

    fn block(img: &[u8], blk: u64) -> &[u8] {
        let at = blk as usize * 4096;
        &img[at..at + 4096]
    }

    fn pack(img: &[u8], sb: &Superblock, p: usize) -> Result<Checkpoint, PackError> {
        let start = sb.cp_pack_block(p);
        let cp = Checkpoint::parse_verified(block(img, start), "first")?;
        let last = cp.last_block_index(sb.blocks_per_seg())?;
        cp.validate_last(block(img, start + last))?;
        Ok(cp)
    }

    #[test]
    fn real_image_superblock_and_packs() {
        let Some((_dir, img)) = image("real_image_superblock_and_packs", &[]) else {
            return;
        };
        assert!(has_primary_magic(&img) && has_backup_magic(&img));
        let sb = Superblock::parse(sb_bytes(&img, 0)).unwrap();
        assert_eq!(
            sb.verify_checksum(sb_bytes(&img, 0)),
            ChecksumStatus::Absent
        );
        assert!(sb.problems().is_empty(), "{:?}", sb.problems());
        assert_eq!((sb.log_blocksize, sb.log_blocks_per_seg), (12, 9));
        assert_eq!(sb.fs_bytes(), Some(64 << 20));
        assert_eq!(sb.cp_blkaddr, 512);
        assert_eq!(sb.cp_pack_block(1), 1024);
        assert!(sb.stop_reasons().is_empty() && sb.error_names().is_empty());
        assert_eq!(Superblock::parse(sb_bytes(&img, 1)).unwrap(), sb);

        let p1 = pack(&img, &sb, 0).unwrap();
        let p2 = pack(&img, &sb, 1).unwrap();
        assert_eq!(current_pack([Some(p1.version), Some(p2.version)]), Some(0));
        assert!(p1.unmounted() && !p1.needs_fsck() && !p1.error());
        // What fsck.f2fs 1.15 prints for a fresh image: "185 :  trimmed nat_bits
        // compacted_summary unmount".
        assert_eq!(p1.flags, 0x185);
        assert_eq!(
            flag_names(p1.flags),
            ["trimmed", "nat_bits", "compacted_summary", "unmount"]
        );
    }

    #[test]
    fn real_image_with_sb_checksum() {
        let Some((_dir, mut img)) = image("real_image_with_sb_checksum", &["-O", "sb_checksum"])
        else {
            return;
        };
        let raw = sb_bytes(&img, 0).to_vec();
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(sb.feature & FEATURE_SB_CHKSUM, FEATURE_SB_CHKSUM);
        assert_eq!(sb.verify_checksum(&raw), ChecksumStatus::Valid);
        // A byte of the label changed without fixing the CRC.
        img[1024 + 124] ^= 0x20;
        let raw = sb_bytes(&img, 0).to_vec();
        let bad = Superblock::parse(&raw).unwrap();
        assert!(matches!(
            bad.verify_checksum(&raw),
            ChecksumStatus::Invalid { stored, .. } if stored == sb.crc
        ));
    }

    #[test]
    fn torn_and_corrupt_packs() {
        let Some((_dir, mut img)) = image("torn_and_corrupt_packs", &[]) else {
            return;
        };
        let sb = Superblock::parse(sb_bytes(&img, 0)).unwrap();
        // Flip a flag in pack 1 without the CRC: pack 2 (version 0) becomes current.
        img[512 * 4096 + 0x84] ^= CP_FSCK as u8;
        assert!(matches!(
            pack(&img, &sb, 0),
            Err(PackError::Crc { which: "first", .. })
        ));
        let p2 = pack(&img, &sb, 1).unwrap();
        assert_eq!(current_pack([None, Some(p2.version)]), Some(1));
        img[512 * 4096 + 0x84] ^= CP_FSCK as u8;
        // A different version in the last block, CRC recomputed: a torn pack.
        let last = (512 + 5) * 4096;
        img[last] ^= 1;
        let crc = f2fs_crc32(MAGIC, &img[last..last + 4092]);
        img[last + 4092..last + 4096].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            pack(&img, &sb, 0),
            Err(PackError::VersionMismatch { .. })
        ));
        // An impossible CRC offset.
        let mut b = block(&img, 1024).to_vec();
        b[0xA4..0xA8].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            Checkpoint::parse_verified(&b, "first"),
            Err(PackError::BadCrcOffset { offset: 8, .. })
        ));
    }
}
