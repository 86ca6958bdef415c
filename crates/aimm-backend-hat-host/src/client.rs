//! The host's connection to a Hat event server, lent to plugins as their
//! [`EventClient`].
//!
//! The host owns the connection: a supervisor task connects, and when the
//! connection drops (the server restarted, the network failed) reconnects
//! with exponential backoff. A connection to the active server of a
//! redundant group ([`ServerTarget::Followed`]) moves when a monitor
//! blesses another server (a fail-over). While there is no connection,
//! calls fail at once with [`ErrorKind::Unavailable`] naming the server; a call on a live
//! connection fails once the server has sent nothing for the configured idle
//! time while an answer is due (a long transfer that keeps moving never
//! does). No call hangs.
//!
//! The connection asks the server for notifications of *persisted* events
//! only. Other hosts' changes therefore reach `process_events` once they are
//! durable, and the same notifications tell [`RegisterMode::Persisted`]
//! callers when their own events are on disk: a persisted registration is
//! sent without asking for an answer and recognised in those notifications
//! (see [`crate::notified`]); the server's answer would echo every event
//! whole once more. A JSON payload that does not parse cannot be recognised
//! that way, and the server would refuse it (hat-event-server 0.9.44 drops
//! the connection): such a persisted registration is refused before it is
//! sent. A registered one whose events all carry payloads is sent
//! without asking for an answer too, followed by an empty query whose
//! answer tells it is registered (`Client::register_fenced`); it returns
//! no events then, as [`EventClient::register`] allows.

use crate::convert::{register_event_ref, to_api_event};
use crate::notified::{Expected, Ticket};
use crate::router::Router;
use aimm_backend_api::{
    BackendError, ErrorKind, Event, EventClient, EventType, ROption, RVec, RegisterEvent,
    RegisterMode, Result,
};
use hat_eventer_client::client::{connect, Client, ClientConfig};
use hat_eventer_client::connection::Activity;
use hat_eventer_client::eventer_msg as msg;
use hat_monitor_client::ServerData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// Which event server a [`HatEventClient`] talks to.
#[derive(Debug, Clone)]
pub enum ServerTarget {
    /// One server: `host:port` of its eventer interface.
    Fixed(String),
    /// The active server of a redundant group, as a monitor follower
    /// reports it ([`hat_monitor_client::follow_active`]): the connection
    /// moves when it changes, and there is none while no server is active.
    /// Only events the active server registered itself are notified, as
    /// to a Python host's client (`hat.event.component`).
    Followed {
        /// The group's name, for messages.
        group: String,
        /// The active server, if any.
        active: watch::Receiver<Option<ServerData>>,
    },
}

impl ServerTarget {
    /// The address to connect to now, and the server id to ask
    /// notifications of (a followed server's own events only).
    fn current(&self) -> Option<(String, Option<i64>)> {
        match self {
            ServerTarget::Fixed(address) => Some((address.clone(), None)),
            ServerTarget::Followed { active, .. } => active
                .borrow()
                .as_ref()
                .map(|server| (server.address.clone(), Some(server.server_id))),
        }
    }

    /// Waits until the target may have moved (never, for a fixed one).
    async fn moved(&mut self) {
        match self {
            ServerTarget::Fixed(_) => std::future::pending().await,
            ServerTarget::Followed { active, .. } => {
                if active.changed().await.is_err() {
                    // The follower is gone: nothing will move any more.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

impl std::fmt::Display for ServerTarget {
    /// `Hat event server at HOST:PORT`, or `the active Hat event server of
    /// group G (now at HOST:PORT | none)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerTarget::Fixed(address) => write!(f, "Hat event server at {address}"),
            ServerTarget::Followed { group, active } => match active.borrow().as_ref() {
                Some(server) => write!(
                    f,
                    "the active Hat event server of group {group} (server {} at {})",
                    server.server_id, server.address
                ),
                None => write!(
                    f,
                    "the active Hat event server of group {group} (none active now)"
                ),
            },
        }
    }
}

/// Settings of the host's event server connection.
#[derive(Debug, Clone)]
pub struct HatClientConfig {
    /// The event server to talk to.
    pub target: ServerTarget,
    /// The client name the server sees (the server config's `name`).
    pub client_name: String,
    /// Event types whose events the server should notify.
    pub subscriptions: Vec<Vec<String>>,
    /// Bound on connecting.
    pub timeout: Duration,
    /// How long the server may stay silent while an answer is due (see
    /// [`ClientConfig::idle_timeout`]; more for large registrations).
    pub idle_timeout: Duration,
    /// How long the server may take to start answering a query (see
    /// [`ClientConfig::query_timeout`]).
    pub query_timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// An [`EventClient`] over a supervised connection to one event server.
pub struct HatEventClient {
    runtime: Handle,
    config: HatClientConfig,
    current: Arc<Mutex<Option<Connection>>>,
    /// The live connection's number (0: none), to notice a drop while
    /// waiting.
    live: watch::Receiver<u64>,
    /// Where notified batches go first: the persisted registrations sent
    /// without asking for an answer wait there.
    router: Arc<Router<msg::Event>>,
    /// The supervisor runs while this lives (it holds only a weak reference).
    _alive: Arc<()>,
}

/// The live connection and its number (each reconnect gets a new one).
#[derive(Clone)]
struct Connection {
    number: u64,
    client: Client,
}

impl HatEventClient {
    /// Starts connecting (in the background, on `runtime`) and returns the
    /// client and the stream of notified events, which outlives reconnects.
    pub fn start(
        runtime: Handle,
        config: HatClientConfig,
    ) -> (Arc<HatEventClient>, mpsc::UnboundedReceiver<Vec<Event>>) {
        let current = Arc::new(Mutex::new(None));
        let alive = Arc::new(());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (live_tx, live) = watch::channel(0);
        let router = Arc::new(Router::default());
        runtime.spawn(supervise(
            Supervised {
                config: config.clone(),
                current: current.clone(),
                alive: Arc::downgrade(&alive),
                live: live_tx,
                router: router.clone(),
            },
            events_tx,
        ));
        let client = HatEventClient {
            runtime,
            config,
            current,
            live,
            router,
            _alive: alive,
        };
        (Arc::new(client), events_rx)
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn connection(&self) -> Result<Connection> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.unavailable("not connected (reconnecting in the background)"))
    }

    /// Waits until every event of a registration sent without asking for
    /// an answer has been notified persisted on `connection` (see
    /// [`crate::notified`]), or the server stays silent for as long as a
    /// request of `request_len` bytes allows.
    fn wait_notified(
        &self,
        connection: &Connection,
        notified: tokio::sync::oneshot::Receiver<Vec<msg::Event>>,
        request_len: usize,
    ) -> Result<Vec<msg::Event>> {
        let number = connection.number;
        let timeout = connection.client.patience(request_len);
        let mut live = self.live.clone();
        let found = async move {
            tokio::select! {
                found = notified => found.ok(),
                _ = live.wait_for(|live| *live != number) => None,
            }
        };
        match self.run(until_silent(connection.client.activity(), timeout, found)) {
            Some(Some(found)) => Ok(found),
            Some(None) => Err(self.dropped_before_persisted()),
            None => Err(self.not_reported_persisted(timeout)),
        }
    }

    fn dropped_before_persisted(&self) -> BackendError {
        self.unavailable(
            "the connection dropped before the server reported the registered events \
             persisted; they may or may not be stored",
        )
    }

    fn not_reported_persisted(&self, timeout: Duration) -> BackendError {
        BackendError::new(
            ErrorKind::Unavailable,
            format!(
                "{} did not report the registered events persisted \
                 and sent nothing for {timeout:.1?}; persisted registration needs events that \
                 match the backend's subscription and that the server's backend keeps",
                self.config.target
            ),
        )
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> BackendError {
        BackendError::new(
            ErrorKind::Unavailable,
            format!("{} is unavailable: {why}", self.config.target),
        )
    }

    /// Runs `call` on the runtime and waits for it; `call` bounds its
    /// own wait. Must not be called from an async task (plugins run on the
    /// host's blocking threads).
    fn run<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(call)
    }
}

/// Waits for `wait` while an answer is due on the connection of
/// `activity`; `None` once the connection has sent nothing for `patience`
/// (a long transfer that keeps moving never runs out).
async fn until_silent<T>(
    activity: &Activity,
    patience: Duration,
    wait: impl std::future::Future<Output = T>,
) -> Option<T> {
    let _awaiting = activity.awaiting();
    let started = tokio::time::Instant::now();
    let mut wait = std::pin::pin!(wait);
    loop {
        let quiet_since = activity.last().max(started);
        match tokio::time::timeout_at(quiet_since + patience, wait.as_mut()).await {
            Ok(value) => return Some(value),
            Err(_) if activity.last() > quiet_since => continue,
            Err(_) => return None,
        }
    }
}

/// What the supervisor keeps up to date.
struct Supervised {
    config: HatClientConfig,
    current: Arc<Mutex<Option<Connection>>>,
    alive: std::sync::Weak<()>,
    live: watch::Sender<u64>,
    router: Arc<Router<msg::Event>>,
}

impl Supervised {
    fn set_current(&self, connection: Option<Connection>) {
        let number = connection.as_ref().map_or(0, |c| c.number);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = connection;
        self.live.send_replace(number);
    }
}

async fn supervise(supervised: Supervised, events: mpsc::UnboundedSender<Vec<Event>>) {
    let config = &supervised.config;
    let mut target = config.target.clone();
    let mut backoff = Duration::from_millis(100);
    let mut number = 0;
    while supervised.alive.strong_count() > 0 {
        let Some((address, server_id)) = target.current() else {
            // No server is active: wait for the monitor to bless one.
            tokio::select! {
                () = target.moved() => {}
                () = tokio::time::sleep(config.max_backoff) => {}
            }
            continue;
        };
        let init = msg::MsgInitReq {
            client_name: config.client_name.clone(),
            client_token: None,
            subscriptions: config.subscriptions.clone(),
            server_id,
            persisted: true,
        };
        let client_config = ClientConfig {
            connect_timeout: config.timeout,
            idle_timeout: config.idle_timeout,
            query_timeout: config.query_timeout,
            ..ClientConfig::default()
        };
        match connect(&address, init, client_config).await {
            Ok((client, mut notified)) => {
                tracing::info!(%address, "connected to the Hat event server");
                backoff = Duration::from_millis(100);
                number += 1;
                supervised.set_current(Some(Connection {
                    number,
                    client: client.clone(),
                }));
                let moved = loop {
                    tokio::select! {
                        batch = notified.recv() => {
                            let Some(batch) = batch else { break false };
                            supervised.router.arrived(number, &batch);
                            // Nobody may listen (a host without a backend
                            // that wants events); the router has served
                            // the persisted registrations already.
                            let _ = events.send(batch.into_iter().map(to_api_event).collect());
                        }
                        () = target.moved() => {
                            if target.current().map(|(a, _)| a) != Some(address.clone()) {
                                break true;
                            }
                        }
                    }
                };
                supervised.set_current(None);
                if moved {
                    tracing::warn!(%address, "the active Hat event server moved; following it");
                    client.close().await;
                    continue;
                }
                if supervised.alive.strong_count() == 0 {
                    return; // the client closed the connection on its way out
                }
                tracing::warn!(%address, "lost the Hat event server; reconnecting");
            }
            Err(err) => {
                tracing::debug!(%address, "connecting to the Hat event server: {err}");
            }
        }
        // A fail-over wakes the wait at once; a fixed server is retried
        // with backoff.
        tokio::select! {
            () = target.moved() => {}
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

impl Drop for HatEventClient {
    fn drop(&mut self) {
        // The marker goes first: closing the connection wakes the
        // supervisor, which must see the client gone by then, or it takes
        // the close for a lost server (and warns so) before it stops.
        drop(std::mem::replace(&mut self._alive, Arc::new(())));
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(connection) = current {
            self.runtime
                .spawn(async move { connection.client.close().await });
        }
    }
}

impl EventClient for HatEventClient {
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        let connection = self.connection()?;
        let client = &connection.client;
        let expected = match mode {
            RegisterMode::Persisted => Some(Expected::all_of(&events).ok_or_else(|| {
                BackendError::new(
                    ErrorKind::InvalidInput,
                    "a persisted registration whose JSON payload does not parse; \
                     the server would refuse it",
                )
            })?),
            _ => None,
        };
        let (answer, request_len) = {
            let segments: Vec<Vec<&str>> = events
                .iter()
                .map(|event| event.event_type.iter().map(|s| s.as_str()).collect())
                .collect();
            let refs: Vec<msg::RegisterEventRef<'_>> = events
                .iter()
                .zip(&segments)
                .map(|(event, segments)| register_event_ref(event, segments))
                .collect();
            let parts = msg::register_request_parts(&refs);
            if let Some(expected) = expected {
                // Waiting starts before sending: the notification may
                // come before `send_registration` returns.
                let (ticket, notified) =
                    self.router.awaited().wait_for(connection.number, expected);
                self.run(client.send_registration(&parts))
                    .map_err(|err| self.unavailable(err))?;
                (Outstanding::Notified(ticket, notified), parts.len())
            } else if mode == RegisterMode::Sent {
                self.run(client.send_registration(&parts))
                    .map_err(|err| self.unavailable(err))?;
                return Ok(ROption::RNone);
            } else if events.iter().all(|event| event.payload.is_some()) {
                // Registered, known without the answer's echo of every
                // payload (see `Client::register_fenced`).
                self.run(client.register_fenced(&parts))
                    .map_err(|err| self.unavailable(err))?;
                return Ok(ROption::RNone);
            } else {
                let answer = self
                    .run(client.request_registration(&parts))
                    .map_err(|err| self.unavailable(err))?;
                (Outstanding::Answer(answer), parts.len())
            }
        };
        // The request is sent: its payloads need not wait with us (nor be
        // held while a notification carrying them again arrives).
        drop(events);
        let registered = match answer {
            Outstanding::Notified(_ticket, notified) => {
                self.wait_notified(&connection, notified, request_len)?
            }
            Outstanding::Answer(answer) => {
                // The server echoes every payload; the caller has them.
                self.run(answer.wait_without_payloads())
                    .map_err(|err| self.unavailable(err))?
            }
        };
        Ok(ROption::RSome(
            registered
                .into_iter()
                .map(|e| ROption::RSome(to_api_event(e)))
                .collect(),
        ))
    }

    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        let mut events = Vec::new();
        self.query_latest_each(event_types, &mut |event| {
            events.push(event);
            Ok(())
        })?;
        Ok(events.into())
    }

    fn query_latest_each(
        &self,
        event_types: RVec<EventType>,
        each: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        let client = self.connection()?.client;
        let event_types = event_types
            .into_iter()
            .map(|t| t.into_iter().map(|s| s.to_string()).collect())
            .collect();
        // Decoded as it arrives: the answer is never held whole.
        let answer = self
            .run(client.query_streamed(msg::QueryParams::Latest {
                event_types: Some(event_types),
            }))
            .map_err(|err| self.unavailable(err))?;
        for event in answer.events(self.runtime.clone()) {
            each(to_api_event(event.map_err(|err| self.unavailable(err))?))?;
        }
        Ok(())
    }
}

/// A registration sent, and how its outcome will be known.
enum Outstanding<'a> {
    /// From the server's answer.
    Answer(hat_eventer_client::client::RegisterAnswer),
    /// From the persisted notifications of its events (see
    /// [`crate::notified`]).
    Notified(
        Ticket<'a, msg::Event>,
        tokio::sync::oneshot::Receiver<Vec<msg::Event>>,
    ),
}
