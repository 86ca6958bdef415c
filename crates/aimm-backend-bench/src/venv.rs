//! The repository these programs belong to, and its Python reference venv.

use crate::sysinfo;
use std::io::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, as this crate was built from it.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interpreter of the reference venv: the last line `scripts/python-venv.sh`
/// prints (the script makes the venv first when it is missing). The script
/// runs with the allocator settings this program was started with.
pub fn venv_python(repo: &Path) -> Result<PathBuf> {
    let script = repo.join("scripts/python-venv.sh");
    let mut command = Command::new("bash");
    command.arg(&script);
    sysinfo::default_allocator(&mut command);
    let output = command.output()?;
    if !output.status.success() {
        return Err(Error::other(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(line) if !line.is_empty() => Ok(PathBuf::from(line)),
        _ => Err(Error::other(format!(
            "{} printed no interpreter path",
            script.display()
        ))),
    }
}
