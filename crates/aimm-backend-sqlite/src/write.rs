//! The write paths: one batch of writes in one transaction, each write an
//! insert, an import or an update that writes only what differs, large
//! models through incremental blob I/O.

use crate::group_commit::{Pending, WriteKind};
use crate::ids::IdBlock;
use aimm_backend_api::{BackendError, ErrorKind, InstanceId, Model, Result};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use std::io::Write;

/// Blobs at least this large are written and read through SQLite's
/// incremental blob I/O, so that no second full copy of the bytes exists.
const LARGE_BLOB: usize = 1 << 20;

/// A batch of at most this many bytes keeps every page it dirties in memory
/// until its commit. A large model is inserted as a zeroblob and then
/// written over; when the zeroed pages spill to the WAL (or journal) first,
/// each page is written, read back and written again (measured through the
/// Python interface: three 64 MiB creates 0.74 s spilled, 0.59 s not, stock
/// 0.54 s). So a write holds SQLite's pages of the model once in memory
/// (stock's SQLite backend holds two more copies: the bound value and the
/// record); above this, they spill, so that a write of a model of GiBs adds
/// only SQLite's page cache.
const UNSPILLED_BATCH_BYTES: usize = 256 << 20;

/// Whether a batch of `bytes` of models lets SQLite spill its pages before
/// the commit (see [`UNSPILLED_BATCH_BYTES`]).
fn spills(bytes: usize) -> bool {
    bytes > UNSPILLED_BATCH_BYTES
}

/// Applies every write of `batch` in one `IMMEDIATE` transaction and commits.
/// With several writes, each runs in its own savepoint so that one failing
/// (an unknown id, a taken id) fails alone. A batch in which no write
/// changed anything is rolled back instead: no commit, no sync. `Err` means
/// nothing was committed.
///
/// A commit fails for the whole batch (a full disk, a file size limit), most
/// often because of one large write in it; so a batch of several writes
/// whose commit fails is tried again one write at a time, and a write that
/// fits is not failed because of another that happened to share its commit.
///
/// `ids` is the writer's block of reserved ids (`None`: SQLite picks each
/// new id); it takes what the batch reserved only once that is committed.
pub(crate) fn apply_batch(
    conn: &mut Connection,
    batch: &[Pending],
    ids: &mut Option<IdBlock>,
    error: impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Vec<Result<Applied>>> {
    match apply_in_one_transaction(conn, batch, ids, &error)? {
        Outcome::Done(results) => Ok(results),
        Outcome::CommitFailed(err) if batch.len() == 1 => Err(err),
        Outcome::CommitFailed(_) => Ok(batch
            .iter()
            .map(|pending| apply_alone(conn, pending, ids, &error))
            .collect()),
    }
}

/// Applies one write in a transaction of its own.
fn apply_alone(
    conn: &mut Connection,
    pending: &Pending,
    ids: &mut Option<IdBlock>,
    error: &impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Applied> {
    match apply_in_one_transaction(conn, std::slice::from_ref(pending), ids, error)? {
        Outcome::Done(mut results) => results.pop().unwrap_or_else(|| {
            Err(BackendError::storage(
                "a write in a transaction of its own gave no result",
            ))
        }),
        Outcome::CommitFailed(err) => Err(err),
    }
}

/// How a transaction of writes ended, when it got as far as its commit.
enum Outcome {
    /// Committed, or rolled back because nothing changed: each write's result.
    Done(Vec<Result<Applied>>),
    /// The commit failed; nothing of the batch is stored.
    CommitFailed(BackendError),
}

/// [`apply_batch`]'s one attempt: every write in one transaction, each in
/// its own savepoint when there are several. `Err` means the transaction
/// failed before its commit.
fn apply_in_one_transaction(
    conn: &mut Connection,
    batch: &[Pending],
    ids: &mut Option<IdBlock>,
    error: &impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Outcome> {
    let bytes: usize = batch.iter().map(|p| p.model.instance.len()).sum();
    conn.pragma_update(None, "cache_spill", spills(bytes))
        .map_err(|err| error("setting cache_spill in", err))?;
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| error("starting a write transaction in", err))?;
    let mut results = Vec::with_capacity(batch.len());
    let mut block = *ids;
    for pending in batch {
        let before = block;
        let result = if batch.len() == 1 {
            apply(&tx, pending, &mut block, error)
        } else {
            let savepoint = tx
                .savepoint()
                .map_err(|err| error("starting a savepoint in", err))?;
            let result = apply(&savepoint, pending, &mut block, error);
            if result.is_ok() {
                savepoint
                    .commit()
                    .map_err(|err| error("releasing a savepoint in", err))?;
            }
            result
        };
        if result.is_err() {
            // Whatever the failed write reserved is rolled back with it.
            block = before;
        }
        results.push(result);
    }
    if !results
        .iter()
        .any(|r| matches!(r, Ok(applied) if applied.changed))
    {
        // Nothing to commit; spare the sync (dropping `tx` rolls back).
        return Ok(Outcome::Done(results));
    }
    // A failed commit drops `tx`, which rolls back what SQLite left open.
    if let Err(err) = tx.commit() {
        return Ok(Outcome::CommitFailed(error("committing to", err)));
    }
    *ids = block;
    Ok(Outcome::Done(results))
}

/// What one write of a batch did: the model's id, and whether anything
/// was written.
pub(crate) struct Applied {
    pub(crate) id: InstanceId,
    pub(crate) changed: bool,
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
    ids: &mut Option<IdBlock>,
    error: &impl Fn(&str, rusqlite::Error) -> BackendError,
) -> Result<Applied> {
    let model = &pending.model;
    let id = model.instance_id;
    match pending.kind {
        WriteKind::Create => create(conn, ids, &model.model_type, &model.instance)
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

/// Whether a model of `len` bytes is written through incremental blob I/O
/// (from [`LARGE_BLOB`] on) rather than bound to one statement, which makes
/// SQLite copy the bytes (twice: the bound value and the record) first.
fn written_in_chunks(len: usize) -> bool {
    len >= LARGE_BLOB
}

/// Inserts a new model under the next id of `ids` (reserving a block when
/// it has none left or another writer came between), or under the id
/// SQLite picks when `ids` is `None`; returns the id.
fn create(
    conn: &Connection,
    ids: &mut Option<IdBlock>,
    model_type: &str,
    bytes: &[u8],
) -> rusqlite::Result<InstanceId> {
    let Some(block) = ids else {
        return insert(conn, None, model_type, bytes);
    };
    let id = block.next_id(conn)?;
    insert(conn, Some(id), model_type, bytes)
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

pub(crate) fn check_model_type(model: &Model) -> Result<()> {
    if model.model_type.contains('\0') {
        return Err(BackendError::new(
            ErrorKind::InvalidInput,
            "model type contains a NUL character, which SQLite TEXT cannot hold faithfully",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_type_with_a_nul_is_refused_as_invalid_input() {
        let err = check_model_type(&Model::new(1, "a\0b", vec![1])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        assert!(err.message.contains("NUL"), "{err}");
        check_model_type(&Model::new(1, "ab", vec![1])).unwrap();
    }

    #[test]
    fn models_from_1_mib_on_are_written_in_chunks() {
        assert!(!written_in_chunks(0));
        assert!(!written_in_chunks((1 << 20) - 1));
        assert!(written_in_chunks(1 << 20));
        assert!(written_in_chunks(usize::MAX));
    }

    /// A connection to a fresh file with the Python backend's table and a
    /// trigger that empties the bytes of every model of type `poison` as
    /// soon as its row is inserted, so that a large create of that type
    /// fails after its insert has changed the file (its bytes cannot be
    /// written into a NULL).
    fn poisoned_store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB);
             CREATE TRIGGER poison AFTER INSERT ON models WHEN NEW.type = 'poison'
             BEGIN UPDATE models SET instance = NULL WHERE id = NEW.id; END;",
        )
        .unwrap();
        (dir, conn)
    }

    /// A fresh WAL-mode file of 64 KiB pages with the Python backend's
    /// table, checkpointed by hand only.
    fn wal_store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        conn.execute_batch("PRAGMA page_size = 65536; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = wal", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute(crate::open::CREATE_TABLE, []).unwrap();
        (dir, conn)
    }

    /// The error a test's batches make of a failed statement.
    fn test_error(doing: &str, err: rusqlite::Error) -> BackendError {
        BackendError::storage(format!("{doing}: {err}"))
    }

    /// Creates `model` in a batch of its own with `ids`; its result.
    fn apply_create(
        conn: &mut Connection,
        ids: &mut Option<IdBlock>,
        model: Model,
    ) -> Result<Applied> {
        let (pending, _reply) = Pending::for_test(WriteKind::Create, model);
        let mut results = apply_batch(conn, &[pending], ids, test_error).unwrap();
        results.pop().unwrap()
    }

    /// Creates `model` in a batch of its own with `ids`; returns its id.
    fn create_one(conn: &mut Connection, ids: &mut Option<IdBlock>, model: Model) -> InstanceId {
        apply_create(conn, ids, model).unwrap().id
    }

    /// Creates `models` in one batch with `ids`; each one's result.
    fn apply_creates(
        conn: &mut Connection,
        ids: &mut Option<IdBlock>,
        models: Vec<Model>,
    ) -> Vec<Result<Applied>> {
        let (batch, _replies): (Vec<Pending>, Vec<_>) = models
            .into_iter()
            .map(|model| Pending::for_test(WriteKind::Create, model))
            .unzip();
        apply_batch(conn, &batch, ids, test_error).unwrap()
    }

    /// The id each write of a batch was given; `None` where it failed.
    fn ids_given(results: &[Result<Applied>]) -> Vec<Option<InstanceId>> {
        results
            .iter()
            .map(|r| r.as_ref().ok().map(|applied| applied.id))
            .collect()
    }

    fn wal_len(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("m.db-wal"))
            .unwrap()
            .len()
    }

    #[test]
    fn a_create_from_a_reserved_block_commits_only_its_row_page() {
        let (dir, mut conn) = wal_store();
        let mut ids = Some(IdBlock::default());
        let small = || Model::new(0, "t", vec![5u8; 100]);
        // The first create reserves one id, the second a block.
        assert_eq!(create_one(&mut conn, &mut ids, small()), 1);
        assert_eq!(create_one(&mut conn, &mut ids, small()), 2);
        let before = wal_len(&dir);
        assert_eq!(create_one(&mut conn, &mut ids, small()), 3);
        assert_eq!(
            wal_len(&dir) - before,
            24 + 65536,
            "the commit wrote more than one frame: sqlite_sequence's page too?"
        );
        let seq: i64 = conn
            .query_row("SELECT seq FROM sqlite_sequence", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seq, 1 + IdBlock::SIZE);
    }

    #[test]
    fn a_create_skips_a_reserved_id_someone_else_took() {
        let (_dir, mut conn) = wal_store();
        let mut ids = Some(IdBlock::default());
        for expected in [1, 2] {
            assert_eq!(
                create_one(&mut conn, &mut ids, Model::new(0, "t", vec![1])),
                expected
            );
        }
        conn.execute(
            "INSERT INTO models (id, type, instance) VALUES (3, 'u', x'03')",
            [],
        )
        .unwrap();
        let id = create_one(&mut conn, &mut ids, Model::new(0, "t", vec![4]));
        assert_eq!(id, 2 + IdBlock::SIZE, "not what AUTOINCREMENT gives");
        let stored: Vec<u8> = conn
            .query_row("SELECT instance FROM models WHERE id = 3", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stored, [3], "the other writer's model was overwritten");
    }

    #[test]
    fn a_create_the_file_refuses_is_an_error_not_a_create_under_another_id() {
        let (_dir, mut conn) = wal_store();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON models WHEN NEW.id = 2
             BEGIN SELECT RAISE(ABORT, 'id 2 is refused here'); END;",
        )
        .unwrap();
        let mut ids = Some(IdBlock::default());
        assert_eq!(
            create_one(&mut conn, &mut ids, Model::new(0, "t", vec![1])),
            1
        );
        let err = apply_create(&mut conn, &mut ids, Model::new(0, "t", vec![2]))
            .err()
            .expect("stored under another id");
        assert!(err.message.contains("id 2 is refused here"), "{err}");
    }

    #[test]
    fn a_deleted_model_s_id_is_never_handed_out_again() {
        let (_dir, mut conn) = wal_store();
        let mut ids = Some(IdBlock::default());
        for expected in 1..=3 {
            let id = create_one(&mut conn, &mut ids, Model::new(0, "t", vec![1]));
            assert_eq!(id, expected);
        }
        conn.execute("DELETE FROM models", []).unwrap();
        let mut fresh_writer = Some(IdBlock::default());
        let id = create_one(&mut conn, &mut fresh_writer, Model::new(0, "t", vec![1]));
        assert_eq!(id, 2 + IdBlock::SIZE, "above the first writer's block");
        let id = create_one(&mut conn, &mut ids, Model::new(0, "t", vec![1]));
        assert_eq!(id, 3 + IdBlock::SIZE, "below an id handed out before it");
    }

    #[test]
    fn a_failed_create_leaves_its_id_to_the_next() {
        let (_dir, mut conn) = poisoned_store();
        let large = vec![7u8; LARGE_BLOB];
        let writes = vec![
            Model::new(0, "t", vec![1]),
            Model::new(0, "poison", large),
            Model::new(0, "t", vec![3]),
        ];
        let mut ids = Some(IdBlock::default());
        let results = apply_creates(&mut conn, &mut ids, writes);
        assert_eq!(ids_given(&results), [Some(1), None, Some(2)]);
        assert_eq!(
            create_one(&mut conn, &mut ids, Model::new(0, "t", vec![4])),
            3
        );
    }

    /// Turns on foreign keys and adds a trigger that gives every model of
    /// type `unfit` a deferred reference to a row that does not exist: such
    /// a create succeeds, and the commit of its transaction fails.
    fn refuse_unfit_at_commit(conn: &Connection) {
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER unfit AFTER INSERT ON models WHEN NEW.type = 'unfit'
             BEGIN INSERT INTO child VALUES (NEW.id); END;",
        )
        .unwrap();
    }

    #[test]
    fn a_batch_whose_commit_fails_is_tried_again_one_write_at_a_time() {
        let (_dir, mut conn) = wal_store();
        refuse_unfit_at_commit(&conn);
        let writes = vec![
            Model::new(0, "t", vec![1]),
            Model::new(0, "unfit", vec![2]),
            Model::new(0, "t", vec![3]),
        ];
        let mut ids = Some(IdBlock::default());
        let results = apply_creates(&mut conn, &mut ids, writes);
        assert_eq!(ids_given(&results), [Some(1), None, Some(2)]);
        let failed = results[1]
            .as_ref()
            .err()
            .expect("the unfit write was stored");
        assert!(failed.message.contains("committing to"), "{failed}");
        assert!(failed.message.contains("FOREIGN KEY"), "{failed}");
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT id, instance FROM models ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(1, vec![1]), (2, vec![3])]);
        assert_eq!(
            create_one(&mut conn, &mut ids, Model::new(0, "t", vec![4])),
            3,
            "the failed attempts kept ids"
        );
    }

    #[test]
    fn a_single_write_whose_commit_fails_fails_the_batch() {
        let (_dir, mut conn) = wal_store();
        refuse_unfit_at_commit(&conn);
        let (pending, _reply) =
            Pending::for_test(WriteKind::Create, Model::new(0, "unfit", vec![1]));
        let err = apply_batch(&mut conn, &[pending], &mut None, test_error)
            .err()
            .expect("a failed commit was acknowledged");
        assert!(err.message.contains("FOREIGN KEY"), "{err}");
        let count: i64 = conn
            .query_row("SELECT count(*) FROM models", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn batches_above_256_mib_spill_their_pages_and_smaller_ones_do_not() {
        assert!(!spills(0));
        assert!(!spills(64 << 20));
        assert!(!spills(256 << 20));
        assert!(spills((256 << 20) + 1));
        assert!(spills(2 << 30));
    }

    #[test]
    fn a_write_that_fails_after_changing_something_leaves_nothing_and_its_batch_is_stored() {
        let (_dir, mut conn) = poisoned_store();
        let large = vec![7u8; LARGE_BLOB];
        let writes = vec![
            Model::new(0, "t", large.clone()),
            Model::new(0, "poison", large.clone()),
            Model::new(0, "t", vec![1, 2, 3]),
        ];
        let results = apply_creates(&mut conn, &mut None, writes);
        assert!(
            results[0].is_ok() && results[2].is_ok(),
            "the others failed"
        );
        let failed = results[1]
            .as_ref()
            .err()
            .expect("the poisoned write succeeded");
        assert_eq!(failed.kind, ErrorKind::Storage, "{failed}");
        let rows: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT type, length(instance) FROM models ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("t".to_string(), Some(LARGE_BLOB as i64)),
                ("t".to_string(), Some(3))
            ],
            "the failed write left something behind, or the others were not stored"
        );
    }
}
