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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::with_python;
    use std::ffi::CString;

    fn eval<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyAny> {
        let code = CString::new(code).unwrap();
        py.eval(&code, None, None)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// `json.dumps(data, **args)`.
    fn dumps(data: &Bound<'_, PyAny>, args: &str) -> String {
        let py = data.py();
        let dumps = eval(
            py,
            &format!("lambda data: __import__('json').dumps(data{args})"),
        );
        dumps.call1((data,)).unwrap().extract().unwrap()
    }

    fn loads<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyAny> {
        eval(py, "__import__('json').loads").call1((text,)).unwrap()
    }

    /// Values written here: what `json.dumps` writes without spaces.
    #[test]
    fn plain_values_are_written_as_json_dumps_writes_them_compact() {
        with_python(|py| {
            for code in [
                "None",
                "True",
                "False",
                "0",
                "-7",
                "2**70",
                "2.5",
                "1e16",
                "-0.0",
                "''",
                "'plain'",
                "{}",
                "[]",
                "()",
                "{'a': [1, 2.5, None, True, 'x'], 'b': {'c': ()}}",
                "('t', ['u', {'v': False}])",
                // Escapes inside and right after 64-byte blocks.
                "'A' * 63 + '\"' + 'B' * 70",
                "'A' * 64 + '\\\\' + 'B'",
                "'A' * 128",
                "'A' * 127 + '\\n'",
                "'A' * 64 + '\\x1f' + 'A' * 64",
            ] {
                let data = eval(py, code);
                let compact = dumps(&data, ", separators=(',', ':')");
                assert_eq!(json_text(&data).unwrap(), compact, "{code}");
            }
        });
    }

    /// Non-ASCII and DEL are written raw (JSON escapes neither; Python's
    /// default `ensure_ascii` does).
    #[test]
    fn non_ascii_is_written_raw_and_never_split() {
        with_python(|py| {
            for code in [
                "'é'",
                "'A' * 200 + '\\x7f'",
                "'A' * 63 + 'é' + 'A' * 70",
                "'A' * 64 + '€' * 40",
                "'😀' * 20 + 'A' * 64",
            ] {
                let data = eval(py, code);
                let text = json_text(&data).unwrap();
                let raw = dumps(&data, ", separators=(',', ':'), ensure_ascii=False");
                assert_eq!(text, raw, "{code}");
                assert!(loads(py, &text).eq(&data).unwrap(), "{code}");
            }
        });
    }

    /// What the writer leaves to `json.dumps`, which writes it as it would
    /// for the Python backend.
    #[test]
    fn values_the_writer_does_not_take_go_to_json_dumps() {
        with_python(|py| {
            for code in [
                "float('nan')",
                "[1, float('inf')]",
                "{1: 'a'}",
                "__import__('collections').OrderedDict(a=1)",
                "[__import__('enum').IntEnum('E', 'A').A]",
                "'\\ud800'",
                "{'\\ud800': 1}",
            ] {
                let data = eval(py, code);
                assert_eq!(json_text(&data).unwrap(), dumps(&data, ""), "{code}");
            }
            let err = json_text(&eval(py, "object()")).unwrap_err();
            assert!(err.to_string().contains("not JSON serializable"), "{err}");
        });
    }

    #[test]
    fn a_run_ends_at_what_json_escapes_and_at_non_ascii() {
        for b in 0..=u8::MAX {
            let escaped = b < 0x20 || b == b'"' || b == b'\\';
            assert_eq!(ends_run(b), escaped || !b.is_ascii(), "{b:#x}");
        }
    }

    /// An event tuple as `_events.py` makes it.
    fn event_tuple<'py>(py: Python<'py>, payload: &str) -> Bound<'py, PyAny> {
        eval(
            py,
            &format!("(1, 2, 3, ('a', 'model', '7'), (10, 20), {payload})"),
        )
    }

    #[test]
    fn events_come_from_tuples_with_each_kind_of_payload() {
        with_python(|py| {
            let event = event_from_py(&event_tuple(py, "(30, 40), None")).unwrap();
            assert_eq!(
                event.id,
                EventId {
                    server: 1,
                    session: 2,
                    instance: 3
                }
            );
            let segments: Vec<&str> = event.event_type.iter().map(RString::as_str).collect();
            assert_eq!(segments, ["a", "model", "7"]);
            assert_eq!(event.timestamp, Timestamp { s: 10, us: 20 });
            assert_eq!(
                event.source_timestamp,
                ROption::RSome(Timestamp { s: 30, us: 40 })
            );
            assert_eq!(event.payload, ROption::RNone);

            let event = event_from_py(&event_tuple(py, "None, ('json', '[1]')")).unwrap();
            assert_eq!(event.source_timestamp, ROption::RNone);
            assert_eq!(
                event.payload,
                ROption::RSome(EventPayload::Json("[1]".into()))
            );

            let event =
                event_from_py(&event_tuple(py, "None, ('json_data', {'k': [True]})")).unwrap();
            assert_eq!(
                event.payload,
                ROption::RSome(EventPayload::Json(r#"{"k":[true]}"#.into()))
            );

            let event =
                event_from_py(&event_tuple(py, "None, ('binary', 't', b'\\x00\\x01')")).unwrap();
            assert_eq!(
                event.payload,
                ROption::RSome(EventPayload::Binary {
                    payload_type: "t".into(),
                    data: vec![0u8, 1].into(),
                })
            );
        });
    }

    #[test]
    fn a_bad_event_tuple_is_an_error_that_says_what_was_expected() {
        with_python(|py| {
            let err = event_from_py(&event_tuple(py, "None, ('yaml', 'a: 1')")).unwrap_err();
            assert!(
                err.to_string().contains(
                    r#"event payload kind "yaml": expected "json", "json_data" or "binary""#
                ),
                "{err}"
            );
            assert!(event_from_py(&event_tuple(py, "None, ('binary', 't', 'text')")).is_err());
            assert!(event_from_py(&eval(py, "(1, 2, 3)")).is_err());
        });
    }

    #[test]
    fn register_events_become_the_tuples_the_bridge_takes() {
        with_python(|py| {
            let cases = [
                (None, None, "(('a', 'b'), None, None)"),
                (
                    Some(Timestamp { s: 5, us: 6 }),
                    Some(EventPayload::Json("{}".into())),
                    "(('a', 'b'), (5, 6), ('json', '{}'))",
                ),
                (
                    None,
                    Some(EventPayload::Binary {
                        payload_type: "t".into(),
                        data: vec![9u8].into(),
                    }),
                    "(('a', 'b'), None, ('binary', 't', b'\\x09'))",
                ),
            ];
            for (source, payload, expected) in cases {
                let event = RegisterEvent {
                    event_type: vec![RString::from("a"), RString::from("b")].into(),
                    source_timestamp: source.into(),
                    payload: payload.into(),
                };
                let tuple = register_event_to_py(py, &event).unwrap();
                assert!(
                    tuple.eq(eval(py, expected)).unwrap(),
                    "{tuple} != {expected}"
                );
            }
        });
    }
}
