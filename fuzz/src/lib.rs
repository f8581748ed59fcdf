//! Shared driver of the fuzz targets: the input becomes a disk image that `snapguard scan`
//! reads end to end (identify, partition tables, VHD footer, the filesystem's assessor).

use snapguard::root::SysRoot;
use snapguard::scan::{self, ScanOptions};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// One fuzz process's image file (in /dev/shm when it exists: no disk writes per input).
pub struct Image {
    path: PathBuf,
    root: SysRoot,
}

impl Image {
    pub fn new(target: &str) -> Self {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("snapguard-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fuzz temp dir");
        // An empty system root: no mount table, so the image is an offline target.
        let root = dir.join("root");
        std::fs::create_dir_all(&root).expect("fuzz root");
        Image {
            path: dir.join("image"),
            root: SysRoot::new(root),
        }
    }

    /// Scan `data` as an image of at least `min_size` bytes (the rest reads as zeros,
    /// sparse): filesystems whose structures lie far apart are fuzzed by their first bytes.
    pub fn scan(&self, data: &[u8], min_size: u64) {
        {
            let mut f = File::create(&self.path).expect("create image");
            f.write_all(data).expect("write image");
            let len = (data.len() as u64).max(min_size);
            f.set_len(len).expect("size image");
            let _ = f.write_at(&[], len);
        }
        let options = ScanOptions {
            targets: vec![self.path.clone()],
            snapshot: None,
            now: 1_700_000_000,
            skip_fstypes: Vec::new(),
            skip_mountpoints: Vec::new(),
        };
        let _ = scan::run(&options, &self.root);
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
