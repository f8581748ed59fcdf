//! Fuzz target `fat`: arbitrary bytes scanned as an image (at least 32 MiB, zero-filled).

fn main() {
    let image = snapguard_fuzz::Image::new("fat");
    afl::fuzz!(|data: &[u8]| {
        image.scan(data, 32 << 20);
    });
}
