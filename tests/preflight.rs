//! `snapguard preflight` as the preflight unit runs it (the unit file's own `ExecStart=`
//! arguments, `--profile systemd`), against `--root`
//! fixture trees whose mount table lists real loop devices: an unclean ext4, an unfreezable
//! mount and a confined agent each stop the backup, a healthy machine does not; the azure and
//! nagios codes; every document validated against `docs/json-schema/preflight-v1.schema.json`
//! (and the embedded ones against theirs); the `--prometheus` file parsed by the real
//! `prometheus_client` parser and never seen half-written.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

// The fixture roots are common::preflight_root's; how this file runs preflight on them:
use common::preflight_root::{
    FixtureRoot as Fx, ROOT_LINE, confined_agent, ext4_on_loop, line, unclean_ext4_on_loop,
    vfat_on_loop,
};

impl Fx {
    /// `snapguard --root ROOT --config CONFIG preflight --json --profile PROFILE EXTRA...`:
    /// (exit code, schema-checked document).
    fn run(&self, profile: &str, extra: &[&str]) -> (i32, Value) {
        let mut args: Vec<OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--config".into(),
            self.config.clone().into(),
            "preflight".into(),
            "--json".into(),
            "--profile".into(),
            profile.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let out = run_snapguard(args, SCAN_TIMEOUT);
        let doc = out.json();
        check_schemas(&doc);
        assert_eq!(doc["exit_code"], out.exit, "{out:?}");
        assert_eq!(doc["profile"], profile);
        (out.exit, doc)
    }

    /// The preflight unit's own command line (`ExecStart=` of
    /// systemd/snapguard-preflight.service, the binary left out) with `--root` and `--config`
    /// added: (exit code, schema-checked document).
    fn run_as_the_unit_does(&self) -> (i32, Value) {
        let mut args: Vec<OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--config".into(),
            self.config.clone().into(),
        ];
        args.extend(preflight_unit_arguments().into_iter().map(OsString::from));
        let out = run_snapguard(args, SCAN_TIMEOUT);
        let doc = out.json();
        check_schemas(&doc);
        assert_eq!(doc["exit_code"], out.exit, "{out:?}");
        assert_eq!(
            doc["profile"], "systemd",
            "the unit must use --profile systemd"
        );
        (out.exit, doc)
    }

    /// The three profiles' codes: (nagios, systemd, azure).
    fn codes(&self) -> (i32, i32, i32) {
        (
            self.run("nagios", &[]).0,
            self.run("systemd", &[]).0,
            self.run("azure", &[]).0,
        )
    }
}

/// The arguments of the one `ExecStart=` line of systemd/snapguard-preflight.service after
/// the binary. The line must be plain words (no quotes, escapes or specifiers), so splitting
/// on whitespace is what systemd does with it.
fn preflight_unit_arguments() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/snapguard-preflight.service"
    );
    let unit = std::fs::read_to_string(path).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .collect();
    assert_eq!(
        exec.len(),
        1,
        "{path}: one ExecStart= expected, got {exec:?}"
    );
    assert!(
        !exec[0].contains(['"', '\\', '\'', '%', '$']),
        "{path}: ExecStart= is not plain words: {}",
        exec[0]
    );
    let mut words = exec[0].split_whitespace();
    let binary = words.next().expect("ExecStart= names a binary");
    assert!(
        binary.ends_with("/snapguard"),
        "{path}: ExecStart= runs {binary}"
    );
    words.map(String::from).collect()
}

/// The document against its schema, and each embedded document against its own.
fn check_schemas(doc: &Value) {
    assert_schema("preflight", doc);
    for (field, schema) in [
        ("scan", "scan"),
        ("freeze_test", "freeze-test"),
        ("selinux", "selinux"),
    ] {
        if !doc[field].is_null() {
            assert_schema(schema, &doc[field]);
        }
    }
    let blocking = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["blocks_backup"] == true)
        .count();
    assert_eq!(doc["blocked_by"].as_array().unwrap().len(), blocking);
    assert_eq!(doc["decision"] == "blocked", blocking > 0, "{doc:#}");
}

fn blocked_by(doc: &Value) -> Vec<String> {
    doc["blocked_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_systemd_profile_stops_the_backup_for_each_blocker_and_not_for_a_healthy_machine() {
    if !require_root("preflight_systemd") {
        return;
    }
    // Healthy: one clean ext4 at /data.
    let scratch = TestDir::new("preflight-images");
    let (_, clean) = ext4_on_loop(&scratch, "clean.img");
    let healthy = Fx::new(
        "preflight-healthy",
        &format!("{ROOT_LINE}{}", line(30, &clean, "/data", "ext4")),
    );
    let (code, doc) = healthy.run_as_the_unit_does();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["decision"], "go");
    assert_eq!(doc["items"][0]["id"], clean.dev().display().to_string());
    assert_eq!(healthy.codes(), (0, 0, 0));

    // (a) An unclean ext4 (state 0: "not clean", as after a crash), listed as mounted.
    let unclean = unclean_ext4_on_loop(&scratch, "unclean.img");
    let fx = Fx::new(
        "preflight-unclean",
        &format!(
            "{ROOT_LINE}{}{}",
            line(30, &clean, "/data", "ext4"),
            line(31, &unclean, "/srv", "ext4")
        ),
    );
    let (code, doc) = fx.run_as_the_unit_does();
    assert_eq!(code, 1, "{doc:#}");
    let why = blocked_by(&doc);
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].starts_with(&format!("scan {}: not clean", unclean.dev().display())),
        "{why:?}"
    );
    // The scan itself calls it a warning; blocking makes the item critical.
    let target = &doc["scan"]["targets"][1];
    assert_eq!(target["status"], "warning", "{target:#}");
    assert_eq!(target["state"], "not clean");
    assert_eq!(fx.codes(), (2, 1, 1));
    // Human output: one line per blocker.
    let out = run_snapguard(
        [
            OsString::from("--root"),
            fx.root.clone().into(),
            "--config".into(),
            fx.config.clone().into(),
            "preflight".into(),
            "--profile".into(),
            "systemd".into(),
        ],
        SCAN_TIMEOUT,
    );
    assert_eq!(out.exit, 1);
    assert!(
        out.stdout.contains(&format!(
            "backup blocked by: scan {}: not clean",
            unclean.dev().display()
        )),
        "{}",
        out.stdout
    );

    // (b) A mount that cannot be frozen: a vfat (no freeze support in its driver).
    let vfat = vfat_on_loop(&scratch, "efi.img");
    let fx = Fx::new(
        "preflight-unfreezable",
        &format!(
            "{ROOT_LINE}{}{}",
            line(30, &clean, "/data", "ext4"),
            line(32, &vfat, "/boot/efi", "vfat")
        ),
    );
    let (code, doc) = fx.run_as_the_unit_does();
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(
        blocked_by(&doc),
        vec![
            "freeze-test /boot/efi: cannot be frozen (unsupported): vfat: the kernel driver has no freeze support (EOPNOTSUPP)"
        ]
    );
    assert_eq!(fx.codes(), (2, 1, 1));
    // Skipped by configuration, it no longer blocks: warnings only (Azure's 2, systemd's go).
    std::fs::write(&fx.config, "[freeze]\nskip = [\"/boot/efi\"]\n").unwrap();
    let (code, doc) = fx.run("azure", &[]);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["decision"], "go");
    assert_eq!(doc["status"], "warning");
    assert_eq!(fx.codes(), (1, 0, 2));

    // (c) A confined agent whose denial was enforced.
    let fx = Fx::new(
        "preflight-confined",
        &format!("{ROOT_LINE}{}", line(30, &clean, "/data", "ext4")),
    );
    confined_agent(&fx.root);
    let (code, doc) = fx.run_as_the_unit_does();
    assert_eq!(code, 1, "{doc:#}");
    let why = blocked_by(&doc);
    assert!(
        why.iter().any(
            |w| w.starts_with("selinux S6: agent domain: the agent runs confined as waagent_t")
        ),
        "{why:?}"
    );
    assert_eq!(doc["selinux"]["excluded"], false);
    assert_eq!(fx.codes(), (2, 1, 1));
}

#[test]
fn a_root_without_a_mount_table_is_cannot_tell_in_every_profile() {
    let fx = Fx::new("preflight-no-mountinfo", "");
    std::fs::remove_file(fx.root.join("proc/self/mountinfo")).unwrap();
    let (code, doc) = fx.run("systemd", &[]);
    assert_eq!(code, 2, "{doc:#}");
    assert_eq!(doc["decision"], "cannot-tell");
    assert!(doc["scan"].is_null() && doc["freeze_test"].is_null());
    let cannot: Vec<&str> = doc["cannot_tell"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cannot[0].starts_with("scan: cannot read the mount table"),
        "{cannot:?}"
    );
    assert!(cannot[1].starts_with("freeze-test: "), "{cannot:?}");
    assert_eq!(fx.codes(), (3, 2, 1));
}

#[test]
fn a_filesystem_that_cannot_be_assessed_blocks() {
    // The mount table names a device that does not exist: nothing could be read.
    let fx = Fx::new(
        "preflight-unassessed",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    let (code, doc) = fx.run("systemd", &[]);
    assert_eq!(code, 1, "{doc:#}");
    assert!(
        blocked_by(&doc)[0].starts_with("scan /dev/snapguard-test-absent: could not be assessed"),
        "{doc:#}"
    );
    assert_eq!(fx.codes(), (2, 1, 1));
}

/// `python3 -c SCRIPT FILE`, with the prometheus_client module; `None` (after `skip`) when
/// the module is missing.
fn parse_with_prometheus_client(test: &str, file: &Path) -> Option<Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
out = {}
for fam in text_string_to_metric_families(text):
    out[fam.name] = {"type": fam.type, "documentation": fam.documentation,
                     "samples": [[s.name, s.labels, repr(s.value)] for s in fam.samples]}
print(json.dumps(out))
"#;
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output();
    if !matches!(probe, Ok(ref o) if o.status.success()) {
        skip(
            test,
            "python3 with prometheus_client is missing (pip install prometheus_client; scripts/test.sh does)",
        );
        return None;
    }
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client rejected {}:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    Some(serde_json::from_slice(&out.stdout).expect("parser output"))
}

/// The value of a `[name, labels, repr(value)]` sample from the parser.
fn value(sample: &Value) -> f64 {
    let text = sample[2].as_str().expect("repr of the value");
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[test]
fn the_prometheus_textfile_parses_with_prometheus_client_and_escapes_labels() {
    // A mount point with a quote, a backslash and a newline (mountinfo's octal escapes).
    let fx = Fx::new(
        "preflight-prometheus",
        &format!(
            "{ROOT_LINE}30 20 259:77 / /da\"ta\\134x\\012y rw - ext4 /dev/snapguard-test-absent rw\n"
        ),
    );
    let prom = fx.dir.join("snapguard.prom");
    let (code, doc) = fx.run("systemd", &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(code, 1);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&prom).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    // Nothing but the file itself is left in the directory.
    let leftovers: Vec<_> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("# TYPE snapguard_preflight_blocked gauge"),
        "{text}"
    );
    let Some(parsed) = parse_with_prometheus_client("preflight_prometheus", &prom) else {
        return;
    };
    let samples = |name: &str| parsed[name]["samples"].as_array().unwrap().clone();
    assert_eq!(value(&samples("snapguard_preflight_blocked")[0]), 1.0);
    assert_eq!(value(&samples("snapguard_preflight_cannot_tell")[0]), 0.0);
    assert_eq!(parsed["snapguard_preflight_blocked"]["type"], "gauge");
    let mountpoint = "/da\"ta\\x\ny";
    let clean = samples("snapguard_filesystem_clean");
    assert_eq!(clean.len(), 1, "{clean:?}");
    assert_eq!(clean[0][1]["mountpoint"], mountpoint);
    assert_eq!(clean[0][1]["device"], "/dev/snapguard-test-absent");
    assert!(
        value(&clean[0]).is_nan(),
        "could not be assessed: neither clean nor unclean"
    );
    let freezable = samples("snapguard_mount_freezable");
    assert_eq!(freezable[0][1]["mountpoint"], mountpoint);
    assert_eq!(freezable[0][1]["verdict"], "freezable");
    // One check-status sample per item, with the JSON's section and id.
    let checks = samples("snapguard_check_status");
    assert_eq!(checks.len(), doc["items"].as_array().unwrap().len());
    let scan_check = checks
        .iter()
        .find(|s| s[1]["section"] == "scan")
        .expect("scan item");
    assert_eq!(scan_check[1]["id"], "/dev/snapguard-test-absent");
    assert_eq!(value(scan_check), 2.0);
    let ts = value(&samples("snapguard_preflight_last_run_timestamp_seconds")[0]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 120.0, "{ts} vs {now}");
}

#[test]
fn the_prometheus_file_is_never_seen_half_written() {
    let fx = Fx::new(
        "preflight-atomic",
        &format!("{ROOT_LINE}30 20 259:77 / /data rw - ext4 /dev/snapguard-test-absent rw\n"),
    );
    let prom = fx.dir.join("snapguard.prom");
    let (_, _) = fx.run("nagios", &["--prometheus", prom.to_str().unwrap()]);
    let first = std::fs::read_to_string(&prom).unwrap();
    let last_metric = "snapguard_preflight_last_run_timestamp_seconds ";

    // A reader polls the file while preflight rewrites it again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let prom = prom.clone();
        std::thread::spawn(move || {
            let mut reads = 0u32;
            let mut distinct = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let text = std::fs::read_to_string(&prom).expect("the file is always there");
                // Complete: starts with the first family, ends with the last sample's line.
                assert!(
                    text.starts_with("# HELP snapguard_preflight_blocked "),
                    "{text:?}"
                );
                let tail = text.lines().last().unwrap_or("");
                assert!(
                    tail.starts_with(last_metric) && text.ends_with('\n'),
                    "half-written read: {text:?}"
                );
                distinct.insert(text);
                reads += 1;
            }
            (reads, distinct)
        })
    };
    for _ in 0..40 {
        let out = run_snapguard(
            [
                OsString::from("--root"),
                fx.root.clone().into(),
                "--config".into(),
                fx.config.clone().into(),
                "preflight".into(),
                "-q".into(),
                "--prometheus".into(),
                prom.clone().into(),
            ],
            SCAN_TIMEOUT,
        );
        assert_eq!(out.exit, 2, "{out:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, distinct) = reader.join().expect("reader");
    note(&format!(
        "{reads} reads of {} distinct versions, every one complete",
        distinct.len()
    ));
    assert!(reads > 40, "the reader read only {reads} times");
    assert!(distinct.len() > 1 || distinct.contains(&first));
    // Every version seen parses with the real parser.
    for (i, text) in distinct.iter().enumerate().take(5) {
        let copy = fx.dir.join(format!("seen-{i}.prom"));
        std::fs::write(&copy, text).unwrap();
        if parse_with_prometheus_client("preflight_atomic", &copy).is_none() {
            return;
        }
    }
}

#[test]
fn help_documents_every_exit_code_of_every_profile() {
    let out = run_snapguard(["preflight", "--help"], SCAN_TIMEOUT);
    assert_eq!(out.exit, 0);
    for needle in [
        "0  go",
        "1  blocked",
        "2  cannot tell",
        "never 255",
        "ExecCondition=",
        "0  healthy",
        "2  warnings",
        "3  UNKNOWN",
        "backup blocked by",
        "blocks_backup",
    ] {
        assert!(out.stdout.contains(needle), "--help lacks {needle:?}");
    }
}
