//! Reading one model: its row, then its chunks in order, into one buffer
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
    let Some(row) = conn.query_opt(
        &format!(
            "SELECT model_type, size FROM {} WHERE id = $1",
            tables.models()
        ),
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let model_type: String = row.get(0);
    let size = row.get::<_, i64>(1) as usize;
    let mut bytes = Vec::with_capacity(size);
    let mut chunks = conn.query_raw(
        &format!(
            "SELECT data FROM {} WHERE id = $1 ORDER BY seq",
            tables.chunks()
        ),
        [&id],
    )?;
    while let Some(chunk) = chunks.next()? {
        bytes.extend_from_slice(chunk.get::<_, &[u8]>(0));
    }
    if bytes.len() != size {
        return Err(ReadError::Torn {
            id,
            found: bytes.len(),
            size,
        });
    }
    Ok(Some(Model::new(id, model_type, bytes)))
}
