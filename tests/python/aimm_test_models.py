"""AIMM plugin module for the server-level tests: one model type,
``aimm_test_models.Blob``.

Loaded by the real AIMM server through its config
(``plugins: {names: [aimm_test_models]}``, with tests/python on PYTHONPATH)
and imported by tests/python/aimm_server_driver.py to compute expected
answers. A Blob instance holds a deterministic bytes blob of a size chosen
at create time plus a fit counter, so the tests can store models of any size
(e.g. 64 MiB) and check exactly what the server kept:

* create(size, seed=0): fit_count 0, data = blob_bytes(size, seed, 0)
* fit(instance): fit_count + 1, data regenerated for the new count, so every
  fit changes every byte the backend has to store
* predict(instance, tag=None): returns ``{"fit_count", "size", "seed",
  "sha256", "tag"}`` where sha256 is computed from the data the server holds
  right now; the instance is returned unchanged (aimm's engine stores what
  exec_predict hands back, which is the same object)
* serialize / deserialize: a small JSON header line then the raw data;
  deserialize rejects a wrong magic, a wrong length, or data whose SHA-256
  differs from the one in the header, so a corrupted or truncated store fails
  loudly on load (and predict's digest shows whether the data is the one
  expected for the fit count).

Registered with the ``aimm.plugins`` function decorators (instantiate, fit,
predict, serialize, deserialize) under the explicit type name MODEL_TYPE.
"""

import hashlib
import json
import typing

import aimm.plugins

MODEL_TYPE = "aimm_test_models.Blob"
MAGIC = b"aimm-test-blob/1\n"


class Blob(typing.NamedTuple):
    """One model instance (immutable; fit returns a new one)."""

    size: int
    seed: int
    fit_count: int
    data: bytes


def blob_bytes(size: int, seed: int, fit_count: int) -> bytes:
    """Deterministic content for (size, seed, fit_count): SHAKE-256 output,
    incompressible and different for every fit count."""
    key = f"aimm-test-blob:{seed}:{fit_count}".encode()
    return hashlib.shake_256(key).digest(size) if size else b""


def expected_prediction(size: int, seed: int, fit_count: int, tag=None):
    """What predict returns for a model created with (size, seed) and fitted
    fit_count times; used by the driver to check answers independently."""
    return _prediction(Blob(size, seed, fit_count,
                            blob_bytes(size, seed, fit_count)), tag)


@aimm.plugins.instantiate(MODEL_TYPE)
def create(size: int, seed: int = 0) -> Blob:
    """Instantiate plugin: a fresh model of ``size`` bytes."""
    size, seed = int(size), int(seed)
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    return Blob(size, seed, 0, blob_bytes(size, seed, 0))


@aimm.plugins.fit([MODEL_TYPE])
def fit(instance: Blob) -> Blob:
    """Fit plugin: bump the counter and regenerate the data."""
    count = instance.fit_count + 1
    return Blob(instance.size, instance.seed, count,
                blob_bytes(instance.size, instance.seed, count))


@aimm.plugins.predict([MODEL_TYPE])
def predict(instance: Blob, tag=None) -> dict:
    """Predict plugin: describes the held data; never changes the model."""
    return _prediction(instance, tag)


@aimm.plugins.serialize([MODEL_TYPE])
def serialize(instance: Blob) -> bytes:
    """Serialize plugin: MAGIC, one JSON header line, then the raw data."""
    header = {"size": instance.size, "seed": instance.seed,
              "fit_count": instance.fit_count,
              "sha256": hashlib.sha256(instance.data).hexdigest()}
    return b"".join([MAGIC, json.dumps(header).encode(), b"\n",
                     instance.data])


@aimm.plugins.deserialize([MODEL_TYPE])
def deserialize(instance_bytes: bytes) -> Blob:
    """Deserialize plugin: inverse of serialize, with integrity checks."""
    raw = memoryview(instance_bytes)
    if bytes(raw[:len(MAGIC)]) != MAGIC:
        raise ValueError("not a serialized aimm_test_models.Blob (bad magic)")
    end = bytes(raw[len(MAGIC):len(MAGIC) + 4096]).find(b"\n")
    if end < 0:
        raise ValueError("serialized Blob: header line not terminated")
    header_end = len(MAGIC) + end
    header = json.loads(bytes(raw[len(MAGIC):header_end]))
    data = bytes(raw[header_end + 1:])
    if len(data) != header["size"]:
        raise ValueError(f"serialized Blob: {len(data)} data bytes, "
                         f"header says {header['size']}")
    if hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise ValueError("serialized Blob: data does not match its sha256")
    return Blob(header["size"], header["seed"], header["fit_count"], data)


def _prediction(instance: Blob, tag) -> dict:
    return {"fit_count": instance.fit_count, "size": instance.size,
            "seed": instance.seed,
            "sha256": hashlib.sha256(instance.data).hexdigest(), "tag": tag}
