//! Deterministic model bytes. Tests and benchmarks compare stored bytes
//! against these generators, so each one's output is fixed (the unit tests
//! below pin it):
//!
//! - [`test_bytes`]: the tests' payloads (xorshift);
//! - [`make`], [`fill_at`], [`matches`](fn@matches) and [`seed`]: the `aimm-backend-bench`
//!   pattern, cheap, distinct per model and per round, and addressable by
//!   position so that a 1 GiB model can be checked in pieces without a
//!   second copy (SplitMix64);
//! - [`round_bytes`]: the models of one `event-bench` round.

/// A small deterministic generator of test payloads (xorshift from `seed`),
/// `len` bytes long; tests compare bytes directly against it.
pub fn test_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

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

/// Model `index` of `event-bench` round `round`: distinct bytes, `size`
/// long.
pub fn round_bytes(round: usize, index: usize, size: usize) -> Vec<u8> {
    let seed = ((round as u64) << 32 | index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..size)
        .map(|j| (seed.rotate_left((j % 64) as u32) as u8) ^ (j as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    //! The expected values were taken from the generators before they
    //! moved here (`tests/common/lib.rs`, `aimm-backend-bench`'s
    //! `payload.rs` and `event_bench.rs`).

    use super::*;

    /// FNV-1a, to pin long outputs in one number.
    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn test_bytes_is_unchanged() {
        assert_eq!(
            test_bytes(1, 16),
            [11, 2, 229, 54, 161, 78, 214, 26, 176, 73, 184, 86, 173, 214, 63, 252]
        );
        assert_eq!(test_bytes(0, 5), [64, 12, 110, 85, 144]);
        assert_eq!(fnv(&test_bytes(7, 70_000)), 0xc291_f6de_b841_3e58);
        assert!(test_bytes(3, 0).is_empty());
    }

    #[test]
    fn the_bench_pattern_is_unchanged() {
        assert_eq!(
            make(21, 7),
            [
                60, 171, 22, 201, 58, 19, 132, 197, 117, 133, 39, 18, 15, 187, 231, 133, 131, 229,
                3, 246, 174
            ]
        );
        assert_eq!(fnv(&make((1 << 20) + 5, 3)), 0x0aa8_39a3_64aa_e02d);
        assert_eq!(seed(2, 5, true), 0x201_0000_0005);
    }

    #[test]
    fn the_bench_pattern_is_addressable_by_position() {
        let whole = make((1 << 21) + 13, 9);
        let mut piece = vec![0u8; 1000];
        fill_at(&mut piece, 9, 4096);
        assert_eq!(piece, whole[4096..5096]);
        assert!(matches(&whole, 9));
        assert!(!matches(&whole, 10));
        let mut changed = whole.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(!matches(&changed, 9));
        assert!(matches(&[], 9));
    }

    #[test]
    fn round_bytes_is_unchanged() {
        assert_eq!(
            round_bytes(1, 2, 16),
            [42, 84, 168, 86, 175, 82, 168, 90, 179, 126, 228, 214, 183, 122, 224, 211]
        );
        assert_eq!(fnv(&round_bytes(3, 999, 65536)), 0x72a2_45a1_5d5e_db25);
    }
}
