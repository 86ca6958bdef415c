//! Plugins dropped into directories, found, loaded, checked and run through
//! the conformance suite; libraries that must be refused, refused clearly.

use aimm_backend_api::API_VERSION;
use aimm_backend_conformance::{run, PluginTarget};
use aimm_backend_loader::{LoadError, PluginLibrary};
use aimm_backend_tests::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh plugin directory holding a copy of the example plugin.
fn plugin_dir_with_memory_backend() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(memory_plugin(), dir.path().join("libmemory_backend.so")).unwrap();
    dir
}

#[test]
fn dropped_in_memory_backend_passes_conformance_through_the_cli() {
    let plugins = plugin_dir_with_memory_backend();
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "memory.yaml",
        "backend:\n  module: memory_backend\n",
    );
    let output = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(plugins.path())
            .arg("conformance"),
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("PASS ids_unique_under_16_threads"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn dropped_in_memory_backend_is_found_by_check_and_plugins() {
    let plugins = plugin_dir_with_memory_backend();
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "memory.yaml",
        "backend:\n  module: memory-backend\n",
    );
    let check = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(plugins.path())
            .arg("check"),
        0,
    );
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains("plugin:  memory 0.1.0"), "{stdout}");
    assert!(
        stdout.contains(
            &plugins
                .path()
                .join("libmemory_backend.so")
                .display()
                .to_string()
        ),
        "{stdout}"
    );

    let listing = run_expecting(
        cli(work.path())
            .arg("--plugin-dir")
            .arg(plugins.path())
            .arg("plugins"),
        0,
    );
    let stdout = String::from_utf8_lossy(&listing.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("memory\t0.1.0\t") && l.ends_with("\tloaded")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("sqlite\t0.1.0\t") && l.ends_with("\tloaded")),
        "{stdout}"
    );
}

#[test]
fn without_the_plugin_dir_the_module_is_not_found_and_every_place_is_listed() {
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "memory.yaml",
        "backend:\n  module: memory_backend\n",
    );
    let output = run_expecting(
        cli(work.path())
            .env("AIMM_BACKEND_PATH", elsewhere.path())
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(work.path())
            .arg("check"),
        2,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("backend module `memory_backend` not found"),
        "{stderr}"
    );
    for dir in [work.path(), elsewhere.path(), &release_dir()] {
        let candidate = dir.join("libmemory_backend.so");
        assert!(
            stderr.contains(&candidate.display().to_string()),
            "{} not listed:\n{stderr}",
            candidate.display()
        );
    }
}

#[test]
fn sqlite_backend_passes_conformance_in_process() {
    let target =
        PluginTarget::scratch(prepare_plugin(&sqlite_plugin(), json!({"path": "x"}), None))
            .unwrap();
    let report = run(&target);
    assert!(report.all_passed(), "{report}");
}

#[test]
fn memory_backend_passes_conformance_in_process() {
    let target = PluginTarget::scratch(prepare_plugin(&memory_plugin(), json!({}), None)).unwrap();
    let report = run(&target);
    assert!(report.all_passed(), "{report}");
}

#[test]
fn two_different_backend_libraries_live_in_one_process() {
    let sqlite = PluginLibrary::load(&sqlite_plugin()).unwrap();
    let memory = PluginLibrary::load(&memory_plugin()).unwrap();
    assert_eq!(sqlite.name(), "sqlite");
    assert_eq!(memory.name(), "memory");
    let dir = tempfile::tempdir().unwrap();
    let a = open_plugin(
        &sqlite_plugin(),
        json!({"path": dir.path().join("a.db").to_str()}),
        None,
    );
    let b = open_plugin(&memory_plugin(), json!({"name": "two-libs"}), None);
    a.create_model("in.sqlite".into(), vec![1u8].into())
        .unwrap();
    b.create_model("in.memory".into(), vec![2u8].into())
        .unwrap();
    assert_eq!(a.list_models().unwrap()[0].model_type.as_str(), "in.sqlite");
    assert_eq!(b.list_models().unwrap()[0].model_type.as_str(), "in.memory");
    // Loading the same file again gives the same library, not a second copy.
    let again = PluginLibrary::load(&sqlite_plugin()).unwrap();
    assert!(std::sync::Arc::ptr_eq(&sqlite, &again));
}

#[test]
fn a_loaded_library_describes_itself_and_answers_for_its_config() {
    let sqlite = PluginLibrary::load(&sqlite_plugin()).unwrap();
    assert_eq!(
        (sqlite.name(), sqlite.version(), sqlite.path()),
        (
            "sqlite",
            "0.1.0",
            sqlite_plugin().canonicalize().unwrap().as_path()
        )
    );
    let debug = format!("{sqlite:?}");
    assert!(
        debug.contains("\"sqlite\"") && debug.contains("libaimm_backend_sqlite.so"),
        "{debug}"
    );
    assert_eq!(sqlite.conf_schema()["required"], json!(["path"]));
    sqlite
        .validate_conf(&json!({"module": "sqlite", "path": "m.db"}), "c.yaml")
        .unwrap();
    let err = sqlite
        .validate_conf(&json!({"module": "sqlite"}), "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.yaml") && err.contains("\"path\""), "{err}");
    // SQLite subscribes to nothing; the event backend to its model prefix.
    assert!(sqlite
        .create_subscription(&json!({"path": "m.db"}))
        .unwrap()
        .is_empty());
    let event = PluginLibrary::load(&release_dir().join("libaimm_backend_event.so")).unwrap();
    let types = event
        .create_subscription(&json!({"model_prefix": ["aimm", "models"]}))
        .unwrap();
    let types: Vec<Vec<&str>> = types
        .iter()
        .map(|t| t.iter().map(|s| s.as_str()).collect())
        .collect();
    assert_eq!(types, [["aimm", "models", "*"]]);
    assert!(event.create_subscription(&json!({})).is_err());
    let scratch = sqlite
        .scratch_conf(&json!({"path": "m.db"}), Path::new("/tmp/scratch"))
        .unwrap();
    assert_eq!(scratch["path"], "/tmp/scratch/conformance.db");
}

fn check_with_library(library: &Path) -> std::process::Output {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "c.yaml",
        &format!("backend:\n  module: {}\n", library.display()),
    );
    run_expecting(cli(work.path()).arg("--conf").arg(&conf).arg("check"), 2)
}

#[test]
fn a_text_file_named_like_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = write_file(dir.path(), "libx.so", "this is not a library\n");
    let output = check_with_library(&fake);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} is not a shared library", fake.display())),
        "{stderr}"
    );
    assert!(stderr.contains("text file"), "{stderr}");
    let err = PluginLibrary::load(&fake).unwrap_err();
    assert!(matches!(err, LoadError::NotSharedLibrary { .. }), "{err}");
}

/// A genuine shared library (built with the C compiler) that is no plugin.
fn plain_shared_library(dir: &Path) -> PathBuf {
    c_shared_library(dir, "plain", "int plain_answer(void) { return 42; }\n")
}

/// `dir/libNAME.so`, built by the C compiler from `source`.
fn c_shared_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let source = write_file(dir, &format!("{name}.c"), source);
    let library = dir.join(format!("lib{name}.so"));
    let output = output_within(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source),
        COMMAND_DEADLINE,
        "cc (the C compiler is part of the toolchain here)",
    );
    assert!(output.status.success(), "{}", describe(&output));
    library
}

/// What `plugins` says of `library` (its last column), listed with the
/// library's own directory as the plugin directory.
fn listed_status(library: &Path) -> String {
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(
        cli(work.path())
            .arg("--plugin-dir")
            .arg(library.parent().unwrap())
            .arg("plugins"),
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("\t{}\t", library.display())))
        .unwrap_or_else(|| panic!("{} not listed:\n{stdout}", library.display()));
    line.splitn(4, '\t').nth(3).unwrap_or_default().to_string()
}

#[test]
fn a_shared_library_that_is_not_a_backend_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let library = plain_shared_library(dir.path());
    let output = check_with_library(&library);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{} is a shared library but not an AIMM backend plugin",
            library.display()
        )),
        "{stderr}"
    );
    let status = listed_status(&library);
    assert!(
        status.starts_with("refused: ") && status.contains("not an AIMM backend plugin"),
        "{status}"
    );
}

/// A shared library that needs symbols only its own host process has, as
/// a Python extension built beside the CLI needs libpython's: it is listed
/// as not a plugin, in a few words and without the dynamic linker's
/// complaint, since nothing of it is loaded.
#[test]
fn a_library_that_needs_another_host_is_listed_as_not_a_plugin_without_loading_it() {
    let dir = tempfile::tempdir().unwrap();
    let library = c_shared_library(
        dir.path(),
        "extension",
        "extern int HostOnlyData;\nint extension_answer(void) { return HostOnlyData; }\n",
    );
    let status = listed_status(&library);
    assert_eq!(
        status,
        "refused: not an AIMM backend plugin: it exports no abi_stable root module"
    );
}

#[test]
fn a_backend_built_against_another_api_version_is_refused() {
    let other = next_minor(API_VERSION);
    let library = build_plugin_against_api_version(&other);
    let err = PluginLibrary::load(&library).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, LoadError::IncompatibleVersion { .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("built against aimm-backend-api {other}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("this host uses aimm-backend-api {API_VERSION}")),
        "{message}"
    );
    let output = check_with_library(&library);
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains(&format!("built against aimm-backend-api {other}")));
    let status = listed_status(&library);
    assert!(
        status.starts_with("refused: ")
            && status.contains(&format!("built against aimm-backend-api {other}")),
        "{status}"
    );
}

#[test]
fn a_caught_plugin_panic_is_one_line_and_where_it_happened_is_at_debug_level() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "panicky.yaml",
        "backend:\n  module: panicky_backend\n",
    );
    let file = write_file(work.path(), "model.bin", "bytes");
    let plugin_dir = panicky_plugin().parent().unwrap().to_path_buf();
    let put = |verbosity: &[&str]| {
        let mut command = cli(work.path());
        command
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(&plugin_dir)
            .args(verbosity)
            .args(["put", "t"])
            .arg(&file);
        // Not run_expecting: at debug level the record says "panicked".
        let output = output_within(&mut command, std::time::Duration::from_secs(60), "put");
        assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = put(&[]);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("panic in `create_model` caught at the plugin boundary"),
        "{stderr}"
    );
    let debug = put(&["-vv"]);
    assert!(
        debug.contains(
            "plugin panicked (returned to the host as an error): panicked at src/lib.rs:"
        ),
        "{debug}"
    );
}

#[test]
fn a_plugin_with_an_unusable_schema_is_blamed_not_the_config() {
    let work = tempfile::tempdir().unwrap();
    let library = bad_schema_plugin();
    let conf = write_file(
        work.path(),
        "bad.yaml",
        "backend:\n  module: bad_schema_backend\n",
    );
    let plugin_dir = library.parent().unwrap();
    let check = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .arg("check"),
        2,
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        stderr.contains("is the AIMM backend plugin `bad-schema`, but its config schema (CONF_SCHEMA) is unusable"),
        "{stderr}"
    );
    assert!(stderr.contains("the plugin must be fixed"), "{stderr}");
    assert!(
        !stderr.contains("is invalid"),
        "the config is not blamed: {stderr}"
    );
    assert!(!stderr.contains("not an AIMM backend plugin"), "{stderr}");
    let status = listed_status(&library);
    assert!(
        status.starts_with("refused: ") && status.contains("config schema"),
        "{status}"
    );
}

#[test]
fn a_missing_library_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libgone.so");
    let output = check_with_library(&missing);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("backend module `{}` not found", missing.display())),
        "{stderr}"
    );
}

/// Runs the CLI on the panicky plugin with `config` (the `backend` section
/// and anything else) and `args`, giving back the exit code and stderr.
/// The CLI runs in a directory holding a `model.bin` file.
fn cli_on_panicky_plugin(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(work.path(), "panicky.yaml", config);
    write_file(work.path(), "model.bin", "bytes");
    let mut command = cli(work.path());
    command
        .current_dir(work.path())
        .arg("--conf")
        .arg(&conf)
        .arg("--plugin-dir")
        .arg(panicky_plugin().parent().unwrap())
        .args(args);
    let output = output_within(&mut command, std::time::Duration::from_secs(60), "cli");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

#[test]
fn log_records_from_before_the_first_backend_reach_the_host() {
    // `conformance` asks for the scratch config before creating a backend.
    let (_, stderr) = cli_on_panicky_plugin(
        "backend:\n  module: panicky_backend\n",
        &["-v", "conformance"],
    );
    assert!(
        stderr.contains("panicky backend: scratch store in "),
        "{stderr}"
    );
    // With an event server configured, the subscription comes first; the
    // connection (to a port nobody listens on) fails after it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, stderr) = cli_on_panicky_plugin(
        &format!(
            "hat:\n  eventer_server: {{host: 127.0.0.1, port: {port}, timeout: 1}}\n\
             backend:\n  module: panicky_backend\n"
        ),
        &["-v", "list"],
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("panicky backend: subscribing to nothing"),
        "{stderr}"
    );
}

#[test]
fn a_panic_on_a_thread_of_the_plugin_is_logged_as_an_error() {
    let (code, stderr) = cli_on_panicky_plugin(
        "backend:\n  module: panicky_backend\n",
        &["put", "own-thread", "model.bin"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("plugin panicked on a thread of its own: panicked at src/lib.rs:")
            && stderr.contains("panicky backend: its worker thread"),
        "{stderr}"
    );
    assert!(stderr.contains("the worker thread panicked"), "{stderr}");
}
