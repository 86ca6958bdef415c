//! The Hat side of the tests: the built event plugin, a host's event
//! client on a real server, and a raw client that talks to a server with
//! no backend between (to store what another host would, or to ask a
//! server's status).

use aimm_backend_hat_host::{HatClientConfig, HatEventClient, ServerTarget};
use aimm_backend_test_support::{HatMonitor, HatServer};
use hat_eventer_client::client::{connect, Client, ClientConfig};
use hat_eventer_client::eventer_msg::{Event, MsgInitReq, QueryParams, RegisterEvent, Status};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::release_dir;

/// The event backend plugin of [`release_dir`].
pub fn event_plugin() -> PathBuf {
    let path = release_dir().join("libaimm_backend_event.so");
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// A runtime and the host's event client on it, connected to `server` and
/// subscribed to `[aimm, *]`, which covers the model prefix of every test
/// (persisted writes need their events in the subscription).
pub fn connected_client(
    server: &HatServer,
    name: &str,
    timeout: Duration,
) -> (tokio::runtime::Runtime, Arc<HatEventClient>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (client, _events) = HatEventClient::start(
        runtime.handle().clone(),
        HatClientConfig {
            target: ServerTarget::Fixed(server.address()),
            client_name: name.into(),
            subscriptions: vec![vec!["aimm".into(), "*".into()]],
            timeout,
            idle_timeout: timeout,
            query_timeout: timeout,
            max_backoff: Duration::from_millis(300),
        },
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.is_connected() {
        assert!(
            Instant::now() < deadline,
            "no connection to {}",
            server.address()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (runtime, client)
}

/// Runs `talk` with a raw client of `server` (no subscriptions), on a
/// runtime of its own.
fn with_raw_client<T>(server: &HatServer, talk: impl AsyncFnOnce(&Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let init = MsgInitReq {
            client_name: "raw".into(),
            client_token: None,
            subscriptions: vec![],
            server_id: None,
            persisted: false,
        };
        let (client, _) = connect(&server.address(), init, ClientConfig::default())
            .await
            .unwrap_or_else(|err| panic!("no raw connection to {}: {err}", server.address()));
        let result = talk(&client).await;
        client.close().await;
        result
    })
}

/// Registers `events` on `server` as another host would, and returns them
/// as the server numbered them; fails the test if the server refuses.
pub fn register_raw(server: &HatServer, events: Vec<RegisterEvent>) -> Vec<Event> {
    with_raw_client(server, async |client| {
        client
            .register(events, true)
            .await
            .unwrap()
            .expect("an answer was asked for")
    })
}

/// The events of `params` on `server`; fails the test if the query fails.
pub fn query_raw(server: &HatServer, params: QueryParams) -> Vec<Event> {
    with_raw_client(server, async |client| {
        client.query(params).await.unwrap().events
    })
}

/// `server`'s status as it reports it to a new connection.
pub fn status_of(server: &HatServer) -> Status {
    with_raw_client(server, async |client| client.status())
}

/// Waits until `server` reports `status` (a monitor blesses a server of a
/// group, or stops blessing it, within a second or two), failing the test
/// after 60 s.
pub fn wait_status(server: &HatServer, status: Status) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = status_of(server);
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server {} still reports {now:?} after 60 s, not {status:?}",
            server.address()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A monitor and two servers of one group (`event`), server 1 operational
/// and server 2 its standby.
pub fn redundant_group() -> (HatMonitor, HatServer, HatServer) {
    let monitor = HatMonitor::start();
    let first = HatServer::start_in_group(&monitor, 1);
    wait_status(&first, Status::Operational);
    let second = HatServer::start_in_group(&monitor, 2);
    wait_status(&second, Status::Standby);
    (monitor, first, second)
}
