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

use std::borrow::Cow;
use std::collections::VecDeque;

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

/// Builds an SBS encoding.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// An Integer. Values of up to 126 bits, `-2^125..2^125` (far more than
    /// the Hat protocols use), are read back by [`Reader::integer_i128`].
    pub fn integer(&mut self, value: i128) {
        let groups = integer_groups(value);
        for group in (0..groups).rev() {
            let bits = ((value >> (7 * group)) & 0x7f) as u8;
            self.buf.push(if group == 0 { bits | 0x80 } else { bits });
        }
    }

    /// Appends `bytes`, which already are an encoding.
    pub fn encoded(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A Boolean.
    pub fn boolean(&mut self, value: bool) {
        self.buf.push(u8::from(value));
    }

    /// A Float.
    pub fn float(&mut self, value: f64) {
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// Bytes.
    pub fn bytes(&mut self, value: &[u8]) {
        self.integer(value.len() as i128);
        self.buf.extend_from_slice(value);
    }

    /// A String.
    pub fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// The element count that starts an Array.
    pub fn array_len(&mut self, len: usize) {
        self.integer(len as i128);
    }

    /// The alternative index that starts a Choice (then write its value).
    pub fn choice(&mut self, index: usize) {
        self.integer(index as i128);
    }

    /// An Optional: absent, or present and written by `write`.
    pub fn optional<T>(&mut self, value: Option<&T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.choice(0),
            Some(value) => {
                self.choice(1);
                write(self, value);
            }
        }
    }
}

/// How many 7-bit groups `value` needs in two's complement.
fn integer_groups(value: i128) -> u32 {
    let mut groups = 1;
    while groups < 19 {
        let bits = 7 * groups;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if (min..=max).contains(&value) {
            return groups;
        }
        groups += 1;
    }
    groups
}

/// Bytes received in chunks, as they arrived: a frame body, or the part of
/// it a message's `data` holds. Reading it with [`Reader::of_body`] frees
/// each chunk as soon as the reader has passed it, so decoding a body into
/// owned values needs no more memory than the body itself.
#[derive(Default, Clone)]
pub struct Body {
    chunks: VecDeque<Vec<u8>>,
    len: usize,
}

impl Body {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk`.
    pub fn push(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// Its bytes in one buffer (a copy unless it is one chunk).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.chunks.len() == 1 {
            return self.chunks.pop_front().unwrap_or_default();
        }
        self.to_vec()
    }

    /// A copy of its bytes in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            all.extend_from_slice(chunk);
        }
        all
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        let mut body = Body::new();
        body.push(bytes);
        body
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.chunks().flatten().eq(other.chunks().flatten())
    }
}

impl Eq for Body {}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 64;
        let head: Vec<u8> = self.chunks().flatten().take(SHOWN).copied().collect();
        write!(f, "Body({} bytes: {:02x?}", self.len, head)?;
        if self.len > SHOWN {
            write!(f, "...")?;
        }
        write!(f, ")")
    }
}

/// An encoding in pieces: what a [`Writer`] wrote, with large slices
/// borrowed between them, so that a large payload is sent as it lies in
/// memory instead of being copied into the message.
#[derive(Debug, Default)]
pub struct Parts<'a> {
    done: Vec<Cow<'a, [u8]>>,
    writer: Writer,
}

impl<'a> Parts<'a> {
    /// Nothing written yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `value` as Bytes: borrowed if large, else copied.
    pub fn bytes_shared(&mut self, value: &'a [u8]) {
        const SHARED_FROM: usize = 64 << 10;
        if value.len() < SHARED_FROM {
            self.writer.bytes(value);
            return;
        }
        self.writer.integer(value.len() as i128);
        let written = std::mem::take(&mut self.writer).into_bytes();
        self.done.push(Cow::Owned(written));
        self.done.push(Cow::Borrowed(value));
    }

    /// Appends what `write` writes, copied.
    pub fn write(&mut self, write: impl FnOnce(&mut Writer)) {
        write(&mut self.writer);
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.done
            .iter()
            .map(|piece| piece.as_ref())
            .chain([self.writer.as_bytes()])
            .filter(|piece| !piece.is_empty())
    }

    /// The encoding's length.
    pub fn len(&self) -> usize {
        self.pieces().map(<[u8]>::len).sum()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        self.pieces().flatten().copied().collect()
    }
}

/// Reads an SBS encoding, checking every length against what is left, so
/// that no input makes it allocate more than the input's own size.
///
/// It reads a borrowed slice ([`Reader::new`]), handing out borrowed
/// Bytes and Strings, or an owned [`Body`] ([`Reader::of_body`]), handing
/// out copies and freeing each chunk once read past.
pub struct Reader<'a> {
    chunks: VecDeque<Cow<'a, [u8]>>,
    /// Position in the front chunk.
    pos: usize,
    /// Bytes read so far.
    offset: usize,
    /// Bytes left: those held, and those the source still owes.
    remaining: usize,
    /// Bytes the source still owes.
    owed: usize,
    source: Option<Box<dyn ChunkSource + 'a>>,
}

/// Where a [`Reader::streaming`] reader gets the bytes of an input still
/// arriving, one chunk at a time, as it needs them.
pub trait ChunkSource {
    /// The next chunk of the input (not empty), or why there is none: the
    /// reader asks only while bytes are owed.
    fn next_chunk(&mut self) -> Result<Vec<u8>, String>;
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("offset", &self.offset)
            .field("remaining", &self.remaining)
            .field("owed", &self.owed)
            .finish_non_exhaustive()
    }
}

impl<'a> Reader<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        let mut chunks = VecDeque::new();
        if !data.is_empty() {
            chunks.push_back(Cow::Borrowed(data));
        }
        Reader {
            chunks,
            pos: 0,
            offset: 0,
            remaining: data.len(),
            owed: 0,
            source: None,
        }
    }

    /// A reader of `body`, which it consumes as it goes.
    pub fn of_body(body: Body) -> Reader<'static> {
        Reader {
            remaining: body.len,
            chunks: body.chunks.into_iter().map(Cow::Owned).collect(),
            pos: 0,
            offset: 0,
            owed: 0,
            source: None,
        }
    }

    /// A reader of `body` followed by `owed` more bytes, which it takes
    /// from `source` only as it reaches them, freeing each chunk once read
    /// past: an input of any length is decoded holding little more than
    /// the values it yields. A chunk that would overrun `owed`, or a source
    /// that fails, is a [`DecodeError`] at the offset reached.
    pub fn streaming(body: Body, owed: usize, source: impl ChunkSource + 'a) -> Reader<'a> {
        Reader {
            remaining: body.len + owed,
            chunks: body.chunks.into_iter().map(Cow::Owned).collect(),
            pos: 0,
            offset: 0,
            owed,
            source: Some(Box::new(source)),
        }
    }

    /// What is left unread of the bytes it holds, without copying the
    /// chunks the reader owns (bytes a source still owes are not fetched).
    pub fn into_rest(mut self) -> Body {
        let mut rest = Body::new();
        if let Some(front) = self.chunks.pop_front() {
            rest.push(match front {
                // Moved down in place: a second buffer would cost a piece.
                Cow::Owned(mut chunk) => {
                    chunk.drain(..self.pos);
                    chunk
                }
                Cow::Borrowed(slice) => slice[self.pos..].to_vec(),
            });
        }
        for chunk in self.chunks {
            rest.push(chunk.into_owned());
        }
        rest
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The offset of the next byte.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// An error at `offset`.
    pub fn error(&self, offset: usize, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            problem: problem.into(),
        }
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.error(
                self.offset,
                format!("{} bytes left after the value", self.remaining()),
            ))
        }
    }

    /// Makes sure a chunk is at the front while bytes are left, taking
    /// the next one from the source when the held ones are used up.
    fn fill(&mut self) -> Result<(), DecodeError> {
        if !self.chunks.is_empty() || self.owed == 0 {
            return Ok(());
        }
        let offset = self.offset;
        let source = self.source.as_mut().ok_or_else(|| DecodeError {
            offset,
            problem: "input owed without a source".into(),
        })?;
        let chunk = source.next_chunk().map_err(|why| DecodeError {
            offset,
            problem: format!("the input stopped after {offset} bytes: {why}"),
        })?;
        if chunk.is_empty() || chunk.len() > self.owed {
            return Err(self.error(
                offset,
                format!(
                    "the source sent a chunk of {} bytes with {} bytes owed",
                    chunk.len(),
                    self.owed
                ),
            ));
        }
        self.owed -= chunk.len();
        self.chunks.push_back(Cow::Owned(chunk));
        Ok(())
    }

    /// Moves on by `len` bytes of the front chunk, dropping it when done.
    fn advance(&mut self, len: usize) {
        self.pos += len;
        self.offset += len;
        self.remaining -= len;
        if self
            .chunks
            .front()
            .is_some_and(|front| self.pos == front.len())
        {
            self.chunks.pop_front();
            self.pos = 0;
        }
    }

    fn byte(&mut self) -> Result<Option<u8>, DecodeError> {
        self.fill()?;
        let Some(&byte) = self.chunks.front().and_then(|c| c.get(self.pos)) else {
            return Ok(None);
        };
        self.advance(1);
        Ok(Some(byte))
    }

    fn take(&mut self, len: usize, what: &str) -> Result<Cow<'a, [u8]>, DecodeError> {
        if len > self.remaining() {
            return Err(self.error(
                self.offset,
                format!("{what} needs {len} bytes, {} left", self.remaining()),
            ));
        }
        if len == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        self.fill()?;
        let pos = self.pos;
        match &self.chunks[0] {
            Cow::Borrowed(chunk) if pos + len <= chunk.len() => {
                let slice: &'a [u8] = &chunk[pos..pos + len];
                self.advance(len);
                return Ok(Cow::Borrowed(slice));
            }
            Cow::Owned(chunk) if pos == 0 && len == chunk.len() => {
                let Some(Cow::Owned(chunk)) = self.chunks.pop_front() else {
                    unreachable!("the front chunk was just seen owned");
                };
                self.offset += len;
                self.remaining -= len;
                return Ok(Cow::Owned(chunk));
            }
            _ => {}
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.fill()?;
            let front = &self.chunks[0];
            let n = (len - out.len()).min(front.len() - self.pos);
            out.extend_from_slice(&front[self.pos..self.pos + n]);
            self.advance(n);
        }
        Ok(Cow::Owned(out))
    }

    /// An Integer of up to 126 bits.
    pub fn integer_i128(&mut self) -> Result<i128, DecodeError> {
        let start = self.offset;
        let mut value: i128 = 0;
        let mut negative = false;
        for groups in 1..=MAX_INTEGER_GROUPS {
            let byte = self
                .byte()?
                .ok_or_else(|| self.error(start, "Integer cut off by the end of input"))?;
            if groups == 1 {
                negative = byte & 0x40 != 0;
            }
            value = (value << 7) | i128::from(byte & 0x7f);
            if byte & 0x80 != 0 {
                let bits = 7 * groups as u32;
                if negative && bits < 128 {
                    value -= 1i128 << bits;
                }
                return Ok(value);
            }
        }
        Err(self.error(
            start,
            format!("Integer longer than {MAX_INTEGER_GROUPS} bytes"),
        ))
    }

    /// An Integer that must fit an `i64`.
    pub fn integer(&mut self) -> Result<i64, DecodeError> {
        let start = self.offset;
        let value = self.integer_i128()?;
        i64::try_from(value)
            .map_err(|_| self.error(start, format!("Integer {value} does not fit 64 bits")))
    }

    /// A non-negative Integer used as a length or index: at most `max`.
    fn count(&mut self, what: &str, max: usize) -> Result<usize, DecodeError> {
        let start = self.offset;
        let value = self.integer_i128()?;
        usize::try_from(value)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| self.error(start, format!("{what} {value} out of range 0..={max}")))
    }

    /// A Boolean.
    pub fn boolean(&mut self) -> Result<bool, DecodeError> {
        let start = self.offset;
        match self.byte()? {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(other) => Err(self.error(
                start,
                format!("Boolean byte {other:#04x}, expected 00 or 01"),
            )),
            None => Err(self.error(start, "Boolean needs 1 bytes, 0 left")),
        }
    }

    /// A Float.
    pub fn float(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.take(8, "Float")?;
        let mut array = [0u8; 8];
        array.copy_from_slice(&bytes);
        Ok(f64::from_be_bytes(array))
    }

    /// The length that starts Bytes or a String: at most the bytes left.
    pub fn bytes_len(&mut self) -> Result<usize, DecodeError> {
        self.count("Bytes length", self.remaining())
    }

    /// Passes over Bytes or a String, copying nothing (and freeing the
    /// chunks of a [`Body`] it passes).
    pub fn skip_bytes(&mut self) -> Result<(), DecodeError> {
        let mut len = self.bytes_len()?;
        while len > 0 {
            self.fill()?;
            let n = len.min(self.chunks[0].len() - self.pos);
            self.advance(n);
            len -= n;
        }
        Ok(())
    }

    /// Bytes: borrowed from a slice, copied from a [`Body`].
    pub fn bytes(&mut self) -> Result<Cow<'a, [u8]>, DecodeError> {
        let len = self.bytes_len()?;
        self.take(len, "Bytes")
    }

    /// A String: borrowed from a slice, copied from a [`Body`].
    pub fn string(&mut self) -> Result<Cow<'a, str>, DecodeError> {
        let start = self.offset;
        let not_utf8 = |err: std::str::Utf8Error| format!("String is not UTF-8: {err}");
        match self.bytes()? {
            Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|err| self.error(start, not_utf8(err))),
            Cow::Owned(bytes) => String::from_utf8(bytes)
                .map(Cow::Owned)
                .map_err(|err| self.error(start, not_utf8(err.utf8_error()))),
        }
    }

    /// The element count that starts an Array. Bounded by the bytes left,
    /// which holds for every element type of at least one byte.
    pub fn array_len(&mut self) -> Result<usize, DecodeError> {
        self.count("Array length", self.remaining())
    }

    /// The alternative index that starts a Choice of `alternatives`.
    pub fn choice(&mut self, alternatives: usize) -> Result<usize, DecodeError> {
        self.count("Choice index", alternatives.saturating_sub(1))
    }

    /// An Optional, its value read by `read` when present.
    pub fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.choice(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
