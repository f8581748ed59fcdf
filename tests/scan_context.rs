//! `scan` tells the truth about what it looked at and prints remedies that work where they
//! are printed: an image behind a mounted loop device is live, a tmpfs TARGET is a tmpfs,
//! a FIFO cannot hang it, nothing to scan is not OK, and the XFS replay remedy for a copy
//! whose twin is mounted here runs as pasted.

mod common;

use common::fixtures::{self, LoopMount};
use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A fixture root whose mount table is `mountinfo`.
fn root_with_mountinfo(dir: &TestDir, mountinfo: &str) -> PathBuf {
    let root = dir.mkdir("root");
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
    root
}

#[test]
fn scan_with_nothing_to_scan_exits_3() {
    let dir = TestDir::new("nothing-to-scan");
    // Only pseudo and tmpfs mounts: no block filesystem at all.
    let root = root_with_mountinfo(
        &dir,
        "20 1 0:20 / / rw - tmpfs tmpfs rw\n21 20 0:5 / /proc rw - proc proc rw\n",
    );
    let config = dir.join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let out = run_snapguard(
        [
            OsStr::new("--root"),
            root.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("scan"),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(out.stdout.contains("nothing to scan"), "{out:?}");
    assert!(out.stderr.contains("no block-backed filesystem"), "{out:?}");

    // One ext4, skipped by the configuration: still nothing looked at.
    let root = root_with_mountinfo(
        &dir,
        "20 1 8:1 / /data rw - ext4 /dev/sda1 rw\n21 20 0:5 / /proc rw - proc proc rw\n",
    );
    let config = dir.join("skip.toml");
    std::fs::write(&config, "[scan]\nskip_mountpoints = [\"/data\"]\n").unwrap();
    let out = run_snapguard(
        [
            OsStr::new("--root"),
            root.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("scan"),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(
        out.stderr.contains("skipped by the configuration"),
        "{out:?}"
    );
    assert_schema("scan", &out.json());
}

#[test]
fn a_fifo_target_returns_within_a_second_with_exit_3() {
    let dir = TestDir::new("fifo-target");
    let fifo = dir.join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = run_snapguard(
        [OsStr::new("scan"), fifo.as_os_str()],
        Duration::from_secs(10),
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(out.elapsed < Duration::from_secs(1), "{:?}", out.elapsed);
    assert!(out.stderr.contains("FIFO"), "{out:?}");
}

#[test]
fn a_tmpfs_target_is_reported_as_a_live_tmpfs() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(mp) = mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        let fstype = post.split(' ').next()?;
        let mp = fields.get(4)?;
        (fstype == "tmpfs" && !mp.contains('\\') && Path::new(mp).is_dir()).then(|| mp.to_string())
    }) else {
        note("no tmpfs mount point on this machine: skipped");
        return;
    };
    let out = run_snapguard(["--json", "scan", mp.as_str()], Duration::from_secs(20));
    assert_eq!(out.exit, 3, "{out:?}");
    let doc = out.json();
    let t = only_target(&doc);
    assert_eq!(t["fstype"], "tmpfs", "{t:#}");
    assert_eq!(t["context"], "live", "{t:#}");
    assert_eq!(t["mountpoint"].as_str(), Some(mp.as_str()), "{t:#}");
    let human = run_snapguard(["scan", mp.as_str()], Duration::from_secs(20));
    assert!(!human.stdout.contains("(unknown, offline)"), "{human:?}");
    assert!(human.stdout.contains("tmpfs"), "{human:?}");
}

#[test]
fn the_image_behind_a_mounted_loop_device_is_not_offline() {
    if !require_root("the_image_behind_a_mounted_loop_device_is_not_offline") {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("image-in-use");
    let img = fixtures::ext4(&dir, "busy.img", &[]);
    let m: LoopMount = fixtures::loop_mount(&dir, &img, "busy", None);
    let out = run_snapguard(
        [OsStr::new("--json"), OsStr::new("scan"), img.as_os_str()],
        Duration::from_secs(20),
    );
    let doc = out.json();
    assert_schema("scan", &doc);
    let t = only_target(&doc);
    assert_eq!(t["context"], "live", "{t:#}");
    assert_eq!(
        t["mountpoint"].as_str().map(PathBuf::from),
        Some(m.dir().to_path_buf()),
        "{t:#}"
    );
    assert_eq!(
        t["device"].as_str().map(PathBuf::from),
        Some(m.lo.dev().to_path_buf()),
        "{t:#}"
    );
    let f = expect_finding(t, "scan.in-use");
    assert!(
        f["message"].as_str().unwrap().contains(m.lo.name()),
        "{f:#}"
    );
    // A mounted ext4 is "not clean" on disk while in use: live, so that is not a warning.
    assert!(out.exit == 0, "{out:?}");
    m.unmount();
    let out = run_snapguard(
        [OsStr::new("--json"), OsStr::new("scan"), img.as_os_str()],
        Duration::from_secs(20),
    );
    assert_eq!(only_target(&out.json())["context"], "offline", "{out:?}");
}

/// mkfs.xfs refuses data devices under 300 MiB.
const XFS_IMAGE: u64 = 320 << 20;

#[test]
fn the_xfs_copy_with_a_mounted_twin_gets_a_remedy_that_works_when_pasted() {
    if !require_root("the_xfs_copy_with_a_mounted_twin_gets_a_remedy_that_works_when_pasted") {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("xfs-twin");
    let img = dir.join("live.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(XFS_IMAGE))
        .unwrap();
    run(
        "mkfs.xfs",
        &[OsStr::new("-q"), OsStr::new("-f"), img.as_os_str()],
    );
    let m = fixtures::loop_mount(&dir, &img, "twin", None);
    std::fs::write(m.dir().join("a"), b"data").unwrap();
    run("sync", &[] as &[&str]);
    let copy = dir.join("copy.img");
    fixtures::sparse_copy(&img, &copy);

    let out = run_snapguard(
        [OsStr::new("--json"), OsStr::new("scan"), copy.as_os_str()],
        Duration::from_secs(30),
    );
    let doc = out.json();
    let t = only_target(&doc);
    assert_eq!(t["state"], "dirty log", "{t:#}");
    let remedy = expect_finding(t, "xfs.dirty-log")["remedy"]
        .as_str()
        .expect("a remedy")
        .to_string();

    // Paste it, with the twin still mounted; its temporary directory goes to our TMPDIR.
    let tmp = dir.mkdir("tmp");
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&remedy)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{remedy}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp dir left");
    let out = run_snapguard(
        [OsStr::new("--json"), OsStr::new("scan"), copy.as_os_str()],
        Duration::from_secs(30),
    );
    assert_eq!(only_target(&out.json())["state"], "clean", "{out:?}");

    // When the mount fails (not XFS any more), the temporary directory is removed too and
    // the line fails before xfs_repair.
    let broken = dir.join("broken.img");
    std::fs::write(&broken, vec![0u8; 1 << 20]).unwrap();
    let broken_remedy = remedy.replace(copy.to_str().unwrap(), broken.to_str().unwrap());
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&broken_remedy)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(!ran.status.success(), "{broken_remedy}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp dir left");
    m.unmount();
}

/// The major:minor of the filesystem mounted on `dir`.
fn devno_of(dir: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).unwrap().dev();
    (
        nix::sys::stat::major(dev) as u32,
        nix::sys::stat::minor(dev) as u32,
    )
}

#[test]
fn an_offline_check_of_a_loop_mount_names_the_image_and_remounts_it() {
    use snapguard::root::SysRoot;
    use snapguard::scan::inuse;
    use snapguard::scan::remedy::{Location, Remount};
    if !require_root("an_offline_check_of_a_loop_mount_names_the_image_and_remounts_it") {
        return;
    }
    let _turn = mount_namespace_turn(true);
    let dir = TestDir::new("loop-remedy");
    let img = fixtures::ext4(&dir, "auto.img", &[]);
    let mnt = dir.mkdir("mnt");
    // `mount -o loop` (no fstab entry): the loop device is autoclear.
    let m = Mount::new(&img, &mnt, Some("loop,noatime"));
    let (major, minor) = devno_of(&mnt);
    let root = SysRoot::new("/");
    let info = inuse::loop_info(&root, major, minor).expect("a loop device");
    assert!(info.autoclear, "{info:?}");
    assert_eq!(Path::new(&info.backing_file), img.as_path());
    let device = format!(
        "/dev/{}",
        std::fs::read_link(root.dev_block(major, minor))
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );

    // The old line fails: the loop device is gone after umount, and there is no fstab entry.
    let old = Location::Mounted {
        device: device.clone(),
        mountpoint: mnt.display().to_string(),
        is_root: false,
        remount: None,
    }
    .offline_command("e2fsck -f -p");
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&old)
        .output()
        .unwrap();
    assert!(!ran.status.success(), "{old} worked");
    if devno_of(&mnt) == devno_of(dir.path().as_path()) {
        // Put it back for the new line (the old one unmounted it).
        run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new("loop,noatime"),
                img.as_os_str(),
                mnt.as_os_str(),
            ],
        );
    }
    let (major, minor) = devno_of(&mnt);
    let info = inuse::loop_info(&root, major, minor).expect("a loop device");

    let new = Location::Mounted {
        device,
        mountpoint: mnt.display().to_string(),
        is_root: false,
        remount: Some(Remount {
            fstype: "ext4".into(),
            options: "rw,noatime".into(),
            loop_image: Some(info.backing_file),
        }),
    }
    .offline_command("e2fsck -f -p");
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&new)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{new}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_ne!(
        devno_of(&mnt),
        devno_of(dir.path().as_path()),
        "not mounted back"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        .expect("mounted back");
    assert!(line.contains("noatime"), "{line}");
    drop(m);
}
