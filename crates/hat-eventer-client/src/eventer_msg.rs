//! The `HatEventer` messages (hat-event 0.9) and their SBS codecs.
//!
//! Field order and Choice alternatives follow the `HatEventer` schema as
//! shipped with hat-event 0.9.44; the differential tests check every type
//! here against the Python `hat-sbs` encoding of that schema.

use crate::sbs::{Body, DecodeError, Parts, Reader, Writer};

/// A value with an SBS encoding.
pub trait Sbs: Sized {
    /// Appends the encoding of `self`.
    fn write(&self, w: &mut Writer);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A message sent as Chatter `data`, named by [`Message::TYPE`].
pub trait Message: Sbs {
    /// The `data.type` of Chatter messages carrying this message.
    const TYPE: &'static str;
}

/// The encoding of `value`.
pub fn encode<T: Sbs>(value: &T) -> Vec<u8> {
    let mut w = Writer::new();
    value.write(&mut w);
    w.into_bytes()
}

/// Decodes `bytes`, all of which must belong to the value.
pub fn decode<T: Sbs>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_all(Reader::new(bytes))
}

/// Decodes `body`, all of which must belong to the value, freeing its
/// chunks as they are read: the value and what is left of the body never
/// take more memory together than the body did.
pub fn decode_body<T: Sbs>(body: Body) -> Result<T, DecodeError> {
    decode_all(Reader::of_body(body))
}

fn decode_all<T: Sbs>(mut r: Reader<'_>) -> Result<T, DecodeError> {
    let value = T::read(&mut r)?;
    r.finish()?;
    Ok(value)
}

impl Sbs for i64 {
    fn write(&self, w: &mut Writer) {
        w.integer((*self).into());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.integer()
    }
}

impl Sbs for bool {
    fn write(&self, w: &mut Writer) {
        w.boolean(*self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.boolean()
    }
}

impl Sbs for String {
    fn write(&self, w: &mut Writer) {
        w.string(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string().map(std::borrow::Cow::into_owned)
    }
}

impl<T: Sbs> Sbs for Vec<T> {
    fn write(&self, w: &mut Writer) {
        w.array_len(self.len());
        for item in self {
            item.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.array_len()?;
        (0..len).map(|_| T::read(r)).collect()
    }
}

impl<T: Sbs> Sbs for Option<T> {
    fn write(&self, w: &mut Writer) {
        w.optional(self.as_ref(), |w, v| v.write(w));
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.optional(T::read)
    }
}

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

impl Sbs for Timestamp {
    fn write(&self, w: &mut Writer) {
        self.s.write(w);
        self.us.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Timestamp {
            s: r.integer()?,
            us: r.integer()?,
        })
    }
}

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

impl Sbs for EventId {
    fn write(&self, w: &mut Writer) {
        self.server.write(w);
        self.session.write(w);
        self.instance.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EventId {
            server: r.integer()?,
            session: r.integer()?,
            instance: r.integer()?,
        })
    }
}

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

impl Sbs for Event {
    fn write(&self, w: &mut Writer) {
        self.id.write(w);
        self.event_type.write(w);
        self.timestamp.write(w);
        self.source_timestamp.write(w);
        self.payload.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Event {
            id: EventId::read(r)?,
            event_type: EventType::read(r)?,
            timestamp: Timestamp::read(r)?,
            source_timestamp: Option::read(r)?,
            payload: Option::read(r)?,
        })
    }
}

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

impl Sbs for RegisterEvent {
    fn write(&self, w: &mut Writer) {
        let mut parts = Parts::new();
        RegisterEventRef::from(self).write_parts(&mut parts);
        for piece in parts.pieces() {
            w.encoded(piece);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RegisterEvent {
            event_type: EventType::read(r)?,
            source_timestamp: Option::read(r)?,
            payload: Option::read(r)?,
        })
    }
}

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

/// `HatEventer.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `standby`.
    Standby,
    /// `starting`.
    Starting,
    /// `operational`.
    Operational,
    /// `stopping`.
    Stopping,
}

impl Sbs for Status {
    fn write(&self, w: &mut Writer) {
        w.choice(*self as usize);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(4)? {
            0 => Status::Standby,
            1 => Status::Starting,
            2 => Status::Operational,
            _ => Status::Stopping,
        })
    }
}

/// `HatEventer.MsgInitReq`: the client's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgInitReq {
    /// The client's name.
    pub client_name: String,
    /// A token the server may require.
    pub client_token: Option<String>,
    /// Event types whose events the server notifies.
    pub subscriptions: Vec<EventType>,
    /// Only events of this server, if given.
    pub server_id: Option<i64>,
    /// Notify only events once persisted.
    pub persisted: bool,
}

impl Sbs for MsgInitReq {
    fn write(&self, w: &mut Writer) {
        self.client_name.write(w);
        self.client_token.write(w);
        self.subscriptions.write(w);
        self.server_id.write(w);
        self.persisted.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MsgInitReq {
            client_name: String::read(r)?,
            client_token: Option::read(r)?,
            subscriptions: Vec::read(r)?,
            server_id: Option::read(r)?,
            persisted: bool::read(r)?,
        })
    }
}

impl Message for MsgInitReq {
    const TYPE: &'static str = "HatEventer.MsgInitReq";
}

/// `HatEventer.MsgInitRes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgInitRes {
    /// `success`: the server's status.
    Success(Status),
    /// `error`: why the server refused.
    Error(String),
}

impl Sbs for MsgInitRes {
    fn write(&self, w: &mut Writer) {
        match self {
            MsgInitRes::Success(status) => {
                w.choice(0);
                status.write(w);
            }
            MsgInitRes::Error(message) => {
                w.choice(1);
                message.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(2)? {
            0 => MsgInitRes::Success(Status::read(r)?),
            _ => MsgInitRes::Error(String::read(r)?),
        })
    }
}

impl Message for MsgInitRes {
    const TYPE: &'static str = "HatEventer.MsgInitRes";
}

/// `HatEventer.MsgStatusNotify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgStatusNotify(pub Status);

impl Sbs for MsgStatusNotify {
    fn write(&self, w: &mut Writer) {
        self.0.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Status::read(r).map(MsgStatusNotify)
    }
}

impl Message for MsgStatusNotify {
    const TYPE: &'static str = "HatEventer.MsgStatusNotify";
}

/// `HatEventer.MsgEventsNotify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgEventsNotify(pub Vec<Event>);

impl Sbs for MsgEventsNotify {
    fn write(&self, w: &mut Writer) {
        self.0.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Vec::read(r).map(MsgEventsNotify)
    }
}

impl Message for MsgEventsNotify {
    const TYPE: &'static str = "HatEventer.MsgEventsNotify";
}

/// `HatEventer.MsgEventsAck` (no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgEventsAck;

impl Sbs for MsgEventsAck {
    fn write(&self, _w: &mut Writer) {}
    fn read(_r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MsgEventsAck)
    }
}

impl Message for MsgEventsAck {
    const TYPE: &'static str = "HatEventer.MsgEventsAck";
}

/// `HatEventer.MsgRegisterReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgRegisterReq(pub Vec<RegisterEvent>);

impl Sbs for MsgRegisterReq {
    fn write(&self, w: &mut Writer) {
        self.0.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Vec::read(r).map(MsgRegisterReq)
    }
}

impl Message for MsgRegisterReq {
    const TYPE: &'static str = "HatEventer.MsgRegisterReq";
}

/// The encoding of a `MsgRegisterReq` of `events`, borrowing their payloads.
pub fn register_request_parts<'a>(events: &[RegisterEventRef<'a>]) -> Parts<'a> {
    let mut parts = Parts::new();
    parts.write(|w| w.array_len(events.len()));
    for event in events {
        event.write_parts(&mut parts);
    }
    parts
}

/// `HatEventer.MsgRegisterRes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgRegisterRes {
    /// `events`: the registered events, in request order.
    Events(Vec<Event>),
    /// `failure`: the server did not register them.
    Failure,
}

impl Sbs for MsgRegisterRes {
    fn write(&self, w: &mut Writer) {
        match self {
            MsgRegisterRes::Events(events) => {
                w.choice(0);
                events.write(w);
            }
            MsgRegisterRes::Failure => w.choice(1),
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(2)? {
            0 => MsgRegisterRes::Events(Vec::read(r)?),
            _ => MsgRegisterRes::Failure,
        })
    }
}

impl Message for MsgRegisterRes {
    const TYPE: &'static str = "HatEventer.MsgRegisterRes";
}

impl MsgRegisterRes {
    /// Decodes `body` as [`decode_body`] does, but keeps no payload: the
    /// server echoes each registered event whole, and the sender has them.
    pub fn decode_without_payloads(body: Body) -> Result<Self, DecodeError> {
        let mut r = Reader::of_body(body);
        let value = match r.choice(2)? {
            0 => {
                let len = r.array_len()?;
                let events = (0..len)
                    .map(|_| Event::read_without_payload(&mut r))
                    .collect::<Result<_, _>>()?;
                MsgRegisterRes::Events(events)
            }
            _ => MsgRegisterRes::Failure,
        };
        r.finish()?;
        Ok(value)
    }
}

/// `HatEventer.Order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `descending`.
    Descending,
    /// `ascending`.
    Ascending,
}

/// `HatEventer.OrderBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    /// `timestamp`.
    Timestamp,
    /// `sourceTimestamp`.
    SourceTimestamp,
}

/// `HatEventer.QueryTimeseriesParams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTimeseriesParams {
    /// Only these event types (all if `None`).
    pub event_types: Option<Vec<EventType>>,
    /// Registered at or after.
    pub t_from: Option<Timestamp>,
    /// Registered at or before.
    pub t_to: Option<Timestamp>,
    /// Source timestamp at or after.
    pub source_t_from: Option<Timestamp>,
    /// Source timestamp at or before.
    pub source_t_to: Option<Timestamp>,
    /// Result order.
    pub order: Order,
    /// Which timestamp orders the result.
    pub order_by: OrderBy,
    /// At most this many events.
    pub max_results: Option<i64>,
    /// Continue after this event.
    pub last_event_id: Option<EventId>,
}

/// `HatEventer.QueryServerParams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryServerParams {
    /// The server whose events to return.
    pub server_id: i64,
    /// Only persisted events.
    pub persisted: bool,
    /// At most this many events.
    pub max_results: Option<i64>,
    /// Continue after this event.
    pub last_event_id: Option<EventId>,
}

/// `HatEventer.QueryParams` (`MsgQueryReq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryParams {
    /// `latest`: the newest event of each matching type.
    Latest {
        /// Only these event types (all if `None`).
        event_types: Option<Vec<EventType>>,
    },
    /// `timeseries`.
    Timeseries(QueryTimeseriesParams),
    /// `server`.
    Server(QueryServerParams),
}

fn write_unit_choice(w: &mut Writer, index: usize) {
    w.choice(index);
}

impl Sbs for QueryParams {
    fn write(&self, w: &mut Writer) {
        match self {
            QueryParams::Latest { event_types } => {
                w.choice(0);
                event_types.write(w);
            }
            QueryParams::Timeseries(p) => {
                w.choice(1);
                p.event_types.write(w);
                p.t_from.write(w);
                p.t_to.write(w);
                p.source_t_from.write(w);
                p.source_t_to.write(w);
                write_unit_choice(w, p.order as usize);
                write_unit_choice(w, p.order_by as usize);
                p.max_results.write(w);
                p.last_event_id.write(w);
            }
            QueryParams::Server(p) => {
                w.choice(2);
                p.server_id.write(w);
                p.persisted.write(w);
                p.max_results.write(w);
                p.last_event_id.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(3)? {
            0 => QueryParams::Latest {
                event_types: Option::read(r)?,
            },
            1 => QueryParams::Timeseries(QueryTimeseriesParams {
                event_types: Option::read(r)?,
                t_from: Option::read(r)?,
                t_to: Option::read(r)?,
                source_t_from: Option::read(r)?,
                source_t_to: Option::read(r)?,
                order: if r.choice(2)? == 0 {
                    Order::Descending
                } else {
                    Order::Ascending
                },
                order_by: if r.choice(2)? == 0 {
                    OrderBy::Timestamp
                } else {
                    OrderBy::SourceTimestamp
                },
                max_results: Option::read(r)?,
                last_event_id: Option::read(r)?,
            }),
            _ => QueryParams::Server(QueryServerParams {
                server_id: r.integer()?,
                persisted: r.boolean()?,
                max_results: Option::read(r)?,
                last_event_id: Option::read(r)?,
            }),
        })
    }
}

impl Message for QueryParams {
    const TYPE: &'static str = "HatEventer.MsgQueryReq";
}

/// `HatEventer.QueryResult` (`MsgQueryRes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// The events found.
    pub events: Vec<Event>,
    /// Whether more events match than were returned.
    pub more_follows: bool,
}

impl Sbs for QueryResult {
    fn write(&self, w: &mut Writer) {
        self.events.write(w);
        self.more_follows.write(w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(QueryResult {
            events: Vec::read(r)?,
            more_follows: r.boolean()?,
        })
    }
}

impl Message for QueryResult {
    const TYPE: &'static str = "HatEventer.MsgQueryRes";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<RegisterEvent> {
        let event = |last: &str, payload| RegisterEvent {
            event_type: vec!["aimm".into(), last.into()],
            source_timestamp: Some(Timestamp { s: 5, us: 6 }),
            payload,
        };
        vec![
            event("none", None),
            event("json", Some(EventPayload::Json("[1]".into()))),
            event(
                "large",
                Some(EventPayload::Json(format!("\"{}\"", "x".repeat(100 << 10)))),
            ),
            event(
                "binary",
                Some(EventPayload::Binary {
                    payload_type: "b".into(),
                    data: vec![0; 70 << 10],
                }),
            ),
        ]
    }

    #[test]
    fn a_registration_in_parts_is_the_message_s_encoding_with_payloads_borrowed() {
        let events = events();
        let refs: Vec<RegisterEventRef<'_>> = events.iter().map(RegisterEventRef::from).collect();
        let parts = register_request_parts(&refs);
        assert_eq!(parts.to_vec(), encode(&MsgRegisterReq(events.clone())));
        let Some(EventPayload::Json(large)) = &events[2].payload else {
            unreachable!()
        };
        assert!(parts.pieces().any(|piece| piece.as_ptr() == large.as_ptr()));
        let again: MsgRegisterReq = decode(&parts.to_vec()).unwrap();
        assert_eq!(again.0, events);
    }

    #[test]
    fn a_register_answer_decodes_without_its_payloads() {
        let registered: Vec<Event> = events()
            .into_iter()
            .enumerate()
            .map(|(i, e)| Event {
                id: EventId {
                    server: 1,
                    session: 2,
                    instance: i as i64 + 1,
                },
                event_type: e.event_type,
                timestamp: Timestamp { s: 9, us: 0 },
                source_timestamp: e.source_timestamp,
                payload: e.payload,
            })
            .collect();
        let body = Body::from(encode(&MsgRegisterRes::Events(registered.clone())));
        let MsgRegisterRes::Events(decoded) =
            MsgRegisterRes::decode_without_payloads(body).unwrap()
        else {
            panic!("not events");
        };
        let expected: Vec<Event> = registered
            .into_iter()
            .map(|e| Event { payload: None, ..e })
            .collect();
        assert_eq!(decoded, expected);
        let failure = Body::from(encode(&MsgRegisterRes::Failure));
        assert_eq!(
            MsgRegisterRes::decode_without_payloads(failure).unwrap(),
            MsgRegisterRes::Failure
        );
        let mut cut = encode(&MsgRegisterRes::Events(expected));
        cut.pop();
        assert!(MsgRegisterRes::decode_without_payloads(Body::from(cut)).is_err());
        let mut trailing = encode(&MsgRegisterRes::Failure);
        trailing.push(0);
        assert!(MsgRegisterRes::decode_without_payloads(Body::from(trailing)).is_err());
    }
}
