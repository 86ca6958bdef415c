//! The `aimm-backend` command line as scripts see it: output formats, exit
//! codes, and a clear message for every bad input.

use aimm_backend_tests::*;
use std::path::{Path, PathBuf};

/// Runs the CLI with `--conf conf` and `args`, expecting exit `code`;
/// returns (stdout, stderr).
fn run_conf(home: &Path, conf: &Path, args: &[&str], code: i32) -> (String, String) {
    let output = run_expecting(cli(home).arg("--conf").arg(conf).args(args), code);
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn put_list_get_update_round_trip() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("store")).unwrap();
    let db = work.path().join("store/models.db");
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
    let a = work.path().join("a.bin");
    let b = work.path().join("b.bin");
    std::fs::write(&a, test_bytes(1, 70_000)).unwrap();
    std::fs::write(&b, test_bytes(2, 0)).unwrap();
    let (stdout, _) = run_conf(
        work.path(),
        &conf,
        &[
            "put",
            "my.Model",
            "--jobs",
            "1",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(stdout, "1\n2\n", "one at a time: ids in file order");

    let (stdout, _) = run_conf(work.path(), &conf, &["list", "--json"], 0);
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([
            {"instance_id": 1, "model_type": "my.Model", "size": 70000},
            {"instance_id": 2, "model_type": "my.Model", "size": 0},
        ])
    );
    let (stdout, _) = run_conf(work.path(), &conf, &["list"], 0);
    assert_eq!(stdout, "1\tmy.Model\t70000\n2\tmy.Model\t0\n");

    let out = work.path().join("out.bin");
    run_conf(
        work.path(),
        &conf,
        &["get", "1", "-o", out.to_str().unwrap()],
        0,
    );
    assert_eq!(std::fs::read(&out).unwrap(), test_bytes(1, 70_000));
    let stdout = run_expecting(
        cli(work.path()).arg("--conf").arg(&conf).args(["get", "1"]),
        0,
    )
    .stdout;
    assert_eq!(stdout, test_bytes(1, 70_000));

    run_conf(work.path(), &conf, &["update", "1", b.to_str().unwrap()], 0);
    run_conf(
        work.path(),
        &conf,
        &["update", "2", a.to_str().unwrap(), "--type", "other"],
        0,
    );
    let (stdout, _) = run_conf(work.path(), &conf, &["list"], 0);
    assert_eq!(stdout, "1\tmy.Model\t0\n2\tother\t70000\n");
}

#[test]
fn a_pipelined_put_prints_ids_in_file_order_and_stops_at_the_first_failure() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("m.db");
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
    let files: Vec<PathBuf> = (0..40)
        .map(|i| {
            let path = work.path().join(format!("{i}.bin"));
            std::fs::write(&path, test_bytes(i, 1000 + i as usize * 100)).unwrap();
            path
        })
        .collect();
    let mut args = vec!["put", "piped", "--jobs", "8"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (stdout, _) = run_conf(work.path(), &conf, &args, 0);
    let ids: Vec<i64> = stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(ids.len(), 40, "{stdout}");
    let rows = read_models_table(&db);
    for (i, id) in ids.iter().enumerate() {
        let row = rows.iter().find(|r| r.0 == *id).expect("printed id stored");
        assert!(
            row.2 == test_bytes(i as u64, 1000 + i * 100),
            "line {i} is not the id of file {i}"
        );
    }

    // A file that cannot be read (a directory) stops further sends: the
    // files before it are stored and printed, none after it is sent.
    let dir = work.path().join("not-a-file");
    std::fs::create_dir(&dir).unwrap();
    let mut args = vec!["put", "stops", "--jobs", "4"];
    args.extend(files[..5].iter().map(|f| f.to_str().unwrap()));
    args.push(dir.to_str().unwrap());
    args.extend(files[5..].iter().map(|f| f.to_str().unwrap()));
    let (stdout, stderr) = run_conf(work.path(), &conf, &args, 1);
    let printed: Vec<i64> = stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(printed.len(), 5, "{stdout}\n{stderr}");
    assert!(stderr.contains("not-a-file"), "{stderr}");
    let stored: Vec<i64> = read_models_table(&db)
        .iter()
        .filter(|r| r.1 == "stops")
        .map(|r| r.0)
        .collect();
    let mut printed_sorted = printed.clone();
    printed_sorted.sort();
    assert_eq!(stored, printed_sorted, "only the files before the failure");
}

#[test]
fn put_reads_standard_input() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", &work.path().join("m.db"), "");
    let mut child = cli(work.path())
        .arg("--conf")
        .arg(&conf)
        .args(["put", "stdin.Model", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let output = wait_within(child, COMMAND_DEADLINE, "aimm-backend");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        read_models_table(&work.path().join("m.db"))[0].2,
        b"from stdin"
    );
}

#[test]
fn embedded_default_is_a_per_user_sqlite_store() {
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(cli(work.path()).arg("check"), 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = work.path().join("data/aimm/models.db");
    assert!(stdout.contains("config:  <embedded default>"), "{stdout}");
    assert!(stdout.contains(&expected.display().to_string()), "{stdout}");
    assert!(expected.is_file());
}

#[test]
fn a_whole_python_server_config_is_accepted() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "server.yaml",
        &format!(
            "---\nname: aimm\nlog: {{version: 1}}\nengine: {{sigterm_timeout: 5, max_children: 5, check_children_period: 3}}\n\
             backend:\n  module: aimm.server.backend.sqlite\n  path: {}\ncontrol:\n  - module: aimm.server.control.repl\n    server: {{host: 127.0.0.1, port: 9999}}\n\
             plugins: {{names: [plugins.sklearn]}}\n...\n",
            work.path().join("py.db").display()
        ),
    );
    run_conf(work.path(), &conf, &["check"], 0);
}

#[test]
fn copy_keeps_ids_and_is_idempotent() {
    let work = tempfile::tempdir().unwrap();
    let source = sqlite_conf(work.path(), "src.yaml", &work.path().join("src.db"), "");
    let target = sqlite_conf(work.path(), "dst.yaml", &work.path().join("dst.db"), "");
    let file = work.path().join("m.bin");
    for seed in 0..3 {
        std::fs::write(&file, test_bytes(seed, 1000 + seed as usize)).unwrap();
        run_conf(
            work.path(),
            &source,
            &["put", &format!("type{seed}"), file.to_str().unwrap()],
            0,
        );
    }
    // A gap in the ids must survive the copy.
    run_conf(
        work.path(),
        &source,
        &["update", "2", file.to_str().unwrap()],
        0,
    );
    let (_, stderr) = run_conf(
        work.path(),
        &source,
        &["copy", "--to", target.to_str().unwrap()],
        0,
    );
    assert!(
        stderr.contains("copied 3 models, 0 already present"),
        "{stderr}"
    );
    let (_, stderr) = run_conf(
        work.path(),
        &source,
        &["copy", "--to", target.to_str().unwrap()],
        0,
    );
    assert!(
        stderr.contains("copied 0 models, 3 already present"),
        "{stderr}"
    );
    assert_eq!(
        read_models_table(&work.path().join("src.db")),
        read_models_table(&work.path().join("dst.db"))
    );

    // A different model under a taken id is reported, not overwritten.
    std::fs::write(&file, b"different").unwrap();
    run_conf(
        work.path(),
        &target,
        &["update", "1", file.to_str().unwrap()],
        0,
    );
    let (_, stderr) = run_conf(
        work.path(),
        &source,
        &["copy", "--to", target.to_str().unwrap()],
        1,
    );
    assert!(
        stderr.contains("instance id 1 exists in the destination with different content"),
        "{stderr}"
    );
    assert_eq!(
        read_models_table(&work.path().join("dst.db"))[0].2,
        b"different"
    );
}

#[test]
fn watch_shows_changes_made_by_other_processes_as_json_lines() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", &work.path().join("w.db"), "");
    let file = write_file(work.path(), "m.bin", "twelve bytes");
    run_conf(
        work.path(),
        &conf,
        &["put", "before", file.to_str().unwrap()],
        0,
    );
    let mut watcher = Watcher::start(work.path(), &conf);
    // Give the watcher time to take its first look, then change the store
    // from other processes.
    std::thread::sleep(std::time::Duration::from_millis(700));
    run_conf(
        work.path(),
        &conf,
        &["put", "from.another.process", file.to_str().unwrap()],
        0,
    );
    assert_eq!(
        watcher.next_change(),
        serde_json::json!({"instance_id": 2, "model_type": "from.another.process", "size": 12})
    );
    run_conf(
        work.path(),
        &conf,
        &["update", "1", "-", "--type", "renamed"],
        0,
    );
    assert_eq!(
        watcher.next_change(),
        serde_json::json!({"instance_id": 1, "model_type": "renamed", "size": 0})
    );
    watcher.stop();
}

#[test]
fn missing_config_file_is_a_config_error() {
    let work = tempfile::tempdir().unwrap();
    let (_, stderr) = run_conf(work.path(), &work.path().join("nope.yaml"), &["list"], 2);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
    assert!(stderr.contains("nope.yaml"), "{stderr}");
}

#[test]
fn unreadable_config_is_a_config_error() {
    let work = tempfile::tempdir().unwrap();
    // A directory cannot be read as a file, even by root.
    let (_, stderr) = run_conf(work.path(), work.path(), &["list"], 2);
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

#[test]
fn yaml_syntax_error_names_file_and_position() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(work.path(), "bad.yaml", "backend:\n  module: [unclosed\n");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(stderr.contains("bad.yaml is not valid YAML"), "{stderr}");
    assert!(stderr.contains("line"), "{stderr}");
}

#[test]
fn config_without_backend_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(work.path(), "c.yaml", "name: aimm\n");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains("(document): missing required key \"backend\""),
        "{stderr}"
    );
}

#[test]
fn backend_without_module_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(work.path(), "c.yaml", "backend:\n  path: x.db\n");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains("backend: missing required key \"module\""),
        "{stderr}"
    );
}

#[test]
fn schema_violations_name_the_json_path_and_rule() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "c.yaml",
        "backend:\n  module: aimm.server.backend.sqlite\n  path: 5\n",
    );
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains("backend.path: expected string, got 5"),
        "{stderr}"
    );

    let conf = write_file(work.path(), "d.yaml", "backend:\n  module: no_such_store\n");
    let conf2 = write_file(
        work.path(),
        "e.yaml",
        "backend:\n  module: aimm.server.backend.sqlite\n  path: x\n  journal_mode: fast\n",
    );
    let (_, stderr) = run_conf(work.path(), &conf2, &["list"], 2);
    assert!(
        stderr.contains("backend.journal_mode: expected one of"),
        "{stderr}"
    );
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains("backend module `no_such_store` not found"),
        "{stderr}"
    );
}

#[test]
fn keys_no_one_reads_are_kept_as_python_keeps_them_but_named() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("m.db");
    let conf = write_file(
        work.path(),
        "c.yaml",
        &format!(
            "backend:\n  module: aimm.server.backend.sqlite\n  path: {}\n  \
             paht: elsewhere\n  busy_timeot: 3\n",
            db.display()
        ),
    );
    let (_, stderr) = run_conf(work.path(), &conf, &["check"], 0);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(
            "backend.busy_timeot, backend.paht are not read by the `sqlite` plugin, \
             whose schema lists only busy_timeout, journal_mode, module, page_size, path; ignored"
        ),
        "{stderr}"
    );
    let known = write_file(
        work.path(),
        "d.yaml",
        &format!(
            "backend:\n  module: aimm.server.backend.sqlite\n  path: {}\n  busy_timeout: 3\n",
            db.display()
        ),
    );
    let (_, stderr) = run_conf(work.path(), &known, &["check"], 0);
    assert!(!stderr.contains("not read by"), "{stderr}");
}

#[test]
fn sqlite_path_that_is_a_directory_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", work.path(), "");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains("is a directory; expected a SQLite file path"),
        "{stderr}"
    );
}

/// A typo in `path` must not start an empty store where the models are
/// expected (the Python backend refuses it too): the directory is named,
/// and nothing is created.
#[test]
fn an_explicit_path_in_a_missing_directory_is_refused_and_nothing_is_created() {
    let work = tempfile::tempdir().unwrap();
    let typo = work.path().join("aimn");
    let conf = sqlite_conf(work.path(), "c.yaml", &typo.join("models.db"), "");
    for args in [&["list"][..], &["check"], &["put", "t", "-"]] {
        let (_, stderr) = run_conf(work.path(), &conf, args, 2);
        assert!(
            stderr.contains(&format!("its directory {} does not exist", typo.display())),
            "{args:?}: {stderr}"
        );
    }
    assert!(!typo.exists());
    // A file where the directory should be is named as such.
    std::fs::write(&typo, b"").unwrap();
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 2);
    assert!(
        stderr.contains(&format!(
            "its directory {} is not a directory",
            typo.display()
        )),
        "{stderr}"
    );
}

/// The first run of a segment sequence said twice in a row in `line` (the
/// message of an error that also hands out its cause as a source, printed
/// with its chain), or a long segment said twice anywhere.
fn repeated_cause(line: &str) -> Option<String> {
    let segments: Vec<&str> = line.split(": ").collect();
    for len in 1..=segments.len() / 2 {
        for start in 0..=segments.len() - 2 * len {
            if segments[start..start + len] == segments[start + len..start + 2 * len] {
                return Some(segments[start..start + len].join(": "));
            }
        }
    }
    let mut long: Vec<&str> = segments.iter().copied().filter(|s| s.len() >= 16).collect();
    long.sort_unstable();
    long.windows(2)
        .find(|pair| pair[0] == pair[1])
        .map(|pair| pair[0].to_string())
}

#[test]
fn repeated_causes_are_found() {
    assert_eq!(
        repeated_cause("cannot read x: No such file (os error 2): No such file (os error 2)"),
        Some("No such file (os error 2)".into())
    );
    assert_eq!(repeated_cause("a: b: c: b: c"), Some("b: c".into()));
    assert_eq!(
        repeated_cause("x: the same long segment: y: the same long segment"),
        Some("the same long segment".into())
    );
    assert_eq!(repeated_cause("a: b: a: c"), None);
}

/// Every error the CLI prints says each cause once: over the error paths
/// of configs, files, stores, plugins and an unreachable event server.
#[test]
fn every_error_says_its_cause_once() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let db = dir.join("m.db");
    let conf = sqlite_conf(dir, "c.yaml", &db, "");
    let file = write_file(dir, "m.bin", "bytes");
    run_conf(dir, &conf, &["put", "t", file.to_str().unwrap()], 0);
    let text_db = write_file(
        dir,
        "text.db",
        &"not a database
"
        .repeat(100),
    );
    let not_sqlite = sqlite_conf(dir, "text.yaml", &text_db, "");
    let in_missing_dir = sqlite_conf(dir, "typo.yaml", &dir.join("nowhere/m.db"), "");
    let bad_yaml = write_file(dir, "bad.yaml", "backend: [unclosed\n");
    let unknown_module = write_file(dir, "unknown.yaml", "backend:\n  module: no_such_backend\n");
    let not_a_library = write_file(dir, "libfake.so", "text, not a library");
    let fake_module = write_file(
        dir,
        "fake.yaml",
        &format!("backend:\n  module: {}\n", not_a_library.display()),
    );
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = write_file(
        dir,
        "event.yaml",
        &format!(
            "hat:\n  eventer_server: {{host: 127.0.0.1, port: {free_port}}}\n\
             backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, x]\n"
        ),
    );
    let missing = dir.join("missing.yaml");
    let out_dir_missing = dir.join("no/such/dir/out.bin");
    let cases: Vec<(Vec<&std::ffi::OsStr>, i32)> = vec![
        (vec![missing.as_os_str(), "check".as_ref()], 2),
        (vec![bad_yaml.as_os_str(), "list".as_ref()], 2),
        (vec![unknown_module.as_os_str(), "list".as_ref()], 2),
        (vec![fake_module.as_os_str(), "check".as_ref()], 2),
        (vec![in_missing_dir.as_os_str(), "list".as_ref()], 2),
        (vec![not_sqlite.as_os_str(), "list".as_ref()], 1),
        (vec![conf.as_os_str(), "get".as_ref(), "42".as_ref()], 1),
        (
            vec![
                conf.as_os_str(),
                "get".as_ref(),
                "1".as_ref(),
                "-o".as_ref(),
                out_dir_missing.as_os_str(),
            ],
            1,
        ),
        (
            vec![
                conf.as_os_str(),
                "put".as_ref(),
                "t".as_ref(),
                missing.as_os_str(),
            ],
            1,
        ),
        (
            vec![
                conf.as_os_str(),
                "copy".as_ref(),
                "--to".as_ref(),
                missing.as_os_str(),
            ],
            2,
        ),
        (vec![unreachable.as_os_str(), "list".as_ref()], 1),
    ];
    for (args, code) in cases {
        let output = run_expecting(cli(dir).arg("--conf").args(&args), code);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let error = stderr
            .lines()
            .find(|l| l.starts_with("aimm-backend: error: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
        assert_eq!(repeated_cause(error), None, "{args:?}: {error}");
    }
}

/// A server config that loads its plugin through the Python package's
/// `aimm_backend.plugin` reads as that plugin's: `plugin` is the module,
/// `plugin_dirs` are searched first, and neither reaches the plugin.
#[test]
fn a_section_for_aimm_backend_plugin_loads_the_plugin_it_names() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let library = dir.join("libaimm_backend_sqlite.so");
    std::fs::copy(release_dir().join("libaimm_backend_sqlite.so"), &library).unwrap();
    let conf = write_file(
        work.path(),
        "server.yaml",
        &format!(
            "backend:\n  module: aimm_backend.plugin\n  plugin: aimm_backend_sqlite\n  \
             plugin_dirs: [{}]\n  path: {}\n",
            dir.display(),
            work.path().join("m.db").display()
        ),
    );
    let (stdout, stderr) = run_conf(work.path(), &conf, &["check"], 0);
    assert!(
        stdout.contains(&format!("library: {}", library.display())),
        "{stdout}"
    );
    assert!(stdout.contains("module:  aimm_backend_sqlite"), "{stdout}");
    // Nothing warns of keys the plugin does not read.
    assert!(!stderr.contains("not read by"), "{stderr}");
    let file = write_file(work.path(), "m.bin", "bytes");
    run_conf(work.path(), &conf, &["put", "t", file.to_str().unwrap()], 0);
    let (listed, _) = run_conf(work.path(), &conf, &["list"], 0);
    assert_eq!(listed, "1\tt\t5\n");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let db = write_file(work.path(), "text.db", &"not a database\n".repeat(100));
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 1);
    assert!(stderr.contains("is not a SQLite database"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "not a database\n".repeat(100)
    );
}

#[test]
fn a_path_starting_with_file_colon_is_a_file_name_as_for_python() {
    // Python's backend opens `file:{path}?nolock=1` as a URI, so a
    // configured `file:models.db` is the file of that name, not `models.db`.
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "c.yaml",
        "backend:\n  module: aimm.server.backend.sqlite\n  path: file:models.db\n",
    );
    let model = write_file(work.path(), "m.bin", "bytes");
    let output = run_expecting(
        cli(work.path())
            .current_dir(work.path())
            .arg("--conf")
            .arg(&conf)
            .args(["put", "t"])
            .arg(&model),
        0,
    );
    assert_eq!(output.stdout, b"1\n");
    assert!(work.path().join("file:models.db").is_file());
    assert!(!work.path().join("models.db").exists());
}

#[test]
fn a_models_table_of_another_shape_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("other.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("CREATE TABLE models (name TEXT, data BLOB)", [])
        .unwrap();
    drop(conn);
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
    let (_, stderr) = run_conf(work.path(), &conf, &["list"], 1);
    assert!(
        stderr.contains("the `models` table has columns (name TEXT, data BLOB)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("expected (id INTEGER PRIMARY KEY, type TEXT, instance BLOB)"),
        "{stderr}"
    );
}

#[test]
fn a_read_only_file_reads_but_refuses_writes() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("ro.db");
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "  journal_mode: delete\n");
    let file = write_file(work.path(), "m.bin", "model");
    run_conf(work.path(), &conf, &["put", "t", file.to_str().unwrap()], 0);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (stdout, _) = run_conf(work.path(), &conf, &["list"], 0);
    assert_eq!(stdout, "1\tt\t5\n");
    let (_, stderr) = run_conf(work.path(), &conf, &["put", "t", file.to_str().unwrap()], 1);
    assert!(stderr.contains("is read-only"), "{stderr}");
    assert_eq!(read_models_table(&db).len(), 1);
}

#[test]
fn get_of_an_unknown_id_fails_with_not_found() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", &work.path().join("m.db"), "");
    let (stdout, stderr) = run_conf(work.path(), &conf, &["get", "42"], 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("no model with instance id 42"), "{stderr}");
    let (_, stderr) = run_conf(work.path(), &conf, &["update", "42", "-", "--type", "t"], 1);
    assert!(stderr.contains("no model with instance id 42"), "{stderr}");
}

#[test]
fn get_of_a_non_numeric_id_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", &work.path().join("m.db"), "");
    let (_, stderr) = run_conf(work.path(), &conf, &["get", "seven"], 2);
    assert!(stderr.contains("invalid value 'seven'"), "{stderr}");
}

#[test]
fn put_of_a_missing_file_stores_nothing() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("m.db");
    let conf = sqlite_conf(work.path(), "c.yaml", &db, "");
    let present = write_file(work.path(), "here.bin", "x");
    let missing = work.path().join("missing.bin");
    let (stdout, stderr) = run_conf(
        work.path(),
        &conf,
        &[
            "put",
            "t",
            present.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        1,
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "cannot read {}; nothing was stored",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(read_models_table(&db).is_empty());
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(cli(work.path()).arg("frobnicate"), 2);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unrecognized subcommand 'frobnicate'")
    );
    run_expecting(cli(work.path()).arg("--help"), 0);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let work = tempfile::tempdir().unwrap();
    let conf = sqlite_conf(work.path(), "c.yaml", &work.path().join("m.db"), "");
    let file = write_file(work.path(), "m.bin", &"x".repeat(1 << 20));
    run_conf(work.path(), &conf, &["put", "t", file.to_str().unwrap()], 0);
    let mut child = cli(work.path())
        .arg("--conf")
        .arg(&conf)
        .args(["get", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = wait_within(child, COMMAND_DEADLINE, "aimm-backend");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
}

#[test]
fn conformance_list_names_every_check_with_what_it_requires_and_needs_no_config() {
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(cli(work.path()).args(["conformance", "--list"]), 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<(&str, &str)> = stdout
        .lines()
        .map(|line| line.split_once('\t').expect("name<TAB>requires"))
        .collect();
    let expected: Vec<&str> = aimm_backend_conformance::checks()
        .iter()
        .map(|check| check.name)
        .collect();
    let names: Vec<&str> = rows.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected, "{stdout}");
    assert!(
        rows.iter().all(|(_, requires)| requires.len() > 20),
        "{stdout}"
    );
    let threads = rows
        .iter()
        .find(|(name, _)| *name == "ids_unique_under_16_threads")
        .unwrap();
    assert!(threads.1.contains("16 threads"), "{stdout}");
}
