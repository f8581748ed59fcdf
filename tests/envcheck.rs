//! The environment checks (`snapguard::envcheck`, E1–E14) on `--root`-style fixture trees:
//! every status of every check, the unreadable cases run as `nobody` (this test binary
//! re-executes itself through `setpriv`), and TCP probes against a local listener and a
//! closed port.

mod common;

use serde_json::Value;
use snapguard::envcheck::{EnvOptions, blocks_backup, check_environment};
use snapguard::report::model::{Check, CheckStatus};
use snapguard::root::SysRoot;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

const MEMINFO: &str = "MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    4000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapCached:            0 kB
Active:          3000000 kB
Inactive:        2000000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Dirty:               100 kB
Writeback:             0 kB
Mapped:           300000 kB
Shmem:             10000 kB
Slab:             200000 kB
SReclaimable:     100000 kB
SUnreclaim:       100000 kB
KernelStack:       10000 kB
PageTables:        20000 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:     4000000 kB
Committed_AS:    5000000 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       50000 kB
VmallocChunk:          0 kB
";

const MOUNTINFO: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid,nodev,noexec - proc proc rw
24 22 8:17 / /mnt/resource rw,relatime shared:2 - ext4 /dev/sdb1 rw
";

const PLUGIN_JSON: &str = r#"{
    "pluginName": "ScriptRunner",
    "preScriptLocation": "/etc/azure/pre.sh",
    "postScriptLocation": "/etc/azure/post.sh",
    "preScriptParams": ["--profile", "azure"],
    "postScriptParams": [],
    "preScriptNoOfRetries": 0,
    "postScriptNoOfRetries": 0,
    "timeoutInSeconds": 30,
    "continueBackupOnFailure": true,
    "fsFreezeEnabled": true
}"#;

/// A fixture root: by default a healthy Azure VM (agent installed and running, VMSnapshot
/// handler present, valid extension config, low pressure, no duplicate mounts, DHCP).
struct Fx {
    dir: TempDir,
}

impl Fx {
    fn empty() -> Fx {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o755);
        Fx { dir }
    }

    fn healthy() -> Fx {
        let fx = Fx::empty();
        fx.write("usr/sbin/waagent", "#!/usr/bin/python3\n")
            .mkdir("usr/lib/python3/dist-packages/WALinuxAgent-2.2.45.egg-info")
            .write(
                "usr/lib/python3/dist-packages/azurelinuxagent/common/version.py",
                "AGENT_NAME = 'WALinuxAgent'\nAGENT_VERSION = '2.2.45'\n",
            )
            .mkdir("var/lib/waagent/WALinuxAgent-2.9.1.1")
            .mkdir("var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0")
            .write(
                "sys/class/dmi/id/chassis_asset_tag",
                "7783-7084-3265-9085-8269-3286-77\n",
            )
            .process(1234, "/usr/bin/python3 -u /usr/sbin/waagent -daemon")
            .process(
                1240,
                "python3 -u bin/WALinuxAgent-2.9.1.1-py3.8.egg -run-exthandlers",
            )
            .process(1300, "/usr/sbin/sshd -D")
            .write(
                "etc/azure/vmbackup.conf",
                "[SnapshotThread]\ntimeout = 60\nSafeFreezeWaitInSeconds = 66\nMountsToSkip = /mnt/resource\n",
            )
            .write("etc/azure/VMSnapshotScriptPluginConfig.json", PLUGIN_JSON)
            .write("etc/azure/pre.sh", "#!/bin/sh\nexec snapguard preflight --profile azure\n")
            .write("etc/azure/post.sh", "#!/bin/sh\nexit 0\n")
            .write(
                "proc/pressure/cpu",
                "some avg10=1.00 avg60=2.50 avg300=1.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            )
            .write(
                "proc/pressure/memory",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            )
            .write(
                "proc/pressure/io",
                "some avg10=0.50 avg60=0.20 avg300=0.10 total=500\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            )
            .write("proc/meminfo", MEMINFO)
            .write("proc/self/mountinfo", MOUNTINFO)
            .write(
                "etc/fstab",
                "# /etc/fstab\nUUID=1 / ext4 defaults 0 1\n/dev/sdb1 /mnt/resource ext4 defaults,nofail 0 2\n/swapfile none swap sw 0 0\n/swapfile2 none swap sw 0 0\n",
            )
            .write(
                "proc/net/route",
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 eth0\t0000000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
            )
            .write("sys/class/net/eth0/address", "00:22:48:aa:bb:cc\n")
            .write("sys/class/net/eth0/ifindex", "2\n")
            .write(
                "etc/netplan/50-cloud-init.yaml",
                "# generated by cloud-init\nnetwork:\n    ethernets:\n        eth0:\n            dhcp4: true\n            dhcp4-overrides:\n                route-metric: 100\n            match:\n                driver: hv_netvsc\n                macaddress: 00:22:48:aa:bb:cc\n            set-name: eth0\n    version: 2\n",
            );
        chmod(&fx.p("etc/azure/VMSnapshotScriptPluginConfig.json"), 0o600);
        chmod(&fx.p("etc/azure/pre.sh"), 0o700);
        chmod(&fx.p("etc/azure/post.sh"), 0o700);
        fx
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> SysRoot {
        SysRoot::new(self.dir.path())
    }

    /// Write a file (parents 0755, the file 0644: readable by everyone, as on a real system).
    fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.p(rel);
        self.mkdir_path(p.parent().expect("parent"));
        std::fs::write(&p, text).expect("write");
        chmod(&p, 0o644);
        self
    }

    fn mkdir(&self, rel: &str) -> &Self {
        self.mkdir_path(&self.p(rel));
        self
    }

    fn mkdir_path(&self, p: &Path) {
        std::fs::create_dir_all(p).expect("mkdir -p");
        let mut d = p.to_path_buf();
        while d.starts_with(self.dir.path()) && d != self.dir.path() {
            chmod(&d, 0o755);
            d.pop();
        }
    }

    fn remove(&self, rel: &str) -> &Self {
        let p = self.p(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("rm -r");
        } else {
            std::fs::remove_file(&p).expect("rm");
        }
        self
    }

    fn process(&self, pid: u32, argv: &str) -> &Self {
        self.write(
            &format!("proc/{pid}/cmdline"),
            &format!("{}\0", argv.replace(' ', "\0")),
        )
    }

    fn checks(&self) -> Vec<Check> {
        check_environment(&self.root(), &EnvOptions::default())
    }

    fn check(&self, id: &str) -> Check {
        find(&self.checks(), id)
    }

    /// The checks as `nobody` sees them: `(id, status, message, unreadable)` in JSON.
    fn checks_as_nobody(&self) -> Vec<Value> {
        let exe = std::env::current_exe().expect("current exe");
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([
                "--exact",
                "as_nobody_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, self.dir.path())
            .output()
            .expect("run setpriv");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(CHILD_MARK))
            .unwrap_or_else(|| {
                panic!(
                    "no result from the child: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        serde_json::from_str(line).expect("child JSON")
    }
}

const CHILD_ENV: &str = "SNAPGUARD_ENVCHECK_CHILD_ROOT";
const CHILD_MARK: &str = "ENVCHECK-CHECKS: ";

/// Run by [`Fx::checks_as_nobody`] in a child process; a no-op in the normal test run.
#[test]
#[allow(
    clippy::print_stdout,
    reason = "the parent test reads the result from stdout"
)]
fn as_nobody_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let checks = check_environment(&SysRoot::new(PathBuf::from(dir)), &EnvOptions::default());
    let doc: Vec<Value> = checks
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "status": c.status,
                "message": c.message,
                "unreadable": c.unreadable,
            })
        })
        .collect();
    println!(
        "\n{CHILD_MARK}{}",
        serde_json::to_string(&doc).expect("json")
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown");
}

fn find(checks: &[Check], id: &str) -> Check {
    checks
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

fn nobody_check<'a>(checks: &'a [Value], id: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {checks:#?}"))
}

/// Root privileges are needed to build root-owned fixtures and to become nobody.
fn needs_root(test: &str) -> bool {
    common::require_root(test)
}

#[track_caller]
fn assert_status(c: &Check, status: CheckStatus, needle: &str) {
    assert_eq!(c.status, status, "{c:#?}");
    assert!(
        c.message.contains(needle),
        "{} message lacks {needle:?}: {}",
        c.id,
        c.message
    );
    if matches!(status, CheckStatus::Warn | CheckStatus::Fail) {
        assert!(c.remedy.is_some(), "{} {status:?} without a remedy", c.id);
    }
}

#[track_caller]
fn assert_unreadable(checks: &[Value], id: &str) {
    let c = nobody_check(checks, id);
    assert_eq!(c["status"], "skip", "{c:#}");
    assert_eq!(c["unreadable"], true, "{c:#}");
}

// ---- the healthy fixture and the ids ----------------------------------------------------

#[test]
fn healthy_azure_vm_passes_every_check_with_stable_ids() {
    if !needs_root("healthy_azure_vm_passes_every_check_with_stable_ids") {
        return;
    }
    let fx = Fx::healthy();
    let checks = fx.checks();
    let ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10", "E11", "E12", "E13", "E14"
        ]
    );
    for c in &checks[..13] {
        assert_eq!(c.status, CheckStatus::Pass, "{c:#?}");
        assert!(!blocks_backup(c));
    }
    assert_eq!(checks[13].status, CheckStatus::Skip, "no probe: no traffic");
    assert!(find(&checks, "E1").message.contains("2.2.45"));
    assert!(
        find(&checks, "E3").message.contains("2.9.1.1"),
        "the newest (auto-updated) version"
    );
    assert!(find(&checks, "E5").message.contains("1.0.9225.0"));
}

#[test]
fn not_an_azure_vm_skips_the_agent_checks() {
    let fx = Fx::empty();
    let checks = fx.checks();
    for id in ["E1", "E2", "E3", "E4", "E5", "E6", "E7"] {
        let c = find(&checks, id);
        assert_eq!(c.status, CheckStatus::Skip, "{c:#?}");
        assert!(c.message.contains("not an Azure VM"), "{c:#?}");
        assert!(!c.unreadable);
    }
    // An empty root is an offline one: nothing passes that could not be looked at.
    for c in &checks {
        assert_ne!(c.status, CheckStatus::Pass, "{c:#?}");
    }
}

// ---- E1 installed ------------------------------------------------------------------------

#[test]
fn e1_fails_on_an_azure_vm_without_the_agent() {
    let fx = Fx::empty();
    fx.mkdir("var/lib/waagent")
        .write("etc/os-release", "ID=ubuntu\nID_LIKE=debian\n");
    let c = fx.check("E1");
    assert_status(&c, CheckStatus::Fail, "without the Azure Linux agent");
    let remedy = c.remedy.as_deref().unwrap_or_default();
    assert!(
        remedy.contains("apt-get install -y walinuxagent"),
        "{remedy}"
    );
    assert!(remedy.starts_with("chroot "), "acts on the root: {remedy}");
    assert!(blocks_backup(&c));
    // The Azure asset tag alone also makes it an Azure VM.
    let fx = Fx::empty();
    fx.write(
        "sys/class/dmi/id/chassis_asset_tag",
        "7783-7084-3265-9085-8269-3286-77\n",
    );
    assert_status(&fx.check("E1"), CheckStatus::Fail, "asset tag");
    assert!(
        fx.check("E1")
            .remedy
            .unwrap_or_default()
            .contains("dnf install -y WALinuxAgent")
    );
}

#[test]
fn e1_found_through_the_python_package_alone() {
    let fx = Fx::empty();
    fx.mkdir("usr/lib64/python3.9/site-packages/WALinuxAgent-2.7.0.6-py3.9.egg-info");
    assert_status(&fx.check("E1"), CheckStatus::Pass, "WALinuxAgent 2.7.0.6");
    assert_status(&fx.check("E3"), CheckStatus::Pass, "2.7.0.6");
}

#[test]
fn e1_e3_e5_e6_e7_cannot_read_as_nobody() {
    if !needs_root("e1_e3_e5_e6_e7_cannot_read_as_nobody") {
        return;
    }
    let fx = Fx::healthy();
    // No executable, and the package directory and the agent's state are root-only.
    fx.remove("usr/sbin/waagent");
    chmod(&fx.p("usr/lib/python3/dist-packages"), 0o700);
    chmod(&fx.p("var/lib/waagent"), 0o700);
    chmod(&fx.p("etc/azure/vmbackup.conf"), 0o600);
    let checks = fx.checks_as_nobody();
    for id in ["E1", "E3", "E5", "E6", "E7"] {
        assert_unreadable(&checks, id);
    }
    // The same tree read by root: every one of them has a verdict.
    for id in ["E1", "E3", "E5", "E6", "E7"] {
        assert!(!fx.check(id).unreadable, "{id}");
    }
}

// ---- E2 running --------------------------------------------------------------------------

#[test]
fn e2_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E2"), CheckStatus::Pass, "extension handler");
    fx.remove("proc/1240");
    assert_status(&fx.check("E2"), CheckStatus::Warn, "no extension handler");
    fx.remove("proc/1234");
    let c = fx.check("E2");
    assert_status(&c, CheckStatus::Fail, "no waagent process");
    assert!(blocks_backup(&c));
    assert!(
        c.remedy
            .as_deref()
            .unwrap_or_default()
            .contains("systemctl --root="),
        "{c:#?}"
    );
    // An offline root: no /proc at all.
    fx.remove("proc");
    assert_status(&fx.check("E2"), CheckStatus::Skip, "offline root");
}

#[test]
fn e2_a_process_that_merely_mentions_the_agent_is_not_it() {
    let fx = Fx::healthy();
    fx.remove("proc/1234").remove("proc/1240");
    fx.process(1500, "tail -f /var/log/waagent.log")
        .process(1501, "ls /var/lib/waagent");
    assert_status(&fx.check("E2"), CheckStatus::Fail, "no waagent process");
}

#[test]
fn e2_cannot_read_as_nobody() {
    if !needs_root("e2_cannot_read_as_nobody") {
        return;
    }
    let fx = Fx::healthy();
    for pid in [1234, 1240, 1300] {
        chmod(&fx.p(&format!("proc/{pid}/cmdline")), 0o600);
    }
    assert_unreadable(&fx.checks_as_nobody(), "E2");
}

// ---- E3 version --------------------------------------------------------------------------

#[test]
fn e3_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E3"), CheckStatus::Pass, "2.9.1.1");
    fx.remove("var/lib/waagent/WALinuxAgent-2.9.1.1")
        .remove("usr/lib/python3/dist-packages/WALinuxAgent-2.2.45.egg-info")
        .write(
            "usr/lib/python3/dist-packages/azurelinuxagent/common/version.py",
            "AGENT_VERSION = \"2.1.3\"\n",
        );
    let c = fx.check("E3");
    assert_status(&c, CheckStatus::Warn, "older than 2.2.10");
    assert!(!blocks_backup(&c));
    fx.remove("usr/lib/python3/dist-packages/azurelinuxagent");
    assert_status(&fx.check("E3"), CheckStatus::Skip, "cannot tell");
}

// ---- E4 state directory ------------------------------------------------------------------

#[test]
fn e4_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E4"), CheckStatus::Pass, "present");
    fx.remove("var/lib/waagent");
    let c = fx.check("E4");
    assert_status(&c, CheckStatus::Fail, "missing");
    assert!(blocks_backup(&c));
    fx.write("var/lib/waagent", "not a directory");
    assert_status(&fx.check("E4"), CheckStatus::Fail, "not a directory");
    let fx = Fx::empty();
    assert_status(&fx.check("E4"), CheckStatus::Skip, "not an Azure VM");
}

// ---- E5 VMSnapshot handler ---------------------------------------------------------------

#[test]
fn e5_every_status() {
    let fx = Fx::healthy();
    fx.mkdir("var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.10000.0");
    assert_status(&fx.check("E5"), CheckStatus::Pass, "1.0.10000.0");
    fx.remove("var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.10000.0")
        .remove("var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0")
        .write(
            "var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0.zip",
            "",
        );
    let c = fx.check("E5");
    assert_status(&c, CheckStatus::Warn, "not installed");
    assert!(!blocks_backup(&c));
    fx.remove("var/lib/waagent");
    assert_status(&fx.check("E5"), CheckStatus::Skip, "E4");
}

// ---- E6 vmbackup.conf --------------------------------------------------------------------

#[test]
fn e6_every_status() {
    if !needs_root("e6_every_status") {
        return;
    }
    let fx = Fx::healthy();
    let c = fx.check("E6");
    assert_status(&c, CheckStatus::Pass, "valid");
    assert!(
        c.details
            .iter()
            .any(|d| d.contains("MountsToSkip = /mnt/resource"))
    );
    fx.write(
        "etc/azure/vmbackup.conf",
        "timeout = 5\n[SnapshotThread]\ntimeout = soon\nMountsToSkip = /mnt/resourse\n",
    );
    let c = fx.check("E6");
    assert_eq!(c.status, CheckStatus::Warn, "{c:#?}");
    let all = c.details.join("\n");
    assert!(all.contains("line 1: a key before any [section]"), "{all}");
    assert!(all.contains("timeout = \"soon\""), "{all}");
    assert!(
        all.contains("/mnt/resourse, which is not a mount point"),
        "{all}"
    );
    assert!(c.remedy.is_some());
    assert!(!blocks_backup(&c));
    // Valid, but anyone may rewrite it.
    fx.write(
        "etc/azure/vmbackup.conf",
        "[SnapshotThread]\ntimeout = 60\n",
    );
    chmod(&fx.p("etc/azure/vmbackup.conf"), 0o666);
    assert_status(&fx.check("E6"), CheckStatus::Warn, "other than root");
    fx.remove("etc/azure/vmbackup.conf");
    assert_status(&fx.check("E6"), CheckStatus::Pass, "defaults apply");
    let fx = Fx::empty();
    assert_status(&fx.check("E6"), CheckStatus::Skip, "not an Azure VM");
}

// ---- E7 pre/post-script configuration ----------------------------------------------------

#[test]
fn e7_every_status() {
    if !needs_root("e7_every_status") {
        return;
    }
    let conf = "etc/azure/VMSnapshotScriptPluginConfig.json";
    let fx = Fx::healthy();
    assert_status(&fx.check("E7"), CheckStatus::Pass, "valid");

    // Mode 644: the extension refuses it.
    chmod(&fx.p(conf), 0o644);
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Fail, "InsufficientPermission");
    assert!(blocks_backup(&c));
    let remedy = c.remedy.unwrap_or_default();
    assert!(remedy.contains("chmod 600"), "{remedy}");
    assert!(
        remedy.contains(&fx.p(conf).display().to_string()),
        "acts on the root: {remedy}"
    );
    chmod(&fx.p(conf), 0o600);

    // A script owned by someone else.
    chown(&fx.p("etc/azure/pre.sh"), 65534);
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Fail, "not root");
    assert!(c.remedy.unwrap_or_default().contains("chmod 700"));
    chown(&fx.p("etc/azure/pre.sh"), 0);

    // A script group-readable.
    chmod(&fx.p("etc/azure/post.sh"), 0o750);
    assert_status(&fx.check("E7"), CheckStatus::Fail, "mode 0750");
    chmod(&fx.p("etc/azure/post.sh"), 0o700);

    // A script that does not exist.
    fx.remove("etc/azure/pre.sh");
    assert_status(&fx.check("E7"), CheckStatus::Fail, "does not exist");
    fx.write("etc/azure/pre.sh", "#!/bin/sh\n");
    chmod(&fx.p("etc/azure/pre.sh"), 0o700);

    // Not JSON.
    fx.write(conf, "{\"pluginName\": ");
    chmod(&fx.p(conf), 0o600);
    assert_status(&fx.check("E7"), CheckStatus::Fail, "not valid JSON");

    // Valid but not freezing, and a timeout out of range: warnings.
    fx.write(
        conf,
        &PLUGIN_JSON
            .replace("\"fsFreezeEnabled\": true", "\"fsFreezeEnabled\": false")
            .replace("\"timeoutInSeconds\": 30", "\"timeoutInSeconds\": 3600"),
    );
    chmod(&fx.p(conf), 0o600);
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Warn, "");
    let all = format!("{}\n{}", c.message, c.details.join("\n"));
    assert!(all.contains("crash-consistent"), "{all}");
    assert!(all.contains("timeoutInSeconds is 3600"), "{all}");
    assert!(!blocks_backup(&c));
    fx.write(
        conf,
        &PLUGIN_JSON.replace("\"timeoutInSeconds\": 30", "\"timeoutInSeconds\": 0"),
    );
    chmod(&fx.p(conf), 0o600);
    assert_status(&fx.check("E7"), CheckStatus::Warn, "timeoutInSeconds is 0");

    fx.remove(conf);
    assert_status(&fx.check("E7"), CheckStatus::Skip, "no pre/post scripts");
}

/// The extension runs the pre/post scripts as root. A root-owned mode-700 script in a
/// directory another user can write (or reached through a symlink into one) is replaced by
/// that user at will: E7 must not call that "root-only".
#[test]
fn e7_warns_when_a_user_can_replace_the_scripts_or_the_configuration() {
    if !needs_root("e7_warns_when_a_user_can_replace_the_scripts_or_the_configuration") {
        return;
    }
    let conf = "etc/azure/VMSnapshotScriptPluginConfig.json";
    let fx = Fx::healthy();
    assert_status(&fx.check("E7"), CheckStatus::Pass, "root-only");

    // The scripts' and the configuration's directory writable by everyone.
    chmod(&fx.p("etc/azure"), 0o777);
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Warn, "/etc/azure");
    assert!(c.message.contains("writable"), "{c:#?}");
    assert!(!blocks_backup(&c));
    let remedy = c.remedy.clone().unwrap_or_default();
    assert!(
        remedy.contains(&format!("chmod go-w {}", fx.p("etc/azure").display())),
        "{remedy}"
    );
    // The sticky bit keeps others from replacing root's files: fine.
    chmod(&fx.p("etc/azure"), 0o1777);
    assert_status(&fx.check("E7"), CheckStatus::Pass, "root-only");
    chmod(&fx.p("etc/azure"), 0o755);

    // A script in a directory owned by a user.
    fx.write("opt/app/scripts/pre.sh", "#!/bin/sh\n");
    chmod(&fx.p("opt/app/scripts/pre.sh"), 0o700);
    chown(&fx.p("opt/app"), 1000);
    fx.write(
        conf,
        &PLUGIN_JSON.replace("/etc/azure/pre.sh", "/opt/app/scripts/pre.sh"),
    );
    chmod(&fx.p(conf), 0o600);
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Warn, "/opt/app");
    assert!(c.message.contains("uid 1000"), "{c:#?}");
    chown(&fx.p("opt/app"), 0);
    assert_status(&fx.check("E7"), CheckStatus::Pass, "root-only");

    // The script a symlink into a user's directory: where it leads counts.
    fx.write("home/user/pre.sh", "#!/bin/sh\n");
    chmod(&fx.p("home/user/pre.sh"), 0o700);
    chown(&fx.p("home/user"), 1000);
    std::fs::remove_file(fx.p("opt/app/scripts/pre.sh")).unwrap();
    std::os::unix::fs::symlink("../../../home/user/pre.sh", fx.p("opt/app/scripts/pre.sh"))
        .unwrap();
    let c = fx.check("E7");
    assert_status(&c, CheckStatus::Warn, "/home/user");
}

// ---- E8 pressure, E9 memory --------------------------------------------------------------

#[test]
fn e8_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E8"), CheckStatus::Pass, "less than 90 %");
    // Linux before 5.13 writes no `full` line for the CPU.
    fx.write(
        "proc/pressure/cpu",
        "some avg10=99.00 avg60=95.25 avg300=80.00 total=123\n",
    );
    let c = fx.check("E8");
    assert_status(&c, CheckStatus::Warn, "cpu 95.2 %");
    assert!(!blocks_backup(&c));
    fx.write("proc/pressure/cpu", "some avg10=1.00 avg60=1.00 avg300=1.00 total=1\n")
        .write(
            "proc/pressure/io",
            "some avg10=90.00 avg60=90.00 avg300=50.00 total=9\nfull avg10=80.00 avg60=80.00 avg300=40.00 total=8\n",
        );
    assert_status(&fx.check("E8"), CheckStatus::Warn, "io 90.0 %");
    fx.write("proc/pressure/io", "garbage\n");
    assert_status(&fx.check("E8"), CheckStatus::Skip, "no valid `some` line");
    fx.remove("proc/pressure");
    assert_status(&fx.check("E8"), CheckStatus::Skip, "no /proc/pressure");
}

#[test]
fn e8_reads_this_machines_pressure() {
    // The real /proc: a verdict, whatever the load (or a skip without PSI).
    let c = find(
        &check_environment(&SysRoot::default(), &EnvOptions::default()),
        "E8",
    );
    if std::path::Path::new("/proc/pressure/cpu").exists() {
        assert!(
            matches!(c.status, CheckStatus::Pass | CheckStatus::Warn),
            "{c:#?}"
        );
        assert_eq!(c.details.len(), 3, "{c:#?}");
    } else {
        assert_eq!(c.status, CheckStatus::Skip);
    }
}

#[test]
fn e9_every_status() {
    let fx = Fx::healthy();
    assert_status(
        &fx.check("E9"),
        CheckStatus::Pass,
        "50.0 % of memory is available",
    );
    fx.write(
        "proc/meminfo",
        &MEMINFO.replace("MemAvailable:    4000000 kB", "MemAvailable:     400000 kB"),
    );
    let c = fx.check("E9");
    assert_status(&c, CheckStatus::Warn, "only 5.0 %");
    assert!(!blocks_backup(&c));
    fx.write(
        "proc/meminfo",
        &MEMINFO.replace("MemAvailable:    4000000 kB\n", ""),
    );
    assert_status(&fx.check("E9"), CheckStatus::Skip, "no MemAvailable");
    fx.remove("proc/meminfo");
    assert_status(&fx.check("E9"), CheckStatus::Skip, "offline root");
}

#[test]
fn e8_e9_cannot_read_as_nobody() {
    if !needs_root("e8_e9_cannot_read_as_nobody") {
        return;
    }
    let fx = Fx::healthy();
    chmod(&fx.p("proc/pressure/memory"), 0o600);
    chmod(&fx.p("proc/meminfo"), 0o600);
    let checks = fx.checks_as_nobody();
    assert_unreadable(&checks, "E8");
    assert_unreadable(&checks, "E9");
}

// ---- E10, E11, E13 mounts ----------------------------------------------------------------

#[test]
fn e10_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E10"), CheckStatus::Pass, "no mount point");
    fx.write(
        "etc/fstab",
        "UUID=1 / ext4 defaults 0 1\n/dev/sdc1 /data xfs defaults 0 2\n# comment\n/dev/sdc1 /data/ xfs defaults 0 2\n",
    );
    let c = fx.check("E10");
    assert_status(&c, CheckStatus::Warn, "mounts /data 2 times");
    assert!(c.details.iter().any(|d| d == "/data: lines 2, 4"), "{c:#?}");
    assert!(c.remedy.unwrap_or_default().starts_with("vi +4 "));
    fx.remove("etc/fstab");
    assert_status(&fx.check("E10"), CheckStatus::Skip, "no /etc/fstab");
}

/// The preflight unit has `PrivateTmp=yes`: in its mount namespace systemd bind-mounts a
/// private directory over /tmp and /var/tmp. Where /tmp is a partition of its own (CIS
/// benchmarks ask for one), the unit sees two block mounts on /tmp, which the host (and the
/// agent that freezes) does not have. E11 judges PID 1's mount table, the host's.
#[test]
fn e11_judges_the_host_mount_table_not_a_private_tmp() {
    let fx = Fx::healthy();
    let host = format!("{MOUNTINFO}25 22 8:49 / /tmp rw,relatime shared:3 - ext4 /dev/sdd1 rw\n");
    fx.write("proc/1/mountinfo", &host).write(
        "proc/self/mountinfo",
        &format!(
            "{host}90 25 8:49 /systemd-private-0123-snapguard-preflight.service-AbCd/tmp /tmp rw,relatime - ext4 /dev/sdd1 rw\n"
        ),
    );
    assert_status(&fx.check("E11"), CheckStatus::Pass, "no block filesystem");
    // Without PID 1's table (a fixture, hidepid=) the caller's is judged.
    fx.remove("proc/1/mountinfo");
    assert_status(
        &fx.check("E11"),
        CheckStatus::Fail,
        "/tmp has 2 block filesystems",
    );
}

/// The same for real: two bind mounts stacked in a private mount namespace (what PrivateTmp=
/// does to a /tmp partition) do not change what E11 says about the host.
#[test]
fn e11_is_the_same_in_a_private_mount_namespace() {
    if !needs_root("e11_is_the_same_in_a_private_mount_namespace") {
        return;
    }
    let _turn = common::mount_namespace_turn(false);
    let dir = tempfile::tempdir().expect("temp dir");
    for d in ["a", "b", "x"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let p = |d: &str| dir.path().join(d).display().to_string();
    let script = format!(
        "mount --bind {a} {x} && mount --bind {b} {x} && exec \"$0\" \"$@\"",
        a = p("a"),
        b = p("b"),
        x = p("x")
    );
    let host = host_check_through("E11", &[]).expect("E11 on the host");
    let Some(private) = host_check_through(
        "E11",
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
    ) else {
        common::skip(
            "e11_is_the_same_in_a_private_mount_namespace",
            "unshare -m failed",
        );
        return;
    };
    assert_eq!(host, private);
}

#[test]
fn e11_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E11"), CheckStatus::Pass, "no block filesystem");
    fx.write(
        "proc/self/mountinfo",
        &format!(
            "{MOUNTINFO}30 22 0:40 / /data rw - tmpfs tmpfs rw\n31 30 8:33 / /data rw,relatime - xfs /dev/sdc1 rw\n32 31 8:33 / /data rw,relatime - xfs /dev/sdc1 rw\n"
        ),
    );
    let c = fx.check("E11");
    assert_status(&c, CheckStatus::Fail, "/data has 2 block filesystems");
    assert!(blocks_backup(&c));
    // Pseudo filesystems stacked (autofs + binfmt_misc) are no freeze problem.
    fx.write(
        "proc/self/mountinfo",
        &format!(
            "{MOUNTINFO}40 23 0:41 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw\n41 40 0:42 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n"
        ),
    );
    assert_status(&fx.check("E11"), CheckStatus::Pass, "no block filesystem");
    fx.write("proc/self/mountinfo", "this is not mountinfo\n");
    assert_status(&fx.check("E11"), CheckStatus::Skip, "cannot parse");
    fx.remove("proc/self/mountinfo");
    assert_status(&fx.check("E11"), CheckStatus::Skip, "offline root");
}

#[test]
fn e13_every_status() {
    let fx = Fx::healthy();
    assert_status(&fx.check("E13"), CheckStatus::Pass, "mounted with exec");
    fx.write(
        "proc/self/mountinfo",
        &format!(
            "{MOUNTINFO}50 22 8:2 / /var rw,nosuid,nodev,noexec,relatime - ext4 /dev/sda2 rw\n"
        ),
    )
    .write(
        "etc/fstab",
        "UUID=1 / ext4 defaults 0 1\n/dev/sda2 /var ext4 defaults,noexec 0 2\n",
    );
    let c = fx.check("E13");
    assert_status(&c, CheckStatus::Fail, "/var is mounted noexec");
    assert!(blocks_backup(&c));
    let remedy = c.remedy.clone().unwrap_or_default();
    let fstab = fx.p("etc/fstab").display().to_string();
    assert!(
        remedy.contains(&fstab),
        "names DIR/etc/fstab, not the host's /var: {remedy}"
    );
    assert!(!remedy.contains("remount"), "{remedy}");
    // Exec now, noexec in fstab: passes, and says what the next boot does.
    fx.write(
        "proc/self/mountinfo",
        &format!("{MOUNTINFO}50 22 8:2 / /var rw,relatime - ext4 /dev/sda2 rw\n"),
    );
    let c = fx.check("E13");
    assert_status(&c, CheckStatus::Pass, "with exec");
    assert!(c.details.iter().any(|d| d.contains("next boot")), "{c:#?}");
    fx.write(
        "proc/self/mountinfo",
        "22 1 8:1 / /srv rw - ext4 /dev/sda1 rw\n",
    );
    assert_status(
        &fx.check("E13"),
        CheckStatus::Skip,
        "no mount in mountinfo holds",
    );
    fx.remove("proc/self/mountinfo");
    assert_status(&fx.check("E13"), CheckStatus::Skip, "offline root");
}

#[test]
fn e13_on_the_host_remounts() {
    // The remedy acts on the root given: on / it is the remount itself.
    let c = find(
        &check_environment(&SysRoot::default(), &EnvOptions::default()),
        "E13",
    );
    match c.status {
        CheckStatus::Fail => assert!(
            c.remedy
                .unwrap_or_default()
                .starts_with("mount -o remount,exec")
        ),
        status => assert!(
            matches!(status, CheckStatus::Pass | CheckStatus::Skip),
            "{c:#?}"
        ),
    }
}

#[test]
fn e10_e11_e13_cannot_read_as_nobody() {
    if !needs_root("e10_e11_e13_cannot_read_as_nobody") {
        return;
    }
    let fx = Fx::healthy();
    chmod(&fx.p("etc/fstab"), 0o600);
    chmod(&fx.p("proc/self/mountinfo"), 0o600);
    let checks = fx.checks_as_nobody();
    for id in ["E10", "E11", "E13"] {
        assert_unreadable(&checks, id);
    }
}

// ---- E12 DHCP ----------------------------------------------------------------------------

#[test]
fn e12_passes_for_each_dhcp_source() {
    let sources: [(&str, &str); 6] = [
        (
            "etc/systemd/network/10-eth0.network",
            "[Match]\nName=eth*\n\n[Network]\nDHCP=ipv4\n",
        ),
        (
            "etc/NetworkManager/system-connections/eth0.nmconnection",
            "[connection]\nid=System eth0\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n",
        ),
        (
            "etc/network/interfaces",
            "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n",
        ),
        (
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            "DEVICE=eth0\nONBOOT=yes\nBOOTPROTO=\"dhcp\"\nTYPE=Ethernet\n",
        ),
        (
            "etc/cloud/cloud.cfg.d/90-net.cfg",
            "network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n",
        ),
        (
            "etc/netplan/01-net.yaml",
            "network:\n  version: 2\n  ethernets:\n    nic:\n      match:\n        macaddress: \"00:22:48:AA:BB:CC\"\n      dhcp4: yes\n",
        ),
    ];
    for (file, text) in sources {
        let fx = Fx::healthy();
        fx.remove("etc/netplan/50-cloud-init.yaml")
            .write(file, text);
        let c = fx.check("E12");
        assert_status(&c, CheckStatus::Pass, "uses DHCP");
        assert!(c.message.contains(&format!("/{file}")), "{file}: {c:#?}");
    }
}

#[test]
fn e12_warns_for_each_static_source() {
    let sources: [(&str, &str, &str); 5] = [
        (
            "etc/systemd/network/10-eth0.network",
            "[Match]\nMACAddress=00:22:48:aa:bb:cc\n\n[Network]\nAddress=10.0.0.4/24\nGateway=10.0.0.1\n",
            "DHCP=ipv4",
        ),
        (
            "etc/NetworkManager/system-connections/eth0.nmconnection",
            "[connection]\nid=eth0\ninterface-name=eth0\n\n[ipv4]\nmethod=manual\naddress1=10.0.0.4/24,10.0.0.1\n",
            "method=auto",
        ),
        (
            "etc/network/interfaces.d/50-eth0",
            "auto eth0\niface eth0 inet static\n    address 10.0.0.4/24\n",
            "dhcp/",
        ),
        (
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            "DEVICE=eth0\nBOOTPROTO=none\nIPADDR=10.0.0.4\nPREFIX=24\n",
            "BOOTPROTO=dhcp",
        ),
        (
            "etc/netplan/60-static.yaml",
            "network:\n  ethernets:\n    eth0:\n      dhcp4: false\n      addresses:\n        - 10.0.0.4/24\n",
            "--root-dir",
        ),
    ];
    for (file, text, fix) in sources {
        let fx = Fx::healthy();
        fx.remove("etc/netplan/50-cloud-init.yaml")
            .write(file, text);
        let c = fx.check("E12");
        assert_status(&c, CheckStatus::Warn, "static IPv4 configuration");
        assert!(c.message.contains(&format!("/{file}")), "{file}: {c:#?}");
        let remedy = c.remedy.clone().unwrap_or_default();
        assert!(remedy.contains(fix), "{file}: {remedy}");
        assert!(!blocks_backup(&c));
    }
}

#[test]
fn e12_leases_and_cannot_tell() {
    let fx = Fx::healthy();
    fx.remove("etc/netplan/50-cloud-init.yaml");
    assert_status(&fx.check("E12"), CheckStatus::Skip, "cannot tell");
    fx.write(
        "var/lib/dhcp/dhclient.leases",
        "lease {\n  interface \"eth0\";\n  fixed-address 10.0.0.4;\n}\n",
    );
    assert_status(&fx.check("E12"), CheckStatus::Pass, "holds a DHCP lease");
    fx.remove("var/lib/dhcp");
    fx.write(
        "run/systemd/netif/leases/2",
        "# networkd\nADDRESS=10.0.0.4\nROUTER=10.0.0.1\n",
    );
    let c = fx.check("E12");
    assert_status(&c, CheckStatus::Pass, "holds a DHCP lease");
    assert!(c.details.iter().any(|d| d.contains("10.0.0.4")), "{c:#?}");
    fx.remove("run/systemd/netif/leases/2");
    fx.write(
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
    );
    assert_status(&fx.check("E12"), CheckStatus::Skip, "no default IPv4 route");
    fx.remove("proc/net/route");
    assert_status(&fx.check("E12"), CheckStatus::Skip, "offline root");
}

/// The preflight unit runs with `PrivateNetwork=yes`: its own `/proc/net/route` (the
/// caller's network namespace) has no default route, while PID 1's, the host's, has it. E12
/// must read the host's routing table, or it never looks under the unit.
#[test]
fn e12_reads_the_host_routing_table_not_a_private_network_namespace() {
    let fx = Fx::healthy();
    let route = std::fs::read_to_string(fx.p("proc/net/route")).expect("route");
    fx.write("proc/1/net/route", &route).write(
        "proc/net/route",
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
    );
    let c = fx.check("E12");
    assert_status(
        &c,
        CheckStatus::Pass,
        "eth0 (the default route's interface) uses DHCP",
    );
    // Without PID 1's table (a fixture, hidepid=) the caller's is used.
    fx.remove("proc/1/net/route");
    assert_status(&fx.check("E12"), CheckStatus::Skip, "no default IPv4 route");
}

/// The check `id` of this host as `snapguard preflight` sees it when run through `wrapper` (a
/// command line that ends by running the binary it is given): `None` when the wrapper failed.
fn host_check_through(id: &str, wrapper: &[&str]) -> Option<Value> {
    // The built binary's `preflight --json` (which runs every environment check on this host),
    // started through `wrapper` (e.g. `unshare -n`): the check named `id` from its report.
    let exe = env!("CARGO_BIN_EXE_snapguard");
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    let out = cmd
        .args(["preflight", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
    doc["environment"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

/// The same on the real host: `unshare -n` (what PrivateNetwork=yes does) does not change
/// what E12 says.
#[test]
fn e12_is_the_same_in_a_private_network_namespace() {
    if !needs_root("e12_is_the_same_in_a_private_network_namespace") {
        return;
    }
    let host = host_check_through("E12", &[]).expect("E12 on the host");
    let Some(private) = host_check_through("E12", &["unshare", "-n"]) else {
        common::skip(
            "e12_is_the_same_in_a_private_network_namespace",
            "unshare -n failed",
        );
        return;
    };
    assert_eq!(host, private);
}

#[test]
fn e12_cannot_read_as_nobody() {
    if !needs_root("e12_cannot_read_as_nobody") {
        return;
    }
    let fx = Fx::healthy();
    // NetworkManager keyfiles are root-only: one of them may make eth0 static.
    fx.write(
        "etc/NetworkManager/system-connections/eth0.nmconnection",
        "[connection]\nid=eth0\ninterface-name=eth0\n\n[ipv4]\nmethod=manual\n",
    );
    chmod(
        &fx.p("etc/NetworkManager/system-connections/eth0.nmconnection"),
        0o600,
    );
    assert_status(&fx.check("E12"), CheckStatus::Warn, "static");
    assert_unreadable(&fx.checks_as_nobody(), "E12");
}

// ---- E14 probes --------------------------------------------------------------------------

fn probe_checks(probes: &[String]) -> Vec<Check> {
    let opts = EnvOptions {
        probes: probes.to_vec(),
        probe_timeout: Duration::from_secs(2),
    };
    check_environment(&Fx::empty().root(), &opts)
        .into_iter()
        .filter(|c| c.id == "E14")
        .collect()
}

#[test]
fn e14_every_status() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let open = listener.local_addr().expect("addr").port();
    // A port that was free a moment ago: bound, then closed, so nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        l.local_addr().expect("addr").port()
    };
    let checks = probe_checks(&[
        format!("127.0.0.1:{open}"),
        format!("localhost:{open}"),
        format!("127.0.0.1:{closed}"),
        "no-port".into(),
        "[::1:80".into(),
        "host:99999".into(),
        "::1:80".into(),
        ":80".into(),
    ]);
    assert_eq!(checks.len(), 8, "one check per probe: {checks:#?}");
    assert_status(&checks[0], CheckStatus::Pass, "accepts TCP connections");
    assert_status(&checks[1], CheckStatus::Pass, "accepts TCP connections");
    assert_status(&checks[2], CheckStatus::Fail, "cannot be reached");
    assert!(checks[2].message.contains("refused"), "{:#?}", checks[2]);
    assert!(blocks_backup(&checks[2]));
    for (c, why) in checks[3..].iter().zip([
        "no :PORT",
        "[ADDRESS]:PORT",
        "not a number from 1 to 65535",
        "[ADDRESS]:PORT",
        "no host",
    ]) {
        assert_status(c, CheckStatus::Fail, "invalid --probe");
        assert!(c.message.contains(why), "{c:#?}");
    }
    let none = probe_checks(&[]);
    assert_eq!(none.len(), 1);
    assert_status(&none[0], CheckStatus::Skip, "no network check");
    drop(listener);
}

#[test]
fn e14_times_out_on_a_silent_address() {
    // 192.0.2.0/24 (TEST-NET-1) is never routed: the connect either times out or fails at
    // once (no route), and never takes much longer than the timeout.
    let started = std::time::Instant::now();
    let opts = EnvOptions {
        probes: vec!["192.0.2.1:9".into()],
        probe_timeout: Duration::from_millis(300),
    };
    let c = find(&check_environment(&Fx::empty().root(), &opts), "E14");
    assert_eq!(c.status, CheckStatus::Fail, "{c:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---- blocks_backup -----------------------------------------------------------------------

#[test]
fn only_failures_of_blocking_checks_block() {
    let mk = |id: &'static str, status| Check::new(id, "t", status, "m");
    for id in ["E1", "E2", "E4", "E7", "E11", "E13", "E14"] {
        assert!(blocks_backup(&mk(id, CheckStatus::Fail)), "{id}");
        for s in [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Skip] {
            assert!(!blocks_backup(&mk(id, s)), "{id} {s:?}");
        }
    }
    for id in ["E3", "E5", "E6", "E8", "E9", "E10", "E12", "S1"] {
        assert!(!blocks_backup(&mk(id, CheckStatus::Fail)), "{id}");
    }
}
