//! Errors of the host side: configs, module resolution, library loading.

use crate::schema::Violation;
use std::path::PathBuf;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    // `error` rather than `source`: the message says it already, and a
    // reporter that prints the chain of sources would say it twice.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The config file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The document breaks a schema.
    #[error("config {path} is invalid:\n  {}", .violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// The config file (or `<embedded default>`).
        path: String,
        /// Every violation found.
        violations: Vec<Violation>,
    },
}

/// A backend module that cannot be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No library for the module in any searched place.
    #[error("backend module `{module}` not found; looked for:\n  {}", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n  "))]
    NotFound {
        /// The module as written in the config.
        module: String,
        /// Every path tried, in order.
        searched: Vec<PathBuf>,
    },
    /// The file is not a shared library at all.
    #[error("{path} is not a shared library ({found}); expected an AIMM backend plugin built as a Rust cdylib")]
    NotSharedLibrary {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        found: String,
    },
    /// The system loader refused the file.
    #[error("{path} could not be loaded as a shared library: {message}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The system loader's message.
        message: String,
    },
    /// A shared library that does not export an AIMM backend.
    #[error("{path} is a shared library but not an AIMM backend plugin: {found}; expected a library exporting the `aimm_backend` root module (aimm_backend_api::export_backend!)")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: String,
    },
    /// An AIMM backend built against an incompatible API.
    #[error("{path} is an AIMM backend plugin built against aimm-backend-api {found}, but this host uses aimm-backend-api {expected}; rebuild the plugin against a compatible version ({compatible})")]
    IncompatibleVersion {
        /// The file.
        path: PathBuf,
        /// The plugin's API version.
        found: String,
        /// The host's API version.
        expected: String,
        /// Which versions are compatible.
        compatible: String,
    },
    /// The library, or a directory on its path, can be written by others
    /// than its owner: loading it could run anyone's code.
    #[error("refusing to load plugin {path}: the {reason}; anyone who can write there could run code in this process (during development only: --allow-unsafe-plugins or {env}=1)", env = crate::safety::ALLOW_UNSAFE_ENV)]
    Unsafe {
        /// The library as named.
        path: PathBuf,
        /// What is unsafe, and the fix.
        reason: crate::safety::Unsafe,
    },
    /// A plugin whose exported config schema is not a usable JSON Schema:
    /// a fault of the plugin, not of any config.
    #[error("{path} is the AIMM backend plugin `{plugin}`, but its config schema (CONF_SCHEMA) is unusable: {message}; the plugin must be fixed")]
    InvalidSchema {
        /// The file.
        path: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// What is wrong with the schema.
        message: String,
    },
    /// Same version number, different layout of the interface types.
    #[error("{path} is an AIMM backend plugin whose interface layout differs from this host's (aimm-backend-api {expected}): {details}")]
    IncompatibleLayout {
        /// The file.
        path: PathBuf,
        /// The host's API version.
        expected: String,
        /// What abi_stable reported.
        details: String,
    },
}
