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
    /// The page size, in bytes, of a file this backend creates; an existing
    /// file keeps its own.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_busy_timeout() -> f64 {
    30.0
}

/// SQLite's largest page. Models are blobs of MiBs: a page holds 16 times
/// as much of one as SQLite's default 4 KiB page, so a model takes 16 times
/// fewer frames, writes and page lookups (measured through the Python
/// interface: creates of 16 MiB models 1.7x faster, of 4 KiB ones 10%
/// slower, since a small row rewrites its whole leaf page).
pub const DEFAULT_PAGE_SIZE: u32 = 65536;

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

impl SqliteConfig {
    /// Reads the config from the JSON `backend` section.
    pub fn from_json(conf: &serde_json::Value) -> Result<Self> {
        let conf = SqliteConfig::deserialize(conf)
            .map_err(|err| BackendError::invalid_config(format!("sqlite backend config: {err}")))?;
        conf.check_page_size()?;
        Ok(conf)
    }

    /// SQLite takes a power of two from 512 to 65536 and silently ignores
    /// any other page size.
    fn check_page_size(&self) -> Result<()> {
        if self.page_size.is_power_of_two() && (512..=65536).contains(&self.page_size) {
            return Ok(());
        }
        Err(BackendError::invalid_config(format!(
            "sqlite backend config: page_size {}: expected a power of two from 512 to 65536",
            self.page_size
        )))
    }

    /// A config for `path` with every option at its default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            journal_mode: None,
            busy_timeout: default_busy_timeout(),
            page_size: DEFAULT_PAGE_SIZE,
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
    fn page_size_defaults_to_64_kib_as_the_schema_says() {
        assert_eq!(SqliteConfig::new("m.db").page_size, 65536);
        let conf = SqliteConfig::from_json(&json!({"path": "m.db"})).unwrap();
        assert_eq!(conf.page_size, 65536);
        let schema = include_str!("../schemas/sqlite.yaml");
        assert!(
            schema.contains("(default 65536)"),
            "the schema documents another default"
        );
    }

    #[test]
    fn page_sizes_sqlite_would_ignore_are_refused() {
        for good in [512, 4096, 65536] {
            let conf =
                SqliteConfig::from_json(&json!({"path": "m.db", "page_size": good})).unwrap();
            assert_eq!(conf.page_size, good);
        }
        for bad in [0, 256, 1000, 131072] {
            let err =
                SqliteConfig::from_json(&json!({"path": "m.db", "page_size": bad})).unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "sqlite backend config: page_size {bad}: expected a power of two from 512 to 65536"
                )
            );
        }
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
