//! Helpers shared by the freeze test binaries (`tests/freeze_*.rs`): test filesystems on our own
//! loop devices that are always thawed before they are unmounted, the "accepts a write within a
//! second" check, background snapguard runs, JSON Schema validation, and (`private_root`) a
//! private mount namespace whose `/` is a test filesystem, for runs of the default set.
#![allow(
    dead_code,
    reason = "each freeze test binary uses a different subset of these helpers"
)]

pub mod private_root;

#[allow(
    unused_imports,
    reason = "moved to common; kept here for the freeze tests that import it from this module"
)]
pub use crate::common::assert_schema;
use crate::common::{Freeze, LoopDevice, Mount, TestDir, note, run, run_any};
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;

/// `fsfreeze -u DIR` on drop (errors ignored: usually it is not frozen). Only ever built for
/// mount points of filesystems this test created.
pub struct ThawOnDrop(PathBuf);

impl Drop for ThawOnDrop {
    fn drop(&mut self) {
        let _ = run_any("fsfreeze", &[OsStr::new("-u"), self.0.as_os_str()]);
    }
}

/// A filesystem made by this test on its own loop device and mounted under its own temp dir.
/// Fields drop in order: thaw first, then unmount, then detach.
pub struct TestFs {
    _thaw: ThawOnDrop,
    mount: Mount,
    pub dev: LoopDevice,
    pub image: PathBuf,
}

impl TestFs {
    /// `mkfs.KIND` on a sparse `size`-byte image `NAME.img` in `dir`, mounted at `dir/NAME`.
    pub fn new(dir: &TestDir, name: &str, kind: &str, size: u64) -> Self {
        Self::in_dir(&dir.path(), dir, name, kind, size, None)
    }

    /// Same, with the image in `image_dir` (e.g. inside another test filesystem) and mount
    /// options.
    pub fn in_dir(
        image_dir: &Path,
        dir: &TestDir,
        name: &str,
        kind: &str,
        size: u64,
        opts: Option<&str>,
    ) -> Self {
        let image = image_dir.join(format!("{name}.img"));
        fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("create image");
        let mkfs_args: Vec<&OsStr> = match kind {
            "ext4" => vec![OsStr::new("-q"), OsStr::new("-F")],
            "xfs" => vec![OsStr::new("-q"), OsStr::new("-f")],
            "btrfs" => vec![OsStr::new("-q"), OsStr::new("-f")],
            other => panic!("no mkfs recipe for {other}"),
        };
        let mut args = mkfs_args;
        args.push(image.as_os_str());
        run(&format!("mkfs.{kind}"), &args);
        let dev = LoopDevice::attach(&image);
        let mp = dir.mkdir(name);
        let mount = Mount::new(dev.dev(), &mp, opts);
        TestFs {
            _thaw: ThawOnDrop(mp),
            mount,
            dev,
            image,
        }
    }

    pub fn dir(&self) -> &Path {
        self.mount.dir()
    }

    /// `fsfreeze -f` by "someone else" (thawed by the guard, or on drop).
    pub fn fsfreeze(&self) -> Freeze {
        Freeze::new(&self.mount)
    }

    pub fn path(&self) -> PathBuf {
        self.mount.dir().to_path_buf()
    }
}

/// An ext4 on partition 1 of a GPT disk image made by this test, attached with
/// `losetup --partscan` and mounted from `/dev/loopNp1`. Fields drop in order: thaw, unmount,
/// detach.
pub struct PartitionedTestFs {
    _thaw: ThawOnDrop,
    mount: Mount,
    pub dev: LoopDevice,
    pub partition: PathBuf,
    pub image: PathBuf,
}

impl PartitionedTestFs {
    /// A sparse `size`-byte `NAME.img` in `image_dir` with one Linux partition (sfdisk), mounted
    /// at `dir/NAME`.
    pub fn in_dir(image_dir: &Path, dir: &TestDir, name: &str, size: u64) -> Self {
        let image = image_dir.join(format!("{name}.img"));
        fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("create disk image");
        let mut sfdisk = Command::new("sfdisk")
            .arg("-q")
            .arg(&image)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfdisk (apt-get install -y fdisk)");
        std::io::Write::write_all(
            &mut sfdisk.stdin.take().expect("sfdisk stdin"),
            b"label: gpt\nstart=2048, type=linux\n",
        )
        .expect("feed sfdisk");
        let out = sfdisk.wait_with_output().expect("sfdisk");
        assert!(
            out.status.success(),
            "sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = LoopDevice::attach_partitioned(&image);
        let partition = dev.partition(1);
        run(
            "mkfs.ext4",
            &[OsStr::new("-q"), OsStr::new("-F"), partition.as_os_str()],
        );
        let mp = dir.mkdir(name);
        let mount = Mount::new(&partition, &mp, None);
        PartitionedTestFs {
            _thaw: ThawOnDrop(mp),
            mount,
            dev,
            partition,
            image,
        }
    }

    pub fn dir(&self) -> &Path {
        self.mount.dir()
    }
}

/// A tmpfs we mounted; unmounted on drop (plain umount, never lazy).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn new(dir: &TestDir, name: &str) -> Self {
        Self::over(&dir.mkdir(name))
    }

    /// A tmpfs mounted over `mp` (a directory of ours, possibly a mount point: it is covered).
    pub fn over(mp: &Path) -> Self {
        let mp = mp.to_path_buf();
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new("size=1m"),
                OsStr::new("tmpfs"),
                mp.as_os_str(),
            ],
        );
        Tmpfs(mp)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run_any("umount", &[self.0.as_os_str()]);
    }
}

/// Panics unless a write into `dir` (in a child process, so a frozen filesystem cannot block
/// the test) completes within one second. A failure thaws `dir` first (ours) so the suite does
/// not hang.
pub fn assert_writable(dir: &Path, context: &str) {
    let file = dir.join(format!(".writable-{}", std::process::id()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("echo x > \"$1\" && rm -f \"$1\"")
        .arg("sh")
        .arg(&file)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        if let Some(st) = child.try_wait().expect("try_wait") {
            assert!(
                st.success(),
                "{context}: write into {} failed",
                dir.display()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = run_any("fsfreeze", &[OsStr::new("-u"), dir.as_os_str()]);
    let _ = child.wait();
    panic!(
        "{context}: {} did not accept a write within a second (left frozen)",
        dir.display()
    );
}

/// True if a write into `dir` is still blocked after `wait` (the filesystem is frozen). The
/// writer is left to finish after the thaw; returns it so the caller can reap it.
pub fn write_blocks(dir: &Path, wait: Duration) -> (bool, Child) {
    let file = dir.join(format!(".probe-{}", std::process::id()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("echo x > \"$1\" && rm -f \"$1\"")
        .arg("sh")
        .arg(&file)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn writer");
    std::thread::sleep(wait);
    let blocked = child.try_wait().expect("try_wait").is_none();
    (blocked, child)
}

/// Time until a write into `dir` succeeds (bounded by `limit`; beyond it, thaws `dir` (ours)
/// and panics).
pub fn time_to_writable(dir: &Path, limit: Duration) -> Duration {
    let start = Instant::now();
    let (_, mut w) = write_blocks(dir, Duration::ZERO);
    loop {
        if w.try_wait().expect("try_wait").is_some() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            let _ = run_any("fsfreeze", &[OsStr::new("-u"), dir.as_os_str()]);
            let _ = w.wait();
            panic!("{} still frozen after {limit:?}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The snapguard binary.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("snapguard")
}

/// A snapguard started in the background (stdout/stderr piped to files in `dir`).
pub struct Background {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Background {
    /// Start `snapguard ARGS`; with `own_group`, in a new process group (for `kill -- -PGID`).
    pub fn start(dir: &Path, tag: &str, args: &[&OsStr], own_group: bool) -> Self {
        Self::start_program(dir, tag, bin().as_os_str(), args, own_group)
    }

    /// Start `PROGRAM ARGS` the same way (e.g. `unshare ... snapguard ...`, which keeps the pid).
    pub fn start_program(
        dir: &Path,
        tag: &str,
        program: &OsStr,
        args: &[&OsStr],
        own_group: bool,
    ) -> Self {
        use std::os::unix::process::CommandExt;
        let stdout = dir.join(format!("{tag}.out"));
        let stderr = dir.join(format!("{tag}.err"));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .env_remove("SNAPGUARD_LOG");
        if own_group {
            cmd.process_group(0);
        }
        Background {
            child: cmd.spawn().expect("spawn snapguard"),
            stdout,
            stderr,
        }
    }

    /// Wait (bounded) for the exit code; None if killed by a signal.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.code();
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "snapguard did not exit within {limit:?}\n--- stderr\n{}",
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Wait until `path` exists and holds a number (a pid written by a CMD); bounded.
pub fn wait_for_pid_file(path: &Path, limit: Duration) -> i32 {
    let end = Instant::now() + limit;
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < end,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILL a process this test started (directly or through the snapguard it started).
pub fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

/// SIGKILL the guardian and the controller as one event. Each thaws when it sees the other
/// die, so two plain kills in a row race: under load the controller can notice the dead
/// guardian and thaw before its own SIGKILL arrives. Both are stopped first (a stopped process
/// is not gone, so neither reacts), then both are killed.
pub fn sigkill_both(guardian: i32, controller: i32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for signal in [Signal::SIGSTOP, Signal::SIGKILL] {
        for pid in [guardian, controller] {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

/// The mount row named `mp` in a freeze-test / freeze document.
pub fn row<'a>(doc: &'a Value, mp: &Path) -> &'a Value {
    doc["mounts"]
        .as_array()
        .expect("mounts array")
        .iter()
        .find(|m| m["mountpoint"].as_str() == Some(mp.to_str().expect("utf-8 path")))
        .unwrap_or_else(|| panic!("no row for {} in {doc:#}", mp.display()))
}

/// A config file in `dir` with `text`.
pub fn config(dir: &TestDir, text: &str) -> PathBuf {
    let p = dir.join("snapguard.toml");
    fs::write(&p, text).expect("write config");
    p
}

/// Print how long a test took (for the report).
pub fn timed(name: &str, start: Instant) {
    note(&format!("{name}: {:.1} s", start.elapsed().as_secs_f64()));
}

/// A directory that passes snapguard's trusted walk (every directory from `/` owned by root
/// and not writable by group or others), for hook directories: unlike `/tmp` (1777), the
/// test target dir (`target/tmp`) is root's and 0755 when the tests run as root. Uniquely
/// named, mode 0755, removed on drop.
pub struct TrustedDir {
    dir: tempfile::TempDir,
}

impl TrustedDir {
    pub fn new(prefix: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(base).expect("create target/tmp");
        // Ours (cargo made it): make sure a permissive umask did not leave it group-writable.
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).expect("chmod target/tmp");
        let dir = tempfile::Builder::new()
            .prefix(&format!("snapguard-{prefix}-"))
            .tempdir_in(base)
            .expect("create trusted temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        if let Err(e) = snapguard::sys::trusted::TrustedDir::open(dir.path()) {
            panic!(
                "the test target dir is not a trusted place for hooks ({e}); run the tests \
                 from a checkout whose parent directories are root's and not group/world-writable"
            );
        }
        TrustedDir { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A sub-directory with `mode`.
    pub fn mkdir(&self, name: impl AsRef<Path>, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.join(name);
        fs::create_dir_all(&p).expect("create dir");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod dir");
        p
    }
}

/// Write a `#!/bin/sh` script with `body` at `path` with `mode`, through a temporary name and a
/// rename (so no fd of it is ever open for writing when it is executed: no ETXTBSY).
pub fn script(path: &Path, body: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().expect("file name").to_string_lossy()
    ));
    fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod script");
    fs::rename(&tmp, path).expect("rename script");
    path.to_path_buf()
}

/// The record path of the freeze run whose controller is `ctl`.
pub fn record_path(ctl: u32) -> PathBuf {
    PathBuf::from(format!("/run/snapguard/freeze-{ctl}.json"))
}

/// The record of the run whose controller is `ctl`, if it exists (and parses).
pub fn record(ctl: u32) -> Option<Value> {
    let text = fs::read_to_string(record_path(ctl)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].trim_start().chars().next()),
            Some('Z' | 'X') | None
        ),
        Err(_) => false,
    }
}

/// Wait until the record of `ctl` says mount `index` is in `state`; returns the record. Fails
/// at once when the controller has ended without its record saying so.
pub fn wait_for_state(ctl: u32, index: usize, state: &str, limit: Duration) -> Value {
    wait_for_state_or(ctl, index, state, limit, &String::new)
}

fn wait_for_state_or(
    ctl: u32,
    index: usize,
    state: &str,
    limit: Duration,
    what_it_printed: &dyn Fn() -> String,
) -> Value {
    let end = Instant::now() + limit;
    loop {
        if let Some(r) = record(ctl) {
            if r["mounts"][index]["state"] == state {
                return r;
            }
        }
        let ended = !alive(ctl as i32);
        assert!(
            Instant::now() < end && !ended,
            "the record of {ctl} never said mount {index} is {state} ({}): {:?}\n{}",
            if ended {
                "the controller has ended"
            } else {
                "the controller still runs"
            },
            record(ctl),
            what_it_printed()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Background {
    /// [`wait_for_state`] for this run, showing what it printed when it fails.
    pub fn wait_for_state(&self, index: usize, state: &str, limit: Duration) -> Value {
        wait_for_state_or(self.child.id(), index, state, limit, &|| {
            format!(
                "--- stdout\n{}\n--- stderr\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
}
