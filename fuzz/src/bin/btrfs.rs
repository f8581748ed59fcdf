//! Fuzz target `btrfs`: arbitrary bytes scanned as an image (at least 268435456 bytes, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("btrfs");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 268435456);
    });
}
