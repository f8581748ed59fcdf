//! A GPT and an MBR whole-disk image mixing ext4, XFS, btrfs and FAT partitions: `snapguard
//! scan` must report every partition with its own filesystem type, offset and verdict.
//!
//! Each filesystem is made in its own image file (no loop devices needed) and copied into the
//! disk image at its partition's offset, so the partition table and the filesystems are real.

mod common;

use common::*;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const MIB: u64 = 1024 * 1024;

/// (name, size in MiB, mkfs command line; the image path is appended)
const PARTITIONS: [(&str, u64, &[&str]); 4] = [
    ("ext4", 32, &["mkfs.ext4", "-q", "-F"]),
    ("xfs", 320, &["mkfs.xfs", "-q", "-f"]),
    ("btrfs", 128, &["mkfs.btrfs", "-q", "-f"]),
    ("vfat", 32, &["mkfs.fat", "-F", "32"]),
];

/// Copy `src` into `disk` at `offset`, skipping all-zero chunks so both stay sparse.
fn copy_into(src: &Path, disk: &Path, offset: u64) {
    let mut input = std::fs::File::open(src).expect("open partition image");
    let mut output = OpenOptions::new()
        .write(true)
        .open(disk)
        .expect("open disk image");
    let mut buf = vec![0u8; MIB as usize];
    let mut at = offset;
    loop {
        let n = input.read(&mut buf).expect("read partition image");
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            output.seek(SeekFrom::Start(at)).expect("seek disk image");
            output.write_all(&buf[..n]).expect("write disk image");
        }
        at += n as u64;
    }
}

/// Build a disk image with `label` ("gpt" or "dos") holding the four filesystems; returns
/// the partition offsets.
fn build_disk(dir: &TestDir, label: &str) -> (std::path::PathBuf, Vec<u64>) {
    let total: u64 = PARTITIONS.iter().map(|p| p.1).sum::<u64>() + 4;
    let disk = dir.join(format!("{label}.img"));
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(total * MIB))
        .expect("create disk image");
    let mut script = format!("label: {label}\n");
    let mut offsets = Vec::new();
    let mut start = MIB;
    for (_, size, _) in PARTITIONS {
        script.push_str(&format!(
            "start={}, size={}\n",
            start / 512,
            size * MIB / 512
        ));
        offsets.push(start);
        start += size * MIB;
    }
    let mut sfdisk = std::process::Command::new("sfdisk")
        .args(["-q", disk.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run sfdisk");
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(sfdisk.wait().unwrap().success(), "sfdisk failed");
    for ((name, size, mkfs), offset) in PARTITIONS.iter().zip(&offsets) {
        let part = dir.join(format!("{label}-{name}.img"));
        std::fs::File::create(&part)
            .and_then(|f| f.set_len(size * MIB))
            .expect("create partition image");
        let mut args: Vec<String> = mkfs[1..].iter().map(|s| s.to_string()).collect();
        args.push(part.display().to_string());
        run(mkfs[0], &args);
        copy_into(&part, &disk, *offset);
    }
    (disk, offsets)
}

fn check_disk(label: &str, scheme: &str) {
    let dir = TestDir::new(&format!("mixed-{label}"));
    let (disk, offsets) = build_disk(&dir, label);
    let (doc, exit) = scan_json([disk.to_str().unwrap()]);
    let found = targets(&doc);
    assert_eq!(
        found.len(),
        PARTITIONS.len(),
        "one target per partition: {doc:#}"
    );
    for (i, ((name, size, _), offset)) in PARTITIONS.iter().zip(&offsets).enumerate() {
        let target = target_named(&doc, &format!("{}#p{}", disk.display(), i + 1));
        assert_eq!(target["fstype"], *name, "partition {}: {target:#}", i + 1);
        assert_eq!(target["partition"]["scheme"], scheme);
        assert_eq!(target["partition"]["offset"], *offset);
        assert_eq!(target["partition"]["size"], size * MIB);
        assert_eq!(
            target["state"], "clean",
            "freshly made {name} is clean: {target:#}"
        );
        assert_eq!(target["status"], "ok", "{target:#}");
    }
    assert_eq!(exit, 0, "every partition is clean: {doc:#}");
}

#[test]
fn gpt_disk_with_ext4_xfs_btrfs_and_fat() {
    check_disk("gpt", "gpt");
}

#[test]
fn mbr_disk_with_ext4_xfs_btrfs_and_fat() {
    check_disk("dos", "mbr");
}
