//! The plugins themselves: `check`, `plugins`, `new`, `conformance`.

use super::{stdout_line, Outcome};
use crate::failure::Failure;
use aimm_backend_conformance::PluginTarget;
use aimm_backend_loader::{CandidateState, Opener, PluginLibrary, ServerConfig};
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
    stdout_line(&format!("backend: {}", config.backend()))
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
                    Err(err) => format!("-\t-\t{path}\trefused: {}", one_line(&err.to_string())),
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

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes the plugin crate and says what to do next.
pub(super) fn new_plugin(name: &str, path: Option<&Path>, api_path: Option<&Path>) -> Outcome {
    let dependencies = match api_path {
        Some(crates) => crate::new_plugin::Dependencies::Path(crates),
        None => crate::new_plugin::Dependencies::Registry,
    };
    let dir = crate::new_plugin::write(name, path, dependencies)?;
    let lib = name.replace('-', "_");
    stdout_line(&format!(
        "created the plugin crate {} (module: {lib})\n\
         next: cd {} && cargo test && cargo build --release\n\
         then: copy target/release/lib{lib}.so into a plugin directory; see its README.md",
        dir.display(),
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
