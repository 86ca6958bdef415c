//! Opening a store: what is created, what is refused (with what message),
//! and what an existing file keeps. The CLI tests check the same through
//! `aimm-backend`; these check the store itself, so that a change to the
//! opening code is caught by this crate's own `cargo test`.

use aimm_backend_api::{Backend, ErrorKind, Model};
use aimm_backend_sqlite::{JournalMode, SqliteBackend, SqliteConfig};
use std::os::unix::fs::PermissionsExt;

fn open_err(conf: SqliteConfig) -> aimm_backend_api::BackendError {
    match SqliteBackend::open(conf) {
        Ok(_) => panic!("the store opened"),
        Err(err) => err,
    }
}

/// A typo in `path` must not start an empty store where the models are
/// expected: the missing directory is named, and nothing is created.
#[test]
fn a_store_in_a_directory_that_does_not_exist_is_a_config_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("a");
    let err = open_err(SqliteConfig::new(missing.join("b/models.db")));
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(
        err.message.contains(&format!(
            "its directory {} does not exist",
            missing.join("b").display()
        )),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn a_store_in_an_existing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.db");
    let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let model = backend.create_model("t".into(), vec![1].into()).unwrap();
    assert!(path.is_file());
    assert_eq!(backend.get_model(model.instance_id).unwrap(), model);
}

#[test]
fn a_path_that_is_a_directory_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_err(SqliteConfig::new(dir.path()));
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(
        err.message
            .contains("is a directory; expected a SQLite file path"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.db");
    let text = "not a database\n".repeat(100);
    std::fs::write(&path, &text).unwrap();
    let err = open_err(SqliteConfig::new(&path));
    // The store's own check, not a pragma's failure, says so first.
    assert!(
        err.message.contains(&format!(
            "{} is not a SQLite database (SQLite says: file is not a database); \
             expected a SQLite file or a path where one can be created",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_models_table_of_another_shape_is_refused_naming_both_shapes() {
    for columns in [
        "name TEXT, data BLOB",
        "id INTEGER PRIMARY KEY, type TEXT, instance BLOB, extra TEXT",
        "id INTEGER, type TEXT, instance BLOB",
        "id INTEGER PRIMARY KEY, type BLOB, instance BLOB",
        "key INTEGER PRIMARY KEY, type TEXT, instance BLOB",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(&format!("CREATE TABLE models ({columns})"), [])
            .unwrap();
        drop(conn);
        let err = open_err(SqliteConfig::new(&path));
        assert!(
            err.message
                .contains(&format!("the `models` table has columns ({columns})")),
            "{columns}: {err}"
        );
        assert!(
            err.message
                .contains("expected (id INTEGER PRIMARY KEY, type TEXT, instance BLOB)"),
            "{err}"
        );
    }
}

#[test]
fn a_python_made_table_is_accepted_in_any_case_of_its_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("python.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "CREATE TABLE models (id integer PRIMARY KEY AUTOINCREMENT, type text NOT NULL, instance blob)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO models (type, instance) VALUES ('py', x'0102')",
        [],
    )
    .unwrap();
    drop(conn);
    let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    assert_eq!(
        backend.get_model(1).unwrap(),
        Model::new(1, "py", vec![1, 2])
    );
    assert_eq!(
        backend.journal_mode().unwrap(),
        "delete",
        "an existing file keeps its mode"
    );
}

#[test]
fn an_empty_file_is_made_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    assert_eq!(
        backend.journal_mode().unwrap(),
        "wal",
        "an empty file is new"
    );
    backend.create_model("t".into(), vec![1].into()).unwrap();
}

#[test]
fn a_read_only_file_reads_but_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    let mut conf = SqliteConfig::new(&path);
    conf.journal_mode = Some(JournalMode::Delete);
    let backend = SqliteBackend::open(conf.clone()).unwrap();
    let model = backend.create_model("t".into(), vec![5].into()).unwrap();
    drop(backend);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let backend = SqliteBackend::open(conf).unwrap();
    assert_eq!(backend.get_model(model.instance_id).unwrap(), model);
    let err = backend
        .create_model("t".into(), vec![6].into())
        .unwrap_err();
    assert!(err.message.contains("is read-only"), "{err}");
    assert_eq!(backend.list_models().unwrap().len(), 1);
}

#[test]
fn a_read_only_file_without_a_models_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro-empty.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("CREATE TABLE other (x)", []).unwrap();
    drop(conn);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let err = open_err(SqliteConfig::new(&path));
    assert!(
        err.message
            .contains("is read-only and has no `models` table"),
        "{err}"
    );
}

#[test]
fn a_model_type_with_a_nul_is_refused_as_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    let err = backend
        .create_model("a\0b".into(), vec![1].into())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(backend.list_models().unwrap().is_empty());
}
