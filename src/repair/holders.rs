//! Processes that hold a filesystem: cwd, root, exe, open files and memory maps, read with
//! `procfs` under `SysRoot`; a `/proc` entry that cannot be read is a possible holder.
//!
//! Matching follows repair.md §1.3, never a path's text (after a lazy unmount a holder's cwd
//! reads `/`; on btrfs every subvolume has its own `st_dev`):
//!
//! * `cwd`, `root`, `exe`: statx's mount id through the magic link (one syscall each), compared
//!   with the mount ids of every mount of the superblock in every namespace; the same statx's
//!   device also matches the superblock's, which still finds a holder after a lazy unmount
//!   (its mount is in no mountinfo any more, repair.md §1.6);
//! * open files: the `mnt_id:` line of `fdinfo/N`, only for fds whose link names a path
//!   (sockets, pipes and anonymous inodes live on internal mounts and are skipped);
//! * file-backed memory maps: the `dev` column of `maps`, which is the *superblock's* device
//!   (mountinfo field 3; for btrfs the anonymous `0:NN` shared by all subvolumes).
//!
//! The trap: `procfs`'s `Process::fd()` silently skips fds whose link cannot be read. So the
//! number of names in `fd/` is compared with the number resolved; on a gap the names are
//! listed and each missing one asked again, and any `EACCES` (on `fd/N`, `fdinfo/N`, `cwd`,
//! `root`, `exe`, `maps`) makes the process an [`UnreadableProcess`]: possibly a holder. A
//! process that vanishes mid-scan (`ENOENT`/`ESRCH`) is simply gone. A process can be both a
//! holder (what could be read) and unreadable (what could not).
//!
//! Our own process is scanned too, but only for its cwd, root, exe and maps: its fds are the
//! scanner's own transient ones (and the caller's, which it knows about). If our cwd or binary
//! is on the filesystem we are a holder like any other; the caller decides.
//!
//! On a sandbox whose PID 1 is non-dumpable (this project's CI), `/proc/1/fd/*` and
//! `/proc/1/cwd` are unreadable even for root, so PID 1 is always listed in
//! [`Holders::unreadable`]: correct, since nobody can tell whether it holds the filesystem.
//!
//! Cost: each process is read once (one `O_PATH` open of its directory, three statx, the fd
//! directory, `fdinfo/N` only for fds that name a path, `maps`); `stat`, `cmdline` and
//! `cgroup` only for the few that hold it or could not be read. Large process tables are split
//! between a few threads (batches of pids from a shared counter), results sorted by pid.
//!
//! Threads that unshared their fd table or fs struct (`CLONE_FILES`/`CLONE_FS` not shared) are
//! not looked at (neither `fuser` nor `lsof` do), nor are unix sockets bound to a path on the
//! filesystem (their fd shows the sockfs mount).

use crate::root::{PROC, PROC_SELF, SysRoot};
use crate::sys::procdir::ProcDir;
use anyhow::Context;
use nix::errno::Errno;
use procfs::ProcError;
use procfs::process::{FDInfo, FDTarget, MMapPath, Process};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The filesystem to look for: its superblock's device (mountinfo field 3) and the mount id of
/// every mount of it in every namespace (mount ids are unique system-wide).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderTarget {
    pub major: u32,
    pub minor: u32,
    pub mount_ids: BTreeSet<u64>,
}

impl HolderTarget {
    /// Whether a file statx placed is on the filesystem: through one of its mounts, or (a
    /// mount lazily unmounted, so in no mountinfo) with the superblock's device as its
    /// `st_dev`, which is exact except for btrfs subvolumes (their own anonymous device).
    fn holds(&self, p: &crate::sys::statx::Placement) -> bool {
        self.mount_ids.contains(&p.mount_id)
            || (p.dev_major, p.dev_minor) == (self.major, self.minor)
    }
}

/// One way a process holds the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hold {
    /// Its working directory is on it.
    Cwd,
    /// Its root directory (chroot, container) is on it.
    Root,
    /// Its executable is on it.
    Exe,
    /// An open file on it (the path as the fd link reads, `" (deleted)"` included).
    Fd { fd: u32, path: PathBuf },
    /// A file on it is mapped into its memory (each path once).
    Map { path: PathBuf },
}

/// A process holding the filesystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessHolder {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat` (clock ticks after boot): with the pid, the process's
    /// identity (0 when it could not be read).
    pub start_time: u64,
    /// The command line joined by spaces, or `[comm]` for a kernel thread or zombie.
    pub command: String,
    /// The systemd unit it runs in (from `/proc/PID/cgroup`).
    pub unit: Option<String>,
    pub holds: Vec<Hold>,
}

/// A process whose `/proc` entries could not all be read: possibly a holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnreadableProcess {
    pub pid: u32,
    pub command: Option<String>,
    /// What could not be read, e.g. `fd: 3 of 7 links unreadable (Permission denied)`; parts
    /// joined by `"; "`.
    pub what: String,
}

/// Every process holding the filesystem, and every process that could not be checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Holders {
    pub processes: Vec<ProcessHolder>,
    pub unreadable: Vec<UnreadableProcess>,
}

impl Holders {
    /// True when no process holds it and every process could be checked.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.unreadable.is_empty()
    }
}

/// How reading one part of a process failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// `ENOENT`/`ESRCH`: the process (or this entry of it) does not exist.
    Gone,
    /// Anything else (`EACCES` above all): the text says why.
    Unreadable(String),
}

fn errno_failure(e: Errno) -> Failure {
    match e {
        Errno::ENOENT | Errno::ESRCH => Failure::Gone,
        other => Failure::Unreadable(errno_text(other)),
    }
}

fn errno_text(e: Errno) -> String {
    crate::sys::describe_io(&std::io::Error::from_raw_os_error(e as i32))
}

fn io_failure(e: &std::io::Error) -> Failure {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => Failure::Gone,
        _ if e.kind() == std::io::ErrorKind::NotFound => Failure::Gone,
        _ => Failure::Unreadable(crate::sys::describe_io(e)),
    }
}

fn proc_failure(e: &ProcError) -> Failure {
    match e {
        ProcError::NotFound(_) => Failure::Gone,
        ProcError::PermissionDenied(_) => Failure::Unreadable(errno_text(Errno::EACCES)),
        ProcError::Io(io, _) => io_failure(io),
        ProcError::Incomplete(_) => Failure::Unreadable("incomplete read".to_string()),
        other => Failure::Unreadable(other.to_string()),
    }
}

/// Buffers reused from one process to the next.
#[derive(Default)]
struct Scratch {
    /// The fds `Process::fd()` resolved.
    seen: Vec<i32>,
}

/// What one process's scan found (empty for most).
#[derive(Default)]
struct Found {
    holds: Vec<Hold>,
    problems: Vec<String>,
}

impl Found {
    fn fail(&mut self, what: &str, failure: Failure) -> Result<(), Gone> {
        match failure {
            Failure::Gone => Err(Gone),
            Failure::Unreadable(why) => {
                self.problems.push(format!("{what}: {why}"));
                Ok(())
            }
        }
    }
}

/// The process disappeared during its scan.
struct Gone;

/// Below this many processes one thread scans them all (a thread costs more than it saves).
const PARALLEL_FROM: usize = 256;
/// At most this many scanning threads (the work is syscalls into procfs; more threads than
/// cores only contend).
const MAX_WORKERS: usize = 4;
/// Pids a worker claims at a time.
const BATCH: usize = 64;

/// Every process holding `target`, and every process that could not be checked, each list in
/// pid order. Errors only when the process list itself cannot be read (then nothing can be
/// said). Large process tables are scanned by a few threads, each process by exactly one.
pub fn scan_processes(root: &SysRoot, target: &HolderTarget) -> anyhow::Result<Holders> {
    let proc_dir = root.path(PROC);
    let pids = list_pids(&proc_dir)?;
    let me = own_pid(root);
    let workers = if pids.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS)
    };
    let scan = Scan {
        root,
        proc_dir: &proc_dir,
        target,
        me,
        pids: &pids,
        next: AtomicUsize::new(0),
    };
    let mut holders = if workers == 1 {
        scan.work()
    } else {
        let parts = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(|| scan.work())).collect();
            handles
                .into_iter()
                .map(|h| h.join())
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|_| anyhow::anyhow!("a process scanning thread panicked"))?;
        let mut all = Holders::default();
        for part in parts {
            all.processes.extend(part.processes);
            all.unreadable.extend(part.unreadable);
        }
        all
    };
    holders.processes.sort_by_key(|p| p.pid);
    holders.unreadable.sort_by_key(|p| p.pid);
    Ok(holders)
}

/// The numeric entries of `<root>/proc` (each then opened with `procfs`'s
/// `Process::new_with_root`). A failed readdir means an incomplete list: an error.
fn list_pids(proc_dir: &Path) -> anyhow::Result<Vec<u32>> {
    let cannot = || format!("cannot list the processes in '{}'", proc_dir.display());
    let mut pids = Vec::new();
    let listing = std::fs::read_dir(proc_dir).with_context(cannot)?;
    for entry in listing {
        let entry = entry.with_context(cannot)?;
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// One scan's shared, read-only inputs and its work queue.
struct Scan<'a> {
    root: &'a SysRoot,
    proc_dir: &'a Path,
    target: &'a HolderTarget,
    me: Option<u32>,
    pids: &'a [u32],
    next: AtomicUsize,
}

impl Scan<'_> {
    /// Claims batches of pids until none are left; what they hold.
    fn work(&self) -> Holders {
        let mut scratch = Scratch::default();
        let mut holders = Holders::default();
        loop {
            let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
            let Some(batch) = self.pids.get(start..) else {
                break;
            };
            for &pid in batch.iter().take(BATCH) {
                self.one(pid, &mut scratch, &mut holders);
            }
        }
        holders
    }

    /// One process, read once; vanished ones leave no trace.
    fn one(&self, pid: u32, scratch: &mut Scratch, holders: &mut Holders) {
        let path = self.proc_dir.join(pid.to_string());
        let unreadable = |holders: &mut Holders, why: String| {
            holders.unreadable.push(UnreadableProcess {
                pid,
                command: None,
                what: format!("process directory: {why}"),
            });
        };
        let dir = match ProcDir::open(&path) {
            Ok(dir) => dir,
            Err(Errno::ENOENT | Errno::ESRCH) => return,
            Err(e) => return unreadable(holders, errno_text(e)),
        };
        let process = match Process::new_with_root(path) {
            Ok(p) => p,
            Err(e) => match proc_failure(&e) {
                Failure::Gone => return,
                Failure::Unreadable(why) => return unreadable(holders, why),
            },
        };
        let is_self = self.me == Some(pid);
        let Ok(found) = scan_one(self.root, &process, &dir, self.target, is_self, scratch) else {
            return;
        };
        if !found.holds.is_empty() || !found.problems.is_empty() {
            report(&process, pid, found, holders);
        }
    }
}

/// Our own pid as `<root>/proc/self` names it (`None` for a fixture without one).
fn own_pid(root: &SysRoot) -> Option<u32> {
    std::fs::read_link(root.path(PROC_SELF))
        .ok()?
        .to_str()?
        .parse()
        .ok()
}

/// One process, read once: cwd, root, exe, fds (not our own), maps.
fn scan_one(
    root: &SysRoot,
    process: &Process,
    dir: &ProcDir,
    target: &HolderTarget,
    is_self: bool,
    scratch: &mut Scratch,
) -> Result<Found, Gone> {
    let mut found = Found::default();
    for (name, label, hold) in [
        (c"cwd", "cwd", Hold::Cwd),
        (c"root", "root", Hold::Root),
        (c"exe", "exe", Hold::Exe),
    ] {
        match dir.placement(name) {
            Ok(p) if target.holds(&p) => found.holds.push(hold),
            Ok(_) => {}
            // A kernel thread has no exe, a zombie no cwd/root/exe: nothing held there. A
            // process that is really gone shows up as such below.
            Err(Errno::ENOENT | Errno::ESRCH) => {}
            Err(e) => found.problems.push(format!("{label}: {}", errno_text(e))),
        }
    }
    if !is_self {
        scan_fds(root, process, dir, target, scratch, &mut found)?;
    }
    scan_maps(process, target, &mut found)?;
    Ok(found)
}

/// The open files: every fd `procfs` resolves, then the names it skipped.
fn scan_fds(
    root: &SysRoot,
    process: &Process,
    dir: &ProcDir,
    target: &HolderTarget,
    scratch: &mut Scratch,
    found: &mut Found,
) -> Result<(), Gone> {
    let fds = match process.fd() {
        Ok(fds) => fds,
        Err(e) => return found.fail("fd", proc_failure(&e)),
    };
    scratch.seen.clear();
    let mut fdinfo_failure = None;
    for info in fds {
        match info {
            Ok(info) => {
                scratch.seen.push(info.fd);
                if let Err(why) = check_fd(dir, &info, target, found) {
                    fdinfo_failure = Some(why);
                }
            }
            Err(e) => found.fail("fd", proc_failure(&e))?,
        }
    }
    if let Some(why) = fdinfo_failure {
        found.problems.push(format!("fdinfo: {why}"));
    }
    // procfs skips the fds whose link it cannot read: compare with the number of names.
    let names = match process.fd_count() {
        Ok(n) => n,
        Err(e) => return found.fail("fd", proc_failure(&e)),
    };
    if names <= scratch.seen.len() {
        return Ok(());
    }
    recheck_fds(root, process, dir, target, scratch, found)
}

/// The names in `fd/` that `Process::fd()` did not yield: each asked again; a closed one is
/// gone, an unreadable one makes the process a possible holder.
fn recheck_fds(
    root: &SysRoot,
    process: &Process,
    dir: &ProcDir,
    target: &HolderTarget,
    scratch: &Scratch,
    found: &mut Found,
) -> Result<(), Gone> {
    let Ok(pid) = u32::try_from(process.pid) else {
        return Ok(());
    };
    let listing = match std::fs::read_dir(root.proc_entry(pid, "fd")) {
        Ok(listing) => listing,
        Err(e) => return found.fail("fd", io_failure(&e)),
    };
    let mut total = 0usize;
    let mut unreadable = 0usize;
    let mut last_why = None;
    for entry in listing {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return found.fail("fd", io_failure(&e)),
        };
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        total += 1;
        if scratch.seen.contains(&fd) {
            continue;
        }
        match process.fd_from_fd(fd) {
            Ok(info) => {
                if let Err(why) = check_fd(dir, &info, target, found) {
                    unreadable += 1;
                    last_why = Some(why);
                }
            }
            Err(e) => match proc_failure(&e) {
                Failure::Gone => {} // closed since the listing
                Failure::Unreadable(why) => {
                    unreadable += 1;
                    last_why = Some(why);
                }
            },
        }
    }
    if let Some(why) = last_why {
        found.problems.push(format!(
            "fd: {unreadable} of {total} links unreadable ({why})"
        ));
    }
    Ok(())
}

/// One resolved fd: a path's mount id from `fdinfo/N`. `Err` with the reason when fdinfo could
/// not be read (a closed fd is not an error).
fn check_fd(
    dir: &ProcDir,
    info: &FDInfo,
    target: &HolderTarget,
    found: &mut Found,
) -> Result<(), String> {
    let FDTarget::Path(path) = &info.target else {
        return Ok(());
    };
    let Ok(fd) = u32::try_from(info.fd) else {
        return Ok(());
    };
    match dir.fdinfo_mount_id(fd) {
        Ok(Some(id)) if target.mount_ids.contains(&id) => {
            found.holds.push(Hold::Fd {
                fd,
                path: path.clone(),
            });
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => match errno_failure(e) {
            Failure::Gone => Ok(()),
            Failure::Unreadable(why) => Err(why),
        },
    }
}

/// File-backed maps whose `dev` is the superblock's.
fn scan_maps(process: &Process, target: &HolderTarget, found: &mut Found) -> Result<(), Gone> {
    let maps = match process.maps() {
        Ok(maps) => maps,
        Err(e) => return found.fail("maps", proc_failure(&e)),
    };
    let (Ok(major), Ok(minor)) = (i32::try_from(target.major), i32::try_from(target.minor)) else {
        return Ok(());
    };
    for map in maps {
        if map.inode == 0 || map.dev != (major, minor) {
            continue;
        }
        if let MMapPath::Path(path) = map.pathname {
            let already = found
                .holds
                .iter()
                .any(|h| matches!(h, Hold::Map { path: p } if *p == path));
            if !already {
                found.holds.push(Hold::Map { path });
            }
        }
    }
    Ok(())
}

/// Adds a process that holds the filesystem or could not be checked, with its identity, command
/// and unit; a process that vanished meanwhile is dropped.
fn report(process: &Process, pid: u32, found: Found, holders: &mut Holders) {
    let (start_time, comm) = match process.stat() {
        Ok(stat) => (stat.starttime, Some(stat.comm)),
        Err(e) if proc_failure(&e) == Failure::Gone => return,
        Err(_) => (0, None),
    };
    let command = match process.cmdline() {
        Ok(args) if !args.is_empty() => Some(args.join(" ")),
        _ => comm.map(|c| format!("[{c}]")),
    };
    if !found.problems.is_empty() {
        holders.unreadable.push(UnreadableProcess {
            pid,
            command: command.clone(),
            what: found.problems.join("; "),
        });
    }
    if !found.holds.is_empty() {
        let unit = process
            .cgroups()
            .ok()
            .and_then(|groups| systemd_cgroup_path(&groups.0).and_then(unit_of_cgroup));
        holders.processes.push(ProcessHolder {
            pid,
            start_time,
            command: command.unwrap_or_default(),
            unit,
            holds: found.holds,
        });
    }
}

/// The cgroup path systemd manages: the unified hierarchy (`0::/…`), else cgroup v1's
/// `name=systemd` hierarchy (whichever names a unit; hybrid setups keep it in `name=systemd`).
pub fn systemd_cgroup_path(groups: &[procfs::ProcessCGroup]) -> Option<&str> {
    let v1 = groups
        .iter()
        .find(|g| g.controllers.iter().any(|c| c == "name=systemd"));
    let v2 = groups
        .iter()
        .find(|g| g.hierarchy == 0 && g.controllers.iter().all(|c| c.is_empty()));
    let names_unit = |g: &&procfs::ProcessCGroup| unit_of_cgroup(&g.pathname).is_some();
    v2.filter(names_unit)
        .or(v1.filter(names_unit))
        .or(v2)
        .or(v1)
        .map(|g| g.pathname.as_str())
}

/// Unit types a process can run in.
const UNIT_SUFFIXES: [&str; 5] = [".service", ".scope", ".mount", ".socket", ".swap"];

/// The systemd unit of a cgroup path, as PID 1 sees it (`cg_path_get_unit`): the first
/// component after the `.slice` ones that is a unit name
/// (`/system.slice/nginx.service/worker` → `nginx.service`). Cgroups below a unit are its own
/// business: a user manager's delegated `/user.slice/…/user@1000.service/app.slice/x.service`
/// belongs to `user@1000.service` for PID 1 (a user naming a cgroup `sshd.service` never makes
/// `--stop-units` stop the system's sshd). A name with characters systemd never uses is no unit.
pub fn unit_of_cgroup(path: &str) -> Option<String> {
    let first = path
        .split('/')
        .filter(|c| !c.is_empty())
        .find(|c| !(c.len() > ".slice".len() && c.ends_with(".slice")))?;
    let is_unit = UNIT_SUFFIXES
        .iter()
        .any(|s| first.len() > s.len() && first.ends_with(s));
    let valid = first.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'-' | b'@' | b'\\')
    });
    (is_unit && valid).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(hierarchy: u32, controllers: &[&str], path: &str) -> procfs::ProcessCGroup {
        procfs::ProcessCGroup {
            hierarchy,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            pathname: path.to_string(),
        }
    }

    #[test]
    fn cgroup_paths_name_units() {
        assert_eq!(
            unit_of_cgroup("/system.slice/nginx.service").as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            unit_of_cgroup("/system.slice/app.service/payload/worker").as_deref(),
            Some("app.service")
        );
        assert_eq!(
            unit_of_cgroup("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of_cgroup("/system.slice/srv-data.mount").as_deref(),
            Some("srv-data.mount")
        );
        assert_eq!(unit_of_cgroup("/init.scope").as_deref(), Some("init.scope"));
        assert_eq!(unit_of_cgroup("/"), None);
        assert_eq!(unit_of_cgroup("/system.slice"), None);
        assert_eq!(unit_of_cgroup("/process_api/7b28"), None);
        assert_eq!(unit_of_cgroup("/.service"), None);
        // A user manager's delegated subtree belongs to the user manager, for PID 1.
        assert_eq!(
            unit_of_cgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service")
                .as_deref(),
            Some("user@1000.service")
        );
        assert_eq!(unit_of_cgroup("/system.slice/we ird.service"), None);
    }

    #[test]
    fn the_systemd_hierarchy_is_preferred() {
        let unified = [group(0, &[], "/system.slice/cron.service")];
        assert_eq!(
            systemd_cgroup_path(&unified),
            Some("/system.slice/cron.service")
        );
        // Hybrid: the unified line says nothing, name=systemd names the unit.
        let hybrid = [
            group(9, &["name=systemd"], "/system.slice/sshd.service"),
            group(4, &["memory"], "/x"),
            group(0, &[], "/"),
        ];
        assert_eq!(
            systemd_cgroup_path(&hybrid),
            Some("/system.slice/sshd.service")
        );
        // This sandbox: no unit anywhere.
        let none = [group(9, &["name=systemd"], "/"), group(0, &[], "/")];
        assert_eq!(systemd_cgroup_path(&none).and_then(unit_of_cgroup), None);
        assert_eq!(systemd_cgroup_path(&[]), None);
    }

    #[test]
    fn holds_serialize_with_a_kind_tag() {
        let holds = vec![
            Hold::Cwd,
            Hold::Fd {
                fd: 3,
                path: PathBuf::from("/mnt/x"),
            },
        ];
        let json = serde_json::to_string(&holds).unwrap();
        assert_eq!(
            json,
            r#"[{"kind":"cwd"},{"kind":"fd","fd":3,"path":"/mnt/x"}]"#
        );
        let back: Vec<Hold> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, holds);
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(errno_failure(Errno::ENOENT), Failure::Gone);
        assert_eq!(errno_failure(Errno::ESRCH), Failure::Gone);
        assert!(
            matches!(errno_failure(Errno::EACCES), Failure::Unreadable(w) if w == "Permission denied")
        );
        assert_eq!(proc_failure(&ProcError::NotFound(None)), Failure::Gone);
        assert!(matches!(
            proc_failure(&ProcError::PermissionDenied(None)),
            Failure::Unreadable(_)
        ));
    }

    /// Our own cwd is on the mount of the test's temp dir: we are reported as a holder with a
    /// Cwd hold (and never with our own fds).
    #[test]
    fn our_own_cwd_is_a_hold_but_our_fds_are_not() {
        let root = SysRoot::default();
        let cwd = std::env::current_dir().unwrap();
        let Ok(id) = crate::sys::statx::mount_id_of_path(&cwd) else {
            return;
        };
        let _open = std::fs::File::open(&cwd).unwrap();
        let target = HolderTarget {
            major: 0,
            minor: 0,
            mount_ids: BTreeSet::from([id]),
        };
        let holders = scan_processes(&root, &target).unwrap();
        let me = std::process::id();
        let mine = holders.processes.iter().find(|p| p.pid == me).unwrap();
        assert!(mine.holds.contains(&Hold::Cwd), "{mine:?}");
        assert!(
            !mine.holds.iter().any(|h| matches!(h, Hold::Fd { .. })),
            "{mine:?}"
        );
        assert!(mine.start_time > 0);
    }
}
