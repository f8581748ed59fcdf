//! `SysRoot`: where `/proc`, `/sys`, `/etc`, `/var` and `/run` are read from.
//!
//! Every kernel or configuration path the program reads goes through here, so that `--root DIR`
//! can point the whole program at a fixture tree (tests) or at an offline disk mounted
//! elsewhere. Device nodes named on the command line are not re-rooted: they are real.

use std::path::{Path, PathBuf};

/// The mount table of the calling process's mount namespace, relative to the root.
pub const MOUNTINFO: &str = "proc/self/mountinfo";
/// PID 1's mount table: the host's, also from a unit with `PrivateTmp=`/`ProtectSystem=`
/// (whose own namespace adds bind mounts and read-only flags the host does not have).
pub const PID1_MOUNTINFO: &str = "proc/1/mountinfo";
/// Per-filesystem ext4 attributes (`errors_count`, `first_error_*`, ...).
pub const SYS_FS_EXT4: &str = "sys/fs/ext4";
/// `major:minor` → device symlinks, used to find a device's kernel name.
pub const SYS_DEV_BLOCK: &str = "sys/dev/block";
/// Device nodes (`/dev/loop0`): real paths, never re-rooted (see the module doc); only opened
/// when the root is the host.
pub const DEV_DIR: &str = "/dev";
/// Default configuration file: the host's, never re-rooted under `--root`.
pub const DEFAULT_CONFIG: &str = "/etc/snapguard/snapguard.toml";
/// While 1, RCU grace periods are expedited (FIFREEZE waits for three of them).
pub const SYS_RCU_EXPEDITED: &str = "sys/kernel/rcu_expedited";
/// Block devices by kernel name (`loopN/loop/backing_file`, `dm-0/slaves/`); whole disks only.
pub const SYS_BLOCK: &str = "sys/block";
/// Every block device by kernel name, partitions (`loop0p1`) included: how dm/md `slaves/`
/// names are looked up.
pub const SYS_CLASS_BLOCK: &str = "sys/class/block";
/// Where `freeze` keeps its per-run record of what it froze (tmpfs, never a frozen filesystem).
pub const RUN_DIR: &str = "run/snapguard";
/// Freeze/thaw hooks, run in name order with `freeze`, in reverse with `thaw`.
pub const HOOKS_DIR: &str = "etc/snapguard/hooks.d";
/// Azure VM backup's configuration; `[SnapshotThread] MountsToSkip` is honoured.
pub const AZURE_VMBACKUP_CONF: &str = "etc/azure/vmbackup.conf";

// --- `snapguard selinux` inputs (selinux.md §1.2, §7, §8) --------------------------------
/// Process directories (`<pid>/cmdline`, `<pid>/attr/current`).
pub const PROC: &str = "proc";
/// Filesystems the kernel knows (`nodev\tselinuxfs` when SELinux is built in).
pub const PROC_FILESYSTEMS: &str = "proc/filesystems";
/// The kernel command line (`selinux=`, `enforcing=`, `security=`, `lsm=`, `autorelabel=`).
pub const PROC_CMDLINE: &str = "proc/cmdline";
/// Comma-separated list of active LSMs (needs securityfs).
pub const SYS_KERNEL_LSM: &str = "sys/kernel/security/lsm";
/// selinuxfs mount point (`enforce`, `booleans/`).
pub const SYS_FS_SELINUX: &str = "sys/fs/selinux";
/// `/etc/selinux`: `config`, `semanage.conf`, one directory per policy type.
pub const ETC_SELINUX: &str = "etc/selinux";
/// libselinux's configuration (`SELINUX=`, `SELINUXTYPE=`).
pub const SELINUX_CONFIG: &str = "etc/selinux/config";
/// libsemanage's configuration (`store-root=`).
pub const SEMANAGE_CONF: &str = "etc/selinux/semanage.conf";
/// Present while a full relabel is pending for the next boot.
pub const AUTORELABEL: &str = ".autorelabel";
/// auditd's configuration (`log_file=`).
pub const AUDITD_CONF: &str = "etc/audit/auditd.conf";
/// auditd's default log when auditd.conf does not say.
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/audit/audit.log";
/// Kernel and syslog files where AVC and AppArmor records land without auditd.
pub const KERNEL_LOGS: [&str; 3] = ["/var/log/kern.log", "/var/log/messages", "/var/log/syslog"];
/// The Azure Linux agent's state directory (extensions hard-code it).
pub const WAAGENT_LIB_DIR: &str = "/var/lib/waagent";
/// The Azure Linux agent's configuration (`Lib.Dir`).
pub const WAAGENT_CONF: &str = "etc/waagent.conf";
/// The Azure Linux agent's executable.
pub const WAAGENT_BIN: &str = "/usr/sbin/waagent";
/// Where systemd units live, to tell `waagent.service` (RHEL) from `walinuxagent.service`.
pub const SYSTEMD_UNIT_DIRS: [&str; 3] = [
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];
/// The static mount table, for an offline root (no mountinfo).
pub const ETC_FSTAB: &str = "etc/fstab";
/// fapolicyd's configuration directory (`rules.d/`, `fapolicyd.rules`, `trust.d/`).
pub const ETC_FAPOLICYD: &str = "etc/fapolicyd";
/// fapolicyd's runtime directory, present while it runs.
pub const RUN_FAPOLICYD: &str = "run/fapolicyd";
/// `Y` when AppArmor is enabled.
pub const APPARMOR_ENABLED: &str = "sys/module/apparmor/parameters/enabled";
/// Loaded AppArmor profiles, one `name (mode)` a line.
pub const APPARMOR_PROFILES: &str = "sys/kernel/security/apparmor/profiles";
/// AppArmor profile sources.
pub const ETC_APPARMOR_D: &str = "etc/apparmor.d";

// --- `snapguard repair` inputs (repair.md §1, §3) ----------------------------------------
/// This process's `/proc/PID` (its target names our pid; its `ns/mnt` our mount namespace).
pub const PROC_SELF: &str = "proc/self";
/// Active swap areas (`Filename Type Size Used Priority`, paths `\ooo`-escaped).
pub const PROC_SWAPS: &str = "proc/swaps";
/// btrfs filesystems by fsid, each with `devices/<kernel name>` for its member devices.
pub const SYS_FS_BTRFS: &str = "sys/fs/btrfs";
/// Present exactly when systemd is PID 1: the `sd_booted()` test.
pub const SYSTEMD_BOOTED: &str = "run/systemd/system";
/// Where a `.automount` unit for a mount point can live, in systemd's search order.
pub const SYSTEMD_AUTOMOUNT_DIRS: [&str; 5] = [
    "run/systemd/generator",
    "etc/systemd/system",
    "run/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

// --- environment checks (`envcheck`, Azure's VM-backup troubleshooting guide) ------------
/// Where the Azure Linux agent's executable can be installed.
pub const WAAGENT_BINS: [&str; 2] = ["usr/sbin/waagent", "usr/bin/waagent"];
/// Directories holding Python packages (`azurelinuxagent/`, `WALinuxAgent-<ver>*.egg-info`):
/// each `usr/lib*/python3*/{site,dist}-packages` below these is searched.
pub const PYTHON_LIB_DIRS: [&str; 4] = ["usr/lib", "usr/lib64", "usr/local/lib", "usr/local/lib64"];
/// The DMI chassis asset tag; Azure VMs carry [`AZURE_ASSET_TAG`].
pub const DMI_CHASSIS_ASSET_TAG: &str = "sys/class/dmi/id/chassis_asset_tag";
/// The chassis asset tag of every Azure VM.
pub const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";
/// The VMSnapshot (VM backup) extension's pre/post-script configuration.
pub const AZURE_SCRIPT_PLUGIN_CONF: &str = "etc/azure/VMSnapshotScriptPluginConfig.json";
/// Pressure stall information (`cpu`, `memory`, `io`), Linux 4.20 and later.
pub const PROC_PRESSURE: &str = "proc/pressure";
/// Memory totals (`MemTotal`, `MemAvailable`).
pub const PROC_MEMINFO: &str = "proc/meminfo";
/// The IPv4 routing table of the caller's network namespace (the default route names the
/// primary interface).
pub const PROC_NET_ROUTE: &str = "proc/net/route";
/// PID 1's IPv4 routing table: the host's network namespace, also from a unit with
/// `PrivateNetwork=yes` (whose own table has no default route).
pub const PROC_1_NET_ROUTE: &str = "proc/1/net/route";
/// Network interfaces by name (`<name>/ifindex`).
pub const SYS_CLASS_NET: &str = "sys/class/net";
/// systemd-networkd `.network` files, in systemd's search order.
pub const NETWORKD_DIRS: [&str; 4] = [
    "etc/systemd/network",
    "run/systemd/network",
    "usr/lib/systemd/network",
    "lib/systemd/network",
];
/// NetworkManager keyfiles (`*.nmconnection`).
pub const NM_CONNECTION_DIRS: [&str; 2] = [
    "etc/NetworkManager/system-connections",
    "run/NetworkManager/system-connections",
];
/// ifupdown's configuration, and its `source` directory.
pub const IFUPDOWN_INTERFACES: &str = "etc/network/interfaces";
/// ifupdown's drop-in directory.
pub const IFUPDOWN_INTERFACES_D: &str = "etc/network/interfaces.d";
/// netplan's configuration (`*.yaml`), in netplan's order (later names win).
pub const NETPLAN_DIRS: [&str; 3] = ["lib/netplan", "etc/netplan", "run/netplan"];
/// cloud-init's configuration drop-ins (a `network:` key holds its network config).
pub const CLOUD_CFG_D: &str = "etc/cloud/cloud.cfg.d";
/// RHEL's interface scripts (`ifcfg-<name>`, `BOOTPROTO=`).
pub const IFCFG_DIR: &str = "etc/sysconfig/network-scripts";
/// DHCP lease directories: dhclient (Debian, RHEL), NetworkManager.
pub const DHCP_LEASE_DIRS: [&str; 4] = [
    "var/lib/dhcp",
    "var/lib/dhclient",
    "var/lib/NetworkManager",
    "var/lib/dhcpcd",
];
/// systemd-networkd's leases, one file per interface index.
pub const NETWORKD_LEASES: &str = "run/systemd/netif/leases";
/// The distribution's identity (`ID=`, `ID_LIKE=`), to name its package manager in remedies.
pub const ETC_OS_RELEASE: &str = "etc/os-release";
/// The VMSnapshot (VM backup) extension's handler directories in `/var/lib/waagent` start so.
pub const VMSNAPSHOT_HANDLER_PREFIX: &str = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux-";
/// The directory whose mount must allow exec (extensions run from `/var/lib/waagent`).
pub const VAR_DIR: &str = "/var";

/// The directory that stands in for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    base: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        SysRoot {
            base: PathBuf::from("/"),
        }
    }
}

impl SysRoot {
    /// A root at `base` (`/` for the running system).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        SysRoot { base: base.into() }
    }

    /// The directory standing in for `/`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this is the real root of the running system.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Resolve a root-relative path such as [`MOUNTINFO`].
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        let relative = relative.as_ref();
        let relative = relative.strip_prefix("/").unwrap_or(relative);
        self.base.join(relative)
    }

    /// `/sys/fs/ext4/<kernel_name>/<attribute>` under this root.
    pub fn ext4_attribute(&self, kernel_name: &str, attribute: &str) -> PathBuf {
        self.path(SYS_FS_EXT4).join(kernel_name).join(attribute)
    }

    /// `/proc/<pid>/<entry>` under this root.
    pub fn proc_entry(&self, pid: u32, entry: &str) -> PathBuf {
        self.path(PROC).join(pid.to_string()).join(entry)
    }

    /// A path of the system being checked (`/var/lib/waagent`, a `store-root` from
    /// semanage.conf) resolved under this root.
    pub fn host(&self, absolute: &str) -> PathBuf {
        self.path(absolute)
    }

    /// `/sys/dev/block/<major>:<minor>` under this root.
    pub fn dev_block(&self, major: u32, minor: u32) -> PathBuf {
        self.path(SYS_DEV_BLOCK).join(format!("{major}:{minor}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_under_the_base() {
        let root = SysRoot::new("/tmp/fixture");
        assert_eq!(
            root.path(MOUNTINFO),
            Path::new("/tmp/fixture/proc/self/mountinfo")
        );
        assert_eq!(root.path("/etc/x"), Path::new("/tmp/fixture/etc/x"));
        assert_eq!(
            root.ext4_attribute("loop3", "errors_count"),
            Path::new("/tmp/fixture/sys/fs/ext4/loop3/errors_count")
        );
        assert!(SysRoot::default().is_host());
    }
}
