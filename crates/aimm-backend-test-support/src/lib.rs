//! Helpers that the cross-crate tests (`tests/`, package `aimm-backend-tests`)
//! and the benchmark programs (`aimm-backend-bench`) share, so that each
//! exists once:
//!
//! - [`root`]: where the workspace is;
//! - [`process`]: running a command with a deadline;
//! - [`venv`]: the Python reference venv's interpreter;
//! - [`hat`]: a real `hat-event-server` on loopback, alone or in a
//!   redundant group under a real `hat-monitor`;
//! - [`payload`]: deterministic model bytes;
//! - [`threads`]: a blocking call on a thread of its own, with a deadline.
//!
//! Helpers that the tests call come in panicking form (a failure fails the
//! test with a message); what the benchmarks call returns
//! [`anyhow::Result`]. The panicking forms are built on the others.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod hat;
pub mod payload;
pub mod postgres;
pub mod process;
pub mod root;
pub mod threads;
pub mod venv;

pub use hat::{HatMonitor, HatServer};
pub use postgres::PostgresServer;
pub use process::{
    describe, output_within, try_output_within, try_wait_within, wait_within, Paused,
    BUILD_DEADLINE, COMMAND_DEADLINE,
};
pub use root::workspace_root;
pub use threads::{within, within_for};
pub use venv::{python, venv_python};
