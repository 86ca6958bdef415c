//! Running a blocking call on a thread of its own, with a deadline.

use std::time::Duration;

/// How long [`within`] waits: far more than any call it guards should take.
pub const THREAD_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and returns its result, failing the test if
/// it has not finished within [`THREAD_DEADLINE`] (a lost reply would hang
/// its caller for good). A panic in `f` is the caller's panic.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = done.send(outcome);
    });
    match result.recv_timeout(THREAD_DEADLINE) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not return within {THREAD_DEADLINE:?}"),
    }
}
