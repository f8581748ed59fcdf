//! Bad input to `snapguard scan`: every case exits 3 with exactly one `snapguard: ` line on
//! stderr naming the path, never panics, and with `--json` still prints a valid document
//! whose target has status "unknown".

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fixtures::{self, MIB};
use common::*;

/// Generous bound that still proves the scan does not read a huge sparse file end to end.
const BAD_INPUT_TIMEOUT: Duration = Duration::from_secs(15);

fn one_error_line(what: &str, out: &Outcome, path: &Path) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: exactly one line on stderr, got:\n{}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("snapguard: "),
        "{what}: stderr line must start with `snapguard: `: {:?}",
        lines[0]
    );
    assert!(
        lines[0].contains(&*path.to_string_lossy()),
        "{what}: stderr must name {}: {:?}",
        path.display(),
        lines[0]
    );
}

/// Runs the scan in human and JSON form and checks the bad-input contract.
/// `error_required`: the target could not be assessed at all, so the JSON carries "error".
fn check_bad(what: &str, path: &Path, error_required: bool) {
    let human = run_snapguard(
        [Path::new("scan").as_os_str(), path.as_os_str()],
        BAD_INPUT_TIMEOUT,
    );
    assert_eq!(human.exit, 3, "{what}: exit code\n{human:#?}");
    one_error_line(what, &human, path);

    let json = run_snapguard(
        [
            Path::new("scan").as_os_str(),
            Path::new("--json").as_os_str(),
            path.as_os_str(),
        ],
        BAD_INPUT_TIMEOUT,
    );
    assert_eq!(json.exit, 3, "{what}: exit code with --json\n{json:#?}");
    one_error_line(&format!("{what} (--json)"), &json, path);
    let doc = json.json();
    let t = only_target(&doc);
    assert_eq!(t["status"], "unknown", "{what}: {doc:#}");
    assert_eq!(doc["summary"]["unknown"], 1, "{what}: {doc:#}");
    if error_required {
        assert!(
            t["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: a target that could not be assessed carries \"error\": {doc:#}"
        );
    } else {
        assert!(
            t["error"].as_str().is_some_and(|e| !e.is_empty())
                || finding(t, "ext.truncated").is_some(),
            "{what}: expected \"error\" or an ext.truncated finding: {doc:#}"
        );
    }
}

#[test]
fn bad_missing_path() {
    let dir = TestDir::new("missing");
    check_bad("missing path", &dir.join("no-such-file.img"), true);
}

#[test]
fn bad_directory_not_a_mountpoint() {
    let dir = TestDir::new("notmnt");
    check_bad(
        "directory that is not a mount point",
        &dir.mkdir("plain dir"),
        true,
    );
}

#[test]
fn bad_character_device() {
    check_bad("character device", Path::new("/dev/null"), true);
}

#[test]
fn bad_empty_file() {
    let dir = TestDir::new("empty");
    let p = dir.join("empty.img");
    fs::write(&p, b"").expect("create empty file");
    check_bad("empty file", &p, true);
}

fn truncated_copy(dir: &TestDir, img: &Path, len: u64) -> PathBuf {
    let p = dir.join(format!("truncated-{len}.img"));
    fixtures::extract(img, 0, len, &p);
    p
}

#[test]
fn bad_truncated_first_100k() {
    let dir = TestDir::new("trunc100k");
    let img = fixtures::ext4(&dir, "full.img", &[]);
    let p = truncated_copy(&dir, &img, 100 * 1024);
    check_bad("ext4 image cut to its first 100 KiB", &p, false);
}

#[test]
fn bad_truncated_64m_to_8m() {
    let dir = TestDir::new("trunc8m");
    let img = fixtures::ext4(&dir, "full.img", &[]);
    assert_eq!(fs::metadata(&img).expect("stat").len(), 64 * MIB);
    let p = truncated_copy(&dir, &img, 8 * MIB);
    check_bad("64 MiB ext4 image cut to 8 MiB", &p, false);
}

/// splitmix64: a small seeded generator, so the "random" input is the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn bad_random_bytes() {
    let dir = TestDir::new("random");
    let p = dir.join("random.img");
    let mut rng = SplitMix(0x5eed_5eed);
    let bytes: Vec<u8> = (0..MIB / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    assert_eq!(bytes.len() as u64, MIB);
    fs::write(&p, &bytes).expect("write random image");
    check_bad("1 MiB of random bytes", &p, true);
}

#[test]
fn bad_sparse_terabyte_of_zeros() {
    let dir = TestDir::new("zeros");
    let p = dir.join("zeros.img");
    let f = fs::File::create(&p).expect("create");
    f.set_len(1 << 40).expect("1 TiB sparse file");
    drop(f);
    check_bad("1 TiB sparse file of zeros", &p, true);
}
