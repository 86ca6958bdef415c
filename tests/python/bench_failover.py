#!/usr/bin/env python3
"""The Python side of ``failover-bench``: an AIMM event backend module
through ``hat.event.component`` (what the Python AIMM server runs with
``hat.monitor_component``), creating models one by one, awaited, across a
SIGKILL of the active event server.

  bench_failover.py --module MODULE --monitor-port PORT --kill-pid-file FILE
      [--size 4096] [--before 3] [--after 3] [--timeout 60]

MODULE is ``aimm.server.backend.event`` (stock) or ``aimm_backend.event``
(ours through the Python interface). The component joins group
``bench`` (ready, so the monitor blesses it) and follows group ``event``;
its runner is the backend, created with the client of the active server
and rebuilt by the component after a fail-over.

Creates run for --before seconds, then the pid in FILE is sent SIGKILL and
creates go on (a failed one is tried again 10 ms later) for --after
seconds. Prints one JSON object: (seconds, instance id) of every create
that returned with the first 8 bytes of its model (random), before the kill
and after it (seconds from the kill), the creates that failed after it, and
what the new active server lists at the end (id -> first 8 bytes): a create
that returned but is not there with its bytes was lost (never stored, or
overwritten by a later create given the same id). The caller
reckons the rates and the seconds from the kill to the first create that
stayed.
"""

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import sys
import time

import aimm.plugins
from hat import aio
from hat.drivers import tcp
import hat.event.component

MODEL_TYPE = "bench.Model"


def _identity(instance):
    return instance


# The model is its own serialized form: serialization costs next to nothing.
aimm.plugins.serialize([MODEL_TYPE])(_identity)
aimm.plugins.deserialize([MODEL_TYPE])(_identity)


class Follower:
    """The backend of the active server's runner, when there is one."""

    def __init__(self, module, conf):
        self.module = module
        self.conf = conf
        self.backend = None

    async def create_runner(self, _component, _server_data, client):
        backend = await aio.call(self.module.create, self.conf, client)
        self.backend = backend
        return backend


async def attempt(follower, size):
    """One create: its id and the hex of its first 8 bytes (random, so a
    model overwritten under the same id is told apart), or None when it
    failed."""
    backend = follower.backend
    if backend is None or not backend.is_open:
        return None
    tag = os.urandom(8)
    try:
        model = await asyncio.wait_for(
            backend.create_model(MODEL_TYPE, tag + bytes(size - 8)), 10)
    except Exception:
        return None
    return [model.instance_id, tag.hex()]


async def creates_for(follower, seconds, size):
    """Creates one by one for `seconds`: (seconds since start, [id, tag])
    of each that returned, and the count of those that failed."""
    started = time.monotonic()
    done, failed = [], 0
    while (now := time.monotonic() - started) < seconds:
        instance_id = await attempt(follower, size)
        if instance_id is None:
            failed += 1
            await asyncio.sleep(0.01)
        else:
            done.append((now, instance_id))
    return done, failed


async def stored_ids(follower, seconds):
    """Every model the active server's backend lists, once there is a
    backend that can list: instance id -> hex of its first 8 bytes."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        backend = follower.backend
        if backend is not None and backend.is_open:
            with contextlib.suppress(Exception):
                models = await asyncio.wait_for(backend.get_models(), 30)
                return {str(m.instance_id): bytes(m.instance[:8]).hex()
                        for m in models}
        await asyncio.sleep(0.1)
    raise RuntimeError("no listing from the active server")


async def main(args):
    module = importlib.import_module(args.module)
    conf = {"module": args.module, "model_prefix": ["aimm", "bench"]}
    follower = Follower(module, conf)
    subscriptions = list(module.create_subscription(conf)) \
        if hasattr(module, "create_subscription") else []
    component = await hat.event.component.connect(
        addr=tcp.Address("127.0.0.1", args.monitor_port),
        name="failover-bench", group="bench", server_group="event",
        client_name="failover-bench", runner_cb=follower.create_runner,
        eventer_kwargs={"subscriptions": subscriptions})
    await component.set_ready(True)
    deadline = time.monotonic() + args.timeout
    while follower.backend is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no runner within the timeout")
        await asyncio.sleep(0.01)
    before, _ = await creates_for(follower, args.before, args.size)
    pid = int(open(args.kill_pid_file).read().strip())
    os.kill(pid, signal.SIGKILL)
    after, failed = await creates_for(follower, args.after, args.size)
    # The new server's listing: what a create that returned left there.
    await asyncio.sleep(1)
    stored = await stored_ids(follower, args.timeout)
    await component.async_close()
    print(json.dumps({
        "module": args.module, "before": before, "after": after,
        "failed_after_kill": failed, "stored": stored}))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", required=True)
    p.add_argument("--monitor-port", type=int, required=True)
    p.add_argument("--kill-pid-file", required=True)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--before", type=float, default=3)
    p.add_argument("--after", type=float, default=8)
    p.add_argument("--timeout", type=float, default=60)
    return p.parse_args(argv)


if __name__ == "__main__":
    aio.init_asyncio()
    asyncio.run(main(parse_args(sys.argv[1:])))
