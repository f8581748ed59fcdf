//! Validates real `snapguard scan --json` output against `docs/json-schema/scan-v1.schema.json`.
//!
//! The images are made here with mkfs.ext4 and debugfs on plain files in a temp dir (no root, no
//! loop device). The schema itself is also checked: it must compile as draft 2020-12 and must
//! reject documents that break the contract, so a schema that accepts anything fails here.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use jsonschema::Validator;
use serde_json::{Value, json};
use tempfile::TempDir;

const SCHEMA: &str = "docs/json-schema/scan-v1.schema.json";

fn validator() -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    // `new` also validates the schema against the draft 2020-12 meta-schema.
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid 2020-12 schema: {e}", path.display()))
}

/// Every schema error, one per line, with where it is in the document.
fn errors(v: &Validator, doc: &Value) -> String {
    v.iter_errors(doc)
        .map(|e| format!("  at '{}': {e}", e.instance_path))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_valid(v: &Validator, doc: &Value, what: &str) {
    let errs = errors(v, doc);
    assert!(
        errs.is_empty(),
        "{what} does not match {SCHEMA}:\n{errs}\ndocument:\n{doc:#}"
    );
}

/// e2fsprogs tools live in /sbin or /usr/sbin, which a test's PATH may lack.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install e2fsprogs (scripts/test.sh does)"))
}

fn run_tool(name: &str, args: &[&str]) {
    let out = StdCommand::new(tool(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 16 MiB sparse ext4 image; `state` is written into the superblock with debugfs when given.
fn ext4_image(dir: &TempDir, name: &str, state: Option<u16>) -> String {
    let img = dir.path().join(name);
    let f = std::fs::File::create(&img).expect("create image file");
    f.set_len(16 << 20).expect("size image file");
    drop(f);
    let img = img.to_str().expect("utf-8 temp path").to_owned();
    run_tool("mkfs.ext4", &["-q", "-F", "-L", name, &img]);
    if let Some(state) = state {
        run_tool(
            "debugfs",
            &["-w", "-R", &format!("ssv state {state}"), &img],
        );
    }
    img
}

/// Runs `snapguard scan --json ARGS`, returns (exit code, parsed stdout).
fn scan_json(args: &[&str]) -> (i32, Value) {
    let out = Command::cargo_bin("snapguard")
        .expect("snapguard binary")
        .arg("scan")
        .arg("--json")
        .args(args)
        .output()
        .expect("run snapguard");
    let code = out.status.code().expect("snapguard killed by a signal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout of snapguard scan --json {args:?} (exit {code}) is not one JSON document: {e}\n\
             stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, doc)
}

fn target<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["target"] == path))
        .unwrap_or_else(|| panic!("no target {path:?} in\n{doc:#}"))
}

/// Checks what the schema cannot express: the summary counts the targets by status, and the
/// exit code is the worst status (critical 2 > unknown 3 > warning 1 > ok 0).
fn assert_summary_and_exit(doc: &Value, code: i32) {
    let statuses: Vec<&str> = doc["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["status"].as_str().expect("status"))
        .collect();
    for s in ["ok", "warning", "critical", "unknown"] {
        let n = statuses.iter().filter(|&&x| x == s).count();
        assert_eq!(doc["summary"][s], json!(n), "summary.{s} in\n{doc:#}");
    }
    let expected = ["critical", "unknown", "warning"]
        .iter()
        .zip([2, 3, 1])
        .find(|(s, _)| statuses.contains(s))
        .map_or(0, |(_, c)| c);
    assert_eq!(code, expected, "exit code for statuses {statuses:?}");
}

#[test]
fn scan_json_of_ext4_images_matches_schema() {
    let v = validator();
    let dir = TempDir::new().expect("temp dir");
    let clean = ext4_image(&dir, "clean.img", None);
    // state 2 = EXT2_ERROR_FS without EXT2_VALID_FS: "not clean with errors".
    let errors_img = ext4_image(&dir, "errors.img", Some(2));
    // state 0 = neither flag: "not clean" (crashed while mounted).
    let unclean = ext4_image(&dir, "unclean.img", Some(0));

    let (code, doc) = scan_json(&[&clean, &errors_img, &unclean]);
    assert_valid(&v, &doc, "scan of three ext4 images");
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(3), "{doc:#}");
    assert_summary_and_exit(&doc, code);

    let t = target(&doc, &clean);
    assert_eq!(t["fstype"], "ext4");
    assert_eq!(t["state"], "clean");
    assert_eq!(t["status"], "ok", "{t:#}");
    assert_eq!(t["fsck_reason"], Value::Null, "{t:#}");

    let t = target(&doc, &errors_img);
    assert_eq!(t["state"], "not clean with errors");
    assert_eq!(t["status"], "critical", "{t:#}");

    let t = target(&doc, &unclean);
    assert_eq!(t["state"], "not clean");
    assert_eq!(t["fsck_reason"], "was not cleanly unmounted", "{t:#}");
}

#[test]
fn scan_json_of_xfs_btrfs_fat_and_exfat_images_matches_schema() {
    let v = validator();
    let dir = TempDir::new().expect("temp dir");
    let make = |name: &str, size: u64, mkfs: &str, args: &[&str]| -> Option<String> {
        let img = dir.path().join(name);
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(size << 20))
            .expect("create image");
        let img = img.to_str().expect("utf-8 temp path").to_string();
        which(mkfs)?;
        let mut all: Vec<&str> = args.to_vec();
        all.push(&img);
        run_tool(mkfs, &all);
        Some(img)
    };
    let images: Vec<String> = [
        make("x.img", 320, "mkfs.xfs", &["-q", "-f"]),
        make("b.img", 128, "mkfs.btrfs", &["-q", "-f"]),
        make("f16.img", 32, "mkfs.fat", &["-F", "16"]),
        make("f32.img", 64, "mkfs.fat", &["-F", "32"]),
        make("e.img", 32, "mkfs.exfat", &[]),
        make("g.img", 64, "mkfs.f2fs", &["-q"]),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Every one of the six: a missing mkfs would silently drop a filesystem from the check.
    assert_eq!(
        images.len(),
        6,
        "mkfs.xfs, mkfs.btrfs, mkfs.fat, mkfs.exfat and mkfs.f2fs are all required (scripts/test.sh installs them)"
    );
    let args: Vec<&str> = images.iter().map(String::as_str).collect();
    let (code, doc) = scan_json(&args);
    assert_valid(&v, &doc, "scan of XFS, btrfs, FAT, exFAT and f2fs images");
    assert_summary_and_exit(&doc, code);
    for img in &images {
        let t = target(&doc, img);
        assert_eq!(t["state"], "clean", "{t:#}");
        assert_eq!(t["status"], "ok", "{t:#}");
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(tool))
        .find(|p| p.exists())
}

#[test]
fn scan_json_of_unreadable_target_matches_schema() {
    let v = validator();
    let dir = TempDir::new().expect("temp dir");
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![0x5a_u8; 1 << 20]).expect("write junk image");
    let junk = junk.to_str().expect("utf-8 temp path");

    let (code, doc) = scan_json(&[junk]);
    assert_valid(&v, &doc, "scan of a file with no filesystem");
    assert_summary_and_exit(&doc, code);
    let t = target(&doc, junk);
    assert_eq!(t["status"], "unknown", "{t:#}");
    assert!(
        t["error"].is_string(),
        "an unassessed target carries \"error\": {t:#}"
    );
}

/// Breaks one rule of the contract in a valid document.
type Mutation = fn(&mut Value);

/// A document that follows the contract, to mutate in the negative cases below.
fn sample() -> Value {
    json!({
        "schema_version": 1,
        "command": "scan",
        "summary": {"ok": 0, "warning": 1, "critical": 0, "unknown": 0},
        "targets": [{
            "target": "/tmp/x/disk.img#p1",
            "device": null,
            "fstype": "ext4",
            "mountpoint": null,
            "other_mountpoints": [],
            "context": "offline",
            "partition": {"index": 1, "scheme": "gpt", "offset": 1048576, "size": 33554432},
            "status": "warning",
            "state": "not clean",
            "needs_recovery": false,
            "fsck_reason": "was not cleanly unmounted",
            "ext": {"block_size": 4096},
            "findings": [{
                "id": "ext.not-clean",
                "severity": "warning",
                "message": "filesystem was not cleanly unmounted",
                "remedy": "e2fsck -f /tmp/x/disk.img"
            }]
        }]
    })
}

#[test]
fn schema_accepts_contract_and_rejects_violations() {
    let v = validator();
    let good = sample();
    assert_valid(&v, &good, "the contract's sample document");

    // New target fields may be added without a schema bump.
    let mut doc = good.clone();
    doc["targets"][0]["some_future_field"] = json!({"x": 1});
    assert_valid(&v, &doc, "a target with an added field");

    let bad: Vec<(&str, Mutation)> = vec![
        ("misspelled status", |d| {
            d["targets"][0]["status"] = json!("critcal")
        }),
        ("unknown severity", |d| {
            d["targets"][0]["findings"][0]["severity"] = json!("error")
        }),
        ("state not as tune2fs prints it", |d| {
            d["targets"][0]["state"] = json!("unclean")
        }),
        ("unknown context", |d| {
            d["targets"][0]["context"] = json!("online")
        }),
        ("finding id without a dot", |d| {
            d["targets"][0]["findings"][0]["id"] = json!("notclean")
        }),
        ("finding id in capitals", |d| {
            d["targets"][0]["findings"][0]["id"] = json!("Ext.NotClean")
        }),
        ("extra field on a finding", |d| {
            d["targets"][0]["findings"][0]["hint"] = json!("x")
        }),
        ("finding without remedy", |d| {
            d["targets"][0]["findings"][0]
                .as_object_mut()
                .unwrap()
                .remove("remedy");
        }),
        ("target without fsck_reason", |d| {
            d["targets"][0]
                .as_object_mut()
                .unwrap()
                .remove("fsck_reason");
        }),
        ("fsck_reason with the leading space", |d| {
            d["targets"][0]["fsck_reason"] = json!(" was not cleanly unmounted")
        }),
        ("needs_recovery as a string", |d| {
            d["targets"][0]["needs_recovery"] = json!("yes")
        }),
        ("schema_version 2", |d| d["schema_version"] = json!(2)),
        ("another command", |d| d["command"] = json!("freeze-test")),
        ("negative count", |d| d["summary"]["ok"] = json!(-1)),
        ("summary without unknown", |d| {
            d["summary"].as_object_mut().unwrap().remove("unknown");
        }),
        ("unknown partition scheme", |d| {
            d["targets"][0]["partition"]["scheme"] = json!("apm")
        }),
    ];
    for (what, mutate) in bad {
        let mut doc = good.clone();
        mutate(&mut doc);
        assert!(
            !v.is_valid(&doc),
            "the schema accepts a document with a {what}:\n{doc:#}"
        );
    }
}
