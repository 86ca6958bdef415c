//! [`SqliteBackend`]: models in the `models` table of one SQLite file.

use crate::config::{JournalMode, SqliteConfig};
use crate::group_commit::{GroupCommit, Pending, WriteKind, Written};
use crate::watch::Watch;
use aimm_backend_api::{
    Backend, BackendError, ErrorKind, Event, InstanceId, ListenerRegistry, Model,
    ModelChangeListener, ModelInfo, RString, RVec, Result,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The table the Python backend creates; we create the same one.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS models \
    (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB)";

/// Blobs at least this large are written and read through SQLite's
/// incremental blob I/O, so that no second full copy of the bytes exists.
const LARGE_BLOB: usize = 1 << 20;

/// From this many bytes on, get_models prepares buffers on a second thread.
const PARALLEL_PREPARE_BYTES: usize = 8 << 20;

/// The buffers that thread hands over at a time, in bytes...
const PREPARED_BATCH_BYTES: usize = 1 << 20;

/// ...and how many such batches it may prepare ahead of the reader.
const PREPARED_BATCHES_AHEAD: usize = 4;

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
    writer: Mutex<Connection>,
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
        set_journal_mode(&writer, &conf, existed, read_only)?;
        ensure_models_table(&writer, &path, read_only)?;
        log::debug!(
            "opened SQLite model store {} (read-only: {read_only})",
            path.display()
        );
        Ok(SqliteBackend {
            path,
            conf,
            read_only,
            writer: Mutex::new(writer),
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
        let conn = self.writer();
        conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map_err(|err| self.error("reading the journal mode", err))
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
        let outcome = apply_batch(&mut conn, &batch, |doing, err| self.error(doing, err));
        match outcome {
            Ok(results) => {
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

    /// Writes `model` and tells the listeners, unless the write changed
    /// nothing.
    fn write_and_notify(&self, kind: WriteKind, model: Model) -> Result<Model> {
        let written = self.write(kind, model)?;
        if written.changed {
            self.listeners.notify(&written.model);
        }
        Ok(written.model)
    }

    fn error(&self, doing: &str, err: rusqlite::Error) -> BackendError {
        sql_error(&self.path, doing, &self.conf, err)
    }

    fn read_instance(
        &self,
        conn: &Connection,
        id: InstanceId,
        len: Option<i64>,
    ) -> Result<RVec<u8>> {
        self.fill_instance(conn, id, prepared_buffer(byte_len(len)))
    }

    /// Reads model `id`'s bytes into `bytes`, which has their exact length.
    fn fill_instance(
        &self,
        conn: &Connection,
        id: InstanceId,
        mut bytes: RVec<u8>,
    ) -> Result<RVec<u8>> {
        if bytes.is_empty() {
            return Ok(bytes);
        }
        let mut blob = conn
            .blob_open(rusqlite::MAIN_DB, "models", "instance", id, true)
            .map_err(|err| self.error("opening a model's bytes", err))?;
        blob.read_exact(&mut bytes).map_err(|err| {
            BackendError::storage(format!(
                "reading model {id} from SQLite file {}: {err}",
                self.path.display()
            ))
        })?;
        Ok(bytes)
    }

    /// Reads every row's bytes in one read transaction. For large results a
    /// second thread allocates and touches the buffers ahead of the reader:
    /// faulting in fresh memory costs about as much as reading from SQLite,
    /// and the two then overlap. Only this thread touches the connection.
    fn read_models(&self, conn: &Connection, rows: Vec<Row>) -> Result<RVec<Model>> {
        let total: usize = rows.iter().map(|row| byte_len(row.2)).sum();
        let lens: Vec<usize> = rows.iter().map(|row| byte_len(row.2)).collect();
        std::thread::scope(|scope| {
            let (sender, batches) = std::sync::mpsc::sync_channel(PREPARED_BATCHES_AHEAD);
            if prepared_in_parallel(total) {
                // If the thread cannot start, `sender` is dropped with the
                // closure and the reader prepares its own buffers.
                let _ = std::thread::Builder::new()
                    .name("aimm-sqlite-buffers".into())
                    .spawn_scoped(scope, move || prepare_batches(&lens, &sender));
            } else {
                // No helper: with the sender gone, `recv` fails at once and
                // the reader prepares its own buffers.
                drop(sender);
            }
            let mut ready = Vec::new().into_iter();
            let mut models = RVec::with_capacity(rows.len());
            for (instance_id, model_type, len) in rows {
                let buffer = match ready.next() {
                    Some(buffer) => buffer,
                    None => match batches.recv() {
                        Ok(batch) => {
                            ready = batch.into_iter();
                            ready.next().unwrap_or_default()
                        }
                        Err(_) => prepared_buffer(byte_len(len)),
                    },
                };
                let instance = self.fill_instance(conn, instance_id, buffer)?;
                models.push(Model {
                    instance_id,
                    model_type: model_type.into(),
                    instance,
                });
            }
            Ok(models)
        })
    }
}

/// Whether `get_models` of `total` bytes has a second thread prepare its
/// buffers: below [`PARALLEL_PREPARE_BYTES`], starting it costs more than it
/// saves.
fn prepared_in_parallel(total: usize) -> bool {
    total >= PARALLEL_PREPARE_BYTES
}

/// Sends buffers for `lens`, in order, in batches of about
/// [`PREPARED_BATCH_BYTES`] (one hand-over per batch, not per model).
fn prepare_batches(lens: &[usize], sender: &std::sync::mpsc::SyncSender<Vec<RVec<u8>>>) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for &len in lens {
        batch.push(prepared_buffer(len));
        bytes += len;
        if bytes >= PREPARED_BATCH_BYTES {
            if sender.send(std::mem::take(&mut batch)).is_err() {
                return; // the reader stopped early
            }
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        let _ = sender.send(batch);
    }
}

/// The byte length of an instance (`NULL`, possible in Python-made files,
/// reads as empty).
fn byte_len(len: Option<i64>) -> usize {
    len.and_then(|len| usize::try_from(len).ok()).unwrap_or(0)
}

/// A buffer of `len` bytes with every page already faulted in, ready to be
/// overwritten whole by a blob read. Its contents are not meaningful: one
/// byte per page is written (to fault the page in) instead of the whole
/// buffer, which would pull it into this thread's cache for nothing.
fn prepared_buffer(len: usize) -> RVec<u8> {
    let mut bytes = vec![0u8; len];
    for page in bytes.chunks_mut(4096) {
        page[0] = 1;
    }
    RVec::from(bytes)
}

/// Makes sure `path` can be a database file: not a directory, parent present.
/// Returns whether a non-empty file is already there.
fn prepare_path(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Err(BackendError::invalid_config(format!(
            "backend.path {} is a directory; expected a SQLite file path",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|err| {
            BackendError::storage(format!(
                "creating the directory {} for the SQLite file: {err}",
                parent.display()
            ))
        })?;
    }
    Ok(std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false))
}

/// Whether the file's permissions forbid writing. Checked by hand because a
/// process running as root could otherwise write a file marked read-only.
fn is_read_only(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.permissions().readonly())
        .unwrap_or(false)
}

/// A connection to the store's file, configured for use.
pub(crate) fn open_connection(conf: &SqliteConfig, read_only: bool) -> Result<Connection> {
    let conn = connect(conf, read_only)?;
    configure(&conn, conf)?;
    Ok(conn)
}

/// Opens the file itself.
fn connect(conf: &SqliteConfig, read_only: bool) -> Result<Connection> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    // NO_MUTEX: each connection is used by one thread at a time.
    let conn = Connection::open_with_flags(
        file_name(&conf.path),
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| sql_error(&conf.path, "opening", conf, err))?;
    conn.busy_timeout(conf.busy_timeout())
        .map_err(|err| sql_error(&conf.path, "setting the busy timeout", conf, err))?;
    Ok(conn)
}

/// `path` as SQLite must be given it to open the file of that name. The
/// bundled SQLite is built to read a name starting with `file:` as a URI;
/// the Python backend opens `file:{path}?nolock=1`, so for it a configured
/// `file:x.db` is the file named `file:x.db` in the working directory, and
/// `./` keeps it so here.
fn file_name(path: &Path) -> std::borrow::Cow<'_, Path> {
    if path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
        Path::new(".").join(path).into()
    } else {
        path.into()
    }
}

/// The settings every connection of the store runs with.
fn configure(conn: &Connection, conf: &SqliteConfig) -> Result<()> {
    // After a checkpoint, cut the WAL (or a persisted journal) back to 64 MiB:
    // one large model must not leave a journal of its size on disk for good.
    conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
        .map_err(|err| sql_error(&conf.path, "setting journal_size_limit", conf, err))?;
    // EXTRA: every commit is synced (FULL, Python's default), and in delete
    // mode so is the directory once the journal is deleted: without that, a
    // power cut can bring the journal back and undo an acknowledged commit.
    conn.pragma_update(None, "synchronous", "EXTRA")
        .map_err(|err| sql_error(&conf.path, "setting synchronous=EXTRA", conf, err))
}

fn check_is_database(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|err| match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => BackendError::storage(format!(
                "{} is not a SQLite database (SQLite says: {err}); expected a SQLite file \
                 or a path where one can be created",
                path.display()
            )),
            _ => BackendError::storage(format!("reading SQLite file {}: {err}", path.display())),
        })
}

fn set_journal_mode(
    conn: &Connection,
    conf: &SqliteConfig,
    existed: bool,
    read_only: bool,
) -> Result<()> {
    let wanted = match (conf.journal_mode, existed) {
        (Some(mode), _) => mode,
        (None, false) => JournalMode::Wal,
        // An existing file keeps its mode: a Python-made file must stay
        // openable by Python, which cannot open WAL files.
        (None, true) => return Ok(()),
    };
    if read_only {
        return Ok(());
    }
    let actual: String = conn
        .query_row(
            &format!("PRAGMA journal_mode = {}", wanted.as_sql()),
            [],
            |row| row.get(0),
        )
        .map_err(|err| sql_error(&conf.path, "setting the journal mode", conf, err))?;
    if !actual.eq_ignore_ascii_case(wanted.as_sql()) {
        return Err(BackendError::storage(format!(
            "SQLite file {}: asked for journal_mode {}, SQLite kept {actual} \
             (another connection may have the file open)",
            conf.path.display(),
            wanted.as_sql()
        )));
    }
    Ok(())
}

fn ensure_models_table(conn: &Connection, path: &Path, read_only: bool) -> Result<()> {
    let columns = table_columns(conn, path)?;
    if columns.is_empty() {
        if read_only {
            return Err(BackendError::storage(format!(
                "SQLite file {} is read-only and has no `models` table",
                path.display()
            )));
        }
        conn.execute(CREATE_TABLE, []).map_err(|err| {
            BackendError::storage(format!(
                "creating the models table in {}: {err}",
                path.display()
            ))
        })?;
        return Ok(());
    }
    let expected = [
        ("id", "INTEGER", true),
        ("type", "TEXT", false),
        ("instance", "BLOB", false),
    ];
    let matches = columns.len() == expected.len()
        && columns.iter().zip(expected).all(|(found, (name, ty, pk))| {
            found.name == name && found.decl_type.eq_ignore_ascii_case(ty) && found.pk == pk
        });
    if matches {
        return Ok(());
    }
    let found: Vec<String> = columns.iter().map(Column::describe).collect();
    Err(BackendError::storage(format!(
        "SQLite file {}: the `models` table has columns ({}); expected \
         (id INTEGER PRIMARY KEY, type TEXT, instance BLOB) as the Python AIMM backend makes it",
        path.display(),
        found.join(", ")
    )))
}

struct Column {
    name: String,
    decl_type: String,
    pk: bool,
}

impl Column {
    fn describe(&self) -> String {
        let pk = if self.pk { " PRIMARY KEY" } else { "" };
        format!("{} {}{pk}", self.name, self.decl_type)
    }
}

fn table_columns(conn: &Connection, path: &Path) -> Result<Vec<Column>> {
    let read = || -> rusqlite::Result<Vec<Column>> {
        let mut stmt = conn.prepare("PRAGMA table_info(models)")?;
        let rows = stmt.query_map([], |row| {
            Ok(Column {
                name: row.get(1)?,
                decl_type: row.get(2)?,
                pk: row.get::<_, i64>(5)? > 0,
            })
        })?;
        rows.collect()
    };
    read().map_err(|err| {
        BackendError::storage(format!(
            "reading the models table of {}: {err}",
            path.display()
        ))
    })
}

fn sql_error(path: &Path, doing: &str, conf: &SqliteConfig, err: rusqlite::Error) -> BackendError {
    let hint = match err.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => " (the file or its directory is read-only)".to_string(),
        Some(ErrorCode::NotADatabase) => " (the file is not a SQLite database)".to_string(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => format!(
            " (another connection held the lock longer than busy_timeout = {} s)",
            conf.busy_timeout
        ),
        Some(ErrorCode::CannotOpen) => " (the file cannot be opened here)".to_string(),
        Some(ErrorCode::DiskFull) => " (the disk is full)".to_string(),
        _ => String::new(),
    };
    BackendError::storage(format!(
        "{doing} SQLite file {}: {err}{hint}",
        path.display()
    ))
}

/// Whether a model of `len` bytes is written through incremental blob I/O
/// (from [`LARGE_BLOB`] on) rather than bound to one statement, which makes
/// SQLite copy the bytes (twice: the bound value and the record) first.
fn written_in_chunks(len: usize) -> bool {
    len >= LARGE_BLOB
}

/// Inserts (or, with `id`, imports) a model; returns its id.
fn insert(
    conn: &Connection,
    id: Option<InstanceId>,
    model_type: &str,
    bytes: &[u8],
) -> rusqlite::Result<InstanceId> {
    let id = if written_in_chunks(bytes.len()) {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO models (id, type, instance) VALUES (?1, ?2, zeroblob(?3))",
        )?;
        stmt.execute(rusqlite::params![id, model_type, bytes.len() as i64])?;
        let id = conn.last_insert_rowid();
        write_blob(conn, id, bytes)?;
        id
    } else {
        let mut stmt =
            conn.prepare_cached("INSERT INTO models (id, type, instance) VALUES (?1, ?2, ?3)")?;
        stmt.execute(rusqlite::params![id, model_type, bytes])?;
        conn.last_insert_rowid()
    };
    Ok(id)
}

/// What an update found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    /// No model has the id.
    Missing,
    /// The model already had that type and those bytes: nothing written.
    Unchanged,
    /// The model now has the new type and bytes.
    Written,
}

/// Replaces a model's type and bytes, writing only what differs.
///
/// Runs inside the write transaction, so what it compares with is what the
/// file holds now, whichever process wrote it. A model of the same length
/// and type is compared first: the engine stores the whole model after
/// every predict, usually unchanged, and such an update then writes nothing
/// and commits nothing. A large model of the same length is compared chunk
/// by chunk and only the chunks that differ are written, so a changed one
/// is written once rather than as a zeroblob and then the bytes.
fn replace(
    conn: &Connection,
    id: InstanceId,
    model_type: &str,
    bytes: &[u8],
) -> rusqlite::Result<Replaced> {
    let stored: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT type, length(instance) FROM models WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((stored_type, stored_len)) = stored else {
        return Ok(Replaced::Missing);
    };
    // A NULL instance (possible in Python-made files) has no length and is
    // always rewritten.
    let same_length = stored_len == Some(bytes.len() as i64);
    let same_type = stored_type == model_type;
    if same_length && written_in_chunks(bytes.len()) {
        let changed_chunks = overwrite_changed_chunks(conn, id, bytes)?;
        // Rewriting the row reads (and compares) the whole record, blob
        // included: only when the type really changes.
        if !same_type {
            conn.prepare_cached("UPDATE models SET type = ?1 WHERE id = ?2")?
                .execute(rusqlite::params![model_type, id])?;
        }
        return Ok(if same_type && changed_chunks == 0 {
            Replaced::Unchanged
        } else {
            Replaced::Written
        });
    }
    if same_length && same_type && stored_bytes_equal(conn, id, bytes)? {
        return Ok(Replaced::Unchanged);
    }
    if written_in_chunks(bytes.len()) {
        conn.prepare_cached("UPDATE models SET type = ?1, instance = zeroblob(?2) WHERE id = ?3")?
            .execute(rusqlite::params![model_type, bytes.len() as i64, id])?;
        write_blob(conn, id, bytes)?;
    } else {
        conn.prepare_cached("UPDATE models SET type = ?1, instance = ?2 WHERE id = ?3")?
            .execute(rusqlite::params![model_type, bytes, id])?;
    }
    Ok(Replaced::Written)
}

/// Whether model `id`'s stored bytes, of `bytes.len()`, equal `bytes`.
fn stored_bytes_equal(conn: &Connection, id: InstanceId, bytes: &[u8]) -> rusqlite::Result<bool> {
    if bytes.is_empty() {
        return Ok(true);
    }
    let blob = conn.blob_open(rusqlite::MAIN_DB, "models", "instance", id, true)?;
    let mut stored = vec![0u8; bytes.len()];
    blob.read_at_exact(&mut stored, 0)?;
    Ok(stored == bytes)
}

/// Bytes compared (and, where they differ, written) per blob call.
const COMPARE_CHUNK: usize = 64 << 10;

/// Writes the chunks of model `id`'s stored bytes (of `bytes.len()`) that
/// differ from `bytes`; returns how many it wrote.
fn overwrite_changed_chunks(
    conn: &Connection,
    id: InstanceId,
    bytes: &[u8],
) -> rusqlite::Result<usize> {
    let mut blob = conn.blob_open(rusqlite::MAIN_DB, "models", "instance", id, false)?;
    let mut stored = vec![0u8; COMPARE_CHUNK.min(bytes.len())];
    let mut written = 0;
    for (index, chunk) in bytes.chunks(COMPARE_CHUNK).enumerate() {
        let offset = index * COMPARE_CHUNK;
        let stored = &mut stored[..chunk.len()];
        blob.read_at_exact(stored, offset)?;
        if stored != chunk {
            blob.write_at(chunk, offset)?;
            written += 1;
        }
    }
    Ok(written)
}

fn write_blob(conn: &Connection, id: InstanceId, bytes: &[u8]) -> rusqlite::Result<()> {
    let mut blob = conn.blob_open(rusqlite::MAIN_DB, "models", "instance", id, false)?;
    blob.write_all(bytes)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))
}

fn check_model_type(model: &Model) -> Result<()> {
    if model.model_type.contains('\0') {
        return Err(BackendError::new(
            ErrorKind::InvalidInput,
            "model type contains a NUL character, which SQLite TEXT cannot hold faithfully",
        ));
    }
    Ok(())
}

/// Applies every write of `batch` in one `IMMEDIATE` transaction and commits.
/// With several writes, each runs in its own savepoint so that one failing
/// (an unknown id, a taken id) fails alone. A batch in which no write
/// changed anything is rolled back instead: no commit, no sync. `Err` means
/// nothing was committed.
fn apply_batch(
    conn: &mut Connection,
    batch: &[Pending],
    error: impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Vec<Result<Applied>>> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| error("starting a write transaction in", err))?;
    let mut results = Vec::with_capacity(batch.len());
    for pending in batch {
        let result = if batch.len() == 1 {
            apply(&tx, pending, &error)
        } else {
            let savepoint = tx
                .savepoint()
                .map_err(|err| error("starting a savepoint in", err))?;
            let result = apply(&savepoint, pending, &error);
            if result.is_ok() {
                savepoint
                    .commit()
                    .map_err(|err| error("releasing a savepoint in", err))?;
            }
            result
        };
        results.push(result);
    }
    if !results
        .iter()
        .any(|r| matches!(r, Ok(applied) if applied.changed))
    {
        // Nothing to commit; spare the sync (dropping `tx` rolls back).
        return Ok(results);
    }
    tx.commit().map_err(|err| error("committing to", err))?;
    Ok(results)
}

/// What one write of a batch did: the model's id, and whether anything
/// was written.
struct Applied {
    id: InstanceId,
    changed: bool,
}

impl Applied {
    fn written(id: InstanceId) -> Self {
        Applied { id, changed: true }
    }
}

/// One write, inside the caller's transaction or savepoint.
fn apply(
    conn: &Connection,
    pending: &Pending,
    error: &impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Applied> {
    let model = &pending.model;
    let id = model.instance_id;
    match pending.kind {
        WriteKind::Create => insert(conn, None, &model.model_type, &model.instance)
            .map(Applied::written)
            .map_err(|err| error("storing a model in", err)),
        WriteKind::Import => insert(conn, Some(id), &model.model_type, &model.instance)
            .map(Applied::written)
            .map_err(|err| match err.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => BackendError::conflict(id),
                _ => error("importing a model into", err),
            }),
        WriteKind::Update => match replace(conn, id, &model.model_type, &model.instance) {
            Ok(Replaced::Written) => Ok(Applied::written(id)),
            Ok(Replaced::Unchanged) => Ok(Applied { id, changed: false }),
            Ok(Replaced::Missing) => Err(BackendError::not_found(id)),
            Err(err) => Err(error("updating a model in", err)),
        },
    }
}

impl Backend for SqliteBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        self.with_reader(|conn| {
            let tx = conn
                .transaction()
                .map_err(|err| self.error("reading models from", err))?;
            let rows = list_rows(&tx).map_err(|err| self.error("listing models in", err))?;
            self.read_models(&tx, rows)
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
            let instance = self.read_instance(&tx, instance_id, len)?;
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
        Ok(())
    }
}

type Row = (InstanceId, String, Option<i64>);

/// Id, type and byte length of every model. `length()` of a blob reads only
/// the record header, never the bytes.
fn list_rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, type, length(instance) FROM models ORDER BY id")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

/// One model, read simply (used by the change poller, off the hot path).
fn read_model(conn: &Connection, id: InstanceId) -> rusqlite::Result<Option<Model>> {
    conn.query_row(
        "SELECT type, instance FROM models WHERE id = ?1",
        [id],
        |row| {
            let bytes: Option<Vec<u8>> = row.get(1)?;
            Ok(Model::new(
                id,
                row.get::<_, String>(0)?,
                bytes.unwrap_or_default(),
            ))
        },
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::{event_type, LogLevel, LogSink, ROption, SinkLogger, Timestamp};
    use rusqlite::ffi;
    use std::sync::mpsc;

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

    #[test]
    fn models_from_1_mib_on_are_written_in_chunks() {
        assert!(!written_in_chunks(0));
        assert!(!written_in_chunks((1 << 20) - 1));
        assert!(written_in_chunks(1 << 20));
        assert!(written_in_chunks(usize::MAX));
    }

    #[test]
    fn buffers_are_prepared_in_parallel_from_8_mib_on() {
        assert!(!prepared_in_parallel(0));
        assert!(!prepared_in_parallel((8 << 20) - 1));
        assert!(prepared_in_parallel(8 << 20));
    }

    #[test]
    fn prepared_buffers_come_in_order_in_batches_of_about_1_mib() {
        let lens = [600_000, 600_000, 0, 1 << 20, (1 << 20) - 1, 1, 5];
        let (sender, batches) = mpsc::sync_channel(lens.len());
        prepare_batches(&lens, &sender);
        drop(sender);
        let batches: Vec<Vec<usize>> = batches
            .iter()
            .map(|batch| batch.iter().map(|buffer| buffer.len()).collect())
            .collect();
        assert_eq!(
            batches,
            [
                vec![600_000, 600_000],
                vec![0, 1 << 20],
                vec![(1 << 20) - 1, 1],
                vec![5]
            ]
        );
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

    fn failure(code: std::os::raw::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_errors_say_what_to_check() {
        let mut conf = SqliteConfig::new("/data/m.db");
        conf.busy_timeout = 7.0;
        for (code, hint) in [
            (
                ffi::SQLITE_READONLY,
                "(the file or its directory is read-only)",
            ),
            (ffi::SQLITE_NOTADB, "(the file is not a SQLite database)"),
            (
                ffi::SQLITE_BUSY,
                "(another connection held the lock longer than busy_timeout = 7 s)",
            ),
            (
                ffi::SQLITE_LOCKED,
                "(another connection held the lock longer than busy_timeout = 7 s)",
            ),
            (ffi::SQLITE_CANTOPEN, "(the file cannot be opened here)"),
            (ffi::SQLITE_FULL, "(the disk is full)"),
        ] {
            let err = sql_error(conf.path.as_path(), "committing to", &conf, failure(code));
            assert_eq!(err.kind, ErrorKind::Storage);
            assert!(
                err.message
                    .starts_with("committing to SQLite file /data/m.db: "),
                "{err}"
            );
            assert!(err.message.ends_with(hint), "{code}: {err}");
        }
        let plain = sql_error(
            conf.path.as_path(),
            "reading",
            &conf,
            failure(ffi::SQLITE_IOERR),
        );
        assert!(!plain.message.contains(" ("), "no hint for others: {plain}");
    }
}
