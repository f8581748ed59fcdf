//! Everything that uses a filesystem besides processes: its mounts in every mount namespace,
//! mounts below them, swap files and loop devices on it, block-layer holders, fstab and
//! systemd units (repair.md §1, §3).
