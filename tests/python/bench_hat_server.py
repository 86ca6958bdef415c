"""Start and stop a hat-event-server for the benchmark drivers, through
scripts/hat-event-server.sh."""

import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts/hat-event-server.sh")


def start_server(directory, flush_period=0.1):
    """Starts a server in `directory`; returns its eventer port."""
    env = dict(os.environ, HAT_EVENT_FLUSH_PERIOD=str(flush_period))
    out = subprocess.run(
        ["bash", SCRIPT, "start", str(directory)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout
    return int(out.split()[0])


def stop_server(directory):
    subprocess.run(["bash", SCRIPT, "stop", str(directory)], capture_output=True)
