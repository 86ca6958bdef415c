//! From `backend.module` to a library file.
//!
//! Order: a path to a library file; else a bare name `foo` becomes
//! `libfoo.so` (`libfoo.dylib`, `foo.dll`), looked for in each `--plugin-dir`,
//! then each directory of `AIMM_BACKEND_PATH` (colon-separated), then the
//! directory of the running executable and, for a program the `aimm_backend`
//! wheel installed, the wheel's plugins ([`wheel_plugin_dir`]). Dots and
//! dashes in names become underscores; the Python module names of the
//! built-in backends and their short names (`sqlite`, `event`, `postgres`)
//! map to ours.

use crate::error::LoadError;
use std::path::{Path, PathBuf};

/// The environment variable holding extra plugin directories.
pub const PATH_ENV: &str = "AIMM_BACKEND_PATH";

/// Names that stand for our built-in plugins: the stock Python modules
/// they replace, and the plugins' own short names.
const PYTHON_ALIASES: &[(&str, &str)] = &[
    ("aimm.server.backend.sqlite", "aimm_backend_sqlite"),
    ("aimm.server.backend.event", "aimm_backend_event"),
    ("sqlite", "aimm_backend_sqlite"),
    ("event", "aimm_backend_event"),
    ("postgres", "aimm_backend_postgres"),
];

/// Where plugin libraries are looked for, in order.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// `plugin_dirs`, then `AIMM_BACKEND_PATH`, then the executable's
    /// directory and the plugins of the wheel that installed it, if one did
    /// ([`wheel_plugin_dir`]).
    pub fn new(plugin_dirs: &[PathBuf]) -> Self {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let wheel_dir = exe_dir.as_deref().and_then(wheel_plugin_dir);
        let mut search = Self::with_builtin_dir(plugin_dirs, exe_dir);
        search.dirs.extend(wheel_dir);
        search
    }

    /// `plugin_dirs`, then `AIMM_BACKEND_PATH`, then `builtin_dir` (where a
    /// host keeps the plugins it ships with, such as the Python wheel's).
    pub fn with_builtin_dir(plugin_dirs: &[PathBuf], builtin_dir: Option<PathBuf>) -> Self {
        Self::from_parts(plugin_dirs, std::env::var_os(PATH_ENV), builtin_dir)
    }

    /// `plugin_dirs`, then the directories of `env_path` (a value of
    /// [`PATH_ENV`]; empty entries skipped), then `builtin_dir`.
    fn from_parts(
        plugin_dirs: &[PathBuf],
        env_path: Option<std::ffi::OsString>,
        builtin_dir: Option<PathBuf>,
    ) -> Self {
        let mut dirs: Vec<PathBuf> = plugin_dirs.to_vec();
        if let Some(env) = env_path {
            dirs.extend(std::env::split_paths(&env).filter(|p| !p.as_os_str().is_empty()));
        }
        dirs.extend(builtin_dir);
        SearchPath { dirs }
    }

    /// This search with `dirs` looked in before its own directories (a
    /// config's own plugin directories).
    pub fn searching_first(&self, dirs: &[PathBuf]) -> SearchPath {
        SearchPath {
            dirs: dirs.iter().chain(&self.dirs).cloned().collect(),
        }
    }

    /// Exactly these directories, nothing from the environment.
    pub fn from_dirs(dirs: Vec<PathBuf>) -> Self {
        SearchPath { dirs }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The library file for `module`.
    pub fn resolve(&self, module: &str) -> Result<PathBuf, LoadError> {
        if looks_like_path(module) {
            let path = PathBuf::from(module);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(LoadError::NotFound {
                    module: module.to_string(),
                    searched: vec![path],
                })
            };
        }
        let file_name = library_file_name(&library_name(module));
        let searched: Vec<PathBuf> = self.dirs.iter().map(|dir| dir.join(&file_name)).collect();
        searched
            .iter()
            .find(|candidate| candidate.is_file())
            .cloned()
            .ok_or_else(|| LoadError::NotFound {
                module: module.to_string(),
                searched,
            })
    }

    /// Every entry on the search path named like a library (`lib*.so`
    /// here), in search order, each with what a module of its name would
    /// load: the first file of each name is the one loaded, later ones are
    /// shadowed by it; symlinks that lead nowhere are reported, and
    /// shadow nothing (a module of that name loads a later file).
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut first: std::collections::BTreeMap<std::ffi::OsString, PathBuf> = Default::default();
        let mut found = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_library_name(p))
                .collect();
            paths.sort();
            for path in paths {
                let Some(state) = entry_state(&path) else {
                    continue;
                };
                let name = path.file_name().unwrap_or_default().to_os_string();
                let state = match (state, first.get(&name)) {
                    (CandidateState::Loadable, Some(earlier)) => {
                        CandidateState::ShadowedBy(earlier.clone())
                    }
                    (CandidateState::Loadable, None) => {
                        first.insert(name, path.clone());
                        CandidateState::Loadable
                    }
                    (broken, _) => broken,
                };
                found.push(Candidate { path, state });
            }
        }
        found
    }
}

/// The plugins of the `aimm_backend` wheel that installed a program into
/// `bin_dir`: pip puts a wheel's programs into a prefix's `bin` (a venv's,
/// `~/.local`'s) and its packages into that prefix's
/// `lib/pythonX.Y/site-packages`, where the wheel keeps its plugins in
/// `aimm_backend/plugins` (the directory its Python modules load them
/// from). The newest Python version's, if several have one.
pub fn wheel_plugin_dir(bin_dir: &Path) -> Option<PathBuf> {
    let lib = bin_dir.parent()?.join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = python_version(&entry.file_name().to_string_lossy())?;
            let plugins = entry.path().join("site-packages/aimm_backend/plugins");
            plugins.is_dir().then_some((version, plugins))
        })
        .max()
        .map(|(_, plugins)| plugins)
}

/// `(3, 11)` of `python3.11`.
fn python_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("python")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// An entry on the search path named like a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The entry, as found in its directory (not resolved).
    pub path: PathBuf,
    /// What a module of its name makes of it.
    pub state: CandidateState,
}

/// What the search makes of a [`Candidate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateState {
    /// The first file of its name on the path: a module of that name loads
    /// it (if its checks pass).
    Loadable,
    /// An earlier directory holds a file of the same name, loaded instead.
    ShadowedBy(PathBuf),
    /// A symlink whose target does not exist.
    DanglingLink {
        /// Where the link points.
        target: PathBuf,
    },
    /// A symlink that leads, through other links, back to itself.
    LinkLoop,
}

/// The state of `path` before shadowing; `None` for what is not a file
/// at all (a directory named like a library).
fn entry_state(path: &Path) -> Option<CandidateState> {
    match std::fs::metadata(path) {
        Ok(metadata) => metadata.is_file().then_some(CandidateState::Loadable),
        Err(err) if is_link_loop(&err) => Some(CandidateState::LinkLoop),
        Err(_) => {
            let target = std::fs::read_link(path).ok()?;
            Some(CandidateState::DanglingLink { target })
        }
    }
}

#[cfg(unix)]
fn is_link_loop(err: &std::io::Error) -> bool {
    // std has no stable ErrorKind for ELOOP yet.
    err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

#[cfg(not(unix))]
fn is_link_loop(_err: &std::io::Error) -> bool {
    false
}

/// The library name a module stands for: aliases applied, `.`/`-` -> `_`.
pub fn library_name(module: &str) -> String {
    PYTHON_ALIASES
        .iter()
        .find(|(python, _)| *python == module)
        .map(|(_, ours)| ours.to_string())
        .unwrap_or_else(|| module.replace(['.', '-'], "_"))
}

/// The platform's file name for library `name` (`libname.so` on Linux).
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn looks_like_path(module: &str) -> bool {
    module.contains(['/', std::path::MAIN_SEPARATOR])
        || module.ends_with(std::env::consts::DLL_SUFFIX)
}

fn is_library_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.starts_with(std::env::consts::DLL_PREFIX) && name.ends_with(std::env::consts::DLL_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names_map_to_builtins() {
        assert_eq!(
            library_name("aimm.server.backend.sqlite"),
            "aimm_backend_sqlite"
        );
        assert_eq!(library_name("postgres"), "aimm_backend_postgres");
        assert_eq!(library_name("sqlite"), "aimm_backend_sqlite");
        assert_eq!(library_name("event"), "aimm_backend_event");
        assert_eq!(library_name("memory-backend"), "memory_backend");
        assert_eq!(library_name("my.store"), "my_store");
    }

    #[test]
    fn not_found_lists_every_place() {
        let search = SearchPath::from_dirs(vec!["/nonexistent/a".into(), "/nonexistent/b".into()]);
        let err = search.resolve("foo").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/a/libfoo.so"), "{err}");
        assert!(err.contains("/nonexistent/b/libfoo.so"), "{err}");
    }

    #[test]
    fn plugin_dirs_come_first_then_the_environment_then_the_builtin_dir() {
        let search = SearchPath::from_parts(
            &["/p1".into(), "/p2".into()],
            Some("/e1::/e2:".into()),
            Some("/builtin".into()),
        );
        let expected: Vec<PathBuf> = ["/p1", "/p2", "/e1", "/e2", "/builtin"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(search.dirs(), expected);
        let bare = SearchPath::from_parts(&[], None, None);
        assert!(bare.dirs().is_empty());
    }

    #[test]
    fn a_program_installed_by_the_wheel_finds_the_wheel_plugins_of_the_newest_python() {
        let prefix = tempfile::tempdir().unwrap();
        let bin = prefix.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        assert_eq!(wheel_plugin_dir(&bin), None, "no lib/ at all");
        let plugins = |python: &str| {
            prefix
                .path()
                .join("lib")
                .join(python)
                .join("site-packages/aimm_backend/plugins")
        };
        for python in ["python3.9", "python3.11", "python3.10"] {
            std::fs::create_dir_all(plugins(python)).unwrap();
        }
        // Not Python versions, or without the wheel's package.
        std::fs::create_dir_all(plugins("python3.x")).unwrap();
        std::fs::create_dir_all(prefix.path().join("lib/python3.12/site-packages")).unwrap();
        assert_eq!(wheel_plugin_dir(&bin), Some(plugins("python3.11")));
    }

    #[test]
    fn names_with_a_slash_or_the_library_suffix_are_paths() {
        assert!(looks_like_path("plugins/foo"));
        assert!(looks_like_path("/abs/libfoo"));
        assert!(looks_like_path("libfoo.so"));
        assert!(!looks_like_path("foo"));
        assert!(!looks_like_path("aimm.server.backend.sqlite"));
    }

    #[test]
    fn a_path_is_used_as_it_is_or_named_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("custom.so");
        std::fs::write(&library, b"x").unwrap();
        // No search directory: a path is not looked up.
        let search = SearchPath::from_dirs(Vec::new());
        let module = library.to_str().unwrap();
        assert_eq!(search.resolve(module).unwrap(), library);
        let missing = dir.path().join("missing.so");
        match search.resolve(missing.to_str().unwrap()) {
            Err(LoadError::NotFound { searched, .. }) => assert_eq!(searched, [missing]),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn candidates_are_every_library_file_in_order_with_later_ones_shadowed() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for name in [
            "liby.so",
            "libx.so",
            "notes.txt",
            "x.so",
            "libz.so.1",
            "libz.txt",
        ] {
            std::fs::write(a.path().join(name), b"a").unwrap();
        }
        std::fs::create_dir(a.path().join("libdir.so")).unwrap();
        for name in ["libx.so", "libw.so"] {
            std::fs::write(b.path().join(name), b"b").unwrap();
        }
        let search = SearchPath::from_dirs(vec![
            a.path().into(),
            "/nonexistent/plugins".into(),
            b.path().into(),
        ]);
        let found = |dir: &Path, name: &str, state| Candidate {
            path: dir.join(name),
            state,
        };
        assert_eq!(
            search.candidates(),
            [
                found(a.path(), "libx.so", CandidateState::Loadable),
                found(a.path(), "liby.so", CandidateState::Loadable),
                found(b.path(), "libw.so", CandidateState::Loadable),
                found(
                    b.path(),
                    "libx.so",
                    CandidateState::ShadowedBy(a.path().join("libx.so"))
                ),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_that_lead_nowhere_are_reported_and_shadow_nothing() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let gone = a.path().join("gone.so");
        std::os::unix::fs::symlink(&gone, a.path().join("libd.so")).unwrap();
        std::os::unix::fs::symlink("libl2.so", a.path().join("libl1.so")).unwrap();
        std::os::unix::fs::symlink("libl1.so", a.path().join("libl2.so")).unwrap();
        std::fs::write(b.path().join("libd.so"), b"b").unwrap();
        let search = SearchPath::from_dirs(vec![a.path().into(), b.path().into()]);
        let states: Vec<(String, CandidateState)> = search
            .candidates()
            .into_iter()
            .map(|c| (c.path.display().to_string(), c.state))
            .collect();
        let at = |dir: &Path, name: &str| dir.join(name).display().to_string();
        assert_eq!(
            states,
            [
                (
                    at(a.path(), "libd.so"),
                    CandidateState::DanglingLink { target: gone }
                ),
                (at(a.path(), "libl1.so"), CandidateState::LinkLoop),
                (at(a.path(), "libl2.so"), CandidateState::LinkLoop),
                (at(b.path(), "libd.so"), CandidateState::Loadable),
            ]
        );
        assert_eq!(search.resolve("d").unwrap(), b.path().join("libd.so"));
    }

    #[test]
    fn first_directory_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("libx.so"), b"a").unwrap();
        std::fs::write(b.path().join("libx.so"), b"b").unwrap();
        let search = SearchPath::from_dirs(vec![a.path().into(), b.path().into()]);
        assert_eq!(search.resolve("x").unwrap(), a.path().join("libx.so"));
    }
}
