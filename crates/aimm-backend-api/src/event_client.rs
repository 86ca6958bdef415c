//! The host's Hat event client, lent to plugins that store models as events.

use crate::event_visitor::FFI_EventVisitor;
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
    ///
    /// For [`RegisterMode::Registered`] events that all carry a payload, a
    /// host may also return `None`: the events are registered, but the host
    /// knows it without their echo, so it cannot tell how the server
    /// numbered them (their notifications, where the plugin subscribed to
    /// them, carry that). Events without payloads (claims, markers) are
    /// always returned.
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>>;

    /// The newest event of every event type matching one of `event_types`.
    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>>;

    /// Calls `each` with the events [`EventClient::query_latest`] would
    /// return, in the same order, one at a time, as the host decodes them.
    ///
    /// Each event is `each`'s to keep or drop, and a host that decodes as it
    /// reads hands out the next one only after `each` has returned: a caller
    /// that keeps little of each event (its size, say, or the model decoded
    /// from it) never holds them all at once, where `query_latest` would
    /// hold every event of the answer, payloads included.
    ///
    /// The first error `each` returns stops the call: `each` is not called
    /// again, and the call returns that error; the host may stop decoding
    /// (and reading) the rest of the answer then. An error of the query
    /// itself is returned as `query_latest` would return it, possibly after
    /// `each` was handed some of the events. `each` runs on the calling
    /// thread, during the call, never after it returns.
    ///
    /// The default implementation calls `query_latest`, then hands out its
    /// events in order, so it holds them all; a host that can do better
    /// overrides it.
    ///
    /// ```
    /// use aimm_backend_api::{event_type, Event, EventClient, EventType};
    /// use aimm_backend_api::{BackendError, RegisterEvent, RegisterMode, Result, ROption, RVec};
    ///
    /// /// How many events under `prefix` have a payload, holding one at a time.
    /// fn payload_count(client: &dyn EventClient, prefix: &str) -> Result<usize> {
    ///     let mut count = 0;
    ///     client.query_latest_each(vec![event_type([prefix, "*"])].into(), &mut |event| {
    ///         count += event.payload.is_some() as usize;
    ///         Ok(())
    ///     })?;
    ///     Ok(count)
    /// }
    /// # struct NoEvents;
    /// # impl EventClient for NoEvents {
    /// #     fn register(&self, _: RVec<RegisterEvent>, _: RegisterMode)
    /// #         -> Result<ROption<RVec<ROption<Event>>>> {
    /// #         Err(BackendError::unsupported("read only"))
    /// #     }
    /// #     fn query_latest(&self, _: RVec<EventType>) -> Result<RVec<Event>> {
    /// #         Ok(RVec::new())
    /// #     }
    /// # }
    /// # assert_eq!(payload_count(&NoEvents, "aimm").unwrap(), 0);
    /// ```
    fn query_latest_each(
        &self,
        event_types: RVec<EventType>,
        each: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        self.query_latest(event_types)?
            .into_iter()
            .try_for_each(each)
    }
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
    query_latest_each: unsafe extern "C" fn(
        &Self,
        RVec<EventType>,
        FFI_EventVisitor<'_>,
    ) -> RResult<(), BackendError>,
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

unsafe extern "C" fn query_latest_each_fn_wrapper(
    ffi: &FFI_EventClient,
    event_types: RVec<EventType>,
    mut visitor: FFI_EventVisitor<'_>,
) -> RResult<(), BackendError> {
    // SAFETY: called through an `FFI_EventClient` made by `new`.
    let client = unsafe { client_of(ffi) };
    guard("EventClient::query_latest_each", || {
        // The plugin's closure is called no more once it has failed (it may
        // have panicked half way), and its error is the call's, whatever
        // the client makes of it.
        let mut stopped: Option<BackendError> = None;
        let result = client.query_latest_each(event_types, &mut |event| {
            if let Some(err) = &stopped {
                return Err(err.clone());
            }
            visitor
                .visit(event)
                .inspect_err(|err| stopped = Some(err.clone()))
        });
        match stopped {
            Some(err) => Err(err),
            None => result,
        }
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
            query_latest_each: query_latest_each_fn_wrapper,
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

    fn query_latest_each(
        &self,
        event_types: RVec<EventType>,
        mut each: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        let visitor = FFI_EventVisitor::new(&mut each);
        // SAFETY: as in `register`; `visitor` borrows `each` for the call.
        unsafe { (self.0.query_latest_each)(&self.0, event_types, visitor) }.into()
    }
}
