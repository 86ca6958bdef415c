//! The loader's own warnings (an unsafe plugin loaded by override, a config
//! key no one reads) into Python `logging`, as the CLI prints them: the
//! loader reports them through `tracing`, which has no subscriber in a
//! Python process unless this one is installed.

use crate::log_sink::PythonLogSink;
use aimm_backend_api::{LogLevel, LogSink};
use std::fmt::Write;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Sends `tracing` events of level warn and error to the Python logger
/// `aimm_backend`; everything below warn is not even formatted.
pub struct HostWarnings {
    sink: PythonLogSink,
}

impl HostWarnings {
    /// Installs it as the process's `tracing` subscriber, unless the
    /// process has one already (then that one keeps getting the records).
    pub fn install() {
        let subscriber = HostWarnings {
            sink: PythonLogSink::named("aimm_backend"),
        };
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
}

/// An event's fields as one line: the message, then `name=value` pairs.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for HostWarnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = if *event.metadata().level() == Level::ERROR {
            LogLevel::Error
        } else {
            LogLevel::Warn
        };
        self.sink.log(level, event.metadata().target(), &line.0);
    }

    // Spans carry nothing these records need.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{recorded_logger, with_python};
    use pyo3::prelude::*;

    #[test]
    fn warnings_and_errors_reach_python_as_one_line_and_the_rest_nothing() {
        with_python(|py| {
            let handler = recorded_logger(py, "aimm_backend.host_test", 1);
            let subscriber = HostWarnings {
                sink: PythonLogSink::named("aimm_backend.host_test"),
            };
            py.detach(|| {
                tracing::subscriber::with_default(subscriber, || {
                    tracing::warn!(target: "loader", key = "backend.x", "a key no one reads");
                    tracing::info!(target: "loader", "not even formatted");
                    tracing::debug!(target: "loader", "nor this");
                    tracing::error!(target: "loader", "went wrong");
                    let span = tracing::warn_span!("opening", n = 1);
                    let _entered = span.enter();
                    tracing::warn!(target: "loader", "inside a span");
                })
            });
            let records: Vec<(u32, String, Option<String>)> =
                handler.getattr("records").unwrap().extract().unwrap();
            let loader = Some("loader".to_string());
            assert_eq!(
                records,
                [
                    (
                        30,
                        "a key no one reads key=\"backend.x\"".to_string(),
                        loader.clone()
                    ),
                    (40, "went wrong".to_string(), loader.clone()),
                    (30, "inside a span".to_string(), loader),
                ]
            );
        });
    }

    #[test]
    fn installed_it_sends_warnings_of_every_thread_to_the_aimm_backend_logger() {
        with_python(|py| {
            let handler = recorded_logger(py, "aimm_backend", 30);
            HostWarnings::install();
            py.detach(|| {
                std::thread::spawn(|| tracing::warn!(target: "loader", "from any thread"))
                    .join()
                    .unwrap()
            });
            let records: Vec<(u32, String, Option<String>)> =
                handler.getattr("records").unwrap().extract().unwrap();
            assert!(
                records.contains(&(30, "from any thread".into(), Some("loader".into()))),
                "{records:?}"
            );
        });
    }

    #[test]
    fn it_takes_warn_and_above_only() {
        crate::embedded::start();
        let subscriber = HostWarnings {
            sink: PythonLogSink::named("aimm_backend.levels_test"),
        };
        assert_eq!(subscriber.max_level_hint(), Some(LevelFilter::WARN));
        let enabled = tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(Level::ERROR),
                tracing::enabled!(Level::WARN),
                tracing::enabled!(Level::INFO),
                tracing::enabled!(Level::DEBUG),
                tracing::enabled!(Level::TRACE),
            ]
        });
        assert_eq!(enabled, [true, true, false, false, false]);
    }
}
