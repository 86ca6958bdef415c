//! The host side of AIMM backend plugins.
//!
//! Reads a server config ([`ServerConfig`]), resolves `backend.module` to a
//! shared library on the plugin search path ([`SearchPath`]), loads it with
//! ABI and version checks ([`PluginLibrary`]), validates the `backend` section
//! against the plugin's own schema, and creates the backend behind an async
//! [`BackendHandle`].
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
mod error;
mod handle;
mod hat_client;
mod host_services;
mod library;
mod resolve;
pub mod schema;

pub use config::{default_store_path, ServerConfig};
pub use error::{ConfigError, LoadError};
pub use handle::BackendHandle;
pub use hat_client::{HatClientConfig, HatEventClient};
pub use host_services::TracingLogSink;
pub use library::PluginLibrary;
pub use resolve::{library_file_name, library_name, SearchPath, PATH_ENV};

use aimm_backend_api::{BackendError, ErrorKind, EventClient};
use std::sync::Arc;
use std::time::Duration;

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
    #[error("backend `{module}` ({path}): {source}")]
    Backend {
        /// `backend.module`.
        module: String,
        /// The library file.
        path: String,
        /// What the plugin said.
        source: BackendError,
    },
}

/// Finds, loads and checks the plugin library `config` names, and validates
/// the `backend` section against the plugin's schema.
pub fn load_library(
    config: &ServerConfig,
    search: &SearchPath,
) -> Result<Arc<PluginLibrary>, Error> {
    let path = search.resolve(config.module())?;
    let library = PluginLibrary::load(&path)?;
    library.validate_conf(config.backend(), config.origin())?;
    Ok(library)
}

/// The host's event server connection for `config`, if it has
/// `hat.eventer_server`: started on the current tokio runtime, subscribed to
/// what `library`'s backend asks for, and connected (or an error after the
/// timeout). `hat.monitor_component` is refused: not supported yet.
pub fn connect_event_client(
    config: &ServerConfig,
    library: &PluginLibrary,
) -> Result<Option<(Arc<HatEventClient>, EventStream)>, Error> {
    let hat = &config.document()["hat"];
    if !hat["monitor_component"].is_null() {
        return Err(ConfigError::Invalid {
            path: config.origin().to_string(),
            violations: vec![schema::Violation {
                path: "hat.monitor_component".into(),
                rule: "not supported by this host yet; use hat.eventer_server".into(),
            }],
        }
        .into());
    }
    let server = &hat["eventer_server"];
    if server.is_null() {
        return Ok(None);
    }
    let address = format!(
        "{}:{}",
        server["host"].as_str().unwrap_or("127.0.0.1"),
        server["port"].as_u64().unwrap_or(23012)
    );
    let timeout = Duration::from_secs_f64(server["timeout"].as_f64().unwrap_or(3.0).max(0.1));
    let backend_error = |source| Error::Backend {
        module: config.module().to_string(),
        path: library.path().display().to_string(),
        source,
    };
    let subscriptions = library
        .create_subscription(config.backend())
        .map_err(backend_error)?
        .into_iter()
        .map(|t| t.into_iter().map(|s| s.to_string()).collect())
        .collect();
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        backend_error(BackendError::new(
            ErrorKind::Unavailable,
            "the event server connection needs a tokio runtime",
        ))
    })?;
    let (client, events) = HatEventClient::start(
        runtime,
        HatClientConfig {
            address: address.clone(),
            client_name: config.name().unwrap_or("aimm-backend").to_string(),
            subscriptions,
            timeout,
            max_backoff: Duration::from_secs(5),
        },
    );
    let deadline = std::time::Instant::now() + timeout;
    while !client.is_connected() {
        if std::time::Instant::now() >= deadline {
            return Err(backend_error(BackendError::new(
                ErrorKind::Unavailable,
                format!("Hat event server at {address} is unavailable: no connection within {timeout:?}"),
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some((client, events)))
}

/// Events the event server notifies for a backend's subscription.
pub type EventStream = tokio::sync::mpsc::UnboundedReceiver<Vec<aimm_backend_api::Event>>;

/// [`load_library`], connects the event client if the config has one
/// ([`connect_event_client`]), creates the backend, and routes notified
/// events to its `process_events`. Blocks while the plugin opens its store.
pub fn open_backend(config: &ServerConfig, search: &SearchPath) -> Result<BackendHandle, Error> {
    let library = load_library(config, search)?;
    let connection = connect_event_client(config, &library)?;
    let (client, events) = match connection {
        Some((client, events)) => (Some(client as Arc<dyn EventClient>), Some(events)),
        None => (None, None),
    };
    let handle = library
        .create_backend(config.backend(), client)
        .map_err(|source| Error::Backend {
            module: config.module().to_string(),
            path: library.path().display().to_string(),
            source,
        })?;
    if let Some(events) = events {
        route_events(&handle, events);
    }
    Ok(handle)
}

/// Hands every notified batch to the backend's `process_events`, off the
/// async threads, for as long as the backend lives.
fn route_events(handle: &BackendHandle, mut events: EventStream) {
    let backend = Arc::downgrade(handle.backend());
    tokio::spawn(async move {
        while let Some(batch) = events.recv().await {
            let Some(backend) = backend.upgrade() else {
                return;
            };
            let result =
                tokio::task::spawn_blocking(move || backend.process_events(batch.into())).await;
            if let Ok(Err(err)) = result {
                tracing::warn!("process_events: {err}");
            }
        }
    });
}
