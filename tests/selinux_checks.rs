//! `snapguard selinux` on fixture roots (`--root`): every status of every check (S1–S11,
//! L1–L3), the verdict, the exit codes, and every document validated against
//! `docs/json-schema/selinux-v1.schema.json`. Plus the run on this machine.
//!
//! Labels are real `security.selinux` xattrs, which root can set without an SELinux kernel.
//! Tests that need them skip with a message when the xattr cannot be set (not root, or a
//! filesystem without xattrs), and fail instead when `SNAPGUARD_REQUIRE_PRIVILEGED=1`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

const SCHEMA: &str = "docs/json-schema/selinux-v1.schema.json";
const AGENT_PID: u32 = 1234;
const HANDLER_PID: u32 = 1240;
const SNAPSHOT_EXT: &str =
    "var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0";
const VAR_LIB: &str = "system_u:object_r:var_lib_t:s0";
const FILE_CONTEXTS: &str = "\
/.*\tsystem_u:object_r:default_t:s0
/tmp(/.*)?\tsystem_u:object_r:tmp_t:s0
/usr/sbin(/.*)?\tsystem_u:object_r:bin_t:s0
/var/lib(/.*)?\tsystem_u:object_r:var_lib_t:s0
/var/lib/selinux(/.*)?\tsystem_u:object_r:semanage_store_t:s0
";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A fixture root in a temp dir.
struct Fx {
    dir: TempDir,
}

impl Fx {
    fn empty() -> Self {
        Fx {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self
    }

    fn mkdir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.p(rel)).expect("mkdir -p");
        self
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

    /// Set `security.selinux` (with the trailing NUL the kernel stores).
    fn label(&self, rel: &str, context: &str) -> &Self {
        let mut value = context.as_bytes().to_vec();
        value.push(0);
        xattr::set(self.p(rel), "security.selinux", &value)
            .unwrap_or_else(|e| panic!("setting security.selinux on {rel}: {e}"));
        self
    }

    fn unlabel(&self, rel: &str) -> &Self {
        let _ = xattr::remove(self.p(rel), "security.selinux");
        self
    }

    /// A live machine whose kernel has SELinux (selinuxfs registered, an active LSM).
    fn live_kernel() -> Self {
        let fx = Fx::empty();
        fx.write(
            "proc/cmdline",
            "BOOT_IMAGE=/vmlinuz-5.14 root=/dev/sda2 ro crashkernel=auto\n",
        )
        .write(
            "proc/filesystems",
            "nodev\tsysfs\nnodev\tproc\nnodev\tselinuxfs\n\text4\n\txfs\n",
        )
        .write(
            "sys/kernel/security/lsm",
            "lockdown,capability,yama,selinux,bpf",
        )
        .write("proc/self/mountinfo", mountinfo(false, false))
        .write(
            "etc/fstab",
            "UUID=1 / xfs defaults 0 0\nUUID=2 /boot xfs defaults 0 0\n",
        );
        fx
    }

    /// Enforcing targeted policy, agent unconfined, labels right, no denials: all pass.
    fn enforcing() -> Self {
        let fx = Fx::live_kernel();
        fx.write("sys/fs/selinux/enforce", "1")
            .write("sys/fs/selinux/booleans/deny_execmem", "0 0")
            .write(
                "etc/selinux/config",
                "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n",
            )
            .write("etc/selinux/semanage.conf", "module-store = direct\nexpand-check=0\n")
            .write("etc/selinux/targeted/contexts/files/file_contexts", FILE_CONTEXTS)
            .write("etc/selinux/targeted/contexts/files/file_contexts.subs_dist", "/sbin /usr/sbin\n")
            .write(&module("100", "base"), "(type var_lib_t)")
            .write(&module("100", "unconfined"), "(type unconfined_service_t)")
            .write(&module("100", "apache"), "(type httpd_t)")
            .mkdir("var/lib/selinux/targeted/active/modules/disabled")
            .write("var/lib/selinux/targeted/active/modules/disabled/amtu", "")
            .write(
                "var/log/audit/audit.log",
                format!("{}\n{}\n", noise_line(now() - 600), policyload_line(now() - 500)),
            );
        fx.agent(
            AGENT_PID,
            &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
            "system_u:system_r:unconfined_service_t:s0",
        )
        .agent(
            HANDLER_PID,
            &[
                "python3",
                "-u",
                "bin/WALinuxAgent-2.9.1.1-py3.8.egg",
                "-run-exthandlers",
            ],
            "system_u:system_r:unconfined_service_t:s0",
        )
        // Not the agent: mentions it only.
        .agent(
            77,
            &["tail", "-f", "/var/log/waagent.log"],
            "unconfined_u:unconfined_r:unconfined_t:s0",
        );
        fx.waagent_tree();
        fx
    }

    /// The same machine's disk mounted elsewhere: no /proc, no /sys.
    fn offline_enforcing() -> Self {
        let fx = Fx::enforcing();
        fx.remove("proc").remove("sys");
        fx
    }

    fn agent(&self, pid: u32, argv: &[&str], context: &str) -> &Self {
        let mut cmdline = argv.join("\0");
        cmdline.push('\0');
        self.write(&format!("proc/{pid}/cmdline"), cmdline)
            .write(&format!("proc/{pid}/attr/current"), format!("{context}\0"))
    }

    /// /var/lib/waagent with the extension's files, labelled var_lib_t; /usr/sbin/waagent
    /// bin_t. Only where labels can be set: elsewhere there is no tree, and S8 skips.
    fn waagent_tree(&self) -> &Self {
        if !labels_supported(self.root()) {
            return self;
        }
        for rel in [
            "var/lib/waagent/waagent_status.json",
            "var/lib/waagent/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.8.egg",
            &format!("{SNAPSHOT_EXT}/HandlerManifest.json"),
            &format!("{SNAPSHOT_EXT}/main/handle.sh"),
            &format!("{SNAPSHOT_EXT}/main/safefreeze/bin/safefreeze"),
        ] {
            self.write(rel, "x");
        }
        self.write("usr/sbin/waagent", "#!/usr/bin/python3\n");
        for rel in [
            "var/lib/waagent",
            "var/lib/waagent/waagent_status.json",
            "var/lib/waagent/WALinuxAgent-2.9.1.1",
            "var/lib/waagent/WALinuxAgent-2.9.1.1/bin",
            "var/lib/waagent/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.8.egg",
            SNAPSHOT_EXT,
            &format!("{SNAPSHOT_EXT}/HandlerManifest.json"),
            &format!("{SNAPSHOT_EXT}/main"),
            &format!("{SNAPSHOT_EXT}/main/handle.sh"),
            &format!("{SNAPSHOT_EXT}/main/safefreeze"),
            &format!("{SNAPSHOT_EXT}/main/safefreeze/bin"),
            &format!("{SNAPSHOT_EXT}/main/safefreeze/bin/safefreeze"),
        ] {
            self.label(rel, VAR_LIB);
        }
        self.label("usr/sbin/waagent", "system_u:object_r:bin_t:s0")
    }

    fn audit(&self, lines: &[String]) -> &Self {
        let mut text = String::new();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        self.write("var/log/audit/audit.log", text)
    }

    fn run(&self) -> (Value, i32) {
        run_root(self.root())
    }
}

fn module(priority: &str, name: &str) -> String {
    format!("var/lib/selinux/targeted/active/modules/{priority}/{name}/cil")
}

fn mountinfo(var_noexec: bool, selinuxfs_ro: bool) -> String {
    let mut s = String::from(
        "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/mapper/rhel-root rw,attr2,inode64\n\
         23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw\n\
         24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:3 - sysfs sysfs rw,seclabel\n",
    );
    s.push_str(&format!(
        "25 24 0:20 / /sys/fs/selinux {},nosuid,noexec,relatime shared:4 - selinuxfs selinuxfs rw\n",
        if selinuxfs_ro { "ro" } else { "rw" }
    ));
    if var_noexec {
        s.push_str("40 22 253:3 / /var rw,nosuid,nodev,noexec,relatime shared:20 - xfs /dev/mapper/rhel-var rw,seclabel\n");
    } else {
        s.push_str(
            "40 22 253:3 / /var rw,relatime shared:20 - xfs /dev/mapper/rhel-var rw,seclabel\n",
        );
    }
    s.push_str("41 40 253:4 / /var/log rw,nosuid,nodev,noexec,relatime shared:21 - xfs /dev/mapper/rhel-log rw\n");
    s
}

/// Unrelated denial: httpd reading a home directory.
fn noise_line(t: u64) -> String {
    format!(
        "type=AVC msg=audit({t}.100:900): avc:  denied  {{ read }} for  pid=811 comm=\"httpd\" name=\"index.html\" dev=\"dm-0\" ino=1234 scontext=system_u:system_r:httpd_t:s0 tcontext=unconfined_u:object_r:user_home_t:s0 tclass=file permissive=0"
    )
}

fn policyload_line(t: u64) -> String {
    format!("type=MAC_POLICY_LOAD msg=audit({t}.200:901): auid=0 ses=3 lsm=selinux res=1")
}

/// An execute denial of the snapshot extension's handle.sh by `domain`.
fn handle_sh_denial(t: u64, serial: u64, domain: &str, permissive: u8) -> String {
    format!(
        "type=AVC msg=audit({t}.123:{serial}): avc:  denied  {{ execute }} for  pid=3120 comm=\"sh\" path=\"/{SNAPSHOT_EXT}/main/handle.sh\" dev=\"dm-3\" ino=393281 scontext=system_u:system_r:{domain}:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive={permissive}"
    )
}

/// Can this process set `security.selinux` in `dir`? (root, and a filesystem with xattrs)
fn labels_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    if std::fs::write(&probe, b"").is_err() {
        return false;
    }
    let ok = xattr::set(&probe, "security.selinux", b"system_u:object_r:tmp_t:s0\0").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// True when the test can go on; prints why not otherwise (fails under
/// SNAPGUARD_REQUIRE_PRIVILEGED=1).
fn need_labels(fx: &Fx, test: &str) -> bool {
    if labels_supported(fx.root()) {
        return true;
    }
    common::skip(
        test,
        "cannot set security.selinux xattrs here (needs root and xattr support)",
    );
    false
}

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA);
    let text = std::fs::read_to_string(&path).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::draft202012::new(&schema).expect("a valid draft 2020-12 schema")
}

fn assert_valid(doc: &Value) {
    let v = validator();
    let errs: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("  at '{}': {e}", e.instance_path))
        .collect();
    assert!(
        errs.is_empty(),
        "document does not match {SCHEMA}:\n{}\n{doc:#}",
        errs.join("\n")
    );
}

/// `snapguard selinux --json --root ROOT`, schema-checked, with the exit code checked
/// against the statuses.
fn run_root(root: &Path) -> (Value, i32) {
    let out = common::run_snapguard(
        [
            "selinux".as_ref(),
            "--json".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
        ],
        common::SCAN_TIMEOUT,
    );
    let doc = out.json();
    assert_valid(&doc);
    let statuses: Vec<&str> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["status"].as_str().expect("status"))
        .collect();
    let expected = if statuses.contains(&"fail") {
        2
    } else if doc["excluded"].is_null() {
        3
    } else if statuses.contains(&"warn") {
        1
    } else {
        0
    };
    assert_eq!(
        out.exit, expected,
        "exit code vs statuses {statuses:?}\n{doc:#}"
    );
    let ids: Vec<&str> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "L1", "L2", "L3"
        ]
    );
    (doc, out.exit)
}

fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {doc:#}"))
}

/// Assert the status of a check, and that its message contains `needle`.
#[track_caller]
fn expect(doc: &Value, id: &str, status: &str, needle: &str) {
    let c = check(doc, id);
    assert_eq!(
        c["status"], status,
        "{id} status\n{c:#}\n--- whole document\n{doc:#}"
    );
    let msg = c["message"].as_str().expect("message");
    assert!(
        msg.contains(needle),
        "{id} message {msg:?} lacks {needle:?}\n{doc:#}"
    );
}

/// `host_command` as snapguard prints it for the document's root: the same on `/`, made to
/// act on the root otherwise (`remedy_for_another_root_acts_on_it` checks the forms).
fn on_root(doc: &Value, host_command: &str) -> String {
    let root = snapguard::root::SysRoot::new(doc["root"].as_str().expect("root"));
    let policy = doc["policy_type"].as_str().unwrap_or("targeted");
    snapguard::selinux::remedy::for_root(&root, policy, host_command)
}

fn remedy(doc: &Value, id: &str) -> String {
    check(doc, id)["remedy"]
        .as_str()
        .unwrap_or_else(|| panic!("{id} has no remedy: {doc:#}"))
        .to_string()
}

// --- whole-run scenarios -----------------------------------------------------------------

#[test]
fn this_machine_reports_selinux_absent_and_exits_0() {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems.contains("selinuxfs") {
        common::not_here(
            "this_machine_reports_selinux_absent_and_exits_0",
            "this kernel has SELinux; the test is for a machine without it",
        );
        return;
    }
    let out = common::run_snapguard(["selinux", "--json"], common::SCAN_TIMEOUT);
    let doc = out.json();
    assert_valid(&doc);
    assert_eq!(doc["mode"], "absent", "{doc:#}");
    assert_eq!(doc["excluded"], true);
    expect(&doc, "S1", "pass", "no SELinux");
    for id in ["S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11"] {
        assert_eq!(check(&doc, id)["status"], "skip", "{id}");
    }
    assert_eq!(out.exit, 0, "{doc:#}");
    // Human output says it in its first line.
    let human = common::run_snapguard(["selinux"], common::SCAN_TIMEOUT);
    assert_eq!(human.exit, 0);
    assert!(
        human
            .stdout
            .starts_with("snapguard selinux: excluded: SELinux is not in use"),
        "{}",
        human.stdout
    );
}

#[test]
fn enforcing_with_the_agent_unconfined_passes_everything() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "all pass") {
        return;
    }
    let (doc, exit) = fx.run();
    assert_eq!(exit, 0, "{doc:#}");
    assert_eq!(doc["excluded"], true);
    assert_eq!(doc["mode"], "enforcing");
    assert_eq!(doc["policy_type"], "targeted");
    for c in doc["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "pass", "{c:#}");
        assert!(c["remedy"].is_null(), "{c:#}");
    }
    expect(&doc, "S6", "pass", "unconfined as unconfined_service_t");
    // The tail of waagent.log is not mistaken for the agent.
    let details = check(&doc, "S6")["details"].to_string();
    assert!(
        details.contains("pid 1234 (daemon)") && details.contains("pid 1240 (extension handler)"),
        "{details}"
    );
    assert!(!details.contains("pid 77"), "{details}");
    expect(&doc, "S8", "pass", "all 13 entries");
    expect(
        &doc,
        "S9",
        "pass",
        "no denial of the agent in the last 7 days (1 AVC record",
    );
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .starts_with("excluded: SELinux is enforcing and the agent runs unconfined"),
        "{}",
        doc["verdict"]
    );
}

#[test]
fn selinux_absent_in_three_ways_passes_s1_and_skips_the_rest() {
    for (what, setup) in [
        (
            "no selinuxfs",
            (|fx: &Fx| {
                fx.write("proc/filesystems", "nodev\tsysfs\n\text4\n");
            }) as fn(&Fx),
        ),
        ("selinux=0", |fx: &Fx| {
            fx.write("proc/cmdline", "ro selinux=0\n");
        }),
        ("not an active LSM", |fx: &Fx| {
            fx.write("sys/kernel/security/lsm", "lockdown,capability,apparmor");
        }),
    ] {
        let fx = Fx::enforcing();
        setup(&fx);
        let (doc, exit) = fx.run();
        assert_eq!(doc["mode"], "absent", "{what}");
        assert_eq!(check(&doc, "S1")["status"], "pass", "{what}");
        assert_eq!(check(&doc, "S2")["status"], "skip", "{what}");
        assert_eq!(doc["excluded"], true, "{what}");
        assert!(doc["policy_type"].is_null());
        assert_eq!(exit, 0, "{what}: {doc:#}");
    }
}

#[test]
fn permissive_warns_but_is_excluded() {
    let fx = Fx::enforcing();
    fx.write("sys/fs/selinux/enforce", "0");
    let (doc, exit) = fx.run();
    expect(&doc, "S2", "warn", "permissive");
    // config says enforcing, runtime permissive, no enforcing=0: the next boot differs.
    expect(
        &doc,
        "S3",
        "warn",
        "running permissive but SELINUX=enforcing",
    );
    assert_eq!(doc["mode"], "permissive");
    assert_eq!(doc["excluded"], true);
    assert_eq!(exit, 1);
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .starts_with("excluded: SELinux is permissive")
    );
}

#[test]
fn permissive_caps_failures_at_warn() {
    let fx = Fx::enforcing();
    fx.write("sys/fs/selinux/enforce", "0")
        .write("proc/cmdline", "ro enforcing=0\n")
        .remove("var/lib/selinux/targeted/active/modules/100/unconfined");
    let (doc, exit) = fx.run();
    expect(&doc, "S3", "pass", "enforcing=0");
    expect(&doc, "S5", "warn", "(would block once enforcing)");
    assert_eq!(doc["excluded"], true);
    assert_eq!(exit, 1);
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .contains("to review before enforcing: S5"),
        "{}",
        doc["verdict"]
    );
}

#[test]
fn disabled_and_container_modes() {
    // Kernel support, but no policy loaded.
    let fx = Fx::enforcing();
    fx.remove("sys/fs/selinux")
        .write(
            "proc/self/mountinfo",
            mountinfo(false, false)
                .lines()
                .filter(|l| !l.contains("selinuxfs"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .write(
            "etc/selinux/config",
            "SELINUX=disabled\nSELINUXTYPE=targeted\n",
        );
    let (doc, exit) = fx.run();
    expect(&doc, "S2", "pass", "SELinux disabled");
    expect(&doc, "S3", "pass", "configured disabled as running");
    expect(&doc, "S4", "skip", "disabled");
    assert_eq!(doc["mode"], "disabled");
    assert_eq!(exit, 0);

    // Same, but the config turns it on at the next boot.
    fx.write("etc/selinux/config", "SELINUX=enforcing\n");
    let (doc, exit) = fx.run();
    expect(&doc, "S3", "warn", "the next boot turns it on");
    assert_eq!(exit, 1);

    // selinuxfs read-only: a container.
    let fx = Fx::enforcing();
    fx.write("proc/self/mountinfo", mountinfo(false, true));
    let (doc, exit) = fx.run();
    expect(&doc, "S2", "skip", "read-only");
    expect(&doc, "S3", "skip", "host");
    assert_eq!(doc["mode"], "container");
    assert_eq!(exit, 0);
}

#[test]
fn bad_roots_cannot_run() {
    let out = common::run_snapguard(
        ["selinux", "--root", "/nonexistent/snapguard-root"],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(
        out.stderr.contains("/nonexistent/snapguard-root"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    let fx = Fx::empty();
    fx.write("file", "x");
    let out = common::run_snapguard(
        [
            "selinux".as_ref(),
            "--root".as_ref(),
            fx.p("file").as_os_str(),
        ],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 3, "{out:?}");
    assert!(out.stderr.contains("/file"), "{}", out.stderr);
}

#[test]
fn help_teaches_checks_privileges_and_exit_codes() {
    let out = common::run_snapguard(["selinux", "--help"], common::SCAN_TIMEOUT);
    assert_eq!(out.exit, 0);
    for needle in [
        "S1",
        "S11",
        "L3",
        "Needs root",
        "Exit status",
        "3  UNKNOWN",
        "--root /mnt/rescue",
    ] {
        assert!(
            out.stdout.contains(needle),
            "--help lacks {needle:?}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn human_output_leads_with_the_verdict_then_the_fixes() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "human output") {
        return;
    }
    fx.write("sys/fs/selinux/booleans/deny_execmem", "1 1");
    let out = common::run_snapguard(
        ["selinux".as_ref(), "--root".as_ref(), fx.root().as_os_str()],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 1, "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("snapguard selinux: "),
        "{}",
        out.stdout
    );
    let fix = out.stdout.find("To fix:").expect("a To fix section");
    let table = out.stdout.find("Checks:").expect("a Checks section");
    assert!(fix < table);
    assert!(
        out.stdout.contains(&format!(
            "fix: chroot {} semanage boolean -N -m --off deny_execmem",
            fx.root().display()
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .trim_end()
            .ends_with("WARNING: 0 fail, 1 warn, 13 pass, 0 skip"),
        "{}",
        out.stdout
    );
}

// --- S3, S4 --------------------------------------------------------------------------------

#[test]
fn s3_relabel_pending_and_missing_config() {
    let fx = Fx::enforcing();
    fx.write(".autorelabel", "");
    let (doc, _) = fx.run();
    expect(&doc, "S3", "warn", "/.autorelabel exists");

    let fx = Fx::enforcing();
    fx.remove("etc/selinux/config");
    let (doc, _) = fx.run();
    expect(&doc, "S3", "warn", "/etc/selinux/config is missing");
    // SELINUXTYPE defaults to targeted.
    assert_eq!(doc["policy_type"], "targeted");

    let fx = Fx::enforcing();
    fx.write(
        "etc/selinux/config",
        "SELINUX=permissive\nSELINUXTYPE=targeted\n",
    );
    let (doc, _) = fx.run();
    expect(
        &doc,
        "S3",
        "warn",
        "running enforcing but SELINUX=permissive",
    );
}

#[test]
fn s4_mls_and_missing_policy_directory() {
    let fx = Fx::enforcing();
    fx.write("etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=mls\n")
        .mkdir("etc/selinux/mls/contexts/files")
        .write(
            "var/lib/selinux/mls/active/modules/100/base/cil",
            "(type var_lib_t)",
        );
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:init_t:s0-s15:c0.c1023",
    );
    fx.remove(&format!("proc/{HANDLER_PID}"));
    let (doc, exit) = fx.run();
    expect(&doc, "S4", "warn", "policy mls");
    expect(&doc, "S5", "warn", "as always under mls");
    assert_eq!(
        remedy(&doc, "S5"),
        on_root(&doc, "semanage permissive -a init_t")
    );
    expect(&doc, "S6", "warn", "the agent runs confined as init_t");
    assert_eq!(
        remedy(&doc, "S6"),
        on_root(&doc, "semanage permissive -a init_t")
    );
    assert_eq!(doc["excluded"], false);
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .starts_with("not excluded: the agent runs confined as init_t (S6)"),
        "{}",
        doc["verdict"]
    );
    assert_eq!(exit, 1);

    let fx = Fx::enforcing();
    fx.write(
        "etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPE=strict\n",
    );
    let (doc, _) = fx.run();
    expect(&doc, "S4", "warn", "/etc/selinux/strict/ does not exist");
}

// --- S5, S7, S11: the module store --------------------------------------------------------

#[test]
fn s5_unconfined_module_disabled_fails() {
    let fx = Fx::enforcing();
    fx.write(
        "var/lib/selinux/targeted/active/modules/disabled/unconfined",
        "",
    );
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:init_t:s0",
    );
    let (doc, exit) = fx.run();
    expect(&doc, "S5", "fail", "the unconfined module is disabled");
    assert_eq!(remedy(&doc, "S5"), on_root(&doc, "semodule -e unconfined"));
    assert!(
        check(&doc, "S5")["details"]
            .to_string()
            .contains(&on_root(&doc, "semanage permissive -a init_t"))
    );
    expect(&doc, "S6", "warn", "confined as init_t");
    assert_eq!(doc["excluded"], false);
    assert_eq!(exit, 2);
}

#[test]
fn s5_unconfined_module_removed_fails_and_store_missing_skips() {
    let fx = Fx::enforcing();
    fx.remove("var/lib/selinux/targeted/active/modules/100/unconfined");
    let (doc, exit) = fx.run();
    expect(&doc, "S5", "fail", "is not installed");
    assert_eq!(exit, 2);

    let fx = Fx::enforcing();
    fx.remove("var/lib/selinux");
    let (doc, _) = fx.run();
    for id in ["S5", "S7", "S11"] {
        expect(&doc, id, "skip", "no module store found");
    }
}

#[test]
fn s5_rhel7_layout_and_store_root_from_semanage_conf() {
    // RHEL 7: no /var/lib/selinux, the store is under /etc/selinux.
    let fx = Fx::enforcing();
    fx.remove("var/lib/selinux")
        .write(
            "etc/selinux/targeted/active/modules/100/unconfined/cil",
            "x",
        )
        .write(
            "etc/selinux/targeted/active/modules/400/permissive_foo_t/cil",
            "(typepermissive foo_t)",
        );
    let (doc, exit) = fx.run();
    expect(&doc, "S5", "pass", "installed (priority 100)");
    expect(&doc, "S7", "pass", "customised permissive domains: foo_t");
    assert_eq!(exit, 0, "{doc:#}");

    // store-root moved by semanage.conf.
    let fx = Fx::enforcing();
    fx.remove("var/lib/selinux")
        .write(
            "etc/selinux/semanage.conf",
            "# moved\nstore-root = /srv/selinux-store\n",
        )
        .write(
            "srv/selinux-store/targeted/active/modules/100/base/cil",
            "x",
        )
        .mkdir("srv/selinux-store/targeted/active/modules/disabled")
        .write(
            "srv/selinux-store/targeted/active/modules/disabled/unconfined",
            "",
        );
    let (doc, _) = fx.run();
    expect(
        &doc,
        "S5",
        "fail",
        "/srv/selinux-store/targeted/active/modules/disabled/unconfined",
    );
}

#[test]
fn s7_and_s11_list_permissive_domains_and_local_modules() {
    let fx = Fx::enforcing();
    // semanage permissive -a writes bzip2-compressed CIL.
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    std::io::Write::write_all(&mut enc, b"(typepermissive httpd_t)").unwrap();
    fx.write(&module("400", "permissive_httpd_t"), enc.finish().unwrap())
        .write(
            "var/lib/selinux/targeted/active/modules/400/permissive_httpd_t/lang_ext",
            "cil",
        );
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    std::io::Write::write_all(
        &mut enc,
        b"(typeattributeset cil_gen_require fsadm_t)\n(allow fsadm_t var_lib_t (file (execute)))\n",
    )
    .unwrap();
    fx.write(&module("400", "waagent_local"), enc.finish().unwrap())
        .write(
            &module("400", "mysite"),
            "(allow httpd_t etc_t (file (read)))",
        );
    let (doc, _) = fx.run();
    expect(&doc, "S7", "pass", "customised permissive domains: httpd_t");
    expect(
        &doc,
        "S11",
        "pass",
        "waagent_local at 400 (mentions var_lib_t)",
    );
    expect(&doc, "S11", "pass", "mysite at 400");
    assert!(
        check(&doc, "S11")["details"]
            .to_string()
            .contains("allow fsadm_t var_lib_t")
    );

    let fx = Fx::enforcing();
    let (doc, _) = fx.run();
    expect(&doc, "S7", "pass", "no customised permissive domains");
    expect(&doc, "S11", "pass", "no local modules");
}

// --- S6, S9: the agent's domain and its denials -------------------------------------------

#[test]
fn s6_confined_agent_with_blocking_denials_fails() {
    let fx = Fx::enforcing();
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:waagent_t:s0",
    )
    .agent(
        HANDLER_PID,
        &[
            "python3",
            "-u",
            "bin/WALinuxAgent-2.9.1.1-py3.8.egg",
            "-run-exthandlers",
        ],
        "system_u:system_r:waagent_t:s0",
    );
    let t = now() - 3600;
    fx.audit(&[
        noise_line(t),
        handle_sh_denial(t + 1, 4521, "waagent_t", 0),
        format!("type=SYSCALL msg=audit({}.123:4521): arch=c000003e syscall=59 success=no exit=-13 comm=\"sh\" exe=\"/usr/bin/bash\"", t + 1),
        // Too old: outside the 7-day window.
        handle_sh_denial(now() - 30 * 86_400, 17, "waagent_t", 0),
    ]);
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S6",
        "fail",
        "the agent runs confined as waagent_t, and 1 of its denials were enforced",
    );
    assert_eq!(
        remedy(&doc, "S6"),
        on_root(&doc, "semanage permissive -a waagent_t")
    );
    expect(
        &doc,
        "S9",
        "fail",
        "1 enforced denial(s) of the agent in the last 7 days",
    );
    expect(
        &doc,
        "S9",
        "fail",
        "{ execute } comm=sh /var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9220.0/main/handle.sh waagent_t -> var_lib_t tclass=file permissive=0",
    );
    let r = remedy(&doc, "S9");
    assert!(r.starts_with("chroot "), "{r}");
    assert!(
        r.contains(
            "ausearch -m AVC,USER_AVC -ts week-ago -c sh --raw | audit2allow -M waagent_local"
        ),
        "{r}"
    );
    assert!(
        r.contains("less waagent_local.te") && r.ends_with("semodule -n -i waagent_local.pp'"),
        "{r}"
    );
    assert_eq!(doc["excluded"], false);
    let verdict = doc["verdict"].as_str().unwrap();
    assert_eq!(
        verdict,
        "not excluded: the agent runs confined as waagent_t (S6); 1 enforced denial(s) of the agent in the last 7 days (S9)"
    );
    assert_eq!(exit, 2);

    // Human output: FAILs first, each with its fix.
    let out = common::run_snapguard(
        ["selinux".as_ref(), "--root".as_ref(), fx.root().as_os_str()],
        common::SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 2);
    assert!(
        out.stdout.contains(&format!(
            "fix: {}",
            on_root(&doc, "semanage permissive -a waagent_t")
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("CRITICAL: 2 fail"), "{}", out.stdout);
}

/// The machine of the README's example: the agent confined as waagent_t, and one of its
/// denials enforced.
fn confined_agent_with_a_denial() -> Fx {
    let fx = Fx::enforcing();
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:waagent_t:s0",
    )
    .agent(
        HANDLER_PID,
        &[
            "python3",
            "-u",
            "bin/WALinuxAgent-2.9.1.1-py3.8.egg",
            "-run-exthandlers",
        ],
        "system_u:system_r:waagent_t:s0",
    );
    fx.audit(&[handle_sh_denial(now() - 3600, 4521, "waagent_t", 0)]);
    fx
}

/// The JSON example in the README's `snapguard selinux` section.
fn readme_json_example() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let section = &readme[readme
        .find("## `snapguard selinux`")
        .expect("selinux section")..];
    let start = section
        .find("```json\n")
        .expect("a json block in the selinux section")
        + 8;
    let end = start + section[start..].find("```").expect("end of the json block");
    serde_json::from_str(&section[start..end])
        .unwrap_or_else(|e| panic!("the README's selinux JSON example is not JSON: {e}"))
}

/// Every key path of a document (`checks[].remedy`), array items merged.
fn key_paths(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = format!("{prefix}{k}");
                out.insert(path.clone());
                key_paths(child, &format!("{path}."), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{}[].", prefix.trim_end_matches('.')), out);
            }
        }
        _ => {}
    }
}

/// The README's example is valid against the schema and is what a run on that machine
/// prints: the same keys, checks, statuses, verdict and messages (root, details and the
/// remedies' root aside: the example is of `/`).
#[test]
fn the_readme_json_example_is_real_output() {
    let example = readme_json_example();
    assert_valid(&example);
    let fx = confined_agent_with_a_denial();
    let (real, exit) = fx.run();
    assert_eq!(exit, 2);
    let (mut want, mut got) = (Default::default(), Default::default());
    key_paths(&real, "", &mut want);
    key_paths(&example, "", &mut got);
    assert_eq!(
        got, want,
        "key paths of the README example vs a real run\n{real:#}"
    );
    for key in [
        "mode",
        "policy_type",
        "status",
        "summary",
        "excluded",
        "verdict",
        "unreadable",
    ] {
        assert_eq!(example[key], real[key], "{key}\n{real:#}");
    }
    let checks = |d: &Value| d["checks"].as_array().expect("checks").clone();
    // The denial's time is the fixture's (an hour ago): digits are not compared.
    let masked = |v: &Value| v.to_string().replace(|c: char| c.is_ascii_digit(), "0");
    for (e, r) in checks(&example).iter().zip(checks(&real).iter()) {
        for key in ["id", "title", "status", "message"] {
            assert_eq!(
                masked(&e[key]),
                masked(&r[key]),
                "{key} of {}\n{r:#}",
                r["id"]
            );
        }
        assert_eq!(
            e["details"].as_array().map(Vec::len),
            r["details"].as_array().map(Vec::len),
            "details of {}",
            r["id"]
        );
        let host = e["remedy"].as_str().map(|h| on_root(&real, h));
        assert_eq!(
            host.as_deref(),
            r["remedy"].as_str(),
            "remedy of {}",
            r["id"]
        );
    }
}

#[test]
fn s6_the_same_domain_made_permissive_passes() {
    let fx = Fx::enforcing();
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:waagent_t:s0",
    )
    .agent(
        HANDLER_PID,
        &[
            "python3",
            "-u",
            "bin/WALinuxAgent-2.9.1.1-py3.8.egg",
            "-run-exthandlers",
        ],
        "system_u:system_r:waagent_t:s0",
    );
    let t = now() - 3600;
    // The enforced denial from before, and one logged after `semanage permissive -a waagent_t`.
    fx.audit(&[
        handle_sh_denial(t, 4521, "waagent_t", 0),
        handle_sh_denial(t + 60, 4600, "waagent_t", 1),
    ]);
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    std::io::Write::write_all(&mut enc, b"(typepermissive waagent_t)").unwrap();
    fx.write(
        &module("400", "permissive_waagent_t"),
        enc.finish().unwrap(),
    );
    let (doc, exit) = fx.run();
    expect(&doc, "S6", "pass", "in the permissive domain waagent_t");
    expect(
        &doc,
        "S7",
        "pass",
        "the agent's domain waagent_t is among them",
    );
    expect(
        &doc,
        "S9",
        "pass",
        "2 denial(s) of the agent in the last 7 days, all from waagent_t which is now a permissive domain",
    );
    assert_eq!(doc["excluded"], true);
    assert_eq!(exit, 0, "{doc:#}");
}

#[test]
fn s6_agent_not_running_warns_and_offline_skips() {
    let fx = Fx::enforcing();
    fx.remove(&format!("proc/{AGENT_PID}"))
        .remove(&format!("proc/{HANDLER_PID}"));
    let (doc, exit) = fx.run();
    expect(&doc, "S6", "warn", "not running");
    assert_eq!(
        remedy(&doc, "S6"),
        on_root(&doc, "systemctl enable --now waagent.service")
    );
    assert_eq!(doc["excluded"], false);
    assert_eq!(exit, 1);
    fx.write("usr/lib/systemd/system/walinuxagent.service", "[Unit]\n");
    let (doc, _) = fx.run();
    assert_eq!(
        remedy(&doc, "S6"),
        on_root(&doc, "systemctl enable --now walinuxagent.service")
    );
}

#[test]
fn s6_unreadable_context_skips() {
    let fx = Fx::enforcing();
    fx.write(&format!("proc/{AGENT_PID}/attr/current"), "unconfined\n")
        .write(&format!("proc/{HANDLER_PID}/attr/current"), "unconfined\n");
    let (doc, _) = fx.run();
    expect(&doc, "S6", "skip", "no SELinux context could be read");
}

// --- without the rights to look (a monitoring agent's user) -------------------------------

/// `snapguard selinux --json --root ROOT` as nobody (uid and gid 65534, no groups), as a
/// monitoring agent's user runs it. Schema-checked.
fn run_as_nobody(root: &Path, format: &str) -> common::Outcome {
    let bin = assert_cmd::cargo::cargo_bin("snapguard");
    let start = std::time::Instant::now();
    let out = assert_cmd::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["selinux", "--format", format, "--root"])
        .arg(root)
        .env_remove("RUST_LOG")
        .env_remove("SNAPGUARD_LOG")
        .timeout(common::SCAN_TIMEOUT)
        .output()
        .expect("spawn setpriv");
    let outcome = common::Outcome {
        exit: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    };
    assert!(
        !outcome.stderr.contains("panicked"),
        "panicked: {}",
        outcome.stderr
    );
    if format == "json" {
        assert_valid(&outcome.json());
    }
    outcome
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Every file 0600 and every directory 0700 under `dir` (not `dir` itself).
fn root_only(dir: &Path) {
    for p in walk(dir) {
        if p == dir {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        if meta.is_dir() {
            chmod(&p, 0o700);
        } else if meta.is_file() {
            chmod(&p, 0o600);
        }
    }
}

/// A real system's rights: the kernel's files and the configuration are world-readable,
/// the module store, /proc/<pid>/attr, the audit log and /var/lib/waagent are root's. As
/// nobody, S5, S6, S8 and S9 cannot be read: "cannot tell" and exit 3, never "excluded"
/// and 0. As root the same tree is excluded with exit 0.
#[test]
fn without_rights_the_verdict_is_cannot_tell_not_excluded() {
    let test = "without_rights_the_verdict_is_cannot_tell_not_excluded";
    if !common::require_root(test) {
        return;
    }
    let fx = Fx::enforcing();
    if !need_labels(&fx, test) {
        return;
    }
    let (doc, code) = fx.run();
    assert_eq!((code, &doc["excluded"]), (0, &Value::Bool(true)), "{doc:#}");
    assert_eq!(doc["unreadable"], serde_json::json!([]));

    chmod(fx.root(), 0o755);
    for rel in ["var/lib/selinux", "var/log/audit", "var/lib/waagent"] {
        chmod(&fx.p(rel), 0o700);
    }
    for pid in [AGENT_PID, HANDLER_PID, 77] {
        chmod(&fx.p(&format!("proc/{pid}/attr")), 0o700);
    }
    let out = run_as_nobody(fx.root(), "json");
    let doc = out.json();
    assert_eq!(out.exit, 3, "{doc:#}\n{}", out.stderr);
    assert_eq!(doc["status"], "unknown");
    assert_eq!(doc["excluded"], Value::Null, "{doc:#}");
    let verdict = doc["verdict"].as_str().expect("verdict");
    assert!(
        verdict.starts_with("cannot tell: SELinux is enforcing and "),
        "{verdict}"
    );
    for id in ["S5", "S6", "S8", "S9"] {
        assert!(verdict.contains(&format!("({id})")), "{id} in {verdict}");
        expect(&doc, id, "skip", "needs root");
    }
    let unreadable: Vec<&str> = doc["unreadable"]
        .as_array()
        .expect("unreadable")
        .iter()
        .map(|v| v.as_str().expect("id"))
        .collect();
    assert_eq!(unreadable, ["S5", "S6", "S7", "S8", "S9", "S11"], "{doc:#}");

    // The human report says so too.
    let human = run_as_nobody(fx.root(), "human");
    assert_eq!(human.exit, 3);
    assert!(
        human.stdout.starts_with("snapguard selinux: cannot tell:")
            && human
                .stdout
                .contains("not read (needs root, skipped, not passed): S5, S6, S7, S8, S9, S11"),
        "{}",
        human.stdout
    );

    // A failure still settles it: "not excluded" and 2, with what was not read named.
    chmod(&fx.p("var/lib/waagent"), 0o755);
    for rel in walk(&fx.p("var/lib/waagent")) {
        if rel.is_dir() {
            chmod(&rel, 0o755);
        }
    }
    fx.label(
        &format!("{SNAPSHOT_EXT}/main/handle.sh"),
        "unconfined_u:object_r:user_tmp_t:s0",
    );
    let out = run_as_nobody(fx.root(), "json");
    let doc = out.json();
    assert_eq!(out.exit, 2, "{doc:#}");
    assert_eq!(doc["excluded"], false);
    let verdict = doc["verdict"].as_str().expect("verdict");
    assert!(
        verdict.starts_with("not excluded: ")
            && verdict.contains("not read (needs root): S5, S6, S9"),
        "{verdict}"
    );
}

/// Everything under the root is root-only (0600 files, 0700 directories): as nobody,
/// not even /proc or /etc/selinux/config can be read. The mode is unknown, not "absent".
#[test]
fn a_root_only_fixture_as_nobody_does_not_exit_0() {
    let test = "a_root_only_fixture_as_nobody_does_not_exit_0";
    if !common::require_root(test) {
        return;
    }
    for fx in [Fx::enforcing(), Fx::offline_enforcing()] {
        chmod(fx.root(), 0o755);
        root_only(fx.root());
        let out = run_as_nobody(fx.root(), "json");
        let doc = out.json();
        assert_eq!(out.exit, 3, "{doc:#}\n{}", out.stderr);
        assert_eq!(doc["mode"], "unknown", "{doc:#}");
        assert_eq!(doc["excluded"], Value::Null);
        assert!(
            doc["verdict"]
                .as_str()
                .expect("verdict")
                .starts_with("cannot tell: cannot read "),
            "{doc:#}"
        );
        assert!(
            doc["unreadable"]
                .as_array()
                .expect("unreadable")
                .contains(&Value::from("S2"))
        );
    }
}

/// libselinux's key match is case-insensitive on bytes: a multi-byte character right after
/// `SELINUXTYPE` used to panic (a `&str` sliced inside a character).
#[test]
fn a_multibyte_character_in_the_config_key_does_not_panic() {
    let fx = Fx::enforcing();
    fx.write(
        "etc/selinux/config",
        "SELINUX=enforcing\nSELINUXTYPé=x\nSELINUXTYPEé\nSELINUXTYPE=targeted\nSELINUXTYPE\u{e9}=\u{e9}\n",
    );
    let (doc, _) = fx.run();
    assert_eq!(doc["policy_type"], "targeted", "{doc:#}");
}

#[test]
fn s9_permissive_denials_warn_and_user_avc_counts() {
    let fx = Fx::enforcing();
    let t = now() - 7200;
    fx.audit(&[
        noise_line(t),
        // Logged only: e.g. a global permissive spell, but the runtime is enforcing now.
        handle_sh_denial(t + 5, 5000, "unconfined_service_t", 1),
        format!("type=USER_AVC msg=audit({}.500:5001): pid=1 uid=0 auid=4294967295 ses=4294967295 subj=system_u:system_r:init_t:s0 msg='avc:  denied  {{ start }} for auid=n/a uid=0 gid=0 path=\"/usr/lib/systemd/system/waagent.service\" cmdline=\"/usr/bin/systemctl start waagent\" scontext=system_u:system_r:unconfined_service_t:s0 tcontext=system_u:object_r:systemd_unit_file_t:s0 tclass=service permissive=1  exe=\"/usr/lib/systemd/systemd\" sauid=0 hostname=? addr=? terminal=?'", t + 10),
    ]);
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S9",
        "warn",
        "2 denial(s) of the agent logged but not enforced",
    );
    assert!(remedy(&doc, "S9").contains("audit2allow -M waagent_local"));
    assert_eq!(doc["excluded"], true, "warnings do not break the exclusion");
    assert_eq!(exit, 1);
}

#[test]
fn s9_reads_rotations_from_auditd_conf_and_skips_without_logs() {
    let fx = Fx::enforcing();
    fx.remove("var/log/audit")
        .write(
            "etc/audit/auditd.conf",
            "log_file = /srv/audit/audit.log\nnum_logs = 3\n",
        )
        .write(
            "srv/audit/audit.log",
            format!("{}\n", noise_line(now() - 10)),
        )
        .write(
            "srv/audit/audit.log.1",
            format!("{}\n", handle_sh_denial(now() - 86_400, 10, "waagent_t", 0)),
        )
        // num_logs = 3: .1 and .2 only.
        .write(
            "srv/audit/audit.log.3",
            format!("{}\n", handle_sh_denial(now() - 86_400, 11, "other_t", 0)),
        );
    let (doc, _) = fx.run();
    expect(&doc, "S9", "fail", "1 enforced denial(s)");

    let fx = Fx::enforcing();
    fx.remove("var/log/audit");
    let (doc, _) = fx.run();
    expect(
        &doc,
        "S9",
        "skip",
        "no audit log found (expected /var/log/audit/audit.log)",
    );

    // Without auditd, kernel logs carry the records.
    let fx = Fx::enforcing();
    fx.remove("var/log/audit").write(
        "var/log/messages",
        format!(
            "Nov 25 10:00:00 vm kernel: audit: type=1400 audit({}.123:77): avc:  denied  {{ execute }} for  pid=3120 comm=\"safefreeze\" name=\"safefreeze\" dev=\"dm-3\" ino=5 scontext=system_u:system_r:fsadm_t:s0 tcontext=system_u:object_r:var_lib_t:s0 tclass=file permissive=0\n",
            now() - 100
        ),
    );
    let (doc, _) = fx.run();
    expect(
        &doc,
        "S9",
        "fail",
        "comm=safefreeze safefreeze fsadm_t -> var_lib_t",
    );
    assert!(
        check(&doc, "S9")["details"]
            .to_string()
            .contains(&on_root(&doc, "semanage permissive -a fsadm_t"))
    );
}

// --- S8: labels -----------------------------------------------------------------------------

#[test]
fn s8_unlabeled_and_tmp_labelled_files_fail() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "S8 unlabeled") {
        return;
    }
    fx.unlabel(&format!("{SNAPSHOT_EXT}/main/handle.sh"))
        .label(
            &format!("{SNAPSHOT_EXT}/main/safefreeze/bin/safefreeze"),
            "unconfined_u:object_r:user_tmp_t:s0",
        )
        .label(
            "var/lib/waagent/waagent_status.json",
            "system_u:object_r:unlabeled_t:s0",
        );
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S8",
        "fail",
        "3 of 13 entries have broken labels (1 without a label, 1 unlabeled_t, 1 user_tmp_t)",
    );
    assert_eq!(
        remedy(&doc, "S8"),
        on_root(&doc, "restorecon -Rv /var/lib/waagent")
    );
    let details = check(&doc, "S8")["details"].to_string();
    assert!(
        details.contains("main/handle.sh: no label, expected system_u:object_r:var_lib_t:s0"),
        "{details}"
    );
    assert_eq!(doc["excluded"], false);
    assert_eq!(exit, 2);
}

/// `--root DIR`: every remedy acts on DIR, never on the host. The S8 remedy is run as
/// printed (setfiles -r DIR with DIR's file_contexts) and fixes DIR's labels.
#[test]
fn remedies_for_another_root_act_on_it() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "remedies_for_another_root_act_on_it") {
        return;
    }
    fx.label(
        &format!("{SNAPSHOT_EXT}/main/safefreeze/bin/safefreeze"),
        "unconfined_u:object_r:user_tmp_t:s0",
    )
    .write("sys/fs/selinux/booleans/deny_execmem", "1 1")
    .write("proc/self/mountinfo", mountinfo(true, false))
    .agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "system_u:system_r:init_t:s0",
    );
    let (doc, _) = fx.run();
    let root = fx.root().to_str().expect("UTF-8 temp dir");
    let remedies: Vec<(&str, &str)> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?, c["remedy"].as_str()?)))
        .collect();
    assert!(remedies.len() >= 4, "{remedies:?}");
    for (id, r) in &remedies {
        let on_dir = r.starts_with(&format!("chroot {root} "))
            || r.starts_with(&format!("setfiles -r {root} "))
            || r.starts_with(&format!("systemctl --root={root} "))
            || (r.starts_with("mount ") && r.ends_with(&format!(" {root}/var")));
        assert!(on_dir, "{id}: {r} does not act on {root}");
    }
    assert_eq!(
        remedy(&doc, "S8"),
        format!(
            "setfiles -r {root} -v {root}/etc/selinux/targeted/contexts/files/file_contexts {root}/var/lib/waagent"
        )
    );
    assert_eq!(
        remedy(&doc, "S10"),
        format!("chroot {root} semanage boolean -N -m --off deny_execmem")
    );
    assert_eq!(
        remedy(&doc, "S6"),
        format!("chroot {root} semanage permissive -N -a init_t")
    );
    if which("setfiles") {
        let out = std::process::Command::new("sh")
            .args(["-c", &remedy(&doc, "S8")])
            .output()
            .expect("sh");
        assert!(out.status.success(), "{out:?}");
        let (doc, _) = fx.run();
        expect(&doc, "S8", "pass", "");
    } else if std::env::var("SNAPGUARD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("setfiles is not installed");
    } else {
        common::note("remedies_for_another_root_act_on_it: no setfiles, S8 remedy not run");
    }
}

fn which(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn s8_differing_labels_warn_and_missing_tree_skips() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "S8 differ") {
        return;
    }
    fx.label(
        &format!("{SNAPSHOT_EXT}/main/handle.sh"),
        "system_u:object_r:bin_t:s0",
    )
    .label("usr/sbin/waagent", "system_u:object_r:var_lib_t:s0");
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S8",
        "warn",
        "2 of 13 entries differ from the policy: restorecon would change them",
    );
    // Under --root the command in the message acts on the root (selinux_attack.rs).
    expect(
        &doc,
        "S8",
        "warn",
        &on_root(
            &doc,
            "semanage fcontext -a -t bin_t '/var/lib/waagent(/.*)?'",
        ),
    );
    assert_eq!(
        remedy(&doc, "S8"),
        on_root(&doc, "restorecon -Rv /var/lib/waagent /usr/sbin/waagent")
    );
    assert_eq!(doc["excluded"], true, "a warning is not a broken exclusion");
    assert_eq!(exit, 1);

    let fx = Fx::enforcing();
    fx.remove("var/lib/waagent");
    let (doc, _) = fx.run();
    expect(&doc, "S8", "skip", "does not exist");
}

#[test]
fn s8_local_fcontext_rule_for_waagent() {
    let fx = Fx::enforcing();
    if !need_labels(&fx, "S8 local rule") {
        return;
    }
    // libsemanage style: header, no file type, spaces.
    fx.write(
        "etc/selinux/targeted/contexts/files/file_contexts.local",
        "# This file is auto-generated by libsemanage\n# Do not edit directly.\n\n/var/lib/waagent(/.*)?    system_u:object_r:bin_t:s0\n",
    );
    // Rule added, restorecon not run yet: the files still carry var_lib_t.
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S8",
        "warn",
        "the local rule was added but restorecon was not run",
    );
    assert!(check(&doc, "S8")["details"].to_string().contains(
        "local rule '/var/lib/waagent(/.*)?' -> system_u:object_r:bin_t:s0 (file_contexts.local:4)"
    ));
    assert_eq!(exit, 1);

    // After restorecon: everything under it is bin_t, as the rule says.
    for entry in walk(&fx.p("var/lib/waagent")) {
        xattr::set(&entry, "security.selinux", b"system_u:object_r:bin_t:s0\0").unwrap();
    }
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "S8",
        "pass",
        "a local fcontext rule covers /var/lib/waagent (an exclusion customisation exists)",
    );
    assert_eq!(exit, 0, "{doc:#}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

// --- S10 -------------------------------------------------------------------------------------

#[test]
fn s10_deny_execmem() {
    let fx = Fx::enforcing();
    fx.write("sys/fs/selinux/booleans/deny_execmem", "1 1");
    let (doc, _) = fx.run();
    expect(&doc, "S10", "warn", "deny_execmem is on");
    assert_eq!(
        remedy(&doc, "S10"),
        on_root(&doc, "setsebool -P deny_execmem 0")
    );

    fx.write("sys/fs/selinux/booleans/deny_execmem", "0 1");
    let (doc, _) = fx.run();
    expect(&doc, "S10", "warn", "pending on");

    fx.remove("sys/fs/selinux/booleans/deny_execmem");
    let (doc, _) = fx.run();
    expect(&doc, "S10", "pass", "no deny_execmem boolean");

    fx.write("sys/fs/selinux/booleans/deny_execmem", "garbage");
    let (doc, _) = fx.run();
    expect(&doc, "S10", "skip", "garbage");
}

// --- offline roots ------------------------------------------------------------------------

#[test]
fn offline_disk_is_judged_from_its_configuration() {
    let fx = Fx::enforcing();
    fx.remove("proc").remove("sys");
    fx.write(
        "var/lib/selinux/targeted/active/booleans.local",
        "deny_execmem=1\n",
    );
    let (doc, exit) = fx.run();
    assert_eq!(doc["offline"], true);
    assert_eq!(doc["mode"], "enforcing");
    expect(&doc, "S1", "skip", "offline root");
    expect(&doc, "S2", "pass", "enforcing at the next boot");
    expect(&doc, "S6", "skip", "offline root");
    expect(&doc, "S10", "warn", "booleans.local");
    expect(
        &doc,
        "L1",
        "pass",
        "/etc/fstab does not mount /var/lib/waagent noexec",
    );
    assert_eq!(exit, 1);

    fx.write(
        "etc/fstab",
        "UUID=1 / xfs defaults 0 0\nUUID=3 /var xfs defaults,noexec 0 0\n",
    );
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "L1",
        "fail",
        "/etc/fstab mounts /var, which holds /var/lib/waagent, noexec",
    );
    assert_eq!(exit, 2);

    // Without any SELinux configuration at all.
    let fx = Fx::empty();
    fx.mkdir("etc");
    let (doc, exit) = fx.run();
    assert_eq!(doc["mode"], "absent");
    expect(&doc, "L1", "skip", "without /etc/fstab");
    assert_eq!(exit, 0);
}

// --- look-alikes -----------------------------------------------------------------------------

#[test]
fn l1_noexec_var_fails_even_without_selinux() {
    let fx = Fx::enforcing();
    fx.write("proc/filesystems", "nodev\tproc\n\txfs\n")
        .write("proc/self/mountinfo", mountinfo(true, false));
    let (doc, exit) = fx.run();
    assert_eq!(doc["mode"], "absent");
    expect(
        &doc,
        "L1",
        "fail",
        "/var, which holds /var/lib/waagent, is mounted noexec",
    );
    assert_eq!(
        remedy(&doc, "L1"),
        on_root(&doc, "mount -o remount,exec /var")
    );
    assert_eq!(doc["excluded"], true);
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .ends_with("but the agent is still blocked: /var, which holds /var/lib/waagent, is mounted noexec (L1)"),
        "{}",
        doc["verdict"]
    );
    assert_eq!(exit, 2);

    // Mounted exec now, but fstab brings noexec back at the next boot.
    fx.write("proc/self/mountinfo", mountinfo(false, false))
        .write(
            "etc/fstab",
            "UUID=1 / xfs defaults 0 0\nUUID=3 /var xfs defaults,noexec 0 0\n",
        );
    let (doc, exit) = fx.run();
    expect(&doc, "L1", "warn", "the next boot breaks extensions");
    assert_eq!(exit, 1);

    fx.remove("proc/self/mountinfo");
    let (doc, _) = fx.run();
    expect(&doc, "L1", "skip", "mountinfo");
}

#[test]
fn l2_fapolicyd() {
    let fx = Fx::enforcing();
    fx.mkdir("etc/fapolicyd/rules.d")
        .write(
            "etc/fapolicyd/rules.d/42-trusted-elf.rules",
            "allow perm=execute all : trust=1\n",
        )
        .write(
            "etc/fapolicyd/rules.d/90-deny-execute.rules",
            "deny_audit perm=execute all : all\n",
        )
        .write("etc/fapolicyd/fapolicyd.trust", "# trust\n");
    let (doc, _) = fx.run();
    expect(&doc, "L2", "pass", "installed but not running");

    fx.write("proc/900/comm", "fapolicyd\n");
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "L2",
        "fail",
        "fapolicyd runs and neither its rules nor its trust files admit /var/lib/waagent",
    );
    assert_eq!(
        remedy(&doc, "L2"),
        on_root(
            &doc,
            "echo 'allow perm=any all : dir=/var/lib/waagent/' > /etc/fapolicyd/rules.d/35-waagent.rules && fagenrules --load"
        )
    );
    assert_eq!(exit, 2);

    fx.write(
        "etc/fapolicyd/trust.d/waagent",
        format!("/{SNAPSHOT_EXT}/main/safefreeze/bin/safefreeze 1234 0123abcd\n"),
    );
    let (doc, _) = fx.run();
    expect(&doc, "L2", "warn", "trusts only 1 file(s)");

    fx.write(
        "etc/fapolicyd/rules.d/35-waagent.rules",
        "allow perm=any all : dir=/var/lib/waagent/\n",
    );
    let (doc, _) = fx.run();
    expect(
        &doc,
        "L2",
        "pass",
        "/etc/fapolicyd/rules.d/35-waagent.rules:1",
    );
}

#[test]
fn l3_apparmor() {
    // Ubuntu: AppArmor, no SELinux.
    let fx = Fx::live_kernel();
    fx.write("proc/filesystems", "nodev\tproc\n\text4\n")
        .write(
            "sys/kernel/security/lsm",
            "lockdown,capability,landlock,yama,apparmor",
        )
        .write("sys/module/apparmor/parameters/enabled", "Y\n")
        .write(
            "sys/kernel/security/apparmor/profiles",
            "/usr/sbin/cupsd (enforce)\nsnap.lxd.lxc (complain)\n",
        )
        .write(
            "var/log/audit/audit.log",
            format!("{}\n", noise_line(now() - 60)),
        );
    fx.agent(
        AGENT_PID,
        &["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"],
        "unconfined",
    );
    let (doc, exit) = fx.run();
    expect(&doc, "L3", "pass", "no profile confines the agent");
    assert_eq!(exit, 0, "{doc:#}");

    // A complain-mode profile for the agent, with ALLOWED records.
    fx.write(
        "sys/kernel/security/apparmor/profiles",
        "/usr/sbin/cupsd (enforce)\n/usr/sbin/waagent (complain)\n",
    )
    .write(&format!("proc/{AGENT_PID}/attr/current"), "/usr/sbin/waagent (complain)\n")
    .write(
        "var/log/audit/audit.log",
        format!("type=AVC msg=audit({}.1:50): apparmor=\"ALLOWED\" operation=\"exec\" profile=\"/usr/sbin/waagent\" name=\"/{SNAPSHOT_EXT}/main/handle.sh\" pid=5 comm=\"sh\" requested_mask=\"x\" denied_mask=\"x\" fsuid=0 ouid=0\n", now() - 60),
    );
    let (doc, exit) = fx.run();
    expect(&doc, "L3", "warn", "(complain)");
    assert_eq!(
        remedy(&doc, "L3"),
        on_root(&doc, "aa-complain /usr/sbin/waagent")
    );
    assert_eq!(exit, 1);

    // Enforce mode, with a denial in the kernel log (no auditd).
    fx.write(
        "sys/kernel/security/apparmor/profiles",
        "/usr/sbin/waagent (enforce)\n",
    )
    .write(&format!("proc/{AGENT_PID}/attr/current"), "/usr/sbin/waagent (enforce)\n")
    .remove("var/log/audit")
    .write(
        "var/log/kern.log",
        format!("Nov 25 10:00:00 vm kernel: [  12.3] audit: type=1400 audit({}.1:51): apparmor=\"DENIED\" operation=\"exec\" profile=\"/usr/sbin/waagent\" name=\"/{SNAPSHOT_EXT}/main/handle.sh\" pid=5 comm=\"sh\" requested_mask=\"x\" denied_mask=\"x\" fsuid=0 ouid=0\n", now() - 60),
    );
    let (doc, exit) = fx.run();
    expect(
        &doc,
        "L3",
        "fail",
        "agent pid 1234 is confined by profile /usr/sbin/waagent (enforce)",
    );
    expect(&doc, "L3", "fail", "1 AppArmor denial(s) of the agent");
    assert_eq!(
        remedy(&doc, "L3"),
        on_root(&doc, "aa-complain /usr/sbin/waagent")
    );
    assert!(
        doc["verdict"]
            .as_str()
            .unwrap()
            .contains("but the agent is still blocked: agent pid 1234 is confined by profile /usr/sbin/waagent (L3)")
    );
    assert_eq!(exit, 2);
}

/// The journal fallback of S9 runs this machine's journalctl (moved out of the unit tests of
/// `selinux::denials` so that `cargo test --lib` spawns no tool).
#[test]
fn journal_fallback_is_bounded_and_never_panics() {
    use snapguard::selinux::Options;
    use snapguard::selinux::denials::{JOURNAL_TIMEOUT, journal};
    use std::time::{Duration, Instant};
    let options = Options {
        now: 2_000_000_000,
        window_days: 7,
    };
    let start = Instant::now();
    // journalctl may be missing, fail, or print nothing: all are fine, a hang is not.
    let _ = journal(&options);
    assert!(start.elapsed() < JOURNAL_TIMEOUT + Duration::from_secs(5));
}

/// `sys::xattr::selinux_label` reads a label set here without its trailing NUL, and a
/// symlink's own (absent) label rather than its target's (moved out of the unit tests: setting
/// `security.selinux` needs root).
#[test]
fn selinux_labels_are_read_without_the_trailing_nul() {
    use snapguard::sys::xattr::{SELINUX_XATTR, selinux_label};
    let dir = tempfile::tempdir().unwrap();
    if !labels_supported(dir.path()) {
        common::skip(
            "selinux_labels_are_read_without_the_trailing_nul",
            "cannot set security.selinux xattrs here (needs root and xattr support)",
        );
        return;
    }
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    xattr::set(&plain, SELINUX_XATTR, b"system_u:object_r:var_lib_t:s0\0").unwrap();
    assert_eq!(
        selinux_label(&plain).unwrap().as_deref(),
        Some("system_u:object_r:var_lib_t:s0")
    );
    xattr::set(&plain, SELINUX_XATTR, b"system_u:object_r:bin_t:s0").unwrap();
    assert_eq!(
        selinux_label(&plain).unwrap().as_deref(),
        Some("system_u:object_r:bin_t:s0")
    );
    // lgetxattr: a symlink's own (absent) label, not its target's.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&plain, &link).unwrap();
    assert_eq!(selinux_label(&link).unwrap(), None);
}
