//! The scratch PostgreSQL server, the variants, and one run of each
//! workload.

use crate::target::{open_plugin, Floor, Target};
use aimm_backend_api::RVec;
use aimm_backend_test_support::payload::test_bytes;
use aimm_backend_test_support::{workspace_root, PostgresServer};
use anyhow::{bail, ensure, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub(crate) const KIB: usize = 1024;
pub(crate) const MIB: usize = 1024 * KIB;
pub(crate) const WRITER_CREATES: usize = 1600;

/// Seconds per phase of one workload run; NaN where a variant has none.
#[derive(Clone, Copy, Default)]
pub(crate) struct Phases {
    pub(crate) create: f64,
    pub(crate) get: f64,
    pub(crate) update: f64,
    pub(crate) list: f64,
}

/// WAL bytes per phase.
#[derive(Clone, Copy, Default)]
pub(crate) struct Wal {
    pub(crate) create: u64,
    pub(crate) get: u64,
    pub(crate) update: u64,
    pub(crate) list: u64,
}

/// What one phase took: seconds, and WAL bytes.
struct Spent {
    secs: f64,
    wal: u64,
}

/// The server, an admin connection for its counters, and where things are.
pub(crate) struct Bench {
    pub(crate) server: PostgresServer,
    pub(crate) admin: std::sync::Mutex<postgres::Client>,
    postgres_plugin: PathBuf,
    sqlite_plugin: PathBuf,
    pub(crate) scratch: tempfile::TempDir,
    schemas: std::sync::atomic::AtomicUsize,
}

impl Bench {
    pub(crate) fn start() -> Result<Bench> {
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

    /// Runs `phase`: what it returned, its time and the WAL written meanwhile.
    fn measure<T>(&self, phase: impl FnOnce() -> Result<T>) -> Result<(T, Spent)> {
        let lsn = self.wal_lsn()?;
        let start = Instant::now();
        let out = phase()?;
        let secs = start.elapsed().as_secs_f64();
        Ok((
            out,
            Spent {
                secs,
                wal: self.wal_lsn()? - lsn,
            },
        ))
    }

    /// WAL syncs so far (flushed by backends as they exit or go idle).
    pub(crate) fn wal_syncs(&self) -> Result<u64> {
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
pub(crate) enum Variant {
    Postgres,
    Floor,
    Sqlite,
    Stock,
}

impl Variant {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Variant::Postgres => "ours, PostgreSQL",
            Variant::Floor => "floor: bare postgres client",
            Variant::Sqlite => "ours, SQLite",
            Variant::Stock => "stock SQLite (Python)",
        }
    }
}

/// One run of a workload on a fresh store: phase times and WAL per phase.
pub(crate) fn run_workload(
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

    let handed = originals.clone();
    let (ids, create) = bench.measure(|| {
        handed
            .into_iter()
            .map(|bytes| target.create("bench", bytes))
            .collect::<Result<Vec<i64>>>()
    })?;

    let (models, get) = bench.measure(|| target.get_models())?;
    let got: BTreeMap<i64, RVec<u8>> = models.into_iter().collect();
    for (id, bytes) in ids.iter().zip(&originals) {
        ensure!(
            got.get(id).map(|b| b.as_slice()) == Some(bytes.as_slice()),
            "{variant:?}: model {id} read back wrong"
        );
    }
    drop(got);

    let ((), update) = bench.measure(|| {
        ids.iter()
            .zip(changed)
            .try_for_each(|(id, bytes)| target.update(*id, "bench", bytes))
    })?;

    let (listed, list) = bench.measure(|| target.list())?;
    ensure!(
        listed == count,
        "{variant:?}: list gave {listed} models, not {count}"
    );
    let times = Phases {
        create: create.secs,
        get: get.secs,
        update: update.secs,
        list: list.secs,
    };
    let wal = Wal {
        create: create.wal,
        get: get.wal,
        update: update.wal,
        list: list.wal,
    };
    Ok((times, wal))
}

/// `WRITER_CREATES` creates of 64 KiB over `writers` threads; seconds and
/// WAL bytes.
pub(crate) fn run_writers(
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
    let ((), spent) = bench.measure(|| {
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
        })
    })?;
    ensure!(
        target.list()? == per_writer * writers,
        "{variant:?}: writes missing"
    );
    Ok((spent.secs, spent.wal))
}

/// Model `index` of `round`: pseudo-random bytes, which no compression
/// shrinks (PostgreSQL compresses values it can; trained weights rarely
/// can be).
fn payload(round: usize, index: usize, size: usize) -> Vec<u8> {
    test_bytes(((round as u64) << 32) | index as u64, size)
}
