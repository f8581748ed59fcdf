//! Differential tests of the XFS parser against `xfs_logprint -t` and `xfs_db` on real images
//! built at test time (shared/reference/ondisk-state.md §6), moved out of the unit tests so
//! `cargo test --lib` runs as any user. They need root (loop devices, mount, fsfreeze) and
//! xfsprogs; they skip otherwise unless `SNAPGUARD_REQUIRE_PRIVILEGED=1`.

mod common;

use snapguard::fs::xfs::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TOOLS: [&str; 6] = [
    "mkfs.xfs",
    "xfs_logprint",
    "xfs_db",
    "xfs_io",
    "losetup",
    "fsfreeze",
];

fn usable(test: &str) -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| {
            !["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(t).exists())
        })
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    common::skip(
        test,
        &format!("needs root and xfsprogs (root: {root}, missing: {missing:?})"),
    );
    false
}

fn run<S: AsRef<OsStr>>(cmd: &str, args: &[S]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let shown: Vec<_> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.status.success(),
        "{cmd} {shown:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("snapguard-xfs-unit-")
        .tempdir()
        .expect("temp dir")
}

/// A 320 MiB sparse image with a fresh XFS (`mkfs.xfs -q -f EXTRA`).
fn mkfs(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let img = dir.join(name);
    fs::File::create(&img)
        .and_then(|f| f.set_len(320 << 20))
        .expect("create image");
    let mut args: Vec<&OsStr> = vec![OsStr::new("-q"), OsStr::new("-f")];
    args.extend(extra.iter().map(OsStr::new));
    args.push(img.as_os_str());
    run("mkfs.xfs", &args);
    img
}

/// A loop device on one of our images; detached on drop only while still ours.
struct Loop {
    dev: PathBuf,
    name: String,
    backing: PathBuf,
}

impl Loop {
    fn attach(img: &Path) -> Loop {
        let backing = fs::canonicalize(img).expect("canonical image path");
        let dev = PathBuf::from(
            run(
                "losetup",
                &[
                    OsStr::new("--find"),
                    OsStr::new("--show"),
                    backing.as_os_str(),
                ],
            )
            .trim(),
        );
        let name = dev
            .file_name()
            .and_then(|n| n.to_str())
            .expect("loop name")
            .to_owned();
        let me = Loop { dev, name, backing };
        assert_eq!(
            me.backing_now().as_deref(),
            Some(me.backing.as_path()),
            "loop device is not ours"
        );
        me
    }

    fn backing_now(&self) -> Option<PathBuf> {
        let raw = fs::read_to_string(format!("/sys/block/{}/loop/backing_file", self.name)).ok()?;
        Some(PathBuf::from(raw.trim_end_matches('\n')))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        for attempt in 0..10u64 {
            if self.backing_now().as_deref() != Some(self.backing.as_path()) {
                return;
            }
            let ok = Command::new("losetup")
                .arg("-d")
                .arg(&self.dev)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100 * (attempt + 1)));
        }
    }
}

/// Our loop device mounted on a directory in our temp dir; unmounted on drop.
struct Mounted {
    dir: PathBuf,
    mounted: bool,
    _lo: Loop,
}

impl Mounted {
    fn new(img: &Path, dir: &Path) -> Mounted {
        let lo = Loop::attach(img);
        fs::create_dir_all(dir).expect("mount point");
        let mut m = Mounted {
            dir: dir.to_owned(),
            mounted: false,
            _lo: lo,
        };
        run("mount", &[m._lo.dev.as_os_str(), dir.as_os_str()]);
        m.mounted = true;
        m
    }

    /// xfs_io writes, each file fsync'ed: metadata in the log, not yet checkpointed.
    fn write_files(&self) {
        fs::create_dir_all(self.dir.join("d")).expect("mkdir");
        for i in 0..8 {
            let f = self.dir.join("d").join(format!("f{i}"));
            run(
                "xfs_io",
                &[
                    OsStr::new("-f"),
                    OsStr::new("-c"),
                    OsStr::new("pwrite -q 0 64k"),
                    OsStr::new("-c"),
                    OsStr::new("fsync"),
                    f.as_os_str(),
                ],
            );
        }
    }

    fn unmount(mut self) {
        run("umount", &[self.dir.as_os_str()]);
        self.mounted = false;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            for attempt in 0..10u64 {
                if Command::new("umount")
                    .arg(&self.dir)
                    .status()
                    .is_ok_and(|s| s.success())
                {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100 * (attempt + 1)));
            }
        }
    }
}

/// `fsfreeze -f` on our mount; thawed on drop.
struct Frozen<'a>(&'a Mounted);

impl<'a> Frozen<'a> {
    fn new(m: &'a Mounted) -> Frozen<'a> {
        assert!(m.dir.starts_with(std::env::temp_dir()) && m.dir != Path::new("/"));
        run("fsfreeze", &[OsStr::new("-f"), m.dir.as_os_str()]);
        Frozen(m)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0.dir).status();
    }
}

fn sparse_copy(src: &Path, dst: &Path) {
    run(
        "cp",
        &[
            OsStr::new("--sparse=always"),
            src.as_os_str(),
            dst.as_os_str(),
        ],
    );
}

/// Our superblock and log verdict for an image file.
fn ours(img: &Path) -> (XfsSuperblock, Result<Option<LogState>, XfsError>) {
    let file = fs::File::open(img).expect("open image");
    let mut raw = vec![0u8; XFS_MAX_SECTORSIZE];
    let n = file.read_at(&mut raw, 0).expect("read superblock");
    raw.truncate(n);
    let sb = XfsSuperblock::parse(&raw).expect("parse superblock");
    let offset = match sb.log_location() {
        Ok(LogLocation::Internal { offset, .. }) => offset,
        _ => 0,
    };
    let mut read = |first: u64, count: usize| -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; count * BBSIZE];
        file.read_exact_at(&mut buf, offset + first * BBSIZE as u64)?;
        Ok(buf)
    };
    let state = log_state(&sb, &mut read);
    (sb, state)
}

/// `xfs_logprint -t`: (tail, head, clean) from `log tail: T head: H state: <S>`.
fn logprint(img: &Path) -> (u64, u64, bool) {
    let out = run("xfs_logprint", &[OsStr::new("-t"), img.as_os_str()]);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("log tail:"))
        .unwrap_or_else(|| panic!("no 'log tail:' line in xfs_logprint -t output:\n{out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    // ["log", "tail:", T, "head:", H, "state:", "<CLEAN>"]
    assert_eq!(w.len(), 7, "unexpected line {line:?}");
    let tail = w[2].parse().expect("tail");
    let head = w[4].parse().expect("head");
    let clean = match w[6] {
        "<CLEAN>" => true,
        "<DIRTY>" => false,
        other => panic!("unexpected state {other}"),
    };
    (tail, head, clean)
}

/// `xfs_db -r -c "sb 0" -c print` as a map of field = value.
fn xfs_db_sb(img: &Path) -> HashMap<String, String> {
    let out = run(
        "xfs_db",
        &[
            OsStr::new("-r"),
            OsStr::new("-c"),
            OsStr::new("sb 0"),
            OsStr::new("-c"),
            OsStr::new("print"),
            img.as_os_str(),
        ],
    );
    out.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn num(v: &str) -> u64 {
    let v = v.split_whitespace().next().unwrap_or(v);
    v.strip_prefix("0x")
        .map_or_else(|| v.parse(), |h| u64::from_str_radix(h, 16))
        .unwrap_or_else(|_| panic!("not a number: {v}"))
}

/// Compare superblock fields with xfs_db and head/tail/clean with xfs_logprint -t.
fn check(what: &str, img: &Path) -> (XfsSuperblock, LogState) {
    let (sb, state) = ours(img);
    let db = xfs_db_sb(img);
    let fields: [(&str, u64); 11] = [
        ("blocksize", u64::from(sb.blocksize)),
        ("dblocks", sb.dblocks),
        ("logstart", sb.logstart),
        ("agblocks", u64::from(sb.agblocks)),
        ("agcount", u64::from(sb.agcount)),
        ("logblocks", u64::from(sb.logblocks)),
        ("versionnum", u64::from(sb.versionnum)),
        ("sectsize", u64::from(sb.sectsize)),
        ("inprogress", u64::from(sb.inprogress)),
        ("agblklog", u64::from(sb.agblklog)),
        ("features2", u64::from(sb.features2)),
    ];
    for (name, value) in fields {
        assert_eq!(
            num(&db[name]),
            value,
            "{what}: {name} ours {value} vs xfs_db {}",
            db[name]
        );
    }
    if sb.version() == 5 {
        assert_eq!(
            num(&db["features_incompat"]),
            u64::from(sb.features_incompat),
            "{what}: incompat"
        );
        assert_eq!(
            num(&db["features_ro_compat"]),
            u64::from(sb.features_ro_compat),
            "{what}: ro_compat"
        );
        let db_ok = db["crc"].ends_with("(correct)");
        assert_eq!(
            sb.crc == CrcStatus::Valid,
            db_ok,
            "{what}: crc ours {:?} vs xfs_db {}",
            sb.crc,
            db["crc"]
        );
    } else {
        assert_eq!(sb.crc, CrcStatus::Absent);
    }
    let state = state
        .unwrap_or_else(|e| panic!("{what}: our log search failed: {e}"))
        .unwrap_or_else(|| panic!("{what}: expected an internal log"));
    let (tail, head, clean) = logprint(img);
    assert_eq!(
        (state.tail_block, state.head_block, state.clean),
        (tail, head, clean),
        "{what}: ours (tail, head, clean) vs xfs_logprint -t; ours {state:?}"
    );
    (sb, state)
}

#[test]
fn fresh_mkfs_is_clean() {
    if !usable("fresh_mkfs_is_clean") {
        return;
    }
    let dir = tempdir();
    let img = mkfs(dir.path(), "fresh.img", &["-L", "fresh"]);
    let (sb, st) = check("fresh", &img);
    assert!(st.clean && st.unmount_record);
    assert_eq!((st.head_block, st.tail_block, st.head_cycle), (2, 2, 1));
    assert_eq!(sb.fname, "fresh");
    let version = run(
        "xfs_db",
        &[
            OsStr::new("-r"),
            OsStr::new("-c"),
            OsStr::new("version"),
            img.as_os_str(),
        ],
    );
    let listed = version
        .trim()
        .rsplit(" = ")
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(sb.feature_names().join(","), listed);
}

#[test]
fn crash_copy_is_dirty() {
    if !usable("crash_copy_is_dirty") {
        return;
    }
    let dir = tempdir();
    let img = mkfs(dir.path(), "live.img", &[]);
    let copy = dir.path().join("crash.img");
    let m = Mounted::new(&img, &dir.path().join("mnt"));
    m.write_files();
    sparse_copy(&img, &copy);
    m.unmount();
    let (_, st) = check("crash copy", &copy);
    assert!(!st.clean);
    let (_, after) = check("after umount", &img);
    assert!(after.clean && after.unmount_record);
}

#[test]
fn frozen_copy_is_dirty() {
    if !usable("frozen_copy_is_dirty") {
        return;
    }
    let dir = tempdir();
    let img = mkfs(dir.path(), "live.img", &[]);
    let copy = dir.path().join("frozen.img");
    let m = Mounted::new(&img, &dir.path().join("mnt"));
    m.write_files();
    {
        let _frozen = Frozen::new(&m);
        sparse_copy(&img, &copy);
    }
    m.unmount();
    let (_, st) = check("frozen copy", &copy);
    assert!(
        !st.clean,
        "a frozen XFS copy has a covered but dirty log: {st:?}"
    );
}

#[test]
fn shutdown_then_umount_is_dirty() {
    if !usable("shutdown_then_umount_is_dirty") {
        return;
    }
    let dir = tempdir();
    let img = mkfs(dir.path(), "shutdown.img", &[]);
    let m = Mounted::new(&img, &dir.path().join("mnt"));
    m.write_files();
    run(
        "xfs_io",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("shutdown"),
            m.dir.as_os_str(),
        ],
    );
    m.unmount();
    let (_, st) = check("shutdown", &img);
    assert!(!st.clean);
}

#[test]
fn mount_umount_is_clean() {
    if !usable("mount_umount_is_clean") {
        return;
    }
    let dir = tempdir();
    let img = mkfs(dir.path(), "cycled.img", &[]);
    let m = Mounted::new(&img, &dir.path().join("mnt"));
    m.write_files();
    m.unmount();
    let (_, st) = check("mount/umount", &img);
    assert!(st.clean && st.unmount_record);
    assert!(st.head_block > 2, "the log moved on: {st:?}");
}

#[test]
fn inprogress_needsrepair_and_bad_crc() {
    if !usable("inprogress_needsrepair_and_bad_crc") {
        return;
    }
    let dir = tempdir();
    let base = mkfs(dir.path(), "base.img", &[]);
    let (sb, _) = check("base", &base);

    let ip = dir.path().join("inprogress.img");
    sparse_copy(&base, &ip);
    run(
        "xfs_db",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("sb 0"),
            OsStr::new("-c"),
            OsStr::new("write inprogress 1"),
            ip.as_os_str(),
        ],
    );
    let (s, st) = check("inprogress", &ip);
    assert!(s.in_progress() && s.crc == CrcStatus::Valid && st.clean);

    let nr = dir.path().join("needsrepair.img");
    sparse_copy(&base, &nr);
    let cmd = format!(
        "write features_incompat {:#x}",
        sb.features_incompat | XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR
    );
    run(
        "xfs_db",
        &[
            OsStr::new("-x"),
            OsStr::new("-c"),
            OsStr::new("sb 0"),
            OsStr::new("-c"),
            OsStr::new(&cmd),
            nr.as_os_str(),
        ],
    );
    let (s, _) = check("needsrepair", &nr);
    assert!(s.needs_repair() && s.unknown_features().is_none());
    assert!(s.feature_names().contains(&"NEEDSREPAIR"));

    let bad = dir.path().join("badcrc.img");
    sparse_copy(&base, &bad);
    let f = fs::OpenOptions::new().write(true).open(&bad).expect("open");
    f.write_all_at(b"X", 108).expect("flip fname byte");
    drop(f);
    let (s, st) = check("bad crc", &bad);
    assert!(matches!(s.crc, CrcStatus::Invalid { .. }) && st.clean);
}

#[test]
fn v4_and_external_log() {
    if !usable("v4_and_external_log") {
        return;
    }
    let dir = tempdir();
    let v4 = mkfs(dir.path(), "v4.img", &["-m", "crc=0"]);
    let (sb, st) = check("v4", &v4);
    assert_eq!((sb.version(), sb.crc), (4, CrcStatus::Absent));
    assert!(st.clean);

    let logdev = dir.path().join("log.img");
    fs::File::create(&logdev)
        .and_then(|f| f.set_len(80 << 20))
        .expect("log image");
    let logopt = format!("logdev={}", logdev.display());
    let img = mkfs(dir.path(), "ext.img", &["-l", &logopt]);
    let (sb, state) = ours(&img);
    assert_eq!(sb.logstart, 0);
    assert!(matches!(state, Ok(None)), "external log: {state:?}");
}
