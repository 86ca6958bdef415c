//! Queries and their results.

use super::{Event, EventId, EventType, Timestamp};
use crate::sbs::{DecodeError, Reader, Sbs, Writer};

/// `HatEventer.Order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `descending`.
    Descending,
    /// `ascending`.
    Ascending,
}

unit_choice!(Order {
    Descending,
    Ascending
});

/// `HatEventer.OrderBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    /// `timestamp`.
    Timestamp,
    /// `sourceTimestamp`.
    SourceTimestamp,
}

unit_choice!(OrderBy {
    Timestamp,
    SourceTimestamp
});

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

record!(QueryTimeseriesParams {
    event_types,
    t_from,
    t_to,
    source_t_from,
    source_t_to,
    order,
    order_by,
    max_results,
    last_event_id,
});

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

record!(QueryServerParams {
    server_id,
    persisted,
    max_results,
    last_event_id,
});

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

impl Sbs for QueryParams {
    fn write(&self, w: &mut Writer) {
        match self {
            QueryParams::Latest { event_types } => {
                w.choice(0);
                event_types.write(w);
            }
            QueryParams::Timeseries(params) => {
                w.choice(1);
                params.write(w);
            }
            QueryParams::Server(params) => {
                w.choice(2);
                params.write(w);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.choice(3)? {
            0 => QueryParams::Latest {
                event_types: Option::read(r)?,
            },
            1 => QueryParams::Timeseries(Sbs::read(r)?),
            _ => QueryParams::Server(Sbs::read(r)?),
        })
    }
}

/// `HatEventer.QueryResult` (`MsgQueryRes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// The events found.
    pub events: Vec<Event>,
    /// Whether more events match than were returned.
    pub more_follows: bool,
}

record!(QueryResult {
    events,
    more_follows
});

message_types! {
    QueryParams = "HatEventer.MsgQueryReq",
    QueryResult = "HatEventer.MsgQueryRes",
}
