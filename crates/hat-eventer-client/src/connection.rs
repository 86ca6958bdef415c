//! A Chatter connection over TCP: frames in and out, conversations, and the
//! ping/pong keep-alive (the server drops peers that stay silent).

use crate::chatter::{Data, FrameError, FrameHeader, Msg, MAX_LENGTH_FIELD};
use crate::sbs::{Body, Parts};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
#[derive(Debug, Clone)]
pub struct Received {
    /// The conversation it belongs to.
    pub conversation: Conversation,
    /// Whether it ends the conversation.
    pub last: bool,
    /// The payload.
    pub data: Data,
}

struct WriteSide {
    half: OwnedWriteHalf,
    next_id: i64,
}

/// Sends messages; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    write: Arc<Mutex<WriteSide>>,
    activity: Activity,
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
        self.send_pieces(&data.data_type, &pieces, conversation, last)
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
        self.send_pieces(data_type, &pieces, conversation, last)
            .await
    }

    async fn send_pieces(
        &self,
        data_type: &str,
        pieces: &[&[u8]],
        conversation: Option<Conversation>,
        last: bool,
    ) -> Result<Conversation, ChatterError> {
        let mut write = self.write.lock().await;
        write.next_id += 1;
        let id = write.next_id;
        let conversation = conversation.unwrap_or(Conversation {
            first: id,
            owner: true,
        });
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
    };
    let (frames_tx, frames_rx) = mpsc::channel(64);
    tokio::spawn(read_frames(read, config.max_frame, activity, frames_tx));
    let (incoming_tx, incoming_rx) = mpsc::channel(64);
    tokio::spawn(supervise(sender.clone(), config, frames_rx, incoming_tx));
    Ok((sender, incoming_rx))
}

/// Reads frames until the socket fails; each is decoded to a [`Msg`].
async fn read_frames(
    mut read: OwnedReadHalf,
    max_frame: usize,
    activity: Activity,
    frames: mpsc::Sender<Result<Msg, ChatterError>>,
) {
    loop {
        let result = read_frame_noting(&mut read, max_frame, &|| activity.mark()).await;
        let failed = result.is_err();
        if frames.send(result).await.is_err() || failed {
            return;
        }
    }
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
    read_frame_noting(read, max_frame, &|| {}).await
}

/// [`read_frame`], calling `progress` for each piece of a large body read
/// and once a small one is whole.
async fn read_frame_noting<R>(
    read: &mut R,
    max_frame: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<Msg, ChatterError>
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
    while body.len() < len {
        let want = (len - body.len()).min(CHUNK);
        let mut chunk = Vec::with_capacity(want);
        while chunk.len() < want {
            let limit = (want - chunk.len()) as u64;
            if (&mut *read).take(limit).read_buf(&mut chunk).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            if large {
                progress();
            }
        }
        body.push(chunk);
    }
    Ok(Msg::decode_body(body).map_err(FrameError::from)?)
}

/// Answers pings, pings a silent peer, and hands everything else on.
async fn supervise(
    sender: Sender,
    config: ChatterConfig,
    mut frames: mpsc::Receiver<Result<Msg, ChatterError>>,
    incoming: mpsc::Sender<Result<Received, ChatterError>>,
) {
    let activity = sender.activity.clone();
    let mut deadline = Instant::now() + config.ping_delay;
    let mut pinged = false;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let msg = match frame {
                    Some(Ok(msg)) => msg,
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
                        let received = Received { conversation, last: msg.last, data: msg.data };
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
        let got = read_frame_noting(&mut read, usize::MAX, &count)
            .await
            .unwrap();
        assert!(got == big, "the large frame changed");
        let large = seen.load(Ordering::SeqCst);
        assert!(
            large >= 2,
            "one progress call per piece at least, got {large}"
        );
        let small = read_frame_noting(&mut read, usize::MAX, &count)
            .await
            .unwrap();
        assert_eq!(small, msg(2), "the frame after the large one");
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
}
