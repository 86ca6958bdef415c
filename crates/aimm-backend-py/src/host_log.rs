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
