#!/usr/bin/env python3
"""`put` of many files: ours pipelined against one at a time, and against
the Python AIMM backends (aimm==1.2.dev1), side by side in one run.

  bench_put.py AIMM_BACKEND_BINARY [--count 1000] [--size 65536]
               [--flush-periods 0.1,1] [--rounds 3]

SQLite: `aimm-backend put` of COUNT files into a fresh database, with the
default `--jobs` (16) and with `--jobs 1`.

Event: for each flush period, a fresh hat-event-server
(scripts/hat-event-server.sh, LMDB, HAT_EVENT_FLUSH_PERIOD) and, each on a
fresh prefix: the stock Python event backend creating COUNT models
(tests/python/bench_aimm_event.py: it does not wait for the server, so its
timing ends with a query answered after every registration), and ours,
`aimm-backend put` with `acknowledge: registered` and with the default
`persisted`, pipelined. Our times are whole CLI processes (start, connect,
read the files, store); Python's is its create loop inside a connected
process. Medians of ROUNDS; prints Markdown.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from bench_hat_server import start_server, stop_server

ROOT = pathlib.Path(__file__).resolve().parents[2]


def timed(args, env=None):
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args[:4]}... failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def write_conf(path, text):
    path.write_text(text)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--flush-periods", default="0.1,1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        work = pathlib.Path(tmp)
        files = work / "files"
        files.mkdir()
        paths = []
        for i in range(args.count):
            path = files / f"{i}.bin"
            path.write_bytes(os.urandom(args.size))
            paths.append(str(path))
        env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work / "data"))
        results = {}

        def record(key, seconds):
            results.setdefault(key, []).append(seconds)

        for round_ in range(args.rounds):
            for jobs in ["16", "1"]:
                db = work / f"sqlite-{round_}-{jobs}.db"
                conf = write_conf(
                    work / "sqlite.yaml",
                    f"backend:\n    module: aimm.server.backend.sqlite\n    path: {db}\n",
                )
                seconds, out = timed(
                    [args.binary, "--conf", str(conf), "put", "t", "--jobs", jobs, *paths],
                    env,
                )
                assert len(out.split()) == args.count
                record(("sqlite", f"ours, --jobs {jobs}"), seconds)
        for flush in args.flush_periods.split(","):
            server = work / f"server-{flush}"
            port = start_server(server, flush)
            try:
                for round_ in range(args.rounds):
                    py = subprocess.run(
                        [sys.executable, str(ROOT / "tests/python/bench_aimm_event.py"),
                         "127.0.0.1", str(port), json.dumps(["aimm", f"py{round_}"]),
                         "--count", str(args.count), "--size", str(args.size)],
                        capture_output=True, text=True, check=True, timeout=3600,
                    )
                    record((f"event, flush {flush} s", "Python"), json.loads(py.stdout)["create_s"])
                    for ack in ["registered", "persisted"]:
                        conf = write_conf(
                            work / f"event-{ack}.yaml",
                            f"name: aimm\nhat:\n    eventer_server: {{host: 127.0.0.1, port: {port}}}\n"
                            f"backend:\n    module: aimm.server.backend.event\n"
                            f"    model_prefix: [aimm, {ack}{round_}]\n    acknowledge: {ack}\n",
                        )
                        seconds, out = timed(
                            [args.binary, "--conf", str(conf), "put", "t", *paths], env
                        )
                        assert len(out.split()) == args.count
                        record((f"event, flush {flush} s", f"ours, {ack}"), seconds)
            finally:
                stop_server(server)
        print(f"| store | variant | put of {args.count} x {args.size // 1024} KiB, s (median of {args.rounds}) | per create, ms | vs |")
        print("|---|---|---|---|---|")
        for (store, variant), runs in results.items():
            median = statistics.median(runs)
            base_key = (store, "Python") if store.startswith("event") else (store, "ours, --jobs 1")
            base = statistics.median(results[base_key])
            vs = "" if (store, variant) == base_key else f"{base / median:.2f}x {base_key[1]}"
            print(f"| {store} | {variant} | {median:.2f} | {1000 * median / args.count:.2f} | {vs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
