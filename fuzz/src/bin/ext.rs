//! Fuzz target `ext`: arbitrary bytes scanned as an image (at least 0 bytes, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("ext");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 0);
    });
}
