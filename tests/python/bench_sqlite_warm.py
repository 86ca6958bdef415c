"""Synced creates on a fresh SQLite store against the same creates on a store
that has taken a burst of them before and then been idle.

The size sweep (bench_sweep.py) starts every variant on a fresh file, as
issue 20 asks. There every commit of ours appends to a write-ahead log that
is growing, and each sync must also make the file's new size and blocks
durable. SQLite reuses the WAL from its start once a checkpoint has copied
all of it (ours checkpoints after 100 ms without a write) and cuts it back
to ``journal_size_limit`` (64 MiB), so a store that has been written before
commits into blocks it already holds. Stock's default rollback-journal mode
appends the model to the database file either way. This program measures
both states, stock and ours, in interleaved rounds of one process:

    target/py-venv/bin/python tests/python/bench_sqlite_warm.py 4096 400
    target/py-venv/bin/python tests/python/bench_sqlite_warm.py 262144 200

and prints each round, then the medians and stock's time over ours.
"""

import argparse
import asyncio
import gc
import os
import shutil
import tempfile
import time

import aimm.server.backend.sqlite as stock
from hat import aio

import aimm_backend.sqlite as ours
from bench_sweep import MODEL_TYPE, register_identity_model

IDLE_SECONDS = 1.5
"""How long the warm store rests after its first burst: well past our idle
checkpoint's 100 ms (plus 1 s per GiB of the last write)."""


async def timed_creates(module, directory, size, count, warm):
    """Seconds for ``count`` creates of ``size`` random bytes, awaited one
    after another on a fresh store in ``directory``, after a first burst of
    as many and a rest when ``warm``."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    conf = {"module": module.__name__, "path": os.path.join(directory, "m.db")}
    backend = await aio.call(module.create, conf, None)
    try:
        if warm:
            for _ in range(count):
                await backend.create_model(MODEL_TYPE, os.urandom(size))
            await asyncio.sleep(IDLE_SECONDS)
        blobs = [os.urandom(size) for _ in range(count)]
        started = time.perf_counter()
        for blob in blobs:
            await backend.create_model(MODEL_TYPE, blob)
        return time.perf_counter() - started
    finally:
        await backend.async_close()
        del backend
        gc.collect()


async def run(args):
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-warm-") as work:
        for round_no in range(args.rounds):
            for name, module in (("stock", stock), ("ours", ours)):
                for warm in (False, True):
                    taken = await timed_creates(
                        module, os.path.join(work, "store"), args.size,
                        args.count, warm)
                    seconds.setdefault((name, warm), []).append(taken)
                    state = "warm" if warm else "fresh"
                    print(f"round {round_no + 1} {name:5} {state:5} "
                          f"{taken * 1000 / args.count:.3f} ms per create",
                          flush=True)
    medians = {key: sorted(values)[len(values) // 2]
               for key, values in seconds.items()}
    for warm in (False, True):
        theirs, mine = medians[("stock", warm)], medians[("ours", warm)]
        state = "warm" if warm else "fresh"
        print(f"{args.size} B x {args.count}, {state}: stock "
              f"{theirs * 1000 / args.count:.3f} ms, ours "
              f"{mine * 1000 / args.count:.3f} ms per create; stock/ours "
              f"{theirs / mine:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int, help="bytes per model")
    parser.add_argument("count", type=int, help="creates per burst")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.size < 1 or args.count < 1 or args.rounds < 1:
        parser.error("size, count and --rounds must be at least 1")
    register_identity_model()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
