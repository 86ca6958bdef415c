//! An AIMM model store in a SQLite file, as a backend plugin.
//!
//! File-compatible with the Python `aimm.server.backend.sqlite`: one table,
//! `models(id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,
//! instance BLOB)`, where `instance` holds the serialized bytes. Unlike the
//! Python backend (which opens the file with `nolock=1`), this one uses
//! SQLite's locking, so several processes can write one file at once.
//!
//! # Journal mode
//!
//! Files this backend creates are put in WAL mode (one sync per commit
//! instead of the rollback journal's three or more). A file that already exists keeps its journal mode,
//! so a file made by Python stays openable by Python. The Python backend
//! **cannot open a WAL file**: if Python hosts must open a file this backend
//! creates, set `journal_mode: delete` in the config.
//!
//! # Durability
//!
//! Every create, update and import is one transaction committed with
//! `synchronous = EXTRA` before the call returns (`FULL`, plus in `delete`
//! journal mode a sync of the directory once the journal is deleted, which
//! is what commits there): once acknowledged, a model
//! survives `kill -9` and power loss as far as the disk's sync does.
//!
//! # Group commit
//!
//! Threads that write at the same time share commits: while one commit is
//! being synced, the writes that arrive queue up and go into the next
//! transaction together, each in its own savepoint, and each is acknowledged
//! only after that transaction is synced. One writer alone pays exactly one
//! sync per write, as before. A write that fails fails alone: its savepoint
//! is rolled back and the others commit; and when the commit itself fails (a
//! full disk, say, often because of one large write), each write of the
//! batch is tried again in a transaction of its own.
//!
//! # Unchanged updates
//!
//! The AIMM engine stores the whole model after every fit and every
//! predict, usually unchanged. An update compares type and bytes with what
//! the file holds inside its write transaction, so with what is current
//! whichever process wrote it last; if they are equal, nothing is written,
//! the transaction is rolled back instead of committed (no sync), and no
//! listener is told (nothing changed). A large model of the same length
//! that does differ is compared and written chunk by chunk: only the 64 KiB
//! chunks that differ are written.
//!
//! # Ids
//!
//! A new model's id is what `AUTOINCREMENT` would give it: above every id
//! the table has held, a deleted model's too, so ids grow in the order
//! they are handed out, whichever process writes; 1, 2, 3, ... for a store
//! written by one process. A writer that finds nobody else writing reserves
//! 32 at a time by raising `sqlite_sequence` once, so that a create's commit
//! writes its row's page alone (SQLite would write the `sqlite_sequence`
//! page in every commit: 64 KiB a create at the default page size); closing
//! (or dropping) the store gives back the ones it did not use. A process
//! killed with ids reserved, and a writer that finds another process
//! writing, leave the rest of the block as a gap of up to 31 ids; writers
//! that take turns get consecutive ids, one at a time.
//!
//! # Change notifications
//!
//! Listeners hear of every change this backend makes. While at least one is
//! registered, a thread also polls the file (every 200 ms) for commits by
//! other processes and reports models that are new or whose type or size
//! changed; an update by another process that keeps both is not seen.
//! Once the last listener is unregistered, or the backend is closed or
//! dropped, the poller has ended before the call returns: no listener call
//! is still running and none comes after. An idle poller reads one counter
//! (`PRAGMA data_version`) per tick, never the table.
//!
//! # Large models
//!
//! Models of 1 MiB or more are written and read through SQLite's incremental
//! blob I/O: a write never has SQLite bind or build a record of the bytes
//! (stock's SQLite backend holds both, two copies besides the pages), and a
//! read allocates only the result ([`Backend::read_models`] reads straight
//! into the host's buffers). A write of up to 256 MiB in all keeps the pages
//! it dirties in memory until its commit, so that each page is written once
//! (one copy of the model, for the length of the call); a larger one lets
//! them spill and adds only SQLite's page cache.
//!
//! # Checkpoints
//!
//! In WAL mode a committed page is written twice: into the WAL by the commit
//! (which is synced before the write is acknowledged) and into the database
//! by a checkpoint. SQLite's automatic checkpoint would run inside the
//! committing call; here it runs on the backend's own thread once no write
//! has been committed for 100 ms, plus 1 s per GiB of the last commit (a
//! host takes that long to hand over its next large model), or at once
//! when 1 GiB has been committed since the last one (so a writer that never
//! pauses still bounds the WAL).
//! An acknowledged write so costs about its model's size in bytes written;
//! the second copy follows when the store is idle, and closing the store
//! checkpoints what is left. The checkpoint holds the writer connection: a
//! write that arrives meanwhile waits for it.
//!
//! # The path
//!
//! `path` is a file name, as the Python backend reads it: `file:x.db` is the
//! file of that name, not a SQLite URI.
//!
//! # Example
//!
//! ```
//! use aimm_backend_api::Backend;
//! use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("models.db"))).unwrap();
//! let model = backend.create_model("my.Model".into(), b"bytes".to_vec().into()).unwrap();
//! assert_eq!(backend.get_model(model.instance_id).unwrap(), model);
//! assert_eq!(backend.journal_mode().unwrap(), "wal");
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod config;
mod group_commit;
mod ids;
mod open;
mod read;
mod store;
mod watch;
mod write;

pub use config::{JournalMode, SqliteConfig};
pub use store::SqliteBackend;

use aimm_backend_api::{Backend, BackendPlugin, Host, Result};
use std::sync::Arc;

/// The plugin: builds [`SqliteBackend`]s from `backend` config sections.
pub struct SqlitePlugin;

impl BackendPlugin for SqlitePlugin {
    const NAME: &'static str = "sqlite";
    const CONF_SCHEMA: &'static str = include_str!("../schemas/sqlite.yaml");

    fn create_backend(conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(SqliteBackend::open(SqliteConfig::from_json(
            conf,
        )?)?))
    }

    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        let mut scratch = conf.clone();
        let path = std::path::Path::new(scratch_dir).join("conformance.db");
        scratch["path"] = serde_json::Value::String(path.to_string_lossy().into_owned());
        Ok(scratch)
    }
}

aimm_backend_api::export_backend!(SqlitePlugin);
