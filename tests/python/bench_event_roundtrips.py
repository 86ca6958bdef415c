#!/usr/bin/env python3
"""Times the server round trips an event-backend create is made of, with the
Python hat-event client, against a running hat-event-server:

  bench_event_roundtrips.py HOST PORT [--count N]

  claim         register one event without payload, with response
  check         query latest of one event type that does not exist
  model         register one 64 KiB model event (base64 JSON), with response
  model-nowait  the same without response, pipelined, ending with a query

The client subscribes to the model events, as an AIMM host does, so the
server also notifies each model event back. Prints one JSON object: the mean
milliseconds per call of each.
"""

import argparse
import asyncio
import base64
import json
import os
import time

from hat.drivers import net
from hat.event import eventer
from hat.event.common import EventPayloadJson, QueryLatestParams, RegisterEvent


async def run(host, port, count):
    prefix = ("roundtrips", str(os.getpid()))
    client = await eventer.connect(
        net.TcpAddress(host, port), "roundtrips", subscriptions=[(*prefix, "*")]
    )
    data = {"type": "t", "instance": base64.b64encode(os.urandom(65536)).decode()}

    def model(i):
        return RegisterEvent(
            type=(*prefix, str(i)), source_timestamp=None, payload=EventPayloadJson(data)
        )

    claim = RegisterEvent(type=("roundtrips#claims",), source_timestamp=None, payload=None)
    timings = {}
    try:
        started = time.perf_counter()
        for _ in range(count):
            await client.register([claim], with_response=True)
        timings["claim"] = time.perf_counter() - started

        started = time.perf_counter()
        for i in range(count):
            await client.query(QueryLatestParams(event_types=[(*prefix, f"missing{i}")]))
        timings["check"] = time.perf_counter() - started

        started = time.perf_counter()
        for i in range(count):
            await client.register([model(i)], with_response=True)
        timings["model"] = time.perf_counter() - started

        started = time.perf_counter()
        for i in range(count):
            await client.register([model(i)], with_response=False)
        await client.query(QueryLatestParams(event_types=[]))
        timings["model-nowait"] = time.perf_counter() - started
    finally:
        await client.async_close()
    return {name: seconds * 1000 / count for name, seconds in timings.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.host, args.port, args.count))))


if __name__ == "__main__":
    main()
