//! snapguard: a Linux snapshot-consistency toolkit.
//!
//! Before a VM backup it answers: will this machine give a consistent snapshot, and if not,
//! why and how to fix it. See `ARCHITECTURE.md` for the module map and its invariants.

/// Command-line interface: clap definitions and per-subcommand glue.
pub mod cli;
/// The configuration file.
pub mod config;
/// Environment checks from Azure's VM-backup troubleshooting guide (agent, extension config,
/// pressure, duplicate mounts, DHCP, `/var` noexec, `--probe`), read through `SysRoot`.
pub mod envcheck;
/// `freeze-test`, `freeze -- CMD`, `thaw`: probe, order, guardian, session, hooks, rescue.
pub mod freeze;
/// Pure on-disk parsers: bytes in, structs out, no I/O.
pub mod fs;
/// Pure mountinfo parser and the mount table keyed by superblock.
pub mod mount;
/// `snapguard preflight`: every read-only check at once, what blocks a backup, exit profiles.
pub mod preflight;
/// `snapguard repair`: umount → fsck → remount with a plan, consent and a state record.
pub mod repair;
/// The report model and the only code that prints (human, JSON).
pub mod report;
/// `SysRoot`: where /proc, /sys, /etc, /var and /run are read.
pub mod root;
/// `snapguard scan`: unclean-filesystem detection.
pub mod scan;
/// `snapguard selinux`: is /var/lib/waagent excluded from SELinux enforcement.
pub mod selinux;
/// Quoting for a POSIX shell (remedies and rescue commands are pasted as printed).
pub mod shell;
/// The only kernel-facing layer and the only place `unsafe` is allowed.
pub mod sys;
