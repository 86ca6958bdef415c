//! The host side of Hat: how a host of AIMM backend plugins talks to a Hat
//! event server on a plugin's behalf.
//!
//! A host opens backends through [`opener`] (the loader's
//! [`Opener`] with [`HatConnector`] installed):
//! when the config names an event server, the backend gets this crate's
//! [`HatEventClient`] as its event client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use aimm_backend_loader::{SearchPath, ServerConfig};
//!
//! let config = ServerConfig::from_file("server.yaml".as_ref())?;
//! // Inside a tokio runtime: the connection runs on it.
//! let backend = aimm_backend_hat_host::open_backend(&config, &SearchPath::new(&[]))?;
//! println!("{} models", backend.list_models().await?.len());
//! # Ok(()) }
//! ```
//!
//! # The moving parts of the event path
//!
//! Which file to touch, from the server to the plugin and back:
//!
//! 1. **The host connection.** This crate's [`HatEventClient`]
//!    (`client.rs`): one supervised connection per backend, reconnecting
//!    with backoff, subscribed to what the plugin's `create_subscription`
//!    asks for, notified of *persisted* events. With `hat.monitor_component`
//!    ([`ServerTarget::Followed`], `connector.rs`) it is a connection to
//!    the active server of a redundant group, which `hat-monitor-client`'s
//!    `follow_active` names, moved when the monitor blesses another server.
//!    Under the Python AIMM
//!    server the connection is the server's own Python client instead,
//!    lent through the `aimm_backend` package's bridge
//!    (`crates/aimm-backend-py/src/event_client.rs`,
//!    `python/aimm_backend/_events.py`), notified of *registered* events;
//!    or, with `eventer_server` in the backend section, a
//!    [`HatEventClient`] again.
//! 2. **The router** ([`Router`], `router.rs`): every notified batch goes
//!    first to the registrations waiting for it, then to the plugin's
//!    `process_events` (in order; the loader's `Opened::into_handle` for
//!    this crate's connection, [`Router::deliver`] in the Python package).
//! 3. **The plugin**: `aimm-backend-event` (`store.rs`), models as the
//!    newest events under a prefix.
//! 4. **Own-write recognition**, three times, each for its own question:
//!    - *Has my registration arrived?* The host's acknowledgement digests
//!      ([`notified`]): a registration sent without asking for the answer
//!      (which would echo every payload) waits for notifications of the
//!      same types and payload digests (SHA-256, JSON by value). Host side;
//!      the plugin never sees it.
//!    - *Is this notified model event one of mine?* The plugin's
//!      fingerprints (`aimm-backend-event/src/own_writes.rs`): a write in
//!      flight is known by model id and a fingerprint of its content, a
//!      finished one by event id, so listeners are not told of the
//!      backend's own writes twice and the notification tells which event
//!      holds what the write stored.
//!    - *Does the newest event already hold this model?* The plugin's
//!      content digests (`aimm-backend-event/src/latest.rs`): SHA-256 of
//!      type and bytes of what the newest event of each model holds, where
//!      the backend wrote or compared that event itself.
//! 5. **Unchanged-update skipping** (`EventBackend::already_holds` in
//!    `aimm-backend-event/src/store.rs`): an update whose digest equals the
//!    newest event's registers nothing, the engine's re-store after every
//!    predict; any newer event of another host makes it register again.

#![warn(missing_docs)]

mod client;
mod connector;
mod convert;
pub mod notified;
mod router;

pub use client::{HatClientConfig, HatEventClient, ServerTarget};
pub use connector::HatConnector;
pub use router::Router;

use aimm_backend_loader::{BackendHandle, Error, Opener, SearchPath, ServerConfig};
use std::sync::Arc;

/// The loader's [`Opener`] looking for plugins on `search`, connecting
/// backends whose config names an event server through [`HatConnector`].
pub fn opener(search: SearchPath) -> Opener {
    Opener::new(search).with_event_connector(Arc::new(HatConnector))
}

/// Opens the backend `config` describes through [`opener`] and wraps it in
/// an async handle: the CLI's way. Blocks while the plugin opens its store;
/// with an event server in the config it must run inside a tokio runtime.
pub fn open_backend(config: &ServerConfig, search: &SearchPath) -> Result<BackendHandle, Error> {
    Ok(opener(search.clone()).open(config)?.into_handle())
}
