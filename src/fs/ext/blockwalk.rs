//! Walks an inode's blocks in logical order the way libext2fs `ext2fs_block_iterate3()`
//! does with `BLOCK_FLAG_HOLE`, stopping at the first hole or out-of-range block.
//!
//! e2fsck uses exactly this walk to decide whether the journal inode is usable
//! (`e2fsck_get_journal` + `process_journal_block`): the journal must map its whole size
//! contiguously to blocks inside the filesystem, indirect and index blocks included.
//! Pure: blocks are read through a callback.

use super::bytes::{le_u16, le_u32};
use super::journal::{fetch_block, verify_extent_header};

/// Extent-tree entries and headers are 12 bytes.
const ENTRY: usize = 12;
/// `EXT_INIT_MAX_LEN`: lengths above it mark uninitialized extents.
const EXT_INIT_MAX_LEN: u16 = 32768;

/// The valid physical block range `[first_data_block, blocks_count)`.
#[derive(Debug, Clone, Copy)]
pub struct BlockRange {
    /// `s_first_data_block`.
    pub first: u64,
    /// `s_blocks_count`: one past the last block.
    pub end: u64,
}

impl BlockRange {
    fn contains(&self, block: u64) -> bool {
        block != 0 && block >= self.first && block < self.end
    }
}

/// Result of a walk: how far the inode maps contiguously and where logical block 0 is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Walk {
    /// `last_block + 1`: one past the last logical block visited before the walk stopped
    /// (block maps stop at the first hole; extent trees simply skip holes, as libext2fs).
    pub mapped: u64,
    /// Physical block of logical block 0, if it was visited.
    pub first_physical: Option<u64>,
}

/// Walk `i_block` until `wanted` logical blocks have been seen, the map ends, or a hole,
/// out-of-range block or unreadable metadata block stops it (as `BLOCK_ABORT` does).
pub fn walk(
    i_block: &[u8; 60],
    extents: bool,
    block_size: u64,
    range: BlockRange,
    wanted: u64,
    read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
) -> Walk {
    let mut state = State {
        walk: Walk::default(),
        wanted,
        range,
        block_size,
        stopped: false,
    };
    if extents {
        state.extent_node(i_block, None, read_block, 0);
    } else {
        state.block_map(i_block, read_block);
    }
    state.walk
}

struct State {
    walk: Walk,
    wanted: u64,
    range: BlockRange,
    block_size: u64,
    stopped: bool,
}

impl State {
    /// Visit data block `logical` → `physical`; false stops the walk.
    fn data(&mut self, logical: u64, physical: u64) -> bool {
        if self.stopped || !self.range.contains(physical) {
            self.stopped = true;
            return false;
        }
        if logical == 0 {
            self.walk.first_physical = Some(physical);
        }
        self.walk.mapped = self.walk.mapped.max(logical.saturating_add(1));
        if self.walk.mapped >= self.wanted {
            self.stopped = true;
        }
        !self.stopped
    }

    /// Visit the `len` blocks of one extent at once (the same result as [`State::data`]
    /// on each block in turn, without the per-block loop: journals are thousands of
    /// blocks long); false stops the walk.
    fn extent(&mut self, logical: u64, physical: u64, len: u64) -> bool {
        if self.stopped {
            return false;
        }
        if len == 0 {
            return true;
        }
        // The blocks in range are a prefix of the extent: the range check only fails at
        // its start (block 0 or below the first data block) or from some index on.
        let valid = if !self.range.contains(physical) {
            0
        } else {
            len.min(self.range.end.saturating_sub(physical))
        };
        // The per-block walk stops at the first block that brings `mapped` to `wanted`.
        let until_wanted = self.wanted.saturating_sub(logical).max(1);
        let taken = valid.min(until_wanted);
        if taken > 0 {
            if logical == 0 {
                self.walk.first_physical = Some(physical);
            }
            self.walk.mapped = self.walk.mapped.max(logical.saturating_add(taken));
            if self.walk.mapped >= self.wanted {
                self.stopped = true;
                return false;
            }
        }
        if valid < len {
            self.stopped = true;
            return false;
        }
        true
    }

    /// Visit a metadata block (indirect or index); false stops the walk.
    fn meta(&mut self, physical: u64) -> bool {
        if !self.range.contains(physical) {
            self.stopped = true;
        }
        !self.stopped
    }

    fn read(
        &mut self,
        block: u64,
        read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        match fetch_block(read_block, block, self.block_size, "block map") {
            Ok(data) if data.len() as u64 == self.block_size => Some(data),
            _ => {
                self.stopped = true;
                None
            }
        }
    }

    fn block_map(
        &mut self,
        i_block: &[u8; 60],
        read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
    ) {
        let pointer = |bytes: &[u8], index: usize| u64::from(le_u32(bytes, index * 4).unwrap_or(0));
        for index in 0..12 {
            if !self.data(index as u64, pointer(i_block, index)) {
                return;
            }
        }
        for (slot, level) in [(12usize, 1u32), (13, 2), (14, 3)] {
            if !self.indirect(pointer(i_block, slot), level, read_block) {
                return;
            }
        }
    }

    /// An indirect block of `level` (1 = single): itself, then its children in order.
    fn indirect(
        &mut self,
        block: u64,
        level: u32,
        read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
    ) -> bool {
        if !self.meta(block) {
            return false;
        }
        let Some(data) = self.read(block, read_block) else {
            return false;
        };
        let per_block = data.len() / 4;
        for index in 0..per_block {
            let child = u64::from(le_u32(&data, index * 4).unwrap_or(0));
            let more = if level == 1 {
                let logical = self.walk.mapped;
                self.data(logical, child)
            } else {
                self.indirect(child, level - 1, read_block)
            };
            if !more {
                return false;
            }
        }
        true
    }

    fn extent_node(
        &mut self,
        node: &[u8],
        expected_depth: Option<u16>,
        read_block: &mut dyn FnMut(u64) -> std::io::Result<Vec<u8>>,
        recursion: u32,
    ) -> bool {
        let Ok(header) = verify_extent_header(node, expected_depth) else {
            self.stopped = true;
            return false;
        };
        if recursion > 5 {
            self.stopped = true;
            return false;
        }
        for index in 0..header.entries {
            let offset = ENTRY * (index + 1);
            let first = u64::from(le_u32(node, offset).unwrap_or(0));
            if header.depth == 0 {
                let raw_len = le_u16(node, offset + 4).unwrap_or(0);
                let len = if raw_len > EXT_INIT_MAX_LEN {
                    raw_len - EXT_INIT_MAX_LEN
                } else {
                    raw_len
                };
                let start = (u64::from(le_u16(node, offset + 6).unwrap_or(0)) << 32)
                    | u64::from(le_u32(node, offset + 8).unwrap_or(0));
                if !self.extent(first, start, u64::from(len)) {
                    return false;
                }
            } else {
                let child = u64::from(le_u32(node, offset + 4).unwrap_or(0))
                    | (u64::from(le_u16(node, offset + 8).unwrap_or(0)) << 32);
                if !self.meta(child) {
                    return false;
                }
                let Some(data) = self.read(child, read_block) else {
                    return false;
                };
                if !self.extent_node(&data, Some(header.depth - 1), read_block, recursion + 1) {
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i_block_from(words: &[u32]) -> [u8; 60] {
        let mut out = [0u8; 60];
        for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    #[test]
    fn block_map_stops_at_the_first_hole_and_out_of_range_block() {
        let range = BlockRange {
            first: 1,
            end: 1000,
        };
        let mut no_reads =
            |_b: u64| -> std::io::Result<Vec<u8>> { Err(std::io::Error::other("no reads")) };
        let direct: Vec<u32> = (100..112).collect();
        let w = walk(
            &i_block_from(&direct),
            false,
            1024,
            range,
            12,
            &mut no_reads,
        );
        assert_eq!(
            w,
            Walk {
                mapped: 12,
                first_physical: Some(100)
            }
        );
        let mut holey = direct.clone();
        holey[5] = 0;
        assert_eq!(
            walk(&i_block_from(&holey), false, 1024, range, 12, &mut no_reads).mapped,
            5
        );
        let mut outside = direct.clone();
        outside[3] = 5000;
        assert_eq!(
            walk(
                &i_block_from(&outside),
                false,
                1024,
                range,
                12,
                &mut no_reads
            )
            .mapped,
            3
        );
    }

    #[test]
    fn indirect_blocks_are_read_and_checked() {
        let range = BlockRange {
            first: 1,
            end: 100_000,
        };
        let mut words: Vec<u32> = (100..112).collect();
        words.push(500); // single indirect block
        let mut reads = |b: u64| -> std::io::Result<Vec<u8>> {
            assert_eq!(b, 500);
            let mut block = vec![0u8; 1024];
            for (i, chunk) in block.chunks_exact_mut(4).enumerate().take(20) {
                chunk.copy_from_slice(&(1000 + i as u32).to_le_bytes());
            }
            Ok(block)
        };
        let w = walk(&i_block_from(&words), false, 1024, range, 1000, &mut reads);
        assert_eq!(w.mapped, 32);
        words[12] = 200_000;
        let w = walk(&i_block_from(&words), false, 1024, range, 1000, &mut reads);
        assert_eq!(w.mapped, 12);
    }

    #[test]
    fn extents_in_the_inode() {
        let range = BlockRange {
            first: 0,
            end: 1 << 20,
        };
        let mut i_block = [0u8; 60];
        i_block[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
        i_block[2..4].copy_from_slice(&1u16.to_le_bytes()); // entries
        i_block[4..6].copy_from_slice(&4u16.to_le_bytes()); // max
        i_block[12..16].copy_from_slice(&0u32.to_le_bytes()); // ee_block
        i_block[16..18].copy_from_slice(&1024u16.to_le_bytes()); // ee_len
        i_block[20..24].copy_from_slice(&16385u32.to_le_bytes()); // ee_start_lo
        let mut no_reads =
            |_b: u64| -> std::io::Result<Vec<u8>> { Err(std::io::Error::other("no reads")) };
        let w = walk(&i_block, true, 4096, range, 4096, &mut no_reads);
        assert_eq!(
            w,
            Walk {
                mapped: 1024,
                first_physical: Some(16385)
            }
        );
    }

    /// The per-block definition the extent fast path must match.
    fn walk_block_by_block(extents: &[(u32, u16, u32)], range: BlockRange, wanted: u64) -> Walk {
        let mut state = State {
            walk: Walk::default(),
            wanted,
            range,
            block_size: 4096,
            stopped: false,
        };
        'outer: for &(first, len, start) in extents {
            for i in 0..u64::from(len) {
                if !state.data(u64::from(first) + i, u64::from(start) + i) {
                    break 'outer;
                }
            }
        }
        state.walk
    }

    proptest::proptest! {
        #[test]
        fn extent_fast_path_equals_block_by_block(
            extents in proptest::collection::vec((0u32..5000, 0u16..3000, 0u32..20_000), 1..4),
            first in 0u64..10,
            end in 0u64..25_000,
            wanted in 1u64..8000,
        ) {
            let range = BlockRange { first, end };
            let mut i_block = [0u8; 60];
            i_block[0..2].copy_from_slice(&0xF30Au16.to_le_bytes());
            i_block[2..4].copy_from_slice(&(extents.len() as u16).to_le_bytes());
            i_block[4..6].copy_from_slice(&4u16.to_le_bytes());
            for (n, &(lblk, len, start)) in extents.iter().enumerate() {
                let at = 12 * (n + 1);
                i_block[at..at + 4].copy_from_slice(&lblk.to_le_bytes());
                i_block[at + 4..at + 6].copy_from_slice(&len.to_le_bytes());
                i_block[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
            }
            let mut no_reads = |_b: u64| -> std::io::Result<Vec<u8>> { Err(std::io::Error::other("no reads")) };
            let fast = walk(&i_block, true, 4096, range, wanted, &mut no_reads);
            proptest::prop_assert_eq!(fast, walk_block_by_block(&extents, range, wanted));
        }

        #[test]
        fn never_panics(i_block in proptest::array::uniform32(proptest::num::u8::ANY), extents: bool, fill: u8, wanted in 0u64..5000) {
            let mut full = [0u8; 60];
            full[..32].copy_from_slice(&i_block);
            let mut reads = |_b: u64| -> std::io::Result<Vec<u8>> { Ok(vec![fill; 1024]) };
            let _ = walk(&full, extents, 1024, BlockRange { first: 0, end: u64::MAX }, wanted, &mut reads);
        }
    }
}
