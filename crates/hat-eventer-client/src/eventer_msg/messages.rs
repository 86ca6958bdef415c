//! The messages of a connection's life: init, status, notifications,
//! registration.

use super::{Event, EventType, RegisterEvent, RegisterEventRef};
use crate::sbs::{Body, DecodeError, Parts, Reader, Sbs, Writer};

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

unit_choice!(Status {
    Standby,
    Starting,
    Operational,
    Stopping
});

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

record!(MsgInitReq {
    client_name,
    client_token,
    subscriptions,
    server_id,
    persisted,
});

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

/// `HatEventer.MsgStatusNotify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgStatusNotify(pub Status);

newtype!(MsgStatusNotify);

/// `HatEventer.MsgEventsNotify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgEventsNotify(pub Vec<Event>);

newtype!(MsgEventsNotify);

/// `HatEventer.MsgEventsAck` (no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgEventsAck;

record!(MsgEventsAck {});

/// `HatEventer.MsgRegisterReq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgRegisterReq(pub Vec<RegisterEvent>);

newtype!(MsgRegisterReq);

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

impl MsgRegisterRes {
    /// Decodes `body` as [`decode_body`](crate::sbs::decode_body) does, but keeps no payload: the
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

message_types! {
    MsgInitReq = "HatEventer.MsgInitReq",
    MsgInitRes = "HatEventer.MsgInitRes",
    MsgStatusNotify = "HatEventer.MsgStatusNotify",
    MsgEventsNotify = "HatEventer.MsgEventsNotify",
    MsgEventsAck = "HatEventer.MsgEventsAck",
    MsgRegisterReq = "HatEventer.MsgRegisterReq",
    MsgRegisterRes = "HatEventer.MsgRegisterRes",
}
