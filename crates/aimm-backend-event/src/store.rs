//! [`EventBackend`]: models as the newest events under a prefix.

use crate::codec::{claim_type, describe, model_event, model_of, model_type};
use crate::own_writes::OwnWrites;
use aimm_backend_api::{
    event_type, Backend, BackendError, ErrorKind, Event, EventClient, EventId, EventType,
    InstanceId, ListenerRegistry, Model, ModelChangeListener, ModelInfo, ROption, RString, RVec,
    RegisterEvent, RegisterMode, Result,
};
use std::sync::Arc;

/// How often a create claims again when the claimed id is already taken.
const MAX_CLAIMS: usize = 16;

/// A model store in a Hat event server (see the crate docs).
pub struct EventBackend {
    prefix: Vec<String>,
    client: Arc<dyn EventClient>,
    listeners: ListenerRegistry,
    own_writes: OwnWrites,
    /// How far model events must get before a write is acknowledged.
    acknowledge: RegisterMode,
}

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
        }
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

    /// Registers `event`, waits until `mode` is reached, and returns the
    /// event as the server numbered it.
    fn register_confirmed(
        &self,
        event: RegisterEvent,
        mode: RegisterMode,
        what: &str,
    ) -> Result<Event> {
        let answer = self.client.register(vec![event].into(), mode)?;
        match answer
            .into_option()
            .and_then(|events| events.into_iter().next())
        {
            Some(ROption::RSome(event)) => Ok(event),
            _ => Err(BackendError::new(
                ErrorKind::Unavailable,
                format!("the event server did not confirm the {what}"),
            )),
        }
    }

    /// A fresh instance id, handed out by the server (see the crate docs).
    fn claim_id(&self) -> Result<InstanceId> {
        let claim = RegisterEvent {
            event_type: claim_type(&self.prefix),
            source_timestamp: ROption::RNone,
            payload: ROption::RNone,
        };
        for _ in 0..MAX_CLAIMS {
            // A claim need not wait for the disk: the server writes events
            // in order, so the model event that uses the id, which does
            // wait, cannot be persisted without its claim.
            let event =
                self.register_confirmed(claim.clone(), RegisterMode::Registered, "id claim")?;
            let id = id_from(event.id)?;
            if self.latest_of(id)?.is_none() {
                return Ok(id);
            }
            log::warn!("claimed instance id {id} is taken already; claiming again");
        }
        Err(BackendError::storage(format!(
            "{MAX_CLAIMS} claimed instance ids in a row were taken already"
        )))
    }

    /// Stores `model` and remembers the event as our own.
    fn store(&self, model: &Model) -> Result<()> {
        let in_flight = self.own_writes.begin(model);
        if self.acknowledge == RegisterMode::Sent {
            self.client.register(
                vec![model_event(&self.prefix, model)].into(),
                RegisterMode::Sent,
            )?;
            in_flight.sent();
            return Ok(());
        }
        let event = self.register_confirmed(
            model_event(&self.prefix, model),
            self.acknowledge,
            "model event",
        )?;
        in_flight.written(event.id);
        Ok(())
    }

    /// The models among `events`, with their event ids; the others are
    /// skipped with a warning.
    fn models_of(&self, events: impl IntoIterator<Item = Event>) -> Vec<(EventId, Model)> {
        events
            .into_iter()
            .filter_map(|event| match model_of(&self.prefix, &event) {
                Ok(model) => Some((event.id, model)),
                Err(why) => {
                    log::warn!("skipping {}: {why}", describe(&event));
                    None
                }
            })
            .collect()
    }
}

/// Bits of an instance id that hold the claim's event instance.
const INSTANCE_BITS: u32 = 16;

/// `session * 2^16 + instance` of a server-assigned event id.
///
/// hat-event 0.9.44 opens a new session for every register request and
/// numbers the request's events from 1, so a claim (a request of one event)
/// is always instance 1 and the session carries the uniqueness: sessions may
/// grow to 2^47 (centuries at thousands of requests per second).
fn id_from(event: EventId) -> Result<InstanceId> {
    let sessions = 0..1i64 << (63 - INSTANCE_BITS);
    let instances = 0..1i64 << INSTANCE_BITS;
    if !sessions.contains(&event.session) || !instances.contains(&event.instance) {
        return Err(BackendError::storage(format!(
            "event id session {} / instance {} is outside the range ids are made from \
             (session below 2^47, instance below 2^16)",
            event.session, event.instance
        )));
    }
    Ok((event.session << INSTANCE_BITS) | event.instance)
}

impl Backend for EventBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        let events = self.client.query_latest(vec![self.subscription()].into())?;
        let mut models: Vec<Model> = self.models_of(events).into_iter().map(|(_, m)| m).collect();
        models.sort_by_key(|m| m.instance_id);
        Ok(models.into())
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        // The server sends payloads with every event; there is no cheaper list.
        Ok(self.get_models()?.iter().map(Model::info).collect())
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        let event = self
            .latest_of(instance_id)?
            .ok_or(BackendError::not_found(instance_id))?;
        model_of(&self.prefix, &event).map_err(|why| {
            BackendError::storage(format!("{} is not a valid model: {why}", describe(&event)))
        })
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = Model {
            instance_id: self.claim_id()?,
            model_type,
            instance,
        };
        self.store(&model)?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        if self.latest_of(model.instance_id)?.is_none() {
            return Err(BackendError::not_found(model.instance_id));
        }
        self.store(&model)?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        if self.latest_of(model.instance_id)?.is_some() {
            return Err(BackendError::conflict(model.instance_id));
        }
        self.store(&model)?;
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
        for (id, model) in self.models_of(events) {
            if !self.own_writes.is_own(&id, &model) {
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

    fn event_id(session: i64, instance: i64) -> EventId {
        EventId {
            server: 1,
            session,
            instance,
        }
    }

    #[test]
    fn ids_are_session_and_instance_and_distinct() {
        assert_eq!(id_from(event_id(3, 1)).unwrap(), 3 * 65536 + 1);
        assert_ne!(
            id_from(event_id(3, 2)).unwrap(),
            id_from(event_id(4, 1)).unwrap()
        );
        let largest = id_from(event_id((1 << 47) - 1, 65535)).unwrap();
        assert_eq!(largest, i64::MAX);
    }

    #[test]
    fn event_ids_outside_the_range_are_refused() {
        for (session, instance) in [(1 << 47, 1), (1, 1 << 16), (-1, 1), (1, -1)] {
            let err = id_from(event_id(session, instance)).unwrap_err();
            assert!(err.message.contains("outside the range"), "{err}");
        }
    }
}
