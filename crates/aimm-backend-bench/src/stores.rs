//! The stores under test and the create / get_models / update workload run
//! against each: our backend loaded as a plugin, the same backend linked
//! directly and a bare `rusqlite` loop. The Python aimm backend runs in a
//! subprocess ([`aimm_backend_bench::report::StockBench`]).

use aimm_backend_api::{Backend, Model, RString, RVec};
use aimm_backend_loader::{PluginLibrary, SearchPath, ServerConfig};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use aimm_backend_test_support::payload;
use anyhow::{ensure, Context, Result};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The model type every benchmark model is stored under.
pub const MODEL_TYPE: &str = "bench.Model";

/// The table the Python backend and ours create.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS models \
    (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB)";

/// The bare loop's insert.
const INSERT: &str = "INSERT INTO models (type, instance) VALUES (?1, ?2)";

/// The bare loop's update.
const UPDATE: &str = "UPDATE models SET type = ?1, instance = ?2 WHERE id = ?3";

/// Seconds per phase of one run of the workload.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhaseTimes {
    /// `count` durable creates, one call each.
    pub create: f64,
    /// One get_models returning all of them, in a fresh child process that
    /// opens the store and makes this one call, so the result lands in fresh
    /// pages (as in the Python process, which is fresh too).
    pub get: f64,
    /// get_models in this process, right after an untimed first call, into
    /// memory the process already holds (not measured for the Python
    /// subprocess: NaN).
    pub get_warm: f64,
    /// `count` durable updates, one call each.
    pub update: f64,
}

impl PhaseTimes {
    /// The sum of the three phases.
    pub fn total(&self) -> f64 {
        self.create + self.get + self.update
    }
}

/// The plugin library (loaded once per process) and how to open a backend
/// from it.
pub struct Plugin {
    library: Arc<PluginLibrary>,
}

impl Plugin {
    /// Loads and checks the plugin library at `path`.
    pub fn load(path: &Path) -> Result<Plugin> {
        let library = PluginLibrary::load(path)
            .with_context(|| format!("loading plugin {}", path.display()))?;
        Ok(Plugin { library })
    }

    /// The plugin's name and version, for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({})",
            self.library.name(),
            self.library.version(),
            self.library.path().display()
        )
    }

    /// Opens a backend on `db` through the plugin, with `journal_mode` if
    /// given (otherwise the backend's default: WAL for a new file).
    pub fn open(&self, db: &Path, journal_mode: Option<&str>) -> Result<Arc<dyn Backend>> {
        let mut conf = serde_json::json!({
            "module": self.library.path().to_string_lossy(),
            "path": db.to_string_lossy(),
        });
        if let Some(mode) = journal_mode {
            conf["journal_mode"] = mode.into();
        }
        let config = ServerConfig::from_value(conf, "benchmark config")
            .context("validating the benchmark's backend config")?;
        let opened = aimm_backend_hat_host::opener(SearchPath::from_dirs(Vec::new()))
            .open(&config)
            .context("creating the plugin backend")?;
        Ok(opened.backend)
    }
}

/// Opens our backend on `db`, linked directly (no plugin boundary).
pub fn open_direct(db: &Path) -> Result<SqliteBackend> {
    SqliteBackend::open(SqliteConfig::new(db))
        .map_err(|err| anyhow::anyhow!("opening the directly linked backend: {err}"))
}

/// Payloads for one round: the bytes of each create and of each update.
/// Each call gets its own copy, made outside the timed call.
pub struct Payloads {
    /// Bytes for the create calls, in order.
    pub creates: Vec<Vec<u8>>,
    /// Bytes for the update calls, in order.
    pub updates: Vec<Vec<u8>>,
    /// The seed of each update payload (what must be stored at the end).
    pub update_seeds: Vec<u64>,
}

impl Payloads {
    /// `count` creates and `count` updates of `size` bytes for `round`.
    pub fn new(count: usize, size: usize, round: usize) -> Payloads {
        let creates = (0..count)
            .map(|i| payload::make(size, payload::seed(round, i, false)))
            .collect();
        let update_seeds: Vec<u64> = (0..count).map(|i| payload::seed(round, i, true)).collect();
        let updates = update_seeds
            .iter()
            .map(|&s| payload::make(size, s))
            .collect();
        Payloads {
            creates,
            updates,
            update_seeds,
        }
    }
}

/// How a store under test is opened: the same in this process and in the
/// child process that times its cold get_models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Our backend through the plugin loader, default journal mode (WAL).
    Plugin,
    /// Our backend through the plugin loader, `journal_mode=delete`.
    PluginDelete,
    /// Our backend linked directly.
    Direct,
    /// A bare `rusqlite` connection, statements cached.
    Bare,
    /// A bare `rusqlite` connection preparing its SQL on every write (reads
    /// as [`StoreKind::Bare`] does).
    BareUncached,
}

impl StoreKind {
    /// Whether opening this kind needs the plugin library.
    pub fn needs_plugin(self) -> bool {
        matches!(self, StoreKind::Plugin | StoreKind::PluginDelete)
    }

    /// The command-line spelling of this kind (for the child process).
    pub fn arg(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }

    /// Opens a store of this kind on `db`; `plugin` must be given for the
    /// plugin kinds.
    pub fn open(self, plugin: Option<&Plugin>, db: &Path) -> Result<Store> {
        let plugin = || plugin.context("opening a plugin store needs the plugin library");
        Ok(match self {
            StoreKind::Plugin => Store::Plugin(plugin()?.open(db, None)?),
            StoreKind::PluginDelete => Store::Plugin(plugin()?.open(db, Some("delete"))?),
            StoreKind::Direct => Store::Direct(Box::new(open_direct(db)?)),
            StoreKind::Bare => Store::Bare(open_bare(db)?),
            StoreKind::BareUncached => Store::BareUncached(open_bare(db)?),
        })
    }
}

/// A store under test with what a child process needs to open it again.
pub struct OpenStore {
    /// The open store.
    pub store: Store,
    /// How it was opened.
    pub kind: StoreKind,
    /// Its database file.
    pub db: PathBuf,
}

impl OpenStore {
    /// Opens a store of `kind` on `db`.
    pub fn open(kind: StoreKind, plugin: &Plugin, db: PathBuf) -> Result<OpenStore> {
        Ok(OpenStore {
            store: kind.open(Some(plugin), &db)?,
            kind,
            db,
        })
    }
}

/// One store under test, open on its own fresh database file.
pub enum Store {
    /// Our backend behind the plugin boundary (or any [`Backend`] object).
    Plugin(Arc<dyn Backend>),
    /// Our backend linked directly: static calls, no boundary.
    Direct(Box<SqliteBackend>),
    /// A bare `rusqlite` connection (see [`open_bare`]); statements cached.
    Bare(Connection),
    /// As [`Store::Bare`], but every write prepares its SQL afresh
    /// (`Connection::execute`), as our backend's write path does.
    BareUncached(Connection),
}

impl Store {
    /// One durable create; returns the new id. `bytes` is the caller's own
    /// buffer, handed over (the bare loop only borrows it).
    pub(crate) fn create(&mut self, bytes: Vec<u8>) -> Result<i64> {
        Ok(match self {
            Store::Plugin(b) => create_via(b.as_ref(), bytes)?,
            Store::Direct(b) => create_via(b.as_ref(), bytes)?,
            Store::Bare(conn) => bare_insert(conn, true, &bytes)?,
            Store::BareUncached(conn) => bare_insert(conn, false, &bytes)?,
        })
    }

    /// One durable update of model `id`.
    pub(crate) fn update(&mut self, id: i64, bytes: Vec<u8>) -> Result<()> {
        match self {
            Store::Plugin(b) => update_via(b.as_ref(), id, bytes),
            Store::Direct(b) => update_via(b.as_ref(), id, bytes),
            Store::Bare(conn) => bare_update(conn, true, id, &bytes),
            Store::BareUncached(conn) => bare_update(conn, false, id, &bytes),
        }
    }

    /// Every model with its bytes, as (id, bytes) pairs.
    pub(crate) fn get_all(&mut self) -> Result<Vec<(i64, Vec<u8>)>> {
        Ok(match self {
            Store::Plugin(b) => models_of(b.as_ref())?,
            Store::Direct(b) => models_of(b.as_ref())?,
            Store::Bare(conn) | Store::BareUncached(conn) => {
                let mut stmt =
                    conn.prepare_cached("SELECT id, type, instance FROM models ORDER BY id")?;
                let rows = stmt.query_map([], |r| {
                    let _type: String = r.get(1)?;
                    Ok((r.get(0)?, r.get(2)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            }
        })
    }

    /// Only the timed part of [`Store::get_all`]: the call itself, its result
    /// dropped after the clock stops. Returns (seconds, models returned).
    pub fn timed_get(&mut self) -> Result<(f64, usize)> {
        match self {
            Store::Plugin(b) => timed_get_models(b.as_ref()),
            Store::Direct(b) => timed_get_models(b.as_ref()),
            Store::Bare(conn) | Store::BareUncached(conn) => {
                let t0 = Instant::now();
                let mut stmt =
                    conn.prepare_cached("SELECT id, type, instance FROM models ORDER BY id")?;
                let rows = stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?;
                let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
                let secs = t0.elapsed().as_secs_f64();
                Ok((secs, rows.len()))
            }
        }
    }

    /// Releases the store (close for backends; the connection is dropped).
    pub fn close(self) -> Result<()> {
        match self {
            Store::Plugin(b) => b.close()?,
            Store::Direct(b) => b.close()?,
            Store::Bare(conn) | Store::BareUncached(conn) => {
                conn.close().map_err(|(_, err)| err)?
            }
        }
        Ok(())
    }
}

/// The bare loop's create: one `BEGIN IMMEDIATE` transaction.
fn bare_insert(conn: &mut Connection, cached: bool, bytes: &[u8]) -> Result<i64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if cached {
        tx.prepare_cached(INSERT)?
            .execute(params![MODEL_TYPE, bytes])?;
    } else {
        tx.execute(INSERT, params![MODEL_TYPE, bytes])?;
    }
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(id)
}

/// The bare loop's update: one `BEGIN IMMEDIATE` transaction.
fn bare_update(conn: &mut Connection, cached: bool, id: i64, bytes: &[u8]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let args = params![MODEL_TYPE, bytes, id];
    let changed = if cached {
        tx.prepare_cached(UPDATE)?.execute(args)?
    } else {
        tx.execute(UPDATE, args)?
    };
    ensure!(changed == 1, "bare update of {id} changed {changed} rows");
    tx.commit()?;
    Ok(())
}

fn create_via<B: Backend + ?Sized>(backend: &B, bytes: Vec<u8>) -> Result<i64> {
    let model = backend
        .create_model(RString::from(MODEL_TYPE), RVec::from(bytes))
        .map_err(|err| anyhow::anyhow!("create_model: {err}"))?;
    Ok(model.instance_id)
}

fn update_via<B: Backend + ?Sized>(backend: &B, id: i64, bytes: Vec<u8>) -> Result<()> {
    let model = Model {
        instance_id: id,
        model_type: RString::from(MODEL_TYPE),
        instance: RVec::from(bytes),
    };
    backend
        .update_model(model)
        .map_err(|err| anyhow::anyhow!("update_model: {err}"))?;
    Ok(())
}

fn models_of<B: Backend + ?Sized>(backend: &B) -> Result<Vec<(i64, Vec<u8>)>> {
    let models = backend
        .get_models()
        .map_err(|err| anyhow::anyhow!("get_models: {err}"))?;
    Ok(models
        .into_iter()
        .map(|m| (m.instance_id, m.instance.into_vec()))
        .collect())
}

fn timed_get_models<B: Backend + ?Sized>(backend: &B) -> Result<(f64, usize)> {
    let t0 = Instant::now();
    let models = backend
        .get_models()
        .map_err(|err| anyhow::anyhow!("get_models: {err}"))?;
    let secs = t0.elapsed().as_secs_f64();
    Ok((secs, models.len()))
}

/// A bare `rusqlite` connection at the backend's durability: WAL,
/// `synchronous = FULL`, one `BEGIN IMMEDIATE` transaction per write.
pub fn open_bare(db: &Path) -> Result<Connection> {
    let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(CREATE_TABLE, [])?;
    Ok(conn)
}
