//! A listener's connection while nothing changes and while the database is
//! down, against a real PostgreSQL 15: the watcher waits (for a
//! notification, or between attempts to reconnect: it does not spin), says
//! once that the server is gone, and reports changes again once it is
//! back. Alone in its test binary: it finds the watcher thread by
//! name, and takes the process's log records.

use aimm_backend_api::{Backend, Model};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::PostgresServer;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The warnings logged in this process.
struct Warnings(Mutex<Vec<String>>);

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let mut warnings = self.0.lock().unwrap_or_else(|e| e.into_inner());
            warnings.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static WARNINGS: Warnings = Warnings(Mutex::new(Vec::new()));

/// The CPU time (user and system) the thread named `name` has used so far,
/// from `/proc/self/task/*/stat`, in clock ticks (100 a second on Linux).
fn thread_cpu_ticks(name: &str) -> u64 {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread's name.
        if !name.starts_with(comm.trim_end()) || comm.trim_end().is_empty() {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        return utime + stime;
    }
    panic!("no thread named {name} in this process");
}

/// The CPU ticks the watcher thread uses over the next `period`.
fn watcher_ticks_over(period: Duration) -> u64 {
    let before = thread_cpu_ticks("aimm-postgres-watch");
    std::thread::sleep(period);
    thread_cpu_ticks("aimm-postgres-watch") - before
}

#[test]
fn a_listener_waits_while_idle_and_between_reconnects_while_the_database_is_down() {
    log::set_logger(&WARNINGS).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    let server = PostgresServer::start();
    let conf = PostgresConfig::from_json(&server.backend_section("outage")).unwrap();
    let backend = PostgresBackend::open(conf.clone()).unwrap();
    let (heard, hearing) = mpsc::channel();
    let heard = Mutex::new(heard);
    backend
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let _ = heard.lock().unwrap().send(model.instance.to_vec());
        }))
        .unwrap();

    // Nothing changes: the watcher waits for a notification.
    let used = watcher_ticks_over(Duration::from_secs(2));
    assert!(
        used < 30,
        "the watcher used {used} ticks of CPU in 2 s with nothing to report"
    );

    server.stop();
    let used = watcher_ticks_over(Duration::from_secs(3));
    assert!(
        used < 50,
        "the watcher used {used} ticks of CPU in 3 s of the server being down: it spins"
    );

    server.start_again();
    let other_host = PostgresBackend::open(conf).unwrap();
    other_host
        .create_model("outage".into(), b"after the outage".to_vec().into())
        .unwrap();
    let bytes = hearing
        .recv_timeout(Duration::from_secs(30))
        .expect("the change made after the outage, reported");
    assert_eq!(bytes, b"after the outage");

    let server_name = format!("127.0.0.1:{}", server.port);
    let warnings = WARNINGS.0.lock().unwrap().clone();
    let outage: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("retrying until it is back") && w.contains(&server_name))
        .collect();
    assert_eq!(outage.len(), 1, "one warning per outage: {warnings:#?}");
}
