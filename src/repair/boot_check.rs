//! Filesystems that cannot be taken out of service (`/`, `/usr`, the one holding snapguard
//! itself or PID 1's cwd) get a boot-time check instead (repair.md §2.3): which mechanism fits
//! this machine, the command that schedules it, and how to undo it.

use super::FsKind;
use crate::root::SysRoot;
use crate::shell::quote_path;
use serde::Serialize;
use std::path::Path;

/// A boot-time check that `repair` schedules (or, with `--dry-run`, would schedule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootCheck {
    /// `tune2fs-max-mount-count`, `kernel-cmdline-grubby`, `kernel-cmdline-grub`,
    /// `forcefsck-file`.
    pub mechanism: &'static str,
    /// Why this mechanism fits this machine, in one sentence.
    pub why: String,
    /// The commands that schedule it (run by `repair` with consent, unless `manual`).
    pub commands: Vec<String>,
    /// How to undo it once the check has run (or to cancel it).
    pub undo: Vec<String>,
    /// The commands must be carried out by hand (an editor step is involved).
    pub manual: bool,
}

/// What the machine offers, read under `root`.
#[derive(Debug, Clone, Default)]
pub struct BootFacts {
    /// The fstab pass number of the mount point (`None`: no fstab line).
    pub fstab_passno: Option<u32>,
    /// The filesystem's current maximum mount count (ext only; -1 disables the count).
    pub max_mount_count: Option<i32>,
    /// `grubby` is installed (RHEL, Fedora, SUSE).
    pub has_grubby: bool,
    /// `/etc/default/grub` exists (Debian, Ubuntu).
    pub has_default_grub: bool,
    /// systemd runs this machine (`/run/systemd/system` exists).
    pub systemd: bool,
}

impl BootFacts {
    /// Read the facts from the machine.
    pub fn read(root: &SysRoot, fstab_passno: Option<u32>, max_mount_count: Option<i32>) -> Self {
        let exists = |p: &str| root.path(p).exists();
        BootFacts {
            fstab_passno,
            max_mount_count,
            has_grubby: exists("usr/sbin/grubby") || exists("sbin/grubby"),
            has_default_grub: exists("etc/default/grub"),
            systemd: exists("run/systemd/system"),
        }
    }
}

/// The mechanism that fits: for ext with a non-zero fstab pass number, the mount count
/// (e2fsck at boot checks it, one-shot in effect, survives any bootloader); otherwise the
/// kernel command line that systemd-fsck and initramfs fsck read (`fsck.mode=force`), set
/// through grubby or /etc/default/grub; `/forcefsck` only without systemd (systemd 258 dropped
/// it and earlier versions deprecate it).
pub fn plan(kind: FsKind, device: &Path, facts: &BootFacts) -> BootCheck {
    let dev = quote_path(device);
    if kind == FsKind::Ext && facts.fstab_passno.is_some_and(|p| p > 0) {
        let original = facts.max_mount_count.unwrap_or(-1);
        return BootCheck {
            mechanism: "tune2fs-max-mount-count",
            why: format!(
                "ext with fstab pass number {}: e2fsck -p at boot checks a filesystem whose \
                 mount count reached its maximum",
                facts.fstab_passno.unwrap_or(0)
            ),
            commands: vec![format!("tune2fs -c 1 {dev}")],
            undo: vec![format!("tune2fs -c {original} {dev}")],
            manual: false,
        };
    }
    if facts.has_grubby {
        return BootCheck {
            mechanism: "kernel-cmdline-grubby",
            why: "grubby manages the boot entries: fsck.mode=force makes systemd-fsck (or the \
                  initramfs) check every filesystem at the next boot"
                .into(),
            commands: vec![
                "grubby --update-kernel=DEFAULT --args='fsck.mode=force fsck.repair=preen'".into(),
            ],
            undo: vec![
                "grubby --update-kernel=DEFAULT --remove-args='fsck.mode=force fsck.repair=preen'"
                    .into(),
            ],
            manual: false,
        };
    }
    if facts.has_default_grub || facts.systemd {
        return BootCheck {
            mechanism: "kernel-cmdline-grub",
            why: "systemd-fsck and the initramfs read fsck.mode=force from the kernel command \
                  line; for one boot only, add it in the GRUB menu (e, then Ctrl-X)"
                .into(),
            commands: vec![
                "add 'fsck.mode=force fsck.repair=preen' to GRUB_CMDLINE_LINUX in /etc/default/grub".into(),
                "update-grub || grub2-mkconfig -o /boot/grub2/grub.cfg".into(),
            ],
            undo: vec![
                "remove them from /etc/default/grub again, then run the same update command".into(),
            ],
            manual: true,
        };
    }
    BootCheck {
        mechanism: "forcefsck-file",
        why: "no systemd and no GRUB configuration found: the init scripts check all \
              filesystems when /forcefsck exists"
            .into(),
        commands: vec!["touch /forcefsck".into()],
        undo: vec!["rm -f /forcefsck".into()],
        manual: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_in_fstab_uses_the_mount_count_and_undoes_to_the_old_value() {
        let facts = BootFacts {
            fstab_passno: Some(1),
            max_mount_count: Some(-1),
            systemd: true,
            ..Default::default()
        };
        let p = plan(FsKind::Ext, Path::new("/dev/sda1"), &facts);
        assert_eq!(p.mechanism, "tune2fs-max-mount-count");
        assert_eq!(p.commands, ["tune2fs -c 1 /dev/sda1"]);
        assert_eq!(p.undo, ["tune2fs -c -1 /dev/sda1"]);
    }

    #[test]
    fn xfs_goes_through_the_kernel_command_line() {
        let facts = BootFacts {
            fstab_passno: Some(1),
            has_grubby: true,
            ..Default::default()
        };
        assert_eq!(
            plan(FsKind::Xfs, Path::new("/dev/sda1"), &facts).mechanism,
            "kernel-cmdline-grubby"
        );
        let facts = BootFacts {
            has_default_grub: true,
            ..Default::default()
        };
        assert!(plan(FsKind::Xfs, Path::new("/dev/sda1"), &facts).manual);
        assert_eq!(
            plan(FsKind::Xfs, Path::new("/dev/sda1"), &BootFacts::default()).mechanism,
            "forcefsck-file"
        );
    }
}
