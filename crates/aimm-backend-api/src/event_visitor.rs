//! A closure the plugin lends the host for one call, to be handed events one
//! at a time (see [`EventClient::query_latest_each`](crate::EventClient::query_latest_each)).

use crate::panic_guard::guard;
use crate::{BackendError, Event, Result};
use abi_stable::std_types::RResult;
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::marker::PhantomData;

/// A borrowed `FnMut(Event) -> Result<()>` as a C-compatible struct.
///
/// Made by the side that receives the events (the plugin, in
/// [`ForeignEventClient`](crate::ForeignEventClient)), called by the side
/// that hands them out (the host). It borrows the closure for `'a`, so it
/// cannot outlive the call it was made for; it is neither `Send` nor `Sync`,
/// so the host calls it on the thread that made the call.
///
/// A panic in the closure is caught where it runs and returned as an
/// [`ErrorKind::Panic`](crate::ErrorKind::Panic) error.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_EventVisitor<'a> {
    visit: unsafe extern "C" fn(*mut c_void, Event) -> RResult<(), BackendError>,
    /// The `F` of [`FFI_EventVisitor::new`], borrowed mutably for `'a`.
    closure: *mut c_void,
    borrow: PhantomData<&'a mut ()>,
}

unsafe extern "C" fn visit_fn_wrapper<F>(
    closure: *mut c_void,
    event: Event,
) -> RResult<(), BackendError>
where
    F: FnMut(Event) -> Result<()>,
{
    // SAFETY: `closure` is the `&'a mut F` given to `new`, which made this
    // function for that very `F`; the visitor borrows it for `'a`, and
    // `visit` takes the visitor mutably, so no other reference is in use.
    let each = unsafe { &mut *(closure as *mut F) };
    guard("EventClient::query_latest_each callback", || each(event))
}

impl<'a> FFI_EventVisitor<'a> {
    /// Wraps `each` for the boundary (the provider side: the plugin). A
    /// `&mut dyn FnMut(Event) -> Result<()>` is such an `F`, through
    /// `&mut` of it.
    pub fn new<F>(each: &'a mut F) -> Self
    where
        F: FnMut(Event) -> Result<()>,
    {
        FFI_EventVisitor {
            visit: visit_fn_wrapper::<F>,
            closure: each as *mut F as *mut c_void,
            borrow: PhantomData,
        }
    }

    /// Calls the closure with `event` (the receiver side: the host), and
    /// returns what it returned, or an [`ErrorKind::Panic`](crate::ErrorKind::Panic)
    /// error if it panicked.
    pub fn visit(&mut self, event: Event) -> Result<()> {
        // SAFETY: `visit` and `closure` come from one `new`, whose borrow
        // of the closure lasts as long as `self`.
        unsafe { (self.visit)(self.closure, event) }.into()
    }
}
