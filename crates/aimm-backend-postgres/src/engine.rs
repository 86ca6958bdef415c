//! What the server must be before the store opens on it: an engine with
//! the features the store relies on, whose commits are durable.
//!
//! PostgreSQL 13 or later has them all. PostgreSQL-compatible engines that
//! lack one are refused with what is missing, rather than failing later in
//! a call: CockroachDB (no `LISTEN`/`NOTIFY`, no `xid8`), and any engine
//! whose `LISTEN` fails (YugabyteDB unless its early-access notifications
//! are switched on).

use crate::connect::Connector;
use crate::session::{DbError, Session};
use crate::sql::Tables;
use aimm_backend_api::{BackendError, Result};

/// The first release with `xid8` and `pg_current_xact_id()`, by which the
/// watcher orders commits.
const MIN_VERSION_NUM: i32 = 130_000;

/// Refuses an engine the store cannot run on, or whose commits are not
/// durable.
pub(crate) fn check(client: &mut Session, connector: &Connector, tables: &Tables) -> Result<()> {
    let error = |err: DbError| connector.error(&err);
    let version: String = client
        .query_one("SELECT version()", &[])
        .map_err(error)?
        .get(0);
    let version_num: String = client
        .query_one("SHOW server_version_num", &[])
        .map_err(error)?
        .get(0);
    let refuse = |why: String| {
        BackendError::invalid_config(format!(
            "PostgreSQL {}: this backend refuses to open: {why}",
            connector.server()
        ))
    };
    if let Some(why) = unsupported(version_num.parse().unwrap_or(0), &version) {
        return Err(refuse(why));
    }
    // The watcher's wake-up; an engine may parse LISTEN and refuse it.
    if let Err(err) = client.batch_execute(&format!("{}; UNLISTEN *", tables.listen())) {
        return Err(refuse(format!(
            "LISTEN failed ({}), and other hosts' changes are followed by LISTEN/NOTIFY \
             ({version})",
            connector.error(&err).message
        )));
    }
    for setting in ["fsync", "full_page_writes", "synchronous_commit"] {
        let value: String = client
            .query_one(&format!("SHOW {setting}"), &[])
            .map_err(error)?
            .get(0);
        if let Some(why) = not_durable(setting, &value) {
            return Err(refuse(why));
        }
    }
    Ok(())
}

/// Why an engine that reports `version_num` (`server_version_num`) and
/// `version` (`version()`) cannot hold the store; `None` when it can.
fn unsupported(version_num: i32, version: &str) -> Option<String> {
    if version.contains("CockroachDB") {
        return Some(format!(
            "{version} has no LISTEN/NOTIFY and no xid8 transaction ids, by which this \
             backend follows other hosts' changes"
        ));
    }
    (version_num < MIN_VERSION_NUM).then(|| {
        format!(
            "{version} is older than PostgreSQL 13, which brought the xid8 transaction ids \
             (pg_current_xact_id) by which this backend follows other hosts' changes"
        )
    })
}

/// Why `setting = value` makes a committed write losable: `fsync = off`
/// (which no session setting undoes), `full_page_writes = off` (a crash can
/// tear pages the WAL cannot repair), `synchronous_commit = off` in this
/// session (each connection sets it on, so off means something between
/// us and the server, a pooler, dropped that). `None` when it is safe.
fn not_durable(setting: &str, value: &str) -> Option<String> {
    (value == "off").then(|| {
        format!(
            "{setting} is off, so a committed write may be lost in a crash, and this backend \
             acknowledges only durable writes (set {setting} = on in the server's configuration)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_13_and_later_are_accepted_older_ones_and_cockroachdb_refused() {
        assert_eq!(
            unsupported(150_008, "PostgreSQL 15.8 (Debian 15.8-0+deb12u1)"),
            None
        );
        assert_eq!(unsupported(130_000, "PostgreSQL 13.0"), None);
        let old = unsupported(120_019, "PostgreSQL 12.19").unwrap();
        assert!(
            old.contains("PostgreSQL 12.19 is older than PostgreSQL 13"),
            "{old}"
        );
        let cockroach = unsupported(130_000, "CockroachDB CCL v23.1.11").unwrap();
        assert!(
            cockroach.contains("CockroachDB CCL v23.1.11 has no LISTEN/NOTIFY"),
            "{cockroach}"
        );
    }

    #[test]
    fn only_off_makes_a_setting_unsafe() {
        assert_eq!(not_durable("fsync", "on"), None);
        assert_eq!(not_durable("synchronous_commit", "remote_apply"), None);
        let off = not_durable("full_page_writes", "off").unwrap();
        assert!(off.starts_with("full_page_writes is off"), "{off}");
        assert!(off.contains("set full_page_writes = on"), "{off}");
    }
}
