//! Measurements run in a fresh child process (the benchmark re-executes
//! itself with a hidden subcommand): memory figures, so that earlier phases do
//! not raise the peak RSS, and cold reads, so that the result lands in pages
//! the process never had (as in the Python reference, a fresh process too).
//! Children run with glibc's default allocator settings. Each child prints
//! one JSON object on stdout.

use aimm_backend_api::{RString, RVec};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::readpaths::{self, ReadPath};
use crate::stores::{Plugin, StoreKind, MODEL_TYPE};
use aimm_backend_bench::{report, sysinfo};
use aimm_backend_test_support::payload;

/// The seed of the big model's bytes.
const BIG_SEED: u64 = 0xB16_B16;

/// A memory measurement to run in a child process.
#[derive(Debug, clap::Subcommand)]
pub enum ChildCommand {
    /// list_models over every model in `db`: peak RSS above baseline.
    #[command(name = "__list-mem", hide = true)]
    ListMem {
        /// The plugin library.
        #[arg(long)]
        plugin: PathBuf,
        /// The filled database.
        #[arg(long)]
        db: PathBuf,
    },
    /// create_model of one `size`-byte model into `db`: peak RSS above
    /// baseline (the caller's buffer included).
    #[command(name = "__big-write", hide = true)]
    BigWrite {
        /// The plugin library.
        #[arg(long)]
        plugin: PathBuf,
        /// A fresh database path.
        #[arg(long)]
        db: PathBuf,
        /// Model size in bytes.
        #[arg(long)]
        size: usize,
    },
    /// The write of figure 6 as a bare `rusqlite` sequence, each step timed:
    /// `incremental` (zeroblob insert, then incremental blob write, as our
    /// backend does) or `bind` (the bytes bound to the INSERT).
    #[command(name = "__big-bare-write", hide = true)]
    BigBareWrite {
        /// A fresh database path.
        #[arg(long)]
        db: PathBuf,
        /// Model size in bytes.
        #[arg(long)]
        size: usize,
        /// `incremental` or `bind`.
        #[arg(long)]
        method: String,
    },
    /// One get_models on the store of kind `store` at `db`, opened as the
    /// benchmark opens it: seconds of the call only.
    #[command(name = "__cold-get", hide = true)]
    ColdGet {
        /// How to open the store.
        #[arg(long, value_enum)]
        store: StoreKind,
        /// The plugin library (used by the plugin kinds).
        #[arg(long)]
        plugin: PathBuf,
        /// The store's database file.
        #[arg(long)]
        db: PathBuf,
        /// How many models get_models must return.
        #[arg(long)]
        count: usize,
    },
    /// One read of every model's bytes by `path` on `db`: seconds of the
    /// read only.
    #[command(name = "__cold-read", hide = true)]
    ColdRead {
        /// The read path.
        #[arg(long, value_enum)]
        path: ReadPath,
        /// The plugin library (used by the plugin path).
        #[arg(long)]
        plugin: PathBuf,
        /// The filled database.
        #[arg(long)]
        db: PathBuf,
    },
    /// get_model of model `id` in `db`: peak RSS above baseline.
    #[command(name = "__big-read", hide = true)]
    BigRead {
        /// The plugin library.
        #[arg(long)]
        plugin: PathBuf,
        /// The database written by `__big-write`.
        #[arg(long)]
        db: PathBuf,
        /// The model's id.
        #[arg(long)]
        id: i64,
        /// The model's expected size in bytes.
        #[arg(long)]
        size: usize,
    },
}

/// Runs a child command and prints its JSON result.
pub fn run(command: ChildCommand) -> Result<()> {
    let result = match command {
        ChildCommand::ListMem { plugin, db } => list_mem(&plugin, &db)?,
        ChildCommand::BigWrite { plugin, db, size } => big_write(&plugin, &db, size)?,
        ChildCommand::BigBareWrite { db, size, method } => big_bare_write(&db, size, &method)?,
        ChildCommand::ColdGet {
            store,
            plugin,
            db,
            count,
        } => cold_get_child(store, &plugin, &db, count)?,
        ChildCommand::ColdRead { path, plugin, db } => readpaths::cold_read(path, &plugin, &db)?,
        ChildCommand::BigRead {
            plugin,
            db,
            id,
            size,
        } => big_read(&plugin, &db, id, size)?,
    };
    println!("{result}");
    Ok(())
}

/// Resets the peak and returns the baseline to measure from: the current RSS
/// if the reset worked, else the peak so far (then an underestimate is
/// possible, and the result says so).
fn baseline() -> (u64, bool) {
    if sysinfo::reset_peak_rss() {
        (sysinfo::rss(), true)
    } else {
        (sysinfo::peak_rss(), false)
    }
}

fn cold_get_child(kind: StoreKind, plugin: &Path, db: &Path, count: usize) -> Result<Value> {
    // the plugin stays loaded while the store is open (declared first,
    // dropped last)
    let library = if kind.needs_plugin() {
        Some(Plugin::load(plugin)?)
    } else {
        None
    };
    let mut store = kind.open(library.as_ref(), db)?;
    let (secs, models) = store.timed_get()?;
    ensure!(
        models == count,
        "get_models returned {models} models, expected {count}"
    );
    store.close()?;
    Ok(json!({ "secs": secs, "models": models }))
}

/// Times one cold get_models on the store of `kind` at `db` in a fresh child
/// process; returns its seconds.
pub fn cold_get(kind: StoreKind, db: &Path, plugin: &Path, count: usize) -> Result<f64> {
    let result = spawn(&[
        "__cold-get".into(),
        "--store".into(),
        kind.arg(),
        "--plugin".into(),
        plugin.to_string_lossy().into_owned(),
        "--db".into(),
        db.to_string_lossy().into_owned(),
        "--count".into(),
        count.to_string(),
    ])?;
    ensure!(
        result["models"].as_u64() == Some(count as u64),
        "the cold get_models child returned {} models, expected {count}",
        result["models"]
    );
    result["secs"]
        .as_f64()
        .context("the cold get_models child printed no seconds")
}

fn list_mem(plugin: &Path, db: &Path) -> Result<Value> {
    let backend = Plugin::load(plugin)?.open(db, None)?;
    let (base, reset) = baseline();
    let t0 = Instant::now();
    let list = backend
        .list_models()
        .map_err(|err| anyhow::anyhow!("list_models: {err}"))?;
    let first_s = t0.elapsed().as_secs_f64();
    let peak = sysinfo::peak_rss();
    let models = list.len();
    let bytes: u64 = list.iter().map(|m| m.size).sum();
    drop(list);
    // two more calls, for the time only
    let mut best_s = first_s;
    for _ in 0..2 {
        let t0 = Instant::now();
        let again = backend
            .list_models()
            .map_err(|err| anyhow::anyhow!("list_models: {err}"))?;
        best_s = best_s.min(t0.elapsed().as_secs_f64());
        ensure!(again.len() == models, "list_models changed length");
    }
    backend
        .close()
        .map_err(|err| anyhow::anyhow!("close: {err}"))?;
    Ok(json!({
        "models": models,
        "model_bytes": bytes,
        "baseline_rss": base,
        "peak_rss": peak,
        "peak_reset": reset,
        "first_s": first_s,
        "best_s": best_s,
    }))
}

fn big_write(plugin: &Path, db: &Path, size: usize) -> Result<Value> {
    let backend = Plugin::load(plugin)?.open(db, None)?;
    let (base, reset) = baseline();
    // the caller's one copy of the model, every page touched
    let buffer = RVec::from(payload::make(size, BIG_SEED));
    let after_buffer = sysinfo::peak_rss();
    let t0 = Instant::now();
    let result = backend.create_model(RString::from(MODEL_TYPE), buffer);
    let secs = t0.elapsed().as_secs_f64();
    let peak = sysinfo::peak_rss();
    let _ = backend.close();
    let (id, error) = match result {
        Ok(model) => (Some(model.instance_id), None),
        Err(err) => (None, Some(err.to_string())),
    };
    Ok(json!({
        "size": size,
        "baseline_rss": base,
        "after_buffer_rss": after_buffer,
        "peak_rss": peak,
        "peak_reset": reset,
        "secs": secs,
        "id": id,
        "error": error,
    }))
}

fn big_bare_write(db: &Path, size: usize, method: &str) -> Result<Value> {
    use rusqlite::{params, TransactionBehavior};
    use std::io::Write;
    let mut conn = crate::stores::open_bare(db)?;
    // checkpoint by hand, so that the commit and the checkpoint are timed apart
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let (base, reset) = baseline();
    let buffer = payload::make(size, BIG_SEED);
    let after_buffer = sysinfo::peak_rss();
    let mut steps = Vec::new();
    let mut t0 = Instant::now();
    let mut lap = |name: &str, t0: &mut Instant| {
        steps.push(json!([name, t0.elapsed().as_secs_f64()]));
        *t0 = Instant::now();
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    match method {
        "incremental" => {
            tx.execute(
                "INSERT INTO models (type, instance) VALUES (?1, zeroblob(?2))",
                params![MODEL_TYPE, size as i64],
            )?;
            lap("insert_zeroblob", &mut t0);
            let id = tx.last_insert_rowid();
            let mut blob = tx.blob_open(rusqlite::MAIN_DB, "models", "instance", id, false)?;
            blob.write_all(&buffer)?;
            drop(blob);
            lap("blob_write", &mut t0);
        }
        "bind" => {
            tx.execute(
                "INSERT INTO models (type, instance) VALUES (?1, ?2)",
                params![MODEL_TYPE, buffer],
            )?;
            lap("insert_bound", &mut t0);
        }
        other => anyhow::bail!("unknown method {other}"),
    }
    tx.commit()?;
    lap("commit", &mut t0);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    lap("checkpoint", &mut t0);
    let peak = sysinfo::peak_rss();
    Ok(json!({
        "size": size,
        "method": method,
        "baseline_rss": base,
        "after_buffer_rss": after_buffer,
        "peak_rss": peak,
        "peak_reset": reset,
        "steps": steps,
    }))
}

fn big_read(plugin: &Path, db: &Path, id: i64, size: usize) -> Result<Value> {
    let backend = Plugin::load(plugin)?.open(db, None)?;
    let (base, reset) = baseline();
    let t0 = Instant::now();
    let result = backend.get_model(id);
    let secs = t0.elapsed().as_secs_f64();
    let peak = sysinfo::peak_rss();
    let (verified, error) = match &result {
        Ok(model) => (
            model.instance.len() == size && payload::matches(&model.instance, BIG_SEED),
            None,
        ),
        Err(err) => (false, Some(err.to_string())),
    };
    drop(result);
    let _ = backend.close();
    Ok(json!({
        "size": size,
        "baseline_rss": base,
        "peak_rss": peak,
        "peak_reset": reset,
        "secs": secs,
        "verified": verified,
        "error": error,
    }))
}

/// Re-executes this program with `args` (a hidden subcommand) and parses the
/// JSON object it prints.
pub fn spawn(args: &[String]) -> Result<Value> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let mut command = Command::new(&exe);
    command.args(args);
    Ok(report::run(
        &mut command,
        &format!("child `{}`", args.join(" ")),
    )?)
}
