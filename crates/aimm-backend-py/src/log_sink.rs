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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{recorded_logger, with_python};

    type Records = Vec<(u32, String, Option<String>)>;

    fn records(handler: &Bound<'_, PyAny>) -> Records {
        handler.getattr("records").unwrap().extract().unwrap()
    }

    #[test]
    fn records_go_to_the_plugins_logger_at_python_levels_with_their_target() {
        with_python(|py| {
            let handler = recorded_logger(py, "aimm_backend.sink_test", 1);
            let sink = PythonLogSink::for_plugin("sink_test");
            py.detach(|| {
                for (level, text) in [
                    (LogLevel::Error, "e"),
                    (LogLevel::Warn, "w"),
                    (LogLevel::Info, "i"),
                    (LogLevel::Debug, "d"),
                    (LogLevel::Trace, "t %s"),
                ] {
                    sink.log(level, "plugin::module", text);
                }
            });
            let target = Some("plugin::module".to_string());
            let expected: Records = [(40, "e"), (30, "w"), (20, "i"), (10, "d"), (5, "t %s")]
                .into_iter()
                .map(|(level, text)| (level, text.to_string(), target.clone()))
                .collect();
            assert_eq!(records(&handler), expected);
        });
    }

    #[test]
    fn levels_the_logger_is_not_enabled_for_are_dropped_and_max_level_says_so() {
        with_python(|py| {
            let handler = recorded_logger(py, "aimm_backend.quiet_test", 30);
            let sink = PythonLogSink::for_plugin("quiet_test");
            assert_eq!(py.detach(|| sink.max_level()), Some(LogLevel::Warn));
            py.detach(|| {
                sink.log(LogLevel::Info, "t", "dropped");
                sink.log(LogLevel::Warn, "t", "kept");
            });
            assert_eq!(
                records(&handler),
                [(30, "kept".to_string(), Some("t".to_string()))]
            );
            for (level, max) in [
                (5, LogLevel::Trace),
                (10, LogLevel::Debug),
                (20, LogLevel::Info),
                (40, LogLevel::Error),
            ] {
                recorded_logger(py, "aimm_backend.quiet_test", level);
                assert_eq!(py.detach(|| sink.max_level()), Some(max), "level {level}");
            }
            recorded_logger(py, "aimm_backend.quiet_test", 50);
            assert_eq!(py.detach(|| sink.max_level()), None);
        });
    }
}
