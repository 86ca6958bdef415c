//! The `HatEventer` messages (hat-event 0.9) and their SBS codecs.
//!
//! Field order and Choice alternatives follow the `HatEventer` schema as
//! shipped with hat-event 0.9.44; the differential tests check every type
//! here against the Python `hat-sbs` encoding of that schema. The codecs
//! are declared from the schema's shapes (the macros of `codec.rs`), written out
//! only for Choices whose alternatives carry values.

#[macro_use]
mod codec;
mod event;
mod messages;
mod query;

pub use crate::sbs::{decode, decode_body, encode, Sbs};
pub use event::{
    Event, EventId, EventPayload, EventPayloadRef, EventType, RegisterEvent, RegisterEventRef,
    Timestamp,
};
pub use messages::{
    register_request_parts, MsgEventsAck, MsgEventsNotify, MsgInitReq, MsgInitRes, MsgRegisterReq,
    MsgRegisterRes, MsgStatusNotify, Status,
};
pub use query::{
    Order, OrderBy, QueryParams, QueryResult, QueryServerParams, QueryTimeseriesParams,
};

/// A message sent as Chatter `data`, named by [`Message::TYPE`].
pub trait Message: Sbs {
    /// The `data.type` of Chatter messages carrying this message.
    const TYPE: &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbs::Body;

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
