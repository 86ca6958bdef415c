//! What the host lends plugins: here, the log sink into `tracing`.

use aimm_backend_api::{LogLevel, LogSink};

/// Writes plugin log lines as `tracing` events, tagged with the plugin name.
pub struct TracingLogSink {
    plugin: String,
}

impl TracingLogSink {
    /// A sink for the plugin called `plugin`.
    pub fn new(plugin: &str) -> Self {
        TracingLogSink {
            plugin: plugin.to_string(),
        }
    }
}

impl LogSink for TracingLogSink {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        let plugin = self.plugin.as_str();
        match level {
            LogLevel::Error => tracing::error!(plugin, target, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, target, "{message}"),
            LogLevel::Info => tracing::info!(plugin, target, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, target, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin, target, "{message}"),
        }
    }

    /// The most detailed level any `tracing` subscriber of this process
    /// keeps.
    fn max_level(&self) -> Option<LogLevel> {
        use tracing::level_filters::LevelFilter;
        match LevelFilter::current() {
            LevelFilter::OFF => None,
            LevelFilter::ERROR => Some(LogLevel::Error),
            LevelFilter::WARN => Some(LogLevel::Warn),
            LevelFilter::INFO => Some(LogLevel::Info),
            LevelFilter::DEBUG => Some(LogLevel::Debug),
            _ => Some(LogLevel::Trace),
        }
    }
}
