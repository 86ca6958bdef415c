//! The `backend` section of a SQLite backend config.

use aimm_backend_api::{BackendError, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A journal mode this backend agrees to put a file in. `memory` and `off`
/// are left out: they give up the durability every acknowledged write promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    /// Write-ahead log: the default for files this backend creates.
    Wal,
    /// Rollback journal deleted after each commit: SQLite's and Python's default.
    Delete,
    /// Rollback journal truncated after each commit.
    Truncate,
    /// Rollback journal kept, its header zeroed.
    Persist,
}

impl JournalMode {
    /// The name SQLite uses in `PRAGMA journal_mode`.
    pub fn as_sql(self) -> &'static str {
        match self {
            JournalMode::Wal => "wal",
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
        }
    }
}

/// The SQLite backend's configuration (`schemas/sqlite.yaml`, also `schemas_json/server/backend/sqlite.yaml`).
#[derive(Debug, Clone, Deserialize)]
pub struct SqliteConfig {
    /// The database file.
    pub path: PathBuf,
    /// The journal mode to set; `None` keeps an existing file's mode and
    /// makes new files WAL.
    #[serde(default)]
    pub journal_mode: Option<JournalMode>,
    /// Seconds to wait for another connection's lock.
    #[serde(default = "default_busy_timeout")]
    pub busy_timeout: f64,
}

fn default_busy_timeout() -> f64 {
    30.0
}

impl SqliteConfig {
    /// Reads the config from the JSON `backend` section.
    pub fn from_json(conf: &serde_json::Value) -> Result<Self> {
        SqliteConfig::deserialize(conf)
            .map_err(|err| BackendError::invalid_config(format!("sqlite backend config: {err}")))
    }

    /// A config for `path` with every option at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            journal_mode: None,
            busy_timeout: default_busy_timeout(),
        }
    }

    /// [`SqliteConfig::busy_timeout`] as a [`Duration`].
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.busy_timeout.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn busy_timeout_defaults_to_30_seconds_as_the_schema_says() {
        assert_eq!(
            SqliteConfig::new("m.db").busy_timeout(),
            Duration::from_secs(30)
        );
        let conf = SqliteConfig::from_json(&json!({"path": "m.db"})).unwrap();
        assert_eq!(conf.busy_timeout(), Duration::from_secs(30));
        assert_eq!(conf.journal_mode, None);
        let schema = include_str!("../schemas/sqlite.yaml");
        assert!(
            schema.contains("(default 30)"),
            "the schema documents another default"
        );
    }

    #[test]
    fn busy_timeout_is_read_in_seconds_and_a_negative_one_means_no_wait() {
        let conf = SqliteConfig::from_json(&json!({"path": "m.db", "busy_timeout": 2.5})).unwrap();
        assert_eq!(conf.busy_timeout(), Duration::from_millis(2500));
        let conf = SqliteConfig::from_json(&json!({"path": "m.db", "busy_timeout": -1})).unwrap();
        assert_eq!(conf.busy_timeout(), Duration::ZERO);
    }

    #[test]
    fn journal_modes_have_their_sqlite_names() {
        for (mode, name) in [
            (JournalMode::Wal, "wal"),
            (JournalMode::Delete, "delete"),
            (JournalMode::Truncate, "truncate"),
            (JournalMode::Persist, "persist"),
        ] {
            assert_eq!(mode.as_sql(), name);
            let conf =
                SqliteConfig::from_json(&json!({"path": "m.db", "journal_mode": name})).unwrap();
            assert_eq!(conf.journal_mode, Some(mode));
        }
        let err = SqliteConfig::from_json(&json!({"path": 5})).unwrap_err();
        assert!(err.message.starts_with("sqlite backend config: "), "{err}");
    }
}
