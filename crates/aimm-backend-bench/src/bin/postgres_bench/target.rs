//! What each variant does to a store: the plugins as a host calls them,
//! and the floor, our backend's statements from bare clients.

use aimm_backend_api::{Backend, Model, RVec};
use aimm_backend_loader::{SearchPath, ServerConfig};
use aimm_backend_test_support::PostgresServer;
use anyhow::{ensure, Context, Result};
use postgres::fallible_iterator::FallibleIterator;
use sha2::Digest;
use std::sync::Arc;

/// Our backend's chunk size: the floor sends the same rows.
const CHUNK: usize = 8 * crate::bench::MIB;

/// What one variant does to a store. Writes take the bytes by value, as a
/// host hands its buffer over; reads return them without a copy.
pub(crate) trait Target: Send + Sync {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64>;
    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()>;
    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>>;
    fn list(&self) -> Result<usize>;
}

/// A backend plugin, as a host calls it.
pub(crate) struct Plugged(pub(crate) Arc<dyn Backend>);

impl Target for Plugged {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64> {
        Ok(self
            .0
            .create_model(model_type.into(), bytes.into())?
            .instance_id)
    }
    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()> {
        self.0.update_model(Model::new(id, model_type, bytes))?;
        Ok(())
    }
    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>> {
        Ok(self
            .0
            .get_models()?
            .into_iter()
            .map(|m| (m.instance_id, m.instance))
            .collect())
    }
    fn list(&self) -> Result<usize> {
        Ok(self.0.list_models()?.len())
    }
}

pub(crate) fn open_plugin(section: serde_json::Value) -> Result<Plugged> {
    let config = ServerConfig::from_value(serde_json::json!({ "backend": section }), "bench")?;
    let opened = aimm_backend_hat_host::opener(SearchPath::from_dirs(Vec::new()))
        .open(&config)
        .context("opening the plugin")?;
    Ok(Plugged(opened.backend))
}

/// The floor: our backend's statements from bare clients, one connection
/// per thread that uses it.
pub(crate) struct Floor {
    url: String,
    password: String,
    models: String,
    chunks: String,
    channel: String,
    clients: std::sync::Mutex<Vec<postgres::Client>>,
}

impl Floor {
    pub(crate) fn new(server: &PostgresServer, schema: &str) -> Result<Floor> {
        Ok(Floor {
            url: server.url(),
            password: std::fs::read_to_string(server.password_file())?
                .trim()
                .to_string(),
            models: format!("\"{schema}\".\"aimm_models\""),
            chunks: format!("\"{schema}\".\"aimm_models_chunks\""),
            channel: format!("{schema}.aimm_models"),
            clients: Default::default(),
        })
    }

    fn with<T>(&self, call: impl FnOnce(&mut postgres::Client) -> Result<T>) -> Result<T> {
        let taken = self.clients.lock().unwrap().pop();
        let mut client = match taken {
            Some(client) => client,
            None => {
                let mut config: postgres::Config = self.url.parse()?;
                config.password(&self.password);
                let mut client = config.connect(postgres::NoTls)?;
                client.batch_execute("SET synchronous_commit = on")?;
                client
            }
        };
        let outcome = call(&mut client);
        self.clients.lock().unwrap().push(client);
        outcome
    }

    /// How every write ends: the bytes in chunks, the notification, the
    /// commit.
    fn finish_write(&self, mut tx: postgres::Transaction<'_>, id: i64, bytes: &[u8]) -> Result<()> {
        let insert = tx.prepare(&format!(
            "INSERT INTO {} (id, seq, data) VALUES ($1, $2, $3)",
            self.chunks
        ))?;
        for (seq, chunk) in bytes.chunks(CHUNK).enumerate() {
            tx.execute(&insert, &[&id, &(seq as i32), &chunk])?;
        }
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channel, &id.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }
}

impl Target for Floor {
    fn create(&self, model_type: &str, bytes: Vec<u8>) -> Result<i64> {
        let digest = sha2::Sha256::digest(&bytes).to_vec();
        self.with(|client| {
            let mut tx = client.transaction()?;
            let row = tx.query_one(
                &format!(
                    "INSERT INTO {} (model_type, size, digest, version) \
                     VALUES ($1, $2, $3, 1) RETURNING id, changed_by::text",
                    self.models
                ),
                &[&model_type, &(bytes.len() as i64), &digest],
            )?;
            let id: i64 = row.get(0);
            self.finish_write(tx, id, &bytes)?;
            Ok(id)
        })
    }

    fn update(&self, id: i64, model_type: &str, bytes: Vec<u8>) -> Result<()> {
        let digest = sha2::Sha256::digest(&bytes).to_vec();
        self.with(|client| {
            let mut tx = client.transaction()?;
            let row = tx.query_one(
                &format!(
                    "SELECT model_type, digest, size FROM {} WHERE id = $1 FOR UPDATE",
                    self.models
                ),
                &[&id],
            )?;
            ensure!(
                row.get::<_, &[u8]>(1) != digest.as_slice(),
                "unchanged update"
            );
            tx.query_one(
                &format!(
                    "UPDATE {} SET model_type = $2, size = $3, digest = $4, \
                     version = version + 1, changed_by = pg_current_xact_id() \
                     WHERE id = $1 RETURNING changed_by::text",
                    self.models
                ),
                &[&id, &model_type, &(bytes.len() as i64), &digest],
            )?;
            tx.execute(
                &format!("DELETE FROM {} WHERE id = $1", self.chunks),
                &[&id],
            )?;
            self.finish_write(tx, id, &bytes)
        })
    }

    fn get_models(&self) -> Result<Vec<(i64, RVec<u8>)>> {
        self.with(|client| {
            let none: [&i64; 0] = [];
            let mut rows = client.query_raw(
                &format!(
                    "SELECT m.id, m.model_type, m.size, c.data FROM {} m \
                     LEFT JOIN {} c ON c.id = m.id ORDER BY m.id, c.seq",
                    self.models, self.chunks
                ),
                none,
            )?;
            let mut models: Vec<(i64, Vec<u8>)> = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0);
                if models.last().is_none_or(|(last, _)| *last != id) {
                    // Ours reads the type too.
                    let _model_type: &str = row.get(1);
                    models.push((id, Vec::with_capacity(row.get::<_, i64>(2) as usize)));
                }
                if let Some(chunk) = row.get::<_, Option<&[u8]>>(3) {
                    models
                        .last_mut()
                        .expect("pushed above")
                        .1
                        .extend_from_slice(chunk);
                }
            }
            Ok(models
                .into_iter()
                .map(|(id, bytes)| (id, bytes.into()))
                .collect())
        })
    }

    fn list(&self) -> Result<usize> {
        self.with(|client| {
            Ok(client
                .query(
                    &format!(
                        "SELECT id, model_type, size FROM {} ORDER BY id",
                        self.models
                    ),
                    &[],
                )?
                .len())
        })
    }
}
