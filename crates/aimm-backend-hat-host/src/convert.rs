//! The Hat client's messages as the plugin API's types, and back.

use aimm_backend_api::{Event, EventId, EventPayload, RString, RegisterEvent, Timestamp};
use hat_eventer_client::eventer_msg as msg;

/// `event` as the client's borrowed registration, its type's segments
/// borrowed from `segments`.
pub(crate) fn register_event_ref<'a>(
    event: &'a RegisterEvent,
    segments: &'a [&'a str],
) -> msg::RegisterEventRef<'a> {
    msg::RegisterEventRef {
        event_type: segments.to_vec(),
        source_timestamp: event
            .source_timestamp
            .into_option()
            .map(|t| msg::Timestamp { s: t.s, us: t.us }),
        payload: event.payload.as_ref().into_option().map(|p| match p {
            EventPayload::Binary { payload_type, data } => msg::EventPayloadRef::Binary {
                payload_type: payload_type.as_str(),
                data: data.as_slice(),
            },
            EventPayload::Json(text) => msg::EventPayloadRef::Json(text.as_str()),
        }),
    }
}

pub(crate) fn to_api_event(event: msg::Event) -> Event {
    Event {
        id: EventId {
            server: event.id.server,
            session: event.id.session,
            instance: event.id.instance,
        },
        event_type: event.event_type.into_iter().map(RString::from).collect(),
        timestamp: Timestamp {
            s: event.timestamp.s,
            us: event.timestamp.us,
        },
        source_timestamp: event
            .source_timestamp
            .map(|t| Timestamp { s: t.s, us: t.us })
            .into(),
        payload: event.payload.map(to_api_payload).into(),
    }
}

fn to_api_payload(payload: msg::EventPayload) -> EventPayload {
    match payload {
        msg::EventPayload::Binary { payload_type, data } => EventPayload::Binary {
            payload_type: payload_type.into(),
            data: data.into(),
        },
        msg::EventPayload::Json(text) => EventPayload::Json(text.into()),
    }
}
