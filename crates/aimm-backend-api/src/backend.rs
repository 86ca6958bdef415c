//! The [`Backend`] interface: the native trait, its FFI struct and the
//! receiver-side wrapper.
//!
//! A plugin implements [`Backend`]; [`FFI_Backend::new`] wraps it for the
//! boundary; the host wraps the received struct in [`ForeignBackend`], which
//! implements [`Backend`] again. The host never sees the plugin's types and the
//! plugin never sees the host's.

use crate::change_listener::{FFI_ModelChangeListener, ModelChangeListener};
use crate::model_sink::{FFI_ModelSink, ModelSink};
use crate::panic_guard::guard;
use crate::{BackendError, Event, InstanceId, Model, ModelInfo, Result};
use abi_stable::std_types::{RResult, RString, RVec};
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::sync::Arc;

/// A model store. All calls block; the host runs them off its async threads.
///
/// Implementations must be safe to call from many threads at once.
///
/// Instance ids are any `i64` a store hands out or is given to import; the
/// stock Python backends hand out positive ones from 1 up, and so do the
/// built-in ones. An id once used is never handed out again, also after
/// the store is reopened.
pub trait Backend: Send + Sync + 'static {
    /// Every stored model with its bytes, in ascending instance-id order.
    fn get_models(&self) -> Result<RVec<Model>>;

    /// Every stored model, in ascending instance-id order, each handed to
    /// `sink` with its exact size, its bytes written straight into the
    /// buffer the sink provides: one copy into the host's memory, where
    /// [`Backend::get_models`] makes two. What one call hands over is one
    /// consistent state of the store, as with `get_models`.
    ///
    /// The default calls `get_models` and copies each model into the sink's
    /// buffer; a store that can read into a buffer it is given should.
    fn read_models(&self, sink: &mut dyn ModelSink) -> Result<()> {
        for model in self.get_models()? {
            let info = ModelInfo {
                instance_id: model.instance_id,
                model_type: model.model_type,
                size: model.instance.len() as u64,
            };
            sink.accept(info, &mut |buffer: &mut [u8]| {
                buffer.copy_from_slice(&model.instance);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Id, type and size of every stored model, without loading any bytes,
    /// in ascending instance-id order (the order of [`Backend::get_models`]).
    fn list_models(&self) -> Result<RVec<ModelInfo>>;

    /// One model with its bytes; [`ErrorKind::NotFound`](crate::ErrorKind::NotFound)
    /// if `instance_id` is unknown.
    fn get_model(&self, instance_id: InstanceId) -> Result<Model>;

    /// Stores `instance` as a new model of `model_type` under a fresh instance
    /// id and returns it. Returns only once the model is durably stored.
    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model>;

    /// Replaces the type and bytes of the model with `model.instance_id`;
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if there is none.
    /// Returns only once the model is durably stored.
    ///
    /// A backend may skip an update that would leave the model exactly as
    /// the store holds it now (same type, same bytes): it then writes
    /// nothing and tells no change listener, since nothing changed. It must
    /// not skip one because of what it stored earlier if the store may have
    /// changed since.
    fn update_model(&self, model: Model) -> Result<Model>;

    /// Stores `model` under its own instance id;
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) if the id is taken.
    /// Ids handed out later never collide with imported ones.
    fn import_model(&self, model: Model) -> Result<Model>;

    /// Calls `listener` with every model this backend creates, updates or
    /// imports, or learns of through [`Backend::process_events`]. Returns an id
    /// for [`Backend::unregister_model_change_cb`].
    ///
    /// Changes made by other processes or hosts on the same store need not
    /// be reported (the Python backends report none). A backend that can
    /// see them should (the built-in SQLite backend polls the file, the
    /// event backend hears them as events), and say so in its docs.
    /// Listeners may be called on any thread, also after the write call
    /// returned.
    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64>;

    /// Stops the listener registered under `registration`.
    fn unregister_model_change_cb(&self, registration: u64) -> Result<()>;

    /// Handles events the host received for this backend's subscription.
    fn process_events(&self, events: RVec<Event>) -> Result<()>;

    /// Flushes and releases resources. Later calls may fail.
    ///
    /// Not every host calls it: the Python package does when the server
    /// closes the backend, the CLI drops most backends without it, and a
    /// process that is killed calls nothing. So nothing a write call
    /// acknowledged may wait for `close`, and dropping the last reference
    /// to the backend must release what it holds.
    fn close(&self) -> Result<()>;
}

/// [`Backend`] as a C-compatible struct of function pointers.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_Backend {
    get_models: unsafe extern "C" fn(&Self) -> RResult<RVec<Model>, BackendError>,
    list_models: unsafe extern "C" fn(&Self) -> RResult<RVec<ModelInfo>, BackendError>,
    read_models: unsafe extern "C" fn(&Self, FFI_ModelSink<'_>) -> RResult<(), BackendError>,
    get_model: unsafe extern "C" fn(&Self, InstanceId) -> RResult<Model, BackendError>,
    create_model: unsafe extern "C" fn(&Self, RString, RVec<u8>) -> RResult<Model, BackendError>,
    update_model: unsafe extern "C" fn(&Self, Model) -> RResult<Model, BackendError>,
    import_model: unsafe extern "C" fn(&Self, Model) -> RResult<Model, BackendError>,
    register_model_change_cb:
        unsafe extern "C" fn(&Self, FFI_ModelChangeListener) -> RResult<u64, BackendError>,
    unregister_model_change_cb: unsafe extern "C" fn(&Self, u64) -> RResult<(), BackendError>,
    process_events: unsafe extern "C" fn(&Self, RVec<Event>) -> RResult<(), BackendError>,
    close: unsafe extern "C" fn(&Self) -> RResult<(), BackendError>,
    release: unsafe extern "C" fn(&mut Self),
    private_data: *mut c_void,
}

// SAFETY: `private_data` is an `Arc<dyn Backend>`, and `Backend: Send + Sync`.
unsafe impl Send for FFI_Backend {}
// SAFETY: as above; every function takes `&Self` and the backend is `Sync`.
unsafe impl Sync for FFI_Backend {}

struct BackendPrivateData {
    backend: Arc<dyn Backend>,
}

unsafe fn backend_of(ffi: &FFI_Backend) -> &dyn Backend {
    // SAFETY: `private_data` was made by `FFI_Backend::new` from a boxed
    // `BackendPrivateData` and stays valid until `release`.
    let data = unsafe { &*(ffi.private_data as *const BackendPrivateData) };
    data.backend.as_ref()
}

unsafe extern "C" fn get_models_fn_wrapper(
    ffi: &FFI_Backend,
) -> RResult<RVec<Model>, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("get_models", || backend.get_models())
}

unsafe extern "C" fn read_models_fn_wrapper(
    ffi: &FFI_Backend,
    mut sink: FFI_ModelSink<'_>,
) -> RResult<(), BackendError> {
    // SAFETY: as in `get_models_fn_wrapper`.
    let backend = unsafe { backend_of(ffi) };
    guard("read_models", || backend.read_models(&mut sink))
}

unsafe extern "C" fn list_models_fn_wrapper(
    ffi: &FFI_Backend,
) -> RResult<RVec<ModelInfo>, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("list_models", || backend.list_models())
}

unsafe extern "C" fn get_model_fn_wrapper(
    ffi: &FFI_Backend,
    instance_id: InstanceId,
) -> RResult<Model, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("get_model", || backend.get_model(instance_id))
}

unsafe extern "C" fn create_model_fn_wrapper(
    ffi: &FFI_Backend,
    model_type: RString,
    instance: RVec<u8>,
) -> RResult<Model, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("create_model", || {
        backend.create_model(model_type, instance)
    })
}

unsafe extern "C" fn update_model_fn_wrapper(
    ffi: &FFI_Backend,
    model: Model,
) -> RResult<Model, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("update_model", || backend.update_model(model))
}

unsafe extern "C" fn import_model_fn_wrapper(
    ffi: &FFI_Backend,
    model: Model,
) -> RResult<Model, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("import_model", || backend.import_model(model))
}

unsafe extern "C" fn register_model_change_cb_fn_wrapper(
    ffi: &FFI_Backend,
    listener: FFI_ModelChangeListener,
) -> RResult<u64, BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    let listener: Arc<dyn ModelChangeListener> = Arc::new(listener.into_foreign());
    guard("register_model_change_cb", || {
        backend.register_model_change_cb(listener)
    })
}

unsafe extern "C" fn unregister_model_change_cb_fn_wrapper(
    ffi: &FFI_Backend,
    registration: u64,
) -> RResult<(), BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("unregister_model_change_cb", || {
        backend.unregister_model_change_cb(registration)
    })
}

unsafe extern "C" fn process_events_fn_wrapper(
    ffi: &FFI_Backend,
    events: RVec<Event>,
) -> RResult<(), BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("process_events", || backend.process_events(events))
}

unsafe extern "C" fn close_fn_wrapper(ffi: &FFI_Backend) -> RResult<(), BackendError> {
    // SAFETY: called through an `FFI_Backend` made by `new`.
    let backend = unsafe { backend_of(ffi) };
    guard("close", || backend.close())
}

unsafe extern "C" fn release_fn_wrapper(ffi: &mut FFI_Backend) {
    if ffi.private_data.is_null() {
        return;
    }
    // SAFETY: `private_data` came from `Box::into_raw` in `new` and is nulled
    // here, so it is reclaimed exactly once.
    let data = unsafe { Box::from_raw(ffi.private_data as *mut BackendPrivateData) };
    ffi.private_data = std::ptr::null_mut();
    crate::panic_guard::guard_unit("drop backend", move || drop(data));
}

impl FFI_Backend {
    /// Wraps `backend` for the boundary (the provider side).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        let private_data = Box::into_raw(Box::new(BackendPrivateData { backend })) as *mut c_void;
        FFI_Backend {
            get_models: get_models_fn_wrapper,
            list_models: list_models_fn_wrapper,
            read_models: read_models_fn_wrapper,
            get_model: get_model_fn_wrapper,
            create_model: create_model_fn_wrapper,
            update_model: update_model_fn_wrapper,
            import_model: import_model_fn_wrapper,
            register_model_change_cb: register_model_change_cb_fn_wrapper,
            unregister_model_change_cb: unregister_model_change_cb_fn_wrapper,
            process_events: process_events_fn_wrapper,
            close: close_fn_wrapper,
            release: release_fn_wrapper,
            private_data,
        }
    }

    /// Wraps the struct received from the other side as a native [`Backend`]
    /// (the receiver side).
    pub fn into_foreign(self) -> ForeignBackend {
        ForeignBackend(self)
    }
}

impl Drop for FFI_Backend {
    fn drop(&mut self) {
        // SAFETY: `release` belongs to the side that made this struct and
        // frees `private_data` exactly once.
        unsafe { (self.release)(self) }
    }
}

/// A [`Backend`] received across the boundary.
pub struct ForeignBackend(FFI_Backend);

impl Backend for ForeignBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        // SAFETY: the function pointers and `private_data` come from the same
        // `FFI_Backend::new` call on the provider side.
        unsafe { (self.0.get_models)(&self.0) }.into()
    }

    fn read_models(&self, sink: &mut dyn ModelSink) -> Result<()> {
        let mut sink = sink;
        let sink = FFI_ModelSink::new(&mut sink);
        // SAFETY: as in `get_models`; `sink` borrows the host's sink for
        // the call.
        unsafe { (self.0.read_models)(&self.0, sink) }.into()
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.list_models)(&self.0) }.into()
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.get_model)(&self.0, instance_id) }.into()
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.create_model)(&self.0, model_type, instance) }.into()
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.update_model)(&self.0, model) }.into()
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.import_model)(&self.0, model) }.into()
    }

    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        let listener = FFI_ModelChangeListener::new(listener);
        // SAFETY: as in `get_models`.
        unsafe { (self.0.register_model_change_cb)(&self.0, listener) }.into()
    }

    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.unregister_model_change_cb)(&self.0, registration) }.into()
    }

    fn process_events(&self, events: RVec<Event>) -> Result<()> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.process_events)(&self.0, events) }.into()
    }

    fn close(&self) -> Result<()> {
        // SAFETY: as in `get_models`.
        unsafe { (self.0.close)(&self.0) }.into()
    }
}
