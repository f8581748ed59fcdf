//! Differential test of the `file_contexts` matcher against `matchpathcon` (selinux-utils) on
//! Debian's selinux-policy-default: the stock policy, then the policy after `semanage fcontext
//! -a` added local rules for /var/lib/waagent (and `semanage fcontext -a -e` an alias, which
//! exercises `file_contexts.subs`). The local rules are added in a private mount namespace on
//! copies of /etc/selinux and /var/lib/selinux, so this machine's policy never changes.
//!
//! Needs the Debian packages selinux-policy-default, selinux-utils (matchpathcon),
//! policycoreutils and policycoreutils-python-utils (semanage); `scripts/test.sh` installs them.
//! Without them the tests print why and pass, unless `SNAPGUARD_REQUIRE_PRIVILEGED=1`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use snapguard::selinux::file_contexts::{FileContexts, FileType};

/// The lookup types compared: untyped (`lstat` mode, as matchpathcon does), then each `-m`.
const TYPES: [FileType; 8] = [
    FileType::Any,
    FileType::Regular,
    FileType::Directory,
    FileType::Symlink,
    FileType::CharDevice,
    FileType::BlockDevice,
    FileType::Socket,
    FileType::Fifo,
];

const VMSNAP: &str = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0";

/// Hand-picked paths: the agent's tree, its neighbours, every `.subs_dist` alias of Debian's
/// policy, home directories (file_contexts.homedirs), devices, odd spellings.
fn fixed_paths() -> Vec<String> {
    let mut v: Vec<String> = [
        "/var/lib/waagent",
        "/var/lib/waagent/",
        "//var//lib///waagent",
        "/var/lib/waagent/WALinuxAgent-2.9.1.1",
        "/var/lib/waagent/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.egg",
        "/var/lib/waagent/WALinuxAgent-2.9.1.1/HandlerManifest.json",
        "/var/lib/waagent/ovf-env.xml",
        "/var/lib/waagent/waagent_status.json",
        "/var/lib/waagent/history/2025-01-01/x.zip",
        "/var/lib/waagent/events/1.tld",
        "/var/lib/waagent/testdir",
        "/var/lib/waagent/testdir/file",
        "/var/lib/waagent/a b",
        "/var/lib/waagent/caf\u{e9}",
        "/var/lib/waagent\n",
        "/var/lib/waagent/x\ty",
        "/etc/passwd\n",
        "/usr/lib\n",
        "/var/lib",
        "/var/lib/waagentx",
        "/usr/sbin/waagent",
        "/usr/bin/python3",
        "/usr/bin/python3.11",
        "/etc/waagent.conf",
        "/var/log/waagent.log",
        "/var/log/azure",
        "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log",
        "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/shell.log",
        "/etc/azure/vmbackup.conf",
        "/etc/azure/workload.conf",
        "/etc/azure/VMSnapshotScriptPluginConfig.json",
        "/etc/azure/MicrosoftRecoverySvcsSafeFreezeLock/SafeFreezeLockFile",
        "/usr/lib/systemd/system/walinuxagent.service",
        "/etc/systemd/system/walinuxagent.service",
        "/lib/systemd/system/walinuxagent.service",
        "/",
        "/etc",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/selinux/config",
        "/etc/ssh/sshd_config",
        "/home",
        "/home/x",
        "/home/x/.ssh",
        "/home/x/.ssh/authorized_keys",
        "/home/x/public_html/index.html",
        "/root",
        "/root/.ssh/authorized_keys",
        "/tmp",
        "/tmp/x",
        "/var/tmp/x",
        "/var/log/audit/audit.log",
        "/var/log",
        "/var/log/messages",
        "/dev/sda",
        "/dev/sda1",
        "/dev/nvme0n1p1",
        "/dev/null",
        "/dev/tty1",
        "/dev/pts/0",
        "/dev/shm/x",
        "/proc/1/status",
        "/sys/fs/selinux",
        "/boot/vmlinuz-6.1.0-18-amd64",
        "/boot/grub/grub.cfg",
        "/mnt/data",
        "/mnt/data/x",
        "/media/cdrom",
        "/srv/x",
        "/opt/x/lib/y.so",
        "/usr/share/doc/x",
        "/usr/local/bin/x",
        // .subs_dist aliases (Debian ships /bin, /lib*, /sbin, /var/run, /run/lock, ... ).
        "/bin/sh",
        "/sbin/init",
        "/sbin/fsfreeze",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib32/libx.so",
        "/lib64/ld-linux-x86-64.so.2",
        "/libx32/x",
        "/usr/lib32/x.so",
        "/usr/lib64/libfoo.so",
        "/usr/libx32/x",
        "/usr/local/lib/libx.so",
        "/usr/local/lib32/x",
        "/usr/local/lib64/x",
        "/etc/init.d/ssh",
        "/etc/rc.d/init.d/ssh",
        "/etc/systemd/user/x.service",
        "/lib/systemd/systemd-udevd",
        "/run/lock",
        "/run/lock/x",
        "/var/lock/x",
        "/var/lib/private/x",
        "/var/cache/private/x",
        "/var/log/private/x",
        "/var/run",
        "/var/run/waagent.pid",
        "/var/run/sshd.pid",
        "/run/sshd.pid",
        "/var/run/lock/x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for rest in [
        "",
        "/main/handle.sh",
        "/main/handle.py",
        "/main/safefreeze/bin/safefreeze",
        "/main/safefreezeArm64/bin/safefreeze",
        "/main/tempPlugin/vmbackup.conf",
        "/HandlerManifest.json",
        "/status/0.status",
    ] {
        v.push(format!("{VMSNAP}{rest}"));
    }
    v
}

/// A string the pattern (probably) matches: literals kept, `.` → `a`, a class → one member,
/// a group → its first branch, `?`/`*`/`+` → one repetition, `{n,m}` → n repetitions.
fn example_of(pattern: &str) -> String {
    fn seq(p: &[u8], i: &mut usize, out: &mut Vec<u8>) {
        while *i < p.len() {
            let start = out.len();
            match p[*i] {
                b'|' | b')' => return,
                b'^' | b'$' => {
                    *i += 1;
                    continue;
                }
                b'\\' => {
                    if let Some(&c) = p.get(*i + 1) {
                        out.push(match c {
                            b'd' => b'1',
                            b'w' | b's' => b'a',
                            c => c,
                        });
                    }
                    *i += 2;
                }
                b'.' => {
                    out.push(b'a');
                    *i += 1;
                }
                b'[' => {
                    *i += 1;
                    let negated = p.get(*i) == Some(&b'^');
                    if negated {
                        *i += 1;
                    }
                    let first = *i;
                    let mut members = Vec::new();
                    while *i < p.len() && (p[*i] != b']' || *i == first) {
                        if p[*i..].starts_with(b"[:") {
                            let end = p[*i..].windows(2).position(|w| w == b":]").unwrap_or(0);
                            members.push(if p[*i..].starts_with(b"[:digit:]") {
                                b'1'
                            } else {
                                b'a'
                            });
                            *i += end + 2;
                        } else {
                            members.push(p[*i]);
                            *i += 1;
                        }
                    }
                    *i += 1;
                    out.push(if negated {
                        *b"az0_"
                            .iter()
                            .find(|c| !members.contains(c))
                            .unwrap_or(&b'a')
                    } else {
                        members.first().copied().unwrap_or(b'a')
                    });
                }
                b'(' => {
                    *i += 1;
                    if p[*i..].starts_with(b"?:") {
                        *i += 2;
                    }
                    seq(p, i, out);
                    // Skip the other branches.
                    let mut depth = 0;
                    while *i < p.len() {
                        match p[*i] {
                            b'\\' => *i += 1,
                            b'(' => depth += 1,
                            b')' if depth == 0 => break,
                            b')' => depth -= 1,
                            _ => {}
                        }
                        *i += 1;
                    }
                    *i += 1;
                }
                c => {
                    out.push(c);
                    *i += 1;
                }
            }
            // Quantifiers apply to what was just emitted.
            match p.get(*i) {
                Some(b'?' | b'*' | b'+') => *i += 1,
                Some(b'{') => {
                    let end = p[*i..].iter().position(|&b| b == b'}').unwrap_or(0);
                    let body = String::from_utf8_lossy(&p[*i + 1..*i + end]).into_owned();
                    let n: usize = body
                        .split(',')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(1);
                    let item = out[start..].to_vec();
                    out.truncate(start);
                    for _ in 0..n.max(1) {
                        out.extend_from_slice(&item);
                    }
                    *i += end + 1;
                }
                _ => {}
            }
            if matches!(p.get(*i), Some(b'?')) {
                *i += 1; // lazy quantifier
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    seq(pattern.as_bytes(), &mut i, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Paths for the comparison: the fixed ones plus examples derived from every `step`-th spec
/// (and the literal prefix of each, and one level below it).
fn sampled_paths(fc: &FileContexts, step: usize) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut v = Vec::new();
    let mut push = |p: String| {
        let ok = p.starts_with('/') && !p.contains('\0');
        if ok && seen.insert(p.clone()) {
            v.push(p);
        }
    };
    for p in fixed_paths() {
        push(p);
    }
    for spec in fc.specs().step_by(step) {
        let ex = example_of(&spec.pattern);
        push(format!("{ex}/zz"));
        push(ex);
        let prefix: String = spec
            .pattern
            .chars()
            .take_while(|c| !".^$?*+|[({\\".contains(*c))
            .collect();
        push(prefix);
    }
    v
}

/// Prints a note for the person running the tests.
#[allow(
    clippy::print_stderr,
    reason = "tests report skips and results on stderr"
)]
fn note(msg: &str) {
    eprintln!("{msg}");
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The configured policy's `contexts/files` directory (`SELINUXTYPE`, default `targeted`).
fn policy_files_dir(root: &Path) -> PathBuf {
    let config = fs::read_to_string(root.join("config")).unwrap_or_default();
    let ty = config
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim_start().split_once('=')?;
            k.eq_ignore_ascii_case("SELINUXTYPE")
                .then(|| v.trim().to_string())
        })
        .next_back()
        .unwrap_or_else(|| "targeted".into());
    root.join(ty).join("contexts/files")
}

fn read_opt(path: &Path) -> Option<String> {
    match fs::read(path) {
        Ok(b) => Some(String::from_utf8(b).expect("policy file is not UTF-8")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

/// Loads `dir/file_contexts` and its companions like libselinux's `init`.
fn load(dir: &Path) -> FileContexts {
    let base = read_opt(&dir.join("file_contexts")).expect("file_contexts");
    let t = Instant::now();
    let fc = FileContexts::from_texts(
        &base,
        read_opt(&dir.join("file_contexts.homedirs")).as_deref(),
        read_opt(&dir.join("file_contexts.local")).as_deref(),
        read_opt(&dir.join("file_contexts.subs_dist")).as_deref(),
        read_opt(&dir.join("file_contexts.subs")).as_deref(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    note(&format!(
        "loaded {} specs from {} in {:?}",
        fc.len(),
        dir.display(),
        t.elapsed()
    ));
    fc
}

/// matchpathcon's argument handling: one trailing `/` stripped; without `-m`, the `lstat`
/// type of an existing path.
fn as_matchpathcon_sees(path: &str, ty: FileType) -> (&str, FileType) {
    let p = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let ty = match ty {
        FileType::Any => {
            fs::symlink_metadata(p).map_or(FileType::Any, |m| FileType::from_mode(m.mode()))
        }
        t => t,
    };
    (p, ty)
}

/// Parses one `matchpathcon -N -n` run (one context per argument, in order; a failed lookup
/// would print nothing on stdout, which the count check catches).
fn parse_output(out: &str, paths: &[String], what: &str) -> Vec<String> {
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        paths.len(),
        "{what}: one line per path:\n{out}"
    );
    lines
}

/// Our answer in matchpathcon's words.
fn ours(fc: &FileContexts, path: &str, ty: FileType) -> String {
    let (p, ty) = as_matchpathcon_sees(path, ty);
    match fc.try_lookup(p, ty) {
        Ok(Some(spec)) => spec.context.clone().unwrap_or_else(|| "<<none>>".into()),
        Ok(None) => "<<none>>".into(),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Compares every (path, type); returns the number of comparisons. Panics listing mismatches.
fn compare(fc: &FileContexts, paths: &[String], oracle: &[Vec<String>], what: &str) -> usize {
    let mut bad = Vec::new();
    let mut n = 0;
    for (ty, answers) in TYPES.iter().zip(oracle) {
        for (p, want) in paths.iter().zip(answers) {
            n += 1;
            let got = ours(fc, p, *ty);
            if &got != want {
                bad.push(format!("{p:?} {ty:?}: matchpathcon {want}, ours {got}"));
            }
        }
    }
    let distinct: BTreeSet<&String> = oracle.iter().flatten().collect();
    note(&format!(
        "{what}: matchpathcon gave {} distinct contexts",
        distinct.len()
    ));
    assert!(
        distinct.len() > 50,
        "{what}: suspiciously few distinct contexts"
    );
    assert!(
        bad.is_empty(),
        "{what}: {} of {n} lookups differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
    n
}

/// Shell words for the matchpathcon runs: `-m X` per type, after `-N` (raw contexts).
fn mode_args(ty: FileType) -> Vec<&'static str> {
    match ty.matchpathcon_arg() {
        Some(m) => vec!["-N", "-n", "-m", m],
        None => vec!["-N", "-n"],
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("matchpathcon output is UTF-8")
}

/// The prerequisites of both tests: matchpathcon and the configured policy's files.
fn prerequisites(test: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(mpc) = find_tool("matchpathcon") else {
        common::skip(
            test,
            "matchpathcon not installed (apt-get install selinux-utils)",
        );
        return None;
    };
    let dir = policy_files_dir(Path::new("/etc/selinux"));
    if !dir.join("file_contexts").is_file() {
        common::skip(
            test,
            &format!(
                "{}/file_contexts missing (apt-get install selinux-policy-default)",
                dir.display()
            ),
        );
        return None;
    }
    Some((mpc, dir))
}

#[test]
fn matcher_agrees_with_matchpathcon_on_the_installed_policy() {
    let test = "matcher_agrees_with_matchpathcon_on_the_installed_policy";
    let Some((mpc, dir)) = prerequisites(test) else {
        return;
    };
    let fc = load(&dir);
    fc.validate().expect("every pattern of the policy compiles");
    let paths = sampled_paths(&fc, 8);
    let oracle: Vec<Vec<String>> = TYPES
        .iter()
        .map(|ty| {
            let what = format!("matchpathcon {:?}", mode_args(*ty));
            let out = run_checked(Command::new(&mpc).args(mode_args(*ty)).args(&paths), &what);
            parse_output(&out, &paths, &what)
        })
        .collect();
    let t = Instant::now();
    let n = compare(&fc, &paths, &oracle, "installed policy");
    note(&format!(
        "{test}: {} paths x {} types = {n} lookups agree with matchpathcon ({:?}, {:.1} µs/lookup)",
        paths.len(),
        TYPES.len(),
        t.elapsed(),
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    ));
    assert!(paths.len() >= 200, "only {} paths", paths.len());
    // The report's facts (selinux.md §0) for a stock policy: /var/lib/waagent is var_lib_t,
    // /usr/sbin/waagent bin_t. A machine with its own local rule for it is not stock.
    if fc.local_rules_for("/var/lib/waagent").is_empty() {
        let ty = |p: &str| {
            fc.lookup(p, FileType::Any)
                .and_then(|s| s.context_type().map(str::to_owned))
        };
        assert_eq!(ty("/var/lib/waagent").as_deref(), Some("var_lib_t"));
        assert_eq!(ty("/usr/sbin/waagent").as_deref(), Some("bin_t"));
    } else {
        note(&format!(
            "{test}: this machine has a local rule for /var/lib/waagent"
        ));
    }
}

/// The local rules an admin would add, as `semanage` arguments, and as the lines libsemanage
/// writes (used only by the fallback).
///
/// The last one is a local regex over a path the base file names exactly (`/var/log`): the
/// exact base spec must still win for `/var/log` itself.
const LOCAL_RULES: [&[&str]; 4] = [
    &["fcontext", "-a", "-t", "bin_t", "/var/lib/waagent(/.*)?"],
    &[
        "fcontext",
        "-a",
        "-f",
        "d",
        "-t",
        "var_lib_t",
        "/var/lib/waagent/testdir",
    ],
    &[
        "fcontext",
        "-a",
        "-e",
        "/var/lib/waagent",
        "/srv/waagent-alias",
    ],
    &["fcontext", "-a", "-t", "tmp_t", "/var/log(/.*)?"],
];
const LOCAL_TEXT: &str = "# This file is auto-generated by libsemanage\n# Do not edit directly.\n\n\
    /var/lib/waagent(/.*)?    system_u:object_r:bin_t:s0\n\
    /var/lib/waagent/testdir -d system_u:object_r:var_lib_t:s0\n\
    /var/log(/.*)?    system_u:object_r:tmp_t:s0\n";
const SUBS_TEXT: &str = "/srv/waagent-alias /var/lib/waagent\n";

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("snapguard-fc-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Adds the local rules with `semanage` in a private mount namespace whose /etc/selinux and
/// /var/lib/selinux are bind-mounted copies, and runs matchpathcon there. Returns the copy
/// of the policy's contexts/files directory and the matchpathcon outputs, or why it could not.
fn semanage_in_namespace(tmp: &Path, paths: &[String]) -> Result<(PathBuf, Vec<String>), String> {
    if !is_root() {
        return Err("not root".into());
    }
    let unshare = find_tool("unshare").ok_or("unshare not installed")?;
    find_tool("semanage").ok_or("semanage not installed (policycoreutils-python-utils)")?;
    let etc = tmp.join("etc-selinux");
    let var = tmp.join("var-lib-selinux");
    for (from, to) in [("/etc/selinux", &etc), ("/var/lib/selinux", &var)] {
        let st = Command::new("cp")
            .args(["-a", from])
            .arg(to)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !st.success() {
            return Err(format!("cp -a {from} failed"));
        }
    }
    let mut script = format!(
        "set -e\nmount --bind {} /etc/selinux\nmount --bind {} /var/lib/selinux\n",
        shell_quote(&etc.to_string_lossy()),
        shell_quote(&var.to_string_lossy())
    );
    for rule in LOCAL_RULES {
        let words: Vec<String> = rule.iter().map(|w| shell_quote(w)).collect();
        script += &format!("semanage {} >&2\n", words.join(" "));
    }
    for ty in TYPES {
        script += &format!(
            "echo '=== {ty:?}'\nmatchpathcon {} \"$@\"\n",
            mode_args(ty).join(" ")
        );
    }
    let _turn = common::mount_namespace_turn(false);
    let out = Command::new(unshare)
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(paths)
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "unshare + semanage failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8(out.stdout).map_err(|e| e.to_string())?;
    let sections: Vec<String> = stdout
        .split("=== ")
        .skip(1)
        .map(|s| s.split_once('\n').map_or("", |(_, rest)| rest).to_string())
        .collect();
    Ok((policy_files_dir(&etc), sections))
}

/// Fallback without root, unshare or semanage: a copy of the policy's text files plus the
/// lines libsemanage writes, read by `matchpathcon -f`.
fn local_copy_with_f(
    mpc: &Path,
    dir: &Path,
    tmp: &Path,
    paths: &[String],
) -> (PathBuf, Vec<String>) {
    let copy = tmp.join("files");
    fs::create_dir_all(&copy).expect("mkdir");
    for name in [
        "file_contexts",
        "file_contexts.homedirs",
        "file_contexts.subs_dist",
    ] {
        if let Some(text) = read_opt(&dir.join(name)) {
            fs::write(copy.join(name), text).expect("write copy");
        }
    }
    fs::write(copy.join("file_contexts.local"), LOCAL_TEXT).expect("write local");
    fs::write(copy.join("file_contexts.subs"), SUBS_TEXT).expect("write subs");
    let fc_path = copy.join("file_contexts");
    let outs = TYPES
        .iter()
        .map(|ty| {
            run_checked(
                Command::new(mpc)
                    .arg("-f")
                    .arg(&fc_path)
                    .args(mode_args(*ty))
                    .args(paths),
                "matchpathcon -f",
            )
        })
        .collect();
    (copy, outs)
}

#[test]
fn matcher_agrees_with_matchpathcon_after_semanage_fcontext_local_rule() {
    let test = "matcher_agrees_with_matchpathcon_after_semanage_fcontext_local_rule";
    let Some((mpc, dir)) = prerequisites(test) else {
        return;
    };
    let real_local = dir.join("file_contexts.local");
    let before = fs::read(&real_local).ok();
    let stock = load(&dir);
    let mut paths = sampled_paths(&stock, 40);
    for p in [
        "/srv/waagent-alias",
        "/srv/waagent-alias/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.egg",
        "/srv/waagent-aliasx",
        "/srv",
    ] {
        paths.push(p.to_string());
    }
    let tmp = TempDir::new();
    let (files, outs, how) = match semanage_in_namespace(&tmp.0, &paths) {
        Ok((files, outs)) => (
            files,
            outs,
            "semanage fcontext -a in a private mount namespace",
        ),
        Err(why) => {
            if std::env::var("SNAPGUARD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                panic!(
                    "{test}: {why}, and SNAPGUARD_REQUIRE_PRIVILEGED=1 needs the semanage route"
                );
            }
            note(&format!(
                "{test}: {why}; falling back to a file_contexts.local copy + matchpathcon -f"
            ));
            let (files, outs) = local_copy_with_f(&mpc, &dir, &tmp.0, &paths);
            (files, outs, "copied file_contexts.local + matchpathcon -f")
        }
    };
    assert_eq!(outs.len(), TYPES.len(), "one matchpathcon run per type");
    let oracle: Vec<Vec<String>> = outs
        .iter()
        .zip(TYPES)
        .map(|(out, ty)| parse_output(out, &paths, &format!("local rule, {ty:?}")))
        .collect();
    let fc = load(&files);
    let local = fs::read_to_string(files.join("file_contexts.local")).expect("local written");
    assert!(local.contains("/var/lib/waagent(/.*)?"), "{local}");
    let n = compare(&fc, &paths, &oracle, "after the local rule");
    note(&format!(
        "{test}: {} paths x {} types = {n} lookups agree with matchpathcon ({how})",
        paths.len(),
        TYPES.len()
    ));

    let ty = |p: &str, t: FileType| {
        fc.lookup(p, t)
            .and_then(|s| s.context_type().map(str::to_owned))
    };
    assert_eq!(
        ty("/var/lib/waagent", FileType::Any).as_deref(),
        Some("bin_t")
    );
    assert_eq!(
        ty(&format!("{VMSNAP}/main/handle.sh"), FileType::Regular).as_deref(),
        Some("bin_t")
    );
    assert_eq!(
        ty("/var/lib/waagent/testdir", FileType::Directory).as_deref(),
        Some("var_lib_t")
    );
    assert_eq!(
        ty("/srv/waagent-alias/x", FileType::Regular).as_deref(),
        Some("bin_t")
    );
    let rules = fc.local_rules_for("/var/lib/waagent/WALinuxAgent-2.9.1.1");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].pattern, "/var/lib/waagent(/.*)?");
    assert!(fc.local_rules_for("/var/lib/other").is_empty());
    // The exact base spec /var/log beats the local regex /var/log(/.*)?; below it, local wins.
    assert_ne!(
        ty("/var/log", FileType::Directory).as_deref(),
        Some("tmp_t")
    );
    assert_eq!(
        ty("/var/log/x", FileType::Regular).as_deref(),
        Some("tmp_t")
    );

    assert_eq!(
        fs::read(&real_local).ok(),
        before,
        "this machine's {} must not change",
        real_local.display()
    );
}
