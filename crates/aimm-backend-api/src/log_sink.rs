//! Plugin log lines, delivered into the host's log.
//!
//! Each plugin library has its own copy of the `log` crate's global logger, so
//! the host's logger is not visible inside it. The export macro installs a
//! [`SinkLogger`] in the plugin's copy that forwards every record through an
//! [`FFI_LogSink`] the host provides; plugin authors just use `log::info!`.

use crate::panic_guard::guard_unit;
use abi_stable::std_types::RStr;
use abi_stable::StableAbi;
use std::ffi::c_void;
use std::sync::Arc;

/// Severity of a log line.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but work goes on.
    Warn,
    /// Normal operation worth noting.
    Info,
    /// Detail for debugging.
    Debug,
    /// Even more detail.
    Trace,
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// Where plugin log lines go (implemented by the host).
pub trait LogSink: Send + Sync + 'static {
    /// Records one line. `target` is the module path inside the plugin.
    fn log(&self, level: LogLevel, target: &str, message: &str);
}

/// [`LogSink`] as a C-compatible struct.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_LogSink {
    log: unsafe extern "C" fn(&Self, LogLevel, RStr<'_>, RStr<'_>),
    release: unsafe extern "C" fn(&mut Self),
    private_data: *mut c_void,
}

// SAFETY: `private_data` is an `Arc<dyn LogSink>`, which is `Send + Sync`.
unsafe impl Send for FFI_LogSink {}
// SAFETY: as above.
unsafe impl Sync for FFI_LogSink {}

struct SinkPrivateData {
    sink: Arc<dyn LogSink>,
}

unsafe extern "C" fn log_fn_wrapper(
    ffi: &FFI_LogSink,
    level: LogLevel,
    target: RStr<'_>,
    message: RStr<'_>,
) {
    // SAFETY: `private_data` was made by `new` and lives until `release`.
    let data = unsafe { &*(ffi.private_data as *const SinkPrivateData) };
    guard_unit("log sink", || {
        data.sink.log(level, target.as_str(), message.as_str())
    });
}

unsafe extern "C" fn release_fn_wrapper(ffi: &mut FFI_LogSink) {
    if ffi.private_data.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `new`; nulled here so freed once.
    let data = unsafe { Box::from_raw(ffi.private_data as *mut SinkPrivateData) };
    ffi.private_data = std::ptr::null_mut();
    guard_unit("drop log sink", move || drop(data));
}

impl FFI_LogSink {
    /// Wraps `sink` for the boundary (the provider side: the host).
    pub fn new(sink: Arc<dyn LogSink>) -> Self {
        let private_data = Box::into_raw(Box::new(SinkPrivateData { sink })) as *mut c_void;
        FFI_LogSink {
            log: log_fn_wrapper,
            release: release_fn_wrapper,
            private_data,
        }
    }

    /// Wraps the received struct as a native sink (the receiver side: the plugin).
    pub fn into_foreign(self) -> ForeignLogSink {
        ForeignLogSink(self)
    }
}

impl Drop for FFI_LogSink {
    fn drop(&mut self) {
        // SAFETY: `release` belongs to the side that made this struct.
        unsafe { (self.release)(self) }
    }
}

/// A [`LogSink`] received across the boundary.
pub struct ForeignLogSink(FFI_LogSink);

impl LogSink for ForeignLogSink {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        // SAFETY: the pointer and data come from one `FFI_LogSink::new`.
        unsafe { (self.0.log)(&self.0, level, target.into(), message.into()) }
    }
}

/// A `log::Log` that forwards to a [`LogSink`]; installed in each plugin's
/// copy of `log` by [`export_backend!`](crate::export_backend).
pub struct SinkLogger {
    sink: Arc<dyn LogSink>,
}

impl SinkLogger {
    /// A logger writing to `sink`.
    pub fn new(sink: Arc<dyn LogSink>) -> Self {
        SinkLogger { sink }
    }

    /// Installs a logger for `sink` as this library's `log` logger, unless
    /// one is installed already (the first host sink wins; there is one host).
    pub fn install(sink: Arc<dyn LogSink>) {
        if log::set_boxed_logger(Box::new(SinkLogger::new(sink))).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    }
}

impl log::Log for SinkLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        self.sink
            .log(record.level().into(), record.target(), &message);
    }

    fn flush(&self) {}
}
