//! The plugins themselves: `check`, `plugins`, `new`, `conformance`.

use super::{stdout_line, Outcome};
use crate::failure::Failure;
use aimm_backend_conformance::PluginTarget;
use aimm_backend_loader::{CandidateState, LoadError, Opener, PluginLibrary, ServerConfig};
use std::io::Write;
use std::path::Path;

pub(super) fn check(config: &ServerConfig, opener: &Opener) -> Outcome {
    let opened = opener.open(config)?;
    opened.backend.close()?;
    let library = opened.library;
    stdout_line(&format!("config:  {}", config.origin()))?;
    stdout_line(&format!("module:  {}", config.module()))?;
    stdout_line(&format!("library: {}", library.path().display()))?;
    stdout_line(&format!(
        "plugin:  {} {}",
        library.name(),
        library.version()
    ))?;
    stdout_line(&format!(
        "backend: {}",
        library.shown_conf(config.backend())
    ))
}

pub(super) fn plugins(opener: &Opener) -> Outcome {
    let search = opener.search();
    let candidates = search.candidates();
    if candidates.is_empty() {
        let dirs: Vec<String> = search
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        stdout_line(&format!("no libraries found in: {}", dirs.join(", ")))?;
        return Ok(());
    }
    for candidate in candidates {
        let path = candidate.path.display();
        let line = match candidate.state {
            CandidateState::Loadable => {
                match PluginLibrary::load_with(&candidate.path, opener.load_policy()) {
                    Ok(library) => {
                        format!("{}\t{}\t{path}\tloaded", library.name(), library.version())
                    }
                    Err(err) => format!("-\t-\t{path}\trefused: {}", refusal(&err)),
                }
            }
            CandidateState::ShadowedBy(earlier) => {
                format!("-\t-\t{path}\tshadowed by {}", earlier.display())
            }
            CandidateState::DanglingLink { target } => {
                format!("-\t-\t{path}\tdangling link to {}", target.display())
            }
            CandidateState::LinkLoop => format!("-\t-\t{path}\tlink loop"),
        };
        stdout_line(&line)?;
    }
    Ok(())
}

/// Why a listed library was refused, in one line; the path is a column
/// of its own already.
fn refusal(err: &LoadError) -> String {
    match err {
        LoadError::NotAPlugin { found, .. } => format!("not an AIMM backend plugin: {found}"),
        other => one_line(&other.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes the plugin crate and says what to do next.
pub(super) fn new_plugin(name: &str, path: Option<&Path>, api_path: Option<&Path>) -> Outcome {
    use crate::new_plugin::Dependencies;
    let (crates, from_checkout) = match api_path {
        Some(crates) => (Some(crates.to_path_buf()), false),
        None => match crate::new_plugin::default_crates() {
            Some(crates) => {
                let from_checkout = crates.is_some();
                (crates, from_checkout)
            }
            None => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "aimm-backend-api and aimm-backend-conformance are not on crates.io yet, \
                     and the checkout this program was built from ({}) is gone; expected \
                     --api-path DIR, the crates/ directory of a checkout",
                    env!("CARGO_MANIFEST_DIR")
                )))
            }
        },
    };
    let dependencies = match &crates {
        Some(crates) => Dependencies::Path(crates),
        None => Dependencies::Registry,
    };
    let dir = crate::new_plugin::write(name, path, dependencies)?;
    let lib = name.replace('-', "_");
    stdout_line(&format!(
        "created the plugin crate {} (module: {lib})",
        dir.display()
    ))?;
    if let (true, Some(crates)) = (from_checkout, &crates) {
        stdout_line(&format!(
            "dependencies: aimm-backend-api and aimm-backend-conformance from the checkout \
             this program was built from, {} (they are not on crates.io yet; --api-path DIR \
             takes them from another)",
            crates.display()
        ))?;
    }
    stdout_line(&format!(
        "next: cd {} && cargo test && cargo build --release\n\
         then: copy target/release/lib{lib}.so into a plugin directory; see its README.md",
        dir.display()
    ))
}

/// `name<TAB>requires` for every check, in the order they run.
pub(super) fn list_checks() -> Outcome {
    for check in aimm_backend_conformance::checks() {
        stdout_line(&format!("{}\t{}", check.name, check.requires))?;
    }
    Ok(())
}

pub(super) async fn conformance(
    config: &ServerConfig,
    opener: &Opener,
    only: Option<String>,
) -> Outcome {
    let target = PluginTarget::scratch(opener.prepare(config)?)?;
    let library = target.prepared().library().clone();
    eprintln!(
        "conformance: plugin {} {} ({}), scratch config {}",
        library.name(),
        library.version(),
        library.path().display(),
        target.conf()
    );
    // The suite makes blocking calls, some of which wait on the async runtime.
    let report = tokio::task::spawn_blocking(move || {
        aimm_backend_conformance::run_matching(&target, |name| {
            only.as_deref().is_none_or(|o| name.contains(o))
        })
    })
    .await
    .map_err(|err| Failure::operation(anyhow::anyhow!("the conformance run failed: {err}")))?;
    print!("{report}");
    std::io::stdout().flush()?;
    if report.all_passed() {
        Ok(())
    } else {
        Err(Failure::operation(anyhow::anyhow!(
            "{} conformance check(s) failed",
            report.failures().count()
        )))
    }
}
