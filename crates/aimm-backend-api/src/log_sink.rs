//! Plugin log lines, delivered into the host's log.
//!
//! Each plugin library has its own copy of the `log` crate's global logger, so
//! the host's logger is not visible inside it. The export macro installs a
//! [`SinkLogger`] in the plugin's copy that forwards every record through an
//! [`FFI_LogSink`] the host provides; plugin authors just use `log::info!`.

use crate::panic_guard::guard_unit;
use abi_stable::std_types::{ROption, RStr};
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

    /// The most detailed level this sink keeps; `None` when it keeps
    /// nothing. A plugin reads it once, when it installs its logger, and
    /// formats no line more detailed than that: a dependency's debug lines
    /// can be costly to format (a database client's hold each statement's
    /// parameters, a model's bytes among them). Default: every level.
    fn max_level(&self) -> Option<LogLevel> {
        Some(LogLevel::Trace)
    }
}

/// [`LogSink`] as a C-compatible struct.
#[repr(C)]
#[derive(StableAbi)]
#[allow(non_camel_case_types)]
pub struct FFI_LogSink {
    log: unsafe extern "C" fn(&Self, LogLevel, RStr<'_>, RStr<'_>),
    max_level: unsafe extern "C" fn(&Self) -> ROption<LogLevel>,
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

unsafe extern "C" fn max_level_fn_wrapper(ffi: &FFI_LogSink) -> ROption<LogLevel> {
    // SAFETY: `private_data` was made by `new` and lives until `release`.
    let data = unsafe { &*(ffi.private_data as *const SinkPrivateData) };
    // A sink that panics here keeps everything, as one without the method.
    let mut level = Some(LogLevel::Trace);
    guard_unit("log sink max_level", || level = data.sink.max_level());
    level.into()
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
            max_level: max_level_fn_wrapper,
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

    fn max_level(&self) -> Option<LogLevel> {
        // SAFETY: as above.
        unsafe { (self.0.max_level)(&self.0) }.into()
    }
}

/// A `log::Log` that forwards to a [`LogSink`]; installed in each plugin's
/// copy of `log` by [`export_backend!`](crate::export_backend).
pub struct SinkLogger {
    sink: Arc<dyn LogSink>,
    max_level: log::LevelFilter,
}

impl SinkLogger {
    /// A logger writing to `sink`, up to the level the sink keeps.
    pub fn new(sink: Arc<dyn LogSink>) -> Self {
        let max_level = level_filter(sink.max_level());
        SinkLogger { sink, max_level }
    }

    /// Installs a logger for `sink` as this library's `log` logger, unless
    /// one is installed already (the first host sink wins; there is one
    /// host), and lets through only the levels the sink keeps: a line the
    /// host would drop is never formatted.
    pub fn install(sink: Arc<dyn LogSink>) {
        let logger = SinkLogger::new(sink);
        let max_level = logger.max_level;
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(max_level);
        }
    }

    /// The most detailed level this logger passes on.
    pub fn max_level(&self) -> log::LevelFilter {
        self.max_level
    }
}

/// `log`'s filter for a sink's most detailed level.
fn level_filter(level: Option<LogLevel>) -> log::LevelFilter {
    match level {
        None => log::LevelFilter::Off,
        Some(LogLevel::Error) => log::LevelFilter::Error,
        Some(LogLevel::Warn) => log::LevelFilter::Warn,
        Some(LogLevel::Info) => log::LevelFilter::Info,
        Some(LogLevel::Debug) => log::LevelFilter::Debug,
        Some(LogLevel::Trace) => log::LevelFilter::Trace,
    }
}

impl log::Log for SinkLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !log::Log::enabled(self, record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        self.sink
            .log(record.level().into(), record.target(), &message);
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    struct Keeps(Option<LogLevel>, std::sync::Mutex<Vec<String>>);

    impl LogSink for Keeps {
        fn log(&self, _: LogLevel, _: &str, message: &str) {
            self.1.lock().unwrap().push(message.to_string());
        }
        fn max_level(&self) -> Option<LogLevel> {
            self.0
        }
    }

    fn logger(level: Option<LogLevel>) -> (Arc<Keeps>, SinkLogger) {
        let sink = Arc::new(Keeps(level, Default::default()));
        (sink.clone(), SinkLogger::new(sink))
    }

    #[test]
    fn a_logger_passes_on_only_what_its_sink_keeps() {
        let (sink, info) = logger(Some(LogLevel::Info));
        assert_eq!(info.max_level(), log::LevelFilter::Info);
        let at = |level| log::Metadata::builder().level(level).build();
        assert!(info.enabled(&at(log::Level::Info)));
        assert!(info.enabled(&at(log::Level::Error)));
        assert!(!info.enabled(&at(log::Level::Debug)));
        for level in [log::Level::Info, log::Level::Debug] {
            info.log(
                &log::Record::builder()
                    .level(level)
                    .args(format_args!("{level}"))
                    .build(),
            );
        }
        assert_eq!(*sink.1.lock().unwrap(), ["INFO"]);

        assert_eq!(logger(None).1.max_level(), log::LevelFilter::Off);
        assert_eq!(
            logger(Some(LogLevel::Trace)).1.max_level(),
            log::LevelFilter::Trace
        );
        assert_eq!(
            logger(Some(LogLevel::Warn)).1.max_level(),
            log::LevelFilter::Warn
        );
    }
}
