//! What the suite runs against.

use aimm_backend_api::{Backend, BackendError, EventClient};
use aimm_backend_loader::PluginLibrary;
use serde_json::Value;
use std::sync::Arc;

/// A backend under test: opens it on the same store on every call.
pub trait Target: Sync {
    /// Opens the backend. Opening twice gives two handles on one store.
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError>;
}

/// A plugin library and the `backend` config to open it with.
pub struct PluginTarget {
    library: Arc<PluginLibrary>,
    conf: Value,
    event_client: Option<Arc<dyn EventClient>>,
    _scratch: Option<tempfile::TempDir>,
}

impl PluginTarget {
    /// Tests the store `conf` describes (its models are left alone, but the
    /// suite adds its own).
    pub fn new(library: Arc<PluginLibrary>, conf: Value) -> Self {
        PluginTarget {
            library,
            conf,
            event_client: None,
            _scratch: None,
        }
    }

    /// Tests a fresh store derived from `conf` by the plugin's
    /// `scratch_conf`, in a temporary directory removed afterwards.
    pub fn scratch(library: Arc<PluginLibrary>, conf: &Value) -> Result<Self, BackendError> {
        let dir = tempfile::Builder::new()
            .prefix("aimm-conformance-")
            .tempdir()
            .map_err(|err| BackendError::storage(format!("making a scratch directory: {err}")))?;
        let conf = library.scratch_conf(conf, dir.path())?;
        library
            .validate_conf(&conf, "<scratch config>")
            .map_err(|err| BackendError::invalid_config(err.to_string()))?;
        Ok(PluginTarget {
            library,
            conf,
            event_client: None,
            _scratch: Some(dir),
        })
    }

    /// Lends every backend the target opens this event client (backends
    /// that store models in a Hat event server need one).
    pub fn with_event_client(mut self, client: Arc<dyn EventClient>) -> Self {
        self.event_client = Some(client);
        self
    }

    /// The config the target opens the backend with.
    pub fn conf(&self) -> &Value {
        &self.conf
    }
}

impl Target for PluginTarget {
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        let handle = self
            .library
            .create_backend(&self.conf, self.event_client.clone())?;
        Ok(handle.backend().clone())
    }
}

impl<F> Target for F
where
    F: Fn() -> Result<Arc<dyn Backend>, BackendError> + Sync,
{
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        self()
    }
}
