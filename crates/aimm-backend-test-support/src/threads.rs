//! Running a blocking call on a thread of its own, with a deadline.

use std::time::Duration;

/// How long [`within`] waits: far more than any call it guards should take.
pub const THREAD_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and returns its result, failing the test if
/// it has not finished within [`THREAD_DEADLINE`] (a lost reply would hang
/// its caller for good). A panic in `f` is the caller's panic.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    within_for(what, THREAD_DEADLINE, f)
}

/// [`within`] with a deadline of its own: `deadline` is what the test
/// promises (a call that must fail at once gets a short one). The thread
/// of a call that misses it is left behind.
pub fn within_for<T: Send + 'static>(
    what: &str,
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = done.send(outcome);
    });
    match result.recv_timeout(deadline) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not return within {deadline:?}"),
    }
}
