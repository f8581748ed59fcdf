//! `scripts/ansible/snapguard-preflight.yml` run by the real `ansible-playbook` against this
//! machine (`-c local`) with `--root` fixture trees: the collected fleet file carries each
//! host's report (valid against `docs/json-schema/preflight-v1.schema.json`), exit code and
//! decision exactly as running snapguard directly gives them; a host without snapguard or
//! without a connection is recorded with an error and the file is still written; the playbook
//! and the example inventory pass `--syntax-check`.
//!
//! Ansible's run time counts in CI: two playbook runs and one syntax check.

mod common;

use common::*;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const PLAYBOOK: &str = "scripts/ansible/snapguard-preflight.yml";
const INVENTORY_EXAMPLE: &str = "scripts/ansible/inventory.example.ini";
/// One playbook run on a host or three; a hang fails the test instead of the CI job.
const ANSIBLE_TIMEOUT: Duration = Duration::from_secs(180);

const ROOT_LINE: &str =
    "20 1 0:20 / / rw - tmpfs tmpfs rw\n21 20 0:5 / /proc rw,nosuid - proc proc rw\n";

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `ansible-playbook`, or `None` after [`skip`] (a failure under
/// `SNAPGUARD_REQUIRE_PRIVILEGED=1`).
fn ansible_playbook(test: &str) -> Option<PathBuf> {
    let found = find_tool("ansible-playbook");
    if found.is_none() {
        skip(
            test,
            "ansible-playbook is missing (python3 -m pip install ansible-core; scripts/test.sh does)",
        );
    }
    found
}

/// A place for one playbook run: Ansible's home, temp dirs and an empty configuration (no
/// ansible.cfg of the machine or the working directory applies).
struct Run {
    dir: TestDir,
    ansible: PathBuf,
}

impl Run {
    fn new(tag: &str, ansible: PathBuf) -> Self {
        let dir = TestDir::new(tag);
        std::fs::write(dir.join("ansible.cfg"), "").unwrap();
        Run { dir, ansible }
    }

    /// `ansible-playbook ARGS` with this run's environment: (exit code, stdout + stderr).
    fn playbook(&self, args: &[OsString]) -> (i32, String) {
        let d = |name: &str| self.dir.mkdir(name);
        let out = assert_cmd::Command::new(&self.ansible)
            .args(args)
            .env("ANSIBLE_CONFIG", self.dir.join("ansible.cfg"))
            .env("ANSIBLE_HOME", d("ansible-home"))
            .env("ANSIBLE_LOCAL_TEMP", d("local-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", d("remote-tmp"))
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_TIMEOUT", "10")
            .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
            .env_remove("ANSIBLE_FORCE_COLOR")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .timeout(ANSIBLE_TIMEOUT)
            .output()
            .expect("spawn ansible-playbook");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Runs the playbook with `inventory` (and `-c local` when `local`) and the extra
    /// variables `vars` (written to a file, passed as `-e @FILE`); returns (exit, output, the
    /// collected file parsed).
    fn collect(&self, inventory: &str, local: bool, vars: Value) -> (i32, String, Value) {
        let report = self.dir.join("fleet.json");
        let mut vars = vars;
        // Interpreter discovery may pick a python3 that is not the one Ansible runs with (a
        // pyenv shim without that version); the controller's own interpreter is there.
        vars["ansible_python_interpreter"] = json!("{{ ansible_playbook_python }}");
        // Root already (or not, and then no sudo is wanted in a test): no become here.
        vars["ansible_become"] = json!(false);
        vars["snapguard_report"] = json!(report);
        let vars_file = self.dir.join("vars.json");
        std::fs::write(&vars_file, vars.to_string()).unwrap();
        let mut args: Vec<OsString> = vec!["-i".into(), inventory.into()];
        if local {
            args.extend(["-c".into(), "local".into()]);
        }
        args.extend([
            "-e".into(),
            format!("@{}", vars_file.display()).into(),
            repo_path(PLAYBOOK).into(),
        ]);
        let (code, out) = self.playbook(&args);
        let text = std::fs::read_to_string(&report)
            .unwrap_or_else(|e| panic!("no collected file ({e}); exit {code}:\n{out}"));
        let mode = std::fs::metadata(&report).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", report.display());
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("collected file is not JSON ({e}):\n{text}"));
        assert_eq!(doc["schema"], "snapguard-fleet-v1", "{doc:#}");
        let generated = doc["generated"].as_str().expect("generated");
        let at = humantime::parse_rfc3339(generated).expect("generated is RFC 3339 UTC");
        let age = SystemTime::now()
            .duration_since(at)
            .unwrap_or_else(|e| e.duration());
        assert!(age < Duration::from_secs(600), "generated {generated}");
        (code, out, doc)
    }
}

/// A fixture root with `mountinfo` and an empty configuration: the `--root`/`--config`
/// arguments for it.
fn fixture(dir: &TestDir, name: &str, mountinfo: &str) -> Vec<String> {
    let root = dir.mkdir(name);
    std::fs::create_dir_all(root.join("proc/self")).unwrap();
    std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, "").unwrap();
    vec![
        "--root".into(),
        root.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ]
}

/// `snapguard preflight --json ARGS` run directly: (exit code, document).
fn direct(args: &[String]) -> (i32, Value) {
    let mut all = vec!["preflight".to_string(), "--json".to_string()];
    all.extend(args.iter().cloned());
    let out = run_snapguard(&all, SCAN_TIMEOUT);
    (out.exit, out.json())
}

/// The collected entry agrees with the direct run: same exit code and decision, a report
/// valid against the schema with the same verdicts (timings differ).
fn assert_matches_direct(host: &str, entry: &Value, code: i32, doc: &Value) {
    assert_eq!(entry["rc"], code, "{host}: {entry:#}");
    assert_eq!(entry["decision"], doc["decision"], "{host}");
    let report = &entry["report"];
    assert_schema("preflight", report);
    for field in [
        "decision",
        "status",
        "exit_code",
        "profile",
        "blocked_by",
        "cannot_tell",
        "items",
    ] {
        assert_eq!(report[field], doc[field], "{host}: {field}");
    }
}

/// The one-line summary the playbook prints for a host with a report.
fn summary_line(host: &str, code: i32, doc: &Value) -> String {
    let why: Vec<&str> = doc["blocked_by"]
        .as_array()
        .unwrap()
        .iter()
        .chain(doc["cannot_tell"].as_array().unwrap())
        .map(|v| v.as_str().unwrap())
        .collect();
    let decision = doc["decision"].as_str().unwrap();
    match why.as_slice() {
        [] => format!("{host}: {decision} (exit {code})"),
        [first] => format!("{host}: {decision} (exit {code}): {first}"),
        [first, rest @ ..] => format!(
            "{host}: {decision} (exit {code}): {first} (+{} more)",
            rest.len()
        ),
    }
}

/// The debug task prints its lines as JSON strings.
fn assert_printed(out: &str, line: &str) {
    let quoted = serde_json::to_string(line).unwrap();
    assert!(out.contains(&quoted), "{quoted} not in:\n{out}");
}

fn summary(go: u32, blocked: u32, cannot_tell: u32, error: u32) -> Value {
    json!({"go": go, "blocked": blocked, "cannot-tell": cannot_tell, "error": error})
}

#[test]
fn a_healthy_host_is_collected_as_snapguard_reports_it() {
    let test = "ansible_healthy";
    let Some(ansible) = ansible_playbook(test) else {
        return;
    };
    if !have_tools(test, &["mkfs.ext4"]) {
        return;
    }
    let run = Run::new("ansible-healthy", ansible);
    // A clean ext4 image file named as the device of /data: scanned and judged freezable
    // like a block device, without root or a loop device.
    let img = fixtures::ext4(&run.dir, "clean.img", &[]);
    let args = fixture(
        &run.dir,
        "healthy",
        &format!(
            "{ROOT_LINE}30 20 7:99 / /data rw,relatime - ext4 {} rw\n",
            img.display()
        ),
    );
    let (code, doc) = direct(&args);
    assert_eq!(
        doc["decision"], "go",
        "the fixture is meant healthy: {doc:#}"
    );

    let (exit, out, fleet) = run.collect(
        "localhost,",
        true,
        json!({
            "snapguard_bin": env!("CARGO_BIN_EXE_snapguard"),
            "snapguard_args": args,
        }),
    );
    assert_eq!(exit, 0, "{out}");
    let hosts = fleet["hosts"].as_object().expect("hosts");
    assert_eq!(hosts.len(), 1, "{fleet:#}");
    assert_matches_direct("localhost", &fleet["hosts"]["localhost"], code, &doc);
    assert_eq!(fleet["summary"], summary(1, 0, 0, 0));
    assert_printed(&out, &summary_line("localhost", code, &doc));
}

#[test]
fn hosts_without_a_report_are_recorded_and_a_blocked_host_fails_the_play_on_request() {
    let test = "ansible_errors";
    let Some(ansible) = ansible_playbook(test) else {
        return;
    };
    let run = Run::new("ansible-errors", ansible);
    // The mount table names a device that does not exist: nothing can be assessed, which
    // blocks the backup.
    let mut args = fixture(
        &run.dir,
        "blocked",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    args.extend(["--profile".into(), "systemd".into()]);
    let (code, doc) = direct(&args);
    assert_eq!(doc["decision"], "blocked", "{doc:#}");

    let missing = run.dir.join("not-installed/snapguard");
    // A snapguard that never answers (a device that hangs it) and one that prints no JSON.
    let fake = |name: &str, body: &str| {
        let p = run.dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let hung = fake("hung", "exec sleep 120");
    let garbage = fake("garbage", "echo 'Segmentation fault — «ünïcode»'; exit 0");
    let silent = fake("silent", "exit 0");
    let args_json = serde_json::to_string(&args).unwrap();
    // Port 1 on the loopback: refused at once (unreachable, not a hang).
    let inventory = run.dir.join("hosts.ini");
    std::fs::write(
        &inventory,
        format!(
            "blocked ansible_connection=local snapguard_bin={} snapguard_args='{args_json}'\n\
             missing ansible_connection=local snapguard_bin={}\n\
             down ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1\n\
             hung ansible_connection=local snapguard_bin={} snapguard_timeout=2\n\
             garbage ansible_connection=local snapguard_bin={}\n\
             silent ansible_connection=local snapguard_bin={}\n",
            env!("CARGO_BIN_EXE_snapguard"),
            missing.display(),
            hung.display(),
            garbage.display(),
            silent.display()
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (exit, out, fleet) = run.collect(
        inventory.to_str().unwrap(),
        false,
        json!({"snapguard_fail_on_blocked": true}),
    );
    // The hung host is given up after its 2 s, not after its 120 s.
    assert!(started.elapsed() < Duration::from_secs(100), "{out}");
    // The file is written first; then the play fails because a host is blocked.
    assert_eq!(exit, 2, "{out}");
    assert!(out.contains("1 host(s) blocked: see "), "{out}");
    let hosts = fleet["hosts"].as_object().expect("hosts");
    assert_eq!(hosts.len(), 6, "{fleet:#}");
    assert_eq!(
        fleet["hosts"]["silent"],
        json!({"error": format!("{} gave no report (exit 0): no output", silent.display())})
    );
    assert_eq!(
        fleet["hosts"]["hung"],
        json!({"error": format!("{} did not finish within 2 s (killed)", hung.display())})
    );
    assert_eq!(
        fleet["hosts"]["garbage"],
        json!({"error": format!(
            "{} gave no report (exit 0): stdout is not a JSON object: Segmentation fault — «ünïcode»",
            garbage.display()
        )})
    );
    assert_matches_direct("blocked", &fleet["hosts"]["blocked"], code, &doc);
    assert_eq!(
        fleet["hosts"]["missing"],
        json!({"error": format!("snapguard is not installed: {} does not exist", missing.display())})
    );
    let down = fleet["hosts"]["down"]["error"]
        .as_str()
        .expect("down: error");
    assert_eq!(fleet["hosts"]["down"].as_object().unwrap().len(), 1);
    // Without an ssh client Ansible cannot even try: an error all the same.
    if find_tool("ssh").is_some() {
        assert!(
            down.starts_with("unreachable: ") && down.contains("127.0.0.1"),
            "{down}"
        );
    }
    assert_eq!(fleet["summary"], summary(0, 1, 0, 5));
    assert_printed(&out, &summary_line("blocked", code, &doc));
    assert!(
        out.contains("\"missing: ERROR snapguard is not installed: "),
        "{out}"
    );
}

#[test]
fn the_playbook_and_the_example_inventory_pass_the_syntax_check() {
    let Some(ansible) = ansible_playbook("ansible_syntax") else {
        return;
    };
    let run = Run::new("ansible-syntax", ansible);
    let (exit, out) = run.playbook(&[
        "--syntax-check".into(),
        "-i".into(),
        repo_path(INVENTORY_EXAMPLE).into(),
        repo_path(PLAYBOOK).into(),
    ]);
    assert_eq!(exit, 0, "{out}");
    assert!(!out.contains("WARNING"), "{out}");
}
