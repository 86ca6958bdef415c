//! The one way a host opens a backend: config -> resolve -> load -> validate
//! -> event client -> create.
//!
//! Every host goes through [`Opener`]: the `aimm-backend` CLI, the
//! conformance command, the `aimm_backend` Python package and the tests. They
//! differ only in what they lend the plugin: where its log lines go, and
//! whether the event client is the host's own connection (made from the
//! config's `hat.eventer_server` by the host's [`EventConnector`]) or one the
//! caller already has (the Python AIMM server's). As in `datafusion-ffi`,
//! opening hands back the plain foreign backend; [`Opened::into_handle`]
//! builds the async handle on top.

use crate::config::{EventTarget, ServerConfig};
use crate::handle::BackendHandle;
use crate::host_services::TracingLogSink;
use crate::library::PluginLibrary;
use crate::resolve::SearchPath;
use crate::safety::LoadPolicy;
use crate::Error;
use aimm_backend_api::{Backend, BackendError, ErrorKind, EventClient, EventType, Host, LogSink};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Events the event server notifies for a backend's subscription.
pub type EventStream = tokio::sync::mpsc::UnboundedReceiver<Vec<aimm_backend_api::Event>>;

/// Makes the log sink a plugin's records go to.
pub type LogSinkFactory = Arc<dyn Fn(&PluginLibrary) -> Arc<dyn LogSink> + Send + Sync>;

/// The event server connection a host is asked to make for a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    /// Where to connect: one event server, or the active one of a group
    /// followed through a monitor.
    pub target: EventTarget,
    /// The client name the server sees (the server config's `name`; also
    /// the component name announced to a monitor).
    pub client_name: String,
    /// The event types the backend wants notified.
    pub subscriptions: Vec<Vec<String>>,
    /// Bound on connecting.
    pub timeout: Duration,
    /// How long the server may stay silent while an answer is due.
    pub idle_timeout: Duration,
    /// How long the server may take to start answering a query.
    pub query_timeout: Duration,
}

/// A connection made for a backend: the client lent to it, and the stream
/// of batches notified for its subscriptions.
pub type Connected = (Arc<dyn EventClient>, EventStream);

/// Makes a host's own event server connections: how a host that can talk
/// to Hat event servers (the `aimm-backend-hat-host` crate) lends the
/// loader that ability. A host without one opens every backend that needs
/// no connection of its own.
pub trait EventConnector: Send + Sync {
    /// Connects as `request` says, blocking until connected or
    /// `request.timeout` has passed; returns the client lent to the
    /// backend and the stream of batches notified for its subscriptions.
    fn connect(&self, request: &ConnectRequest) -> std::result::Result<Connected, BackendError>;
}

/// How a host opens backends: where plugins are looked for, where their log
/// lines go, and which event client they get.
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use aimm_backend_loader::{Opener, SearchPath, ServerConfig};
///
/// let config = ServerConfig::from_yaml("module: sqlite\npath: models.db\n", "<inline>")?;
/// let opened = Opener::new(SearchPath::new(&[])).open(&config)?;
/// println!("{} models", opened.backend.list_models()?.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Opener {
    search: SearchPath,
    policy: LoadPolicy,
    log_sink: LogSinkFactory,
    event_client: Option<Arc<dyn EventClient>>,
    connector: Option<Arc<dyn EventConnector>>,
}

impl Opener {
    /// Looks for plugins on `search` and logs their records through
    /// `tracing`; makes no event server connection of its own (see
    /// [`Opener::with_event_connector`]).
    pub fn new(search: SearchPath) -> Self {
        Opener {
            search,
            policy: LoadPolicy::from_env(),
            log_sink: Arc::new(|library: &PluginLibrary| {
                Arc::new(TracingLogSink::new(library.name())) as Arc<dyn LogSink>
            }),
            event_client: None,
            connector: None,
        }
    }

    /// Connects backends whose config names an event server through
    /// `connector`.
    pub fn with_event_connector(mut self, connector: Arc<dyn EventConnector>) -> Self {
        self.connector = Some(connector);
        self
    }

    /// Sends plugin log records to the sinks `factory` makes (one per
    /// library opened; a library keeps the first sink it is given).
    pub fn with_log_sink(
        mut self,
        factory: impl Fn(&PluginLibrary) -> Arc<dyn LogSink> + Send + Sync + 'static,
    ) -> Self {
        self.log_sink = Arc::new(factory);
        self
    }

    /// Lends backends `client` instead of connecting to the config's
    /// `hat.eventer_server` (whose section is then ignored). A backend
    /// section that names its own `eventer_server` gets its own connection
    /// all the same.
    pub fn with_event_client(mut self, client: Arc<dyn EventClient>) -> Self {
        self.event_client = Some(client);
        self
    }

    /// Loads plugin libraries by `policy` (by default: refuses places
    /// others can write to unless the environment allows them; see
    /// [`crate::safety`]).
    pub fn with_load_policy(mut self, policy: LoadPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Where plugins are looked for.
    pub fn search(&self) -> &SearchPath {
        &self.search
    }

    /// Which plugin files are loaded.
    pub fn load_policy(&self) -> LoadPolicy {
        self.policy
    }

    /// Resolves `backend.module`, loads the library with its checks, sends
    /// its log records to this opener's sink (unless the library already
    /// has one), and validates the `backend` section against its schema.
    pub fn load(&self, config: &ServerConfig) -> Result<Arc<PluginLibrary>, Error> {
        let path = self
            .search
            .searching_first(config.plugin_dirs())
            .resolve(config.module())?;
        let library = PluginLibrary::load_with(&path, self.policy)?;
        library.install_log_sink(|| (self.log_sink)(&library));
        library.validate_conf(config.backend(), config.origin())?;
        Ok(library)
    }

    /// The event types the backend `config` describes wants notified (the
    /// plugin's `create_subscription`), from the library [`Opener::load`]
    /// loads: what a host that lends its own client subscribes to.
    pub fn subscription(&self, config: &ServerConfig) -> Result<Vec<EventType>, Error> {
        let library = self.load(config)?;
        library
            .create_subscription(config.backend())
            .map_err(|source| Error::backend(config.module(), &library, source))
    }

    /// Everything up to creating the backend: [`Opener::load`], a warning
    /// naming any `backend` key the plugin's schema does not list, then the
    /// event client (connected from `backend.eventer_server`, else lent,
    /// else connected from `hat.eventer_server`; connecting needs a tokio
    /// runtime and blocks until connected or timed out).
    pub fn prepare(&self, config: &ServerConfig) -> Result<Prepared, Error> {
        let library = self.load(config)?;
        // Here, not in `load`: a Python server loads once more for the
        // subscription, and the warning is said once per backend opened.
        warn_of_unlisted_keys(config, &library);
        let lent = self
            .event_client
            .as_ref()
            .filter(|_| config.own_eventer_server().is_none());
        let (event_client, events) = match lent {
            Some(client) => (Some(client.clone()), None),
            None => match self.connect(config, &library)? {
                Some((client, events)) => (Some(client as Arc<dyn EventClient>), Some(events)),
                None => (None, None),
            },
        };
        let host = Host {
            log: (self.log_sink)(&library),
            event_client,
        };
        Ok(Prepared {
            module: config.module().to_string(),
            conf: config.backend().clone(),
            library,
            host,
            events,
        })
    }

    /// [`Opener::prepare`], then creates the backend.
    pub fn open(&self, config: &ServerConfig) -> Result<Opened, Error> {
        self.prepare(config)?.open()
    }
}

/// Keys no one reads are kept (Python's configs allow them) but named, since
/// a misspelt optional key otherwise goes unnoticed.
fn warn_of_unlisted_keys(config: &ServerConfig, library: &PluginLibrary) {
    let unlisted = library.unlisted_keys(config.backend());
    if unlisted.is_empty() {
        return;
    }
    let named: Vec<String> = unlisted
        .iter()
        .map(|key| format!("backend.{key}"))
        .collect();
    let listed: Vec<&str> = library
        .conf_schema()
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().map(String::as_str).collect())
        .unwrap_or_default();
    tracing::warn!(
        "{}: {} not read by the `{}` plugin, whose schema lists only {}; ignored (misspelt?)",
        config.origin(),
        if named.len() == 1 {
            format!("{} is", named[0])
        } else {
            format!("{} are", named.join(", "))
        },
        library.name(),
        listed.join(", ")
    );
}

/// A checked plugin library, its `backend` config and the host services
/// lent to it: ready to create backends, as often as the host needs (the
/// conformance suite reopens the store; a Hat monitor runner recreates it).
pub struct Prepared {
    module: String,
    library: Arc<PluginLibrary>,
    conf: Value,
    host: Host,
    events: Option<EventStream>,
}

impl Prepared {
    /// The plugin library.
    pub fn library(&self) -> &Arc<PluginLibrary> {
        &self.library
    }

    /// The `backend` section backends are created with.
    pub fn conf(&self) -> &Value {
        &self.conf
    }

    /// The event client lent to backends, if any.
    pub fn event_client(&self) -> Option<&Arc<dyn EventClient>> {
        self.host.event_client.as_ref()
    }

    /// The same, but on a fresh throw-away store below `dir` (the plugin's
    /// `scratch_conf`), for testing without touching real data.
    pub fn into_scratch(mut self, dir: &Path) -> Result<Self, Error> {
        let scratch = self
            .library
            .scratch_conf(&self.conf, dir)
            .map_err(|source| self.backend_error(source))?;
        self.library.validate_conf(&scratch, "<scratch config>")?;
        self.conf = scratch;
        Ok(self)
    }

    /// Creates a backend. Blocks while the plugin opens its store.
    pub fn create(&self) -> Result<Arc<dyn Backend>, Error> {
        let backend = self
            .library
            .create_backend(&self.conf, self.host.clone())
            .map_err(|source| self.backend_error(source))?;
        Ok(Arc::new(backend))
    }

    /// Creates the backend, handing over the stream of notified events.
    pub fn open(mut self) -> Result<Opened, Error> {
        let backend = self.create()?;
        Ok(Opened {
            backend,
            library: self.library,
            events: self.events.take(),
        })
    }

    fn backend_error(&self, source: BackendError) -> Error {
        Error::backend(&self.module, &self.library, source)
    }
}

/// A created backend, as the plugin handed it over.
pub struct Opened {
    /// The blocking interface.
    pub backend: Arc<dyn Backend>,
    /// The library it came from.
    pub library: Arc<PluginLibrary>,
    /// What the host's own event server connection notifies for the
    /// backend's subscription; `None` without one (or with a lent client,
    /// whose owner delivers events to `process_events` itself).
    pub events: Option<EventStream>,
}

impl Opened {
    /// The async handle, with notified events routed to the backend's
    /// `process_events` for as long as it lives. With an event stream this
    /// must run inside a tokio runtime.
    pub fn into_handle(self) -> BackendHandle {
        let handle = BackendHandle::new(self.backend, self.library);
        if let Some(events) = self.events {
            route_events(&handle, events);
        }
        handle
    }
}

impl Opener {
    /// The host's own event server connection for `config`, if it names
    /// an event server ([`ServerConfig::event_target`]): made by the host's
    /// [`EventConnector`], subscribed to what `library`'s backend asks for.
    fn connect(
        &self,
        config: &ServerConfig,
        library: &PluginLibrary,
    ) -> Result<Option<Connected>, Error> {
        let Some(target) = config.event_target() else {
            return Ok(None);
        };
        let backend_error = |source| Error::backend(config.module(), library, source);
        let Some(connector) = &self.connector else {
            return Err(backend_error(BackendError::new(
                ErrorKind::Unavailable,
                format!(
                    "the config names an event server ({target}), and this host makes no event \
                     server connections"
                ),
            )));
        };
        let subscriptions = library
            .create_subscription(config.backend())
            .map_err(backend_error)?
            .into_iter()
            .map(|t| t.into_iter().map(|s| s.to_string()).collect())
            .collect();
        let request = ConnectRequest {
            timeout: target.timeout(),
            idle_timeout: target.idle_timeout(),
            query_timeout: target.query_timeout(),
            target,
            client_name: config.name().unwrap_or("aimm-backend").to_string(),
            subscriptions,
        };
        connector.connect(&request).map(Some).map_err(backend_error)
    }
}

/// Hands every notified batch to the backend's `process_events`, off the
/// async threads, for as long as the backend lives.
fn route_events(handle: &BackendHandle, mut events: EventStream) {
    let backend = Arc::downgrade(handle.backend());
    tokio::spawn(async move {
        while let Some(batch) = events.recv().await {
            let Some(backend) = backend.upgrade() else {
                return;
            };
            let result =
                tokio::task::spawn_blocking(move || backend.process_events(batch.into())).await;
            if let Ok(Err(err)) = result {
                tracing::warn!("process_events: {err}");
            }
        }
    });
}
