//! Reading models: each read is one statement, so it sees one snapshot
//! (a model another host updates meanwhile is read whole, before or after),
//! and its rows stream in: the row and its chunks in order, into one buffer
//! of the size the row states (so a read holds one copy plus a chunk).
//! Shared by the calls (on a pooled connection) and the watcher (in its
//! catch-up transaction).

use crate::sql::Tables;
use aimm_backend_api::Model;
use postgres::fallible_iterator::FallibleIterator;
use postgres::GenericClient;

/// Why a model could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The database failed or went away.
    Database(postgres::Error),
    /// The chunks do not add up to the size the row states.
    Torn {
        /// The model.
        id: i64,
        /// Bytes its chunks hold.
        found: usize,
        /// Bytes its row states.
        size: usize,
    },
}

impl From<postgres::Error> for ReadError {
    fn from(err: postgres::Error) -> Self {
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
        }
    }
}

/// Model `id` as `conn` sees it; `None` when it has no row.
pub(crate) fn read_model(
    conn: &mut impl GenericClient,
    tables: &Tables,
    id: i64,
) -> Result<Option<Model>, ReadError> {
    let rows = conn.query_raw(
        &format!(
            "SELECT m.id, m.model_type, m.size, c.data FROM {} m \
             LEFT JOIN {} c ON c.id = m.id WHERE m.id = $1 ORDER BY c.seq",
            tables.models(),
            tables.chunks()
        ),
        [&id],
    )?;
    let mut models = assemble(rows)?;
    Ok(models.pop())
}

/// Every model, in id order, as `conn` sees them.
pub(crate) fn read_all(
    conn: &mut impl GenericClient,
    tables: &Tables,
) -> Result<Vec<Model>, ReadError> {
    let none: [&i64; 0] = [];
    let rows = conn.query_raw(
        &format!(
            "SELECT m.id, m.model_type, m.size, c.data FROM {} m \
             LEFT JOIN {} c ON c.id = m.id ORDER BY m.id, c.seq",
            tables.models(),
            tables.chunks()
        ),
        none,
    )?;
    assemble(rows)
}

/// Models from rows of (id, model_type, size, chunk) ordered by id and
/// chunk: a model with no bytes has one row whose chunk is NULL.
fn assemble(mut rows: postgres::RowIter<'_>) -> Result<Vec<Model>, ReadError> {
    let mut models = Vec::new();
    let mut current: Option<(i64, String, usize, Vec<u8>)> = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0);
        if current.as_ref().is_none_or(|(open, ..)| *open != id) {
            if let Some(done) = current.take() {
                models.push(finish(done)?);
            }
            let size = row.get::<_, i64>(2) as usize;
            current = Some((id, row.get(1), size, Vec::with_capacity(size)));
        }
        if let (Some((.., bytes)), Some(chunk)) = (&mut current, row.get::<_, Option<&[u8]>>(3)) {
            bytes.extend_from_slice(chunk);
        }
    }
    if let Some(done) = current {
        models.push(finish(done)?);
    }
    Ok(models)
}

fn finish(
    (id, model_type, size, bytes): (i64, String, usize, Vec<u8>),
) -> Result<Model, ReadError> {
    if bytes.len() != size {
        return Err(ReadError::Torn {
            id,
            found: bytes.len(),
            size,
        });
    }
    Ok(Model::new(id, model_type, bytes))
}
