//! Model change notifications: the host hands the plugin a listener.

use crate::panic_guard::guard_unit;
use crate::Model;
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::sync::Arc;

/// Receives every model a backend reports as created or changed.
///
/// Closures `Fn(&Model) + Send + Sync` are listeners:
///
/// ```
/// use aimm_backend_api::{Model, ModelChangeListener};
///
/// let listener = |model: &Model| println!("changed: {}", model.instance_id);
/// listener.on_model_change(&Model::new(1, "t", vec![]));
/// ```
pub trait ModelChangeListener: Send + Sync + 'static {
    /// Called after the change is stored. Must not block for long: it runs on
    /// the thread that made the change.
    fn on_model_change(&self, model: &Model);
}

impl<F> ModelChangeListener for F
where
    F: Fn(&Model) + Send + Sync + 'static,
{
    fn on_model_change(&self, model: &Model) {
        self(model)
    }
}

/// [`ModelChangeListener`] as a C-compatible struct.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_ModelChangeListener {
    on_model_change: unsafe extern "C" fn(&Self, &Model),
    release: unsafe extern "C" fn(&mut Self),
    private_data: *mut c_void,
}

// SAFETY: `private_data` is an `Arc<dyn ModelChangeListener>`, which is `Send + Sync`.
unsafe impl Send for FFI_ModelChangeListener {}
// SAFETY: as above.
unsafe impl Sync for FFI_ModelChangeListener {}

struct ListenerPrivateData {
    listener: Arc<dyn ModelChangeListener>,
}

unsafe extern "C" fn on_model_change_fn_wrapper(ffi: &FFI_ModelChangeListener, model: &Model) {
    // SAFETY: `private_data` was made by `new` and lives until `release`.
    let data = unsafe { &*(ffi.private_data as *const ListenerPrivateData) };
    guard_unit("model change listener", || {
        data.listener.on_model_change(model)
    });
}

unsafe extern "C" fn release_fn_wrapper(ffi: &mut FFI_ModelChangeListener) {
    if ffi.private_data.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `new`; nulled here so freed once.
    let data = unsafe { Box::from_raw(ffi.private_data as *mut ListenerPrivateData) };
    ffi.private_data = std::ptr::null_mut();
    guard_unit("drop model change listener", move || drop(data));
}

impl FFI_ModelChangeListener {
    /// Wraps `listener` for the boundary (the provider side).
    pub fn new(listener: Arc<dyn ModelChangeListener>) -> Self {
        let private_data = Box::into_raw(Box::new(ListenerPrivateData { listener })) as *mut c_void;
        FFI_ModelChangeListener {
            on_model_change: on_model_change_fn_wrapper,
            release: release_fn_wrapper,
            private_data,
        }
    }

    /// Wraps the received struct as a native listener (the receiver side).
    pub fn into_foreign(self) -> ForeignModelChangeListener {
        ForeignModelChangeListener(self)
    }
}

impl Drop for FFI_ModelChangeListener {
    fn drop(&mut self) {
        // SAFETY: `release` belongs to the side that made this struct.
        unsafe { (self.release)(self) }
    }
}

/// A [`ModelChangeListener`] received across the boundary.
pub struct ForeignModelChangeListener(FFI_ModelChangeListener);

impl ModelChangeListener for ForeignModelChangeListener {
    fn on_model_change(&self, model: &Model) {
        // SAFETY: the pointer and data come from one `FFI_ModelChangeListener::new`.
        unsafe { (self.0.on_model_change)(&self.0, model) }
    }
}
