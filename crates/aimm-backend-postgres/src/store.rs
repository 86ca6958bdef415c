//! The store: opening (durability checks, tables), and the backend calls.

use crate::config::PostgresConfig;
use crate::connect::{Connector, SharedConnector};
use crate::engine;
use crate::pool::Pool;
use crate::read::{self, ReadError};
use crate::session::{DbError, Session, Transaction};
use crate::sql::{check_shape, Tables, CHUNK_COLUMNS, CHUNK_LEN, MODEL_COLUMNS};
use crate::watch::{Seen, Stamp, Watch, Watched};
use aimm_backend_api::{
    Backend, BackendError, ErrorKind, Event, InstanceId, ListenerRegistry, Model,
    ModelChangeListener, ModelInfo, ModelSink, RString, RVec, Result,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// An AIMM model store in PostgreSQL.
pub struct PostgresBackend {
    connector: SharedConnector,
    tables: Tables,
    pool: Pool,
    listeners: Arc<ListenerRegistry>,
    seen: Seen,
    watch: Watch,
}

impl PostgresBackend {
    /// Connects, checks that commits are durable, and creates the tables
    /// if missing (checking them if present).
    pub fn open(conf: PostgresConfig) -> Result<PostgresBackend> {
        let connector = Arc::new(Connector::new(&conf)?);
        let tables = Tables::new(&conf.schema, &conf.table);
        let mut client = connector.connect()?;
        engine::check(&mut client, &connector, &tables)?;
        set_up_tables(&mut client, &tables, &connector)?;
        let pool = Pool::new(connector.clone(), conf.connections as usize, client);
        Ok(PostgresBackend {
            connector,
            tables,
            pool,
            listeners: Arc::default(),
            seen: Seen::default(),
            watch: Watch::default(),
        })
    }

    fn storage(&self, err: DbError) -> BackendError {
        self.connector.error(&err)
    }

    /// Commits `tx`. A COMMIT that failed as unavailable (no answer, the
    /// connection lost, the session terminated or the server shutting down
    /// while it waited) may or may not have been applied: said so, never
    /// acknowledged.
    fn commit(&self, tx: Transaction<'_>) -> Result<()> {
        tx.commit().map_err(|err| {
            let failed = self.connector.error(&err);
            match failed.kind {
                ErrorKind::Unavailable => outcome_unknown(&failed),
                _ => failed,
            }
        })
    }

    /// The rest of every write once its row is written: the bytes, the
    /// wake-up for other hosts, the COMMIT.
    fn finish_write(&self, mut tx: Transaction<'_>, id: i64, bytes: &[u8]) -> Result<()> {
        self.insert_chunks(&mut tx, id, bytes)?;
        self.notify(&mut tx, id)?;
        self.commit(tx)
    }

    fn insert_chunks(&self, tx: &mut Transaction<'_>, id: i64, bytes: &[u8]) -> Result<()> {
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {} (id, seq, data) VALUES ($1, $2, $3)",
                self.tables.chunks()
            ))
            .map_err(|err| self.storage(err))?;
        for (seq, chunk) in bytes.chunks(CHUNK_LEN).enumerate() {
            let seq = i32::try_from(seq).expect("2 GiB models have 256 chunks");
            tx.execute(&insert, &[&id, &seq, &chunk])
                .map_err(|err| self.storage(err))?;
        }
        Ok(())
    }

    /// Records that transaction `by` wrote `version` of model `id` (before
    /// it commits: the watcher must not report this backend's own write).
    fn record(&self, id: i64, by: &str, version: i64) {
        let stamp = Stamp {
            version,
            by: by.parse().unwrap_or(0),
        };
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, stamp);
    }

    fn notify(&self, tx: &mut Transaction<'_>, id: i64) -> Result<()> {
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.tables.channel_name(), &id.to_string()],
        )
        .map_err(|err| self.storage(err))?;
        Ok(())
    }

    fn read_model(&self, client: &mut Session, id: InstanceId) -> Result<Model> {
        match read::read_model(client, &self.tables, id) {
            Ok(Some(model)) => Ok(model),
            Ok(None) => Err(BackendError::not_found(id)),
            Err(err) => Err(self.read_error(err)),
        }
    }

    fn read_error(&self, err: ReadError) -> BackendError {
        match err {
            ReadError::Database(err) => self.storage(err),
            ReadError::Sink(err) => err,
            torn @ ReadError::Torn { .. } => BackendError::storage(torn.to_string()),
        }
    }
}

/// The error of a write whose COMMIT was sent and then `failed` as
/// unavailable.
fn outcome_unknown(failed: &BackendError) -> BackendError {
    BackendError::new(
        ErrorKind::Unavailable,
        format!(
            "{}; COMMIT was sent but did not complete, so whether the write is stored is \
             unknown; it was not acknowledged",
            failed.message
        ),
    )
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn set_up_tables(client: &mut Session, tables: &Tables, connector: &Connector) -> Result<()> {
    let error = |err: DbError| connector.error(&err);
    let mut tx = client.transaction().map_err(error)?;
    tx.batch_execute(&tables.setup_lock()).map_err(error)?;
    let mut missing = false;
    for ((schema, name), expected) in [
        (tables.models_name(), &MODEL_COLUMNS[..]),
        (tables.chunks_name(), &CHUNK_COLUMNS[..]),
    ] {
        let found: Vec<(String, String)> = tx
            .query(Tables::COLUMNS_QUERY, &[&schema, &name])
            .map_err(error)?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        if found.is_empty() {
            missing = true;
            continue;
        }
        check_shape(&format!("{schema}.{name}"), &found, expected).map_err(|message| {
            BackendError::invalid_config(format!("PostgreSQL {}: {message}", connector.server()))
        })?;
    }
    if missing {
        tx.batch_execute(&tables.create_statements())
            .map_err(error)?;
    }
    tx.commit().map_err(error)
}

impl Backend for PostgresBackend {
    fn get_models(&self) -> Result<RVec<Model>> {
        self.pool
            .with(|client| match read::read_all(client, &self.tables) {
                Ok(models) => Ok(models.into()),
                Err(err) => Err(self.read_error(err)),
            })
    }

    fn read_models(&self, sink: &mut dyn ModelSink) -> Result<()> {
        self.pool.with(|client| {
            read::read_into(client, &self.tables, sink).map_err(|err| self.read_error(err))
        })
    }

    fn list_models(&self) -> Result<RVec<ModelInfo>> {
        self.pool.with(|client| {
            Ok(client
                .query(
                    &format!(
                        "SELECT id, model_type, size FROM {} ORDER BY id",
                        self.tables.models()
                    ),
                    &[],
                )
                .map_err(|err| self.storage(err))?
                .iter()
                .map(|row| ModelInfo {
                    instance_id: row.get(0),
                    model_type: RString::from(row.get::<_, String>(1)),
                    size: row.get::<_, i64>(2) as u64,
                })
                .collect())
        })
    }

    fn get_model(&self, instance_id: InstanceId) -> Result<Model> {
        self.pool
            .with(|client| self.read_model(client, instance_id))
    }

    fn create_model(&self, model_type: RString, instance: RVec<u8>) -> Result<Model> {
        let digest = digest(&instance);
        let id = self.pool.with(|client| {
            let mut tx = client.transaction().map_err(|err| self.storage(err))?;
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO {} (model_type, size, digest, version) \
                         VALUES ($1, $2, $3, 1) RETURNING id, changed_by::text",
                        self.tables.models()
                    ),
                    &[&model_type.as_str(), &(instance.len() as i64), &digest],
                )
                .map_err(|err| self.storage(err))?;
            let id: i64 = row.get(0);
            self.record(id, row.get(1), 1);
            self.finish_write(tx, id, &instance)?;
            Ok(id)
        })?;
        let model = Model {
            instance_id: id,
            model_type,
            instance,
        };
        self.listeners.notify(&model);
        Ok(model)
    }

    fn update_model(&self, model: Model) -> Result<Model> {
        let digest = digest(&model.instance);
        let changed = self.pool.with(|client| {
            let mut tx = client.transaction().map_err(|err| self.storage(err))?;
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT model_type, digest, size FROM {} WHERE id = $1 FOR UPDATE",
                        self.tables.models()
                    ),
                    &[&model.instance_id],
                )
                .map_err(|err| self.storage(err))?
                .ok_or_else(|| BackendError::not_found(model.instance_id))?;
            let same = row.get::<_, &str>(0) == model.model_type.as_str()
                && row.get::<_, &[u8]>(1) == digest.as_slice()
                && row.get::<_, i64>(2) == model.instance.len() as i64;
            if same {
                // Nothing to write: rolled back, no WAL, nobody told.
                return Ok(false);
            }
            let by = tx
                .query_one(
                    &format!(
                        "UPDATE {} SET model_type = $2, size = $3, digest = $4, \
                         version = version + 1, changed_by = pg_current_xact_id() \
                         WHERE id = $1 RETURNING changed_by::text, version",
                        self.tables.models()
                    ),
                    &[
                        &model.instance_id,
                        &model.model_type.as_str(),
                        &(model.instance.len() as i64),
                        &digest,
                    ],
                )
                .map_err(|err| self.storage(err))?;
            self.record(model.instance_id, by.get(0), by.get(1));
            tx.execute(
                &format!("DELETE FROM {} WHERE id = $1", self.tables.chunks()),
                &[&model.instance_id],
            )
            .map_err(|err| self.storage(err))?;
            self.finish_write(tx, model.instance_id, &model.instance)?;
            Ok(true)
        })?;
        if changed {
            self.listeners.notify(&model);
        }
        Ok(model)
    }

    fn import_model(&self, model: Model) -> Result<Model> {
        let digest = digest(&model.instance);
        self.pool.with(|client| {
            let mut tx = client.transaction().map_err(|err| self.storage(err))?;
            let inserted = tx
                .query_opt(
                    &format!(
                        "INSERT INTO {} (id, model_type, size, digest, version) \
                         VALUES ($1, $2, $3, $4, 1) ON CONFLICT (id) DO NOTHING \
                         RETURNING changed_by::text",
                        self.tables.models()
                    ),
                    &[
                        &model.instance_id,
                        &model.model_type.as_str(),
                        &(model.instance.len() as i64),
                        &digest,
                    ],
                )
                .map_err(|err| self.storage(err))?;
            let Some(inserted) = inserted else {
                return Err(BackendError::conflict(model.instance_id));
            };
            self.record(model.instance_id, inserted.get(0), 1);
            // Ids handed out later must pass the imported one.
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence($1, 'id'), \
                     GREATEST($2, (SELECT max(id) FROM {})))",
                    self.tables.models()
                ),
                &[&self.tables.models(), &model.instance_id],
            )
            .map_err(|err| self.storage(err))?;
            self.finish_write(tx, model.instance_id, &model.instance)
        })?;
        self.listeners.notify(&model);
        Ok(model)
    }

    fn register_model_change_cb(&self, listener: Arc<dyn ModelChangeListener>) -> Result<u64> {
        let registration = self.listeners.register(listener);
        self.watch.ensure_running(|| Watched {
            connector: self.connector.clone(),
            tables: self.tables.clone(),
            listeners: self.listeners.clone(),
            seen: self.seen.clone(),
        });
        Ok(registration)
    }

    fn unregister_model_change_cb(&self, registration: u64) -> Result<()> {
        self.listeners.unregister(registration);
        if self.listeners.is_empty() {
            self.watch.stop();
        }
        Ok(())
    }

    fn process_events(&self, _events: RVec<Event>) -> Result<()> {
        Ok(())
    }

    fn close(&self) -> Result<()> {
        self.watch.stop();
        self.pool.close();
        Ok(())
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.watch.stop();
    }
}
