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
//! then export it with one line. `Cargo.toml` needs
//! `crate-type = ["cdylib"]`, this crate and `abi_stable = "0.11"`.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use aimm_backend_api::{
//!     Backend, BackendError, BackendPlugin, Event, Host, InstanceId, Model,
//!     ModelChangeListener, ModelInfo, Result, RString, RVec,
//! };
//!
//! /// Keeps models in a vector; forgets them when the process ends.
//! #[derive(Default)]
//! struct VecBackend {
//!     models: Mutex<Vec<Model>>,
//! }
//!
//! impl Backend for VecBackend {
//!     fn get_models(&self) -> Result<RVec<Model>> {
//!         Ok(self.models.lock().unwrap().iter().cloned().collect())
//!     }
//!     fn list_models(&self) -> Result<RVec<ModelInfo>> {
//!         Ok(self.models.lock().unwrap().iter().map(Model::info).collect())
//!     }
//!     fn get_model(&self, id: InstanceId) -> Result<Model> {
//!         let models = self.models.lock().unwrap();
//!         models.iter().find(|m| m.instance_id == id).cloned()
//!             .ok_or(BackendError::not_found(id))
//!     }
//!     fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
//!         let mut models = self.models.lock().unwrap();
//!         let model = Model { instance_id: models.len() as i64 + 1, model_type, instance };
//!         models.push(model.clone());
//!         Ok(model)
//!     }
//!     fn update_model(&self, model: Model) -> Result<Model> {
//!         let mut models = self.models.lock().unwrap();
//!         let slot = models.iter_mut().find(|m| m.instance_id == model.instance_id)
//!             .ok_or(BackendError::not_found(model.instance_id))?;
//!         *slot = model.clone();
//!         Ok(model)
//!     }
//!     fn import_model(&self, model: Model) -> Result<Model> {
//!         Err(BackendError::unsupported("this sketch cannot import"))
//!     }
//!     fn register_model_change_cb(&self, _: Arc<dyn ModelChangeListener>) -> Result<u64> {
//!         Ok(0) // this sketch reports no changes
//!     }
//!     fn unregister_model_change_cb(&self, _: u64) -> Result<()> {
//!         Ok(())
//!     }
//!     fn process_events(&self, _: RVec<Event>) -> Result<()> {
//!         Ok(())
//!     }
//!     fn close(&self) -> Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! struct VecPlugin;
//!
//! impl BackendPlugin for VecPlugin {
//!     const NAME: &'static str = "vec";
//!     const CONF_SCHEMA: &'static str = "type: object\nrequired: [module]\n";
//!     fn create_backend(_conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
//!         log::info!("vec backend created"); // ends up in the host's log
//!         Ok(Arc::new(VecBackend::default()))
//!     }
//! }
//!
//! aimm_backend_api::export_backend!(VecPlugin);
//! # fn main() {}
//! ```
//!
//! # Rules of the boundary
//!
//! * Only types defined here (and `abi_stable`'s `R*` types) cross it. Model
//!   bytes are an [`RVec<u8>`](RVec), moved, never copied.
//! * Every call is blocking; the host runs it on a blocking thread pool. A
//!   plugin needs no async runtime.
//! * Every function a plugin exports catches panics and returns an
//!   [`ErrorKind::Panic`] error instead. (A plugin built with `panic = "abort"`
//!   gives that up.)
//! * The host loads each library once and never unloads it.

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
pub use plugin::{BackendModule, BackendModuleRef, BackendPlugin, API_VERSION};

/// Re-exports used by [`export_backend!`]; not part of the API.
#[doc(hidden)]
pub mod reexports {
    pub use abi_stable::std_types::RStr;
}
