"""What one hop from the event loop to a thread and back costs: the
backend's `Workers` against `loop.run_in_executor`, for a call that does
nothing, awaited one after another.

    target/py-venv/bin/python tests/python/bench_thread_hop.py [--calls N] [--rounds R]

Prints microseconds per call for each, per round.
"""

import argparse
import asyncio
import concurrent.futures
import time

from aimm_backend._backend import MAX_WORKERS, Workers


def nothing():
    return None


async def per_call(calls, hop):
    started = time.perf_counter()
    for _ in range(calls):
        await hop()
    return (time.perf_counter() - started) / calls * 1e6


async def main(args):
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(MAX_WORKERS)
    workers = Workers(loop, MAX_WORKERS, "bench")
    try:
        for round_ in range(args.rounds):
            executor_us = await per_call(
                args.calls, lambda: loop.run_in_executor(executor, nothing))
            workers_us = await per_call(
                args.calls, lambda: workers.run(nothing))
            print(f"round {round_ + 1}: run_in_executor {executor_us:.1f} us, "
                  f"Workers {workers_us:.1f} us per call")
    finally:
        workers.shutdown()
        executor.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
