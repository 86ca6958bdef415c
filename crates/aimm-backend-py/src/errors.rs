//! Python exceptions for everything that can go wrong, one class per
//! [`ErrorKind`], all under `aimm_backend.BackendError`.

use aimm_backend_api::{BackendError as ApiError, ErrorKind};
use aimm_backend_loader::Error as LoaderError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    aimm_backend,
    BackendError,
    PyException,
    "Base of every error an aimm_backend backend raises."
);
create_exception!(
    aimm_backend,
    ConfigError,
    BackendError,
    "The backend section is invalid (the message names the JSON path and the rule)."
);
create_exception!(
    aimm_backend,
    LoadError,
    BackendError,
    "The plugin library cannot be found, is not a plugin, or was built against another API."
);
create_exception!(
    aimm_backend,
    NotFoundError,
    BackendError,
    "No model has the instance id."
);
create_exception!(
    aimm_backend,
    ConflictError,
    BackendError,
    "The instance id is already taken."
);
create_exception!(
    aimm_backend,
    InvalidInputError,
    BackendError,
    "An argument is not acceptable."
);
create_exception!(
    aimm_backend,
    StorageError,
    BackendError,
    "The store failed (I/O, corruption, read-only file, ...)."
);
create_exception!(
    aimm_backend,
    UnavailableError,
    BackendError,
    "A service the backend needs (the Hat event server) cannot be reached."
);
create_exception!(
    aimm_backend,
    UnsupportedError,
    BackendError,
    "The backend does not offer the operation."
);
create_exception!(
    aimm_backend,
    PluginPanicError,
    BackendError,
    "The plugin panicked; the panic was caught at the plugin boundary."
);

/// The Python exception for a backend's error.
pub fn backend_error(err: ApiError) -> PyErr {
    let message = err.to_string();
    exception_for(err.kind, message)
}

/// The Python exception for an error of opening a backend.
pub fn open_error(err: LoaderError) -> PyErr {
    let message = err.to_string();
    match err {
        LoaderError::Config(_) => ConfigError::new_err(message),
        LoaderError::Load(_) => LoadError::new_err(message),
        LoaderError::Backend { reason, .. } => exception_for(reason.kind, message),
    }
}

fn exception_for(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        ErrorKind::NotFound => NotFoundError::new_err(message),
        ErrorKind::Conflict => ConflictError::new_err(message),
        ErrorKind::InvalidConfig => ConfigError::new_err(message),
        ErrorKind::InvalidInput => InvalidInputError::new_err(message),
        ErrorKind::Storage => StorageError::new_err(message),
        ErrorKind::Unavailable => UnavailableError::new_err(message),
        ErrorKind::Unsupported => UnsupportedError::new_err(message),
        ErrorKind::Panic => PluginPanicError::new_err(message),
    }
}

/// Adds the exception classes to the module.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("BackendError", py.get_type::<BackendError>())?;
    module.add("ConfigError", py.get_type::<ConfigError>())?;
    module.add("LoadError", py.get_type::<LoadError>())?;
    module.add("NotFoundError", py.get_type::<NotFoundError>())?;
    module.add("ConflictError", py.get_type::<ConflictError>())?;
    module.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    module.add("StorageError", py.get_type::<StorageError>())?;
    module.add("UnavailableError", py.get_type::<UnavailableError>())?;
    module.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    module.add("PluginPanicError", py.get_type::<PluginPanicError>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::with_python;
    use aimm_backend_loader::{ConfigError as LoaderConfigError, LoadError as LoaderLoadError};

    /// The class name of `err` and whether it is a `BackendError`.
    fn class_of(err: PyErr) -> (String, bool) {
        with_python(|py| {
            let class = err.get_type(py);
            let base = class.is_subclass_of::<BackendError>().unwrap();
            (class.name().unwrap().to_string(), base)
        })
    }

    #[test]
    fn each_kind_of_backend_error_has_its_class_under_backend_error() {
        let kinds = [
            (ErrorKind::NotFound, "NotFoundError"),
            (ErrorKind::Conflict, "ConflictError"),
            (ErrorKind::InvalidConfig, "ConfigError"),
            (ErrorKind::InvalidInput, "InvalidInputError"),
            (ErrorKind::Storage, "StorageError"),
            (ErrorKind::Unavailable, "UnavailableError"),
            (ErrorKind::Unsupported, "UnsupportedError"),
            (ErrorKind::Panic, "PluginPanicError"),
        ];
        for (kind, class) in kinds {
            let err = backend_error(ApiError::new(kind, "what happened"));
            with_python(|py| assert!(err.value(py).to_string().contains("what happened")));
            assert_eq!(class_of(err), (class.to_string(), true));
        }
    }

    #[test]
    fn errors_of_opening_have_the_class_of_their_cause() {
        let config = LoaderError::Config(LoaderConfigError::Syntax {
            path: "c.yaml".into(),
            message: "a tab".into(),
        });
        assert_eq!(class_of(open_error(config)), ("ConfigError".into(), true));
        let load = LoaderError::Load(LoaderLoadError::NotFound {
            module: "m".into(),
            searched: vec![],
        });
        assert_eq!(class_of(open_error(load)), ("LoadError".into(), true));
        let backend = LoaderError::Backend {
            module: "m".into(),
            path: "/p.so".into(),
            reason: ApiError::new(ErrorKind::Unavailable, "server away"),
        };
        let err = open_error(backend);
        with_python(|py| {
            let text = err.value(py).to_string();
            assert!(
                text.contains("`m` (/p.so)") && text.contains("server away"),
                "{text}"
            );
        });
        assert_eq!(class_of(err), ("UnavailableError".into(), true));
    }

    #[test]
    fn the_module_gets_every_class() {
        with_python(|py| {
            let module = PyModule::new(py, "errors_test").unwrap();
            register(&module).unwrap();
            for name in [
                "BackendError",
                "ConfigError",
                "LoadError",
                "NotFoundError",
                "ConflictError",
                "InvalidInputError",
                "StorageError",
                "UnavailableError",
                "UnsupportedError",
                "PluginPanicError",
            ] {
                let class = module.getattr(name).unwrap();
                assert_eq!(class.getattr("__name__").unwrap().to_string(), name);
            }
        });
    }
}
