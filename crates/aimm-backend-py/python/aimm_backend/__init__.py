"""AIMM model-persistence backends as Rust plugins, for the stock Python
AIMM server (``aimm`` 1.2.dev1).

Change one line of the server's ``server.yaml``::

    backend:
        module: aimm_backend.sqlite     # was: aimm.server.backend.sqlite
        path: /var/lib/aimm/models.db

Modules the server can name as ``backend.module``:

* :mod:`aimm_backend.sqlite`: the SQLite store, file-compatible with
  ``aimm.server.backend.sqlite``, with real locking and durable commits;
* :mod:`aimm_backend.event`: models as Hat events, payload-compatible with
  ``aimm.server.backend.event``, ids never reused;
* :mod:`aimm_backend.postgres`: a store in PostgreSQL that AIMM servers on
  several machines share;
* :mod:`aimm_backend.plugin`: any backend plugin library, named by the
  section's ``plugin`` key.

Serialization stays in Python (the model plugins' serializers, run off the
event loop); the stores are plugins written against the stable
``aimm-backend-api`` ABI. Errors are :class:`BackendError` subclasses.
"""

from aimm_backend._native import (
    BackendError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    LoadError,
    NotFoundError,
    PluginPanicError,
    StorageError,
    UnavailableError,
    UnsupportedError,
    api_version,
)
from aimm_backend._backend import Backend, SerializationError

__all__ = [
    "Backend",
    "BackendError",
    "ConfigError",
    "ConflictError",
    "InvalidInputError",
    "LoadError",
    "NotFoundError",
    "PluginPanicError",
    "SerializationError",
    "StorageError",
    "UnavailableError",
    "UnsupportedError",
    "api_version",
]
