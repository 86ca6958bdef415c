//! Keeps panics from unwinding across `extern "C"` functions.

use crate::{BackendError, ErrorKind};
use abi_stable::std_types::RResult;
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// How many guarded calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Whether a panic on this thread now would be caught at the boundary and
/// reported to the host as an error (the panic hook then need not say it
/// again).
pub(crate) fn is_guarded() -> bool {
    GUARDED.with(Cell::get) > 0
}

/// Runs `f` counted as a guarded call.
fn guarded<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    GUARDED.with(|depth| depth.set(depth.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|depth| depth.set(depth.get() - 1));
    result
}

/// Runs `f`, turning a panic into an [`ErrorKind::Panic`] error that names `operation`.
pub(crate) fn guard<T>(
    operation: &str,
    f: impl FnOnce() -> Result<T, BackendError>,
) -> RResult<T, BackendError> {
    match guarded(f) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(panic_error(operation, payload)),
    }
}

/// Runs `f` for its effect only; a panic is reported to stderr and swallowed,
/// because the caller (a callback or log call) has nowhere to return it.
pub(crate) fn guard_unit(operation: &str, f: impl FnOnce()) {
    if let Err(payload) = guarded(f) {
        eprintln!("{}", panic_error(operation, payload));
    }
}

fn panic_error(operation: &str, payload: Box<dyn Any + Send>) -> BackendError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    BackendError::new(
        ErrorKind::Panic,
        format!("panic in `{operation}` caught at the plugin boundary: {message}"),
    )
}
