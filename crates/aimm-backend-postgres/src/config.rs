//! The `backend` section of a PostgreSQL backend config.
//!
//! The password is never part of anything this module prints: not of a
//! message, not of `Debug`. A server is named by user, host, port and
//! database ([`PostgresConfig::describe`]).

use aimm_backend_api::{BackendError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable libpq reads a password from; read here too.
pub const PASSWORD_ENV: &str = "PGPASSWORD";

/// How the connection is encrypted, as libpq's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP.
    Off,
    /// TLS if the server offers it, else plain TCP; the certificate is not
    /// checked (as libpq's `prefer`).
    Prefer,
    /// TLS or no connection; the certificate is not checked (as libpq's
    /// `require`): encrypted, not authenticated.
    Require,
    /// TLS or no connection, the server's certificate signed by `ca_file`
    /// and naming the host connected to.
    VerifyFull,
}

/// The PostgreSQL backend's configuration (`schemas/postgres.yaml`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `backend.module`, as the host passes it.
    #[serde(default)]
    pub module: Option<String>,
    /// A libpq connection string (`host=... dbname=...`) or URL
    /// (`postgresql://user@host:port/db`).
    pub url: String,
    /// A file holding the password (its first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How the connection is encrypted (default `prefer`, as libpq).
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// The CA certificates (PEM) that sign the server's, for `verify-full`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: f64,
    /// Seconds a call waits for the server's next answer (a statement's
    /// result, a row of a read) before it gives the connection up as hung
    /// (default 60).
    #[serde(default = "default_answer_timeout")]
    pub answer_timeout: f64,
    /// The schema holding the tables (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// The models table; the chunks table is `<table>_chunks` (default
    /// `aimm_models`).
    #[serde(default = "default_table")]
    pub table: String,
    /// Connections kept for calls (default 4); one more listens for
    /// changes while a listener is registered.
    #[serde(default = "default_connections")]
    pub connections: u32,
}

fn default_tls() -> TlsMode {
    TlsMode::Prefer
}

fn default_connect_timeout() -> f64 {
    10.0
}

fn default_answer_timeout() -> f64 {
    60.0
}

fn default_schema() -> String {
    "public".into()
}

fn default_table() -> String {
    "aimm_models".into()
}

fn default_connections() -> u32 {
    4
}

/// Longest identifier PostgreSQL keeps (`NAMEDATALEN - 1`); the chunks
/// table's name adds `_chunks`.
const MAX_IDENTIFIER: usize = 63;

impl std::fmt::Debug for PostgresConfig {
    /// Everything but the connection string, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<not shown>")
            .field("password_file", &self.password_file)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("answer_timeout", &self.answer_timeout)
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("connections", &self.connections)
            .finish()
    }
}

impl PostgresConfig {
    /// Reads and checks the config from the JSON `backend` section. A
    /// message never quotes `url`, which may hold a password.
    pub fn from_json(conf: &serde_json::Value) -> Result<Self> {
        // serde quotes a string only where another type or value was
        // expected; `url` takes any string, so its value is never quoted.
        let conf = PostgresConfig::deserialize(conf).map_err(|err| {
            BackendError::invalid_config(format!("postgres backend config: {err}"))
        })?;
        conf.check()?;
        Ok(conf)
    }

    fn check(&self) -> Result<()> {
        for (key, name, room) in [
            ("schema", &self.schema, 0),
            ("table", &self.table, "_chunks".len()),
        ] {
            check_identifier(key, name, MAX_IDENTIFIER - room)?;
        }
        if self.connections == 0 {
            return Err(invalid("connections 0: expected at least 1"));
        }
        for (key, seconds) in [
            ("connect_timeout", self.connect_timeout),
            ("answer_timeout", self.answer_timeout),
        ] {
            if !(seconds > 0.0 && seconds.is_finite()) {
                return Err(invalid(&format!(
                    "{key} {seconds}: expected a number of seconds above 0"
                )));
            }
        }
        match (self.tls, &self.ca_file) {
            (TlsMode::VerifyFull, None) => Err(invalid(
                "tls verify-full needs ca_file, the CA certificates (PEM) that sign the server's",
            )),
            (TlsMode::Off | TlsMode::Prefer | TlsMode::Require, Some(_)) => Err(invalid(
                "ca_file is read only with tls verify-full; expected tls: verify-full, or no ca_file",
            )),
            _ => Ok(()),
        }
    }

    /// [`PostgresConfig::connect_timeout`] as a [`Duration`].
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout)
    }

    /// [`PostgresConfig::answer_timeout`] as a [`Duration`].
    pub fn answer_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.answer_timeout)
    }

    /// The password to connect with: `password_file`'s first line, else
    /// [`PASSWORD_ENV`], else none (the connection string's, if it has one).
    pub fn password(&self) -> Result<Option<String>> {
        self.password_or(std::env::var(PASSWORD_ENV).ok())
    }

    /// [`password`](Self::password) with `env` as [`PASSWORD_ENV`]'s value;
    /// an empty one is none, as libpq reads it.
    fn password_or(&self, env: Option<String>) -> Result<Option<String>> {
        if let Some(path) = &self.password_file {
            return read_password_file(path).map(Some);
        }
        Ok(env.filter(|p| !p.is_empty()))
    }
}

fn invalid(what: &str) -> BackendError {
    BackendError::invalid_config(format!("postgres backend config: {what}"))
}

/// A schema or table name: letters, digits and `_`, starting with a letter
/// or `_`, lower case (PostgreSQL folds unquoted names to lower case, so a
/// name with capitals would be another table for `psql` users), and short
/// enough that PostgreSQL keeps it whole.
fn check_identifier(key: &str, name: &str, max: usize) -> Result<()> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if starts_well && rest_ok && name.len() <= max {
        return Ok(());
    }
    Err(invalid(&format!(
        "{key} {name:?}: expected a lower-case name of letters, digits and '_', \
         not starting with a digit, at most {max} characters"
    )))
}

fn read_password_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        invalid(&format!(
            "password_file {}: cannot be read: {err}",
            path.display()
        ))
    })?;
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(line.to_string()),
        _ => Err(invalid(&format!(
            "password_file {}: its first line is empty; expected the password",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(extra: serde_json::Value) -> Result<PostgresConfig> {
        let mut section = json!({"url": "postgresql://aimm:s3cret@db/aimm"});
        section
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        PostgresConfig::from_json(&section)
    }

    #[test]
    fn defaults_are_those_the_schema_states() {
        let conf = conf(json!({})).unwrap();
        assert_eq!(conf.tls, TlsMode::Prefer);
        assert_eq!(conf.connect_timeout(), Duration::from_secs(10));
        assert_eq!(conf.answer_timeout(), Duration::from_secs(60));
        assert_eq!(conf.schema, "public");
        assert_eq!(conf.table, "aimm_models");
        assert_eq!(conf.connections, 4);
        let schema = include_str!("../schemas/postgres.yaml");
        for default in [
            "(default prefer",
            "(default 10)",
            "(default 60)",
            "(default public)",
            "(default aimm_models)",
            "(default 4)",
        ] {
            assert!(
                schema.contains(default),
                "the schema does not say {default}"
            );
        }
    }

    #[test]
    fn the_password_never_shows() {
        let conf = conf(json!({})).unwrap();
        let debug = format!("{conf:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        // Everything else is there.
        assert!(debug.contains(r#"url: "<not shown>""#), "{debug}");
        assert!(debug.contains(r#"schema: "public""#), "{debug}");
        for bad in [json!({"url": 5}), json!({"nope": 1})] {
            let mut section = json!({"url": "postgresql://aimm:s3cret@db/aimm"});
            section
                .as_object_mut()
                .unwrap()
                .extend(bad.as_object().unwrap().clone());
            let err = PostgresConfig::from_json(&section).unwrap_err();
            assert!(!err.message.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn a_misspelt_key_is_named() {
        let err = conf(json!({"conections": 2})).unwrap_err();
        assert!(err.message.contains("unknown field `conections`"), "{err}");
    }

    #[test]
    fn bad_names_and_numbers_are_refused_with_what_was_expected() {
        for (extra, expected) in [
            (
                json!({"schema": "Models"}),
                "schema \"Models\": expected a lower-case name",
            ),
            (json!({"table": "1x"}), "table \"1x\""),
            (json!({"table": "a".repeat(57)}), "at most 56 characters"),
            (
                json!({"connections": 0}),
                "connections 0: expected at least 1",
            ),
            (json!({"connect_timeout": 0}), "connect_timeout 0: expected"),
            (json!({"answer_timeout": -1}), "answer_timeout -1: expected"),
            (json!({"answer_timeout": 0.0}), "answer_timeout 0: expected"),
            (
                json!({"tls": "verify-full"}),
                "tls verify-full needs ca_file",
            ),
            (
                json!({"ca_file": "/ca.pem"}),
                "ca_file is read only with tls verify-full",
            ),
            (json!({"tls": "sometimes"}), "unknown variant `sometimes`"),
        ] {
            let err = conf(extra.clone()).unwrap_err();
            assert!(err.message.contains(expected), "{extra}: {err}");
        }
        assert_eq!(
            conf(json!({"table": "a".repeat(56)})).unwrap().table.len(),
            56
        );
    }

    #[test]
    fn the_password_comes_from_its_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\nsecond line\n").unwrap();
        let conf = conf(json!({"password_file": file})).unwrap();
        assert_eq!(conf.password().unwrap().as_deref(), Some("from-file"));
        std::fs::write(&file, "\n").unwrap();
        let err = conf.password().unwrap_err();
        assert!(err.message.contains("its first line is empty"), "{err}");
        let missing = PostgresConfig {
            password_file: Some(dir.path().join("missing")),
            ..conf
        };
        let err = missing.password().unwrap_err();
        assert!(err.message.contains("cannot be read"), "{err}");
    }

    #[test]
    fn without_a_file_the_password_is_pgpasswords_and_an_empty_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let with_file = conf(json!({"password_file": file})).unwrap();
        let env = || Some("from-env".to_string());
        assert_eq!(
            with_file.password_or(env()).unwrap().as_deref(),
            Some("from-file")
        );
        let without = conf(json!({})).unwrap();
        assert_eq!(
            without.password_or(env()).unwrap().as_deref(),
            Some("from-env")
        );
        assert_eq!(without.password_or(Some(String::new())).unwrap(), None);
        assert_eq!(without.password_or(None).unwrap(), None);
    }
}
