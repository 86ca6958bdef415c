//! Plugin files that others could have written are refused, with the path,
//! the mode and the fix, unless the development override is given; the
//! `plugins` listing says what became of every candidate.

use aimm_backend_loader::ALLOW_UNSAFE_ENV;
use aimm_backend_tests::*;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

const LIBRARY: &str = "libmemory_backend.so";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory of `mode` holding a copy of the example plugin of `file_mode`.
fn plugin_dir(mode: u32, file_mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join(LIBRARY);
    std::fs::copy(memory_plugin(), &library).unwrap();
    chmod(&library, file_mode);
    chmod(dir.path(), mode);
    (dir, library)
}

/// `aimm-backend --plugin-dir DIR ARGS...` with a config naming the plugin.
fn run_in(work: &Path, plugin_dir: &Path, args: &[&str], code: i32) -> Output {
    let conf = write_file(work, "memory.yaml", "backend:\n  module: memory_backend\n");
    run_expecting(
        cli(work)
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .args(args),
        code,
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `plugins` line of `path`.
fn listed(output: &Output, path: &Path) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = path.display().to_string();
    stdout
        .lines()
        .find(|line| line.split('\t').nth(2) == Some(path.as_str()))
        .unwrap_or_else(|| panic!("{path} not listed:\n{stdout}"))
        .to_string()
}

/// `check` refuses the plugin, naming `culprit` with `mode` and the fix,
/// once; `plugins` lists it as refused with the same reason.
fn assert_refused(plugin_dir: &Path, listed_as: &Path, culprit: &Path, mode: &str) {
    let work = tempfile::tempdir().unwrap();
    let check = run_in(work.path(), plugin_dir, &["check"], 2);
    let text = stderr(&check);
    let culprit = culprit.canonicalize().unwrap().display().to_string();
    for expected in [
        "refusing to load plugin",
        &culprit,
        &format!("mode {mode}"),
        &format!("fix: chmod go-w {culprit}"),
        "--allow-unsafe-plugins",
        ALLOW_UNSAFE_ENV,
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert_eq!(text.matches("refusing").count(), 1, "said once:\n{text}");
    assert!(
        !text.contains("\x1b["),
        "no colour codes off a terminal:\n{text}"
    );

    let plugins = run_in(work.path(), plugin_dir, &["plugins"], 0);
    let line = listed(&plugins, listed_as);
    assert!(line.starts_with("-\t-\t"), "{line}");
    assert!(
        line.contains("\trefused: refusing to load plugin"),
        "{line}"
    );
    assert!(line.contains(&format!("mode {mode}")), "{line}");
}

/// With the flag or the environment variable, the plugin loads, and each
/// load says loudly that it was unsafe.
fn assert_overridable(plugin_dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let flagged = run_in(
        work.path(),
        plugin_dir,
        &["--allow-unsafe-plugins", "check"],
        0,
    );
    assert!(
        String::from_utf8_lossy(&flagged.stdout).contains("plugin:  memory 0.1.0"),
        "{}",
        describe(&flagged)
    );
    assert!(
        stderr(&flagged).contains("UNSAFE: loading plugin"),
        "{}",
        describe(&flagged)
    );
    let conf = write_file(
        work.path(),
        "memory.yaml",
        "backend:\n  module: memory_backend\n",
    );
    let by_env = run_expecting(
        cli(work.path())
            .env(ALLOW_UNSAFE_ENV, "1")
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .arg("check"),
        0,
    );
    assert!(
        stderr(&by_env).contains("UNSAFE: loading plugin"),
        "{}",
        describe(&by_env)
    );
}

#[test]
fn a_world_writable_plugin_directory_is_refused() {
    let (dir, library) = plugin_dir(0o777, 0o755);
    assert_refused(dir.path(), &library, dir.path(), "0777");
    assert_overridable(dir.path());
}

#[test]
fn a_group_writable_plugin_file_is_refused() {
    let (dir, library) = plugin_dir(0o755, 0o775);
    assert_refused(dir.path(), &library, &library, "0775");
    assert_overridable(dir.path());
}

#[test]
fn a_world_writable_plugin_file_is_refused() {
    let (dir, library) = plugin_dir(0o755, 0o666);
    assert_refused(dir.path(), &library, &library, "0666");
}

#[test]
fn a_symlink_into_a_world_writable_directory_is_refused() {
    let (open_dir, library) = plugin_dir(0o755, 0o755);
    let (safe_dir, _) = plugin_dir(0o755, 0o755);
    let link = safe_dir.path().join(LIBRARY);
    std::fs::remove_file(&link).unwrap();
    symlink(&library, &link).unwrap();
    // The link's own directory is safe; where it leads is not.
    chmod(open_dir.path(), 0o777);
    assert_refused(safe_dir.path(), &link, open_dir.path(), "0777");
}

#[test]
fn a_safe_plugin_in_a_sticky_shared_directory_loads() {
    // /tmp itself is world-writable with the sticky bit: entries others
    // cannot replace. The private directory below it is what counts.
    let (dir, library) = plugin_dir(0o755, 0o755);
    let work = tempfile::tempdir().unwrap();
    let check = run_in(work.path(), dir.path(), &["check"], 0);
    assert!(!stderr(&check).contains("UNSAFE"), "{}", describe(&check));
    let plugins = run_in(work.path(), dir.path(), &["plugins"], 0);
    assert!(
        listed(&plugins, &library).ends_with("\tloaded"),
        "{}",
        describe(&plugins)
    );
}

#[test]
fn plugins_says_what_became_of_every_candidate() {
    let (first, library) = plugin_dir(0o755, 0o755);
    let (second, shadowed) = plugin_dir(0o755, 0o755);
    symlink(
        first.path().join("gone.so"),
        second.path().join("libgone.so"),
    )
    .unwrap();
    symlink("libloop_b.so", second.path().join("libloop_a.so")).unwrap();
    symlink("libloop_a.so", second.path().join("libloop_b.so")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(
        cli(work.path())
            .arg("--plugin-dir")
            .arg(first.path())
            .arg("--plugin-dir")
            .arg(second.path())
            .arg("plugins"),
        0,
    );
    assert_eq!(
        listed(&output, &library),
        format!("memory\t0.1.0\t{}\tloaded", library.display())
    );
    assert_eq!(
        listed(&output, &shadowed),
        format!(
            "-\t-\t{}\tshadowed by {}",
            shadowed.display(),
            library.display()
        )
    );
    let gone = second.path().join("libgone.so");
    assert_eq!(
        listed(&output, &gone),
        format!(
            "-\t-\t{}\tdangling link to {}",
            gone.display(),
            first.path().join("gone.so").display()
        )
    );
    for name in ["libloop_a.so", "libloop_b.so"] {
        let path = second.path().join(name);
        assert_eq!(
            listed(&output, &path),
            format!("-\t-\t{}\tlink loop", path.display())
        );
    }
}
