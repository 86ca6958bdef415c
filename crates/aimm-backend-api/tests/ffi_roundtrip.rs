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
        Ok(vec![event(42), event(43)].into())
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

/// A host client that decodes as it reads: it hands out events 1, 2, ...,
/// `count` one at a time and records each as it hands it out. Only
/// `query_latest_each` answers.
struct StreamingClient {
    count: i64,
    /// Whether it goes on after the closure fails (which it should not).
    ignores_errors: bool,
    handed_out: Mutex<Vec<i64>>,
}

impl StreamingClient {
    fn new(count: i64) -> Arc<Self> {
        Arc::new(StreamingClient {
            count,
            ignores_errors: false,
            handed_out: Mutex::new(Vec::new()),
        })
    }

    fn handed_out(&self) -> Vec<i64> {
        self.handed_out.lock().unwrap().clone()
    }
}

impl EventClient for StreamingClient {
    fn register(
        &self,
        _: RVec<RegisterEvent>,
        _: RegisterMode,
    ) -> Result<ROption<RVec<ROption<Event>>>> {
        Err(BackendError::unsupported("a reader only"))
    }
    fn query_latest(&self, _: RVec<EventType>) -> Result<RVec<Event>> {
        Err(BackendError::unsupported(
            "hands events out one at a time only",
        ))
    }
    fn query_latest_each(
        &self,
        event_types: RVec<EventType>,
        each: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        if event_types.is_empty() {
            panic!("the host's client panics on no event types");
        }
        for instance in 1..=self.count {
            self.handed_out.lock().unwrap().push(instance);
            let handed = each(event(instance));
            if !self.ignores_errors {
                handed?;
            }
        }
        Ok(())
    }
}

fn model_types() -> RVec<EventType> {
    vec![event_type(["aimm", "model", "*"])].into()
}

#[test]
fn query_latest_each_hands_out_events_in_order_through_ffi() {
    let client = StreamingClient::new(5);
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let mut seen = Vec::new();
    foreign
        .query_latest_each(model_types(), &mut |event| {
            // Each event arrives after the host handed it out, and before
            // it hands out the next.
            assert_eq!(client.handed_out().last(), Some(&event.id.instance));
            seen.push(event);
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, (1..=5).map(event).collect::<Vec<_>>());
    assert_eq!(client.handed_out(), [1, 2, 3, 4, 5]);
}

#[test]
fn an_error_of_the_closure_stops_the_host_and_is_the_calls_error() {
    let client = StreamingClient::new(5);
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let mut seen = Vec::new();
    let err = foreign
        .query_latest_each(model_types(), &mut |event| {
            seen.push(event.id.instance);
            if event.id.instance == 2 {
                return Err(BackendError::storage("enough"));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err, BackendError::storage("enough"));
    assert_eq!(seen, [1, 2]);
    assert_eq!(client.handed_out(), [1, 2], "the host went on");
}

#[test]
fn a_failed_closure_is_called_no_more_even_by_a_host_that_goes_on() {
    let client = Arc::new(StreamingClient {
        count: 5,
        ignores_errors: true,
        handed_out: Mutex::new(Vec::new()),
    });
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let mut seen = Vec::new();
    let err = foreign
        .query_latest_each(model_types(), &mut |event| {
            seen.push(event.id.instance);
            Err(BackendError::storage(format!("no {}", event.id.instance)))
        })
        .unwrap_err();
    assert_eq!(err, BackendError::storage("no 1"));
    assert_eq!(seen, [1]);
    assert_eq!(client.handed_out(), [1, 2, 3, 4, 5]);
}

#[test]
fn a_panicking_closure_comes_back_as_an_error() {
    let client = StreamingClient::new(5);
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let err = foreign
        .query_latest_each(model_types(), &mut |event| {
            if event.id.instance == 3 {
                panic!("closure bug at {}", event.id.instance);
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(err.message.contains("closure bug at 3"), "{err}");
    assert_eq!(client.handed_out(), [1, 2, 3], "the host went on");
    // The client still works after a caught panic.
    let mut count = 0;
    foreign
        .query_latest_each(model_types(), &mut |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(count, 5);
}

#[test]
fn a_panic_of_the_hosts_client_comes_back_as_an_error() {
    let foreign = FFI_EventClient::new(StreamingClient::new(5)).into_foreign();
    let err = foreign
        .query_latest_each(RVec::new(), &mut |_| Ok(()))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(err.message.contains("query_latest_each"), "{err}");
    assert!(err.message.contains("panics on no event types"), "{err}");
}

#[test]
fn the_default_query_latest_each_hands_out_what_query_latest_returns() {
    let client = Arc::new(RecordingClient {
        registered: Mutex::new(Vec::new()),
    });
    let types = || vec![event_type(["a", "*"])].into();
    let foreign = FFI_EventClient::new(client.clone()).into_foreign();
    let native: &dyn EventClient = client.as_ref();
    for client in [native, &foreign] {
        let mut seen = Vec::new();
        client
            .query_latest_each(types(), &mut |event| {
                seen.push(event);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, client.query_latest(types()).unwrap().to_vec());
        assert_eq!(seen, [event(42), event(43)]);
        // Its errors, and those of the closure, are the call's.
        let err = client
            .query_latest_each(RVec::new(), &mut |_| panic!("no events to hand out"))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable);
        let mut calls = 0;
        let err = client
            .query_latest_each(types(), &mut |_| {
                calls += 1;
                Err(BackendError::storage("stop"))
            })
            .unwrap_err();
        assert_eq!((err, calls), (BackendError::storage("stop"), 1));
    }
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
    assert_eq!(host.log.max_level(), Some(LogLevel::Trace), "the default");
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

#[test]
fn a_log_sinks_max_level_round_trips() {
    struct Keeps(Option<LogLevel>);
    impl LogSink for Keeps {
        fn log(&self, _: LogLevel, _: &str, _: &str) {}
        fn max_level(&self) -> Option<LogLevel> {
            self.0
        }
    }
    struct Panics;
    impl LogSink for Panics {
        fn log(&self, _: LogLevel, _: &str, _: &str) {}
        fn max_level(&self) -> Option<LogLevel> {
            panic!("no level here")
        }
    }
    for level in [
        None,
        Some(LogLevel::Error),
        Some(LogLevel::Info),
        Some(LogLevel::Debug),
    ] {
        let sink = FFI_LogSink::new(Arc::new(Keeps(level))).into_foreign();
        assert_eq!(sink.max_level(), level);
    }
    let sink = FFI_LogSink::new(Arc::new(Panics)).into_foreign();
    assert_eq!(
        sink.max_level(),
        Some(LogLevel::Trace),
        "a panic keeps everything"
    );
}

/// A host's sink: a buffer per model, kept with what `info` said.
#[derive(Default)]
struct Buffers {
    models: Vec<(ModelInfo, Vec<u8>)>,
    /// Fail (or, with `panic`, panic) when asked for this id.
    refuse: Option<InstanceId>,
    panic: bool,
}

impl ModelSink for Buffers {
    fn accept(&mut self, info: ModelInfo, fill: &mut Fill<'_>) -> Result<()> {
        if self.refuse == Some(info.instance_id) {
            if self.panic {
                panic!("the host's sink panics at {}", info.instance_id);
            }
            return Err(BackendError::storage("no memory for that one"));
        }
        // Not zeroed by the host in general: fill must write every byte.
        let mut buffer = vec![0xee; info.size as usize];
        fill(&mut buffer)?;
        self.models.push((info, buffer));
        Ok(())
    }
}

fn infos_and_bytes(models: &[Model]) -> Vec<(ModelInfo, Vec<u8>)> {
    models
        .iter()
        .map(|m| (m.info(), m.instance.to_vec()))
        .collect()
}

#[test]
fn the_default_read_models_hands_every_model_into_the_hosts_buffers() {
    let backend = foreign(Arc::default());
    let mut sink = Buffers::default();
    backend.read_models(&mut sink).unwrap();
    let expected = infos_and_bytes(&Scripted::default().get_models().unwrap());
    assert_eq!(sink.models, expected);
}

/// A store that reads into the host's buffers itself, as a real one does:
/// model `i` of `sizes` holds `i` in every byte; a fill for id `failing`
/// fails, for id `panicking` panics.
struct Filling {
    sizes: Vec<usize>,
    failing: Option<InstanceId>,
    panicking: Option<InstanceId>,
    filled: Mutex<Vec<InstanceId>>,
}

impl Filling {
    fn new(sizes: &[usize]) -> Self {
        Filling {
            sizes: sizes.to_vec(),
            failing: None,
            panicking: None,
            filled: Mutex::default(),
        }
    }
}

impl Backend for Filling {
    fn read_models(&self, sink: &mut dyn ModelSink) -> Result<()> {
        for (i, &size) in self.sizes.iter().enumerate() {
            let id = i as InstanceId;
            let info = ModelInfo {
                instance_id: id,
                model_type: format!("type {i}").into(),
                size: size as u64,
            };
            sink.accept(info, &mut |buffer: &mut [u8]| {
                assert_eq!(buffer.len(), size, "the host's buffer has the model's size");
                if self.failing == Some(id) {
                    return Err(BackendError::storage(format!("cannot read {id}")));
                }
                if self.panicking == Some(id) {
                    panic!("the plugin's fill panics at {id}");
                }
                buffer.fill(i as u8);
                self.filled.lock().unwrap().push(id);
                Ok(())
            })?;
        }
        Ok(())
    }
    fn get_models(&self) -> Result<RVec<Model>> {
        unreachable!("the host reads through read_models")
    }
    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        unreachable!()
    }
    fn get_model(&self, _: InstanceId) -> Result<Model> {
        unreachable!()
    }
    fn create_model(&self, _: RString, _: RVec<u8>) -> Result<Model> {
        unreachable!()
    }
    fn update_model(&self, _: Model) -> Result<Model> {
        unreachable!()
    }
    fn import_model(&self, _: Model) -> Result<Model> {
        unreachable!()
    }
    fn register_model_change_cb(&self, _: Arc<dyn ModelChangeListener>) -> Result<u64> {
        unreachable!()
    }
    fn unregister_model_change_cb(&self, _: u64) -> Result<()> {
        unreachable!()
    }
    fn process_events(&self, _: RVec<Event>) -> Result<()> {
        unreachable!()
    }
    fn close(&self) -> Result<()> {
        Ok(())
    }
}

fn across(backend: Filling) -> (Arc<Filling>, ForeignBackend) {
    let backend = Arc::new(backend);
    let foreign = FFI_Backend::new(backend.clone()).into_foreign();
    (backend, foreign)
}

#[test]
fn a_plugin_fills_the_hosts_buffers_in_place_through_ffi() {
    let (_, backend) = across(Filling::new(&[3, 0, 70_000]));
    let mut sink = Buffers::default();
    backend.read_models(&mut sink).unwrap();
    let got: Vec<(InstanceId, String, Vec<u8>)> = sink
        .models
        .into_iter()
        .map(|(info, bytes)| (info.instance_id, info.model_type.into_string(), bytes))
        .collect();
    assert_eq!(
        got,
        [
            (0, "type 0".to_string(), vec![0; 3]),
            (1, "type 1".to_string(), vec![]),
            (2, "type 2".to_string(), vec![2; 70_000]),
        ]
    );
}

#[test]
fn a_failed_fill_is_the_calls_error_and_stops_the_read() {
    let (plugin, backend) = across(Filling {
        failing: Some(1),
        ..Filling::new(&[1, 1, 1])
    });
    let mut sink = Buffers::default();
    let err = backend.read_models(&mut sink).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Storage);
    assert_eq!(err.message, "cannot read 1");
    assert_eq!(sink.models.len(), 1, "the host kept only the model filled");
    assert_eq!(*plugin.filled.lock().unwrap(), [0]);
}

#[test]
fn a_sinks_error_reaches_the_plugin_and_stops_the_read() {
    let (plugin, backend) = across(Filling::new(&[1, 1, 1]));
    let mut sink = Buffers {
        refuse: Some(1),
        ..Buffers::default()
    };
    let err = backend.read_models(&mut sink).unwrap_err();
    assert_eq!(err.message, "no memory for that one");
    assert_eq!(*plugin.filled.lock().unwrap(), [0], "nothing read after it");
}

#[test]
fn panics_on_either_side_come_back_as_errors() {
    let (_, backend) = across(Filling {
        panicking: Some(0),
        ..Filling::new(&[5])
    });
    let err = backend.read_models(&mut Buffers::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(
        err.message.contains("the plugin's fill panics at 0"),
        "{err}"
    );

    let (_, backend) = across(Filling::new(&[5, 5]));
    let mut sink = Buffers {
        refuse: Some(1),
        panic: true,
        ..Buffers::default()
    };
    let err = backend.read_models(&mut sink).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Panic);
    assert!(err.message.contains("the host's sink panics at 1"), "{err}");
}
