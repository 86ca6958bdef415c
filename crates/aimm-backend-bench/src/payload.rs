//! Model bytes for the benchmarks: cheap, distinct per model and per round,
//! and addressable by position so that a 1 GiB model can be checked in pieces
//! without a second copy.

/// One 64-bit word of the pattern for `seed` at word index `index`
/// (SplitMix64 of the pair).
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the pattern for `seed`, as if `buf` started at byte
/// `offset` of the whole model (`offset` must be a multiple of 8).
pub fn fill_at(buf: &mut [u8], seed: u64, offset: u64) {
    debug_assert_eq!(offset % 8, 0);
    let first = offset / 8;
    let words = (buf.len() / 8) as u64;
    let mut chunks = buf.chunks_exact_mut(8);
    for (i, chunk) in (&mut chunks).enumerate() {
        chunk.copy_from_slice(&word(seed, first + i as u64).to_le_bytes());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let tail = word(seed, first + words).to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&tail[..n]);
    }
}

/// A fresh buffer of `size` pattern bytes for `seed`.
pub fn make(size: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    fill_at(&mut buf, seed, 0);
    buf
}

/// The seed of model `index` in round `round` (`update` picks the second
/// payload, written by the update phase).
pub fn seed(round: usize, index: usize, update: bool) -> u64 {
    ((round as u64) << 40) ^ ((update as u64) << 32) ^ index as u64
}

/// Whether `bytes` is exactly the pattern for `seed`, checked 1 MiB at a time.
pub fn matches(bytes: &[u8], seed: u64) -> bool {
    const PIECE: usize = 1 << 20;
    let mut expected = vec![0u8; PIECE.min(bytes.len())];
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        let want = &mut expected[..piece.len()];
        fill_at(want, seed, (i * PIECE) as u64);
        if want != piece {
            return false;
        }
    }
    true
}
