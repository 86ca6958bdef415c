#!/usr/bin/env python3
"""Benchmark the real Python AIMM SQLite backend (aimm==1.2.dev1).

Run with the venv made by scripts/python-venv.sh. On a fresh file in a new
temporary directory it times, through the backend's public async interface:

  create  --count create_model calls of --size bytes each
  get     one get_models call returning all of them
  update  --count update_model calls (one per model, --size bytes each)

and prints one JSON object on stdout. Models are opaque bytes stored through
an identity serialize/deserialize plugin (see aimm_sqlite_tool.py).

Durability, as read from the installed aimm/server/backend/sqlite.py: the
backend opens "file:<path>?nolock=1" (uri=True, isolation_level=None i.e.
autocommit, detect_types=PARSE_DECLTYPES) and sets no PRAGMA, so every
statement is its own transaction with SQLite's defaults (journal_mode=delete,
synchronous=FULL in the stock build) but with file locking disabled. The
"pragmas" key reports what the backend's connection actually has.
"""

import argparse
import hashlib
import importlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from hat import aio
import aimm
import aimm.plugins

BACKEND_MODULE = "aimm.server.backend.sqlite"
MODEL_TYPE = "py.bench"


def _identity(data):
    return data


def payload(index, size, round_):
    # cheap, distinct per model and per round; content is irrelevant to SQLite
    head = hashlib.sha256(f"{round_}:{index}".encode()).digest()
    return (head * (size // len(head) + 1))[:size]


def read_pragmas(backend):
    # the backend keeps its sqlite3 connection in a private attribute; it is
    # only read here, for reporting
    conn = getattr(backend, "_connection", None)
    if conn is None:
        return None
    out = {}
    for name in ("journal_mode", "synchronous", "locking_mode",
                 "page_size", "cache_size"):
        out[name] = conn.execute(f"PRAGMA {name}").fetchone()[0]
    out["in_transaction"] = conn.in_transaction
    out["isolation_level"] = conn.isolation_level
    return out


async def run(count, size, path):
    module = importlib.import_module(BACKEND_MODULE)
    aimm.plugins.serialize([MODEL_TYPE])(_identity)
    aimm.plugins.deserialize([MODEL_TYPE])(_identity)

    blobs = [payload(i, size, 0) for i in range(count)]
    blobs2 = [payload(i, size, 1) for i in range(count)]

    t_open = time.perf_counter()
    backend = await aio.call(module.create, {"path": str(path)}, None)
    open_s = time.perf_counter() - t_open
    try:
        # private attributes, read-only and outside the timed phases: the
        # connection belongs to the backend's single executor thread
        # (sqlite3 check_same_thread), so read it from there
        pragmas = await backend._executor(read_pragmas, backend)

        t0 = time.perf_counter()
        models = []
        for data in blobs:
            models.append(await backend.create_model(MODEL_TYPE, data))
        create_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        got = await backend.get_models()
        get_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        for model, data in zip(models, blobs2):
            await backend.update_model(model._replace(instance=data))
        update_s = time.perf_counter() - t0

        # verification, outside the timed phases
        after = await backend.get_models()
    finally:
        await aio.uncancellable(backend.async_close())

    by_id = {m.instance_id: m.instance for m in after}
    ok = (
        len(got) == count
        and len(after) == count
        and all(by_id.get(m.instance_id) == d for m, d in zip(models, blobs2))
    )
    return {
        "backend": BACKEND_MODULE,
        "aimm_version": _version("aimm"),
        "python": sys.version.split()[0],
        "sqlite_version": sqlite3.sqlite_version,
        "count": count,
        "size": size,
        "open_s": open_s,
        "create_s": create_s,
        "create_count": len(models),
        "get_models_s": get_s,
        "get_models_count": len(got),
        "update_s": update_s,
        "update_count": len(models),
        "create_per_s": count / create_s if create_s else None,
        "update_per_s": count / update_s if update_s else None,
        "file_bytes": os.path.getsize(path),
        "verified": ok,
        "pragmas": pragmas,
        "connect": "file:<path>?nolock=1 uri=True isolation_level=None "
                   "detect_types=PARSE_DECLTYPES (from installed source)",
    }


def _version(dist):
    try:
        import importlib.metadata as md
        return md.version(dist)
    except Exception:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--size", type=int, default=64 * 1024)
    p.add_argument("--dir", help="parent of the temporary directory "
                                 "(default: system temp dir)")
    p.add_argument("--keep", action="store_true",
                   help="keep the database file and report its path")
    args = p.parse_args()
    if args.count < 1 or args.size < 0:
        p.error("--count must be >= 1 and --size >= 0")

    tmp = tempfile.mkdtemp(prefix="bench-aimm-sqlite-", dir=args.dir)
    path = Path(tmp) / "models.db"
    try:
        result = aio.run_asyncio(run(args.count, args.size, path))
        if args.keep:
            result["path"] = str(path)
    finally:
        if not args.keep:
            for f in Path(tmp).iterdir():
                f.unlink()
            os.rmdir(tmp)
    print(json.dumps(result))
    return 0 if result["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
