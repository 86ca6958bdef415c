//! A server that is connected but does not answer, against a real
//! PostgreSQL 15: its process stopped (`SIGSTOP`: its kernel still
//! acknowledges TCP, so no TCP timer fires, as with a paused VM), the
//! postmaster stopped while a connection opens, a COMMIT that waits for a
//! synchronous standby that never comes. Each call fails as unavailable
//! once `answer_timeout` (or `connect_timeout`) has passed, a COMMIT given
//! up is reported as of unknown outcome, and the same backend works again
//! without a restart.

use aimm_backend_api::{Backend, BackendError, ErrorKind, Model};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::{within_for, Paused, PostgresServer};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// `answer_timeout` and `connect_timeout` of these tests, in seconds.
const PATIENCE: f64 = 1.5;

/// Longer than any call of these tests may take: the patience, and room for
/// a slow machine.
const CALL_DEADLINE: Duration = Duration::from_secs(20);

fn conf(server: &PostgresServer, schema: &str) -> PostgresConfig {
    conf_waiting(server, schema, PATIENCE)
}

/// One connection (the one a test stops is the one its next call uses),
/// waiting `patience` seconds to connect and for each answer.
fn conf_waiting(server: &PostgresServer, schema: &str, patience: f64) -> PostgresConfig {
    let mut section = server.backend_section(schema);
    section["connections"] = 1.into();
    section["answer_timeout"] = patience.into();
    section["connect_timeout"] = patience.into();
    PostgresConfig::from_json(&section).unwrap()
}

fn open(server: &PostgresServer, schema: &str) -> Arc<PostgresBackend> {
    Arc::new(PostgresBackend::open(conf(server, schema)).unwrap())
}

/// Runs `call` on a thread of its own under [`CALL_DEADLINE`]; its result
/// and how long it took.
fn timed<T: Send + 'static>(
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    within_for(what, CALL_DEADLINE, move || {
        let start = Instant::now();
        let result = call();
        (result, start.elapsed())
    })
}

/// Checks that `err` is the unavailable error of a wait given up after
/// [`PATIENCE`], which `took`.
fn assert_given_up(err: &BackendError, took: Duration) {
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("aimm@127.0.0.1"), "{err}");
    assert!(
        err.message.contains("no answer within 1.5 s"),
        "names the wait: {err}"
    );
    assert!(
        took >= Duration::from_secs_f64(PATIENCE),
        "failed after {took:?}, before the patience ran out"
    );
}

#[test]
fn a_call_whose_server_process_stops_answering_fails_in_time_and_the_next_call_gets_a_new_connection(
) {
    let server = PostgresServer::start();
    let backend = open(&server, "stopped");
    let before = backend
        .create_model("hung".into(), b"before".to_vec().into())
        .unwrap();
    let [pid] = server.backend_pids()[..] else {
        panic!("one connection: {:?}", server.backend_pids());
    };
    // Used just now, so the pool lends it without checking it first (it
    // checks one idle for over a second): the call below waits on the
    // stopped process itself.
    backend.get_model(before.instance_id).unwrap();
    let paused = Paused::stop(pid);
    let calls = backend.clone();
    let ((failed, after), took) = timed("calls on a stopped server process", move || {
        let failed = calls.list_models().unwrap_err();
        let after = calls.create_model("hung".into(), b"after".to_vec().into());
        (failed, after)
    });
    assert_given_up(&failed, took);
    let after = after.expect("the next call, on a new connection");
    drop(paused);
    // The resumed process finds its client gone and ends.
    server.wait_for_backend_connections(1);
    for (model, bytes) in [(&before, "before"), (&after, "after")] {
        let stored = backend.get_model(model.instance_id).unwrap();
        assert_eq!(stored.instance.as_slice(), bytes.as_bytes());
    }
}

#[test]
fn opening_while_the_server_accepts_but_never_answers_fails_within_the_connect_timeout() {
    let server = PostgresServer::start();
    let conf = conf(&server, "postmaster");
    // Its kernel still accepts TCP connections into the listen queue; no
    // process reads them.
    let paused = Paused::stop(server.postmaster_pid());
    let opening = conf.clone();
    let (opened, took) = timed("opening while the postmaster is stopped", move || {
        PostgresBackend::open(opening).map(drop)
    });
    assert_given_up(&opened.unwrap_err(), took);
    drop(paused);
    let backend = PostgresBackend::open(conf).expect("opening once it answers");
    backend
        .create_model("hung".into(), b"opened".to_vec().into())
        .unwrap();
}

/// From now every commit on `server` waits for a synchronous standby that
/// never connects: the COMMIT is flushed locally and then waits,
/// unanswered. Set before a restart, so every server process has it.
fn wait_for_a_standby_that_never_comes(server: &PostgresServer) {
    server.psql("ALTER SYSTEM SET synchronous_standby_names = 'nowhere'");
    server.stop();
    server.start_again();
    // Idle longer than the pool trusts a connection unchecked (1 s): the
    // next call finds its connection dead in the check and opens another.
    std::thread::sleep(Duration::from_millis(1100));
}

/// Lets the waiting COMMITs complete, then checks that `backend` reads one
/// model, holding `bytes`: the write whose outcome was unknown was stored.
fn assert_stored_once_released(
    server: &PostgresServer,
    backend: &Arc<PostgresBackend>,
    bytes: &'static [u8],
) {
    server.psql("ALTER SYSTEM RESET synchronous_standby_names");
    server.psql("SELECT pg_reload_conf()");
    let reading = backend.clone();
    let models = within_for("the commit completing", CALL_DEADLINE, move || loop {
        let models = reading.get_models().unwrap();
        if !models.is_empty() {
            return models;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].instance.as_slice(), bytes);
}

/// Checks that `err` says the write's outcome is unknown.
fn assert_outcome_unknown(err: &BackendError) {
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(
        err.message.contains("COMMIT was sent but did not complete")
            && err
                .message
                .contains("whether the write is stored is unknown"),
        "{err}"
    );
}

#[test]
fn a_commit_whose_answer_never_comes_is_of_unknown_outcome_and_never_acknowledged() {
    let server = PostgresServer::start();
    let backend = open(&server, "commit");
    wait_for_a_standby_that_never_comes(&server);
    let calls = backend.clone();
    let (created, took) = timed("a create whose COMMIT waits for ever", move || {
        calls.create_model("hung".into(), b"unknown".to_vec().into())
    });
    let err = created.unwrap_err();
    assert_given_up(&err, took);
    assert_outcome_unknown(&err);
    // The write was stored, though never acknowledged: "unknown" was true.
    assert_stored_once_released(&server, &backend, b"unknown");
}

#[test]
fn a_commit_whose_session_is_terminated_while_it_waits_is_of_unknown_outcome() {
    let server = PostgresServer::start();
    // Patient enough to be terminated before it gives up.
    let conf = conf_waiting(&server, "terminated", CALL_DEADLINE.as_secs_f64());
    let backend = Arc::new(PostgresBackend::open(conf).unwrap());
    wait_for_a_standby_that_never_comes(&server);
    let calls = backend.clone();
    let create = std::thread::spawn(move || {
        calls.create_model("hung".into(), b"terminated".to_vec().into())
    });
    // The administrator ends the session stuck in its COMMIT. PostgreSQL
    // keeps the commit (it is flushed locally) and says so only in a
    // warning; the client sees its connection terminated.
    let waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    let deadline = Instant::now() + CALL_DEADLINE;
    let pid = loop {
        let pid = server.psql(waiting);
        if !pid.is_empty() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no COMMIT waits for the standby");
        std::thread::sleep(Duration::from_millis(50));
    };
    server.psql(&format!("SELECT pg_terminate_backend({pid})"));
    let created = within_for(
        "the create, after the termination",
        CALL_DEADLINE,
        move || create.join().expect("the create's thread"),
    );
    assert_outcome_unknown(&created.unwrap_err());
    assert_stored_once_released(&server, &backend, b"terminated");
}

#[test]
fn a_listener_whose_server_process_stops_answering_reconnects_and_reports_what_changed() {
    let server = PostgresServer::start();
    let listening = open(&server, "listener");
    let calls = server.backend_pids();
    let (heard, hearing) = mpsc::channel();
    let heard = Mutex::new(heard);
    listening
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let _ = heard.lock().unwrap().send(model.instance.to_vec());
        }))
        .unwrap();
    let watcher: Vec<u32> = server
        .backend_pids()
        .into_iter()
        .filter(|pid| !calls.contains(pid))
        .collect();
    let [watcher] = watcher[..] else {
        panic!("one connection more for the listener: {watcher:?}");
    };
    let _paused = Paused::stop(watcher);
    let other_host = open(&server, "listener");
    other_host
        .create_model("hung".into(), b"while stopped".to_vec().into())
        .unwrap();
    // Its periodic catch-up (every 5 s) finds the connection silent, gives
    // it up after the patience, and catches up on a new one.
    let bytes = hearing
        .recv_timeout(CALL_DEADLINE)
        .expect("the change, reported while the old connection's process is still stopped");
    assert_eq!(bytes, b"while stopped");
}
