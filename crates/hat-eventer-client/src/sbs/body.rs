//! [`Body`] and [`Parts`]: an encoding received or sent in pieces.

use super::Writer;
use std::borrow::Cow;
use std::collections::VecDeque;

/// Bytes received in chunks, as they arrived: a frame body, or the part of
/// it a message's `data` holds. Reading it with [`Reader::of_body`](super::Reader::of_body) frees
/// each chunk as soon as the reader has passed it, so decoding a body into
/// owned values needs no more memory than the body itself.
#[derive(Default, Clone)]
pub struct Body {
    pub(super) chunks: VecDeque<Vec<u8>>,
    pub(super) len: usize,
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
