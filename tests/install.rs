//! `scripts/install.sh` into a `DESTDIR`: the installed binary runs, the units name it under
//! `--prefix`, every man page renders with `man -l` without groff warnings, the bash completion
//! completes subcommands, an existing configuration is never overwritten, and `--uninstall`
//! removes exactly what was installed (an edited file is kept); the Azure pre/post scripts, their
//! sample configuration and the qemu-ga hook land under `PREFIX/share/snapguard` with the modes
//! their agents demand and this prefix's paths. `shellcheck` finds nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn install(destdir: &Path, args: &[&str]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("snapguard");
    let out = Command::new("bash")
        .arg(script())
        .arg("--binary")
        .arg(&bin)
        .args(args)
        .env("DESTDIR", destdir)
        .output()
        .expect("run install.sh");
    assert!(
        out.status.success(),
        "install.sh {args:?}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file (not directory) under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_into_destdir_and_uninstall() {
    let dest = tempfile::TempDir::new().expect("temp dir");
    let d = dest.path();
    install(d, &[]);

    // The binary runs.
    let out = Command::new(d.join("usr/local/bin/snapguard"))
        .arg("--version")
        .output()
        .expect("run installed binary");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("snapguard "));

    // Units, with ExecStart= at the prefix's binary.
    let units = d.join("usr/local/lib/systemd/system");
    for name in [
        "snapguard-preflight.service",
        "snapguard-scan.service",
        "snapguard-scan.timer",
        "snapguard-repair.service",
        "snapguard-repair.timer",
        "snapguard-repair-failed@.service",
        "snapguard-freeze@.service",
    ] {
        let text = std::fs::read_to_string(units.join(name)).expect(name);
        if name != "snapguard-repair-failed@.service" && name.ends_with(".service") {
            assert!(
                text.contains("ExecStart=/usr/local/bin/snapguard "),
                "{name}"
            );
        }
    }
    // The configuration example and the configuration.
    let example =
        std::fs::read_to_string(d.join("etc/snapguard/snapguard.toml.example")).expect("example");
    assert_eq!(
        std::fs::read_to_string(d.join("etc/snapguard/snapguard.toml")).expect("config"),
        example
    );

    // The Azure pre/post scripts (root-only, as the extension demands), the sample plugin
    // configuration naming them, and the qemu-ga hook (executable); nothing in /etc/azure or
    // /etc/qemu.
    let share = d.join("usr/local/share/snapguard");
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(p).expect("installed").permissions(),
        ) & 0o7777
    };
    for (rel, want) in [
        ("azure/snapguard-pre.sh", 0o700),
        ("azure/snapguard-post.sh", 0o700),
        ("azure/VMSnapshotScriptPluginConfig.json", 0o600),
        ("qemu-ga/snapguard", 0o755),
    ] {
        assert_eq!(mode(&share.join(rel)), want, "{rel}");
    }
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(share.join("azure/VMSnapshotScriptPluginConfig.json")).unwrap(),
    )
    .expect("the sample is JSON");
    assert_eq!(
        sample["preScriptLocation"],
        "/usr/local/share/snapguard/azure/snapguard-pre.sh"
    );
    assert_eq!(
        sample["postScriptLocation"],
        "/usr/local/share/snapguard/azure/snapguard-post.sh"
    );
    let pre = std::fs::read_to_string(share.join("azure/snapguard-pre.sh")).unwrap();
    assert!(
        pre.contains("bin=/usr/local/bin/snapguard"),
        "default binary"
    );
    assert!(!d.join("etc/azure").exists() && !d.join("etc/qemu").exists());

    // Man pages render without warnings.
    let man1 = d.join("usr/local/share/man/man1");
    let pages = files_under(&man1);
    assert!(pages.len() >= 7, "{pages:?}");
    if have("man") {
        for page in &pages {
            let out = Command::new("man")
                .arg("--warnings")
                .arg("-l")
                .arg(man1.join(page))
                .env("MANWIDTH", "80")
                .env("MANPAGER", "cat")
                .env("LC_ALL", "C.UTF-8")
                .output()
                .expect("man");
            let text = String::from_utf8_lossy(&out.stdout);
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "man -l {page:?}: {warnings}");
            assert!(
                warnings.trim().is_empty(),
                "man -l {page:?} warns:\n{warnings}"
            );
            assert!(
                text.contains("NAME") && text.contains("SYNOPSIS"),
                "{page:?}:\n{text}"
            );
        }
        let out = Command::new("man")
            .arg("-l")
            .arg(man1.join("snapguard-repair.1"))
            .env("MANWIDTH", "80")
            .output()
            .expect("man");
        assert!(String::from_utf8_lossy(&out.stdout).contains("--maintenance"));
    } else {
        common::skip(
            "install_into_destdir_and_uninstall (man -l)",
            "no man here (apt-get install man-db)",
        );
    }

    // bash completion offers the subcommands, and not the hidden ones.
    let completion = d.join("usr/local/share/bash-completion/completions/snapguard");
    let out = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(
            r#"source "$1" || exit 9
COMP_WORDS=(snapguard sc); COMP_CWORD=1; COMP_LINE="snapguard sc"; COMP_POINT=${#COMP_LINE}
_snapguard snapguard sc snapguard
printf '%s\n' "${COMPREPLY[@]}"
COMP_WORDS=(snapguard ""); COMP_CWORD=1; COMP_LINE="snapguard "; COMP_POINT=${#COMP_LINE}
_snapguard snapguard "" snapguard
printf 'all: %s\n' "${COMPREPLY[*]}""#,
        )
        .arg("bash")
        .arg(&completion)
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("all:"))
        .collect();
    assert_eq!(first, ["scan"], "{text}");
    let all = text.lines().find(|l| l.starts_with("all:")).expect("all");
    for sub in [
        "scan",
        "freeze-test",
        "freeze",
        "thaw",
        "selinux",
        "preflight",
        "repair",
    ] {
        assert!(all.split_whitespace().any(|w| w == sub), "{sub}: {all}");
    }
    assert!(
        !all.contains("__guardian") && !all.contains("generate"),
        "{all}"
    );
    assert!(
        d.join("usr/local/share/zsh/site-functions/_snapguard")
            .is_file()
    );
    assert!(
        d.join("usr/local/share/fish/vendor_completions.d/snapguard.fish")
            .is_file()
    );

    // Uninstall: nothing of ours is left, not even the directories it created.
    let out = Command::new("bash")
        .arg(script())
        .arg("--uninstall")
        .env("DESTDIR", d)
        .output()
        .expect("uninstall");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(files_under(d), Vec::<PathBuf>::new());
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0, "directories left");
}

#[test]
fn an_existing_config_is_kept_and_prefix_moves_the_units() {
    let dest = tempfile::TempDir::new().expect("temp dir");
    let d = dest.path();
    let conf = d.join("etc/snapguard/snapguard.toml");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "[repair]\ntier = \"check\"\n").unwrap();
    install(d, &["--prefix", "/opt/sg"]);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[repair]\ntier = \"check\"\n"
    );
    // A prefix systemd does not search: units in /etc/systemd/system, naming /opt/sg/bin.
    let repair = std::fs::read_to_string(d.join("etc/systemd/system/snapguard-repair.service"))
        .expect("unit");
    assert!(repair.contains("\nExecStart=/opt/sg/bin/snapguard repair --maintenance"));
    assert!(!repair.contains("/usr/local/bin"), "{repair}");
    assert!(d.join("opt/sg/bin/snapguard").is_file());
    // The integrations name this prefix too: the scripts its binary, the sample its scripts.
    let azure = d.join("opt/sg/share/snapguard/azure");
    let sample =
        std::fs::read_to_string(azure.join("VMSnapshotScriptPluginConfig.json")).expect("sample");
    assert!(
        sample.contains("\"/opt/sg/share/snapguard/azure/snapguard-pre.sh\""),
        "{sample}"
    );
    for script in [
        azure.join("snapguard-pre.sh"),
        azure.join("snapguard-post.sh"),
        d.join("opt/sg/share/snapguard/qemu-ga/snapguard"),
    ] {
        let text = std::fs::read_to_string(&script).expect("script");
        assert!(
            !text.contains("/usr/local/bin/snapguard")
                && !text.contains("/usr/local/share/snapguard"),
            "{}",
            script.display()
        );
    }
    let hook = std::fs::read_to_string(d.join("opt/sg/share/snapguard/qemu-ga/snapguard")).unwrap();
    assert!(hook.contains("bin=/opt/sg/bin/snapguard"));

    // An edited installed file is kept on uninstall; the configuration was never ours.
    let man = d.join("opt/sg/share/man/man1/snapguard.1");
    std::fs::write(&man, "edited\n").unwrap();
    let out = Command::new("bash")
        .arg(script())
        .args(["--prefix", "/opt/sg", "--uninstall"])
        .env("DESTDIR", d)
        .output()
        .expect("uninstall");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kept ") && text.contains("snapguard.1"),
        "{text}"
    );
    assert_eq!(
        files_under(d),
        [
            PathBuf::from("etc/snapguard/snapguard.toml"),
            PathBuf::from("opt/sg/share/man/man1/snapguard.1"),
        ]
    );
}

#[test]
fn usage_errors_and_shellcheck() {
    let out = Command::new("bash")
        .arg(script())
        .arg("--prefix")
        .arg("relative")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = Command::new("bash")
        .arg(script())
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--uninstall"));
    if !have("shellcheck") {
        common::skip(
            "usage_errors_and_shellcheck",
            "no shellcheck here (apt-get install shellcheck)",
        );
        return;
    }
    let out = Command::new("shellcheck")
        .arg(script())
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Packaging convention (`make install DESTDIR=...`): the staging directory need not exist,
/// install.sh creates it, also when named relatively and with blanks in its path; an uninstall
/// then leaves only the directories it did not create.
#[test]
fn a_destdir_that_does_not_exist_yet_is_created() {
    let base = tempfile::TempDir::new().expect("temp dir");
    let dest = base.path().join("pkg root/stage");
    install(&dest, &[]);
    assert!(dest.join("usr/local/bin/snapguard").is_file());
    let out = Command::new("bash")
        .arg(script())
        .arg("--uninstall")
        .env("DESTDIR", &dest)
        .output()
        .expect("run install.sh --uninstall");
    assert!(out.status.success(), "{out:?}");
    assert!(files_under(&dest).is_empty(), "{:?}", files_under(&dest));

    // Relative to the current directory.
    let bin = assert_cmd::cargo::cargo_bin("snapguard");
    let out = Command::new("bash")
        .arg(script())
        .arg("--binary")
        .arg(&bin)
        .env("DESTDIR", "relative stage/x")
        .current_dir(base.path())
        .output()
        .expect("run install.sh");
    assert!(out.status.success(), "{out:?}");
    assert!(
        base.path()
            .join("relative stage/x/usr/local/bin/snapguard")
            .is_file()
    );
}
