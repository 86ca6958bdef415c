//! The conformance suite: one set of behaviour checks every AIMM backend
//! must pass, whoever wrote it.
//!
//! A backend under test is a [`Target`]: something that can open the backend
//! on one store, again and again. [`InProcessTarget`] does that for a
//! plugin's `BackendPlugin`, in the test's own process: what a plugin's own
//! `cargo test` uses, with nothing but this crate and the API crate as
//! dev-dependencies. `PluginTarget` (feature `loader`) loads a plugin library
//! as a host does, config validation included; `aimm-backend conformance`
//! uses it. [`run`] runs every [check](checks) and returns a [`Report`]
//! naming each one and whether it passed; [`checks`] lists them, each with
//! what it requires (`aimm-backend conformance --list` prints that).
//!
//! In a plugin crate (`[dev-dependencies] aimm-backend-conformance`):
//!
//! ```no_run
//! # use aimm_backend_api::{Backend, BackendPlugin, Host, Result};
//! # use std::sync::Arc;
//! # struct MyPlugin;
//! # impl BackendPlugin for MyPlugin {
//! #     const NAME: &'static str = "my";
//! #     const CONF_SCHEMA: &'static str = "type: object";
//! #     fn create_backend(_: &serde_json::Value, _: Host) -> Result<Arc<dyn Backend>> { todo!() }
//! # }
//! use aimm_backend_conformance::{run, InProcessTarget};
//!
//! #[test]
//! fn my_backend_passes_conformance() {
//!     let target = InProcessTarget::<MyPlugin>::scratch(serde_json::json!({"module": "my"})).unwrap();
//!     let report = run(&target);
//!     assert!(report.all_passed(), "{report}");
//! }
//! ```
//!
//! What the suite assumes of a backend (each check's own requirement is in
//! [`checks`]):
//!
//! * **Data must survive reopening.** Checks open the backend several times
//!   on one store, at once and after `close()`, and read back what an earlier
//!   handle wrote.
//! * **One scratch store for all checks.** The checks run one after another
//!   on the same store and none assumes it starts empty: each looks only at
//!   models it made itself.
//! * **`scratch_conf` may assume** that the directory it is given exists and
//!   is empty, and that the host removes it (and everything below it) once
//!   the run is over; the store it describes must be fresh.

#![warn(missing_docs)]

mod checks;
mod in_process;
#[cfg(feature = "loader")]
mod plugin_target;
mod report;
mod target;

pub use checks::{checks, Check};
pub use in_process::InProcessTarget;
#[cfg(feature = "loader")]
pub use plugin_target::PluginTarget;
pub use report::{Outcome, Report};
pub use target::Target;

use std::time::Instant;

/// Runs every check against `target`.
pub fn run(target: &dyn Target) -> Report {
    run_matching(target, |_| true)
}

/// Runs the checks whose names `filter` accepts.
pub fn run_matching(target: &dyn Target, filter: impl Fn(&str) -> bool) -> Report {
    let outcomes = checks()
        .into_iter()
        .filter(|check| filter(check.name))
        .map(|check| {
            let started = Instant::now();
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (check.run)(target)))
                    .unwrap_or_else(|_| Err("the check panicked".to_string()));
            Outcome {
                name: check.name,
                result,
                duration: started.elapsed(),
            }
        })
        .collect();
    Report::new(outcomes)
}
