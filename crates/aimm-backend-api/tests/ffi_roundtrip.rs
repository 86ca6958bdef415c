//! Each interface wrapped into its FFI struct and back into a `Foreign...`
//! wrapper must behave exactly like the native value, errors and panics
//! included.

use aimm_backend_api::*;
use std::sync::{Arc, Mutex};

/// A backend that records calls and answers from fixed data.
#[derive(Default)]
struct Scripted {
    events: Mutex<Vec<Event>>,
    listeners: ListenerRegistry,
}

impl Backend for Scripted {
    fn get_models(&self) -> Result<RVec<Model>> {
        Ok(vec![Model::new(1, "a", vec![1, 2]), Model::new(2, "b", vec![])].into())
    }
    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        Ok(self.get_models()?.iter().map(Model::info).collect())
    }
    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        match instance_id {
            1 => Ok(Model::new(1, "a", vec![1, 2])),
            13 => panic!("unlucky id {instance_id}"),
            _ => Err(BackendError::not_found(instance_id)),
        }
    }
    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = Model {
            instance_id: 7,
            model_type,
            instance,
        };
        self.listeners.notify(&model);
        Ok(model)
    }
    fn update_model(&self, model: Model) -> Result<Model> {
        Err(BackendError::not_found(model.instance_id))
    }
    fn import_model(&self, model: Model) -> Result<Model> {
        Err(BackendError::conflict(model.instance_id))
    }
    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        Ok(self.listeners.register(listener))
    }
    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        Ok(())
    }
    fn process_events(&self, events: RVec<Event>) -> Result<()> {
        self.events.lock().unwrap().extend(events);
        Ok(())
    }
    fn close(&self) -> Result<()> {
        panic!("close always panics here")
    }
}

fn foreign(backend: Arc<Scripted>) -> ForeignBackend {
    FFI_Backend::new(backend).into_foreign()
}

fn event(instance: i64) -> Event {
    Event {
        id: EventId {
            server: 1,
            session: 2,
            instance,
        },
        event_type: event_type(["aimm", "model", "1"]),
        timestamp: Timestamp { s: 10, us: 5 },
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(EventPayload::Json(r#"{"type":"t"}"#.into())),
    }
}

#[test]
fn backend_values_and_errors_round_trip() {
    let backend = foreign(Arc::new(Scripted::default()));
    assert_eq!(backend.get_models().unwrap().len(), 2);
    assert_eq!(backend.list_models().unwrap()[0].size, 2);
    assert_eq!(
        backend.get_model(1).unwrap(),
        Model::new(1, "a", vec![1, 2])
    );
    assert_eq!(
        backend.get_model(5).unwrap_err(),
        BackendError::not_found(5)
    );
    let created = backend
        .create_model("x".into(), vec![9; 1000].into())
        .unwrap();
    assert_eq!(created, Model::new(7, "x", vec![9; 1000]));
    assert_eq!(
        backend
            .update_model(Model::new(3, "t", vec![]))
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        backend
            .import_model(Model::new(3, "t", vec![]))
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
}

#[test]
fn backend_panics_become_errors() {
    let backend = foreign(Arc::new(Scripted::default()));
    let err = backend.get_model(13).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(err.message.contains("unlucky id 13"), "{err}");
    assert!(err.message.contains("get_model"), "{err}");
    let err = backend.close().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    // The backend still works after a caught panic.
    assert_eq!(backend.get_model(1).unwrap().instance_id, 1);
}

#[test]
fn events_cross_intact() {
    let scripted = Arc::new(Scripted::default());
    let backend = foreign(scripted.clone());
    backend
        .process_events(vec![event(1), event(2)].into())
        .unwrap();
    assert_eq!(*scripted.events.lock().unwrap(), vec![event(1), event(2)]);
}

#[test]
fn listeners_cross_both_ways_and_unregister() {
    let backend = foreign(Arc::new(Scripted::default()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let registration = backend
        .register_model_change_cb(Arc::new(move |m: &Model| {
            sink.lock().unwrap().push(m.instance_id)
        }))
        .unwrap();
    backend.create_model("x".into(), RVec::new()).unwrap();
    backend.unregister_model_change_cb(registration).unwrap();
    backend.create_model("x".into(), RVec::new()).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![7]);
}

#[test]
fn a_panicking_listener_does_not_unwind_into_the_backend() {
    let backend = foreign(Arc::new(Scripted::default()));
    backend
        .register_model_change_cb(Arc::new(|_: &Model| panic!("listener bug")))
        .unwrap();
    assert!(backend.create_model("x".into(), RVec::new()).is_ok());
}

struct RecordingClient {
    registered: Mutex<Vec<(RegisterEvent, RegisterMode)>>,
}

impl EventClient for RecordingClient {
    fn register(
        &self,
        events: RVec<RegisterEvent>,
        mode: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        let count = events.len() as i64;
        let mut registered = self.registered.lock().unwrap();
        registered.extend(events.into_iter().map(|e| (e, mode)));
        Ok(match mode {
            RegisterMode::Sent => ROption::RNone,
            _ => ROption::RSome((0..count).map(|i| ROption::RSome(event(i))).collect()),
        })
    }
    fn query_latest(&self, event_types: RVec<EventType>) -> Result<RVec<Event>> {
        if event_types.is_empty() {
            return Err(BackendError::new(ErrorKind::Unavailable, "no server"));
        }
        Ok(vec![event(42)].into())
    }
}

#[test]
fn event_client_round_trips() {
    let client = Arc::new(RecordingClient {
        registered: Mutex::new(Vec::new()),
    });
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let to_register = RegisterEvent {
        event_type: event_type(["a", "b"]),
        source_timestamp: ROption::RNone,
        payload: ROption::RSome(EventPayload::Binary {
            payload_type: "bin".into(),
            data: vec![0, 255].into(),
        }),
    };
    let modes = [
        RegisterMode::Registered,
        RegisterMode::Sent,
        RegisterMode::Persisted,
    ];
    for mode in modes {
        let answer = foreign
            .register(vec![to_register.clone()].into(), mode)
            .unwrap();
        assert_eq!(answer.is_some(), mode != RegisterMode::Sent, "{mode:?}");
    }
    assert_eq!(
        *client.registered.lock().unwrap(),
        modes.map(|mode| (to_register.clone(), mode))
    );
    assert_eq!(
        foreign
            .query_latest(vec![event_type(["a", "*"])].into())
            .unwrap()[0],
        event(42)
    );
    assert_eq!(
        foreign.query_latest(RVec::new()).unwrap_err().kind,
        ErrorKind::Unavailable
    );
}

#[test]
fn host_and_log_sink_round_trip() {
    #[derive(Default)]
    struct Lines(Mutex<Vec<(LogLevel, String, String)>>);
    impl LogSink for Lines {
        fn log(&self, level: LogLevel, target: &str, message: &str) {
            self.0
                .lock()
                .unwrap()
                .push((level, target.to_string(), message.to_string()));
        }
    }
    let lines = Arc::new(Lines::default());
    let host = FFI_Host::new(Host {
        log: lines.clone(),
        event_client: None,
    })
    .into_foreign();
    assert!(host.event_client.is_none());
    host.log.log(LogLevel::Warn, "plugin::mod", "careful");
    assert_eq!(
        *lines.0.lock().unwrap(),
        vec![(
            LogLevel::Warn,
            "plugin::mod".to_string(),
            "careful".to_string()
        )]
    );
}
