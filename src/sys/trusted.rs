//! Trusted path walk: open a file or directory that only root can have put there, checking
//! every step on the fd that is then used, so nothing can be swapped between check and use.
//!
//! A path is opened one component at a time from `/` with
//! `openat(dir, name, O_PATH|O_NOFOLLOW|O_CLOEXEC)` and `fstat`. Every directory passed through
//! must be owned by root and writable by neither group nor others (no exception for the sticky
//! bit, as OpenSSH's `safe_path`): otherwise someone else could rename another entry into it.
//! A symbolic link met on the way is read from its own fd (`readlinkat`) and its target walked
//! the same way (an absolute target from `/`, a relative one from the directory holding the
//! link), so no link is followed that was not checked; at most [`MAX_SYMLINKS`] links (the
//! kernel's ELOOP limit) and [`MAX_DEPTH`] levels. `..` is a real step (`openat(dir, "..")`),
//! never a lexical shortcut: the directory it leads to is checked like any other.
//!
//! The walk ends in a [`Found`]: the last object, reached but not yet judged. [`Found::into_dir`]
//! and [`Found::into_file`] judge it (type, owner, mode) and open it for use: a directory
//! `O_RDONLY|O_DIRECTORY` through its own fd, a file `O_RDONLY|O_NOFOLLOW|O_NONBLOCK` by name
//! in the checked directory, then compared with what was checked (`st_dev`/`st_ino`) and judged
//! again on the new fd (`O_NONBLOCK`: a FIFO swapped in cannot hang the open). Errors name the
//! component that failed and why, in one line, with the fix:
//! `'/etc/snapguard/hooks.d' is writable by its group (mode 0775); chmod g-w it`.

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// At most this many symbolic links in one walk (the kernel's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;

/// At most this many directory levels below `/`.
pub const MAX_DEPTH: usize = 256;

/// Why a file or directory is not trusted (owner or mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// Owned by this uid, not root.
    Owner(u32),
    /// Writable by group and/or others; the full mode (permission bits) is kept.
    Writable { mode: u32 },
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Untrusted::Owner(uid) => write!(f, "is owned by uid {uid}, not root; chown root it"),
            Untrusted::Writable { mode } => {
                let (who, fix) = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => ("its group and everyone", "go-w"),
                    (false, true) => ("everyone", "o-w"),
                    _ => ("its group", "g-w"),
                };
                write!(
                    f,
                    "is writable by {who} (mode {:04o}); chmod {fix} it",
                    mode & 0o7777
                )
            }
        }
    }
}

/// Why an object with owner `uid` and mode `mode` is not trusted, if it is not: only root may
/// own it and only the owner may write it.
pub fn untrusted(uid: u32, mode: u32) -> Option<Untrusted> {
    if uid != 0 {
        Some(Untrusted::Owner(uid))
    } else if mode & 0o022 != 0 {
        Some(Untrusted::Writable { mode })
    } else {
        None
    }
}

/// A failed trusted walk: which component, and why.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A component has the wrong owner or mode.
    #[error("'{}' {why}", path.display())]
    Untrusted { path: PathBuf, why: Untrusted },
    /// A component does not exist.
    #[error("'{}' does not exist", path.display())]
    NotFound { path: PathBuf },
    /// A component is of the wrong type (a file where a directory is needed, a FIFO, ...).
    #[error("'{}' is {what}, not {expected}", path.display())]
    WrongType {
        path: PathBuf,
        what: &'static str,
        expected: &'static str,
    },
    /// More than [`MAX_SYMLINKS`] symbolic links.
    #[error("'{}': more than {MAX_SYMLINKS} symbolic links on the way (a loop?)", path.display())]
    TooManyLinks { path: PathBuf },
    /// More than [`MAX_DEPTH`] levels.
    #[error("'{}': more than {MAX_DEPTH} directory levels", path.display())]
    TooDeep { path: PathBuf },
    /// The name now leads to another file than the one checked a moment before.
    #[error("'{}' was replaced while it was being checked", path.display())]
    Replaced { path: PathBuf },
    /// The path is relative (the caller resolves it first).
    #[error("'{}' is not an absolute path", path.display())]
    NotAbsolute { path: PathBuf },
    /// A system call failed.
    #[error("cannot {op} '{}': {}", path.display(), errno.desc())]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

impl TrustError {
    /// Whether the walk failed only because a component does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, TrustError::NotFound { .. })
    }

    /// The component the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TrustError::Untrusted { path, .. }
            | TrustError::NotFound { path }
            | TrustError::WrongType { path, .. }
            | TrustError::TooManyLinks { path }
            | TrustError::TooDeep { path }
            | TrustError::Replaced { path }
            | TrustError::NotAbsolute { path }
            | TrustError::Sys { path, .. } => path,
        }
    }
}

/// An object reached by the walk: an `O_PATH` fd, its `fstat` and its resolved path.
#[derive(Debug)]
struct Node {
    fd: OwnedFd,
    stat: FileStat,
    path: PathBuf,
}

impl Node {
    fn is_dir(&self) -> bool {
        file_type(&self.stat) == SFlag::S_IFDIR
    }

    /// The check for passing through this node: a trusted directory.
    fn check_traversable(&self) -> Result<(), TrustError> {
        if !self.is_dir() {
            return Err(TrustError::WrongType {
                path: self.path.clone(),
                what: type_name(&self.stat),
                expected: "a directory",
            });
        }
        check_owner_mode(&self.stat, &self.path)
    }
}

fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// "a regular file", "a FIFO", ... for messages.
fn type_name(stat: &FileStat) -> &'static str {
    match file_type(stat) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "of unknown type",
    }
}

fn check_owner_mode(stat: &FileStat, path: &Path) -> Result<(), TrustError> {
    match untrusted(stat.st_uid, stat.st_mode & 0o7777) {
        Some(why) => Err(TrustError::Untrusted {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// `openat(dir, name, flags|O_CLOEXEC)` as an `OwnedFd`.
fn open_at(dir: Option<BorrowedFd<'_>>, name: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let raw = openat(
        dir.map(|d| d.as_raw_fd()),
        name,
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this fd, so it is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn stat_fd(fd: &OwnedFd, path: &Path) -> Result<FileStat, TrustError> {
    fstat(fd.as_raw_fd()).map_err(|errno| TrustError::Sys {
        op: "stat",
        path: path.to_path_buf(),
        errno,
    })
}

fn open_node(
    dir: Option<BorrowedFd<'_>>,
    name: &OsStr,
    path: PathBuf,
    flags: OFlag,
) -> Result<Node, TrustError> {
    let fd = open_at(dir, name, flags).map_err(|errno| match errno {
        Errno::ENOENT => TrustError::NotFound { path: path.clone() },
        errno => TrustError::Sys {
            op: "open",
            path: path.clone(),
            errno,
        },
    })?;
    let stat = stat_fd(&fd, &path)?;
    Ok(Node { fd, stat, path })
}

fn open_root() -> Result<Node, TrustError> {
    open_node(
        None,
        OsStr::new("/"),
        PathBuf::from("/"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
}

/// Push the components of `path` onto `stack` so that the first one is popped first; returns
/// whether the path is absolute (the walk then restarts from `/`).
fn push_components(stack: &mut Vec<OsString>, path: &Path) -> bool {
    let mut absolute = false;
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir => names.push(OsString::from(".")),
            Component::ParentDir => names.push(OsString::from("..")),
            Component::Normal(n) => names.push(n.to_os_string()),
            Component::Prefix(_) => {}
        }
    }
    stack.extend(names.into_iter().rev());
    absolute
}

/// Walk `rest` from `start`: every directory passed through is checked; the last object is
/// returned unjudged, with the directory holding it when it was reached by name.
fn walk(start: Node, rest: &Path) -> Result<Found, TrustError> {
    let mut stack = Vec::new();
    let mut current = start;
    if push_components(&mut stack, rest) {
        current = open_root()?;
    }
    let mut parent: Option<(Node, OsString)> = None;
    let mut links = 0u32;
    while let Some(name) = stack.pop() {
        current.check_traversable()?;
        if name == "." {
            continue;
        }
        if name == ".." {
            if current.path == Path::new("/") {
                continue; // `/..` is `/`, as for the kernel
            }
            let path = current
                .path
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            current = open_node(
                Some(current.fd.as_fd()),
                OsStr::new(".."),
                path,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            )?;
            parent = None;
            continue;
        }
        let path = current.path.join(&name);
        let node = open_node(
            Some(current.fd.as_fd()),
            &name,
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
        )?;
        if file_type(&node.stat) == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(TrustError::TooManyLinks { path: node.path });
            }
            // Read through the link's own fd: the name may point elsewhere by now.
            let target =
                readlinkat(Some(node.fd.as_raw_fd()), "").map_err(|errno| TrustError::Sys {
                    op: "read the symbolic link",
                    path: node.path.clone(),
                    errno,
                })?;
            if target.is_empty() {
                return Err(TrustError::NotFound { path: node.path });
            }
            if push_components(&mut stack, Path::new(&target)) {
                current = open_root()?;
                parent = None;
            }
            continue;
        }
        let held = std::mem::replace(&mut current, node);
        if current.path.components().count() > MAX_DEPTH {
            return Err(TrustError::TooDeep { path: current.path });
        }
        parent = Some((held, name));
    }
    Ok(Found {
        node: current,
        parent,
    })
}

/// The end of a walk: reached through trusted directories only, not yet judged itself.
#[derive(Debug)]
pub struct Found {
    node: Node,
    /// The directory holding it and its name there, when the last step was a name.
    parent: Option<(Node, OsString)>,
}

impl Found {
    /// The resolved path (symbolic links replaced by what they point to).
    pub fn path(&self) -> &Path {
        &self.node.path
    }

    /// Whether it is a regular file.
    pub fn is_regular_file(&self) -> bool {
        file_type(&self.node.stat) == SFlag::S_IFREG
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.node.is_dir()
    }

    /// Its permission bits (e.g. to see whether it is executable).
    pub fn mode(&self) -> u32 {
        self.node.stat.st_mode & 0o7777
    }

    /// Judge it as a directory and open it `O_RDONLY|O_DIRECTORY` (through its own fd).
    pub fn into_dir(self) -> Result<TrustedDir, TrustError> {
        self.node.check_traversable()?;
        let fd = open_at(
            Some(self.node.fd.as_fd()),
            OsStr::new("."),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        )
        .map_err(|errno| TrustError::Sys {
            op: "open",
            path: self.node.path.clone(),
            errno,
        })?;
        Ok(TrustedDir {
            fd,
            path: self.node.path,
        })
    }

    /// Judge it as a regular file and open it `O_RDONLY|O_NOFOLLOW|O_NONBLOCK` by name in the
    /// checked directory; the opened file must be the one checked, and is judged again.
    pub fn into_file(self) -> Result<TrustedFile, TrustError> {
        let checked = self.node;
        if file_type(&checked.stat) != SFlag::S_IFREG {
            return Err(TrustError::WrongType {
                path: checked.path,
                what: type_name(&checked.stat),
                expected: "a regular file",
            });
        }
        check_owner_mode(&checked.stat, &checked.path)?;
        let Some((dir, name)) = self.parent else {
            // A regular file is always reached by name; this is unreachable in practice.
            return Err(TrustError::WrongType {
                path: checked.path,
                what: "reached without a directory",
                expected: "a regular file",
            });
        };
        let fd = open_at(
            Some(dir.fd.as_fd()),
            &name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        )
        .map_err(|errno| match errno {
            Errno::ENOENT | Errno::ELOOP => TrustError::Replaced {
                path: checked.path.clone(),
            },
            errno => TrustError::Sys {
                op: "open",
                path: checked.path.clone(),
                errno,
            },
        })?;
        let stat = stat_fd(&fd, &checked.path)?;
        if (stat.st_dev, stat.st_ino) != (checked.stat.st_dev, checked.stat.st_ino) {
            return Err(TrustError::Replaced { path: checked.path });
        }
        TrustedFile::from_fd(fd, checked.path)
    }
}

/// Walk `path` (absolute) from `/`.
pub fn walk_from_root(path: &Path) -> Result<Found, TrustError> {
    if !path.is_absolute() {
        return Err(TrustError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    walk(open_root()?, path)
}

/// A directory reached through trusted directories only, itself trusted, open
/// `O_RDONLY|O_DIRECTORY`.
#[derive(Debug)]
pub struct TrustedDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl TrustedDir {
    /// Walk `path` (absolute) from `/` and judge the end as a directory.
    pub fn open(path: &Path) -> Result<Self, TrustError> {
        walk_from_root(path)?.into_dir()
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names in the directory (not `.` and `..`), sorted bytewise.
    pub fn entry_names(&self) -> Result<Vec<OsString>, TrustError> {
        use std::os::unix::ffi::OsStrExt;
        let err = |errno| TrustError::Sys {
            op: "list",
            path: self.path.clone(),
            errno,
        };
        // A fresh open description, so the listing starts at the beginning every time.
        let mut dir = nix::dir::Dir::openat(
            Some(self.fd.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(err)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Walk `name` (one entry, or a relative path) from this directory: the directory is
    /// checked again as it is passed through, and symbolic links are walked as from `/`.
    pub fn lookup(&self, name: &OsStr) -> Result<Found, TrustError> {
        let start = open_node(
            Some(self.fd.as_fd()),
            OsStr::new("."),
            self.path.clone(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )?;
        walk(start, Path::new(name))
    }
}

impl AsFd for TrustedDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A regular file owned by root and writable only by root, open read-only.
#[derive(Debug)]
pub struct TrustedFile {
    fd: OwnedFd,
    path: PathBuf,
}

impl TrustedFile {
    /// Walk `path` (absolute) from `/` and judge the end as a regular file.
    pub fn open(path: &Path) -> Result<Self, TrustError> {
        walk_from_root(path)?.into_file()
    }

    /// Judge an fd that is already open (e.g. inherited from the process that walked to it):
    /// a regular file, owned by root, writable only by root. `path` is for messages.
    pub fn from_fd(fd: OwnedFd, path: PathBuf) -> Result<Self, TrustError> {
        let stat = stat_fd(&fd, &path)?;
        if file_type(&stat) != SFlag::S_IFREG {
            return Err(TrustError::WrongType {
                path,
                what: type_name(&stat),
                expected: "a regular file",
            });
        }
        check_owner_mode(&stat, &path)?;
        Ok(TrustedFile { fd, path })
    }

    /// The resolved path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for TrustedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_mode_rules() {
        assert_eq!(untrusted(0, 0o755), None);
        assert_eq!(untrusted(0, 0o4755), None);
        assert_eq!(untrusted(0, 0o700), None);
        assert_eq!(untrusted(1000, 0o755), Some(Untrusted::Owner(1000)));
        assert_eq!(
            untrusted(0, 0o1777),
            Some(Untrusted::Writable { mode: 0o1777 }),
            "no sticky-bit exception"
        );
        assert_eq!(
            untrusted(0, 0o775),
            Some(Untrusted::Writable { mode: 0o775 })
        );
    }

    #[test]
    fn messages_name_the_component_and_the_fix() {
        let e = TrustError::Untrusted {
            path: PathBuf::from("/etc/snapguard/hooks.d"),
            why: Untrusted::Writable { mode: 0o775 },
        };
        assert_eq!(
            e.to_string(),
            "'/etc/snapguard/hooks.d' is writable by its group (mode 0775); chmod g-w it"
        );
        let why = |mode| Untrusted::Writable { mode }.to_string();
        assert_eq!(
            why(0o757),
            "is writable by everyone (mode 0757); chmod o-w it"
        );
        assert_eq!(
            why(0o1777),
            "is writable by its group and everyone (mode 1777); chmod go-w it"
        );
        assert_eq!(
            Untrusted::Owner(1000).to_string(),
            "is owned by uid 1000, not root; chown root it"
        );
        let e = TrustError::Sys {
            op: "open",
            path: PathBuf::from("/x"),
            errno: Errno::EACCES,
        };
        assert_eq!(e.to_string(), "cannot open '/x': Permission denied");
    }

    #[test]
    fn components_pop_in_order_and_absolute_targets_restart() {
        let mut stack = vec![OsString::from("rest")];
        assert!(!push_components(&mut stack, Path::new("a/../b/./c")));
        let popped: Vec<_> = std::iter::from_fn(|| stack.pop()).collect();
        assert_eq!(popped, ["a", "..", "b", "c", "rest"]);
        let mut stack = Vec::new();
        assert!(push_components(&mut stack, Path::new("/usr//bin/")));
        assert_eq!(stack, ["bin", "usr"]);
    }

    #[test]
    fn relative_paths_are_refused() {
        let e = walk_from_root(Path::new("etc/passwd")).unwrap_err();
        assert!(matches!(e, TrustError::NotAbsolute { .. }), "{e}");
    }

    // The system's own files are root-owned and not writable by others on any sane machine,
    // so these hold for any user; privileged cases (own trees of root-owned files) live in
    // tests/freeze_hooks.rs.
    #[test]
    fn system_files_are_trusted_through_symlinks() {
        let sh = TrustedFile::open(Path::new("/bin/sh")).expect("/bin/sh is trusted");
        assert!(sh.path().is_absolute());
        let meta = std::fs::metadata("/bin/sh").expect("stat");
        let opened = fstat(sh.as_fd().as_raw_fd()).expect("fstat");
        use std::os::unix::fs::MetadataExt;
        assert_eq!((opened.st_dev, opened.st_ino), (meta.dev(), meta.ino()));
        let etc = TrustedDir::open(Path::new("/usr/../etc/")).expect("/etc is trusted");
        assert_eq!(etc.path(), Path::new("/etc"));
        assert!(
            etc.entry_names()
                .expect("list")
                .iter()
                .any(|n| n == "passwd")
        );
        assert!(
            etc.lookup(OsStr::new("passwd"))
                .expect("lookup")
                .is_regular_file()
        );
    }

    #[test]
    fn tmp_and_missing_paths_are_refused_with_the_component() {
        let e = TrustedDir::open(Path::new("/tmp")).unwrap_err();
        assert_eq!(e.path(), Path::new("/tmp"));
        assert!(e.to_string().contains("chmod go-w it"), "{e}");
        let e = TrustedDir::open(Path::new("/nonexistent-snapguard/x")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.path(), Path::new("/nonexistent-snapguard"));
        let e = TrustedFile::open(Path::new("/etc")).unwrap_err();
        assert!(matches!(e, TrustError::WrongType { .. }), "{e}");
        let e = TrustedDir::open(Path::new("/etc/passwd/x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'/etc/passwd' is a regular file, not a directory"
        );
    }
}
