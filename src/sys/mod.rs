//! The only kernel-facing layer and the only module allowed to use `unsafe`.
//!
//! Errors here are typed and keep the errno and the path; callers above add context.
#![allow(unsafe_code)]

pub mod blockdev;
pub mod freeze;
pub mod interrupt;
mod ioctl;
pub mod journal;
pub mod localtime;
pub mod loopdev;
pub mod pathfd;
pub mod procdir;
pub mod process;
pub mod spawn;
pub mod statx;
pub mod trusted;
pub mod xattr;

pub use blockdev::{DeviceKind, HoleMap, SourceFile};

use std::path::PathBuf;

/// A failed system call, with what was attempted and on which path.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// An I/O error from the kernel.
    #[error("{op} '{path}': {}", describe_io(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An ioctl that failed with an errno.
    #[error("{op} on '{path}': {errno}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// The OS error text without Rust's "(os error N)" suffix, with a hint where the errno
/// alone misleads (EPERM for root means a device cgroup or security module said no).
pub fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            format!("{text} (denied by a device cgroup, container or security module)")
        }
        _ => text,
    }
}
