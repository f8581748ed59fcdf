//! Fuzz target `partition`: arbitrary bytes scanned as an image (at least 0 bytes, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("partition");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 0);
    });
}
