//! An AIMM model store in PostgreSQL, as a backend plugin: several AIMM
//! servers on several machines share one store.
//!
//! # Tables
//!
//! Two tables in `schema` (default `public`), named by `table` (default
//! `aimm_models`), created if missing and checked if present (a table of
//! another shape is an error naming both shapes; nothing is touched):
//!
//! - `aimm_models(id, model_type, size, digest, version, changed_by)`: one
//!   row per model, never a byte of it, so `list` reads no model. `id` is an
//!   identity column: ids come from the database's sequence, never reused
//!   on any host (a rolled-back create burns its id). `digest` is the
//!   SHA-256 of the bytes, `version` counts the model's writes, and
//!   `changed_by` is the `xid8` of the transaction that wrote it last.
//! - `aimm_models_chunks(id, seq, data)`: the bytes, in chunks of 8 MiB,
//!   so no value comes near PostgreSQL's 1 GB limit and reading or writing
//!   a model holds one copy of it plus a chunk (a row arrives as one
//!   protocol message).
//!
//! # Durability
//!
//! A write is acknowledged after its `COMMIT` returned. Each connection
//! sets `synchronous_commit = on` for itself, so COMMIT returns after the
//! WAL is flushed whatever the server's default, and the store refuses to
//! open when the server runs with `fsync = off` (which no setting of ours
//! can undo). A COMMIT that fails as unavailable (the connection lost or
//! terminated, the server shutting down, no answer within
//! `answer_timeout`) leaves the outcome unknown: the call fails as
//! unavailable and says so, never acknowledges.
//!
//! # A server that hangs
//!
//! Every wait for the server has a deadline: connecting `connect_timeout`,
//! each statement and each row of a read `answer_timeout`. A server that
//! is connected but does not answer (its process stopped, its storage
//! stuck) still acknowledges TCP, so only such a deadline notices it; the
//! connection is then closed and the call fails as unavailable.
//! An unchanged update compares the digest and type under `SELECT ... FOR
//! UPDATE` and rolls back: nothing is written.
//!
//! # Changes across hosts
//!
//! Every write sends `NOTIFY` on the table's channel, delivered at commit.
//! It is only a wake-up: the truth is the table. While a listener is
//! registered, one more connection `LISTEN`s and, at every wake-up, every
//! (re)connect and every few seconds, catches up in a `REPEATABLE READ`
//! transaction: the rows whose `changed_by` is at least the previous
//! catch-up's snapshot `xmin`. A transaction below that `xmin` had ended
//! before that snapshot was taken, so its rows were read then; nothing
//! committed between two catch-ups is missed, whatever order transactions
//! commit in, and across a restart of the database (notifications sent
//! while the listener was away are lost; the catch-up is not). Rows read
//! twice are reported once (`version` tells).

#![warn(missing_docs)]

mod config;
mod connect;
mod engine;
mod pool;
mod read;
mod session;
mod sql;
mod store;
mod tls;
mod watch;

pub use config::{PostgresConfig, TlsMode, PASSWORD_ENV};
pub use sql::Tables;
pub use store::PostgresBackend;

use aimm_backend_api::{Backend, BackendPlugin, Host, Result};
use std::sync::Arc;

/// The plugin: builds [`PostgresBackend`]s from `backend` config sections.
pub struct PostgresPlugin;

impl BackendPlugin for PostgresPlugin {
    const NAME: &'static str = "postgres";
    const CONF_SCHEMA: &'static str = include_str!("../schemas/postgres.yaml");

    fn create_backend(conf: &serde_json::Value, _host: Host) -> Result<Arc<dyn Backend>> {
        quiet_statement_logs();
        Ok(Arc::new(PostgresBackend::open(PostgresConfig::from_json(
            conf,
        )?)?))
    }

    /// The configured server, with tables in a schema of their own for the
    /// scratch directory (named from it, so runs never share a store).
    fn scratch_conf(conf: &serde_json::Value, scratch_dir: &str) -> Result<serde_json::Value> {
        use sha2::Digest;
        let mut scratch = conf.clone();
        let hash = sha2::Sha256::digest(scratch_dir.as_bytes());
        let name: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
        scratch["schema"] = serde_json::Value::String(format!("aimm_scratch_{name}"));
        Ok(scratch)
    }
}

/// `tokio-postgres` logs every statement at debug level with its
/// parameters, a model's bytes among them, as decimal text (about 4 bytes of
/// text per byte, formatted whether or not the host keeps the line). This
/// plugin logs nothing below info, so it never formats them.
fn quiet_statement_logs() {
    log::set_max_level(log::max_level().min(log::LevelFilter::Info));
}

aimm_backend_api::export_backend!(PostgresPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_scratch_directory_gets_a_schema_of_its_own_on_the_same_server() {
        let conf =
            json!({"url": "postgresql://aimm@db/aimm", "schema": "public", "connections": 2});
        let a = PostgresPlugin::scratch_conf(&conf, "/tmp/a").unwrap();
        let again = PostgresPlugin::scratch_conf(&conf, "/tmp/a").unwrap();
        let b = PostgresPlugin::scratch_conf(&conf, "/tmp/b").unwrap();
        let schema = a["schema"].as_str().unwrap();
        assert_eq!(schema.len(), "aimm_scratch_".len() + 24, "{schema}");
        assert!(schema.starts_with("aimm_scratch_"), "{schema}");
        assert_eq!(a, again);
        assert_ne!(a["schema"], b["schema"]);
        assert_eq!(a["url"], conf["url"]);
        assert_eq!(a["connections"], conf["connections"]);
        PostgresConfig::from_json(&a).expect("a schema name the config accepts");
    }

    #[test]
    fn statement_logs_are_capped_at_info_and_a_stricter_level_is_kept() {
        log::set_max_level(log::LevelFilter::Trace);
        quiet_statement_logs();
        assert_eq!(log::max_level(), log::LevelFilter::Info);
        log::set_max_level(log::LevelFilter::Warn);
        quiet_statement_logs();
        assert_eq!(log::max_level(), log::LevelFilter::Warn);
    }
}
