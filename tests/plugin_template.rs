//! `aimm-backend new`: the plugin crate it writes passes its own `cargo
//! test` (the conformance suite in-process), builds, and, dropped into a
//! plugin directory, loads and passes `aimm-backend conformance`.

use aimm_backend_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// `cargo ARGS` in the generated crate, sharing the examples' target
/// directory (its dependencies are built there already).
fn cargo_in(crate_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(crate_dir)
        .args(args)
        .env("CARGO_TARGET_DIR", examples_target_dir());
    let output = output_within(&mut command, BUILD_DEADLINE, &format!("cargo {args:?}"));
    assert!(
        output.status.success(),
        "cargo {args:?}:\n{}",
        describe(&output)
    );
    output
}

#[test]
fn a_generated_plugin_passes_conformance_in_its_own_tests_and_dropped_in() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("my-store");
    let created = run_expecting(
        cli(work.path())
            .args(["new", "template-store", "--path"])
            .arg(&crate_dir),
        0,
    );
    // No --api-path: the README's walkthrough as written. Until the crates
    // are on crates.io, a CLI built from a checkout takes them from there.
    let said = String::from_utf8_lossy(&created.stdout);
    assert!(said.contains("(module: template_store)"), "{said}");
    let crates = workspace_root().join("crates").canonicalize().unwrap();
    assert!(
        said.contains(&format!(
            "dependencies: aimm-backend-api and aimm-backend-conformance from the checkout \
             this program was built from, {}",
            crates.display()
        )),
        "{said}"
    );
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!(
            "aimm-backend-api = {{ path = {:?} }}",
            crates.join("aimm-backend-api").display().to_string()
        )),
        "{manifest}"
    );
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "tests/conformance.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} not written");
    }

    // Formatted as rustfmt formats it, and its own tests: the suite,
    // in-process.
    cargo_in(&crate_dir, &["fmt", "--check"]);
    let tested = cargo_in(&crate_dir, &["test", "--release"]);
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert!(
        stdout.contains("test template_store_passes_the_conformance_suite ... ok"),
        "{stdout}"
    );

    // Built and dropped in, as its README says.
    cargo_in(&crate_dir, &["build", "--release"]);
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(
        examples_target_dir().join("release/libtemplate_store.so"),
        plugins.join("libtemplate_store.so"),
    )
    .unwrap();
    let conf = write_file(
        work.path(),
        "server.yaml",
        &format!(
            "backend:\n  module: template_store\n  path: {}\n",
            work.path().join("models").display()
        ),
    );
    let listing = run_expecting(
        cli(work.path())
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("plugins"),
        0,
    );
    let listed = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("template-store\t0.1.0\t") && l.ends_with("\tloaded")),
        "{listed}"
    );
    let conformance = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("conformance"),
        0,
    );
    let report = String::from_utf8_lossy(&conformance.stdout);
    let checks = aimm_backend_conformance::checks().len();
    assert!(
        report.contains(&format!("{checks} passed, 0 failed")),
        "{report}"
    );

    // The schema it ships names a misspelt key.
    let typo = write_file(
        work.path(),
        "typo.yaml",
        "backend:\n  module: template_store\n  paht: x\n",
    );
    let check = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&typo)
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("check"),
        2,
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("unknown key \"paht\""), "{stderr}");
}

#[test]
fn new_refuses_a_bad_name_and_a_directory_in_use() {
    let work = tempfile::tempdir().unwrap();
    let bad = run_expecting(cli(work.path()).args(["new", "My Store"]), 2);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("expected a crate name"),
        "{}",
        describe(&bad)
    );
    let used = work.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep.txt"), b"mine").unwrap();
    let refused = run_expecting(
        cli(work.path())
            .args(["new", "my-store", "--path"])
            .arg(&used),
        1,
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is not empty"),
        "{}",
        describe(&refused)
    );
    assert_eq!(std::fs::read(used.join("keep.txt")).unwrap(), b"mine");
}
