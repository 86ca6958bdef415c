//! The one error type that crosses the plugin boundary.

use abi_stable::std_types::RString;
use abi_stable::StableAbi;
use std::fmt;

/// What went wrong, coarse enough for a host to act on.
///
/// The host and every plugin must agree on this list; `abi_stable`'s version
/// check refuses plugins built against another minor version, so a new kind
/// can only arrive together with a new API version.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No model has the requested instance id.
    NotFound,
    /// The instance id is already taken (see [`Backend::import_model`](crate::Backend::import_model)).
    Conflict,
    /// The backend configuration is not usable.
    InvalidConfig,
    /// An argument is not acceptable (for example a negative instance id).
    InvalidInput,
    /// The underlying store failed (I/O, corruption, read-only file, ...).
    Storage,
    /// A service the backend needs (for example the Hat event server) is unreachable.
    Unavailable,
    /// The backend does not offer this operation.
    Unsupported,
    /// The plugin panicked; the panic was caught at the boundary.
    Panic,
}

impl ErrorKind {
    /// A short lower-case name, as used in messages and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Storage => "storage error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Panic => "plugin panic",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error returned by a backend: a [`ErrorKind`] and a human-readable message.
///
/// ```
/// use aimm_backend_api::{BackendError, ErrorKind};
///
/// let err = BackendError::not_found(7);
/// assert_eq!(err.kind, ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "not found: no model with instance id 7");
/// ```
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What happened, where, and (when known) what was expected.
    pub message: RString,
}

impl BackendError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: RString::from(message.into()),
        }
    }

    /// The [`ErrorKind::NotFound`] error for `instance_id`.
    pub fn not_found(instance_id: crate::InstanceId) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("no model with instance id {instance_id}"),
        )
    }

    /// The [`ErrorKind::Conflict`] error for `instance_id`.
    pub fn conflict(instance_id: crate::InstanceId) -> Self {
        Self::new(
            ErrorKind::Conflict,
            format!("instance id {instance_id} is already taken"),
        )
    }

    /// An [`ErrorKind::Storage`] error.
    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Storage, message)
    }

    /// An [`ErrorKind::InvalidConfig`] error.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }

    /// An [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for BackendError {}

/// The result of every backend operation.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;
