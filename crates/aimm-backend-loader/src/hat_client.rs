//! The host's connection to a Hat event server, lent to plugins as their
//! [`EventClient`].
//!
//! The host owns the connection: a supervisor task connects, and when the
//! connection drops (the server restarted, the network failed) reconnects
//! with exponential backoff. While there is no connection, calls fail at
//! once with [`ErrorKind::Unavailable`] naming the server; a call on a live
//! connection that gets no answer fails after the configured timeout. No
//! call hangs.

use aimm_backend_api::{
    BackendError, ErrorKind, Event, EventClient, EventId, EventPayload, EventType, ROption,
    RString, RVec, RegisterEvent, Result, Timestamp,
};
use hat_eventer_client::client::{connect, Client, ClientConfig};
use hat_eventer_client::eventer_msg as msg;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

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
    current: Arc<Mutex<Option<Client>>>,
    /// The supervisor runs while this lives (it holds only a weak reference).
    _alive: Arc<()>,
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
        runtime.spawn(supervise(
            config.clone(),
            current.clone(),
            Arc::downgrade(&alive),
            events_tx,
        ));
        let client = HatEventClient {
            runtime,
            config,
            current,
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

    fn client(&self) -> Result<Client> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| self.unavailable("not connected (reconnecting in the background)"))
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

async fn supervise(
    config: HatClientConfig,
    current: Arc<Mutex<Option<Client>>>,
    alive: std::sync::Weak<()>,
    events: mpsc::UnboundedSender<Vec<Event>>,
) {
    let mut backoff = Duration::from_millis(100);
    while alive.strong_count() > 0 {
        let init = msg::MsgInitReq {
            client_name: config.client_name.clone(),
            client_token: None,
            subscriptions: config.subscriptions.clone(),
            server_id: None,
            persisted: false,
        };
        let client_config = ClientConfig {
            request_timeout: config.timeout,
            ..ClientConfig::default()
        };
        match connect(&config.address, init, client_config).await {
            Ok((client, mut notified)) => {
                tracing::info!(address = %config.address, "connected to the Hat event server");
                backoff = Duration::from_millis(100);
                *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(client);
                while let Some(batch) = notified.recv().await {
                    if events
                        .send(batch.into_iter().map(to_api_event).collect())
                        .is_err()
                    {
                        return; // nobody listens any more: the host is gone
                    }
                }
                *current.lock().unwrap_or_else(PoisonError::into_inner) = None;
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
        if let Some(client) = current {
            self.runtime.spawn(async move { client.close().await });
        }
    }
}

impl EventClient for HatEventClient {
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        with_response: bool,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        let client = self.client()?;
        let events = events.into_iter().map(from_api_register_event).collect();
        let answer = self
            .block_on(client.register(events, with_response))?
            .map_err(|err| self.unavailable(err))?;
        Ok(match answer {
            None => ROption::RNone,
            Some(events) => ROption::RSome(
                events
                    .into_iter()
                    .map(|e| ROption::RSome(to_api_event(e)))
                    .collect(),
            ),
        })
    }

    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        let client = self.client()?;
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
