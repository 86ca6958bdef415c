//! Opening the file and its connections: the path, the pragmas every
//! connection runs with, the journal mode, and the checks that the file is a
//! SQLite database with the `models` table the Python backend makes.

use crate::config::{JournalMode, SqliteConfig};
use aimm_backend_api::{BackendError, Result};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::Path;

/// The table the Python backend creates; we create the same one.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS models \
    (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB)";

/// Makes sure `path` can be a database file: not a directory, in a
/// directory that exists. Returns whether a non-empty file is already there.
///
/// A missing directory is an error, not created: a typo in `path` would
/// otherwise start a server on a new, empty store, which looks like data
/// loss (the Python backend refuses it too). A host that picks a default
/// path of its own creates that directory itself.
pub(crate) fn prepare_path(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Err(BackendError::invalid_config(format!(
            "backend.path {} is a directory; expected a SQLite file path",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        check_directory(path, parent)?;
    }
    Ok(std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false))
}

/// `parent`, the directory of `path`, exists and is a directory.
fn check_directory(path: &Path, parent: &Path) -> Result<()> {
    let problem = match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "is not a directory".to_string(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => "does not exist".to_string(),
        Err(err) => format!("cannot be read: {err}"),
    };
    Err(BackendError::invalid_config(format!(
        "backend.path {}: its directory {} {problem}; expected an existing directory \
         (the backend creates the file, not its directories)",
        path.display(),
        parent.display()
    )))
}

/// Whether the file's permissions forbid writing. Checked by hand because a
/// process running as root could otherwise write a file marked read-only.
pub(crate) fn is_read_only(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.permissions().readonly())
        .unwrap_or(false)
}

/// A connection to the store's file, configured for use.
pub(crate) fn open_connection(conf: &SqliteConfig, read_only: bool) -> Result<Connection> {
    let conn = connect(conf, read_only)?;
    configure(&conn, conf)?;
    Ok(conn)
}

/// Opens the file itself.
pub(crate) fn connect(conf: &SqliteConfig, read_only: bool) -> Result<Connection> {
    let access = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    // NO_MUTEX: each connection is used by one thread at a time.
    let conn = Connection::open_with_flags(
        file_name(&conf.path),
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|err| sql_error(&conf.path, "opening", conf, err))?;
    conn.busy_timeout(conf.busy_timeout())
        .map_err(|err| sql_error(&conf.path, "setting the busy timeout", conf, err))?;
    Ok(conn)
}

/// `path` as SQLite must be given it to open the file of that name. The
/// bundled SQLite is built to read a name starting with `file:` as a URI;
/// the Python backend opens `file:{path}?nolock=1`, so for it a configured
/// `file:x.db` is the file named `file:x.db` in the working directory, and
/// `./` keeps it so here.
fn file_name(path: &Path) -> std::borrow::Cow<'_, Path> {
    if path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
        Path::new(".").join(path).into()
    } else {
        path.into()
    }
}

/// The settings every connection of the store runs with.
pub(crate) fn configure(conn: &Connection, conf: &SqliteConfig) -> Result<()> {
    // After a checkpoint, cut the WAL (or a persisted journal) back to 64 MiB:
    // one large model must not leave a journal of its size on disk for good.
    conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
        .map_err(|err| sql_error(&conf.path, "setting journal_size_limit", conf, err))?;
    // EXTRA: every commit is synced (FULL, Python's default), and in delete
    // mode so is the directory once the journal is deleted: without that, a
    // power cut can bring the journal back and undo an acknowledged commit.
    conn.pragma_update(None, "synchronous", "EXTRA")
        .map_err(|err| sql_error(&conf.path, "setting synchronous=EXTRA", conf, err))
}

/// Sets the page size of a file not created yet; SQLite fixes it with the
/// first write, so this must come before the journal mode is set.
pub(crate) fn set_page_size(conn: &Connection, conf: &SqliteConfig) -> Result<()> {
    conn.pragma_update(None, "page_size", conf.page_size)
        .map_err(|err| sql_error(&conf.path, "setting the page size", conf, err))
}

pub(crate) fn check_is_database(conn: &Connection, path: &Path) -> Result<()> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|err| match err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => BackendError::storage(format!(
                "{} is not a SQLite database (SQLite says: {err}); expected a SQLite file \
                 or a path where one can be created",
                path.display()
            )),
            _ => BackendError::storage(format!("reading SQLite file {}: {err}", path.display())),
        })
}

pub(crate) fn set_journal_mode(
    conn: &Connection,
    conf: &SqliteConfig,
    existed: bool,
    read_only: bool,
) -> Result<()> {
    let wanted = match (conf.journal_mode, existed) {
        (Some(mode), _) => mode,
        (None, false) => JournalMode::Wal,
        // An existing file keeps its mode: a Python-made file must stay
        // openable by Python, which cannot open WAL files.
        (None, true) => return Ok(()),
    };
    if read_only {
        return Ok(());
    }
    let actual: String = conn
        .query_row(
            &format!("PRAGMA journal_mode = {}", wanted.as_sql()),
            [],
            |row| row.get(0),
        )
        .map_err(|err| sql_error(&conf.path, "setting the journal mode", conf, err))?;
    if !actual.eq_ignore_ascii_case(wanted.as_sql()) {
        return Err(BackendError::storage(format!(
            "SQLite file {}: asked for journal_mode {}, SQLite kept {actual} \
             (another connection may have the file open)",
            conf.path.display(),
            wanted.as_sql()
        )));
    }
    Ok(())
}

pub(crate) fn ensure_models_table(conn: &Connection, path: &Path, read_only: bool) -> Result<()> {
    let columns = table_columns(conn, path)?;
    if columns.is_empty() {
        if read_only {
            return Err(BackendError::storage(format!(
                "SQLite file {} is read-only and has no `models` table",
                path.display()
            )));
        }
        conn.execute(CREATE_TABLE, []).map_err(|err| {
            BackendError::storage(format!(
                "creating the models table in {}: {err}",
                path.display()
            ))
        })?;
        return Ok(());
    }
    let expected = [
        ("id", "INTEGER", true),
        ("type", "TEXT", false),
        ("instance", "BLOB", false),
    ];
    let matches = columns.len() == expected.len()
        && columns.iter().zip(expected).all(|(found, (name, ty, pk))| {
            found.name == name && found.decl_type.eq_ignore_ascii_case(ty) && found.pk == pk
        });
    if matches {
        return Ok(());
    }
    let found: Vec<String> = columns.iter().map(Column::describe).collect();
    Err(BackendError::storage(format!(
        "SQLite file {}: the `models` table has columns ({}); expected \
         (id INTEGER PRIMARY KEY, type TEXT, instance BLOB) as the Python AIMM backend makes it",
        path.display(),
        found.join(", ")
    )))
}

struct Column {
    name: String,
    decl_type: String,
    pk: bool,
}

impl Column {
    fn describe(&self) -> String {
        let pk = if self.pk { " PRIMARY KEY" } else { "" };
        format!("{} {}{pk}", self.name, self.decl_type)
    }
}

fn table_columns(conn: &Connection, path: &Path) -> Result<Vec<Column>> {
    let read = || -> rusqlite::Result<Vec<Column>> {
        let mut stmt = conn.prepare("PRAGMA table_info(models)")?;
        let rows = stmt.query_map([], |row| {
            Ok(Column {
                name: row.get(1)?,
                decl_type: row.get(2)?,
                pk: row.get::<_, i64>(5)? > 0,
            })
        })?;
        rows.collect()
    };
    read().map_err(|err| {
        BackendError::storage(format!(
            "reading the models table of {}: {err}",
            path.display()
        ))
    })
}

pub(crate) fn sql_error(
    path: &Path,
    doing: &str,
    conf: &SqliteConfig,
    err: rusqlite::Error,
) -> BackendError {
    let hint = match err.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => " (the file or its directory is read-only)".to_string(),
        Some(ErrorCode::NotADatabase) => " (the file is not a SQLite database)".to_string(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => format!(
            " (another connection held the lock longer than busy_timeout = {} s)",
            conf.busy_timeout
        ),
        Some(ErrorCode::CannotOpen) => " (the file cannot be opened here)".to_string(),
        Some(ErrorCode::DiskFull) => " (the disk is full)".to_string(),
        _ => String::new(),
    };
    BackendError::storage(format!(
        "{doing} SQLite file {}: {err}{hint}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimm_backend_api::ErrorKind;
    use rusqlite::ffi;

    fn failure(code: std::os::raw::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn a_path_whose_directory_is_missing_or_no_directory_is_refused_saying_which() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let cases = [
            (file.join("m.db"), "is not a directory"),
            (dir.path().join("missing/m.db"), "does not exist"),
            (file.join("sub/m.db"), "cannot be read: "),
        ];
        for (path, problem) in cases {
            let err = prepare_path(&path).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
            let parent = path.parent().unwrap().display().to_string();
            assert!(
                err.to_string()
                    .contains(&format!("its directory {parent} {problem}")),
                "{err}"
            );
        }
        assert!(!prepare_path(&dir.path().join("new.db")).unwrap());
        assert!(prepare_path(&file).unwrap(), "a non-empty file is there");
        let err = prepare_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn every_connection_cuts_its_journal_back_to_64_mib_and_syncs_extra() {
        let dir = tempfile::tempdir().unwrap();
        let conf = SqliteConfig::new(dir.path().join("m.db"));
        for read_only in [false, true] {
            let conn = open_connection(&conf, read_only).unwrap();
            let limit: i64 = conn
                .query_row("PRAGMA journal_size_limit", [], |row| row.get(0))
                .unwrap();
            assert_eq!(limit, 64 << 20, "read_only: {read_only}");
            let synchronous: i64 = conn
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap();
            assert_eq!(synchronous, 3, "EXTRA");
        }
    }

    #[test]
    fn sqlite_errors_say_what_to_check() {
        let mut conf = SqliteConfig::new("/data/m.db");
        conf.busy_timeout = 7.0;
        for (code, hint) in [
            (
                ffi::SQLITE_READONLY,
                "(the file or its directory is read-only)",
            ),
            (ffi::SQLITE_NOTADB, "(the file is not a SQLite database)"),
            (
                ffi::SQLITE_BUSY,
                "(another connection held the lock longer than busy_timeout = 7 s)",
            ),
            (
                ffi::SQLITE_LOCKED,
                "(another connection held the lock longer than busy_timeout = 7 s)",
            ),
            (ffi::SQLITE_CANTOPEN, "(the file cannot be opened here)"),
            (ffi::SQLITE_FULL, "(the disk is full)"),
        ] {
            let err = sql_error(conf.path.as_path(), "committing to", &conf, failure(code));
            assert_eq!(err.kind, ErrorKind::Storage);
            assert!(
                err.message
                    .starts_with("committing to SQLite file /data/m.db: "),
                "{err}"
            );
            assert!(err.message.ends_with(hint), "{code}: {err}");
        }
        let plain = sql_error(
            conf.path.as_path(),
            "reading",
            &conf,
            failure(ffi::SQLITE_IOERR),
        );
        assert!(!plain.message.contains(" ("), "no hint for others: {plain}");
    }
}
