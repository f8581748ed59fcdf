//! Fuzz target `f2fs`: arbitrary bytes scanned as an image (at least 67108864 bytes, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("f2fs");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 67108864);
    });
}
