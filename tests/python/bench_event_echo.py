"""What waiting for the event server's answer costs through the AIMM
server's kind of Hat eventer client (``hat.event.eventer``, persisted=False),
for one large model: a registration without response (what the stock event
backend sends), the same with response (the server echoes the whole event
back), and ``aimm_backend.event`` updates with each ``acknowledge`` mode.

    target/py-venv/bin/python tests/python/bench_event_echo.py PORT [--size-mib 64]

PORT is a running hat-event-server's eventer port
(scripts/hat-event-server.sh start DIR prints it). Needs the aimm_backend
wheel installed (scripts/install-wheel.sh). Each figure is one call, timed
after the previous call's answer; with ``sent``, a call also waits for the
event loop to finish writing the previous registration.
"""

import argparse
import asyncio
import base64
import os
import time

from aimm import plugins
import hat.event.common
import hat.event.eventer
from hat.drivers import tcp

import aimm_backend.event

MODEL_TYPE = "bench.Blob"


@plugins.serialize([MODEL_TYPE])
def _serialize(instance):
    return instance


@plugins.deserialize([MODEL_TYPE])
def _deserialize(blob):
    return blob


async def timed(awaitable):
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started


async def main(port, size):
    prefix = ["aimm", "echo", str(os.getpid())]
    client = await hat.event.eventer.connect(
        tcp.Address("127.0.0.1", port), "echo-bench",
        subscriptions=[(*prefix, "*")])
    blob = os.urandom(size)
    event = hat.event.common.RegisterEvent(
        type=(*prefix, "1"), source_timestamp=None,
        payload=hat.event.common.EventPayloadJson(
            {"type": MODEL_TYPE, "instance": base64.b64encode(blob).decode()}))
    for with_response in (False, True):
        seconds = await timed(client.register([event], with_response))
        print(f"hat eventer register, with_response={with_response}: {seconds:.3f} s")
    for acknowledge in ("sent", "registered"):
        backend = await aimm_backend.event.create(
            {"module": "aimm_backend.event", "model_prefix": prefix,
             "acknowledge": acknowledge}, client)
        model = await backend.create_model(MODEL_TYPE, blob)
        for _ in range(2):
            seconds = await timed(backend.update_model(model))
            print(f"aimm_backend.event update, acknowledge: {acknowledge}: "
                  f"{seconds:.3f} s")
        await backend.async_close()
    await client.async_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.size_mib << 20))
