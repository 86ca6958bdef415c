"""Scenarios of the `aimm_backend` Python package, driven by real Python code
without an AIMM server: what tests/python_package.rs asserts on.

Each subcommand runs one scenario and prints one JSON object on stdout;
exit 0 when it ran (the Rust test judges the figures), 1 with a message on
stderr when it could not. Every wait has a deadline.

    python aimm_backend_checks.py writers --db F --processes 3 --count 300
    python aimm_backend_checks.py stock-interop --db F
    python aimm_backend_checks.py plugin --plugin-dir D
    python aimm_backend_checks.py bad-input CASE [--library L] [--port P]
    python aimm_backend_checks.py lifecycle --db F
    python aimm_backend_checks.py event --port P [--prefix X]
    python aimm_backend_checks.py event-unheard --port P
    python aimm_backend_checks.py event-own --port P
    python aimm_backend_checks.py bridge-deadline
    python aimm_backend_checks.py json-text
    python aimm_backend_checks.py traps --port P --db F
"""

import argparse
import asyncio
import concurrent.futures
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import weakref

from aimm import plugins
from hat import aio
import hat.event.common
import hat.event.eventer
from hat.drivers import tcp

import aimm_backend
import aimm_backend.event
import aimm_backend.plugin
import aimm_backend.sqlite

MODEL_TYPE = "checks.Blob"
"""Instances are bytes; the serializer is the identity."""

BAD_TYPE = "checks.Raises"
"""A model type whose serializer raises."""

STR_TYPE = "checks.ReturnsStr"
"""A model type whose serializer returns a str."""

HELD_TYPE = "checks.Held"
"""Instances are :class:`Held`; serialized, their bytes."""

DEADLINE = 60.0
"""Seconds any one awaited call may take before the scenario fails."""


@plugins.serialize([MODEL_TYPE])
def _serialize(instance):
    return instance


@plugins.deserialize([MODEL_TYPE, BAD_TYPE, STR_TYPE, HELD_TYPE])
def _deserialize(blob):
    return blob


class Held:
    """A model instance whose lifetime a check can watch (``weakref``)."""

    def __init__(self, data):
        self.data = data


@plugins.serialize([HELD_TYPE])
def _serialize_held(instance):
    return instance.data


@plugins.serialize([BAD_TYPE])
def _serialize_raises(instance):
    raise ValueError("this serializer always fails")


@plugins.serialize([STR_TYPE])
def _serialize_str(instance):
    return "not bytes"


def payload(seed, size):
    """Deterministic, incompressible bytes for model number `seed`."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def bounded(awaitable, what):
    """`awaitable`, or a failure naming `what` after DEADLINE seconds."""
    try:
        return await asyncio.wait_for(awaitable, DEADLINE)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{what}: no answer within {DEADLINE} s") from None


def sqlite_conf(db, **extra):
    return {"module": "aimm_backend.sqlite", "path": str(db), **extra}


# ---------------------------------------------------------------- writers


def cmd_writers(args):
    """N processes create models into one file at once; then the file is
    checked: every acknowledged model stored, byte-exact, file sound."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "writer", "--db", args.db,
             "--index", str(i), "--count", str(args.count),
             "--size", str(args.size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(args.processes)
    ]
    acknowledged, failures = {}, []
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=600)
        for line in out.splitlines():
            seq, instance_id = line.split()
            acknowledged[int(instance_id)] = (i, int(seq))
        if proc.returncode != 0:
            failures.append(f"writer {i} exited {proc.returncode}: {err[-2000:]}")
    conn = sqlite3.connect(args.db)
    rows = {r[0]: (r[1], r[2]) for r in
            conn.execute("SELECT id, type, instance FROM models")}
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    missing = [i for i in acknowledged if i not in rows]
    wrong = [i for i, (w, seq) in acknowledged.items()
             if i in rows and rows[i] != (MODEL_TYPE, payload(f"{w}-{seq}", args.size))]
    print(json.dumps({
        "acknowledged": len(acknowledged), "stored": len(rows),
        "missing": missing[:20], "wrong": wrong[:20],
        "integrity": integrity, "failures": failures,
    }))


def cmd_writer(args):
    async def run():
        backend = await aimm_backend.sqlite.create(sqlite_conf(args.db), None)
        try:
            for seq in range(args.count):
                model = await bounded(backend.create_model(
                    MODEL_TYPE, payload(f"{args.index}-{seq}", args.size)),
                    "create_model")
                print(seq, model.instance_id, flush=True)
        finally:
            await backend.async_close()
    aio.run_asyncio(run())


# ---------------------------------------------------------- stock interop


def cmd_stock_interop(args):
    """The stock backend writes, ours (journal_mode: delete) reads, adds and
    updates, the stock backend reads everything back."""
    import aimm.server.backend.sqlite as stock

    async def run():
        written = {}
        backend = await stock.create({"module": "aimm.server.backend.sqlite",
                                      "path": args.db}, None)
        for seq, size in enumerate([0, 1, 1000, 70000, 300000]):
            data = payload(f"stock-{seq}", size)
            model = await backend.create_model(MODEL_TYPE, data)
            written[model.instance_id] = data
        await backend.async_close()

        ours = await aimm_backend.sqlite.create(
            sqlite_conf(args.db, journal_mode="delete"), None)
        read_by_ours = {m.instance_id: m.instance
                        for m in await ours.get_models()}
        new = await ours.create_model(MODEL_TYPE, payload("ours-0", 5000))
        written[new.instance_id] = payload("ours-0", 5000)
        first = min(written)
        await ours.update_model(new._replace(instance_id=first,
                                             instance=payload("upd", 2000)))
        # The same update again commits nothing: another connection's
        # data_version moves with every commit.
        observer = sqlite3.connect(args.db)
        version = observer.execute("PRAGMA data_version").fetchone()[0]
        await ours.update_model(new._replace(instance_id=first,
                                             instance=payload("upd", 2000)))
        repeat_committed = (
            observer.execute("PRAGMA data_version").fetchone()[0] != version)
        observer.close()
        stock_before_update = dict(written)
        written[first] = payload("upd", 2000)
        await ours.async_close()

        backend = await stock.create({"module": "aimm.server.backend.sqlite",
                                      "path": args.db}, None)
        read_by_stock = {m.instance_id: m.instance
                         for m in await backend.get_models()}
        next_stock = await backend.create_model(MODEL_TYPE, b"next")
        await backend.async_close()
        journal = sqlite3.connect(args.db).execute(
            "PRAGMA journal_mode").fetchone()[0]
        return {
            "ours_read_stock_exactly": read_by_ours == {
                k: v for k, v in stock_before_update.items()
                if k != new.instance_id},
            "stock_read_ours_exactly": read_by_stock == written,
            "ids": sorted(written),
            "ours_new_id": new.instance_id,
            "stock_next_id": next_stock.instance_id,
            "journal_mode": journal,
            "repeated_update_committed": repeat_committed,
        }
    print(json.dumps(aio.run_asyncio(run())))


# ----------------------------------------------------------------- plugin


def cmd_plugin(args):
    """The memory example plugin, dropped into a directory, through
    `aimm_backend.plugin`; and a Python alias through the same module."""
    async def run():
        conf = {"module": "aimm_backend.plugin", "plugin": "memory_backend",
                "plugin_dirs": [args.plugin_dir], "name": "checks"}
        backend = await aimm_backend.plugin.create(conf, None)
        model = await backend.create_model(MODEL_TYPE, b"in memory")
        await backend.update_model(model._replace(instance=b"updated"))
        models = await backend.get_models()
        plugin_name = backend.native.plugin_name
        await backend.async_close()
        alias = await aimm_backend.plugin.create(
            {"module": "aimm_backend.plugin",
             "plugin": "aimm.server.backend.sqlite",
             "path": os.path.join(args.plugin_dir, "alias.db")}, None)
        alias_model = await alias.create_model(MODEL_TYPE, b"via alias")
        alias_name = alias.native.plugin_name
        alias_path = alias.native.library_path
        await alias.async_close()
        return {
            "plugin_name": plugin_name,
            "models": [[m.instance_id, m.model_type, m.instance.decode()]
                       for m in models],
            "subscription": aimm_backend.plugin.create_subscription(conf),
            "alias_plugin_name": alias_name,
            "alias_library": alias_path,
            "alias_id": alias_model.instance_id,
        }
    print(json.dumps(aio.run_asyncio(run())))


# -------------------------------------------------------------- bad input


def cmd_bad_input(args):
    """One bad input; reports the exception the server would see, and that
    the process still works afterwards."""
    async def run():
        try:
            await bounded(BAD_INPUTS[args.case](args), args.case)
        except Exception as e:
            outcome = {"raised": type(e).__name__, "message": str(e),
                       "is_backend_error": isinstance(
                           e, (aimm_backend.BackendError,
                               aimm_backend.SerializationError))}
        else:
            outcome = {"raised": None}
        # The process survives and a backend still works.
        db = os.path.join(args.workdir, "after.db")
        backend = await aimm_backend.sqlite.create(sqlite_conf(db), None)
        model = await backend.create_model(MODEL_TYPE, b"still works")
        await backend.async_close()
        outcome["still_works"] = model.instance_id > 0
        return outcome
    print(json.dumps(aio.run_asyncio(run())))


async def bad_unknown_plugin(args):
    await aimm_backend.plugin.create(
        {"module": "aimm_backend.plugin", "plugin": "no_such_plugin",
         "plugin_dirs": [args.workdir]}, None)


async def bad_other_api(args):
    await aimm_backend.plugin.create(
        {"module": "aimm_backend.plugin", "plugin": args.library}, None)


async def bad_invalid_config(args):
    await aimm_backend.sqlite.create(
        {"module": "aimm_backend.sqlite", "path": 5}, None)


async def bad_missing_plugin_key(args):
    await aimm_backend.plugin.create({"module": "aimm_backend.plugin"}, None)


async def _with_sqlite(args, body):
    db = os.path.join(args.workdir, "bad.db")
    backend = await aimm_backend.sqlite.create(sqlite_conf(db), None)
    try:
        await body(backend)
    finally:
        await backend.async_close()


async def bad_serializer_raises(args):
    await _with_sqlite(args, lambda b: b.create_model(BAD_TYPE, object()))


async def bad_serializer_raises_on_update(args):
    """An update whose serializer fails: the caller gets the failure, and
    the stored model stays as it was."""
    async def body(backend):
        model = await backend.create_model(MODEL_TYPE, b"kept")
        try:
            await backend.update_model(
                model._replace(model_type=BAD_TYPE, instance=object()))
        finally:
            stored = [(m.instance_id, m.model_type, m.instance)
                      for m in await backend.get_models()]
            if stored != [(model.instance_id, MODEL_TYPE, b"kept")]:
                raise AssertionError(
                    f"the failed update stored something: {stored}")
    await _with_sqlite(args, body)

async def bad_serializer_returns_str(args):
    await _with_sqlite(args, lambda b: b.create_model(STR_TYPE, object()))


async def bad_plugin_panics(args):
    backend = await aimm_backend.plugin.create(
        {"module": "aimm_backend.plugin", "plugin": args.library}, None)
    try:
        await backend.create_model(MODEL_TYPE, b"boom")
    finally:
        await backend.async_close()


async def bad_event_server_gone(args):
    """The event server is stopped while the backend is open: calls fail
    with a clear error instead of hanging."""
    client = await connect_client(args.port, "gone", ["aimm", "gone"])
    backend = await aimm_backend.event.create(
        {"module": "aimm_backend.event", "model_prefix": ["aimm", "gone"]},
        client)
    try:
        await backend.create_model(MODEL_TYPE, b"before")
        subprocess.run(["bash", args.stop_script, "stop", args.server_dir],
                       check=True, capture_output=True, timeout=60)
        await asyncio.sleep(0.5)
        await backend.create_model(MODEL_TYPE, b"after")
    finally:
        await backend.async_close()
        await client.async_close()


BAD_INPUTS = {
    "unknown-plugin": bad_unknown_plugin,
    "other-api": bad_other_api,
    "invalid-config": bad_invalid_config,
    "missing-plugin-key": bad_missing_plugin_key,
    "serializer-raises": bad_serializer_raises,
    "serializer-raises-on-update": bad_serializer_raises_on_update,
    "serializer-returns-str": bad_serializer_returns_str,
    "plugin-panics": bad_plugin_panics,
    "event-server-gone": bad_event_server_gone,
}


# -------------------------------------------------------------- lifecycle


def cmd_lifecycle(args):
    """Created twice in one process; a forked child while writes go on;
    closing with writes in flight."""
    async def run():
        conf = sqlite_conf(args.db)
        first = await aimm_backend.sqlite.create(conf, None)
        second = await aimm_backend.sqlite.create(conf, None)
        a = await first.create_model(MODEL_TYPE, b"from first")
        b = await second.create_model(MODEL_TYPE, b"from second")
        seen_by_first = sorted(m.instance_id for m in await first.get_models())
        await second.async_close()

        # The AIMM engine forks workers while the server runs.
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        writes = [asyncio.ensure_future(
            first.create_model(MODEL_TYPE, payload(f"fork-{i}", 100000)))
            for i in range(8)]
        child = ctx.Process(target=_forked_child, args=(results,))
        child.start()
        await asyncio.gather(*writes)
        await asyncio.get_running_loop().run_in_executor(None, child.join, 30)
        child_exit = child.exitcode
        child_said = results.get(timeout=5) if child_exit == 0 else None
        after_fork = await first.create_model(MODEL_TYPE, b"after fork")

        # The backend's threads keep nothing of a call once it is done: a
        # model its caller has dropped is freed (a model of 256 MiB must
        # not outlive its write until the thread's next call).
        held = Held(payload("held", 1000))
        held_ref = weakref.ref(held)
        model = await first.create_model(HELD_TYPE, held)
        await first.update_model(model)
        del held, model
        gc.collect()
        freed_after_calls = held_ref() is None

        # Close with writes in flight: they finish and are stored; a
        # write started after close fails.
        in_flight = [asyncio.ensure_future(
            first.create_model(MODEL_TYPE, payload(f"flight-{i}", 200000)))
            for i in range(16)]
        await asyncio.sleep(0)
        await first.async_close()
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        try:
            await first.create_model(MODEL_TYPE, b"after close")
            after_close = "stored"
        except ConnectionError as e:
            after_close = str(e)
        acknowledged = [m.instance_id for m in outcomes
                        if not isinstance(m, BaseException)]
        failed = [f"{type(e).__name__}: {e}" for e in outcomes
                  if isinstance(e, BaseException)]

        reopened = await aimm_backend.sqlite.create(conf, None)
        stored = {m.instance_id for m in await reopened.get_models()}
        await reopened.async_close()
        # Closed means closed: the file is released (the WAL checkpointed
        # and removed), though Python still holds the backend objects.
        wal_left = os.path.exists(f"{args.db}-wal")
        return {
            "first_id": a.instance_id, "second_id": b.instance_id,
            "seen_by_first": seen_by_first,
            "child_exit": child_exit, "child_said": child_said,
            "after_fork_id": after_fork.instance_id,
            "freed_after_calls": freed_after_calls,
            "in_flight_acknowledged": len(acknowledged),
            "after_close": after_close,
            "in_flight_failed": failed[:3],
            "acknowledged_missing": [i for i in acknowledged
                                     if i not in stored],
            "wal_left_after_close": wal_left,
        }
    print(json.dumps(aio.run_asyncio(run())))


def _forked_child(results):
    # What an engine worker does: plugin code, no backend calls.
    results.put(sum(range(1000)))


# ---------------------------------------------------------------- logging


def cmd_logging(args):
    """Plugin log records arrive in Python `logging`, under `aimm_backend`,
    and so do the loader's warnings (here: a key no one reads)."""
    import logging
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append([record.name, record.levelname, record.getMessage(),
                            getattr(record, "plugin_target", None)])

    logging.getLogger("aimm_backend").addHandler(Collect())
    logging.getLogger("aimm_backend").setLevel(logging.DEBUG)

    async def run():
        conf = sqlite_conf(args.db, paht="misspelt")
        backend = await aimm_backend.sqlite.create(conf, None)
        await backend.async_close()
    aio.run_asyncio(run())
    print(json.dumps({"records": records}))


# ------------------------------------------------------------------ event


async def connect_client(port, name, prefix, events_cb=None):
    """The server's kind of eventer client: persisted=False, subscribed to
    what `aimm_backend.event` asks for."""
    subscriptions = aimm_backend.event.create_subscription(
        {"module": "aimm_backend.event", "model_prefix": prefix})
    return await hat.event.eventer.connect(
        addr=tcp.Address("127.0.0.1", port), client_name=name,
        subscriptions=subscriptions, events_cb=events_cb)


def record_registrations(client):
    """Wraps `client.register`; the returned list gets, per registration,
    whether it asked for the answer and whether its events carry payloads
    (model events do, id claims do not)."""
    registrations = []
    register = client.register

    async def recording(events, with_response=False):
        registrations.append({
            "with_response": with_response,
            "payloads": all(e.payload is not None for e in events)})
        return await register(events, with_response)

    client.register = recording
    return registrations


def model_writes(registrations, with_response):
    return sum(1 for r in registrations
               if r["payloads"] and r["with_response"] == with_response)


def cmd_event(args):
    """Ours and the stock event backend on one server and prefix, each
    through its own server-style client; notifications routed to
    `process_events` as the AIMM server does."""
    import aimm.server.backend.event as stock
    prefix = ["aimm", args.prefix]

    async def run():
        ours_holder = {}

        async def on_events(_, events):
            backend = ours_holder.get("backend")
            if backend is not None:
                await backend.process_events(events)

        client = await connect_client(args.port, "ours", prefix, on_events)
        registrations = record_registrations(client)
        conf = {"module": "aimm_backend.event", "model_prefix": prefix,
                "acknowledge": args.acknowledge}
        ours = await aimm_backend.event.create(conf, client)
        ours_holder["backend"] = ours
        loop_thread = threading.get_ident()
        heard = []
        ours.register_model_change_cb(
            lambda m: heard.append((m.instance_id, m.instance,
                                    threading.get_ident() == loop_thread)))

        # The stock host starts first and counts its ids from the highest
        # stored one (its own way); ours must never collide with those.
        stock_client = await connect_client(args.port, "stock", prefix)
        stock_backend = await stock.create(
            {"module": "aimm.server.backend.event", "model_prefix": prefix},
            stock_client)
        stock_first = await stock_backend.create_model(MODEL_TYPE, b"stock 1")

        created = await bounded(ours.create_model(MODEL_TYPE, b"ours 1"),
                                "create")
        updated = created._replace(instance=b"ours 1b")
        await bounded(ours.update_model(updated), "update")
        # The same again: with an answer to go by, nothing is registered
        # and no listener hears of it.
        await bounded(ours.update_model(updated), "unchanged update")
        second = await bounded(ours.create_model(MODEL_TYPE, b"ours 2"),
                               "create")

        # A write of the other host reaches ours through process_events.
        stock_model = await stock_backend.create_model(MODEL_TYPE, b"stock 2")
        deadline = time.monotonic() + 10
        while (not any(h[0] == stock_model.instance_id for h in heard)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        # The other host overwrites ours; once ours has heard of it, the
        # same update as before is registered again.
        await stock_backend.update_model(updated._replace(instance=b"stock over"))
        deadline = time.monotonic() + 10
        while (not any(h[:2] == (created.instance_id, b"stock over")
                       for h in heard)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        await bounded(ours.update_model(updated), "update after the other's")
        # With `acknowledge: sent` the call returns once the write is sent,
        # as stock's does; the answer to a query sent after it on the same
        # connection says the server has registered it (the server handles
        # one connection's messages in order). Without this, the other
        # connection's read below may come first.
        await bounded(client.query(
            hat.event.common.QueryLatestParams(event_types=[])),
            "query after the update")
        seen_by_stock = {m.instance_id: m.instance
                         for m in await stock_backend.get_models()}
        seen_by_ours = {m.instance_id: m.instance
                        for m in await ours.get_models()}
        await stock_backend.async_close()
        await stock_client.async_close()
        await ours.async_close()
        await client.async_close()

        # A restarted host: a new client and backend, then a create. Its
        # client's notifications go nowhere (no events_cb).
        client = await connect_client(args.port, "ours-again", prefix)
        again_registrations = record_registrations(client)
        again = await aimm_backend.event.create(conf, client)
        after_restart = await bounded(again.create_model(MODEL_TYPE, b"ours 3"),
                                      "create after restart")
        final = {m.instance_id: m.instance for m in await again.get_models()}
        await again.async_close()
        await client.async_close()

        def text(d):
            return {str(k): v.decode() for k, v in d.items()}
        return {
            "ours_ids": [created.instance_id, second.instance_id,
                         after_restart.instance_id],
            "stock_ids": [stock_first.instance_id, stock_model.instance_id],
            "seen_by_stock": text(seen_by_stock),
            "seen_by_ours": text(seen_by_ours),
            "final": text(final),
            "heard": [[i, b.decode(), on_loop] for i, b, on_loop in heard],
            "model_writes_answered": model_writes(registrations, True),
            "model_writes_unanswered": model_writes(registrations, False),
            "again_model_writes_answered": model_writes(again_registrations, True),
            "again_model_writes_unanswered": model_writes(again_registrations, False),
        }
    print(json.dumps(aio.run_asyncio(run())))


def cmd_event_inline(args):
    """`acknowledge: sent` through the server's kind of client. Writes that
    need no answer from the server run on the loop and return without
    suspending (a task counting loop turns gets none during them); a create
    that claims ids and an update of a model the backend has never seen
    suspend (they run on a backend thread); creates started together, while
    one of them claims on a thread, all finish; the server holds every
    model, each with its last write, the inline ones in order after the
    one that ran on a thread."""
    prefix = ["aimm", "inline"]
    conf = {"module": "aimm_backend.event", "model_prefix": prefix,
            "acknowledge": "sent"}
    empty = hat.event.common.QueryLatestParams(event_types=[])

    async def open_ours(name):
        holder = {}

        async def on_events(_, events):
            if "backend" in holder:
                await holder["backend"].process_events(events)

        client = await connect_client(args.port, name, prefix, on_events)
        holder["backend"] = await aimm_backend.event.create(conf, client)
        return client, holder["backend"]

    async def run():
        turns = 0

        async def count_turns():
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        counter = asyncio.ensure_future(count_turns())
        await asyncio.sleep(0)

        async def turns_during(awaitable, what):
            # Awaited as it is: `bounded` would add turns of its own (the
            # whole scenario is bounded instead).
            before = turns
            result = await awaitable
            return result, turns - before

        client, ours = await open_ours("inline")
        first, first_turns = await turns_during(
            ours.create_model(MODEL_TYPE, b"m1"), "first create")
        later = [await turns_during(
                     ours.create_model(MODEL_TYPE, b"m%d" % i), "create")
                 for i in range(2, 6)]
        _, update_turns = await turns_during(
            ours.update_model(first._replace(instance=b"m1 v2")), "update")
        await bounded(client.query(empty), "query after the writes")

        other_client, other = await open_ours("inline-other")
        _, unseen_turns = await turns_during(
            other.update_model(first._replace(instance=b"other 1")),
            "update of an unseen model")
        seen_turns = []
        for text in (b"other 2", b"other 3"):
            _, n = await turns_during(
                other.update_model(first._replace(instance=text)),
                "update of a seen model")
            seen_turns.append(n)
        await bounded(other_client.query(empty), "query after the updates")

        third_client, third = await open_ours("inline-third")
        together = await bounded(asyncio.gather(*(
            third.create_model(MODEL_TYPE, b"t%d" % i) for i in range(3))),
            "creates started together")
        await bounded(third_client.query(empty), "query after the creates")

        final = {m.instance_id: m.instance for m in await ours.get_models()}
        counter.cancel()
        for backend, c in ((ours, client), (other, other_client),
                           (third, third_client)):
            await backend.async_close()
            await c.async_close()
        ids = ([first.instance_id] + [m.instance_id for m, _ in later]
               + [m.instance_id for m in together])
        return {
            "first_turns": first_turns,
            "later_turns": [n for _, n in later],
            "update_turns": update_turns,
            "unseen_update_turns": unseen_turns,
            "seen_update_turns": seen_turns,
            "ids": ids,
            "final": {str(k): v.decode() for k, v in final.items()},
        }
    print(json.dumps(aio.run_asyncio(bounded(run(), "event-inline"))))


def cmd_event_unheard(args):
    """A write acknowledged by its notification, whose notification stops
    reaching `process_events`: it fails once the bridge's timeout has
    passed, saying so, and the next write, heard again, works."""
    prefix = ["aimm", "unheard"]

    async def run():
        holder = {"deaf": False}

        async def on_events(_, events):
            if not holder["deaf"] and "backend" in holder:
                await holder["backend"].process_events(events)

        client = await connect_client(args.port, "unheard", prefix, on_events)
        registrations = record_registrations(client)
        backend = await aimm_backend.event.create(
            {"module": "aimm_backend.event", "model_prefix": prefix,
             "acknowledge": "registered"}, client)
        holder["backend"] = backend
        model = await bounded(backend.create_model(MODEL_TYPE, b"heard 1"),
                              "create")
        # Its notifications have reached process_events once its model
        # event's has: from then on writes are acknowledged by them.
        await bounded(backend.update_model(model._replace(instance=b"heard 2")),
                      "update")
        backend.event_bridge.timeout = 1.0
        holder["deaf"] = True
        started = time.monotonic()
        try:
            await bounded(
                backend.update_model(model._replace(instance=b"unheard")),
                "unheard update")
            unheard = "acknowledged"
        except Exception as e:
            unheard = f"{type(e).__name__}: {e}"
        unheard_seconds = time.monotonic() - started
        holder["deaf"] = False
        backend.event_bridge.timeout = 30.0
        await bounded(backend.update_model(model._replace(instance=b"heard 3")),
                      "update heard again")
        stored = {m.instance_id: m.instance.decode()
                  for m in await backend.get_models()}
        await backend.async_close()
        await client.async_close()
        return {
            "unheard": unheard,
            "unheard_seconds": unheard_seconds,
            "stored": stored.get(model.instance_id),
            "model_writes_answered": model_writes(registrations, True),
            "model_writes_unanswered": model_writes(registrations, False),
        }
    print(json.dumps(aio.run_asyncio(run())))


def cmd_event_own(args):
    """`aimm_backend.event` with `eventer_server` in its section: a
    connection of its own, the server's client carrying none of its events;
    another host's writes still reach its listeners; closing it closes the
    connection."""
    import aimm.server.backend.event as stock
    prefix = ["aimm", "own"]
    conf = {"module": "aimm_backend.event", "model_prefix": prefix,
            "eventer_server": {"host": "127.0.0.1", "port": args.port}}

    async def run():
        records = []
        handler = _Collect(records)
        logging.getLogger("aimm_backend").addHandler(handler)
        subscription = aimm_backend.event.create_subscription(conf)
        holder = {"notified": 0}

        async def on_events(_, events):
            # As the AIMM server does: what the subscription matches goes
            # to process_events (here: nothing of the models).
            holder["notified"] += len(events)
            if "backend" in holder:
                await holder["backend"].process_events(events)

        client = await hat.event.eventer.connect(
            addr=tcp.Address("127.0.0.1", args.port), client_name="server",
            subscriptions=subscription, events_cb=on_events)
        registrations = record_registrations(client)
        # The other host starts first: stock counts its ids from the
        # highest stored one, and would overwrite ours otherwise.
        stock_client = await connect_client(args.port, "stock", prefix)
        stock_backend = await stock.create(
            {"module": "aimm.server.backend.event", "model_prefix": prefix},
            stock_client)
        ours = await bounded(aimm_backend.event.create(conf, client), "create()")
        holder["backend"] = ours
        heard = []
        ours.register_model_change_cb(
            lambda m: heard.append((m.instance_id, m.instance)))
        created = await bounded(ours.create_model(MODEL_TYPE, b"own 1"),
                                "create")
        await bounded(ours.update_model(created._replace(instance=b"own 1b")),
                      "update")
        second = await bounded(ours.create_model(MODEL_TYPE, b"own 2"),
                               "create")

        # The other host, on the server's kind of client, sees ours'
        # models, and ours hears of its write through its own connection.
        seen_by_stock = {m.instance_id: m.instance.decode()
                         for m in await stock_backend.get_models()}
        stock_model = await stock_backend.create_model(MODEL_TYPE, b"stock 1")
        deadline = time.monotonic() + 10
        while (not any(i == stock_model.instance_id for i, _ in heard)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        seen_by_ours = {m.instance_id: m.instance.decode()
                        for m in await ours.get_models()}
        connected = await eventer_status(stock_client)
        await bounded(ours.async_close(), "async_close")
        deadline = time.monotonic() + 10
        closed = await eventer_status(stock_client)
        while closed != "DISCONNECTED" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            closed = await eventer_status(stock_client)
        await stock_backend.async_close()
        await stock_client.async_close()
        await client.async_close()
        logging.getLogger("aimm_backend").removeHandler(handler)
        return {
            "subscription": [list(t) for t in subscription],
            "bridge": ours.event_bridge is not None,
            "ids": [created.instance_id, second.instance_id],
            "seen_by_stock": {str(k): v for k, v in seen_by_stock.items()},
            "seen_by_ours": {str(k): v for k, v in seen_by_ours.items()},
            "stock_id": stock_model.instance_id,
            "heard": [[i, b.decode()] for i, b in heard],
            "server_client_notified": holder["notified"],
            "server_client_registrations": len(registrations),
            "eventer_status_open": connected,
            "eventer_status_closed": closed,
            "warnings": [r.getMessage() for r in records
                         if r.levelno >= logging.WARNING],
        }
    print(json.dumps(aio.run_asyncio(run())))


class _Collect(logging.Handler):
    def __init__(self, records):
        super().__init__(logging.DEBUG)
        self._records = records

    def emit(self, record):
        self._records.append(record)


async def eventer_status(client):
    """What the event server last recorded of the client `aimm-backend`
    (the name of a backend's own connection): CONNECTED, DISCONNECTED or
    None."""
    result = await bounded(client.query(hat.event.common.QueryLatestParams(
        event_types=[("event", "?", "eventer", "aimm-backend")])), "query")
    if not result.events:
        return None
    return result.events[0].payload.data


class LoopThread:
    """An event loop running on a thread of its own, as the server's loop is
    to the plugin threads that call the bridge."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever,
                                        daemon=True)
        self._thread.start()

    def bridge(self, client, timeout):
        """An ``EventBridge`` over ``client``, made on the loop's thread as
        the server makes it."""
        from aimm_backend import _events

        async def make():
            return _events.EventBridge(client, self.loop, timeout=timeout)

        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(5)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def cmd_bridge_deadline(args):
    """The bridge's deadline grows with the largest payload registered
    through it: a server slow with a large event (here a client answering
    after 1.5 s) fails a bridge whose largest payload is small (base
    deadline 1 s), not one that registered 2 MiB (1 s + 2 x 1 s)."""

    class SlowClient:
        async def register(self, events, with_response=False):
            await asyncio.sleep(1.5)
            return None

    loop_thread = LoopThread()

    def attempt(payload_bytes):
        bridge = loop_thread.bridge(SlowClient(), timeout=1.0)
        event = (("m", "1"), None, ("json", '"' + "a" * payload_bytes + '"'))
        started = time.monotonic()
        try:
            bridge.register([event], False)
            outcome = "answered"
        except TimeoutError as e:
            outcome = str(e)
        return {"outcome": outcome, "deadline": bridge.timeout,
                "seconds": time.monotonic() - started}

    result = {"small": attempt(100), "large": attempt(2 << 20)}
    loop_thread.stop()
    print(json.dumps(result))


def cmd_bridge_hand_over(args):
    """A registration acknowledged when sent is handed to the loop and the
    plugin thread goes on: it returns before the client has sent it, the
    client sends it before a query asked for after it, a client whose
    connection is closed refuses it at once, and a send that fails is
    logged."""

    class RecordingClient:
        def __init__(self):
            self.is_open = True
            self.calls = []

        async def register(self, events, with_response=False):
            # Numbered and queued before the first suspension, as
            # hat.event.eventer.Client does.
            self.calls.append(["register", events[0].type[-1]])
            if events[0].type[-1] == "fails":
                raise ConnectionError("the peer went away")
            await asyncio.sleep(1.0)
            return None

        async def query(self, params):
            self.calls.append(["query"])
            return hat.event.common.QueryResult(events=[], more_follows=False)

    loop_thread = LoopThread()
    client = RecordingClient()
    warnings = []

    class Warnings(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logging.getLogger("aimm_backend._events").addHandler(Warnings())
    bridge = loop_thread.bridge(client, timeout=10.0)
    event = (("m", "1"), None, ("json", '"x"'))
    started = time.monotonic()
    answer = bridge.hand_over([event])
    handed_over = time.monotonic() - started
    bridge.query_latest([("m", "*")])
    bridge.hand_over([(("m", "fails"), None, ("json", '"x"'))])
    bridge.query_latest([("m", "*")])
    # The failure is logged by a callback the loop runs after the send.
    deadline = time.monotonic() + 5
    while not warnings and time.monotonic() < deadline:
        time.sleep(0.01)
    client.is_open = False
    try:
        bridge.hand_over([event])
        closed = "accepted"
    except ConnectionError as e:
        closed = str(e)
    loop_thread.stop()
    print(json.dumps({"answer": answer, "handed_over_seconds": handed_over,
                      "calls": client.calls, "closed": closed,
                      "warnings": warnings}))


def cmd_bridge_fresh_window(args):
    """A registration of a payload of 16 MiB or more is preceded by an
    empty query on the same client, whose answer restarts the connection's
    idle clock; a smaller one, with or without response, is not."""
    from aimm_backend import _events

    class RecordingClient:
        def __init__(self):
            self.calls = []

        async def register(self, events, with_response=False):
            self.calls.append(["register", len(events[0].payload.data)])
            return [] if with_response else None

        async def query(self, params):
            self.calls.append(["query", list(params.event_types)])
            return hat.event.common.QueryResult(events=[], more_follows=False)

    loop_thread = LoopThread()
    client = RecordingClient()
    bridge = loop_thread.bridge(client, timeout=10.0)
    limit = _events.FRESH_WINDOW_MIB << 20
    for size, with_response in ((limit - 1, False), (limit, False),
                                (100, True), (limit, True)):
        bridge.register([(("m", "1"), None, ("binary", "t", b"x" * size))],
                        with_response)
    loop_thread.stop()
    print(json.dumps({"limit": limit, "calls": client.calls}))


def cmd_json_text(args):
    """The JSON text the plugin gets for payload data the server's client
    decoded: for each value, whether it parses to what json.dumps's text
    parses to, and whether it is json.dumps's text (which the writer falls
    back to for what it does not take) or the compact form."""
    import collections
    import enum
    from aimm_backend import _native

    class Number(enum.IntEnum):
        ONE = 1

    values = {
        "model": {"type": "a.B", "instance": "QUJD" * 1000},
        "nested": {"a": [1, -2, 2.5, 1e300, -0.0, True, False, None],
                   "b": {"c": [], "d": {}}, "": ""},
        "escapes": "quote \" backslash \\ newline \n tab \t nul \x00 \x1f",
        "unicode": "é ∑ 😀",
        # Past whole blocks of plain ASCII, then what ends the run.
        "long_mixed": "x" * 200 + "é\"\n" + "y" * 100,
        "straddling": "a" * 63 + "é" + "b" * 64,
        "after_blocks": "a" * 128 + "\\" + "é" * 40,
        "big_int": 2**100,
        "tuple": (1, "two"),
        "scalar": 3,
        "null": None,
        # Left to json.dumps:
        "int_keys": {1: "one"},
        "nan": float("nan"),
        "subclass": collections.OrderedDict(x=Number.ONE),
        "surrogate": "\ud800",
    }
    result = {}
    for name, value in values.items():
        text = _native.json_text(value)
        dumped = json.dumps(value)
        # Equal values re-dump equally (NaN included, which is not equal
        # to itself).
        result[name] = {
            "parses_back": (json.dumps(json.loads(text))
                            == json.dumps(json.loads(dumped))),
            "as_json_dumps": text == dumped,
            "compact": text == json.dumps(value, separators=(",", ":"),
                                          ensure_ascii=False),
        }
    print(json.dumps(result))


# ------------------------------------------------------------------ traps


def cmd_traps(args):
    """The deadlock traps of a native backend under asyncio, each tried."""
    prefix = ["aimm", "traps"]

    async def run():
        client = await connect_client(args.port, "traps", prefix)
        backend = await aimm_backend.event.create(
            {"module": "aimm_backend.event", "model_prefix": prefix}, client)
        result = {}

        # 1. A plugin call on the loop thread would wait for the loop it
        #    blocks: refused at once instead.
        started = time.monotonic()
        try:
            backend.native.get_models()
            result["loop_thread_call"] = "returned"
        except aimm_backend.BackendError as e:
            result["loop_thread_call"] = f"{type(e).__name__}: {e}"
        result["loop_thread_call_seconds"] = time.monotonic() - started

        # 2. The plugin's thread needs the loop (the event client) while
        #    a native call is in progress: the GIL must be free meanwhile.
        model = await bounded(backend.create_model(MODEL_TYPE, b"x" * 100),
                              "create through the bridge")
        result["bridged_create_id"] = model.instance_id

        # 3. The loop runs Python while a native call is in progress (the
        #    call released the GIL): ticks of a 10 ms timer are counted
        #    strictly inside a 64 MiB native write; holding the GIL would
        #    allow none.
        sqlite_backend = await aimm_backend.sqlite.create(
            sqlite_conf(args.db), None)
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        window = {}

        def timed_native_write(blob):
            window["start"] = time.monotonic()
            try:
                return sqlite_backend.native.create_model(MODEL_TYPE, blob)
            finally:
                window["end"] = time.monotonic()
        blob = payload("big", 64 << 20)
        tick_task = asyncio.ensure_future(ticker())
        await bounded(asyncio.get_running_loop().run_in_executor(
            None, timed_native_write, blob), "64 MiB native create")
        tick_task.cancel()
        result["native_call_seconds"] = window["end"] - window["start"]
        result["ticks_inside_native_call"] = sum(
            window["start"] < t < window["end"] for t in ticks)

        # 4. Change callbacks run on the loop thread, handed over from the
        #    plugin's thread.
        loop_thread = threading.get_ident()
        heard = asyncio.get_running_loop().create_future()
        sqlite_backend.register_model_change_cb(
            lambda m: heard.done() or heard.set_result(
                (m.instance_id, threading.get_ident() == loop_thread)))
        changed = await sqlite_backend.create_model(MODEL_TYPE, b"cb")
        heard_id, on_loop = await bounded(heard, "change callback")
        result["callback"] = {"id": heard_id, "expected": changed.instance_id,
                              "on_loop_thread": on_loop}
        await sqlite_backend.async_close()
        await backend.async_close()
        await client.async_close()

        result["event_client_in_process_events"] = await bounded(
            trap_event_client_in_process_events(args.port, prefix),
            "a plugin using the event client in process_events")
        return result
    print(json.dumps(aio.run_asyncio(run())))


async def trap_event_client_in_process_events(port, prefix):
    """5. A plugin that queries through the event client while it processes
    notified events. The server's client awaits `process_events` inside its
    receive loop, which must read the query's answer: `process_events` must
    not wait for the plugin."""
    holder = {}

    async def on_events(_, events):
        await holder["backend"].process_events(events)

    client = await connect_client(port, "traps-5", prefix, on_events)
    backend = await aimm_backend.event.create(
        {"module": "aimm_backend.event", "model_prefix": prefix}, client)
    queried = concurrent.futures.Future()

    class QueryingPlugin:
        """The native backend, but its process_events queries first."""

        def __init__(self, native, bridge):
            self._native, self._bridge = native, bridge

        def __getattr__(self, name):
            return getattr(self._native, name)

        def process_events(self, events):
            try:
                found = self._bridge.query_latest([(*prefix, "*")])
                if not queried.done():
                    queried.set_result(len(found))
            except Exception as e:
                if not queried.done():
                    queried.set_exception(e)
            self._native.process_events(events)

    backend._native = QueryingPlugin(backend.native, backend.event_bridge)
    holder["backend"] = backend
    other = await connect_client(port, "traps-other", prefix)
    await other.register([hat.event.common.RegisterEvent(
        type=(*prefix, "12345"), source_timestamp=None,
        payload=hat.event.common.EventPayloadJson(
            {"type": MODEL_TYPE, "instance": "eA=="}))])
    try:
        found = await asyncio.wait_for(asyncio.wrap_future(queried), 10)
        outcome = f"queried {found} events"
    except asyncio.TimeoutError:
        outcome = "no answer within 10 s: the receive loop waited for the plugin"
    await other.async_close()
    await backend.async_close()
    await client.async_close()
    return outcome


# ------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("writers")
    p.add_argument("--db", required=True)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--size", type=int, default=65536)
    p = sub.add_parser("writer")
    p.add_argument("--db", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p = sub.add_parser("stock-interop")
    p.add_argument("--db", required=True)
    p = sub.add_parser("plugin")
    p.add_argument("--plugin-dir", required=True)
    p = sub.add_parser("bad-input")
    p.add_argument("case", choices=sorted(BAD_INPUTS))
    p.add_argument("--workdir", required=True)
    p.add_argument("--library")
    p.add_argument("--port", type=int)
    p.add_argument("--server-dir")
    p.add_argument("--stop-script")
    p = sub.add_parser("lifecycle")
    p.add_argument("--db", required=True)
    p = sub.add_parser("logging")
    p.add_argument("--db", required=True)
    p = sub.add_parser("event")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--prefix", default="checks")
    p.add_argument("--acknowledge", default="persisted",
                   choices=["persisted", "registered", "sent"])
    sub.add_parser("json-text")
    p = sub.add_parser("event-inline")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("event-unheard")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("event-own")
    p.add_argument("--port", type=int, required=True)
    sub.add_parser("bridge-deadline")
    sub.add_parser("bridge-hand-over")
    sub.add_parser("bridge-fresh-window")
    p = sub.add_parser("traps")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    args = parser.parse_args()
    command = {
        "writers": cmd_writers, "writer": cmd_writer,
        "stock-interop": cmd_stock_interop, "plugin": cmd_plugin,
        "bad-input": cmd_bad_input, "lifecycle": cmd_lifecycle,
        "logging": cmd_logging,
        "event": cmd_event, "event-inline": cmd_event_inline,
        "event-unheard": cmd_event_unheard,
        "event-own": cmd_event_own, "bridge-deadline": cmd_bridge_deadline,
        "bridge-hand-over": cmd_bridge_hand_over,
        "bridge-fresh-window": cmd_bridge_fresh_window,
        "json-text": cmd_json_text,
        "traps": cmd_traps,
    }[args.command]
    try:
        command(args)
    except Exception as e:
        print(f"aimm_backend_checks {args.command}: {type(e).__name__}: {e}",
              file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
