//! Reading a server config and finding its `backend` section.

use crate::error::ConfigError;
use crate::schema::{self, Violation};
use serde::Deserialize;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SERVER_SCHEMA: &str = include_str!("../schemas/server.yaml");
const BACKEND_SCHEMA: &str = include_str!("../schemas/backend.yaml");

/// The Python package's module that loads any plugin (`aimm_backend.plugin`):
/// the section names the plugin in `plugin` and where to look first in
/// `plugin_dirs`; the rest is the plugin's own config. A host reading a
/// server config that uses it loads that plugin the same way.
pub const PLUGIN_MODULE: &str = "aimm_backend.plugin";

/// A config as the `aimm-backend` tool reads it: a whole Python AIMM server
/// config, a file with only a `backend` section, or a bare backend section.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    origin: String,
    document: Value,
    hat: HatConfig,
    own_eventer_server: Option<EventerServerConfig>,
    plugin_dirs: Vec<PathBuf>,
}

/// The `hat` section: how the host reaches the Hat services.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HatConfig {
    /// `hat.eventer_server`: a Hat event server to connect to directly.
    pub eventer_server: Option<EventerServerConfig>,
    /// `hat.monitor_component`: a Hat monitor to join, through which the
    /// host follows the active server of a redundant group.
    pub monitor_component: Option<MonitorComponentConfig>,
}

/// `hat.monitor_component`, the keys of the Python AIMM server (and the
/// two timeouts of [`EventerServerConfig`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MonitorComponentConfig {
    /// Host name or address of the monitor server.
    #[serde(default = "MonitorComponentConfig::default_host")]
    pub host: String,
    /// Its port.
    #[serde(default = "MonitorComponentConfig::default_port")]
    pub port: u16,
    /// The component group the host joins (it never asks to be blessed
    /// there).
    pub group: String,
    /// The group of the event servers whose active one the host follows;
    /// without it the host makes no event server connection.
    pub event_server_group: Option<String>,
    /// Seconds to wait for the monitor and the active server.
    #[serde(default = "EventerServerConfig::default_timeout")]
    pub timeout: f64,
    /// Seconds the active server may stay silent while an answer is due.
    #[serde(default = "EventerServerConfig::default_idle_timeout")]
    pub idle_timeout: f64,
    /// Seconds the active server may take to start answering a query.
    #[serde(default = "EventerServerConfig::default_query_timeout")]
    pub query_timeout: f64,
}

impl MonitorComponentConfig {
    fn default_host() -> String {
        "127.0.0.1".into()
    }

    fn default_port() -> u16 {
        23010
    }

    /// `host:port` of the monitor.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Where a host connects for a backend: the event server a config names.
#[derive(Debug, Clone, PartialEq)]
pub enum EventTarget {
    /// One event server (`hat.eventer_server`, or the backend's own).
    Server(EventerServerConfig),
    /// The active server of a redundant group, followed through a monitor
    /// (`hat.monitor_component` with `event_server_group`).
    Monitor(MonitorComponentConfig),
}

impl EventTarget {
    /// Seconds-bound on connecting, as a duration (at least 0.1 s).
    pub fn timeout(&self) -> Duration {
        let seconds = match self {
            EventTarget::Server(server) => server.timeout,
            EventTarget::Monitor(monitor) => monitor.timeout,
        };
        Duration::from_secs_f64(seconds.max(0.1))
    }

    /// How long the server may stay silent while an answer is due (at least
    /// 0.1 s).
    pub fn idle_timeout(&self) -> Duration {
        let seconds = match self {
            EventTarget::Server(server) => server.idle_timeout,
            EventTarget::Monitor(monitor) => monitor.idle_timeout,
        };
        Duration::from_secs_f64(seconds.max(0.1))
    }

    /// How long the server may take to start answering a query (at least
    /// 0.1 s).
    pub fn query_timeout(&self) -> Duration {
        let seconds = match self {
            EventTarget::Server(server) => server.query_timeout,
            EventTarget::Monitor(monitor) => monitor.query_timeout,
        };
        Duration::from_secs_f64(seconds.max(0.1))
    }
}

impl std::fmt::Display for EventTarget {
    /// Names the target in messages: `Hat event server at h:p`, or `the
    /// active Hat event server of group G (monitor at h:p)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventTarget::Server(server) => write!(f, "Hat event server at {}", server.address()),
            EventTarget::Monitor(monitor) => write!(
                f,
                "the active Hat event server of group {} (monitor at {})",
                monitor.event_server_group.as_deref().unwrap_or_default(),
                monitor.address()
            ),
        }
    }
}

/// `hat.eventer_server`, with the defaults of its schema (`schemas/server.yaml`, also `schemas_json/server/main.yaml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventerServerConfig {
    /// Host name or address of the server's eventer interface.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Seconds to wait for connecting.
    #[serde(default = "EventerServerConfig::default_timeout")]
    pub timeout: f64,
    /// Seconds the server may stay silent while an answer is due.
    #[serde(default = "EventerServerConfig::default_idle_timeout")]
    pub idle_timeout: f64,
    /// Seconds the server may take to start answering a query: it builds
    /// the whole answer first, and the answer holds every model a `list`
    /// or `get_models` asks for (hat-event 0.9.44 took 67 s for three of
    /// 512 MiB).
    #[serde(default = "EventerServerConfig::default_query_timeout")]
    pub query_timeout: f64,
}

impl EventerServerConfig {
    fn default_timeout() -> f64 {
        3.0
    }

    fn default_idle_timeout() -> f64 {
        60.0
    }

    fn default_query_timeout() -> f64 {
        600.0
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// [`EventerServerConfig::timeout`] as a duration (at least 0.1 s).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(0.1))
    }

    /// [`EventerServerConfig::idle_timeout`] as a duration (at least 0.1 s).
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.idle_timeout.max(0.1))
    }
}

impl ServerConfig {
    /// Reads and validates the YAML (or JSON) file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates YAML `text`; `origin` names it in messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let document: Value = serde_yaml::from_str(text).map_err(|err| ConfigError::Syntax {
            path: origin.to_string(),
            message: err.to_string(),
        })?;
        Self::from_value(document, origin)
    }

    /// Validates an already parsed document.
    pub fn from_value(document: Value, origin: &str) -> Result<Self, ConfigError> {
        // A bare backend section (a mapping with `module`) stands for itself.
        let document = if document.get("backend").is_none() && document.get("module").is_some() {
            serde_json::json!({ "backend": document })
        } else {
            document
        };
        let invalid = |violations: Vec<Violation>| ConfigError::Invalid {
            path: origin.to_string(),
            violations,
        };
        let server_schema = schema::parse_schema(SERVER_SCHEMA).expect("embedded schema is YAML");
        schema::validate(&server_schema, &document, "").map_err(invalid)?;
        let backend_schema = schema::parse_schema(BACKEND_SCHEMA).expect("embedded schema is YAML");
        schema::validate(&backend_schema, &document["backend"], "backend").map_err(invalid)?;
        let mut document = document;
        let plugin_dirs = unwrap_plugin_module(&mut document["backend"]).map_err(invalid)?;
        let hat = match document.get("hat") {
            Some(hat) => HatConfig::deserialize(hat).map_err(|err| {
                invalid(vec![Violation {
                    path: "hat".into(),
                    rule: err.to_string(),
                }])
            })?,
            None => HatConfig::default(),
        };
        let own_eventer_server = match document["backend"].get("eventer_server") {
            Some(server) => Some(EventerServerConfig::deserialize(server).map_err(|err| {
                invalid(vec![Violation {
                    path: "backend.eventer_server".into(),
                    rule: err.to_string(),
                }])
            })?),
            None => None,
        };
        Ok(ServerConfig {
            origin: origin.to_string(),
            document,
            hat,
            own_eventer_server,
            plugin_dirs,
        })
    }

    /// The config that applies when none is given: the SQLite backend at
    /// `default_store_path()`.
    pub fn embedded_default() -> Self {
        let path = default_store_path();
        let document = serde_json::json!({
            "backend": {
                "module": "aimm.server.backend.sqlite",
                "path": path.to_string_lossy(),
            }
        });
        Self::from_value(document, "<embedded default>").expect("embedded default is valid")
    }

    /// Where the config came from (a file path, or `<embedded default>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `backend` section.
    pub fn backend(&self) -> &Value {
        &self.document["backend"]
    }

    /// `backend.module`.
    pub fn module(&self) -> &str {
        self.backend()["module"].as_str().unwrap_or_default()
    }

    /// Directories to look for the plugin in before any other: the
    /// `plugin_dirs` of a section for [`PLUGIN_MODULE`] (whose `plugin`
    /// became [`module`](Self::module)); none otherwise.
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The server's `name`, if the config has one.
    pub fn name(&self) -> Option<&str> {
        self.document.get("name").and_then(Value::as_str)
    }

    /// The `hat` section (empty when the config has none).
    pub fn hat(&self) -> &HatConfig {
        &self.hat
    }

    /// `backend.eventer_server`: the event server the backend section
    /// names for a connection of the backend's own, which a host opens in
    /// place of lending its own client (the Python AIMM server's, which
    /// reports events when registered rather than persisted, and carries
    /// every payload through Python).
    pub fn own_eventer_server(&self) -> Option<&EventerServerConfig> {
        self.own_eventer_server.as_ref()
    }

    /// The event server the host connects to for the backend: its own
    /// ([`ServerConfig::own_eventer_server`]), else `hat.eventer_server`.
    pub fn eventer_server(&self) -> Option<&EventerServerConfig> {
        self.own_eventer_server
            .as_ref()
            .or(self.hat.eventer_server.as_ref())
    }

    /// Where the host connects for the backend: [`eventer_server`](Self::eventer_server),
    /// else the active server of `hat.monitor_component`'s
    /// `event_server_group`; `None` if the config names neither.
    pub fn event_target(&self) -> Option<EventTarget> {
        if let Some(server) = self.eventer_server() {
            return Some(EventTarget::Server(server.clone()));
        }
        self.hat
            .monitor_component
            .clone()
            .filter(|monitor| monitor.event_server_group.is_some())
            .map(EventTarget::Monitor)
    }

    /// The whole document.
    pub fn document(&self) -> &Value {
        &self.document
    }
}

/// Turns a section for [`PLUGIN_MODULE`] into the plugin's own: `module`
/// becomes its `plugin`, and `plugin` and `plugin_dirs` go; returns those
/// directories (none for any other module).
fn unwrap_plugin_module(backend: &mut Value) -> Result<Vec<PathBuf>, Vec<Violation>> {
    if backend["module"] != PLUGIN_MODULE {
        return Ok(Vec::new());
    }
    let violation = |key: &str, expected: &str, found: Option<&Value>| Violation {
        path: format!("backend.{key}"),
        rule: format!(
            "expected {expected}, got {}",
            found.map_or("nothing".to_string(), Value::to_string)
        ),
    };
    let plugin = match backend.get("plugin") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        other => {
            return Err(vec![violation(
                "plugin",
                "the plugin to load (a bare name, a library path or a Python alias)",
                other,
            )])
        }
    };
    let plugin_dirs = match backend.get("plugin_dirs") {
        None => Vec::new(),
        Some(Value::Array(dirs)) if dirs.iter().all(Value::is_string) => dirs
            .iter()
            .filter_map(Value::as_str)
            .map(PathBuf::from)
            .collect(),
        other => {
            return Err(vec![violation(
                "plugin_dirs",
                "a list of directory paths",
                other,
            )])
        }
    };
    let section = backend.as_object_mut().expect("a section with a module");
    section.remove("plugin");
    section.remove("plugin_dirs");
    section.insert("module".into(), Value::String(plugin));
    Ok(plugin_dirs)
}

/// The per-user store of the embedded default config:
/// `$XDG_DATA_HOME/aimm/models.db`, else `~/.local/share/aimm/models.db`.
pub fn default_store_path() -> PathBuf {
    store_path_in(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_store_path`] for these values of `XDG_DATA_HOME` and `HOME`. A
/// relative `XDG_DATA_HOME` is ignored, as the XDG spec says.
fn store_path_in(xdg_data_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    let data_home = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data_home.join("aimm").join("models.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_server_config_is_accepted() {
        let text =
            "name: aimm\nengine: {sigterm_timeout: 5, max_children: 5, check_children_period: 3}\n\
                    backend: {module: aimm.server.backend.sqlite, path: x.db}\n\
                    control: []\nplugins: {names: []}\nlog: {version: 1}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        assert_eq!(config.module(), "aimm.server.backend.sqlite");
        assert_eq!(config.name(), Some("aimm"));
    }

    #[test]
    fn a_section_for_the_python_plugin_module_becomes_the_plugins_own() {
        let config = ServerConfig::from_yaml(
            "backend:\n  module: aimm_backend.plugin\n  plugin: my_store\n  \
             plugin_dirs: [/opt/a, /opt/b]\n  path: /srv/models\n",
            "t",
        )
        .unwrap();
        assert_eq!(config.module(), "my_store");
        assert_eq!(
            config.backend(),
            &serde_json::json!({"module": "my_store", "path": "/srv/models"})
        );
        assert_eq!(
            config.plugin_dirs(),
            [PathBuf::from("/opt/a"), PathBuf::from("/opt/b")]
        );
        let plain = ServerConfig::from_yaml("backend: {module: sqlite, path: x}\n", "t").unwrap();
        assert!(plain.plugin_dirs().is_empty());
    }

    #[test]
    fn a_python_plugin_module_section_without_a_usable_plugin_is_refused() {
        for (section, expected) in [
            (
                "{module: aimm_backend.plugin}",
                "backend.plugin: expected the plugin to load",
            ),
            ("{module: aimm_backend.plugin, plugin: ''}", "got \"\""),
            (
                "{module: aimm_backend.plugin, plugin: x, plugin_dirs: /opt}",
                "backend.plugin_dirs: expected a list of directory paths, got \"/opt\"",
            ),
            (
                "{module: aimm_backend.plugin, plugin: x, plugin_dirs: [/opt, 5]}",
                "backend.plugin_dirs: expected a list of directory paths, got [\"/opt\",5]",
            ),
        ] {
            let err = ServerConfig::from_yaml(&format!("backend: {section}\n"), "t").unwrap_err();
            assert!(err.to_string().contains(expected), "{section}: {err}");
        }
    }

    #[test]
    fn bare_backend_section_is_accepted() {
        let config = ServerConfig::from_yaml("module: sqlite\npath: x.db\n", "t").unwrap();
        assert_eq!(config.backend()["path"], "x.db");
    }

    #[test]
    fn missing_backend_is_named() {
        let err = ServerConfig::from_yaml("name: x\n", "t.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config t.yaml is invalid:\n  (document): missing required key \"backend\""
        );
    }

    #[test]
    fn missing_module_is_named() {
        let err = ServerConfig::from_yaml("backend: {path: x}\n", "t.yaml").unwrap_err();
        assert!(
            err.to_string()
                .contains("backend: missing required key \"module\""),
            "{err}"
        );
    }

    #[test]
    fn eventer_server_is_read_with_its_default_timeouts() {
        let text = "hat: {eventer_server: {host: h, port: 23012}}\nbackend: {module: m}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        let server = config.hat().eventer_server.clone().unwrap();
        assert_eq!(server.address(), "h:23012");
        assert_eq!(server.timeout(), Duration::from_secs(3));
        assert_eq!(server.idle_timeout(), Duration::from_secs(60));
        let target = EventTarget::Server(server);
        assert_eq!(target.query_timeout(), Duration::from_secs(600));
        let text = "hat: {eventer_server: {host: h, port: 1, timeout: 0.5, idle_timeout: 7, \
                    query_timeout: 90}}\nbackend: {module: m}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        let server = config.hat().eventer_server.clone().unwrap();
        assert_eq!(server.timeout(), Duration::from_millis(500));
        assert_eq!(server.idle_timeout(), Duration::from_secs(7));
        let target = EventTarget::Server(server);
        assert_eq!(target.idle_timeout(), Duration::from_secs(7));
        assert_eq!(target.query_timeout(), Duration::from_secs(90));
    }

    #[test]
    fn the_backends_own_eventer_server_comes_before_the_hosts() {
        let text = "hat: {eventer_server: {host: h, port: 1}}\n\
                    backend: {module: m, eventer_server: {host: own, port: 2, timeout: 0.5}}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        let own = config.own_eventer_server().unwrap();
        assert_eq!(own.address(), "own:2");
        assert_eq!(own.timeout(), Duration::from_millis(500));
        assert_eq!(config.eventer_server().unwrap().address(), "own:2");
        let text = "hat: {eventer_server: {host: h, port: 1}}\nbackend: {module: m}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        assert!(config.own_eventer_server().is_none());
        assert_eq!(config.eventer_server().unwrap().address(), "h:1");
    }

    #[test]
    fn a_malformed_own_eventer_server_is_named() {
        let text = "backend: {module: m, eventer_server: {host: own}}\n";
        let err = ServerConfig::from_yaml(text, "t.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("backend.eventer_server"), "{text}");
        assert!(text.contains("port"), "{text}");
    }

    #[test]
    fn a_monitor_component_with_an_event_server_group_is_followed() {
        let text = "hat: {monitor_component: {group: aimm, event_server_group: event}}\n\
                    backend: {module: m}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        let Some(EventTarget::Monitor(monitor)) = config.event_target() else {
            panic!("{:?}", config.event_target());
        };
        assert_eq!(monitor.address(), "127.0.0.1:23010", "the Python defaults");
        assert_eq!(monitor.group, "aimm");
        assert_eq!(monitor.event_server_group.as_deref(), Some("event"));
        let target = EventTarget::Monitor(monitor);
        assert_eq!(target.timeout(), Duration::from_secs(3));
        assert_eq!(target.idle_timeout(), Duration::from_secs(60));
        assert_eq!(target.query_timeout(), Duration::from_secs(600));
        assert_eq!(
            target.to_string(),
            "the active Hat event server of group event (monitor at 127.0.0.1:23010)"
        );
    }

    #[test]
    fn a_monitor_component_without_an_event_server_group_names_no_server() {
        let text =
            "hat: {monitor_component: {host: m, port: 5, group: aimm}}\nbackend: {module: m}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        assert_eq!(
            config.hat().monitor_component.as_ref().unwrap().address(),
            "m:5"
        );
        assert!(config.event_target().is_none());
    }

    #[test]
    fn an_eventer_server_comes_before_a_monitor() {
        let text = "hat: {monitor_component: {group: g, event_server_group: e}}\n\
                    backend: {module: m, eventer_server: {host: own, port: 2}}\n";
        let config = ServerConfig::from_yaml(text, "t").unwrap();
        let target = config.event_target().unwrap();
        assert_eq!(target.to_string(), "Hat event server at own:2");
        assert!(matches!(target, EventTarget::Server(_)));
    }

    #[test]
    fn a_monitor_component_without_a_group_is_named() {
        let text = "hat: {monitor_component: {host: h, port: 1}}\nbackend: {module: m}\n";
        let err = ServerConfig::from_yaml(text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("monitor_component") && err.contains("group"),
            "{err}"
        );
    }

    #[test]
    fn no_hat_section_means_no_event_server() {
        let config = ServerConfig::from_yaml("backend: {module: m}\n", "t").unwrap();
        assert!(config.hat().eventer_server.is_none());
        assert!(config.hat().monitor_component.is_none());
        assert!(config.event_target().is_none());
        assert!(config.eventer_server().is_none());
    }

    #[test]
    fn a_config_file_is_named_by_its_path_and_keeps_its_whole_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.yaml");
        std::fs::write(&path, "name: s\nbackend: {module: m, path: x.db}\n").unwrap();
        let config = ServerConfig::from_file(&path).unwrap();
        assert_eq!(config.origin(), path.display().to_string());
        assert_eq!(
            config.document(),
            &serde_json::json!({"name": "s", "backend": {"module": "m", "path": "x.db"}})
        );
        let err = ServerConfig::from_file(&dir.path().join("none.yaml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn the_default_store_is_under_the_xdg_data_home_else_under_home() {
        let path = |xdg: Option<&str>, home: Option<&str>| {
            store_path_in(xdg.map(Into::into), home.map(Into::into))
        };
        assert_eq!(
            path(Some("/xdg"), Some("/home/u")),
            Path::new("/xdg/aimm/models.db")
        );
        assert_eq!(
            path(Some("relative"), Some("/home/u")),
            Path::new("/home/u/.local/share/aimm/models.db")
        );
        assert_eq!(
            path(None, Some("/home/u")),
            Path::new("/home/u/.local/share/aimm/models.db")
        );
        assert_eq!(path(None, None), Path::new("./aimm/models.db"));
        assert!(default_store_path().ends_with("aimm/models.db"));
        let embedded = ServerConfig::embedded_default();
        assert_eq!(embedded.origin(), "<embedded default>");
        assert_eq!(
            embedded.backend()["path"],
            default_store_path().to_string_lossy().as_ref()
        );
    }

    #[test]
    fn yaml_syntax_error_has_a_position() {
        let err = ServerConfig::from_yaml("backend: [\n", "t.yaml").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }));
        assert!(err.to_string().contains("line"), "{err}");
    }
}
