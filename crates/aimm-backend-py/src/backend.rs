//! [`NativeBackend`]: one opened plugin backend, as Python sees it.
//!
//! Every method that calls the plugin releases the GIL for the call, so a
//! plugin thread that needs Python (a log record, the event bridge, a
//! change callback) never waits for the thread that is waiting for it. The
//! methods block: the Python half runs them on executor threads (writes
//! that wait for nothing may run on the event loop's, see the crate docs).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{sqlite_section, with_python};
    use std::time::{Duration, Instant};

    /// A SQLite backend on a fresh file, as the Python half opens it.
    fn open(dir: &tempfile::TempDir) -> NativeBackend {
        let section = sqlite_section(&dir.path().join("models.db"));
        with_python(|py| crate::open_backend(py, &section, vec![], None, None)).unwrap()
    }

    fn plain(models: Vec<PyModel<'_>>) -> Vec<(InstanceId, String, Vec<u8>)> {
        models
            .into_iter()
            .map(|(id, model_type, bytes)| (id, model_type, bytes.as_bytes().to_vec()))
            .collect()
    }

    fn class_of(py: Python<'_>, err: &PyErr) -> String {
        err.get_type(py).name().unwrap().to_string()
    }

    #[test]
    fn models_go_in_and_come_out_as_the_python_half_expects() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir);
        with_python(|py| {
            assert_eq!(backend.plugin_name(), "sqlite");
            // The built-in plugins have the workspace's version.
            assert_eq!(backend.plugin_version(), env!("CARGO_PKG_VERSION"));
            assert!(backend
                .library_path()
                .ends_with("libaimm_backend_sqlite.so"));

            let a = backend
                .create_model(py, "m.A".into(), &PyBytes::new(py, b"first"))
                .unwrap();
            let b = backend
                .create_model(py, "m.B".into(), &PyBytes::new(py, &[7u8; 100_000]))
                .unwrap();
            assert_ne!(a, b);
            let got = plain(vec![backend.get_model(py, b).unwrap()]);
            assert_eq!(got, [(b, "m.B".to_string(), vec![7u8; 100_000])]);
            backend
                .update_model(py, a, "m.C".into(), &PyBytes::new(py, b"second"))
                .unwrap();
            let mut models = plain(backend.get_models(py).unwrap());
            models.sort();
            let mut expected = vec![
                (a, "m.C".to_string(), b"second".to_vec()),
                (b, "m.B".to_string(), vec![7u8; 100_000]),
            ];
            expected.sort();
            assert_eq!(models, expected);
            let mut listed = backend.list_models(py).unwrap();
            listed.sort();
            let mut sizes = vec![(a, "m.C".to_string(), 6), (b, "m.B".to_string(), 100_000)];
            sizes.sort();
            assert_eq!(listed, sizes);
        });
    }

    #[test]
    fn backend_errors_become_their_exception_classes() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir);
        with_python(|py| {
            let err = backend.get_model(py, 404).err().unwrap();
            assert_eq!(class_of(py, &err), "NotFoundError");
            let err = backend
                .update_model(py, 404, "m.A".into(), &PyBytes::new(py, b"x"))
                .unwrap_err();
            assert_eq!(class_of(py, &err), "NotFoundError");
        });
    }

    /// Waits up to 20 s, with the GIL released, until `calls` has `n` items.
    fn wait_for_calls(py: Python<'_>, calls: &Bound<'_, PyList>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while calls.len() < n {
            assert!(
                Instant::now() < deadline,
                "{} calls of {n} after 20 s",
                calls.len()
            );
            py.detach(|| std::thread::sleep(Duration::from_millis(20)));
        }
    }

    /// A Python callback that appends its arguments to `calls`.
    fn recorder<'py>(calls: &Bound<'py, PyList>) -> Py<PyAny> {
        let py = calls.py();
        let globals = pyo3::types::PyDict::new(py);
        globals.set_item("calls", calls).unwrap();
        py.eval(c"lambda *args: calls.append(args)", Some(&globals), None)
            .unwrap()
            .unbind()
    }

    #[test]
    fn a_listener_is_called_with_each_change_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir);
        with_python(|py| {
            let calls = PyList::empty(py);
            let registration = backend.add_listener(py, recorder(&calls)).unwrap();
            let id = backend
                .create_model(py, "m.A".into(), &PyBytes::new(py, b"seen"))
                .unwrap();
            wait_for_calls(py, &calls, 1);
            let (got_id, got_type, got_bytes): (InstanceId, String, Vec<u8>) =
                calls.get_item(0).unwrap().extract().unwrap();
            assert_eq!(
                (got_id, got_type.as_str(), got_bytes.as_slice()),
                (id, "m.A", &b"seen"[..])
            );

            backend.remove_listener(py, registration).unwrap();
            // A listener added after the removal sees the next change; the
            // removed one must not.
            let marker = PyList::empty(py);
            backend.add_listener(py, recorder(&marker)).unwrap();
            backend
                .update_model(py, id, "m.A".into(), &PyBytes::new(py, b"unseen"))
                .unwrap();
            wait_for_calls(py, &marker, 1);
            assert_eq!(calls.len(), 1, "a removed listener was called");
        });
    }

    #[test]
    fn events_are_handed_to_the_plugin_and_bad_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir);
        with_python(|py| {
            let event = py
                .eval(
                    c"(1, 2, 3, ('a', 'b'), (1, 0), None, ('json', '1'))",
                    None,
                    None,
                )
                .unwrap();
            let events = PyList::new(py, [event]).unwrap();
            backend.process_events(py, &events).unwrap();
            let bad = PyList::new(py, [py.eval(c"(1, 2)", None, None).unwrap()]).unwrap();
            assert!(backend.process_events(py, &bad).is_err());
        });
    }

    #[test]
    fn after_release_every_call_fails_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir);
        with_python(|py| {
            backend.close(py).unwrap();
            backend.release(py);
            let failures = [
                backend.get_models(py).err().unwrap(),
                backend.get_model(py, 1).err().unwrap(),
                backend.list_models(py).unwrap_err(),
                backend
                    .create_model(py, "m.A".into(), &PyBytes::new(py, b"x"))
                    .unwrap_err(),
                backend
                    .update_model(py, 1, "m.A".into(), &PyBytes::new(py, b"x"))
                    .unwrap_err(),
                backend.add_listener(py, py.None()).unwrap_err(),
                backend.remove_listener(py, 1).unwrap_err(),
                backend.process_events(py, &PyList::empty(py)).unwrap_err(),
                backend.close(py).unwrap_err(),
            ];
            for err in failures {
                assert_eq!(class_of(py, &err), "UnavailableError");
                assert!(
                    err.value(py).to_string().contains("closed and released"),
                    "{err}"
                );
            }
        });
    }
}
