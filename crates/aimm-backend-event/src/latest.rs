//! What this backend knows of each model's newest event: that the model
//! exists, and, where this backend wrote or compared that event itself,
//! what it holds. An update that would register what the newest event
//! already holds is skipped.
//!
//! The server numbers events in increasing order, so "newest" is decided by
//! event id, not by when a write's answer or a notification happened to
//! arrive: a write of ours answered after another host's later write was
//! notified does not make our content current again.

use aimm_backend_api::{EventId, InstanceId, Model};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A model's type and bytes, hashed with SHA-256: equal digests are taken
/// to mean equal models, so the hash must make collisions impossible in
/// practice, not merely rare.
pub(crate) type Digest = [u8; 32];

/// The digest of a model of `model_type` holding `instance`.
pub(crate) fn digest(model_type: &str, instance: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    // The type's length first, so that no (type, bytes) pair hashes the
    // same text as another split differently.
    hasher.update((model_type.len() as u64).to_le_bytes());
    hasher.update(model_type.as_bytes());
    hasher.update(instance);
    hasher.finalize().into()
}

/// The digest of `model`'s type and bytes.
pub(crate) fn digest_of(model: &Model) -> Digest {
    digest(model.model_type.as_str(), model.instance.as_slice())
}

/// What is known of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    /// The newest event of the model seen, as (session, instance), if any
    /// was seen (a write sent without an answer is known to exist only).
    event: Option<(i64, i64)>,
    /// What that event holds, where known.
    content: Option<Digest>,
}

/// What is known of every model seen (see the module docs).
#[derive(Default)]
pub(crate) struct Latest(Mutex<HashMap<InstanceId, Known>>);

/// What [`Latest::lookup`] knows of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Never seen: it may or may not exist.
    Unknown,
    /// It exists; what its newest event holds is not known.
    Exists,
    /// It exists, and its newest event holds the model of this digest.
    Holds(Digest),
}

fn order(event: &EventId) -> (i64, i64) {
    (event.session, event.instance)
}

impl Latest {
    fn lock(&self) -> MutexGuard<'_, HashMap<InstanceId, Known>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is known of model `id`.
    pub(crate) fn lookup(&self, id: InstanceId) -> Lookup {
        match self.lock().get(&id) {
            None => Lookup::Unknown,
            Some(Known {
                content: Some(content),
                ..
            }) => Lookup::Holds(*content),
            Some(_) => Lookup::Exists,
        }
    }

    /// Event `event` of model `id` was seen, holding the model of `content`
    /// where that is known. It counts only if it is newer than every event
    /// of `id` seen before.
    pub(crate) fn saw(&self, id: InstanceId, event: &EventId, content: Option<Digest>) {
        let mut known = self.lock();
        let entry = known.entry(id).or_insert(Known {
            event: None,
            content: None,
        });
        if entry.event.is_none_or(|seen| order(event) > seen) {
            *entry = Known {
                event: Some(order(event)),
                content,
            };
        }
    }

    /// Model `id` exists, but which event is its newest is not known (a
    /// write sent without waiting for the server's answer).
    pub(crate) fn exists(&self, id: InstanceId) {
        let mut known = self.lock();
        let entry = known.entry(id).or_insert(Known {
            event: None,
            content: None,
        });
        entry.content = None;
    }

    /// A write of model `id` may or may not have reached the server: what
    /// its newest event holds is no longer known.
    pub(crate) fn forget_content(&self, id: InstanceId) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.content = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(session: i64) -> EventId {
        EventId {
            server: 1,
            session,
            instance: 1,
        }
    }

    #[test]
    fn digests_differ_with_the_type_the_bytes_and_where_one_ends() {
        let base = digest("t", b"bytes");
        assert_eq!(base, digest("t", b"bytes"));
        assert_ne!(base, digest("u", b"bytes"));
        assert_ne!(base, digest("t", b"bytez"));
        assert_ne!(digest("tb", b"ytes"), base, "the split is part of it");
        assert_eq!(digest_of(&Model::new(1, "t", b"bytes".to_vec())), base);
    }

    #[test]
    fn only_a_newer_event_replaces_what_is_known() {
        let latest = Latest::default();
        let (a, b) = (digest("t", b"a"), digest("t", b"b"));
        assert_eq!(latest.lookup(5), Lookup::Unknown);
        latest.saw(5, &event(10), Some(a));
        assert_eq!(latest.lookup(5), Lookup::Holds(a));
        latest.saw(5, &event(9), None);
        assert_eq!(latest.lookup(5), Lookup::Holds(a), "an older event");
        latest.saw(5, &event(10), None);
        assert_eq!(latest.lookup(5), Lookup::Holds(a), "the same event again");
        latest.saw(5, &event(11), None);
        assert_eq!(
            latest.lookup(5),
            Lookup::Exists,
            "a newer event of unknown content"
        );
        latest.saw(5, &event(10), Some(a));
        assert_eq!(
            latest.lookup(5),
            Lookup::Exists,
            "our older write answered late"
        );
        latest.saw(5, &event(12), Some(b));
        assert_eq!(latest.lookup(5), Lookup::Holds(b));
        let later_instance = EventId {
            instance: 2,
            ..event(12)
        };
        latest.saw(5, &later_instance, None);
        assert_eq!(
            latest.lookup(5),
            Lookup::Exists,
            "instance orders within a session"
        );
        assert_eq!(latest.lookup(6), Lookup::Unknown, "other ids untouched");
    }

    #[test]
    fn a_write_of_unknown_outcome_forgets_the_content_but_not_the_model() {
        let latest = Latest::default();
        latest.saw(5, &event(10), Some(digest("t", b"a")));
        latest.forget_content(5);
        assert_eq!(latest.lookup(5), Lookup::Exists);
        latest.forget_content(6);
        assert_eq!(
            latest.lookup(6),
            Lookup::Unknown,
            "forgetting creates nothing"
        );
        latest.saw(7, &event(3), Some(digest("t", b"a")));
        latest.exists(7);
        assert_eq!(latest.lookup(7), Lookup::Exists, "a sent write");
        latest.exists(8);
        assert_eq!(latest.lookup(8), Lookup::Exists);
        latest.saw(8, &event(1), Some(digest("t", b"a")));
        assert!(matches!(latest.lookup(8), Lookup::Holds(_)));
    }
}
