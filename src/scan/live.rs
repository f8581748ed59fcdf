//! Live state of a mounted ext4 from `/sys/fs/ext4/<dev>/`, which is ahead of the disk.

use crate::report::LiveErrors;
use crate::root::SysRoot;
use std::fs;

/// The kernel name (`sda2`, `loop3`, `dm-0`) of block device `major:minor`, from the
/// `/sys/dev/block/M:m` symlink.
pub fn kernel_name(root: &SysRoot, major: u32, minor: u32) -> Option<String> {
    let link = fs::read_link(root.dev_block(major, minor)).ok()?;
    link.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Read the error counters of the ext4 filesystem on `kernel_name`, if the kernel exposes
/// them (ext4 mounted, sysfs present).
pub fn ext4_errors(root: &SysRoot, kernel_name: &str) -> Option<LiveErrors> {
    let read = |attr: &str| fs::read_to_string(root.ext4_attribute(kernel_name, attr)).ok();
    let number = |attr: &str| {
        read(attr)
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let text = |attr: &str| read(attr).map(|s| s.trim().to_string()).unwrap_or_default();
    let errors_count = read("errors_count")?.trim().parse::<u64>().ok()?;
    Some(LiveErrors {
        errors_count,
        first_error_time: number("first_error_time"),
        first_error_func: text("first_error_func"),
        first_error_line: number("first_error_line"),
        last_error_time: number("last_error_time"),
        last_error_func: text("last_error_func"),
        last_error_line: number("last_error_line"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_from_a_fixture_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let attrs = root.path("sys/fs/ext4/loop7");
        fs::create_dir_all(&attrs).unwrap();
        for (name, value) in [
            ("errors_count", "2\n"),
            ("first_error_time", "1700000000\n"),
            ("first_error_func", "trigger_test_error\n"),
            ("first_error_line", "129\n"),
            ("last_error_func", "ext4_lookup\n"),
        ] {
            fs::write(attrs.join(name), value).unwrap();
        }
        let live = ext4_errors(&root, "loop7").unwrap();
        assert_eq!(live.errors_count, 2);
        assert_eq!(live.first_error_func, "trigger_test_error");
        assert_eq!(live.first_error_line, 129);
        assert_eq!(live.last_error_func, "ext4_lookup");
        assert_eq!(live.last_error_time, 0);
        assert!(ext4_errors(&root, "loop8").is_none());
    }
}
