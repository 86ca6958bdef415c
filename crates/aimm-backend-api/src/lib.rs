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
//! aimm-backend-api = "0.3"
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
//! suite as written (the last lines run it, as the plugin's own tests
//! would):
//!
//! ```
//! use std::collections::{BTreeMap, HashMap};
//! use std::sync::{Arc, Mutex, OnceLock};
//! use aimm_backend_api::{
//!     Backend, BackendError, BackendPlugin, Event, Host, InstanceId, ListenerRegistry,
//!     Model, ModelChangeListener, ModelInfo, Result, RString, RVec,
//! };
//!
//! /// One named store: its models, and the last id handed out.
//! #[derive(Default)]
//! struct Store {
//!     models: BTreeMap<InstanceId, Model>,
//!     last_id: InstanceId,
//! }
//!
//! struct MapBackend {
//!     store: Arc<Mutex<Store>>,
//!     listeners: ListenerRegistry,
//! }
//!
//! impl MapBackend {
//!     /// A backend on store `name`: backends on one name share it, so
//!     /// models survive reopening (as the suite checks).
//!     fn open(name: &str) -> Self {
//!         static STORES: OnceLock<Mutex<HashMap<String, Arc<Mutex<Store>>>>> = OnceLock::new();
//!         let mut stores = STORES.get_or_init(Default::default).lock().unwrap();
//!         let store = stores.entry(name.to_string()).or_default().clone();
//!         MapBackend { store, listeners: ListenerRegistry::default() }
//!     }
//!
//!     /// Stores `model` with `check` passed under the store's lock, then
//!     /// tells the listeners.
//!     fn put(&self, model: Model, check: impl FnOnce(&Store) -> Result<()>) -> Result<Model> {
//!         {
//!             let mut store = self.store.lock().unwrap();
//!             check(&store)?;
//!             store.last_id = store.last_id.max(model.instance_id);
//!             store.models.insert(model.instance_id, model.clone());
//!         }
//!         self.listeners.notify(&model);
//!         Ok(model)
//!     }
//! }
//!
//! impl Backend for MapBackend {
//!     fn get_models(&self) -> Result<RVec<Model>> {
//!         Ok(self.store.lock().unwrap().models.values().cloned().collect())
//!     }
//!     fn list_models(&self) -> Result<RVec<ModelInfo>> {
//!         Ok(self.store.lock().unwrap().models.values().map(Model::info).collect())
//!     }
//!     fn get_model(&self, id: InstanceId) -> Result<Model> {
//!         let store = self.store.lock().unwrap();
//!         store.models.get(&id).cloned().ok_or(BackendError::not_found(id))
//!     }
//!     fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
//!         let model = {
//!             let mut store = self.store.lock().unwrap();
//!             store.last_id += 1;
//!             let model = Model { instance_id: store.last_id, model_type, instance };
//!             store.models.insert(model.instance_id, model.clone());
//!             model
//!         };
//!         self.listeners.notify(&model);
//!         Ok(model)
//!     }
//!     fn update_model(&self, model: Model) -> Result<Model> {
//!         let id = model.instance_id;
//!         self.put(model, |store| match store.models.contains_key(&id) {
//!             true => Ok(()),
//!             false => Err(BackendError::not_found(id)),
//!         })
//!     }
//!     fn import_model(&self, model: Model) -> Result<Model> {
//!         let id = model.instance_id;
//!         self.put(model, |store| match store.models.contains_key(&id) {
//!             true => Err(BackendError::conflict(id)),
//!             false => Ok(()),
//!         })
//!     }
//!     fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
//!         Ok(self.listeners.register(listener))
//!     }
//!     fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
//!         self.listeners.unregister(registration);
//!         Ok(())
//!     }
//!     fn process_events(&self, _: RVec<Event>) -> Result<()> {
//!         Ok(()) // no subscription, so no events
//!     }
//!     fn close(&self) -> Result<()> {
//!         Ok(()) // nothing to flush
//!     }
//! }
//!
//! struct MapPlugin;
//!
//! impl BackendPlugin for MapPlugin {
//!     const NAME: &'static str = "map";
//!     const CONF_SCHEMA: &'static str = "
//! type: object
//! required: [module]
//! properties:
//!     module: {type: string}
//!     name: {type: string}
//! ";
//!     fn create_backend(conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
//!         let name = conf["name"].as_str().unwrap_or("default");
//!         log::info!("map store {name} opened"); // ends up in the host's log
//!         Ok(Arc::new(MapBackend::open(name)))
//!     }
//!     fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
//!         let mut scratch = conf.clone();
//!         scratch["name"] = format!("scratch {scratch_dir}").into();
//!         Ok(scratch)
//!     }
//! }
//!
//! aimm_backend_api::export_backend!(MapPlugin);
//!
//! # fn main() {
//! // In the plugin's tests:
//! use aimm_backend_conformance::{run, InProcessTarget};
//! let target = InProcessTarget::<MapPlugin>::scratch(serde_json::json!({"module": "map"})).unwrap();
//! let report = run(&target);
//! assert!(report.all_passed(), "{report}");
//! # }
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
