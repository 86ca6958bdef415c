//! [`NativeBackend`]: one opened plugin backend, as Python sees it.
//!
//! Every method that calls the plugin releases the GIL for the call, so a
//! plugin thread that needs Python (a log record, the event bridge, a
//! change callback) never waits for the thread that is waiting for it. The
//! methods block: the Python half runs them on executor threads.

use crate::bytes_sink::{BytesSink, PyModel};
use crate::convert::event_from_py;
use crate::errors::backend_error;
use crate::event_client::{Notifications, CONNECTION};
use aimm_backend_api::{
    Backend, BackendError, ErrorKind, InstanceId, Model, ModelChangeListener, RString, RVec,
};
use aimm_backend_loader::PluginLibrary;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use std::sync::{Arc, Mutex, PoisonError};

fn to_py<'py>(py: Python<'py>, model: &Model) -> PyModel<'py> {
    (
        model.instance_id,
        model.model_type.to_string(),
        PyBytes::new(py, model.instance.as_slice()),
    )
}

/// A backend created by a plugin library (`aimm_backend._native.NativeBackend`).
#[pyclass(frozen, module = "aimm_backend._native")]
pub struct NativeBackend {
    /// `None` once released: the plugin's backend is gone.
    backend: Mutex<Option<Arc<dyn Backend>>>,
    library: Arc<PluginLibrary>,
    /// Where notified events go first, if the plugin has the server's
    /// event client.
    notifications: Option<Arc<Notifications>>,
}

impl NativeBackend {
    /// Wraps `backend`, made by `library`; `notifications` is what its
    /// event client waits on, if it has one.
    pub fn new(
        backend: Arc<dyn Backend>,
        library: Arc<PluginLibrary>,
        notifications: Option<Arc<Notifications>>,
    ) -> Self {
        NativeBackend {
            backend: Mutex::new(Some(backend)),
            library,
            notifications,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<dyn Backend>>> {
        self.backend.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The plugin's backend, unless released.
    fn backend(&self) -> PyResult<Arc<dyn Backend>> {
        self.slot().clone().ok_or_else(|| {
            backend_error(BackendError::new(
                ErrorKind::Unavailable,
                "the backend is closed and released",
            ))
        })
    }
}

#[pymethods]
impl NativeBackend {
    /// The plugin's name.
    #[getter]
    fn plugin_name(&self) -> &str {
        self.library.name()
    }

    /// The plugin's version.
    #[getter]
    fn plugin_version(&self) -> &str {
        self.library.version()
    }

    /// The plugin library file.
    #[getter]
    fn library_path(&self) -> String {
        self.library.path().display().to_string()
    }

    /// Every stored model, as `(instance_id, model_type, bytes)`, each read
    /// by the plugin straight into its `bytes` object.
    fn get_models<'py>(&self, py: Python<'py>) -> PyResult<Vec<PyModel<'py>>> {
        let backend = self.backend()?;
        let mut sink = BytesSink::default();
        py.detach(|| backend.read_models(&mut sink))
            .map_err(backend_error)?;
        Ok(sink.into_models(py))
    }

    /// One model, as `(instance_id, model_type, bytes)`.
    fn get_model<'py>(&self, py: Python<'py>, instance_id: InstanceId) -> PyResult<PyModel<'py>> {
        let backend = self.backend()?;
        let model = py
            .detach(|| backend.get_model(instance_id))
            .map_err(backend_error)?;
        Ok(to_py(py, &model))
    }

    /// Every stored model's `(instance_id, model_type, size)`, no bytes loaded.
    fn list_models(&self, py: Python<'_>) -> PyResult<Vec<(InstanceId, String, u64)>> {
        let backend = self.backend()?;
        let infos = py.detach(|| backend.list_models()).map_err(backend_error)?;
        Ok(infos
            .into_iter()
            .map(|info| (info.instance_id, info.model_type.into_string(), info.size))
            .collect())
    }

    /// Stores `instance` (the serialized model) as a new model of
    /// `model_type`; returns its instance id once it is stored.
    fn create_model(
        &self,
        py: Python<'_>,
        model_type: String,
        instance: &Bound<'_, PyBytes>,
    ) -> PyResult<InstanceId> {
        // The one copy of the bytes: from Python's object into the RVec the
        // plugin takes ownership of.
        let instance: RVec<u8> = instance.as_bytes().into();
        let backend = self.backend()?;
        let model = py
            .detach(|| backend.create_model(RString::from(model_type), instance))
            .map_err(backend_error)?;
        Ok(model.instance_id)
    }

    /// Replaces the type and bytes of model `instance_id`.
    fn update_model(
        &self,
        py: Python<'_>,
        instance_id: InstanceId,
        model_type: String,
        instance: &Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        let model = Model {
            instance_id,
            model_type: model_type.into(),
            instance: instance.as_bytes().into(),
        };
        let backend = self.backend()?;
        py.detach(|| backend.update_model(model))
            .map_err(backend_error)?;
        Ok(())
    }

    /// Calls `callback(instance_id, model_type, bytes)` for every change the
    /// backend reports, on the plugin's thread, with the GIL taken for the
    /// call; returns the registration for [`NativeBackend::remove_listener`].
    fn add_listener(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<u64> {
        let listener: Arc<dyn ModelChangeListener> = Arc::new(move |model: &Model| {
            Python::attach(|py| {
                if let Err(err) = callback.call1(py, to_py(py, model)) {
                    err.write_unraisable(py, Some(callback.bind(py)));
                }
            })
        });
        let backend = self.backend()?;
        py.detach(|| backend.register_model_change_cb(listener))
            .map_err(backend_error)
    }

    /// Stops the listener registered as `registration`.
    fn remove_listener(&self, py: Python<'_>, registration: u64) -> PyResult<()> {
        let backend = self.backend()?;
        py.detach(|| backend.unregister_model_change_cb(registration))
            .map_err(backend_error)
    }

    /// Hands events of the backend's subscription (tuples, see
    /// `aimm_backend._events`) to the plugin, after the registrations of
    /// its event client that wait for them have seen them.
    fn process_events(&self, py: Python<'_>, events: &Bound<'_, PyList>) -> PyResult<()> {
        let events = events
            .iter()
            .map(|event| event_from_py(&event))
            .collect::<PyResult<RVec<_>>>()?;
        let backend = self.backend()?;
        py.detach(|| match &self.notifications {
            Some(router) => router.deliver(CONNECTION, events, backend.as_ref()),
            None => backend.process_events(events),
        })
        .map_err(backend_error)
    }

    /// Flushes and releases the store. Later calls may fail.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let backend = self.backend()?;
        py.detach(|| backend.close()).map_err(backend_error)
    }

    /// Drops this handle's reference to the plugin's backend, with the GIL
    /// released (the plugin may checkpoint and close files as it goes);
    /// every later call fails. What the backend's `async_close` ends with.
    fn release(&self, py: Python<'_>) {
        let backend = self.slot().take();
        py.detach(move || drop(backend));
    }
}
