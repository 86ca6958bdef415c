//! Recognising this backend's own writes when the server notifies them back.
//!
//! The host's connection is subscribed to the prefix, so every model event
//! this backend registers comes back through `process_events`, and listeners
//! have already heard of it from the write itself. With persisted
//! acknowledgement the notification is what ends the write's wait, so it
//! can reach `process_events` before the write learns its event id: a write
//! in flight is therefore recognised by its content, a finished one by its
//! event id. A write that gets no answer (sent without waiting, or
//! registered through a host that knows it registered without the echo)
//! never learns its event id: it is recognised by its content until its
//! notification arrives. That notification then tells which event holds
//! what the write stored, unless a later write of the same model is still
//! to be notified (whose event is newer than the notified one).

use crate::latest::Digest;
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
    in_flight: Vec<Pending>,
    /// Unanswered writes whose notification has not arrived.
    unanswered: VecDeque<Unanswered>,
    next_ticket: u64,
}

/// A write in flight.
struct Pending {
    ticket: u64,
    id: InstanceId,
    fingerprint: u64,
    /// The event its notification came as, if it came before the write
    /// returned (persisted notifications can overtake an answer).
    notified: Option<EventId>,
}

/// A write that learnt no event id, until its notification arrives.
struct Unanswered {
    id: InstanceId,
    fingerprint: u64,
    /// What it stored, if the write knows the server has it (not for a
    /// write only sent).
    content: Option<Digest>,
}

/// Whose a notified model event is ([`OwnWrites::whose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whose {
    /// Another host's write.
    Theirs,
    /// One of ours; what it holds is recorded by the write, or not known.
    Ours,
    /// One of ours that got no answer, and no later write of ours to the
    /// same model is pending: the event holds the model of this digest.
    OursHolding(Digest),
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
        inner.in_flight.push(Pending {
            ticket,
            id,
            fingerprint,
            notified: None,
        });
        InFlight {
            writes: self,
            ticket,
        }
    }

    /// Whose the notified `event` is, carrying model `model_id` whose
    /// content's fingerprint `fingerprint` computes. The fingerprint is
    /// computed only if a write of that id is pending.
    pub(crate) fn whose(
        &self,
        event: &EventId,
        model_id: InstanceId,
        fingerprint: impl FnOnce() -> u64,
    ) -> Whose {
        let mut inner = self.lock();
        if inner.events.contains(event) {
            return Whose::Ours;
        }
        let unanswered = inner.unanswered.iter().any(|w| w.id == model_id);
        let in_flight = inner.in_flight.iter().any(|w| w.id == model_id);
        if !unanswered && !in_flight {
            return Whose::Theirs;
        }
        let content = fingerprint();
        if let Some(at) = inner
            .unanswered
            .iter()
            .position(|w| w.id == model_id && w.fingerprint == content)
        {
            // Its notification, once: a later equal write by another host
            // is not ours.
            let write = inner.unanswered.remove(at).expect("found above");
            let later_pending = in_flight || inner.unanswered.iter().any(|w| w.id == model_id);
            return match write.content {
                Some(digest) if !later_pending => Whose::OursHolding(digest),
                _ => Whose::Ours,
            };
        }
        let pending = inner
            .in_flight
            .iter_mut()
            .find(|w| w.id == model_id && w.fingerprint == content && w.notified.is_none());
        match pending {
            Some(write) => {
                // Kept for the write, should it get no answer.
                write.notified = Some(*event);
                Whose::Ours
            }
            None => Whose::Theirs,
        }
    }
}

impl InFlight<'_> {
    /// The write got no answer: it was only sent (`content`: `None`), or
    /// the server has the model of `content` under an event id the write
    /// did not learn. It stays recognisable by its content until its
    /// notification arrives. If that came already, and no other write of
    /// ours to the model is pending, returns the event, which holds
    /// `content`.
    pub(crate) fn unanswered(self, content: Option<Digest>) -> Option<EventId> {
        let mut inner = self.writes.lock();
        let write = inner.in_flight.iter().find(|w| w.ticket == self.ticket)?;
        let (id, fingerprint) = (write.id, write.fingerprint);
        if let Some(event) = write.notified {
            let others = inner
                .in_flight
                .iter()
                .any(|w| w.id == id && w.ticket != self.ticket)
                || inner.unanswered.iter().any(|w| w.id == id);
            return content.and(Some(event)).filter(|_| !others);
        }
        if inner.unanswered.len() == EVENTS_REMEMBERED {
            inner.unanswered.pop_front();
        }
        inner.unanswered.push_back(Unanswered {
            id,
            fingerprint,
            content,
        });
        None
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
        inner.in_flight.retain(|w| w.ticket != self.ticket);
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
        whose(writes, event, model) != Whose::Theirs
    }

    fn whose(writes: &OwnWrites, event: &EventId, model: &Model) -> Whose {
        writes.whose(event, model.instance_id, || fingerprint(model))
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
        assert_eq!(begin(&writes, &model).unanswered(None), None);
        assert!(!is_own(&writes, &id(5), &Model::new(7, "t", vec![9])));
        assert!(is_own(&writes, &id(5), &model), "its notification");
        assert!(
            !is_own(&writes, &id(6), &model),
            "the same content again, written by another host"
        );
    }

    #[test]
    fn a_sent_write_tells_nothing_of_what_its_event_holds() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1]);
        begin(&writes, &model).unanswered(None);
        assert_eq!(whose(&writes, &id(3), &model), Whose::Ours);
    }

    #[test]
    fn an_unanswered_registered_write_tells_what_its_event_holds() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1]);
        begin(&writes, &model).unanswered(Some([1; 32]));
        assert_eq!(whose(&writes, &id(3), &model), Whose::OursHolding([1; 32]));
        assert_eq!(whose(&writes, &id(4), &model), Whose::Theirs, "once");
    }

    #[test]
    fn an_unanswered_write_followed_by_a_pending_one_tells_nothing() {
        // Its event is not the newest of ours: the later write's is.
        let writes = OwnWrites::default();
        let first = Model::new(7, "t", vec![1]);
        let second = Model::new(7, "t", vec![2]);
        begin(&writes, &first).unanswered(Some([1; 32]));
        begin(&writes, &second).unanswered(Some([2; 32]));
        assert_eq!(whose(&writes, &id(3), &first), Whose::Ours);
        assert_eq!(whose(&writes, &id(4), &second), Whose::OursHolding([2; 32]));
        // A write still in flight counts too.
        begin(&writes, &first).unanswered(Some([1; 32]));
        let pending = begin(&writes, &second);
        assert_eq!(whose(&writes, &id(5), &first), Whose::Ours);
        drop(pending);
        // Another model's pending write does not.
        begin(&writes, &first).unanswered(Some([1; 32]));
        let _other = begin(&writes, &Model::new(8, "t", vec![2]));
        assert_eq!(whose(&writes, &id(6), &first), Whose::OursHolding([1; 32]));
    }

    #[test]
    fn a_notification_that_overtakes_the_registration_tells_what_the_event_holds() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1]);
        let in_flight = begin(&writes, &model);
        assert_eq!(whose(&writes, &id(3), &model), Whose::Ours);
        assert_eq!(in_flight.unanswered(Some([1; 32])), Some(id(3)));
        assert_eq!(whose(&writes, &id(4), &model), Whose::Theirs, "once");
        // Not for a write only sent, nor with a later write pending.
        let in_flight = begin(&writes, &model);
        assert_eq!(whose(&writes, &id(5), &model), Whose::Ours);
        assert_eq!(in_flight.unanswered(None), None);
        let first = begin(&writes, &model);
        let second = begin(&writes, &Model::new(7, "t", vec![2]));
        assert_eq!(whose(&writes, &id(6), &model), Whose::Ours);
        assert_eq!(first.unanswered(Some([1; 32])), None);
        drop(second);
    }

    #[test]
    fn another_hosts_write_is_theirs_while_ours_is_in_flight() {
        let writes = OwnWrites::default();
        let _in_flight = begin(&writes, &Model::new(7, "t", vec![1]));
        let theirs = Model::new(7, "t", vec![2]);
        assert_eq!(whose(&writes, &id(3), &theirs), Whose::Theirs);
    }

    #[test]
    fn an_overtaken_write_tells_nothing_while_a_later_unanswered_one_is_unnotified() {
        // The later write's event may be the newer one; until its
        // notification, the earlier write's event is not known to be.
        let writes = OwnWrites::default();
        let first = Model::new(7, "t", vec![1]);
        let in_flight = begin(&writes, &first);
        begin(&writes, &Model::new(7, "t", vec![2])).unanswered(Some([2; 32]));
        assert_eq!(whose(&writes, &id(3), &first), Whose::Ours);
        assert_eq!(in_flight.unanswered(Some([1; 32])), None);
    }

    #[test]
    fn finished_writes_are_remembered_by_event_id() {
        let writes = OwnWrites::default();
        let models: Vec<Model> = (0..3).map(|n| Model::new(n, "t", vec![n as u8])).collect();
        for (n, model) in models.iter().enumerate() {
            begin(&writes, model).written(id(n as i64));
        }
        for (n, model) in models.iter().enumerate() {
            assert!(is_own(&writes, &id(n as i64), model), "write {n}");
        }
    }

    #[test]
    fn a_failed_write_is_forgotten() {
        let writes = OwnWrites::default();
        let model = Model::new(7, "t", vec![1]);
        drop(begin(&writes, &model));
        assert!(!is_own(&writes, &id(1), &model));
    }
}
