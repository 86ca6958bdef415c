#!/usr/bin/env python3
"""The engine's update loop: one model stored after every predict, unchanged,
through the Python interface the AIMM server uses, stock backends against
ours, side by side in one run.

  bench_update_loop.py [--size-mib 64] [--unchanged 100] [--changed 10]
                       [--before-plugins DIR]

For each variant, on a fresh store (event variants: a fresh hat-event-server,
LMDB, flush period 0.1 s, from scripts/hat-event-server.sh), it creates one
model of --size-mib MiB, then times --unchanged calls of ``update_model``
with the model as stored (what the engine does after every predict), then
--changed calls that each store different bytes of the same length (what a
fit does). On the event store every update is followed by a query on the
event client's connection, which the server answers only after everything
sent before it, so writes that do not wait for the server (the stock event
backend) are counted whole, and paced as the engine's predicts pace them.

Variants: stock ``aimm.server.backend.sqlite`` and ``aimm.server.backend.event``,
and ours (``aimm_backend.sqlite``, ``aimm_backend.event`` with ``acknowledge:
registered``, the most a Python host can honour). With --before-plugins DIR,
ours also runs with the plugin .so files of DIR (an earlier build), as
"before".

Bytes written: the growth of ``write_bytes`` in /proc/PID/io of this process
and of the event server over each loop. Linux counts a page when it is
dirtied in the page cache, so a page written twice before writeback counts
once. Prints Markdown.
"""

import argparse
import asyncio
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

import aimm.plugins
import aimm.server.common as common
import hat.event.common
import hat.event.eventer as eventer
from hat import aio
from hat.drivers import tcp

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts/hat-event-server.sh")
MODEL_TYPE = "bench_update_loop.IdentityBytes"
PREFIX = ["aimm", "loop"]


def _identity(data):
    return data


def register_identity_model():
    aimm.plugins.serialize([MODEL_TYPE])(_identity)
    aimm.plugins.deserialize([MODEL_TYPE])(_identity)


def write_bytes(pid="self"):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/io")


class Server:
    def __init__(self, directory):
        self.directory = directory
        env = dict(os.environ, HAT_EVENT_FLUSH_PERIOD="0.1")
        out = subprocess.run(["bash", SCRIPT, "start", str(directory)],
                             capture_output=True, text=True, check=True,
                             env=env).stdout
        port, pid = out.split()[:2]
        self.port, self.pid = int(port), int(pid)

    def stop(self):
        subprocess.run(["bash", SCRIPT, "stop", str(self.directory)],
                       capture_output=True)


async def open_variant(variant, work):
    """The backend, its event client (or None) and the server (or None)."""
    kind, side, plugins = variant
    if kind == "sqlite":
        db = str(work / f"{side}.db")
        if side == "stock":
            import aimm.server.backend.sqlite as module
            conf = {"module": "aimm.server.backend.sqlite", "path": db}
        else:
            import aimm_backend.sqlite as module
            conf = {"module": "aimm_backend.sqlite", "path": db}
            if plugins:
                import aimm_backend.plugin as module
                conf = {"module": "aimm_backend.plugin", "path": db,
                        "plugin": f"{plugins}/libaimm_backend_sqlite.so"}
        return await module.create(conf, None), None, None
    server = Server(work / f"server-{side}")
    if side == "stock":
        import aimm.server.backend.event as module
        conf = {"module": "aimm.server.backend.event", "model_prefix": PREFIX}
    else:
        import aimm_backend.event as module
        conf = {"module": "aimm_backend.event", "model_prefix": PREFIX,
                "acknowledge": "registered"}
        if plugins:
            import aimm_backend.plugin as module
            conf = {"module": "aimm_backend.plugin", "model_prefix": PREFIX,
                    "acknowledge": "registered",
                    "plugin": f"{plugins}/libaimm_backend_event.so"}
    holder = {}

    async def on_events(_, events):
        backend = holder.get("backend")
        if backend is not None and hasattr(backend, "process_events"):
            await backend.process_events(events)

    client = await eventer.connect(
        addr=tcp.Address("127.0.0.1", server.port), client_name=f"loop-{side}",
        subscriptions=[(*PREFIX, "*")], events_cb=on_events)
    backend = await module.create(conf, client)
    holder["backend"] = backend
    return backend, client, server


async def timed_loop(backend, client, server, models):
    own, srv = write_bytes(), write_bytes(server.pid) if server else 0
    started = time.perf_counter()
    for model in models:
        await backend.update_model(model)
        if client is not None:
            # Paced as the engine's predicts are: the stock backend does not
            # wait for the server, and a hundred 85 MiB registrations queued
            # at once make the server miss its pings and drop the connection.
            await client.query(hat.event.common.QueryLatestParams(event_types=[]))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "own_mib": (write_bytes() - own) / 2**20,
        "server_mib": ((write_bytes(server.pid) - srv) / 2**20) if server else 0.0,
    }


async def run_variant(variant, work, blobs, args):
    backend, client, server = await open_variant(variant, work)
    try:
        model = await backend.create_model(MODEL_TYPE, blobs[0])
        if client is not None:
            await client.query(hat.event.common.QueryLatestParams(event_types=[]))
        unchanged = await timed_loop(backend, client, server,
                                     [model] * args.unchanged)
        changed_models = [model._replace(instance=blobs[1 + i % 2])
                          for i in range(args.changed)]
        changed = await timed_loop(backend, client, server, changed_models)
        stored = {m.instance_id: m.instance for m in await backend.get_models()}
        if stored.get(model.instance_id) != changed_models[-1].instance:
            raise RuntimeError(f"{variant}: the model read back differs")
        return unchanged, changed
    finally:
        await backend.async_close()
        if client is not None:
            await client.async_close()
        if server is not None:
            server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--unchanged", type=int, default=100)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--before-plugins")
    parser.add_argument("--only", help="comma-separated backends to run "
                        "(stock, ours-before, ours); default all")
    args = parser.parse_args()
    register_identity_model()
    rng = random.Random(9)
    size = args.size_mib << 20
    blobs = [rng.randbytes(size) for _ in range(3)]
    variants = []
    for kind in ("sqlite", "event"):
        variants.append((kind, "stock", None))
        if args.before_plugins:
            variants.append((kind, "ours-before", args.before_plugins))
        variants.append((kind, "ours", None))
    if args.only:
        variants = [v for v in variants if v[1] in args.only.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        for variant in variants:
            print(f"running {variant[0]} {variant[1]}", file=sys.stderr)
            work = pathlib.Path(tmp) / f"{variant[0]}-{variant[1]}"
            work.mkdir()
            results[variant] = aio.run_asyncio(run_variant(variant, work, blobs, args))
    n_u, n_c = args.unchanged, args.changed
    print(f"| store | backend | {n_u} unchanged updates, s | ms per update | "
          f"MiB written per update (host + event server) | "
          f"{n_c} changed updates, s per update | MiB written per changed update |")
    print("|---|---|---|---|---|---|---|")
    for (kind, side, _), (unchanged, changed) in results.items():
        u_written = (unchanged["own_mib"] + unchanged["server_mib"]) / n_u
        c_written = (changed["own_mib"] + changed["server_mib"]) / n_c
        print(f"| {kind} | {side} | {unchanged['seconds']:.2f} | "
              f"{unchanged['seconds'] * 1000 / n_u:.1f} | {u_written:.1f} | "
              f"{changed['seconds'] / n_c:.3f} | {c_written:.1f} |")


if __name__ == "__main__":
    main()
