//! Hat events between Rust and Python, as plain tuples.
//!
//! The Python half turns these into `hat.event.common` objects and back
//! (`aimm_backend/_events.py`); tuples keep this side independent of the
//! hat-event version the server has installed.
//!
//! * event: `(server, session, instance, type, (s, us), source_ts, payload)`
//! * register event: `(type, source_ts, payload)`
//! * `type`: a tuple of strings; `source_ts`: `(s, us)` or `None`
//! * payload: `None`, `("json", text)` or `("binary", type, bytes)`

use aimm_backend_api::{
    Event, EventId, EventPayload, EventType, ROption, RString, RegisterEvent, Timestamp,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

/// An event tuple: `(server, session, instance, type, (s, us), source_ts, payload)`.
type EventTuple<'py> = (
    i64,
    i64,
    i64,
    Vec<String>,
    (i64, i64),
    Option<(i64, i64)>,
    Option<Bound<'py, PyAny>>,
);

/// A register event as the Python bridge takes it.
pub fn register_event_to_py<'py>(
    py: Python<'py>,
    event: &RegisterEvent,
) -> PyResult<Bound<'py, PyTuple>> {
    let event_type = PyTuple::new(py, event.event_type.iter().map(RString::as_str))?;
    let source = event
        .source_timestamp
        .as_ref()
        .map(|t| (t.s, t.us))
        .into_option();
    let payload = payload_to_py(py, event.payload.as_ref().into_option())?;
    PyTuple::new(
        py,
        [
            event_type.into_any(),
            source.into_pyobject(py)?.into_any(),
            payload,
        ],
    )
}

fn payload_to_py<'py>(
    py: Python<'py>,
    payload: Option<&EventPayload>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match payload {
        None => py.None().into_bound(py),
        Some(EventPayload::Json(text)) => ("json", text.as_str()).into_pyobject(py)?.into_any(),
        Some(EventPayload::Binary { payload_type, data }) => (
            "binary",
            payload_type.as_str(),
            PyBytes::new(py, data.as_slice()),
        )
            .into_pyobject(py)?
            .into_any(),
    })
}

/// An event from the Python bridge's tuple.
pub fn event_from_py(item: &Bound<'_, PyAny>) -> PyResult<Event> {
    let (server, session, instance, event_type, timestamp, source, payload): EventTuple<'_> =
        item.extract()?;
    Ok(Event {
        id: EventId {
            server,
            session,
            instance,
        },
        event_type: to_event_type(event_type),
        timestamp: Timestamp {
            s: timestamp.0,
            us: timestamp.1,
        },
        source_timestamp: source.map(|(s, us)| Timestamp { s, us }).into(),
        payload: payload
            .map(|p| payload_from_py(&p))
            .transpose()?
            .map_or(ROption::RNone, ROption::RSome),
    })
}

fn to_event_type(segments: Vec<String>) -> EventType {
    segments.into_iter().map(RString::from).collect()
}

fn payload_from_py(payload: &Bound<'_, PyAny>) -> PyResult<EventPayload> {
    let kind: String = payload.get_item(0)?.extract()?;
    match kind.as_str() {
        "json" => Ok(EventPayload::Json(
            payload.get_item(1)?.extract::<String>()?.into(),
        )),
        "binary" => {
            let payload_type: String = payload.get_item(1)?.extract()?;
            let data = payload.get_item(2)?;
            let data = data.cast::<PyBytes>()?;
            Ok(EventPayload::Binary {
                payload_type: payload_type.into(),
                data: data.as_bytes().to_vec().into(),
            })
        }
        other => Err(PyValueError::new_err(format!(
            "event payload kind {other:?}: expected \"json\" or \"binary\""
        ))),
    }
}
