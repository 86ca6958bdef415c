//! The host's connection to a Hat event server, lent to plugins as their
//! [`EventClient`].
//!
//! The host owns the connection: a supervisor task connects, and when the
//! connection drops (the server restarted, the network failed) reconnects
//! with exponential backoff. While there is no connection, calls fail at
//! once with [`ErrorKind::Unavailable`] naming the server; a call on a live
//! connection that gets no answer fails after the configured timeout. No
//! call hangs.
//!
//! The connection asks the server for notifications of *persisted* events
//! only. Other hosts' changes therefore reach `process_events` once they are
//! durable, and the same notifications tell [`RegisterMode::Persisted`]
//! callers when their own events are on disk: the server flushes events in
//! the order it numbered them, so once it reports an event persisted, every
//! event it numbered before on that connection's session is persisted too.

use aimm_backend_api::{
    BackendError, ErrorKind, Event, EventClient, EventId, EventPayload, EventType, ROption,
    RString, RVec, RegisterEvent, RegisterMode, Result, Timestamp,
};
use hat_eventer_client::client::{connect, Client, ClientConfig};
use hat_eventer_client::eventer_msg as msg;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// Settings of the host's event server connection.
#[derive(Debug, Clone)]
pub struct HatClientConfig {
    /// `host:port` of the event server's eventer interface.
    pub address: String,
    /// The client name the server sees (the server config's `name`).
    pub client_name: String,
    /// Event types whose events the server should notify.
    pub subscriptions: Vec<Vec<String>>,
    /// Bound on connecting and on each call's answer.
    pub timeout: Duration,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

/// An [`EventClient`] over a supervised connection to one event server.
pub struct HatEventClient {
    runtime: Handle,
    config: HatClientConfig,
    current: Arc<Mutex<Option<Connection>>>,
    persisted: watch::Receiver<Persisted>,
    /// The supervisor runs while this lives (it holds only a weak reference).
    _alive: Arc<()>,
}

/// The live connection and its number (each reconnect gets a new one).
#[derive(Clone)]
struct Connection {
    number: u64,
    client: Client,
}

/// What the server has reported persisted on connection `connection`
/// (0: no connection).
#[derive(Debug, Clone, Copy, Default)]
struct Persisted {
    connection: u64,
    newest: Option<(i64, i64)>,
}

/// The `(session, instance)` order of event ids of one server.
fn order_of(id: &msg::EventId) -> (i64, i64) {
    (id.session, id.instance)
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
        let (persisted_tx, persisted) = watch::channel(Persisted::default());
        runtime.spawn(supervise(
            Supervised {
                config: config.clone(),
                current: current.clone(),
                alive: Arc::downgrade(&alive),
                persisted: persisted_tx,
            },
            events_tx,
        ));
        let client = HatEventClient {
            runtime,
            config,
            current,
            persisted,
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

    /// Waits until the server reports event `newest` of connection
    /// `connection` persisted.
    fn wait_persisted(&self, connection: u64, newest: (i64, i64)) -> Result<()> {
        let mut persisted = self.persisted.clone();
        let outcome = self.block_on(async move {
            persisted
                .wait_for(|p| p.connection != connection || p.newest >= Some(newest))
                .await
                .map(|p| *p)
        });
        match outcome {
            Ok(Ok(p)) if p.connection == connection => Ok(()),
            Ok(_) => Err(self.unavailable(
                "the connection dropped before the server reported the registered events \
                 persisted; they may or may not be stored",
            )),
            Err(_) => Err(BackendError::new(
                ErrorKind::Unavailable,
                format!(
                    "Hat event server at {} did not report the registered events persisted \
                     within {:?}; persisted registration needs events that match the \
                     backend's subscription and that the server's backend keeps",
                    self.config.address, self.config.timeout
                ),
            )),
        }
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> BackendError {
        BackendError::new(
            ErrorKind::Unavailable,
            format!(
                "Hat event server at {} is unavailable: {why}",
                self.config.address
            ),
        )
    }

    /// Runs `call` on the runtime and waits for it. Must not be called
    /// from an async task (plugins run on the host's blocking threads).
    fn block_on<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T> {
        let timeout = self.config.timeout;
        self.runtime
            .block_on(async { tokio::time::timeout(timeout, call).await })
            .map_err(|_| self.unavailable(format!("no answer within {timeout:?}")))
    }
}

/// What the supervisor keeps up to date.
struct Supervised {
    config: HatClientConfig,
    current: Arc<Mutex<Option<Connection>>>,
    alive: std::sync::Weak<()>,
    persisted: watch::Sender<Persisted>,
}

impl Supervised {
    fn set_current(&self, connection: Option<Connection>) {
        let number = connection.as_ref().map_or(0, |c| c.number);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = connection;
        self.persisted.send_replace(Persisted {
            connection: number,
            newest: None,
        });
    }

    fn note_persisted(&self, number: u64, batch: &[msg::Event]) {
        let Some(newest) = batch.iter().map(|e| order_of(&e.id)).max() else {
            return;
        };
        self.persisted.send_if_modified(|p| {
            let newer = p.connection == number && p.newest < Some(newest);
            if newer {
                p.newest = Some(newest);
            }
            newer
        });
    }
}

async fn supervise(supervised: Supervised, events: mpsc::UnboundedSender<Vec<Event>>) {
    let config = &supervised.config;
    let mut backoff = Duration::from_millis(100);
    let mut number = 0;
    while supervised.alive.strong_count() > 0 {
        let init = msg::MsgInitReq {
            client_name: config.client_name.clone(),
            client_token: None,
            subscriptions: config.subscriptions.clone(),
            server_id: None,
            persisted: true,
        };
        let client_config = ClientConfig {
            request_timeout: config.timeout,
            ..ClientConfig::default()
        };
        match connect(&config.address, init, client_config).await {
            Ok((client, mut notified)) => {
                tracing::info!(address = %config.address, "connected to the Hat event server");
                backoff = Duration::from_millis(100);
                number += 1;
                supervised.set_current(Some(Connection { number, client }));
                while let Some(batch) = notified.recv().await {
                    supervised.note_persisted(number, &batch);
                    // Nobody may listen (a host without a backend that wants
                    // events); the notifications still serve `Persisted`.
                    let _ = events.send(batch.into_iter().map(to_api_event).collect());
                }
                supervised.set_current(None);
                if supervised.alive.strong_count() == 0 {
                    return; // the client closed the connection on its way out
                }
                tracing::warn!(address = %config.address, "lost the Hat event server; reconnecting");
            }
            Err(err) => {
                tracing::debug!(address = %config.address, "connecting to the Hat event server: {err}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

impl Drop for HatEventClient {
    fn drop(&mut self) {
        // `_alive` goes with `self`; closing the connection wakes the
        // supervisor, which then sees that and stops.
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
        let events = events.into_iter().map(from_api_register_event).collect();
        let with_response = mode != RegisterMode::Sent;
        let answer = self
            .block_on(connection.client.register(events, with_response))?
            .map_err(|err| self.unavailable(err))?;
        let Some(registered) = answer else {
            return Ok(ROption::RNone);
        };
        if mode == RegisterMode::Persisted {
            if let Some(newest) = registered.iter().map(|e| order_of(&e.id)).max() {
                self.wait_persisted(connection.number, newest)?;
            }
        }
        Ok(ROption::RSome(
            registered
                .into_iter()
                .map(|e| ROption::RSome(to_api_event(e)))
                .collect(),
        ))
    }

    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        let client = self.connection()?.client;
        let event_types = event_types
            .into_iter()
            .map(|t| t.into_iter().map(|s| s.to_string()).collect())
            .collect();
        let result = self
            .block_on(client.query(msg::QueryParams::Latest {
                event_types: Some(event_types),
            }))?
            .map_err(|err| self.unavailable(err))?;
        Ok(result.events.into_iter().map(to_api_event).collect())
    }
}

fn to_api_event(event: msg::Event) -> Event {
    Event {
        id: EventId {
            server: event.id.server,
            session: event.id.session,
            instance: event.id.instance,
        },
        event_type: event.event_type.into_iter().map(RString::from).collect(),
        timestamp: Timestamp {
            s: event.timestamp.s,
            us: event.timestamp.us,
        },
        source_timestamp: event
            .source_timestamp
            .map(|t| Timestamp { s: t.s, us: t.us })
            .into(),
        payload: event.payload.map(to_api_payload).into(),
    }
}

fn to_api_payload(payload: msg::EventPayload) -> EventPayload {
    match payload {
        msg::EventPayload::Binary { payload_type, data } => EventPayload::Binary {
            payload_type: payload_type.into(),
            data: data.into(),
        },
        msg::EventPayload::Json(text) => EventPayload::Json(text.into()),
    }
}

fn from_api_register_event(event: RegisterEvent) -> msg::RegisterEvent {
    msg::RegisterEvent {
        event_type: event
            .event_type
            .into_iter()
            .map(|s| s.to_string())
            .collect(),
        source_timestamp: event
            .source_timestamp
            .into_option()
            .map(|t| msg::Timestamp { s: t.s, us: t.us }),
        payload: event.payload.into_option().map(|p| match p {
            EventPayload::Binary { payload_type, data } => msg::EventPayload::Binary {
                payload_type: payload_type.to_string(),
                data: data.into_vec(),
            },
            EventPayload::Json(text) => msg::EventPayload::Json(text.to_string()),
        }),
    }
}
