//! The tokio runtime that carries the event server connections backends
//! open for themselves (a backend section with `eventer_server`).
//!
//! One per process, started by the first such backend and kept until the
//! process ends: the Python AIMM server rebuilds its backend (a monitor
//! fail-over, a restart of its runner) without our runtime restarting, and
//! a connection's tasks never outlive their client by more than its close.

use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// Worker threads: the connections only move bytes and decode; encoding
/// and waiting happen on the calling threads.
const WORKERS: usize = 2;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process's runtime, started on first use.
pub fn shared() -> std::io::Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("aimm_backend_io")
        .enable_all()
        .build()?;
    // Two first uses at once build two; the loser is dropped unused.
    Ok(RUNTIME.get_or_init(|| runtime))
}
