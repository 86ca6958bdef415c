//! Where get_models time goes: the same read of every model's bytes done
//! several ways on one database, so the backend's read path can be compared
//! with plain SQLite reads (context for figures 1 and 3). Cold reads run in
//! a fresh child process each ([`cold_read`]); warm reads in this process.

use aimm_backend_api::Backend;
use anyhow::{ensure, Result};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use crate::stores::{self, Plugin};

/// A way of reading every model's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadPath {
    /// `SELECT id, type, instance`: SQLite copies each blob out of its pages.
    Column,
    /// Same, with `PRAGMA mmap_size` = 1 GiB (pages read through a mapping).
    ColumnMmap,
    /// What our backend does: `SELECT id, type, length(instance)`, then per
    /// row a new `sqlite3_blob_open` and a read into a zeroed buffer.
    BlobOpenPerRow,
    /// As `BlobOpenPerRow`, but one blob handle moved with
    /// `sqlite3_blob_reopen` from row to row.
    BlobReopen,
    /// Our backend linked directly: `get_models`.
    Direct,
    /// Our backend as a plugin: `get_models`.
    Plugin,
}

impl ReadPath {
    /// A row label for the report.
    pub fn label(self) -> &'static str {
        match self {
            ReadPath::Column => "bare rusqlite: SELECT instance (column read)",
            ReadPath::ColumnMmap => "bare rusqlite: SELECT instance, mmap_size=1GiB",
            ReadPath::BlobOpenPerRow => "bare rusqlite: length() + blob_open per row (our method)",
            ReadPath::BlobReopen => "bare rusqlite: length() + one blob handle, blob_reopen",
            ReadPath::Direct => "ours, linked directly: get_models",
            ReadPath::Plugin => "ours, plugin: get_models",
        }
    }
}

/// The readers, each with its own connection or backend on one database.
pub struct Readers {
    column: Connection,
    mmap: Connection,
    blob: Connection,
    direct: aimm_backend_sqlite::SqliteBackend,
    plugin: std::sync::Arc<dyn Backend>,
}

impl Readers {
    /// Opens every reader on `db`.
    pub fn open(
        db: &std::path::Path,
        direct: aimm_backend_sqlite::SqliteBackend,
        plugin: std::sync::Arc<dyn Backend>,
    ) -> Result<Readers> {
        Ok(Readers {
            column: Connection::open(db)?,
            mmap: open_mmap(db)?,
            blob: Connection::open(db)?,
            direct,
            plugin,
        })
    }

    /// Reads every model once by `path`; returns (seconds, total bytes).
    pub fn read(&mut self, path: ReadPath) -> Result<(f64, u64)> {
        let t0 = Instant::now();
        let bytes = match path {
            ReadPath::Column => column(&self.column)?,
            ReadPath::ColumnMmap => column(&self.mmap)?,
            ReadPath::BlobOpenPerRow => blobs(&mut self.blob, false)?,
            ReadPath::BlobReopen => blobs(&mut self.blob, true)?,
            ReadPath::Direct => get_models(&self.direct)?,
            ReadPath::Plugin => get_models(self.plugin.as_ref())?,
        };
        Ok((t0.elapsed().as_secs_f64(), bytes))
    }

    /// Closes the backends.
    pub fn close(self) -> Result<()> {
        self.direct.close()?;
        self.plugin.close()?;
        Ok(())
    }
}

/// A connection reading through a memory map of up to 1 GiB.
fn open_mmap(db: &Path) -> Result<Connection> {
    let mmap = Connection::open(db)?;
    let size: i64 = mmap.query_row("PRAGMA mmap_size = 1073741824", [], |r| r.get(0))?;
    ensure!(size > 0, "this SQLite build refuses mmap_size");
    Ok(mmap)
}

/// The child side of a cold read: opens only the reader `path` needs on
/// `db` (as [`Readers::open`] does), reads every model once and returns
/// `{"secs", "bytes"}`; only the read is timed.
pub fn cold_read(path: ReadPath, plugin: &Path, db: &Path) -> Result<Value> {
    let (secs, bytes) = match path {
        ReadPath::Column => {
            let conn = Connection::open(db)?;
            timed(|| column(&conn))?
        }
        ReadPath::ColumnMmap => {
            let conn = open_mmap(db)?;
            timed(|| column(&conn))?
        }
        ReadPath::BlobOpenPerRow | ReadPath::BlobReopen => {
            let mut conn = Connection::open(db)?;
            timed(|| blobs(&mut conn, path == ReadPath::BlobReopen))?
        }
        ReadPath::Direct => {
            let backend = stores::open_direct(db)?;
            let result = timed(|| get_models(&backend))?;
            backend.close()?;
            result
        }
        ReadPath::Plugin => {
            let library = Plugin::load(plugin)?;
            let backend = library.open(db, None)?;
            let result = timed(|| get_models(backend.as_ref()))?;
            backend.close()?;
            result
        }
    };
    Ok(json!({ "secs": secs, "bytes": bytes }))
}

/// Runs `read` and returns (its seconds, its result).
fn timed(read: impl FnOnce() -> Result<u64>) -> Result<(f64, u64)> {
    let t0 = Instant::now();
    let bytes = read()?;
    Ok((t0.elapsed().as_secs_f64(), bytes))
}

fn column(conn: &Connection) -> Result<u64> {
    let mut stmt = conn.prepare_cached("SELECT id, type, instance FROM models ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(rows.iter().map(|r| r.2.len() as u64).sum())
}

fn blobs(conn: &mut Connection, reopen: bool) -> Result<u64> {
    let tx = conn.transaction()?;
    let rows: Vec<(i64, String, i64)> = {
        let mut stmt =
            tx.prepare_cached("SELECT id, type, length(instance) FROM models ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out: Vec<(i64, String, Vec<u8>)> = Vec::with_capacity(rows.len());
    let mut handle = None;
    for (id, ty, len) in rows {
        let mut buf = vec![0u8; len as usize];
        if reopen {
            let blob = match handle.as_mut() {
                None => handle.insert(tx.blob_open(
                    rusqlite::MAIN_DB,
                    "models",
                    "instance",
                    id,
                    true,
                )?),
                Some(blob) => {
                    blob.reopen(id)?;
                    blob
                }
            };
            blob.read_at_exact(&mut buf, 0)?;
        } else {
            let mut blob = tx.blob_open(rusqlite::MAIN_DB, "models", "instance", id, true)?;
            blob.read_exact(&mut buf)?;
        }
        out.push((id, ty, buf));
    }
    drop(handle);
    Ok(out.iter().map(|r| r.2.len() as u64).sum())
}

fn get_models<B: Backend + ?Sized>(backend: &B) -> Result<u64> {
    let models = backend.get_models()?;
    Ok(models.iter().map(|m| m.instance.len() as u64).sum())
}
