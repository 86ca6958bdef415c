//! A real PostgreSQL 15 server on loopback, in a fresh temporary directory
//! (`scripts/postgres.sh`), with a role and database `aimm` whose password
//! is in a file.

use crate::process::{describe, output_within, COMMAND_DEADLINE};
use crate::root::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server, stopped on drop (its directory is then removed).
pub struct PostgresServer {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The port it listens on, on 127.0.0.1 (kept across restarts).
    pub port: u16,
    tls: bool,
}

impl PostgresServer {
    /// Makes a cluster in a fresh directory and starts it, failing the test
    /// if it cannot (PostgreSQL 15 is a test requirement: `.ci/run` installs
    /// Debian's `postgresql`).
    pub fn start() -> Self {
        Self::start_offering_tls(false)
    }

    /// [`start`](Self::start), the server also offering TLS with a
    /// certificate for 127.0.0.1 and localhost signed by a test CA
    /// ([`ca_file`](Self::ca_file)).
    pub fn start_with_tls() -> Self {
        Self::start_offering_tls(true)
    }

    fn start_offering_tls(tls: bool) -> Self {
        let tmp = tempfile::tempdir().expect("a directory for the server");
        let dir = tmp.path().join("pg");
        let mut server = PostgresServer {
            _tmp: tmp,
            dir,
            port: 0,
            tls,
        };
        let stdout = server.run("start");
        server.port = stdout
            .split_whitespace()
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("scripts/postgres.sh start printed {stdout:?}, not a port"));
        server
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`), keeping its data.
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Crashes the server (`pg_ctl stop -m immediate`: no checkpoint, as a
    /// power loss leaves the data files), keeping its data.
    pub fn crash(&self) {
        self.run("crash");
    }

    /// Starts it again on the same data and port.
    pub fn start_again(&self) {
        self.run("start");
    }

    /// The server's directory (data, log, password files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The test CA's certificate (PEM), which signs the server's when it
    /// offers TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.crt")
    }

    /// The file holding the `aimm` role's password.
    pub fn password_file(&self) -> PathBuf {
        self.dir.join("aimm.password")
    }

    /// The URL of the `aimm` database as the `aimm` role, without the
    /// password.
    pub fn url(&self) -> String {
        format!("postgresql://aimm@127.0.0.1:{}/aimm", self.port)
    }

    /// A PostgreSQL backend section for this server, its tables in
    /// `schema`, TLS off (the server offers none).
    pub fn backend_section(&self, schema: &str) -> serde_json::Value {
        serde_json::json!({
            "module": "postgres",
            "url": self.url(),
            "password_file": self.password_file(),
            "tls": "off",
            "schema": schema,
        })
    }

    /// Runs `sql` (one or more statements) in database `aimm` as the
    /// superuser (`psql`, over TCP), failing the test if it fails; returns
    /// the rows, one per line, columns split by `|`.
    pub fn psql(&self, sql: &str) -> String {
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let password = std::fs::read_to_string(self.dir.join("superuser.password"))
            .expect("the superuser's password file scripts/postgres.sh wrote");
        let output = output_within(
            Command::new(format!("{bin}/psql"))
                .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "aimm", "-c", sql])
                .env("PGPASSWORD", password.trim()),
            COMMAND_DEADLINE,
            "psql",
        );
        assert!(
            output.status.success(),
            "psql -c {sql:?} failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string()
    }

    /// The pid of the postmaster, the process that accepts connections.
    pub fn postmaster_pid(&self) -> u32 {
        let file = self.dir.join("data/postmaster.pid");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("reading {}: {err}", file.display()));
        let first = text.lines().next().unwrap_or_default();
        first
            .parse()
            .unwrap_or_else(|_| panic!("{} starts with {first:?}, not a pid", file.display()))
    }

    /// The pids of the server processes serving the PostgreSQL backend's
    /// connections (by the `application_name` it sets).
    pub fn backend_pids(&self) -> Vec<u32> {
        let pids = self.psql(
            "SELECT pid FROM pg_stat_activity \
             WHERE application_name = 'aimm-backend-postgres' ORDER BY pid",
        );
        pids.lines()
            .map(|pid| {
                pid.parse()
                    .unwrap_or_else(|_| panic!("psql listed {pid:?}, not a pid"))
            })
            .collect()
    }

    /// How many connections the PostgreSQL backend holds to this server
    /// (counted by the `application_name` it sets).
    pub fn backend_connections(&self) -> u32 {
        let count = self.psql(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'aimm-backend-postgres'",
        );
        count
            .parse()
            .unwrap_or_else(|_| panic!("psql counted {count:?}, not a number"))
    }

    /// Waits up to 10 s until the backend holds `count` connections (a
    /// server process ends a moment after its socket closes), failing the
    /// test if it does not.
    pub fn wait_for_backend_connections(&self, count: u32) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = self.backend_connections();
            if now == count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the backend holds {now} connections after 10 s, not {count}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn run(&self, action: &str) -> String {
        let output = output_within(
            Command::new("bash")
                .arg(workspace_root().join("scripts/postgres.sh"))
                .arg(action)
                .arg(&self.dir)
                .env("PG_TLS", if self.tls { "1" } else { "" }),
            COMMAND_DEADLINE,
            &format!("scripts/postgres.sh {action}"),
        );
        assert!(
            output.status.success(),
            "scripts/postgres.sh {action} failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Not `run`: a failure while the test unwinds would abort it.
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/postgres.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
