//! The PostgreSQL backend side by side with its floor, with our SQLite
//! backend and with the stock Python SQLite backend, in one run, on a real
//! PostgreSQL 15 that it starts itself (`scripts/postgres.sh`, a scratch
//! directory on loopback).
//!
//! Workloads (each round, each variant on a fresh store):
//!
//! - `1000 x 64 KiB` and `3 x 64 MiB`: N creates one after another, one
//!   `get_models` (every model, checked byte for byte), N updates with
//!   changed bytes, one `list_models`.
//! - Writers: 1,600 creates of 64 KiB split over 1, 4 and 16 threads.
//!
//! Variants:
//!
//! - `postgres`: our plugin (`libaimm_backend_postgres.so`, loaded as a host
//!   loads it) with as many connections as writers;
//! - `floor`: the statements our backend sends, sent by a bare `postgres`
//!   client (the same crate, one connection per writer, the same SHA-256 of
//!   each model): what PostgreSQL itself costs, with nothing of ours;
//! - `sqlite`: our SQLite plugin, a fresh file in the system's temporary
//!   directory;
//! - `stock`: `aimm.server.backend.sqlite` (aimm 1.2.dev1) through its
//!   Python interface (`tests/python/bench_aimm_sqlite.py`; it has no
//!   `list`).
//!
//! Each run starts after a `CHECKPOINT`. Beside each PostgreSQL figure: the
//! WAL the phase wrote (the server's
//! `pg_current_wal_lsn()` before and after) and, per variant, the WAL syncs
//! (`pg_stat_wal.wal_sync`, read once its connections have closed).
//!
//! ```text
//! cargo build --release --workspace
//! target/release/postgres-bench [--rounds R] [--quick]
//! ```

#![forbid(unsafe_code)]

use aimm_backend_api::{Backend, Model, RVec};
use aimm_backend_bench::stats::{median, range};
use aimm_backend_bench::sysinfo;
use aimm_backend_loader::{SearchPath, ServerConfig};
use aimm_backend_test_support::payload::test_bytes;
use aimm_backend_test_support::{venv_python, workspace_root, PostgresServer};
use anyhow::{bail, ensure, Context, Result};
use postgres::fallible_iterator::FallibleIterator;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Our backend's chunk size: the floor sends the same rows.
const CHUNK: usize = 8 * MIB;
const WRITER_CREATES: usize = 1600;

struct Args {
    rounds: usize,
    quick: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 3,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => args.quick = true,
            "--rounds" => {
                let value = it.next().context("--rounds needs a value")?;
                args.rounds = value
                    .parse::<usize>()
                    .with_context(|| format!("--rounds {value}: expected a number"))?
                    .max(1);
            }
            _ => bail!("unknown option {flag}; expected --rounds R or --quick"),
        }
    }
    Ok(args)
}

/// Seconds per phase of one workload run; NaN where a variant has none.
#[derive(Clone, Copy, Default)]
struct Phases {
    create: f64,
    get: f64,
    update: f64,
    list: f64,
}

/// WAL bytes per phase.
#[derive(Clone, Copy, Default)]
struct Wal {
    create: u64,
    get: u64,
    update: u64,
    list: u64,
}

/// What one variant does to a store. Writes take the bytes by value, as a
/// host hands its buffer over; reads return them without a copy.
trait Target: Send + Sync {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64>;
    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()>;
    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>>;
    fn list(&self) -> Result<usize>;
}

/// A backend plugin, as a host calls it.
struct Plugged(Arc<dyn Backend>);

impl Target for Plugged {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64> {
        Ok(self
            .0
            .create_model(model_type.into(), bytes.into())?
            .instance_id)
    }
    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()> {
        self.0.update_model(Model::new(id, model_type, bytes))?;
        Ok(())
    }
    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>> {
        Ok(self
            .0
            .get_models()?
            .into_iter()
            .map(|m| (m.instance_id, m.instance))
            .collect())
    }
    fn list(&self) -> Result<usize> {
        Ok(self.0.list_models()?.len())
    }
}

fn open_plugin(section: serde_json::Value) -> Result<Plugged> {
    let config = ServerConfig::from_value(serde_json::json!({ "backend": section }), "bench")?;
    let opened = aimm_backend_hat_host::opener(SearchPath::from_dirs(Vec::new()))
        .open(&config)
        .context("opening the plugin")?;
    Ok(Plugged(opened.backend))
}

/// The floor: our backend's statements from bare clients, one connection
/// per thread that uses it.
struct Floor {
    url: String,
    password: String,
    models: String,
    chunks: String,
    channel: String,
    clients: std::sync::Mutex<Vec<postgres::Client>>,
}

impl Floor {
    fn new(server: &PostgresServer, schema: &str) -> Result<Floor> {
        Ok(Floor {
            url: server.url(),
            password: std::fs::read_to_string(server.password_file())?
                .trim()
                .to_string(),
            models: format!("\"{schema}\".\"aimm_models\""),
            chunks: format!("\"{schema}\".\"aimm_models_chunks\""),
            channel: format!("{schema}.aimm_models"),
            clients: Default::default(),
        })
    }

    fn with<T>(&self, call: impl FnOnce(&mut postgres::Client) -> Result<T>) -> Result<T> {
        let taken = self.clients.lock().unwrap().pop();
        let mut client = match taken {
            Some(client) => client,
            None => {
                let mut config: postgres::Config = self.url.parse()?;
                config.password(&self.password);
                let mut client = config.connect(postgres::NoTls)?;
                client.batch_execute("SET synchronous_commit = on")?;
                client
            }
        };
        let outcome = call(&mut client);
        self.clients.lock().unwrap().push(client);
        outcome
    }

    fn insert_chunks(
        &self,
        tx: &mut postgres::Transaction<'_>,
        id: i64,
        bytes: &[u8],
    ) -> Result<()> {
        let insert = tx.prepare(&format!(
            "INSERT INTO {} (id, seq, data) VALUES ($1, $2, $3)",
            self.chunks
        ))?;
        for (seq, chunk) in bytes.chunks(CHUNK).enumerate() {
            tx.execute(&insert, &[&id, &(seq as i32), &chunk])?;
        }
        Ok(())
    }
}

impl Target for Floor {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64> {
        let digest = sha2::Sha256::digest(&bytes).to_vec();
        self.with(|client| {
            let mut tx = client.transaction()?;
            let row = tx.query_one(
                &format!(
                    "INSERT INTO {} (model_type, size, digest, version) \
                     VALUES ($1, $2, $3, 1) RETURNING id, changed_by::text",
                    self.models
                ),
                &[&model_type, &(bytes.len() as i64), &digest],
            )?;
            let id: i64 = row.get(0);
            self.insert_chunks(&mut tx, id, &bytes)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel, &id.to_string()],
            )?;
            tx.commit()?;
            Ok(id)
        })
    }

    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()> {
        let digest = sha2::Sha256::digest(&bytes).to_vec();
        self.with(|client| {
            let mut tx = client.transaction()?;
            let row = tx.query_one(
                &format!(
                    "SELECT model_type, digest, size FROM {} WHERE id = $1 FOR UPDATE",
                    self.models
                ),
                &[&id],
            )?;
            ensure!(
                row.get::<_, &[u8]>(1) != digest.as_slice(),
                "unchanged update"
            );
            tx.query_one(
                &format!(
                    "UPDATE {} SET model_type = $2, size = $3, digest = $4, \
                     version = version + 1, changed_by = pg_current_xact_id() \
                     WHERE id = $1 RETURNING changed_by::text",
                    self.models
                ),
                &[&id, &model_type, &(bytes.len() as i64), &digest],
            )?;
            tx.execute(
                &format!("DELETE FROM {} WHERE id = $1", self.chunks),
                &[&id],
            )?;
            self.insert_chunks(&mut tx, id, &bytes)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&self.channel, &id.to_string()],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>> {
        self.with(|client| {
            let none: [&i64; 0] = [];
            let mut rows = client.query_raw(
                &format!(
                    "SELECT m.id, m.model_type, m.size, c.data FROM {} m \
                     LEFT JOIN {} c ON c.id = m.id ORDER BY m.id, c.seq",
                    self.models, self.chunks
                ),
                none,
            )?;
            let mut models: Vec<(i64, Vec<u8>)> = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0);
                if models.last().is_none_or(|(last, _)| *last != id) {
                    // Ours reads the type too.
                    let _model_type: &str = row.get(1);
                    models.push((id, Vec::with_capacity(row.get::<_, i64>(2) as usize)));
                }
                if let Some(chunk) = row.get::<_, Option<&[u8]>>(3) {
                    models
                        .last_mut()
                        .expect("pushed above")
                        .1
                        .extend_from_slice(chunk);
                }
            }
            Ok(models
                .into_iter()
                .map(|(id, bytes)| (id, bytes.into()))
                .collect())
        })
    }

    fn list(&self) -> Result<usize> {
        self.with(|client| {
            Ok(client
                .query(
                    &format!(
                        "SELECT id, model_type, size FROM {} ORDER BY id",
                        self.models
                    ),
                    &[],
                )?
                .len())
        })
    }
}

/// The server, an admin connection for its counters, and where things are.
struct Bench {
    server: PostgresServer,
    admin: std::sync::Mutex<postgres::Client>,
    postgres_plugin: PathBuf,
    sqlite_plugin: PathBuf,
    scratch: tempfile::TempDir,
    schemas: std::sync::atomic::AtomicUsize,
}

impl Bench {
    fn start() -> Result<Bench> {
        let release = workspace_root().join("target/release");
        let postgres_plugin = release.join("libaimm_backend_postgres.so");
        let sqlite_plugin = release.join("libaimm_backend_sqlite.so");
        for plugin in [&postgres_plugin, &sqlite_plugin] {
            ensure!(
                plugin.is_file(),
                "{} is missing: run cargo build --release --workspace first",
                plugin.display()
            );
        }
        let server = PostgresServer::start();
        let mut config: postgres::Config = server.url().parse()?;
        config.password(std::fs::read_to_string(server.password_file())?.trim());
        let admin = config.connect(postgres::NoTls)?;
        Ok(Bench {
            server,
            admin: std::sync::Mutex::new(admin),
            postgres_plugin,
            sqlite_plugin,
            scratch: tempfile::tempdir()?,
            schemas: Default::default(),
        })
    }

    fn wal_lsn(&self) -> Result<u64> {
        let row = self
            .admin
            .lock()
            .unwrap()
            .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// WAL syncs so far (flushed by backends as they exit or go idle).
    fn wal_syncs(&self) -> Result<u64> {
        let row = self
            .admin
            .lock()
            .unwrap()
            .query_one("SELECT wal_sync FROM pg_stat_wal", &[])?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// A checkpoint, so that no variant pays for another's dirty pages or
    /// starts a checkpoint cycle the others did not (a full page image
    /// follows the first change of each page after one).
    fn checkpoint(&self) {
        self.server.psql("CHECKPOINT");
    }

    fn fresh_schema(&self, what: &str) -> String {
        let n = self
            .schemas
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("bench_{what}_{n}")
    }

    fn postgres_section(&self, schema: &str, connections: usize) -> serde_json::Value {
        let mut section = self.server.backend_section(schema);
        section["module"] = self.postgres_plugin.to_string_lossy().as_ref().into();
        section["connections"] = connections.into();
        section
    }

    fn open(&self, variant: Variant, connections: usize) -> Result<Box<dyn Target>> {
        Ok(match variant {
            Variant::Postgres => Box::new(open_plugin(
                self.postgres_section(&self.fresh_schema("ours"), connections),
            )?),
            Variant::Floor => {
                let schema = self.fresh_schema("floor");
                // Our backend makes the tables; the floor only writes them.
                open_plugin(self.postgres_section(&schema, 1))?.0.close()?;
                Box::new(Floor::new(&self.server, &schema)?)
            }
            Variant::Sqlite => {
                let db = self
                    .scratch
                    .path()
                    .join(format!("{}.db", self.fresh_schema("sqlite")));
                Box::new(open_plugin(serde_json::json!({
                    "module": self.sqlite_plugin.to_string_lossy(),
                    "path": db.to_string_lossy(),
                }))?)
            }
            Variant::Stock => bail!("the stock backend runs in Python"),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    Postgres,
    Floor,
    Sqlite,
    Stock,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Postgres => "ours, PostgreSQL",
            Variant::Floor => "floor: bare postgres client",
            Variant::Sqlite => "ours, SQLite",
            Variant::Stock => "stock SQLite (Python)",
        }
    }
}

/// One run of a workload on a fresh store: phase times and WAL per phase.
fn run_workload(
    bench: &Bench,
    variant: Variant,
    count: usize,
    size: usize,
    round: usize,
) -> Result<(Phases, Wal)> {
    let target = bench.open(variant, 1)?;
    bench.checkpoint();
    let originals: Vec<Vec<u8>> = (0..count).map(|i| payload(round, i, size)).collect();
    let changed: Vec<Vec<u8>> = (0..count).map(|i| payload(round + 1000, i, size)).collect();
    let mut times = Phases::default();
    let mut wal = Wal::default();

    let handed = originals.clone();
    let lsn = bench.wal_lsn()?;
    let start = Instant::now();
    let ids: Vec<i64> = handed
        .into_iter()
        .map(|bytes| target.create("bench", bytes))
        .collect::<Result<_>>()?;
    times.create = start.elapsed().as_secs_f64();
    wal.create = bench.wal_lsn()? - lsn;

    let lsn = bench.wal_lsn()?;
    let start = Instant::now();
    let models = target.get_models()?;
    times.get = start.elapsed().as_secs_f64();
    wal.get = bench.wal_lsn()? - lsn;
    let got: BTreeMap<i64, RVec<u8>> = models.into_iter().collect();
    for (id, bytes) in ids.iter().zip(&originals) {
        ensure!(
            got.get(id).map(|b| b.as_slice()) == Some(bytes.as_slice()),
            "{variant:?}: model {id} read back wrong"
        );
    }
    drop(got);

    let lsn = bench.wal_lsn()?;
    let start = Instant::now();
    for (id, bytes) in ids.iter().zip(changed) {
        target.update(*id, "bench", bytes)?;
    }
    times.update = start.elapsed().as_secs_f64();
    wal.update = bench.wal_lsn()? - lsn;

    let lsn = bench.wal_lsn()?;
    let start = Instant::now();
    let listed = target.list()?;
    times.list = start.elapsed().as_secs_f64();
    wal.list = bench.wal_lsn()? - lsn;
    ensure!(
        listed == count,
        "{variant:?}: list gave {listed} models, not {count}"
    );
    Ok((times, wal))
}

/// `WRITER_CREATES` creates of 64 KiB over `writers` threads; seconds and
/// WAL bytes.
fn run_writers(
    bench: &Bench,
    variant: Variant,
    writers: usize,
    round: usize,
) -> Result<(f64, u64)> {
    let target: Arc<dyn Target> = Arc::from(bench.open(variant, writers)?);
    let per_writer = WRITER_CREATES / writers;
    let payloads: Vec<Vec<Vec<u8>>> = (0..writers)
        .map(|w| {
            (0..per_writer)
                .map(|i| payload(round, w * per_writer + i, 64 * KIB))
                .collect()
        })
        .collect();
    bench.checkpoint();
    let lsn = bench.wal_lsn()?;
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = payloads
            .into_iter()
            .map(|mine| {
                let target = target.clone();
                scope.spawn(move || -> Result<()> {
                    for bytes in mine {
                        target.create("bench", bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("a writer panicked")?;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    let wal = bench.wal_lsn()? - lsn;
    ensure!(
        target.list()? == per_writer * writers,
        "{variant:?}: writes missing"
    );
    Ok((secs, wal))
}

/// `aimm.server.backend.sqlite` through its Python interface
/// (`tests/python/bench_aimm_sqlite.py`): creates, one `get_models`,
/// updates, each timed by the script, on a fresh file under `dir`.
fn run_stock(
    python: &std::path::Path,
    count: usize,
    size: usize,
    dir: &std::path::Path,
) -> Result<Phases> {
    let mut command = std::process::Command::new(python);
    sysinfo::default_allocator(&mut command);
    let output = command
        .arg(workspace_root().join("tests/python/bench_aimm_sqlite.py"))
        .args(["--count", &count.to_string(), "--size", &size.to_string()])
        .arg("--dir")
        .arg(dir)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the stock benchmark failed ({}): {}{}",
        output.status,
        stdout.trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let line = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("the stock benchmark printed {line:?}"))?;
    ensure!(
        report["verified"] == true,
        "the stock run did not verify: {line}"
    );
    let secs = |key: &str| {
        report[key]
            .as_f64()
            .with_context(|| format!("the stock report has no number `{key}`"))
    };
    Ok(Phases {
        create: secs("create_s")?,
        get: secs("get_models_s")?,
        update: secs("update_s")?,
        list: f64::NAN,
    })
}

/// Model `index` of `round`: pseudo-random bytes, which no compression
/// shrinks (PostgreSQL compresses values it can; trained weights rarely
/// can be).
fn payload(round: usize, index: usize, size: usize) -> Vec<u8> {
    test_bytes(((round as u64) << 32) | index as u64, size)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// `median (min-max)` of seconds.
fn spread(values: &[f64]) -> String {
    let (lo, hi) = range(values);
    format!("{:.3} ({:.3}-{:.3})", median(values), lo, hi)
}

fn workload_table(bench: &Bench, args: &Args, count: usize, size: usize) -> Result<()> {
    let variants = [
        Variant::Postgres,
        Variant::Floor,
        Variant::Sqlite,
        Variant::Stock,
    ];
    let mut times: BTreeMap<Variant, Vec<Phases>> = BTreeMap::new();
    let mut wal: BTreeMap<Variant, Wal> = BTreeMap::new();
    let mut syncs: BTreeMap<Variant, u64> = BTreeMap::new();
    let python = venv_python(&workspace_root(), sysinfo::default_allocator)?;
    for round in 0..args.rounds {
        for variant in variants {
            let phases = if variant == Variant::Stock {
                run_stock(&python, count, size, bench.scratch.path())?
            } else {
                let before = bench.wal_syncs()?;
                let (phases, phase_wal) = run_workload(bench, variant, count, size, round)?;
                // The backends' connections have closed: their counts are in.
                std::thread::sleep(std::time::Duration::from_millis(300));
                *syncs.entry(variant).or_default() += bench.wal_syncs()? - before;
                wal.insert(variant, phase_wal);
                phases
            };
            times.entry(variant).or_default().push(phases);
        }
    }
    let payload = (count * size) as u64;
    println!(
        "\n### {count} x {} KiB ({} of models), {} rounds: seconds, median (min-max)\n",
        size / KIB,
        mib(payload),
        args.rounds
    );
    println!("| variant | creates | get_models | updates | list | WAL: creates / updates / get+list | WAL syncs per round |");
    println!("|---|---|---|---|---|---|---|");
    for variant in variants {
        let runs = &times[&variant];
        let col = |f: fn(&Phases) -> f64| spread(&runs.iter().map(f).collect::<Vec<_>>());
        let wal_cell = match (variant, wal.get(&variant)) {
            (Variant::Postgres | Variant::Floor, Some(w)) => format!(
                "{} / {} / {}",
                mib(w.create),
                mib(w.update),
                mib(w.get + w.list)
            ),
            _ => "-".into(),
        };
        let sync_cell = match (variant, syncs.get(&variant)) {
            (Variant::Postgres | Variant::Floor, Some(n)) => (n / args.rounds as u64).to_string(),
            _ => "-".into(),
        };
        let list = if variant == Variant::Stock {
            "n/a".into()
        } else {
            col(|p| p.list)
        };
        println!(
            "| {} | {} | {} | {} | {} | {wal_cell} | {sync_cell} |",
            variant.label(),
            col(|p| p.create),
            col(|p| p.get),
            col(|p| p.update),
            list
        );
    }
    let ratio = |variant: Variant, f: fn(&Phases) -> f64| {
        let ours: Vec<f64> = times[&Variant::Postgres].iter().map(f).collect();
        let other: Vec<f64> = times[&variant].iter().map(f).collect();
        let ratios: Vec<f64> = ours.iter().zip(&other).map(|(a, b)| a / b).collect();
        format!("{:.2}x", median(&ratios))
    };
    println!("\nOurs on PostgreSQL over (median of the rounds' ratios; under 1 is faster):\n");
    println!("| over | creates | get_models | updates | list |");
    println!("|---|---|---|---|---|");
    for variant in [Variant::Floor, Variant::Sqlite, Variant::Stock] {
        let list = if variant == Variant::Stock {
            "n/a".into()
        } else {
            ratio(variant, |p| p.list)
        };
        println!(
            "| {} | {} | {} | {} | {list} |",
            variant.label(),
            ratio(variant, |p| p.create),
            ratio(variant, |p| p.get),
            ratio(variant, |p| p.update),
        );
    }
    println!(
        "\nFloor of the bytes: {} of models per phase; one commit per create and per update.",
        mib(payload)
    );
    Ok(())
}

fn writers_table(bench: &Bench, args: &Args) -> Result<()> {
    let variants = [Variant::Postgres, Variant::Floor, Variant::Sqlite];
    println!(
        "\n### {WRITER_CREATES} creates of 64 KiB over N writer threads, {} rounds: seconds, median (min-max)\n",
        args.rounds
    );
    println!(
        "| writers | ours, PostgreSQL | floor | ours / floor | WAL (ours / floor) | ours, SQLite |"
    );
    println!("|---|---|---|---|---|---|");
    for writers in [1, 4, 16] {
        let mut secs: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
        let mut wal: BTreeMap<Variant, u64> = BTreeMap::new();
        for round in 0..args.rounds {
            for variant in variants {
                let (s, w) = run_writers(bench, variant, writers, round)?;
                secs.entry(variant).or_default().push(s);
                wal.insert(variant, w);
            }
        }
        let ratios: Vec<f64> = secs[&Variant::Postgres]
            .iter()
            .zip(&secs[&Variant::Floor])
            .map(|(a, b)| a / b)
            .collect();
        println!(
            "| {writers} | {} | {} | {:.2}x | {} / {} | {} |",
            spread(&secs[&Variant::Postgres]),
            spread(&secs[&Variant::Floor]),
            median(&ratios),
            mib(wal[&Variant::Postgres]),
            mib(wal[&Variant::Floor]),
            spread(&secs[&Variant::Sqlite]),
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let bench = Bench::start()?;
    println!("## PostgreSQL backend benchmark\n");
    println!(
        "- machine: {}, {} cores",
        sysinfo::cpu_model(),
        std::thread::available_parallelism()?.get()
    );
    println!(
        "- server: {} on 127.0.0.1, fsync on, synchronous_commit on, data in {}",
        bench
            .admin
            .lock()
            .unwrap()
            .query_one("SHOW server_version", &[])?
            .get::<_, String>(0),
        bench.server.dir().display()
    );
    println!("- SQLite files in {}", bench.scratch.path().display());
    let workloads: &[(usize, usize)] = if args.quick {
        &[(100, 64 * KIB), (1, 64 * MIB)]
    } else {
        &[(1000, 64 * KIB), (3, 64 * MIB)]
    };
    for &(count, size) in workloads {
        workload_table(&bench, &args, count, size)?;
    }
    writers_table(&bench, &args)?;
    Ok(())
}
