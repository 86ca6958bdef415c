//! Plugin log records into Python `logging`, so they land where the AIMM
//! server's `log` config sends them.

use aimm_backend_api::{LogLevel, LogSink};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Logs to the Python logger `aimm_backend.<plugin>`; the record's `target`
/// (the plugin's module path) is in its `plugin_target` attribute.
pub struct PythonLogSink {
    logger: Option<Py<PyAny>>,
}

impl PythonLogSink {
    /// The sink for the plugin called `plugin`.
    pub fn for_plugin(plugin: &str) -> Self {
        Self::named(&format!("aimm_backend.{plugin}"))
    }

    /// The sink for the Python logger called `name`.
    pub fn named(name: &str) -> Self {
        let logger = Python::attach(|py| {
            py.import("logging")?
                .call_method1("getLogger", (name,))
                .map(Bound::unbind)
        });
        PythonLogSink {
            logger: logger.ok(),
        }
    }
}

/// Python's level numbers (`TRACE` has none; 5 is below `DEBUG`).
fn python_level(level: LogLevel) -> u32 {
    match level {
        LogLevel::Error => 40,
        LogLevel::Warn => 30,
        LogLevel::Info => 20,
        LogLevel::Debug => 10,
        LogLevel::Trace => 5,
    }
}

impl LogSink for PythonLogSink {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        let Some(logger) = &self.logger else {
            return;
        };
        Python::attach(|py| {
            let logger = logger.bind(py);
            let level = python_level(level);
            let enabled = logger
                .call_method1("isEnabledFor", (level,))
                .and_then(|enabled| enabled.extract::<bool>())
                .unwrap_or(false);
            if !enabled {
                return;
            }
            let extra = PyDict::new(py);
            let logged = extra.set_item("plugin_target", target).and_then(|()| {
                let kwargs = PyDict::new(py);
                kwargs.set_item("extra", extra)?;
                logger.call_method("log", (level, "%s", message), Some(&kwargs))
            });
            if let Err(err) = logged {
                err.write_unraisable(py, Some(logger));
            }
        });
    }

    /// The most detailed level the logger is enabled for now (the server
    /// has configured logging by the time it creates its backend).
    fn max_level(&self) -> Option<LogLevel> {
        let logger = self.logger.as_ref()?;
        Python::attach(|py| {
            let logger = logger.bind(py);
            [
                LogLevel::Trace,
                LogLevel::Debug,
                LogLevel::Info,
                LogLevel::Warn,
                LogLevel::Error,
            ]
            .into_iter()
            .find(|level| {
                logger
                    .call_method1("isEnabledFor", (python_level(*level),))
                    .and_then(|enabled| enabled.extract::<bool>())
                    .unwrap_or(false)
            })
        })
    }
}
