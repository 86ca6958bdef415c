//! The Python AIMM server's Hat eventer client, lent to plugins as their
//! [`EventClient`].
//!
//! Plugin calls arrive on whatever thread the plugin runs them on; the
//! server's client lives on the asyncio event loop. The Python bridge
//! (`aimm_backend._events.EventBridge`) schedules each call on the loop with
//! `asyncio.run_coroutine_threadsafe` and waits for it with a deadline; this
//! side only converts, with the GIL held no longer than that. The traps it
//! designs out are listed on the bridge, each with its test.

use crate::convert::{event_from_py, register_event_to_py};
use aimm_backend_api::{
    BackendError, ErrorKind, Event, EventClient, EventType, ROption, RString, RVec, RegisterEvent,
    RegisterMode, Result,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// An [`EventClient`] that calls the Python bridge object.
pub struct PythonEventClient {
    bridge: Py<PyAny>,
}

impl PythonEventClient {
    /// A client calling `bridge` (an `EventBridge`).
    pub fn new(bridge: Py<PyAny>) -> Self {
        PythonEventClient { bridge }
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
        Python::attach(|py| {
            let events = events
                .iter()
                .map(|event| register_event_to_py(py, event))
                .collect::<PyResult<Vec<_>>>()
                .map_err(|err| malformed(py, err))?;
            let events = PyList::new(py, events).map_err(|err| malformed(py, err))?;
            // The server's connection reports events when registered, never
            // when written, so `Persisted` gets what `Registered` gets; the
            // Python half says so in the log when the backend is created.
            let with_response = mode != RegisterMode::Sent;
            let answer = self
                .bridge
                .call_method1(py, "register", (events, with_response))
                .map_err(|err| unavailable(py, err))?;
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
