//! Fuzz target `partition`: arbitrary bytes scanned as an image (at least 4 MiB, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("partition");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 4 << 20);
    });
}
