//! A plugin library loaded as a host loads it (feature `loader`).

use crate::Target;
use aimm_backend_api::{Backend, BackendError};
use aimm_backend_loader::{Error, Prepared};
use serde_json::Value;
use std::sync::Arc;

/// A plugin prepared by the loader ([`aimm_backend_loader::Opener::prepare`]):
/// every [`Target::open`] creates a backend on the same store.
pub struct PluginTarget {
    prepared: Prepared,
    _scratch: Option<tempfile::TempDir>,
}

impl PluginTarget {
    /// Tests the store `prepared` describes (its models are left alone, but
    /// the suite adds its own).
    pub fn new(prepared: Prepared) -> Self {
        PluginTarget {
            prepared,
            _scratch: None,
        }
    }

    /// Tests a fresh store derived from `prepared`'s config by the plugin's
    /// `scratch_conf`, in a temporary directory removed afterwards.
    pub fn scratch(prepared: Prepared) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("aimm-conformance-")
            .tempdir()
            .map_err(|err| {
                scratch_error(
                    &prepared,
                    BackendError::storage(format!("making a scratch directory: {err}")),
                )
            })?;
        let prepared = prepared.into_scratch(dir.path())?;
        Ok(PluginTarget {
            prepared,
            _scratch: Some(dir),
        })
    }

    /// The config the target opens the backend with.
    pub fn conf(&self) -> &Value {
        self.prepared.conf()
    }

    /// The plugin and host services behind the target.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }
}

fn scratch_error(prepared: &Prepared, source: BackendError) -> Error {
    Error::Backend {
        module: prepared.library().name().to_string(),
        path: prepared.library().path().display().to_string(),
        reason: source,
    }
}

impl Target for PluginTarget {
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        self.prepared.create().map_err(|err| match err {
            Error::Backend { reason, .. } => reason,
            other => BackendError::invalid_config(other.to_string()),
        })
    }
}
