//! [`SqliteBackend`]: models in the `models` table of one SQLite file.

use crate::checkpoint::Checkpointer;
use crate::config::SqliteConfig;
use crate::group_commit::{GroupCommit, Pending, WriteKind, Written};
use crate::ids::{uses_autoincrement, IdBlock};
use crate::open::{
    check_is_database, configure, connect, ensure_models_table, is_read_only, open_connection,
    prepare_path, set_journal_mode, set_page_size, sql_error,
};
use crate::read::{list_rows, read_model, ModelReader};
use crate::watch::Watch;
use crate::write::{apply_batch, check_model_type};
use aimm_backend_api::{
    Backend, BackendError, Event, InstanceId, ListenerRegistry, Model, ModelChangeListener,
    ModelInfo, ModelSink, RString, RVec, Result,
};
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Reader connections kept open between calls.
const MAX_IDLE_READERS: usize = 4;

/// A model store in one SQLite file, shared safely with other processes.
///
/// Writes go through one connection per backend, each in an `IMMEDIATE`
/// transaction with `synchronous = EXTRA`, so a create returns only after its
/// commit is on disk. Reads use their own connections and (in WAL mode) never
/// wait for writers.
pub struct SqliteBackend {
    path: PathBuf,
    conf: SqliteConfig,
    read_only: bool,
    /// Declared before `writer`, so dropped first: its thread lets go of the
    /// connection before the connection closes.
    checkpointer: Option<Checkpointer>,
    writer: Arc<Mutex<Connection>>,
    /// The writer's reserved ids; `None` when SQLite picks them (a table
    /// without `AUTOINCREMENT`, or a read-only file). Locked after `writer`.
    ids: Mutex<Option<IdBlock>>,
    readers: Mutex<Vec<Connection>>,
    listeners: Arc<ListenerRegistry>,
    watch: Watch,
    writes: GroupCommit,
}

impl SqliteBackend {
    /// Opens (or creates) the store described by `conf`.
    pub fn open(conf: SqliteConfig) -> Result<Self> {
        let path = conf.path.clone();
        let existed = prepare_path(&path)?;
        let read_only = existed && is_read_only(&path);
        let writer = connect(&conf, read_only)?;
        // Before any pragma: those fail on a file that is not SQLite too, but
        // with a message about the pragma rather than about the file.
        check_is_database(&writer, &path)?;
        configure(&writer, &conf)?;
        if !existed {
            set_page_size(&writer, &conf)?;
        }
        set_journal_mode(&writer, &conf, existed, read_only)?;
        ensure_models_table(&writer, &path, read_only)?;
        let wal = !read_only && current_journal_mode(&writer, &conf)? == "wal";
        let autoincrement = uses_autoincrement(&writer)
            .map_err(|err| sql_error(&path, "reading the models table's schema", &conf, err))?;
        let ids = (autoincrement && !read_only).then(IdBlock::default);
        let writer = Arc::new(Mutex::new(writer));
        let checkpointer = if wal {
            Checkpointer::start(writer.clone(), path.display().to_string())
        } else {
            None
        };
        log::debug!(
            "opened SQLite model store {} (read-only: {read_only})",
            path.display()
        );
        Ok(SqliteBackend {
            path,
            conf,
            read_only,
            checkpointer,
            writer,
            ids: Mutex::new(ids),
            readers: Mutex::new(Vec::new()),
            listeners: Arc::default(),
            watch: Watch::default(),
            writes: GroupCommit::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal mode the file is in now (`wal`, `delete`, ...).
    pub fn journal_mode(&self) -> Result<String> {
        current_journal_mode(&self.writer(), &self.conf)
    }

    /// The writer connection's `PRAGMA synchronous` level: 3 (`EXTRA`) in
    /// every journal mode, so that each commit is synced before a write is
    /// acknowledged (and in `delete` mode the journal's removal too).
    pub fn synchronous(&self) -> Result<i64> {
        let conn = self.writer();
        conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
            .map_err(|err| self.error("reading the synchronous level", err))
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on an idle reader connection (opening one if none is idle).
    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => open_connection(&self.conf, true)?,
        };
        let result = f(&mut conn);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }

    /// Queues a write; returns once it is committed (see [`GroupCommit`]).
    fn write(&self, kind: WriteKind, model: Model) -> Result<Written> {
        if self.read_only {
            return Err(BackendError::storage(format!(
                "cannot write: the SQLite file {} is read-only (its permissions allow no writes)",
                self.path.display()
            )));
        }
        check_model_type(&model)?;
        self.writes
            .submit(kind, model, |batch| self.commit_batch(batch))
    }

    /// Applies `batch` in one transaction, commits once, replies to each.
    fn commit_batch(&self, batch: Vec<Pending>) {
        let mut snapshot = self.watch.lock();
        let mut conn = self.writer();
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = apply_batch(&mut conn, &batch, &mut ids, |doing, err| {
            self.error(doing, err)
        });
        drop(ids);
        match outcome {
            Ok(results) => {
                let writes = batch.iter().zip(&results).map(|(pending, result)| {
                    let changed = matches!(result, Ok(applied) if applied.changed);
                    (pending.model.instance.len(), changed)
                });
                if let (Some(checkpointer), Some(bytes)) =
                    (&self.checkpointer, committed_bytes(writes))
                {
                    checkpointer.committed(bytes);
                }
                for (mut pending, result) in batch.into_iter().zip(results) {
                    let result = result.map(|applied| {
                        let mut model =
                            std::mem::replace(&mut pending.model, Model::new(0, "", RVec::new()));
                        model.instance_id = applied.id;
                        if let (Some(snapshot), true) = (snapshot.as_mut(), applied.changed) {
                            snapshot.insert(
                                applied.id,
                                (model.model_type.to_string(), model.instance.len() as i64),
                            );
                        }
                        Written {
                            model,
                            changed: applied.changed,
                        }
                    });
                    pending.reply(result);
                }
            }
            Err(err) => {
                for pending in batch {
                    pending.reply(Err(err.clone()));
                }
            }
        }
    }

    /// Gives the unused ids of the writer's block back (see [`IdBlock`]), so
    /// that the next process to create a model continues where this one
    /// stopped. A failure only leaves a gap in the ids: logged.
    fn give_back_ids(&self) {
        let conn = self.writer();
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Err(err)) = ids.as_mut().map(|block| block.give_back(&conn)) {
            log::warn!(
                "giving back the unused reserved ids of {}: {err} (the next new model's id \
                 skips them)",
                self.path.display()
            );
        }
    }

    /// Writes `model` and tells the listeners, unless the write changed
    /// nothing.
    fn write_and_notify(&self, kind: WriteKind, model: Model) -> Result<Model> {
        let written = self.write(kind, model)?;
        if written.changed {
            self.listeners.notify(&written.model);
        }
        Ok(written.model)
    }

    pub(crate) fn error(&self, doing: &str, err: rusqlite::Error) -> BackendError {
        sql_error(&self.path, doing, &self.conf, err)
    }
}

impl Drop for SqliteBackend {
    /// A store nobody closed still gives its unused ids back.
    fn drop(&mut self) {
        self.give_back_ids();
    }
}

/// The journal mode `conn`'s file is in (`wal`, `delete`, ...).
fn current_journal_mode(conn: &Connection, conf: &SqliteConfig) -> Result<String> {
    conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(|err| sql_error(&conf.path, "reading the journal mode", conf, err))
}

/// The model bytes a batch committed, from each write's length and whether
/// it changed anything; `None` if none did (then nothing was committed).
fn committed_bytes(writes: impl IntoIterator<Item = (usize, bool)>) -> Option<u64> {
    writes
        .into_iter()
        .filter(|&(_, changed)| changed)
        .fold(None, |sum, (len, _)| Some(sum.unwrap_or(0) + len as u64))
}

impl Backend for SqliteBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        self.with_reader(|conn| {
            let tx = conn
                .transaction()
                .map_err(|err| self.error("reading models from", err))?;
            let rows = list_rows(&tx).map_err(|err| self.error("listing models in", err))?;
            ModelReader::new(&tx, &self.conf).read_models(rows)
        })
    }

    fn read_models(&self, sink: &mut dyn ModelSink) -> Result<()> {
        self.with_reader(|conn| {
            let tx = conn
                .transaction()
                .map_err(|err| self.error("reading models from", err))?;
            let rows = list_rows(&tx).map_err(|err| self.error("listing models in", err))?;
            ModelReader::new(&tx, &self.conf).read_models_into(rows, sink)
        })
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        self.with_reader(|conn| {
            let rows = list_rows(conn).map_err(|err| self.error("listing models in", err))?;
            Ok(rows
                .into_iter()
                .map(|(instance_id, model_type, len)| ModelInfo {
                    instance_id,
                    model_type: model_type.into(),
                    size: len.unwrap_or(0).max(0) as u64,
                })
                .collect())
        })
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        self.with_reader(|conn| {
            let tx = conn
                .transaction()
                .map_err(|err| self.error("reading a model from", err))?;
            let row: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT type, length(instance) FROM models WHERE id = ?1",
                    [instance_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(|err| self.error("reading a model from", err))?;
            let (model_type, len) = row.ok_or(BackendError::not_found(instance_id))?;
            let instance = ModelReader::new(&tx, &self.conf).read_instance(instance_id, len)?;
            Ok(Model {
                instance_id,
                model_type: model_type.into(),
                instance,
            })
        })
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let model = Model {
            instance_id: 0,
            model_type,
            instance,
        };
        self.write_and_notify(WriteKind::Create, model)
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        self.write_and_notify(WriteKind::Update, model)
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        self.write_and_notify(WriteKind::Import, model)
    }

    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        let registration = self.listeners.register(listener);
        self.watch
            .ensure_running(&self.conf, &self.listeners, read_model);
        Ok(registration)
    }

    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        if self.listeners.is_empty() {
            self.watch.stop();
        }
        Ok(())
    }

    fn process_events(&self, events: RVec<Event>) -> Result<()> {
        if !events.is_empty() {
            log::warn!(
                "SQLite backend got {} events; it subscribes to none and ignores them",
                events.len()
            );
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        self.watch.stop();
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.give_back_ids();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::{event_type, LogLevel, LogSink, ROption, SinkLogger, Timestamp};

    fn open_store() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
        (dir, backend)
    }

    fn idle_readers(backend: &SqliteBackend) -> usize {
        backend.readers.lock().unwrap().len()
    }

    /// Reads with `depth` reader connections open at once.
    fn nested_reads(backend: &SqliteBackend, depth: usize) {
        if depth > 0 {
            backend
                .with_reader(|_| {
                    nested_reads(backend, depth - 1);
                    Ok(())
                })
                .unwrap();
        }
    }

    fn seq(path: &Path) -> InstanceId {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'models'",
                [],
                |row| row.get(0),
            )
            .unwrap()
    }

    fn create(backend: &SqliteBackend) -> InstanceId {
        backend
            .create_model("t".into(), vec![1u8].into())
            .unwrap()
            .instance_id
    }

    #[test]
    fn closing_gives_the_unused_ids_back_so_the_next_writer_continues() {
        let (dir, backend) = open_store();
        let path = dir.path().join("m.db");
        assert_eq!([create(&backend), create(&backend)], [1, 2]);
        assert_eq!(seq(&path), 1 + IdBlock::SIZE, "no block was reserved");
        backend.close().unwrap();
        assert_eq!(seq(&path), 2);
        drop(backend);
        let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
        assert_eq!(create(&backend), 3);
    }

    #[test]
    fn a_store_dropped_without_closing_gives_its_ids_back_too() {
        let (dir, backend) = open_store();
        create(&backend);
        drop(backend);
        assert_eq!(seq(&dir.path().join("m.db")), 1);
    }

    #[test]
    fn a_table_without_autoincrement_gets_the_ids_sqlite_picks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE models (id INTEGER PRIMARY KEY, type TEXT NOT NULL, instance BLOB);
                 INSERT INTO models VALUES (7, 't', x'01');",
            )
            .unwrap();
        let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
        assert_eq!(create(&backend), 8);
        backend.close().unwrap();
        let tables: i64 = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            tables, 0,
            "ids were reserved in a table that is not AUTOINCREMENT"
        );
    }

    #[test]
    fn a_batch_committed_the_bytes_of_its_writes_that_changed_something() {
        assert_eq!(
            committed_bytes([(10, true), (5, false), (7, true)]),
            Some(17)
        );
        assert_eq!(
            committed_bytes([(0, true)]),
            Some(0),
            "an empty model commits"
        );
        assert_eq!(committed_bytes([(10, false), (3, false)]), None);
        assert_eq!(committed_bytes([]), None);
    }

    #[test]
    fn a_reader_connection_is_kept_for_the_next_read_and_at_most_four_are_kept() {
        let (_dir, backend) = open_store();
        assert_eq!(idle_readers(&backend), 0);
        backend.list_models().unwrap();
        assert_eq!(idle_readers(&backend), 1);
        backend.list_models().unwrap();
        assert_eq!(idle_readers(&backend), 1, "the idle one was reused");
        nested_reads(&backend, 6);
        assert_eq!(idle_readers(&backend), MAX_IDLE_READERS);
        assert_eq!(MAX_IDLE_READERS, 4);
        backend.close().unwrap();
        assert_eq!(idle_readers(&backend), 0, "close lets them go");
    }

    /// The warnings logged while `f` runs, through the logger a plugin
    /// installs for its host (from any thread of this test binary, so
    /// callers look for their own).
    fn warnings_during(f: impl FnOnce()) -> Vec<String> {
        static LINES: Mutex<Vec<(LogLevel, String)>> = Mutex::new(Vec::new());
        struct Lines;
        impl LogSink for Lines {
            fn log(&self, level: LogLevel, _target: &str, message: &str) {
                LINES.lock().unwrap().push((level, message.to_string()));
            }
        }
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| SinkLogger::install(Arc::new(Lines)));
        LINES.lock().unwrap().clear();
        f();
        let lines = std::mem::take(&mut *LINES.lock().unwrap());
        lines
            .into_iter()
            .filter(|(level, _)| *level == LogLevel::Warn)
            .map(|(_, message)| message)
            .collect()
    }

    #[test]
    fn events_are_ignored_with_a_warning_that_says_so() {
        let (_dir, backend) = open_store();
        let event = Event {
            id: aimm_backend_api::EventId {
                server: 1,
                session: 1,
                instance: 1,
            },
            event_type: event_type(["a"]),
            timestamp: Timestamp { s: 0, us: 0 },
            source_timestamp: ROption::RNone,
            payload: ROption::RNone,
        };
        let about_events = |lines: Vec<String>| {
            lines
                .into_iter()
                .filter(|line| line.starts_with("SQLite backend got"))
                .collect::<Vec<_>>()
        };
        let lines = warnings_during(|| {
            backend
                .process_events(vec![event.clone(), event].into())
                .unwrap()
        });
        assert_eq!(
            about_events(lines),
            ["SQLite backend got 2 events; it subscribes to none and ignores them"]
        );
        let lines = warnings_during(|| backend.process_events(RVec::new()).unwrap());
        assert_eq!(about_events(lines), Vec::<String>::new(), "none for none");
    }
}
