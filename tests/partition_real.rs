//! Partition tables and content identification against the tools that write them
//! (sfdisk, sgdisk, fdisk, qemu-img, mkfs.*, mkswap) on images built at test time, moved out
//! of the unit tests of `fs::partition` and `fs::signature` so that `cargo test --lib` spawns
//! no tool and runs as any user. The images are plain files (no root needed); a missing tool
//! skips its test, which fails under `SNAPGUARD_REQUIRE_PRIVILEGED=1`.

mod common;

/// `fs::partition`: MBR, EBR chains, GPT (512 and 4096-byte sectors) and the fixed VHD footer.
mod partition {
    use super::common;
    use snapguard::fs::partition::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    fn sparse(dir: &Path, name: &str, size: u64) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    fn pipe_to(cmd: &str, args: &[&str], input: &str) {
        let mut child = Command::new(common::tool(cmd))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
        let f = std::fs::File::open(path).unwrap();
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).unwrap();
        buf
    }

    /// (index, start sector, size in sectors, type) from `sfdisk -J`.
    fn sfdisk_json(img: &Path) -> (String, Vec<(u32, u64, u64, String)>) {
        let out = Command::new(common::tool("sfdisk"))
            .arg("-J")
            .arg(img)
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pt = &v["partitiontable"];
        let parts = pt["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let node = p["node"].as_str().unwrap();
                let idx: String = node
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                (
                    idx.parse().unwrap(),
                    p["start"].as_u64().unwrap(),
                    p["size"].as_u64().unwrap(),
                    p["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (pt["label"].as_str().unwrap().to_owned(), parts)
    }

    fn gpt_of(img: &Path) -> (GptHeader, Vec<Partition>) {
        let head = read_at(img, 0, 8192);
        let h = probe_gpt(&head).unwrap().expect("GPT header");
        let entries = read_at(
            img,
            h.entries_offset().unwrap(),
            usize::try_from(h.entries_len().unwrap()).unwrap(),
        );
        let parts = parse_gpt_entries(&h, &entries).unwrap();
        (h, parts)
    }

    #[test]
    fn gpt_512_matches_sfdisk() {
        if !common::have_tools("gpt_512_matches_sfdisk", &["sfdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = sparse(dir.path(), "disk.img", 64 << 20);
        pipe_to(
            "sfdisk",
            &["-q", img.to_str().unwrap()],
            "label: gpt\nsize=16M\nsize=16M, name=\"data vol\"\nsize=8M, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n",
        );
        assert_eq!(
            parse_mbr(&read_at(&img, 0, 512)).unwrap(),
            MbrKind::Protective
        );
        let (h, parts) = gpt_of(&img);
        assert_eq!(h.my_lba, 1);
        assert_eq!(h.sector_size, 512);
        assert_eq!(h.num_entries, 128);
        let (label, want) = sfdisk_json(&img);
        assert_eq!(label, "gpt");
        assert_eq!(parts.len(), want.len());
        for (p, (idx, start, size, ty)) in parts.iter().zip(&want) {
            assert_eq!(p.index, *idx);
            assert_eq!(p.scheme, Scheme::Gpt);
            assert_eq!(p.offset, start * 512);
            assert_eq!(p.size, size * 512);
            assert_eq!(&p.type_id, ty);
        }
        assert_eq!(parts[0].name, None);
        assert_eq!(parts[1].name.as_deref(), Some("data vol"));
        assert_eq!(parts[0].type_id, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");

        // The backup header at the last LBA parses too.
        let len = std::fs::metadata(&img).unwrap().len();
        let backup = parse_gpt_header(&read_at(&img, len - 512, 512), 512).unwrap();
        assert_eq!(backup.my_lba, len / 512 - 1);
        assert_eq!(backup.alternate_lba, 1);
    }

    #[test]
    fn gpt_sgdisk_names_and_gaps() {
        if !common::have_tools("gpt_sgdisk_names_and_gaps", &["sgdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = sparse(dir.path(), "disk.img", 64 << 20);
        let out = Command::new(common::tool("sgdisk"))
            .args([
                "-o",
                "-n",
                "1:0:+8M",
                "-c",
                "1:EFI System",
                "-t",
                "1:EF00",
                "-n",
                "3:0:+8M",
                "-c",
                "3:ünïcödé",
            ])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success());
        let (_, parts) = gpt_of(&img);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].index, 1);
        assert_eq!(parts[0].name.as_deref(), Some("EFI System"));
        assert_eq!(parts[0].type_id, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(parts[1].index, 3);
        assert_eq!(parts[1].name.as_deref(), Some("ünïcödé"));
    }

    #[test]
    fn gpt_4096_sectors() {
        if !common::have_tools("gpt_4096_sectors", &["fdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = sparse(dir.path(), "disk4k.img", 64 << 20);
        pipe_to(
            "fdisk",
            &["-b", "4096", img.to_str().unwrap()],
            "g\nn\n\n\n+16M\nn\n\n\n+8M\nw\n",
        );
        let (h, parts) = gpt_of(&img);
        assert_eq!(h.sector_size, 4096);
        // Cross-check with `fdisk -b 4096 -l -o Device,Start,Sectors`.
        let out = Command::new(common::tool("fdisk"))
            .args(["-b", "4096", "-l", "-o", "Device,Start,Sectors"])
            .arg(&img)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let want: Vec<(u64, u64)> = text
            .lines()
            .filter(|l| l.starts_with(img.to_str().unwrap()))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect();
        assert_eq!(want.len(), 2);
        let got: Vec<(u64, u64)> = parts
            .iter()
            .map(|p| (p.offset / 4096, p.size / 4096))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parts[0].size, 16 << 20);
        // A 512-byte probe of sector 1 finds nothing; the 4096 probe was used.
        assert!(parse_gpt_header(&read_at(&img, 512, 512), 512).is_err());
    }

    #[test]
    fn gpt_crc_errors() {
        if !common::have_tools("gpt_crc_errors", &["sfdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = sparse(dir.path(), "disk.img", 16 << 20);
        pipe_to(
            "sfdisk",
            &["-q", img.to_str().unwrap()],
            "label: gpt\n,4M\n",
        );
        let mut head = read_at(&img, 0, 32768);
        let h = probe_gpt(&head).unwrap().unwrap();
        // Corrupt one entry byte: entries CRC fails.
        let eo = usize::try_from(h.entries_offset().unwrap()).unwrap();
        head[eo + 60] ^= 0xFF;
        let len = usize::try_from(h.entries_len().unwrap()).unwrap();
        assert!(matches!(
            parse_gpt_entries(&h, &head[eo..eo + len]),
            Err(PartitionError::GptEntriesCrc { .. })
        ));
        // Short entry buffer.
        assert!(matches!(
            parse_gpt_entries(&h, &head[eo..eo + 100]),
            Err(PartitionError::TooShort { .. })
        ));
        // Corrupt the header: header CRC fails.
        head[512 + 40] ^= 1;
        assert!(matches!(
            probe_gpt(&head),
            Err(PartitionError::GptHeaderCrc { .. })
        ));
        assert!(matches!(
            parse_gpt_header(&[0u8; 512], 512),
            Err(PartitionError::NoGptSignature)
        ));
        assert!(matches!(
            parse_gpt_header(&head[512..1024], 333),
            Err(PartitionError::BadSectorSize(333))
        ));
        assert!(probe_gpt(&[0u8; 8192]).unwrap().is_none());
    }

    #[test]
    fn mbr_with_logical_partitions_matches_sfdisk() {
        if !common::have_tools("mbr_with_logical_partitions_matches_sfdisk", &["sfdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = sparse(dir.path(), "mbr.img", 64 << 20);
        pipe_to(
            "sfdisk",
            &["-q", img.to_str().unwrap()],
            "label: dos\n,8M,83\n,8M,c\n,4M,83\n,40M,5\n,8M,83\n,8M,82\n,4M,83\n",
        );
        let MbrKind::Partitions(primaries) = parse_mbr(&read_at(&img, 0, 512)).unwrap() else {
            panic!("not an MBR");
        };
        assert_eq!(primaries.len(), 4);
        assert!(primaries[3].is_extended());
        let mut reads = 0;
        let logical = extended_partitions(&primaries, 512, &mut |off| {
            reads += 1;
            Ok(read_at(&img, off, 512))
        })
        .unwrap();
        assert_eq!(reads, 3);
        let all: Vec<Partition> = primaries.into_iter().chain(logical).collect();
        let (label, want) = sfdisk_json(&img);
        assert_eq!(label, "dos");
        assert_eq!(all.len(), want.len());
        for (p, (idx, start, size, ty)) in all.iter().zip(&want) {
            assert_eq!(p.index, *idx);
            assert_eq!(p.scheme, Scheme::Mbr);
            assert_eq!(p.offset, start * 512, "p{idx}");
            assert_eq!(p.size, size * 512, "p{idx}");
            let t = u8::from_str_radix(ty, 16).unwrap();
            assert_eq!(p.type_id, format!("0x{t:02x}"));
            assert_eq!(p.name, None);
        }
        assert_eq!(all[4].index, 5);
        assert_eq!(all[1].type_id, "0x0c");
    }

    #[test]
    fn fat_boot_sector_is_not_an_mbr() {
        if !common::have_tools("fat_boot_sector_is_not_an_mbr", &["mkfs.fat"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for bits in ["12", "16", "32"] {
            let img = sparse(dir.path(), &format!("fat{bits}.img"), 64 << 20);
            let out = Command::new(common::tool("mkfs.fat"))
                .args(["-F", bits])
                .arg(&img)
                .output()
                .unwrap();
            assert!(out.status.success());
            let s = read_at(&img, 0, 512);
            assert_eq!(&s[510..], &[0x55, 0xAA]);
            assert_eq!(parse_mbr(&s).unwrap(), MbrKind::None, "FAT{bits}");
        }
    }

    #[test]
    fn fixed_vhd_from_qemu_img() {
        if !common::have_tools("fixed_vhd_from_qemu_img", &["qemu-img"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.img");
        let mut data = vec![0u8; 8 << 20];
        data[..4].copy_from_slice(b"RAW!");
        std::fs::write(&raw, &data).unwrap();
        let vhd = dir.path().join("disk.vhd");
        let out = Command::new(common::tool("qemu-img"))
            .args(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed"])
            .arg(&raw)
            .arg(&vhd)
            .output()
            .unwrap();
        assert!(out.status.success());
        let len = std::fs::metadata(&vhd).unwrap().len();
        let f = vhd_fixed_footer(&read_at(&vhd, len - 512, 512)).expect("footer");
        assert!(f.is_fixed());
        assert!(f.checksum_ok);
        // qemu rounds the size up to a CHS geometry; the raw disk is everything before the footer.
        assert_eq!(f.current_size, len - 512);
        assert!(f.current_size >= 8 << 20);
        assert_eq!(&read_at(&vhd, 0, 4), b"RAW!");
        // A longer tail buffer: the last 512 bytes are used.
        assert_eq!(vhd_fixed_footer(&read_at(&vhd, len - 4096, 4096)), Some(f));
        // A corrupted footer is still recognised, with a bad checksum.
        let mut bad = read_at(&vhd, len - 512, 512);
        bad[0x30] ^= 1;
        assert!(!vhd_fixed_footer(&bad).unwrap().checksum_ok);
        assert_eq!(vhd_fixed_footer(&[0u8; 512]), None);
        assert_eq!(vhd_fixed_footer(b"conectix"), None);

        // Dynamic VHD: footer says type 3.
        let dynv = dir.path().join("dyn.vhd");
        let out = Command::new(common::tool("qemu-img"))
            .args([
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                "subformat=dynamic",
            ])
            .arg(&raw)
            .arg(&dynv)
            .output()
            .unwrap();
        assert!(out.status.success());
        let dlen = std::fs::metadata(&dynv).unwrap().len();
        let d = vhd_fixed_footer(&read_at(&dynv, dlen - 512, 512)).unwrap();
        assert_eq!(d.disk_type, VhdFooter::DYNAMIC);
        assert!(!d.is_fixed());
        assert!(d.checksum_ok);
    }
}

/// `fs::signature::identify` on the heads of images the real tools wrote.
mod signature {
    use super::common;
    use snapguard::fs::signature::*;
    use std::path::Path;
    use std::process::Command;

    /// How much of an image `identify` gets (the scan reads this much first).
    const HEAD: usize = 128 * 1024;

    fn run(cmd: &str, args: &[&str]) {
        let out = Command::new(common::tool(cmd))
            .args(args)
            .output()
            .expect(cmd);
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn head_of(path: &Path) -> Vec<u8> {
        let mut b = std::fs::read(path).unwrap();
        b.truncate(HEAD);
        b
    }

    fn image(dir: &Path, name: &str, size: u64) -> std::path::PathBuf {
        let p = dir.join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(size).unwrap();
        p
    }

    /// Run a mkfs-like tool on a fresh sparse image and identify its head.
    fn mkfs(tool: &str, args: &[&str], size: u64) -> Content {
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path(), "fs.img", size);
        let mut all: Vec<&str> = args.to_vec();
        let p = img.to_str().unwrap().to_owned();
        all.push(&p);
        run(tool, &all);
        // Read only the head, not the whole sparse file.
        use std::io::Read;
        let mut buf = vec![0u8; HEAD];
        let mut f = std::fs::File::open(&img).unwrap();
        f.read_exact(&mut buf).unwrap();
        identify(&buf)
    }

    #[test]
    fn real_ext4() {
        if !common::have_tools("real_ext4", &["mkfs.ext4", "mkfs.ext2"]) {
            return;
        }
        let c = mkfs("mkfs.ext4", &["-q", "-F"], 32 << 20);
        assert_eq!(c, Content::Ext);
        let c = mkfs("mkfs.ext2", &["-q", "-F", "-b", "1024"], 8 << 20);
        assert_eq!(c, Content::Ext);
    }

    #[test]
    fn real_swap() {
        if !common::have_tools("real_swap", &["mkswap"]) {
            return;
        }
        let c = mkfs("mkswap", &["-q"], 16 << 20);
        assert_eq!(c, Content::Swap);
        let c = mkfs("mkswap", &["-q", "-p", "65536"], 16 << 20);
        assert_eq!(c, Content::Swap);
    }

    #[test]
    fn real_fat() {
        if !common::have_tools("real_fat", &["mkfs.fat"]) {
            return;
        }
        for bits in ["12", "16", "32"] {
            let size = if bits == "32" { 64 << 20 } else { 16 << 20 };
            let c = mkfs("mkfs.fat", &["-F", bits], size);
            assert_eq!(c, Content::Fat, "FAT{bits}");
        }
    }

    #[test]
    fn real_xfs() {
        if !common::have_tools("real_xfs", &["mkfs.xfs"]) {
            return;
        }
        let c = mkfs("mkfs.xfs", &["-q", "-f"], 320 << 20);
        assert_eq!(c, Content::Xfs);
    }

    #[test]
    fn real_btrfs() {
        if !common::have_tools("real_btrfs", &["mkfs.btrfs"]) {
            return;
        }
        let c = mkfs("mkfs.btrfs", &["-q", "-f"], 128 << 20);
        assert_eq!(c, Content::Btrfs);
    }

    #[test]
    fn real_f2fs() {
        if !common::have_tools("real_f2fs", &["mkfs.f2fs"]) {
            return;
        }
        // mkfs.f2fs 1.15 needs a bit more than 48 MiB.
        let c = mkfs("mkfs.f2fs", &["-q"], 64 << 20);
        assert_eq!(c, Content::F2fs);
    }

    #[test]
    fn real_partition_tables() {
        if !common::have_tools("real_partition_tables", &["sfdisk"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for (label, want) in [("gpt", Content::Gpt), ("dos", Content::Mbr)] {
            let img = image(dir.path(), &format!("{label}.img"), 32 << 20);
            let mut child = Command::new(common::tool("sfdisk"))
                .args(["-q", img.to_str().unwrap()])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("label: {label}\n,8M\n,8M\n").as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
            assert_eq!(identify(&head_of(&img)), want, "{label}");
        }
    }

    #[test]
    fn ext_with_boot_loader_in_boot_block_is_still_ext() {
        if !common::have_tools(
            "ext_with_boot_loader_in_boot_block_is_still_ext",
            &["mkfs.ext4"],
        ) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path(), "e.img", 16 << 20);
        run("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
        let mut h = head_of(&img);
        // A plausible MBR-like boot sector in the ext boot block.
        h[446] = 0x80;
        h[446 + 4] = 0x83;
        h[446 + 8] = 1;
        h[446 + 12] = 10;
        h[510] = 0x55;
        h[511] = 0xAA;
        assert_eq!(identify(&h), Content::Ext);
    }
}
