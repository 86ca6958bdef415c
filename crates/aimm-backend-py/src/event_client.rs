//! The Python AIMM server's Hat eventer client, lent to plugins as their
//! [`EventClient`].
//!
//! Plugin calls arrive on whatever thread the plugin runs them on; the
//! server's client lives on the asyncio event loop. The Python bridge
//! (`aimm_backend._events.EventBridge`) schedules each call on the loop with
//! `asyncio.run_coroutine_threadsafe` and waits for it with a deadline; this
//! side only converts, with the GIL held no longer than that. The traps it
//! designs out are listed on the bridge, each with its test.
//!
//! The server's connection reports events when they are registered (it
//! connects with `persisted=False`), to every connection subscribed to
//! their types, the server's own included. A registration that waits for
//! the server therefore does not ask for the answer, which echoes every
//! event whole (for a 64 MiB model the server encodes and sends 85 MiB
//! more, and the server's client decodes it): it is sent without one and
//! recognised in the notifications the Python half hands to
//! `process_events` (the hat host's [`Router`], [`Notifications`] here), by
//! type and payload digest, as
//! the loader's own Hat client recognises persisted events. Until the host
//! has handed over a first notification (a host whose connection is not
//! routed to `process_events` never does), and for events without a
//! payload (id claims: equal for every host, so another host's notification
//! would do), the answer is asked for as before.

use crate::convert::{event_from_py, register_event_to_py};
use aimm_backend_api::{
    BackendError, ErrorKind, Event, EventClient, EventType, ROption, RString, RVec, RegisterEvent,
    RegisterMode, Result,
};
use aimm_backend_hat_host::notified::Expected;
use aimm_backend_hat_host::Router;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The one connection this client's notifications come from.
pub const CONNECTION: u64 = 0;

/// Seconds to wait for the server when the bridge does not say
/// (`EventBridge.timeout` does).
const DEFAULT_TIMEOUT: f64 = 30.0;

/// Where the notifications the server's connection delivers to this
/// backend go, as the Python half hands them to `process_events`.
pub type Notifications = Router<Event>;

/// An [`EventClient`] that calls the Python bridge object.
pub struct PythonEventClient {
    bridge: Py<PyAny>,
    notifications: Arc<Notifications>,
}

impl PythonEventClient {
    /// A client calling `bridge` (an `EventBridge`), to which the host
    /// hands the connection's notifications through `notifications`.
    pub fn new(bridge: Py<PyAny>, notifications: Arc<Notifications>) -> Self {
        PythonEventClient {
            bridge,
            notifications,
        }
    }

    /// What `events` will be notified as, if this registration is to be
    /// acknowledged by its notifications rather than by the answer.
    fn notified_as(&self, events: &[RegisterEvent], mode: RegisterMode) -> Option<Vec<Expected>> {
        let by_notification = mode != RegisterMode::Sent
            && self.notifications.is_flowing()
            && events.iter().all(|event| event.payload.is_some());
        by_notification.then(|| Expected::all_of(events)).flatten()
    }

    /// Hands `events` to the bridge; its answer (`None` without response).
    fn send(
        &self,
        py: Python<'_>,
        events: &[RegisterEvent],
        with_response: bool,
    ) -> Result<Py<PyAny>> {
        let events = events
            .iter()
            .map(|event| register_event_to_py(py, event))
            .collect::<PyResult<Vec<_>>>()
            .map_err(|err| malformed(py, err))?;
        let events = PyList::new(py, events).map_err(|err| malformed(py, err))?;
        let answer = self
            .bridge
            .call_method1(py, "register", (events, with_response))
            .map_err(|err| unavailable(py, err))?;
        Ok(answer)
    }

    /// The bridge's deadline for one answer.
    fn timeout(&self, py: Python<'_>) -> Duration {
        let seconds = self
            .bridge
            .getattr(py, "timeout")
            .and_then(|timeout| timeout.extract::<f64>(py))
            .unwrap_or(DEFAULT_TIMEOUT);
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(30))
    }

    /// Registers `events`, acknowledged once the notifications `expected`
    /// describes have all arrived.
    fn register_notified(
        &self,
        events: RVec<RegisterEvent>,
        expected: Vec<Expected>,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        let (done, found) = mpsc::sync_channel(1);
        // Waiting starts before sending: the notification may be handed
        // over before the bridge returns.
        let _ticket = self
            .notifications
            .awaited()
            .wait_then(CONNECTION, expected, move |events| {
                let _ = done.send(events);
            });
        let timeout = Python::attach(|py| {
            self.send(py, &events, false)?;
            Ok::<_, BackendError>(self.timeout(py))
        })?;
        drop(events);
        match found.recv_timeout(timeout) {
            Ok(events) => Ok(ROption::RSome(
                events.into_iter().map(ROption::RSome).collect(),
            )),
            Err(_) => Err(BackendError::new(
                ErrorKind::Unavailable,
                format!(
                    "the AIMM server's event client: the event server did not report the \
                     registered events within {} s; they may or may not be stored",
                    timeout.as_secs_f64()
                ),
            )),
        }
    }
}

/// The bridge's failures: the server is unreachable, the loop is gone, the
/// call was made where it would deadlock, or no answer came in time.
fn unavailable(py: Python<'_>, err: PyErr) -> BackendError {
    BackendError::new(
        ErrorKind::Unavailable,
        format!("the AIMM server's event client: {}", describe(py, &err)),
    )
}

/// `Type: message`, or the type alone when the message is empty.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let kind = err
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "exception".into());
    let message = err.value(py).to_string();
    if message.is_empty() {
        kind
    } else {
        format!("{kind}: {message}")
    }
}

fn malformed(py: Python<'_>, err: PyErr) -> BackendError {
    BackendError::new(
        ErrorKind::Unavailable,
        format!(
            "the AIMM server's event client answered something unexpected: {}",
            describe(py, &err)
        ),
    )
}

impl EventClient for PythonEventClient {
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        if let Some(expected) = self.notified_as(&events, mode) {
            return self.register_notified(events, expected);
        }
        Python::attach(|py| {
            // The server's connection reports events when registered, never
            // when written, so `Persisted` gets what `Registered` gets; the
            // Python half says so in the log when the backend is created.
            let with_response = mode != RegisterMode::Sent;
            let answer = self.send(py, &events, with_response)?;
            let answer = answer.bind(py);
            if answer.is_none() {
                return Ok(ROption::RNone);
            }
            let answer = answer
                .try_iter()
                .map_err(|err| malformed(py, err))?
                .map(|item| {
                    let item = item?;
                    if item.is_none() {
                        Ok(ROption::RNone)
                    } else {
                        event_from_py(&item).map(ROption::RSome)
                    }
                })
                .collect::<PyResult<RVec<_>>>()
                .map_err(|err| malformed(py, err))?;
            Ok(ROption::RSome(answer))
        })
    }

    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        Python::attach(|py| {
            let types = event_types
                .iter()
                .map(|t| PyTuple::new(py, t.iter().map(RString::as_str)))
                .collect::<PyResult<Vec<_>>>()
                .map_err(|err| malformed(py, err))?;
            let answer = self
                .bridge
                .call_method1(py, "query_latest", (types,))
                .map_err(|err| unavailable(py, err))?;
            answer
                .bind(py)
                .try_iter()
                .map_err(|err| malformed(py, err))?
                .map(|item| event_from_py(&item?))
                .collect::<PyResult<RVec<_>>>()
                .map_err(|err| malformed(py, err))
        })
    }
}
