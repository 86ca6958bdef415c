//! [`Router`]: where a connection's notified batches go.

use crate::notified::{Awaited, Notification};
use aimm_backend_api::{Backend, Event, RVec, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// The one way a notified batch travels: first to the registrations
/// waiting for its events ([`Awaited`]), then to the backend's
/// `process_events`. A registration is acknowledged by its notification
/// before any backend sees that notification, so a backend never hears of
/// a write its caller has not been told about.
///
/// `E` is the event type the connection's client hands batches over as:
/// the Hat client's own messages, or the plugin API's [`Event`] for a
/// client lent by the host (the Python AIMM server's).
///
/// How the batch then reaches the backend is the host's threading:
/// [`Router::deliver`] does both steps on the calling thread (the Python
/// package calls it on its one delivery thread); this crate's own
/// connection calls [`Router::arrived`] where the batch arrives and the
/// loader hands the batch to `process_events` in order on a blocking
/// thread (`aimm_backend_loader::Opened::into_handle`), so a slow
/// `process_events` never holds back an acknowledgement.
pub struct Router<E> {
    awaited: Awaited<E>,
    /// Whether any batch has arrived: until one has, a host's notifications
    /// may not be routed here at all, and nothing may wait for them.
    flowing: AtomicBool,
}

impl<E> Default for Router<E> {
    fn default() -> Self {
        Router {
            awaited: Awaited::default(),
            flowing: AtomicBool::new(false),
        }
    }
}

impl<E: Notification> Router<E> {
    /// The registrations waiting for their notifications.
    pub fn awaited(&self) -> &Awaited<E> {
        &self.awaited
    }

    /// Whether any non-empty batch has arrived yet.
    pub fn is_flowing(&self) -> bool {
        self.flowing.load(Ordering::Acquire)
    }

    /// The first step: completes the registrations `batch`, notified on
    /// `connection`, was waited for by.
    pub fn arrived(&self, connection: u64, batch: &[E]) {
        if batch.is_empty() {
            return;
        }
        self.flowing.store(true, Ordering::Release);
        self.awaited.notified(connection, batch);
    }
}

impl Router<Event> {
    /// Both steps, on the calling thread: [`Router::arrived`], then
    /// `backend.process_events(batch)`.
    pub fn deliver(
        &self,
        connection: u64,
        batch: RVec<Event>,
        backend: &dyn Backend,
    ) -> Result<()> {
        self.arrived(connection, &batch);
        backend.process_events(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notified::Expected;
    use aimm_backend_api::{
        event_type, EventId, EventPayload, ListenerRegistry, Model, ModelChangeListener, ModelInfo,
        ROption, RString, RegisterEvent, Timestamp,
    };
    use std::sync::{Arc, Mutex};

    fn event(payload: &str) -> Event {
        Event {
            id: EventId {
                server: 1,
                session: 2,
                instance: 3,
            },
            event_type: event_type(["a", "1"]),
            timestamp: Timestamp { s: 0, us: 0 },
            source_timestamp: ROption::RNone,
            payload: ROption::RSome(EventPayload::Json(payload.into())),
        }
    }

    /// A backend that records, for every batch it is handed, whether the
    /// registration waiting for it had been acknowledged by then.
    struct Recorder {
        acknowledged: Arc<Mutex<bool>>,
        seen: Mutex<Vec<(usize, bool)>>,
        _listeners: ListenerRegistry,
    }

    impl Backend for Recorder {
        fn get_models(&self) -> Result<RVec<Model>> {
            Ok(RVec::new())
        }
        fn list_models(&self) -> Result<RVec<ModelInfo>> {
            Ok(RVec::new())
        }
        fn get_model(&self, id: i64) -> Result<Model> {
            Err(aimm_backend_api::BackendError::not_found(id))
        }
        fn create_model(&self, _: RString, _: RVec<u8>) -> Result<Model> {
            unreachable!()
        }
        fn update_model(&self, model: Model) -> Result<Model> {
            Ok(model)
        }
        fn import_model(&self, model: Model) -> Result<Model> {
            Ok(model)
        }
        fn register_model_change_cb(&self, _: Arc<dyn ModelChangeListener>) -> Result<u64> {
            Ok(0)
        }
        fn unregister_model_change_cb(&self, _: u64) -> Result<()> {
            Ok(())
        }
        fn process_events(&self, events: RVec<Event>) -> Result<()> {
            let acknowledged = *self.acknowledged.lock().unwrap();
            self.seen.lock().unwrap().push((events.len(), acknowledged));
            Ok(())
        }
        fn close(&self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_acknowledges_its_registrations_before_the_backend_sees_it() {
        let router = Router::<Event>::default();
        assert!(!router.is_flowing());
        let acknowledged = Arc::new(Mutex::new(false));
        let backend = Recorder {
            acknowledged: acknowledged.clone(),
            seen: Mutex::new(Vec::new()),
            _listeners: ListenerRegistry::default(),
        };
        let registered = RegisterEvent {
            event_type: event_type(["a", "1"]),
            source_timestamp: ROption::RNone,
            payload: ROption::RSome(EventPayload::Json("1".into())),
        };
        let flag = acknowledged.clone();
        let _ticket =
            router
                .awaited()
                .wait_then(0, Expected::all_of(&[registered]).unwrap(), move |_| {
                    *flag.lock().unwrap() = true
                });
        router
            .deliver(0, vec![event("2")].into(), &backend)
            .unwrap();
        router
            .deliver(0, vec![event("1"), event("3")].into(), &backend)
            .unwrap();
        assert_eq!(*backend.seen.lock().unwrap(), [(1, false), (2, true)]);
        assert!(router.is_flowing());
    }

    #[test]
    fn an_empty_batch_does_not_count_as_flowing() {
        let router = Router::<Event>::default();
        router.arrived(0, &[]);
        assert!(!router.is_flowing());
        router.arrived(0, &[event("1")]);
        assert!(router.is_flowing());
    }
}
