//! Hat events, as the host's event client hands them to a plugin.
//!
//! These mirror the `hat.event.common` types of `hat-event` 0.9 closely enough
//! for a backend to build and read model events; the wire encoding is the
//! host's business.

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;

/// An event type: a sequence of segments. In subscriptions and queries the
/// segment `"*"` matches any rest and `"?"` any one segment.
pub type EventType = RVec<RString>;

/// Builds an [`EventType`] from string segments.
///
/// ```
/// use aimm_backend_api::event_type;
///
/// let t = event_type(["aimm", "model", "*"]);
/// assert_eq!(t.len(), 3);
/// ```
pub fn event_type<I, S>(segments: I) -> EventType
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    segments
        .into_iter()
        .map(|s| RString::from(s.into()))
        .collect()
}

/// The server-assigned identity of an event.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The id of the server that registered the event.
    pub server: i64,
    /// The server session in which it was registered.
    pub session: i64,
    /// The event's number within the session.
    pub instance: i64,
}

/// A point in time: seconds since the Unix epoch and microseconds.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub s: i64,
    /// Microseconds within the second, `0..1_000_000`.
    pub us: i64,
}

/// The payload of an event.
#[repr(C, u8)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub enum EventPayload {
    /// Opaque bytes with a type name.
    Binary {
        /// The payload type name.
        payload_type: RString,
        /// The bytes.
        data: RVec<u8>,
    },
    /// A JSON document, as text.
    Json(RString),
}

/// An event as the server stored it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The server-assigned id.
    pub id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// When the server registered it.
    pub timestamp: Timestamp,
    /// When the source says it happened, if it says.
    pub source_timestamp: ROption<Timestamp>,
    /// The payload, if any.
    pub payload: ROption<EventPayload>,
}

/// An event a plugin asks the server to register.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct RegisterEvent {
    /// The event type.
    pub event_type: EventType,
    /// When the source says it happened, if it says.
    pub source_timestamp: ROption<Timestamp>,
    /// The payload, if any.
    pub payload: ROption<EventPayload>,
}
