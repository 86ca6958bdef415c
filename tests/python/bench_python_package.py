#!/usr/bin/env python3
"""Benchmark the stock AIMM SQLite backend against ``aimm_backend.sqlite``,
through the Python interface the AIMM server uses.

Why: BENCHMARKS.md compares the stores from Rust. What a server that swaps
``aimm.server.backend.sqlite`` for ``aimm_backend.sqlite`` gets also
depends on the Python half (executor hops, bytes crossing into Rust), so
this program drives both exactly as the server does: ``create(conf,
client)``, then ``create_model``, ``get_models``, ``update_model`` and
``async_close`` on the backend object, each call awaited before the next.

What: on a fresh file per variant and round, it times

* create: --count ``create_model`` calls of --size byte models;
* get_models: one call returning all of them, in a fresh Python process
  that opens the store, makes only this call and closes it (so neither side
  profits from a warm process); the call is timed on its own, and the whole
  process from spawn to exit as well;
* update (changed): --count ``update_model`` calls with new bytes;
* update (unchanged): --count ``update_model`` calls with the bytes already
  stored, as the engine does after every predict;

for three variants: the stock ``aimm.server.backend.sqlite``, ours with its
default journal mode (WAL for a new file) and ours with ``journal_mode:
delete`` (what a store that stock hosts must still be able to open uses).
Opening and closing the store are timed too (extra rows). Closing is
``async_close`` and then freeing the backend object: ours closes its SQLite
connections, and so checkpoints and removes a WAL, only when its native
object is freed, which would otherwise land in whatever phase runs next.

Every round runs the variants in the same order (stock, ours, ours-delete);
the report gives medians over the rounds, the ranges, and the ratio
stock / ours (> 1: ours is faster). Models are bytes of a model type
registered with identity (de)serializers, so serialization costs next to
nothing and the same for both; the bytes are pseudo-random from a fixed
seed (incompressible, the same in every run). After each variant the file
is checked byte for byte with plain ``sqlite3``, outside the clock.

Bytes written: the growth of ``write_bytes`` in /proc/self/io over each
phase (the child's own counter for get_models). Linux counts a page there
when the process dirties it in the page cache, so it is what the process
makes the kernel send to the block layer; each commit's fsync sends it at
once. A page dirtied again before it is written back counts once, and
writes the file system makes on its own account (ext4's journal) are not
in it. The page cache is warm for get_models: the file was just written.
Each phase also records the process's CPU time (user + system, all
threads; for the get_models process, the whole child) and its minor page
faults (first touches of fresh memory), to tell waiting from working.

Run with the venv that has both packages::

    target/py-venv/bin/python tests/python/bench_python_package.py [--quick]
"""

import argparse
import gc
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import NamedTuple

from hat import aio

import aimm.plugins

REPO = Path(__file__).resolve().parents[2]
MODEL_TYPE = "bench_python_package.IdentityBytes"
MiB = 1 << 20


class Variant(NamedTuple):
    key: str
    label: str
    module: str
    options: dict


VARIANTS = (
    Variant("stock", "stock", "aimm.server.backend.sqlite", {}),
    Variant("ours", "ours (default: WAL)", "aimm_backend.sqlite", {}),
    Variant(
        "ours_delete",
        "ours (journal_mode: delete)",
        "aimm_backend.sqlite",
        {"journal_mode": "delete"},
    ),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}
OURS = [v for v in VARIANTS if v.key != "stock"]

MAIN_PHASES = (
    ("create", "create_model x{count}"),
    ("get_models", "get_models, the call (fresh process)"),
    ("get_models_process", "get_models process, spawn to exit"),
    ("update_changed", "update_model x{count}, changed bytes"),
    ("update_unchanged", "update_model x{count}, unchanged bytes"),
)
EXTRA_PHASES = (
    ("open_new", "open, new file"),
    ("close_after_create", "close after the creates"),
    ("get_models_open", "open in the get_models process"),
    ("open_existing", "open again for the updates"),
    ("close_after_update", "close after the updates"),
)


# --- models -----------------------------------------------------------


def _identity(data):
    return data


def register_identity_model():
    """The model type whose instance is its own serialized form (bytes)."""
    aimm.plugins.serialize([MODEL_TYPE])(_identity)
    aimm.plugins.deserialize([MODEL_TYPE])(_identity)


def model_bytes(tag, index, size):
    """Reproducible, incompressible bytes: model ``index`` of set ``tag``."""
    return random.Random(f"{tag}:{index}").randbytes(size)


def sample_digest(pairs):
    """A cheap fingerprint of ``(instance_id, bytes)`` pairs: ids, lengths,
    and each model's first and last 32 bytes."""
    h = hashlib.sha256()
    for instance_id, blob in pairs:
        h.update(f"{instance_id}:{len(blob)}:".encode())
        h.update(blob[:32])
        h.update(blob[-32:])
    return h.hexdigest()


# --- measuring ---------------------------------------------------------


def io_counters():
    """This process's /proc/self/io counters (all its threads)."""
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def cpu_seconds(who=resource.RUSAGE_SELF):
    """User and system CPU time of this process (all its threads), or of
    its waited-for children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def minor_faults():
    """Page faults of this process served without I/O (mostly first
    touches of fresh memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Meter:
    """Times a block, and measures the CPU time it used and the bytes it
    read and wrote."""

    def __enter__(self):
        self._io = io_counters()
        self._cpu = cpu_seconds()
        self._faults = minor_faults()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self._t0
        cpu = cpu_seconds() - self._cpu
        faults = minor_faults() - self._faults
        io = io_counters()
        self.figures = {
            "s": seconds,
            "cpu_s": cpu,
            "minor_faults": faults,
            "write_bytes": io["write_bytes"] - self._io["write_bytes"],
            "read_bytes": io["read_bytes"] - self._io["read_bytes"],
        }
        return False


# --- one variant, in this process --------------------------------------


def backend_conf(variant, path):
    """The server's ``backend`` section for ``variant``."""
    return dict(variant.options, module=variant.module, path=str(path))


async def create_all(backend, blobs):
    return [await backend.create_model(MODEL_TYPE, blob) for blob in blobs]


async def update_all(backend, models):
    for model in models:
        await backend.update_model(model)


class Store:
    """The one reference to an open backend, so that closing can free it:
    ours closes its SQLite connections (and, in WAL mode, checkpoints the
    log and removes it) only when its native object is freed, not in
    ``async_close``; the close phase includes that, for both sides."""

    def __init__(self, backend):
        self.backend = backend

    async def close(self):
        await self.backend.async_close()
        ref = weakref.ref(self.backend)
        self.backend = None
        gc.collect()
        if ref() is not None:
            raise RuntimeError("the closed backend object is still referenced")


async def open_store(variant, path):
    module = importlib.import_module(variant.module)
    return Store(await module.create(backend_conf(variant, path), None))


async def run_variant(variant, path, data, info):
    """All phases of one variant on the fresh file ``path``; the figures."""
    figures = {}

    with Meter() as m:
        store = await open_store(variant, path)
    figures["open_new"] = m.figures
    note_plugin(store.backend, info)
    with Meter() as m:
        models = await create_all(store.backend, data["created"])
    figures["create"] = m.figures
    with Meter() as m:
        await store.close()
    figures["close_after_create"] = m.figures

    figures.update(get_models_in_child(variant, path, models, data))

    with Meter() as m:
        store = await open_store(variant, path)
    figures["open_existing"] = m.figures
    changed = [
        model._replace(instance=blob)
        for model, blob in zip(models, data["updated"])
    ]
    with Meter() as m:
        await update_all(store.backend, changed)
    figures["update_changed"] = m.figures
    with Meter() as m:
        await update_all(store.backend, changed)
    figures["update_unchanged"] = m.figures
    with Meter() as m:
        await store.close()
    figures["close_after_update"] = m.figures

    figures["file"] = verify_file(path, models, data["updated"])
    return figures


def note_plugin(backend, info):
    native = getattr(backend, "native", None)
    if native is not None and "plugin" not in info:
        info["plugin"] = {
            "name": native.plugin_name,
            "version": native.plugin_version,
            "library": native.library_path,
            "bundled_sqlite": sqlite_version_in(native.library_path),
        }


def sqlite_version_in(library_path):
    """The SQLite version string compiled into a library, if one is found."""
    text = Path(library_path).read_bytes()
    found = re.search(rb"[^0-9.](3\.\d{2}\.\d+)\x00", text)
    return found.group(1).decode() if found else None


def verify_file(path, models, expected):
    """Checks with plain sqlite3 that the file holds exactly ``expected``;
    returns the file's journal mode and size."""
    conn = sqlite3.connect(path)
    try:
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        rows = conn.execute(
            "SELECT id, type, instance FROM models ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    want = [(m.instance_id, MODEL_TYPE, b) for m, b in zip(models, expected)]
    if rows != want:
        raise AssertionError(f"{path}: the stored models are not the expected")
    return {"journal_mode": journal_mode, "bytes": os.path.getsize(path)}


def remove_store(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- get_models, in a child process --------------------------------------


def get_models_in_child(variant, path, models, data):
    """Runs ``--child-get-models`` in a fresh interpreter; its figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()),
           "--child-get-models", variant.key, str(path)]
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    child_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"get_models child failed:\n{proc.stderr}")
    child = json.loads(proc.stdout)
    expected = sample_digest(
        (m.instance_id, b) for m, b in zip(models, data["created"])
    )
    if child["count"] != len(models) or child["digest"] != expected:
        raise AssertionError(f"{variant.key}: get_models returned others")
    return {
        "get_models": child["get_models"],
        "get_models_open": child["open"],
        "get_models_process": {
            "s": total,
            "cpu_s": child_cpu,
            "write_bytes": child["process_io"]["write_bytes"],
            "read_bytes": child["process_io"]["read_bytes"],
        },
        "get_models_child": child,
    }


def child_main(variant_key, path):
    """The child: open the store, one get_models, close; JSON on stdout."""
    t_main = time.perf_counter()
    register_identity_model()
    variant = VARIANT_BY_KEY[variant_key]
    result = aio.run_asyncio(child_get_models(variant, path))
    result["main_s"] = time.perf_counter() - t_main
    result["process_io"] = io_counters()
    print(json.dumps(result))
    return 0


async def child_get_models(variant, path):
    with Meter() as m:
        importlib.import_module(variant.module)
    imported = m.figures
    with Meter() as m:
        store = await open_store(variant, path)
    opened = m.figures
    with Meter() as m:
        models = await store.backend.get_models()
    got = m.figures
    with Meter() as m:
        await store.close()
    closed = m.figures
    models.sort(key=lambda model: model.instance_id)
    return {
        "import": imported,
        "open": opened,
        "get_models": got,
        "close": closed,
        "count": len(models),
        "digest": sample_digest((m.instance_id, m.instance) for m in models),
    }


# --- rounds and summary -----------------------------------------------


def make_data(count, size):
    return {
        "created": [model_bytes("created", i, size) for i in range(count)],
        "updated": [model_bytes("updated", i, size) for i in range(count)],
    }


async def run_rounds(args, workdir, data, info):
    for variant in VARIANTS:  # imported before any clock runs
        importlib.import_module(variant.module)
    rounds = []
    for r in range(args.rounds):
        this_round = {}
        for variant in VARIANTS:
            path = workdir / f"round{r}-{variant.key}.db"
            remove_store(path)
            figures = await run_variant(variant, path, data, info)
            this_round[variant.key] = figures
            remove_store(path)
            progress(r, variant, figures)
        rounds.append(this_round)
    return rounds


def progress(r, variant, figures):
    parts = [f"{k} {figures[k]['s']:.3f}s" for k, _ in MAIN_PHASES]
    print(f"round {r + 1}: {variant.label}: " + ", ".join(parts),
          file=sys.stderr, flush=True)


def spread(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def summarize(rounds):
    """Per phase and variant: seconds and bytes written (median, range);
    per phase and ours variant: stock / ours."""
    summary = {}
    for phase, _ in MAIN_PHASES + EXTRA_PHASES:
        entry = {}
        for v in VARIANTS:
            entry[v.key] = {
                "s": spread([r[v.key][phase]["s"] for r in rounds]),
                "cpu_s": spread([r[v.key][phase]["cpu_s"] for r in rounds]),
                "minor_faults": statistics.median(
                    [r[v.key][phase].get("minor_faults", 0) for r in rounds]
                ),
                "write_bytes": spread(
                    [r[v.key][phase]["write_bytes"] for r in rounds]
                ),
            }
        for v in OURS:
            per_round = [r["stock"][phase]["s"] / r[v.key][phase]["s"]
                         for r in rounds]
            entry[f"stock_over_{v.key}"] = {
                "of_medians": entry["stock"]["s"]["median"]
                / entry[v.key]["s"]["median"],
                "per_round_min": min(per_round),
                "per_round_max": max(per_round),
            }
        summary[phase] = entry
    return summary


# --- report ---------------------------------------------------------------


def machine_facts(workdir):
    df = subprocess.run(["df", "-T", str(workdir)], capture_output=True,
                        text=True).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": proc_field("/proc/cpuinfo", "model name"),
        "mem_total": proc_field("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "sqlite_of_python": sqlite3.sqlite_version,
        "workdir": str(workdir),
        "df_T": df,
    }


def proc_field(path, name):
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def package_versions():
    versions = {}
    for dist in ("aimm", "aimm-backend", "hat-aio", "hat-event"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    native = importlib.import_module("aimm_backend._native")
    versions["aimm_backend api_version"] = native.api_version()
    return versions


def fmt_s(x):
    return f"{x:.3f}" if x >= 1 else f"{x:.4f}"


def fmt_spread(s, fmt):
    return f"{fmt(s['median'])} [{fmt(s['min'])}-{fmt(s['max'])}]"


def fmt_ratio(r):
    return (f"{r['of_medians']:.2f}x "
            f"[{r['per_round_min']:.2f}-{r['per_round_max']:.2f}]")


def fmt_mib(x):
    return f"{x / MiB:.1f}"


def print_table(headers, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def time_rows(summary, phases, count):
    rows = []
    for phase, label in phases:
        entry = summary[phase]
        row = [label.format(count=count)]
        row.append(fmt_spread(entry["stock"]["s"], fmt_s))
        for v in OURS:
            row.append(fmt_spread(entry[v.key]["s"], fmt_s))
            row.append(fmt_ratio(entry[f"stock_over_{v.key}"]))
        rows.append(row)
    return rows


def time_headers():
    headers = ["phase", "stock s"]
    for v in OURS:
        headers += [f"{v.label} s", f"stock / {v.key}"]
    return headers


def bytes_rows(summary, phases, count, payload):
    rows = []
    for phase, label in phases:
        row = [label.format(count=count)]
        for v in VARIANTS:
            wb = summary[phase][v.key]["write_bytes"]
            row.append(f"{fmt_spread(wb, fmt_mib)}"
                       f" ({wb['median'] / payload:.2f}x)")
        rows.append(row)
    return rows


def cpu_rows(summary, phases, count):
    rows = []
    for phase, label in phases:
        row = [label.format(count=count)]
        for v in VARIANTS:
            row.append(fmt_spread(summary[phase][v.key]["cpu_s"], fmt_s))
        rows.append(row)
    return rows


def print_report(result):
    conf, summary = result["config"], result["summary"]
    count, size = conf["count"], conf["size"]
    payload = count * size
    print_facts(result)
    print()
    print(f"Seconds, median of {conf['rounds']} rounds [min-max]; "
          f"stock / ours = stock's median over ours (> 1: ours is faster) "
          f"[per-round min-max]. {count} models of {size} bytes.")
    print_table(time_headers(), time_rows(summary, MAIN_PHASES, count))
    print()
    print("Extra rows (opening and closing the store):")
    print_table(time_headers(), time_rows(summary, EXTRA_PHASES, count))
    print()
    print(f"Bytes written (/proc/self/io write_bytes), MiB, median "
          f"[min-max] (x the payload of one phase, {payload / MiB:.1f} MiB):")
    print_table(["phase"] + [v.label for v in VARIANTS],
                bytes_rows(summary, MAIN_PHASES + EXTRA_PHASES, count,
                           payload))
    print()
    print("CPU seconds (user + system, all threads of the process), median "
          "[min-max]:")
    print_table(["phase"] + [v.label for v in VARIANTS],
                cpu_rows(summary, MAIN_PHASES, count))
    print()
    print("get_models in the fresh process, minor page faults during the "
          "call (first touches of fresh memory), median: " + ", ".join(
              f"{v.label}: {summary['get_models'][v.key]['minor_faults']:.0f}"
              for v in VARIANTS))
    print()
    print("Journal mode of each file after the run (PRAGMA journal_mode, "
          "plain sqlite3): " + ", ".join(
              f"{v.label}: {result['journal_modes'][v.key]}"
              for v in VARIANTS))


def print_facts(result):
    m, versions = result["machine"], result["versions"]
    print(f"CPU: {m['cpu_count']} ({m['cpus_usable']} usable), "
          f"{m['cpu_model']}; memory {m['mem_total']}; "
          f"Linux {m['kernel']}")
    print(f"Python {m['python']} ({m['python_executable']}), its SQLite "
          f"{m['sqlite_of_python']} (the stock backend's)")
    print("Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    plugin = result.get("plugin")
    if plugin:
        print(f"Plugin: {plugin['name']} {plugin['version']}, bundled SQLite "
              f"{plugin['bundled_sqlite']} ({plugin['library']})")
    print(f"Work dir {m['workdir']}; df -T:")
    print(m["df_T"])


# --- main -------------------------------------------------------------------


def parse_args(argv):
    summary = " ".join(__doc__.split("\n\n")[0].split())
    p = argparse.ArgumentParser(description=summary)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of all variants (default 3)")
    p.add_argument("--count", type=int, default=1000,
                   help="models per phase (default 1000)")
    p.add_argument("--size", type=int, default=64 * 1024,
                   help="bytes per model (default 65536)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --count 50")
    p.add_argument("--workdir", type=Path,
                   help="where the store files go (default: a fresh temp "
                        "dir under target/, removed afterwards)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--child-get-models", nargs=2, metavar=("VARIANT", "PATH"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.count = 50
    if args.rounds < 1 or args.count < 1 or args.size < 64:
        p.error("--rounds and --count must be >= 1, --size >= 64")
    return args


def make_workdir(args):
    """The work dir and whether this run made it (and so removes it)."""
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return args.workdir.resolve(), False
    parent = REPO / "target"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-python-package-",
                                 dir=parent)), True


def main(argv=None):
    args = parse_args(argv)
    if args.child_get_models:
        return child_main(*args.child_get_models)
    register_identity_model()
    workdir, made = make_workdir(args)
    info = {}
    machine = machine_facts(workdir)
    try:
        data = make_data(args.count, args.size)
        rounds = aio.run_asyncio(run_rounds(args, workdir, data, info))
    finally:
        if made:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "config": {"rounds": args.rounds, "count": args.count,
                   "size": args.size, "order": [v.key for v in VARIANTS]},
        "machine": machine,
        "versions": package_versions(),
        "plugin": info.get("plugin"),
        "journal_modes": {v.key: rounds[-1][v.key]["file"]["journal_mode"]
                          for v in VARIANTS},
        "summary": summarize(rounds),
        "rounds": rounds,
    }
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
