//! Loading a plugin library, with every check before the first call into it.
//!
//! Libraries are loaded through their `abi_stable` library header rather than
//! `RootModule::load_from_file`, which caches one library per root-module type
//! per process: with it, loading a second, different backend would silently
//! return the first. Here each file is loaded once and kept in a table keyed by
//! its canonical path, so several backends can be held at once.
//!
//! Loaded libraries are never unloaded (they are leaked on purpose): a backend
//! may have threads or callbacks still inside the library's code.

use crate::error::{ConfigError, LoadError};
use crate::safety::{self, LoadPolicy, ALLOW_UNSAFE_ENV};
use crate::schema;
use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::{VersionNumber, VersionStrings};
use aimm_backend_api::{
    BackendError, BackendModuleRef, EventType, FFI_Host, FFI_LogSink, ForeignBackend, Host,
    LogSink, API_VERSION,
};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A loaded, checked backend plugin library.
pub struct PluginLibrary {
    path: PathBuf,
    module: BackendModuleRef,
    name: String,
    version: String,
    schema: Value,
    log_sink_installed: AtomicBool,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

fn loaded() -> &'static Mutex<HashMap<PathBuf, Arc<PluginLibrary>>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<PluginLibrary>>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

impl PluginLibrary {
    /// Loads the plugin library at `path` (once per process) and checks it,
    /// refusing unsafe places unless [`ALLOW_UNSAFE_ENV`] is set (see
    /// [`crate::safety`]).
    pub fn load(path: &Path) -> Result<Arc<PluginLibrary>, LoadError> {
        Self::load_with(path, LoadPolicy::from_env())
    }

    /// Loads the plugin library at `path` (once per process) and checks it,
    /// first that no one but its owner (root or this user) could have
    /// written it or a directory on its path, unless `policy` allows it.
    /// A library already loaded is handed out again as it is.
    pub fn load_with(path: &Path, policy: LoadPolicy) -> Result<Arc<PluginLibrary>, LoadError> {
        let canonical = path.canonicalize().map_err(|_| LoadError::NotFound {
            module: path.display().to_string(),
            searched: vec![path.to_path_buf()],
        })?;
        let mut table = loaded().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(library) = table.get(&canonical) {
            return Ok(library.clone());
        }
        check_safe(path, &canonical, policy)?;
        let library = Arc::new(Self::load_uncached(&canonical)?);
        table.insert(canonical, library.clone());
        Ok(library)
    }

    fn load_uncached(path: &Path) -> Result<PluginLibrary, LoadError> {
        check_binary_format(path)?;
        check_exports_a_root_module(path)?;
        let header = lib_header_from_path(path).map_err(|err| open_error(path, err))?;
        let consts = header.root_mod_consts();
        if consts.name() != BackendModuleRef::NAME {
            return Err(LoadError::NotAPlugin {
                path: path.to_path_buf(),
                found: format!(
                    "an abi_stable library exporting root module `{}`",
                    consts.name()
                ),
            });
        }
        check_api_version(path, header.version_strings())?;
        let module: BackendModuleRef = header
            .init_root_module()
            .map_err(|err| init_error(path, err))?;
        let name = (module.plugin_name())().to_string();
        let version = (module.plugin_version())().to_string();
        let schema = schema::parse_schema((module.conf_schema())().as_str()).map_err(|err| {
            LoadError::InvalidSchema {
                path: path.to_path_buf(),
                plugin: name.clone(),
                message: err.to_string(),
            }
        })?;
        Ok(PluginLibrary {
            path: path.to_path_buf(),
            module,
            name,
            version,
            schema,
            log_sink_installed: AtomicBool::new(false),
        })
    }

    /// The library file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's name (`sqlite`, `memory`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's own version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The schema the plugin's `backend` section must satisfy.
    pub fn conf_schema(&self) -> &Value {
        &self.schema
    }

    /// `backend` as it may be shown (printed, logged): the values the
    /// plugin's schema marks `writeOnly` replaced by `"<not shown>"`.
    pub fn shown_conf(&self, backend: &Value) -> Value {
        schema::shown(&self.schema, backend)
    }

    /// Validates a `backend` section against the plugin's schema; `origin`
    /// names the config in messages.
    pub fn validate_conf(&self, backend: &Value, origin: &str) -> Result<(), ConfigError> {
        schema::validate(&self.schema, backend, "backend").map_err(|violations| {
            ConfigError::Invalid {
                path: origin.to_string(),
                violations,
            }
        })
    }

    /// The keys of a `backend` section that the plugin's schema allows but
    /// does not list, so that no one reads them (most likely misspelt).
    /// The built-in backends accept unknown keys, as the Python ones do.
    pub fn unlisted_keys(&self, backend: &Value) -> Vec<String> {
        schema::unlisted_keys(&self.schema, backend)
    }

    /// Sends the plugin's `log` records and panic messages to the sink
    /// `make_sink` makes, from now on, including those of
    /// [`create_subscription`](Self::create_subscription) and
    /// [`scratch_conf`](Self::scratch_conf). A library has one sink for the
    /// life of the process: the first call makes and installs it, later
    /// calls do nothing (and make nothing). [`Opener`](crate::Opener)
    /// installs its sink as it loads.
    pub fn install_log_sink(&self, make_sink: impl FnOnce() -> Arc<dyn LogSink>) {
        if !self.log_sink_installed.swap(true, Ordering::AcqRel) {
            (self.module.install_log_sink())(FFI_LogSink::new(make_sink()));
        }
    }

    /// The event types the backend wants (Python's `create_subscription`).
    pub fn create_subscription(&self, backend: &Value) -> Result<Vec<EventType>, BackendError> {
        let result = (self.module.create_subscription())(backend.to_string().as_str().into());
        result.into_result().map(|types| types.into_vec())
    }

    /// A version of `backend` that points at a throw-away store under `dir`.
    pub fn scratch_conf(&self, backend: &Value, dir: &Path) -> Result<Value, BackendError> {
        let dir = dir.to_string_lossy();
        let result =
            (self.module.scratch_conf())(backend.to_string().as_str().into(), dir.as_ref().into());
        let text = result.into_result()?;
        serde_json::from_str(&text).map_err(|err| {
            BackendError::invalid_config(format!(
                "plugin `{}` returned a scratch config that is not JSON: {err}",
                self.name
            ))
        })
    }

    /// Creates a backend from a (validated) `backend` section, lending it
    /// `host`'s log sink and event client. This call blocks; async callers
    /// run it on a blocking thread. Most hosts open backends through
    /// [`Opener`](crate::Opener), which also resolves, checks and connects.
    pub fn create_backend(
        &self,
        backend: &Value,
        host: Host,
    ) -> Result<ForeignBackend, BackendError> {
        let result = (self.module.create_backend())(
            backend.to_string().as_str().into(),
            FFI_Host::new(host),
        );
        Ok(result.into_result()?.into_foreign())
    }
}

/// Refuses `path` (resolved: `canonical`) if others could have written it,
/// unless `policy` allows that, which is logged as a warning.
fn check_safe(path: &Path, canonical: &Path, policy: LoadPolicy) -> Result<(), LoadError> {
    let found = safety::check(canonical).map_err(|err| LoadError::Open {
        path: path.to_path_buf(),
        message: format!("cannot check who may write it: {err}"),
    })?;
    let Some(reason) = found else {
        return Ok(());
    };
    if !policy.allow_unsafe {
        return Err(LoadError::Unsafe {
            path: path.to_path_buf(),
            reason,
        });
    }
    tracing::warn!(
        "UNSAFE: loading plugin {} although the {reason} (unsafe plugins allowed by \
         --allow-unsafe-plugins or {ALLOW_UNSAFE_ENV}=1; never in production)",
        path.display()
    );
    Ok(())
}

/// Refuses files that are not shared libraries before the system loader
/// sees them (it would otherwise report "invalid ELF header" or similar).
fn check_binary_format(path: &Path) -> Result<(), LoadError> {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut file| file.read(&mut magic))
        .map_err(|err| LoadError::Open {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
    let known: &[&[u8]] = &[
        b"\x7fELF",          // ELF (Linux, BSD)
        b"\xcf\xfa\xed\xfe", // Mach-O 64-bit
        b"\xca\xfe\xba\xbe", // Mach-O universal
        b"MZ",               // PE (Windows)
    ];
    if known.iter().any(|m| magic[..read].starts_with(m)) {
        return Ok(());
    }
    let found = if read == 0 {
        "the file is empty".to_string()
    } else if magic[..read]
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "it starts like a text file".to_string()
    } else {
        format!("unknown file format, first bytes {:02x?}", &magic[..read])
    };
    Err(LoadError::NotSharedLibrary {
        path: path.to_path_buf(),
        found,
    })
}

/// Refuses, without loading it, a shared library whose symbol table shows
/// it exports no abi_stable root module: loading it would run its code and
/// fail with the dynamic linker's complaints about what it needs (a Python
/// extension needs symbols of a Python process).
fn check_exports_a_root_module(path: &Path) -> Result<(), LoadError> {
    match crate::elf::defines_dynamic_symbol(path, abi_stable::library::ROOT_MODULE_LOADER_NAME) {
        Some(false) => Err(not_a_plugin(path)),
        Some(true) | None => Ok(()),
    }
}

fn not_a_plugin(path: &Path) -> LoadError {
    LoadError::NotAPlugin {
        path: path.to_path_buf(),
        found: "it exports no abi_stable root module".to_string(),
    }
}

fn open_error(path: &Path, err: LibraryError) -> LoadError {
    match err {
        LibraryError::OpenError { err, .. } => LoadError::Open {
            path: path.to_path_buf(),
            message: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => not_a_plugin(path),
        other => init_error(path, other),
    }
}

fn init_error(path: &Path, err: LibraryError) -> LoadError {
    match err {
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadError::IncompatibleVersion {
            path: path.to_path_buf(),
            found: actual_version.to_string(),
            expected: expected_version.to_string(),
            compatible: compatible_range(),
        },
        LibraryError::AbiInstability(details) => LoadError::IncompatibleLayout {
            path: path.to_path_buf(),
            expected: API_VERSION.to_string(),
            details: first_lines(&details.to_string(), 12),
        },
        other => LoadError::NotAPlugin {
            path: path.to_path_buf(),
            found: first_lines(&other.to_string(), 12),
        },
    }
}

/// Refuses a plugin whose API version differs in major (or, below 1.0, in
/// minor) version, before the layout check, so the message says "version"
/// rather than listing type layouts.
fn check_api_version(path: &Path, plugin: VersionStrings) -> Result<(), LoadError> {
    let host = BackendModuleRef::VERSION_STRINGS;
    let incompatible = || LoadError::IncompatibleVersion {
        path: path.to_path_buf(),
        found: plugin.version.to_string(),
        expected: API_VERSION.to_string(),
        compatible: compatible_range(),
    };
    let (plugin, host) = match (plugin.parsed(), host.parsed()) {
        (Ok(plugin), Ok(host)) => (plugin, host),
        _ => return Err(incompatible()),
    };
    if same_line(plugin, host) {
        Ok(())
    } else {
        Err(incompatible())
    }
}

/// abi_stable's rule: same major version, and same minor while major is 0.
fn same_line(plugin: VersionNumber, host: VersionNumber) -> bool {
    plugin.major == host.major && (host.major != 0 || plugin.minor == host.minor)
}

/// The plugin API versions this loader accepts, for messages.
fn compatible_range() -> String {
    range_of(API_VERSION)
}

/// The versions on [`same_line`] with `version`: `0.2.x`, or `1.x`.
fn range_of(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" {
        format!("0.{minor}.x")
    } else {
        format!("{major}.x")
    }
}

fn first_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= n {
        text.to_string()
    } else {
        format!(
            "{}\n  ... ({} more lines)",
            lines[..n].join("\n"),
            lines.len() - n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_error(bytes: &[u8]) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libx.so");
        std::fs::write(&path, bytes).unwrap();
        check_binary_format(&path).map_err(|err| match err {
            LoadError::NotSharedLibrary { found, .. } => found,
            other => panic!("expected NotSharedLibrary, got {other:?}"),
        })
    }

    #[test]
    fn shared_library_formats_pass_the_first_check() {
        for magic in [
            &b"\x7fELF\x02\x01"[..],
            b"\xcf\xfa\xed\xfe",
            b"\xca\xfe\xba\xbe",
            b"MZ",
        ] {
            assert_eq!(format_error(magic), Ok(()), "{magic:02x?}");
        }
    }

    #[test]
    fn other_files_are_refused_saying_what_they_look_like() {
        assert_eq!(format_error(b"").unwrap_err(), "the file is empty");
        assert_eq!(
            format_error(b"not a library").unwrap_err(),
            "it starts like a text file"
        );
        assert_eq!(
            format_error(b"\x00\x01\x02\x03\x04").unwrap_err(),
            "unknown file format, first bytes [00, 01, 02, 03]"
        );
        assert_eq!(
            format_error(b"\x7fEL").unwrap_err(),
            "unknown file format, first bytes [7f, 45, 4c]"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_binary_format(&dir.path().join("missing.so")).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
    }

    fn version(text: &'static str) -> VersionNumber {
        VersionStrings::new(text).parsed().unwrap()
    }

    #[test]
    fn plugins_of_the_same_major_or_below_1_the_same_minor_version_are_compatible() {
        for (plugin, host, compatible) in [
            ("0.3.0", "0.3.0", true),
            ("0.3.9", "0.3.1", true),
            ("0.2.0", "0.3.0", false),
            ("0.4.0", "0.3.0", false),
            ("1.2.0", "0.3.0", false),
            ("1.0.0", "1.4.2", true),
            ("1.9.0", "1.4.2", true),
            ("2.4.2", "1.4.2", false),
            ("0.4.2", "1.4.2", false),
        ] {
            assert_eq!(
                same_line(version(plugin), version(host)),
                compatible,
                "plugin {plugin}, host {host}"
            );
        }
    }

    #[test]
    fn the_compatible_range_is_named_as_abi_stable_reads_it() {
        assert_eq!(range_of("0.3.0"), "0.3.x");
        assert_eq!(range_of("1.4.2"), "1.x");
        assert_eq!(compatible_range(), range_of(API_VERSION));
    }

    #[test]
    fn a_plugin_of_another_api_version_is_refused_naming_both() {
        let path = Path::new("/plugins/libold.so");
        let host = VersionStrings::new(API_VERSION).parsed().unwrap();
        let old = format!("{}.{}.0", host.major, host.minor + 1);
        let old: &'static str = Box::leak(old.into_boxed_str());
        match check_api_version(path, VersionStrings::new(old)) {
            Err(LoadError::IncompatibleVersion {
                found,
                expected,
                compatible,
                ..
            }) => {
                assert_eq!(found, old);
                assert_eq!(expected, API_VERSION);
                assert_eq!(compatible, compatible_range());
            }
            other => panic!("expected IncompatibleVersion, got {other:?}"),
        }
        assert!(check_api_version(path, VersionStrings::new(API_VERSION)).is_ok());
        assert!(matches!(
            check_api_version(path, VersionStrings::new("not.a.version")),
            Err(LoadError::IncompatibleVersion { .. })
        ));
    }

    #[test]
    fn long_details_are_cut_to_their_first_lines() {
        assert_eq!(first_lines("a\nb", 2), "a\nb");
        assert_eq!(first_lines("a\nb\nc\nd", 2), "a\nb\n  ... (2 more lines)");
        assert_eq!(first_lines("", 2), "");
    }
}
