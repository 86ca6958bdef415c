#!/usr/bin/env python3
"""Where one create of ``aimm_backend.event`` goes through the AIMM server's
own event client (the default), step by step, beside the bare client's
answered registration of the same event (the floor the sweep calls (a)).

Why: the sweep (bench_sweep.py) says how long creates take; not which part
of the path is ours and which is the hat libraries' or the event server's.
This prints the median of each step over the creates of one size, in one
run on one fresh server:

* to the backend thread: ``create_model`` called on the loop until the
  backend's thread runs it;
* plugin, before the bridge: the native call until the plugin hands the
  model event to the bridge (copying the bytes in, the digest, base64, the
  JSON text, the event as Python objects);
* bridge, to the wire: the bridge's ``register`` until the connection
  starts writing the message (the bridge's ``json.loads`` of the payload
  text, the hop to the loop, ``hat.event``'s JSON and SBS encoding);
* framing and writing: ``hat.drivers.chatter``'s ``_write`` of the
  create's largest message, the model's registration (it builds the frame
  with ``bytes(itertools.chain(...))``, one Python-level step per byte,
  and writes it); from 16 MiB up the bridge first sends an empty query and
  waits for its answer (``FRESH_WINDOW_MIB``), which falls in the step
  before;
* event server: from the end of that write until the next message, the
  notification, has been read (the server decodes, registers, encodes the
  notification and frames it the same way; the transfer);
* client decode: until ``process_events`` is called (SBS, ``json.loads``);
* delivery and return: until ``create_model`` returns (the hop to the
  delivery thread, the payload back into the plugin, its match with the
  waiting write, the return to the loop).

The first create is left out (it claims a block of ids). The timestamps
come from wrapping those functions in this process; the wrapping costs
microseconds a step.

Run with the venv that has ``aimm`` and our wheel::

    target/py-venv/bin/python tests/python/bench_event_timeline.py 16777216 5
"""

import argparse
import asyncio
import functools
import pathlib
import statistics
import sys
import tempfile
import time

import hat.drivers.chatter as chatter

import bench_sweep as bs
from aimm_backend import _backend, _events

STEPS = (
    ("to the backend thread", "create", "worker"),
    ("plugin, before the bridge", "worker", "bridge"),
    ("bridge, to the wire", "bridge", "write start"),
    ("framing and writing", "write start", "write end"),
    ("event server", "write end", "read"),
    ("client decode", "read", "process_events"),
    ("delivery and return", "process_events", "created"),
)

marks = []


def mark(what, size=0):
    marks.append((time.perf_counter(), what, size))


def wrap(owner, name, before=None, after=None, size_of=None):
    """Wraps ``owner.name`` (a function or a coroutine function) to mark
    ``before`` on the call, with ``size_of(*args)`` when given, and
    ``after`` on its return."""
    original = getattr(owner, name)

    def mark_before(args):
        if before:
            mark(before, size_of(*args) if size_of else 0)

    if asyncio.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapped(*args, **kwargs):
            mark_before(args)
            result = await original(*args, **kwargs)
            if after:
                mark(after)
            return result
    else:
        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            mark_before(args)
            result = original(*args, **kwargs)
            if after:
                mark(after)
            return result
    setattr(owner, name, wrapped)


def instrument():
    wrap(_backend.Backend, "create_model", "create", "created")
    wrap(_backend.Backend, "_create_model", "worker")
    wrap(_events.EventBridge, "register", "bridge")
    # The size of each message's data tells a create's registration from
    # the smaller messages around it.
    wrap(chatter.Connection, "_write", "write start", "write end",
         size_of=lambda _conn, msg: len(msg["data"]["data"]))
    wrap(chatter.Connection, "_read", None, "read")
    wrap(_backend.Backend, "process_events", "process_events")


def steps_of_creates(log):
    """Per create after the first: the seconds of each step, each step
    from its first mark to the first of its end mark after it; the write
    is the create's largest message."""
    starts = [i for i, (_, what, _) in enumerate(log) if what == "create"]
    creates = []
    for start, end in zip(starts[1:], starts[2:] + [len(log)]):
        span = log[start:end]
        writes = [i for i, (_, what, _) in enumerate(span)
                  if what == "write start"]
        largest = max(writes, key=lambda i: span[i][2], default=None)
        times = {}
        at = 0
        for _, begin, finish in STEPS:
            for mark_name in (begin, finish):
                if mark_name in times:
                    continue
                if mark_name == "write start" and largest is not None:
                    found = largest if largest >= at else None
                else:
                    found = next((i for i in range(at, len(span))
                                  if span[i][1] == mark_name), None)
                if found is None:
                    raise RuntimeError(f"create at mark {start}: no "
                                       f"{mark_name!r} after step {at}")
                times[mark_name] = span[found][0]
                at = found
        creates.append([times[finish] - times[begin]
                        for _, begin, finish in STEPS])
    return creates


async def run(size, count):
    bs.register_identity_model()
    instrument()
    work = pathlib.Path(tempfile.mkdtemp(prefix="timeline-"))
    servers = bs.Servers(work)
    try:
        server = servers.start("timeline")
        data = bs.make_data(size, count)
        floor = await bs.run_event_floor(server, ("timeline", "floor"),
                                         data, 600)
        marks.clear()
        figures = await bs.run_event_variant(
            bs.EVENT_OURS, server, ("timeline", "ours"), data, 600, {})
        log = list(marks)
    finally:
        servers.stop_all()
    creates = steps_of_creates(log)
    ours = figures["create"]["call_s"] / count
    floor_a = floor["a"]["create"]["s"] / count
    print(f"{size} bytes x {count}: ours {ours * 1000:.1f} ms a create "
          f"(all {count}), the bare client's answered registration "
          f"{floor_a * 1000:.1f} ms (ours/(a) {ours / floor_a:.2f})")
    print()
    print(f"| step (median of {len(creates)} creates) | ms | share |")
    print("|---|---|---|")
    medians = [statistics.median(c[i] for c in creates)
               for i in range(len(STEPS))]
    total = statistics.median(sum(c) for c in creates)
    for (name, _, _), median in zip(STEPS, medians):
        print(f"| {name} | {median * 1000:.1f} | {median / total:.0%} |")
    print(f"| create, whole | {total * 1000:.1f} | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int, help="model size in bytes")
    parser.add_argument("count", type=int, help="creates (at least 2)")
    args = parser.parse_args()
    if args.count < 2:
        parser.error("count: at least 2 (the first create is left out)")
    asyncio.run(run(args.size, args.count))


if __name__ == "__main__":
    sys.exit(main())
