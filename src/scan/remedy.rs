//! Remedy commands: the exact shell line an admin runs to fix a finding.

/// Where the filesystem is, as far as a remedy needs to know.
#[derive(Debug, Clone)]
pub enum Location {
    /// Mounted at `mountpoint` from `device`; `is_root` for `/`.
    Mounted {
        device: String,
        mountpoint: String,
        is_root: bool,
        /// How to mount it back by hand; `None`: `mount MOUNTPOINT` (fstab).
        remount: Option<Remount>,
    },
    /// An unmounted block device.
    Device(String),
    /// A filesystem image file.
    Image(String),
    /// Partition `index` of the whole-disk image `image`, `size` bytes at byte `offset`
    /// (attached with `losetup --offset --sizelimit`: no partition-table parser in the kernel
    /// needed, and no wait for a `/dev/loopNpM` node).
    ImagePartition {
        image: String,
        index: u32,
        offset: u64,
        size: u64,
    },
}

/// How a mounted filesystem is mounted back after an offline check, from mountinfo: the
/// recorded type, source and options, since the mount point may have no fstab entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remount {
    /// `ext4`, `f2fs`, ...
    pub fstype: String,
    /// The per-mount options (`rw,relatime`), plus `subvol=` for btrfs.
    pub options: String,
    /// The image behind an autoclear loop device (`mount -o loop`): umount detaches the loop
    /// device, so the check and the mount name the image, which survives.
    pub loop_image: Option<String>,
}

impl Location {
    /// Run a checker command (`e2fsck -f`) on the filesystem, unmounting it first when
    /// needed. `/` cannot be unmounted: the check is scheduled for the next boot instead.
    pub fn check_command(&self, checker: &str) -> String {
        match self {
            Location::Mounted {
                device,
                is_root: true,
                ..
            } => format!(
                "the root filesystem cannot be unmounted: reboot with fsck.mode=force on the kernel command line (or: tune2fs -C 65535 -c 1 {}) so {checker} runs at boot",
                quote(device)
            ),
            Location::Mounted {
                device,
                mountpoint,
                remount: None,
                ..
            } => {
                let mp = quote(mountpoint);
                format!("umount {mp} && {checker} {} && mount {mp}", quote(device))
            }
            Location::Mounted {
                device,
                mountpoint,
                remount: Some(r),
                ..
            } => {
                let mp = quote(mountpoint);
                let (checked, options) = match &r.loop_image {
                    Some(image) => (image, format!("loop,{}", r.options)),
                    None => (device, r.options.clone()),
                };
                format!(
                    "umount {mp} && {checker} {src} && mount -t {} -o {} {src} {mp}",
                    quote(&r.fstype),
                    quote(&options),
                    src = quote(checked)
                )
            }
            Location::Device(device) => format!("{checker} {}", quote(device)),
            Location::Image(image) => format!("{checker} {}", quote(image)),
            Location::ImagePartition { .. } => self
                .on_partition(&format!("{checker} \"$dev\""))
                .unwrap_or_default(),
        }
    }

    /// For [`Location::ImagePartition`]: attach the partition alone as `$dev`, run `command`
    /// (which names `"$dev"`), detach it, and end with `command`'s own status (an `e2fsck`
    /// exit 4 stays 4; the `losetup -d` after it does not hide it). `None` otherwise.
    pub fn on_partition(&self, command: &str) -> Option<String> {
        let Location::ImagePartition {
            image,
            offset,
            size,
            ..
        } = self
        else {
            return None;
        };
        Some(format!(
            "dev=$(losetup --find --show --offset {offset} --sizelimit {size} {}) && {{ {command}; rc=$?; losetup -d \"$dev\"; (exit \"$rc\"); }}",
            quote(image)
        ))
    }

    /// Replay a journal or log the kernel replays at mount (XFS log, btrfs log tree): mount on
    /// a temporary directory (`mount_options` added, e.g. `nouuid`) and unmount at once, the
    /// directory removed whether the mount worked or not; the line fails when it did not.
    /// Then `then` (a checker taking the source), if any. `None` for a mounted filesystem
    /// (its kernel already replayed it).
    pub fn replay_command(&self, mount_options: &[&str], then: Option<&str>) -> Option<String> {
        let replay = |source: &str, loop_: bool| {
            let mut options: Vec<&str> = Vec::new();
            if loop_ {
                options.push("loop");
            }
            options.extend_from_slice(mount_options);
            let o = if options.is_empty() {
                String::new()
            } else {
                format!("-o {} ", options.join(","))
            };
            let then = then.map_or(String::new(), |t| format!(" && {t} {source}"));
            format!(
                "mnt=$(mktemp -d) && {{ mount {o}{source} \"$mnt\" && umount \"$mnt\"; rc=$?; rmdir \"$mnt\"; [ \"$rc\" -eq 0 ]; }}{then}"
            )
        };
        match self {
            Location::Mounted { .. } => None,
            Location::Device(device) => Some(replay(&quote(device), false)),
            Location::Image(image) => Some(replay(&quote(image), true)),
            Location::ImagePartition { .. } => self.on_partition(&replay("\"$dev\"", false)),
        }
    }
}

/// The `-o` options that mount a filesystem back as mountinfo recorded it: the per-mount
/// options, then the filesystem's own (super options: btrfs `compress=`, exFAT `uid=`/`fmask=`,
/// f2fs `compress_algorithm=` — left out, the filesystem came back without them), less `rw`/`ro`
/// (the per-mount word decides) and `seclabel` (not a mount option). For btrfs `subvol=` is
/// taken from the mount's root as a whole (its value may hold commas) and left to `subvolid=`
/// when it cannot be written in `-o`.
pub fn remount_options(primary: &crate::mount::mountinfo::MountInfo) -> String {
    let btrfs = primary.fs_type == "btrfs";
    let super_options = match primary.super_options.rfind(",subvol=") {
        Some(at) if btrfs => &primary.super_options[..at],
        _ => primary.super_options.as_str(),
    };
    let mut words: Vec<String> = Vec::new();
    for word in primary
        .mount_options
        .split(',')
        .chain(super_options.split(','))
    {
        let key = word.split_once('=').map_or(word, |(k, _)| k);
        let skip = word.is_empty()
            || (matches!(word, "rw" | "ro") && !words.is_empty())
            || word == "seclabel"
            || (btrfs && key == "subvol")
            || words.iter().any(|w| w == word);
        if !skip {
            words.push(word.to_string());
        }
    }
    if btrfs && let Some(root) = primary.root.to_str().filter(|r| !r.contains(',')) {
        words.push(format!("subvol={root}"));
    }
    words.join(",")
}

/// How a path the user typed is named as a command's operand: one that starts with `-`
/// gets `./` so that no tool (mount, e2fsck, xfs_repair, losetup) takes it for an option.
pub fn operand(path: &str) -> String {
    if path.starts_with('-') {
        format!("./{path}")
    } else {
        path.to_string()
    }
}

impl Location {
    /// Fix a filesystem `snapguard repair` can handle (ext, XFS, FAT): a mounted one (not `/`)
    /// through `snapguard repair MOUNT`, which finds every holder, unmounts without `-l`, fences
    /// the device, backs up the metadata and mounts it back with the same options — what the
    /// hand-made `umount && CHECKER && mount` line gets wrong (repair.md §8); anything else as
    /// [`Location::check_command`] (`offline` for checkers without a boot-time mode).
    pub fn repair_command(&self, checker: &str, offline: bool) -> String {
        match self {
            Location::Mounted {
                mountpoint,
                is_root: false,
                ..
            } => format!("snapguard repair {}", quote(mountpoint)),
            other if offline => other.offline_command(checker),
            other => other.check_command(checker),
        }
    }

    /// Run a tool that needs the filesystem unmounted and has no boot-time mode
    /// (`fsck.fat`, `btrfs check`): like [`Location::check_command`], except that for `/`
    /// the only way is rescue media.
    pub fn offline_command(&self, command: &str) -> String {
        match self {
            Location::Mounted {
                device,
                is_root: true,
                ..
            } => format!(
                "the root filesystem cannot be unmounted: boot rescue media and run {command} {}",
                quote(device)
            ),
            other => other.check_command(command),
        }
    }

    /// `image` or `device`, for messages about sizes and truncation.
    pub fn medium(&self) -> &'static str {
        if matches!(self, Location::Image(_) | Location::ImagePartition { .. }) {
            "image"
        } else {
            "device"
        }
    }
}

pub use crate::shell::quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_filesystems_are_unmounted_around_the_check() {
        let loc = Location::Mounted {
            device: "/dev/sdb1".into(),
            mountpoint: "/data".into(),
            is_root: false,
            remount: None,
        };
        assert_eq!(
            loc.check_command("e2fsck -f"),
            "umount /data && e2fsck -f /dev/sdb1 && mount /data"
        );
        let root = Location::Mounted {
            device: "/dev/sda1".into(),
            mountpoint: "/".into(),
            is_root: true,
            remount: None,
        };
        assert!(root.check_command("e2fsck -f").contains("fsck.mode=force"));
    }

    #[test]
    fn repairable_mounted_filesystems_point_at_snapguard_repair() {
        let loc = Location::Mounted {
            device: "/dev/sdb1".into(),
            mountpoint: "/srv/my data".into(),
            is_root: false,
            remount: None,
        };
        assert_eq!(
            loc.repair_command("e2fsck -p", false),
            "snapguard repair '/srv/my data'"
        );
        let root = Location::Mounted {
            device: "/dev/sda1".into(),
            mountpoint: "/".into(),
            is_root: true,
            remount: None,
        };
        assert!(
            root.repair_command("e2fsck -f", false)
                .contains("fsck.mode=force")
        );
        assert!(
            root.repair_command("fsck.fat -a", true)
                .contains("rescue media")
        );
        let image = Location::Image("/tmp/a.img".into());
        assert_eq!(
            image.repair_command("e2fsck -p", false),
            "e2fsck -p /tmp/a.img"
        );
    }

    #[test]
    fn remounts_keep_the_filesystems_own_options() {
        let table = |line: &str| {
            crate::mount::table::MountTable::from_mountinfo(line.as_bytes())
                .unwrap()
                .superblocks()
                .remove(0)
                .primary
        };
        let btrfs = table(
            "67 46 0:40 /@data /mnt/b rw,noatime - btrfs /dev/loop0 rw,compress=zstd:3,space_cache=v2,subvolid=256,subvol=/@data\n",
        );
        assert_eq!(
            remount_options(&btrfs),
            "rw,noatime,compress=zstd:3,space_cache=v2,subvolid=256,subvol=/@data"
        );
        let exfat = table(
            "70 46 7:1 / /media/usb rw,nosuid,nodev,relatime - exfat /dev/loop1 rw,uid=1000,gid=1000,fmask=0022,dmask=0022,iocharset=utf8,errors=remount-ro\n",
        );
        assert_eq!(
            remount_options(&exfat),
            "rw,nosuid,nodev,relatime,uid=1000,gid=1000,fmask=0022,dmask=0022,iocharset=utf8,errors=remount-ro"
        );
        let ro = table(
            "71 46 7:2 / /mnt/r ro,relatime - f2fs /dev/loop2 ro,seclabel,background_gc=on\n",
        );
        assert_eq!(remount_options(&ro), "ro,relatime,background_gc=on");
    }

    #[test]
    fn offline_checks_remount_with_the_recorded_source_and_options() {
        let remount = |loop_image: Option<&str>| {
            Some(Remount {
                fstype: "f2fs".into(),
                options: "rw,noatime".into(),
                loop_image: loop_image.map(String::from),
            })
        };
        let on_loop = Location::Mounted {
            device: "/dev/loop3".into(),
            mountpoint: "/mnt/x".into(),
            is_root: false,
            remount: remount(Some("/srv/x.img")),
        };
        assert_eq!(
            on_loop.offline_command("fsck.f2fs -f"),
            "umount /mnt/x && fsck.f2fs -f /srv/x.img && mount -t f2fs -o loop,rw,noatime /srv/x.img /mnt/x"
        );
        let on_disk = Location::Mounted {
            device: "/dev/sdb1".into(),
            mountpoint: "/mnt/x".into(),
            is_root: false,
            remount: remount(None),
        };
        assert_eq!(
            on_disk.offline_command("fsck.f2fs -f"),
            "umount /mnt/x && fsck.f2fs -f /dev/sdb1 && mount -t f2fs -o rw,noatime /dev/sdb1 /mnt/x"
        );
    }
}
