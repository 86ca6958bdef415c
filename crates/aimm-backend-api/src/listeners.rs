//! A ready-made registry of model change listeners for backend authors.

use crate::{Model, ModelChangeListener};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Keeps the listeners registered with a backend and calls them.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use aimm_backend_api::{ListenerRegistry, Model};
///
/// let registry = ListenerRegistry::default();
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// let id = registry.register(Arc::new(move |_: &Model| {
///     counter.fetch_add(1, Ordering::SeqCst);
/// }));
/// registry.notify(&Model::new(1, "t", vec![]));
/// registry.unregister(id);
/// registry.notify(&Model::new(2, "t", vec![]));
/// assert_eq!(seen.load(Ordering::SeqCst), 1);
/// ```
#[derive(Default)]
pub struct ListenerRegistry {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    listeners: BTreeMap<u64, Arc<dyn ModelChangeListener>>,
}

impl ListenerRegistry {
    /// Adds `listener`; returns the id to unregister it with.
    pub fn register(&self, listener: Arc<dyn ModelChangeListener>) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.next_id += 1;
        let id = inner.next_id;
        inner.listeners.insert(id, listener);
        id
    }

    /// Removes the listener registered under `id`; unknown ids are ignored.
    pub fn unregister(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.listeners.remove(&id);
    }

    /// Whether any listener is registered (to skip work nobody would see).
    pub fn is_empty(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.listeners.is_empty()
    }

    /// Calls every listener with `model`. The lock is not held during the
    /// calls, so a listener may register or unregister.
    pub fn notify(&self, model: &Model) {
        let listeners: Vec<_> = {
            let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner.listeners.values().cloned().collect()
        };
        for listener in listeners {
            listener.on_model_change(model);
        }
    }
}
