//! Shared helpers for the integration tests: running snapguard, privileged guards (loop
//! devices, mounts, freezes), the reference tools (`dumpe2fs -h`, `e2fsck -n`) and fixture
//! builders.
#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses a different subset of it"
)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod preflight_root;

/// How long a single snapguard run on a handful of targets may take before it counts as a hang.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// An `assert_cmd::Command` for the snapguard binary, with logging env vars removed so that
/// stderr only carries what snapguard itself decides to print.
pub fn snapguard() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("snapguard").expect("snapguard binary is built");
    cmd.env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .timeout(SCAN_TIMEOUT);
    cmd
}

/// Everything one snapguard run produced.
#[derive(Debug)]
pub struct Outcome {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The stdout parsed as the single JSON document the contract promises.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}); exit {}\n--- stdout\n{}\n--- stderr\n{}",
                self.exit, self.stdout, self.stderr
            )
        })
    }
}

/// Runs snapguard with `args` (a timeout proves it did not hang) and returns what it did.
pub fn run_snapguard<I, S>(args: I, timeout: Duration) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let start = Instant::now();
    let out = snapguard()
        .args(&args)
        .timeout(timeout)
        .output()
        .expect("spawn snapguard");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let Some(exit) = out.status.code() else {
        panic!(
            "snapguard {args:?} did not exit normally ({:?}) after {elapsed:?} (timeout {timeout:?}: a hang?)\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            out.status
        )
    };
    assert!(
        !stdout.contains("panicked at") && !stderr.contains("panicked at"),
        "snapguard {args:?} panicked\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    Outcome {
        exit,
        stdout,
        stderr,
        elapsed,
    }
}

/// `snapguard scan --json ARGS...`: the parsed document and the exit code.
pub fn scan_json<I, S>(args: I) -> (Value, i32)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = scan_json_full(args);
    (out.json(), out.exit)
}

/// `snapguard scan --json ARGS...` with stdout/stderr kept.
pub fn scan_json_full<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<std::ffi::OsString> = vec!["scan".into(), "--json".into()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    run_snapguard(all, SCAN_TIMEOUT)
}

/// The `targets` array of a scan document.
pub fn targets(doc: &Value) -> &Vec<Value> {
    doc["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"targets\" array in {doc:#}"))
}

/// The only target of a single-target scan.
pub fn only_target(doc: &Value) -> &Value {
    let t = targets(doc);
    assert_eq!(t.len(), 1, "expected exactly one target in {doc:#}");
    &t[0]
}

/// The target whose `target` string is exactly `name`.
pub fn target_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    targets(doc)
        .iter()
        .find(|t| t["target"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no target named {name:?} in {doc:#}"))
}

/// The finding ids of a target.
pub fn finding_ids(target: &Value) -> Vec<String> {
    target["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("target has no \"findings\" array: {target:#}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap_or("<no id>").to_owned())
        .collect()
}

/// The finding with `id`, if any.
pub fn finding<'a>(target: &'a Value, id: &str) -> Option<&'a Value> {
    target["findings"]
        .as_array()?
        .iter()
        .find(|f| f["id"].as_str() == Some(id))
}

/// The finding with `id`; panics (showing the target) when it is absent.
pub fn expect_finding<'a>(target: &'a Value, id: &str) -> &'a Value {
    finding(target, id).unwrap_or_else(|| {
        panic!(
            "expected finding {id:?}, got {:?} in {target:#}",
            finding_ids(target)
        )
    })
}

/// Prints a note for the person running the tests (skip reasons, timings).
#[allow(
    clippy::print_stderr,
    reason = "tests report skips and timings on stderr"
)]
pub fn note(msg: &str) {
    eprintln!("{msg}");
}

/// True when running as root. Otherwise: panics when `SNAPGUARD_REQUIRE_PRIVILEGED=1`,
/// else prints why `test_name` is skipped and returns false.
pub fn require_root(test_name: &str) -> bool {
    // /proc/self is owned by the effective uid of the process.
    use std::os::unix::fs::MetadataExt;
    if fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return true;
    }
    skip(test_name, "needs root (loop devices, mount, fsfreeze)");
    false
}

/// Whether `SNAPGUARD_REQUIRE_PRIVILEGED=1` (as `.ci/run` sets it): then nothing may skip.
pub fn skipping_forbidden() -> bool {
    std::env::var("SNAPGUARD_REQUIRE_PRIVILEGED").as_deref() == Ok("1")
}

/// Where skipped tests are listed, one `test: why` line each: `scripts/test.sh` empties it
/// before the run and prints the count and the lines after the runner's summary (nextest
/// hides a passing test's output, so a note alone would go unseen).
pub fn skip_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.log")
}

/// `test` cannot run here because of `why` (a missing tool, corpus, or privilege): panics
/// under `SNAPGUARD_REQUIRE_PRIVILEGED=1`; otherwise prints `SKIP test: why` and appends it
/// to [`skip_log`]. The caller then returns.
pub fn skip(test: &str, why: &str) {
    let msg = format!("{test}: {why}");
    if skipping_forbidden() {
        panic!("{msg}, and SNAPGUARD_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    note(&format!("SKIP {msg}"));
    use std::io::Write as _;
    let log = skip_log();
    let _ = fs::create_dir_all(log.parent().expect("skip log has a parent"));
    // One short write with O_APPEND: lines from parallel test processes do not interleave.
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&log) {
        let _ = f.write_all(format!("{msg}\n").as_bytes());
    }
}

/// `test` is for a machine unlike this one (one without SELinux, a systemd that can load
/// units): not a missing tool, corpus or privilege, so it never fails, even under
/// `SNAPGUARD_REQUIRE_PRIVILEGED=1`; but it is listed in [`skip_log`] like a skip, so the
/// summary shows it. The caller then returns.
pub fn not_here(test: &str, why: &str) {
    let msg = format!("{test}: {why} (not applicable here)");
    note(&format!("SKIP {msg}"));
    use std::io::Write as _;
    let log = skip_log();
    let _ = fs::create_dir_all(log.parent().expect("skip log has a parent"));
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&log) {
        let _ = f.write_all(format!("{msg}\n").as_bytes());
    }
}

/// A private temporary directory, removed on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("snapguard-{prefix}-"))
            .tempdir()
            .expect("create temp dir");
        Self { dir }
    }

    /// The canonical path of the directory (the kernel reports loop backing files canonically).
    pub fn path(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).expect("canonicalize temp dir")
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// Creates (and returns) a sub-directory.
    pub fn mkdir(&self, name: impl AsRef<Path>) -> PathBuf {
        let p = self.join(name);
        fs::create_dir_all(&p).expect("create dir");
        p
    }
}

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Ran {
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

fn describe<S: AsRef<OsStr>>(cmd: &str, args: &[S]) -> String {
    let mut s = cmd.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(&format!("{:?}", a.as_ref()));
    }
    s
}

/// Runs `cmd args` and returns what it printed, whatever its exit status.
pub fn run_any<S: AsRef<OsStr>>(cmd: &str, args: &[S]) -> Ran {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", describe(cmd, args)));
    Ran {
        exit: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd args`; panics with its stdout/stderr unless it exits 0. Returns stdout.
pub fn run<S: AsRef<OsStr>>(cmd: &str, args: &[S]) -> String {
    let r = run_any(cmd, args);
    assert!(
        r.exit == Some(0),
        "{} failed with {:?}\n--- stdout\n{}\n--- stderr\n{}",
        describe(cmd, args),
        r.exit,
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// A finished (or killed) watched process.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Lines from stdout and stderr, in arrival order.
    pub lines: Vec<String>,
    pub exit: Option<i32>,
    pub timed_out: bool,
    /// Killed by us because `stop` matched a line.
    pub stopped: bool,
}

fn pump(r: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(r).split(b'\n') {
            let Ok(line) = line else { break };
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
}

fn kill_and_reap(child: &mut Child) -> Option<i32> {
    let _ = child.kill();
    child.wait().ok().and_then(|s| s.code())
}

/// Runs `cmd args` reading its output line by line as it comes. Kills it (our own child only)
/// when `deadline` passes, or as soon as `stop` returns true for a line.
pub fn run_watched<S: AsRef<OsStr>>(
    cmd: &str,
    args: &[S],
    deadline: Duration,
    stop: impl Fn(&str) -> bool,
) -> Watched {
    let mut child = std::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", describe(cmd, args)));
    let (tx, rx) = mpsc::channel();
    pump(child.stdout.take().expect("stdout"), tx.clone());
    pump(child.stderr.take().expect("stderr"), tx);
    let end = Instant::now() + deadline;
    let mut w = Watched::default();
    loop {
        let now = Instant::now();
        if now >= end {
            w.timed_out = true;
            w.exit = kill_and_reap(&mut child);
            break;
        }
        match rx.recv_timeout((end - now).min(Duration::from_millis(50))) {
            Ok(line) => {
                let hit = stop(&line);
                w.lines.push(line);
                if hit {
                    w.stopped = true;
                    w.exit = kill_and_reap(&mut child);
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: the process is exiting; wait for it (bounded).
                loop {
                    if let Some(st) = child.try_wait().expect("try_wait") {
                        w.exit = st.code();
                        break;
                    }
                    if Instant::now() >= end {
                        w.timed_out = true;
                        w.exit = kill_and_reap(&mut child);
                        break;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                break;
            }
        }
    }
    // Keep whatever was already buffered.
    while let Ok(line) = rx.try_recv() {
        w.lines.push(line);
    }
    w
}

/// Validates `doc` against `docs/json-schema/NAME-v1.schema.json`.
pub fn assert_schema(name: &str, doc: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/json-schema")
        .join(format!("{name}-v1.schema.json"));
    let schema: Value = serde_json::from_str(&fs::read_to_string(&path).expect("read schema"))
        .expect("schema json");
    let v = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()));
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("  at '{}': {e}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "document does not match {}:\n{}\n{doc:#}",
        path.display(),
        errors.join("\n")
    );
}

/// A process we started; killed and reaped on drop (only this pid).
pub struct Sleeper {
    child: Child,
}

impl Sleeper {
    /// `sh -c SCRIPT`, where the script ends in `exec …`, so the pid is the holder itself.
    pub fn sh(script: &str) -> Self {
        Self::spawn("sh", &["-c", script])
    }

    pub fn spawn(cmd: &str, args: &[&str]) -> Self {
        let child = std::process::Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd}: {e}"));
        Sleeper { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it ended, once it has (reaped here, so the pid is gone); None while it runs.
    pub fn ended(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// [`Sleeper::ended`], waiting up to `within`.
    pub fn ended_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(st) = self.ended() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An active swap file made by a test on its own filesystem; `swapoff` on drop.
pub struct Swap {
    file: PathBuf,
}

impl Swap {
    /// Writes a `mib` MiB swap file at `file` (under our temp dir) and `swapon`s it.
    pub fn on(file: &Path, mib: u32) -> Self {
        assert_ours(file.parent().expect("swap file has a parent"));
        run(
            "dd",
            &[
                "if=/dev/zero",
                &format!("of={}", file.display()),
                "bs=1M",
                &format!("count={mib}"),
                "status=none",
            ],
        );
        run("chmod", &[OsStr::new("600"), file.as_os_str()]);
        run("mkswap", &[OsStr::new("-q"), file.as_os_str()]);
        run("swapon", &[file.as_os_str()]);
        Swap {
            file: file.to_path_buf(),
        }
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let r = run_any("swapoff", &[self.file.as_os_str()]);
        if r.exit != Some(0) {
            note(&format!(
                "warning: swapoff {} failed: {}",
                self.file.display(),
                r.stderr
            ));
        }
    }
}

/// Polls `ready` every 20 ms; panics naming `what` when it is still false after 10 s.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < end, "{what}: not ready within 10 s");
        thread::sleep(Duration::from_millis(20));
    }
}

fn sys_loop_backing(name: &str) -> Option<PathBuf> {
    let raw = fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(raw.trim_end_matches('\n')))
}

/// A loop device attached to one of our image files. Drop detaches it, but only when its
/// backing file is still our file.
pub struct LoopDevice {
    dev: PathBuf,
    name: String,
    backing: PathBuf,
}

impl LoopDevice {
    /// `losetup --find --show FILE`, retried on EBUSY and allocation races.
    pub fn attach(file: &Path) -> Self {
        Self::attach_with(file, &[])
    }

    /// `losetup --find --show --partscan FILE`: the kernel scans the partition table and
    /// creates `/dev/loopNpM` (see [`LoopDevice::partition`]).
    pub fn attach_partitioned(file: &Path) -> Self {
        Self::attach_with(file, &["--partscan"])
    }

    fn attach_with(file: &Path, extra: &[&str]) -> Self {
        let backing = fs::canonicalize(file).expect("canonicalize image path");
        let mut last = None;
        for attempt in 0..12u64 {
            let mut args: Vec<&OsStr> = vec![OsStr::new("--find"), OsStr::new("--show")];
            args.extend(extra.iter().map(OsStr::new));
            args.push(backing.as_os_str());
            let r = run_any("losetup", &args);
            if r.exit == Some(0) {
                let dev = PathBuf::from(r.stdout.trim());
                let name = dev
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("loop device name")
                    .to_owned();
                let me = Self {
                    dev,
                    name,
                    backing: backing.clone(),
                };
                assert_eq!(
                    sys_loop_backing(&me.name).as_deref(),
                    Some(backing.as_path()),
                    "losetup gave {} but its backing file is not ours",
                    me.dev.display()
                );
                return me;
            }
            last = Some(r);
            thread::sleep(Duration::from_millis(50 + 50 * attempt));
        }
        panic!(
            "losetup --find --show {} kept failing: {last:?}",
            backing.display()
        );
    }

    /// `/dev/loopN`.
    pub fn dev(&self) -> &Path {
        &self.dev
    }

    /// `loopN` (the kernel name, as in `/sys/fs/ext4/loopN`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/dev/loopNpM` of a device attached with [`LoopDevice::attach_partitioned`], once the
    /// node exists (bounded wait, then panics). A kernel built without partition-table parsers
    /// (no `CONFIG_MSDOS_PARTITION`/`CONFIG_EFI_PARTITION`, like this CI's) finds none on its
    /// own: then `partx --add` reads the table in userspace and adds the partition with the
    /// BLKPG ioctl, which gives the same sysfs layout and `/dev` node.
    pub fn partition(&self, number: u32) -> PathBuf {
        let node = PathBuf::from(format!("{}p{number}", self.dev.display()));
        if !is_block_device(&node) {
            run(
                "partx",
                &[
                    OsStr::new("--add"),
                    OsStr::new("--nr"),
                    OsStr::new(&number.to_string()),
                    self.dev.as_os_str(),
                ],
            );
        }
        let end = Instant::now() + Duration::from_secs(5);
        while !is_block_device(&node) {
            assert!(
                Instant::now() < end,
                "{} did not appear within 5 s",
                node.display()
            );
            thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// `major:minor` of the device.
    pub fn dev_t(&self) -> String {
        fs::read_to_string(format!("/sys/block/{}/dev", self.name))
            .expect("read loop dev number")
            .trim()
            .to_owned()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        for attempt in 0..10u64 {
            if sys_loop_backing(&self.name).as_deref() != Some(self.backing.as_path()) {
                return; // not ours (any more): never touch it
            }
            let r = run_any("losetup", &[OsStr::new("-d"), self.dev.as_os_str()]);
            if r.exit == Some(0) {
                return;
            }
            thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        note(&format!(
            "warning: could not detach {} (backing {})",
            self.dev.display(),
            self.backing.display()
        ));
    }
}

/// A mount we made; Drop unmounts it (plain umount, retried while busy; never lazy or forced).
pub struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    /// `mount [-o OPTS] SOURCE DIR`.
    pub fn new(source: &Path, dir: &Path, opts: Option<&str>) -> Self {
        assert_ours(dir);
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(o) = opts {
            args.push(OsStr::new("-o"));
            args.push(OsStr::new(o));
        }
        args.push(source.as_os_str());
        args.push(dir.as_os_str());
        run("mount", &args);
        Self {
            dir: dir.to_owned(),
            mounted: true,
        }
    }

    /// `mount --bind SOURCE DIR`.
    pub fn bind(source: &Path, dir: &Path) -> Self {
        assert_ours(dir);
        run(
            "mount",
            &[OsStr::new("--bind"), source.as_os_str(), dir.as_os_str()],
        );
        Self {
            dir: dir.to_owned(),
            mounted: true,
        }
    }

    /// `mount -t tmpfs tmpfs DIR`.
    pub fn tmpfs(dir: &Path) -> Self {
        assert_ours(dir);
        run(
            "mount",
            &[
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("tmpfs"),
                dir.as_os_str(),
            ],
        );
        Self {
            dir: dir.to_owned(),
            mounted: true,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn try_umount(&self) -> Ran {
        run_any("umount", &[self.dir.as_os_str()])
    }

    /// Unmounts now and panics if that fails (for fixtures where the umount is part of the recipe).
    pub fn unmount(mut self) {
        let mut last = None;
        for attempt in 0..10u64 {
            let r = self.try_umount();
            if r.exit == Some(0) {
                self.mounted = false;
                return;
            }
            last = Some(r);
            thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        panic!("umount {} failed: {last:?}", self.dir.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        for attempt in 0..10u64 {
            if self.try_umount().exit == Some(0) {
                return;
            }
            thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        note(&format!(
            "warning: could not unmount {}",
            self.dir.display()
        ));
    }
}

/// Refuses to touch paths outside the system temp dir (and `/` itself).
fn assert_ours(dir: &Path) {
    let dir = fs::canonicalize(dir).expect("canonicalize mount point");
    let tmp = fs::canonicalize(std::env::temp_dir()).expect("canonicalize temp dir");
    assert!(
        dir != Path::new("/") && dir.starts_with(&tmp) && dir != tmp,
        "refusing to mount/freeze {} (not under our temp dir {})",
        dir.display(),
        tmp.display()
    );
}

/// `fsfreeze -f MNT`; thawed by `thaw()` or on drop.
pub struct Freeze {
    dir: PathBuf,
    frozen: bool,
}

impl Freeze {
    pub fn new(mount: &Mount) -> Self {
        assert_ours(mount.dir());
        run("fsfreeze", &[OsStr::new("-f"), mount.dir().as_os_str()]);
        Self {
            dir: mount.dir().to_owned(),
            frozen: true,
        }
    }

    pub fn thaw(mut self) {
        run("fsfreeze", &[OsStr::new("-u"), self.dir.as_os_str()]);
        self.frozen = false;
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        if self.frozen {
            let _ = run_any("fsfreeze", &[OsStr::new("-u"), self.dir.as_os_str()]);
        }
    }
}

/// True for a block device path.
pub fn is_block_device(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

/// The reference tools, run on the same input as snapguard.
pub mod reference {
    use super::*;
    use std::collections::BTreeMap;

    /// What `dumpe2fs -h` printed.
    #[derive(Debug, Clone)]
    pub struct DumpeFields {
        /// After `Filesystem state:`.
        pub state: String,
        /// `needs_recovery` is among the features.
        pub needs_recovery: bool,
        /// `Filesystem features:`, as printed.
        pub features: Vec<String>,
        /// dumpe2fs complained that the superblock checksum does not match (it dumps anyway).
        pub checksum_mismatch: bool,
        pub exit: Option<i32>,
        /// Every `Key: value` line.
        pub fields: BTreeMap<String, String>,
    }

    impl DumpeFields {
        pub fn get(&self, key: &str) -> Option<&str> {
            self.fields.get(key).map(String::as_str)
        }

        pub fn get_i64(&self, key: &str) -> Option<i64> {
            let v = self.get(key)?;
            let v = v.split_whitespace().next()?;
            if let Some(h) = v.strip_prefix("0x") {
                i64::from_str_radix(h, 16).ok()
            } else {
                v.parse().ok()
            }
        }

        pub fn label(&self) -> Option<&str> {
            self.get("Filesystem volume name")
                .filter(|l| *l != "<none>")
        }
        pub fn block_size(&self) -> Option<i64> {
            self.get_i64("Block size")
        }
        /// `FS Error count:` (absent means 0).
        pub fn error_count(&self) -> i64 {
            self.get_i64("FS Error count").unwrap_or(0)
        }
        /// `First orphan inode:` (absent when there is none).
        pub fn first_orphan_inode(&self) -> Option<i64> {
            self.get_i64("First orphan inode")
        }
        /// `Journal errno:` (printed only when non-zero).
        pub fn journal_errno(&self) -> Option<i64> {
            self.get_i64("Journal errno")
        }
        pub fn journal_start(&self) -> Option<i64> {
            self.get_i64("Journal start")
        }
    }

    /// Parses dumpe2fs output; None when there is no `Filesystem state:` line.
    pub fn parse_dumpe2fs(stdout: &str, stderr: &str, exit: Option<i32>) -> Option<DumpeFields> {
        let mut fields = BTreeMap::new();
        for line in stdout.lines() {
            if let Some((k, v)) = line.split_once(':') {
                fields
                    .entry(k.trim().to_owned())
                    .or_insert_with(|| v.trim().to_owned());
            }
        }
        let state = fields.get("Filesystem state")?.clone();
        let features: Vec<String> = fields
            .get("Filesystem features")
            .map(|f| f.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Some(DumpeFields {
            state,
            needs_recovery: features.iter().any(|f| f == "needs_recovery"),
            features,
            checksum_mismatch: stderr.contains("Superblock checksum does not match"),
            exit,
            fields,
        })
    }

    /// `dumpe2fs -h PATH`; None when dumpe2fs cannot read it.
    pub fn dumpe2fs_h(path: &Path) -> Option<DumpeFields> {
        dumpe2fs_h_with(path, &[])
    }

    /// `dumpe2fs -h EXTRA... PATH` (e.g. `-o superblock=32768 -o blocksize=4096`).
    pub fn dumpe2fs_h_with(path: &Path, extra: &[&str]) -> Option<DumpeFields> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("-h")];
        args.extend(extra.iter().map(OsStr::new));
        args.push(path.as_os_str());
        let w = run_watched("dumpe2fs", &args, Duration::from_secs(30), |_| false);
        assert!(!w.timed_out, "dumpe2fs -h {} hung", path.display());
        // run_watched merges the streams; split the checksum complaint out by content.
        let all = w.lines.join("\n");
        parse_dumpe2fs(&all, &all, w.exit)
    }

    /// What `e2fsck -n` said about whether it would check.
    #[derive(Debug, Clone, Default)]
    pub struct EfsckOutcome {
        /// Text between the device name and ", check forced.".
        pub reason: Option<String>,
        /// It printed `<dev>: clean, ...`.
        pub clean: bool,
        /// None when we killed it (deadline or early stop).
        pub exit: Option<i32>,
        pub timed_out: bool,
        pub output: Vec<String>,
    }

    /// How e2fsck's reasons start (e2fsck/unix.c check_if_skip); the device name in front of
    /// them is the path, or the volume label when the filesystem has one.
    const REASON_OPENERS: &[&str] = &[
        " contains a file system with errors",
        " was not cleanly unmounted",
        " primary superblock features different from backup",
        " has been mounted ",
        " has filesystem last checked time in the future",
        " has gone ",
    ];

    /// The reason in an e2fsck "... check forced." line.
    pub fn parse_reason(line: &str, path: &str) -> Option<String> {
        let body = line.trim_end().strip_suffix(", check forced.")?;
        if let Some(rest) = body.strip_prefix(path) {
            return Some(rest.trim_start().to_owned());
        }
        REASON_OPENERS
            .iter()
            .filter_map(|o| body.find(o))
            .min()
            .map(|i| body[i + 1..].to_owned())
            .or_else(|| Some(body.to_owned()))
    }

    fn is_verdict(line: &str) -> bool {
        line.trim_end().ends_with(", check forced.") || line.contains(": clean, ")
    }

    /// `e2fsck -n PATH` with unbuffered stdout, killed after `deadline`, or as soon as it has
    /// said whether it checks when `stop_at_verdict`.
    pub fn e2fsck_n(path: &Path, deadline: Duration, stop_at_verdict: bool) -> EfsckOutcome {
        let args = [
            OsStr::new("-o0"),
            OsStr::new("e2fsck"),
            OsStr::new("-n"),
            path.as_os_str(),
        ];
        let w = run_watched("stdbuf", &args, deadline, |l| {
            stop_at_verdict && is_verdict(l)
        });
        let p = path.to_string_lossy();
        let reason = w.lines.iter().find_map(|l| parse_reason(l, &p));
        let clean = reason.is_none() && w.lines.iter().any(|l| l.contains(": clean, "));
        EfsckOutcome {
            reason,
            clean,
            exit: w.exit,
            timed_out: w.timed_out,
            output: w.lines,
        }
    }

    /// `e2fsck -n PATH` run to completion (15 s deadline).
    pub fn e2fsck_n_reason(path: &Path) -> EfsckOutcome {
        e2fsck_n(path, Duration::from_secs(15), false)
    }
}

/// Fixture builders: images created at test time.
pub mod fixtures {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::FileExt;

    pub const MIB: u64 = 1 << 20;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Ext2,
        Ext3,
        Ext4,
    }

    impl Kind {
        pub fn name(self) -> &'static str {
            match self {
                Kind::Ext2 => "ext2",
                Kind::Ext3 => "ext3",
                Kind::Ext4 => "ext4",
            }
        }
    }

    fn mkfs_args(kind: Kind, block_size: u32, features: &[&str]) -> Vec<String> {
        let mut a = vec![
            "-q".to_owned(),
            "-F".to_owned(),
            "-t".to_owned(),
            kind.name().to_owned(),
            "-b".to_owned(),
            block_size.to_string(),
        ];
        if !features.is_empty() {
            a.push("-O".to_owned());
            a.push(features.join(","));
        }
        a
    }

    /// A sparse file `dir/name` of `size` bytes.
    pub fn sparse(dir: &TestDir, name: &str, size: u64) -> PathBuf {
        let img = dir.join(name);
        fs::File::create(&img)
            .and_then(|f| f.set_len(size))
            .expect("create a sparse image");
        img
    }

    /// A sparse file `dir/name` of `size` bytes made a filesystem by `MKFS ARGS... IMAGE`
    /// (`mkfs.xfs -q -f`, `mkfs.btrfs -q -f`, `mkfs.fat -F 32`).
    pub fn made_by(dir: &TestDir, name: &str, size: u64, mkfs: &str, args: &[&str]) -> PathBuf {
        let img = sparse(dir, name, size);
        let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        all.push(img.as_os_str());
        run(mkfs, &all);
        img
    }

    /// A sparse file `dir/name` of `size` bytes with a fresh filesystem on it.
    pub fn mkfs(
        dir: &TestDir,
        name: &str,
        kind: Kind,
        block_size: u32,
        features: &[&str],
        size: u64,
    ) -> PathBuf {
        let img = sparse(dir, name, size);
        let mut args = mkfs_args(kind, block_size, features);
        args.push(img.to_string_lossy().into_owned());
        run("mke2fs", &args);
        img
    }

    /// The default fixture: 64 MiB ext4 with 4 KiB blocks.
    pub fn ext4(dir: &TestDir, name: &str, features: &[&str]) -> PathBuf {
        mkfs(dir, name, Kind::Ext4, 4096, features, 64 * MIB)
    }

    /// mke2fs into an existing (disk) image at byte `offset`, `size` bytes long.
    pub fn mkfs_at(img: &Path, kind: Kind, block_size: u32, offset: u64, size: u64) {
        let mut args = mkfs_args(kind, block_size, &[]);
        args.push("-E".to_owned());
        args.push(format!("offset={offset}"));
        args.push(img.to_string_lossy().into_owned());
        args.push(format!("{}k", size / 1024));
        run("mke2fs", &args);
    }

    fn check_debugfs(what: &str, r: &Ran) {
        let complaints: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
            .collect();
        assert!(
            r.exit == Some(0) && complaints.is_empty(),
            "debugfs {what} failed ({:?}): {complaints:?}\n{}",
            r.exit,
            r.stdout
        );
    }

    /// `debugfs -w -R REQUEST IMG`.
    pub fn debugfs_w(img: &Path, request: &str) {
        let r = run_any(
            "debugfs",
            &[
                OsStr::new("-w"),
                OsStr::new("-R"),
                OsStr::new(request),
                img.as_os_str(),
            ],
        );
        check_debugfs(request, &r);
    }

    /// `debugfs -w -f CMDFILE IMG` with one request per line.
    pub fn debugfs_w_script(img: &Path, requests: &[&str]) {
        let script = img.with_extension("debugfs");
        fs::write(&script, requests.join("\n") + "\n").expect("write debugfs script");
        let r = run_any(
            "debugfs",
            &[
                OsStr::new("-w"),
                OsStr::new("-f"),
                script.as_os_str(),
                img.as_os_str(),
            ],
        );
        check_debugfs(&requests.join("; "), &r);
    }

    /// `tune2fs ARGS... IMG`.
    pub fn tune2fs(img: &Path, args: &[&str]) {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.push(img.as_os_str());
        run("tune2fs", &a);
    }

    /// `cp --sparse=always SRC DST`.
    pub fn sparse_copy(src: &Path, dst: &Path) {
        run(
            "cp",
            &[
                OsStr::new("--sparse=always"),
                src.as_os_str(),
                dst.as_os_str(),
            ],
        );
    }

    /// Bytes `[offset, offset+len)` of a file.
    pub fn read_at(img: &Path, offset: u64, len: usize) -> Vec<u8> {
        let f = fs::File::open(img).expect("open image");
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).expect("read image");
        buf
    }

    /// Overwrites bytes at `offset`.
    pub fn patch(img: &Path, offset: u64, bytes: &[u8]) {
        let f = OpenOptions::new()
            .write(true)
            .open(img)
            .expect("open image rw");
        f.write_all_at(bytes, offset).expect("patch image");
        f.sync_all().expect("sync image");
    }

    /// Copies `len` bytes at `offset` of `src` into a new sparse file `dst`.
    pub fn extract(src: &Path, offset: u64, len: u64, dst: &Path) {
        let mut from = fs::File::open(src).expect("open source");
        from.seek(SeekFrom::Start(offset)).expect("seek source");
        let mut to = fs::File::create(dst).expect("create extract");
        let mut buf = vec![0u8; 1 << 16];
        let mut left = len;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            from.read_exact(&mut buf[..n]).expect("read source");
            if buf[..n].iter().all(|&b| b == 0) {
                to.seek(SeekFrom::Current(n as i64)).expect("seek extract");
            } else {
                to.write_all(&buf[..n]).expect("write extract");
            }
            left -= n as u64;
        }
        to.set_len(len).expect("size extract");
    }

    /// One partition as sfdisk reports it, in bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Part {
        pub index: u64,
        pub offset: u64,
        pub size: u64,
    }

    /// `sfdisk -J IMG`: the partition table.
    pub fn sfdisk_parts(img: &Path) -> (String, Vec<Part>) {
        let out = run("sfdisk", &[OsStr::new("-J"), img.as_os_str()]);
        let v: Value = serde_json::from_str(&out).expect("sfdisk -J json");
        let t = &v["partitiontable"];
        let sector = t["sectorsize"].as_u64().unwrap_or(512);
        let label = t["label"].as_str().expect("label").to_owned();
        let parts = t["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .enumerate()
            .map(|(i, p)| Part {
                index: i as u64 + 1,
                offset: p["start"].as_u64().expect("start") * sector,
                size: p["size"].as_u64().expect("size") * sector,
            })
            .collect();
        (label, parts)
    }

    /// A sparse disk image `dir/name` of `disk_size` bytes with an `scheme` ("dos" or "gpt")
    /// table of `count` Linux partitions of `part_size` bytes each, and an ext4 on each.
    pub fn partitioned_disk(
        dir: &TestDir,
        name: &str,
        scheme: &str,
        disk_size: u64,
        part_size: u64,
        count: usize,
    ) -> (PathBuf, Vec<Part>) {
        let img = dir.join(name);
        fs::File::create(&img)
            .and_then(|f| f.set_len(disk_size))
            .expect("create disk image");
        let mut script = format!("label: {scheme}\n");
        for i in 0..count {
            let start = if i == 0 { "2048" } else { "" };
            script.push_str(&format!(
                "start={start}, size={}KiB, type=linux\n",
                part_size / 1024
            ));
        }
        let mut child = std::process::Command::new("sfdisk")
            .arg("-q")
            .arg(&img)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfdisk");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("feed sfdisk");
        let out = child.wait_with_output().expect("sfdisk");
        assert!(
            out.status.success(),
            "sfdisk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, parts) = sfdisk_parts(&img);
        assert_eq!(parts.len(), count, "sfdisk made {parts:?}");
        for p in &parts {
            mkfs_at(&img, Kind::Ext4, 4096, p.offset, p.size);
        }
        (img, parts)
    }

    /// `qemu-img convert -f raw -O vpc -o subformat=fixed RAW DST`.
    pub fn vhd_fixed(raw: &Path, dst: &Path) {
        run(
            "qemu-img",
            &[
                OsStr::new("convert"),
                OsStr::new("-f"),
                OsStr::new("raw"),
                OsStr::new("-O"),
                OsStr::new("vpc"),
                OsStr::new("-o"),
                OsStr::new("subformat=fixed"),
                raw.as_os_str(),
                dst.as_os_str(),
            ],
        );
    }

    /// Today plus `days` as `YYYYMMDD` (for `tune2fs -T`), from date(1).
    pub fn date_in_days(days: i64) -> String {
        run("date", &["-d", &format!("{days} days"), "+%Y%m%d"])
            .trim()
            .to_owned()
    }

    /// Writes a little data on a mounted fixture and syncs it.
    pub fn write_files(mnt: &Path) {
        fs::create_dir_all(mnt.join("d")).expect("mkdir on fixture");
        for i in 0..8 {
            fs::write(
                mnt.join("d").join(format!("f{i}")),
                vec![b'x'; 4096 * (i + 1)],
            )
            .expect("write on fixture");
        }
        run("sync", &[mnt.as_os_str()]);
    }

    /// An image on a loop device, mounted. Fields drop in order: the mount, then the loop device.
    pub struct LoopMount {
        pub mount: Mount,
        pub lo: LoopDevice,
    }

    impl LoopMount {
        pub fn dir(&self) -> &Path {
            self.mount.dir()
        }

        /// Unmounts (panicking on failure) and detaches.
        pub fn unmount(self) {
            let LoopMount { mount, lo } = self;
            mount.unmount();
            drop(lo);
        }
    }

    /// The image loop-mounted on `dir/mnt-<tag>`.
    pub fn loop_mount(dir: &TestDir, img: &Path, tag: &str, opts: Option<&str>) -> LoopMount {
        let lo = LoopDevice::attach(img);
        let mnt = dir.mkdir(format!("mnt-{tag}"));
        let mount = Mount::new(lo.dev(), &mnt, opts);
        LoopMount { mount, lo }
    }

    /// Copy of a mounted journaled ext4 after writes: a crash-consistent snapshot.
    pub fn crash_copy(dir: &TestDir) -> PathBuf {
        let img = ext4(dir, "live-crash.img", &[]);
        let copy = dir.join("crash-copy.img");
        let m = loop_mount(dir, &img, "crash", None);
        write_files(m.dir());
        sparse_copy(&img, &copy);
        m.unmount();
        copy
    }

    /// Copy taken while the mounted ext4 was frozen.
    pub fn frozen_copy(dir: &TestDir) -> PathBuf {
        let img = ext4(dir, "live-frozen.img", &[]);
        let copy = dir.join("frozen-copy.img");
        let m = loop_mount(dir, &img, "frozen", None);
        write_files(m.dir());
        let fr = Freeze::new(&m.mount);
        sparse_copy(&img, &copy);
        fr.thaw();
        m.unmount();
        copy
    }

    /// An ext4 shut down with the goingdown ioctl (`xfs_io -x -c shutdown`), then unmounted.
    pub fn shutdown_image(dir: &TestDir) -> PathBuf {
        let img = ext4(dir, "shutdown.img", &[]);
        let m = loop_mount(dir, &img, "shutdown", None);
        write_files(m.dir());
        run(
            "xfs_io",
            &[
                OsStr::new("-x"),
                OsStr::new("-c"),
                OsStr::new("shutdown"),
                m.dir().as_os_str(),
            ],
        );
        m.unmount();
        img
    }

    /// An ext4 mounted errors=remount-ro whose journal was aborted by trigger_fs_error.
    pub fn journal_abort_image(dir: &TestDir) -> PathBuf {
        let img = ext4(dir, "abort.img", &[]);
        let m = loop_mount(dir, &img, "abort", Some("errors=remount-ro"));
        write_files(m.dir());
        fs::write(
            format!("/sys/fs/ext4/{}/trigger_fs_error", m.lo.name()),
            "snapguard test\n",
        )
        .expect("write trigger_fs_error");
        m.unmount();
        img
    }

    /// Copy of a mounted ext4 without a journal.
    pub fn nojournal_mounted_copy(dir: &TestDir) -> PathBuf {
        let img = ext4(dir, "nojournal.img", &["^has_journal"]);
        let copy = dir.join("nojournal-copy.img");
        let m = loop_mount(dir, &img, "nojournal", None);
        write_files(m.dir());
        sparse_copy(&img, &copy);
        m.unmount();
        copy
    }
}

/// A turn at creating mount namespaces, across test processes (nextest runs each test in its
/// own). A new mount namespace copies every mount of the machine, so while one exists a repair
/// test's filesystem is also "mounted in another namespace" and `snapguard repair` rightly
/// refuses it. Tests that create namespaces take a shared turn (they may overlap); repair tests
/// take an exclusive one. The lock is held until the returned value is dropped.
pub fn mount_namespace_turn(exclusive: bool) -> nix::fcntl::Flock<fs::File> {
    use nix::fcntl::{Flock, FlockArg};
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("snapguard-mount-namespace-tests.lock"))
        .expect("open the mount-namespace test lock");
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(file, arg)
        .map_err(|(_, e)| e)
        .expect("take the mount-namespace test lock")
}

/// `snapguard repair` runs and the unclean ext4 they repair (shared by the `repair_*` tests).
pub mod repair {
    use super::*;
    use snapguard::mount::table::MountTable;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{FileExt as _, MetadataExt as _};

    pub const MIB: u64 = 1 << 20;

    /// How long one repair run may take before it counts as a hang.
    pub const RUN_LIMIT: Duration = Duration::from_secs(180);

    /// One repair at a time on a machine (snapguard's lock), and no new mount namespace copying
    /// the test's mounts meanwhile: see [`mount_namespace_turn`].
    pub fn one_at_a_time() -> nix::fcntl::Flock<fs::File> {
        mount_namespace_turn(true)
    }

    /// `snapguard repair --json --trust-fence --backup-dir DIR/backup ARGS...`: exit code, the
    /// document (checked against the schema) and stderr.
    pub fn repair(dir: &TestDir, args: &[&OsStr]) -> (i32, Value, String) {
        repair_env(dir, args, &[])
    }

    /// [`repair`] with extra environment variables.
    pub fn repair_env(
        dir: &TestDir,
        args: &[&OsStr],
        env: &[(&str, &str)],
    ) -> (i32, Value, String) {
        let backup = dir.join("backup");
        let mut all: Vec<&OsStr> = vec![
            OsStr::new("repair"),
            OsStr::new("--json"),
            OsStr::new("--trust-fence"),
            OsStr::new("--backup-dir"),
            backup.as_os_str(),
        ];
        all.extend_from_slice(args);
        let mut cmd = snapguard();
        cmd.args(&all).timeout(RUN_LIMIT);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("spawn snapguard");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("snapguard killed: {:?}\n{stderr}", out.status));
        assert!(!stderr.contains("panicked at"), "panic:\n{stderr}");
        let doc: Value = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"))
        };
        if !doc.is_null() {
            assert_schema("repair", &doc);
        }
        (code, doc, stderr)
    }

    pub fn table() -> MountTable {
        MountTable::from_mountinfo(&fs::read("/proc/self/mountinfo").unwrap()).unwrap()
    }

    /// (per-mount options, super options, root, source) of the mount at `dir`.
    pub fn mount_line(dir: &Path) -> Option<(String, String, PathBuf, String)> {
        table().by_mount_point(dir).map(|m| {
            (
                m.mount_options.clone(),
                m.super_options.clone(),
                m.root.clone(),
                m.source
                    .as_ref()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        })
    }

    /// SHA-256 of every regular file under `dir` (sha256sum), by relative path.
    pub fn hashes(dir: &Path) -> BTreeMap<String, String> {
        let out = run(
            "sh",
            &[
                OsStr::new("-c"),
                OsStr::new(
                    "cd \"$1\" && find . -path ./lost+found -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum",
                ),
                OsStr::new("sh"),
                dir.as_os_str(),
            ],
        );
        out.lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(h, p)| (p.to_string(), h.to_string()))
            .collect()
    }

    /// Files with known content (a few MiB of pseudo-random bytes).
    pub fn write_files(dir: &Path) {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..8 {
            let mut data = vec![0u8; 256 * 1024 + i * 4099];
            for b in data.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            fs::write(dir.join(format!("file{i}")), &data).unwrap();
        }
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        fs::write(dir.join("sub/deeper/note"), b"kept\n").unwrap();
        run("sync", &[OsStr::new("-f"), dir.as_os_str()]);
    }

    /// `snapguard scan --json TARGET`: (status, state) of its only target.
    pub fn scan_status(target: &Path) -> (String, Option<String>) {
        let out = run_snapguard(
            [OsStr::new("scan"), OsStr::new("--json"), target.as_os_str()],
            Duration::from_secs(60),
        );
        let doc = out.json();
        let t = &doc["targets"][0];
        (
            t["status"].as_str().unwrap_or("?").to_string(),
            t["state"].as_str().map(str::to_string),
        )
    }

    /// The steps named `name` of a target.
    pub fn step<'a>(target: &'a Value, name: &str) -> Vec<&'a Value> {
        target["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == name)
            .collect()
    }

    /// `dumpe2fs -h` lines that a repair would change.
    pub fn superblock_state(dev: &Path) -> Vec<String> {
        let out = run_any("dumpe2fs", &[OsStr::new("-h"), dev.as_os_str()]);
        out.stdout
            .lines()
            .filter(|l| {
                [
                    "Filesystem state:",
                    "Last checked:",
                    "Free inodes:",
                    "Free blocks:",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(str::to_string)
            .collect()
    }

    /// An unclean ext4 mounted with `noatime,nodev,nosuid`: files written, unmounted, a
    /// preenable inconsistency (a wrong link count) and state 0 set with debugfs, mounted again.
    pub struct UncleanExt4 {
        pub mount: Option<Mount>,
        pub lo: LoopDevice,
        pub dir_path: PathBuf,
        /// SHA-256 of every file, written before the inconsistency was made.
        pub files: BTreeMap<String, String>,
    }

    impl UncleanExt4 {
        /// Mount it again where it was, with the options it was made with (a test putting
        /// back what a refused or interrupted run left unmounted).
        pub fn mount_again(&self) {
            run(
                "mount",
                &[
                    OsStr::new("-o"),
                    OsStr::new(EXT4_OPTS),
                    self.lo.dev().as_os_str(),
                    self.dir_path.as_os_str(),
                ],
            );
        }

        /// `/run/snapguard/repair-MAJOR-MINOR.json`: the state record of this device.
        pub fn record_path(&self) -> PathBuf {
            let devt = self.lo.dev_t();
            let (major, minor) = devt.split_once(':').expect("M:m");
            PathBuf::from(format!("/run/snapguard/repair-{major}-{minor}.json"))
        }

        /// 4 KiB of the device at byte 1024: the primary superblock and what follows it.
        pub fn superblock_bytes(&self) -> Vec<u8> {
            let f = fs::File::open(self.lo.dev()).expect("open the loop device");
            let mut buf = vec![0u8; 4096];
            f.read_exact_at(&mut buf, 1024)
                .expect("read the superblock");
            buf
        }
    }

    /// Remove the state record of `lo`'s device number: one left by an earlier user of this
    /// loop number (another test, interrupted) is not this test's filesystem, and a run
    /// refuses it.
    pub fn forget_record(lo: &LoopDevice) {
        let devt = lo.dev_t();
        let (major, minor) = devt.split_once(':').expect("M:m");
        let _ = fs::remove_file(format!("/run/snapguard/repair-{major}-{minor}.json"));
    }

    pub const EXT4_OPTS: &str = "noatime,nodev,nosuid,errors=remount-ro,commit=30";

    /// Leave the unmounted ext4 at `target` (image or device) needing a preen: inode `ino`'s
    /// link count made wrong and the state "not clean", as after a crash. `e2fsck -p` fixes
    /// both, so the repair's preen tier finds and repairs it.
    pub fn make_unclean(target: &Path, ino: u64) {
        fixtures::debugfs_w_script(
            target,
            &[&format!("sif <{ino}> links_count 5"), "ssv state 0"],
        );
    }

    pub fn unclean_ext4(dir: &TestDir, name: &str) -> UncleanExt4 {
        let img = fixtures::mkfs(
            dir,
            &format!("{name}.img"),
            fixtures::Kind::Ext4,
            4096,
            &[],
            64 * MIB,
        );
        let lo = LoopDevice::attach(&img);
        let mnt = dir.mkdir(name);
        let m = Mount::new(lo.dev(), &mnt, Some(EXT4_OPTS));
        write_files(&mnt);
        let files = hashes(&mnt);
        let ino = fs::metadata(mnt.join("file3")).unwrap().ino();
        m.unmount();
        make_unclean(lo.dev(), ino);
        let m = Mount::new(lo.dev(), &mnt, Some(EXT4_OPTS));
        let fx = UncleanExt4 {
            mount: Some(m),
            lo,
            dir_path: mnt,
            files,
        };
        // A record left by an earlier user of this loop number is not this filesystem's: a run
        // would refuse it (the device is ours now).
        forget_record(&fx.lo);
        fx
    }
}

/// Where `name` is installed: the first directory of `PATH`, then the sbin directories a
/// non-login shell may lack, that has it; `None` when no directory has it.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The path to run `name` by: [`find_tool`]'s answer, else the bare name (the spawn then
/// fails with "not found", which names the tool).
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| PathBuf::from(name))
}

/// True when every tool in `names` is installed; otherwise [`skip`]s `test` (a failure under
/// `SNAPGUARD_REQUIRE_PRIVILEGED=1`) naming the missing ones, and returns false.
pub fn have_tools(test: &str, names: &[&str]) -> bool {
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| find_tool(n).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(test, &format!("needs {}", missing.join(", ")));
    false
}
