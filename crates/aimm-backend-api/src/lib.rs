//! The stable-ABI contract between an AIMM host and its model-persistence
//! backend plugins.
//!
//! An AIMM server keeps trained model instances through a *backend*, named in
//! its config by `backend.module`. In this project a backend is a shared
//! library (a Rust `cdylib`) that exports one [`BackendModule`]; the host
//! (`aimm-backend-loader`) loads it at run time, checks that it was built
//! against a compatible version of this crate, and calls it through the
//! C-compatible structs defined here.
//!
//! # Writing a plugin
//!
//! Implement [`Backend`] (the store) and [`BackendPlugin`] (how to build it),
//! then export it with one line. `aimm-backend new NAME` writes a complete
//! plugin crate to start from; by hand, `Cargo.toml` needs:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # rlib: so that `cargo test` can link it
//!
//! [dependencies]
//! aimm-backend-api = "0.5"
//! abi_stable = { version = "0.11.3", default-features = false }
//! log = "0.4"          # this crate's `log`: only its records reach the host
//! serde_json = "1"
//!
//! [dev-dependencies]
//! aimm-backend-conformance = "0.1"   # the suite, in-process
//! ```
//!
//! This plugin keeps models in memory, in stores named by the config's
//! `name` that live until the process ends, and passes the conformance
//! suite as written:
//!
//! ```
#![doc = include_str!("../doc/map_plugin.rs")]
//! # fn main() {}
//! ```
//!
//! In the plugin's tests, the suite runs against it in-process; this
//! example's run is `aimm-backend-conformance`'s `tests/api_docs_example.rs`:
//!
//! ```text
//! use aimm_backend_conformance::{run, InProcessTarget};
//!
//! let target = InProcessTarget::<MapPlugin>::scratch(serde_json::json!({"module": "map"})).unwrap();
//! let report = run(&target);
//! assert!(report.all_passed(), "{report}");
//! ```
//!
//! # Versioning
//!
//! [`API_VERSION`] is this crate's version, and every plugin carries the one
//! it was built against. While below 1.0, a host loads only plugins built
//! against its own `0.x` (any patch release of it) and refuses others with
//! both versions named: a patch release changes nothing that crosses the
//! boundary and adds nothing to it, so plugins already built keep loading;
//! a minor release may change the boundary, and plugins are rebuilt. From
//! 1.0 on the same holds for major versions, and a minor release only
//! appends functions to the root module (a prefix type: hosts check for
//! them, older plugins lack them).
//!
//! # Rules of the boundary
//!
//! * Only types defined here (and `abi_stable`'s `R*` types) cross it. Model
//!   bytes are an [`RVec<u8>`](RVec), moved, never copied, or are written by
//!   the plugin straight into memory the host lends it for one call
//!   ([`Backend::read_models`] with a [`ModelSink`]).
//! * Every call is blocking; the host runs it on a blocking thread pool. A
//!   plugin needs no async runtime.
//! * Every function a plugin exports catches panics and returns an
//!   [`ErrorKind::Panic`] error instead. (A plugin built with `panic = "abort"`
//!   gives that up.)
//! * The host loads each library once and never unloads it. Right after
//!   loading it hands the library its log sink
//!   ([`BackendModule::install_log_sink`]), so `log` records from every
//!   exported function reach the host's log.

#![warn(missing_docs)]

pub mod backend;
pub mod change_listener;
pub mod error;
pub mod event;
pub mod event_client;
pub mod event_visitor;
pub mod host;
mod listeners;
pub mod log_sink;
pub mod model;
pub mod model_sink;
mod panic_guard;
pub mod plugin;

pub use abi_stable::std_types::{ROption, RString, RVec};
pub use backend::{Backend, FFI_Backend, ForeignBackend};
pub use change_listener::{
    FFI_ModelChangeListener, ForeignModelChangeListener, ModelChangeListener,
};
pub use error::{BackendError, ErrorKind, Result};
pub use event::{event_type, Event, EventId, EventPayload, EventType, RegisterEvent, Timestamp};
pub use event_client::{EventClient, FFI_EventClient, ForeignEventClient, RegisterMode};
pub use event_visitor::FFI_EventVisitor;
pub use host::{FFI_Host, Host};
pub use listeners::ListenerRegistry;
pub use log_sink::{FFI_LogSink, ForeignLogSink, LogLevel, LogSink, SinkLogger};
pub use model::{InstanceId, Model, ModelInfo};
pub use model_sink::{FFI_ModelFill, FFI_ModelSink, Fill, ModelSink};
pub use plugin::{BackendModule, BackendModuleRef, BackendPlugin, API_VERSION};

/// Re-exports used by [`export_backend!`]; not part of the API.
#[doc(hidden)]
pub mod reexports {
    pub use abi_stable::std_types::RStr;
}
