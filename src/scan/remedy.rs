//! Remedy commands: the exact shell line an admin runs to fix a finding.

/// Where the filesystem is, as far as a remedy needs to know.
#[derive(Debug, Clone)]
pub enum Location {
    /// Mounted at `mountpoint` from `device`; `is_root` for `/`.
    Mounted {
        device: String,
        mountpoint: String,
        is_root: bool,
    },
    /// An unmounted block device.
    Device(String),
    /// A filesystem image file.
    Image(String),
    /// Partition `index` of the whole-disk image `image`.
    ImagePartition { image: String, index: u32 },
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
                device, mountpoint, ..
            } => {
                let mp = quote(mountpoint);
                format!("umount {mp} && {checker} {} && mount {mp}", quote(device))
            }
            Location::Device(device) => format!("{checker} {}", quote(device)),
            Location::Image(image) => format!("{checker} {}", quote(image)),
            Location::ImagePartition { image, index } => format!(
                "dev=$(losetup --find --show --partscan {}) && {checker} \"${{dev}}p{index}\"; losetup -d \"$dev\"",
                quote(image)
            ),
        }
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
        };
        assert_eq!(
            loc.check_command("e2fsck -f"),
            "umount /data && e2fsck -f /dev/sdb1 && mount /data"
        );
        let root = Location::Mounted {
            device: "/dev/sda1".into(),
            mountpoint: "/".into(),
            is_root: true,
        };
        assert!(root.check_command("e2fsck -f").contains("fsck.mode=force"));
    }

    #[test]
    fn repairable_mounted_filesystems_point_at_snapguard_repair() {
        let loc = Location::Mounted {
            device: "/dev/sdb1".into(),
            mountpoint: "/srv/my data".into(),
            is_root: false,
        };
        assert_eq!(
            loc.repair_command("e2fsck -p", false),
            "snapguard repair '/srv/my data'"
        );
        let root = Location::Mounted {
            device: "/dev/sda1".into(),
            mountpoint: "/".into(),
            is_root: true,
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
}
