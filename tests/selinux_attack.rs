//! A hostile review of `snapguard selinux` (issue 10): a check that says "pass" when it could
//! not read what it compares against, and commands inside messages and details that act on
//! the host although `--root DIR` names another system.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const VAR_LIB: &str = "system_u:object_r:var_lib_t:s0";
const FILE_CONTEXTS: &str = "etc/selinux/targeted/contexts/files/file_contexts";

/// A live enforcing machine whose agent runs unconfined and whose /var/lib/waagent is
/// labelled as the policy says: "excluded", exit 0, when everything can be read.
struct Fx {
    dir: TempDir,
}

impl Fx {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
        std::fs::write(&p, text).expect("write");
        self
    }

    fn label(&self, rel: &str, context: &str) -> &Self {
        let mut value = context.as_bytes().to_vec();
        value.push(0);
        xattr::set(self.p(rel), "security.selinux", &value).expect("set security.selinux");
        self
    }

    fn agent(&self, pid: u32, argv: &str, context: &str) -> &Self {
        self.write(&format!("proc/{pid}/cmdline"), &argv.replace(' ', "\0"))
            .write(&format!("proc/{pid}/attr/current"), &format!("{context}\0"))
    }

    fn new(agent_context: &str) -> Fx {
        let fx = Fx {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        fx.write("proc/cmdline", "root=/dev/sda2 ro\n")
            .write("proc/filesystems", "nodev\tproc\nnodev\tselinuxfs\n\txfs\n")
            .write("sys/kernel/security/lsm", "capability,selinux")
            .write(
                "proc/self/mountinfo",
                "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/sda2 rw\n",
            )
            .write("etc/fstab", "/dev/sda2 / xfs defaults 0 0\n")
            .write("sys/fs/selinux/enforce", "1")
            .write("sys/fs/selinux/booleans/deny_execmem", "0 0")
            .write(
                "etc/selinux/config",
                "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
            )
            .write("etc/selinux/semanage.conf", "module-store = direct\n")
            .write(
                FILE_CONTEXTS,
                "/.*\tsystem_u:object_r:default_t:s0\n/usr/sbin(/.*)?\tsystem_u:object_r:bin_t:s0\n/var/lib(/.*)?\tsystem_u:object_r:var_lib_t:s0\n",
            )
            .write(
                "var/lib/selinux/targeted/active/modules/100/base/cil",
                "(type var_lib_t)",
            )
            .write(
                "var/lib/selinux/targeted/active/modules/100/unconfined/cil",
                "(type unconfined_service_t)",
            )
            .write("var/log/audit/audit.log", "")
            .agent(
                1234,
                "/usr/bin/python3 -u /usr/sbin/waagent -daemon",
                agent_context,
            )
            .write("var/lib/waagent/waagent_status.json", "{}")
            .write("usr/sbin/waagent", "#!/usr/bin/python3\n")
            .label("var/lib/waagent", VAR_LIB)
            .label("var/lib/waagent/waagent_status.json", VAR_LIB)
            .label("usr/sbin/waagent", "system_u:object_r:bin_t:s0");
        // Readable by everyone, as on a real system (the temp dir itself is 0700).
        for p in walk(fx.dir.path()) {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            chmod(&p, mode);
        }
        fx
    }

    /// `snapguard selinux --json --root DIR`, as root or as nobody.
    fn run(&self, as_nobody: bool) -> (Value, i32) {
        let bin = assert_cmd::cargo::cargo_bin("snapguard");
        let mut cmd = if as_nobody {
            let mut c = assert_cmd::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin);
            c
        } else {
            assert_cmd::Command::new(&bin)
        };
        let out = cmd
            .args(["selinux", "--json", "--root"])
            .arg(self.dir.path())
            .env_remove("SNAPGUARD_LOG")
            .timeout(common::SCAN_TIMEOUT)
            .output()
            .expect("run snapguard");
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        (doc, out.status.code().expect("an exit code"))
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn check<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {doc:#}"))
}

/// A monitoring user cannot read file_contexts (root-only on some hardened systems): S8 said
/// "pass: all entries carry the labels the policy expects (expected labels unknown: cannot
/// read ...)" and the verdict "excluded", exit 0. It is a check that could not look: "cannot
/// tell", exit 3. A missing file_contexts is a warning, never a pass.
#[test]
fn s8_without_file_contexts_is_never_a_pass() {
    let test = "s8_without_file_contexts_is_never_a_pass";
    if !common::require_root(test) {
        return;
    }
    let fx = Fx::new("system_u:system_r:unconfined_service_t:s0");
    let (doc, exit) = fx.run(true);
    assert_eq!((exit, &doc["excluded"]), (0, &Value::Bool(true)), "{doc:#}");

    chmod(&fx.p(FILE_CONTEXTS), 0o600);
    let (doc, exit) = fx.run(true);
    let s8 = check(&doc, "S8");
    assert_eq!(exit, 3, "{doc:#}");
    assert_eq!(s8["status"], "skip", "{s8:#}");
    assert!(
        doc["unreadable"]
            .as_array()
            .expect("unreadable")
            .contains(&Value::from("S8")),
        "{doc:#}"
    );
    assert!(
        doc["verdict"]
            .as_str()
            .expect("verdict")
            .starts_with("cannot tell"),
        "{doc:#}"
    );

    std::fs::remove_file(fx.p(FILE_CONTEXTS)).expect("rm");
    let (doc, exit) = fx.run(false);
    assert_eq!(check(&doc, "S8")["status"], "warn", "{doc:#}");
    assert_eq!(exit, 1, "{doc:#}");
}

/// Under `--root DIR` the remedies acted on DIR, but commands inside details and messages did
/// not: S6's "or make it start unconfined: restorecon -v /usr/sbin/waagent …" relabelled the
/// host's files. Every `restorecon` anywhere in the document now names DIR (as `setfiles -r`).
#[test]
fn commands_in_details_and_messages_act_on_the_root_too() {
    let test = "commands_in_details_and_messages_act_on_the_root_too";
    if !common::require_root(test) {
        return;
    }
    let fx = Fx::new("system_u:system_r:init_t:s0");
    // A label that differs from the policy (S8 warns, with commands in its message).
    fx.label(
        "var/lib/waagent/waagent_status.json",
        "system_u:object_r:etc_t:s0",
    );
    let (doc, _) = fx.run(false);
    let root = fx.dir.path().to_str().expect("UTF-8 temp dir");
    let mut texts: Vec<String> = Vec::new();
    for c in doc["checks"].as_array().expect("checks") {
        texts.extend(c["message"].as_str().map(str::to_string));
        texts.extend(c["remedy"].as_str().map(str::to_string));
        for d in c["details"].as_array().expect("details") {
            texts.extend(d.as_str().map(str::to_string));
        }
    }
    assert!(
        texts.iter().any(|t| t.contains("make it start unconfined")),
        "{doc:#}"
    );
    for t in &texts {
        assert!(!t.contains("restorecon -"), "acts on the host: {t}");
        for (at, _) in t.match_indices("setfiles -r ") {
            assert!(t[at..].starts_with(&format!("setfiles -r {root} ")), "{t}");
        }
        for (at, _) in t.match_indices("semanage ") {
            assert!(
                t[..at].ends_with(&format!("chroot {root} "))
                    || t[..at].ends_with(&format!("chroot {root} sh -c '")),
                "semanage on the host: {t}"
            );
        }
    }
}

/// `--root DIR` with a relative DIR: the remedies named it relative (`chroot fx semanage …`),
/// so pasted from another directory they acted on whatever `fx` was there. DIR is made
/// absolute.
#[test]
fn a_relative_root_gives_remedies_with_an_absolute_root() {
    let test = "a_relative_root_gives_remedies_with_an_absolute_root";
    if !common::require_root(test) {
        return;
    }
    let fx = Fx::new("system_u:system_r:init_t:s0");
    let parent = fx.dir.path().parent().expect("parent");
    let name = fx.dir.path().file_name().expect("name");
    let out = assert_cmd::Command::cargo_bin("snapguard")
        .expect("binary")
        .current_dir(parent)
        .args(["selinux", "--json", "--root"])
        .arg(name)
        .output()
        .expect("run");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let remedy = check(&doc, "S6")["remedy"].as_str().expect("S6 remedy");
    let root = fx.dir.path().to_str().expect("UTF-8");
    assert_eq!(
        remedy,
        format!("chroot {root} semanage permissive -N -a init_t")
    );
    assert_eq!(doc["root"], root, "{doc:#}");
}
