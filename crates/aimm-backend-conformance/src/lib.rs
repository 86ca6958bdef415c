//! The conformance suite: one set of behaviour checks every AIMM backend
//! must pass, whoever wrote it.
//!
//! A backend under test is a [`Target`]: something that can open the backend
//! on one store, again and again. [`PluginTarget`] does that for a plugin
//! library and a config, usually a scratch store made with
//! [`PluginTarget::scratch`]. [`run`] runs every [check](checks) and returns a
//! [`Report`] naming each one and whether it passed.
//!
//! ```no_run
//! use aimm_backend_conformance::{run, PluginTarget};
//! use aimm_backend_loader::{Opener, SearchPath, ServerConfig};
//!
//! let config = ServerConfig::from_yaml("module: target/release/libmy_backend.so", "<inline>").unwrap();
//! let prepared = Opener::new(SearchPath::new(&[])).prepare(&config).unwrap();
//! let target = PluginTarget::scratch(prepared).unwrap();
//! let report = run(&target);
//! print!("{report}");
//! assert!(report.all_passed());
//! ```
//!
//! The checks share the store, so none assumes it starts empty: each looks
//! only at models it made itself.

#![warn(missing_docs)]

mod checks;
mod report;
mod target;

pub use checks::{checks, Check};
pub use report::{Outcome, Report};
pub use target::{PluginTarget, Target};

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
