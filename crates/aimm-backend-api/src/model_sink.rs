//! The [`ModelSink`] interface: the host lends the plugin memory to read
//! models into (see [`Backend::read_models`](crate::Backend::read_models)).
//!
//! Reading a model through [`Backend::get_models`](crate::Backend::get_models)
//! costs two copies into fresh memory: the plugin's buffer, then whatever
//! object the host keeps (a Python `bytes`, say). With a sink, the host
//! allocates that object first and the plugin writes the model's bytes
//! straight into it: one copy.
//!
//! Two structs cross, one each way: [`FFI_ModelSink`] (made by the host,
//! called by the plugin: here is a model of this size) and [`FFI_ModelFill`]
//! (made by the plugin for one model, called by the host with the buffer to
//! fill). Both borrow a closure or sink for one call and are neither `Send`
//! nor `Sync`: everything happens on the thread of the `read_models` call.

use crate::panic_guard::guard;
use crate::{BackendError, ModelInfo, Result};
use abi_stable::std_types::RResult;
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::marker::PhantomData;

/// Writes one model's bytes into the buffer it is given, which has exactly
/// the model's size; every byte must be written.
pub type Fill<'f> = dyn FnMut(&mut [u8]) -> Result<()> + 'f;

/// Where [`Backend::read_models`](crate::Backend::read_models) puts models:
/// implemented by the host.
pub trait ModelSink {
    /// Takes the model `info` describes: provides a buffer of exactly
    /// `info.size` bytes, calls `fill` with it once, and keeps the result.
    /// An error from `fill` is returned as it is.
    fn accept(&mut self, info: ModelInfo, fill: &mut Fill<'_>) -> Result<()>;
}

impl<S: ModelSink + ?Sized> ModelSink for &mut S {
    fn accept(&mut self, info: ModelInfo, fill: &mut Fill<'_>) -> Result<()> {
        (**self).accept(info, fill)
    }
}

/// A [`ModelSink`] borrowed for one call, as a C-compatible struct (made by
/// the host, called by the plugin). It is itself a [`ModelSink`].
///
/// A panic in the host's sink is caught where it runs and returned as an
/// [`ErrorKind::Panic`](crate::ErrorKind::Panic) error.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_ModelSink<'a> {
    accept: unsafe extern "C" fn(
        *mut c_void,
        ModelInfo,
        FFI_ModelFill<'_>,
    ) -> RResult<(), BackendError>,
    /// The `S` of [`FFI_ModelSink::new`], borrowed mutably for `'a`.
    sink: *mut c_void,
    borrow: PhantomData<&'a mut ()>,
}

unsafe extern "C" fn accept_fn_wrapper<S: ModelSink>(
    sink: *mut c_void,
    info: ModelInfo,
    mut fill: FFI_ModelFill<'_>,
) -> RResult<(), BackendError> {
    // SAFETY: `sink` is the `&'a mut S` given to `new`, which made this
    // function for that very `S`; `accept` takes the struct mutably, so no
    // other reference to `S` is in use.
    let sink = unsafe { &mut *(sink as *mut S) };
    guard("ModelSink::accept", || {
        sink.accept(info, &mut |buffer: &mut [u8]| fill.fill(buffer))
    })
}

impl<'a> FFI_ModelSink<'a> {
    /// Wraps `sink` for the boundary (the provider side: the host).
    pub fn new<S: ModelSink>(sink: &'a mut S) -> Self {
        FFI_ModelSink {
            accept: accept_fn_wrapper::<S>,
            sink: sink as *mut S as *mut c_void,
            borrow: PhantomData,
        }
    }
}

impl ModelSink for FFI_ModelSink<'_> {
    fn accept(&mut self, info: ModelInfo, mut fill: &mut Fill<'_>) -> Result<()> {
        let fill = FFI_ModelFill::new(&mut fill);
        // SAFETY: `accept` and `sink` come from one `new`, whose borrow of
        // the sink lasts as long as `self`.
        unsafe { (self.accept)(self.sink, info, fill) }.into()
    }
}

/// A borrowed [`Fill`] closure as a C-compatible struct (made by the plugin
/// for one model, called by the host).
///
/// A panic in the closure is caught where it runs and returned as an
/// [`ErrorKind::Panic`](crate::ErrorKind::Panic) error.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_ModelFill<'a> {
    fill: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> RResult<(), BackendError>,
    /// The `&mut Fill` of [`FFI_ModelFill::new`], borrowed for `'a`.
    closure: *mut c_void,
    borrow: PhantomData<&'a mut ()>,
}

unsafe extern "C" fn fill_fn_wrapper(
    closure: *mut c_void,
    buffer: *mut u8,
    len: usize,
) -> RResult<(), BackendError> {
    // SAFETY: `closure` is the `&'a mut &mut Fill` given to `new`, borrowed
    // for as long as the struct, which `fill` takes mutably.
    let fill = unsafe { &mut *(closure as *mut &mut Fill<'_>) };
    // SAFETY: `FFI_ModelFill::fill` passes the pointer and length of one
    // `&mut [u8]` it holds for the duration of this call.
    let buffer = unsafe { slice_from_raw(buffer, len) };
    guard("ModelSink::accept fill", || fill(buffer))
}

/// The slice `buffer` and `len` describe (a dangling pointer for an empty
/// one is fine: it is never read).
///
/// # Safety
///
/// For `len > 0`, `buffer` points to `len` bytes this thread may write, and
/// nothing else uses them while the slice lives.
unsafe fn slice_from_raw<'b>(buffer: *mut u8, len: usize) -> &'b mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts_mut(buffer, len) }
}

impl<'a> FFI_ModelFill<'a> {
    /// Wraps `fill` for the boundary (the provider side: the plugin).
    pub fn new(fill: &'a mut &mut Fill<'_>) -> Self {
        FFI_ModelFill {
            fill: fill_fn_wrapper,
            closure: fill as *mut &mut Fill<'_> as *mut c_void,
            borrow: PhantomData,
        }
    }

    /// Has the plugin's closure write the model into `buffer` (the receiver
    /// side: the host).
    pub fn fill(&mut self, buffer: &mut [u8]) -> Result<()> {
        // SAFETY: `fill` and `closure` come from one `new`, whose borrow
        // lasts as long as `self`; `buffer` is borrowed mutably for the call.
        unsafe { (self.fill)(self.closure, buffer.as_mut_ptr(), buffer.len()) }.into()
    }
}
