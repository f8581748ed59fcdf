//! `snapguard scan --json` on btrfs, FAT16/32 and exFAT images built here, checked against
//! the reference tools: `btrfs inspect-internal dump-super` (and `btrfs device stats` for
//! a loop-mounted btrfs), `fsck.fat -n` exit codes, and exFAT VolumeFlags. Fixtures that
//! need a mount, a freeze or a loop device run only as root; the rest run anywhere the
//! mkfs tools are installed (a missing tool skips its test with a note).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::fixtures::{self, MIB};
use common::*;
use serde_json::Value;

/// The full path of an admin tool (mkfs.btrfs and friends live in /usr/sbin, which a
/// test's PATH may lack), or `None` with a note when it is not installed.
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

fn run_tool(tool: &Path, args: &[&OsStr]) -> String {
    run(&tool.to_string_lossy(), args)
}

/// A sparse file of `size` bytes.
fn sparse_file(dir: &TestDir, name: &str, size: u64) -> PathBuf {
    let img = dir.join(name);
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(size))
        .expect("create image");
    img
}

/// `mkfs.btrfs -q -f` on a new sparse image of `size` bytes.
fn btrfs_image(dir: &TestDir, name: &str, size: u64, test: &str) -> Option<PathBuf> {
    let mkfs = tool("mkfs.btrfs", test)?;
    let img = sparse_file(dir, name, size);
    run_tool(
        &mkfs,
        &[OsStr::new("-q"), OsStr::new("-f"), img.as_os_str()],
    );
    Some(img)
}

/// `btrfs inspect-internal dump-super [-s N] IMG` as `key → value` (first word of the value).
fn dump_super(img: &Path, mirror: Option<u32>) -> std::collections::BTreeMap<String, String> {
    let btrfs = tool("btrfs", "dump-super").expect("btrfs-progs installed with mkfs.btrfs");
    let mut args: Vec<std::ffi::OsString> = vec!["inspect-internal".into(), "dump-super".into()];
    if let Some(m) = mirror {
        args.push("-s".into());
        args.push(m.to_string().into());
    }
    args.push(img.as_os_str().to_owned());
    let out = run_any(&btrfs.to_string_lossy(), &args);
    out.stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            if line.starts_with(char::is_whitespace) {
                return None;
            }
            Some((key.to_string(), words.next().unwrap_or("").to_string()))
        })
        .collect()
}

fn u64_of(map: &std::collections::BTreeMap<String, String>, key: &str) -> u64 {
    map.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("dump-super has no numeric {key}: {map:?}"))
}

/// The scanned target agrees with dump-super on the fields both show.
fn assert_matches_dump_super(t: &Value, ds: &std::collections::BTreeMap<String, String>) {
    let d = &t["btrfs"];
    assert_eq!(t["fstype"], "btrfs", "{t:#}");
    assert_eq!(
        d["fsid"].as_str(),
        ds.get("fsid").map(String::as_str),
        "{t:#}"
    );
    assert_eq!(
        d["generation"].as_u64(),
        Some(u64_of(ds, "generation")),
        "{t:#}"
    );
    assert_eq!(
        d["log_root"].as_u64(),
        Some(u64_of(ds, "log_root")),
        "{t:#}"
    );
    assert_eq!(
        d["nodesize"].as_u64(),
        Some(u64_of(ds, "nodesize")),
        "{t:#}"
    );
    let csum_names = ["crc32c", "xxhash64", "sha256", "blake2b"];
    let csum_type = usize::try_from(u64_of(ds, "csum_type")).unwrap_or(usize::MAX);
    assert_eq!(
        d["csum_type"].as_str(),
        csum_names.get(csum_type).copied(),
        "{t:#}"
    );
    assert_eq!(
        t["needs_recovery"].as_bool(),
        Some(u64_of(ds, "log_root") != 0),
        "{t:#}"
    );
}

fn scan_one<S: AsRef<OsStr>>(args: &[S]) -> (Value, i32) {
    let (doc, exit) = scan_json(args);
    let t = only_target(&doc).clone();
    (t, exit)
}

#[test]
fn btrfs_fresh_image_is_clean() {
    let dir = TestDir::new("btrfs-fresh");
    let Some(img) = btrfs_image(&dir, "fresh.img", 128 * MIB, "btrfs_fresh_image_is_clean") else {
        return;
    };
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["status"], "ok");
    assert_eq!(t["context"], "offline");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["needs_recovery"], false);
    assert_eq!(t["fsck_reason"], Value::Null);
    assert_eq!(t["btrfs"]["checksum"], "ok");
    assert_eq!(t["btrfs"]["superblock"], "primary");
    assert_eq!(t["btrfs"]["device_errors"], Value::Null);
    assert!(finding_ids(&t).is_empty(), "{t:#}");
    assert_matches_dump_super(&t, &dump_super(&img, None));
}

#[test]
fn btrfs_crash_copy_after_fsync_has_a_log_tree() {
    if !require_root("btrfs_crash_copy_after_fsync_has_a_log_tree") {
        return;
    }
    let dir = TestDir::new("btrfs-crash");
    let Some(img) = btrfs_image(&dir, "live.img", 128 * MIB, "btrfs crash copy") else {
        return;
    };
    let Some(xfs_io) = tool("xfs_io", "btrfs crash copy") else {
        return;
    };
    let copy = dir.join("crash.img");
    let m = fixtures::loop_mount(&dir, &img, "crash", None);
    let file = m.dir().join("f");
    run_tool(
        &xfs_io,
        &[
            OsStr::new("-f"),
            OsStr::new("-c"),
            OsStr::new("pwrite -q 0 64k"),
            OsStr::new("-c"),
            OsStr::new("fsync"),
            file.as_os_str(),
        ],
    );
    fixtures::sparse_copy(&img, &copy);
    m.unmount();

    let ds = dump_super(&copy, None);
    assert_ne!(
        u64_of(&ds, "log_root"),
        0,
        "dump-super shows no log tree: {ds:?}"
    );

    // Offline (no --snapshot): a pending log means it was not cleanly unmounted.
    let (t, exit) = scan_one(&[&copy]);
    assert_matches_dump_super(&t, &ds);
    assert_eq!(exit, 1, "{t:#}");
    assert_eq!(t["state"], "log replay pending");
    let f = expect_finding(&t, "btrfs.log-tree");
    assert_eq!(f["severity"], "warning");
    let remedy = f["remedy"].as_str().expect("remedy");
    // The fix is the replay mount, never zero-log (which discards the fsynced writes):
    // scan_attack.rs pastes it and checks the data is kept.
    assert!(
        remedy.contains("mount -o loop ") && !remedy.contains("zero-log"),
        "{f:#}"
    );
    assert!(f["message"].as_str().unwrap().contains("LOSES"), "{f:#}");

    // As a crash-consistent snapshot: expected, info.
    let (t, exit) = scan_one(&[
        OsStr::new("--snapshot"),
        OsStr::new("crash"),
        copy.as_os_str(),
    ]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["context"], "crash");
    assert_eq!(expect_finding(&t, "btrfs.log-tree")["severity"], "info");
    assert_eq!(expect_finding(&t, "btrfs.log-tree")["remedy"], Value::Null);

    // Claimed frozen: a freeze would have committed the log away.
    let (t, exit) = scan_one(&[
        OsStr::new("--snapshot"),
        OsStr::new("frozen"),
        copy.as_os_str(),
    ]);
    assert_eq!(exit, 1, "{t:#}");
    assert_eq!(expect_finding(&t, "btrfs.log-tree")["severity"], "warning");
}

#[test]
fn btrfs_frozen_copy_has_no_log_tree() {
    if !require_root("btrfs_frozen_copy_has_no_log_tree") {
        return;
    }
    let dir = TestDir::new("btrfs-frozen");
    let Some(img) = btrfs_image(&dir, "live.img", 128 * MIB, "btrfs frozen copy") else {
        return;
    };
    let Some(xfs_io) = tool("xfs_io", "btrfs frozen copy") else {
        return;
    };
    let copy = dir.join("frozen.img");
    let m = fixtures::loop_mount(&dir, &img, "frozen", None);
    let file = m.dir().join("f");
    run_tool(
        &xfs_io,
        &[
            OsStr::new("-f"),
            OsStr::new("-c"),
            OsStr::new("pwrite -q 0 64k"),
            OsStr::new("-c"),
            OsStr::new("fsync"),
            file.as_os_str(),
        ],
    );
    let fr = Freeze::new(&m.mount);
    fixtures::sparse_copy(&img, &copy);
    fr.thaw();
    m.unmount();

    let ds = dump_super(&copy, None);
    assert_eq!(u64_of(&ds, "log_root"), 0, "{ds:?}");
    let (t, exit) = scan_one(&[
        OsStr::new("--snapshot"),
        OsStr::new("frozen"),
        copy.as_os_str(),
    ]);
    assert_matches_dump_super(&t, &ds);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["needs_recovery"], false);
}

#[test]
fn btrfs_bad_primary_uses_a_good_mirror() {
    let dir = TestDir::new("btrfs-mirror");
    // The first mirror (64 MiB) exists only on devices larger than 64 MiB + 4 KiB.
    let Some(img) = btrfs_image(&dir, "m.img", 128 * MIB, "btrfs mirror") else {
        return;
    };
    // One byte of the label, without fixing the checksum.
    fixtures::patch(&img, 0x1_0000 + 0x12B, b"X");
    let btrfs = tool("btrfs", "btrfs mirror").expect("btrfs");
    let primary = run_any(
        &btrfs.to_string_lossy(),
        &[
            OsStr::new("inspect-internal"),
            OsStr::new("dump-super"),
            img.as_os_str(),
        ],
    );
    assert!(
        primary.stdout.contains("DON'T MATCH"),
        "dump-super should see the bad checksum: {}",
        primary.stdout
    );
    let mirror = dump_super(&img, Some(1));

    // Critical although the mirror is good, as for ext and XFS: the kernel reads only the
    // primary and refuses to mount until `btrfs rescue super-recover` rewrites it.
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["status"], "critical");
    let f = expect_finding(&t, "btrfs.csum-mismatch");
    assert_eq!(f["severity"], "critical");
    assert!(
        f["remedy"]
            .as_str()
            .unwrap()
            .contains("btrfs rescue super-recover"),
        "{f:#}"
    );
    assert_eq!(expect_finding(&t, "btrfs.mirror-used")["severity"], "info");
    assert_eq!(t["btrfs"]["superblock"], "mirror 1");
    assert_eq!(t["btrfs"]["superblock_offset"], 64 * MIB);
    assert_matches_dump_super(&t, &mirror);

    // With the mirror damaged too there is no good copy left: still critical.
    fixtures::patch(&img, 64 * MIB + 0x12B, b"X");
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(
        expect_finding(&t, "btrfs.csum-mismatch")["severity"],
        "critical"
    );
}

/// `mkfs.btrfs --csum NAME`: the superblock checksum is verified (dump-super agrees), and
/// one changed byte of the checksummed area (a label byte, then the last byte of the
/// 4 KiB copy) is caught as a critical mismatch, as `dump-super` and the kernel catch it.
fn btrfs_csum_is_verified(csum: &str, name: &str, dump_super_type: &str) {
    let test = format!("btrfs_{csum}_superblock");
    let Some(mkfs) = tool("mkfs.btrfs", &test) else {
        return;
    };
    let dir = TestDir::new(&format!("btrfs-{csum}"));
    let img = sparse_file(&dir, "c.img", 128 * MIB);
    run_tool(
        &mkfs,
        &[
            OsStr::new("-q"),
            OsStr::new("-f"),
            OsStr::new("--csum"),
            OsStr::new(csum),
            img.as_os_str(),
        ],
    );
    let ds = dump_super(&img, None);
    assert_eq!(
        ds.get("csum_type").map(String::as_str),
        Some(dump_super_type)
    );
    let (t, exit) = scan_one(&[&img]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["status"], "ok");
    assert_eq!(t["btrfs"]["csum_type"], name);
    assert_eq!(t["btrfs"]["checksum"], "ok", "{t:#}");
    assert!(finding_ids(&t).is_empty(), "{t:#}");
    assert_matches_dump_super(&t, &ds);

    let btrfs = tool("btrfs", &test).expect("btrfs-progs installed with mkfs.btrfs");
    for offset in [0x12B_u64, 0xFFF] {
        let at = 0x1_0000 + offset;
        let old = fixtures::read_at(&img, at, 1)[0];
        fixtures::patch(&img, at, &[old ^ 0x5A]);
        let primary = run_any(
            &btrfs.to_string_lossy(),
            &[
                OsStr::new("inspect-internal"),
                OsStr::new("dump-super"),
                img.as_os_str(),
            ],
        );
        assert!(
            primary.stdout.contains("DON'T MATCH"),
            "dump-super should see the bad {csum} checksum: {}",
            primary.stdout
        );
        let (t, exit) = scan_one(&[&img]);
        assert_eq!(exit, 2, "byte 0x{offset:x}: {t:#}");
        let f = expect_finding(&t, "btrfs.csum-mismatch");
        assert_eq!(f["severity"], "critical");
        let message = f["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{name} checksum mismatch")),
            "{message}"
        );
        // The mirror at 64 MiB is intact: assessed from it, still critical.
        assert_eq!(t["btrfs"]["superblock"], "mirror 1");
        fixtures::patch(&img, at, &[old]);
    }
    let (t, exit) = scan_one(&[&img]);
    assert_eq!((exit, &t["btrfs"]["checksum"]), (0, &Value::from("ok")));
}

#[test]
fn btrfs_xxhash_superblock_is_verified() {
    btrfs_csum_is_verified("xxhash", "xxhash64", "1");
}

#[test]
fn btrfs_sha256_superblock_is_verified() {
    btrfs_csum_is_verified("sha256", "sha256", "2");
}

#[test]
fn btrfs_blake2_superblock_is_verified() {
    btrfs_csum_is_verified("blake2", "blake2b", "3");
}

#[test]
fn btrfs_truncated_and_garbage_images_give_exit_3() {
    let dir = TestDir::new("btrfs-trunc");
    let Some(img) = btrfs_image(&dir, "t.img", 128 * MIB, "btrfs truncated") else {
        return;
    };
    let cut = dir.join("cut.img");
    fixtures::extract(&img, 0, 100 * MIB, &cut);
    let out = scan_json_full([&cut]);
    let doc = out.json();
    assert_eq!(out.exit, 3, "{doc:#}");
    let t = only_target(&doc);
    assert_eq!(t["status"], "unknown");
    expect_finding(t, "btrfs.truncated");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("snapguard: "), "{}", out.stderr);

    // Pseudo-random bytes with only the magic in place: no panic, exit 3.
    let junk = dir.join("junk.img");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut bytes: Vec<u8> = (0..0x12000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    bytes[0x1_0040..0x1_0048].copy_from_slice(b"_BHRfS_M");
    std::fs::write(&junk, &bytes).expect("write junk");
    let (doc, exit) = scan_json([&junk]);
    assert!(exit == 2 || exit == 3, "exit {exit}: {doc:#}");
}

#[test]
fn btrfs_mounted_on_a_loop_device_reports_its_error_counters() {
    if !require_root("btrfs_mounted_on_a_loop_device_reports_its_error_counters") {
        return;
    }
    let dir = TestDir::new("btrfs-live");
    let Some(img) = btrfs_image(&dir, "live.img", 128 * MIB, "btrfs live") else {
        return;
    };
    let btrfs = tool("btrfs", "btrfs live").expect("btrfs");
    let marker = b"SNAPGUARD-VICTIM";
    let m = fixtures::loop_mount(&dir, &img, "live", None);
    std::fs::write(m.dir().join("victim"), marker.repeat(4096)).expect("write victim");
    // syncfs commits the transaction; a plain fsync would leave a (harmless) log tree.
    run("sync", &[OsStr::new("-f"), m.dir().as_os_str()]);

    let stats = |mnt: &Path| -> Vec<u64> {
        // `[/dev/loopN].write_io_errs    0` lines, in the kernel's counter order.
        run_tool(
            &btrfs,
            &[OsStr::new("device"), OsStr::new("stats"), mnt.as_os_str()],
        )
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
    };
    let counters = |t: &Value| -> Vec<u64> {
        let d = &t["btrfs"]["device_errors"][0];
        [
            "write_errs",
            "read_errs",
            "flush_errs",
            "corruption_errs",
            "generation_errs",
        ]
        .iter()
        .map(|k| d[*k].as_u64().expect("counter"))
        .collect()
    };

    let (t, exit) = scan_one(&[m.dir()]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["context"], "live");
    assert_eq!(t["fstype"], "btrfs");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["device"].as_str(), Some(&*m.lo.dev().to_string_lossy()));
    assert_eq!(t["btrfs"]["device_errors"][0]["devid"], 1);
    assert_eq!(counters(&t), stats(m.dir()));

    // Corrupt the file's data behind the filesystem's back (while unmounted), read it
    // back: the data checksum fails and the kernel counts a corruption error.
    let mnt = m.dir().to_owned();
    m.unmount();
    let image = std::fs::read(&img).expect("read image");
    let at = image
        .windows(marker.len() * 4)
        .position(|w| w == marker.repeat(4).as_slice())
        .expect("victim data in the image");
    drop(image);
    fixtures::patch(&img, at as u64 + 100, b"CORRUPT");
    let lo = LoopDevice::attach(&img);
    let mount = Mount::new(lo.dev(), &mnt, None);
    assert!(
        std::fs::read(mnt.join("victim")).is_err(),
        "reading corrupted data should fail with EIO"
    );
    let (t, exit) = scan_one(&[&mnt]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["state"], "errors");
    let f = expect_finding(&t, "btrfs.device-errors");
    assert_eq!(f["severity"], "critical");
    assert!(
        f["remedy"]
            .as_str()
            .unwrap()
            .starts_with("btrfs scrub start -B")
    );
    let reference = stats(&mnt);
    assert!(reference[3] > 0, "btrfs device stats: {reference:?}");
    assert_eq!(counters(&t), reference);
    mount.unmount();
    drop(lo);
}

/// `mkfs.fat -F BITS` on a new image; the FAT32 volume needs more room.
fn fat_image(dir: &TestDir, name: &str, bits: u32, test: &str) -> Option<PathBuf> {
    let mkfs = tool("mkfs.fat", test)?;
    let size = if bits == 32 { 64 * MIB } else { 16 * MIB };
    let img = sparse_file(dir, name, size);
    let b = bits.to_string();
    run_tool(&mkfs, &[OsStr::new("-F"), OsStr::new(&b), img.as_os_str()]);
    Some(img)
}

/// `fsck.fat -n IMG`'s exit code.
fn fsck_fat_n(img: &Path) -> i32 {
    let fsck = tool("fsck.fat", "fsck.fat").expect("fsck.fat installed with mkfs.fat");
    run_any(
        &fsck.to_string_lossy(),
        &[OsStr::new("-n"), img.as_os_str()],
    )
    .exit
    .expect("fsck.fat exit code")
}

/// Write FAT entry 1 in every FAT copy.
fn set_fat1(img: &Path, bits: u32, value: u32) {
    let boot = fixtures::read_at(img, 0, 512);
    let bps = u64::from(u16::from_le_bytes([boot[11], boot[12]]));
    let reserved = u64::from(u16::from_le_bytes([boot[14], boot[15]]));
    let fats = u64::from(boot[16]);
    let fat16_len = u64::from(u16::from_le_bytes([boot[22], boot[23]]));
    let fat_len = if fat16_len != 0 {
        fat16_len
    } else {
        u64::from(u32::from_le_bytes([boot[36], boot[37], boot[38], boot[39]]))
    };
    for i in 0..fats {
        let fat = (reserved + i * fat_len) * bps;
        if bits == 32 {
            fixtures::patch(img, fat + 4, &value.to_le_bytes());
        } else {
            fixtures::patch(img, fat + 2, &(value as u16).to_le_bytes());
        }
    }
}

#[test]
fn fat16_and_fat32_agree_with_fsck_fat() {
    let dir = TestDir::new("fat");
    for bits in [16u32, 32] {
        let state_byte = if bits == 32 { 0x41 } else { 0x25 };
        let Some(clean) = fat_image(&dir, &format!("c{bits}.img"), bits, "fat") else {
            return;
        };
        let (t, exit) = scan_one(&[&clean]);
        assert_eq!(fsck_fat_n(&clean), 0);
        assert_eq!(exit, 0, "FAT{bits}: {t:#}");
        assert_eq!(t["fstype"], "vfat");
        assert_eq!(t["state"], "clean");
        assert_eq!(t["needs_recovery"], Value::Null);
        assert_eq!(t["fat"]["fat_bits"], bits);
        assert_eq!(t["fat"]["fat1_clean_shutdown"], true);

        // Boot-sector dirty bit, as Linux leaves it.
        let dirty = dir.join(format!("d{bits}.img"));
        fixtures::sparse_copy(&clean, &dirty);
        fixtures::patch(&dirty, state_byte, &[0x01]);
        let (t, exit) = scan_one(&[&dirty]);
        assert_eq!(fsck_fat_n(&dirty), 1, "FAT{bits} dirty: fsck.fat -n");
        assert_eq!(exit, 1, "FAT{bits} dirty: {t:#}");
        assert_eq!(t["state"], "dirty");
        assert_eq!(t["fat"]["boot_dirty"], true);
        let f = expect_finding(&t, "fat.dirty");
        assert_eq!(f["severity"], "warning");
        assert!(
            f["remedy"].as_str().unwrap().starts_with("fsck.fat -a "),
            "{f:#}"
        );
        // The same bytes as a snapshot of a mounted ESP: expected, info.
        let (t, exit) = scan_one(&[
            OsStr::new("--snapshot"),
            OsStr::new("crash"),
            dirty.as_os_str(),
        ]);
        assert_eq!(exit, 0, "{t:#}");
        assert_eq!(expect_finding(&t, "fat.dirty")["severity"], "info");

        // FAT[1] clean-shutdown bit clear (Windows' marker): fsck.fat also says dirty.
        let unclean = dir.join(format!("u{bits}.img"));
        fixtures::sparse_copy(&clean, &unclean);
        set_fat1(
            &unclean,
            bits,
            if bits == 32 { 0x07FF_FFFF } else { 0x7FFF },
        );
        let (t, exit) = scan_one(&[&unclean]);
        assert_eq!(
            fsck_fat_n(&unclean),
            1,
            "FAT{bits} FAT[1] unclean: fsck.fat -n"
        );
        assert_eq!(exit, 1, "{t:#}");
        assert_eq!(t["state"], "dirty");
        assert_eq!(t["fat"]["fat1_clean_shutdown"], false);

        // FAT[1] hard-error bit clear: recorded errors, critical; fsck.fat ignores the bit.
        let hard = dir.join(format!("h{bits}.img"));
        fixtures::sparse_copy(&clean, &hard);
        set_fat1(&hard, bits, if bits == 32 { 0x0BFF_FFFF } else { 0xBFFF });
        let (t, exit) = scan_one(&[&hard]);
        assert_eq!(
            fsck_fat_n(&hard),
            0,
            "fsck.fat 4.2 does not check the hard-error bit"
        );
        assert_eq!(exit, 2, "{t:#}");
        assert_eq!(t["state"], "errors");
        assert_eq!(
            expect_finding(&t, "fat.hard-errors")["severity"],
            "critical"
        );

        // Truncated image: exit 3.
        let cut = dir.join(format!("t{bits}.img"));
        fixtures::extract(&clean, 0, 4 * MIB, &cut);
        let (t, exit) = scan_one(&[&cut]);
        assert_eq!(exit, 3, "{t:#}");
        expect_finding(&t, "fat.truncated");
    }
}

#[test]
fn exfat_dirty_and_media_failure() {
    let dir = TestDir::new("exfat");
    let Some(mkfs) = tool("mkfs.exfat", "exfat_dirty_and_media_failure") else {
        return;
    };
    let clean = sparse_file(&dir, "x.img", 64 * MIB);
    run_tool(&mkfs, &[clean.as_os_str()]);
    let (t, exit) = scan_one(&[&clean]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(t["fstype"], "exfat");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["exfat"]["boot_checksum"], "ok");

    // VolumeFlags (0x6A) is outside the boot checksum, so it can be set directly.
    let dirty = dir.join("d.img");
    fixtures::sparse_copy(&clean, &dirty);
    fixtures::patch(&dirty, 0x6A, &[0x02, 0x00]);
    let (t, exit) = scan_one(&[&dirty]);
    assert_eq!(exit, 1, "{t:#}");
    assert_eq!(t["state"], "dirty");
    assert_eq!(t["exfat"]["boot_checksum"], "ok");
    let f = expect_finding(&t, "exfat.dirty");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["remedy"].as_str().unwrap().starts_with("fsck.exfat -a "),
        "{f:#}"
    );
    let (t, exit) = scan_one(&[
        OsStr::new("--snapshot"),
        OsStr::new("crash"),
        dirty.as_os_str(),
    ]);
    assert_eq!(exit, 0, "{t:#}");
    assert_eq!(expect_finding(&t, "exfat.dirty")["severity"], "info");

    // `fsck.exfat -a` is the judge of what "dirty" means: it must find something to
    // clear (the VolumeDirty bit the scan reported, not only our own offset), and the scan
    // then agrees the volume is clean.
    let fsck = tool("fsck.exfat", "exfat_dirty_and_media_failure")
        .expect("fsck.exfat is installed with mkfs.exfat");
    let repaired = run_any(
        &fsck.to_string_lossy(),
        &[OsStr::new("-a"), dirty.as_os_str()],
    );
    assert!(
        matches!(repaired.exit, Some(0 | 1)),
        "fsck.exfat -a on the dirty volume: {:?}",
        repaired.exit
    );
    let flags = fixtures::read_at(&dirty, 0x6A, 2);
    assert_eq!(
        flags[0] & 0x02,
        0,
        "fsck.exfat -a left VolumeDirty set: the bit we set is not the one it clears"
    );
    let (t, exit) = scan_one(&[&dirty]);
    assert_eq!(exit, 0, "after fsck.exfat -a: {t:#}");
    assert_eq!(t["state"], "clean", "after fsck.exfat -a: {t:#}");

    let failed = dir.join("m.img");
    fixtures::sparse_copy(&clean, &failed);
    fixtures::patch(&failed, 0x6A, &[0x06, 0x00]);
    let (t, exit) = scan_one(&[
        OsStr::new("--snapshot"),
        OsStr::new("crash"),
        failed.as_os_str(),
    ]);
    assert_eq!(exit, 2, "{t:#}");
    assert_eq!(t["state"], "errors");
    assert_eq!(
        expect_finding(&t, "exfat.media-failure")["severity"],
        "critical"
    );

    // A changed checksummed byte (the serial number): the kernel would refuse to mount.
    let bad = dir.join("b.img");
    fixtures::sparse_copy(&clean, &bad);
    fixtures::patch(&bad, 0x64, &[0x5A]);
    let (t, exit) = scan_one(&[&bad]);
    assert_eq!(exit, 2, "{t:#}");
    expect_finding(&t, "exfat.checksum-mismatch");
}
