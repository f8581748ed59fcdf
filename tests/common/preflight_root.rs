//! `--root` fixture trees for `snapguard preflight` (shared by `tests/preflight.rs` and
//! `tests/integrations.rs`): a mount table naming real loop devices, an empty configuration,
//! and the files that make a confined Azure agent.

use super::{LoopDevice, TestDir, fixtures};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The root and `/proc` lines every fixture mount table starts with.
pub const ROOT_LINE: &str =
    "20 1 0:20 / / rw - tmpfs tmpfs rw\n21 20 0:5 / /proc rw,nosuid - proc proc rw\n";

/// A fixture root: `ROOT/proc/self/mountinfo` and whatever a test adds; an empty config
/// (`DIR/snapguard.toml`) beside the root.
pub struct FixtureRoot {
    pub dir: TestDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl FixtureRoot {
    pub fn new(tag: &str, mountinfo: &str) -> Self {
        let dir = TestDir::new(tag);
        let root = dir.mkdir("root");
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
        let config = dir.join("snapguard.toml");
        std::fs::write(&config, "").unwrap();
        FixtureRoot { dir, root, config }
    }

    /// Writes `ROOT/rel`, creating its directories.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        write_under(&self.root, rel, contents);
    }
}

/// Writes `root/rel`, creating its directories.
pub fn write_under(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, contents).unwrap();
}

/// A mountinfo line for `dev` at `mountpoint`.
pub fn line(id: u32, dev: &LoopDevice, mountpoint: &str, fstype: &str) -> String {
    format!(
        "{id} 20 {} / {mountpoint} rw,relatime - {fstype} {} rw\n",
        dev.dev_t(),
        dev.dev().display()
    )
}

/// A 64 MiB ext4 image, clean, on a loop device (not mounted: the fixture's mount table says
/// where it is).
pub fn ext4_on_loop(dir: &TestDir, name: &str) -> (PathBuf, LoopDevice) {
    let img = fixtures::ext4(dir, name, &[]);
    let lo = LoopDevice::attach(&img);
    (img, lo)
}

/// An ext4 image left "not clean" (superblock state 0, as after a crash) on a loop device.
pub fn unclean_ext4_on_loop(dir: &TestDir, name: &str) -> LoopDevice {
    let img = fixtures::ext4(dir, name, &[]);
    fixtures::debugfs_w(&img, "ssv state 0");
    LoopDevice::attach(&img)
}

/// A 64 MiB vfat (no freeze support in its driver) on a loop device.
pub fn vfat_on_loop(dir: &TestDir, name: &str) -> LoopDevice {
    let img = fixtures::made_by(dir, name, 64 << 20, "mkfs.fat", &["-F", "32"]);
    LoopDevice::attach(&img)
}

/// Under `root`: SELinux enforcing, the agent running as waagent_t, one of its denials
/// enforced an hour ago.
pub fn confined_agent(root: &Path) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let w = |rel: &str, contents: &str| write_under(root, rel, contents);
    w(
        "proc/filesystems",
        "nodev\tproc\nnodev\tselinuxfs\n\text4\n",
    );
    w("proc/cmdline", "root=/dev/sda ro\n");
    w("sys/kernel/security/lsm", "capability,selinux");
    w("sys/fs/selinux/enforce", "1");
    w(
        "etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
    );
    w(
        "proc/1234/cmdline",
        "/usr/bin/python3\0-u\0/usr/sbin/waagent\0-daemon\0",
    );
    w("proc/1234/attr/current", "system_u:system_r:waagent_t:s0\0");
    w(
        "var/log/audit/audit.log",
        &format!(
            "type=AVC msg=audit({}.123:4521): avc:  denied  {{ execute }} for  pid=3120 comm=\"sh\" path=\"/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0/main/handle.sh\" dev=\"dm-3\" ino=393281 scontext=system_u:system_r:waagent_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0\n",
            now - 3600
        ),
    );
}
