//! The host side of AIMM backend plugins.
//!
//! Reads a server config ([`ServerConfig`]), resolves `backend.module` to a
//! shared library on the plugin search path ([`SearchPath`]), loads it with
//! ABI and version checks ([`PluginLibrary`]), validates the `backend` section
//! against the plugin's own schema, lends the plugin its host services (log
//! sink, event client) and creates the backend. [`Opener`] is that sequence,
//! the one way every host opens a backend; [`BackendHandle`] puts async
//! methods on top.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use aimm_backend_loader::{open_backend, SearchPath, ServerConfig};
//!
//! let config = ServerConfig::from_file("server.yaml".as_ref())?;
//! let backend = open_backend(&config, &SearchPath::new(&[]))?;
//! for info in backend.list_models().await? {
//!     println!("{} {} {}", info.instance_id, info.model_type, info.size);
//! }
//! # Ok(()) }
//! ```
//!
//! Plugin libraries are loaded once per process and never unloaded.

#![warn(missing_docs)]

mod config;
mod elf;
mod error;
mod handle;
mod host_services;
mod library;
mod open;
mod resolve;
pub mod safety;
pub mod schema;

pub use config::{
    default_store_path, EventTarget, EventerServerConfig, HatConfig, MonitorComponentConfig,
    ServerConfig, PLUGIN_MODULE,
};
pub use error::{ConfigError, LoadError};
pub use handle::BackendHandle;
pub use host_services::TracingLogSink;
pub use library::PluginLibrary;
pub use open::{
    ConnectRequest, Connected, EventConnector, EventStream, LogSinkFactory, Opened, Opener,
    Prepared,
};
pub use resolve::{
    library_file_name, library_name, wheel_plugin_dir, Candidate, CandidateState, SearchPath,
    PATH_ENV,
};
pub use safety::{LoadPolicy, ALLOW_UNSAFE_ENV};

use aimm_backend_api::BackendError;

/// Anything that can go wrong between a config and a working backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend library cannot be found or loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The plugin refused to create the backend.
    // Not a `source`: the message carries the reason already, and a
    // reporter that prints the chain would print it twice.
    #[error("backend {}: {reason}", backend_name(module, path))]
    Backend {
        /// `backend.module`.
        module: String,
        /// The library file.
        path: String,
        /// What the plugin said.
        reason: BackendError,
    },
}

/// `` `MODULE` (PATH) ``, or just `PATH` when the module is that path (a
/// host that resolved the module itself), so the path is said once.
fn backend_name(module: &str, path: &str) -> String {
    if module == path {
        path.to_string()
    } else {
        format!("`{module}` ({path})")
    }
}

impl Error {
    /// The plugin of `library`, loaded for `backend.module` `module`,
    /// refused: `source` says why.
    pub fn backend(module: &str, library: &PluginLibrary, source: BackendError) -> Self {
        Error::Backend {
            module: module.to_string(),
            path: library.path().display().to_string(),
            reason: source,
        }
    }
}

/// Opens the backend `config` describes with the default host services
/// ([`Opener::new`]: no event server connection of its own) and wraps it in
/// an async handle. Blocks while the plugin opens its store. A host that
/// connects to Hat event servers opens through `aimm_backend_hat_host`.
pub fn open_backend(config: &ServerConfig, search: &SearchPath) -> Result<BackendHandle, Error> {
    Ok(Opener::new(search.clone()).open(config)?.into_handle())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(module: &str, path: &str) -> String {
        Error::Backend {
            module: module.into(),
            path: path.into(),
            reason: BackendError::invalid_config("backend.path: bad"),
        }
        .to_string()
    }

    #[test]
    fn a_backend_error_names_the_module_and_its_library_each_once() {
        assert_eq!(
            refused("sqlite", "/p/libsqlite.so"),
            "backend `sqlite` (/p/libsqlite.so): invalid config: backend.path: bad"
        );
        assert_eq!(
            refused("/p/libsqlite.so", "/p/libsqlite.so"),
            "backend /p/libsqlite.so: invalid config: backend.path: bad"
        );
    }
}
