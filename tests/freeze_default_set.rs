//! snapguard's *default set* (no MOUNT argument) run for real, inside a private mount namespace
//! whose `/` is a test ext4 on the test's own loop device (`freeze_support::private_root`), so
//! the machine's own `/` is never in reach (privileged, except the safety-check test):
//!
//! * `freeze -- true` freezes `/` last and thaws it first, with a second filesystem at `/data`
//!   listed before `/` in mountinfo (so only the "`/` last" rule can put `/` last);
//! * the same when another whole-filesystem mount of the root superblock (`/mnt/top`) is listed
//!   before `/`: the superblock under `/` still goes last;
//! * `freeze-test` finds `/` freezable and tests it last;
//! * the harness's safety check refuses any mount table with a block-backed mount that is not
//!   the test's (on fabricated mountinfo, and for real with `/data` left off the allowed list),
//!   and snapguard is then never started.

mod common;
mod freeze_support;

use common::{TestDir, require_root};
use freeze_support::private_root::{
    EXIT_REFUSED, PrivateRoot, PrivateRun, RootLayout, SafetyPolicy, run_safety_check,
};
use freeze_support::{assert_schema, assert_writable, timed};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Generous for a run that freezes two small filesystems on a busy 2-core machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// `freeze --json --no-hooks --timeout 10s -- true`, with no MOUNT: the default set.
const FREEZE_DEFAULT_SET: &[&str] = &[
    "freeze",
    "--json",
    "--no-hooks",
    "--timeout",
    "10s",
    "--",
    "true",
];

/// A row's mount point, freeze time and thaw time (ms since the run started), for every row
/// that was frozen (duplicates carry no times).
fn frozen_rows(doc: &Value) -> Vec<(String, f64, f64)> {
    doc["mounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no mounts array: {doc:#}"))
        .iter()
        .filter_map(|r| {
            Some((
                r["mountpoint"].as_str()?.to_owned(),
                r["frozen_at_ms"].as_f64()?,
                r["thawed_at_ms"].as_f64().unwrap_or(f64::NAN),
            ))
        })
        .collect()
}

/// The mount points named in a document, as rows or as `duplicate_of`.
fn named_mount_points(doc: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for r in doc["mounts"].as_array().expect("mounts array") {
        for key in ["mountpoint", "duplicate_of"] {
            if let Some(s) = r[key].as_str() {
                names.push(s.to_owned());
            }
        }
    }
    names
}

/// Panics unless the superblock frozen under one of `root_names` was frozen after and thawed
/// before every other frozen row.
fn assert_root_frozen_last_thawed_first(doc: &Value, root_names: &[&str], run: &PrivateRun) {
    let rows = frozen_rows(doc);
    let (root_rows, others): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|(mp, _, _)| root_names.contains(&mp.as_str()));
    assert_eq!(
        root_rows.len(),
        1,
        "expected the root superblock frozen exactly once (under one of {root_names:?}): {doc:#}\n{}",
        run.describe()
    );
    assert!(
        !others.is_empty(),
        "expected another frozen filesystem besides the root: {doc:#}"
    );
    let (root_mp, root_frozen, root_thawed) = root_rows[0];
    for (mp, frozen, thawed) in &others {
        assert!(
            root_frozen > frozen,
            "the root superblock ({root_mp}) must be frozen LAST, but it was frozen at \
             {root_frozen} ms, before {mp} at {frozen} ms\n--- mountinfo inside\n{}\n{doc:#}",
            run.mountinfo.join("\n")
        );
        assert!(
            root_thawed < thawed,
            "the root superblock ({root_mp}) must be thawed FIRST, but it was thawed at \
             {root_thawed} ms, after {mp} at {thawed} ms\n{doc:#}"
        );
    }
}

/// Panics unless `/` (freeze-test: each filesystem is frozen and thawed at once) was frozen
/// only after every other filesystem had been frozen and thawed again.
fn assert_root_tested_last(doc: &Value, run: &PrivateRun) {
    let rows = frozen_rows(doc);
    let (root, others): (Vec<_>, Vec<_>) = rows.iter().partition(|(mp, _, _)| mp == "/");
    assert_eq!(
        root.len(),
        1,
        "/ tested exactly once: {doc:#}\n{}",
        run.describe()
    );
    assert!(!others.is_empty(), "nothing tested besides /: {doc:#}");
    let (_, root_frozen, _) = root[0];
    for (mp, _, thawed) in &others {
        assert!(
            root_frozen > thawed,
            "/ must be tested LAST, but it was frozen at {root_frozen} ms, before {mp} was \
             thawed at {thawed} ms\n{doc:#}"
        );
    }
}

/// The checks every run that reached snapguard shares: it started, exited 0, the mount table
/// it saw holds `/` and no trace of the old root.
fn assert_ran_ok(run: &PrivateRun) {
    assert!(
        run.snapguard_started && run.exit == Some(0) && !run.timed_out,
        "snapguard inside the private root did not succeed\n{}",
        run.describe()
    );
    let mps = run.mount_points();
    assert!(mps.iter().any(|m| m == "/"), "no / inside: {mps:?}");
    assert!(
        !mps.iter().any(|m| m.starts_with("/.old-root")),
        "the old root is still attached: {mps:?}"
    );
}

#[test]
fn default_set_freezes_root_last_and_thaws_it_first() {
    if !require_root("default_set_freezes_root_last_and_thaws_it_first") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("nsroot-freeze");
    let private = PrivateRoot::new(&dir, Some("btrfs"), RootLayout::Plain);
    let run = private.run(FREEZE_DEFAULT_SET, RUN_TIMEOUT);
    assert_ran_ok(&run);
    let mps = run.mount_points();
    let pos = |name: &str| mps.iter().position(|m| m == name);
    assert!(
        pos("/data") < pos("/"),
        "/data must be listed before / (so that / cannot come last by mere order): {mps:?}"
    );
    let doc = run.json();
    assert_schema("freeze", &doc);
    let names = named_mount_points(&doc);
    for mp in ["/", "/data"] {
        assert!(
            names.iter().any(|n| n == mp),
            "{mp} not in the report: {doc:#}"
        );
    }
    assert_root_frozen_last_thawed_first(&doc, &["/"], &run);
    assert_writable(private.root().dir(), "the root filesystem after the run");
    assert_writable(
        private.data().expect("data").dir(),
        "the /data filesystem after the run",
    );
    timed("default_set_freezes_root_last_and_thaws_it_first", start);
}

#[test]
fn root_superblock_goes_last_even_when_another_of_its_mounts_is_listed_first() {
    if !require_root("root_superblock_goes_last_even_when_another_of_its_mounts_is_listed_first") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("nsroot-listed-first");
    let private = PrivateRoot::new(&dir, Some("ext4"), RootLayout::SecondRootMountListedFirst);
    let run = private.run(FREEZE_DEFAULT_SET, RUN_TIMEOUT);
    common::note(&format!(
        "mountinfo inside the private root:\n{}",
        run.mountinfo.join("\n")
    ));
    assert_ran_ok(&run);
    // The arrangement itself: /mnt/top (the same superblock, whole filesystem) before /.
    let line_of = |mp: &str| {
        run.mountinfo
            .iter()
            .position(|l| l.split(' ').nth(4) == Some(mp))
            .unwrap_or_else(|| panic!("{mp} not mounted inside: {:#?}", run.mountinfo))
    };
    let (top, root) = (line_of("/mnt/top"), line_of("/"));
    let field = |i: usize, n: usize| run.mountinfo[i].split(' ').nth(n).unwrap().to_owned();
    assert!(
        top < root,
        "/mnt/top must be listed before / (mountinfo is in mount-creation order on Linux >= 6.8): {:#?}",
        run.mountinfo
    );
    assert_eq!(field(top, 2), field(root, 2), "not the same superblock");
    assert_eq!(
        field(top, 3),
        "/",
        "/mnt/top must mount the whole filesystem"
    );
    let doc = run.json();
    assert_schema("freeze", &doc);
    assert!(
        named_mount_points(&doc).iter().any(|n| n == "/"),
        "/ not in the report: {doc:#}"
    );
    assert_root_frozen_last_thawed_first(&doc, &["/", "/mnt/top"], &run);
    assert_writable(private.root().dir(), "the root filesystem after the run");
    assert_writable(
        private.data().expect("data").dir(),
        "the /data filesystem after the run",
    );
    timed(
        "root_superblock_goes_last_even_when_another_of_its_mounts_is_listed_first",
        start,
    );
}

#[test]
fn freeze_test_default_set_finds_root_freezable_and_tests_it_last() {
    if !require_root("freeze_test_default_set_finds_root_freezable_and_tests_it_last") {
        return;
    }
    let start = Instant::now();
    let dir = TestDir::new("nsroot-freeze-test");
    let private = PrivateRoot::new(&dir, Some("ext4"), RootLayout::Plain);
    let data = private.data().expect("data");
    let run = private.run(&["freeze-test", "--json"], RUN_TIMEOUT);
    assert_ran_ok(&run);
    let doc = run.json();
    assert_schema("freeze-test", &doc);
    let verdict = |mp: &str| {
        doc["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|r| r["mountpoint"] == mp)
            .unwrap_or_else(|| panic!("no row for {mp}: {doc:#}"))["verdict"]
            .clone()
    };
    assert_eq!(verdict("/"), "freezable", "{doc:#}");
    assert_eq!(verdict("/data"), "freezable", "{doc:#}");
    assert_root_tested_last(&doc, &run);
    assert_writable(
        private.root().dir(),
        "the root filesystem after freeze-test",
    );
    assert_writable(data.dir(), "the /data filesystem after freeze-test");

    // The same root, with /data left off the allowed list: the harness must refuse before
    // snapguard starts (the real mount table, a block-backed mount that is "not ours").
    let mut policy = private.safety_policy();
    policy.allowed.retain(|m| *m != data.dev.dev_t());
    assert_eq!(policy.allowed.len(), 1, "{policy:?}");
    let refused = private.run_with_policy(&policy, &["freeze-test", "--json"], RUN_TIMEOUT);
    assert_eq!(refused.exit, Some(EXIT_REFUSED), "{}", refused.describe());
    assert!(
        !refused.snapguard_started && refused.stdout.is_empty(),
        "snapguard must not start: {}",
        refused.describe()
    );
    assert!(
        refused.stderr.contains("/data is block-backed (ext4 7:"),
        "{}",
        refused.describe()
    );
    timed(
        "freeze_test_default_set_finds_root_freezable_and_tests_it_last",
        start,
    );
}

/// A namespace's mount table as the harness builds it: test root 7:40, btrfs /data 0:90.
const GOOD_TABLE: &str = "\
301 300 7:40 / /mnt/top rw,relatime - ext4 /dev/loop40 rw
302 300 0:90 / /data rw,relatime - btrfs /dev/loop41 rw,space_cache=v2,subvolid=5,subvol=/
300 299 7:40 / / rw,relatime - ext4 /dev/loop40 rw
303 300 0:91 / /proc rw,relatime - proc proc rw
304 300 0:92 / /sys rw,relatime - sysfs sysfs rw
305 300 0:93 / /dev rw,relatime - tmpfs tmpfs rw,size=1024k,mode=755
306 300 0:94 / /run rw,relatime - tmpfs tmpfs rw,size=8192k,mode=755
307 300 0:95 / /tmp rw,relatime - tmpfs tmpfs rw,size=8192k
";

fn fake_policy() -> SafetyPolicy {
    SafetyPolicy {
        root_majmin: "7:40".into(),
        allowed: vec!["7:40".into(), "0:90".into()],
        host_root_majmin: "254:0".into(),
    }
}

#[test]
fn safety_check_refuses_any_mount_table_with_a_foreign_block_device() {
    let dir = TestDir::new("nsroot-safety");
    let ok = run_safety_check(&dir, GOOD_TABLE, &fake_policy());
    assert_eq!(
        ok.exit,
        Some(0),
        "the harness's own table is refused: {ok:?}"
    );
    assert!(ok.stderr.contains("mount table accepted"), "{ok:?}");

    let with_line = |line: &str| format!("{GOOD_TABLE}{line}\n");
    let refusals: Vec<(&str, String, SafetyPolicy, &str)> = vec![
        (
            "a host disk",
            with_line("310 300 8:1 / /mnt/host rw - ext4 /dev/sda1 rw"),
            fake_policy(),
            "/mnt/host is block-backed (ext4 8:1) and not a test filesystem",
        ),
        (
            "the host root bind-mounted in",
            with_line("310 300 254:0 / /host rw - ext4 /dev/vda rw"),
            fake_policy(),
            "/host is the host's root filesystem (ext4 254:0)",
        ),
        (
            "a foreign btrfs (anonymous device number)",
            with_line("310 300 0:77 /@ /srv rw - btrfs /dev/sdb2 rw,subvol=/@"),
            fake_policy(),
            "/srv is block-backed (btrfs 0:77) and not a test filesystem",
        ),
        (
            "a mount nobody made here",
            with_line("310 300 0:78 / /merged rw - overlay overlay rw,lowerdir=/a"),
            fake_policy(),
            "/merged (overlay 0:78) was not mounted by the test",
        ),
        (
            "/ still the host's (pivot_root did not happen)",
            GOOD_TABLE.replace(
                "300 299 7:40 / / rw,relatime - ext4 /dev/loop40",
                "300 299 254:0 / / rw,relatime - ext4 /dev/vda",
            ),
            fake_policy(),
            "/ is the host's root filesystem",
        ),
        (
            "/ a test filesystem but not the root",
            GOOD_TABLE.replace(
                "300 299 7:40 / / rw,relatime - ext4",
                "300 299 0:90 / / rw,relatime - btrfs",
            ),
            fake_policy(),
            "/ is btrfs 0:90, not the test root 7:40",
        ),
        (
            "no / at all",
            GOOD_TABLE.replace("7:40 / / ", "7:40 / /elsewhere "),
            fake_policy(),
            "no / in",
        ),
        ("an empty table", String::new(), fake_policy(), "is empty"),
        (
            "a policy that lists the host root",
            GOOD_TABLE.to_owned(),
            SafetyPolicy {
                allowed: vec!["7:40".into(), "254:0".into()],
                ..fake_policy()
            },
            "the host root 254:0 is listed as a test filesystem",
        ),
        (
            "an empty policy",
            GOOD_TABLE.to_owned(),
            SafetyPolicy {
                allowed: Vec::new(),
                ..fake_policy()
            },
            "no test filesystem listed",
        ),
    ];
    for (case, table, policy, expected) in refusals {
        let r = run_safety_check(&dir, &table, &policy);
        assert_eq!(
            r.exit,
            Some(EXIT_REFUSED),
            "{case}: the safety check must refuse\n{r:?}"
        );
        assert!(
            r.stderr.contains(expected) && r.stderr.contains("snapguard not started"),
            "{case}: expected {expected:?} in\n{}",
            r.stderr
        );
    }
}
