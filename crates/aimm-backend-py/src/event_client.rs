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

    /// Hands `events` to the bridge's `register`; its answer (`None`
    /// without response).
    fn send(
        &self,
        py: Python<'_>,
        events: &[RegisterEvent],
        with_response: bool,
    ) -> Result<Py<PyAny>> {
        let events = events_to_py(py, events)?;
        self.bridge
            .call_method1(py, "register", (events, with_response))
            .map_err(|err| unavailable(py, err))
    }

    /// Hands `events` to the bridge's `hand_over`: sent without response,
    /// and without waiting for the event loop to send them.
    fn hand_over(&self, py: Python<'_>, events: &[RegisterEvent]) -> Result<()> {
        let events = events_to_py(py, events)?;
        self.bridge
            .call_method1(py, "hand_over", (events,))
            .map_err(|err| unavailable(py, err))?;
        Ok(())
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

/// `events` as the bridge takes them: a list of register-event tuples.
fn events_to_py<'py>(py: Python<'py>, events: &[RegisterEvent]) -> Result<Bound<'py, PyList>> {
    let events = events
        .iter()
        .map(|event| register_event_to_py(py, event))
        .collect::<PyResult<Vec<_>>>()
        .map_err(|err| malformed(py, err))?;
    PyList::new(py, events).map_err(|err| malformed(py, err))
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
            if mode == RegisterMode::Sent {
                self.hand_over(py, &events)?;
                return Ok(ROption::RNone);
            }
            // The server's connection reports events when registered, never
            // when written, so `Persisted` gets what `Registered` gets; the
            // Python half says so in the log when the backend is created.
            let answer = self.send(py, &events, true)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{fake_bridge as bridge, with_python};
    use aimm_backend_api::{EventId, EventPayload, Timestamp};
    use std::time::Instant;

    fn client(bridge: &Bound<'_, PyAny>) -> (PythonEventClient, Arc<Notifications>) {
        let notifications = Arc::new(Notifications::default());
        let client = PythonEventClient::new(bridge.clone().unbind(), notifications.clone());
        (client, notifications)
    }

    /// Asserts that the bridge's calls so far are `code` (a Python list).
    fn assert_calls(bridge: &Bound<'_, PyAny>, code: &std::ffi::CStr) {
        let expected = bridge.py().eval(code, None, None).unwrap();
        let calls = bridge.getattr("calls").unwrap();
        assert!(calls.eq(&expected).unwrap(), "{calls} != {expected}");
    }

    fn set(bridge: &Bound<'_, PyAny>, name: &str, code: &std::ffi::CStr) {
        let value = bridge.py().eval(code, None, None).unwrap();
        bridge.setattr(name, value).unwrap();
    }

    fn model_event(payload: &str) -> RegisterEvent {
        RegisterEvent {
            event_type: vec![
                RString::from("aimm"),
                RString::from("model"),
                RString::from("1"),
            ]
            .into(),
            source_timestamp: ROption::RNone,
            payload: ROption::RSome(EventPayload::Json(payload.into())),
        }
    }

    /// The message of the unavailable error `result` must be.
    fn error_of<T: std::fmt::Debug>(result: Result<T>) -> String {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        err.message.into_string()
    }

    #[test]
    fn a_sent_registration_is_handed_over_and_returns_none() {
        with_python(|py| {
            let bridge = bridge(py);
            let (client, _) = client(&bridge);
            let answer =
                py.detach(|| client.register(vec![model_event("1")].into(), RegisterMode::Sent));
            assert_eq!(answer.unwrap(), ROption::RNone);
            assert_calls(
                &bridge,
                c"[('hand_over', [(('aimm', 'model', '1'), None, ('json', '1'))])]",
            );
        });
    }

    #[test]
    fn before_notifications_flow_a_registration_takes_the_servers_answer() {
        with_python(|py| {
            let bridge = bridge(py);
            set(
                &bridge,
                "answer",
                c"[(1, 2, 3, ('aimm', 'model', '1'), (4, 5), None, ('json', '1')), None]",
            );
            let (client, _) = client(&bridge);
            for mode in [RegisterMode::Registered, RegisterMode::Persisted] {
                let answer = py
                    .detach(|| client.register(vec![model_event("1")].into(), mode))
                    .unwrap();
                let ROption::RSome(events) = answer else {
                    panic!("{mode:?}: no answer")
                };
                assert_eq!(events.len(), 2);
                let ROption::RSome(first) = &events[0] else {
                    panic!("{events:?}")
                };
                assert_eq!(
                    first.id,
                    EventId {
                        server: 1,
                        session: 2,
                        instance: 3
                    }
                );
                assert_eq!(first.timestamp, Timestamp { s: 4, us: 5 });
                assert_eq!(events[1], ROption::RNone);
            }
            let with_response: Vec<bool> = bridge
                .getattr("calls")
                .unwrap()
                .try_iter()
                .unwrap()
                .map(|call| call.unwrap().get_item(2).unwrap().extract().unwrap())
                .collect();
            assert_eq!(with_response, [true, true]);
        });
    }

    #[test]
    fn the_bridges_failures_and_odd_answers_are_unavailable_and_say_what_happened() {
        with_python(|py| {
            let bridge = bridge(py);
            let (client, _) = client(&bridge);
            let register =
                || client.register(vec![model_event("1")].into(), RegisterMode::Registered);

            set(&bridge, "error", c"RuntimeError('the loop is closed')");
            let text = error_of(py.detach(register));
            assert_eq!(
                text,
                "the AIMM server's event client: RuntimeError: the loop is closed"
            );
            let text = error_of(py.detach(|| client.query_latest(RVec::new())));
            assert!(text.ends_with("RuntimeError: the loop is closed"), "{text}");
            set(&bridge, "error", c"TimeoutError()");
            assert_eq!(
                error_of(py.detach(register)),
                "the AIMM server's event client: TimeoutError"
            );

            set(&bridge, "error", c"None");
            set(&bridge, "answer", c"7");
            let text = error_of(py.detach(register));
            assert!(
                text.starts_with(
                    "the AIMM server's event client answered something unexpected: TypeError"
                ),
                "{text}"
            );
            assert!(error_of(py.detach(|| client.query_latest(RVec::new()))).contains("unexpected"));
            set(&bridge, "answer", c"[(1, 2)]");
            assert!(error_of(py.detach(register)).contains("unexpected"));
            assert!(error_of(py.detach(|| client.query_latest(RVec::new()))).contains("unexpected"));
        });
    }

    #[test]
    fn a_query_hands_the_types_as_tuples_and_returns_the_events() {
        with_python(|py| {
            let bridge = bridge(py);
            set(
                &bridge,
                "answer",
                c"[(1, 2, 3, ('aimm', 'model', '9'), (4, 5), None, ('json', '{}'))]",
            );
            let (client, _) = client(&bridge);
            let types: RVec<EventType> = vec![
                vec![RString::from("aimm"), RString::from("*")].into(),
                vec![RString::from("x")].into(),
            ]
            .into();
            let events = py.detach(|| client.query_latest(types)).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0].payload,
                ROption::RSome(EventPayload::Json("{}".into()))
            );
            assert_calls(&bridge, c"[('query_latest', [('aimm', '*'), ('x',)])]");
        });
    }

    #[test]
    fn the_bridges_timeout_is_used_and_a_missing_or_bad_one_is_30_s() {
        with_python(|py| {
            let bridge = bridge(py);
            let (client, _) = client(&bridge);
            assert_eq!(client.timeout(py), Duration::from_secs(30));
            set(&bridge, "timeout", c"2.5");
            assert_eq!(client.timeout(py), Duration::from_millis(2500));
            set(&bridge, "timeout", c"-1.0");
            assert_eq!(client.timeout(py), Duration::from_secs(30));
            set(&bridge, "timeout", c"'soon'");
            assert_eq!(client.timeout(py), Duration::from_secs(30));
        });
    }

    /// The event the server would notify for `registered`.
    fn notified(registered: &RegisterEvent) -> Event {
        Event {
            id: EventId {
                server: 1,
                session: 1,
                instance: 1,
            },
            event_type: registered.event_type.clone(),
            timestamp: Timestamp { s: 1, us: 0 },
            source_timestamp: ROption::RNone,
            payload: registered.payload.clone(),
        }
    }

    #[test]
    fn once_notifications_flow_a_write_is_acknowledged_by_its_notification_not_an_answer() {
        with_python(|py| {
            let bridge = bridge(py);
            let (client, notifications) = client(&bridge);
            // Another event starts the flow.
            notifications.arrived(CONNECTION, &[notified(&model_event("0"))]);
            assert!(notifications.is_flowing());
            let event = model_event("[1, 2]");
            let notifier = {
                let notifications = notifications.clone();
                let note = notified(&event);
                let bridge = bridge.clone().unbind();
                std::thread::spawn(move || {
                    // Not before the registration waits for it: a
                    // notification before that is not its own.
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while Python::attach(|py| calls_of(bridge.bind(py))) == 0 {
                        assert!(Instant::now() < deadline, "the bridge was never called");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    notifications.arrived(CONNECTION, &[note]);
                })
            };
            let answer = py
                .detach(|| client.register(vec![event.clone()].into(), RegisterMode::Persisted))
                .unwrap();
            // The notifier takes the GIL: join it with the GIL released.
            py.detach(|| notifier.join()).unwrap();
            let ROption::RSome(events) = answer else {
                panic!("no events")
            };
            assert_eq!(events.len(), 1);
            let ROption::RSome(got) = &events[0] else {
                panic!("{events:?}")
            };
            // The notification's own event: the server's id and type.
            assert_eq!(got.id, notified(&event).id);
            assert_eq!(got.event_type, event.event_type);
            let call = bridge.getattr("calls").unwrap().get_item(0).unwrap();
            assert!(
                !call.get_item(2).unwrap().extract::<bool>().unwrap(),
                "no answer asked for"
            );

            // With no notification in time: unavailable, and said so.
            set(&bridge, "timeout", c"0.2");
            let started = Instant::now();
            let text = error_of(py.detach(|| {
                client.register(vec![model_event("3")].into(), RegisterMode::Persisted)
            }));
            assert!(
                text.contains("did not report the registered events within 0.2 s"),
                "{text}"
            );
            assert!(started.elapsed() < Duration::from_secs(5));
            // Events without a payload still take the answer.
            let claim = RegisterEvent {
                payload: ROption::RNone,
                ..model_event("")
            };
            set(&bridge, "answer", c"[None]");
            let answer = py
                .detach(|| client.register(vec![claim].into(), RegisterMode::Persisted))
                .unwrap();
            assert_eq!(answer, ROption::RSome(vec![ROption::RNone].into()));
        });
    }

    /// How many calls `bridge` has had.
    fn calls_of(bridge: &Bound<'_, PyAny>) -> usize {
        bridge
            .getattr("calls")
            .and_then(|calls| calls.len())
            .unwrap()
    }
}
