//! Persisted registrations acknowledged by their own notifications.
//!
//! A Hat event server answers a registration by echoing every event whole,
//! and then, once it has written them, notifies them again to every
//! connection subscribed to their types, this one included. For
//! [`RegisterMode::Persisted`](aimm_backend_api::RegisterMode::Persisted)
//! the answer tells nothing the notification does not: the registration is
//! therefore sent without asking for one, and the events are recognised in
//! the persisted notifications by type and payload. That spares the server
//! encoding and writing every event one more time, which is most of what a
//! registration costs it (for a 512 MiB model, 45 s of the server's time).
//!
//! Payloads are compared by SHA-256 digest, so nothing of a large payload
//! is kept while its notification is awaited. The server re-encodes JSON
//! payloads (its own spacing and escapes), so a JSON payload's digest is
//! taken over its parsed tokens in order (strings unescaped, numbers as
//! parsed), not over its text; the server keeps the order of object keys.
//!
//! The matching is the host's, whatever client carries the notifications:
//! this crate's own Hat client ([`crate::HatEventClient`]) and a host that
//! lends a plugin another client (the `aimm_backend` Python package lends
//! the Python AIMM server's) both wait here, each for the event type its
//! client hands over ([`Notification`]).

use aimm_backend_api::{Event, EventPayload, ROption, RegisterEvent};
use hat_eventer_client::eventer_msg as msg;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sha2::{Digest as _, Sha256};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// A SHA-256 digest of a payload (see the module docs).
pub type Digest = [u8; 32];

/// What a notified event's payload is, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadDigest {
    /// The event has no payload.
    Absent,
    /// The digest of its payload.
    Of(Digest),
    /// JSON that does not parse: it matches nothing.
    Unreadable,
}

impl PayloadDigest {
    fn of_json(text: &str) -> Self {
        json_digest(text).map_or(PayloadDigest::Unreadable, PayloadDigest::Of)
    }

    /// Whether this is the digest a registered event's payload has
    /// (`None`: no payload).
    fn is(self, registered: Option<Digest>) -> bool {
        match (self, registered) {
            (PayloadDigest::Absent, None) => true,
            (PayloadDigest::Of(digest), Some(wanted)) => digest == wanted,
            _ => false,
        }
    }
}

/// A notified event as a client hands it over: what matching needs of it.
pub trait Notification: Send + 'static {
    /// Whether its type is `event_type`, segment by segment.
    fn has_type(&self, event_type: &[String]) -> bool;
    /// The digest of its payload.
    fn payload_digest(&self) -> PayloadDigest;
    /// The event without its payload: what a waiting registration keeps.
    fn without_payload(&self) -> Self;
}

impl Notification for msg::Event {
    fn has_type(&self, event_type: &[String]) -> bool {
        self.event_type == event_type
    }

    fn payload_digest(&self) -> PayloadDigest {
        match &self.payload {
            None => PayloadDigest::Absent,
            Some(msg::EventPayload::Binary { payload_type, data }) => {
                PayloadDigest::Of(binary_digest(payload_type, data))
            }
            Some(msg::EventPayload::Json(text)) => PayloadDigest::of_json(text),
        }
    }

    fn without_payload(&self) -> Self {
        msg::Event {
            id: self.id,
            event_type: self.event_type.clone(),
            timestamp: self.timestamp,
            source_timestamp: self.source_timestamp,
            payload: None,
        }
    }
}

impl Notification for Event {
    fn has_type(&self, event_type: &[String]) -> bool {
        self.event_type.len() == event_type.len()
            && self.event_type.iter().zip(event_type).all(|(a, b)| a == b)
    }

    fn payload_digest(&self) -> PayloadDigest {
        match self.payload.as_ref().into_option() {
            None => PayloadDigest::Absent,
            Some(EventPayload::Binary { payload_type, data }) => {
                PayloadDigest::Of(binary_digest(payload_type, data))
            }
            Some(EventPayload::Json(text)) => PayloadDigest::of_json(text),
        }
    }

    fn without_payload(&self) -> Self {
        Event {
            id: self.id,
            event_type: self.event_type.clone(),
            timestamp: self.timestamp,
            source_timestamp: self.source_timestamp,
            payload: ROption::RNone,
        }
    }
}

/// An event as the server will notify it.
#[derive(Debug, PartialEq)]
pub struct Expected {
    event_type: Vec<String>,
    payload: Option<Digest>,
}

impl Expected {
    /// What the notifications of `events` will carry, or `None` if they
    /// cannot be recognised that way (JSON that does not parse, which the
    /// server would refuse anyway).
    pub fn all_of(events: &[RegisterEvent]) -> Option<Vec<Expected>> {
        events.iter().map(Expected::of).collect()
    }

    fn of(event: &RegisterEvent) -> Option<Expected> {
        let payload = match event.payload.as_ref().into_option() {
            None => None,
            Some(EventPayload::Binary { payload_type, data }) => {
                Some(binary_digest(payload_type, data))
            }
            Some(EventPayload::Json(text)) => Some(json_digest(text)?),
        };
        Some(Expected {
            event_type: event.event_type.iter().map(|s| s.to_string()).collect(),
            payload,
        })
    }

    /// Whether the notified `event`, whose payload digest `digest` gives
    /// (computed once per event, and only if some type matches), is this one.
    fn matches(
        &self,
        event: &impl Notification,
        digest: &mut impl FnMut() -> PayloadDigest,
    ) -> bool {
        event.has_type(&self.event_type) && digest().is(self.payload)
    }
}

fn binary_digest(payload_type: &str, data: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(b"b");
    hasher.update((payload_type.len() as u64).to_le_bytes());
    hasher.update(payload_type.as_bytes());
    hasher.update(data);
    hasher.finalize().into()
}

/// The digest of the JSON value `text` holds: equal for every encoding of
/// the same value with its object keys in the same order.
fn json_digest(text: &str) -> Option<Digest> {
    let mut hasher = Sha256::new();
    hasher.update(b"j");
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Tokens(&mut hasher).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(hasher.finalize().into())
}

/// Feeds every token of a JSON value to the hasher, tagged by kind, without
/// building the value: a long string is hashed where it lies in the text.
struct Tokens<'h>(&'h mut Sha256);

impl Tokens<'_> {
    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.0.update([tag]);
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }
}

impl<'de> DeserializeSeed<'de> for Tokens<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tokens<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.tagged(b'n', &[]);
        Ok(())
    }

    fn visit_bool<E>(mut self, v: bool) -> Result<(), E> {
        self.tagged(b'b', &[u8::from(v)]);
        Ok(())
    }

    fn visit_i64<E>(mut self, v: i64) -> Result<(), E> {
        self.tagged(b'i', &v.to_le_bytes());
        Ok(())
    }

    fn visit_u64<E>(mut self, v: u64) -> Result<(), E> {
        self.tagged(b'u', &v.to_le_bytes());
        Ok(())
    }

    fn visit_f64<E>(mut self, v: f64) -> Result<(), E> {
        self.tagged(b'f', &v.to_bits().to_le_bytes());
        Ok(())
    }

    fn visit_str<E>(mut self, v: &str) -> Result<(), E> {
        self.tagged(b's', v.as_bytes());
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.update(b"[");
        while seq.next_element_seed(Tokens(self.0))?.is_some() {}
        self.0.update(b"]");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.update(b"{");
        while map.next_key_seed(Tokens(self.0))?.is_some() {
            map.next_value_seed(Tokens(self.0))?;
        }
        self.0.update(b"}");
        Ok(())
    }
}

/// What a completed wait is handed: the notified events, in order.
type Done<E> = Box<dyn FnOnce(Vec<E>) + Send>;

/// One registration waiting for its notifications.
struct Waiting<E> {
    ticket: u64,
    connection: u64,
    expected: Vec<Expected>,
    /// The notified events (without payloads), slot by slot.
    found: Vec<Option<E>>,
    done: Option<Done<E>>,
}

struct Inner<E> {
    next_ticket: u64,
    waiting: Vec<Waiting<E>>,
}

/// The registrations waiting for their notifications, on every connection
/// of one host, for clients that hand notified events over as `E`.
pub struct Awaited<E>(Mutex<Inner<E>>);

impl<E> Default for Awaited<E> {
    fn default() -> Self {
        Awaited(Mutex::new(Inner {
            next_ticket: 0,
            waiting: Vec::new(),
        }))
    }
}

/// A registration's place among the waiting; leaving it (dropped) stops
/// the wait.
pub struct Ticket<'a, E> {
    awaited: &'a Awaited<E>,
    ticket: u64,
}

impl<E> Drop for Ticket<'_, E> {
    fn drop(&mut self) {
        self.awaited
            .lock()
            .waiting
            .retain(|w| w.ticket != self.ticket);
    }
}

impl<E> Awaited<E> {
    fn lock(&self) -> MutexGuard<'_, Inner<E>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<E: Notification> Awaited<E> {
    /// Starts waiting for `expected` on connection `connection`: to be
    /// called before the registration is sent. The receiver gets the
    /// notified events, in the order of `expected`, once all have been.
    pub fn wait_for(
        &self,
        connection: u64,
        expected: Vec<Expected>,
    ) -> (Ticket<'_, E>, oneshot::Receiver<Vec<E>>) {
        let (done, receiver) = oneshot::channel();
        let ticket = self.wait_then(connection, expected, move |found| {
            // A receiver gone has stopped waiting: nothing to tell.
            let _ = done.send(found);
        });
        (ticket, receiver)
    }

    /// As [`Awaited::wait_for`], for a caller that does not wait in async
    /// code: `done` is called with the notified events, on the thread that
    /// hands over the batch completing the wait, unless the ticket was
    /// dropped first.
    pub fn wait_then(
        &self,
        connection: u64,
        expected: Vec<Expected>,
        done: impl FnOnce(Vec<E>) + Send + 'static,
    ) -> Ticket<'_, E> {
        let mut inner = self.lock();
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        inner.waiting.push(Waiting {
            ticket,
            connection,
            found: expected.iter().map(|_| None).collect(),
            expected,
            done: Some(Box::new(done)),
        });
        Ticket {
            awaited: self,
            ticket,
        }
    }

    /// Looks for awaited events in `batch`, notified on `connection`. Each
    /// notified event completes at most one awaited slot (the oldest that
    /// matches): two equal registrations are each matched by their own.
    pub fn notified(&self, connection: u64, batch: &[E]) {
        let mut completed = Vec::new();
        {
            let mut inner = self.lock();
            if inner.waiting.is_empty() {
                return;
            }
            for event in batch {
                if let Some(done) = inner.match_one(connection, event) {
                    completed.push(done);
                }
            }
        }
        // Outside the lock: a `done` may start the next wait at once.
        for (done, found) in completed {
            done(found);
        }
    }
}

impl<E: Notification> Inner<E> {
    /// Fills the oldest slot `event` matches; the wait it completes, if any.
    fn match_one(&mut self, connection: u64, event: &E) -> Option<(Done<E>, Vec<E>)> {
        let mut digest = None;
        let mut digest_of = || *digest.get_or_insert_with(|| event.payload_digest());
        let (waiting, at) = self
            .waiting
            .iter_mut()
            .filter(|w| w.connection == connection)
            .find_map(|w| {
                let at = w
                    .expected
                    .iter()
                    .zip(&w.found)
                    .position(|(expected, found)| {
                        found.is_none() && expected.matches(event, &mut digest_of)
                    })?;
                Some((w, at))
            })?;
        waiting.found[at] = Some(event.without_payload());
        if !waiting.found.iter().all(Option::is_some) {
            return None;
        }
        let found = waiting.found.drain(..).flatten().collect();
        Some((waiting.done.take()?, found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::{event_type, ROption};

    fn register_event(segments: &[&str], payload: Option<EventPayload>) -> RegisterEvent {
        RegisterEvent {
            event_type: event_type(segments.iter().copied()),
            source_timestamp: ROption::RNone,
            payload: payload.into(),
        }
    }

    fn notified(segments: &[&str], session: i64, payload: Option<msg::EventPayload>) -> msg::Event {
        msg::Event {
            id: msg::EventId {
                server: 1,
                session,
                instance: 1,
            },
            event_type: segments.iter().map(|s| s.to_string()).collect(),
            timestamp: msg::Timestamp { s: 0, us: 0 },
            source_timestamp: None,
            payload,
        }
    }

    fn json(text: &str) -> Option<msg::EventPayload> {
        Some(msg::EventPayload::Json(text.into()))
    }

    fn is(expected: &Expected, event: &msg::Event) -> bool {
        expected.matches(event, &mut || event.payload_digest())
    }

    #[test]
    fn json_is_matched_by_value_whatever_the_server_s_spacing_and_escapes() {
        let ours = register_event(
            &["a", "1"],
            Some(EventPayload::Json(
                r#"{"type": "é", "instance": "AQ==", "n": [1, -2, 2.5, true, null]}"#.into(),
            )),
        );
        let [expected] = Expected::all_of(&[ours]).unwrap().try_into().unwrap();
        let same = r#"{"type":"\u00e9","instance":"AQ==","n":[1,-2,2.5,true,null]}"#;
        assert!(is(&expected, &notified(&["a", "1"], 1, json(same))));
        let different = [
            r#"{"type": "e", "instance": "AQ==", "n": [1, -2, 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AA==", "n": [1, -2, 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [1.0, -2, 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [3, -2, 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [1, -3, 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [1, -2, 3.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [1, -2, 2.5, false, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [1, -2, 2.5, true]}"#,
            r#"{"type": "é", "instance": "AQ==", "n": [[1, -2], 2.5, true, null]}"#,
            r#"{"type": "é", "instance": "AQ==", "m": [1, -2, 2.5, true, null]}"#,
            r#"{"instance": "AQ==", "type": "é", "n": [1, -2, 2.5, true, null]}"#,
            r#"["type", "é", "instance", "AQ==", "n", [1, -2, 2.5, true, null]]"#,
            "not json",
        ];
        for text in different {
            assert!(
                !is(&expected, &notified(&["a", "1"], 1, json(text))),
                "{text}"
            );
        }
        assert!(
            !is(&expected, &notified(&["a", "2"], 1, json(same))),
            "another type"
        );
        assert!(!is(&expected, &notified(&["a", "1"], 1, None)));
        let binary = msg::EventPayload::Binary {
            payload_type: "b".into(),
            data: vec![1],
        };
        assert!(!is(&expected, &notified(&["a", "1"], 1, Some(binary))));
    }

    #[test]
    fn binary_and_empty_payloads_are_matched_exactly() {
        let events = [
            register_event(&["c"], None),
            register_event(
                &["b"],
                Some(EventPayload::Binary {
                    payload_type: "t".into(),
                    data: vec![1, 2].into(),
                }),
            ),
        ];
        let expected = Expected::all_of(&events).unwrap();
        assert!(is(&expected[0], &notified(&["c"], 1, None)));
        assert!(!is(&expected[0], &notified(&["c"], 1, json("null"))));
        let binary = |payload_type: &str, data: Vec<u8>| {
            Some(msg::EventPayload::Binary {
                payload_type: payload_type.into(),
                data,
            })
        };
        assert!(is(
            &expected[1],
            &notified(&["b"], 1, binary("t", vec![1, 2]))
        ));
        assert!(!is(
            &expected[1],
            &notified(&["b"], 1, binary("u", vec![1, 2]))
        ));
        assert!(!is(
            &expected[1],
            &notified(&["b"], 1, binary("t", vec![1]))
        ));
        assert!(
            !is(&expected[1], &notified(&["b"], 1, binary("t1", vec![2]))),
            "split"
        );
    }

    #[test]
    fn json_that_does_not_parse_cannot_be_recognised_and_large_payloads_are_kept_as_digests() {
        let broken = register_event(&["a"], Some(EventPayload::Json("{".into())));
        assert_eq!(Expected::all_of(&[broken]), None);
        let trailing = register_event(&["a"], Some(EventPayload::Json("1 2".into())));
        assert_eq!(Expected::all_of(&[trailing]), None);
        let text = format!("{{\"instance\": \"{}\"}}", "A".repeat(8 << 20));
        let large = register_event(&["a"], Some(EventPayload::Json(text.clone().into())));
        let [expected] = Expected::all_of(&[large]).unwrap().try_into().unwrap();
        assert!(is(&expected, &notified(&["a"], 1, json(&text))));
        assert!(
            std::mem::size_of_val(&expected) < 128,
            "nothing of the payload is kept"
        );
    }

    #[test]
    fn a_registration_completes_once_each_of_its_events_is_notified_on_its_connection() {
        let awaited = Awaited::<msg::Event>::default();
        let events = [
            register_event(&["a", "1"], Some(EventPayload::Json("1".into()))),
            register_event(&["a", "1"], Some(EventPayload::Json("1".into()))),
            register_event(&["a", "2"], Some(EventPayload::Json("2".into()))),
        ];
        let (ticket, mut done) = awaited.wait_for(7, Expected::all_of(&events).unwrap());
        awaited.notified(8, &[notified(&["a", "2"], 10, json("2"))]);
        awaited.notified(
            7,
            &[
                notified(&["a", "2"], 11, json("2")),
                notified(&["a", "1"], 12, json("1")),
            ],
        );
        assert!(
            done.try_recv().is_err(),
            "one of the two equal events is still due"
        );
        awaited.notified(7, &[notified(&["a", "1"], 13, json("1"))]);
        let found = done.try_recv().unwrap();
        let sessions: Vec<i64> = found.iter().map(|e| e.id.session).collect();
        assert_eq!(sessions, [12, 13, 11], "in the order registered");
        assert!(
            found.iter().all(|e| e.payload.is_none()),
            "kept without payloads"
        );
        drop(ticket);
        assert!(
            awaited.lock().waiting.is_empty(),
            "the ticket leaves with the wait"
        );
    }

    #[test]
    fn a_wait_that_ends_leaves_the_others_waiting() {
        let awaited = Awaited::<msg::Event>::default();
        let event = [register_event(&["a"], None)];
        let (first, _) = awaited.wait_for(1, Expected::all_of(&event).unwrap());
        let (_second, mut second) = awaited.wait_for(1, Expected::all_of(&event).unwrap());
        let (_third, mut third) = awaited.wait_for(1, Expected::all_of(&event).unwrap());
        drop(first);
        assert_eq!(awaited.lock().waiting.len(), 2);
        awaited.notified(1, &[notified(&["a"], 5, None), notified(&["a"], 6, None)]);
        assert_eq!(second.try_recv().unwrap()[0].id.session, 5);
        assert_eq!(third.try_recv().unwrap()[0].id.session, 6);
    }

    #[test]
    fn events_of_the_plugin_api_are_matched_as_the_client_s_own_are() {
        use aimm_backend_api::{EventId, Timestamp};
        let api = |segments: &[&str], payload: Option<EventPayload>| Event {
            id: EventId {
                server: 1,
                session: 2,
                instance: 3,
            },
            event_type: event_type(segments.iter().copied()),
            timestamp: Timestamp { s: 4, us: 5 },
            source_timestamp: ROption::RNone,
            payload: payload.into(),
        };
        let text = |t: &str| Some(EventPayload::Json(t.into()));
        let bytes = |t: &str, data: &[u8]| {
            Some(EventPayload::Binary {
                payload_type: t.into(),
                data: data.to_vec().into(),
            })
        };
        let ours = [
            register_event(&["a", "1"], text(r#"{"x": "é"}"#)),
            register_event(&["a", "2"], bytes("t", &[1, 2])),
            register_event(&["a", "3"], None),
        ];
        let [json, binary, none] = Expected::all_of(&ours).unwrap().try_into().unwrap();
        let is = |expected: &Expected, event: &Event| {
            expected.matches(event, &mut || event.payload_digest())
        };
        assert!(is(&json, &api(&["a", "1"], text(r#"{"x":"\u00e9"}"#))));
        assert!(!is(&json, &api(&["a", "1"], text(r#"{"x": "e"}"#))));
        assert!(
            !is(&json, &api(&["a"], text(r#"{"x": "é"}"#))),
            "shorter type"
        );
        assert!(
            !is(&json, &api(&["a", "1", "b"], text(r#"{"x": "é"}"#))),
            "longer type"
        );
        assert!(!is(&json, &api(&["a", "2"], text(r#"{"x": "é"}"#))));
        assert!(is(&binary, &api(&["a", "2"], bytes("t", &[1, 2]))));
        assert!(!is(&binary, &api(&["a", "2"], bytes("u", &[1, 2]))));
        assert!(!is(&binary, &api(&["a", "2"], bytes("t", &[1, 3]))));
        assert!(is(&none, &api(&["a", "3"], None)));
        assert!(!is(&none, &api(&["a", "3"], text("null"))));
        assert!(
            !is(&json, &api(&["a", "1"], text("{"))),
            "JSON that does not parse"
        );

        let awaited = Awaited::<Event>::default();
        let (done, found) = std::sync::mpsc::channel();
        let _ticket = awaited.wait_then(0, Expected::all_of(&ours[1..2]).unwrap(), move |events| {
            done.send(events).unwrap()
        });
        awaited.notified(0, &[api(&["a", "2"], bytes("t", &[1, 2]))]);
        let [event] = found.try_recv().unwrap().try_into().unwrap();
        assert_eq!(event, api(&["a", "2"], None), "all but the payload kept");
    }

    #[test]
    fn two_equal_registrations_are_each_completed_by_their_own_notification() {
        let awaited = Awaited::<msg::Event>::default();
        let event = [register_event(&["a"], None)];
        let (_first, mut first) = awaited.wait_for(1, Expected::all_of(&event).unwrap());
        let (_second, mut second) = awaited.wait_for(1, Expected::all_of(&event).unwrap());
        awaited.notified(1, &[notified(&["a"], 5, None)]);
        assert_eq!(first.try_recv().unwrap()[0].id.session, 5);
        assert!(second.try_recv().is_err());
        awaited.notified(1, &[notified(&["a"], 6, None)]);
        assert_eq!(second.try_recv().unwrap()[0].id.session, 6);
    }
}
