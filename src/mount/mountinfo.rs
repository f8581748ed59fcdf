//! Parser for `/proc/<pid>/mountinfo` lines (see `proc_pid_mountinfo(5)`), working on bytes.
//!
//! A line looks like
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//!
//! (1) mount id, (2) parent id, (3) `major:minor` of the superblock, (4) root of the mount inside
//! the filesystem, (5) mount point, (6) per-mount options, (7) zero or more optional fields
//! (propagation tags), (8) the `-` separator, (9) filesystem type (`type[.subtype]`),
//! (10) mount source, (11) per-superblock options.
//!
//! The kernel (`fs/proc_namespace.c`, `seq_path_root`/`mangle`) escapes space, tab, newline and
//! backslash in paths and in the source as `\040`, `\011`, `\012` and `\134`. Every valid
//! three-digit octal escape (`\000`..=`\377`) is decoded here; anything else after a backslash is
//! kept literally. Paths are returned as [`PathBuf`] built from raw bytes, so names that are not
//! UTF-8 survive intact. Nothing here does I/O.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One parsed mountinfo line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Unique id of the mount (field 1).
    pub mount_id: u32,
    /// Id of the parent mount, or of itself for the root of the mount tree (field 2).
    pub parent_id: u32,
    /// Major number of the superblock's `st_dev` (field 3).
    pub major: u32,
    /// Minor number of the superblock's `st_dev` (field 3).
    pub minor: u32,
    /// Path inside the filesystem that is the root of this mount (`/` unless bind or subvolume).
    pub root: PathBuf,
    /// Mount point, relative to the reading process's root, unescaped.
    pub mount_point: PathBuf,
    /// Per-mount options, e.g. `rw,nosuid,relatime`.
    pub mount_options: String,
    /// Optional fields before the `-` separator, e.g. `shared:1`, `master:2`, `unbindable`.
    pub optional_fields: Vec<String>,
    /// Filesystem type, including any subtype (`fuse.sshfs`).
    pub fs_type: String,
    /// Mount source, unescaped. `"none"`-like values are kept as they are; an empty field is `None`.
    pub source: Option<OsString>,
    /// Per-superblock options. Extra whitespace-separated fields after the source (which the
    /// kernel does not produce, but some filesystems' `show_options` used to) are joined with a
    /// single space.
    pub super_options: String,
}

impl MountInfo {
    /// True when the per-mount options contain `ro` (the mount point is read-only).
    pub fn is_read_only(&self) -> bool {
        has_option(&self.mount_options, "ro")
    }

    /// True when the superblock options contain `ro` (the filesystem itself is read-only).
    pub fn super_is_read_only(&self) -> bool {
        has_option(&self.super_options, "ro")
    }

    /// The propagation tags exactly as written in the optional fields (`shared:N`, `master:N`,
    /// `propagate_from:N`, `unbindable`). An empty vector means the mount is private.
    pub fn propagation(&self) -> Vec<&str> {
        self.optional_fields.iter().map(String::as_str).collect()
    }
}

/// True when the comma (or whitespace) separated option list contains `name` exactly.
fn has_option(options: &str, name: &str) -> bool {
    options
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .any(|o| o == name)
}

/// What was wrong with a mountinfo line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountInfoErrorKind {
    /// The line was empty or only whitespace.
    #[error("empty line")]
    Empty,
    /// A mandatory field is missing.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A numeric field did not parse as a `u32`.
    #[error("invalid {field} '{}'", .value.escape_debug())]
    InvalidNumber {
        /// Which field.
        field: &'static str,
        /// The offending text (lossily decoded).
        value: String,
    },
    /// The `major:minor` field is malformed.
    #[error("invalid major:minor '{}'", .0.escape_debug())]
    InvalidDevice(String),
    /// No `-` separator after the optional fields.
    #[error("missing `-` separator before the filesystem type")]
    MissingSeparator,
}

/// A mountinfo parse error: the 1-based line number and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mountinfo line {line}: {kind}")]
pub struct MountInfoError {
    /// 1-based line number ([`parse_line`] reports line 1).
    pub line: usize,
    /// What was wrong.
    pub kind: MountInfoErrorKind,
}

/// Decode `\ooo` octal escapes. Only a backslash followed by exactly three octal digits whose
/// value fits in a byte (`\000`..=`\377`) is decoded; any other backslash is kept literally.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        if b == b'\\'
            && let Some(&[d0, d1, d2]) = field.get(i + 1..i + 4)
            && (b'0'..=b'3').contains(&d0)
            && (b'0'..=b'7').contains(&d1)
            && (b'0'..=b'7').contains(&d2)
        {
            out.push(((d0 - b'0') << 6) | ((d1 - b'0') << 3) | (d2 - b'0'));
            i += 4;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

fn is_sep(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_u32(field: &'static str, value: &[u8]) -> Result<u32, MountInfoErrorKind> {
    std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| MountInfoErrorKind::InvalidNumber {
            field,
            value: lossy(value),
        })
}

fn parse_devno(value: &[u8]) -> Result<(u32, u32), MountInfoErrorKind> {
    let bad = || MountInfoErrorKind::InvalidDevice(lossy(value));
    let colon = value.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (maj, rest) = value.split_at(colon);
    let min = rest.get(1..).unwrap_or_default();
    let major = parse_u32("major", maj).map_err(|_| bad())?;
    let minor = parse_u32("minor", min).map_err(|_| bad())?;
    Ok((major, minor))
}

fn parse_line_inner(line: &[u8]) -> Result<MountInfo, MountInfoErrorKind> {
    use MountInfoErrorKind::{Empty, MissingField, MissingSeparator};

    // Strip a trailing newline / carriage return.
    let mut line = line;
    while let Some((&last, rest)) = line.split_last() {
        if last == b'\n' || last == b'\r' {
            line = rest;
        } else {
            break;
        }
    }
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Empty);
    }

    // Fields before the separator: tolerant of repeated whitespace.
    let mut tokens = line.split(is_sep);
    let mut next_nonempty = |name: &'static str| -> Result<&[u8], MountInfoErrorKind> {
        tokens
            .by_ref()
            .find(|t| !t.is_empty())
            .ok_or(MissingField(name))
    };
    let mount_id = parse_u32("mount id", next_nonempty("mount id")?)?;
    let parent_id = parse_u32("parent id", next_nonempty("parent id")?)?;
    let (major, minor) = parse_devno(next_nonempty("major:minor")?)?;
    let root = next_nonempty("root")?;
    let mount_point = next_nonempty("mount point")?;
    let mount_options = next_nonempty("mount options")?;

    let mut optional_fields = Vec::new();
    loop {
        match tokens.next() {
            None => return Err(MissingSeparator),
            Some([]) => continue,
            Some(b"-") => break,
            Some(t) => optional_fields.push(lossy(&unescape(t))),
        }
    }

    // After the separator the source may be an empty field (two adjacent spaces), so empty
    // tokens matter here: type, source (possibly empty), then the super options.
    let fs_type = tokens
        .by_ref()
        .find(|t| !t.is_empty())
        .ok_or(MissingField("filesystem type"))?;
    let source = tokens.next().ok_or(MissingField("source"))?;
    let super_parts: Vec<&[u8]> = tokens.filter(|t| !t.is_empty()).collect();
    if super_parts.is_empty() {
        return Err(MissingField("super options"));
    }
    let super_options = super_parts
        .iter()
        .map(|p| lossy(&unescape(p)))
        .collect::<Vec<_>>()
        .join(" ");

    Ok(MountInfo {
        mount_id,
        parent_id,
        major,
        minor,
        root: PathBuf::from(OsString::from_vec(unescape(root))),
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        mount_options: lossy(&unescape(mount_options)),
        optional_fields,
        fs_type: lossy(&unescape(fs_type)),
        source: if source.is_empty() {
            None
        } else {
            Some(OsString::from_vec(unescape(source)))
        },
        super_options,
    })
}

/// Parse one mountinfo line (a trailing `\n` is allowed). Errors report line 1.
pub fn parse_line(line: &[u8]) -> Result<MountInfo, MountInfoError> {
    parse_line_inner(line).map_err(|kind| MountInfoError { line: 1, kind })
}

/// Parse a whole mountinfo file: one result per non-blank line, errors carrying the 1-based
/// line number. Blank lines are skipped.
pub fn parse(text: &[u8]) -> Vec<Result<MountInfo, MountInfoError>> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(|b| b.is_ascii_whitespace()))
        .map(|(i, l)| {
            parse_line_inner(l).map_err(|kind| MountInfoError {
                line: i.saturating_add(1),
                kind,
            })
        })
        .collect()
}

/// Parse a whole mountinfo file, failing on the first bad line.
pub fn parse_all(text: &[u8]) -> Result<Vec<MountInfo>, MountInfoError> {
    parse(text).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn p(s: &str) -> MountInfo {
        parse_line(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn real_root_ext4() {
        let m = p(
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534",
        );
        assert_eq!(m.mount_id, 27);
        assert_eq!(m.parent_id, 1);
        assert_eq!((m.major, m.minor), (254, 0));
        assert_eq!(m.root, Path::new("/"));
        assert_eq!(m.mount_point, Path::new("/"));
        assert_eq!(m.mount_options, "rw,relatime");
        assert!(m.optional_fields.is_empty());
        assert!(m.propagation().is_empty());
        assert_eq!(m.fs_type, "ext4");
        assert_eq!(m.source.as_deref(), Some(std::ffi::OsStr::new("/dev/vda")));
        assert_eq!(
            m.super_options,
            "rw,discard,resv_strict,resuid=65534,resgid=65534"
        );
        assert!(!m.is_read_only());
        assert!(!m.super_is_read_only());
    }

    #[test]
    fn real_pseudo_lines() {
        let text = b"22 27 0:21 / /proc rw,relatime - proc proc rw\n\
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n\
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k,nr_inodes=3083623,mode=755\n\
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755\n\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let all = parse_all(text).unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].fs_type, "proc");
        assert_eq!(all[2].minor, 6);
        assert!(all[3].is_read_only());
        assert!(all[3].super_is_read_only());
        assert_eq!(
            all[3].source.as_deref(),
            Some(std::ffi::OsStr::new("model_tools_unavailable"))
        );
        assert_eq!(all[4].fs_type, "cgroup2");
    }

    #[test]
    fn escapes_in_paths() {
        let m = p(r"100 27 8:1 / /mnt/a\040b rw - ext4 /dev/sdb1 rw");
        assert_eq!(m.mount_point.as_os_str().as_bytes(), b"/mnt/a b");
        let m = p(r"101 27 8:1 / /mnt/x\012y rw - ext4 /dev/sdb1 rw");
        assert_eq!(m.mount_point.as_os_str().as_bytes(), b"/mnt/x\ny");
        let m = p(r"102 27 8:1 /dir\134name /mnt/t\011ab rw - ext4 /dev/my\040disk rw");
        assert_eq!(m.root.as_os_str().as_bytes(), b"/dir\\name");
        assert_eq!(m.mount_point.as_os_str().as_bytes(), b"/mnt/t\tab");
        assert_eq!(m.source.unwrap().as_bytes(), b"/dev/my disk");
        // Any valid octal escape, including non-UTF-8 bytes.
        let m = p(r"103 27 8:1 / /mnt/\303\251\377 rw - ext4 /dev/sdb1 rw");
        assert_eq!(m.mount_point.as_os_str().as_bytes(), b"/mnt/\xc3\xa9\xff");
    }

    #[test]
    fn invalid_escapes_kept_literally() {
        assert_eq!(unescape(br"a\08b"), br"a\08b");
        assert_eq!(unescape(br"a\400"), br"a\400");
        assert_eq!(unescape(br"a\04"), br"a\04");
        assert_eq!(unescape(br"a\"), br"a\");
        assert_eq!(unescape(br"\\040"), b"\\ ");
        assert_eq!(unescape(br"\000"), b"\0");
    }

    #[test]
    fn optional_fields() {
        let m = p(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime shared:1 master:2 - ext3 /dev/root rw,errors=continue",
        );
        assert_eq!(m.optional_fields, vec!["shared:1", "master:2"]);
        assert_eq!(m.propagation(), vec!["shared:1", "master:2"]);
        assert_eq!(m.root, Path::new("/mnt1"));
        assert_eq!(m.fs_type, "ext3");
        let m = p(
            "36 35 98:0 / /m rw shared:1 master:2 propagate_from:3 unbindable - ext3 /dev/root rw",
        );
        assert_eq!(m.optional_fields.len(), 4);
    }

    #[test]
    fn btrfs_subvolume() {
        let m = p(
            "95 1 0:47 /@home /home rw,relatime shared:45 - btrfs /dev/nvme0n1p2 rw,ssd,space_cache=v2,subvolid=257,subvol=/@home",
        );
        assert_eq!(m.root, Path::new("/@home"));
        assert_eq!(m.mount_point, Path::new("/home"));
        assert_eq!((m.major, m.minor), (0, 47));
        assert_eq!(m.fs_type, "btrfs");
    }

    #[test]
    fn empty_source_and_subtype() {
        let m = p("50 27 0:50 / /run/user rw - tmpfs  rw,mode=700");
        assert_eq!(m.source, None);
        assert_eq!(m.super_options, "rw,mode=700");
        let m = p("51 27 0:51 / /mnt/remote rw,nosuid - fuse.sshfs user@host:/srv rw,user_id=0");
        assert_eq!(m.fs_type, "fuse.sshfs");
        assert_eq!(m.source.unwrap(), "user@host:/srv");
        let m = p("52 27 0:52 / /x rw - tmpfs none rw");
        assert_eq!(m.source.unwrap(), "none");
    }

    #[test]
    fn extra_super_options_and_whitespace() {
        let m = p("60  27 8:2 / /data rw - ext4 /dev/sda2 rw,errors=remount-ro extra opt\r\n");
        assert_eq!(m.super_options, "rw,errors=remount-ro extra opt");
        assert_eq!(m.mount_id, 60);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let text = b"22 27 0:21 / /proc rw - proc proc rw\n\nx 27 0:21 / /p rw - proc proc rw\n23 27 0:22 / /sys rw sysfs sysfs rw\n24 27 0x22 / /s rw - sysfs sysfs rw\n25 27 0:1 / /s rw - sysfs\n";
        let r = parse(text);
        assert_eq!(r.len(), 5);
        assert!(r[0].is_ok());
        let e = r[1].clone().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, MountInfoErrorKind::InvalidNumber { .. }));
        assert_eq!(e.to_string(), "mountinfo line 3: invalid mount id 'x'");
        assert_eq!(
            r[2].clone().unwrap_err().kind,
            MountInfoErrorKind::MissingSeparator
        );
        assert_eq!(
            r[3].clone().unwrap_err().kind,
            MountInfoErrorKind::InvalidDevice("0x22".into())
        );
        assert_eq!(
            r[4].clone().unwrap_err().kind,
            MountInfoErrorKind::MissingField("source")
        );
        assert_eq!(parse_all(text).unwrap_err().line, 3);
        assert_eq!(parse_line(b"").unwrap_err().kind, MountInfoErrorKind::Empty);
        assert!(parse_line(b"1 2 3:4 / /").is_err());
        assert!(parse_line(b"1 2 99999999999:4 / / rw - a b c").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let _ = parse_line(&bytes);
        }

        #[test]
        fn never_panics_structured(s in r"[0-9 :/a-z\\\-]{0,120}") {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn escaped_paths_roundtrip(name in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40)) {
            let mut esc = Vec::new();
            for b in &name {
                if matches!(*b, b' ' | b'\t' | b'\n' | b'\\') {
                    esc.extend_from_slice(format!("\\{b:03o}").as_bytes());
                } else {
                    esc.push(*b);
                }
            }
            let mut line = b"1 2 8:1 / /".to_vec();
            line.extend_from_slice(&esc);
            line.extend_from_slice(b" rw - ext4 /dev/sda1 rw");
            let m = parse_line(&line).unwrap();
            let mut want = b"/".to_vec();
            want.extend_from_slice(&name);
            proptest::prop_assert_eq!(m.mount_point.as_os_str().as_bytes(), &want[..]);
        }
    }
}
