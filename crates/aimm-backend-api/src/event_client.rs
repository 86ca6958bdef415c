//! The host's Hat event client, lent to plugins that store models as events.

use crate::panic_guard::guard;
use crate::{BackendError, Event, EventType, RegisterEvent, Result};
use abi_stable::std_types::{ROption, RResult, RVec};
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::sync::Arc;

/// What a plugin may ask of the host's connection to a Hat event server.
///
/// The host owns the connection: it connects, reconnects with backoff, and
/// fails calls quickly with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)
/// while the server cannot be reached.
pub trait EventClient: Send + Sync + 'static {
    /// Registers `events` and returns once `mode` is reached: at once for
    /// [`RegisterMode::Sent`] (returning `None`), otherwise with the
    /// registered events in order, as the server numbered them (`None` in a
    /// slot the server refused). A host may leave out their payloads: the
    /// caller has them, and a large one would cost its size again.
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>>;

    /// The newest event of every event type matching one of `event_types`.
    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>>;
}

/// How far a registration must have gone before [`EventClient::register`]
/// returns.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterMode {
    /// The request is on its way; nothing is known of its fate.
    Sent,
    /// The server has accepted the events and numbered them. A Hat event
    /// server answers before it writes to disk, so a server killed now may
    /// lose them.
    Registered,
    /// The server has accepted the events and written them to its store.
    ///
    /// The host learns this from the server's notifications of persisted
    /// events, so each event must match one of the subscriptions the plugin
    /// declared (and be kept by the server's store); otherwise the call
    /// fails when the host's timeout runs out.
    Persisted,
}

type RegisterResult = RResult<ROption<RVec<ROption<Event>>>, BackendError>;

/// [`EventClient`] as a C-compatible struct.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_EventClient {
    register: unsafe extern "C" fn(&Self, RVec<RegisterEvent>, RegisterMode) -> RegisterResult,
    query_latest:
        unsafe extern "C" fn(&Self, RVec<EventType>) -> RResult<RVec<Event>, BackendError>,
    release: unsafe extern "C" fn(&mut Self),
    private_data: *mut c_void,
}

// SAFETY: `private_data` is an `Arc<dyn EventClient>`, which is `Send + Sync`.
unsafe impl Send for FFI_EventClient {}
// SAFETY: as above.
unsafe impl Sync for FFI_EventClient {}

struct ClientPrivateData {
    client: Arc<dyn EventClient>,
}

unsafe fn client_of(ffi: &FFI_EventClient) -> &dyn EventClient {
    // SAFETY: `private_data` was made by `new` and lives until `release`.
    let data = unsafe { &*(ffi.private_data as *const ClientPrivateData) };
    data.client.as_ref()
}

unsafe extern "C" fn register_fn_wrapper(
    ffi: &FFI_EventClient,
    events: RVec<RegisterEvent>,
    mode: RegisterMode,
) -> RegisterResult {
    // SAFETY: called through an `FFI_EventClient` made by `new`.
    let client = unsafe { client_of(ffi) };
    guard("EventClient::register", || client.register(events, mode))
}

unsafe extern "C" fn query_latest_fn_wrapper(
    ffi: &FFI_EventClient,
    event_types: RVec<EventType>,
) -> RResult<RVec<Event>, BackendError> {
    // SAFETY: called through an `FFI_EventClient` made by `new`.
    let client = unsafe { client_of(ffi) };
    guard("EventClient::query_latest", || {
        client.query_latest(event_types)
    })
}

unsafe extern "C" fn release_fn_wrapper(ffi: &mut FFI_EventClient) {
    if ffi.private_data.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `new`; nulled here so freed once.
    let data = unsafe { Box::from_raw(ffi.private_data as *mut ClientPrivateData) };
    ffi.private_data = std::ptr::null_mut();
    crate::panic_guard::guard_unit("drop event client", move || drop(data));
}

impl FFI_EventClient {
    /// Wraps `client` for the boundary (the provider side: the host).
    pub fn new(client: Arc<dyn EventClient>) -> Self {
        let private_data = Box::into_raw(Box::new(ClientPrivateData { client })) as *mut c_void;
        FFI_EventClient {
            register: register_fn_wrapper,
            query_latest: query_latest_fn_wrapper,
            release: release_fn_wrapper,
            private_data,
        }
    }

    /// Wraps the received struct as a native client (the receiver side: the plugin).
    pub fn into_foreign(self) -> ForeignEventClient {
        ForeignEventClient(self)
    }
}

impl Drop for FFI_EventClient {
    fn drop(&mut self) {
        // SAFETY: `release` belongs to the side that made this struct.
        unsafe { (self.release)(self) }
    }
}

/// An [`EventClient`] received across the boundary.
pub struct ForeignEventClient(FFI_EventClient);

impl EventClient for ForeignEventClient {
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        // SAFETY: the pointers and data come from one `FFI_EventClient::new`.
        unsafe { (self.0.register)(&self.0, events, mode) }.into()
    }

    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        // SAFETY: as in `register`.
        unsafe { (self.0.query_latest)(&self.0, event_types) }.into()
    }
}
