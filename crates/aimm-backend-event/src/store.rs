//! [`EventBackend`]: models as the newest events under a prefix.

use crate::claims::Claims;
use crate::codec::{claim_type, describe, model_event, model_type, payload_of, ModelPayload};
use crate::ids::instance_id;
use crate::latest::{digest_of, Digest, Latest, Lookup};
use crate::own_writes::{OwnWrites, Whose};
use aimm_backend_api::{
    event_type, Backend, BackendError, ErrorKind, Event, EventClient, EventType, InstanceId,
    ListenerRegistry, Model, ModelChangeListener, ModelInfo, ROption, RString, RVec, RegisterEvent,
    RegisterMode, Result,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A model store in a Hat event server (see the crate docs).
pub struct EventBackend {
    prefix: Vec<String>,
    client: Arc<dyn EventClient>,
    listeners: ListenerRegistry,
    own_writes: OwnWrites,
    /// How far model events must get before a write is acknowledged.
    acknowledge: RegisterMode,
    /// Models known to exist, and what the newest event of each holds
    /// where this backend knows it. Models are never deleted, so an id
    /// once seen stays valid, and checking it again would cost a query
    /// whose answer carries the whole model.
    latest: Latest,
    claims: Claims,
    /// Ids claimed ahead and not yet handed out, in the order they are
    /// handed out (each block's from its highest down).
    pooled: Mutex<VecDeque<InstanceId>>,
}

/// Ids claimed in one registration when none are pooled: a create then
/// costs one round trip (the check) instead of two, and a registration of
/// this many small claim events costs the server about what one does.
pub(crate) const CLAIM_BLOCK: usize = 16;

/// Ids claimed in one registration with `acknowledge: sent`. A claim is
/// answered only once the server has registered every model event sent
/// before it, and sent writes come faster than the server registers large
/// ones: with blocks of [`CLAIM_BLOCK`], every sixteenth create of 256 KiB
/// waited for the whole backlog (creates through the Python server took
/// 1.3 times stock's call time; with blocks of 256, a fifth of it). The
/// unused rest of a block is skipped when the backend closes.
pub(crate) const SENT_CLAIM_BLOCK: usize = 256;

impl EventBackend {
    /// A backend for models under `prefix`, talking through `client`, that
    /// acknowledges a write once its model event has reached `acknowledge`
    /// ([`RegisterMode::Persisted`], [`RegisterMode::Registered`], or
    /// [`RegisterMode::Sent`]: as soon as it is sent, as the Python backend
    /// does).
    pub fn new(
        prefix: Vec<String>,
        client: Arc<dyn EventClient>,
        acknowledge: RegisterMode,
    ) -> Self {
        EventBackend {
            prefix,
            client,
            listeners: ListenerRegistry::default(),
            own_writes: OwnWrites::default(),
            acknowledge,
            latest: Latest::default(),
            claims: Claims::default(),
            pooled: Mutex::default(),
        }
    }

    /// Whether model `id` exists: known, or else asked of the server.
    fn exists(&self, id: InstanceId) -> Result<bool> {
        if self.latest.lookup(id) != Lookup::Unknown {
            return Ok(true);
        }
        let Some(event) = self.latest_of(id)? else {
            return Ok(false);
        };
        self.latest.saw(id, &event.id, None);
        Ok(true)
    }

    /// Whether the server's newest event of `model` already holds it, as
    /// far as this backend can tell without a query: it wrote or compared
    /// that event itself, and has seen no newer one. An id never seen is
    /// asked of the server, which sends the event whole: compared as it
    /// is, that costs no more than the query does. `NotFound` if there is
    /// no such model.
    fn already_holds(&self, model: &Model, content: &Digest) -> Result<bool> {
        let id = model.instance_id;
        match self.latest.lookup(id) {
            Lookup::Holds(held) => return Ok(held == *content),
            Lookup::Exists => return Ok(false),
            Lookup::Unknown => {}
        }
        let event = self.latest_of(id)?.ok_or(BackendError::not_found(id))?;
        let holds = payload_of(&self.prefix, &event)
            .is_ok_and(|payload| payload.holds(&model.model_type, &model.instance));
        self.latest.saw(id, &event.id, holds.then_some(*content));
        Ok(holds)
    }

    fn subscription(&self) -> EventType {
        event_type(self.prefix.iter().cloned().chain(["*".to_string()]))
    }

    /// The newest event of model `id`, if any.
    fn latest_of(&self, id: InstanceId) -> Result<Option<Event>> {
        let events = self
            .client
            .query_latest(vec![model_type(&self.prefix, id)].into())?;
        Ok(events.into_iter().next())
    }

    /// A fresh instance id, handed out by the server (see the crate docs),
    /// claimed together with those of the creates waiting at the same time.
    fn claim_id(&self) -> Result<InstanceId> {
        self.claims.next(|count| self.claim_ids(count))
    }

    /// Hands out `count` ids, pooled ones first, claiming a block when the
    /// pool runs short, and returns those no model holds yet, in order.
    ///
    /// A block is checked with one query when it is claimed, and a pooled
    /// id against the models this backend has seen since (notified, read
    /// or written), not with a query of its own. A block is handed out
    /// from its highest id down: a Python host that stores a model at the
    /// highest id it knows plus one then lands beyond the block, never on
    /// an id still pooled here.
    fn claim_ids(&self, count: usize) -> Result<Vec<InstanceId>> {
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            let Some(id) = self.pool().pop_front() else {
                break;
            };
            if self.latest.lookup(id) == Lookup::Unknown {
                ids.push(id);
            } else {
                log::warn!("claimed instance id {id} is taken already; claiming again");
            }
        }
        self.top_up(&mut ids, count)?;
        Ok(ids)
    }

    /// Fills `ids` up to `count` from a newly claimed block, checked with
    /// one query, highest id first, pooling the rest of the block.
    fn top_up(&self, ids: &mut Vec<InstanceId>, count: usize) -> Result<()> {
        if ids.len() >= count {
            return Ok(());
        }
        let short = count - ids.len();
        let mut claimed = self.free_of(self.register_claims(short.max(self.claim_block()))?)?;
        claimed.reverse();
        let ahead = claimed.split_off(short.min(claimed.len()));
        ids.extend(claimed);
        self.pool().extend(ahead);
        Ok(())
    }

    /// Ids to claim at once when the pool runs dry.
    fn claim_block(&self) -> usize {
        if self.acknowledge == RegisterMode::Sent {
            SENT_CLAIM_BLOCK
        } else {
            CLAIM_BLOCK
        }
    }

    /// `ids` without those a model holds already (one query), in order.
    fn free_of(&self, ids: Vec<InstanceId>) -> Result<Vec<InstanceId>> {
        let types = ids.iter().map(|&id| model_type(&self.prefix, id)).collect();
        let taken: Vec<InstanceId> = self
            .client
            .query_latest(types)?
            .iter()
            .filter_map(|event| event.event_type.last()?.parse().ok())
            .collect();
        for id in &taken {
            log::warn!("claimed instance id {id} is taken already; claiming again");
        }
        Ok(ids.into_iter().filter(|id| !taken.contains(id)).collect())
    }

    fn pool(&self) -> MutexGuard<'_, VecDeque<InstanceId>> {
        self.pooled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `count` ids in one registration; returns them in order.
    fn register_claims(&self, count: usize) -> Result<Vec<InstanceId>> {
        let claim = RegisterEvent {
            event_type: claim_type(&self.prefix),
            source_timestamp: ROption::RNone,
            payload: ROption::RNone,
        };
        // A claim need not wait for the disk: the server writes events in
        // order, so the model event that uses the id, which does wait,
        // cannot be persisted without its claim.
        let answer = self
            .client
            .register(vec![claim; count].into(), RegisterMode::Registered)?;
        let events = answer.into_option().unwrap_or_default();
        if events.len() != count || events.iter().any(|event| event.is_none()) {
            return Err(BackendError::new(
                ErrorKind::Unavailable,
                "the event server did not confirm the id claim",
            ));
        }
        events
            .into_iter()
            .filter_map(ROption::into_option)
            .map(|event| instance_id(event.id))
            .collect()
    }

    /// Stores `model`, of `content`, remembers the event as our own and,
    /// once the server has numbered it, what it holds.
    fn store(&self, model: &Model, content: Digest) -> Result<()> {
        let id = model.instance_id;
        let (event, fingerprint) = model_event(&self.prefix, model);
        let in_flight = self.own_writes.begin(id, fingerprint);
        let answer = self
            .client
            .register(vec![event].into(), self.acknowledge)
            .inspect_err(|_| self.latest.forget_content(id))?;
        match answer.into_option() {
            None if self.acknowledge != RegisterMode::Persisted => {
                // No answer says which event is the newest: until its
                // notification does, nothing is skipped on account of
                // this write. A sent write is not even known to have
                // arrived.
                // `exists` first: a notification handled from here on
                // tells what the event holds, and must not be undone.
                self.latest.exists(id);
                let registered = self.acknowledge == RegisterMode::Registered;
                if let Some(event) = in_flight.unanswered(registered.then_some(content)) {
                    self.latest.saw(id, &event, Some(content));
                }
                Ok(())
            }
            Some(events) => match events.into_iter().next() {
                Some(ROption::RSome(event)) => {
                    in_flight.written(event.id);
                    self.latest.saw(id, &event.id, Some(content));
                    Ok(())
                }
                _ => Err(self.unconfirmed(id)),
            },
            None => Err(self.unconfirmed(id)),
        }
    }

    /// The server's answer did not confirm the model event of model `id`.
    fn unconfirmed(&self, id: InstanceId) -> BackendError {
        self.latest.forget_content(id);
        BackendError::new(
            ErrorKind::Unavailable,
            "the event server did not confirm the model event",
        )
    }

    /// The digest of `model`, unless nothing would use it: with
    /// `acknowledge: sent` no write is ever compared.
    fn content_of(&self, model: &Model) -> Digest {
        if self.acknowledge == RegisterMode::Sent {
            Digest::default()
        } else {
            digest_of(model)
        }
    }

    /// The model payloads among `events`, undecoded; the others are
    /// skipped with a warning.
    fn payloads_of<'a>(&self, events: &'a [Event]) -> Vec<(&'a Event, ModelPayload<'a>)> {
        events
            .iter()
            .filter_map(|event| match payload_of(&self.prefix, event) {
                Ok(payload) => Some((event, payload)),
                Err(why) => {
                    log::warn!("skipping {}: {why}", describe(event));
                    None
                }
            })
            .collect()
    }

    /// Calls `each` with the latest events under the prefix, one at a
    /// time, as the host decodes them.
    fn each_latest_model(&self, each: &mut dyn FnMut(Event) -> Result<()>) -> Result<()> {
        self.client
            .query_latest_each(vec![self.subscription()].into(), each)
    }
}

/// `result`, or a warning naming `event` and `None`.
fn or_skip<T>(event: &Event, result: std::result::Result<T, String>) -> Option<T> {
    result
        .map_err(|why| log::warn!("skipping {}: {why}", describe(event)))
        .ok()
}

impl Backend for EventBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        // Each event is dropped once decoded, before the next arrives, so
        // besides the models only one event is held at a time.
        let mut models = Vec::new();
        self.each_latest_model(&mut |event| {
            let model = payload_of(&self.prefix, &event).and_then(ModelPayload::into_model);
            if let Some(model) = or_skip(&event, model) {
                self.latest.saw(model.instance_id, &event.id, None);
                models.push(model);
            }
            Ok(())
        })?;
        models.sort_by_key(|m| m.instance_id);
        Ok(models.into())
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        // The server sends payloads with every event; each is checked and
        // measured, not decoded, and dropped before the next arrives.
        let mut infos = Vec::new();
        self.each_latest_model(&mut |event| {
            let Some(payload) = or_skip(&event, payload_of(&self.prefix, &event)) else {
                return Ok(());
            };
            if let Some(size) = or_skip(&event, payload.decoded_len()) {
                self.latest.saw(payload.id, &event.id, None);
                infos.push(ModelInfo {
                    instance_id: payload.id,
                    model_type: payload.model_type.as_ref().into(),
                    size,
                });
            }
            Ok(())
        })?;
        infos.sort_by_key(|m| m.instance_id);
        Ok(infos.into())
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        let event = self
            .latest_of(instance_id)?
            .ok_or(BackendError::not_found(instance_id))?;
        payload_of(&self.prefix, &event)
            .and_then(ModelPayload::into_model)
            .map_err(|why| {
                BackendError::storage(format!("{} is not a valid model: {why}", describe(&event)))
            })
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = Model {
            instance_id: self.claim_id()?,
            model_type,
            instance,
        };
        self.store(&model, self.content_of(&model))?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        let content = self.content_of(&model);
        if self.acknowledge == RegisterMode::Sent {
            if !self.exists(model.instance_id)? {
                return Err(BackendError::not_found(model.instance_id));
            }
        } else if self.already_holds(&model, &content)? {
            log::debug!(
                "model {} is stored as given already; nothing registered",
                model.instance_id
            );
            return Ok(model);
        }
        self.store(&model, content)?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        if self.exists(model.instance_id)? {
            return Err(BackendError::conflict(model.instance_id));
        }
        self.store(&model, self.content_of(&model))?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        Ok(self.listeners.register(listener))
    }

    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        Ok(())
    }

    fn process_events(&self, events: RVec<Event>) -> Result<()> {
        for (event, payload) in self.payloads_of(&events) {
            match self
                .own_writes
                .whose(&event.id, payload.id, || payload.fingerprint())
            {
                // What it holds is recorded by the write itself, or not
                // known.
                Whose::Ours => continue,
                Whose::OursHolding(content) => {
                    self.latest.saw(payload.id, &event.id, Some(content));
                    continue;
                }
                Whose::Theirs => {}
            }
            // Another host's write: what this backend wrote is not current.
            self.latest.saw(payload.id, &event.id, None);
            // Decoding is what a large model costs: only for a listener.
            if self.listeners.is_empty() {
                continue;
            }
            if let Some(model) = or_skip(event, payload.into_model()) {
                self.listeners.notify(&model);
            }
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::tests::{claimed, event_id};
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// An event server in memory: numbers registrations, answers latest
    /// queries by exact type (or everything), counts queries, records the
    /// mode of every registration, and can be told to confirm nothing.
    #[derive(Default)]
    struct FakeServer {
        latest: Mutex<std::collections::BTreeMap<Vec<String>, Event>>,
        session: Mutex<i64>,
        queries: std::sync::atomic::AtomicUsize,
        modes: Mutex<Vec<(Vec<String>, RegisterMode)>>,
        unconfirmed: std::sync::atomic::AtomicBool,
        /// Answers every registration in full but for its last event.
        last_unconfirmed: std::sync::atomic::AtomicBool,
        /// Answers model events (all with payloads) with no events, as a
        /// host that knows registered ones registered without the echo
        /// (in any mode that waits: a persisted write must not take it).
        unechoed: std::sync::atomic::AtomicBool,
    }

    impl FakeServer {
        /// Stores `event` as another host would, without a session of ours.
        fn put(&self, event_type: &[&str], session: i64, payload: Option<&str>) {
            let key: Vec<String> = event_type.iter().map(|s| s.to_string()).collect();
            let event = Event {
                id: event_id(1, session, 1),
                event_type: event_type_of(&key),
                timestamp: aimm_backend_api::Timestamp { s: 0, us: 0 },
                source_timestamp: ROption::RNone,
                payload: match payload {
                    Some(text) => ROption::RSome(aimm_backend_api::EventPayload::Json(text.into())),
                    None => ROption::RNone,
                },
            };
            self.latest.lock().unwrap().insert(key, event);
        }

        fn event(&self, event_type: &[&str]) -> Option<Event> {
            let key: Vec<String> = event_type.iter().map(|s| s.to_string()).collect();
            self.latest.lock().unwrap().get(&key).cloned()
        }

        fn modes(&self) -> Vec<(Vec<String>, RegisterMode)> {
            self.modes.lock().unwrap().clone()
        }
    }

    fn event_type_of(segments: &[String]) -> EventType {
        event_type(segments.iter().cloned())
    }

    impl EventClient for FakeServer {
        fn register(
            &self,
            events: RVec<RegisterEvent>,
            mode: RegisterMode,
        ) -> Result<ROption<RVec<ROption<Event>>>> {
            if self.unconfirmed.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(ROption::RSome(vec![ROption::RNone].into()));
            }
            let mut session = self.session.lock().unwrap();
            *session += 1;
            let registered: RVec<ROption<Event>> = events
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let event = Event {
                        id: event_id(1, *session, i as i64 + 1),
                        event_type: e.event_type,
                        timestamp: aimm_backend_api::Timestamp { s: 0, us: 0 },
                        source_timestamp: e.source_timestamp,
                        payload: e.payload,
                    };
                    let key: Vec<String> = event.event_type.iter().map(|s| s.to_string()).collect();
                    self.modes.lock().unwrap().push((key.clone(), mode));
                    self.latest.lock().unwrap().insert(key, event.clone());
                    ROption::RSome(event)
                })
                .collect();
            let mut registered = registered;
            if self
                .last_unconfirmed
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                if let Some(last) = registered.last_mut() {
                    *last = ROption::RNone;
                }
            }
            let unechoed = self.unechoed.load(std::sync::atomic::Ordering::SeqCst)
                && registered.iter().all(|e| {
                    e.as_ref()
                        .into_option()
                        .is_some_and(|e| e.payload.is_some())
                });
            Ok(match mode {
                RegisterMode::Sent => ROption::RNone,
                _ if unechoed => ROption::RNone,
                _ => ROption::RSome(registered),
            })
        }

        fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
            self.queries
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let latest = self.latest.lock().unwrap();
            Ok(event_types
                .iter()
                .flat_map(|t| {
                    let wanted: Vec<String> = t.iter().map(|s| s.to_string()).collect();
                    latest
                        .iter()
                        .filter(move |(key, _)| {
                            *key == &wanted
                                || (wanted.last().map(String::as_str) == Some("*")
                                    && key.len() == wanted.len()
                                    && key[..key.len() - 1] == wanted[..wanted.len() - 1])
                        })
                        .map(|(_, e)| e.clone())
                        .collect::<Vec<_>>()
                })
                .collect())
        }
    }

    #[test]
    fn updates_of_known_models_ask_the_server_nothing() {
        for mode in [RegisterMode::Registered, RegisterMode::Sent] {
            let server = Arc::new(FakeServer::default());
            let backend = EventBackend::new(vec!["aimm".into(), "m".into()], server.clone(), mode);
            let created = backend.create_model("t".into(), vec![1].into()).unwrap();
            let queries = || server.queries.load(std::sync::atomic::Ordering::SeqCst);
            let before = queries();
            let updated = Model::new(created.instance_id, "t", vec![2]);
            backend.update_model(updated.clone()).unwrap();
            backend.update_model(updated).unwrap();
            assert_eq!(
                queries(),
                before,
                "{mode:?}: an update of a created model queried"
            );
            // Another backend learns the id from get_models, then updates
            // without asking again; an unknown id is still asked and refused.
            let other = EventBackend::new(vec!["aimm".into(), "m".into()], server.clone(), mode);
            assert_eq!(other.get_models().unwrap().len(), 1);
            let before = queries();
            other
                .update_model(Model::new(created.instance_id, "t", vec![3]))
                .unwrap();
            assert_eq!(
                queries(),
                before,
                "{mode:?}: an update of a listed model queried"
            );
            let err = other
                .update_model(Model::new(12345, "t", vec![3]))
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);
            assert_eq!(queries(), before + 1);
        }
    }

    /// How many model events (not claims) the server has been sent.
    fn model_events(server: &FakeServer) -> usize {
        server
            .modes()
            .iter()
            .filter(|(key, _)| key.len() == PREFIX.len() + 1)
            .count()
    }

    /// What the server's newest event of `id` would read as.
    fn stored(server: &FakeServer, id: InstanceId) -> Model {
        let key = model_key(id);
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        crate::codec::model_of(&PREFIX.map(String::from), &server.event(&key).unwrap()).unwrap()
    }

    #[test]
    fn an_update_that_repeats_the_newest_event_registers_nothing_and_tells_no_listener() {
        for mode in [RegisterMode::Persisted, RegisterMode::Registered] {
            let server = Arc::new(FakeServer::default());
            let backend = backend(&server, mode);
            let heard = Arc::new(Mutex::new(0));
            let counter = heard.clone();
            backend
                .register_model_change_cb(Arc::new(move |_: &Model| *counter.lock().unwrap() += 1))
                .unwrap();
            let created = backend.create_model("t".into(), vec![1].into()).unwrap();
            let id = created.instance_id;
            let writes = |model: Model| {
                let before = (model_events(&server), *heard.lock().unwrap());
                assert_eq!(backend.update_model(model.clone()).unwrap(), model);
                let after = (model_events(&server), *heard.lock().unwrap());
                assert_eq!(stored(&server, model.instance_id), model, "{mode:?}");
                assert_eq!(
                    after.0 - before.0,
                    after.1 - before.1,
                    "one listener call per write"
                );
                after.0 - before.0
            };
            assert_eq!(writes(created.clone()), 0, "{mode:?}: as created");
            assert_eq!(
                writes(Model::new(id, "t", vec![2])),
                1,
                "{mode:?}: new bytes"
            );
            assert_eq!(
                writes(Model::new(id, "t", vec![2])),
                0,
                "{mode:?}: the same again"
            );
            assert_eq!(
                writes(Model::new(id, "u", vec![2])),
                1,
                "{mode:?}: another type"
            );
            assert_eq!(
                writes(Model::new(id, "u", vec![2, 0])),
                1,
                "{mode:?}: longer"
            );
            let imported = backend.import_model(Model::new(7, "t", vec![3])).unwrap();
            assert_eq!(writes(imported), 0, "{mode:?}: as imported");
        }
    }

    #[test]
    fn with_acknowledge_sent_every_update_is_registered() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Sent);
        let created = backend.create_model("t".into(), vec![1].into()).unwrap();
        backend.update_model(created.clone()).unwrap();
        backend.update_model(created).unwrap();
        assert_eq!(model_events(&server), 3);
    }

    #[test]
    fn a_newer_event_of_another_host_makes_the_same_update_register_again() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let model = backend.create_model("t".into(), vec![1].into()).unwrap();
        let id = model.instance_id;
        let key = model_key(id);
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        // Notified: an older event of another host changes nothing known...
        server.put(&key, 0, Some(r#"{"type": "py", "instance": "AQID"}"#));
        backend
            .process_events(vec![server.event(&key).unwrap()].into())
            .unwrap();
        backend.update_model(model.clone()).unwrap();
        assert_eq!(model_events(&server), 1, "an older event is not newer");
        // ...a newer one does.
        server.put(&key, 1000, Some(r#"{"type": "py", "instance": "AQID"}"#));
        backend
            .process_events(vec![server.event(&key).unwrap()].into())
            .unwrap();
        backend.update_model(model.clone()).unwrap();
        assert_eq!(model_events(&server), 2);
        assert_eq!(stored(&server, id), model);
        // Seen in a listing, without a notification.
        server.put(&key, 2000, Some(r#"{"type": "py", "instance": "AQID"}"#));
        backend.list_models().unwrap();
        backend.update_model(model.clone()).unwrap();
        assert_eq!(model_events(&server), 3);
        server.put(&key, 3000, Some(r#"{"type": "py", "instance": "AQID"}"#));
        backend.get_models().unwrap();
        backend.update_model(model.clone()).unwrap();
        assert_eq!(model_events(&server), 4);
        assert_eq!(stored(&server, id), model);
    }

    #[test]
    fn a_backend_that_never_saw_a_model_compares_with_the_queried_event() {
        let server = Arc::new(FakeServer::default());
        python_model(&server, 9, 5);
        let backend = backend(&server, RegisterMode::Registered);
        let queries = || server.queries.load(std::sync::atomic::Ordering::SeqCst);
        backend
            .update_model(Model::new(9, "py", vec![1, 2, 3]))
            .unwrap();
        assert_eq!((model_events(&server), queries()), (0, 1), "as stored");
        backend
            .update_model(Model::new(9, "py", vec![1, 2, 3]))
            .unwrap();
        assert_eq!((model_events(&server), queries()), (0, 1), "remembered");
        let other = self::backend(&server, RegisterMode::Registered);
        other
            .update_model(Model::new(9, "py", vec![1, 2, 4]))
            .unwrap();
        assert_eq!(model_events(&server), 1, "different bytes");
        assert_eq!(stored(&server, 9), Model::new(9, "py", vec![1, 2, 4]));
    }

    #[test]
    fn after_an_unconfirmed_write_the_same_update_is_registered_again() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let model = backend.create_model("t".into(), vec![1].into()).unwrap();
        let changed = Model::new(model.instance_id, "t", vec![2]);
        server
            .unconfirmed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        backend.update_model(changed).unwrap_err();
        server
            .unconfirmed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let before = model_events(&server);
        backend.update_model(model.clone()).unwrap();
        assert_eq!(model_events(&server), before + 1);
        assert_eq!(stored(&server, model.instance_id), model);
    }

    const PREFIX: [&str; 2] = ["aimm", "m"];

    fn backend(server: &Arc<FakeServer>, mode: RegisterMode) -> EventBackend {
        EventBackend::new(
            PREFIX.iter().map(|s| s.to_string()).collect(),
            server.clone(),
            mode,
        )
    }

    fn model_key(id: InstanceId) -> [String; 3] {
        ["aimm".into(), "m".into(), id.to_string()]
    }

    fn python_model(server: &FakeServer, id: InstanceId, session: i64) {
        let key = model_key(id);
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        server.put(&key, session, Some(r#"{"type": "py", "instance": "AQID"}"#));
    }

    /// A server whose host answers model events with no events.
    fn unechoing_server() -> Arc<FakeServer> {
        let server = FakeServer::default();
        server
            .unechoed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Arc::new(server)
    }

    #[test]
    fn an_unechoed_registered_write_is_known_once_its_notification_arrives() {
        let server = unechoing_server();
        let backend = backend(&server, RegisterMode::Registered);
        let queries = || server.queries.load(std::sync::atomic::Ordering::SeqCst);
        let registrations = || server.modes().len();
        let heard = backend.create_model("t".into(), vec![1].into()).unwrap();
        let unheard = backend.create_model("t".into(), vec![2].into()).unwrap();
        let notification = |model: &Model| {
            let key = model_key(model.instance_id);
            let key: Vec<&str> = key.iter().map(String::as_str).collect();
            server.event(&key).unwrap()
        };
        backend
            .process_events(vec![notification(&heard)].into())
            .unwrap();
        // Its notification told which event holds it: an unchanged update
        // asks nothing and registers nothing.
        let (asked, registered) = (queries(), registrations());
        backend.update_model(heard.clone()).unwrap();
        assert_eq!((queries(), registrations()), (asked, registered));
        // Without it, nothing is skipped on a guess: registered again.
        backend.update_model(unheard.clone()).unwrap();
        assert_eq!((queries(), registrations()), (asked, registered + 1));
        // A changed update is registered, and its own notification (not
        // another host's write) tells nobody anything new.
        let changed = Model::new(heard.instance_id, "t", vec![9]);
        backend.update_model(changed.clone()).unwrap();
        let registered = registered + 2;
        assert_eq!(registrations(), registered);
        let heard_by = Arc::new(Mutex::new(Vec::new()));
        let sink = heard_by.clone();
        backend
            .register_model_change_cb(Arc::new(move |m: &Model| {
                sink.lock().unwrap().push(m.instance_id)
            }))
            .unwrap();
        backend
            .process_events(vec![notification(&changed)].into())
            .unwrap();
        assert!(heard_by.lock().unwrap().is_empty(), "our own write");
        let asked = queries();
        backend.update_model(changed).unwrap();
        assert_eq!((queries(), registrations()), (asked, registered));
    }

    #[test]
    fn a_persisted_write_answered_with_no_events_is_not_acknowledged() {
        let server = unechoing_server();
        let backend = backend(&server, RegisterMode::Persisted);
        let err = backend
            .create_model("t".into(), vec![1].into())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("did not confirm"), "{err}");
    }

    /// The top of the first block the fake server numbers (session 1).
    fn top_of_first_block() -> InstanceId {
        claimed(1, CLAIM_BLOCK as i64)
    }

    #[test]
    fn a_claimed_id_a_model_already_holds_is_skipped() {
        let server = Arc::new(FakeServer::default());
        // The first block is session 1, handed out from its top; another
        // host's model sits there already.
        python_model(&server, top_of_first_block(), 99);
        let backend = backend(&server, RegisterMode::Registered);
        let created = backend.create_model("t".into(), vec![5].into()).unwrap();
        assert_eq!(created.instance_id, claimed(1, CLAIM_BLOCK as i64 - 1));
        let kept = backend.get_model(top_of_first_block()).unwrap();
        assert_eq!(kept, Model::new(top_of_first_block(), "py", vec![1, 2, 3]));
        assert_eq!(
            backend.get_model(created.instance_id).unwrap(),
            created,
            "the new model is stored under its own id"
        );
    }

    #[test]
    fn a_python_host_counting_up_from_the_highest_id_lands_beyond_the_pooled_ids() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let first = backend.create_model("t".into(), vec![1].into()).unwrap();
        assert_eq!(first.instance_id, top_of_first_block());
        // A Python host stores its next model at the highest id plus one,
        // unnotified here.
        python_model(&server, first.instance_id + 1, 99);
        let ids: Vec<InstanceId> = (0..CLAIM_BLOCK)
            .map(|i| {
                backend
                    .create_model("t".into(), vec![i as u8].into())
                    .unwrap()
                    .instance_id
            })
            .collect();
        assert!(!ids.contains(&(first.instance_id + 1)), "{ids:?}");
        assert_kept(&backend, first.instance_id + 1);
    }

    /// Asserts that the other host's model [`python_model`] put at `id` is
    /// still there.
    fn assert_kept(backend: &EventBackend, id: InstanceId) {
        let kept = backend.get_model(id).unwrap();
        assert_eq!(
            kept.model_type.as_str(),
            "py",
            "the other host's model at {id} was overwritten"
        );
    }

    fn queries(server: &FakeServer) -> usize {
        server.queries.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Hands `backend` the notification of the model `server` holds at `id`.
    fn notify(backend: &EventBackend, server: &FakeServer, id: InstanceId) {
        let key = model_key(id);
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let event = server.event(&key).unwrap();
        backend.process_events(vec![event].into()).unwrap();
    }

    #[test]
    fn a_pooled_id_is_checked_against_the_models_seen_without_a_query() {
        for mode in [
            RegisterMode::Persisted,
            RegisterMode::Registered,
            RegisterMode::Sent,
        ] {
            let server = Arc::new(FakeServer::default());
            let backend = backend(&server, mode);
            let top = backend.claim_block() as i64;
            let first = backend.create_model("t".into(), vec![1].into()).unwrap();
            assert_eq!(first.instance_id, claimed(1, top));
            let next = claimed(1, top - 1);
            python_model(&server, next, 99);
            notify(&backend, &server, next);
            let before = queries(&server);
            let second = backend.create_model("t".into(), vec![2].into()).unwrap();
            assert_eq!(
                second.instance_id,
                claimed(1, top - 2),
                "{mode:?}: the id seen taken is skipped"
            );
            assert_eq!(
                queries(&server),
                before,
                "{mode:?}: a pooled id was asked of the server"
            );
            assert_kept(&backend, next);
        }
    }

    #[test]
    fn a_claimed_block_is_checked_with_one_query_when_claimed() {
        for mode in [RegisterMode::Registered, RegisterMode::Sent] {
            let server = Arc::new(FakeServer::default());
            let backend = backend(&server, mode);
            let top = backend.claim_block() as i64;
            // Taken before the claim, and never notified to the backend.
            let taken = claimed(1, top - 1);
            python_model(&server, taken, 99);
            let ids: Vec<InstanceId> = (0..4u8)
                .map(|i| {
                    backend
                        .create_model("t".into(), vec![i].into())
                        .unwrap()
                        .instance_id
                })
                .collect();
            let expected: Vec<InstanceId> = [top, top - 2, top - 3, top - 4]
                .map(|i| claimed(1, i))
                .to_vec();
            assert_eq!(ids, expected, "{mode:?}: the taken id is skipped");
            assert_eq!(queries(&server), 1, "{mode:?}: one query for the block");
            assert_kept(&backend, taken);
        }
    }

    /// How many id claim events the server has been sent.
    fn claim_events(server: &FakeServer) -> usize {
        server
            .modes()
            .iter()
            .filter(|(event_type, _)| event_type.last().is_some_and(|s| s.ends_with("#id-claims")))
            .count()
    }

    #[test]
    fn with_acknowledge_sent_ids_are_claimed_in_larger_blocks() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Sent);
        let create = |i: usize| {
            backend
                .create_model("t".into(), vec![i as u8].into())
                .unwrap()
                .instance_id
        };
        let ids: HashSet<InstanceId> = (0..SENT_CLAIM_BLOCK).map(create).collect();
        assert_eq!(ids.len(), SENT_CLAIM_BLOCK, "distinct ids");
        assert_eq!(
            claim_events(&server),
            SENT_CLAIM_BLOCK,
            "one claim for all of them"
        );
        assert!(!ids.contains(&create(SENT_CLAIM_BLOCK)));
        assert_eq!(
            claim_events(&server),
            2 * SENT_CLAIM_BLOCK,
            "then the next block"
        );
    }

    #[test]
    fn creates_claim_ids_a_block_at_a_time() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let ids: Vec<InstanceId> = (0..CLAIM_BLOCK + 1)
            .map(|i| {
                backend
                    .create_model("t".into(), vec![i as u8].into())
                    .unwrap()
                    .instance_id
            })
            .collect();
        assert_eq!(
            claim_events(&server),
            2 * CLAIM_BLOCK,
            "two blocks of claim events"
        );
        let first_block: Vec<InstanceId> = (1..=CLAIM_BLOCK as i64)
            .rev()
            .map(|instance| claimed(1, instance))
            .collect();
        assert_eq!(
            ids[..CLAIM_BLOCK],
            first_block,
            "the first block, from its top"
        );
        // The model events took sessions between the two claims.
        let next = ids[CLAIM_BLOCK];
        assert!(
            next > ids[0] && next & 0xffff == CLAIM_BLOCK as i64,
            "then the top id of a new block, not {next}"
        );
    }

    #[test]
    fn a_group_short_of_pooled_ids_takes_them_and_the_rest_from_a_new_block() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let first = backend.claim_ids(CLAIM_BLOCK - 1).unwrap();
        assert_eq!(first.len(), CLAIM_BLOCK - 1);
        assert_eq!(backend.pool().len(), 1, "one id of the block left");
        let next = backend.claim_ids(3).unwrap();
        let top = CLAIM_BLOCK as i64;
        assert_eq!(
            next,
            [claimed(1, 1), claimed(2, top), claimed(2, top - 1)],
            "the pooled one first, then the new block's top"
        );
        assert_eq!(
            backend.pool().len(),
            CLAIM_BLOCK - 2,
            "the new block's rest"
        );
    }

    #[test]
    fn a_claim_the_server_answers_only_in_part_fails() {
        let server = Arc::new(FakeServer::default());
        server
            .last_unconfirmed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let backend = backend(&server, RegisterMode::Registered);
        let err = backend.claim_ids(1).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(
            err.message.contains("did not confirm the id claim"),
            "{err}"
        );
    }

    #[test]
    fn claims_give_up_after_max_claims_taken_ids_storing_nothing() {
        let server = Arc::new(FakeServer::default());
        // Every id of the first MAX_CLAIMS blocks, one block a round.
        let sessions = 1..=crate::claims::MAX_CLAIMS as i64;
        for session in sessions {
            for instance in 1..=CLAIM_BLOCK as i64 {
                python_model(&server, claimed(session, instance), 999);
            }
        }
        let backend = backend(&server, RegisterMode::Registered);
        let err = backend
            .create_model("t".into(), vec![5].into())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Storage);
        assert!(err.message.contains("16 claimed instance ids"), "{err}");
        let models = backend.get_models().unwrap();
        assert_eq!(
            models.len(),
            crate::claims::MAX_CLAIMS * CLAIM_BLOCK,
            "only the other host's models"
        );
        assert!(models.iter().all(|m| m.model_type.as_str() == "py"));
    }

    #[test]
    fn model_events_wait_for_the_configured_mode_and_claims_only_for_registration() {
        for mode in [
            RegisterMode::Persisted,
            RegisterMode::Registered,
            RegisterMode::Sent,
        ] {
            let server = Arc::new(FakeServer::default());
            let backend = backend(&server, mode);
            let created = backend.create_model("t".into(), vec![1].into()).unwrap();
            backend
                .update_model(Model::new(created.instance_id, "t", vec![2]))
                .unwrap();
            backend.import_model(Model::new(7, "t", vec![3])).unwrap();
            let modes = server.modes();
            let claim: Vec<String> = vec!["aimm".into(), "m#id-claims".into()];
            let mut expected = vec![(claim, RegisterMode::Registered); backend.claim_block()];
            expected.extend([
                (model_key(created.instance_id).to_vec(), mode),
                (model_key(created.instance_id).to_vec(), mode),
                (model_key(7).to_vec(), mode),
            ]);
            assert_eq!(modes, expected, "{mode:?}");
        }
    }

    #[test]
    fn a_write_the_server_does_not_confirm_is_unavailable_and_not_reported() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let created = backend.create_model("t".into(), vec![1].into()).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let recorder = heard.clone();
        backend
            .register_model_change_cb(Arc::new(move |m: &Model| {
                recorder.lock().unwrap().push(m.clone())
            }))
            .unwrap();
        server
            .unconfirmed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for result in [
            backend.create_model("t".into(), vec![2].into()),
            backend.update_model(Model::new(created.instance_id, "t", vec![3])),
            backend.import_model(Model::new(5, "t", vec![4])),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
            assert!(err.message.contains("did not confirm"), "{err}");
        }
        assert!(
            heard.lock().unwrap().is_empty(),
            "a failed write was reported"
        );
    }

    #[test]
    fn update_of_an_unknown_id_and_import_of_a_stored_one_register_nothing() {
        let server = Arc::new(FakeServer::default());
        python_model(&server, 42, 9);
        let backend = backend(&server, RegisterMode::Registered);
        let err = backend
            .update_model(Model::new(41, "t", vec![1]))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = backend
            .import_model(Model::new(42, "t", vec![1]))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert!(server.modes().is_empty(), "{:?}", server.modes());
        assert_eq!(
            backend.get_model(42).unwrap(),
            Model::new(42, "py", vec![1, 2, 3])
        );
        // Once imported elsewhere and seen, the id is known: update works.
        backend.update_model(Model::new(42, "t", vec![8])).unwrap();
        assert_eq!(backend.get_model(42).unwrap(), Model::new(42, "t", vec![8]));
    }

    #[test]
    fn get_models_is_in_id_order_and_skips_events_that_are_not_models() {
        let server = Arc::new(FakeServer::default());
        for (id, session) in [(30, 1), (10, 2), (20, 3)] {
            python_model(&server, id, session);
        }
        server.put(
            &["aimm", "m", "junk"],
            4,
            Some(r#"{"type": "t", "instance": "AQID"}"#),
        );
        server.put(&["aimm", "m", "5"], 5, None);
        let backend = backend(&server, RegisterMode::Registered);
        let ids: Vec<InstanceId> = backend
            .get_models()
            .unwrap()
            .iter()
            .map(|m| m.instance_id)
            .collect();
        assert_eq!(ids, [10, 20, 30]);
        let listed: Vec<(InstanceId, u64)> = backend
            .list_models()
            .unwrap()
            .iter()
            .map(|m| (m.instance_id, m.size))
            .collect();
        assert_eq!(listed, [(10, 3), (20, 3), (30, 3)]);
        let err = backend.get_model(5).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Storage);
        assert!(err.message.contains("is not a valid model"), "{err}");
        assert_eq!(backend.get_model(6).unwrap_err().kind, ErrorKind::NotFound);
    }

    /// A host client that hands out listings only one event at a time: its
    /// `query_latest` refuses wildcard queries, its `query_latest_each`
    /// hands out the fake server's answer event by event (and breaks off
    /// before event `breaks_off_at`, if set).
    struct OneAtATime {
        server: Arc<FakeServer>,
        breaks_off_at: Option<usize>,
        handed_out: std::sync::atomic::AtomicUsize,
    }

    impl OneAtATime {
        fn new(server: &Arc<FakeServer>, breaks_off_at: Option<usize>) -> Arc<Self> {
            Arc::new(OneAtATime {
                server: server.clone(),
                breaks_off_at,
                handed_out: Default::default(),
            })
        }
    }

    impl EventClient for OneAtATime {
        fn register(
            &self,
            events: RVec<RegisterEvent>,
            mode: RegisterMode,
        ) -> Result<ROption<RVec<ROption<Event>>>> {
            self.server.register(events, mode)
        }

        fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
            if event_types
                .iter()
                .any(|t| t.last().map(RString::as_str) == Some("*"))
            {
                return Err(BackendError::unsupported(
                    "this host hands out listings one event at a time",
                ));
            }
            self.server.query_latest(event_types)
        }

        fn query_latest_each(
            &self,
            event_types: RVec<EventType>,
            each: &mut dyn FnMut(Event) -> Result<()>,
        ) -> Result<()> {
            let events = self.server.query_latest(event_types)?;
            for (n, event) in events.into_iter().enumerate() {
                if Some(n) == self.breaks_off_at {
                    return Err(BackendError::new(
                        ErrorKind::Unavailable,
                        "the connection broke off",
                    ));
                }
                self.handed_out
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                each(event)?;
            }
            Ok(())
        }
    }

    /// Three Python models, 10, 20 and 30, and two events that are not models.
    fn server_with_models_and_junk() -> Arc<FakeServer> {
        let server = Arc::new(FakeServer::default());
        for (id, session) in [(30, 1), (10, 2), (20, 3)] {
            python_model(&server, id, session);
        }
        server.put(
            &["aimm", "m", "junk"],
            4,
            Some(r#"{"type": "t", "instance": "AQID"}"#),
        );
        server.put(&["aimm", "m", "5"], 5, None);
        server
    }

    #[test]
    fn get_models_and_list_models_take_the_events_one_at_a_time() {
        let server = server_with_models_and_junk();
        let client = OneAtATime::new(&server, None);
        let backend = EventBackend::new(
            PREFIX.iter().map(|s| s.to_string()).collect(),
            client.clone(),
            RegisterMode::Registered,
        );
        let models = backend.get_models().unwrap();
        let ids: Vec<InstanceId> = models.iter().map(|m| m.instance_id).collect();
        assert_eq!(ids, [10, 20, 30]);
        assert_eq!(models[0], Model::new(10, "py", vec![1, 2, 3]));
        let listed: Vec<(InstanceId, String, u64)> = backend
            .list_models()
            .unwrap()
            .iter()
            .map(|m| (m.instance_id, m.model_type.to_string(), m.size))
            .collect();
        assert_eq!(
            listed,
            [10, 20, 30].map(|id| (id, "py".to_string(), 3)),
            "in id order, junk skipped"
        );
        assert_eq!(
            client.handed_out.load(std::sync::atomic::Ordering::SeqCst),
            10,
            "five events for each"
        );
        // The models listed are known: their updates ask the server nothing.
        let queries = server.queries.load(std::sync::atomic::Ordering::SeqCst);
        backend.update_model(Model::new(20, "t", vec![4])).unwrap();
        assert_eq!(
            server.queries.load(std::sync::atomic::Ordering::SeqCst),
            queries
        );
        assert_eq!(stored(&server, 20), Model::new(20, "t", vec![4]));
    }

    #[test]
    fn a_listing_the_host_breaks_off_fails_with_its_error() {
        let server = server_with_models_and_junk();
        let backend = EventBackend::new(
            PREFIX.iter().map(|s| s.to_string()).collect(),
            OneAtATime::new(&server, Some(2)),
            RegisterMode::Registered,
        );
        for err in [
            backend.get_models().unwrap_err(),
            backend.list_models().unwrap_err(),
        ] {
            assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
            assert!(err.message.contains("broke off"), "{err}");
        }
    }

    #[test]
    fn notified_events_reach_listeners_unless_they_are_our_own_writes() {
        let server = Arc::new(FakeServer::default());
        let backend = backend(&server, RegisterMode::Registered);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let recorder = heard.clone();
        backend
            .register_model_change_cb(Arc::new(move |m: &Model| {
                recorder.lock().unwrap().push(m.instance_id)
            }))
            .unwrap();
        let ours = backend.create_model("t".into(), vec![1].into()).unwrap();
        let own_event = server
            .event(&["aimm", "m", &ours.instance_id.to_string()])
            .unwrap();
        python_model(&server, 77, 50);
        let theirs = server.event(&["aimm", "m", "77"]).unwrap();
        let junk = Event {
            event_type: event_type(["aimm", "m", "x"]),
            ..theirs.clone()
        };
        backend
            .process_events(vec![own_event, theirs, junk].into())
            .unwrap();
        assert_eq!(*heard.lock().unwrap(), [ours.instance_id, 77]);
        // The notified model is known now: its update asks the server nothing.
        let queries = server.queries.load(std::sync::atomic::Ordering::SeqCst);
        backend.update_model(Model::new(77, "t", vec![2])).unwrap();
        assert_eq!(
            server.queries.load(std::sync::atomic::Ordering::SeqCst),
            queries
        );
        backend.unregister_model_change_cb(0).unwrap();
    }

    #[test]
    fn the_event_backend_passes_conformance_against_an_event_server_in_memory() {
        use aimm_backend_conformance::{run, InProcessTarget};
        for acknowledge in ["persisted", "registered"] {
            let server = Arc::new(FakeServer::default());
            let conf = serde_json::json!({
                "module": "aimm_backend_event",
                "model_prefix": ["aimm", "model"],
                "acknowledge": acknowledge,
            });
            let target = InProcessTarget::<crate::EventPlugin>::scratch(conf)
                .unwrap()
                .with_event_client(server);
            let report = run(&target);
            assert!(report.all_passed(), "acknowledge: {acknowledge}\n{report}");
        }
    }
}
