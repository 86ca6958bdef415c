//! Events: their ids, timestamps, payloads, and the events a client
//! registers (owned, or borrowing a large payload where it lies).

use crate::sbs::{DecodeError, Parts, Reader, Sbs, Writer};

/// `HatEventer.EventType`: segments; `*` and `?` are wildcards in queries.
pub type EventType = Vec<String>;

/// `HatEventer.Timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub s: i64,
    /// Microseconds within the second.
    pub us: i64,
}

record!(Timestamp { s, us });

/// `HatEventer.EventId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The registering server.
    pub server: i64,
    /// The server's session.
    pub session: i64,
    /// The event's number in the session.
    pub instance: i64,
}

record!(EventId {
    server,
    session,
    instance
});

/// `HatEventer.EventPayload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// `binary`: bytes with a type name.
    Binary {
        /// The payload type name.
        payload_type: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `json`: a JSON document as text.
    Json(String),
}

impl Sbs for EventPayload {
    fn write(&self, w: &mut Writer) {
        match self {
            EventPayload::Binary { payload_type, data } => {
                w.choice(0);
                w.string(payload_type);
                w.bytes(data);
            }
            EventPayload::Json(text) => {
                w.choice(1);
                w.string(text);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(2)? {
            0 => EventPayload::Binary {
                payload_type: r.string()?.into_owned(),
                data: r.bytes()?.into_owned(),
            },
            _ => EventPayload::Json(r.string()?.into_owned()),
        })
    }
}

/// `HatEventer.Event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The server-assigned id.
    pub id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// When the server registered it.
    pub timestamp: Timestamp,
    /// When the source says it happened.
    pub source_timestamp: Option<Timestamp>,
    /// The payload.
    pub payload: Option<EventPayload>,
}

record!(Event {
    id,
    event_type,
    timestamp,
    source_timestamp,
    payload,
});

impl Event {
    /// Reads an event, passing over its payload without keeping it (and
    /// `None` in its place).
    pub fn read_without_payload(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = EventId::read(r)?;
        let event_type = EventType::read(r)?;
        let timestamp = Timestamp::read(r)?;
        let source_timestamp = Option::read(r)?;
        if r.choice(2)? == 1 {
            if r.choice(2)? == 0 {
                r.skip_bytes()?; // the payload type
            }
            r.skip_bytes()?;
        }
        Ok(Event {
            id,
            event_type,
            timestamp,
            source_timestamp,
            payload: None,
        })
    }
}

/// `HatEventer.RegisterEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEvent {
    /// The event type.
    pub event_type: EventType,
    /// When the source says it happened.
    pub source_timestamp: Option<Timestamp>,
    /// The payload.
    pub payload: Option<EventPayload>,
}

record!(RegisterEvent {
    event_type,
    source_timestamp,
    payload,
});

/// A [`RegisterEvent`] borrowing its contents, so that a large payload is
/// sent from where it lies instead of being copied into the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEventRef<'a> {
    /// The event type's segments.
    pub event_type: Vec<&'a str>,
    /// When the source says it happened.
    pub source_timestamp: Option<Timestamp>,
    /// The payload.
    pub payload: Option<EventPayloadRef<'a>>,
}

/// An [`EventPayload`] borrowing its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPayloadRef<'a> {
    /// `binary`: bytes with a type name.
    Binary {
        /// The payload type name.
        payload_type: &'a str,
        /// The bytes.
        data: &'a [u8],
    },
    /// `json`: a JSON document as text.
    Json(&'a str),
}

impl<'a> RegisterEventRef<'a> {
    /// Appends the encoding (that of [`RegisterEvent`]), borrowing the
    /// payload.
    pub fn write_parts(&self, parts: &mut Parts<'a>) {
        parts.write(|w| {
            w.array_len(self.event_type.len());
            for segment in &self.event_type {
                w.string(segment);
            }
            self.source_timestamp.write(w);
        });
        match self.payload {
            None => parts.write(|w| w.choice(0)),
            Some(EventPayloadRef::Binary { payload_type, data }) => {
                parts.write(|w| {
                    w.choice(1);
                    w.choice(0);
                    w.string(payload_type);
                });
                parts.bytes_shared(data);
            }
            Some(EventPayloadRef::Json(text)) => {
                parts.write(|w| {
                    w.choice(1);
                    w.choice(1);
                });
                parts.bytes_shared(text.as_bytes());
            }
        }
    }
}

impl<'a> From<&'a RegisterEvent> for RegisterEventRef<'a> {
    fn from(event: &'a RegisterEvent) -> Self {
        RegisterEventRef {
            event_type: event.event_type.iter().map(String::as_str).collect(),
            source_timestamp: event.source_timestamp,
            payload: event.payload.as_ref().map(|payload| match payload {
                EventPayload::Binary { payload_type, data } => {
                    EventPayloadRef::Binary { payload_type, data }
                }
                EventPayload::Json(text) => EventPayloadRef::Json(text),
            }),
        }
    }
}
