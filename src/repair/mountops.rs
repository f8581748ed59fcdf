//! Unmount (never lazy, never forced), fence (O_EXCL), and restore a filesystem's mounts with
//! their recorded source, type, options, subvolume and propagation, then verify.
