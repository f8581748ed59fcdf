//! The autoclear flag of the loop device under a filesystem (`mount -o loop IMG M` sets it: the
//! kernel detaches the device at its last close): cleared before the umount, so that the device
//! outlives the umount, the fence, the check and a hold, and set again only once the filesystem
//! is mounted again (never while nothing holds the device: it would detach at our own close).

use super::state::LoopImage;
use crate::root::{DEV_DIR, SYS_BLOCK, SysRoot};
use crate::sys::{SysError, loopdev};
use std::path::{Path, PathBuf};

/// A loop device that detaches itself at its last close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoclearLoop {
    /// `/dev/loopN`: the whole device (the flag is the disk's, for a partition of it too).
    pub node: PathBuf,
    /// The image file behind it (`loop/backing_file`), when sysfs says.
    pub image: Option<PathBuf>,
}

impl AutoclearLoop {
    /// `/dev/loopN (image /srv/x.img)`, or the node alone.
    pub fn describe(&self) -> String {
        match &self.image {
            Some(image) => format!("{} (image {})", self.node.display(), image.display()),
            None => self.node.display().to_string(),
        }
    }
}

/// Why the flag could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum AutoclearError {
    /// sysfs does not say whether the loop device detaches itself.
    #[error(
        "cannot tell whether loop device {node} detaches itself at the umount (autoclear): \
         '{path}': {why}"
    )]
    Unreadable {
        node: PathBuf,
        path: PathBuf,
        why: String,
    },
    /// LOOP_GET_STATUS64 failed (detached, not a loop device, no privilege).
    #[error("cannot ask loop device {node} which file it reads: {source}")]
    Status {
        node: PathBuf,
        #[source]
        source: SysError,
    },
    /// LOOP_GET_STATUS64 / LOOP_SET_STATUS64 failed.
    #[error("cannot change the autoclear flag of loop device {node}: {source}")]
    Set {
        node: PathBuf,
        #[source]
        source: SysError,
    },
}

/// The loop device `disk` (a whole disk's kernel name, as [`super::subject::Subject::disk_name`]
/// gives it) when it is one with autoclear set; `None` for any other device, or a loop device
/// without the flag. An unreadable flag is an error, never "not set".
pub fn find(root: &SysRoot, disk: Option<&str>) -> Result<Option<AutoclearLoop>, AutoclearError> {
    let Some(disk) = disk else {
        return Ok(None);
    };
    let dir = root.path(SYS_BLOCK).join(disk).join("loop");
    // `loop/` exists only while a file is bound: no directory, no loop device under it.
    if !dir.is_dir() {
        return Ok(None);
    }
    let node = Path::new(DEV_DIR).join(disk);
    let path = dir.join("autoclear");
    let text = std::fs::read_to_string(&path).map_err(|e| AutoclearError::Unreadable {
        node: node.clone(),
        path: path.clone(),
        why: crate::sys::describe_io(&e),
    })?;
    let on = match text.trim() {
        "1" => true,
        "0" => false,
        other => {
            return Err(AutoclearError::Unreadable {
                node,
                path,
                why: format!("unexpected content {other:?}"),
            });
        }
    };
    if !on {
        return Ok(None);
    }
    let image = backing_file(root, disk);
    Ok(Some(AutoclearLoop { node, image }))
}

/// The file loop device `disk` reads, as sysfs names it (`loop/backing_file`), while bound.
pub fn backing_file(root: &SysRoot, disk: &str) -> Option<PathBuf> {
    let path = root
        .path(SYS_BLOCK)
        .join(disk)
        .join("loop")
        .join("backing_file");
    std::fs::read(path).ok().map(|bytes| {
        use std::os::unix::ffi::OsStrExt as _;
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    })
}

/// Which file the loop device `l` reads now, asked of the device (the identity a record keeps
/// to tell the same device from a reused loop number).
pub fn image(l: &AutoclearLoop) -> Result<LoopImage, AutoclearError> {
    let status = loopdev::loop_status(&l.node).map_err(|source| AutoclearError::Status {
        node: l.node.clone(),
        source,
    })?;
    Ok(LoopImage {
        backing_dev: status.backing_dev,
        backing_ino: status.backing_ino,
        offset: status.offset,
        path: l.image.clone(),
    })
}

/// The other loop devices that read the file loop device `disk` reads, over an overlapping
/// range (`losetup -f IMG` a second time): a repair through `disk` would write under them.
/// Empty when `disk` is not a bound loop device. One that cannot be asked (not detaching in
/// between) is named too: whether it reads the file cannot be told.
pub fn same_file_elsewhere(root: &SysRoot, disk: &str) -> Vec<String> {
    let sys = root.path(SYS_BLOCK);
    if !sys.join(disk).join("loop").is_dir() {
        return Vec::new();
    }
    let Ok(ours) = loopdev::loop_status(&node(disk)) else {
        return Vec::new();
    };
    // [start, end) in the file; an unreadable size reaches to the end of any file.
    let range = |name: &str, offset: u64| {
        let sectors = std::fs::read_to_string(sys.join(name).join("size"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        (
            offset,
            sectors.map_or(u64::MAX, |n| offset.saturating_add(n.saturating_mul(512))),
        )
    };
    let (start, end) = range(disk, ours.offset);
    let Ok(entries) = std::fs::read_dir(&sys) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("loop") && n != disk && sys.join(n).join("loop").is_dir())
        .filter(|n| match loopdev::loop_status(&node(n)) {
            Ok(s) => {
                let (s_start, s_end) = range(n, s.offset);
                (s.backing_dev, s.backing_ino) == (ours.backing_dev, ours.backing_ino)
                    && s_start < end
                    && start < s_end
            }
            Err(SysError::Ioctl { errno, .. }) => errno != nix::errno::Errno::ENXIO,
            Err(SysError::Io { source, .. }) => source.kind() != std::io::ErrorKind::NotFound,
        })
        .map(|n| node(&n).display().to_string())
        .collect();
    names.sort();
    names
}

/// Whether loop device `disk` still reads the file `recorded` names: `Err` with a one-line
/// reason when it reads another one (a detached device whose number was taken again), or
/// cannot be asked.
pub fn same_image(root: &SysRoot, disk: &str, recorded: &LoopImage) -> Result<(), String> {
    let now = AutoclearLoop {
        node: node(disk),
        image: backing_file(root, disk),
    };
    let describe = |i: &LoopImage| {
        format!(
            "{} at offset {}",
            i.path
                .as_ref()
                .map_or_else(|| "an image".to_string(), |p| p.display().to_string()),
            i.offset
        )
    };
    match image(&now) {
        Ok(i)
            if (i.backing_dev, i.backing_ino, i.offset)
                == (recorded.backing_dev, recorded.backing_ino, recorded.offset) =>
        {
            Ok(())
        }
        Ok(i) => Err(format!(
            "the repair record was written for loop device {} reading {}, but it now reads {}: \
             the loop device was detached since and its number taken for another image",
            now.node.display(),
            describe(recorded),
            describe(&i)
        )),
        Err(e) => Err(format!(
            "{e}: cannot confirm it still reads {} as the repair record says",
            describe(recorded)
        )),
    }
}

/// The node of loop device `disk` ([`find`]'s, for a record's device whose flag this run or
/// an interrupted one cleared).
pub fn node(disk: &str) -> PathBuf {
    Path::new(DEV_DIR).join(disk)
}

/// Clear (`on` false) or set the flag. Set it only while the filesystem on it is mounted.
pub fn set(node: &Path, on: bool) -> Result<(), AutoclearError> {
    loopdev::set_autoclear(node, on)
        .map(|_| ())
        .map_err(|source| AutoclearError::Set {
            node: node.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(autoclear: Option<&str>) -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        let loop_dir = dir.path().join("sys/block/loop7/loop");
        std::fs::create_dir_all(&loop_dir).unwrap();
        std::fs::write(loop_dir.join("backing_file"), "/srv/images/a b.img\n").unwrap();
        if let Some(text) = autoclear {
            std::fs::write(loop_dir.join("autoclear"), text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("sys/block/sda1")).unwrap();
        let root = SysRoot::new(dir.path());
        (dir, root)
    }

    #[test]
    fn an_autoclear_loop_device_is_found_with_its_image() {
        let (_dir, root) = tree(Some("1\n"));
        let found = find(&root, Some("loop7")).unwrap().unwrap();
        assert_eq!(found.node, Path::new("/dev/loop7"));
        assert_eq!(
            found.image.as_deref(),
            Some(Path::new("/srv/images/a b.img"))
        );
        assert_eq!(found.describe(), "/dev/loop7 (image /srv/images/a b.img)");
    }

    #[test]
    fn other_devices_and_loop_devices_without_the_flag_are_none() {
        let (_dir, root) = tree(Some("0\n"));
        assert_eq!(find(&root, Some("loop7")).unwrap(), None);
        assert_eq!(find(&root, Some("sda1")).unwrap(), None);
        assert_eq!(find(&root, Some("loop9")).unwrap(), None);
        assert_eq!(find(&root, None).unwrap(), None);
    }

    #[test]
    fn an_unreadable_flag_is_an_error_never_not_set() {
        let (_dir, root) = tree(None);
        let e = find(&root, Some("loop7")).unwrap_err();
        assert!(matches!(e, AutoclearError::Unreadable { .. }), "{e}");
        assert!(e.to_string().contains("/dev/loop7"), "{e}");
        let (_dir, root) = tree(Some("yes\n"));
        assert!(find(&root, Some("loop7")).is_err());
    }
}
