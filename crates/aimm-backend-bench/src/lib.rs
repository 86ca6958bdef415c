//! Support shared by the benchmark programs of this crate
//! (`aimm-backend-bench`, `event-bench`, `sbs-bench`): statistics and
//! report formatting, children that report in JSON (the stock Python
//! benchmark among them), and facts about this machine and process. The way to
//! the Python reference venv, the Hat event server starter and the payload
//! generators are in `aimm-backend-test-support`, shared with the tests.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod report;
pub mod stats;
pub mod sysinfo;
