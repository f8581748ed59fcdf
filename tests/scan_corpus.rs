//! Differential test of `snapguard scan` on the e2fsprogs regression images: on every image
//! `dumpe2fs -h` reads, `state`, `needs_recovery` and `fsck_reason` must equal the reference
//! tools; on the others snapguard must not call the filesystem clean and ok.
//!
//! The corpus is found through `SNAPGUARD_CORPUS` (the directory holding `e2fsprogs/`); the
//! test is skipped when it is not set.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::reference::{self, DumpeFields, EfsckOutcome};
use common::*;
use serde_json::Value;

/// Wall-clock limit for the single snapguard run over every image (proves it does not hang).
const SCAN_ALL_TIMEOUT: Duration = Duration::from_secs(120);
/// e2fsck -n is killed after this; its verdict line comes early, so this is rarely reached.
const E2FSCK_DEADLINE: Duration = Duration::from_secs(15);
const THREADS: usize = 2;

fn corpus_dir() -> Option<PathBuf> {
    let Some(root) = std::env::var_os("SNAPGUARD_CORPUS") else {
        common::skip(
            "scan_corpus",
            "SNAPGUARD_CORPUS is not set (the directory holding e2fsprogs/)",
        );
        return None;
    };
    let dir = PathBuf::from(root).join("e2fsprogs");
    if !dir.is_dir() {
        common::skip(
            "scan_corpus",
            &format!("{} is not a directory", dir.display()),
        );
        return None;
    }
    Some(dir)
}

fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corpus-cache");
    fs::create_dir_all(&dir).expect("create corpus cache");
    dir
}

/// The uncompressed size from the gzip trailer (ISIZE, exact for members below 4 GiB).
fn gzip_isize(gz: &Path) -> u64 {
    let mut f = fs::File::open(gz).expect("open gz");
    f.seek(SeekFrom::End(-4)).expect("seek gz trailer");
    let mut b = [0u8; 4];
    f.read_exact(&mut b).expect("read gz trailer");
    u64::from(u32::from_le_bytes(b))
}

/// Unpacks `gz` into `dst` as a sparse file (zero runs are seeked over), unless a file of the
/// right size is already there.
fn unpack_sparse(gz: &Path, dst: &Path) {
    let size = gzip_isize(gz);
    if fs::metadata(dst).is_ok_and(|m| m.len() == size) {
        return;
    }
    let tmp = dst.with_extension("partial");
    let mut input = flate2::read::GzDecoder::new(std::io::BufReader::new(
        fs::File::open(gz).expect("open gz"),
    ));
    let mut out = fs::File::create(&tmp).expect("create unpacked image");
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..]).expect("gunzip");
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        let chunk = &buf[..filled];
        if chunk.iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(filled as i64)).expect("seek");
        } else {
            out.write_all(chunk).expect("write unpacked image");
        }
        total += filled as u64;
    }
    out.set_len(total).expect("set length");
    assert_eq!(total, size, "{}: gzip trailer size", gz.display());
    drop(out);
    fs::rename(&tmp, dst).expect("rename unpacked image");
}

/// Runs `f` over `items` on `THREADS` threads, keeping the results in order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    results.lock().expect("results")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

struct Image {
    name: String,
    path: PathBuf,
}

struct Truth {
    dumpe: Option<DumpeFields>,
    fsck: EfsckOutcome,
}

/// One line per disagreement: name, field, ours, theirs.
fn compare(img: &Image, t: &Value, truth: &Truth, out: &mut Vec<String>) {
    let n = &img.name;
    match &truth.dumpe {
        Some(d) if !d.checksum_mismatch => {
            if t["state"].as_str() != Some(d.state.as_str()) {
                out.push(format!(
                    "{n}: state ours={} dumpe2fs={:?}",
                    t["state"], d.state
                ));
            }
            if t["needs_recovery"].as_bool() != Some(d.needs_recovery) {
                out.push(format!(
                    "{n}: needs_recovery ours={} dumpe2fs={}",
                    t["needs_recovery"], d.needs_recovery
                ));
            }
            let ours = &t["fsck_reason"];
            if truth.fsck.timed_out && truth.fsck.reason.is_none() {
                note(&format!(
                    "{n}: e2fsck -n said nothing within {E2FSCK_DEADLINE:?}; fsck_reason not compared"
                ));
            } else {
                let same = match &truth.fsck.reason {
                    Some(r) => ours.as_str() == Some(r.as_str()),
                    None => ours.is_null(),
                };
                if !same {
                    out.push(format!(
                        "{n}: fsck_reason ours={ours} e2fsck={:?} (e2fsck clean: {})",
                        truth.fsck.reason, truth.fsck.clean
                    ));
                }
            }
        }
        _ => {
            if t["state"] == "clean" && t["status"] == "ok" {
                out.push(format!(
                    "{n}: dumpe2fs cannot read it, but ours says state \"clean\" with status ok (findings {:?})",
                    t["findings"]
                        .as_array()
                        .map(|f| f.iter().map(|x| x["id"].clone()).collect::<Vec<_>>())
                ));
            }
        }
    }
}

#[test]
fn corpus_agrees_with_dumpe2fs_and_e2fsck() {
    let Some(dir) = corpus_dir() else { return };
    let started = Instant::now();
    let cache = cache_dir();
    let mut gzs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".img.gz"))
        .collect();
    gzs.sort();
    assert!(!gzs.is_empty(), "no *.img.gz in {}", dir.display());

    let images: Vec<Image> = gzs
        .iter()
        .map(|gz| {
            let file = gz.file_name().expect("name").to_string_lossy();
            let name = file.trim_end_matches(".gz").to_owned();
            Image {
                path: cache.join(&name),
                name,
            }
        })
        .collect();
    let pairs: Vec<(&PathBuf, &Image)> = gzs.iter().zip(&images).collect();
    par_map(&pairs, |(gz, img)| unpack_sparse(gz, &img.path));
    let unpacked = started.elapsed();

    let truths = par_map(&images, |img| Truth {
        dumpe: reference::dumpe2fs_h(&img.path),
        fsck: reference::e2fsck_n(&img.path, E2FSCK_DEADLINE, true),
    });
    let referenced = started.elapsed();

    let mut args: Vec<std::ffi::OsString> = vec!["scan".into(), "--json".into()];
    args.extend(images.iter().map(|i| i.path.clone().into_os_string()));
    let out = run_snapguard(&args, SCAN_ALL_TIMEOUT);
    let doc = out.json();
    let scanned = started.elapsed();
    note(&format!(
        "scan_corpus: {} images; unpack {unpacked:?}, reference tools {:?}, snapguard {:?} (exit {})",
        images.len(),
        referenced - unpacked,
        out.elapsed,
        out.exit
    ));

    let by_name: BTreeMap<&str, &Value> = targets(&doc)
        .iter()
        .filter_map(|t| Some((t["target"].as_str()?, t)))
        .collect();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (img, truth) in images.iter().zip(&truths) {
        let key = img.path.to_string_lossy();
        match by_name.get(key.as_ref()) {
            Some(t) => {
                if truth.dumpe.as_ref().is_some_and(|d| !d.checksum_mismatch) {
                    compared += 1;
                }
                compare(img, t, truth, &mut mismatches);
            }
            None => mismatches.push(format!(
                "{}: no target named {key:?} in snapguard's output",
                img.name
            )),
        }
    }
    assert!(compared > 0, "dumpe2fs read none of the images");
    assert!(
        mismatches.is_empty(),
        "{} of {} images disagree ({compared} read by dumpe2fs; total {scanned:?}):\n{}",
        mismatches.len(),
        images.len(),
        mismatches.join("\n")
    );
}
