"""The AIMM engine's predict loop through the real Python AIMM server, with
each backend, side by side in one run: what a predict costs in time and in
bytes written when the server stores the (unchanged) model after every
predict, as aimm 1.2.dev1's engine does.

For each variant (stock and ours, SQLite and event) it runs
``aimm_server_driver.py predict-loop`` (one model of --size-mib, then --count
predicts through the server's REPL client) on a fresh store, one variant at
a time, the event variants against a fresh hat-event-server each; then it
prints one table. Run it with the server venv's python, with our wheel
installed (scripts/python-server-venv.sh with AIMM_BACKEND_WHEEL set):

    target/py-server-venv/bin/python tests/python/bench_server_predict.py \\
        [--size-mib 64] [--count 100] [--workdir DIR] [--json FILE]
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
DRIVER = HERE / "aimm_server_driver.py"
HAT_SERVER = REPO / "scripts" / "hat-event-server.sh"

VARIANTS = [
    ("stock sqlite", "module: aimm.server.backend.sqlite\npath: models.db\n"),
    ("aimm_backend.sqlite", "module: aimm_backend.sqlite\npath: models.db\n"),
    ("stock event", "module: aimm.server.backend.event\nmodel_prefix: [aimm, model]\n"),
    ("aimm_backend.event", "module: aimm_backend.event\nmodel_prefix: [aimm, model]\n"),
    ("aimm_backend.event, acknowledge: sent",
     "module: aimm_backend.event\nmodel_prefix: [aimm, model]\nacknowledge: sent\n"),
]


def run_variant(name, backend_yaml, args, workdir):
    """One predict-loop run; returns the driver's report."""
    work = workdir / "".join(c if c.isalnum() else "-" for c in name)
    work.mkdir(parents=True)
    (work / "backend.yaml").write_text(backend_yaml)
    command = [sys.executable, str(DRIVER), "predict-loop",
               "--backend-yaml", str(work / "backend.yaml"),
               "--workdir", str(work / "server"),
               "--size-mib", str(args.size_mib), "--count", str(args.count)]
    hat_dir = work / "hat"
    if "event" in name:
        started = subprocess.run(["bash", str(HAT_SERVER), "start", str(hat_dir)],
                                 capture_output=True, text=True, check=True,
                                 timeout=120)
        port, pid = started.stdout.split()
        command += ["--hat-port", port, "--event-server-pid", pid]
    try:
        out = subprocess.run(command, capture_output=True, text=True,
                             timeout=args.count * 60 + 600)
    finally:
        if "event" in name:
            subprocess.run(["bash", str(HAT_SERVER), "stop", str(hat_dir)],
                           capture_output=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"{name}: the driver failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout[out.stdout.index("{"):])


def row(name, report):
    io = report["io"]
    event = io.get("event_server")
    return {
        "variant": name,
        "predict_median_s": report["predict_s"]["median"],
        "predict_min_s": report["predict_s"]["min"],
        "predict_max_s": report["predict_s"]["max"],
        "server_write_mib": io["aimm_server"]["write_mib_per_predict"],
        "event_server_write_mib": event["write_mib_per_predict"] if event else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=float, default=64)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--workdir", type=pathlib.Path)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--only", help="run only the variants whose name contains this")
    args = parser.parse_args()
    base = args.workdir or pathlib.Path(tempfile.mkdtemp(
        prefix="bench-server-", dir=REPO / "target"))
    rows = []
    for name, backend_yaml in VARIANTS:
        if args.only and args.only not in name:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(row(name, run_variant(name, backend_yaml, args, base)))
    print(f"predict loop through python -m aimm.server: one {args.size_mib:g} "
          f"MiB model, {args.count} predicts; bytes written per predict from "
          f"/proc/PID/io write_bytes (workdir {base})")
    print("| backend | s per predict, median [min-max] | AIMM server MiB written "
          "per predict | event server MiB written per predict |")
    print("|---|---|---|---|")
    for r in rows:
        event = "-" if r["event_server_write_mib"] is None \
            else f"{r['event_server_write_mib']:.1f}"
        print(f"| {r['variant']} | {r['predict_median_s']:.2f} "
              f"[{r['predict_min_s']:.2f}-{r['predict_max_s']:.2f}] | "
              f"{r['server_write_mib']:.1f} | {event} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
