//! The root module every plugin library exports, and the trait plugin authors
//! implement to fill it.

use crate::backend::FFI_Backend;
use crate::host::FFI_Host;
use crate::log_sink::{FFI_LogSink, SinkLogger};
use crate::panic_guard::{guard, guard_unit};
use crate::{Backend, BackendError, EventType, Host, Result};
use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RResult, RStr, RString, RVec};
use abi_stable::{declare_root_module_statics, package_version_strings, StableAbi};
use std::sync::Arc;

/// A backend plugin: the module-level functions of the Python interface
/// (`create`, `create_subscription`) plus what the host needs to know first.
///
/// Configurations arrive as the `backend` section of the server config, as
/// JSON, already validated against [`BackendPlugin::CONF_SCHEMA`] (by hosts
/// that load the plugin; an in-process test target may not validate).
/// Paths in a config are the user's, as written: a relative one is relative
/// to the host's working directory, which the plugin should not assume to
/// be anything in particular (resolve it when the backend is created).
///
/// `export_backend!` routes the plugin's `log` records to the host's log
/// from the moment the host has loaded the library, before it calls any of
/// the functions below, and installs a panic hook in the plugin that logs
/// the panic's message there too (at debug level when the panic is caught
/// at the boundary and returned to the host as an error, which reports it;
/// at error level on the plugin's own threads).
pub trait BackendPlugin: 'static {
    /// The plugin's name, as `aimm-backend check` and `plugins` print it.
    const NAME: &'static str;

    /// The JSON Schema the `backend` section must satisfy, as YAML or JSON
    /// text. The section includes `module` (the name the config loads the
    /// plugin by), so a schema that refuses unknown keys
    /// (`additionalProperties: false`) must list it. The draft is the one
    /// `$schema` names; without `$schema`, 2020-12. The host validates each
    /// config against it before [`BackendPlugin::create_backend`], and
    /// refuses to load a plugin whose schema does not parse.
    const CONF_SCHEMA: &'static str;

    /// Creates a backend from its configuration. The host may create
    /// several backends of one plugin in one process, on the same store or
    /// on different ones, and one after another (closing or dropping the
    /// earlier ones first or not).
    fn create_backend(conf: &serde_json::Value, host: Host) -> Result<Arc<dyn Backend>>;

    /// The event types whose events the host must pass to
    /// [`Backend::process_events`]. None by default. Called before any
    /// backend is created.
    fn create_subscription(conf: &serde_json::Value) -> Result<Vec<EventType>> {
        let _ = conf;
        Ok(Vec::new())
    }

    /// A configuration like `conf` but pointing at a fresh, empty store that
    /// may be thrown away, for running the conformance suite without
    /// touching real data. `scratch_dir` exists and is empty when this is
    /// called, and the host removes it, with everything below it, once the
    /// run is over: a store kept in files belongs there. A store elsewhere
    /// (a server) must be made fresh some other way (a new name, a new
    /// prefix). The whole suite runs on the one store this returns.
    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        let _ = (conf, scratch_dir);
        Err(BackendError::unsupported(format!(
            "backend plugin `{}` does not say how to make a scratch store \
             (BackendPlugin::scratch_conf)",
            Self::NAME
        )))
    }
}

/// The root module of a plugin library. A prefix type: later API versions may
/// append functions without breaking the layout of the ones here.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendModuleRef)))]
#[sabi(missing_field(panic))]
pub struct BackendModule {
    /// [`BackendPlugin::NAME`].
    pub plugin_name: extern "C" fn() -> RStr<'static>,
    /// The plugin crate's version.
    pub plugin_version: extern "C" fn() -> RStr<'static>,
    /// [`BackendPlugin::CONF_SCHEMA`].
    pub conf_schema: extern "C" fn() -> RStr<'static>,
    /// [`BackendPlugin::create_subscription`], config as JSON text.
    pub create_subscription: extern "C" fn(RStr<'_>) -> RResult<RVec<EventType>, BackendError>,
    /// [`BackendPlugin::scratch_conf`]: (config JSON, scratch dir) -> config JSON.
    pub scratch_conf: extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<RString, BackendError>,
    /// [`BackendPlugin::create_backend`], config as JSON text.
    pub create_backend: extern "C" fn(RStr<'_>, FFI_Host) -> RResult<FFI_Backend, BackendError>,
    /// Sends the plugin's `log` records (and its panic messages) to the
    /// host's sink from now on. Hosts call it once, right after loading the
    /// library and before any other function, so that the records of
    /// `create_subscription` and `scratch_conf` reach them too. The first
    /// sink a library is given stays; later ones are dropped.
    #[sabi(last_prefix_field)]
    pub install_log_sink: extern "C" fn(FFI_LogSink),
}

impl RootModule for BackendModuleRef {
    declare_root_module_statics! {BackendModuleRef}
    const BASE_NAME: &'static str = "aimm_backend";
    const NAME: &'static str = "aimm_backend";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this API crate; plugins built against another minor version
/// (while below 1.0) or major version are refused by the loader.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

fn parse_conf(conf: RStr<'_>) -> Result<serde_json::Value> {
    serde_json::from_str(conf.as_str()).map_err(|err| {
        BackendError::invalid_config(format!("backend config is not valid JSON: {err}"))
    })
}

extern "C" fn plugin_name<P: BackendPlugin>() -> RStr<'static> {
    RStr::from_str(P::NAME)
}

extern "C" fn conf_schema<P: BackendPlugin>() -> RStr<'static> {
    RStr::from_str(P::CONF_SCHEMA)
}

extern "C" fn create_subscription<P: BackendPlugin>(
    conf: RStr<'_>,
) -> RResult<RVec<EventType>, BackendError> {
    guard("create_subscription", || {
        P::create_subscription(&parse_conf(conf)?).map(RVec::from)
    })
}

extern "C" fn scratch_conf<P: BackendPlugin>(
    conf: RStr<'_>,
    scratch_dir: RStr<'_>,
) -> RResult<RString, BackendError> {
    guard("scratch_conf", || {
        let scratch = P::scratch_conf(&parse_conf(conf)?, scratch_dir.as_str())?;
        Ok(RString::from(scratch.to_string()))
    })
}

extern "C" fn create_backend<P: BackendPlugin>(
    conf: RStr<'_>,
    host: FFI_Host,
) -> RResult<FFI_Backend, BackendError> {
    guard("create_backend", || {
        let host = host.into_foreign();
        // For a host that did not call `install_log_sink` first.
        route_log_to(host.log.clone());
        let backend = P::create_backend(&parse_conf(conf)?, host)?;
        Ok(FFI_Backend::new(backend))
    })
}

extern "C" fn install_log_sink(sink: FFI_LogSink) {
    guard_unit("install_log_sink", || {
        route_log_to(Arc::new(sink.into_foreign()))
    });
}

fn route_log_to(sink: Arc<dyn crate::LogSink>) {
    SinkLogger::install(sink);
    route_panic_messages_to_log();
}

/// A caught panic still prints through the plugin's own copy of the panic
/// hook; send that text to the host's log instead of the user's terminal,
/// on one line. A panic inside a call from the host reaches it as the
/// call's error, so its record (with where it happened) is at debug level;
/// one on a thread of the plugin's own is reported nowhere else: error.
fn route_panic_messages_to_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let text = info.to_string().replace('\n', " ");
            if crate::panic_guard::is_guarded() {
                log::debug!("plugin panicked (returned to the host as an error): {text}");
            } else {
                log::error!("plugin panicked on a thread of its own: {text}");
            }
        }));
    });
}

/// Builds the root module for plugin `P`. Called by [`export_backend!`](crate::export_backend);
/// not meant to be called directly.
#[doc(hidden)]
pub fn root_module_for<P: BackendPlugin>(
    plugin_version: extern "C" fn() -> RStr<'static>,
) -> BackendModuleRef {
    BackendModule {
        plugin_name: plugin_name::<P>,
        plugin_version,
        conf_schema: conf_schema::<P>,
        create_subscription: create_subscription::<P>,
        scratch_conf: scratch_conf::<P>,
        create_backend: create_backend::<P>,
        install_log_sink,
    }
    .leak_into_prefix()
}

/// Exports `$plugin` (a type implementing [`BackendPlugin`]) as this library's
/// AIMM backend root module. Use it once, in a `cdylib` crate that also
/// depends on `abi_stable` 0.11 (the export attribute names that crate).
///
/// Every exported function catches panics and returns them to the host as
/// [`ErrorKind::Panic`](crate::ErrorKind::Panic) errors. Once the host has
/// loaded the library (before it asks for a subscription, a scratch config
/// or a backend), the plugin's `log` records go to the host's log, and a
/// panic hook is installed (the plugin's own copy of std's hook,
/// which a host's hook does not replace) that logs each panic's message
/// there instead of printing it: at debug level when the panic is returned
/// to the host as an error, at error level on the plugin's own threads.
#[macro_export]
macro_rules! export_backend {
    ($plugin:ty) => {
        #[::abi_stable::export_root_module]
        fn aimm_backend_root_module() -> $crate::BackendModuleRef {
            extern "C" fn plugin_version() -> $crate::reexports::RStr<'static> {
                $crate::reexports::RStr::from_str(env!("CARGO_PKG_VERSION"))
            }
            $crate::plugin::root_module_for::<$plugin>(plugin_version)
        }
    };
}
