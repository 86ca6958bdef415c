//! `aimm-backend new`: a complete plugin crate to start a backend from.
//!
//! The files are `templates/plugin/*.tmpl`, built into the binary, with
//! `{{crate_name}}`, `{{lib_name}}`, `{{name}}`, `{{api_dependency}}` and
//! `{{conformance_dependency}}` filled in.

use crate::failure::Failure;
use anyhow::anyhow;
use std::path::{Path, PathBuf};

/// Each file of the template: where it goes in the crate, and its text.
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/plugin/src/lib.rs.tmpl"),
    ),
    (
        "tests/conformance.rs",
        include_str!("../templates/plugin/tests/conformance.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/plugin/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/plugin/gitignore.tmpl"),
    ),
];

/// Whether `aimm-backend-api` and `aimm-backend-conformance` are on
/// crates.io. Until they are, a crate that asks for them there cannot
/// build, so `new` takes them from a checkout by default.
const ON_CRATES_IO: bool = false;

/// Where the new crate finds the API and conformance crates.
pub enum Dependencies<'a> {
    /// From crates.io, at the versions this tool was built with.
    Registry,
    /// From a checkout: the directory holding `aimm-backend-api/` and
    /// `aimm-backend-conformance/` (this project's `crates/`).
    Path(&'a Path),
}

/// The `crates/` directory of the checkout this program was built from,
/// if it is still there.
pub fn checkout_crates() -> Option<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .canonicalize()
        .ok()?;
    crates
        .join("aimm-backend-api/Cargo.toml")
        .is_file()
        .then_some(crates)
}

/// Where the crates come from when `--api-path` is not given: crates.io
/// once they are published, until then the checkout this program was
/// built from (`None`: it is gone, so the user must name one).
pub fn default_crates() -> Option<Option<PathBuf>> {
    if ON_CRATES_IO {
        Some(None)
    } else {
        checkout_crates().map(Some)
    }
}

/// Writes the plugin crate `name` into `dir` (default: `./NAME`), which
/// must not exist or be empty; returns the directory.
pub fn write(
    name: &str,
    dir: Option<&Path>,
    dependencies: Dependencies<'_>,
) -> Result<PathBuf, Failure> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    check_free(&dir)?;
    let (api, conformance) = dependency_specs(dependencies)?;
    let lib_name = name.replace('-', "_");
    for (relative, template) in FILES {
        let text = template
            .replace("{{crate_name}}", name)
            .replace("{{lib_name}}", &lib_name)
            .replace("{{name}}", name)
            .replace("{{api_dependency}}", &api)
            .replace("{{conformance_dependency}}", &conformance);
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| {
                Failure::operation(anyhow!("creating {}: {err}", parent.display()))
            })?;
        }
        std::fs::write(&path, text)
            .map_err(|err| Failure::operation(anyhow!("writing {}: {err}", path.display())))?;
    }
    Ok(dir)
}

/// A crate name: a lowercase ASCII letter, then lowercase letters, digits,
/// `-` or `_` (the library is `lib<name with _ for ->.so`).
fn check_name(name: &str) -> Result<(), Failure> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if starts_well && rest_ok {
        return Ok(());
    }
    Err(Failure::usage(anyhow!(
        "plugin name {name:?}: expected a crate name, a lowercase letter followed by \
         lowercase letters, digits, '-' or '_' (e.g. my-store)"
    )))
}

/// Refuses a `dir` that holds anything: nothing is ever overwritten.
fn check_free(dir: &Path) -> Result<(), Failure> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => return Err(Failure::operation(anyhow!("{}: {err}", dir.display()))),
    };
    if empty {
        return Ok(());
    }
    Err(Failure::operation(anyhow!(
        "{} exists and is not empty; name a new directory with --path",
        dir.display()
    )))
}

/// The dependency lines of the API and conformance crates.
fn dependency_specs(dependencies: Dependencies<'_>) -> Result<(String, String), Failure> {
    match dependencies {
        Dependencies::Registry => Ok((
            format!("\"{}\"", major_minor(aimm_backend_api::API_VERSION)),
            format!("\"{}\"", major_minor(env!("CARGO_PKG_VERSION"))),
        )),
        Dependencies::Path(crates) => {
            let crates = crates
                .canonicalize()
                .map_err(|err| Failure::usage(anyhow!("--api-path {}: {err}", crates.display())))?;
            let spec = |crate_dir: &str| -> Result<String, Failure> {
                let dir = crates.join(crate_dir);
                if !dir.join("Cargo.toml").is_file() {
                    return Err(Failure::usage(anyhow!(
                        "--api-path {}: no {crate_dir}/Cargo.toml there; expected the directory \
                         holding aimm-backend-api/ and aimm-backend-conformance/ (this project's crates/)",
                        crates.display()
                    )));
                }
                Ok(format!("{{ path = {:?} }}", dir.display().to_string()))
            };
            Ok((spec("aimm-backend-api")?, spec("aimm-backend-conformance")?))
        }
    }
}

/// `0.3` of `0.3.1`: the requirement cargo reads as compatible releases.
fn major_minor(version: &str) -> String {
    version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names() {
        for good in ["my-store", "s3", "a_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "1store", "my store", "my.store", "-x", "é"] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(
                err.error().to_string().contains("expected a crate name"),
                "{bad}"
            );
        }
    }

    #[test]
    fn nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), b"mine").unwrap();
        let err = write("x", Some(dir.path()), Dependencies::Registry).unwrap_err();
        assert!(
            err.error().to_string().contains("is not empty"),
            "{:#}",
            err.error()
        );
        assert_eq!(std::fs::read(dir.path().join("keep")).unwrap(), b"mine");
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("my-store");
        write("my-store", Some(&crate_dir), Dependencies::Registry).unwrap();
        for (relative, _) in FILES {
            let text = std::fs::read_to_string(crate_dir.join(relative)).unwrap();
            assert!(!text.contains("{{"), "{relative}: {text}");
        }
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-store\""), "{manifest}");
        let api = major_minor(aimm_backend_api::API_VERSION);
        assert!(
            manifest.contains(&format!("aimm-backend-api = \"{api}\"")),
            "{manifest}"
        );
        let test = std::fs::read_to_string(crate_dir.join("tests/conformance.rs")).unwrap();
        assert!(test.contains("my_store::Plugin"), "{test}");
    }

    #[test]
    fn versions_are_major_and_minor() {
        assert_eq!(major_minor("0.3.1"), "0.3");
        assert_eq!(major_minor("1.2"), "1.2");
    }
}
