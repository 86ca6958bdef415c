#!/usr/bin/env python3
"""Benchmark the real Python AIMM event backend (aimm==1.2.dev1,
``aimm.server.backend.event``) against a running hat-event-server.

  bench_aimm_event.py HOST PORT PREFIX_JSON --count N --size BYTES

Through the backend's public async interface it times:

  create  N create_model calls of BYTES each. The Python backend does not
          wait for the server (register without response), so the timing
          ends with one query on the same connection: the server handles a
          connection's messages in order, so when the query is answered every
          registration has been processed.
  get     one get_models call returning the N models.

and prints one JSON object on stdout. Models are opaque bytes stored through
an identity (de)serializer, as in aimm_event_tool.py. PREFIX_JSON must name
an empty prefix: get_models must return exactly the N models created.
"""

import argparse
import asyncio
import hashlib
import json
import sys
import time

import aimm.plugins
import aimm.server.backend.event as event_backend
from hat.drivers import net
from hat.event import eventer

MODEL_TYPE = "py.bench"


def _identity(data):
    return data


def payload(index, size):
    head = hashlib.sha256(f"event:{index}".encode()).digest()
    return (head * (size // len(head) + 1))[:size]


async def run(host, port, prefix, count, size):
    aimm.plugins.serialize([MODEL_TYPE])(_identity)
    aimm.plugins.deserialize([MODEL_TYPE])(_identity)
    conf = {"module": "aimm.server.backend.event", "model_prefix": prefix}
    client = await eventer.connect(
        net.TcpAddress(host, port),
        "aimm-python-bench",
        subscriptions=event_backend.create_subscription(conf),
    )
    backend = await event_backend.create(conf, client)
    try:
        payloads = [payload(i, size) for i in range(count)]
        started = time.perf_counter()
        ids = []
        for data in payloads:
            ids.append((await backend.create_model(MODEL_TYPE, data)).instance_id)
        await client.query(eventer.common.QueryLatestParams(event_types=[]))
        create_s = time.perf_counter() - started

        started = time.perf_counter()
        models = await backend.get_models()
        get_s = time.perf_counter() - started

        by_id = {m.instance_id: m.instance for m in models}
        intact = len(models) == count and all(
            by_id.get(i) == data for i, data in zip(ids, payloads)
        )
        return {
            "count": count,
            "size": size,
            "create_s": create_s,
            "get_models_s": get_s,
            "models_returned": len(models),
            "intact": intact,
        }
    finally:
        await backend.async_close()
        await client.async_close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("prefix", type=json.loads)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64 * 1024)
    args = parser.parse_args()
    result = asyncio.run(run(args.host, args.port, args.prefix, args.count, args.size))
    print(json.dumps(result))
    return 0 if result["intact"] else 1


if __name__ == "__main__":
    sys.exit(main())
