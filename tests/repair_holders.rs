//! `repair::discover` against real holders of a loop-mounted ext4 (and a btrfs subvolume):
//! each holder class of repair.md §1.2 is set up for real, and `discover` must find and name
//! it. Privileged: skips with a message when not root, fails instead under
//! `SNAPGUARD_REQUIRE_PRIVILEGED=1`. Every process, mount, swap file and loop device is a guard
//! that undoes itself on drop, also when an assertion fails.

mod common;

use common::fixtures;
use common::*;
use snapguard::repair::discover::{Discovery, discover};
use snapguard::repair::holders::{Hold, ProcessHolder};
use snapguard::root::SysRoot;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// A fresh ext4 image loop-mounted in its own temp dir.
fn mounted_ext4(tag: &str) -> (TestDir, fixtures::LoopMount) {
    let dir = TestDir::new(&format!("holders-{tag}"));
    let img = fixtures::ext4(&dir, "fs.img", &[]);
    let lm = fixtures::loop_mount(&dir, &img, tag, None);
    (dir, lm)
}

fn devno(lo: &LoopDevice) -> (u32, u32) {
    let text = lo.dev_t();
    let (major, minor) = text.split_once(':').expect("M:m");
    (major.parse().unwrap(), minor.parse().unwrap())
}

/// `discover` repeated until `ready` accepts it (a spawned shell needs a moment to `cd`, open
/// or exec); panics with the last result after 10 s.
fn discover_until(lo: &LoopDevice, what: &str, ready: impl Fn(&Discovery) -> bool) -> Discovery {
    let (major, minor) = devno(lo);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let d = discover(&SysRoot::default(), major, minor).expect("discover");
        if ready(&d) {
            return d;
        }
        assert!(Instant::now() < end, "{what} not found within 10 s: {d:#?}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn holder(d: &Discovery, pid: u32) -> Option<&ProcessHolder> {
    d.holders.processes.iter().find(|p| p.pid == pid)
}

fn holds(d: &Discovery, pid: u32, hold: &Hold) -> bool {
    holder(d, pid).is_some_and(|p| p.holds.contains(hold))
}

#[test]
fn a_process_with_its_cwd_inside_is_a_holder() {
    if !require_root("a_process_with_its_cwd_inside_is_a_holder") {
        return;
    }
    let (_dir, lm) = mounted_ext4("cwd");
    let inside = lm.dir().join("work dir");
    fs::create_dir(&inside).unwrap();
    let p = Sleeper::sh(&format!("cd '{}' && exec sleep 60", inside.display()));
    let d = discover_until(&lm.lo, "the cwd holder", |d| holds(d, p.pid(), &Hold::Cwd));
    let h = holder(&d, p.pid()).unwrap();
    assert_eq!(h.command, "sleep 60");
    assert!(h.start_time > 0);
    assert_eq!(h.holds, vec![Hold::Cwd]);
    assert!(d.is_busy());
    assert_eq!(d.mounts.len(), 1);
    assert_eq!(d.mounts[0].mount_point, lm.dir());
    // Our own process holds nothing here.
    assert!(holder(&d, std::process::id()).is_none(), "{d:#?}");
    // Where PID 1's links are unreadable even for root (this CI's sandbox), it must be listed
    // as a possible holder, with what could not be read.
    if fs::read_link("/proc/1/cwd").is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    {
        let pid1 = d.holders.unreadable.iter().find(|u| u.pid == 1);
        let pid1 = pid1.unwrap_or_else(|| panic!("PID 1 is not listed as unreadable: {d:#?}"));
        note(&format!("PID 1 unreadable: {}", pid1.what));
        assert!(
            pid1.what.contains("cwd: Permission denied"),
            "{}",
            pid1.what
        );
    }
}

/// After `umount -l` the mount is in no mountinfo, but the superblock lives on in the holder's
/// cwd and mapped executable (repair.md §1.6): both must still be found.
#[test]
fn holders_of_a_lazily_unmounted_filesystem_are_found() {
    if !require_root("holders_of_a_lazily_unmounted_filesystem_are_found") {
        return;
    }
    let (_dir, lm) = mounted_ext4("lazy");
    let fixtures::LoopMount { mount, lo } = lm;
    let exe = mount.dir().join("lazy-sleep");
    fs::copy("/bin/sleep", &exe).unwrap();
    let p = Sleeper::sh(&format!(
        "cd '{}' && exec '{}' 60",
        mount.dir().display(),
        exe.display()
    ));
    discover_until(&lo, "the holder", |d| holds(d, p.pid(), &Hold::Exe));
    run("umount", &[OsStr::new("-l"), mount.dir().as_os_str()]);
    // Already unmounted: the guard must not try again (p is killed first, then lo detached).
    std::mem::forget(mount);
    let d = discover_until(&lo, "the holder after umount -l", |d| {
        holds(d, p.pid(), &Hold::Cwd) && holds(d, p.pid(), &Hold::Exe)
    });
    assert!(d.mounts.is_empty(), "{d:#?}");
    assert!(
        holder(&d, p.pid())
            .unwrap()
            .holds
            .iter()
            .any(|h| matches!(h, Hold::Map { .. })),
        "{d:#?}"
    );
    assert!(d.is_busy());
    drop(p);
}

#[test]
fn an_open_file_is_a_holder() {
    if !require_root("an_open_file_is_a_holder") {
        return;
    }
    let (_dir, lm) = mounted_ext4("fd");
    let file = lm.dir().join("log file");
    let p = Sleeper::sh(&format!("exec 7>>'{}'; exec sleep 60", file.display()));
    let want = Hold::Fd {
        fd: 7,
        path: file.clone(),
    };
    let d = discover_until(&lm.lo, "the open file", |d| holds(d, p.pid(), &want));
    assert_eq!(holder(&d, p.pid()).unwrap().holds, vec![want]);
}

#[test]
fn an_executable_on_it_is_an_exe_and_a_map_holder() {
    if !require_root("an_executable_on_it_is_an_exe_and_a_map_holder") {
        return;
    }
    let (_dir, lm) = mounted_ext4("exe");
    let exe = lm.dir().join("my-sleep");
    fs::copy("/bin/sleep", &exe).unwrap();
    let p = Sleeper::spawn(exe.to_str().unwrap(), &["60"]);
    let map = Hold::Map { path: exe.clone() };
    let d = discover_until(&lm.lo, "the exe holder", |d| {
        holds(d, p.pid(), &Hold::Exe) && holds(d, p.pid(), &map)
    });
    let h = holder(&d, p.pid()).unwrap();
    assert_eq!(h.holds, vec![Hold::Exe, map], "{h:#?}");
    assert!(h.command.ends_with("my-sleep 60"), "{}", h.command);
}

#[test]
fn a_nested_mount_and_a_bind_mount_are_found() {
    if !require_root("a_nested_mount_and_a_bind_mount_are_found") {
        return;
    }
    let (dir, lm) = mounted_ext4("nested");
    let sub = lm.dir().join("sub");
    fs::create_dir(&sub).unwrap();
    let elsewhere = dir.mkdir("bind target");
    let bind = Mount::bind(lm.dir(), &elsewhere);
    let nested = Mount::tmpfs(&sub);
    let d = discover_until(&lm.lo, "the nested mount", |d| !d.submounts.is_empty());
    let points: Vec<&Path> = d.mounts.iter().map(|m| m.mount_point.as_path()).collect();
    assert_eq!(points, vec![lm.dir(), elsewhere.as_path()]);
    assert_eq!(d.submounts.len(), 1, "{d:#?}");
    assert_eq!(d.submounts[0].mount_point, sub);
    assert_eq!(d.submounts[0].fs_type, "tmpfs");
    assert!(d.is_busy());
    // One .mount unit per mount point; the bind target's name has an escaped space.
    assert_eq!(d.units.len(), 2, "{:?}", d.units);
    assert!(
        d.units[1].ends_with("-bind\\x20target.mount"),
        "{:?}",
        d.units
    );
    drop(nested);
    drop(bind);
}

#[test]
fn a_copy_in_another_mount_namespace_is_found_with_its_holders() {
    if !require_root("a_copy_in_another_mount_namespace_is_found_with_its_holders") {
        return;
    }
    // The namespaces below copy every mount of the machine: no repair test may run meanwhile.
    let _turn = common::mount_namespace_turn(false);
    let (_dir, lm) = mounted_ext4("ns");
    let idle = Sleeper::spawn(
        "unshare",
        &["-m", "--propagation", "private", "sleep", "60"],
    );
    // A process in a second private namespace with its cwd inside its own copy of the mount.
    let inside = Sleeper::spawn(
        "unshare",
        &[
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!("cd '{}' && exec sleep 60", lm.dir().display()),
        ],
    );
    let d = discover_until(&lm.lo, "the other namespaces", |d| {
        // The namespaces are read before the processes: `inside` may have unshared and
        // changed directory only between the two, so wait for both of its facts.
        d.other_namespaces.iter().any(|n| n.pid == idle.pid())
            && d.other_namespaces.iter().any(|n| n.pid == inside.pid())
            && holds(d, inside.pid(), &Hold::Cwd)
    });
    let copy = d
        .other_namespaces
        .iter()
        .find(|n| n.pid == idle.pid())
        .unwrap();
    assert_eq!(copy.mount.mount_point, lm.dir());
    assert_ne!(copy.mount.mount_id, d.mounts[0].mount_id);
    let ns = d
        .other_namespaces
        .iter()
        .find(|n| n.pid == inside.pid())
        .expect("the second namespace is listed too");
    assert!(
        d.holder_target()
            .mount_ids
            .contains(&u64::from(ns.mount.mount_id))
    );
    assert!(d.is_busy());
}

#[test]
fn a_swap_file_on_it_is_found() {
    if !require_root("a_swap_file_on_it_is_found") {
        return;
    }
    let (_dir, lm) = mounted_ext4("swap");
    let file = lm.dir().join("swap file");
    let _swap = Swap::on(&file, 8);
    let d = discover_until(&lm.lo, "the swap file", |d| !d.swap_files.is_empty());
    assert_eq!(d.swap_files, vec![file]);
    assert!(d.is_busy());
}

#[test]
fn a_loop_device_backed_by_a_file_on_it_is_found() {
    if !require_root("a_loop_device_backed_by_a_file_on_it_is_found") {
        return;
    }
    let (_dir, lm) = mounted_ext4("loop");
    let image = lm.dir().join("inner.img");
    fs::File::create(&image)
        .unwrap()
        .set_len(8 * fixtures::MIB)
        .unwrap();
    let inner = LoopDevice::attach(&image);
    let d = discover_until(&lm.lo, "the loop device", |d| !d.loop_devices.is_empty());
    assert_eq!(d.loop_devices.len(), 1, "{:?}", d.loop_devices);
    assert_eq!(d.loop_devices[0].device, inner.name());
    assert_eq!(d.loop_devices[0].backing_file, image);
    assert!(d.is_busy());
}

#[test]
fn a_cwd_inside_a_btrfs_subvolume_mount_is_a_holder() {
    if !require_root("a_cwd_inside_a_btrfs_subvolume_mount_is_a_holder") {
        return;
    }
    let dir = TestDir::new("holders-btrfs");
    let img = dir.join("btrfs.img");
    fs::File::create(&img)
        .unwrap()
        .set_len(256 * fixtures::MIB)
        .unwrap();
    run("mkfs.btrfs", &[OsStr::new("-q"), img.as_os_str()]);
    let lo = LoopDevice::attach(&img);
    let top_dir = dir.mkdir("top");
    let top = Mount::new(lo.dev(), &top_dir, None);
    run(
        "btrfs",
        &[
            OsStr::new("-q"),
            OsStr::new("subvolume"),
            OsStr::new("create"),
            top_dir.join("sv").as_os_str(),
        ],
    );
    let sv_dir = dir.mkdir("subvolume");
    let sv = Mount::new(lo.dev(), &sv_dir, Some("subvol=sv"));
    let p = Sleeper::sh(&format!("cd '{}' && exec sleep 60", sv_dir.display()));
    // An executable in the subvolume: maps show the superblock's device, not the subvolume's.
    let exe = sv_dir.join("sv-sleep");
    fs::copy("/bin/sleep", &exe).unwrap();
    let e = Sleeper::spawn(exe.to_str().unwrap(), &["60"]);
    let map = Hold::Map { path: exe.clone() };
    let d = discover_until(&lo, "the subvolume holders", |d| {
        holds(d, p.pid(), &Hold::Cwd) && holds(d, e.pid(), &Hold::Exe) && holds(d, e.pid(), &map)
    });
    // fuser misses a cwd in a subvolume (repair.md §1.2); say so when it still does here.
    let fuser = run_any("fuser", &[OsStr::new("-m"), lo.dev().as_os_str()]);
    note(&format!(
        "fuser -m {} on btrfs: {:?}",
        lo.dev().display(),
        fuser.stdout.trim()
    ));
    // The superblock is the anonymous 0:NN device every subvolume mount shares.
    assert_eq!(d.superblock.0, 0, "{d:#?}");
    let points: Vec<&Path> = d.mounts.iter().map(|m| m.mount_point.as_path()).collect();
    assert_eq!(points, vec![top_dir.as_path(), sv_dir.as_path()]);
    assert_eq!(d.mounts[1].root, Path::new("/sv"));
    drop(e);
    drop(p);
    drop(sv);
    drop(top);
}
