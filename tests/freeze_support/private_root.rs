//! A private root for running snapguard's *default set* (no MOUNT argument) without ever
//! seeing the machine's real filesystems: a test ext4 on the test's own loop device becomes `/`
//! of a new mount namespace (pivot_root, old root detached), with an optional second test
//! filesystem at `/data`, fresh `proc`/`sysfs` and tmpfs `/dev`, `/run`, `/tmp`. Nothing of the
//! host is bind-mounted in: the binaries the tests need (snapguard, `sh`, `true`, `cat`,
//! `sleep`, `umount`) are copied into the image with their shared libraries.
//!
//! Safety: before snapguard is started inside, the namespace's own `/proc/self/mountinfo` is
//! checked (`private_root.sh`, `check_mounts`): every block-backed mount must be one of the
//! test's filesystems, `/` must be the test root, the host root must be absent. Anything else,
//! or any failed setup step, exits 97/98 and snapguard never runs. The test process checks
//! before that the loop devices' backing files are inside its `TestDir`.

use crate::common::{Ran, TestDir, run, run_any};
use crate::freeze_support::{MIB, TestFs, bin};
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace script (setup, pivot, safety check, exec).
const SCRIPT: &str = include_str!("private_root.sh");
/// The script's exit code when the safety check refuses the mount table.
pub const EXIT_REFUSED: i32 = 97;
/// The script's exit code when a setup step failed.
pub const EXIT_SETUP_FAILED: i32 = 98;
/// The stderr line that says snapguard was exec'd (everything before it is the harness).
const STARTED_MARK: &str = "private-root: starting /snapguard";
/// The commands copied into the private root (plus snapguard itself).
const COMMANDS: &[&str] = &["sh", "true", "false", "cat", "sleep", "umount"];
/// A fixed PATH, the same outside (to find unshare, mount, pivot_root) and inside.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the test root's superblock appears in the namespace's mountinfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootLayout {
    /// `/data` (when there is one), then `/`, then the pseudo filesystems.
    Plain,
    /// Like `Plain`, but a second whole-filesystem mount of the root superblock is created
    /// before the one that becomes `/`, then moved to `/mnt/top`: it is listed before `/`.
    SecondRootMountListedFirst,
}

impl RootLayout {
    fn script_name(self) -> &'static str {
        match self {
            RootLayout::Plain => "plain",
            RootLayout::SecondRootMountListedFirst => "second-root-mount-first",
        }
    }
}

/// What the in-namespace safety check accepts (all as mountinfo's `major:minor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyPolicy {
    /// The test root: the only filesystem allowed at `/`.
    pub root_majmin: String,
    /// Every test filesystem (the only block-backed mounts allowed).
    pub allowed: Vec<String>,
    /// The host's `/`: never allowed anywhere.
    pub host_root_majmin: String,
}

/// One run inside the private root.
#[derive(Debug, Clone)]
pub struct PrivateRun {
    /// None when killed (timeout) or ended by a signal.
    pub exit: Option<i32>,
    pub stdout: String,
    /// Everything on stderr: the harness's lines, then snapguard's.
    pub stderr: String,
    /// The mountinfo lines the safety check looked at, in order (empty if it never ran).
    pub mountinfo: Vec<String>,
    /// The harness got as far as exec'ing snapguard.
    pub snapguard_started: bool,
    pub timed_out: bool,
}

impl PrivateRun {
    /// stdout as the one JSON document snapguard promises.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e})\n{}", self.describe())
        })
    }

    /// The mount points of `mountinfo`, in order.
    pub fn mount_points(&self) -> Vec<String> {
        self.mountinfo
            .iter()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .collect()
    }

    /// Everything about the run, for panic messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?} (timed out: {}, snapguard started: {})\n--- stdout\n{}\n--- stderr\n{}",
            self.exit, self.timed_out, self.snapguard_started, self.stdout, self.stderr
        )
    }
}

/// A test ext4 that can become `/` of a private mount namespace, and an optional second test
/// filesystem for `/data`. Both are also mounted on the host under the `TestDir` (`root()`,
/// `data()`); Drop thaws, unmounts and detaches them (the `TestFs` guards).
pub struct PrivateRoot {
    root: TestFs,
    data: Option<TestFs>,
    layout: RootLayout,
    /// Host-side directory: the staging mount points used inside the namespace, run outputs.
    work: PathBuf,
    /// The `TestDir` everything lives in (its canonical path).
    test_dir: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl PrivateRoot {
    /// A 160 MiB ext4 root populated with snapguard and the commands it needs, plus, with
    /// `data_fstype` (`"ext4"`, `"btrfs"`, `"xfs"`), a 160 MiB filesystem for `/data`.
    pub fn new(dir: &TestDir, data_fstype: Option<&str>, layout: RootLayout) -> Self {
        let root = TestFs::new(dir, "nsroot", "ext4", 160 * MIB);
        let data = data_fstype.map(|kind| TestFs::new(dir, "nsdata", kind, 160 * MIB));
        let work = dir.mkdir("ns-work");
        for d in ["new-root", "stage-top", "stage-data"] {
            fs::create_dir_all(work.join(d)).expect("create ns-work dirs");
        }
        populate(root.dir());
        let me = PrivateRoot {
            root,
            data,
            layout,
            work,
            test_dir: dir.path(),
            runs: std::cell::Cell::new(0),
        };
        me.assert_loop_devices_are_ours();
        me
    }

    /// The root filesystem (host side: its mount point under the `TestDir`).
    pub fn root(&self) -> &TestFs {
        &self.root
    }

    /// The `/data` filesystem, if any.
    pub fn data(&self) -> Option<&TestFs> {
        self.data.as_ref()
    }

    /// What the safety check inside the namespace will accept for this root.
    pub fn safety_policy(&self) -> SafetyPolicy {
        let root_majmin = host_mount_majmin(&self.root);
        let mut allowed = vec![root_majmin.clone()];
        allowed.extend(self.data.iter().map(host_mount_majmin));
        let policy = SafetyPolicy {
            root_majmin,
            allowed,
            host_root_majmin: host_root_majmin(),
        };
        assert!(
            !policy.allowed.contains(&policy.host_root_majmin),
            "a test filesystem has the host root's major:minor: {policy:?}"
        );
        policy
    }

    /// `/snapguard ARGS...` inside the private root; killed (its process group, which only
    /// holds processes this run started) after `timeout`.
    pub fn run(&self, args: &[&str], timeout: Duration) -> PrivateRun {
        self.run_with_policy(&self.safety_policy(), args, timeout)
    }

    /// Same with an explicit safety policy (to prove the check refuses a foreign mount).
    pub fn run_with_policy(
        &self,
        policy: &SafetyPolicy,
        args: &[&str],
        timeout: Duration,
    ) -> PrivateRun {
        self.assert_loop_devices_are_ours();
        let _turn = crate::common::mount_namespace_turn(false);
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let out_file = self.work.join(format!("run-{n}.out"));
        let err_file = self.work.join(format!("run-{n}.err"));
        let mut loops = vec![&self.root];
        loops.extend(self.data.iter());
        let loop_nodes: Vec<String> = loops
            .iter()
            .map(|fs| format!("{}:{}", fs.dev.name(), fs.dev.dev_t()))
            .collect();
        let (data_dev, data_fstype) = match &self.data {
            Some(d) => (d.dev.dev().to_owned(), host_mount_fstype(d)),
            None => (PathBuf::new(), String::new()),
        };
        let mut cmd = Command::new("unshare");
        cmd.env_clear()
            .env("PATH", PATH)
            .env("SG_HOST_MNT_NS", host_mnt_ns())
            .env("SG_ROOT_MAJMIN", &policy.root_majmin)
            .env("SG_ALLOWED", policy.allowed.join(" "))
            .env("SG_HOST_ROOT_MAJMIN", &policy.host_root_majmin)
            .env("SG_WORK", &self.work)
            .env("SG_NEW_ROOT", self.work.join("new-root"))
            .env("SG_LAYOUT", self.layout.script_name())
            .env("SG_ROOT_DEV", self.root.dev.dev())
            .env("SG_ROOT_FSTYPE", "ext4")
            .env("SG_DATA_DEV", &data_dev)
            .env("SG_DATA_FSTYPE", &data_fstype)
            .env("SG_LOOP_NODES", loop_nodes.join(" "))
            // Keep libmount's userspace mount table of this namespace out of the host's /run.
            .env("LIBMOUNT_UTAB", self.work.join("utab"))
            .args([
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                SCRIPT,
            ])
            .arg("sh")
            .arg("enter")
            .args(args);
        spawn_bounded(cmd, &out_file, &err_file, timeout)
    }

    /// Panics unless every loop device of this root is backed by an image inside the TestDir.
    fn assert_loop_devices_are_ours(&self) {
        for fs in std::iter::once(&self.root).chain(self.data.iter()) {
            let name = fs.dev.name();
            let backing = fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
                .unwrap_or_else(|e| panic!("{name} has no backing file ({e}): not ours"));
            let backing = Path::new(backing.trim_end_matches('\n'));
            assert!(
                backing.starts_with(&self.test_dir) && backing == fs.image,
                "refusing to use {name}: its backing file {} is not our image {} in {}",
                backing.display(),
                fs.image.display(),
                self.test_dir.display()
            );
        }
    }
}

/// Runs only the namespace script's safety check (`check_mounts`) on `mountinfo`, with host
/// `/bin/sh`: no namespace, nothing mounted, snapguard never started.
pub fn run_safety_check(dir: &TestDir, mountinfo: &str, policy: &SafetyPolicy) -> Ran {
    let file = dir.join("fake-mountinfo");
    fs::write(&file, mountinfo).expect("write fake mountinfo");
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", PATH)
        .env("SG_ROOT_MAJMIN", &policy.root_majmin)
        .env("SG_ALLOWED", policy.allowed.join(" "))
        .env("SG_HOST_ROOT_MAJMIN", &policy.host_root_majmin)
        .args(["-c", SCRIPT, "sh", "check"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("spawn /bin/sh");
    Ran {
        exit: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Spawns `cmd` in a process group of its own, output to files; on `timeout` SIGKILLs that
/// group (every process in it was started by this run) and reaps the child.
fn spawn_bounded(
    mut cmd: Command,
    out_file: &Path,
    err_file: &Path,
    timeout: Duration,
) -> PrivateRun {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(out_file).expect("create stdout file"))
        .stderr(fs::File::create(err_file).expect("create stderr file"))
        .process_group(0)
        .spawn()
        .expect("spawn unshare");
    let end = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= end {
            timed_out = true;
            let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::SIGKILL);
            break child.wait().expect("wait for the killed run");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = fs::read_to_string(out_file).unwrap_or_default();
    let stderr = fs::read_to_string(err_file).unwrap_or_default();
    let mountinfo = stderr
        .lines()
        .skip_while(|l| *l != "--- mountinfo checked")
        .skip(1)
        .take_while(|l| *l != "--- end of mountinfo")
        .map(str::to_owned)
        .collect();
    PrivateRun {
        exit: status.code(),
        snapguard_started: stderr.lines().any(|l| l == STARTED_MARK),
        stdout,
        stderr,
        mountinfo,
        timed_out,
    }
}

/// Copies snapguard (as `/snapguard`), [`COMMANDS`] and their shared libraries and dynamic
/// loader (from `ldd`) into `root`, at the host paths, and makes the mount-point directories.
/// The host's merged-/usr symlinks (`/bin` → `usr/bin`...) are reproduced.
fn populate(root: &Path) {
    for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(top);
        if let Ok(target) = fs::read_link(&host) {
            fs::create_dir_all(root.join(top).parent().unwrap().join(&target))
                .expect("create merged-/usr directory");
            std::os::unix::fs::symlink(&target, root.join(top)).expect("merged-/usr symlink");
        }
    }
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "data",
        "mnt/top",
        ".old-root",
        "etc",
    ] {
        fs::create_dir_all(root.join(d)).expect("create root directories");
    }
    let snapguard = bin();
    copy_into(root, &snapguard, Path::new("/snapguard"));
    let mut executables = vec![snapguard];
    for name in COMMANDS {
        let host = find_in_path(name);
        copy_into(root, &host, &host);
        executables.push(host);
    }
    for exe in &executables {
        for lib in shared_libraries(exe) {
            if !root.join(lib.strip_prefix("/").unwrap()).exists() {
                copy_into(root, &lib, &lib);
            }
        }
    }
    // The image holds ~75 MiB now: write it out so snapguard's freeze-time sync is quick.
    run("sync", &[OsStr::new("-f"), root.as_os_str()]);
}

/// Copies host file `from` (following symlinks) to `root` + `to`, keeping its mode.
fn copy_into(root: &Path, from: &Path, to: &Path) {
    let dst = root.join(to.strip_prefix("/").expect("absolute path"));
    fs::create_dir_all(dst.parent().expect("parent")).expect("create parent directory");
    fs::copy(from, &dst)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), dst.display()));
    let mode = fs::metadata(from).expect("stat").permissions().mode();
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The host path of command `name` (first match in [`PATH`]).
fn find_in_path(name: &str) -> PathBuf {
    PATH.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in {PATH}"))
}

/// The shared libraries and loader `ldd` lists for `exe` (absolute paths only: not the vDSO).
fn shared_libraries(exe: &Path) -> Vec<PathBuf> {
    let r = run_any("ldd", &[exe]);
    if r.stdout.contains("not a dynamic executable") || r.stdout.contains("statically linked") {
        return Vec::new();
    }
    assert_eq!(r.exit, Some(0), "ldd {} failed: {r:?}", exe.display());
    let mut libs = Vec::new();
    for line in r.stdout.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path_part = line.split_once("=>").map_or(line, |(_, p)| p).trim();
        let path = path_part.split_whitespace().next().unwrap_or("");
        assert!(
            !line.contains("not found"),
            "ldd {}: a library is missing: {line}",
            exe.display()
        );
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs
}

/// One line of the host's `/proc/self/mountinfo` whose mount point is `mount_point`, split
/// into (major:minor, fstype, source).
fn host_mountinfo_entry(mount_point: &Path) -> (String, String, String) {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read host mountinfo");
    let mp = mount_point.to_str().expect("utf-8 mount point");
    let line = text
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mp))
        .unwrap_or_else(|| panic!("{mp} is not in the host's mountinfo"));
    let majmin = line
        .split(' ')
        .nth(2)
        .expect("major:minor field")
        .to_owned();
    let (_, after) = line
        .split_once(" - ")
        .unwrap_or_else(|| panic!("no ' - ' in {line}"));
    let mut it = after.split(' ');
    let fstype = it.next().unwrap_or_default().to_owned();
    let source = it.next().unwrap_or_default().to_owned();
    (majmin, fstype, source)
}

/// The `major:minor` mountinfo shows for a test filesystem, checked to be its loop device's
/// superblock (for btrfs, whose number is anonymous, the mount source is checked instead).
fn host_mount_majmin(fs: &TestFs) -> String {
    let (majmin, fstype, source) = host_mountinfo_entry(fs.dir());
    if fstype == "btrfs" {
        assert_eq!(
            Path::new(&source),
            fs.dev.dev(),
            "btrfs at {} is not on our loop device",
            fs.dir().display()
        );
    } else {
        assert_eq!(
            majmin,
            fs.dev.dev_t(),
            "{} is not the superblock of our loop device {}",
            fs.dir().display(),
            fs.dev.dev().display()
        );
    }
    majmin
}

fn host_mount_fstype(fs: &TestFs) -> String {
    host_mountinfo_entry(fs.dir()).1
}

/// The host's `/` as mountinfo shows it.
fn host_root_majmin() -> String {
    host_mountinfo_entry(Path::new("/")).0
}

/// The id of the test process's mount namespace (`mnt:[N]`).
fn host_mnt_ns() -> PathBuf {
    fs::read_link("/proc/self/ns/mnt").expect("readlink /proc/self/ns/mnt")
}
