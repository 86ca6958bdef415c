//! The Rust Eventer client against a real `hat-event-server` (hat-event
//! 0.9.44 from the reference venv, LMDB backend, on loopback), and against
//! peers that are not Hat servers.

use aimm_backend_tests::*;
use hat_eventer_client::chatter::FrameError;
use hat_eventer_client::client::{connect, ClientConfig, ClientError};
use hat_eventer_client::connection::ChatterError;
use hat_eventer_client::eventer_msg::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn init(subscriptions: Vec<EventType>) -> MsgInitReq {
    MsgInitReq {
        client_name: "aimm-backend-tests".into(),
        client_token: None,
        subscriptions,
        server_id: None,
        persisted: false,
    }
}

fn event_type(segments: &[&str]) -> EventType {
    segments.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_query_and_notify_against_the_real_server() {
    let server = HatServer::start();
    let subscription = event_type(&["test", "*"]);
    let (client, mut notified) = connect(
        &server.address(),
        init(vec![subscription.clone()]),
        ClientConfig::default(),
    )
    .await
    .expect("connects and initializes");
    assert_eq!(client.status(), Status::Operational);

    let payload = EventPayload::Json(r#"{"type": "t", "instance": "AAEC"}"#.into());
    let registered = client
        .register(
            vec![RegisterEvent {
                event_type: event_type(&["test", "a"]),
                source_timestamp: None,
                payload: Some(payload.clone()),
            }],
            true,
        )
        .await
        .unwrap()
        .expect("with_response returns the events");
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].event_type, event_type(&["test", "a"]));

    let binary = EventPayload::Binary {
        payload_type: "bin".into(),
        data: vec![0, 1, 255],
    };
    let none = client
        .register(
            vec![RegisterEvent {
                event_type: event_type(&["test", "b"]),
                source_timestamp: Some(Timestamp { s: 1, us: 2 }),
                payload: Some(binary.clone()),
            }],
            false,
        )
        .await
        .unwrap();
    assert!(none.is_none());

    // Both arrive as notifications for the subscription.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(Some(events)) =
            tokio::time::timeout(Duration::from_secs(1), notified.recv()).await
        {
            seen.extend(events);
        }
    }
    let types: Vec<_> = seen.iter().map(|e| e.event_type.clone()).collect();
    assert!(types.contains(&event_type(&["test", "a"])), "{types:?}");
    assert!(types.contains(&event_type(&["test", "b"])), "{types:?}");

    let latest = client
        .query(QueryParams::Latest {
            event_types: Some(vec![subscription]),
        })
        .await
        .unwrap();
    let b = latest
        .events
        .iter()
        .find(|e| e.event_type == event_type(&["test", "b"]))
        .expect("b is latest");
    assert_eq!(b.payload, Some(binary));
    assert_eq!(b.source_timestamp, Some(Timestamp { s: 1, us: 2 }));
    let a = latest
        .events
        .iter()
        .find(|e| e.event_type == event_type(&["test", "a"]))
        .expect("a is latest");
    assert_eq!(a.payload, Some(payload));
    assert_eq!(a.id, registered[0].id);
    client.close().await;
}

/// A loopback "server" that does `behave` with each connection.
async fn fake_peer<F, Fut>(behave: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            behave(stream).await;
        }
    });
    address
}

fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn a_frame_announcing_2_pow_63_bytes_is_refused_at_once() {
    let address = fake_peer(|mut stream| async move {
        let mut header = vec![8u8];
        header.extend_from_slice(&(1u64 << 63).to_be_bytes());
        let _ = stream.write_all(&header).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let started = Instant::now();
    let err = connect(&address, init(vec![]), quick())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            ClientError::Chatter(ChatterError::Frame(FrameError::TooLarge { .. }))
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let address = fake_peer(|stream| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(stream);
    })
    .await;
    let started = Instant::now();
    let err = connect(&address, init(vec![]), quick())
        .await
        .err()
        .expect("times out");
    assert!(matches!(err, ClientError::Timeout(..)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn garbage_and_truncated_frames_are_errors() {
    let garbage = fake_peer(|mut stream| async move {
        let _ = stream
            .write_all(&[
                1, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ])
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let err = connect(&garbage, init(vec![]), quick())
        .await
        .err()
        .expect("garbage refused");
    assert!(
        matches!(
            err,
            ClientError::Chatter(ChatterError::Frame(FrameError::Body(_)))
        ),
        "{err}"
    );

    let truncated = fake_peer(|mut stream| async move {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(&[1, 100, 1, 2, 3]).await;
        // and hang up mid-frame
    })
    .await;
    let err = connect(&truncated, init(vec![]), quick())
        .await
        .err()
        .expect("truncated refused");
    assert!(matches!(err, ClientError::Chatter(_)), "{err}");
}

/// Reads one Chatter frame from `stream` and decodes it.
async fn read_msg(stream: &mut tokio::net::TcpStream) -> hat_eventer_client::chatter::Msg {
    let m = stream.read_u8().await.unwrap() as usize;
    let mut size = vec![0u8; m];
    stream.read_exact(&mut size).await.unwrap();
    let len = size.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    hat_eventer_client::chatter::Msg::decode(&body).unwrap()
}

#[tokio::test]
async fn pings_are_answered_and_silence_is_pinged_then_dropped() {
    use hat_eventer_client::chatter::{Data, Msg};
    use hat_eventer_client::connection::{connect as chatter_connect, ChatterConfig};
    let (report_tx, mut report) = tokio::sync::mpsc::unbounded_channel();
    let address = fake_peer(move |mut stream| {
        let report = report_tx.clone();
        async move {
            // We ping first; the client must answer Pong in our conversation.
            let ping = Msg {
                id: 1,
                first: 1,
                owner: true,
                token: true,
                last: false,
                data: Data {
                    data_type: "HatChatter.Ping".into(),
                    data: Default::default(),
                },
            };
            stream.write_all(&ping.to_frame()).await.unwrap();
            let pong = read_msg(&mut stream).await;
            let _ = report.send(pong);
            // Then silence: the client pings us, and gives up when we stay silent.
            let their_ping = read_msg(&mut stream).await;
            let _ = report.send(their_ping);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await;
    let config = ChatterConfig {
        ping_delay: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(300),
        ..ChatterConfig::default()
    };
    let (_sender, mut incoming) = chatter_connect(&address, config).await.unwrap();
    let pong = within(report.recv(), "the fake peer's report of our Pong")
        .await
        .unwrap();
    assert_eq!(pong.data.data_type, "HatChatter.Pong");
    assert_eq!((pong.first, pong.owner, pong.last), (1, false, true));
    let ping = within(report.recv(), "the fake peer's report of our Ping")
        .await
        .unwrap();
    assert_eq!(ping.data.data_type, "HatChatter.Ping");
    assert_eq!((ping.first, ping.owner, ping.last), (ping.id, true, false));
    let started = Instant::now();
    let end = within(incoming.recv(), "the end of a silent connection")
        .await
        .expect("the connection reports why it ended");
    assert!(matches!(end, Err(ChatterError::PingTimeout(_))), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The frame of a message of type `T` from the peer: in the client's
/// conversation `first` (an answer) or, with `owner`, in the peer's own.
fn frame_of<T: Message>(id: i64, first: i64, owner: bool, value: &T) -> Vec<u8> {
    use hat_eventer_client::chatter::{Data, Msg};
    let msg = Msg {
        id,
        first,
        owner,
        token: true,
        last: true,
        data: Data {
            data_type: T::TYPE.into(),
            data: encode(value).into(),
        },
    };
    msg.to_frame()
}

/// Writes the first `stop_after` of `frame`'s `pieces` pieces, pausing
/// `pause` after each.
async fn write_slowly(
    stream: &mut tokio::net::TcpStream,
    frame: &[u8],
    pieces: usize,
    pause: Duration,
    stop_after: usize,
) {
    for piece in frame.chunks(frame.len().div_ceil(pieces)).take(stop_after) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(pause).await;
    }
}

/// Reads the client's init and answers it as an operational server.
async fn answer_init(stream: &mut tokio::net::TcpStream) {
    let init = read_msg(stream).await;
    let frame = frame_of(
        1,
        init.first,
        false,
        &MsgInitRes::Success(Status::Operational),
    );
    stream.write_all(&frame).await.unwrap();
}

/// A peer that answers init with `initial`, reads a registration and the
/// query after it, then sends the status reports `reports` before the
/// query's answer, as a server whose engine stopped in between would.
async fn status_peer(initial: Status, reports: Vec<Status>) -> String {
    fake_peer(move |mut stream| {
        let reports = reports.clone();
        async move {
            let init = read_msg(&mut stream).await;
            let frame = frame_of(1, init.first, false, &MsgInitRes::Success(initial));
            stream.write_all(&frame).await.unwrap();
            let _registration = read_msg(&mut stream).await;
            let query = read_msg(&mut stream).await;
            for (n, status) in reports.into_iter().enumerate() {
                let id = 2 + n as i64;
                let frame = frame_of(id, id, true, &MsgStatusNotify(status));
                stream.write_all(&frame).await.unwrap();
            }
            let answer = QueryResult {
                events: Vec::new(),
                more_follows: false,
            };
            let frame = frame_of(100, query.first, false, &answer);
            stream.write_all(&frame).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await
}

/// What a fenced registration of one small event to `address` ends with.
async fn fenced(address: &str) -> Result<(), ClientError> {
    let (client, _events) = connect(address, init(Vec::new()), quick()).await.unwrap();
    let event = RegisterEventRef {
        event_type: vec!["m", "1"],
        source_timestamp: None,
        payload: Some(EventPayloadRef::Json("1")),
    };
    let parts = register_request_parts(&[event]);
    within(client.register_fenced(&parts), "the fenced registration").await
}

#[tokio::test]
async fn a_fenced_registration_holds_only_if_the_server_stayed_operational() {
    // An answer with no status report in between: registered.
    let address = status_peer(Status::Operational, Vec::new()).await;
    fenced(&address).await.unwrap();
    // A server that stops being operational drops the registration and
    // still answers the query: the report before the answer says so.
    for reports in [
        vec![Status::Standby],
        vec![Status::Stopping, Status::Operational],
    ] {
        let address = status_peer(Status::Operational, reports.clone()).await;
        let err = fenced(&address).await.unwrap_err();
        assert!(
            matches!(err, ClientError::StatusChanged(_)),
            "{reports:?}: {err}"
        );
        assert!(
            err.to_string().contains("may or may not be registered"),
            "{err}"
        );
    }
    // A server not operational to begin with is not sent the events.
    let address = status_peer(Status::Standby, Vec::new()).await;
    let err = fenced(&address).await.unwrap_err();
    assert!(
        matches!(err, ClientError::StatusChanged(Status::Standby)),
        "{err}"
    );
}

/// A peer that answers init as an operational server, then reads until the
/// client closes, and reports the close on `closed`.
async fn closing_peer(closed: tokio::sync::mpsc::Sender<()>) -> String {
    fake_peer(move |mut stream| {
        let closed = closed.clone();
        async move {
            answer_init(&mut stream).await;
            let mut rest = Vec::new();
            if stream.read_to_end(&mut rest).await.is_ok() {
                let _ = closed.send(()).await;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_closed_client_ends_its_connection_and_its_calls_fail() {
    let (closed_tx, mut closed) = tokio::sync::mpsc::channel(1);
    let address = closing_peer(closed_tx).await;
    let (client, _events) = connect(&address, init(Vec::new()), quick()).await.unwrap();
    client.close().await;
    within(closed.recv(), "end of the connection at the peer").await;
    let err = within(client.register(Vec::new(), true), "the call after close")
        .await
        .unwrap_err();
    // The connection's own error (closed, or the write half shut), not a
    // wait for an answer.
    assert!(matches!(err, ClientError::Chatter(_)), "{err}");
}

#[tokio::test]
async fn a_requests_patience_grows_with_its_size() {
    let (closed_tx, _closed) = tokio::sync::mpsc::channel(1);
    let address = closing_peer(closed_tx).await;
    let config = ClientConfig {
        idle_timeout: Duration::from_secs(3),
        idle_per_mib: Duration::from_millis(200),
        ..quick()
    };
    let (client, _events) = connect(&address, init(Vec::new()), config).await.unwrap();
    for (len, patience) in [
        (0, 3000),
        (512 << 10, 3100),
        (1 << 20, 3200),
        (5 << 20, 4000),
        (100 << 20, 23000),
    ] {
        assert_eq!(
            client.patience(len),
            Duration::from_millis(patience),
            "{len} bytes"
        );
    }
    client.close().await;
}

#[tokio::test]
async fn a_notification_is_acknowledged_when_the_server_asks_and_only_then() {
    use hat_eventer_client::chatter::{Data, Msg};
    // A server asks for an acknowledgement by leaving its conversation
    // open (`last: false`); hat-event 0.9.44 never does, later ones may.
    let notify = |id: i64, last: bool| Msg {
        id,
        first: id,
        owner: true,
        token: true,
        last,
        data: Data {
            data_type: MsgEventsNotify::TYPE.into(),
            data: encode(&MsgEventsNotify(large_events("n", 1))).into(),
        },
    };
    let (report_tx, mut report) = tokio::sync::mpsc::unbounded_channel();
    let address = fake_peer(move |mut stream| {
        let report = report_tx.clone();
        async move {
            answer_init(&mut stream).await;
            stream.write_all(&notify(2, true).to_frame()).await.unwrap();
            stream
                .write_all(&notify(3, false).to_frame())
                .await
                .unwrap();
            let _ = report.send(read_msg(&mut stream).await);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await;
    let (_client, mut events) = connect(&address, init(Vec::new()), quick()).await.unwrap();
    for _ in 0..2 {
        within(events.recv(), "a notification").await.unwrap();
    }
    let ack = within(report.recv(), "the client's next message")
        .await
        .unwrap();
    assert_eq!(ack.data.data_type, MsgEventsAck::TYPE);
    assert_eq!((ack.first, ack.owner, ack.last), (3, false, true));
}

#[tokio::test]
async fn an_answer_of_the_wrong_type_is_a_protocol_error_naming_both_types() {
    let address = fake_peer(|mut stream| async move {
        answer_init(&mut stream).await;
        let query = read_msg(&mut stream).await;
        let frame = frame_of(2, query.first, false, &MsgRegisterRes::Failure);
        stream.write_all(&frame).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (client, _events) = connect(&address, init(Vec::new()), quick()).await.unwrap();
    let params = QueryParams::Latest { event_types: None };
    let err = within(client.query(params), "the query's answer")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(QueryResult::TYPE) && text.contains(MsgRegisterRes::TYPE),
        "{text}"
    );
}

/// `count` events of 64 KiB JSON payloads under `[name, i]`.
fn large_events(name: &str, count: usize) -> Vec<Event> {
    (0..count)
        .map(|i| Event {
            id: EventId {
                server: 1,
                session: 1,
                instance: i as i64,
            },
            event_type: event_type(&[name, &i.to_string()]),
            timestamp: Timestamp { s: 0, us: 0 },
            source_timestamp: None,
            payload: Some(EventPayload::Json(format!("\"{}\"", "a".repeat(64 << 10)))),
        })
        .collect()
}

/// A peer that answers the client's init, then reads one request and
/// answers it with a query result of `events` events of 64 KiB payloads,
/// written in `pieces` pieces with `pause` after each, of which
/// `stop_after` are written before the peer falls silent for good.
async fn slow_peer(events: usize, pieces: usize, pause: Duration, stop_after: usize) -> String {
    late_slow_peer(Duration::ZERO, events, pieces, pause, stop_after).await
}

/// [`slow_peer`], silent for `build` before it starts the answer, as a
/// server building a large answer is.
async fn late_slow_peer(
    build: Duration,
    events: usize,
    pieces: usize,
    pause: Duration,
    stop_after: usize,
) -> String {
    fake_peer(move |mut stream| async move {
        answer_init(&mut stream).await;
        let request = read_msg(&mut stream).await;
        tokio::time::sleep(build).await;
        let result = QueryResult {
            events: large_events("slow", events),
            more_follows: false,
        };
        let frame = frame_of(2, request.first, false, &result);
        write_slowly(&mut stream, &frame, pieces, pause, stop_after).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await
}

/// A client that gives the server `timeout` of silence, before a query's
/// answer starts too.
fn idle(timeout: Duration) -> ClientConfig {
    idle_and_query(timeout, timeout)
}

/// A client that gives the server `idle` of silence, and `query` before a
/// query's answer starts.
fn idle_and_query(idle: Duration, query: Duration) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: idle,
        query_timeout: query,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_keeps_arriving_outlasts_the_idle_timeout() {
    // 3 MiB in 30 pieces, one every 150 ms: 4.5 s in all, never 1 s silent.
    let address = slow_peer(48, 30, Duration::from_millis(150), usize::MAX).await;
    let (client, _) = connect(&address, init(vec![]), idle(Duration::from_secs(1)))
        .await
        .unwrap();
    let started = Instant::now();
    let result = within(
        client.query(QueryParams::Latest { event_types: None }),
        "the slow answer",
    )
    .await
    .unwrap();
    assert_eq!(result.events.len(), 48);
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the answer came faster than the peer wrote it: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_stops_midway_times_out_after_the_idle_timeout() {
    let address = slow_peer(48, 30, Duration::from_millis(100), 10).await;
    let (client, _) = connect(&address, init(vec![]), idle(Duration::from_secs(1)))
        .await
        .unwrap();
    let started = Instant::now();
    let err = within(
        client.query(QueryParams::Latest { event_types: None }),
        "the stalled answer",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(..)), "{err}");
    assert!(err.to_string().contains("nothing came for 1.0s"), "{err}");
    let elapsed = started.elapsed();
    // 10 pieces (1 s), then 1 s of silence.
    assert!(
        elapsed > Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

/// Iterates a streamed query's events on a blocking thread; returns each
/// event's outcome with the time since `started` it came at.
async fn stream_events(
    stream: hat_eventer_client::client::QueryStream,
    started: Instant,
) -> Vec<(Result<Event, ClientError>, Duration)> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        stream
            .events(runtime)
            .map(|event| (event, started.elapsed()))
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_query_hands_out_events_while_the_answer_still_arrives() {
    // 3 MiB in 30 pieces, one every 150 ms: 4.5 s in all.
    let address = slow_peer(48, 30, Duration::from_millis(150), usize::MAX).await;
    let (client, _) = connect(&address, init(vec![]), idle(Duration::from_secs(2)))
        .await
        .unwrap();
    let started = Instant::now();
    let stream = within(
        client.query_streamed(QueryParams::Latest { event_types: None }),
        "the start of the answer",
    )
    .await
    .unwrap();
    let events = within(stream_events(stream, started), "the events").await;
    let (first, last) = (events[0].1, events[events.len() - 1].1);
    let events: Vec<Event> = events.into_iter().map(|(e, _)| e.unwrap()).collect();
    assert_eq!(events, large_events("slow", 48));
    assert!(
        first < Duration::from_secs(2) && last > Duration::from_secs(3),
        "first event at {first:?}, last at {last:?}: not handed out as they came"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_query_whose_answer_stops_midway_fails_after_the_idle_timeout() {
    let address = slow_peer(48, 30, Duration::from_millis(100), 10).await;
    // The query's longer patience is for the answer's start only.
    let config = idle_and_query(Duration::from_secs(1), Duration::from_secs(20));
    let (client, _) = connect(&address, init(vec![]), config).await.unwrap();
    let started = Instant::now();
    let stream = within(
        client.query_streamed(QueryParams::Latest { event_types: None }),
        "the start of the answer",
    )
    .await
    .unwrap();
    let mut events = within(stream_events(stream, started), "the events").await;
    let (last, at) = events.pop().unwrap();
    let err = last.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(..)), "{err}");
    assert!(events.iter().all(|(e, _)| e.is_ok()) && events.len() < 48);
    // 10 pieces (1 s), then 1 s of silence.
    assert!(
        at > Duration::from_millis(1900) && at < Duration::from_secs(5),
        "{at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_answer_may_start_after_the_idle_timeout_within_the_query_timeout() {
    // Silent for 2.5 s while "building", then 3 MiB in 10 pieces.
    let build = Duration::from_millis(2500);
    let config = idle_and_query(Duration::from_secs(1), Duration::from_secs(20));
    for streamed in [true, false] {
        let address = late_slow_peer(build, 48, 10, Duration::from_millis(50), usize::MAX).await;
        let (client, _) = connect(&address, init(vec![]), config.clone())
            .await
            .unwrap();
        let started = Instant::now();
        let params = QueryParams::Latest { event_types: None };
        let events = if streamed {
            let stream = within(client.query_streamed(params), "the late answer's start")
                .await
                .unwrap();
            let events = within(stream_events(stream, started), "the events").await;
            events.into_iter().map(|(e, _)| e.unwrap()).collect()
        } else {
            within(client.query(params), "the late answer")
                .await
                .unwrap()
                .events
        };
        assert_eq!(events, large_events("slow", 48), "streamed: {streamed}");
        assert!(started.elapsed() >= build, "{:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_answer_that_never_starts_times_out_after_the_query_timeout() {
    let config = idle_and_query(Duration::from_secs(1), Duration::from_secs(2));
    for streamed in [true, false] {
        let address = late_slow_peer(Duration::from_secs(60), 1, 1, Duration::ZERO, 1).await;
        let (client, _) = connect(&address, init(vec![]), config.clone())
            .await
            .unwrap();
        let started = Instant::now();
        let params = QueryParams::Latest { event_types: None };
        let err = if streamed {
            within(client.query_streamed(params), "the missing answer")
                .await
                .err()
                .expect("no answer came")
        } else {
            within(client.query(params), "the missing answer")
                .await
                .unwrap_err()
        };
        assert!(matches!(err, ClientError::Timeout(..)), "{err}");
        assert!(
            err.to_string().contains("nothing came for 2.0s (query)"),
            "{err}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed > Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
            "streamed: {streamed}: {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_query_of_the_real_server_returns_what_the_plain_one_does() {
    let server = HatServer::start();
    let (client, _) = connect(&server.address(), init(vec![]), ClientConfig::default())
        .await
        .unwrap();
    let sizes = [0, 10, 70 << 10, 3 << 20, 5];
    let events = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| RegisterEvent {
            event_type: event_type(&["streamed", &i.to_string()]),
            source_timestamp: None,
            payload: Some(EventPayload::Json(format!("\"{}\"", "z".repeat(size)))),
        })
        .collect();
    client.register(events, true).await.unwrap();
    let query = || QueryParams::Latest {
        event_types: Some(vec![event_type(&["streamed", "*"])]),
    };
    let plain = client.query(query()).await.unwrap().events;
    assert_eq!(plain.len(), sizes.len());
    let stream = client.query_streamed(query()).await.unwrap();
    let streamed: Vec<Event> = stream_events(stream, Instant::now())
        .await
        .into_iter()
        .map(|(e, _)| e.unwrap())
        .collect();
    assert_eq!(streamed, plain);
    // A stream dropped halfway leaves the connection as it was.
    let stream = client.query_streamed(query()).await.unwrap();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || stream.events(runtime).take(2).count())
        .await
        .unwrap();
    assert_eq!(client.query(query()).await.unwrap().events, plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_left_unanswered_while_an_answer_is_due_does_not_close_the_connection() {
    // A busy server answers nothing, not even pings, until its answer is
    // ready: here after 2 s, with pings due every 0.2 s.
    let address = fake_peer(|mut stream| async move {
        answer_init(&mut stream).await;
        let request = read_msg(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let result = QueryResult {
            events: vec![],
            more_follows: false,
        };
        let frame = frame_of(2, request.first, false, &result);
        stream.write_all(&frame).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut config = idle(Duration::from_secs(5));
    config.chatter.ping_delay = Duration::from_millis(200);
    config.chatter.ping_timeout = Duration::from_millis(200);
    let (client, _) = connect(&address, init(vec![]), config).await.unwrap();
    let result = within(
        client.query(QueryParams::Latest { event_types: None }),
        "the late answer",
    )
    .await
    .unwrap();
    assert!(result.events.is_empty());
    // With no answer due, the silent peer's unanswered pings close the
    // connection: a further request fails at once, not after its timeout.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let err = within(
        client.query(QueryParams::Latest { event_types: None }),
        "a request on the closed connection",
    )
    .await
    .unwrap_err();
    assert!(!matches!(err, ClientError::Timeout(..)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_notification_that_keeps_arriving_is_not_cut_by_unanswered_pings() {
    // The peer answers no ping; its notification of 3 MiB takes 4 s to
    // arrive, four times the 1 s a silent peer gets before being dropped.
    let address = fake_peer(|mut stream| async move {
        answer_init(&mut stream).await;
        let notify = MsgEventsNotify(large_events("notified", 48));
        let frame = frame_of(2, 2, true, &notify);
        write_slowly(
            &mut stream,
            &frame,
            40,
            Duration::from_millis(100),
            usize::MAX,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut config = idle(Duration::from_secs(5));
    config.chatter.ping_delay = Duration::from_millis(500);
    config.chatter.ping_timeout = Duration::from_millis(500);
    let (_client, mut notified) = connect(&address, init(vec![]), config).await.unwrap();
    let events = within(notified.recv(), "the slow notification")
        .await
        .expect("the connection closed before the notification arrived");
    assert_eq!(events.len(), 48);
}

/// Awaits `future`, failing the test, naming `what`, after 30 s.
async fn within<T>(future: impl std::future::Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 30 s"))
}

mod host_client {
    //! The host's supervised connection (the plugins' `EventClient`).

    use super::*;
    use aimm_backend_api::{
        ErrorKind, EventClient, EventPayload as ApiPayload, RegisterEvent as ApiRegister,
        RegisterMode,
    };
    use aimm_backend_api::{ROption, RVec};
    use aimm_backend_hat_host::{HatClientConfig, HatEventClient, ServerTarget};
    use aimm_backend_test_support::{threads::THREAD_DEADLINE, within_for};
    use std::sync::Arc;

    /// A host client subscribed to `["host", "*"]`, and its runtime.
    fn host_client(server: &HatServer) -> (tokio::runtime::Runtime, Arc<HatEventClient>) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = HatClientConfig {
            target: ServerTarget::Fixed(server.address()),
            client_name: "host-test".into(),
            subscriptions: vec![vec!["host".into(), "*".into()]],
            timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(500),
        };
        let (client, _events) = HatEventClient::start(runtime.handle().clone(), config);
        wait_connected(&client);
        (runtime, client)
    }

    type Registered = aimm_backend_api::Result<ROption<RVec<ROption<aimm_backend_api::Event>>>>;

    /// `client.register` on a thread of its own, failing the test after
    /// `deadline`: a call that never returns must not hang the test.
    fn register_within(
        deadline: Duration,
        client: &Arc<HatEventClient>,
        events: RVec<ApiRegister>,
        mode: RegisterMode,
    ) -> Registered {
        let client = client.clone();
        within_for("the registration", deadline, move || {
            client.register(events, mode)
        })
    }

    /// [`register_within`] the usual deadline.
    fn register(
        client: &Arc<HatEventClient>,
        events: RVec<ApiRegister>,
        mode: RegisterMode,
    ) -> Registered {
        register_within(THREAD_DEADLINE, client, events, mode)
    }

    /// `client.query_latest`, as [`register`] runs registrations.
    fn query_latest(
        client: &Arc<HatEventClient>,
        event_types: RVec<aimm_backend_api::EventType>,
    ) -> aimm_backend_api::Result<RVec<aimm_backend_api::Event>> {
        let client = client.clone();
        within_for("the query", THREAD_DEADLINE, move || {
            client.query_latest(event_types)
        })
    }

    fn stored_types(client: &Arc<HatEventClient>) -> Vec<aimm_backend_api::EventType> {
        query_latest(
            client,
            vec![aimm_backend_api::event_type(["host", "*"])].into(),
        )
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
    }

    fn wait_connected(client: &HatEventClient) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !client.is_connected() {
            assert!(
                Instant::now() < deadline,
                "no connection to the event server"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn model_event(id: &str) -> ApiRegister {
        ApiRegister {
            event_type: aimm_backend_api::event_type(["host", "model", id]),
            source_timestamp: aimm_backend_api::ROption::RNone,
            payload: aimm_backend_api::ROption::RSome(ApiPayload::Json(r#"{"x": 1}"#.into())),
        }
    }

    #[test]
    fn persisted_registrations_survive_a_server_killed_right_after() {
        let server = HatServer::start();
        let (_runtime, client) = host_client(&server);
        let ids: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        for id in &ids {
            let registered = register(
                &client,
                vec![model_event(id)].into(),
                RegisterMode::Persisted,
            )
            .unwrap();
            assert_eq!(registered.unwrap().len(), 1);
        }
        // SIGKILL: the server gets no chance to flush what it holds.
        server.kill();
        server.start_again();
        wait_connected(&client);
        let stored = stored_types(&client);
        for id in &ids {
            let expected = aimm_backend_api::event_type(["host", "model", id]);
            assert!(stored.contains(&expected), "event {id} was lost");
        }
    }

    #[test]
    fn a_persisted_registration_returns_the_events_as_the_server_numbered_and_stored_them() {
        let server = HatServer::start();
        let (_runtime, client) = host_client(&server);
        let mut events = vec![model_event("a"), model_event("b"), model_event("c")];
        // Escapes the server writes differently, a binary payload, none.
        events[0].payload = aimm_backend_api::ROption::RSome(ApiPayload::Json(
            r#"{"text":"\u00e9\n", "n": [1, 2.5]}"#.into(),
        ));
        events[1].payload = aimm_backend_api::ROption::RSome(ApiPayload::Binary {
            payload_type: "bin".into(),
            data: vec![0, 255].into(),
        });
        events[2].payload = aimm_backend_api::ROption::RNone;
        let registered: Vec<_> = register(&client, events.into(), RegisterMode::Persisted)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap())
            .collect();
        let types: Vec<_> = registered.iter().map(|e| e.event_type.clone()).collect();
        let expected: Vec<_> = ["a", "b", "c"]
            .map(|id| aimm_backend_api::event_type(["host", "model", id]))
            .into();
        assert_eq!(types, expected, "in the order registered");
        for event in &registered {
            let stored = query_latest(&client, vec![event.event_type.clone()].into()).unwrap();
            assert_eq!(stored[0].id, event.id, "{:?}", event.event_type);
        }
        let sessions: Vec<i64> = registered.iter().map(|e| e.id.session).collect();
        assert!(sessions.windows(2).all(|w| w[0] == w[1]), "one request");
        let instances: Vec<i64> = registered.iter().map(|e| e.id.instance).collect();
        assert_eq!(instances, [1, 2, 3]);
    }

    #[test]
    fn a_persisted_registration_the_server_never_reports_fails_in_bounded_time() {
        let server = HatServer::start();
        let (_runtime, client) = host_client(&server);
        // Outside the subscription: no notification will ever report it.
        let mut event = model_event("1");
        event.event_type = aimm_backend_api::event_type(["elsewhere", "1"]);
        let started = Instant::now();
        let err = register_within(
            Duration::from_secs(4),
            &client,
            vec![event].into(),
            RegisterMode::Persisted,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(
            err.message
                .contains("did not report the registered events persisted")
                && err.message.contains("subscription")
                && err.message.contains(&server.address()),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn survives_a_server_restart_and_fails_fast_while_it_is_down() {
        let server = HatServer::start();
        let (_runtime, client) = host_client(&server);
        register(
            &client,
            vec![model_event("1")].into(),
            RegisterMode::Registered,
        )
        .unwrap();
        assert!(
            stored_types(&client).contains(&aimm_backend_api::event_type(["host", "model", "1"]))
        );

        server.stop();
        // Every call during the outage fails fast and says what is wrong.
        for _ in 0..5 {
            let started = Instant::now();
            let err = register_within(
                Duration::from_secs(3),
                &client,
                vec![model_event("2")].into(),
                RegisterMode::Registered,
            )
            .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
            assert!(err.message.contains(&server.address()), "{err}");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "took {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        server.start_again();
        wait_connected(&client);
        assert!(
            stored_types(&client).contains(&aimm_backend_api::event_type(["host", "model", "1"]))
        );
        register(
            &client,
            vec![model_event("3")].into(),
            RegisterMode::Registered,
        )
        .unwrap();
        assert!(
            stored_types(&client).contains(&aimm_backend_api::event_type(["host", "model", "3"]))
        );
    }

    /// A model event of about `size` bytes whose payload names `tag`.
    fn large_event(id: &str, tag: usize, size: usize) -> ApiRegister {
        let filler = "x".repeat(size);
        ApiRegister {
            payload: aimm_backend_api::ROption::RSome(ApiPayload::Json(
                format!(r#"{{"tag": {tag}, "filler": "{filler}"}}"#).into(),
            )),
            ..model_event(id)
        }
    }

    fn tag_of(event: &aimm_backend_api::Event) -> Option<u64> {
        match event.payload.as_ref().into_option()? {
            ApiPayload::Json(text) => {
                let value: serde_json::Value = serde_json::from_str(text).ok()?;
                value["tag"].as_u64()
            }
            ApiPayload::Binary { .. } => None,
        }
    }

    #[test]
    fn a_registered_registration_is_on_the_server_when_it_returns() {
        // Acknowledged without the answer's echo: by the answer to a query
        // sent after it on the same connection. Another connection, asking
        // right after the call returns, must find it; were the call to
        // return before the server had registered it, the server would
        // still be decoding these 2 MiB when the other query came.
        let server = HatServer::start();
        let (_runtime, writer) = host_client(&server);
        let (_other_runtime, reader) = host_client(&server);
        for tag in 0..20 {
            let answer = register(
                &writer,
                vec![large_event("big", tag, 2 << 20)].into(),
                RegisterMode::Registered,
            )
            .unwrap();
            assert!(answer.is_none(), "registered without the echo");
            let stored = query_latest(
                &reader,
                vec![aimm_backend_api::event_type(["host", "model", "big"])].into(),
            )
            .unwrap();
            assert_eq!(stored.len(), 1);
            assert_eq!(tag_of(&stored[0]), Some(tag as u64), "registration {tag}");
        }
        // Events without payloads come back numbered, as before.
        let claim = ApiRegister {
            payload: aimm_backend_api::ROption::RNone,
            ..model_event("claim")
        };
        let answer = register(
            &writer,
            vec![claim.clone(), claim].into(),
            RegisterMode::Registered,
        )
        .unwrap()
        .unwrap();
        assert_eq!(answer.len(), 2);
        assert!(answer.iter().all(|event| event.is_some()));
    }
}
