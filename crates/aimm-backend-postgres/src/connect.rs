//! Opening a connection: the connection string, the password, TLS, and
//! errors that name the server without its password.

use crate::config::{PostgresConfig, TlsMode};
use crate::session::{DbError, Session};
use aimm_backend_api::{BackendError, ErrorKind, Result};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Config, NoTls};

/// Everything needed to open connections to one server.
pub(crate) struct Connector {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// How long connecting may take in all, TCP, TLS and login: the
    /// connect timeout for each host to try.
    connecting: Duration,
    /// How long a call waits for each answer.
    patience: Duration,
    /// `user@host:port/dbname`, for messages.
    server: String,
}

impl Connector {
    /// Reads the connection string, the password and the TLS settings.
    pub(crate) fn new(conf: &PostgresConfig) -> Result<Connector> {
        let mut config = Config::from_str(&conf.url).map_err(|_| {
            BackendError::invalid_config(
                "postgres backend config: url: expected a libpq connection string \
                 (host=... dbname=...) or a postgresql:// URL; it does not parse as either \
                 (not shown: it may hold a password)",
            )
        })?;
        if let Some(password) = conf.password()? {
            config.password(password);
        }
        config.connect_timeout(conf.connect_timeout());
        notice_a_vanished_server(&mut config);
        config.application_name("aimm-backend-postgres");
        let tls = match conf.tls {
            TlsMode::Off => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            TlsMode::Prefer => {
                config.ssl_mode(SslMode::Prefer);
                Some(crate::tls::unverified()?)
            }
            TlsMode::Require => {
                config.ssl_mode(SslMode::Require);
                Some(crate::tls::unverified()?)
            }
            TlsMode::VerifyFull => {
                config.ssl_mode(SslMode::Require);
                let ca_file = conf.ca_file.as_deref().expect("checked by the config");
                Some(crate::tls::verifying(ca_file)?)
            }
        };
        let server = describe(&config);
        let hosts = config.get_hosts().len().max(1) as u32;
        Ok(Connector {
            config,
            tls,
            connecting: conf.connect_timeout() * hosts,
            patience: conf.answer_timeout(),
            server,
        })
    }

    /// `user@host:port/dbname`: the server, never the password.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// A new connection with `synchronous_commit = on`, whatever the
    /// server's default.
    pub(crate) fn connect(&self) -> Result<Session> {
        let connected = match &self.tls {
            None => Session::connect(&self.config, NoTls, self.connecting, self.patience),
            Some(tls) => {
                Session::connect(&self.config, tls.clone(), self.connecting, self.patience)
            }
        };
        let mut session = connected.map_err(|err| self.error(&err))?;
        session
            .batch_execute("SET synchronous_commit = on")
            .map_err(|err| self.error(&err))?;
        Ok(session)
    }

    /// A database error as a backend error (see [`kind_of`]); the message
    /// names the server (never the password) and PostgreSQL's own words.
    pub(crate) fn error(&self, err: &DbError) -> BackendError {
        let mut words = words(err);
        if words.contains("invalid peer certificate") {
            words.push_str(
                " (tls verify-full: the server's certificate must be signed by a CA in \
                 ca_file and name the host url connects to)",
            );
        }
        BackendError::new(kind_of(err), format!("PostgreSQL {}: {words}", self.server))
    }
}

/// Unavailable when the server could not be reached, went away or is
/// shutting down or starting up (a later call may succeed); a config error
/// when the server refused the login or has no such database (the config
/// must change); else a storage error.
fn kind_of(err: &DbError) -> ErrorKind {
    match err {
        DbError::Postgres(err) => {
            kind_of_state(err.code().map(|code| code.code()), err.is_closed())
        }
        DbError::NoAnswer(_) => ErrorKind::Unavailable,
        DbError::Runtime(_) => ErrorKind::Storage,
    }
}

/// [`kind_of`] by the error's SQLSTATE (`None` for the client's own errors:
/// no connection, a lost one, TLS) and whether the connection is closed.
fn kind_of_state(sqlstate: Option<&str>, closed: bool) -> ErrorKind {
    let Some(code) = sqlstate else {
        return ErrorKind::Unavailable;
    };
    if closed || code.starts_with("57P") || code.starts_with("08") {
        ErrorKind::Unavailable
    } else if code.starts_with("28") || code == "3D000" {
        ErrorKind::InvalidConfig
    } else {
        ErrorKind::Storage
    }
}

/// A server that vanished without closing its connections (a machine
/// powered off, a network cut) would leave a call waiting for hours: keep
/// TCP's own timers short unless the connection string set them. Unsent
/// data gives up after 30 s, an idle connection is probed after 15 s, every
/// 5 s, 3 times.
fn notice_a_vanished_server(config: &mut Config) {
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(15));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
}

/// PostgreSQL's message with its detail and hint, or the client's.
fn words(err: &DbError) -> String {
    match err.as_db_error() {
        Some(db) => server_words(db.message(), db.detail(), db.hint()),
        None => with_causes(err),
    }
}

/// `message (detail); hint: hint`, each part when the server sent it.
fn server_words(message: &str, detail: Option<&str>, hint: Option<&str>) -> String {
    let mut text = message.to_string();
    if let Some(detail) = detail {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = hint {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// `err: cause: cause...`, leaving out a cause `err` already says (the
/// client's errors often repeat their source).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// `user@host:port/dbname` of a parsed config.
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("(no user)");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{dbname}")
}

/// Shared by the connections of one backend.
pub(crate) type SharedConnector = Arc<Connector>;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        Config::from_str(url).unwrap()
    }

    #[test]
    fn tcp_timers_are_short_unless_the_connection_string_sets_them() {
        let mut short = config("host=h");
        notice_a_vanished_server(&mut short);
        assert_eq!(short.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        assert_eq!(short.get_keepalives_idle(), Duration::from_secs(15));
        assert_eq!(
            short.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(short.get_keepalives_retries(), Some(3));
        let mut set = config(
            "host=h tcp_user_timeout=7 keepalives_idle=8 keepalives_interval=9 keepalives_retries=2",
        );
        notice_a_vanished_server(&mut set);
        assert_eq!(set.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(set.get_keepalives_idle(), Duration::from_secs(8));
        assert_eq!(set.get_keepalives_interval(), Some(Duration::from_secs(9)));
        assert_eq!(set.get_keepalives_retries(), Some(2));
    }

    #[test]
    fn errors_are_unavailable_config_or_storage_by_their_sqlstate() {
        let unavailable = [
            (None, false),
            (Some("57P01"), false),
            (Some("57P03"), false),
            (Some("08006"), false),
            (Some("23505"), true),
        ];
        for (code, closed) in unavailable {
            assert_eq!(
                kind_of_state(code, closed),
                ErrorKind::Unavailable,
                "{code:?}"
            );
        }
        for code in ["28P01", "28000", "3D000"] {
            assert_eq!(
                kind_of_state(Some(code), false),
                ErrorKind::InvalidConfig,
                "{code}"
            );
        }
        for code in ["3D001", "42P01", "23505", "57014", "53100"] {
            assert_eq!(
                kind_of_state(Some(code), false),
                ErrorKind::Storage,
                "{code}"
            );
        }
    }

    #[test]
    fn the_servers_words_carry_its_detail_and_hint() {
        assert_eq!(server_words("m", None, None), "m");
        assert_eq!(server_words("m", Some("d"), None), "m (d)");
        assert_eq!(server_words("m", None, Some("h")), "m; hint: h");
        assert_eq!(server_words("m", Some("d"), Some("h")), "m (d); hint: h");
    }

    /// An error saying `text`, caused by `source`.
    #[derive(Debug)]
    struct Caused(&'static str, Option<Box<Caused>>);

    impl std::fmt::Display for Caused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Caused {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|cause| cause as _)
        }
    }

    #[test]
    fn the_clients_words_name_each_cause_once() {
        let refused = Caused("Connection refused", None);
        let io = Caused(
            "error connecting: Connection refused",
            Some(Box::new(refused)),
        );
        let top = Caused("error connecting to server", Some(Box::new(io)));
        assert_eq!(
            with_causes(&top),
            "error connecting to server: error connecting: Connection refused"
        );
        let deep = Caused(
            "a",
            Some(Box::new(Caused("b", Some(Box::new(Caused("c", None)))))),
        );
        assert_eq!(with_causes(&deep), "a: b: c");
    }

    #[test]
    fn a_server_is_named_by_user_host_port_and_database_never_its_password() {
        let url = config("postgresql://aimm:s3cret@db.example:6543/models");
        assert_eq!(describe(&url), "aimm@db.example:6543/models");
        let keywords = config("host=10.0.0.5 user=svc password=s3cret dbname=aimm");
        assert_eq!(describe(&keywords), "svc@10.0.0.5:5432/aimm");
        let socket = config("host=/run/postgresql user=svc");
        assert_eq!(describe(&socket), "svc@/run/postgresql:5432/svc");
        assert_eq!(
            describe(&config("port=7")),
            "(no user)@localhost:7/(no user)"
        );
    }
}
