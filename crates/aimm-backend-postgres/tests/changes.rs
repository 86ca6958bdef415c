//! Change notifications against a real PostgreSQL 15: what a write sends,
//! what a backend's own listeners hear, and what an update changes.

use aimm_backend_api::{Backend, Model};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::PostgresServer;
use postgres::fallible_iterator::FallibleIterator;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

fn open(server: &PostgresServer, schema: &str) -> PostgresBackend {
    PostgresBackend::open(PostgresConfig::from_json(&server.backend_section(schema)).unwrap())
        .unwrap()
}

/// Per model: how often a listener heard of it, and its last bytes.
type Counts = BTreeMap<i64, (usize, Vec<u8>)>;

/// What a listener heard.
#[derive(Clone, Default)]
struct Heard(Arc<(Mutex<Counts>, Condvar)>);

impl Heard {
    fn listen(&self, backend: &PostgresBackend) {
        let heard = self.clone();
        backend
            .register_model_change_cb(Arc::new(move |model: &Model| {
                let mut map = (heard.0).0.lock().unwrap();
                let entry = map.entry(model.instance_id).or_default();
                entry.0 += 1;
                entry.1 = model.instance.to_vec();
                (heard.0).1.notify_all();
            }))
            .unwrap();
    }

    /// Waits up to 30 s until model `id` was heard of.
    fn wait_for(&self, id: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut map = (self.0).0.lock().unwrap();
        while !map.contains_key(&id) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "model {id} never heard of");
            map = (self.0).1.wait_timeout(map, left).unwrap().0;
        }
    }

    fn times(&self, id: i64) -> usize {
        (self.0).0.lock().unwrap().get(&id).map_or(0, |e| e.0)
    }
}

#[test]
fn a_write_notifies_the_tables_channel_with_the_model_id() {
    let server = PostgresServer::start();
    let backend = open(&server, "channel");
    let mut config: postgres::Config = server.url().parse().unwrap();
    config.password(
        std::fs::read_to_string(server.password_file())
            .unwrap()
            .trim(),
    );
    let mut raw = config.connect(postgres::NoTls).unwrap();
    raw.batch_execute("LISTEN \"channel.aimm_models\"").unwrap();
    let model = backend
        .create_model("n".into(), b"notify".to_vec().into())
        .unwrap();
    let mut notifications = raw.notifications();
    let note = notifications
        .timeout_iter(Duration::from_secs(30))
        .next()
        .unwrap()
        .expect("a notification within 30 s");
    assert_eq!(note.payload(), model.instance_id.to_string());
}

#[test]
fn a_hosts_listener_hears_its_own_writes_once_and_another_hosts_too() {
    let server = PostgresServer::start();
    let here = open(&server, "heard");
    let there = open(&server, "heard");
    let heard = Heard::default();
    heard.listen(&here);
    let own: Vec<i64> = (0..5u8)
        .map(|i| {
            here.create_model("own".into(), vec![i].into())
                .unwrap()
                .instance_id
        })
        .collect();
    here.update_model(Model::new(own[0], "own", vec![9u8]))
        .unwrap();
    // Another host's write wakes this host's watcher, which catches up on
    // every row changed since; its own rows must not be heard again.
    let other = there
        .create_model("other".into(), b"there".to_vec().into())
        .unwrap();
    heard.wait_for(other.instance_id);
    assert_eq!(heard.times(other.instance_id), 1);
    assert_eq!(heard.times(own[0]), 2, "a create and an update");
    for id in &own[1..] {
        assert_eq!(heard.times(*id), 1, "model {id}");
    }
}

#[test]
fn an_update_of_the_type_alone_is_stored_and_an_unchanged_one_tells_no_one() {
    let server = PostgresServer::start();
    let backend = open(&server, "types");
    let heard = Heard::default();
    heard.listen(&backend);
    let id = backend
        .create_model("before".into(), b"same bytes".to_vec().into())
        .unwrap()
        .instance_id;
    backend
        .update_model(Model::new(id, "after", b"same bytes".to_vec()))
        .unwrap();
    assert_eq!(backend.get_model(id).unwrap().model_type.as_str(), "after");
    assert_eq!(heard.times(id), 2, "the create and the type change");
    backend
        .update_model(Model::new(id, "after", b"same bytes".to_vec()))
        .unwrap();
    assert_eq!(heard.times(id), 2, "an unchanged update is heard of");
}

#[test]
fn a_listener_has_a_connection_of_its_own_until_it_goes_or_the_backend_is_dropped() {
    let server = PostgresServer::start();
    let backend = open(&server, "watcher");
    server.wait_for_backend_connections(1);
    let registration = backend
        .register_model_change_cb(Arc::new(|_: &Model| {}))
        .unwrap();
    server.wait_for_backend_connections(2);
    backend.unregister_model_change_cb(registration).unwrap();
    server.wait_for_backend_connections(1);
    backend
        .register_model_change_cb(Arc::new(|_: &Model| {}))
        .unwrap();
    server.wait_for_backend_connections(2);
    drop(backend);
    server.wait_for_backend_connections(0);
}
