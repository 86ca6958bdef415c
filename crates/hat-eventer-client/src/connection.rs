//! A Chatter connection over TCP: frames in and out, conversations, and the
//! ping/pong keep-alive (the server drops peers that stay silent).

use crate::chatter::{Data, FrameError, FrameHeader, Msg, MAX_LENGTH_FIELD};
use crate::sbs::{Body, Parts};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

const PING: &str = "HatChatter.Ping";
const PONG: &str = "HatChatter.Pong";

/// Frame bodies are read in pieces of at most this size, each allocated
/// once the bytes before it have arrived. Larger than glibc's largest
/// threshold for serving allocations from the heap (32 MiB), so a piece
/// is mapped on its own and goes back to the system when freed: decoding
/// a body, which frees each piece once read past, then needs no more
/// memory than the body. Its pages are touched only as bytes arrive.
const CHUNK: usize = 40 << 20;

/// Frame bodies are written in slices of this size, progress noted after
/// each.
const WRITE_SLICE: usize = 1 << 20;

/// Bodies up to this size (pings and pongs are far smaller) count as
/// progress only once whole, as a message the peer meant to send.
const SMALL_FRAME: usize = 1024;

/// An answer to a request sent with [`Sender::send_parts_streamed`] is
/// handed on once this much of it has arrived, if it is larger: its start
/// (with every field but the data) fits in this, for any peer that is not
/// hostile (a hostile one's frame is read whole and refused as before).
const STREAM_START: usize = 64 << 10;

/// The rest of a streamed answer arrives in pieces of this size...
const STREAM_PIECE: usize = 1 << 20;

/// ... at most this many of them waiting for the reader: a reader that
/// falls behind holds the socket, and so the peer, back.
const STREAM_QUEUE: usize = 4;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ChatterConfig {
    /// Frames announcing a larger body are refused at once. A body is
    /// allocated as its bytes arrive, never ahead of them, so the bound is
    /// not what protects memory; by default it is the most one buffer can
    /// hold, so that no legitimate answer is refused.
    pub max_frame: usize,
    /// Silence after which we ping the peer.
    pub ping_delay: Duration,
    /// Further silence after a ping after which the connection is closed,
    /// unless an answer is due (see [`Activity::awaiting`]).
    pub ping_timeout: Duration,
}

impl Default for ChatterConfig {
    fn default() -> Self {
        ChatterConfig {
            max_frame: isize::MAX as usize,
            ping_delay: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

/// Why a connection failed or closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatterError {
    /// The socket failed.
    #[error("Chatter I/O: {0}")]
    Io(String),
    /// A frame could not be accepted.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer stopped answering.
    #[error("Chatter peer silent for {0:?} after a ping")]
    PingTimeout(Duration),
    /// The connection is closed.
    #[error("Chatter connection closed")]
    Closed,
}

impl From<std::io::Error> for ChatterError {
    fn from(err: std::io::Error) -> Self {
        ChatterError::Io(err.to_string())
    }
}

/// When a connection last made progress: a piece of a large frame read or
/// written, or a whole message other than a ping or pong received. Request
/// timeouts count silence from here, so a long transfer that keeps moving
/// never times out, while pings answered by a peer that answers nothing
/// else do not keep a request alive.
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityInner>);

#[derive(Debug)]
struct ActivityInner {
    start: Instant,
    /// Milliseconds from `start` to the last progress.
    last: AtomicU64,
    awaiting: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(ActivityInner {
            start: Instant::now(),
            last: AtomicU64::new(0),
            awaiting: AtomicUsize::new(0),
        }))
    }

    /// Notes progress now.
    pub fn mark(&self) {
        let elapsed = self.0.start.elapsed().as_millis() as u64;
        self.0.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// When progress was last noted (the connection's start, if never).
    pub fn last(&self) -> Instant {
        self.0.start + Duration::from_millis(self.0.last.load(Ordering::Relaxed))
    }

    /// Marks an answer as due until the guard is dropped. Meanwhile an
    /// unanswered ping does not close the connection: a peer busy making
    /// a large answer cannot answer pings, and the waiter's own timeout,
    /// counted from [`Activity::last`], decides.
    pub fn awaiting(&self) -> Awaiting {
        self.0.awaiting.fetch_add(1, Ordering::SeqCst);
        Awaiting(self.clone())
    }

    fn is_awaited(&self) -> bool {
        self.0.awaiting.load(Ordering::SeqCst) > 0
    }
}

/// An answer due on a connection; see [`Activity::awaiting`].
#[derive(Debug)]
pub struct Awaiting(Activity);

impl Drop for Awaiting {
    fn drop(&mut self) {
        (self.0).0.awaiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A conversation, from our side: the id of its first message and whether
/// we started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conversation {
    /// Id of the conversation's first message.
    pub first: i64,
    /// Whether we started it.
    pub owner: bool,
}

/// A message received, with its conversation from our side.
#[derive(Debug)]
pub struct Received {
    /// The conversation it belongs to.
    pub conversation: Conversation,
    /// Whether it ends the conversation.
    pub last: bool,
    /// The payload: whole, or its first bytes when `rest` is set.
    pub data: Data,
    /// The rest of the data of a streamed answer (see
    /// [`Sender::send_parts_streamed`]), still arriving.
    pub rest: Option<Rest>,
}

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
type Streamed = Arc<std::sync::Mutex<HashSet<i64>>>;

/// A frame read: a message, whole or with the rest of its data to come.
type Frame = (Msg, Option<Rest>);

struct WriteSide {
    half: OwnedWriteHalf,
    next_id: i64,
}

/// Sends messages; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    write: Arc<Mutex<WriteSide>>,
    activity: Activity,
    streamed: Streamed,
}

impl Sender {
    /// Sends `data`: in `conversation`, or as the first message of a new one.
    /// Returns the conversation.
    pub async fn send(
        &self,
        data: Data,
        conversation: Option<Conversation>,
        last: bool,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = data.data.chunks().collect();
        self.send_pieces(&data.data_type, &pieces, conversation, last, false)
            .await
    }

    /// Sends a message of type `data_type` whose data is `parts`, writing
    /// the borrowed parts as they lie. Returns the conversation.
    pub async fn send_parts(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
        conversation: Option<Conversation>,
        last: bool,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = parts.pieces().collect();
        self.send_pieces(data_type, &pieces, conversation, last, false)
            .await
    }

    /// [`Sender::send_parts`] as the first message of a new conversation,
    /// whose answer, if large, is handed on as soon as its start has
    /// arrived, the rest following as a [`Rest`]: its reader never holds
    /// the whole answer.
    pub async fn send_parts_streamed(
        &self,
        data_type: &str,
        parts: &Parts<'_>,
    ) -> Result<Conversation, ChatterError> {
        let pieces: Vec<&[u8]> = parts.pieces().collect();
        self.send_pieces(data_type, &pieces, None, false, true)
            .await
    }

    /// Stops streaming the answer of `conversation`, if it has not begun
    /// (its waiter gave up).
    pub fn forget_streamed(&self, conversation: Conversation) {
        lock(&self.streamed).remove(&conversation.first);
    }

    async fn send_pieces(
        &self,
        data_type: &str,
        pieces: &[&[u8]],
        conversation: Option<Conversation>,
        last: bool,
        stream_answer: bool,
    ) -> Result<Conversation, ChatterError> {
        let mut write = self.write.lock().await;
        write.next_id += 1;
        let id = write.next_id;
        let conversation = conversation.unwrap_or(Conversation {
            first: id,
            owner: true,
        });
        if stream_answer {
            // Before a byte is sent: the answer cannot come sooner.
            lock(&self.streamed).insert(conversation.first);
        }
        let msg = Msg {
            id,
            first: conversation.first,
            owner: conversation.owner,
            token: true,
            last,
            data: Data {
                data_type: data_type.to_string(),
                data: Body::new(),
            },
        };
        let data_len = pieces.iter().map(|piece| piece.len()).sum();
        let head = msg.header(data_len);
        let mut frame = FrameHeader::for_len(head.len() + data_len);
        frame.extend_from_slice(&head);
        write.half.write_all(&frame).await?;
        let large = data_len > SMALL_FRAME;
        for piece in pieces {
            for slice in piece.chunks(WRITE_SLICE) {
                write.half.write_all(slice).await?;
                if large {
                    self.activity.mark();
                }
            }
        }
        write.half.flush().await?;
        Ok(conversation)
    }

    /// The connection's progress, shared by both directions.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// Closes our side of the socket.
    pub async fn close(&self) {
        let _ = self.write.lock().await.half.shutdown().await;
    }
}

/// Connects to a Chatter peer. Returns the sender and the stream of
/// received messages; the stream ends with the error that closed it.
pub async fn connect(
    address: &str,
    config: ChatterConfig,
) -> Result<(Sender, mpsc::Receiver<Result<Received, ChatterError>>), ChatterError> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let activity = Activity::new();
    let sender = Sender {
        write: Arc::new(Mutex::new(WriteSide {
            half: write,
            next_id: 0,
        })),
        activity: activity.clone(),
        streamed: Streamed::default(),
    };
    let (frames_tx, frames_rx) = mpsc::channel(64);
    tokio::spawn(read_frames(
        read,
        config.max_frame,
        activity,
        sender.streamed.clone(),
        frames_tx,
    ));
    let (incoming_tx, incoming_rx) = mpsc::channel(64);
    tokio::spawn(supervise(sender.clone(), config, frames_rx, incoming_tx));
    Ok((sender, incoming_rx))
}

/// Reads frames until the socket fails; each is decoded to a [`Msg`],
/// the answers in `streamed` as soon as their start has arrived.
async fn read_frames(
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
/// position after an error is unspecified; [`connect`] stops reading at the
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
async fn read_frame_noting<R>(
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
fn is_answer_to(streamed: &Streamed, msg: &Msg) -> bool {
    // The peer owns none of our conversations.
    !msg.owner && lock(streamed).remove(&msg.first)
}

fn lock(streamed: &Streamed) -> std::sync::MutexGuard<'_, HashSet<i64>> {
    streamed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers pings, pings a silent peer, and hands everything else on.
async fn supervise(
    sender: Sender,
    config: ChatterConfig,
    mut frames: mpsc::Receiver<Result<Frame, ChatterError>>,
    incoming: mpsc::Sender<Result<Received, ChatterError>>,
) {
    let activity = sender.activity.clone();
    let mut deadline = Instant::now() + config.ping_delay;
    let mut pinged = false;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let (msg, rest) = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => { let _ = incoming.send(Err(err)).await; return; }
                    None => { let _ = incoming.send(Err(ChatterError::Closed)).await; return; }
                };
                deadline = Instant::now() + config.ping_delay;
                pinged = false;
                let conversation = Conversation { first: msg.first, owner: !msg.owner };
                match msg.data.data_type.as_str() {
                    PING => {
                        let pong = Data { data_type: PONG.into(), data: Body::new() };
                        if let Err(err) = sender.send(pong, Some(conversation), true).await {
                            let _ = incoming.send(Err(err)).await;
                            return;
                        }
                    }
                    PONG => {}
                    _ => {
                        activity.mark();
                        let received = Received { conversation, last: msg.last, data: msg.data, rest };
                        if incoming.send(Ok(received)).await.is_err() {
                            sender.close().await;
                            return;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                // A large frame still moving, either way, is not silence.
                let moved = activity.last() + config.ping_delay;
                if moved > deadline {
                    deadline = moved;
                    pinged = false;
                    continue;
                }
                if pinged {
                    if activity.is_awaited() {
                        deadline = Instant::now() + config.ping_timeout;
                        continue;
                    }
                    let _ = incoming.send(Err(ChatterError::PingTimeout(config.ping_timeout))).await;
                    sender.close().await;
                    return;
                }
                let ping = Data { data_type: PING.into(), data: Body::new() };
                if let Err(err) = sender.send(ping, None, false).await {
                    let _ = incoming.send(Err(err)).await;
                    return;
                }
                pinged = true;
                deadline = Instant::now() + config.ping_timeout;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64) -> Msg {
        Msg {
            id,
            first: 1,
            owner: true,
            token: true,
            last: false,
            data: Data {
                data_type: "HatChatter.Ping".into(),
                data: Body::new(),
            },
        }
    }

    fn data(data_type: &str) -> Data {
        Data {
            data_type: data_type.into(),
            data: vec![7].into(),
        }
    }

    /// A connected pair: our side (sender and incoming) and the peer's socket.
    async fn pair() -> (
        Sender,
        mpsc::Receiver<Result<Received, ChatterError>>,
        TcpStream,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (ours, peer) = tokio::join!(connect(&address, ChatterConfig::default()), async {
            listener.accept().await.unwrap().0
        });
        let (sender, incoming) = ours.unwrap();
        (sender, incoming, peer)
    }

    async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("no answer within 10 s")
    }

    #[tokio::test]
    async fn messages_are_numbered_from_1_and_new_conversations_start_at_their_id() {
        let (sender, _incoming, mut peer) = pair().await;
        let first = sender.send(data("a"), None, false).await.unwrap();
        let second = sender.send(data("b"), None, true).await.unwrap();
        let reply = sender.send(data("c"), Some(first), true).await.unwrap();
        assert_eq!(
            first,
            Conversation {
                first: 1,
                owner: true
            }
        );
        assert_eq!(
            second,
            Conversation {
                first: 2,
                owner: true
            }
        );
        assert_eq!(reply, first);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(within(read_frame(&mut peer, 1 << 20)).await.unwrap());
        }
        let seen: Vec<(i64, i64, bool, bool, &str)> = got
            .iter()
            .map(|m| (m.id, m.first, m.owner, m.last, m.data.data_type.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, 1, true, false, "a"),
                (2, 2, true, true, "b"),
                (3, 1, true, true, "c")
            ]
        );
    }

    #[tokio::test]
    async fn the_peer_s_messages_arrive_and_its_pings_are_answered() {
        let (_sender, mut incoming, mut peer) = pair().await;
        let ping = msg(1);
        peer.write_all(&ping.to_frame()).await.unwrap();
        let pong = within(read_frame(&mut peer, 1 << 20)).await.unwrap();
        assert_eq!(pong.data.data_type, PONG);
        assert_eq!((pong.first, pong.owner, pong.last), (1, false, true));
        let msg = Msg {
            id: 2,
            first: 2,
            owner: true,
            token: true,
            last: true,
            data: data("x"),
        };
        peer.write_all(&msg.to_frame()).await.unwrap();
        let received = within(incoming.recv()).await.unwrap().unwrap();
        assert_eq!(
            received.conversation,
            Conversation {
                first: 2,
                owner: false
            }
        );
        assert!(received.last);
        assert_eq!(received.data, data("x"));
        // The peer goes away: the stream ends with why.
        drop(peer);
        let end = within(incoming.recv()).await.unwrap();
        assert!(matches!(end, Err(ChatterError::Closed)), "{end:?}");
    }

    #[tokio::test]
    async fn close_ends_our_side_of_the_socket() {
        let (sender, _incoming, mut peer) = pair().await;
        sender.close().await;
        assert!(matches!(
            within(read_frame(&mut peer, 1 << 20)).await,
            Err(ChatterError::Closed)
        ));
    }

    #[tokio::test]
    async fn read_frame_reads_frames_until_the_input_ends() {
        let mut input = msg(1).to_frame();
        input.extend(msg(2).to_frame());
        let mut read = input.as_slice();
        assert_eq!(read_frame(&mut read, 1 << 20).await.unwrap(), msg(1));
        assert_eq!(read_frame(&mut read, 1 << 20).await.unwrap(), msg(2));
        assert!(matches!(
            read_frame(&mut read, 1 << 20).await,
            Err(ChatterError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_length_field_of_the_widest_allowed_size_is_read() {
        let body = msg(1).encode();
        let mut frame = vec![MAX_LENGTH_FIELD as u8];
        frame.extend(std::iter::repeat_n(0, MAX_LENGTH_FIELD - 1));
        frame.push(body.len() as u8);
        frame.extend(&body);
        assert_eq!(
            read_frame(&mut frame.as_slice(), 1 << 20).await.unwrap(),
            msg(1)
        );
    }

    /// Input that fails with `kind` at once.
    struct Failing(std::io::ErrorKind);

    impl AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(self.0.into()))
        }
    }

    #[tokio::test]
    async fn a_failing_socket_is_an_io_error_not_a_clean_close() {
        let mut reset = Failing(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            read_frame(&mut reset, 1 << 20).await,
            Err(ChatterError::Io(_))
        ));
    }

    #[tokio::test]
    async fn read_frame_refuses_bad_frames() {
        let frame = msg(1).to_frame();
        let cut = &mut &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(cut, 1 << 20).await,
            Err(ChatterError::Io(_))
        ));
        let small = &mut frame.as_slice();
        assert!(matches!(
            read_frame(small, 2).await,
            Err(ChatterError::Frame(FrameError::TooLarge { .. }))
        ));
        let long = &mut &[MAX_LENGTH_FIELD as u8 + 1, 0][..];
        assert!(matches!(
            read_frame(long, 1 << 20).await,
            Err(ChatterError::Frame(FrameError::LengthFieldTooLong(17)))
        ));
        let padded = &mut &[3, 0, 0, 1, 0x80][..];
        assert!(matches!(
            read_frame(padded, 1 << 20).await,
            Err(ChatterError::Frame(FrameError::Body(_)))
        ));
    }

    #[tokio::test]
    async fn a_frame_larger_than_one_piece_is_read_whole_and_progress_is_seen_per_piece() {
        let big = Msg {
            data: Data {
                data_type: "x".into(),
                data: vec![7u8; CHUNK + 1000].into(),
            },
            ..msg(1)
        };
        let mut input = big.to_frame();
        input.extend(msg(2).to_frame());
        let mut read = input.as_slice();
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let count = || {
            seen.fetch_add(1, Ordering::SeqCst);
        };
        let got = read_frame_noting(&mut read, usize::MAX, &count, None)
            .await
            .unwrap();
        assert!(got == (big, 0), "the large frame changed");
        let large = seen.load(Ordering::SeqCst);
        assert!(
            large >= 2,
            "one progress call per piece at least, got {large}"
        );
        let small = read_frame_noting(&mut read, usize::MAX, &count, None)
            .await
            .unwrap();
        assert_eq!(small, (msg(2), 0), "the frame after the large one");
        assert_eq!(
            seen.load(Ordering::SeqCst),
            large,
            "a small frame noted progress"
        );
        assert!(read.is_empty());
    }

    #[tokio::test]
    async fn large_messages_sent_note_progress_and_small_ones_do_not() {
        let (sender, _incoming, mut peer) = pair().await;
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = peer.read_to_end(&mut sink).await;
        });
        let start = sender.activity().last();
        tokio::time::sleep(Duration::from_millis(20)).await;
        sender.send(data("small"), None, true).await.unwrap();
        assert_eq!(
            sender.activity().last(),
            start,
            "a small send noted progress"
        );
        let large = Data {
            data_type: "large".into(),
            data: vec![1u8; 2 << 20].into(),
        };
        sender.send(large, None, true).await.unwrap();
        assert!(
            sender.activity().last() >= start + Duration::from_millis(20),
            "a large send noted no progress"
        );
        sender.close().await;
        within(drain).await.unwrap();
    }

    #[test]
    fn an_answer_is_awaited_while_a_guard_lives() {
        let activity = Activity::new();
        assert!(!activity.is_awaited());
        let first = activity.awaiting();
        let second = activity.awaiting();
        assert!(activity.is_awaited());
        drop(first);
        assert!(activity.is_awaited(), "one guard is still alive");
        drop(second);
        assert!(!activity.is_awaited());
    }

    /// The peer's answer, in conversation `first`, of `len` data bytes
    /// counting up from 0 (mod 251), as a frame.
    fn answer_frame(first: i64, len: usize) -> Vec<u8> {
        Msg {
            id: 1,
            first,
            owner: false,
            token: true,
            last: true,
            data: Data {
                data_type: "x".into(),
                data: counting(len).into(),
            },
        }
        .to_frame()
    }

    fn counting(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// The data of `received` with all of its rest.
    async fn whole_data(mut received: Received) -> Vec<u8> {
        let mut all = received.data.data.to_vec();
        if let Some(rest) = received.rest.as_mut() {
            while let Some(piece) = within(rest.next()).await {
                all.extend(piece.unwrap());
            }
        }
        all
    }

    #[tokio::test]
    async fn a_streamed_answer_is_handed_on_before_the_peer_has_sent_it_all() {
        let (sender, mut incoming, mut peer) = pair().await;
        let request = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        let len = 3 * STREAM_PIECE + 12_345;
        let frame = answer_frame(request.first, len);
        // Half the frame: the rest is held back until the start is here.
        let half = frame.len() / 2;
        peer.write_all(&frame[..half]).await.unwrap();
        let mut received = within(incoming.recv()).await.unwrap().unwrap();
        assert_eq!(received.conversation, request);
        let rest = received.rest.as_mut().expect("a rest to come");
        assert_eq!(received.data.data.len() + rest.len, len);
        assert!(received.data.data.len() <= STREAM_START);
        peer.write_all(&frame[half..]).await.unwrap();
        assert_eq!(whole_data(received).await, counting(len));
    }

    #[tokio::test]
    async fn only_the_answers_asked_for_are_streamed_and_small_ones_come_whole() {
        let (sender, mut incoming, mut peer) = pair().await;
        let plain = sender.send(data("a"), None, false).await.unwrap();
        let streamed = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        let small = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        let len = STREAM_START + 1000;
        // The plain conversation's answer has the same id as nothing
        // streamed; the peer's own conversation with the streamed id is
        // not an answer.
        let mut own = Msg::decode(&answer_frame(streamed.first, len)[4..]).unwrap();
        own.owner = true;
        for frame in [
            answer_frame(plain.first, len),
            own.to_frame(),
            answer_frame(streamed.first, len),
            answer_frame(small.first, STREAM_START - 100),
        ] {
            peer.write_all(&frame).await.unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..4 {
            let received = within(incoming.recv()).await.unwrap().unwrap();
            let streamed = received.rest.is_some();
            let conversation = received.conversation;
            let all = whole_data(received).await;
            seen.push((conversation.first, conversation.owner, streamed, all.len()));
        }
        assert_eq!(
            seen,
            [
                (plain.first, true, false, len),
                (streamed.first, false, false, len),
                (streamed.first, true, true, len),
                (small.first, true, false, STREAM_START - 100),
            ]
        );
    }

    #[tokio::test]
    async fn a_rest_nobody_reads_is_passed_over_and_the_next_message_arrives() {
        let (sender, mut incoming, mut peer) = pair().await;
        let request = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        let len = (STREAM_QUEUE + 3) * STREAM_PIECE;
        peer.write_all(&answer_frame(request.first, len))
            .await
            .unwrap();
        peer.write_all(&answer_frame(77, 10)).await.unwrap();
        let received = within(incoming.recv()).await.unwrap().unwrap();
        assert!(received.rest.is_some());
        drop(received);
        let next = within(incoming.recv()).await.unwrap().unwrap();
        assert_eq!((next.conversation.first, next.data.data.len()), (77, 10));
    }

    #[tokio::test]
    async fn a_connection_that_breaks_inside_a_rest_fails_its_reader() {
        let (sender, mut incoming, mut peer) = pair().await;
        let request = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        let frame = answer_frame(request.first, 2 * STREAM_PIECE);
        peer.write_all(&frame[..STREAM_PIECE]).await.unwrap();
        let mut received = within(incoming.recv()).await.unwrap().unwrap();
        drop(peer);
        let rest = received.rest.as_mut().unwrap();
        let mut failed = false;
        while let Some(piece) = within(rest.next()).await {
            if let Err(err) = piece {
                assert!(matches!(err, ChatterError::Io(_)), "{err:?}");
                failed = true;
            }
        }
        assert!(failed, "the rest ended as if whole");
    }

    #[tokio::test]
    async fn a_streamed_request_that_was_forgotten_is_answered_whole() {
        let (sender, mut incoming, mut peer) = pair().await;
        let request = sender
            .send_parts_streamed("q", &Parts::new())
            .await
            .unwrap();
        sender.forget_streamed(request);
        let len = STREAM_START + 1;
        peer.write_all(&answer_frame(request.first, len))
            .await
            .unwrap();
        let received = within(incoming.recv()).await.unwrap().unwrap();
        assert!(received.rest.is_none());
        assert_eq!(received.data.data.to_vec(), counting(len));
    }
}
