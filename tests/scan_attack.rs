//! A hostile review of the scan's remedies (issue 10): each remedy is pasted into `sh -c`
//! exactly as printed, on real images, and the result is checked: the data kept, the
//! filesystem clean, the checker's status not hidden, nothing left attached or mounted.

mod common;

use common::{TestDir, expect_finding, fixtures, mount_namespace_turn, only_target, require_root};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

const MIB: u64 = 1 << 20;

/// `snapguard --json scan ARGS...` run in `cwd`.
fn scan_in(cwd: &Path, args: &[&OsStr]) -> (Value, i32) {
    let out = common::snapguard()
        .current_dir(cwd)
        .arg("--json")
        .arg("scan")
        .args(args)
        .output()
        .expect("spawn snapguard");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (doc, out.status.code().expect("an exit code"))
}

/// Run `remedy` with `sh -c` in `cwd` (its temporary directories under `tmp`), on a terminal
/// as an admin pastes it (`e2fsck -f` needs one), with `script -e` passing its status on.
fn paste(remedy: &str, cwd: &Path, tmp: &Path) -> std::process::Output {
    Command::new("script")
        .args(["-qec", "sh -c \"$REMEDY\"", "/dev/null"])
        .env("REMEDY", remedy)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .output()
        .expect("sh")
}

/// The loop devices backed by `image` right now (a remedy that attaches one must detach it).
/// The loop devices still backed by `image` once every opener has let go. An autoclear (or
/// `losetup -d` of a busy) loop device is detached at its last close, which another process
/// (udev's probe, a parallel test's scan of every device) may hold for a moment after the
/// remedy's own umount: poll for up to 3 s before calling it left behind.
fn loops_left_behind(image: &Path) -> Vec<String> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let found = loops_backed_by(image);
        if found.is_empty() || std::time::Instant::now() > end {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn loops_backed_by(image: &Path) -> Vec<String> {
    let image = std::fs::canonicalize(image).expect("canonical image path");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let backing = std::fs::read_to_string(entry.path().join("loop/backing_file"));
        if name.starts_with("loop")
            && backing.is_ok_and(|b| Path::new(b.trim_end_matches('\n')) == image)
        {
            found.push(name);
        }
    }
    found
}

/// Detach the loop devices a failed remedy left on our own image.
struct DetachLeftovers<'a>(&'a Path);

impl Drop for DetachLeftovers<'_> {
    fn drop(&mut self) {
        for name in loops_backed_by(self.0) {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(format!("/dev/{name}"))
                .status();
        }
    }
}

/// A btrfs crash copy with a pending fsync log tree. The printed fix was
/// `btrfs rescue zero-log IMAGE`: pasted, it discarded the log and with it every fsynced
/// file, although the message itself says a mount replays the log and keeps the data. The fix
/// is now that replay mount; pasted, it keeps the file, leaves the copy clean and removes
/// its temporary directory.
#[test]
fn the_btrfs_log_tree_remedy_keeps_the_fsynced_data() {
    let test = "the_btrfs_log_tree_remedy_keeps_the_fsynced_data";
    if !require_root(test) {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("atk-btrfs-log");
    let img = fixtures::made_by(&dir, "live.img", 128 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    let m = fixtures::loop_mount(&dir, &img, "live", Some("commit=300"));
    let file = m.dir().join("kept");
    common::run(
        "xfs_io",
        &[
            OsStr::new("-f"),
            OsStr::new("-c"),
            OsStr::new("pwrite -q -S 0x5a 0 64k"),
            OsStr::new("-c"),
            OsStr::new("fsync"),
            file.as_os_str(),
        ],
    );
    let copy = dir.join("crash copy.img");
    fixtures::sparse_copy(&img, &copy);
    m.unmount();

    let (doc, exit) = scan_in(&dir.path(), &[copy.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!((exit, &t["state"]), (1, &Value::from("log replay pending")));
    let remedy = expect_finding(t, "btrfs.log-tree")["remedy"]
        .as_str()
        .expect("a remedy")
        .to_string();
    assert!(!remedy.contains("zero-log"), "{remedy}");

    let tmp = dir.mkdir("tmp");
    let ran = paste(&remedy, &dir.path(), &tmp);
    assert!(
        ran.status.success(),
        "{remedy}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp dir left");
    assert!(loops_left_behind(&copy).is_empty(), "loop device left");
    let (doc, exit) = scan_in(&dir.path(), &[copy.as_os_str()]);
    assert_eq!(
        (exit, &only_target(&doc)["state"]),
        (0, &Value::from("clean")),
        "{doc:#}"
    );

    // The fsynced file is still there.
    let check = fixtures::loop_mount(&dir, &copy, "check", Some("ro"));
    let data = std::fs::read(check.dir().join("kept")).expect("the fsynced file survives");
    assert_eq!(data, vec![0x5a; 64 * 1024]);
    check.unmount();
}

/// An image whose name starts with `-` (given after `--`): the printed remedies named it as
/// it was typed, so `e2fsck -p -e x.img` / `mount -o loop,nouuid -x.img` took it for options
/// and failed. Pasted now, the remedy works.
#[test]
fn a_remedy_for_an_image_named_like_an_option_works_when_pasted() {
    let test = "a_remedy_for_an_image_named_like_an_option_works_when_pasted";
    if !require_root(test) {
        return;
    }
    let dir = TestDir::new("atk-dash");
    let img = fixtures::ext4(&dir, "-n x.img", &[]);
    fixtures::debugfs_w(&img, "ssv state 0");
    let name = OsStr::new("-n x.img");
    let (doc, exit) = scan_in(&dir.path(), &[OsStr::new("--"), name]);
    let t = only_target(&doc);
    assert!(exit == 1 || exit == 2, "{t:#}");
    let remedy = t["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find_map(|f| f["remedy"].as_str())
        .unwrap_or_else(|| panic!("a remedy in {t:#}"))
        .to_string();
    let tmp = dir.mkdir("tmp");
    let ran = paste(&remedy, &dir.path(), &tmp);
    assert!(
        ran.status.code().is_some_and(|c| c <= 1),
        "{remedy}: {ran:?}"
    );
    let (doc, exit) = scan_in(&dir.path(), &[OsStr::new("--"), name]);
    assert_eq!(exit, 0, "{doc:#}");
}

/// A partition of a whole-disk image: the remedy was
/// `dev=$(losetup --find --show --partscan IMG) && CHECKER "${dev}p1"; losetup -d "$dev"`.
/// On a kernel without partition-table parsers (this one) `${dev}p1` never appears, and
/// whatever the checker said, the line ended with `losetup -d`'s 0: "fixed" when nothing
/// was checked. Now the partition is attached by offset and size, and the checker's status is
/// the line's.
#[test]
fn a_partition_remedy_checks_the_partition_and_keeps_the_checkers_status() {
    let test = "a_partition_remedy_checks_the_partition_and_keeps_the_checkers_status";
    if !require_root(test) {
        return;
    }
    let dir = TestDir::new("atk-part");
    let (disk, parts) = fixtures::partitioned_disk(&dir, "disk.img", "gpt", 80 * MIB, 64 * MIB, 1);
    let _cleanup = DetachLeftovers(&disk);
    let part = &parts[0];
    // Put a not-clean ext4 (made apart, debugfs keeps its checksums right) in the partition.
    let fs = fixtures::ext4(&dir, "part.img", &[]);
    fixtures::debugfs_w(&fs, "ssv state 0");
    let bytes = std::fs::read(&fs).expect("read the filesystem");
    assert!(bytes.len() as u64 <= part.size);
    fixtures::patch(&disk, part.offset, &bytes);
    let remedy_now = || {
        let (doc, exit) = scan_in(&dir.path(), &[disk.as_os_str()]);
        let t = only_target(&doc);
        let remedy = t["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find_map(|f| f["remedy"].as_str())
            .map(str::to_string);
        (exit, remedy, t.clone())
    };
    let (exit, remedy, t) = remedy_now();
    assert!(exit == 1 || exit == 2, "{t:#}");
    let remedy = remedy.unwrap_or_else(|| panic!("a remedy in {t:#}"));
    let tmp = dir.mkdir("tmp");

    // First with the superblock destroyed after the scan: e2fsck fails, so must the line.
    let saved = fixtures::read_at(&disk, part.offset + 1024, 1024);
    fixtures::patch(&disk, part.offset + 1024, &[0u8; 1024]);
    let ran = paste(&remedy, &dir.path(), &tmp);
    assert!(
        ran.status.code().is_some_and(|c| c >= 4),
        "{remedy} hid the checker's failure: {ran:?}"
    );
    assert!(
        loops_left_behind(&disk).is_empty(),
        "{remedy} left a loop device"
    );

    // Then as scanned: it checks the partition, which is clean afterwards.
    fixtures::patch(&disk, part.offset + 1024, &saved);
    let ran = paste(&remedy, &dir.path(), &tmp);
    assert!(
        ran.status.code().is_some_and(|c| c <= 1),
        "{remedy}: {ran:?}"
    );
    assert!(
        loops_left_behind(&disk).is_empty(),
        "{remedy} left a loop device"
    );
    let (exit, remedy, t) = remedy_now();
    assert_eq!((exit, remedy), (0, None), "{t:#}");
}

/// Set the ERROR flag in a btrfs image's primary superblock (and its crc32c).
fn set_btrfs_error_flag(img: &Path) {
    const SB: u64 = 65536;
    let mut sb = fixtures::read_at(img, SB, 4096);
    sb[0x38] |= 4; // BTRFS_SUPER_FLAG_ERROR, in the little-endian flags at 0x38
    let csum = crc32c::crc32c(&sb[0x20..]).to_le_bytes();
    sb[..4].copy_from_slice(&csum);
    fixtures::patch(img, SB, &sb);
}

/// A btrfs mounted with `mount -o loop,noatime,compress=zstd:3` on a mount point with a
/// space, no fstab entry, whose superblock has the ERROR flag: the remedy
/// (`umount M && btrfs check --readonly SRC && mount -t btrfs -o … SRC M`) named `/dev/loopN`
/// — the autoclear loop device umount detaches (btrfs reports an anonymous device number, so
/// the loop device was not recognised) — and remounted with the per-mount options only, so the
/// filesystem would come back without compression (an exFAT stick without its `uid=`). Pasted
/// now it checks the image and mounts it back with both.
#[test]
fn a_btrfs_loop_mount_remedy_checks_the_image_and_remounts_with_its_own_options() {
    let test = "a_btrfs_loop_mount_remedy_checks_the_image_and_remounts_with_its_own_options";
    if !require_root(test) {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("atk-remount");
    let img = fixtures::made_by(&dir, "b.img", 128 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    set_btrfs_error_flag(&img);
    let mnt = dir.mkdir("my data");
    let _m = common::Mount::new(&img, &mnt, Some("loop,noatime,compress=zstd:3"));
    let _cleanup = DetachLeftovers(&img);
    let line = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.contains(" - btrfs ") && l.contains("my\\040data"))
            .map(str::to_string)
    };
    assert!(line().is_some_and(|l| l.contains("compress=zstd:3")));

    let (doc, exit) = scan_in(&dir.path(), &[mnt.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!(exit, 2, "{t:#}");
    let remedy = expect_finding(t, "btrfs.error-flag")["remedy"]
        .as_str()
        .expect("a remedy")
        .to_string();
    let tmp = dir.mkdir("tmp");
    let ran = paste(&remedy, &dir.path(), &tmp);
    assert!(ran.status.success(), "{remedy}: {ran:?}");
    let back = line().unwrap_or_else(|| panic!("{remedy}: not mounted back"));
    let fields: Vec<&str> = back.split(' ').collect();
    assert!(
        fields[5].split(',').any(|o| o == "noatime"),
        "{remedy}: came back as {back}"
    );
    assert!(
        back.rsplit(' ')
            .next()
            .is_some_and(|o| o.split(',').any(|o| o == "compress=zstd:3")),
        "{remedy}: came back as {back}"
    );
}

/// The image behind a mounted loop device is live (issue 10) — except for btrfs: mountinfo
/// shows btrfs with an anonymous device number (`0:N`), never the loop device's, so the image
/// of a mounted btrfs was scanned as "offline" and judged by the offline rules. Now it is found
/// through the mount source.
#[test]
fn the_image_behind_a_mounted_btrfs_is_live() {
    let test = "the_image_behind_a_mounted_btrfs_is_live";
    if !require_root(test) {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("atk-btrfs-inuse");
    let img = fixtures::made_by(&dir, "in use.img", 128 * MIB, "mkfs.btrfs", &["-q", "-f"]);
    let m = fixtures::loop_mount(&dir, &img, "live", None);
    let (doc, _) = scan_in(&dir.path(), &[img.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!(t["context"], "live", "{t:#}");
    assert_eq!(t["mountpoint"], m.dir().to_str().unwrap(), "{t:#}");
    m.unmount();
}

/// A whole-disk image attached to a loop device whose partition is mounted (`losetup` +
/// `partx`/`--partscan`, then `mount /dev/loop0p1`): the image was judged "offline" — the
/// live journal a warning "not cleanly unmounted" — and the printed fix attached the partition
/// a second time and ran `e2fsck` on it: a write under a mounted filesystem. The image is in
/// use, judged live, and no offline fix is printed for it.
#[test]
fn an_image_whose_partition_is_mounted_is_live_and_gets_no_offline_fix() {
    let test = "an_image_whose_partition_is_mounted_is_live_and_gets_no_offline_fix";
    if !require_root(test) {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("atk-part-mounted");
    let (disk, _) = fixtures::partitioned_disk(&dir, "disk.img", "gpt", 80 * MIB, 64 * MIB, 1);
    let lo = common::LoopDevice::attach(&disk);
    let part = lo.partition(1);
    // Errors recorded: a critical finding with a fix in every context.
    fixtures::debugfs_w(&part, "ssv state 2");
    let mnt = dir.mkdir("mnt");
    let m = common::Mount::new(&part, &mnt, None);
    std::fs::write(mnt.join("f"), b"live").unwrap();

    let (doc, _) = scan_in(&dir.path(), &[disk.as_os_str()]);
    let t = only_target(&doc);
    assert_eq!(t["context"], "live", "{t:#}");
    expect_finding(t, "scan.in-use");
    expect_finding(t, "ext.errors-flag");
    for f in t["findings"].as_array().expect("findings") {
        assert!(f["remedy"].is_null(), "a fix for an image in use: {f:#}");
    }
    m.unmount();
    drop(lo);
}
