//! ext2/3/4 feature-flag names exactly as e2fsprogs 1.47 prints them, the feature sets e2fsck 1.47 supports, and the `s_*_error_errcode` names.

use std::borrow::Cow;

/// Which of the three superblock feature words a bit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSet {
    /// `s_feature_compat` (superblock offset 0x5C).
    Compat,
    /// `s_feature_incompat` (superblock offset 0x60).
    Incompat,
    /// `s_feature_ro_compat` (superblock offset 0x64).
    RoCompat,
}

impl FeatureSet {
    /// The letter e2p uses when it names an unknown bit (`FEATURE_C7`, `FEATURE_I31`, `FEATURE_R2`).
    pub fn letter(self) -> char {
        match self {
            FeatureSet::Compat => 'C',
            FeatureSet::Incompat => 'I',
            FeatureSet::RoCompat => 'R',
        }
    }

    fn names(self) -> &'static [Option<&'static str>; 32] {
        match self {
            FeatureSet::Compat => &COMPAT_NAMES,
            FeatureSet::Incompat => &INCOMPAT_NAMES,
            FeatureSet::RoCompat => &RO_COMPAT_NAMES,
        }
    }
}

/// Names of the `s_feature_compat` bits, indexed by bit number, as `e2p_feature2string` spells
/// them (the first name in e2p's table wins; `None` prints as `FEATURE_C<bit>`).
pub const COMPAT_NAMES: [Option<&str>; 32] = {
    let mut names = [None; 32];
    names[0] = Some("dir_prealloc");
    names[1] = Some("imagic_inodes");
    names[2] = Some("has_journal");
    names[3] = Some("ext_attr");
    names[4] = Some("resize_inode");
    names[5] = Some("dir_index");
    names[6] = Some("lazy_bg");
    names[8] = Some("snapshot_bitmap");
    names[9] = Some("sparse_super2");
    names[10] = Some("fast_commit");
    names[11] = Some("stable_inodes");
    names[12] = Some("orphan_file");
    names
};

/// Names of the `s_feature_incompat` bits, indexed by bit number (`None` prints as `FEATURE_I<bit>`).
pub const INCOMPAT_NAMES: [Option<&str>; 32] = {
    let mut names = [None; 32];
    names[0] = Some("compression");
    names[1] = Some("filetype");
    names[2] = Some("needs_recovery");
    names[3] = Some("journal_dev");
    names[4] = Some("meta_bg");
    names[6] = Some("extent");
    names[7] = Some("64bit");
    names[8] = Some("mmp");
    names[9] = Some("flex_bg");
    names[10] = Some("ea_inode");
    names[12] = Some("dirdata");
    names[13] = Some("metadata_csum_seed");
    names[14] = Some("large_dir");
    names[15] = Some("inline_data");
    names[16] = Some("encrypt");
    names[17] = Some("casefold");
    names
};

/// Names of the `s_feature_ro_compat` bits, indexed by bit number (`None` prints as `FEATURE_R<bit>`).
pub const RO_COMPAT_NAMES: [Option<&str>; 32] = {
    let mut names = [None; 32];
    names[0] = Some("sparse_super");
    names[1] = Some("large_file");
    names[3] = Some("huge_file");
    names[4] = Some("uninit_bg");
    names[5] = Some("dir_nlink");
    names[6] = Some("extra_isize");
    names[8] = Some("quota");
    names[9] = Some("bigalloc");
    names[10] = Some("metadata_csum");
    names[11] = Some("replica");
    names[12] = Some("read-only");
    names[13] = Some("project");
    names[14] = Some("shared_blocks");
    names[15] = Some("verity");
    names[16] = Some("orphan_present");
    names
};

/// `EXT2_LIB_FEATURE_COMPAT_SUPP` of e2fsprogs 1.47: dir_prealloc, imagic_inodes, has_journal,
/// ext_attr, resize_inode, dir_index, sparse_super2, fast_commit, stable_inodes, orphan_file.
pub const E2FSCK_SUPPORTED_COMPAT: u32 = 0x0000_1E3F;

/// `EXT2_LIB_FEATURE_INCOMPAT_SUPP` of e2fsprogs 1.47 (built with MMP): filetype,
/// needs_recovery, journal_dev, meta_bg, extent, 64bit, mmp, flex_bg, ea_inode,
/// metadata_csum_seed, large_dir, inline_data, encrypt, casefold.
pub const E2FSCK_SUPPORTED_INCOMPAT: u32 = 0x0003_E7DE;

/// `EXT2_LIB_FEATURE_RO_COMPAT_SUPP` of e2fsprogs 1.47: sparse_super, large_file, huge_file,
/// uninit_bg, dir_nlink, extra_isize, quota, bigalloc, metadata_csum, read-only, project,
/// shared_blocks, verity, orphan_present.
pub const E2FSCK_SUPPORTED_RO_COMPAT: u32 = 0x0001_F77B;

/// The name e2p prints for one feature bit (`bit` is 0..=31; larger values are taken modulo 32).
/// Known names are borrowed: a scan lists a dozen features per filesystem, and copying each
/// name into its own allocation was a tenth of a many-image scan's CPU time.
pub fn feature_name(set: FeatureSet, bit: u32) -> Cow<'static, str> {
    let bit = bit % 32;
    let known = usize::try_from(bit)
        .ok()
        .and_then(|index| set.names().get(index).copied().flatten());
    match known {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("FEATURE_{}{}", set.letter(), bit)),
    }
}

/// The names of every bit set in `mask`, lowest bit first.
pub fn names_in(set: FeatureSet, mask: u32) -> impl Iterator<Item = Cow<'static, str>> {
    // Only the set bits, lowest first (clear the lowest each step).
    std::iter::successors(Some(mask), |m| Some(m & m.wrapping_sub(1)))
        .take_while(|&m| m != 0)
        .map(move |m| feature_name(set, m.trailing_zeros()))
}

/// The "Filesystem features:" list in dumpe2fs order: compat bits, then incompat, then
/// ro_compat, each lowest bit first. Empty when no bit is set (dumpe2fs prints "(none)").
pub fn feature_names(compat: u32, incompat: u32, ro_compat: u32) -> Vec<Cow<'static, str>> {
    names_in(FeatureSet::Compat, compat)
        .chain(names_in(FeatureSet::Incompat, incompat))
        .chain(names_in(FeatureSet::RoCompat, ro_compat))
        .collect()
}

/// The names of the bits e2fsck 1.47 does not support (it refuses to check such a
/// filesystem: "has unsupported feature(s):"), in dumpe2fs order.
pub fn unsupported_feature_names(
    compat: u32,
    incompat: u32,
    ro_compat: u32,
) -> Vec<Cow<'static, str>> {
    feature_names(
        compat & !E2FSCK_SUPPORTED_COMPAT,
        incompat & !E2FSCK_SUPPORTED_INCOMPAT,
        ro_compat & !E2FSCK_SUPPORTED_RO_COMPAT,
    )
}

/// `EXT4_ERR_*` names for `s_first_error_errcode` (0x27A) / `s_last_error_errcode` (0x27B),
/// indexed by code; index 0 is unused.
const ERRCODE_NAMES: [&str; 18] = [
    "",
    "UNKNOWN",
    "EIO",
    "ENOMEM",
    "EFSBADCRC",
    "EFSCORRUPTED",
    "ENOSPC",
    "ENOKEY",
    "EROFS",
    "EFBIG",
    "EEXIST",
    "ERANGE",
    "EOVERFLOW",
    "EBUSY",
    "ENOTDIR",
    "ENOTEMPTY",
    "ESHUTDOWN",
    "EFAULT",
];

/// The error-code name as `e2p_errcode2str` spells it: 1 `UNKNOWN` … 17 `EFAULT`, anything
/// above `UNKNOWN_ERRCODE_<n>`. Code 0 means "no code recorded" and is the empty string, as in
/// e2p (dumpe2fs then omits the "err:" line).
pub fn errcode_name(code: u8) -> String {
    match ERRCODE_NAMES.get(usize::from(code)) {
        Some(name) => (*name).to_owned(),
        None => format!("UNKNOWN_ERRCODE_{code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_bits_are_named_like_e2p() {
        assert_eq!(feature_name(FeatureSet::Compat, 7), "FEATURE_C7");
        assert_eq!(feature_name(FeatureSet::Incompat, 31), "FEATURE_I31");
        assert_eq!(feature_name(FeatureSet::RoCompat, 2), "FEATURE_R2");
        assert_eq!(feature_name(FeatureSet::RoCompat, 4), "uninit_bg");
        assert_eq!(feature_name(FeatureSet::Incompat, 6), "extent");
    }

    #[test]
    fn fresh_mkfs_ext4_feature_line() {
        let names = feature_names(0x3c, 0x2c2, 0x46b);
        assert_eq!(
            names.join(" "),
            "has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg \
             sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
        );
        assert!(feature_names(0, 0, 0).is_empty());
    }

    #[test]
    fn supported_sets() {
        assert!(unsupported_feature_names(0x3c, 0x2c6, 0x46b).is_empty());
        assert!(unsupported_feature_names(0x1000, 0x100, 0x10000).is_empty());
        assert_eq!(
            unsupported_feature_names(0x40 | 0x100, 0x1 | 0x1000, 0x800 | 0x4),
            vec![
                "lazy_bg",
                "snapshot_bitmap",
                "compression",
                "dirdata",
                "FEATURE_R2",
                "replica"
            ]
        );
    }

    #[test]
    fn errcodes() {
        assert_eq!(errcode_name(1), "UNKNOWN");
        assert_eq!(errcode_name(5), "EFSCORRUPTED");
        assert_eq!(errcode_name(17), "EFAULT");
        assert_eq!(errcode_name(0), "");
        assert_eq!(errcode_name(18), "UNKNOWN_ERRCODE_18");
        assert_eq!(errcode_name(255), "UNKNOWN_ERRCODE_255");
    }
}
