//! The checkers: which command checks, replays, backs up and repairs each filesystem, and
//! what its exit code means (repair.md §4.1: e2fsck, xfs_repair, fsck.fat and btrfs check
//! differ).
