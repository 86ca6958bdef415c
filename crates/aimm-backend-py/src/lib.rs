//! `aimm_backend._native`: the Rust half of the `aimm_backend` Python
//! package, through which the stock Python AIMM server runs our backend
//! plugins.
//!
//! The Python half (`python/aimm_backend`) is what the server imports: it
//! owns everything asynchronous (the event loop, executors, the `aio.Resource`
//! life cycle) and serialization. This half opens plugins through the
//! loader's one entry point ([`aimm_backend_loader::Opener`]) and exposes
//! each backend as a [`NativeBackend`] whose methods block, always with the
//! GIL released, so the Python half runs them on executor threads and the
//! event loop never waits on a plugin, with one exception: the writes of an
//! event backend that acknowledges them when sent, through the server's
//! client, wait for nothing and run on the loop, as stock's do (the
//! bridge refuses any call of theirs that would wait, and the write runs
//! again on a thread). What the plugin needs from the server
//! comes back through two bridges: its log records go to Python `logging`
//! ([`log_sink`]; the loader's own warnings too, [`host_log`]), and its
//! event client is the server's own Hat eventer client ([`event_client`]),
//! unless the backend section names an `eventer_server` of its own: then
//! the loader's Rust client connects to it, on this package's tokio
//! runtime ([`runtime`]), and routes its notifications to the plugin.

mod backend;
mod bytes_sink;
mod convert;
#[cfg(test)]
mod embedded;
mod errors;
mod event_client;
mod host_log;
mod log_sink;
mod runtime;

use aimm_backend_loader::{Opener, SearchPath, ServerConfig};
use backend::NativeBackend;
use event_client::{Notifications, PythonEventClient};
use log_sink::PythonLogSink;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a config section came from, as error messages name it.
const ORIGIN: &str = "(AIMM server backend section)";

/// The loader's view of one `backend` section (JSON text).
fn server_config(section: &str) -> PyResult<ServerConfig> {
    let section: serde_json::Value = serde_json::from_str(section)
        .map_err(|err| errors::ConfigError::new_err(format!("backend section: {err}")))?;
    ServerConfig::from_value(serde_json::json!({ "backend": section }), ORIGIN)
        .map_err(|err| errors::ConfigError::new_err(err.to_string()))
}

/// `plugin_dirs`, then `AIMM_BACKEND_PATH`, then the wheel's plugins.
fn opener(plugin_dirs: Vec<PathBuf>, builtin_dir: Option<PathBuf>) -> Opener {
    aimm_backend_hat_host::opener(SearchPath::with_builtin_dir(&plugin_dirs, builtin_dir))
        .with_log_sink(|library| Arc::new(PythonLogSink::for_plugin(library.name())))
}

/// Opens the backend a `backend` section (JSON text) describes. `bridge`,
/// if given, is the Python object through which the plugin reaches the
/// server's event client (`aimm_backend._events.EventBridge`); a section
/// with its own `eventer_server` gets a connection of its own instead.
/// Blocks while the plugin opens its store (and connects), with the GIL
/// released.
#[pyfunction]
#[pyo3(signature = (section, plugin_dirs, builtin_dir=None, bridge=None))]
fn open_backend(
    py: Python<'_>,
    section: &str,
    plugin_dirs: Vec<PathBuf>,
    builtin_dir: Option<PathBuf>,
    bridge: Option<Py<PyAny>>,
) -> PyResult<NativeBackend> {
    let config = server_config(section)?;
    let mut opener = opener(plugin_dirs, builtin_dir);
    let mut notifications = None;
    let own_connection = config.own_eventer_server().is_some();
    if let Some(bridge) = bridge.filter(|_| !own_connection) {
        let notified = Arc::new(Notifications::default());
        let client = PythonEventClient::new(bridge, notified.clone());
        opener = opener.with_event_client(Arc::new(client));
        notifications = Some(notified);
    }
    let runtime = own_connection
        .then(runtime::shared)
        .transpose()
        .map_err(|err| {
            errors::UnavailableError::new_err(format!(
                "starting the threads of the event server connection: {err}"
            ))
        })?;
    let handle = py
        .detach(|| {
            // Connecting and routing its notifications need the runtime.
            let _entered = runtime.map(|runtime| runtime.enter());
            opener.open(&config).map(|opened| opened.into_handle())
        })
        .map_err(errors::open_error)?;
    Ok(NativeBackend::new(
        handle.backend().clone(),
        handle.library().clone(),
        notifications,
    ))
}

/// The event types the plugin of a `backend` section wants notified, as
/// tuples of strings (Python's `create_subscription`): none when the
/// section names its own `eventer_server`, whose connection subscribes
/// for itself (the server's connection would carry every model again).
#[pyfunction]
#[pyo3(signature = (section, plugin_dirs, builtin_dir=None))]
fn create_subscription<'py>(
    py: Python<'py>,
    section: &str,
    plugin_dirs: Vec<PathBuf>,
    builtin_dir: Option<PathBuf>,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let config = server_config(section)?;
    if config.own_eventer_server().is_some() {
        return Ok(Vec::new());
    }
    let opener = opener(plugin_dirs, builtin_dir);
    let types = py
        .detach(|| opener.subscription(&config))
        .map_err(errors::open_error)?;
    types
        .iter()
        .map(|t| PyTuple::new(py, t.iter().map(|s| s.as_str())))
        .collect()
}

/// The JSON text a plugin is handed for a JSON payload whose data is
/// `data` (as `hat.event` decodes it): what `("json_data", data)` payload
/// tuples become.
#[pyfunction]
fn json_text(data: &Bound<'_, PyAny>) -> PyResult<String> {
    convert::json_text(data)
}

/// The version of the plugin API this package hosts.
#[pyfunction]
fn api_version() -> &'static str {
    aimm_backend_api::API_VERSION
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(open_backend, module)?)?;
    module.add_function(wrap_pyfunction!(create_subscription, module)?)?;
    module.add_function(wrap_pyfunction!(api_version, module)?)?;
    module.add_function(wrap_pyfunction!(json_text, module)?)?;
    module.add_class::<NativeBackend>()?;
    errors::register(module)?;
    host_log::HostWarnings::install();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::embedded::{self, plugin, sqlite_section, with_python};
    use super::*;

    fn error_text(py: Python<'_>, err: &PyErr) -> (String, String) {
        let class = err.get_type(py).name().unwrap().to_string();
        (class, err.value(py).to_string())
    }

    #[test]
    fn a_section_that_is_not_json_or_not_valid_is_a_config_error_naming_it() {
        with_python(|py| {
            let err = open_backend(py, "{module:", vec![], None, None)
                .err()
                .unwrap();
            let (class, text) = error_text(py, &err);
            assert_eq!(class, "ConfigError");
            assert!(text.starts_with("backend section: "), "{text}");
            let err = open_backend(py, r#"{"path": "x.db"}"#, vec![], None, None)
                .err()
                .unwrap();
            let (class, text) = error_text(py, &err);
            assert_eq!(class, "ConfigError");
            assert!(text.contains("module"), "{text}");
            assert!(text.contains(ORIGIN), "{text}");
        });
    }

    #[test]
    fn an_unknown_plugin_is_a_load_error() {
        with_python(|py| {
            let dir = tempfile::tempdir().unwrap();
            let section = r#"{"module": "no_such_backend"}"#;
            let err = open_backend(py, section, vec![dir.path().into()], None, None)
                .err()
                .unwrap();
            let (class, text) = error_text(py, &err);
            assert_eq!(class, "LoadError");
            assert!(text.contains(&dir.path().display().to_string()), "{text}");
        });
    }

    #[test]
    fn a_plugin_found_in_a_plugin_dir_opens() {
        with_python(|py| {
            let dir = tempfile::tempdir().unwrap();
            let library = plugin("sqlite");
            let section = serde_json::json!({
                "module": "aimm_backend_sqlite",
                "path": dir.path().join("m.db"),
            });
            let backend = open_backend(
                py,
                &section.to_string(),
                vec![library.parent().unwrap().into()],
                None,
                None,
            )
            .unwrap();
            let backend = Bound::new(py, backend).unwrap();
            let path: String = backend.getattr("library_path").unwrap().extract().unwrap();
            assert_eq!(path, library.canonicalize().unwrap().display().to_string());
        });
    }

    #[test]
    fn subscriptions_are_the_plugins_unless_the_section_names_its_own_server() {
        with_python(|py| {
            let event = plugin("event");
            let section = serde_json::json!({"module": event, "model_prefix": ["aimm", "m"]});
            let types = create_subscription(py, &section.to_string(), vec![], None).unwrap();
            let types: Vec<Vec<String>> = types.iter().map(|t| t.extract().unwrap()).collect();
            assert_eq!(types, [["aimm", "m", "*"]]);
            let own = serde_json::json!({
                "module": event,
                "model_prefix": ["aimm", "m"],
                "eventer_server": {"host": "127.0.0.1", "port": 1},
            });
            let types = create_subscription(py, &own.to_string(), vec![], None).unwrap();
            assert!(types.is_empty());
            let dir = tempfile::tempdir().unwrap();
            let sqlite = sqlite_section(&dir.path().join("m.db"));
            assert!(create_subscription(py, &sqlite, vec![], None)
                .unwrap()
                .is_empty());
            let err = create_subscription(py, "[", vec![], None).unwrap_err();
            assert_eq!(error_text(py, &err).0, "ConfigError");
        });
    }

    /// Opens `section` with `bridge` as the server's event client.
    fn open_bridged(
        section: &serde_json::Value,
        bridge: &Bound<'_, PyAny>,
    ) -> PyResult<NativeBackend> {
        let py = bridge.py();
        let bridge = Some(bridge.clone().unbind());
        open_backend(py, &section.to_string(), vec![], None, bridge)
    }

    #[test]
    fn the_servers_client_is_lent_unless_the_section_names_its_own_server() {
        with_python(|py| {
            let bridge = embedded::fake_bridge(py);
            bridge
                .setattr("answer", pyo3::types::PyList::empty(py))
                .unwrap();
            let section = serde_json::json!({"module": plugin("event"), "model_prefix": ["t"]});
            let backend = open_bridged(&section, &bridge).unwrap();
            let backend = Bound::new(py, backend).unwrap();
            let listed = backend.call_method0("list_models").unwrap();
            assert_eq!(listed.len().unwrap(), 0);
            let calls = bridge.getattr("calls").unwrap();
            assert!(calls.len().unwrap() > 0, "the plugin asked the bridge");

            // Its own server (where nothing listens): the bridge is not
            // used, the connection is tried and fails.
            let own = serde_json::json!({
                "module": plugin("event"),
                "model_prefix": ["t"],
                "eventer_server": {"host": "127.0.0.1", "port": 1, "timeout": 0.5},
            });
            let before = calls.len().unwrap();
            let err = open_bridged(&own, &bridge).err().unwrap();
            let (class, text) = error_text(py, &err);
            assert_eq!(class, "UnavailableError", "{text}");
            assert!(text.contains("127.0.0.1:1"), "{text}");
            assert_eq!(calls.len().unwrap(), before, "the bridge was not used");
        });
    }

    #[test]
    fn the_module_offers_its_functions_classes_and_version() {
        with_python(|py| {
            let module = pyo3::wrap_pymodule!(_native)(py).into_bound(py);
            for name in [
                "open_backend",
                "create_subscription",
                "api_version",
                "json_text",
                "NativeBackend",
                "BackendError",
                "PluginPanicError",
            ] {
                assert!(module.hasattr(name).unwrap(), "{name}");
            }
            let version: String = module
                .getattr("api_version")
                .unwrap()
                .call0()
                .unwrap()
                .extract()
                .unwrap();
            assert_eq!(version, aimm_backend_api::API_VERSION);
            let data = pyo3::types::PyDict::new(py);
            data.set_item("k", 1).unwrap();
            let text: String = module
                .getattr("json_text")
                .unwrap()
                .call1((data,))
                .unwrap()
                .extract()
                .unwrap();
            assert_eq!(text, r#"{"k":1}"#);
        });
    }
}
