//! A Chatter connection over TCP: frames in and out, conversations, and the
//! ping/pong keep-alive (the server drops peers that stay silent).

mod activity;
mod config;
mod conversation;
mod keepalive;
mod read;
mod send;

pub use activity::{Activity, Awaiting};
pub use config::{ChatterConfig, ChatterError};
pub use conversation::Conversation;
pub use keepalive::Received;
pub use read::{read_frame, Rest};
pub use send::Sender;

use keepalive::supervise;
use read::{read_frames, Streamed};
use send::WriteSide;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatter::{Data, FrameError, Msg, MAX_LENGTH_FIELD};
    use crate::sbs::{Body, Parts};
    use keepalive::PONG;
    use read::{read_frame_noting, CHUNK, STREAM_PIECE, STREAM_QUEUE, STREAM_START};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

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
        within(peer.write_all(&ping.to_frame())).await.unwrap();
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
        within(peer.write_all(&msg.to_frame())).await.unwrap();
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
            for piece in pieces(rest).await {
                all.extend(piece.unwrap());
            }
        }
        all
    }

    /// Every piece of `rest` until it ends. Bounded: a rest that yields
    /// empty pieces, or more bytes than it announced, would be read for
    /// ever, each piece in time.
    async fn pieces(rest: &mut Rest) -> Vec<Result<Vec<u8>, ChatterError>> {
        let announced = rest.len;
        let (mut pieces, mut bytes) = (Vec::new(), 0);
        while let Some(piece) = within(rest.next()).await {
            if let Ok(data) = &piece {
                assert!(!data.is_empty(), "an empty piece");
                bytes += data.len();
                assert!(
                    bytes <= announced,
                    "more than the {announced} bytes announced"
                );
            }
            pieces.push(piece);
        }
        pieces
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
        within(peer.write_all(&frame[..half])).await.unwrap();
        let mut received = within(incoming.recv()).await.unwrap().unwrap();
        assert_eq!(received.conversation, request);
        let rest = received.rest.as_mut().expect("a rest to come");
        assert_eq!(received.data.data.len() + rest.len, len);
        assert!(received.data.data.len() <= STREAM_START);
        within(peer.write_all(&frame[half..])).await.unwrap();
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
            within(peer.write_all(&frame)).await.unwrap();
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
        // Bounded: a reader that stops reading would block this write.
        within(peer.write_all(&answer_frame(request.first, len)))
            .await
            .unwrap();
        within(peer.write_all(&answer_frame(77, 10))).await.unwrap();
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
        within(peer.write_all(&frame[..STREAM_PIECE]))
            .await
            .unwrap();
        let mut received = within(incoming.recv()).await.unwrap().unwrap();
        drop(peer);
        let rest = received.rest.as_mut().unwrap();
        let mut failed = false;
        for piece in pieces(rest).await {
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
        within(peer.write_all(&answer_frame(request.first, len)))
            .await
            .unwrap();
        let received = within(incoming.recv()).await.unwrap().unwrap();
        assert!(received.rest.is_none());
        assert_eq!(received.data.data.to_vec(), counting(len));
    }
}
