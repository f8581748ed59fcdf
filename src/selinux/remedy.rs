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
        // restorecon reads the running policy's file_contexts; setfiles -r takes DIR's
        // (and is recursive on its own: of the flags only -n and -v carry over).
        ["restorecon", flags, paths @ ..] if flags.starts_with('-') && !paths.is_empty() => {
            let spec = q(&format!(
                "/etc/selinux/{policy_type}/contexts/files/file_contexts"
            ));
            let kept: String = flags.chars().filter(|c| matches!(c, 'n' | 'v')).collect();
            let kept = if kept.contains('v') {
                kept
            } else {
                format!("{kept}v")
            };
            let targets: Vec<String> = paths
                .iter()
                .map(|p| match p.strip_suffix('*') {
                    // A glob stays a glob: DIR quoted, the pattern after it not.
                    Some(stem) if stem.starts_with('/') && shell_quote(stem) == *stem => {
                        format!("{}{p}", shell_quote(dir))
                    }
                    _ => q(p),
                })
                .collect();
            format!(
                "setfiles -r {} -{kept} {spec} {}",
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

/// A message or detail line with commands in it (`…: semanage permissive -a T`, `(dry run:
/// restorecon -Rnv /var/lib/waagent)`, `restorecon -v … , and remove …`), each `restorecon`
/// and `semanage` command in it made to act on `root` too; unchanged for the host.
pub fn detail_for_root(root: &SysRoot, policy_type: &str, detail: &str) -> String {
    if root.is_host() {
        return detail.to_string();
    }
    let mut out = String::new();
    let mut rest = detail;
    while let Some(at) = next_command(rest) {
        out.push_str(&rest[..at]);
        let len = command_len(&rest[at..]);
        out.push_str(&for_root(root, policy_type, &rest[at..at + len]));
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// Where the next embedded command starts: `restorecon -…` or `semanage SUB -…` at a word
/// start (prose such as "restorecon would change them" is left alone).
fn next_command(text: &str) -> Option<usize> {
    let is_command = |i: usize| {
        let mut words = text[i..].split(' ');
        match words.next() {
            Some("restorecon") => words.next().is_some_and(|w| w.starts_with('-')),
            Some("semanage") => {
                words
                    .next()
                    .is_some_and(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    && words.next().is_some_and(|w| w.starts_with('-'))
            }
            _ => false,
        }
    };
    ["restorecon ", "semanage "]
        .iter()
        .flat_map(|word| text.match_indices(word).map(|(i, _)| i))
        .filter(|&i| (i == 0 || text[..i].ends_with([' ', '('])) && is_command(i))
        .min()
}

/// The length of the command at the start of `text`: up to an unquoted `)`, ` (`, `;`, `, `,
/// `&&` or the end, trailing spaces left out.
fn command_len(text: &str) -> usize {
    let mut quoted = false;
    for (i, ch) in text.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            ')' | ';' if !quoted => return text[..i].trim_end().len(),
            '(' if !quoted && text[..i].ends_with(' ') => return text[..i].trim_end().len(),
            ',' if !quoted && text[i..].starts_with(", ") => return text[..i].trim_end().len(),
            '&' if !quoted && text[i..].starts_with("&&") => return text[..i].trim_end().len(),
            _ => {}
        }
    }
    text.trim_end().len()
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
        assert_eq!(
            detail_for_root(
                &root,
                "targeted",
                "or make it start unconfined: restorecon -v /usr/sbin/waagent /usr/bin/python3*, and remove any SELinuxContext= from its unit"
            ),
            "or make it start unconfined: setfiles -r /mnt/rescue -v /mnt/rescue/etc/selinux/targeted/contexts/files/file_contexts /mnt/rescue/usr/sbin/waagent /mnt/rescue/usr/bin/python3*, and remove any SELinuxContext= from its unit"
        );
        assert_eq!(
            detail_for_root(
                &root,
                "targeted",
                "2 differ (dry run: restorecon -Rnv /var/lib/waagent); to keep a custom type instead: semanage fcontext -a -t t '/var/lib/waagent(/.*)?' && restorecon -Rv /var/lib/waagent (a note)"
            ),
            "2 differ (dry run: setfiles -r /mnt/rescue -nv /mnt/rescue/etc/selinux/targeted/contexts/files/file_contexts /mnt/rescue/var/lib/waagent); to keep a custom type instead: chroot /mnt/rescue sh -c 'semanage fcontext -N -a -t t '\\''/var/lib/waagent(/.*)?'\\''' && setfiles -r /mnt/rescue -v /mnt/rescue/etc/selinux/targeted/contexts/files/file_contexts /mnt/rescue/var/lib/waagent (a note)"
        );
        let odd = SysRoot::new("/tmp/a b/");
        assert_eq!(
            for_root(&odd, "targeted", "semanage permissive -a t"),
            "chroot '/tmp/a b' semanage permissive -N -a t"
        );
    }
}
