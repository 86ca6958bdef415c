//! The root module a plugin exports, called as a host calls it. Its own
//! test binary: installing the log sink sets this process's `log` logger.

use abi_stable::std_types::RStr;
use aimm_backend_api::plugin::root_module_for;
use aimm_backend_api::{
    Backend, BackendPlugin, ErrorKind, EventType, FFI_LogSink, Host, LogLevel, LogSink, RString,
    RVec, Result,
};
use std::sync::{Arc, Mutex};

struct Logging;

impl BackendPlugin for Logging {
    const NAME: &'static str = "logging";
    const CONF_SCHEMA: &'static str = "type: object\n";

    fn create_backend(_conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        Err(aimm_backend_api::BackendError::unsupported("no backends"))
    }

    fn create_subscription(conf: &serde_json::Value) -> Result<Vec<EventType>> {
        log::info!("subscribing for {conf}");
        Ok(vec![RVec::from(vec![
            RString::from("a"),
            RString::from("*"),
        ])])
    }

    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        log::warn!("scratch store in {scratch_dir}");
        Ok(serde_json::json!({"module": conf["module"], "dir": scratch_dir}))
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<(LogLevel, String)>>);

impl LogSink for Lines {
    fn log(&self, level: LogLevel, _target: &str, message: &str) {
        self.0.lock().unwrap().push((level, message.to_string()));
    }
}

extern "C" fn version() -> RStr<'static> {
    RStr::from_str("9.9.9")
}

#[test]
fn records_of_the_module_functions_reach_the_sink_installed_first() {
    let module = root_module_for::<Logging>(version);
    assert_eq!((module.plugin_name())().as_str(), "logging");
    assert_eq!((module.plugin_version())().as_str(), "9.9.9");
    assert_eq!((module.conf_schema())().as_str(), "type: object\n");

    let lines = Arc::new(Lines::default());
    (module.install_log_sink())(FFI_LogSink::new(lines.clone()));
    // A second sink is dropped: a library has one for the process's life.
    let later = Arc::new(Lines::default());
    (module.install_log_sink())(FFI_LogSink::new(later.clone()));

    let types = (module.create_subscription())(r#"{"module":"m"}"#.into())
        .into_result()
        .unwrap();
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].as_slice(), ["a", "*"]);
    let scratch = (module.scratch_conf())(r#"{"module":"m"}"#.into(), "/s".into())
        .into_result()
        .unwrap();
    assert_eq!(scratch.as_str(), r#"{"dir":"/s","module":"m"}"#);
    let err = (module.scratch_conf())("not json".into(), "/s".into())
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);

    assert_eq!(
        *lines.0.lock().unwrap(),
        [
            (
                LogLevel::Info,
                r#"subscribing for {"module":"m"}"#.to_string()
            ),
            (LogLevel::Warn, "scratch store in /s".to_string()),
        ]
    );
    assert!(later.0.lock().unwrap().is_empty());
    // The dropped sink was released: only this test still holds it.
    assert_eq!(Arc::strong_count(&later), 1);
}
