//! The read path: frames decoded as they arrive, the answers to streamed
//! requests handed on once their start is in.

use super::activity::{Activity, SMALL_FRAME};
use super::config::ChatterError;
use crate::chatter::{FrameError, FrameHeader, Msg, MAX_LENGTH_FIELD};
use crate::sbs::Body;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

/// Frame bodies are read in pieces of at most this size, each allocated
/// once the bytes before it have arrived. Larger than glibc's largest
/// threshold for serving allocations from the heap (32 MiB), so a piece
/// is mapped on its own and goes back to the system when freed: decoding
/// a body, which frees each piece once read past, then needs no more
/// memory than the body. Its pages are touched only as bytes arrive.
pub(super) const CHUNK: usize = 40 << 20;

/// An answer to a request sent with [`Sender::send_parts_streamed`] is
/// handed on once this much of it has arrived, if it is larger: its start
/// (with every field but the data) fits in this, for any peer that is not
/// hostile (a hostile one's frame is read whole and refused as before).
pub(super) const STREAM_START: usize = 64 << 10;

/// The rest of a streamed answer arrives in pieces of this size...
pub(super) const STREAM_PIECE: usize = 1 << 20;

/// ... at most this many of them waiting for the reader: a reader that
/// falls behind holds the socket, and so the peer, back.
pub(super) const STREAM_QUEUE: usize = 4;

/// The data of a streamed answer that had not arrived when the answer was
/// handed on: its pieces, in order, as they arrive. The connection reads
/// nothing else until they are all read or this is dropped; dropped, the
/// rest is read and thrown away.
pub struct Rest {
    /// How many bytes are still to come.
    pub len: usize,
    pieces: mpsc::Receiver<Result<Vec<u8>, ChatterError>>,
}

impl Rest {
    /// The next piece; the error that broke the connection instead; or
    /// `None` once every piece has come.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, ChatterError>> {
        self.pieces.recv().await
    }
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rest({} bytes)", self.len)
    }
}

/// Conversations (by first id) whose answer is streamed.
pub(super) type Streamed = Arc<std::sync::Mutex<HashSet<i64>>>;

/// A frame read: a message, whole or with the rest of its data to come.
pub(super) type Frame = (Msg, Option<Rest>);

/// Reads frames until the socket fails; each is decoded to a [`Msg`],
/// the answers in `streamed` as soon as their start has arrived.
pub(super) async fn read_frames(
    mut read: OwnedReadHalf,
    max_frame: usize,
    activity: Activity,
    streamed: Streamed,
    frames: mpsc::Sender<Result<Frame, ChatterError>>,
) {
    let progress = || activity.mark();
    loop {
        let result = read_frame_noting(&mut read, max_frame, &progress, Some(&streamed)).await;
        let (msg, owed) = match result {
            Ok(read) => read,
            Err(err) => {
                let _ = frames.send(Err(err)).await;
                return;
            }
        };
        if owed == 0 {
            if frames.send(Ok((msg, None))).await.is_err() {
                return;
            }
            continue;
        }
        let (pieces, rest) = mpsc::channel(STREAM_QUEUE);
        let rest = Rest {
            len: owed,
            pieces: rest,
        };
        if frames.send(Ok((msg, Some(rest)))).await.is_err() {
            return;
        }
        if let Err(err) = read_rest(&mut read, owed, &progress, pieces).await {
            let _ = frames.send(Err(err)).await;
            return;
        }
    }
}

/// Reads the `owed` bytes of a streamed answer's rest and hands them on in
/// pieces; once nobody takes them, reads and drops them. A failure is
/// handed on too.
async fn read_rest<R>(
    read: &mut R,
    mut owed: usize,
    progress: &(dyn Fn() + Sync),
    pieces: mpsc::Sender<Result<Vec<u8>, ChatterError>>,
) -> Result<(), ChatterError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut wanted = true;
    while owed > 0 {
        let piece = match read_piece(read, owed.min(STREAM_PIECE), progress).await {
            Ok(piece) => piece,
            Err(err) => {
                let _ = pieces.send(Err(err.clone())).await;
                return Err(err);
            }
        };
        owed -= piece.len();
        wanted = wanted && pieces.send(Ok(piece)).await.is_ok();
    }
    Ok(())
}

/// Reads exactly `want` bytes, noting progress as they arrive.
async fn read_piece<R>(
    read: &mut R,
    want: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<u8>, ChatterError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut chunk = Vec::with_capacity(want);
    while chunk.len() < want {
        let limit = (want - chunk.len()) as u64;
        if (&mut *read).take(limit).read_buf(&mut chunk).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        progress();
    }
    Ok(chunk)
}

/// Reads one Chatter frame from `read` and decodes its body to a [`Msg`].
///
/// The frame is one byte `m` (at most [`MAX_LENGTH_FIELD`]), the body length
/// as `m` bytes big-endian, then the body. A length above `max_frame` is
/// refused at once. The body is read in pieces of at most 40 MiB, each
/// allocated when the bytes before it have arrived, so no input makes this
/// allocate more than 40 MiB beyond the bytes it has actually received
/// (and the pages of that piece are touched only as bytes arrive).
///
/// Returns [`ChatterError::Closed`] when the input ends cleanly before a
/// frame, [`ChatterError::Io`] when it fails or ends inside a frame, and
/// [`ChatterError::Frame`] for a frame that cannot be accepted. The reader's
/// position after an error is unspecified; [`connect`](super::connect) stops reading at the
/// first error.
pub async fn read_frame<R>(read: &mut R, max_frame: usize) -> Result<Msg, ChatterError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    Ok(read_frame_noting(read, max_frame, &|| {}, None).await?.0)
}

/// [`read_frame`], calling `progress` for each piece of a large body read
/// and once a small one is whole. An answer in a conversation of
/// `streamed` (taken out of it) comes back once its start has arrived,
/// with the count of its data bytes still to read (0: the frame is whole).
pub(super) async fn read_frame_noting<R>(
    read: &mut R,
    max_frame: usize,
    progress: &(dyn Fn() + Sync),
    streamed: Option<&Streamed>,
) -> Result<(Msg, usize), ChatterError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let size_len = match read.read_u8().await {
        Ok(n) => n as usize,
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ChatterError::Closed)
        }
        Err(err) => return Err(err.into()),
    };
    if size_len > MAX_LENGTH_FIELD {
        return Err(FrameError::LengthFieldTooLong(size_len).into());
    }
    let mut size = [0u8; MAX_LENGTH_FIELD];
    read.read_exact(&mut size[..size_len]).await?;
    let len = FrameHeader::parse(&size[..size_len], max_frame)?;
    let large = len > SMALL_FRAME;
    let mut body = Body::new();
    let streaming = streamed.filter(|set| len > STREAM_START && !lock(set).is_empty());
    if let Some(streamed) = streaming {
        let start = read_piece(read, STREAM_START, progress).await?;
        if let Some((msg, owed)) = Msg::decode_start(start.clone(), len) {
            if is_answer_to(streamed, &msg) {
                return Ok((msg, owed));
            }
        }
        body.push(start);
    }
    while body.len() < len {
        let piece = if large {
            read_piece(read, (len - body.len()).min(CHUNK), progress).await?
        } else {
            read_piece(read, len - body.len(), &|| {}).await?
        };
        body.push(piece);
    }
    let msg = Msg::decode_body(body).map_err(FrameError::from)?;
    if let Some(streamed) = streamed {
        // A streamed conversation's answer that came whole.
        is_answer_to(streamed, &msg);
    }
    Ok((msg, 0))
}

/// Whether `msg` answers a conversation of `streamed`, which then leaves it.
pub(super) fn is_answer_to(streamed: &Streamed, msg: &Msg) -> bool {
    // The peer owns none of our conversations.
    !msg.owner && lock(streamed).remove(&msg.first)
}

pub(super) fn lock(streamed: &Streamed) -> std::sync::MutexGuard<'_, HashSet<i64>> {
    streamed.lock().unwrap_or_else(PoisonError::into_inner)
}
