//! Live scans of loop-mounted ext4 filesystems (root only): by mount point, by device, right
//! after a kernel error, with a mount point name holding a space and a newline, and with a
//! bind mount. Scans without TARGET only assert about our own loop devices.

mod common;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::fixtures;
use common::reference;
use common::*;
use serde_json::Value;

fn dev_str(lo: &LoopDevice) -> String {
    lo.dev().to_string_lossy().into_owned()
}

/// The live target agrees with `dumpe2fs -h /dev/loopN` (which reads the kernel's buffer).
fn assert_live(what: &str, t: &Value, lo: &LoopDevice, mnt: &Path) {
    let d = reference::dumpe2fs_h(lo.dev())
        .unwrap_or_else(|| panic!("dumpe2fs -h {} failed", lo.dev().display()));
    assert_eq!(t["context"], "live", "{what}: {t:#}");
    assert_eq!(
        t["device"].as_str(),
        Some(dev_str(lo).as_str()),
        "{what}: {t:#}"
    );
    assert_eq!(
        t["mountpoint"].as_str(),
        Some(&*mnt.to_string_lossy()),
        "{what}: {t:#}"
    );
    assert_eq!(t["fstype"], "ext4", "{what}: {t:#}");
    assert_eq!(
        t["state"].as_str(),
        Some(d.state.as_str()),
        "{what}: state vs dumpe2fs -h {}: {t:#}",
        lo.dev().display()
    );
    assert_eq!(
        t["needs_recovery"].as_bool(),
        Some(d.needs_recovery),
        "{what}: needs_recovery vs dumpe2fs -h {}: {t:#}",
        lo.dev().display()
    );
}

/// The targets of a no-TARGET scan that are on our loop device.
fn ours<'a>(doc: &'a Value, lo: &LoopDevice) -> Vec<&'a Value> {
    let dev = dev_str(lo);
    targets(doc)
        .iter()
        .filter(|t| t["device"].as_str() == Some(dev.as_str()))
        .collect()
}

#[test]
fn live_by_mountpoint_and_by_device() {
    if !require_root("live_by_mountpoint_and_by_device") {
        return;
    }
    let dir = TestDir::new("live");
    let img = fixtures::ext4(&dir, "live.img", &[]);
    let m = fixtures::loop_mount(&dir, &img, "live", None);
    fixtures::write_files(m.dir());

    let (doc, _exit) = scan_json([m.dir().as_os_str()]);
    assert_live("by mount point", only_target(&doc), &m.lo, m.dir());

    let (doc, _exit) = scan_json([m.lo.dev().as_os_str()]);
    assert_live("by device", only_target(&doc), &m.lo, m.dir());
    m.unmount();
}

#[test]
fn live_errors_seen_by_the_next_scan() {
    if !require_root("live_errors_seen_by_the_next_scan") {
        return;
    }
    let dir = TestDir::new("liveerr");
    let img = fixtures::ext4(&dir, "liveerr.img", &[]);
    let m = fixtures::loop_mount(&dir, &img, "liveerr", None);
    fixtures::write_files(m.dir());
    let sysfs = Path::new("/sys/fs/ext4").join(m.lo.name());
    fs::write(sysfs.join("trigger_fs_error"), "snapguard live test\n").expect("trigger_fs_error");
    // The kernel records the error in memory at once and copies it into the superblock
    // buffer (which sysfs shows) from a work item: wait until sysfs shows it.
    let read = |name: &str| {
        fs::read_to_string(sysfs.join(name))
            .unwrap_or_else(|e| panic!("read {name}: {e}"))
            .trim()
            .to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (count, func) = loop {
        let count: i64 = read("errors_count")
            .parse()
            .expect("errors_count is a number");
        let func = read("first_error_func");
        if (count > 0 && !func.is_empty()) || Instant::now() > deadline {
            break (count, func);
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        count > 0 && !func.is_empty(),
        "fixture: sysfs shows the error (errors_count {count}, first_error_func {func:?})"
    );

    let (doc, exit) = scan_json([m.dir().as_os_str()]);
    let t = only_target(&doc);
    let f = expect_finding(t, "ext.live-errors");
    assert_eq!(f["severity"], "critical", "{t:#}");
    assert_eq!(exit, 2, "{doc:#}");
    let live = &t["ext"]["live_errors"];
    let named = f["message"].as_str().is_some_and(|s| s.contains(&func))
        || live
            .as_object()
            .is_some_and(|o| o.values().any(|v| v.as_str() == Some(func.as_str())));
    assert!(named, "the function {func:?} is reported: {t:#}");
    assert_eq!(live["errors_count"].as_i64(), Some(count), "{t:#}");
    m.unmount();
}

#[test]
fn live_strange_mountpoint_name_and_bind_mount() {
    if !require_root("live_strange_mountpoint_name_and_bind_mount") {
        return;
    }
    let dir = TestDir::new("livename");
    let img = fixtures::ext4(&dir, "livename.img", &[]);
    let lo = LoopDevice::attach(&img);
    let mnt = dir.mkdir("a b\nc");
    let mount = Mount::new(lo.dev(), &mnt, None);
    let mnt_s = mnt.to_string_lossy().into_owned();

    let (doc, _exit) = scan_json([mnt.as_os_str()]);
    assert_live("strange name, by path", only_target(&doc), &lo, &mnt);

    let (doc, _exit) = scan_json(Vec::<&str>::new());
    let mine = ours(&doc, &lo);
    assert_eq!(mine.len(), 1, "no TARGET: our device once: {mine:#?}");
    assert_eq!(
        mine[0]["mountpoint"].as_str(),
        Some(mnt_s.as_str()),
        "no TARGET: the mount point name is decoded: {:#}",
        mine[0]
    );

    let bind_dir = dir.mkdir("bind of a b");
    let bind = Mount::bind(&mnt, &bind_dir);
    let bind_s = bind_dir.to_string_lossy().into_owned();
    let (doc, _exit) = scan_json(Vec::<&str>::new());
    let mine = ours(&doc, &lo);
    assert_eq!(
        mine.len(),
        1,
        "no TARGET with a bind mount: one superblock, listed once: {mine:#?}"
    );
    let t = mine[0];
    let mut seen: Vec<String> = t["other_mountpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("other_mountpoints: {t:#}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    seen.push(t["mountpoint"].as_str().unwrap_or_default().to_owned());
    seen.sort();
    let mut want = vec![mnt_s.clone(), bind_s.clone()];
    want.sort();
    assert_eq!(seen, want, "mountpoint + other_mountpoints: {t:#}");
    assert!(
        t["other_mountpoints"]
            .as_array()
            .is_some_and(|o| o.iter().any(|v| v.as_str() == Some(bind_s.as_str()))),
        "the bind mount is in other_mountpoints: {t:#}"
    );

    bind.unmount();
    mount.unmount();
    drop(lo);
}
