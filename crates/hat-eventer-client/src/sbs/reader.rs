//! [`Reader`]: decodes an SBS encoding, checking every length first.

use super::{Body, DecodeError, MAX_INTEGER_GROUPS};
use std::borrow::Cow;
use std::collections::VecDeque;

/// Reads an SBS encoding, checking every length against what is left, so
/// that no input makes it allocate more than the input's own size.
///
/// It reads a borrowed slice ([`Reader::new`]), handing out borrowed
/// Bytes and Strings, or an owned [`Body`] ([`Reader::of_body`]), handing
/// out copies and freeing each chunk once read past.
pub struct Reader<'a> {
    pub(super) chunks: VecDeque<Cow<'a, [u8]>>,
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
