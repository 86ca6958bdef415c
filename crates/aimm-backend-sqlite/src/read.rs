//! The read paths: listing the rows, reading the bytes of one model or of
//! all of them (with buffers prepared ahead on a second thread for large
//! results), and the simple read the change poller uses.

use crate::config::SqliteConfig;
use crate::open::sql_error;
use aimm_backend_api::{BackendError, InstanceId, Model, ModelInfo, ModelSink, RVec, Result};
use rusqlite::{Connection, OptionalExtension};
use std::io::Read;

/// From this many bytes on, get_models prepares buffers on a second thread.
const PARALLEL_PREPARE_BYTES: usize = 8 << 20;

/// The buffers that thread hands over at a time, in bytes...
const PREPARED_BATCH_BYTES: usize = 1 << 20;

/// ...and how many such batches it may prepare ahead of the reader.
const PREPARED_BATCHES_AHEAD: usize = 4;

type Row = (InstanceId, String, Option<i64>);

/// Id, type and byte length of every model. `length()` of a blob reads only
/// the record header, never the bytes.
pub(crate) fn list_rows(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, type, length(instance) FROM models ORDER BY id")?;
    let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

/// Reads models' bytes on one connection, in the read transaction it is
/// in, naming the store's file in its errors.
pub(crate) struct ModelReader<'a> {
    conn: &'a Connection,
    conf: &'a SqliteConfig,
}

impl<'a> ModelReader<'a> {
    /// A reader on `conn`, a connection to the file of `conf`.
    pub(crate) fn new(conn: &'a Connection, conf: &'a SqliteConfig) -> Self {
        ModelReader { conn, conf }
    }

    /// Model `id`'s bytes, `len` of them.
    pub(crate) fn read_instance(&self, id: InstanceId, len: Option<i64>) -> Result<RVec<u8>> {
        self.fill_instance(id, prepared_buffer(byte_len(len)))
    }

    /// Reads model `id`'s bytes into `bytes`, which has their exact length.
    fn fill_instance(&self, id: InstanceId, mut bytes: RVec<u8>) -> Result<RVec<u8>> {
        self.read_into(id, &mut bytes)?;
        Ok(bytes)
    }

    /// Reads model `id`'s bytes into `buffer`, which has their exact length.
    fn read_into(&self, id: InstanceId, buffer: &mut [u8]) -> Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        let mut blob = self
            .conn
            .blob_open(rusqlite::MAIN_DB, "models", "instance", id, true)
            .map_err(|err| sql_error(&self.conf.path, "opening a model's bytes", self.conf, err))?;
        blob.read_exact(buffer).map_err(|err| {
            BackendError::storage(format!(
                "reading model {id} from SQLite file {}: {err}",
                self.conf.path.display()
            ))
        })
    }

    /// Hands every row to `sink`, its bytes read into the sink's buffer.
    pub(crate) fn read_models_into(&self, rows: Vec<Row>, sink: &mut dyn ModelSink) -> Result<()> {
        for (instance_id, model_type, len) in rows {
            let info = ModelInfo {
                instance_id,
                model_type: model_type.into(),
                size: byte_len(len) as u64,
            };
            sink.accept(info, &mut |buffer: &mut [u8]| {
                self.read_into(instance_id, buffer)
            })?;
        }
        Ok(())
    }

    /// Reads every row's bytes in one read transaction. For large results a
    /// second thread allocates and touches the buffers ahead of the reader:
    /// faulting in fresh memory costs about as much as reading from SQLite,
    /// and the two then overlap. Only this thread touches the connection.
    pub(crate) fn read_models(&self, rows: Vec<Row>) -> Result<RVec<Model>> {
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
                let instance = self.fill_instance(instance_id, buffer)?;
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

/// One model, read simply (used by the change poller, off the hot path).
pub(crate) fn read_model(conn: &Connection, id: InstanceId) -> rusqlite::Result<Option<Model>> {
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
    use std::sync::mpsc;

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
}
