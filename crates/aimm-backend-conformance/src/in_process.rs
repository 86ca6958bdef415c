//! A plugin's `BackendPlugin` driven directly, in the test's own process:
//! what a plugin's own `cargo test` runs the suite against.

use crate::Target;
use aimm_backend_api::{
    Backend, BackendError, BackendPlugin, EventClient, Host, LogLevel, LogSink,
};
use serde_json::Value;
use std::marker::PhantomData;
use std::sync::Arc;

/// The backend of plugin `P`, created by `P::create_backend` on every
/// [`Target::open`], with no library loaded and no loader involved.
///
/// The config is used as given: unlike a host, this target does not
/// validate it against `P::CONF_SCHEMA` (the loader-backed `PluginTarget`
/// of feature `loader`, and `aimm-backend conformance`, do). Log lines go
/// to stderr, which `cargo test` shows for failing tests.
///
/// ```no_run
/// # use aimm_backend_api::{Backend, BackendPlugin, Host, Result};
/// # use std::sync::Arc;
/// # struct MyPlugin;
/// # impl BackendPlugin for MyPlugin {
/// #     const NAME: &'static str = "my";
/// #     const CONF_SCHEMA: &'static str = "type: object";
/// #     fn create_backend(_: &serde_json::Value, _: Host) -> Result<Arc<dyn Backend>> { todo!() }
/// # }
/// use aimm_backend_conformance::{run, InProcessTarget};
///
/// let target = InProcessTarget::<MyPlugin>::scratch(serde_json::json!({"module": "my"})).unwrap();
/// let report = run(&target);
/// assert!(report.all_passed(), "{report}");
/// ```
pub struct InProcessTarget<P> {
    conf: Value,
    host: Host,
    _scratch: Option<tempfile::TempDir>,
    _plugin: PhantomData<fn() -> P>,
}

impl<P: BackendPlugin> InProcessTarget<P> {
    /// Tests the store `conf` (a `backend` section for `P`) describes; its
    /// models are left alone, but the suite adds its own.
    pub fn new(conf: Value) -> Self {
        InProcessTarget {
            conf,
            host: stderr_host(),
            _scratch: None,
            _plugin: PhantomData,
        }
    }

    /// Tests a fresh store: the one `P::scratch_conf` derives from `conf`
    /// for a new temporary directory, which exists when `scratch_conf` is
    /// called and is removed with the target.
    pub fn scratch(conf: Value) -> Result<Self, BackendError> {
        let dir = tempfile::Builder::new()
            .prefix("aimm-conformance-")
            .tempdir()
            .map_err(|err| BackendError::storage(format!("making a scratch directory: {err}")))?;
        let scratch_dir = dir.path().to_string_lossy().into_owned();
        let conf = P::scratch_conf(&conf, &scratch_dir)?;
        Ok(InProcessTarget {
            conf,
            host: stderr_host(),
            _scratch: Some(dir),
            _plugin: PhantomData,
        })
    }

    /// Lends every backend `client` as its Hat event client (for a plugin
    /// that needs one, such as a fake server in the plugin's own tests).
    pub fn with_event_client(mut self, client: Arc<dyn EventClient>) -> Self {
        self.host.event_client = Some(client);
        self
    }

    /// The config the backends are created with.
    pub fn conf(&self) -> &Value {
        &self.conf
    }
}

impl<P: BackendPlugin> Target for InProcessTarget<P> {
    fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        P::create_backend(&self.conf, self.host.clone())
    }
}

/// A host lending only a log sink that writes to stderr.
fn stderr_host() -> Host {
    Host {
        log: Arc::new(StderrLog),
        event_client: None,
    }
}

/// Log lines of the backend under test, on stderr.
struct StderrLog;

impl LogSink for StderrLog {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        eprintln!("[{level:?} {target}] {message}");
    }
}
