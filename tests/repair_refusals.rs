//! `snapguard repair` against every holder class of repair.md §1.2 (issue 9), end to end on a
//! loop-mounted unclean ext4: a process's cwd, an open file, a memory map, a nested mount, a
//! bind mount, a copy in another mount namespace, a swap file and a loop device. Each refusal
//! exits 8, names the holder in the JSON and on stderr, and changes nothing (the mount and its
//! options, every file's SHA-256, the superblock bytes; no state record). The process classes
//! are then ended with `--terminate-holders` and the repair completes.
//!
//! Privileged: skips with a message when not root, fails instead under
//! `SNAPGUARD_REQUIRE_PRIVILEGED=1`. Every holder (process, mount, swap file, loop device) is a
//! guard undone on drop, also when an assertion fails; every test holds the exclusive
//! mount-namespace turn (it repairs, and one test also makes a namespace).

mod common;

use common::repair::{
    UncleanExt4, hashes, mount_line, one_at_a_time, repair, scan_status, step, unclean_ext4,
};
use common::{LoopDevice, Mount, Sleeper, Swap, TestDir, fixtures, require_root, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The exclusive mount-namespace turn ([`one_at_a_time`]); notes how long the test held it
/// (the test's own duration, without the wait for other tests).
struct Turn {
    _lock: nix::fcntl::Flock<fs::File>,
    name: &'static str,
    since: Instant,
}

fn turn(name: &'static str) -> Turn {
    let lock = one_at_a_time();
    Turn {
        _lock: lock,
        name,
        since: Instant::now(),
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        common::note(&format!(
            "{}: {} ms with the turn",
            self.name,
            self.since.elapsed().as_millis()
        ));
    }
}

/// What a refused repair must leave exactly as it was.
struct Untouched {
    mount: Option<(String, String, PathBuf, String)>,
    files: BTreeMap<String, String>,
    superblock: Vec<u8>,
}

impl Untouched {
    /// Taken after the holder is in place (synced first, so nothing is still on its way).
    /// `skip`: files whose content the kernel may change on its own (an active swap file).
    fn take(fx: &UncleanExt4, skip: &[&str]) -> Self {
        common::run("sync", &[OsStr::new("-f"), fx.dir_path.as_os_str()]);
        let mut files = hashes(&fx.dir_path);
        files.retain(|name, _| !skip.contains(&name.as_str()));
        Untouched {
            mount: mount_line(&fx.dir_path),
            files,
            superblock: fx.superblock_bytes(),
        }
    }

    fn assert_same(&self, fx: &UncleanExt4, skip: &[&str], what: &str) {
        assert!(self.mount.is_some(), "{what}: mounted before");
        assert_eq!(
            mount_line(&fx.dir_path),
            self.mount,
            "{what}: still mounted at {} with the same options",
            fx.dir_path.display()
        );
        let mut files = hashes(&fx.dir_path);
        files.retain(|name, _| !skip.contains(&name.as_str()));
        assert_eq!(files, self.files, "{what}: every file has the same SHA-256");
        for (name, sum) in &fx.files {
            assert_eq!(
                files.get(name),
                Some(sum),
                "{what}: {name} as it was written"
            );
        }
        assert!(
            self.superblock == fx.superblock_bytes(),
            "{what}: the superblock bytes changed"
        );
        assert!(
            !fx.record_path().exists(),
            "{what}: a state record was left: {}",
            fs::read_to_string(fx.record_path()).unwrap_or_default()
        );
    }
}

/// The blockers of a target.
fn blockers(t: &Value) -> &Vec<Value> {
    t["blockers"].as_array().expect("blockers array")
}

/// `snapguard repair --yes --trust-fence --json MOUNT` with a holder in place: exit 8, outcome
/// refused, a blocker of `kind` for which `is_it` holds, every string of `names` in the message
/// and on stderr, and nothing changed.
fn assert_refused(
    dir: &TestDir,
    fx: &UncleanExt4,
    skip: &[&str],
    kind: &str,
    is_it: impl Fn(&Value) -> bool,
    names: &[String],
) {
    let before = Untouched::take(fx, skip);
    let (code, doc, stderr) = repair(dir, &[OsStr::new("--yes"), fx.dir_path.as_os_str()]);
    let t = doc["targets"][0].clone();
    assert_eq!(code, 8, "in use = 8\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "refused", "{doc:#}\n{stderr}");
    assert!(
        blockers(&t).iter().any(|b| b["kind"] == kind && is_it(b)),
        "no {kind} blocker naming the holder: {:#}",
        t["blockers"]
    );
    let message = t["message"].as_str().expect("message");
    for n in names {
        assert!(message.contains(n.as_str()), "{n:?} not in {message:?}");
        assert!(stderr.contains(n.as_str()), "{n:?} not on stderr: {stderr}");
    }
    // --trust-fence lets processes whose /proc entries cannot be read pass (PID 1 here): they
    // are not in the way, so neither listed as blockers nor in the refusal.
    assert!(
        !blockers(&t)
            .iter()
            .any(|b| b["kind"] == "unreadable-process"),
        "--trust-fence lets unreadable processes pass, yet they are listed: {:#}",
        t["blockers"]
    );
    assert!(!message.contains("unreadable"), "{message}");
    // ... but what could not be read is still said (never "not busy" without looking).
    if pid1_unreadable() {
        let trusted = t["trusted"].as_array().expect("trusted array");
        let pid1: Vec<&Value> = trusted.iter().filter(|b| b["pid"] == 1).collect();
        assert!(
            pid1.len() == 1 && pid1[0]["kind"] == "unreadable-process",
            "PID 1 is listed once under trusted: {:#}",
            t["trusted"]
        );
    }
    for s in ["quiesce", "unmount", "fence", "check", "repair"] {
        assert!(step(&t, s).is_empty(), "refused, yet step {s} ran: {doc:#}");
    }
    before.assert_same(fx, skip, kind);
}

/// `--terminate-holders`: the holder is ended (SIGTERM), the repair completes (exit 1), the
/// filesystem is clean, mounted as before, with the same files.
fn assert_ended_and_repaired(dir: &TestDir, fx: &UncleanExt4, holder: &mut Sleeper) {
    let before = mount_line(&fx.dir_path).expect("mounted");
    let (status, state) = scan_status(&fx.dir_path);
    assert_ne!(status, "ok", "still unclean before (state {state:?})");
    let pid = holder.pid();
    let (code, doc, stderr) = repair(
        dir,
        &[
            OsStr::new("--yes"),
            OsStr::new("--terminate-holders"),
            OsStr::new("--grace"),
            OsStr::new("3s"),
            fx.dir_path.as_os_str(),
        ],
    );
    let t = &doc["targets"][0];
    assert_eq!(code, 1, "repaired = 1\n{doc:#}\n{stderr}");
    assert_eq!(t["outcome"], "repaired", "{doc:#}");
    let quiesce = step(t, "quiesce");
    assert!(
        quiesce.len() == 1
            && quiesce[0]["result"] == "ok"
            && quiesce[0]["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("pid {pid} ")),
        "the holder was ended in QUIESCE: {doc:#}"
    );
    // The plan printed before the run lists the holder, and no unreadable entry that
    // --trust-fence lets pass.
    assert!(
        stderr.contains(&format!("in the way: process pid {pid} ")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("in the way: unreadable-process"),
        "--trust-fence lets unreadable processes pass, yet the plan lists them:\n{stderr}"
    );
    if pid1_unreadable() {
        assert!(
            stderr.contains("not read:   unreadable-process pid 1 "),
            "the plan says what could not be read:\n{stderr}"
        );
    }
    let status = holder
        .ended_within(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("pid {pid} still runs after the repair"));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "ended by SIGTERM");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is gone"
    );
    assert_eq!(
        mount_line(&fx.dir_path),
        Some(before),
        "mounted again with the same options"
    );
    assert_eq!(
        hashes(&fx.dir_path),
        fx.files,
        "every file has the same SHA-256"
    );
    let (status, state) = scan_status(&fx.dir_path);
    assert_eq!(status, "ok", "clean after the repair (state {state:?})");
}

/// PID 1's links cannot be read even by root (this CI's sandbox).
fn pid1_unreadable() -> bool {
    fs::read_link("/proc/1/cwd").is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Whether `pid` has exec'd `comm` (the `sh -c '...; exec ...'` holders are ready then).
fn runs(pid: u32, comm: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
}

fn link(pid: u32, what: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/{what}")).ok()
}

fn is_process(b: &Value, pid: u32, how: &str) -> bool {
    b["pid"] == pid && b["how"] == how
}

fn how_names(b: &Value, parts: &[&str]) -> bool {
    let how = b["how"].as_str().unwrap_or_default();
    parts.iter().all(|p| how.contains(p))
}

#[test]
fn a_process_with_its_cwd_inside_is_refused_then_terminated() {
    if !require_root("a_process_with_its_cwd_inside_is_refused_then_terminated") {
        return;
    }
    let _turn = turn("a_process_with_its_cwd_inside_is_refused_then_terminated");
    let dir = TestDir::new("refuse-cwd");
    let fx = unclean_ext4(&dir, "cwd");
    let inside = fx.dir_path.join("sub/deeper");
    let mut p = Sleeper::sh(&format!("cd '{}' && exec sleep 60", inside.display()));
    let pid = p.pid();
    wait_until("the cwd holder", || {
        runs(pid, "sleep") && link(pid, "cwd").as_deref() == Some(inside.as_path())
    });
    assert_refused(
        &dir,
        &fx,
        &[],
        "process",
        |b| is_process(b, pid, "cwd"),
        &[format!("pid {pid} (sleep 60): cwd")],
    );
    assert!(p.ended().is_none(), "a refusal ends no process");
    assert_ended_and_repaired(&dir, &fx, &mut p);
}

#[test]
fn an_open_file_is_refused_then_terminated() {
    if !require_root("an_open_file_is_refused_then_terminated") {
        return;
    }
    let _turn = turn("an_open_file_is_refused_then_terminated");
    let dir = TestDir::new("refuse-fd");
    let fx = unclean_ext4(&dir, "fd");
    let file = fx.dir_path.join("file5");
    let mut p = Sleeper::sh(&format!("exec 7<'{}'; exec sleep 60", file.display()));
    let pid = p.pid();
    wait_until("the open file", || {
        runs(pid, "sleep") && link(pid, "fd/7").as_deref() == Some(file.as_path())
    });
    let how = format!("fd 7 {}", file.display());
    assert_refused(
        &dir,
        &fx,
        &[],
        "process",
        |b| is_process(b, pid, &how),
        &[format!("pid {pid} (sleep 60): {how}")],
    );
    assert!(p.ended().is_none(), "a refusal ends no process");
    assert_ended_and_repaired(&dir, &fx, &mut p);
}

/// The file is mapped (`PROT_READ`, `MAP_SHARED`) and its descriptor closed: only the map
/// holds it.
#[test]
fn a_memory_mapped_file_is_refused_then_terminated() {
    if !require_root("a_memory_mapped_file_is_refused_then_terminated") {
        return;
    }
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(python) = python else {
        common::skip(
            "a_memory_mapped_file_is_refused_then_terminated",
            "no python3",
        );
        assert!(
            std::env::var("SNAPGUARD_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "python3 is needed to map a file"
        );
        return;
    };
    let _turn = turn("a_memory_mapped_file_is_refused_then_terminated");
    let dir = TestDir::new("refuse-mmap");
    let fx = unclean_ext4(&dir, "mmap");
    let file = fx.dir_path.join("file2");
    // mmap(2) through ctypes: Python's own mmap module keeps a descriptor of the file open.
    let script = "import ctypes, os, sys, time; libc = ctypes.CDLL(None); \
                  libc.mmap.restype = ctypes.c_void_p; \
                  libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, \
                  ctypes.c_int, ctypes.c_int, ctypes.c_long]; \
                  fd = os.open(sys.argv[1], os.O_RDONLY); \
                  addr = libc.mmap(None, os.fstat(fd).st_size, 1, 1, fd, 0); \
                  os.close(fd); time.sleep(60)";
    let mut p = Sleeper::spawn(python, &["-c", script, file.to_str().unwrap()]);
    let pid = p.pid();
    let fd_on_it = || {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .any(|e| fs::read_link(e.path()).ok().as_deref() == Some(file.as_path()))
            })
            .unwrap_or(true)
    };
    wait_until("the memory map", || {
        fs::read_to_string(format!("/proc/{pid}/maps"))
            .is_ok_and(|m| m.lines().any(|l| l.ends_with(file.to_str().unwrap())))
            && !fd_on_it()
    });
    let how = format!("maps {}", file.display());
    assert_refused(
        &dir,
        &fx,
        &[],
        "process",
        |b| is_process(b, pid, &how),
        &[format!("pid {pid} ("), format!("): {how}")],
    );
    assert!(p.ended().is_none(), "a refusal ends no process");
    assert_ended_and_repaired(&dir, &fx, &mut p);
}

#[test]
fn a_nested_mount_is_refused() {
    if !require_root("a_nested_mount_is_refused") {
        return;
    }
    let _turn = turn("a_nested_mount_is_refused");
    let dir = TestDir::new("refuse-nested");
    let fx = unclean_ext4(&dir, "nested");
    let below = fx.dir_path.join("below");
    fs::create_dir(&below).unwrap();
    let nested = Mount::tmpfs(&below);
    fs::write(below.join("on-tmpfs"), b"tmpfs").unwrap();
    let nested_before = mount_line(&below).expect("the tmpfs is mounted");
    let b = below.display().to_string();
    assert_refused(
        &dir,
        &fx,
        &[],
        "submount",
        |x| how_names(x, &[&b, "tmpfs"]),
        &[format!("{b} (tmpfs) is mounted below it")],
    );
    assert_eq!(
        mount_line(&below),
        Some(nested_before),
        "the tmpfs as it was"
    );
    assert_eq!(fs::read(below.join("on-tmpfs")).unwrap(), b"tmpfs");
    drop(nested);
}

#[test]
fn a_bind_mount_elsewhere_is_refused() {
    if !require_root("a_bind_mount_elsewhere_is_refused") {
        return;
    }
    let _turn = turn("a_bind_mount_elsewhere_is_refused");
    let dir = TestDir::new("refuse-bind");
    let fx = unclean_ext4(&dir, "bound");
    let elsewhere = dir.mkdir("elsewhere");
    let bind = Mount::bind(&fx.dir_path, &elsewhere);
    let bind_before = mount_line(&elsewhere).expect("the bind mount");
    let e = elsewhere.display().to_string();
    assert_refused(
        &dir,
        &fx,
        &[],
        "other-mount",
        |x| how_names(x, &[&e]),
        &[format!("also mounted on {e}")],
    );
    assert_eq!(mount_line(&elsewhere), Some(bind_before), "the bind mount");
    drop(bind);
}

#[test]
fn a_mount_in_another_namespace_is_refused() {
    if !require_root("a_mount_in_another_namespace_is_refused") {
        return;
    }
    // The exclusive turn: this test repairs, and the namespace below copies every mount of the
    // machine, so no other test may repair (or make namespaces) meanwhile.
    let _turn = turn("a_mount_in_another_namespace_is_refused");
    let dir = TestDir::new("refuse-ns");
    let fx = unclean_ext4(&dir, "ns");
    let ours = link(std::process::id(), "ns/mnt").expect("our mount namespace");
    let ns = Sleeper::spawn(
        "unshare",
        &["-m", "--propagation", "private", "sleep", "60"],
    );
    let pid = ns.pid();
    wait_until("the other namespace", || {
        runs(pid, "sleep") && link(pid, "ns/mnt").is_some_and(|n| n != ours)
    });
    let m = fx.dir_path.display().to_string();
    assert_refused(
        &dir,
        &fx,
        &[],
        "other-namespace",
        |x| x["pid"] == pid && how_names(x, &[&format!("mounted on {m} in mount namespace")]),
        &[
            format!("pid {pid}"),
            format!("mounted on {m} in mount namespace"),
        ],
    );
    drop(ns);
}

#[test]
fn a_swap_file_on_it_is_refused() {
    if !require_root("a_swap_file_on_it_is_refused") {
        return;
    }
    let _turn = turn("a_swap_file_on_it_is_refused");
    let dir = TestDir::new("refuse-swap");
    let fx = unclean_ext4(&dir, "swap");
    let file = fx.dir_path.join("swapfile");
    let swap = Swap::on(&file, 8);
    let f = file.display().to_string();
    assert_refused(
        &dir,
        &fx,
        // The kernel may page out to it meanwhile.
        &["./swapfile"],
        "swap",
        |x| how_names(x, &[&f]),
        &[format!("swap file {f}")],
    );
    let swaps = fs::read_to_string("/proc/swaps").unwrap();
    assert!(
        swaps.lines().any(|l| l.starts_with(&format!("{f} "))),
        "still swapped on: {swaps}"
    );
    drop(swap);
}

#[test]
fn a_loop_device_backed_by_a_file_on_it_is_refused() {
    if !require_root("a_loop_device_backed_by_a_file_on_it_is_refused") {
        return;
    }
    let _turn = turn("a_loop_device_backed_by_a_file_on_it_is_refused");
    let dir = TestDir::new("refuse-loop");
    let fx = unclean_ext4(&dir, "loop");
    let image = fx.dir_path.join("inner.img");
    fs::File::create(&image)
        .unwrap()
        .set_len(8 * fixtures::MIB)
        .unwrap();
    let inner = LoopDevice::attach(&image);
    let d = inner.dev().display().to_string();
    let i = image.display().to_string();
    assert_refused(
        &dir,
        &fx,
        &[],
        "loop",
        |x| how_names(x, &[&d, &i]),
        &[format!("{d} is backed by {i}")],
    );
    let backing = fs::read_to_string(format!("/sys/block/{}/loop/backing_file", inner.name()));
    assert_eq!(
        backing.unwrap().trim_end(),
        i,
        "the loop device is still attached"
    );
    drop(inner);
}
