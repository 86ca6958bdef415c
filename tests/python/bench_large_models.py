#!/usr/bin/env python3
"""Large models through one hat-event-server: the Python AIMM event backend
(aimm==1.2.dev1) against ours (the aimm-backend CLI), side by side.

  bench_large_models.py AIMM_BACKEND_BINARY [--sizes-mib 16,128,512]

For every size it starts a fresh hat-event-server (scripts/hat-event-server.sh,
LMDB, flush_period 0.1 s) and, on it, runs each step in a fresh process:

  python create / read  the stock backend's create_model, then get_models,
                        (tests/python/bench_aimm_event.py, one model); its
                        create does not wait for the server, so its timing
                        ends with a query answered after the registration
  ours create           `aimm-backend put` with the default config
                        (acknowledge: persisted: the server's flush included)
  ours create, registered  the same with `acknowledge: registered`
  ours read             `aimm-backend get ID -o FILE`

Each process's wall time and peak resident set (ru_maxrss from wait4, the
kernel's VmHWM of that process) are measured from here. It prints one
Markdown table; a step that fails is reported with the end of its stderr.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from bench_hat_server import start_server, stop_server

ROOT = pathlib.Path(__file__).resolve().parents[2]
MIB = 1 << 20


def measured(args, timeout=1800):
    """Runs args under a reaper that reports its ru_maxrss."""
    reaper = (
        "import os, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "child = subprocess.Popen(sys.argv[1:])\n"
        "_, status, usage = os.wait4(child.pid, 0)\n"
        "sys.stderr.write(f'\\n@@ {usage.ru_maxrss} {time.perf_counter() - t}\\n')\n"
        "sys.exit(os.waitstatus_to_exitcode(status) & 0xff)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reaper, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stderr.rstrip().splitlines()
    kib, seconds = lines[-1].split()[1:]
    return {
        "ok": done.returncode == 0,
        "seconds": float(seconds),
        "peak": int(kib) * 1024,
        "stdout": done.stdout,
        "stderr": "\n".join(lines[:-1]),
    }


def conf(directory, port, prefix, acknowledge):
    path = directory / f"{prefix}.yaml"
    path.write_text(
        "name: aimm\n"
        f"hat:\n    eventer_server: {{host: 127.0.0.1, port: {port}}}\n"
        "backend:\n    module: aimm.server.backend.event\n"
        f"    model_prefix: [aimm, {prefix}]\n"
        + (f"    acknowledge: {acknowledge}\n" if acknowledge else "")
    )
    return path


def bench_size(binary, size, work):
    server_dir = work / f"server-{size}"
    port = start_server(server_dir)
    rows = {}
    try:
        python = measured(
            [
                sys.executable,
                str(ROOT / "tests/python/bench_aimm_event.py"),
                "127.0.0.1",
                str(port),
                json.dumps(["aimm", "python"]),
                "--count",
                "1",
                "--size",
                str(size),
            ]
        )
        if python["ok"]:
            result = json.loads(python["stdout"])
            python["create_s"] = result["create_s"]
            python["read_s"] = result["get_models_s"]
            python["ok"] = result["intact"]
        rows["python"] = python

        model = work / "model.bin"
        with open(model, "wb") as file:
            for start in range(0, size, 16 * MIB):
                file.write(os.urandom(min(16 * MIB, size - start)))
        env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work / "data"))
        for name, acknowledge in [("ours", None), ("ours_registered", "registered")]:
            path = conf(work, port, name, acknowledge)
            step = measured([binary, "--conf", str(path), "put", "bench.Model", str(model)])
            rows[f"{name} create"] = step
            if name == "ours" and step["ok"]:
                instance = step["stdout"].strip()
                out = work / "out.bin"
                read = measured(
                    [binary, "--conf", str(path), "get", instance, "-o", str(out)]
                )
                read["ok"] = read["ok"] and out.read_bytes() == model.read_bytes()
                rows["ours read"] = read
                out.unlink(missing_ok=True)
        model.unlink()
    finally:
        stop_server(server_dir)
    return rows


def cell(step, key="seconds"):
    if not step or not step["ok"]:
        tail = (step or {}).get("stderr", "").strip().splitlines()[-1:] or ["not run"]
        return f"failed: {tail[0][:120]}"
    return f"{step[key]:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--sizes-mib", default="16,128,512")
    args = parser.parse_args()
    sizes = [int(s) * MIB for s in args.sizes_mib.split(",")]
    print("| model | step | seconds | peak RSS MiB | / model size | Python s / ours s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        for size in sizes:
            rows = bench_size(args.binary, size, pathlib.Path(tmp))
            python = rows["python"]
            ours_create, ours_read = rows.get("ours create"), rows.get("ours read")
            for label, step, seconds, versus in [
                ("Python create", python, "create_s", None),
                ("Python create + read (process)", python, "seconds", None),
                ("Python read", python, "read_s", None),
                ("ours create (persisted)", ours_create, "seconds", ("create_s", ours_create)),
                ("ours create (registered)", rows.get("ours_registered create"), "seconds",
                 ("create_s", rows.get("ours_registered create"))),
                ("ours read", ours_read, "seconds", ("read_s", ours_read)),
            ]:
                peak = "" if not step or not step["ok"] else f"{step['peak'] / MIB:.0f}"
                ratio = "" if not peak else f"{step['peak'] / size:.2f}x"
                if label.startswith("Python") and label != "Python create + read (process)":
                    peak = ratio = ""
                compare = ""
                if versus and python["ok"] and versus[1] and versus[1]["ok"]:
                    compare = f"{python[versus[0]] / versus[1]['seconds']:.2f}"
                print(
                    f"| {size // MIB} MiB | {label} | {cell(step, seconds)} | {peak} | {ratio} | {compare} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
