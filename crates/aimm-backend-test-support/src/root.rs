//! The workspace these helpers belong to.

use std::path::{Path, PathBuf};

/// The workspace root (the directory of the root `Cargo.toml`, `scripts/`
/// and `tests/`), as this crate was built from it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/aimm-backend-test-support lives in the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_workspace_manifest_and_the_scripts() {
        let root = workspace_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{}", root.display());
        assert!(root.join("scripts/python-venv.sh").is_file());
        assert!(root.join("scripts/hat-event-server.sh").is_file());
        assert!(root.join("tests/Cargo.toml").is_file());
        assert!(
            !root
                .components()
                .any(|c| c == std::path::Component::ParentDir),
            "{} has no `..`",
            root.display()
        );
    }
}
