#!/usr/bin/env python3
"""Drives the REAL Python AIMM event backend (aimm 1.2.dev1,
``aimm.server.backend.event``) against a running hat-event-server, for the
interoperability tests. Models are opaque bytes: an identity (de)serializer
is registered, through the public ``aimm.plugins`` decorators, for every
model type used, so the base64 in the event payload is exactly the bytes.

  aimm_event_tool.py put HOST PORT PREFIX_JSON TYPE FILE...
      creates one model per file; prints {"instance_id", "model_type", "size"}
      per model (JSON lines)
  aimm_event_tool.py dump HOST PORT PREFIX_JSON OUT_DIR
      get_models; writes OUT_DIR/<id>.bin and prints one JSON line per model

PREFIX_JSON is the model_prefix as a JSON array, e.g. '["aimm", "model"]'.
"""

import asyncio
import json
import pathlib
import sys

import aimm.plugins
import aimm.server.backend.event as event_backend
from hat.drivers import net
from hat.event import eventer

_registered = set()


def _identity(data):
    return data


def register_identity(model_type):
    if model_type not in _registered:
        aimm.plugins.serialize([model_type])(_identity)
        aimm.plugins.deserialize([model_type])(_identity)
        _registered.add(model_type)


async def open_backend(host, port, prefix):
    conf = {'module': 'aimm.server.backend.event', 'model_prefix': prefix}
    subscriptions = event_backend.create_subscription(conf)
    client = await eventer.connect(net.TcpAddress(host, int(port)),
                                   'aimm-python-interop',
                                   subscriptions=subscriptions)
    # The backend reads every model when it starts, and needs a
    # deserializer for each stored type: learn the types first.
    params = eventer.common.QueryLatestParams(event_types=[(*prefix, '*')])
    for event in (await client.query(params)).events:
        register_identity(event.payload.data['type'])
    backend = await event_backend.create(conf, client)
    return client, backend


async def put(host, port, prefix, model_type, files):
    register_identity(model_type)
    client, backend = await open_backend(host, port, prefix)
    try:
        for name in files:
            data = pathlib.Path(name).read_bytes()
            model = await backend.create_model(model_type, data)
            print(json.dumps({'instance_id': model.instance_id,
                              'model_type': model.model_type,
                              'size': len(data)}), flush=True)
        # The Python backend does not wait for the server's confirmation:
        # query once so every registration above has been processed.
        await client.query(eventer.common.QueryLatestParams(event_types=[]))
    finally:
        await backend.async_close()
        await client.async_close()


async def dump(host, port, prefix, out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    client, backend = await open_backend(host, port, prefix)
    try:
        for model in await backend.get_models():
            (out / f'{model.instance_id}.bin').write_bytes(model.instance)
            print(json.dumps({'instance_id': model.instance_id,
                              'model_type': model.model_type,
                              'size': len(model.instance)}), flush=True)
    finally:
        await backend.async_close()
        await client.async_close()


def main(argv):
    command, host, port, prefix = argv[1], argv[2], argv[3], json.loads(argv[4])
    if command == 'put':
        asyncio.run(put(host, port, prefix, argv[5], argv[6:]))
    elif command == 'dump':
        asyncio.run(dump(host, port, prefix, argv[5]))
    else:
        sys.exit(f'unknown command {command}')


if __name__ == '__main__':
    main(sys.argv)
