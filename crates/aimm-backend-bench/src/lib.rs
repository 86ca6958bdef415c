//! Support shared by the benchmark programs of this crate
//! (`aimm-backend-bench`, `event-bench`, `sbs-bench`): statistics and
//! report formatting, facts about this machine and process, and the way to
//! the Python reference venv.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod stats;
pub mod sysinfo;
pub mod venv;
