#!/usr/bin/env python3
"""A model-size sweep through the Python interface the AIMM server calls:
the stock backends of ``aimm`` 1.2.dev1 against ours (``aimm_backend``),
side by side in one run, with the physical floor beside every figure.

Why: one size (bench_python_package.py: 64 KiB; bench_update_loop.py: one
large model) hides where each side's costs change with the model size:
per-call overheads dominate small models, copies and base64 large ones. A
sweep from 4 KiB to 256 MiB shows both ends, and the floors (what the disk,
the memory bus or the event server need anyway) tell how much is left.

What: for each model size (default 4 KiB x 400, 256 KiB x 200, 2 MiB x 40,
16 MiB x 8, 64 MiB x 3, 256 MiB x 2; ``--sizes`` chooses, ``SIZE:COUNT``
sets a count) and each variant, on a fresh store:

* create: COUNT ``create_model`` calls, each awaited before the next, as
  the engine does;
* get_models: one call returning all of them (event: once the event server
  and this process are quiet, as at the AIMM server's start);
* update, changed: COUNT ``update_model`` calls with new bytes of the same
  length (what a fit does);
* update, unchanged: COUNT ``update_model`` calls with the bytes already
  stored (what the engine does after every predict).

Variants. SQLite: stock ``aimm.server.backend.sqlite``; ours
``aimm_backend.sqlite`` with ``path`` only; with --journal-delete also
ours with ``journal_mode: delete``. Each SQLite write phase is followed by
closing the store (timed as its own row: ours may checkpoint its WAL
then) and opening it again. Event: stock ``aimm.server.backend.event``;
ours ``aimm_backend.event`` with the default ``acknowledge``; ours with
``acknowledge: sent`` (stock's guarantee). Every event variant gets a
fresh hat-event-server (scripts/hat-event-server.sh: LMDB, flush period
0.1 s) or, with --server-per size (the --quick default), a fresh prefix on
the size's server, and a ``hat.event.eventer`` client wired as the AIMM
server wires it: subscribed to the module's ``create_subscription``, its
notifications (filtered by that subscription) awaited in
``backend.process_events``, ``persisted=False``.

Equal work on the event store: stock's ``create_model`` / ``update_model``
return before the event server has registered the event. So every event
write phase is timed twice: until the last call returns ("call") and until
one query sent afterwards on the same connection is answered
("registered": the server handles one connection's messages in order, so
the answer implies every earlier registration is done).

Floors, measured in the same run:

* SQLite, bytes written: the growth of ``write_bytes`` in /proc/self/io
  (all threads) over the phase, and separately over the close after it,
  divided by the phase's payload. Linux counts a page when it is dirtied
  in the page cache, so a page dirtied twice before writeback counts once;
  the file system's own journal is not in it.
* SQLite, syncs: fsync + fdatasync calls per acknowledged write (per close:
  the total), counted by ``strace -f -c -p`` attached to this process. Under
  ptrace every system call stops, so the count comes from a separate,
  untimed pass of the same phases on a fresh file (--no-syncs skips it,
  and the report says so).
* SQLite get_models: a bare copy of the same bytes (``bytes(memoryview(b))``
  for every model: one allocation and one memcpy each).
* Event writes: the server's own time to register the same events (same
  types, same JSON payload, payloads encoded before the clock) sent by a
  bare ``hat.event.eventer`` client without subscriptions on a fresh server:
  (a) ``register(..., with_response=True)`` awaited one after another;
  (b) all registered without response, then one query (until registered).
  "ours/(a)" is ours' call time over (a) (target: at most 1.15).
* Event get_models: the bare client's query of the same events
  (``QueryLatestParams`` over the prefix).

Correctness is checked outside the clock: get_models returns exactly the
models stored, with distinct ids; the SQLite file is read back with plain
``sqlite3`` at the end; the event store is read back with get_models after
the updates.

Models are pseudo-random, incompressible bytes from a fixed seed, stored as
a model type registered with identity (de)serializers
(``aimm.plugins.serialize`` / ``deserialize``), so serialization costs the
same (nothing) on both sides.

How: run with the venv that has ``aimm`` and our wheel::

    target/py-venv/bin/python tests/python/bench_sweep.py --quick
    target/py-venv/bin/python tests/python/bench_sweep.py \\
        --json sweep.json --svg sweep.svg

Markdown tables go to stdout (machine facts and the command line first),
progress to stderr. Figures are medians over --rounds (default 3 up to
2 MiB, 1 above, 1 with --quick; the report says which). Every server start,
stop, strace attach and timed phase has a deadline; event servers are
stopped on exit, also on error.
"""

import argparse
import asyncio
import base64
import contextlib
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import resource
import select
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from hat import aio
import hat.event.common
from hat.drivers import net
from hat.event import eventer

import aimm.plugins

REPO = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO / "scripts" / "hat-event-server.sh"
MODEL_TYPE = "bench_sweep.IdentityBytes"
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

# Counts per size: each phase moves a sensible amount of data (1.6 MiB at
# 4 KiB, 512 MiB at 256 MiB) yet stays bounded in time and memory.
DEFAULT_PLAN = (
    (4 * KiB, 400),
    (256 * KiB, 200),
    (2 * MiB, 40),
    (16 * MiB, 8),
    (64 * MiB, 3),
    (256 * MiB, 2),
)
QUICK_SIZES = (4 * KiB, 256 * KiB, 2 * MiB)
# Small sizes take seconds and are the noisiest: more rounds by default.
SMALL_SIZE = 2 * MiB
SMALL_ROUNDS = 3
QUICK_DIVISOR = 10
MIN_COUNT = 2

# A query that matches nothing: answered at once, but only after every
# message sent before it on the connection.
EMPTY_QUERY = hat.event.common.QueryLatestParams(event_types=[])

SYNC_SYSCALLS = ("fsync", "fdatasync")
CLOSE_TIMEOUT = 120  # seconds to close a store or client after a failure


# --- variants ------------------------------------------------------------


class Variant(NamedTuple):
    key: str
    store: str  # "sqlite" or "event"
    side: str  # "stock" or "ours"
    label: str
    module: str
    options: dict


SQLITE_STOCK = Variant("sqlite_stock", "sqlite", "stock", "stock",
                       "aimm.server.backend.sqlite", {})
SQLITE_OURS = Variant("sqlite_ours", "sqlite", "ours", "ours",
                      "aimm_backend.sqlite", {})
SQLITE_OURS_DELETE = Variant("sqlite_ours_delete", "sqlite", "ours",
                             "ours (journal_mode: delete)",
                             "aimm_backend.sqlite", {"journal_mode": "delete"})
EVENT_STOCK = Variant("event_stock", "event", "stock", "stock",
                      "aimm.server.backend.event", {})
EVENT_OURS = Variant("event_ours", "event", "ours", "ours",
                     "aimm_backend.event", {})
EVENT_OURS_SENT = Variant("event_ours_sent", "event", "ours",
                          "ours (acknowledge: sent)", "aimm_backend.event",
                          {"acknowledge": "sent"})
# ``eventer_server`` is filled in with the variant's server when it runs.
OWN_SERVER = "<the variant's event server>"
EVENT_OURS_OWN = Variant("event_ours_own", "event", "ours",
                         "ours (own connection)", "aimm_backend.event",
                         {"eventer_server": OWN_SERVER})
EVENT_OURS_OWN_REGISTERED = Variant(
    "event_ours_own_registered", "event", "ours",
    "ours (own connection, acknowledge: registered)", "aimm_backend.event",
    {"eventer_server": OWN_SERVER, "acknowledge": "registered"})

ALL_VARIANTS = (SQLITE_STOCK, SQLITE_OURS, SQLITE_OURS_DELETE, EVENT_STOCK,
                EVENT_OURS, EVENT_OURS_SENT, EVENT_OURS_OWN,
                EVENT_OURS_OWN_REGISTERED)

SQLITE_WRITE_PHASES = ("create", "update_changed", "update_unchanged")
PHASES = ("create", "get_models", "update_changed", "update_unchanged")
PHASE_LABELS = {
    "create": "create",
    "get_models": "get_models",
    "update_changed": "update, changed",
    "update_unchanged": "update, unchanged",
    "close_after_create": "close after create",
    "close_after_update_changed": "close after changed",
    "close_after_update_unchanged": "close after unchanged",
}


def chosen_variants(args):
    """The variants to run, in run order (stock first in every store)."""
    chosen = []
    if "sqlite" in args.stores:
        chosen += [SQLITE_STOCK, SQLITE_OURS]
        if args.journal_delete:
            chosen.append(SQLITE_OURS_DELETE)
    if "event" in args.stores:
        chosen += [EVENT_STOCK, EVENT_OURS, EVENT_OURS_SENT, EVENT_OURS_OWN,
                   EVENT_OURS_OWN_REGISTERED]
    if args.only != "all":
        chosen = [v for v in chosen if v.side == args.only]
    if args.variants:
        chosen = [v for v in chosen if v.key in args.variants]
    return chosen


# --- sizes and models ------------------------------------------------------


def parse_size(text):
    """``4k``, ``256KiB``, ``2m``, ``1g`` or plain bytes -> bytes."""
    found = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", text.lower())
    if not found:
        raise ValueError(f"not a size: {text!r}")
    unit = {"": 1, "k": KiB, "m": MiB, "g": GiB}[found.group(2)]
    return int(found.group(1)) * unit


def default_count(size):
    """The count of the default plan's size nearest to ``size`` (log scale)."""
    nearest = min(DEFAULT_PLAN, key=lambda p: abs(math.log(p[0] / size)))
    return nearest[1]


def parse_plan(args):
    """[(size, count)] from --sizes / --count / --quick."""
    if args.sizes:
        items = [s for s in args.sizes.split(",") if s.strip()]
    elif args.quick:
        items = [str(s) for s in QUICK_SIZES]
    else:
        items = [str(s) for s, _ in DEFAULT_PLAN]
    plan = []
    for item in items:
        size_text, _, count_text = item.partition(":")
        size = parse_size(size_text)
        if count_text:
            count = int(count_text)
        elif args.count:
            count = args.count
        elif args.quick:
            count = max(MIN_COUNT, default_count(size) // QUICK_DIVISOR)
        else:
            count = default_count(size)
        plan.append((size, count))
    return plan


def size_label(size):
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def model_bytes(tag, index, size):
    """Reproducible, incompressible bytes: model ``index`` of set ``tag``."""
    rng = random.Random(f"bench_sweep:{tag}:{index}")
    # randbytes draws one integer of 8 * n bits: past 256 MiB it overflows.
    piece = 16 * MiB
    return b"".join(rng.randbytes(min(piece, size - at))
                    for at in range(0, size, piece))


def make_data(size, count):
    return {
        "created": [model_bytes("created", i, size) for i in range(count)],
        "updated": [model_bytes("updated", i, size) for i in range(count)],
    }


def _identity(data):
    return data


def register_identity_model():
    """The model type whose instance is its own serialized form (bytes)."""
    aimm.plugins.serialize([MODEL_TYPE])(_identity)
    aimm.plugins.deserialize([MODEL_TYPE])(_identity)


def check_models(got, expected, where):
    """``got`` (get_models) holds exactly ``expected`` ({id: bytes}), with
    distinct ids."""
    ids = [m.instance_id for m in got]
    if len(set(ids)) != len(ids):
        raise AssertionError(f"{where}: get_models returned repeated ids")
    by_id = {m.instance_id: m for m in got}
    if set(by_id) != set(expected):
        raise AssertionError(
            f"{where}: get_models returned ids {sorted(by_id)[:10]}..., "
            f"expected {sorted(expected)[:10]}...")
    for instance_id, blob in expected.items():
        model = by_id[instance_id]
        if model.model_type != MODEL_TYPE or bytes(model.instance) != blob:
            raise AssertionError(f"{where}: model {instance_id} differs")


def check_created_ids(models, where):
    ids = [m.instance_id for m in models]
    if len(set(ids)) != len(ids):
        raise AssertionError(f"{where}: create_model returned repeated ids")


# --- measuring ---------------------------------------------------------------


def io_counters(pid="self"):
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def cpu_seconds():
    """User + system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid):
    """User + system CPU time of another process (e.g. the event server)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """Times a block; measures the CPU time and the bytes written it cost
    this process.

    Before the clock starts, every dirty page on the machine is written
    back (``os.sync``): otherwise the writeback of what the previous phase
    or variant wrote (a checkpoint's hundreds of MiB, say) would compete for
    the disk with the block being timed, and whichever side ran next would
    pay for it."""

    def __enter__(self):
        os.sync()
        self._io = io_counters()
        self._cpu = cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self._t0
        io = io_counters()
        self.figures = {
            "s": seconds,
            "cpu_s": cpu_seconds() - self._cpu,
            "write_bytes": io["write_bytes"] - self._io["write_bytes"],
            "read_bytes": io["read_bytes"] - self._io["read_bytes"],
        }
        return False


class SyncCounter:
    """Counts this process's fsync / fdatasync calls (all threads, also
    threads started meanwhile) over a block, with strace attached to it.

    Attaching makes every system call of the process stop for the tracer,
    so a block measured this way must not be timed."""

    ATTACH_TIMEOUT = 20
    DETACH_TIMEOUT = 60

    def __enter__(self):
        fd, self._out = tempfile.mkstemp(prefix="bench-sweep-strace-")
        os.close(fd)
        self._proc = subprocess.Popen(
            ["strace", "-f", "-c", "-o", self._out,
             "-e", "trace=" + ",".join(SYNC_SYSCALLS), "-p", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            self._wait_attached()
        except BaseException:
            self._proc.kill()
            self._proc.wait(self.DETACH_TIMEOUT)
            os.unlink(self._out)
            raise
        return self

    def _wait_attached(self):
        # strace says "Process N attached [with M threads]" once every
        # thread is traced; nothing may be counted before that.
        deadline = time.monotonic() + self.ATTACH_TIMEOUT
        seen = b""
        while b"attached" not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"strace did not attach: {seen!r}")
            ready, _, _ = select.select([self._proc.stderr], [], [], left)
            if ready:
                chunk = os.read(self._proc.stderr.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"strace exited: {seen.decode()}")
                seen += chunk

    def __exit__(self, *exc):
        self._proc.send_signal(signal.SIGINT)  # detach; writes the summary
        try:
            self._proc.wait(self.DETACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(self.DETACH_TIMEOUT)
            raise
        finally:
            self._proc.stderr.close()
        try:
            self.counts = parse_strace_summary(Path(self._out).read_text())
        finally:
            os.unlink(self._out)
        return False


def parse_strace_summary(text):
    """{syscall: calls} from ``strace -c`` output, 0 for the absent."""
    counts = dict.fromkeys(SYNC_SYSCALLS, 0)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in counts and parts[3].isdigit():
            counts[parts[-1]] = int(parts[3])
    counts["syncs"] = sum(counts[s] for s in SYNC_SYSCALLS)
    return counts


def check_strace():
    """strace must be there and able to attach to this process."""
    if shutil.which("strace") is None:
        raise SystemExit(
            "strace is missing: install it (apt-get install strace) or pass "
            "--no-syncs to run without sync counts")
    with SyncCounter():
        pass


def phase_deadline(args, payload):
    """Seconds one phase may take before the run is declared stuck."""
    return args.phase_timeout + payload / MiB * args.phase_timeout_per_mib


async def bounded(coro, seconds, what):
    try:
        return await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{what} took longer than {seconds:.3g} s") from None


# --- SQLite -------------------------------------------------------------------


def sqlite_conf(variant, path):
    return dict(variant.options, module=variant.module, path=str(path))


class Store:
    """The one reference to an open backend, so that closing also frees it
    (older builds of ours closed their SQLite connection, and checkpointed
    the WAL, only when the native object was freed): the close rows include
    that for both sides."""

    def __init__(self, backend):
        self.backend = backend

    async def close(self):
        await self.backend.async_close()
        self.backend = None
        gc.collect()


async def open_store(variant, path, info):
    module = importlib.import_module(variant.module)
    backend = await aio.call(module.create, sqlite_conf(variant, path), None)
    note_plugin(backend, info)
    return Store(backend)


async def create_all(backend, blobs):
    return [await backend.create_model(MODEL_TYPE, blob) for blob in blobs]


async def update_all(backend, models):
    for model in models:
        await backend.update_model(model)


def copy_floor(blobs):
    """Seconds for one bare copy of every model (allocation + memcpy)."""
    gc.collect()
    started = time.perf_counter()
    copies = [bytes(memoryview(b)) for b in blobs]
    seconds = time.perf_counter() - started
    del copies
    return {"s": seconds}


async def sqlite_pass(variant, path, data, measure, timed, info):
    """The phases of one SQLite variant on the fresh file ``path``.

    ``measure(name, factory)`` runs and records one phase; ``timed`` is
    False in the sync-count pass, which skips get_models (it syncs nothing)
    and the file check. A store a failed phase left open is closed."""
    opened = []

    async def reopen():
        opened.append(await open_store(variant, path, info))
        return opened[-1]

    try:
        return await sqlite_phases(variant, path, data, measure, timed,
                                   reopen)
    finally:
        for store in opened:
            if store.backend is not None:
                with contextlib.suppress(Exception):
                    await bounded(store.close(), CLOSE_TIMEOUT,
                                  "closing after a failure")


async def sqlite_phases(variant, path, data, measure, timed, reopen):
    store = await reopen()
    models = await measure("create",
                           lambda: create_all(store.backend, data["created"]))
    check_created_ids(models, variant.key)
    await measure("close_after_create", store.close)

    store = await reopen()
    extra = {}
    if timed:
        got = await measure("get_models", store.backend.get_models)
        check_models(got, {m.instance_id: b
                           for m, b in zip(models, data["created"])},
                     f"{variant.key} get_models")
        del got
        extra["copy_floor"] = copy_floor(data["created"])

    changed = [m._replace(instance=b) for m, b in zip(models, data["updated"])]
    await measure("update_changed",
                  lambda: update_all(store.backend, changed))
    await measure("close_after_update_changed", store.close)

    store = await reopen()
    await measure("update_unchanged",
                  lambda: update_all(store.backend, changed))
    await measure("close_after_update_unchanged", store.close)

    if timed:
        extra["file"] = verify_file(path, changed)
    return extra


def verify_file(path, models):
    """Plain sqlite3 reads back exactly ``models``; the file's journal mode
    and size."""
    conn = sqlite3.connect(path)
    try:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        rows = conn.execute(
            "SELECT id, type, instance FROM models ORDER BY id").fetchall()
    finally:
        conn.close()
    want = sorted((m.instance_id, MODEL_TYPE, m.instance) for m in models)
    if rows != want:
        raise AssertionError(f"{path}: the stored models are not the expected")
    return {"journal_mode": journal_mode, "bytes": os.path.getsize(path)}


def remove_sqlite(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def run_sqlite_timed(variant, path, data, deadline, info):
    figures = {}

    async def measure(name, factory):
        gc.collect()  # no collection of the previous phase's garbage inside
        with Meter() as m:
            result = await bounded(factory(), deadline, f"{variant.key} {name}")
        figures[name] = m.figures
        return result

    remove_sqlite(path)
    try:
        figures.update(await sqlite_pass(variant, path, data, measure, True,
                                         info))
    finally:
        remove_sqlite(path)
    return figures


async def run_sqlite_syncs(variant, path, data, deadline):
    counts = {}

    async def measure(name, factory):
        gc.collect()
        with SyncCounter() as c:
            result = await bounded(factory(), deadline, f"{variant.key} {name}")
        counts[name] = c.counts
        return result

    remove_sqlite(path)
    try:
        await sqlite_pass(variant, path, data, measure, False, {})
    finally:
        remove_sqlite(path)
    return counts


# --- event servers --------------------------------------------------------------


class EventServer:
    """One hat-event-server from scripts/hat-event-server.sh, in ``directory``."""

    START_TIMEOUT = 120
    STOP_TIMEOUT = 60

    def __init__(self, directory):
        self.directory = directory
        self.running = False

    def start(self):
        # Marked running first: if the start script overruns its deadline,
        # stop() still asks it to stop whatever it left behind.
        self.running = True
        proc = subprocess.run(
            ["bash", str(SERVER_SCRIPT), "start", str(self.directory)],
            capture_output=True, text=True, timeout=self.START_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"hat-event-server did not start:\n{proc.stderr}")
        port, pid = proc.stdout.split()[:2]
        self.port, self.pid = int(port), int(pid)

    def stop(self):
        if not self.running:
            return
        self.running = False
        proc = subprocess.run(
            ["bash", str(SERVER_SCRIPT), "stop", str(self.directory)],
            capture_output=True, text=True, timeout=self.STOP_TIMEOUT)
        if proc.returncode != 0:
            print(f"stopping {self.directory}: {proc.stderr}", file=sys.stderr)
        shutil.rmtree(self.directory, ignore_errors=True)  # LMDB files are big


class Servers:
    """Every server this run started, so that all are stopped on exit."""

    def __init__(self, workdir):
        self._workdir = workdir
        self._started = []
        self._n = 0

    def start(self, name):
        self._n += 1
        server = EventServer(self._workdir / f"server-{self._n}-{name}")
        self._started.append(server)
        server.start()
        return server

    def stop_all(self):
        for server in self._started:
            try:
                server.stop()
            except Exception as e:  # keep stopping the others
                print(f"stopping {server.directory}: {e}", file=sys.stderr)


CONNECT_TIMEOUT = 30


async def connect_as_server(port, module, conf, name):
    """An eventer client wired as the AIMM server wires its backend's (see
    aimm.server.runners): subscribed to ``create_subscription(conf)``, every
    notification filtered by that subscription and awaited in
    ``backend.process_events`` inside the client's receive loop. Returns the
    client and a holder whose ``backend`` is set once created."""
    subscription = []
    if hasattr(module, "create_subscription"):
        subscription = list(module.create_subscription(conf))
    matcher = hat.event.common.create_subscription(subscription)
    holder = argparse.Namespace(backend=None)

    async def on_events(_client, events):
        backend = holder.backend
        if backend is None or not hasattr(backend, "process_events"):
            return
        await backend.process_events(
            [e for e in events if matcher.matches(e.type)])

    client = await bounded(
        eventer.connect(net.TcpAddress("127.0.0.1", port), name,
                        subscriptions=subscription, events_cb=on_events,
                        status_cb=None),
        CONNECT_TIMEOUT, "connecting to the event server")
    return client, holder


async def timed_writes(client, write_all, deadline, what, server_pid):
    """Runs ``write_all()``; seconds until it returns ("call") and until a
    query sent afterwards on ``client``'s connection is answered
    ("registered")."""
    gc.collect()
    server_cpu = process_cpu_seconds(server_pid)
    cpu = cpu_seconds()
    started = time.perf_counter()
    result = await bounded(write_all(), deadline, what)
    call = time.perf_counter() - started
    await bounded(client.query(EMPTY_QUERY), deadline, what + " (query)")
    registered = time.perf_counter() - started
    return result, {
        "call_s": call,
        "registered_s": registered,
        "cpu_s": cpu_seconds() - cpu,
        "server_cpu_s": process_cpu_seconds(server_pid) - server_cpu,
    }


# A process counts as quiet once it used less than QUIET_CPU seconds of CPU
# in QUIET_WINDOW seconds (the event server's 0.1 s flush timer alone costs
# a few ms; /proc counts in 10 ms ticks).
QUIET_WINDOW = 0.3
QUIET_CPU = 0.03


async def quiet(server_pid, deadline, what):
    """Waits until the event server and this process are quiet.

    The server answers a registration before it persists the events and
    notifies subscribers, and ours on its own connection decodes those
    notifications in the background; a read timed meanwhile pays for the
    writes before it (in one sweep ours' first get_models of 2 x 256 MiB
    right after its creates took 22.0 s, the next two 12.6 s and 13.9 s,
    stock's 17.9-19.3 s). The server calls get_models once, at start, on a
    server with nothing else to do: so both sides' reads are timed that
    way."""
    async def settle():
        while True:
            server_cpu = process_cpu_seconds(server_pid)
            cpu = cpu_seconds()
            await asyncio.sleep(QUIET_WINDOW)
            if (process_cpu_seconds(server_pid) - server_cpu < QUIET_CPU
                    and cpu_seconds() - cpu < QUIET_CPU):
                return

    await bounded(settle(), deadline, f"{what}: waiting for a quiet server")


async def run_event_variant(variant, server, prefix, data, deadline, info):
    module = importlib.import_module(variant.module)
    conf = dict(variant.options, module=variant.module,
                model_prefix=list(prefix))
    if conf.get("eventer_server") == OWN_SERVER:
        conf["eventer_server"] = {"host": "127.0.0.1", "port": server.port,
                                  "timeout": CONNECT_TIMEOUT}
    client, holder = await connect_as_server(server.port, module, conf,
                                             f"bench-sweep-{variant.key}")
    figures = {}
    try:
        backend = await bounded(aio.call(module.create, conf, client),
                                deadline, f"{variant.key} create()")
        holder.backend = backend
        note_plugin(backend, info)
        try:
            await event_phases(variant, backend, client, server, data,
                               deadline, figures)
        finally:
            await bounded(backend.async_close(), deadline,
                          f"{variant.key} async_close")
    finally:
        await bounded(client.async_close(), CONNECT_TIMEOUT,
                      "closing the event client")
    return figures


async def event_phases(variant, backend, client, server, data, deadline,
                       figures):
    where = variant.key
    models, figures["create"] = await timed_writes(
        client, lambda: create_all(backend, data["created"]), deadline,
        f"{where} create", server.pid)
    check_created_ids(models, where)

    gc.collect()
    await quiet(server.pid, deadline, where)
    started = time.perf_counter()
    got = await bounded(backend.get_models(), deadline, f"{where} get_models")
    figures["get_models"] = {"s": time.perf_counter() - started}
    check_models(got, {m.instance_id: b
                       for m, b in zip(models, data["created"])},
                 f"{where} get_models")
    del got

    changed = [m._replace(instance=b) for m, b in zip(models, data["updated"])]
    _, figures["update_changed"] = await timed_writes(
        client, lambda: update_all(backend, changed), deadline,
        f"{where} update_changed", server.pid)
    _, figures["update_unchanged"] = await timed_writes(
        client, lambda: update_all(backend, changed), deadline,
        f"{where} update_unchanged", server.pid)

    got = await bounded(backend.get_models(), deadline, f"{where} check")
    check_models(got, {m.instance_id: m.instance for m in changed},
                 f"{where} after the updates")


# --- event floor: a bare eventer client -------------------------------------------


def model_event(prefix, instance_id, payload):
    """The event a model is stored as (stock's type and payload)."""
    return hat.event.common.RegisterEvent(
        type=(*prefix, str(instance_id)), source_timestamp=None,
        payload=payload)


def model_payloads(blobs):
    """The JSON payloads of ``blobs``, encoded before any clock runs."""
    return [hat.event.common.EventPayloadJson(
        {"type": MODEL_TYPE, "instance": base64.b64encode(b).decode("ascii")})
        for b in blobs]


async def floor_answered(client, events, deadline, what):
    """(a): each registration with response, awaited before the next."""
    gc.collect()
    started = time.perf_counter()

    async def register_all():
        for event in events:
            result = await client.register([event], with_response=True)
            if result is None or None in result:
                raise RuntimeError(f"{what}: the server refused an event")

    await bounded(register_all(), deadline, what)
    return {"s": time.perf_counter() - started}


async def floor_unanswered(client, events, deadline, what):
    """(b): every registration without response, then one query."""
    gc.collect()
    started = time.perf_counter()

    async def register_all():
        for event in events:
            await client.register([event])
        await client.query(EMPTY_QUERY)

    await bounded(register_all(), deadline, what)
    return {"s": time.perf_counter() - started}


async def run_event_floor(server, prefix, data, deadline):
    """The server's own time for the events the backends send, from a bare
    client without subscriptions (the only data coming back is (a)'s
    answers, one echo per event, as ours gets one notification per
    event)."""
    prefix_a, prefix_b = (*prefix, "a"), (*prefix, "b")
    client = await bounded(
        eventer.connect(net.TcpAddress("127.0.0.1", server.port),
                        "bench-sweep-floor"),
        CONNECT_TIMEOUT, "connecting the floor client")
    ids = range(1, len(data["created"]) + 1)
    figures = {"a": {}, "b": {}}
    try:
        for phase, blobs in (("create", data["created"]),
                             ("update_changed", data["updated"]),
                             ("update_unchanged", data["updated"])):
            payloads = model_payloads(blobs)
            for key, floor, pfx in (("a", floor_answered, prefix_a),
                                    ("b", floor_unanswered, prefix_b)):
                events = [model_event(pfx, i, p) for i, p in zip(ids, payloads)]
                figures[key][phase] = await floor(
                    client, events, deadline, f"floor ({key}) {phase}")
            del payloads, events
            if phase == "create":
                await quiet(server.pid, deadline, "floor")
                figures["a"]["get_models"] = await floor_query(
                    client, prefix_a, len(blobs), deadline)
    finally:
        await bounded(client.async_close(), CONNECT_TIMEOUT,
                      "closing the floor client")
    return figures


async def floor_query(client, prefix, count, deadline):
    """The bare client's query returning the stored events (get_models)."""
    gc.collect()
    params = hat.event.common.QueryLatestParams(event_types=[(*prefix, "*")])
    started = time.perf_counter()
    result = await bounded(client.query(params), deadline, "floor query")
    seconds = time.perf_counter() - started
    if len(result.events) != count:
        raise AssertionError(f"floor query returned {len(result.events)} "
                             f"events, expected {count}")
    return {"s": seconds}


# --- one size ---------------------------------------------------------------------


def progress(text):
    print(text, file=sys.stderr, flush=True)


async def attempt(what, factory, errors):
    """Runs one variant (or floor, or sync pass): its figures, or, when it
    fails, ``{"error": ...}`` so that one failure at a large size does not
    lose the rest of a long sweep (the run still exits non-zero)."""
    started = time.perf_counter()
    try:
        figures = await factory()
    except Exception as e:
        message = f"{type(e).__name__}: {e}"
        errors.append(f"{what}: {message}")
        progress(f"{what}: FAILED: {message}")
        return {"error": message}
    progress(f"{what}: {time.perf_counter() - started:.1f} s")
    return figures


class ServerChoice:
    """The event server for each event variant of one round: a fresh one
    per variant, or one shared by the round (a fresh prefix per variant)."""

    def __init__(self, servers, per, name):
        self._servers, self._per, self._name = servers, per, name
        self._shared = None

    def start(self, key):
        if self._per == "variant":
            return self._servers.start(f"{self._name}-{key}")
        if self._shared is None:
            self._shared = self._servers.start(self._name)
        return self._shared

    def done(self, server):
        if server is not self._shared:
            server.stop()

    def close(self):
        if self._shared is not None:
            self._shared.stop()


async def run_event_on_server(choice, key, run):
    server = choice.start(key)
    try:
        return await run(server)
    finally:
        choice.done(server)


async def run_round(args, r, sized, data, variants, servers, workdir, info,
                    errors):
    """One round of every variant (and the event floor) at one size."""
    size, deadline = sized["size"], sized["deadline"]
    head = f"{sized['label']} x{sized['count']} round {r + 1}"
    this_round = {}
    choice = ServerChoice(servers, args.server_per, f"{size}-r{r}")
    try:
        for v in variants:
            what = f"{head}: {v.store} {v.label}"
            if v.store == "sqlite":
                path = workdir / f"{v.key}.db"
                factory = (lambda v=v, path=path:
                           run_sqlite_timed(v, path, data, deadline, info))
            else:
                prefix = ("bench_sweep", str(size), f"r{r}", v.key)
                factory = (lambda v=v, prefix=prefix: run_event_on_server(
                    choice, v.key, lambda server: run_event_variant(
                        v, server, prefix, data, deadline, info)))
            this_round[v.key] = await attempt(what, factory, errors)
        if any(v.store == "event" for v in variants) and not args.no_floor:
            prefix = ("bench_sweep", str(size), f"r{r}", "floor")
            this_round["event_floor"] = await attempt(
                f"{head}: event floor",
                lambda: run_event_on_server(
                    choice, "floor", lambda server: run_event_floor(
                        server, prefix, data, deadline)),
                errors)
    finally:
        choice.close()
    return this_round


async def run_size(args, size, count, variants, servers, workdir, info,
                   errors):
    """Every round of every variant at one size, then the sync-count pass;
    the raw figures."""
    sized = {"size": size, "count": count, "label": size_label(size),
             "payload": size * count,
             "deadline": phase_deadline(args, size * count)}
    data = make_data(size, count)
    sized["rounds"] = [
        await run_round(args, r, sized, data, variants, servers, workdir,
                        info, errors)
        for r in range(rounds_for(args, size))]
    sized["syncs"] = {}
    if not args.no_syncs:
        for v in (v for v in variants if v.store == "sqlite"):
            sized["syncs"][v.key] = await attempt(
                f"{sized['label']} x{count}: sync count {v.label}",
                lambda v=v: run_sqlite_syncs(
                    v, workdir / f"{v.key}-syncs.db", data,
                    sized["deadline"]),
                errors)
    return sized


def note_plugin(backend, info):
    """Which native plugin served ``backend`` (ours only)."""
    native = getattr(backend, "native", None)
    if native is None:
        return
    info.setdefault("plugins", {})[native.plugin_name] = {
        "version": native.plugin_version, "library": native.library_path}


# --- summary --------------------------------------------------------------------


def median_of(rounds, key, phase, field):
    values = [r[key][phase][field] for r in rounds
              if key in r and phase in r[key]]
    return statistics.median(values) if values else None


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def summarize_sqlite(sized, variants):
    """{phase: {key: {...}}} for the SQLite variants at one size."""
    rounds, payload = sized["rounds"], sized["payload"]
    count = sized["count"]
    summary = {}
    rows = [p for w in SQLITE_WRITE_PHASES for p in (w, f"close_after_{w}")]
    rows.insert(2, "get_models")
    for phase in rows:
        entry = {}
        for v in variants:
            s = median_of(rounds, v.key, phase, "s")
            written = median_of(rounds, v.key, phase, "write_bytes")
            syncs = sized["syncs"].get(v.key, {}).get(phase, {}).get("syncs")
            is_close = phase.startswith("close")
            entry[v.key] = {
                "s": s,
                "cpu_s": median_of(rounds, v.key, phase, "cpu_s"),
                "write_bytes": written,
                "written_per_payload": ratio(written, payload),
                "syncs": syncs,
                "syncs_per_write": (None if syncs is None or is_close
                                    else syncs / count),
            }
        for v in variants:
            if v.side == "ours":
                entry[v.key]["stock_over_this"] = ratio(
                    entry.get(SQLITE_STOCK.key, {}).get("s"), entry[v.key]["s"])
        if phase == "get_models":
            copies = [r[v.key]["copy_floor"]["s"] for r in rounds
                      for v in variants if "copy_floor" in r.get(v.key, {})]
            entry["copy_floor_s"] = (statistics.median(copies) if copies
                                     else None)
        summary[phase] = entry
    return summary


def summarize_event(sized, variants):
    rounds = sized["rounds"]
    stock = EVENT_STOCK.key
    summary = {}
    for phase in PHASES:
        entry = {}
        for v in variants:
            if phase == "get_models":
                entry[v.key] = {"call_s": median_of(rounds, v.key, phase, "s")}
                entry[v.key]["registered_s"] = entry[v.key]["call_s"]
            else:
                entry[v.key] = {
                    f: median_of(rounds, v.key, phase, f)
                    for f in ("call_s", "registered_s", "cpu_s",
                              "server_cpu_s")}
        floor = floor_medians(rounds, phase)
        entry["floor"] = floor
        for v in variants:
            if v.side != "ours":
                continue
            mine = entry[v.key]
            theirs = entry.get(stock, {})
            mine["stock_call_over_this_call"] = ratio(
                theirs.get("call_s"), mine["call_s"])
            mine["stock_registered_over_this_registered"] = ratio(
                theirs.get("registered_s"), mine["registered_s"])
            mine["this_call_over_floor_a"] = ratio(mine["call_s"], floor["a"])
        summary[phase] = entry
    return summary


def floor_medians(rounds, phase):
    out = {}
    for key in ("a", "b"):
        values = [r["event_floor"][key][phase]["s"] for r in rounds
                  if phase in r.get("event_floor", {}).get(key, {})]
        out[key] = statistics.median(values) if values else None
    return out


# --- report ---------------------------------------------------------------------


def fmt_s(x):
    if x is None:
        return "-"
    if x >= 1:
        return f"{x:.3f}"
    return f"{x:.4f}" if x >= 0.001 else f"{x:.6f}"


def fmt_x(x):
    return "-" if x is None else f"{x:.2f}x"


def fmt_num(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sqlite_table(sweep, variants, syncs_counted):
    ours = [v for v in variants if v.side == "ours"]
    stock = [v for v in variants if v.side == "stock"]
    headers = ["size", "phase", "n"]
    for v in stock + ours:
        headers.append(f"{v.label} s")
        if v.side == "ours" and stock:
            headers.append(f"stock/{v.label}")
    headers.append("written/payload " + " / ".join(v.label for v in variants))
    if syncs_counted:
        headers.append("syncs per write (close: total) "
                       + " / ".join(v.label for v in variants))
    headers.append("floor: copy s")
    rows = []
    for sized in sweep:
        summary = sized["summary"]["sqlite"]
        for phase, entry in summary.items():
            row = [sized["label"], PHASE_LABELS[phase], sized["count"]]
            for v in stock + ours:
                row.append(fmt_s(entry[v.key]["s"]))
                if v.side == "ours" and stock:
                    row.append(fmt_x(entry[v.key]["stock_over_this"]))
            if phase == "get_models":
                row.append("-")
            else:
                row.append(" / ".join(
                    fmt_num(entry[v.key]["written_per_payload"])
                    for v in variants))
            if syncs_counted:
                row.append("-" if phase == "get_models" else " / ".join(
                    fmt_num(entry[v.key]["syncs_per_write"])
                    if not phase.startswith("close")
                    else fmt_num(entry[v.key]["syncs"], 0)
                    for v in variants))
            row.append(fmt_s(entry.get("copy_floor_s")))
            rows.append(row)
    return markdown_table(headers, rows)


def event_table(sweep, variants, with_floor):
    ours = [v for v in variants if v.side == "ours"]
    stock = [v for v in variants if v.side == "stock"]
    headers = ["size", "phase", "n"]
    for v in stock + ours:
        headers.append(f"{v.label} s call / registered")
        if v.side == "ours" and stock:
            headers.append(f"stock/{v.label} call / registered")
    if with_floor:
        headers += ["floor (a) s", "floor (b) s"]
        headers += [f"{v.label}/(a)" for v in ours]
    rows = []
    for sized in sweep:
        summary = sized["summary"]["event"]
        for phase in PHASES:
            entry = summary[phase]
            row = [sized["label"], PHASE_LABELS[phase], sized["count"]]
            for v in stock + ours:
                e = entry[v.key]
                if phase == "get_models":
                    row.append(fmt_s(e["call_s"]))
                else:
                    row.append(f"{fmt_s(e['call_s'])} / "
                               f"{fmt_s(e['registered_s'])}")
                if v.side == "ours" and stock:
                    if phase == "get_models":
                        row.append(fmt_x(e["stock_call_over_this_call"]))
                    else:
                        row.append(
                            f"{fmt_x(e['stock_call_over_this_call'])} / "
                            f"{fmt_x(e['stock_registered_over_this_registered'])}")
            if with_floor:
                row += [fmt_s(entry["floor"]["a"]), fmt_s(entry["floor"]["b"])]
                row += [fmt_x(entry[v.key]["this_call_over_floor_a"])
                        for v in ours]
            rows.append(row)
    return markdown_table(headers, rows)


OVERVIEW_PHASES = (("create", "create"), ("get_models", "get_models"),
                   ("update_changed", "changed upd."),
                   ("update_unchanged", "unchanged upd."))

# The event variants of the overview, in the order of each cell's figures.
OVERVIEW_EVENT = (EVENT_OURS, EVENT_OURS_OWN, EVENT_OURS_OWN_REGISTERED)


def overview_tables(sweep, variants):
    """One row per size: stock's time over ours for each operation, the
    floors beside; SQLite, then event (at equal work: until registered),
    each cell of the event table holding one figure per ours variant."""
    keys = {v.key for v in variants}
    tables = []
    if {SQLITE_OURS.key, SQLITE_STOCK.key} <= keys:
        headers = ["size"] + [f"SQLite {label}" for _, label in OVERVIEW_PHASES]
        headers.append("SQLite bytes/create (stock)")
        rows = [[sized["label"]]
                + [overview_cell(sized["summary"], "sqlite", phase)
                   for phase, _ in OVERVIEW_PHASES]
                + [overview_cell(sized["summary"], "sqlite_bytes", "create")]
                for sized in sweep]
        tables.append(markdown_table(headers, rows))
    ours = [v for v in OVERVIEW_EVENT if v.key in keys]
    if ours and EVENT_STOCK.key in keys:
        names = " / ".join(v.label for v in ours)
        headers = (["size"] + [f"event {label}" for _, label in OVERVIEW_PHASES]
                   + ["event create / floor (a)"])
        rows = []
        for sized in sweep:
            row = [sized["label"]]
            for phase, _ in OVERVIEW_PHASES:
                row.append(" / ".join(
                    overview_cell(sized["summary"], ("event", v.key), phase)
                    for v in ours))
            row.append(" / ".join(
                overview_cell(sized["summary"], ("event_floor", v.key), "create")
                for v in ours))
            rows.append(row)
        tables.append(f"Event cells: {names}.\n\n" + markdown_table(headers, rows))
    if {EVENT_OURS_SENT.key, EVENT_STOCK.key} <= keys:
        headers = ["size"] + [f"event, sent: {label}"
                              for _, label in OVERVIEW_PHASES]
        rows = [[sized["label"]]
                + [overview_cell(sized["summary"],
                                 ("event_call", EVENT_OURS_SENT.key), phase)
                   for phase, _ in OVERVIEW_PHASES]
                for sized in sweep]
        tables.append(f"{EVENT_OURS_SENT.label}, stock's guarantee: stock's "
                      "call time over ours'.\n\n" + markdown_table(headers, rows))
    return "\n\n".join(tables)


def overview_cell(summary, kind, phase):
    kind, ours = kind if isinstance(kind, tuple) else (kind, None)
    try:
        if kind == "sqlite":
            return fmt_x(summary["sqlite"][phase][SQLITE_OURS.key]
                         ["stock_over_this"])
        if kind == "sqlite_bytes":
            entry = summary["sqlite"][phase]
            return (f"{fmt_num(entry[SQLITE_OURS.key]['written_per_payload'])}"
                    f" ({fmt_num(entry[SQLITE_STOCK.key]['written_per_payload'])})")
        if kind == "event":
            return fmt_x(summary["event"][phase][ours]
                         ["stock_registered_over_this_registered"])
        if kind == "event_call":
            return fmt_x(summary["event"][phase][ours]
                         ["stock_call_over_this_call"])
        if kind == "event_floor":
            return fmt_num(summary["event"][phase][ours]
                           ["this_call_over_floor_a"])
    except (KeyError, TypeError):
        return "-"
    return "-"


def print_report(result, variants, args):
    sweep = result["sweep"]
    sqlite_v = [v for v in variants if v.store == "sqlite"]
    event_v = [v for v in variants if v.store == "event"]
    print("## Overview")
    print()
    print("Stock's time over ours (above 1: ours is faster), by model size; "
          "event at equal work (both until the server has registered the "
          "writes). Bytes: written per byte of model by an acknowledged "
          "create. Floor (a): ours over a bare client's answered registration "
          "of the same events on the same server.")
    print()
    print(overview_tables(sweep, variants))
    print()
    print(f"Seconds are medians of the rounds per size "
          f"({rounds_text(result['config'])}); "
          f"ratios are stock's median over ours' (above 1: ours is faster).")
    if sqlite_v:
        print()
        print("## SQLite")
        print()
        print("written/payload: growth of /proc/self/io write_bytes over the "
              "phase (close rows: over the close) divided by the payload of "
              "the phase (of the phase before, for a close). "
              + ("syncs: fsync + fdatasync per acknowledged write, from a "
                 "separate untimed pass under strace; close rows give the "
                 "total of the close."
                 if not args.no_syncs else
                 "syncs: not counted (--no-syncs)."))
        print()
        print(sqlite_table(sweep, sqlite_v, not args.no_syncs))
    if event_v:
        with_floor = not args.no_floor
        print()
        print("## Event")
        print()
        print("call: until the last call returned; registered: until a query "
              "sent afterwards on the same connection was answered; "
              "stock/x call / registered: stock's call time over x's, and "
              "stock's registered time over x's (equal work). "
              "get_models: one call, once the server and this process are quiet. Floors: a bare eventer client on a fresh "
              "server, (a) register with response, each awaited; (b) register "
              "without response, then one query; get_models row: its query "
              "of the same events. x/(a): x's call time over (a).")
        print()
        print(event_table(sweep, event_v, with_floor))


# --- SVG chart ---------------------------------------------------------------------


OP_COLOURS = {
    "create": "#1f77b4",
    "get_models": "#2ca02c",
    "update_changed": "#d62728",
    "update_unchanged": "#9467bd",
}


# (store, stock, ours, legend, dash, ratio field, with get_models): the
# lines of the chart, one per entry and operation. Event lines compare with
# stock's call time (what the engine waits for) and with stock's registered
# time (equal work).
CHART_SERIES = (
    ("sqlite", SQLITE_STOCK, SQLITE_OURS, "SQLite ours", "",
     "stock_over_this", True),
    ("sqlite", SQLITE_STOCK, SQLITE_OURS_DELETE, "SQLite ours (delete)",
     "2,3", "stock_over_this", True),
    ("event", EVENT_STOCK, EVENT_OURS, "Event ours vs stock's call", "8,4",
     "stock_call_over_this_call", True),
    ("event", EVENT_STOCK, EVENT_OURS, "Event ours vs stock registered",
     "1,3", "stock_registered_over_this_registered", False),
    ("event", EVENT_STOCK, EVENT_OURS_SENT,
     "Event ours (sent) vs stock's call", "8,3,1,3",
     "stock_call_over_this_call", False),
    ("event", EVENT_STOCK, EVENT_OURS_OWN,
     "Event ours (own connection) vs stock registered", "4,2",
     "stock_registered_over_this_registered", True),
    ("event", EVENT_STOCK, EVENT_OURS_OWN_REGISTERED,
     "Event ours (own connection, registered) vs stock registered", "12,3",
     "stock_registered_over_this_registered", False),
)


def chart_lines(sweep, variants):
    """[(label, phase, dash, [(size, ratio)])]: ratio to stock, per ours
    variant and operation, grouped by variant."""
    keys = {v.key for v in variants}
    lines = []
    for store, stock, ours, legend, dash, field, with_get in CHART_SERIES:
        if not {stock.key, ours.key} <= keys:
            continue
        for phase in PHASES:
            if phase == "get_models" and not with_get:
                continue
            points = [(sized["size"],
                       sized["summary"][store][phase][ours.key].get(field))
                      for sized in sweep]
            points = [(size, r) for size, r in points if r]
            if points:
                lines.append((f"{legend}: {PHASE_LABELS[phase]}", phase, dash,
                              points))
    return lines


def svg_chart(sweep, variants, title):
    """A line chart as SVG text: x model size (log), y ratio (log)."""
    lines = chart_lines(sweep, variants)
    width, height = 1180, 560
    left, right, top, bottom = 70, 480, 50, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    sizes = [s["size"] for s in sweep]
    ratios = [r for _, _, _, pts in lines for _, r in pts] + [1.0]
    x_lo, x_hi = math.log2(min(sizes)), math.log2(max(sizes))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo = math.floor(math.log2(min(ratios)))
    y_hi = math.ceil(math.log2(max(ratios)))
    if y_hi == y_lo:
        y_hi += 1

    def x(size):
        return left + (math.log2(size) - x_lo) / (x_hi - x_lo) * plot_w

    def y(value):
        return top + (y_hi - math.log2(value)) / (y_hi - y_lo) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="25" font-size="15">{escape(title)}</text>']
    for e in range(y_lo, y_hi + 1):  # horizontal grid at powers of two
        yy = y(2.0 ** e)
        out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" '
                   f'y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                   f'{fmt_tick(2.0 ** e)}x</text>')
    for size in sizes:
        xx = x(size)
        out.append(f'<line x1="{xx:.1f}" y1="{top}" x2="{xx:.1f}" '
                   f'y2="{top + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + plot_h + 18}" '
                   f'text-anchor="middle">{escape(size_label(size))}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" '
               f'height="{plot_h}" fill="none" stroke="#888"/>')
    out.append(f'<line x1="{left}" y1="{y(1.0):.1f}" x2="{left + plot_w}" '
               f'y2="{y(1.0):.1f}" stroke="black" stroke-width="1.5"/>')
    out.append(f'<text x="{left + 4}" y="{y(1.0) - 5:.1f}">'
               f'1.0x: as fast as stock</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 15}" '
               f'text-anchor="middle">model size (log scale)</text>')
    out.append(f'<text transform="translate(18,{top + plot_h / 2}) '
               f'rotate(-90)" text-anchor="middle">stock time / ours '
               f'(log scale; above 1: ours faster)</text>')
    for i, (label, phase, dash, points) in enumerate(lines):
        colour = OP_COLOURS[phase]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        path = " ".join(f"{x(s):.1f},{y(r):.1f}" for s, r in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                   f'stroke-width="2"{dash_attr}/>')
        for s, r in points:
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(r):.1f}" r="3" '
                       f'fill="{colour}"><title>{escape(label)}, '
                       f'{size_label(s)}: {r:.2f}x</title></circle>')
        ly = top + 10 + i * 18
        lx = left + plot_w + 20
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 30}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{lx + 36}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fmt_tick(value):
    return f"{value:g}" if value >= 1 else f"1/{1 / value:g}"


def escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


# --- machine facts -----------------------------------------------------------------


def proc_field(path, name):
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({' '.join(args)}: {e})"


def machine_facts(workdir):
    return {
        "cpu_model": proc_field("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "mem_total": proc_field("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "sqlite_of_python": sqlite3.sqlite_version,
        "strace": command_output(["strace", "-V"]).split("\n")[0],
        "workdir": str(workdir),
        "df_T": command_output(["df", "-T", str(workdir)]),
    }


def package_versions(need_ours):
    versions = {}
    for dist in ("aimm", "aimm-backend", "hat-event", "hat-aio",
                 "hat-drivers", "hat-sbs", "hat-json"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import aimm_backend
        versions["aimm_backend api_version"] = aimm_backend.api_version()
        versions["aimm_backend path"] = str(Path(aimm_backend.__file__).parent)
    except ImportError as e:
        if need_ours:
            raise SystemExit(f"aimm_backend is not importable ({e}): install "
                             f"the wheel (scripts/install-wheel.sh) or pass "
                             f"--only stock")
        versions["aimm_backend api_version"] = None
    return versions


def print_facts(result):
    m, versions = result["machine"], result["versions"]
    print("# bench_sweep")
    print()
    print(f"Command: `{result['command']}`")
    print()
    print(f"- CPU: {m['cpu_model']}, {m['cpu_count']} CPUs "
          f"({m['cpus_usable']} usable); load average at start "
          f"{' '.join(m['loadavg'])}")
    print(f"- Memory: {m['mem_total']}; Linux {m['kernel']}")
    print(f"- Python {m['python']} ({m['python_executable']}), its SQLite "
          f"{m['sqlite_of_python']} (the stock backend's); {m['strace']}")
    print("- Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    plan = ", ".join(f"{size_label(s)} x {c}" for s, c in result["config"]["plan"])
    print(f"- Sizes x counts: {plan}; rounds: "
          f"{rounds_text(result['config'])}; "
          f"event servers: one per {result['config']['server_per']}")
    print(f"- Work dir {m['workdir']}, df -T:")
    print()
    print("```")
    print(m["df_T"])
    print("```")
    sys.stdout.flush()


# --- main ---------------------------------------------------------------------------


def parse_args(argv):
    summary = " ".join(__doc__.split("\n\n")[0].split())
    p = argparse.ArgumentParser(description=summary)
    p.add_argument("--sizes",
                   help="comma-separated sizes, each optionally SIZE:COUNT "
                        "(e.g. 4k,256k,2m or 16m:4); default "
                        + ",".join(f"{size_label(s).replace(' ', '')}:{c}"
                                   for s, c in DEFAULT_PLAN))
    p.add_argument("--count", type=int,
                   help="models per phase for every size without :COUNT")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: sizes 4k,256k,2m unless --sizes, counts "
                        f"divided by {QUICK_DIVISOR} (at least {MIN_COUNT}), "
                        "one event server per size")
    p.add_argument("--rounds", type=int,
                   help=f"rounds per size; figures are medians (default "
                        f"{SMALL_ROUNDS} up to {size_label(SMALL_SIZE)}, 1 "
                        f"above; --quick: 1)")
    p.add_argument("--stores", default="sqlite,event",
                   help="comma-separated: sqlite, event (default both)")
    p.add_argument("--only", choices=("all", "stock", "ours"), default="all",
                   help="run only stock's or only ours' variants")
    p.add_argument("--variants",
                   help="comma-separated variant keys to run (default all): "
                        + ", ".join(v.key for v in ALL_VARIANTS))
    p.add_argument("--journal-delete", action="store_true",
                   help="also run ours with journal_mode: delete")
    p.add_argument("--server-per", choices=("variant", "size"),
                   help="a fresh event server per variant (default) or one "
                        "per size with a fresh prefix per variant (--quick "
                        "default)")
    p.add_argument("--no-syncs", action="store_true",
                   help="skip the strace pass counting syncs")
    p.add_argument("--no-floor", action="store_true",
                   help="skip the bare-client event floor")
    p.add_argument("--phase-timeout", type=float, default=120,
                   help="seconds a phase may take, plus --phase-timeout-per-"
                        "mib per MiB of its payload (default 120)")
    p.add_argument("--phase-timeout-per-mib", type=float, default=2.0)
    p.add_argument("--workdir", type=Path,
                   help="where stores and servers go (default: a fresh temp "
                        "dir under target/, removed afterwards)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--svg", type=Path, help="write the ratio chart here")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="measure nothing: print the report of the --json of "
                        "an earlier run (and write --svg from it)")
    args = p.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if args.variants:
        args.variants = {v.strip() for v in args.variants.split(",")}
        unknown = args.variants - {v.key for v in ALL_VARIANTS}
        if unknown:
            p.error(f"--variants: unknown {', '.join(sorted(unknown))}")
    if not set(args.stores) <= {"sqlite", "event"} or not args.stores:
        p.error("--stores takes sqlite and/or event")
    if args.server_per is None:
        args.server_per = "size" if args.quick else "variant"
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be >= 1")
    try:
        args.plan = parse_plan(args)
    except ValueError as e:
        p.error(str(e))
    if any(size < 1 or count < 1 for size, count in args.plan):
        p.error("sizes and counts must be >= 1")
    return args


def rounds_for(args, size):
    if args.rounds is not None:
        return args.rounds
    return SMALL_ROUNDS if size <= SMALL_SIZE and not args.quick else 1


def rounds_text(conf):
    return ", ".join(f"{size_label(s)} {n}" for s, n in conf["rounds"].items())


def make_workdir(args):
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return args.workdir.resolve(), False
    parent = REPO / "target"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-sweep-", dir=parent)), True


def on_sigterm(signum, frame):
    # Unwind through every finally: the event servers must be stopped.
    raise SystemExit(128 + signum)


async def run_sweep(args, variants, servers, workdir, info, errors):
    for v in variants:  # imported before any clock runs
        importlib.import_module(v.module)
    sweep = []
    for size, count in args.plan:
        sized = await run_size(args, size, count, variants, servers, workdir,
                               info, errors)
        sized["summary"] = {}
        sqlite_v = [v for v in variants if v.store == "sqlite"]
        event_v = [v for v in variants if v.store == "event"]
        if sqlite_v:
            sized["summary"]["sqlite"] = summarize_sqlite(sized, sqlite_v)
        if event_v:
            sized["summary"]["event"] = summarize_event(sized, event_v)
        sweep.append(sized)
        gc.collect()
    return sweep


def render(args):
    """The report and chart of an earlier run's --json, as that run would
    print them with this version of the script."""
    result = json.loads(args.render.read_text())
    config = result["config"]
    config["rounds"] = {int(s): n for s, n in config["rounds"].items()}
    keys = [v["key"] for v in config["variants"]]
    variants = [v for k in keys for v in ALL_VARIANTS if v.key == k]
    args.no_syncs, args.no_floor = not config["syncs"], not config["floor"]
    print_facts(result)
    if result.get("plugins"):
        print("- Plugins: " + ", ".join(
            f"{name} {p['version']} ({p['library']})"
            for name, p in result["plugins"].items()))
    print()
    print_report(result, variants, args)
    write_svg(args, result, variants)
    return 1 if result.get("errors") else 0


def write_svg(args, result, variants):
    if args.svg:
        title = (f"bench_sweep: stock time / ours by model size "
                 f"(medians; rounds: {rounds_text(result['config'])})")
        args.svg.write_text(svg_chart(result["sweep"], variants, title))


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        return render(args)
    signal.signal(signal.SIGTERM, on_sigterm)
    variants = chosen_variants(args)
    if not variants:
        raise SystemExit("no variant left to run")
    register_identity_model()
    workdir, made = make_workdir(args)
    result = {
        "command": shlex.join([sys.executable] + sys.argv),
        "config": {"plan": args.plan,
                   "rounds": {s: rounds_for(args, s) for s, _ in args.plan},
                   "variants": [v._asdict() for v in variants],
                   "server_per": args.server_per, "syncs": not args.no_syncs,
                   "floor": not args.no_floor,
                   "phase_timeout": args.phase_timeout,
                   "phase_timeout_per_mib": args.phase_timeout_per_mib},
        "machine": machine_facts(workdir),
        "versions": package_versions(any(v.side == "ours" for v in variants)),
    }
    print_facts(result)
    servers = Servers(workdir)
    info = {}
    errors = []
    try:
        if "sqlite" in args.stores and not args.no_syncs:
            check_strace()
        result["sweep"] = aio.run_asyncio(
            run_sweep(args, variants, servers, workdir, info, errors))
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        # aio.run_asyncio turns a signal into the main task's cancellation
        print("bench_sweep: interrupted; stopping the event servers",
              file=sys.stderr)
        return 130
    finally:
        servers.stop_all()
        if made:
            shutil.rmtree(workdir, ignore_errors=True)
    result["plugins"] = info.get("plugins")
    if result["plugins"]:
        print("- Plugins: " + ", ".join(
            f"{name} {p['version']} ({p['library']})"
            for name, p in result["plugins"].items()))
    result["errors"] = errors
    print()
    print_report(result, variants, args)
    if errors:
        print()
        print("## Failures (their cells show -)")
        print()
        for error in errors:
            print(f"- {error}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    write_svg(args, result, variants)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
