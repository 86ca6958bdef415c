//! The Python reference venv (`aimm==1.2.dev1`, `hat-event==0.9.44`):
//! `scripts/python-venv.sh` makes it on first use (or finds it up to date)
//! and prints its interpreter last.

use crate::process::{describe, try_output_within, BUILD_DEADLINE};
use crate::root::workspace_root;
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter of the reference venv of the repository at `repo`: runs
/// `repo/scripts/python-venv.sh` (which makes the venv when it is missing
/// or out of date, serialised between callers by the script) and takes the
/// last line it prints, which must name an existing file. `configure`
/// adjusts the script's command first (the benchmarks give it the
/// allocator settings they were started with; tests pass `|_| {}`).
///
/// The script may take as long as [`BUILD_DEADLINE`] (it may install
/// packages with pip); it is killed after that.
pub fn venv_python(repo: &Path, configure: impl FnOnce(&mut Command)) -> Result<PathBuf> {
    let script = repo.join("scripts/python-venv.sh");
    let mut command = Command::new("bash");
    command.arg(&script);
    configure(&mut command);
    let output = try_output_within(
        &mut command,
        BUILD_DEADLINE,
        "making the Python reference venv",
    )?;
    if !output.status.success() {
        return Err(anyhow!(
            "the Python reference venv could not be made:\n{}",
            describe(&output)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = match stdout.lines().last().map(str::trim) {
        Some(line) if !line.is_empty() => PathBuf::from(line),
        _ => {
            return Err(anyhow!(
                "{} printed no interpreter path:\n{}",
                script.display(),
                describe(&output)
            ))
        }
    };
    if !python.is_file() {
        return Err(anyhow!("venv python {} missing", python.display()));
    }
    Ok(python)
}

/// The reference venv's interpreter for this workspace ([`venv_python`] of
/// [`workspace_root`]), made on first use and remembered for the rest of
/// the process. Fails the test (never skips it) when the venv cannot be
/// made.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            venv_python(&workspace_root(), |_| {}).unwrap_or_else(|err| panic!("{err:#}"))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in repository whose `scripts/python-venv.sh` is `body`.
    fn fake_repo(body: &str) -> tempfile::TempDir {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("scripts")).unwrap();
        std::fs::write(repo.path().join("scripts/python-venv.sh"), body).unwrap();
        repo
    }

    #[test]
    fn the_last_line_the_script_prints_is_the_interpreter() {
        let repo = fake_repo("echo making >&2\necho first\necho \"  $VENV_FILE  \"\n");
        let file = repo.path().join("python");
        std::fs::write(&file, "").unwrap();
        let python = venv_python(repo.path(), |command| {
            command.env("VENV_FILE", &file);
        })
        .unwrap();
        assert_eq!(python, file);
    }

    #[test]
    fn a_failing_script_is_an_error_with_its_output() {
        let repo = fake_repo("echo no pip >&2\nexit 1\n");
        let err = venv_python(repo.path(), |_| {}).unwrap_err().to_string();
        assert!(
            err.starts_with("the Python reference venv could not be made"),
            "{err}"
        );
        assert!(err.contains("no pip"), "{err}");
    }

    #[test]
    fn no_path_or_a_missing_interpreter_is_an_error() {
        let repo = fake_repo("true\n");
        let err = venv_python(repo.path(), |_| {}).unwrap_err().to_string();
        assert!(err.contains("printed no interpreter path"), "{err}");
        let repo = fake_repo("echo /nonexistent/python\n");
        let err = venv_python(repo.path(), |_| {}).unwrap_err().to_string();
        assert_eq!(err, "venv python /nonexistent/python missing");
    }
}
