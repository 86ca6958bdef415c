//! Keeps panics from unwinding across `extern "C"` functions.

use crate::{BackendError, ErrorKind};
use abi_stable::std_types::RResult;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into an [`ErrorKind::Panic`] error that names `operation`.
pub(crate) fn guard<T>(
    operation: &str,
    f: impl FnOnce() -> Result<T, BackendError>,
) -> RResult<T, BackendError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(panic_error(operation, payload)),
    }
}

/// Runs `f` for its effect only; a panic is reported to stderr and swallowed,
/// because the caller (a callback or log call) has nowhere to return it.
pub(crate) fn guard_unit(operation: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
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
