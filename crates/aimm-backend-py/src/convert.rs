//! Hat events between Rust and Python, as tuples.
//!
//! The Python half turns these into `hat.event.common` objects and back
//! (`aimm_backend/_events.py`, whose `EventTuple` and `RegisterEventTuple`
//! are [`EventTuple`] and [`RegisterEventTuple`] here); tuples keep this
//! side independent of the hat-event version the server has installed.
//!
//! * event: `(server, session, instance, type, (s, us), source_ts, payload)`
//! * register event: `(type, source_ts, payload)`
//! * `type`: a tuple of strings; `source_ts`: `(s, us)` or `None`
//! * payload: `None`, `("json", text)` or `("binary", type, bytes)`; from
//!   Python also `("json_data", data)`, the data as `hat.event` decoded it,
//!   whose JSON text this side writes ([`json_text`])

use aimm_backend_api::{
    Event, EventId, EventPayload, EventType, ROption, RString, RegisterEvent, Timestamp,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// An event as the Python half hands it over (`_events.EventTuple`).
#[derive(FromPyObject)]
struct EventTuple<'py>(
    /// The registering server.
    i64,
    /// The server's session.
    i64,
    /// The event's number in the session.
    i64,
    /// The event type's segments.
    Vec<String>,
    /// `(s, us)`: when the server registered it.
    (i64, i64),
    /// `(s, us)`, if the source gave one.
    Option<(i64, i64)>,
    /// The payload tuple, if any.
    Option<Bound<'py, PyAny>>,
);

/// An event to register as the Python half takes it
/// (`_events.RegisterEventTuple`).
#[derive(IntoPyObject)]
struct RegisterEventTuple<'py>(
    /// The event type's segments.
    Bound<'py, PyTuple>,
    /// `(s, us)`, if the source gave one.
    Option<(i64, i64)>,
    /// The payload tuple, or `None`.
    Bound<'py, PyAny>,
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
    RegisterEventTuple(event_type, source, payload).into_pyobject(py)
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
    let EventTuple(server, session, instance, event_type, timestamp, source, payload) =
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
        "json_data" => Ok(EventPayload::Json(json_text(&payload.get_item(1)?)?.into())),
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
            "event payload kind {other:?}: expected \"json\", \"json_data\" or \"binary\""
        ))),
    }
}

/// The JSON text of `data`, a JSON payload as `hat.event` decodes it (what
/// `json.loads` gives: dicts, lists, strings, numbers, booleans, `None`).
///
/// Written here, where `json.dumps` takes 0.4 s for the 85 MiB payload of
/// a 64 MiB model, most of it scanning the base64 text for characters to
/// escape; this takes a fraction of that. What this writer does not take
/// exactly as `json.dumps` would (subclasses, non-string keys, NaN and the
/// infinities, strings that are not valid UTF-8) goes to `json.dumps`.
pub fn json_text(data: &Bound<'_, PyAny>) -> PyResult<String> {
    let mut text = Vec::new();
    if write_json(data, &mut text).is_ok() {
        // Only `str`s and ASCII went in.
        return String::from_utf8(text).map_err(|err| PyValueError::new_err(err.to_string()));
    }
    let json = data.py().import("json")?;
    json.call_method1("dumps", (data,))?.extract()
}

/// A value [`write_json`] leaves to `json.dumps`.
struct Unsupported;

fn write_json(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if value.is_exact_instance_of::<PyBool>() {
        let flag = value.is_truthy().map_err(|_| Unsupported)?;
        out.extend_from_slice(if flag { b"true" } else { b"false" });
    } else if let Ok(text) = value.cast_exact::<PyString>() {
        write_string(text.to_str().map_err(|_| Unsupported)?, out)?;
    } else if value.is_exact_instance_of::<PyInt>() {
        write_repr(value, out)?;
    } else if let Ok(number) = value.cast_exact::<PyFloat>() {
        if !number.value().is_finite() {
            return Err(Unsupported);
        }
        write_repr(value, out)?;
    } else if let Ok(dict) = value.cast_exact::<PyDict>() {
        out.push(b'{');
        for (at, (key, item)) in dict.iter().enumerate() {
            if at > 0 {
                out.push(b',');
            }
            let key = key.cast_exact::<PyString>().map_err(|_| Unsupported)?;
            write_string(key.to_str().map_err(|_| Unsupported)?, out)?;
            out.push(b':');
            write_json(&item, out)?;
        }
        out.push(b'}');
    } else if let Ok(list) = value.cast_exact::<PyList>() {
        write_items(list.iter(), out)?;
    } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        write_items(tuple.iter(), out)?;
    } else {
        return Err(Unsupported);
    }
    Ok(())
}

fn write_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    out.push(b'[');
    for (at, item) in items.enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write_json(&item, out)?;
    }
    out.push(b']');
    Ok(())
}

/// `text` as a JSON string. A leading run of ASCII that needs no escape
/// (all of a base64 model) is found a block at a time and copied whole;
/// serde_json's escaper, which looks at one byte at a time, writes the rest.
fn write_string(text: &str, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    const BLOCK: usize = 64;
    out.reserve(text.len() + 2);
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut clean = 0;
    // A whole block is checked without stopping early, which the compiler
    // turns into vector compares.
    while clean + BLOCK <= bytes.len()
        && !bytes[clean..clean + BLOCK]
            .iter()
            .fold(false, |any, &b| any | ends_run(b))
    {
        clean += BLOCK;
    }
    out.extend_from_slice(&bytes[..clean]);
    let rest = serde_json::to_string(&text[clean..]).map_err(|_| Unsupported)?;
    out.extend_from_slice(&rest.as_bytes()[1..]);
    Ok(())
}

/// Whether byte `b` ends a run copied whole: JSON escapes it, or it is
/// part of a non-ASCII character (a run must end on a character boundary).
fn ends_run(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80
}

/// An `int` or a finite `float` as `json.dumps` writes it: its `repr`.
fn write_repr(number: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let repr = number.repr().map_err(|_| Unsupported)?;
    out.extend_from_slice(repr.to_str().map_err(|_| Unsupported)?.as_bytes());
    Ok(())
}
