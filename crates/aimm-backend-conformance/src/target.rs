//! What the suite runs against.

use aimm_backend_api::{Backend, BackendError};
use std::sync::Arc;

/// A backend under test: opens it on the same store on every call.
///
/// [`InProcessTarget`](crate::InProcessTarget) drives a plugin's
/// `BackendPlugin` directly; `PluginTarget` (feature `loader`) loads the
/// plugin library as a host does; and any
/// `Fn() -> Result<Arc<dyn Backend>, BackendError> + Sync` is a target too.
pub trait Target: Sync {
    /// Opens the backend. Opening twice gives two handles on one store.
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError>;
}

impl<F> Target for F
where
    F: Fn() -> Result<Arc<dyn Backend>, BackendError> + Sync,
{
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        self()
    }
}
