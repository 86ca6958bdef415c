//! SBS, the Hat binary serialization: a writer and a reader of its
//! primitive forms, from which message types build their codecs.
//!
//! Encoding (checked byte for byte against the Python `hat-sbs` package):
//!
//! * Integer: big-endian two's complement cut into 7-bit groups, one group
//!   per byte, the high bit set on the last byte only, as few groups as keep
//!   the sign (`0` is `80`, `-1` is `ff`, `64` is `00 c0`).
//! * Boolean: one byte, `00` or `01`. Float: 8 bytes, IEEE 754 big-endian.
//! * Bytes and String: the length as Integer, then the bytes (UTF-8 for String).
//! * Array: the element count as Integer, then the elements.
//! * Record: the fields in schema order. None: nothing.
//! * Choice: the alternative's zero-based index as Integer, then its value.
//!   Optional(T) is the Choice (`none`: None, `value`: T).
//!
//! ```
//! use hat_eventer_client::sbs::{Reader, Writer};
//!
//! let mut writer = Writer::new();
//! writer.integer(64);
//! writer.string("hat");
//! assert_eq!(writer.as_bytes(), b"\x00\xc0\x83hat");
//!
//! let mut reader = Reader::new(writer.as_bytes());
//! assert_eq!(reader.integer().unwrap(), 64);
//! assert_eq!(reader.string().unwrap(), "hat");
//! reader.finish().unwrap();
//! ```

mod body;
mod reader;
mod value;
mod writer;

pub use body::{Body, Parts};
pub use reader::{ChunkSource, Reader};
pub use value::{decode, decode_body, encode, Sbs};
pub use writer::Writer;

/// A decoding failure: where in the input, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SBS decoding failed at byte {offset}: {problem}")]
pub struct DecodeError {
    /// Offset of the first byte of the offending item.
    pub offset: usize,
    /// What was expected and what was found.
    pub problem: String,
}

/// The longest Integer this codec decodes: 18 groups, 126 bits.
const MAX_INTEGER_GROUPS: usize = 18;

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn encoded_integer(value: i128) -> String {
        let mut w = Writer::new();
        w.integer(value);
        hex(w.as_bytes())
    }

    #[test]
    fn the_offset_is_where_the_next_value_starts_and_errors_name_it() {
        let mut w = Writer::new();
        w.integer(64); // two bytes
        w.string("ab"); // one length byte and two bytes
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes[..bytes.len() - 1]);
        assert_eq!(r.offset(), 0);
        assert_eq!(r.integer().unwrap(), 64);
        assert_eq!(r.offset(), 2);
        let err = r.string().unwrap_err();
        assert_eq!(err.offset, 3, "the string's bytes start after its length");
    }

    #[test]
    fn integers_match_hat_sbs() {
        // Hex as emitted by hat-sbs 0.7.6 (DESIGN.md section 5).
        for (value, expected) in [
            (0, "80"),
            (1, "81"),
            (-1, "ff"),
            (63, "bf"),
            (64, "00c0"),
            (128, "0180"),
            (-65, "7fbf"),
        ] {
            assert_eq!(encoded_integer(value), expected, "{value}");
        }
    }

    #[test]
    fn integers_round_trip_at_every_width() {
        let (max, min) = ((1i128 << 125) - 1, -(1i128 << 125));
        let mut values = vec![0i128, 1, -1, i64::MAX as i128, i64::MIN as i128, max, min];
        for bits in 1..125 {
            let edge = 1i128 << bits;
            values.extend([edge, edge - 1, -edge, -edge - 1]);
        }
        for value in values {
            let mut w = Writer::new();
            w.integer(value);
            let mut r = Reader::new(w.as_bytes());
            assert_eq!(r.integer_i128().unwrap(), value, "{value}");
            r.finish().unwrap();
        }
    }

    #[test]
    fn the_widest_integers_take_19_groups_and_encoded_bytes_go_in_as_they_are() {
        // 128 bits of two's complement in 7-bit groups.
        for value in [i128::MAX, i128::MIN] {
            let mut w = Writer::new();
            w.integer(value);
            assert_eq!(w.as_bytes().len(), 19, "{value}");
        }
        let mut w = Writer::new();
        w.integer(1);
        w.encoded(&[0x81, 0x82]);
        assert_eq!(hex(w.as_bytes()), "818182");
    }

    #[test]
    fn booleans_floats_and_none_match_hat_sbs_and_round_trip() {
        // DESIGN.md section 5: one byte; 8 bytes IEEE 754 big-endian; nothing.
        assert_eq!(hex(&encode(&true)), "01");
        assert_eq!(hex(&encode(&false)), "00");
        assert_eq!(hex(&encode(&1.5f64)), "3ff8000000000000");
        assert_eq!(encode(&()), Vec::<u8>::new());
        assert!(decode::<bool>(&[1]).unwrap());
        assert!(!decode::<bool>(&[0]).unwrap());
        assert_eq!(decode::<f64>(&encode(&-2.25f64)).unwrap(), -2.25);
        decode::<()>(&[]).unwrap();
        // None reads nothing: what follows it is left to the next value.
        let mut r = Reader::new(&[0x81]);
        <() as Sbs>::read(&mut r).unwrap();
        assert_eq!(r.offset(), 0);
    }

    #[test]
    fn optional_matches_hat_sbs() {
        let mut w = Writer::new();
        w.optional(None::<&i128>, |w, v| w.integer(*v));
        w.optional(Some(&5), |w, v| w.integer(*v));
        assert_eq!(hex(w.as_bytes()), "808185");
        let mut r = Reader::new(w.as_bytes());
        assert_eq!(r.optional(|r| r.integer()).unwrap(), None);
        assert_eq!(r.optional(|r| r.integer()).unwrap(), Some(5));
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        let mut w = Writer::new();
        w.integer(1 << 62);
        let err = Reader::new(w.as_bytes()).bytes().unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.problem.contains("out of range"), "{err}");
        assert!(Reader::new(&[0x85, b'a']).string().is_err());
        assert!(Reader::new(&[0x00; 40]).integer_i128().is_err());
        assert!(Reader::new(&[0x02]).boolean().is_err());
        assert!(Reader::new(&[0x82]).choice(2).is_err());
    }

    /// `bytes` as a body cut into chunks of `size`.
    fn chunked(bytes: &[u8], size: usize) -> Body {
        let mut body = Body::new();
        for chunk in bytes.chunks(size) {
            body.push(chunk.to_vec());
        }
        body
    }

    #[test]
    fn a_body_reads_like_a_slice_across_any_chunk_boundaries() {
        let mut w = Writer::new();
        w.integer(-65);
        w.string("hello, chunks");
        w.boolean(true);
        w.float(1.5);
        w.bytes(&[9; 40]);
        let bytes = w.into_bytes();
        for size in 1..bytes.len() {
            let mut r = Reader::of_body(chunked(&bytes, size));
            assert_eq!(r.integer().unwrap(), -65, "chunks of {size}");
            assert_eq!(r.string().unwrap(), "hello, chunks", "chunks of {size}");
            assert!(r.boolean().unwrap());
            assert_eq!(r.float().unwrap(), 1.5);
            assert_eq!(r.offset(), bytes.len() - 41);
            assert_eq!(&*r.bytes().unwrap(), &[9; 40][..]);
            r.finish().unwrap();
        }
    }

    #[test]
    fn a_body_frees_each_chunk_once_read_past() {
        let mut w = Writer::new();
        w.bytes(&[1; 100]);
        w.bytes(&[2; 100]);
        let bytes = w.into_bytes();
        let mut r = Reader::of_body(chunked(&bytes, 10));
        let before = r.chunks.len();
        r.bytes().unwrap();
        assert!(
            r.chunks.len() <= before - 10,
            "{} of {before} chunks kept",
            r.chunks.len()
        );
        r.skip_bytes().unwrap();
        assert!(r.chunks.is_empty());
        r.finish().unwrap();
    }

    #[test]
    fn a_chunk_that_is_exactly_one_item_is_handed_over_not_copied() {
        let payload = vec![7u8; 1000];
        let at = payload.as_ptr();
        let mut w = Writer::new();
        w.integer(1000);
        let mut body = Body::from(w.into_bytes());
        body.push(payload);
        let mut r = Reader::of_body(body);
        let bytes = r.bytes().unwrap();
        assert!(matches!(bytes, Cow::Owned(_)));
        assert_eq!(bytes.as_ptr(), at, "the chunk was copied");
        assert_eq!((r.offset(), r.remaining()), (1002, 0));
        r.finish().unwrap();
    }

    #[test]
    fn a_slice_hands_out_borrowed_items() {
        let mut r = Reader::new(&[0x82, 5, 6, 0x81, b'a']);
        assert!(matches!(r.bytes().unwrap(), Cow::Borrowed([5, 6])));
        assert!(matches!(r.string().unwrap(), Cow::Borrowed("a")));
        r.finish().unwrap();
    }

    #[test]
    fn a_body_is_its_chunks_in_order() {
        assert!(Body::new().is_empty());
        let mut body = Body::from(vec![1, 2]);
        assert!(!body.is_empty());
        body.push(Vec::new());
        body.push(vec![3]);
        assert_eq!((body.len(), body.chunks().count()), (3, 2));
        assert_eq!(body.to_vec(), [1, 2, 3]);
        assert_eq!(body.clone().into_vec(), [1, 2, 3]);
        assert_eq!(Body::from(vec![4, 5]).into_vec(), [4, 5]);
        assert_ne!(body, Body::from(vec![1, 2, 4]));
        assert_eq!(
            format!("{:?}", Body::from(vec![0xab])),
            "Body(1 bytes: [ab])"
        );
    }

    #[test]
    fn the_rest_of_a_body_keeps_its_chunks() {
        let mut body = Body::from(vec![0x81]);
        let tail = vec![5u8; 64];
        let at = tail.as_ptr();
        body.push(tail);
        let mut r = Reader::of_body(body);
        assert_eq!(r.integer().unwrap(), 1);
        let rest = r.into_rest();
        assert_eq!(rest.len(), 64);
        assert_eq!(rest.chunks().next().unwrap().as_ptr(), at);
        assert_eq!(rest, Body::from(vec![5u8; 64]));
        let mut r = Reader::new(&[0x81, 1, 2]);
        r.integer().unwrap();
        assert_eq!(r.into_rest().into_vec(), [1, 2]);
        let mut r = Reader::of_body(Body::from(vec![0x81, 3, 4]));
        r.integer().unwrap();
        assert_eq!(r.into_rest().into_vec(), [3, 4]);
    }

    #[test]
    fn cut_and_bad_input_in_a_body_is_refused_where_it_starts() {
        let mut r = Reader::of_body(chunked(&[0x85, b'a', b'b'], 1));
        let err = r.string().unwrap_err();
        assert_eq!(
            (err.offset, err.problem.as_str()),
            (0, "Bytes length 5 out of range 0..=3")
        );
        let mut r = Reader::of_body(chunked(&[0x82, 0xff, 0xfe], 1));
        assert!(r.string().unwrap_err().problem.contains("not UTF-8"));
        let mut r = Reader::of_body(Body::new());
        assert!(r.boolean().is_err());
        assert!(r.skip_bytes().is_err());
    }

    #[test]
    fn parts_encode_as_a_writer_does_and_borrow_large_slices() {
        let large = vec![3u8; 64 << 10];
        let small = [4u8; 10];
        let mut parts = Parts::new();
        parts.write(|w| w.integer(64));
        parts.bytes_shared(&large);
        parts.bytes_shared(&small);
        parts.write(|w| w.boolean(true));
        let mut w = Writer::new();
        w.integer(64);
        w.bytes(&large);
        w.bytes(&small);
        w.boolean(true);
        assert_eq!(parts.to_vec(), w.as_bytes());
        assert_eq!(parts.len(), w.as_bytes().len());
        assert!(
            parts.pieces().any(|piece| piece.as_ptr() == large.as_ptr()),
            "the large slice was copied"
        );
        assert!(
            !parts.pieces().any(|piece| piece.as_ptr() == small.as_ptr()),
            "a small slice is copied, not sent as a piece of its own"
        );
        assert!(Parts::new().is_empty());
        assert!(!parts.is_empty());
    }

    /// Hands out `input` in chunks of `size`, counting the bytes handed.
    struct Chunked {
        input: Vec<u8>,
        size: usize,
        handed: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl ChunkSource for Chunked {
        fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
            let at = self.handed.get();
            if at >= self.input.len() {
                return Err("nothing left".into());
            }
            let end = (at + self.size).min(self.input.len());
            self.handed.set(end);
            Ok(self.input[at..end].to_vec())
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new();
        w.integer(-123_456_789);
        w.string("hat");
        w.bytes(&[9; 300]);
        w.boolean(true);
        w.float(2.5);
        w.string("end");
        w.into_bytes()
    }

    fn read_sample(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        assert_eq!(r.integer()?, -123_456_789);
        assert_eq!(r.string()?, "hat");
        assert_eq!(&*r.bytes()?, &[9; 300][..]);
        assert!(r.boolean()?);
        assert_eq!(r.float()?, 2.5);
        assert_eq!(r.string()?, "end");
        r.finish()
    }

    #[test]
    fn a_streaming_reader_decodes_across_any_chunking_and_fetches_only_what_it_reads() {
        let input = sample();
        for size in [1, 2, 3, 7, 64, 1000] {
            for held in [0, 1, 5] {
                let handed = std::rc::Rc::new(std::cell::Cell::new(held));
                let source = Chunked {
                    input: input.clone(),
                    size,
                    handed: handed.clone(),
                };
                let mut r = Reader::streaming(
                    Body::from(input[..held].to_vec()),
                    input.len() - held,
                    source,
                );
                assert_eq!(r.remaining(), input.len());
                assert_eq!(r.integer().unwrap(), -123_456_789);
                // The integer is 4 bytes: no chunk beyond the one holding its end.
                assert!(
                    handed.get() < 4 + size.max(held),
                    "size {size}: fetched {}",
                    handed.get()
                );
                read_sample_rest(&mut r)
                    .unwrap_or_else(|e| panic!("size {size}, held {held}: {e}"));
            }
        }
    }

    fn read_sample_rest(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        assert_eq!(r.string()?, "hat");
        assert_eq!(&*r.bytes()?, &[9; 300][..]);
        assert!(r.boolean()?);
        assert_eq!(r.float()?, 2.5);
        r.skip_bytes()?;
        r.finish()
    }

    #[test]
    fn a_streaming_reader_matches_a_whole_one() {
        let input = sample();
        read_sample(&mut Reader::new(&input)).unwrap();
        let source = Chunked {
            input: input.clone(),
            size: 5,
            handed: Default::default(),
        };
        read_sample(&mut Reader::streaming(Body::new(), input.len(), source)).unwrap();
    }

    struct Failing;

    impl ChunkSource for Failing {
        fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
            Err("the peer went away".into())
        }
    }

    struct TooMuch;

    impl ChunkSource for TooMuch {
        fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
            Ok(vec![0x80; 10])
        }
    }

    #[test]
    fn a_failing_or_overrunning_source_is_an_error_at_the_offset_reached() {
        let mut w = Writer::new();
        w.string("abcdef");
        let input = w.into_bytes();
        let mut r = Reader::streaming(Body::from(input[..3].to_vec()), 4, Failing);
        let err = r.string().unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(err.problem.contains("the peer went away"), "{err}");

        let mut r = Reader::streaming(Body::new(), 4, TooMuch);
        let err = r.integer().unwrap_err();
        assert!(err.problem.contains("10 bytes with 4 bytes owed"), "{err}");
    }

    /// Hands out its chunks in order.
    struct Chunks(Vec<Vec<u8>>);

    impl ChunkSource for Chunks {
        fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
            Ok(self.0.remove(0))
        }
    }

    #[test]
    fn a_source_that_overruns_over_several_chunks_is_an_error() {
        // "abc" is 4 bytes; the second chunk brings 3 where 1 is owed.
        let source = Chunks(vec![vec![0x83, b'a', b'b'], vec![b'c', b'd', b'e']]);
        let mut r = Reader::streaming(Body::new(), 4, source);
        let err = r.string().unwrap_err();
        assert!(err.problem.contains("3 bytes with 1 bytes owed"), "{err}");
    }
}
