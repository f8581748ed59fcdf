//! Remedies for `--root DIR`: the printed command acts on DIR (`setfiles -r DIR`,
//! `systemctl --root=DIR`, `chroot DIR …`), never on the host that ran the check.

use super::shell_quote;
use crate::root::SysRoot;

/// `remedy` as a command that acts on the system under `root`; unchanged for the host.
/// DIR is not the running kernel's system (a fixture, an offline disk, a container seen
/// from outside): nothing is started there and no policy is reloaded (`semanage -N`,
/// `semodule -n`); `systemctl` and `mount` would reach the host from a chroot, so they name
/// DIR themselves.
pub fn for_root(root: &SysRoot, policy_type: &str, remedy: &str) -> String {
    if root.is_host() {
        return remedy.to_string();
    }
    let base = root.base().to_string_lossy();
    let dir = base.trim_end_matches('/');
    let q = |rel: &str| shell_quote(&format!("{dir}{rel}"));
    let words: Vec<&str> = remedy.split(' ').collect();
    match words.as_slice() {
        // restorecon reads the running policy's file_contexts; setfiles -r takes DIR's.
        ["restorecon", flags, paths @ ..] if flags.starts_with('-') && !paths.is_empty() => {
            let spec = q(&format!(
                "/etc/selinux/{policy_type}/contexts/files/file_contexts"
            ));
            let targets: Vec<String> = paths.iter().map(|p| q(p)).collect();
            format!(
                "setfiles -r {} -v {spec} {}",
                shell_quote(dir),
                targets.join(" ")
            )
        }
        ["systemctl", "enable", "--now", unit] => {
            format!("systemctl --root={} enable {unit}", shell_quote(dir))
        }
        ["mount", "-o", options, mount_point] if mount_point.starts_with('/') => {
            format!("mount -o {options} {}", q(mount_point))
        }
        ["setsebool", "-P", name, value] => {
            let state = if *value == "0" { "--off" } else { "--on" };
            chroot(dir, &format!("semanage boolean -N -m {state} {name}"))
        }
        ["semanage", sub, rest @ ..] => {
            chroot(dir, &format!("semanage {sub} -N {}", rest.join(" ")))
        }
        _ => chroot(dir, &remedy.replace("semodule -", "semodule -n -")),
    }
}

/// A detail line that ends in an alternative command (`…: semanage permissive -a T`), with
/// that command made to act on `root` too; other lines unchanged.
pub fn detail_for_root(root: &SysRoot, policy_type: &str, detail: &str) -> String {
    match detail.rsplit_once(": ") {
        Some((head, command)) if !root.is_host() && command.starts_with("semanage ") => {
            format!("{head}: {}", for_root(root, policy_type, command))
        }
        _ => detail.to_string(),
    }
}

/// `chroot DIR CMD`, through `sh -c` when CMD is a pipeline or a list.
fn chroot(dir: &str, command: &str) -> String {
    let shell = command.contains(['|', '&', ';', '>', '<', '\'']);
    if shell {
        format!(
            "chroot {} sh -c {}",
            shell_quote(dir),
            quote_always(command)
        )
    } else {
        format!("chroot {} {command}", shell_quote(dir))
    }
}

/// Single-quote `s` for a POSIX shell, even when it would not need it.
fn quote_always(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_keeps_its_remedies() {
        let root = SysRoot::new("/");
        assert_eq!(
            for_root(&root, "targeted", "restorecon -Rv /var/lib/waagent"),
            "restorecon -Rv /var/lib/waagent"
        );
    }

    #[test]
    fn another_root_gets_commands_that_act_on_it() {
        let root = SysRoot::new("/mnt/rescue");
        assert_eq!(
            for_root(
                &root,
                "targeted",
                "restorecon -Rv /var/lib/waagent /usr/sbin/waagent"
            ),
            "setfiles -r /mnt/rescue -v /mnt/rescue/etc/selinux/targeted/contexts/files/file_contexts /mnt/rescue/var/lib/waagent /mnt/rescue/usr/sbin/waagent"
        );
        assert_eq!(
            for_root(&root, "targeted", "systemctl enable --now waagent.service"),
            "systemctl --root=/mnt/rescue enable waagent.service"
        );
        assert_eq!(
            for_root(&root, "targeted", "setsebool -P deny_execmem 0"),
            "chroot /mnt/rescue semanage boolean -N -m --off deny_execmem"
        );
        assert_eq!(
            for_root(&root, "targeted", "semanage permissive -a waagent_t"),
            "chroot /mnt/rescue semanage permissive -N -a waagent_t"
        );
        assert_eq!(
            for_root(&root, "targeted", "semodule -e unconfined"),
            "chroot /mnt/rescue semodule -n -e unconfined"
        );
        assert_eq!(
            for_root(&root, "targeted", "a | b && echo 'x'"),
            r"chroot /mnt/rescue sh -c 'a | b && echo '\''x'\'''"
        );
        assert_eq!(
            for_root(&root, "targeted", "mount -o remount,exec /var"),
            "mount -o remount,exec /mnt/rescue/var"
        );
        assert_eq!(
            detail_for_root(
                &root,
                "targeted",
                "alternative for the whole domain: semanage permissive -a waagent_t"
            ),
            "alternative for the whole domain: chroot /mnt/rescue semanage permissive -N -a waagent_t"
        );
        assert_eq!(
            detail_for_root(
                &SysRoot::new("/"),
                "targeted",
                "x: semanage permissive -a t"
            ),
            "x: semanage permissive -a t"
        );
        let odd = SysRoot::new("/tmp/a b/");
        assert_eq!(
            for_root(&odd, "targeted", "semanage permissive -a t"),
            "chroot '/tmp/a b' semanage permissive -N -a t"
        );
    }
}
