//! An AIMM model store in a Hat event server, as a backend plugin.
//!
//! Payload-compatible with the Python `aimm.server.backend.event`: a model is
//! the newest event of type `[*model_prefix, "<instance id>"]`, without a
//! source timestamp, with the JSON payload
//! `{"type": "<model type>", "instance": "<base64 of the bytes>"}`. The
//! backend subscribes to `[*model_prefix, "*"]`, and `get_models` is a
//! latest-query over it.
//!
//! # Instance ids
//!
//! The Python backend counts ids in one process, starting from the highest
//! stored id, so the first model it creates after a restart overwrites the
//! newest one, and two hosts on one prefix overwrite each other. Here the
//! event server hands out ids: the backend registers *claim* events (of type `[*model_prefix[..n-1], "<last>#id-claims"]`, which
//! the model subscription never matches) and takes the ids from the
//! server's answer.
//! The server numbers each event `(server, session, instance)`; the new id
//! packs all three (see `ids`), so it is unique across every server of a
//! redundant group (each counts sessions on its own), across restarts, and
//! across every host of the group, and it never equals an id of the
//! single-server scheme used before (`session * 2^16 + instance`), whose
//! stores stay valid.
//!
//! Ids are claimed ahead, a block of 16 in one registration (256 with
//! `acknowledge: sent`, see `SENT_CLAIM_BLOCK`), and checked
//! with one query when the block is claimed (that no model holds an id
//! already: an import, or another host's model). A block is handed out from
//! its highest id down, and a pooled id is checked against the models this
//! backend has seen since it was claimed (notified, read or written), not
//! with a query of its own: a Python host stores its new model at the
//! highest id it knows plus one, which is then beyond the block, and should
//! it take a pooled id anyway, its notification makes this backend skip
//! it. So a create whose id is pooled sends its model at once. Ids pooled
//! when the backend closes are never used: ids have gaps, never repeats.
//! Creates that wait for an id at the same time (a pipelined `put`, several
//! threads) share one claim.
//!
//! # Durability
//!
//! A create, update or import is acknowledged only once the server reports
//! the model event *persisted* (written to its store), not merely
//! registered: a Hat event server answers a registration before it writes
//! it, and flushes every `flush_period`, so a server killed in between
//! would lose an acknowledged model. Waiting costs up to one flush period
//! per write (writes from several threads share a flush). Claims are not
//! waited for: the server writes events in the order it numbered them, so a
//! persisted model event implies its claim.
//!
//! `acknowledge: registered` in the backend config acknowledges as soon as
//! the server has accepted the event instead: faster, but a server killed
//! before its next flush loses acknowledged models. `acknowledge: sent`
//! does not wait for the server at all, as the Python backend does: a write
//! lost on the way is lost silently. (The server echoes a registered event
//! back whole, so for large models waiting for the answer costs as much as
//! sending: with the Python AIMM server's client, 8.5 s against 0.4 s for a
//! 64 MiB model, measured. The CLI's and the loader's client ask for no
//! answer to a model event: a persisted one is recognised in the server's
//! persisted notifications, and a registered one is known registered from
//! the answer to an empty query sent after it; the host then returns no
//! event, and what the model's newest event holds is learnt from its
//! notification, see `own_writes`.)
//!
//! # Unchanged updates
//!
//! The AIMM engine stores the whole model after every fit and every
//! predict, usually unchanged. An update that would register what the
//! model's newest event already holds (same type, same bytes) registers
//! nothing and tells no listener. The backend knows what the newest event
//! holds when it wrote that event itself (a SHA-256 digest of type and
//! bytes is kept per model) or, for a model it has not seen yet, from the
//! query that checks the model exists, whose answer carries the event
//! whole. Any newer event of the model, notified or seen in a listing,
//! makes it write again. After a restart, the first update of each model
//! is therefore written. With `acknowledge: sent` no answer says which
//! event is newest, and every update is registered.
//!
//! What another host wrote is seen once its notification has reached this
//! backend: an update that repeats this backend's last write of a model,
//! made while the notification of another host's newer write of the same
//! model is still on its way, is skipped, and the other host's write stays
//! the newest (as if the two had crossed the other way).
//!
//! # Change notifications
//!
//! Listeners hear of this backend's own writes directly, once each, and of
//! other hosts' writes through `process_events` (the host routes the
//! notified events of the subscription there; the server's notifications of
//! our own writes are recognised and dropped). Events under the prefix that are not
//! valid models (an id segment that is not an integer, a payload that is
//! missing, binary, not JSON, or without a string `type` and a base64
//! `instance`) are skipped with a warning naming the event.

#![warn(missing_docs)]

mod claims;
mod codec;
mod ids;
mod latest;
mod own_writes;
mod store;

pub use store::EventBackend;

use aimm_backend_api::{
    event_type, Backend, BackendError, BackendPlugin, EventType, Host, RegisterMode, Result,
};
use serde::Deserialize;
use std::sync::Arc;

/// The event backend's configuration (`schemas/event.yaml`, also `schemas_json/server/backend/event.yaml`).
#[derive(Debug, Clone, Deserialize)]
pub struct EventConfig {
    /// Event type prefix of model events.
    pub model_prefix: Vec<String>,
    /// When a write is acknowledged.
    #[serde(default)]
    pub acknowledge: Acknowledge,
}

/// When a write is acknowledged (see "Durability" in the crate docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Acknowledge {
    /// Once the server has written the model event to its store.
    #[default]
    Persisted,
    /// Once the server has accepted the model event; a server killed before
    /// its next flush loses it.
    Registered,
    /// As soon as the model event is sent, without waiting for the server,
    /// as the Python backend does: a write the server never receives (the
    /// connection dropped) or refuses is lost.
    Sent,
}

impl Acknowledge {
    fn register_mode(self) -> RegisterMode {
        match self {
            Acknowledge::Persisted => RegisterMode::Persisted,
            Acknowledge::Registered => RegisterMode::Registered,
            Acknowledge::Sent => RegisterMode::Sent,
        }
    }
}

impl EventConfig {
    fn from_json(conf: &serde_json::Value) -> Result<Self> {
        EventConfig::deserialize(conf)
            .map_err(|err| BackendError::invalid_config(format!("event backend config: {err}")))
    }
}

/// The plugin: builds [`EventBackend`]s.
pub struct EventPlugin;

impl BackendPlugin for EventPlugin {
    const NAME: &'static str = "event";
    const CONF_SCHEMA: &'static str = include_str!("../schemas/event.yaml");

    fn create_backend(conf: &serde_json::Value, host: Host) -> Result<Arc<dyn Backend>> {
        let config = EventConfig::from_json(conf)?;
        let client = host.event_client.ok_or_else(|| {
            BackendError::invalid_config(
                "the event backend needs a Hat event server: set hat.eventer_server {host, port} \
                 or hat.monitor_component {host, port, group, event_server_group} in the server \
                 config, or eventer_server {host, port} in the backend section",
            )
        })?;
        Ok(Arc::new(EventBackend::new(
            config.model_prefix,
            client,
            config.acknowledge.register_mode(),
        )))
    }

    fn create_subscription(conf: &serde_json::Value) -> Result<Vec<EventType>> {
        let config = EventConfig::from_json(conf)?;
        Ok(vec![event_type(
            config.model_prefix.iter().cloned().chain(["*".to_string()]),
        )])
    }

    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        let mut scratch = conf.clone();
        let mut prefix = EventConfig::from_json(conf)?.model_prefix;
        let unique = scratch_dir.rsplit('/').next().unwrap_or(scratch_dir);
        prefix.push(format!("conformance-{unique}"));
        scratch["model_prefix"] = serde_json::json!(prefix);
        Ok(scratch)
    }
}

aimm_backend_api::export_backend!(EventPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::{LogLevel, LogSink};
    use serde_json::json;

    struct NoLog;

    impl LogSink for NoLog {
        fn log(&self, _: LogLevel, _: &str, _: &str) {}
    }

    fn segments(types: &[EventType]) -> Vec<Vec<String>> {
        types
            .iter()
            .map(|t| t.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn the_subscription_is_every_id_under_the_prefix() {
        let conf = json!({"module": "event", "model_prefix": ["aimm", "model"]});
        let subscription = EventPlugin::create_subscription(&conf).unwrap();
        assert_eq!(segments(&subscription), [["aimm", "model", "*"]]);
    }

    #[test]
    fn acknowledge_defaults_to_persisted_and_maps_to_its_register_mode() {
        let conf = EventConfig::from_json(&json!({"model_prefix": ["m"]})).unwrap();
        assert_eq!(conf.acknowledge, Acknowledge::Persisted);
        for (text, mode) in [
            ("persisted", RegisterMode::Persisted),
            ("registered", RegisterMode::Registered),
            ("sent", RegisterMode::Sent),
        ] {
            let conf = EventConfig::from_json(&json!({"model_prefix": ["m"], "acknowledge": text}))
                .unwrap();
            assert_eq!(conf.acknowledge.register_mode(), mode, "{text}");
        }
        let err = EventConfig::from_json(&json!({"model_prefix": "m"})).unwrap_err();
        assert!(err.message.starts_with("event backend config: "), "{err}");
    }

    #[test]
    fn a_scratch_store_is_a_prefix_of_its_own_below_the_configured_one() {
        let conf = json!({"module": "event", "model_prefix": ["aimm", "model"]});
        let scratch = EventPlugin::scratch_conf(&conf, "/tmp/aimm-conformance-x1").unwrap();
        assert_eq!(
            scratch["model_prefix"],
            json!(["aimm", "model", "conformance-aimm-conformance-x1"])
        );
        assert_eq!(scratch["module"], "event", "the rest is kept");
    }

    #[test]
    fn without_an_event_server_the_backend_is_refused_naming_the_setting() {
        let host = Host {
            log: Arc::new(NoLog),
            event_client: None,
        };
        let conf = json!({"model_prefix": ["aimm", "model"]});
        let err = match EventPlugin::create_backend(&conf, host) {
            Ok(_) => panic!("created without an event server"),
            Err(err) => err,
        };
        assert_eq!(err.kind, aimm_backend_api::ErrorKind::InvalidConfig);
        assert!(err.message.contains("hat.eventer_server"), "{err}");
    }
}
