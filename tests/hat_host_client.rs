//! The host's event client (`aimm_backend_hat_host::HatEventClient`)
//! driven directly, in process, against real `hat-event-server` processes:
//! what each registration mode returns and when, calls while the server is
//! away, waits that end when they must, a target that moves, and the
//! connection's end when the client goes. Two misbehaving peers (one that
//! hangs up at once, one that never answers) are plain TCP listeners: no
//! real server does that on purpose.
//!
//! Every blocking call runs with a deadline (`within_for`).

use aimm_backend_api::{
    event_type, ErrorKind, Event, EventClient, EventPayload, ROption, RVec, RegisterEvent,
    RegisterMode,
};
use aimm_backend_hat_host::{HatClientConfig, HatEventClient, ServerTarget};
use aimm_backend_tests::{query_raw, register_raw, within_for, HatServer};
use hat_eventer_client::eventer_msg::{self as msg, QueryParams};
use hat_monitor_client::ServerData;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc as async_mpsc, watch};

/// The client's subscription: every test's events but the "unnotified" ones.
const PREFIX: [&str; 2] = ["aimm", "client"];

/// A host's client of `target` on a runtime of its own, with the stream
/// of notified events.
struct Host {
    runtime: Runtime,
    client: Arc<HatEventClient>,
    events: async_mpsc::UnboundedReceiver<Vec<Event>>,
}

impl Host {
    fn start(target: ServerTarget, timeout: Duration, idle_timeout: Duration) -> Host {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (client, events) = HatEventClient::start(
            runtime.handle().clone(),
            HatClientConfig {
                target,
                client_name: "hat_host_client".into(),
                subscriptions: vec![PREFIX
                    .iter()
                    .map(|s| s.to_string())
                    .chain(["*".into()])
                    .collect()],
                timeout,
                idle_timeout,
                query_timeout: idle_timeout,
                max_backoff: Duration::from_millis(300),
            },
        );
        Host {
            runtime,
            client,
            events,
        }
    }

    /// A client of `server` with a 10 s connect timeout and `idle_timeout`,
    /// once it is connected.
    fn connected(server: &HatServer, idle_timeout: Duration) -> Host {
        let host = Host::start(
            ServerTarget::Fixed(server.address()),
            Duration::from_secs(10),
            idle_timeout,
        );
        host.wait_connected(true);
        host
    }

    /// Waits until the client is (or is not) connected; fails the test
    /// after 15 s (a server on loopback takes well under one).
    fn wait_connected(&self, connected: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.client.is_connected() != connected {
            assert!(
                Instant::now() < deadline,
                "the client is still {}connected after 15 s",
                if connected { "not " } else { "" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `register` on a thread of its own, failing the test if it takes
    /// longer than `deadline`.
    fn register(
        &self,
        events: Vec<RegisterEvent>,
        mode: RegisterMode,
        deadline: Duration,
    ) -> aimm_backend_api::Result<ROption<RVec<ROption<Event>>>> {
        let client = self.client.clone();
        within_for(&format!("a {mode:?} registration"), deadline, move || {
            client.register(events.into(), mode)
        })
    }
}

impl Host {
    /// A persisted registration of `events` started on a thread of its
    /// own; its outcome arrives on the receiver.
    fn persisted_in_background(
        &self,
        events: Vec<RegisterEvent>,
    ) -> mpsc::Receiver<aimm_backend_api::Result<ROption<RVec<ROption<Event>>>>> {
        let client = self.client.clone();
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(client.register(events.into(), RegisterMode::Persisted));
        });
        outcome
    }
}

/// An event `[aimm, client, last]` carrying `data` as a binary payload.
fn event(last: &str, data: &[u8]) -> RegisterEvent {
    RegisterEvent {
        event_type: event_type(PREFIX.iter().copied().chain([last])),
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(binary(data)),
    }
}

fn binary(data: &[u8]) -> EventPayload {
    EventPayload::Binary {
        payload_type: "test".into(),
        data: data.to_vec().into(),
    }
}

/// An event outside the client's subscription: the server stores it but
/// never notifies it to this client.
fn unnotified(last: &str) -> RegisterEvent {
    RegisterEvent {
        event_type: event_type(["other", last]),
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(binary(b"x")),
    }
}

/// The last type segments of the events `server` holds under the prefix.
fn stored_on(server: &HatServer) -> Vec<String> {
    let types = vec![PREFIX
        .iter()
        .map(|s| s.to_string())
        .chain(["*".into()])
        .collect()];
    let mut names: Vec<String> = query_raw(
        server,
        QueryParams::Latest {
            event_types: Some(types),
        },
    )
    .into_iter()
    .map(|e| e.event_type[2].clone())
    .collect();
    names.sort();
    names
}

/// The one event of a registration's answer.
fn only_event(answer: ROption<RVec<ROption<Event>>>) -> Event {
    let events = answer
        .into_option()
        .expect("the registration returns its events");
    assert_eq!(events.len(), 1, "{events:?}");
    events[0]
        .clone()
        .into_option()
        .expect("the event was registered")
}

#[test]
fn each_registration_mode_returns_what_it_promises() {
    let server = HatServer::start();
    let host = Host::connected(&server, Duration::from_secs(30));
    let deadline = Duration::from_secs(30);

    let sent = host.register(vec![event("sent", b"s")], RegisterMode::Sent, deadline);
    assert!(matches!(sent, Ok(ROption::RNone)), "{sent:?}");

    // Registered with payloads: fenced, so no events come back, but the
    // server holds the event once the call returns.
    let fenced = host.register(
        vec![event("fenced", b"f")],
        RegisterMode::Registered,
        deadline,
    );
    assert!(matches!(fenced, Ok(ROption::RNone)), "{fenced:?}");
    assert!(stored_on(&server).contains(&"fenced".to_string()));

    let mut bare = event("bare", b"");
    bare.payload = ROption::RNone;
    let registered = only_event(
        host.register(vec![bare], RegisterMode::Registered, deadline)
            .unwrap(),
    );
    assert_eq!(
        registered.event_type,
        event_type(["aimm", "client", "bare"])
    );
    assert_eq!(registered.payload, ROption::RNone);

    let persisted = only_event(
        host.register(
            vec![event("persisted", b"p")],
            RegisterMode::Persisted,
            deadline,
        )
        .unwrap(),
    );
    assert_eq!(
        persisted.event_type,
        event_type(["aimm", "client", "persisted"])
    );
    // Without its payload: the caller has it.
    assert_eq!(persisted.payload, ROption::RNone);
    assert!(
        persisted.id > registered.id,
        "numbered after the one before"
    );

    let mut latest: Vec<String> = host
        .client
        .query_latest(vec![event_type(["aimm", "client", "*"])].into())
        .unwrap()
        .into_iter()
        .map(|e| e.event_type[2].to_string())
        .collect();
    latest.sort();
    assert_eq!(latest, ["bare", "fenced", "persisted", "sent"]);
}

#[test]
fn a_query_stops_at_the_first_error_its_callback_returns() {
    let server = HatServer::start();
    register_raw(
        &server,
        ["one", "two", "three"]
            .iter()
            .map(|last| msg::RegisterEvent {
                event_type: vec!["aimm".into(), "client".into(), last.to_string()],
                source_timestamp: None,
                payload: None,
            })
            .collect(),
    );
    let host = Host::connected(&server, Duration::from_secs(30));
    let mut seen = 0;
    let outcome = host.client.query_latest_each(
        vec![event_type(["aimm", "client", "*"])].into(),
        &mut |_| {
            seen += 1;
            Err(aimm_backend_api::BackendError::storage(
                "the callback's own error",
            ))
        },
    );
    let err = outcome.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Storage);
    assert!(err.message.contains("the callback's own error"), "{err}");
    assert_eq!(seen, 1);
}

#[test]
fn a_persisted_registration_returns_only_once_its_event_is_on_disk() {
    // Flushes 2 s apart: an acknowledgement taken before the flush would
    // come well before it, and the kill right after it would lose the event.
    let server = HatServer::start_flushing_every(Duration::from_secs(2));
    let host = Host::connected(&server, Duration::from_secs(30));
    let answer = host
        .register(
            vec![event("durable", b"d")],
            RegisterMode::Persisted,
            Duration::from_secs(30),
        )
        .unwrap();
    server.kill();
    assert_eq!(
        only_event(answer).event_type,
        event_type(["aimm", "client", "durable"])
    );
    server.start_again();
    assert_eq!(stored_on(&server), ["durable"]);
}

#[test]
fn a_persisted_registration_refuses_a_json_payload_that_does_not_parse() {
    let server = HatServer::start();
    let host = Host::connected(&server, Duration::from_secs(30));
    let mut bad = event("bad", b"");
    bad.payload = ROption::RSome(EventPayload::Json("{not json".into()));
    let err = host
        .register(
            vec![event("good", b"g"), bad],
            RegisterMode::Persisted,
            Duration::from_secs(30),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("does not parse"), "{err}");
    // Nothing was sent, and the connection is still good.
    assert!(host.client.is_connected());
    host.register(
        vec![event("after", b"a")],
        RegisterMode::Registered,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(stored_on(&server), ["after"]);
}

#[test]
fn a_persisted_wait_ends_as_unavailable_when_the_connection_drops() {
    // The flush is 10 s away and the idle time 60 s: only the drop can end
    // the wait within the deadline.
    let server = HatServer::start_flushing_every(Duration::from_secs(10));
    let host = Host::connected(&server, Duration::from_secs(60));
    let outcome = host.persisted_in_background(vec![event("lost", b"l")]);
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    let err = outcome
        .recv_timeout(Duration::from_secs(10))
        .expect("the wait did not end within 10 s of the kill")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("connection dropped before"), "{err}");
}

#[test]
fn a_persisted_registration_never_notified_fails_after_the_idle_time() {
    let server = HatServer::start();
    let host = Host::connected(&server, Duration::from_secs(1));
    let err = host
        .register(
            vec![unnotified("never")],
            RegisterMode::Persisted,
            Duration::from_secs(20),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message
            .contains("did not report the registered events persisted"),
        "{err}"
    );
    assert!(err.message.contains(&server.address()), "{err}");
}

#[test]
fn notifications_of_other_events_keep_a_persisted_wait_alive() {
    let server = HatServer::start();
    let mut host = Host::connected(&server, Duration::from_secs(2));
    let outcome = host.persisted_in_background(vec![unnotified("awaited")]);
    // Another host writes events the client is notified of for twice the
    // idle time: the connection is busy, so the wait goes on.
    let noise_until = Instant::now() + Duration::from_secs(4);
    let mut written = 0;
    while Instant::now() < noise_until {
        register_raw(
            &server,
            vec![msg::RegisterEvent {
                event_type: vec!["aimm".into(), "client".into(), format!("noise{written}")],
                source_timestamp: None,
                payload: None,
            }],
        );
        written += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        matches!(outcome.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the wait ended while notifications kept coming"
    );
    // Then the server falls silent, and the wait ends.
    let err = outcome
        .recv_timeout(Duration::from_secs(20))
        .expect("the wait did not end after the server fell silent")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    let mut notified = 0;
    while let Ok(batch) = host.events.try_recv() {
        notified += batch.len();
    }
    assert_eq!(notified, written, "every noise event is notified once");
}

#[test]
fn calls_fail_at_once_while_the_server_is_away_and_work_again_when_it_is_back() {
    let server = HatServer::start();
    let host = Host::connected(&server, Duration::from_secs(30));
    server.stop();
    host.wait_connected(false);
    for mode in [
        RegisterMode::Sent,
        RegisterMode::Registered,
        RegisterMode::Persisted,
    ] {
        let err = host
            .register(vec![event("away", b"a")], mode, Duration::from_secs(2))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains(&server.address()), "{err}");
    }
    let client = host.client.clone();
    let err = within_for("a query", Duration::from_secs(2), move || {
        client.query_latest(vec![event_type(["aimm", "client", "*"])].into())
    })
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);

    server.start_again();
    host.wait_connected(true);
    host.register(
        vec![event("back", b"b")],
        RegisterMode::Registered,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(stored_on(&server), ["back"]);
}

#[test]
fn a_followed_target_moves_with_the_active_server() {
    let first = HatServer::start();
    let second = HatServer::start();
    let (active, follower) = watch::channel(None);
    let host = Host::start(
        ServerTarget::Followed {
            group: "event".into(),
            active: follower,
        },
        Duration::from_secs(10),
        Duration::from_secs(30),
    );
    let deadline = Duration::from_secs(30);

    let err = host
        .register(
            vec![event("nowhere", b"n")],
            RegisterMode::Registered,
            Duration::from_secs(2),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        err.message.contains("group event (none active now)"),
        "{err}"
    );

    let server_data = |server: &HatServer| {
        Some(ServerData {
            server_id: 1,
            address: server.address(),
            server_token: None,
        })
    };
    active.send_replace(server_data(&first));
    host.wait_connected(true);
    // Persisted: the connection asks for the notifications of the named
    // server's own events.
    host.register(
        vec![event("on-first", b"1")],
        RegisterMode::Persisted,
        deadline,
    )
    .unwrap();

    // A call racing the move may still reach the first server; once one
    // reaches the second, the connection has moved, and stays there.
    active.send_replace(server_data(&second));
    let moved_by = Instant::now() + deadline;
    for attempt in 0.. {
        let probe = format!("probe-{attempt}");
        match host.register(
            vec![event(&probe, b"2")],
            RegisterMode::Registered,
            deadline,
        ) {
            Ok(_) if stored_on(&second).contains(&probe) => break,
            Ok(_) => {}
            Err(err) => assert_eq!(err.kind, ErrorKind::Unavailable, "{err}"),
        }
        assert!(
            Instant::now() < moved_by,
            "nothing reached the second server within 30 s of the move"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    host.register(
        vec![event("after", b"3")],
        RegisterMode::Persisted,
        deadline,
    )
    .unwrap();
    assert!(stored_on(&second).contains(&"after".to_string()));
    assert!(!stored_on(&first).contains(&"after".to_string()));

    active.send_replace(None);
    host.wait_connected(false);
    let err = host
        .register(
            vec![event("gone", b"g")],
            RegisterMode::Registered,
            Duration::from_secs(2),
        )
        .unwrap_err();
    assert!(err.message.contains("none active now"), "{err}");
}

#[test]
fn dropping_the_client_closes_its_connection() {
    let server = HatServer::start();
    let mut host = Host::connected(&server, Duration::from_secs(30));
    drop(host.client);
    // The stream of notifications ends when the supervisor stops, which it
    // does once the connection is closed.
    let ended = host.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            while host.events.recv().await.is_some() {}
        })
        .await
    });
    assert!(
        ended.is_ok(),
        "the connection was still open 10 s after the drop"
    );
}

/// A TCP listener on loopback that counts the connections it accepts and
/// hands each to `serve` on a thread of its own.
fn counting_listener(serve: fn(std::net::TcpStream)) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(stream));
        }
    });
    (address, accepted)
}

#[test]
fn a_server_that_keeps_hanging_up_is_retried_with_growing_waits() {
    let (address, accepted) = counting_listener(drop);
    let host = Host::start(
        ServerTarget::Fixed(address),
        Duration::from_secs(2),
        Duration::from_secs(2),
    );
    std::thread::sleep(Duration::from_secs(3));
    let attempts = accepted.load(Ordering::SeqCst);
    // Waits of 0.1, 0.2 and then 0.3 s (the maximum): about 11 attempts in
    // 3 s. Waits that shrank would make hundreds.
    assert!((2..=20).contains(&attempts), "{attempts} attempts in 3 s");
    assert!(!host.client.is_connected());
}

#[test]
fn a_server_that_never_answers_is_given_up_after_the_connect_timeout() {
    let (address, accepted) = counting_listener(|stream| {
        // Holds the connection open and says nothing.
        std::thread::sleep(Duration::from_secs(30));
        drop(stream);
    });
    let host = Host::start(
        ServerTarget::Fixed(address),
        Duration::from_millis(300),
        Duration::from_secs(2),
    );
    std::thread::sleep(Duration::from_secs(3));
    let attempts = accepted.load(Ordering::SeqCst);
    assert!(
        attempts >= 3,
        "{attempts} attempts in 3 s with a 0.3 s timeout"
    );
    assert!(!host.client.is_connected());
}
