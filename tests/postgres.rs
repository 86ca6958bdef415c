//! The PostgreSQL backend plugin against a real PostgreSQL 15
//! (`scripts/postgres.sh`): the conformance suite through the CLI, several
//! hosts writing at once, crashes and restarts, models of hundreds of MiB,
//! the WAL an update writes, bad configs, and copies between backends.

use aimm_backend_api::{Backend, ErrorKind, Model};
use aimm_backend_tests::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn postgres_plugin() -> PathBuf {
    let path = release_dir().join("libaimm_backend_postgres.so");
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// A config file whose backend section is `section` (YAML is a superset of
/// JSON).
fn conf_file(dir: &Path, name: &str, section: serde_json::Value) -> PathBuf {
    write_file(dir, name, &json!({ "backend": section }).to_string())
}

/// The plugin, opened in this process on `section`.
fn open(section: serde_json::Value) -> Arc<dyn Backend> {
    open_plugin(&postgres_plugin(), section, None)
}

fn cli_on(home: &Path, conf: &Path, args: &[&str]) -> Command {
    let mut command = cli(home);
    command.arg("--conf").arg(conf).args(args);
    command
}

#[test]
fn postgres_backend_passes_conformance_through_the_cli() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = conf_file(work.path(), "pg.yaml", server.backend_section("public"));
    let output = run_expecting(&mut cli_on(work.path(), &conf, &["conformance"]), 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let check = run_expecting(&mut cli_on(work.path(), &conf, &["check"]), 0);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("plugin:  postgres 0.1.0"), "{stdout}");
    assert!(
        stdout.contains("libaimm_backend_postgres.so"),
        "module `postgres` is the built-in plugin:\n{stdout}"
    );
}

/// Nothing prints the password, and no log line carries a statement's
/// parameters (tokio-postgres logs them at debug: a model's bytes as
/// text), even with every level asked for.
#[test]
fn neither_the_password_nor_model_bytes_reach_the_output_even_at_trace_level() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let password = std::fs::read_to_string(server.password_file()).unwrap();
    let password = password.trim();
    let mut section = server.backend_section("public");
    section["url"] = json!(format!(
        "postgresql://aimm:{password}@127.0.0.1:{}/aimm",
        server.port
    ));
    section.as_object_mut().unwrap().remove("password_file");
    let conf = conf_file(work.path(), "pg.yaml", section);
    let file = write_file(work.path(), "m.bin", "model");
    for args in [
        &["check"][..],
        &["put", "t", file.to_str().unwrap()],
        &["list"],
    ] {
        let output = run_expecting(
            cli_on(work.path(), &conf, args).env("AIMM_BACKEND_LOG", "trace"),
            0,
        );
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.contains(password),
                "{args:?} printed the password:\n{text}"
            );
            assert!(
                !text.contains("parameters"),
                "{args:?} logged parameters:\n{text}"
            );
        }
    }
}

/// One `aimm-test-host` process and what it printed.
struct TestHost {
    child: std::process::Child,
    lines: ChildLines,
    tag: String,
    created: Vec<i64>,
    updated: Vec<i64>,
}

impl TestHost {
    fn spawn(conf: &Path, tag: &str, count: usize) -> TestHost {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aimm-test-host"))
            .arg(conf)
            .arg(tag)
            .arg(count.to_string())
            .env_remove("AIMM_BACKEND_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("aimm-test-host starts");
        let lines = ChildLines::new(child.stdout.take().unwrap(), tag);
        TestHost {
            child,
            lines,
            tag: tag.to_string(),
            created: Vec::new(),
            updated: Vec::new(),
        }
    }

    /// Reads its acknowledgements up to `written`.
    fn read_writes(&mut self, deadline: Duration) {
        loop {
            let line = self
                .lines
                .next_within(deadline)
                .unwrap_or_else(|| panic!("{} ended before `written`", self.tag));
            match line.split_once(' ') {
                Some(("created", id)) => self.created.push(id.parse().unwrap()),
                Some(("updated", id)) => self.updated.push(id.parse().unwrap()),
                _ if line == "written" => return,
                _ => panic!("{}: unexpected line {line:?}", self.tag),
            }
        }
    }

    /// What the listener of every other host must report last for this
    /// host's models.
    fn final_states(&self) -> BTreeMap<String, String> {
        let mut states = BTreeMap::new();
        for (i, id) in self.created.iter().enumerate() {
            states.insert(id.to_string(), format!("{}/{i}/updated", self.tag));
        }
        states
    }

    /// Tells it what to wait for; returns what it reports.
    fn check_seen(mut self, expected: &BTreeMap<String, String>) -> Vec<String> {
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "{}", serde_json::to_string(expected).unwrap()).unwrap();
        drop(stdin);
        let report = self.lines.rest_within(Duration::from_secs(120));
        let output = wait_within(self.child, Duration::from_secs(30), &self.tag);
        assert!(
            output.status.success(),
            "{}: {}",
            self.tag,
            describe(&output)
        );
        report
    }
}

#[test]
fn three_hosts_writing_at_once_store_every_write_and_see_each_others_changes() {
    const COUNT: usize = 300;
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = conf_file(work.path(), "pg.yaml", server.backend_section("shared"));
    let mut hosts: Vec<TestHost> = ["a", "b", "c"]
        .iter()
        .map(|tag| TestHost::spawn(&conf, tag, COUNT))
        .collect();
    for host in &mut hosts {
        host.read_writes(Duration::from_secs(300));
        assert_eq!(host.created.len(), COUNT, "{}", host.tag);
        assert_eq!(host.updated, host.created, "{}", host.tag);
    }
    let ids: BTreeSet<i64> = hosts.iter().flat_map(|h| h.created.clone()).collect();
    assert_eq!(ids.len(), 3 * COUNT, "ids handed out twice");

    let states: Vec<_> = hosts.iter().map(TestHost::final_states).collect();
    for (i, host) in hosts.into_iter().enumerate() {
        let tag = host.tag.clone();
        let others: BTreeMap<String, String> = states
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, s)| s.clone())
            .collect();
        let report = host.check_seen(&others);
        assert_eq!(report, ["seen all"], "host {tag}'s listener");
    }

    // Every acknowledged write is stored: the updated bytes, under its type.
    let stored = open(server.backend_section("shared")).get_models().unwrap();
    let stored: BTreeMap<String, (String, String)> = stored
        .iter()
        .map(|m| {
            let text = String::from_utf8_lossy(&m.instance).trim_end().to_string();
            (m.instance_id.to_string(), (m.model_type.to_string(), text))
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = states
        .iter()
        .flatten()
        .map(|(id, text)| {
            let tag = text.split('/').next().unwrap().to_string();
            (id.clone(), (tag, text.clone()))
        })
        .collect();
    assert_eq!(stored, expected);
}

/// Acknowledged creates: id and bytes.
type Acked = Arc<Mutex<Vec<(i64, Vec<u8>)>>>;

/// Creates on `threads` threads until a create fails; returns the
/// acknowledged ones (id and bytes) and the errors that stopped them.
fn write_until_failure(
    backend: &Arc<dyn Backend>,
    threads: u64,
    acked: &Acked,
) -> Vec<std::thread::JoinHandle<aimm_backend_api::BackendError>> {
    (0..threads)
        .map(|t| {
            let backend = backend.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let bytes = test_bytes(t * 1_000_000 + i, 4096 + (i as usize % 7) * 1000);
                    match backend.create_model("crash".into(), bytes.clone().into()) {
                        Ok(model) => acked.lock().unwrap().push((model.instance_id, bytes)),
                        Err(err) => return err,
                    }
                }
                unreachable!()
            })
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_a_crash_and_the_host_works_again_without_a_restart() {
    let server = PostgresServer::start();
    let section = server.backend_section("crash");
    let backend = open(section.clone());
    let acked = Acked::default();
    let writers = write_until_failure(&backend, 4, &acked);
    let started = Instant::now();
    while acked.lock().unwrap().len() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "writes too slow"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.crash();
    for writer in writers {
        let err = writer.join().unwrap();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    }

    // Calls while it is down: crates/aimm-backend-postgres/tests/pool.rs.
    server.start_again();
    let acked = acked.lock().unwrap().clone();
    eprintln!("{} creates acknowledged before the crash", acked.len());
    let reopened = open(section);
    for (id, bytes) in &acked {
        let model = reopened.get_model(*id).unwrap();
        assert!(model.instance.as_slice() == bytes.as_slice(), "model {id}");
    }
    // The host that saw the crash works again with no restart.
    let after = backend
        .create_model("after".into(), b"after the crash".to_vec().into())
        .unwrap();
    assert!(acked.iter().all(|(id, _)| *id != after.instance_id));
    assert_eq!(
        reopened
            .get_model(after.instance_id)
            .unwrap()
            .instance
            .as_slice(),
        b"after the crash"
    );
}

/// A listener's reports: the newest bytes seen per model.
#[derive(Clone, Default)]
struct Reports(Arc<(Mutex<Models>, Condvar)>);

/// Model bytes by id.
type Models = BTreeMap<i64, Vec<u8>>;

impl Reports {
    fn listen(&self, backend: &Arc<dyn Backend>) {
        let reports = self.clone();
        backend
            .register_model_change_cb(Arc::new(move |model: &Model| {
                let mut seen = (reports.0).0.lock().unwrap();
                seen.insert(model.instance_id, model.instance.to_vec());
                (reports.0).1.notify_all();
            }))
            .unwrap();
    }

    /// Waits up to `deadline` until every one of `expected` was reported
    /// with its bytes; returns the ids that were not.
    fn missing(&self, expected: &Models, deadline: Duration) -> Vec<i64> {
        let end = Instant::now() + deadline;
        let mut seen = (self.0).0.lock().unwrap();
        loop {
            let missing: Vec<i64> = expected
                .iter()
                .filter(|(id, bytes)| seen.get(id) != Some(bytes))
                .map(|(id, _)| *id)
                .collect();
            let left = end.saturating_duration_since(Instant::now());
            if missing.is_empty() || left.is_zero() {
                return missing;
            }
            seen = (self.0).1.wait_timeout(seen, left).unwrap().0;
        }
    }
}

#[test]
fn a_listener_reports_every_change_another_process_made_around_a_database_restart() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let section = server.backend_section("restart");
    let listener_host = open(section.clone());
    let reports = Reports::default();
    reports.listen(&listener_host);
    let conf = conf_file(work.path(), "pg.yaml", section);

    // Another process writes, one CLI `put` after another, before, during
    // and after the restart; failed puts (exit 1) are not acknowledged.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, home, conf) = (stop.clone(), work.path().to_path_buf(), conf.clone());
        std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            let mut failed = 0;
            for i in 0u64.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let file = home.join(format!("m{i}.bin"));
                let bytes = test_bytes(i, 2000);
                std::fs::write(&file, &bytes).unwrap();
                let output = output_within(
                    cli_on(&home, &conf, &["put", "restart"]).arg(&file),
                    COMMAND_DEADLINE,
                    "put",
                );
                match output.status.code() {
                    Some(0) => {
                        let id = String::from_utf8_lossy(&output.stdout)
                            .trim()
                            .parse()
                            .unwrap();
                        acked.insert(id, bytes);
                    }
                    Some(1) => failed += 1,
                    _ => panic!("put: {}", describe(&output)),
                }
            }
            (acked, failed)
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    server.stop();
    std::thread::sleep(Duration::from_secs(2));
    server.start_again();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, failed) = writer.join().unwrap();
    eprintln!(
        "{} puts acknowledged, {failed} failed while the server was down",
        acked.len()
    );
    assert!(failed > 0, "no put ran while the server was down");
    assert!(
        acked.len() > 10,
        "too few puts acknowledged: {}",
        acked.len()
    );
    let missing = reports.missing(&acked, Duration::from_secs(60));
    assert!(missing.is_empty(), "never reported: {missing:?}");
}

/// A model of `size` bytes through the CLI: put, list, get, each step's
/// peak memory held to the bounds the backend promises.
fn round_trip(work: &Path, conf: &Path, size: u64) {
    const DEADLINE: Duration = Duration::from_secs(900);
    let file = work.join(format!("model-{size}.bin"));
    let bytes = test_bytes(size, size as usize);
    std::fs::write(&file, &bytes).unwrap();
    let mut put = cli_on(work, conf, &["put", "large"]);
    put.arg(&file);
    let (output, peak) = run_measured(DEADLINE, put, "put");
    assert_peak_within(&format!("put of {} MiB", size / MIB), peak, 2.5, size);
    let id = String::from_utf8_lossy(&output.stdout).trim().to_string();

    let (_, peak) = run_measured(DEADLINE, cli_on(work, conf, &["list"]), "list");
    eprintln!("list: peak RSS {} MiB", peak / MIB);
    assert!(peak < 64 * MIB, "list read model bytes: peak RSS {peak}");

    let out = work.join("out.bin");
    let (_, peak) = run_measured(
        DEADLINE,
        cli_on(work, conf, &["get", &id, "-o", out.to_str().unwrap()]),
        "get",
    );
    assert_peak_within(&format!("get of {} MiB", size / MIB), peak, 2.5, size);
    assert!(
        std::fs::read(&out).unwrap() == bytes,
        "get returned other bytes"
    );
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn models_of_512_mib_and_1_5_gib_round_trip_in_bounded_memory() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = conf_file(work.path(), "pg.yaml", server.backend_section("large"));
    round_trip(work.path(), &conf, 512 * MIB);
    round_trip(work.path(), &conf, 1536 * MIB);
    let output = run_expecting(&mut cli_on(work.path(), &conf, &["list"]), 0);
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains(&format!("\t{}", 512 * MIB)), "{listing}");
    assert!(listing.contains(&format!("\t{}", 1536 * MIB)), "{listing}");
}

fn wal_lsn(server: &PostgresServer) -> u64 {
    server
        .psql("SELECT pg_current_wal_lsn() - '0/0'")
        .parse()
        .unwrap()
}

#[test]
fn an_unchanged_update_writes_no_wal_and_a_changed_one_about_one_copy() {
    const SIZE: usize = 64 << 20;
    let server = PostgresServer::start();
    let backend = open(server.backend_section("wal"));
    let bytes = test_bytes(7, SIZE);
    let model = backend
        .create_model("wal".into(), bytes.clone().into())
        .unwrap();

    let before = wal_lsn(&server);
    backend.update_model(model.clone()).unwrap();
    let unchanged = wal_lsn(&server) - before;
    eprintln!("unchanged 64 MiB update: {unchanged} bytes of WAL");
    assert!(
        unchanged < 64 * 1024,
        "an unchanged update wrote {unchanged} bytes of WAL"
    );

    let mut changed = bytes;
    changed[SIZE / 2] ^= 1;
    let before = wal_lsn(&server);
    backend
        .update_model(Model::new(model.instance_id, "wal", changed.clone()))
        .unwrap();
    let written = wal_lsn(&server) - before;
    let ratio = written as f64 / SIZE as f64;
    eprintln!("changed 64 MiB update: {written} bytes of WAL, {ratio:.2}x the model");
    assert!((0.95..1.3).contains(&ratio), "{ratio:.2}x");
    assert!(
        backend
            .get_model(model.instance_id)
            .unwrap()
            .instance
            .as_slice()
            == changed
    );
}

/// [`assert_refused`], then [`assert_host_works`].
fn refused(
    server: &PostgresServer,
    work: &Path,
    section: serde_json::Value,
    kind: ErrorKind,
    names: &[&str],
    secret: &str,
) {
    assert_refused(work, section, kind, names, secret);
    assert_host_works(server);
}

/// Opening `section` fails in this process and through the CLI (exit 2 for
/// a config error, 1 otherwise); each message holds every one of `names`
/// and not `secret`. Returns both messages.
fn assert_refused(
    work: &Path,
    section: serde_json::Value,
    kind: ErrorKind,
    names: &[&str],
    secret: &str,
) -> [String; 2] {
    let mut with_module = section.clone();
    with_module["module"] = json!(postgres_plugin());
    let config = aimm_backend_loader::ServerConfig::from_value(
        json!({ "backend": with_module }),
        "test config",
    )
    .unwrap();
    let opened = aimm_backend_hat_host::opener(aimm_backend_loader::SearchPath::from_dirs(vec![]))
        .prepare(&config)
        .and_then(|prepared| prepared.create());
    let err = match opened {
        Ok(_) => panic!("{section} opened"),
        Err(err) => err.to_string(),
    };
    let conf = conf_file(work, "bad.yaml", section.clone());
    let code = if kind == ErrorKind::InvalidConfig {
        2
    } else {
        1
    };
    let output = run_expecting(&mut cli_on(work, &conf, &["list"]), code);
    let cli_err = String::from_utf8_lossy(&output.stderr).to_string();
    eprintln!("{cli_err}");
    for message in [&err, &cli_err] {
        for name in names {
            assert!(message.contains(name), "{name:?} not in {message}");
        }
        assert!(!message.contains(secret), "the secret is in {message}");
    }
    [err, cli_err]
}

/// This process still opens a good store and works.
fn assert_host_works(server: &PostgresServer) {
    let good = open(server.backend_section("public"));
    let model = good
        .create_model("ok".into(), b"ok".to_vec().into())
        .unwrap();
    assert_eq!(
        good.get_model(model.instance_id)
            .unwrap()
            .instance
            .as_slice(),
        b"ok"
    );
}

#[test]
fn bad_configs_are_refused_clearly_and_the_host_still_works() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let good = server.backend_section("public");
    let server_name = format!("aimm@127.0.0.1:{}/aimm", server.port);
    let secret = "hunter2-secret";

    let wrong = write_file(work.path(), "wrong.password", secret);
    let mut section = good.clone();
    section["password_file"] = json!(wrong);
    refused(
        &server,
        work.path(),
        section,
        ErrorKind::InvalidConfig,
        &[&server_name, "password"],
        secret,
    );

    // The right password, in the URL: never shown either.
    let password = std::fs::read_to_string(server.password_file()).unwrap();
    let mut section = good.clone();
    section["url"] = json!(format!(
        "postgresql://aimm:{}@127.0.0.1:{}/nosuchdb",
        password.trim(),
        server.port
    ));
    section.as_object_mut().unwrap().remove("password_file");
    refused(
        &server,
        work.path(),
        section,
        ErrorKind::InvalidConfig,
        &["aimm@127.0.0.1", "nosuchdb", "does not exist"],
        password.trim(),
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut section = good.clone();
    section["url"] = json!(format!("postgresql://aimm@127.0.0.1:{port}/aimm"));
    for message in assert_refused(
        work.path(),
        section,
        ErrorKind::Unavailable,
        &[&format!("127.0.0.1:{port}")],
        secret,
    ) {
        assert_eq!(
            message.matches("Connection refused").count(),
            1,
            "{message}"
        );
    }
    assert_host_works(&server);

    let mut section = good.clone();
    section["tls"] = json!("require");
    refused(
        &server,
        work.path(),
        section,
        ErrorKind::Unavailable,
        &[&server_name, "TLS"],
        secret,
    );

    server.psql("CREATE SCHEMA odd AUTHORIZATION aimm; CREATE TABLE odd.aimm_models (id int, blob bytea); ALTER TABLE odd.aimm_models OWNER TO aimm");
    refused(
        &server,
        work.path(),
        server.backend_section("odd"),
        ErrorKind::InvalidConfig,
        &["odd.aimm_models", "blob"],
        secret,
    );
    assert_eq!(
        server.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'odd'"),
        "id,blob",
        "the table of the wrong shape was touched"
    );

    // A server that may lose committed writes.
    // ALTER SYSTEM runs outside a transaction: one statement per psql.
    server.psql("ALTER SYSTEM SET fsync = off");
    server.psql("SELECT pg_reload_conf()");
    assert_refused(
        work.path(),
        good.clone(),
        ErrorKind::InvalidConfig,
        &[&server_name, "fsync is off", "refuses to open"],
        secret,
    );
    server.psql("ALTER SYSTEM RESET fsync");
    server.psql("SELECT pg_reload_conf()");
    assert_host_works(&server);

    let mut section = good.clone();
    let file = section
        .as_object_mut()
        .unwrap()
        .remove("password_file")
        .unwrap();
    section["pasword_file"] = file;
    refused(
        &server,
        work.path(),
        section,
        ErrorKind::InvalidConfig,
        &["pasword_file"],
        secret,
    );
}

#[test]
fn copy_moves_models_from_sqlite_to_postgres_to_the_event_server_and_back_exactly() {
    let postgres = PostgresServer::start();
    let hat = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = sqlite_conf(work.path(), "src.yaml", &work.path().join("src.db"), "");
    let pg = conf_file(work.path(), "pg.yaml", postgres.backend_section("copied"));
    let events = write_file(
        work.path(),
        "event.yaml",
        &format!(
            "name: copy-host\nhat:\n  eventer_server: {{host: 127.0.0.1, port: {}}}\n\
             backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, copied]\n",
            hat.port
        ),
    );
    let back = sqlite_conf(work.path(), "back.yaml", &work.path().join("back.db"), "");
    let file = work.path().join("m.bin");
    for seed in 0..4u64 {
        std::fs::write(&file, test_bytes(seed, 70_000 * seed as usize)).unwrap();
        put_one(work.path(), &source, &format!("type{seed}"), &file);
    }
    for (from, to) in [(&source, &pg), (&pg, &events), (&events, &back)] {
        let output = run_expecting(
            &mut cli_on(work.path(), from, &["copy", "--to", to.to_str().unwrap()]),
            0,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("copied 4 models, 0 already present"),
            "{stderr}"
        );
    }
    let original = read_models_table(&work.path().join("src.db"));
    assert_eq!(original.len(), 4);
    assert_eq!(original, read_models_table(&work.path().join("back.db")));
}

/// Connections of our backend the server sees encrypted.
fn encrypted_connections(server: &PostgresServer) -> u32 {
    server
        .psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'aimm-backend-postgres' AND s.ssl",
        )
        .parse()
        .unwrap()
}

#[test]
fn tls_encrypts_in_every_mode_and_verify_full_authenticates_the_server() {
    let server = PostgresServer::start_with_tls();
    let work = tempfile::tempdir().unwrap();
    let section = |tls: &str, url: String| {
        let mut section = server.backend_section("tls");
        section["tls"] = json!(tls);
        section["url"] = json!(url);
        if tls == "verify-full" {
            section["ca_file"] = json!(server.ca_file());
        }
        section
    };
    for (tls, host) in [
        ("verify-full", "127.0.0.1"),
        ("verify-full", "localhost"),
        ("require", "127.0.0.1"),
        ("prefer", "127.0.0.1"),
    ] {
        let url = format!("postgresql://aimm@{host}:{}/aimm", server.port);
        let backend = open(section(tls, url));
        let model = backend
            .create_model(tls.into(), b"over TLS".to_vec().into())
            .unwrap();
        assert_eq!(
            backend
                .get_model(model.instance_id)
                .unwrap()
                .instance
                .as_slice(),
            b"over TLS"
        );
        assert!(
            encrypted_connections(&server) >= 1,
            "{tls} to {host}: not encrypted"
        );
        backend.close().unwrap();
    }

    // The right server under a name its certificate does not hold.
    let misnamed = format!(
        "host=aimm.invalid hostaddr=127.0.0.1 port={} user=aimm dbname=aimm",
        server.port
    );
    assert_refused(
        work.path(),
        section("verify-full", misnamed),
        ErrorKind::Unavailable,
        &["aimm@aimm.invalid", "certificate"],
        "no secret here",
    );

    // A CA that did not sign the server's certificate.
    let other_ca = work.path().join("other-ca.crt");
    let made = output_within(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=another CA", "-keyout"])
            .arg(work.path().join("other-ca.key"))
            .arg("-out")
            .arg(&other_ca),
        COMMAND_DEADLINE,
        "openssl req",
    );
    assert!(made.status.success(), "{}", describe(&made));
    let mut wrong_ca = section(
        "verify-full",
        format!("postgresql://aimm@127.0.0.1:{}/aimm", server.port),
    );
    wrong_ca["ca_file"] = json!(other_ca);
    assert_refused(
        work.path(),
        wrong_ca,
        ErrorKind::Unavailable,
        &["aimm@127.0.0.1", "certificate", "signed by a CA in ca_file"],
        "no secret here",
    );
    assert_host_works(&server);
}
