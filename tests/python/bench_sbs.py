#!/usr/bin/env python3
"""Times the real hat-sbs (the serializer hat-event runs with) encoding and
decoding one HatEventer.MsgEventsNotify of COUNT events, each with a JSON
payload holding SIZE bytes in base64 (as the AIMM event backend stores
models). The message is built exactly as crates/aimm-backend-bench/src/bin/
sbs-bench.rs builds it, so both encode the same bytes; --out writes the
encoding for the Rust side to compare. Prints one JSON object: the median
seconds of ROUNDS encodes and decodes, and the encoding's length."""

import argparse
import base64
import importlib.resources
import json
import pathlib
import statistics
import time

import hat.sbs


def repo():
    repos = []
    for package in ('hat.drivers.chatter', 'hat.event.common'):
        res = importlib.resources.files(package) / 'sbs_repo.json'
        with importlib.resources.as_file(res) as path:
            repos.append(hat.sbs.Repository.from_json(pathlib.Path(path)))
    return hat.sbs.Repository(*repos)


def message(count, size):
    data = bytes(j % 251 for j in range(size))
    text = json.dumps({'type': 'bench.Model',
                       'instance': base64.b64encode(data).decode()})
    none = ('none', None)
    return [{'id': {'server': 1, 'session': 2, 'instance': i},
             'type': ['aimm', 'model', str(i)],
             'timestamp': {'s': 1700000000 + i, 'us': i % 1000000},
             'sourceTimestamp': none,
             'payload': ('value', ('json', text))}
            for i in range(count)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--count', type=int, default=1000)
    parser.add_argument('--size', type=int, default=65536)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--out')
    args = parser.parse_args()
    r = repo()
    value = message(args.count, args.size)
    encode_s, decode_s = [], []
    encoded = b''
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        encoded = r.encode('HatEventer.MsgEventsNotify', value)
        encode_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        decoded = r.decode('HatEventer.MsgEventsNotify', encoded)
        decode_s.append(time.perf_counter() - t0)
        assert len(decoded) == args.count
    if args.out:
        pathlib.Path(args.out).write_bytes(encoded)
    print(json.dumps({'encode_s': statistics.median(encode_s),
                      'decode_s': statistics.median(decode_s),
                      'bytes': len(encoded),
                      'sbs': hat.sbs.__name__}))


if __name__ == '__main__':
    main()
