//! Fuzz target `xfs`: arbitrary bytes scanned as an image (at least 536870912 bytes, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("xfs");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 536870912);
    });
}
