//! Reading models: each read is one statement, so it sees one snapshot
//! (a model another host updates meanwhile is read whole, before or after),
//! and its rows stream in, each model's row and then its chunks in order,
//! straight into a buffer of the size the row states: the host's own
//! ([`Backend::read_models`](aimm_backend_api::Backend::read_models)) or a
//! new one. A read holds one copy of a model plus a chunk. Shared by the
//! calls (on a pooled connection) and the watcher (in its catch-up
//! transaction).

use crate::session::{DbError, Rows, Session};
use crate::sql::Tables;
use aimm_backend_api::{BackendError, Model, ModelInfo, ModelSink};
use tokio_postgres::Row;

/// Why models could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The database failed or went away.
    Database(DbError),
    /// The chunks do not add up to the size the row states.
    Torn {
        /// The model.
        id: i64,
        /// Bytes its chunks hold (at least).
        found: usize,
        /// Bytes its row states.
        size: usize,
    },
    /// The host's sink refused a model.
    Sink(BackendError),
}

impl From<DbError> for ReadError {
    fn from(err: DbError) -> Self {
        ReadError::Database(err)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Database(err) => write!(f, "{err}"),
            ReadError::Torn { id, found, size } => write!(
                f,
                "model {id}: its chunks hold {found} bytes, its row says {size}"
            ),
            ReadError::Sink(err) => write!(f, "{err}"),
        }
    }
}

/// Model `id` as `conn` sees it; `None` when it has no row.
pub(crate) fn read_model(
    conn: &mut Session,
    tables: &Tables,
    id: i64,
) -> Result<Option<Model>, ReadError> {
    let mut models = Collect::default();
    let rows = conn.query_raw(&select(tables, "WHERE m.id = $1"), [&id])?;
    stream(rows, &mut models)?;
    Ok(models.0.pop())
}

/// Every model, in id order, as `conn` sees them.
pub(crate) fn read_all(conn: &mut Session, tables: &Tables) -> Result<Vec<Model>, ReadError> {
    let mut models = Collect::default();
    read_into(conn, tables, &mut models)?;
    Ok(models.0)
}

/// Every model, in id order, as `conn` sees them, into `sink`.
pub(crate) fn read_into(
    conn: &mut Session,
    tables: &Tables,
    sink: &mut dyn ModelSink,
) -> Result<(), ReadError> {
    let none: [&i64; 0] = [];
    stream(conn.query_raw(&select(tables, ""), none)?, sink)
}

/// Rows of (id, model_type, size, chunk), by id and chunk; a model with no
/// bytes has one row, whose chunk is NULL.
fn select(tables: &Tables, filter: &str) -> String {
    format!(
        "SELECT m.id, m.model_type, m.size, c.data FROM {} m \
         LEFT JOIN {} c ON c.id = m.id {filter} ORDER BY m.id, c.seq",
        tables.models(),
        tables.chunks()
    )
}

/// Hands each model of `rows` to `sink`, its chunks copied into the
/// sink's buffer as they arrive.
fn stream(mut rows: Rows<'_>, sink: &mut dyn ModelSink) -> Result<(), ReadError> {
    let mut next = rows.next()?;
    while let Some(first) = next.take() {
        let id: i64 = first.get(0);
        let info = ModelInfo {
            instance_id: id,
            model_type: first.get::<_, &str>(1).into(),
            size: first.get::<_, i64>(2) as u64,
        };
        let mut pending = Some(first);
        let mut failed = None;
        let mut filled = false;
        let accepted = sink.accept(info, &mut |buffer: &mut [u8]| {
            filled = true;
            fill(buffer, id, &mut pending, &mut rows).map_err(|err| {
                let message = err.to_string();
                failed = Some(err);
                BackendError::storage(message)
            })
        });
        if let Some(err) = failed {
            return Err(err);
        }
        accepted.map_err(ReadError::Sink)?;
        if !filled {
            return Err(ReadError::Sink(BackendError::storage(format!(
                "the host's sink did not take the bytes of model {id}"
            ))));
        }
        next = pending;
    }
    Ok(())
}

/// Copies model `id`'s chunks, from `pending` on, into `buffer`; leaves
/// the next model's first row in `pending`.
fn fill(
    buffer: &mut [u8],
    id: i64,
    pending: &mut Option<Row>,
    rows: &mut Rows<'_>,
) -> Result<(), ReadError> {
    let mut at = 0;
    loop {
        let row = match pending.take() {
            Some(row) => row,
            None => match rows.next()? {
                Some(row) => row,
                None => break,
            },
        };
        if row.get::<_, i64>(0) != id {
            *pending = Some(row);
            break;
        }
        let Some(chunk) = row.get::<_, Option<&[u8]>>(3) else {
            continue;
        };
        let end = at + chunk.len();
        let Some(into) = buffer.get_mut(at..end) else {
            return Err(torn(id, end, buffer.len()));
        };
        into.copy_from_slice(chunk);
        at = end;
    }
    if at != buffer.len() {
        return Err(torn(id, at, buffer.len()));
    }
    Ok(())
}

fn torn(id: i64, found: usize, size: usize) -> ReadError {
    ReadError::Torn { id, found, size }
}

/// A sink that keeps each model in a buffer of its own.
#[derive(Default)]
struct Collect(Vec<Model>);

impl ModelSink for Collect {
    fn accept(
        &mut self,
        info: ModelInfo,
        fill: &mut aimm_backend_api::Fill<'_>,
    ) -> aimm_backend_api::Result<()> {
        // Zeroed memory comes from the kernel as it is touched: no extra pass.
        let mut bytes = vec![0; info.size as usize];
        fill(&mut bytes)?;
        self.0.push(Model {
            instance_id: info.instance_id,
            model_type: info.model_type,
            instance: bytes.into(),
        });
        Ok(())
    }
}
