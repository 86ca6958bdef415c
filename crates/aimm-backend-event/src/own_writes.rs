//! Recognising this backend's own writes when the server notifies them back.
//!
//! The host's connection is subscribed to the prefix, so every model event
//! this backend registers comes back through `process_events`, and listeners
//! have already heard of it from the write itself. With persisted
//! acknowledgement the notification is what ends the write's wait, so it
//! can reach `process_events` before the write learns its event id: a write
//! in flight is therefore recognised by its content, a finished one by its
//! event id. A write sent without waiting for the server's answer never
//! learns its event id: it is recognised by its content until its
//! notification arrives.

use aimm_backend_api::{EventId, InstanceId};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How many of its own event ids (and of its sent, not yet notified writes)
/// a backend remembers.
const EVENTS_REMEMBERED: usize = 4096;

/// The writes of one backend: finished (by event id) and in flight.
#[derive(Default)]
pub(crate) struct OwnWrites(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    events: VecDeque<EventId>,
    in_flight: Vec<(u64, InstanceId, u64)>,
    /// Sent writes whose notification has not arrived: (id, fingerprint).
    sent: VecDeque<(InstanceId, u64)>,
    next_ticket: u64,
}

/// A write in flight; forgotten when dropped.
pub(crate) struct InFlight<'a> {
    writes: &'a OwnWrites,
    ticket: u64,
}

impl OwnWrites {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks model `id`, of content `fingerprint` (see
    /// [`fingerprint`](crate::codec::fingerprint)), as being written until
    /// the returned guard is dropped.
    pub(crate) fn begin(&self, id: InstanceId, fingerprint: u64) -> InFlight<'_> {
        let mut inner = self.lock();
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        inner.in_flight.push((ticket, id, fingerprint));
        InFlight {
            writes: self,
            ticket,
        }
    }

    /// Whether the notified `event`, carrying model `model_id` whose
    /// content's fingerprint `fingerprint` computes, is one of ours. The
    /// fingerprint is computed only if a write of that id is pending.
    pub(crate) fn is_own(
        &self,
        event: &EventId,
        model_id: InstanceId,
        fingerprint: impl FnOnce() -> u64,
    ) -> bool {
        let mut inner = self.lock();
        if inner.events.contains(event) {
            return true;
        }
        let sent = inner.sent.iter().any(|&(id, _)| id == model_id);
        let in_flight = inner.in_flight.iter().any(|&(_, id, _)| id == model_id);
        if !sent && !in_flight {
            return false;
        }
        let content = fingerprint();
        if let Some(at) = inner
            .sent
            .iter()
            .position(|&(id, f)| id == model_id && f == content)
        {
            // Its notification, once: a later equal write by another host
            // is not ours.
            inner.sent.remove(at);
            return true;
        }
        inner
            .in_flight
            .iter()
            .any(|&(_, id, f)| id == model_id && f == content)
    }
}

impl InFlight<'_> {
    /// The write was sent without waiting for the server's answer; it stays
    /// recognisable by its content until its notification arrives.
    pub(crate) fn sent(self) {
        let mut inner = self.writes.lock();
        let Some(&(_, id, fingerprint)) = inner
            .in_flight
            .iter()
            .find(|(ticket, _, _)| *ticket == self.ticket)
        else {
            return;
        };
        if inner.sent.len() == EVENTS_REMEMBERED {
            inner.sent.pop_front();
        }
        inner.sent.push_back((id, fingerprint));
    }

    /// The write is done and the server numbered it `event`.
    pub(crate) fn written(self, event: EventId) {
        let mut inner = self.writes.lock();
        if inner.events.len() == EVENTS_REMEMBERED {
            inner.events.pop_front();
        }
        inner.events.push_back(event);
        // `self` drops here, after the id is known: no gap between the two.
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.writes.lock();
        inner
            .in_flight
            .retain(|(ticket, _, _)| *ticket != self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::Model;

    /// Marks `model` as being written.
    fn begin<'a>(writes: &'a OwnWrites, model: &Model) -> InFlight<'a> {
        writes.begin(model.instance_id, fingerprint(model))
    }

    fn fingerprint(model: &Model) -> u64 {
        let (_, fingerprint) = crate::codec::model_event(&[], model);
        fingerprint
    }

    /// Whether the notified `event` carrying `model` is ours.
    fn is_own(writes: &OwnWrites, event: &EventId, model: &Model) -> bool {
        writes.is_own(event, model.instance_id, || fingerprint(model))
    }

    fn id(instance: i64) -> EventId {
        EventId {
            server: 1,
            session: 1,
            instance,
        }
    }

    #[test]
    fn a_write_in_flight_is_recognised_by_content_then_by_event_id() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1, 2, 3]);
        let in_flight = begin(&writes, &model);
        assert!(is_own(&writes, &id(1), &model));
        assert!(!is_own(&writes, &id(1), &Model::new(7, "t", vec![9])));
        assert!(!is_own(&writes, &id(1), &Model::new(8, "t", vec![1, 2, 3])));
        in_flight.written(id(1));
        assert!(is_own(&writes, &id(1), &model));
        assert!(
            !is_own(&writes, &id(2), &model),
            "a later write by another host"
        );
    }

    #[test]
    fn a_sent_write_is_recognised_by_content_once() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1, 2, 3]);
        begin(&writes, &model).sent();
        assert!(!is_own(&writes, &id(5), &Model::new(7, "t", vec![9])));
        assert!(is_own(&writes, &id(5), &model), "its notification");
        assert!(
            !is_own(&writes, &id(6), &model),
            "the same content again, written by another host"
        );
    }

    #[test]
    fn a_failed_write_is_forgotten() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1]);
        drop(begin(&writes, &model));
        assert!(!is_own(&writes, &id(1), &model));
    }
}
