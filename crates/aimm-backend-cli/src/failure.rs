//! Errors sorted by exit code.

use aimm_backend_api::{BackendError, ErrorKind};
use aimm_backend_loader::Error as LoadFailure;

/// An error and the exit code it earns.
#[derive(Debug)]
pub struct Failure {
    error: anyhow::Error,
    code: u8,
}

impl Failure {
    /// Exit 1: the operation failed.
    pub fn operation(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            error: error.into(),
            code: 1,
        }
    }

    /// Exit 2: usage or config error.
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            error: error.into(),
            code: 2,
        }
    }

    /// The error to print.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }

    /// Whether stdout was closed by the reader (`aimm-backend list | head`),
    /// which is not a failure of ours.
    pub fn is_broken_pipe(&self) -> bool {
        self.error
            .chain()
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<LoadFailure> for Failure {
    fn from(err: LoadFailure) -> Self {
        match &err {
            LoadFailure::Backend { reason, .. } if reason.kind != ErrorKind::InvalidConfig => {
                Failure::operation(err)
            }
            _ => Failure::usage(err),
        }
    }
}

impl From<BackendError> for Failure {
    fn from(err: BackendError) -> Self {
        match err.kind {
            ErrorKind::InvalidConfig => Failure::usage(err),
            _ => Failure::operation(err),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::operation(err)
    }
}

/// Adds context to a failure's error, keeping its exit code.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|err| {
            let failure: Failure = err.into();
            Failure {
                error: failure.error.context(context()),
                code: failure.code,
            }
        })
    }
}
