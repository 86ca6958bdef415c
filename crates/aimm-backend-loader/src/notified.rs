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
//! registration costs it. The server re-encodes JSON payloads (its own
//! spacing and escapes), so JSON is compared as parsed values, not as text.
//!
//! Only registrations whose every payload is at most [`MAX_MATCHED`] bytes
//! go this way, because the expected payloads are kept (parsed) until
//! matched; larger ones are answered as before.

use aimm_backend_api::{EventPayload, RegisterEvent};
use hat_eventer_client::eventer_msg as msg;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

/// The largest payload of an event whose registration is acknowledged by
/// its notification.
pub(crate) const MAX_MATCHED: usize = 1 << 20;

/// An event as the server will notify it.
#[derive(Debug, PartialEq)]
pub(crate) struct Expected {
    event_type: Vec<String>,
    payload: ExpectedPayload,
}

#[derive(Debug, PartialEq)]
enum ExpectedPayload {
    None,
    Binary { payload_type: String, data: Vec<u8> },
    Json(serde_json::Value),
}

impl Expected {
    /// What the notifications of `events` will carry, or `None` if they
    /// cannot be recognised that way (a payload too large to keep, or JSON
    /// that does not parse, which the server would refuse anyway).
    pub(crate) fn all_of(events: &[RegisterEvent]) -> Option<Vec<Expected>> {
        events.iter().map(Expected::of).collect()
    }

    fn of(event: &RegisterEvent) -> Option<Expected> {
        let payload = match event.payload.as_ref().into_option() {
            None => ExpectedPayload::None,
            Some(EventPayload::Binary { payload_type, data }) if data.len() <= MAX_MATCHED => {
                ExpectedPayload::Binary {
                    payload_type: payload_type.to_string(),
                    data: data.to_vec(),
                }
            }
            Some(EventPayload::Json(text)) if text.len() <= MAX_MATCHED => {
                ExpectedPayload::Json(serde_json::from_str(text).ok()?)
            }
            Some(_) => return None,
        };
        Some(Expected {
            event_type: event.event_type.iter().map(|s| s.to_string()).collect(),
            payload,
        })
    }

    /// Whether the notified `event` is this one.
    fn matches(&self, event: &msg::Event) -> bool {
        if event.event_type != self.event_type {
            return false;
        }
        match (&self.payload, &event.payload) {
            (ExpectedPayload::None, None) => true,
            (
                ExpectedPayload::Binary { payload_type, data },
                Some(msg::EventPayload::Binary {
                    payload_type: notified_type,
                    data: notified,
                }),
            ) => payload_type == notified_type && data == notified,
            (ExpectedPayload::Json(value), Some(msg::EventPayload::Json(text))) => {
                serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v == *value)
            }
            _ => false,
        }
    }
}

/// One registration waiting for its notifications.
struct Waiting {
    ticket: u64,
    connection: u64,
    expected: Vec<Expected>,
    /// The notified events (without payloads), slot by slot.
    found: Vec<Option<msg::Event>>,
    done: Option<oneshot::Sender<Vec<msg::Event>>>,
}

#[derive(Default)]
struct Inner {
    next_ticket: u64,
    waiting: Vec<Waiting>,
}

/// The registrations waiting for their notifications, on every connection.
#[derive(Default)]
pub(crate) struct Awaited(Mutex<Inner>);

/// A registration's place among the waiting; leaving it (dropped) stops
/// the wait.
pub(crate) struct Ticket<'a> {
    awaited: &'a Awaited,
    ticket: u64,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.awaited
            .lock()
            .waiting
            .retain(|w| w.ticket != self.ticket);
    }
}

impl Awaited {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for `expected` on connection `connection`: to be
    /// called before the registration is sent. The receiver gets the
    /// notified events, in the order of `expected`, once all have been.
    pub(crate) fn wait_for(
        &self,
        connection: u64,
        expected: Vec<Expected>,
    ) -> (Ticket<'_>, oneshot::Receiver<Vec<msg::Event>>) {
        let (done, receiver) = oneshot::channel();
        let mut inner = self.lock();
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        inner.waiting.push(Waiting {
            ticket,
            connection,
            found: expected.iter().map(|_| None).collect(),
            expected,
            done: Some(done),
        });
        (
            Ticket {
                awaited: self,
                ticket,
            },
            receiver,
        )
    }

    /// Looks for awaited events in `batch`, notified on `connection`. Each
    /// notified event completes at most one awaited slot (the oldest that
    /// matches): two equal registrations are each matched by their own.
    pub(crate) fn notified(&self, connection: u64, batch: &[msg::Event]) {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            return;
        }
        for event in batch {
            let slot = inner
                .waiting
                .iter_mut()
                .filter(|w| w.connection == connection)
                .find_map(|w| {
                    let at = w
                        .expected
                        .iter()
                        .zip(&w.found)
                        .position(|(expected, found)| found.is_none() && expected.matches(event))?;
                    Some((w, at))
                });
            if let Some((waiting, at)) = slot {
                waiting.found[at] = Some(msg::Event {
                    id: event.id,
                    event_type: event.event_type.clone(),
                    timestamp: event.timestamp,
                    source_timestamp: event.source_timestamp,
                    payload: None,
                });
                if waiting.found.iter().all(Option::is_some) {
                    let found = waiting.found.drain(..).flatten().collect();
                    if let Some(done) = waiting.done.take() {
                        let _ = done.send(found);
                    }
                }
            }
        }
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

    #[test]
    fn json_is_matched_by_value_whatever_the_server_s_spacing_and_escapes() {
        let ours = register_event(
            &["a", "1"],
            Some(EventPayload::Json(
                r#"{"type": "é", "instance": "AQ=="}"#.into(),
            )),
        );
        let [expected] = Expected::all_of(&[ours]).unwrap().try_into().unwrap();
        assert!(expected.matches(&notified(
            &["a", "1"],
            1,
            json(r#"{"instance":"AQ==","type":"\u00e9"}"#)
        )));
        assert!(!expected.matches(&notified(
            &["a", "2"],
            1,
            json(r#"{"type": "é", "instance": "AQ=="}"#)
        )));
        assert!(!expected.matches(&notified(
            &["a", "1"],
            1,
            json(r#"{"type": "é", "instance": "AA=="}"#)
        )));
        assert!(!expected.matches(&notified(&["a", "1"], 1, None)));
        assert!(!expected.matches(&notified(&["a", "1"], 1, json("not json"))));
        let binary = msg::EventPayload::Binary {
            payload_type: "b".into(),
            data: vec![1],
        };
        assert!(!expected.matches(&notified(&["a", "1"], 1, Some(binary))));
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
        assert!(expected[0].matches(&notified(&["c"], 1, None)));
        assert!(!expected[0].matches(&notified(&["c"], 1, json("{}"))));
        let binary = |payload_type: &str, data: Vec<u8>| {
            Some(msg::EventPayload::Binary {
                payload_type: payload_type.into(),
                data,
            })
        };
        assert!(expected[1].matches(&notified(&["b"], 1, binary("t", vec![1, 2]))));
        assert!(!expected[1].matches(&notified(&["b"], 1, binary("u", vec![1, 2]))));
        assert!(!expected[1].matches(&notified(&["b"], 1, binary("t", vec![1]))));
    }

    #[test]
    fn payloads_too_large_to_keep_or_not_json_are_left_to_the_answer() {
        let large = "x".repeat(MAX_MATCHED + 1);
        let large = register_event(
            &["a"],
            Some(EventPayload::Json(format!("\"{large}\"").into())),
        );
        assert_eq!(Expected::all_of(&[large]), None);
        let broken = register_event(&["a"], Some(EventPayload::Json("{".into())));
        assert_eq!(Expected::all_of(&[broken]), None);
        let fits = "x".repeat(MAX_MATCHED - 2);
        let fits = register_event(
            &["a"],
            Some(EventPayload::Json(format!("\"{fits}\"").into())),
        );
        assert!(Expected::all_of(&[fits]).is_some());
    }

    #[test]
    fn a_registration_completes_once_each_of_its_events_is_notified_on_its_connection() {
        let awaited = Awaited::default();
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
    fn two_equal_registrations_are_each_completed_by_their_own_notification() {
        let awaited = Awaited::default();
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
