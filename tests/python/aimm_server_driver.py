#!/usr/bin/env python3
"""Drives the REAL Python AIMM server (``python -m aimm.server``, aimm
1.2.dev1) with a chosen backend through aimm's own REPL client
(``aimm.client.repl.AIMM``), to check that models survive a restart and to
measure what a predict costs. The backend is a parameter: the stock
``aimm.server.backend.sqlite`` / ``aimm.server.backend.event`` today, our
drop-in ``aimm_backend.*`` modules later, with the same checks.

Run it with the server venv's python (scripts/python-server-venv.sh: aimm's
REPL needs hat-json 0.6.5). The model type is ``aimm_test_models.Blob``
(tests/python/aimm_test_models.py), loaded by the server as a plugin; this
directory is put on the server's PYTHONPATH.

  aimm_server_driver.py roundtrip --backend-yaml FILE --workdir DIR
      [--hat-port PORT] [--size-mib 1] [--strict-predict] [--strict-new-id]
    start server, create + fit + predict, SIGTERM, wait for a clean exit,
    start again on the same store, check the model: predict on the old id,
    then the same id, type and content (fit count, digest) in the state the
    server pushes. The stock engine cannot predict on a model it loaded (see
    check_restored): then the model is re-adopted through update_instance
    and predicted again, unless --strict-predict. Then create a second model
    and report whether it got a new id without clobbering the first (fatal
    with --strict-new-id); stop again.

  aimm_server_driver.py event-roundtrip --backend-yaml FILE --workdir DIR
      --hat-port PORT [--size-mib 1] [--strict-predict] [--strict-new-id]
    the same roundtrip, but every request goes through the server's event
    control (aimm.server.control.event) as Hat events registered by the
    driver's own eventer client: create_instance, fit, predict (and
    update_instance for the re-adopt), each answered by action-state events
    (IN_PROGRESS, then DONE with the result) matched on request_id. After
    the restart the control's first state event must list the model (id
    and type). The REPL control stays in the config, after the event
    control: its port says the server is ready, and its pushed state is the
    only place that shows the restored model's content (the event control's
    state lists ids and types only); no request goes through it. The event
    control registers no action state when predict fails (see
    EventRequests.wait_action): the failure is then read from the server's
    log (bounded like every wait).

  aimm_server_driver.py failover --backend-yaml FILE --workdir DIR
      --monitor-port PORT --fail-over-command CMD [--size-mib 1]
      [--strict-new-id]
    the server joins the hat-monitor on PORT (``hat: {monitor_component:
    {host: 127.0.0.1, port: PORT, group: aimm, event_server_group:
    event}}``): create + fit + predict through the active event server,
    then CMD (a shell command: stop or kill the active event server), which
    makes the server close its runner (backend, engine, controls); the REPL
    port closes. hat.event.component then builds the runner again with a
    client of the newly blessed server, but aimm 1.2.dev1's HatRunner
    closes with its first runner and the server serves nothing more: when
    the port has not opened again within --rebuild-timeout, the server is
    stopped (SIGTERM, clean exit required) and started again, and
    "runner_rebuilt" says which happened. Then predict on the same model
    (re-adopting it as in roundtrip when the stock engine refuses), and
    create another model, whose id must be new with --strict-new-id.
    Reports the seconds from CMD to the REPL's return.

  aimm_server_driver.py predict-loop --backend-yaml FILE --workdir DIR
      [--hat-port PORT] [--size-mib 64] [--count 100] [--event-server-pid PID]
    one model of the given size, then COUNT predicts; time per predict and
    bytes written per predict by the server's process tree (and by the hat
    event server when its pid is given), from /proc/PID/io.

FILE is YAML (or JSON) with the server config's ``backend`` section, merged
as-is, e.g. ``{module: aimm.server.backend.sqlite, path: store.db}``. The
server runs with DIR as its working directory, so relative paths in it land
in DIR. ``--hat-port`` adds ``hat: {eventer_server: {host: 127.0.0.1, port:
PORT}}`` (the event backend needs it). DIR receives server.json, one log per
server run (server-1.log, ...) and result.json. Use a fresh store per run.

Output: one JSON object on stdout at the end ("ok": true/false); exit 0 on
success, 1 on failure (message and the server log's tail on stderr), 2 on
usage errors. Every wait is bounded (--timeout per step, --total-timeout for
the whole run); a server left running on failure is killed (its process
group: the server and its forked workers).

About the byte counts: /proc/PID/io ``write_bytes`` counts bytes the process
caused to be sent to the storage layer (page-cache pages it dirtied, direct
I/O); a page rewritten while still dirty counts once, and it stays 0 on
tmpfs (the report names DIR's filesystem). ``wchar``/``rchar`` count bytes
passed to write()/read()-family calls (files and pipes, e.g. the pickled
result each fork worker sends to the server), but NOT socket traffic sent
with send()/recv(), which is how asyncio moves the websocket and eventer
bytes. The engine forks one worker per action; Linux adds a reaped child's
counters to its parent's, so the server pid's counters cover its finished
workers. The driver waits until no worker is alive before each sample and
otherwise adds the live descendants' own counters (reported as
live_children_at_samples).
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import pathlib
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import unittest.mock
import uuid

import hat.event.common
import hat.event.eventer
import psutil
import yaml
from hat import juggler
from hat.drivers import tcp

import aimm.client.repl
import aimm_test_models

HERE = pathlib.Path(__file__).resolve().parent
USERNAME = "aimm-test"
PASSWORD = "aimm-test-password"
IO_FIELDS = ("rchar", "wchar", "read_bytes", "write_bytes",
             "cancelled_write_bytes")
LOG_MARKERS = {"task_destroyed": "Task was destroyed",
               "tracebacks": "Traceback (most recent call last)",
               "error_lines": " ERROR "}
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Warning): .*$", re.M)
FRAME_LINE = re.compile(r'^  File "(?P<file>[^"]+)", line \d+, in (?P<func>.+)$')
EVENT_ACTIONS = ("create_instance", "add_instance", "update_instance", "fit",
                 "predict", "cancel")
EVENT_CONTROL = {  # aimm://server/control/event.yaml#
    "module": "aimm.server.control.event",
    "event_prefixes": {a: ["aimm", "request", a] for a in EVENT_ACTIONS},
    "state_event_type": ["aimm", "state"],
    "action_state_event_type": ["aimm", "action_state"]}
# what aimm.server.control.event logs (WARNING, with the traceback) when a
# request fails; for predict it is the only sign (no FAILED action state)
EVENT_FAILURE_LOG = {"create_instance": "instance creation failed",
                     "add_instance": "add instance failed",
                     "update_instance": "update instance failed",
                     "fit": "fitting failed",
                     "predict": "prediction failed"}
TERMINAL_STATUSES = ("DONE", "FAILED", "CANCELLED")
FAILURE_GRACE_S = 0.5


class DriverError(Exception):
    """A check or a step failed; the message says which."""


# ---------------------------------------------------------------- deadlines

class Deadline:
    """Overall time budget; each step also has its own bound."""

    def __init__(self, seconds: float, step_seconds: float):
        self._end = time.monotonic() + seconds
        self._step = step_seconds

    def step(self, seconds: float | None = None) -> float:
        """Seconds allowed for the next step: its own bound, capped by what
        is left of the whole run. Raises when nothing is left."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise DriverError("total timeout exceeded")
        return min(left, self._step if seconds is None else seconds)


async def bounded(coro, seconds: float, what: str):
    """Awaits coro for at most `seconds`, failing with a clear message."""
    try:
        return await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        raise DriverError(f"{what}: no answer within {seconds:.1f}s") from None


# ------------------------------------------------------------------- config

def load_backend_conf(path: pathlib.Path) -> dict:
    """The backend section, as written in FILE (YAML is a JSON superset)."""
    try:
        conf = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DriverError(f"cannot read backend config {path}: {e}") from None
    if not isinstance(conf, dict) or "module" not in conf:
        raise DriverError(f"{path}: expected a mapping with a 'module' key")
    return conf


def free_port() -> int:
    """A currently free loopback port (bind 0 and release; tiny race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_config(backend: dict, repl_port: int, hat_port: int | None,
                  controls_before: tuple = (),
                  monitor_port: int | None = None) -> dict:
    """Full aimm://server/main.yaml# config: the given backend, one REPL
    control on loopback with one user (after controls_before: the server
    creates its controls in order), the test model plugin."""
    password_hash = hashlib.sha256(PASSWORD.encode()).hexdigest()
    conf = {
        "name": "aimm-server-driver",
        "log": {
            "version": 1,
            "formatters": {"default": {
                "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler",
                                     "formatter": "default",
                                     "level": "INFO"}},
            "root": {"level": "INFO", "handlers": ["console"]},
            "disable_existing_loggers": False},
        "engine": {"sigterm_timeout": 5, "max_children": 2,
                   "check_children_period": 0.02},
        "backend": backend,
        "control": [*controls_before,
                    {"module": "aimm.server.control.repl",
                     "server": {"host": "127.0.0.1", "port": repl_port},
                     "users": [{"username": USERNAME,
                                "password": password_hash}]}],
        "plugins": {"names": ["aimm_test_models"]},
    }
    if hat_port is not None:
        conf["hat"] = {"eventer_server": {"host": "127.0.0.1",
                                          "port": hat_port}}
    if monitor_port is not None:
        conf["hat"] = {"monitor_component": {
            "host": "127.0.0.1", "port": monitor_port, "group": "aimm",
            "event_server_group": "event"}}
    return conf


def write_config(workdir: pathlib.Path, conf: dict) -> pathlib.Path:
    path = workdir / "server.json"
    path.write_text(json.dumps(conf, indent=4))
    return path


# ----------------------------------------------------------- server process

class ServerProcess:
    """One run of ``python -m aimm.server --conf CONF`` in its own process
    group, cwd = workdir, stdout+stderr to its own log file."""

    def __init__(self, conf_path: pathlib.Path, workdir: pathlib.Path,
                 run: int):
        self.conf_path = conf_path
        self.workdir = workdir
        self.log_path = workdir / f"server-{run}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(HERE), env.get("PYTHONPATH", "")] if p)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aimm.server",
                 "--conf", str(self.conf_path)],
                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, start_new_session=True)

    async def wait_ready(self, port: int, seconds: float):
        """Until the REPL port accepts TCP connections (the REPL control is
        created after the backend has loaded every model and the engine has
        started), or the server dies, or it logs a traceback: the stock
        server does not exit when its backend or control fails to start, it
        logs the error and idles without listening."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise DriverError(f"server exited with {self.proc.returncode}"
                                  f" before listening on port {port}")
            if await _port_open(port):
                return
            if LOG_MARKERS["tracebacks"] in self.log_text():
                raise DriverError(f"server logged a traceback before "
                                  f"listening on port {port}")
            await asyncio.sleep(0.05)
        raise DriverError(f"server did not listen on port {port} "
                          f"within {seconds:.1f}s")

    async def stop(self, seconds: float) -> dict:
        """SIGTERM, then wait for the exit; SIGKILL (whole group) when it
        does not exit in time. Reports the exit and the log's findings."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        killed = False
        while self.proc.poll() is None:
            if time.monotonic() - started > seconds:
                self.kill()
                killed = True
                break
            await asyncio.sleep(0.05)
        return {"exit_code": self.proc.returncode,
                "stop_s": round(time.monotonic() - started, 3),
                "killed_after_timeout": killed,
                "leftover_group_processes": _group_alive(self.proc.pid),
                "log": self.log_path.name, **self.log_findings()}

    def kill(self):
        """SIGKILL the server's process group (server + forked workers)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_findings(self) -> dict:
        """Counts of LOG_MARKERS, and the last few exception lines."""
        text = self.log_text()
        findings = {key: text.count(marker)
                    for key, marker in LOG_MARKERS.items()}
        findings["exceptions"] = [m.group(0) for m in
                                  EXCEPTION_LINE.finditer(text)][-5:]
        findings["traceback_list"] = _tracebacks(text)
        marker = LOG_MARKERS["tracebacks"]
        if marker in text:
            # The last traceback whole, so a failing test shows where.
            findings["last_traceback"] = text[text.rindex(marker):][:4000]
        return findings

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 1)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _tracebacks(text: str) -> list[dict]:
    """Every traceback in a log: its exception line and its frames, each
    "path:function", the path from the package root for installed code, so
    a test can tell where a traceback was raised, not only what."""
    found = []
    for block in text.split(LOG_MARKERS["tracebacks"])[1:]:
        frames, exception = [], None
        for line in block.splitlines()[1:]:
            frame = FRAME_LINE.match(line)
            if frame:
                path = frame["file"].rpartition("site-packages/")[2]
                frames.append(f"{path}:{frame['func']}")
            elif not line.startswith(" "):
                exception = line
                break
        found.append({"exception": exception, "frames": frames})
    return found


def _group_alive(pgid: int) -> list[int]:
    """Pids still in process group pgid (e.g. orphaned workers)."""
    alive = []
    for proc in psutil.process_iter(["pid"]):
        # Any process on the machine may exit between the listing and
        # os.getpgid, which then raises ProcessLookupError, not a psutil
        # error (seen once, in the PostgreSQL roundtrip scenario).
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.status() != \
                    psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
    return alive


# -------------------------------------------------------------- REPL client

async def connect_repl(port: int, seconds: float) -> aimm.client.repl.AIMM:
    """aimm's REPL client, logged in: its connect() prompts with input() and
    getpass(), which are answered here."""
    client = aimm.client.repl.AIMM()
    with unittest.mock.patch.object(aimm.client.repl, "input",
                                    lambda _prompt: USERNAME, create=True), \
            unittest.mock.patch.object(aimm.client.repl, "getpass",
                                       lambda _prompt: PASSWORD):
        await bounded(client.connect(f"ws://127.0.0.1:{port}/"), seconds,
                      "REPL connect")
    return client


async def close_repl(client: aimm.client.repl.AIMM, seconds: float):
    """Closes the client and its juggler connection (AIMM.async_close only
    closes its own group)."""
    connection = client._connection
    await bounded(client.async_close(), seconds, "REPL client close")
    if connection is not None:
        await bounded(connection.async_close(), seconds,
                      "REPL connection close")


def model_fields(model: aimm.client.repl.Model) -> tuple[int, str]:
    """(instance_id, model_type) of a REPL Model. aimm's Model keeps them in
    private attributes only (its repr shows them); the id is a str when the
    Model comes from the pushed state, an int when returned by a call."""
    return int(model._instance_id), model._model_type


def state_models(client: aimm.client.repl.AIMM) -> dict[int, dict]:
    """The models of the state the REPL control pushed, raw: instance id ->
    {"instance_id", "model_type", "instance": base64 of the serialized
    model}. AIMM.state drops the instance, so this reads the juggler
    connection's state (private attributes of aimm's client)."""
    connection = client._connection
    data = connection.state.data if connection is not None else None
    models = (data or {}).get("models") or {}
    return {int(k): v for k, v in models.items()}


async def wait_state_model(client: aimm.client.repl.AIMM, instance_id: int,
                           seconds: float) -> dict:
    """Waits until the pushed state lists instance_id; returns its entry.
    (The REPL control pushes state on engine state changes only, not on
    login: call something first.)"""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if (entry := state_models(client).get(instance_id)) is not None:
            return entry
        await asyncio.sleep(0.05)
    raise DriverError(f"model {instance_id} not in the REPL state within "
                      f"{seconds:.1f}s")


def decode_state_model(entry: dict) -> aimm_test_models.Blob:
    return aimm_test_models.deserialize(base64.b64decode(entry["instance"]))


async def timed(coro, seconds: float, what: str):
    """(result, elapsed seconds) of a bounded call."""
    started = time.monotonic()
    result = await bounded(coro, seconds, what)
    return result, time.monotonic() - started


def check_prediction(got, size: int, seed: int, fit_count: int, tag: str):
    expected = aimm_test_models.expected_prediction(size, seed, fit_count,
                                                    tag)
    if got != expected:
        raise DriverError(f"prediction {tag!r}: got {got!r}, expected "
                          f"{expected!r}")


# --------------------------------------------------- event control client

class EventRequests:
    """The driver's own Hat eventer client, talking to the server's event
    control (EVENT_CONTROL): registers request events under its prefixes
    and collects its answers, subscribed to exactly its two event types:
    action states (kept per request_id, which the request carried) and
    states (kept with the event server's timestamp, to tell runs apart)."""

    def __init__(self):
        self._client: hat.event.eventer.Client | None = None
        self._actions: dict[str, list[dict]] = {}
        self._states: list[tuple[hat.event.common.Timestamp, dict]] = []
        # unique beyond this run: the event server outlives server runs
        # (and keeps their events in its db)
        prefix = uuid.uuid4().hex[:8]
        self._request_ids = (f"{prefix}-{i}" for i in itertools.count(1))

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_open

    async def connect(self, port: int, seconds: float):
        self._client = await bounded(hat.event.eventer.connect(
            tcp.Address("127.0.0.1", port), "aimm-server-driver-requests",
            subscriptions=[tuple(EVENT_CONTROL["state_event_type"]),
                           tuple(EVENT_CONTROL["action_state_event_type"])],
            events_cb=self._on_events), seconds, "eventer connect")

    async def close(self, seconds: float):
        client, self._client = self._client, None
        if client is not None:
            await bounded(client.async_close(), seconds, "eventer close")

    def _on_events(self, _client, events):
        for event in events:
            data = event.payload.data if event.payload is not None else None
            if list(event.type) == EVENT_CONTROL["action_state_event_type"]:
                self._actions.setdefault(data["request_id"], []).append(data)
            elif list(event.type) == EVENT_CONTROL["state_event_type"]:
                self._states.append((event.timestamp, data))

    async def request(self, action: str, data: dict, instance_id: int | None,
                      seconds: float) -> str:
        """Registers one request event: type = the action's prefix (plus the
        instance id for fit, predict, update_instance), payload = data plus
        a fresh request_id, which is returned."""
        request_id = next(self._request_ids)
        event_type = list(EVENT_CONTROL["event_prefixes"][action])
        if instance_id is not None:
            event_type.append(str(instance_id))
        event = hat.event.common.RegisterEvent(
            type=tuple(event_type), source_timestamp=None,
            payload=hat.event.common.EventPayloadJson(
                {"request_id": request_id, **data}))
        registered = await bounded(self._client.register(
            [event], with_response=True), seconds, f"{action} request")
        if not registered:
            raise DriverError(f"{action}: the event server refused the "
                              f"request event")
        return request_id

    async def wait_action(self, request_id: str, action: str,
                          server: ServerProcess, log_mark: int,
                          seconds: float) -> dict:
        """Waits for a terminal action state (TERMINAL_STATUSES) of the
        request; returns {"status", "result", "statuses"} (statuses: all
        seen, in order).

        aimm.server.control.event (aimm 1.2.dev1) registers no action state
        at all when predict fails (_predict only logs the exception; an
        IN_PROGRESS may have gone out before), and logs a failed
        create/fit/update before registering its FAILED. So a new
        EVENT_FAILURE_LOG line for the action in the server's log (more than
        log_mark, the count when the request was sent) also ends the wait,
        after FAILURE_GRACE_S for a late action state: status None, with the
        last exception line of the log."""
        end = time.monotonic() + seconds
        failed_at = None
        while time.monotonic() < end:
            states = self._actions.get(request_id, [])
            statuses = [a["status"] for a in states]
            for state in states:
                if state["status"] in TERMINAL_STATUSES:
                    return {"status": state["status"],
                            "result": state["result"], "statuses": statuses}
            if failed_at is None and server.log_text().count(
                    EVENT_FAILURE_LOG.get(action, "\0")) > log_mark:
                failed_at = time.monotonic()
            if failed_at is not None and \
                    time.monotonic() - failed_at > FAILURE_GRACE_S:
                exceptions = server.log_findings()["exceptions"]
                return {"status": None, "result": None, "statuses": statuses,
                        "server_log": exceptions[-1] if exceptions else None}
            await asyncio.sleep(0.05)
        seen = [a["status"] for a in self._actions.get(request_id, [])]
        raise DriverError(f"{action} (request {request_id}): no terminal "
                          f"action state within {seconds:.1f}s (seen: "
                          f"{seen})")

    async def wait_state(self, since: hat.event.common.Timestamp, predicate,
                         seconds: float, what: str) -> dict:
        """The first state event registered at or after `since` (event
        server time) for which predicate(state) holds."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for timestamp, state in self._states:
                if timestamp >= since and predicate(state):
                    return state
            await asyncio.sleep(0.05)
        raise DriverError(f"{what}: no such state event within "
                          f"{seconds:.1f}s")


def event_state_models(state: dict) -> dict[int, str]:
    """instance id -> model type, from an event control state event (JSON
    turned its int keys into strings)."""
    return {int(k): v for k, v in ((state or {}).get("models") or {}).items()}


def expect_done(answer: dict, what: str):
    """The result of a DONE answer; anything else fails."""
    if answer["status"] != "DONE":
        raise DriverError(f"{what}: action state {answer['status']} "
                          f"(seen {answer['statuses']}; server log: "
                          f"{answer.get('server_log')})")
    return answer["result"]


# --------------------------------------------------------------- /proc I/O

def read_io(pid: int) -> dict:
    """The counters of /proc/PID/io (zeros for a process already gone)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            pairs = (line.split(":") for line in f)
            values = {k.strip(): int(v) for k, v in pairs}
    except (FileNotFoundError, ProcessLookupError):
        values = {}
    return {k: values.get(k, 0) for k in IO_FIELDS}


def descendants(pid: int) -> list[int]:
    """All descendants of pid, zombies included (a zombie's counters are
    not yet added to its parent's)."""
    with contextlib.suppress(psutil.Error):
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return []


async def wait_no_children(pid: int, seconds: float) -> list[int]:
    """Waits (bounded) until pid has no descendants left, so its own
    counters include every finished worker; returns those still there."""
    end = time.monotonic() + seconds
    while (children := descendants(pid)) and time.monotonic() < end:
        await asyncio.sleep(0.02)
    return children


async def sample_tree(pid: int, settle_s: float) -> dict:
    """I/O counters of pid plus its remaining descendants at one moment."""
    children = await wait_no_children(pid, settle_s)
    total = read_io(pid)
    for child in children:
        for k, v in read_io(child).items():
            total[k] += v
    return {"io": total, "live_children": len(children)}


def io_delta(before: dict, after: dict, count: int) -> dict:
    delta = {k: after["io"][k] - before["io"][k] for k in IO_FIELDS}
    return {"total": delta,
            "per_predict": {k: round(v / count) for k, v in delta.items()},
            "write_mib_per_predict": round(delta["write_bytes"] / count
                                           / 2**20, 2),
            "wchar_mib_per_predict": round(delta["wchar"] / count / 2**20, 2),
            "live_children_at_samples": [before["live_children"],
                                         after["live_children"]]}


def filesystem_of(path: pathlib.Path) -> str:
    """Type of the filesystem holding path (longest mount point prefix)."""
    best, fstype = "", "unknown"
    path_s = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            _, mount, kind, *_ = line.split()
            inside = path_s == mount or path_s.startswith(
                mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, fstype = mount, kind
    return fstype


# ---------------------------------------------------------------- scenarios

class Session:
    """Shared set-up of a scenario: workdir, config, server runs, client."""

    def __init__(self, args, report: dict):
        self.args = args
        self.report = report  # filled as the scenario goes; kept on failure
        self.deadline = Deadline(args.total_timeout, args.timeout)
        self.workdir = pathlib.Path(args.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.repl_port = free_port()
        backend = load_backend_conf(pathlib.Path(args.backend_yaml))
        self.conf_path = write_config(self.workdir,
                                      self.server_config(backend))
        self.runs = 0
        self.server: ServerProcess | None = None
        self.client: aimm.client.repl.AIMM | None = None

    def server_config(self, backend: dict) -> dict:
        return server_config(backend, self.repl_port, self.args.hat_port)

    async def start(self) -> dict:
        """Starts a server run and connects the client."""
        self.runs += 1
        self.server = ServerProcess(self.conf_path, self.workdir, self.runs)
        started = time.monotonic()
        self.server.start()
        await self.server.wait_ready(self.repl_port, self.deadline.step())
        ready = time.monotonic() - started
        self.client = await connect_repl(self.repl_port, self.deadline.step())
        return {"pid": self.server.pid, "ready_s": round(ready, 3),
                "connect_s": round(time.monotonic() - started - ready, 3)}

    async def stop(self) -> dict:
        """Disconnects the client, SIGTERMs the server, waits for its exit."""
        if self.client is not None:
            await close_repl(self.client, self.deadline.step(10))
            self.client = None
        result = await self.server.stop(self.deadline.step(
            self.args.stop_timeout))
        self.server = None
        return result

    async def abort(self):
        """Failure path: close the client, kill a server run still alive."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await close_repl(self.client, 5)
            self.client = None
        if self.server is not None and self.server.proc is not None:
            self.server.kill()

    def failure_log_tail(self) -> str:
        if self.server is None:
            runs = sorted(self.workdir.glob("server-*.log"))
            return runs[-1].read_text(errors="replace")[-4000:] if runs else ""
        return self.server.log_tail()


def check_clean_exit(stop: dict, what: str):
    if stop["killed_after_timeout"]:
        raise DriverError(f"{what}: server did not exit within the stop "
                          f"timeout after SIGTERM (killed)")
    if stop["exit_code"] != 0:
        raise DriverError(f"{what}: server exited with {stop['exit_code']} "
                          f"after SIGTERM (see {stop['log']})")


async def roundtrip(s: Session) -> dict:
    size, seed = int(s.args.size_mib * 2**20), 7
    report = s.report
    report["size_bytes"] = size
    report["run1"] = {}
    instance_id, model_type = await first_run(s, report["run1"], size, seed)
    report["run1"]["stop"] = await s.stop()
    check_clean_exit(report["run1"]["stop"], "first run")
    if s.args.no_restart:
        return report

    report["run2"] = await s.start()
    await check_restored(s, report["run2"], instance_id, model_type, size,
                         seed)
    report["run2"]["new_model"] = await check_new_model(s, instance_id, size,
                                                        seed)
    report["run2"]["stop"] = await s.stop()
    check_clean_exit(report["run2"]["stop"], "second run")
    if report["run2"]["new_model"]["collides"] and s.args.strict_new_id:
        raise DriverError("a model created after the restart reused id "
                          f"{instance_id}")
    return report


async def first_run(s: Session, report: dict, size: int, seed: int):
    """Start, create, fit, predict; fills report, returns (id, type)."""
    step = s.deadline.step
    report.update(await s.start())
    model, t_create = await timed(s.client.create_instance(
        aimm_test_models.MODEL_TYPE, size, seed=seed), step(), "create")
    instance_id, model_type = model_fields(model)
    _, t_fit = await timed(s.client.fit(instance_id), step(), "fit")
    got, t_predict = await timed(s.client.predict(instance_id, tag="run1"),
                                 step(), "predict")
    check_prediction(got, size, seed, 1, "run1")
    report.update(instance_id=instance_id, model_type=model_type,
                  create_s=round(t_create, 3), fit_s=round(t_fit, 3),
                  predict_s=round(t_predict, 3), prediction=got)
    return instance_id, model_type


async def check_restored_state(s, report: dict, instance_id: int,
                               model_type: str, size: int, seed: int) -> dict:
    """The model in the REPL control's pushed state after the restart: same
    type, and content that predicts as the fitted model did. Returns the
    state entry."""
    entry = await wait_state_model(s.client, instance_id,
                                   s.deadline.step(10))
    if entry["model_type"] != model_type:
        raise DriverError(f"model {instance_id} has type "
                          f"{entry['model_type']!r} after restart, "
                          f"{model_type!r} before")
    restored = decode_state_model(entry)
    check_prediction(aimm_test_models.predict(restored, tag="state"), size,
                     seed, 1, "state")
    report.update(instance_id=instance_id, model_type=entry["model_type"],
                  state_content_ok=True)
    return entry


def needs_readopt(s, report: dict) -> bool:
    """Whether the direct predict after the restart failed (the stock
    engine's quirk) and the model must be re-adopted; fatal with
    --strict-predict."""
    if report["direct_predict"]["ok"]:
        return False
    if s.args.strict_predict:
        raise DriverError("predict after restart failed: "
                          f"{report['direct_predict']['error']}")
    return True


async def check_restored(s: Session, report: dict, instance_id: int,
                         model_type: str, size: int, seed: int):
    """After the restart: predict on the old id, then check id, type and
    content of the model in the pushed state.

    The stock engine (aimm 1.2.dev1) cannot act on models it loaded from the
    backend: _Engine.start() fills the state but not the per-model locks, so
    fit/predict raise KeyError(instance_id) until the model is set again
    through create/add/update. When the direct predict fails, the model is
    re-adopted (update_instance with the instance decoded from the state,
    i.e. what the backend loaded) and predicted again; --strict-predict
    makes the direct failure fatal instead."""
    step = s.deadline.step
    report["direct_predict"] = await try_predict(s, instance_id, size, seed)
    entry = await check_restored_state(s, report, instance_id, model_type,
                                       size, seed)
    if not needs_readopt(s, report):
        return
    restored = decode_state_model(entry)
    await bounded(s.client.update_instance(model_type, instance_id, restored),
                  step(), "re-adopt (update_instance) after restart")
    report["readopted_predict"] = await try_predict(s, instance_id, size,
                                                    seed)
    if not report["readopted_predict"]["ok"]:
        raise DriverError("predict after restart failed even after re-adopt: "
                          f"{report['readopted_predict']['error']}")


async def try_predict(s: Session, instance_id: int, size: int,
                      seed: int) -> dict:
    """One predict expected to report fit count 1; a server-side failure
    (JugglerError) is reported, not raised."""
    tag = "run2"
    try:
        got, elapsed = await timed(s.client.predict(instance_id, tag=tag),
                                   s.deadline.step(), "predict after restart")
    except juggler.JugglerError as e:
        return {"ok": False, "error": f"JugglerError: {e.data!r}"}
    check_prediction(got, size, seed, 1, tag)
    return {"ok": True, "predict_s": round(elapsed, 3), "prediction": got}


async def check_new_model(s: Session, first_id: int, size: int,
                          seed: int) -> dict:
    """After a restart: create a second (small) model; its id must differ
    from the first, and the first model must still answer as before. The
    outcome is reported; a collision fails only with --strict-new-id."""
    step = s.deadline.step
    model = await bounded(s.client.create_instance(
        aimm_test_models.MODEL_TYPE, 1024, seed=seed + 1), step(),
        "create after restart")
    new_id, _ = model_fields(model)
    got = await bounded(s.client.predict(first_id, tag="after-new"), step(),
                        "predict first model after second create")
    expected = aimm_test_models.expected_prediction(size, seed, 1,
                                                    "after-new")
    return {"instance_id": new_id, "collides": new_id == first_id,
            "first_model_intact": got == expected}


class MonitorSession(Session):
    """A Session whose server follows the active event server of group
    ``event`` through a hat-monitor."""

    def server_config(self, backend: dict) -> dict:
        return server_config(backend, self.repl_port, None,
                             monitor_port=self.args.monitor_port)


async def wait_port_closed(port: int, seconds: float, what: str):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not await _port_open(port):
            return
        await asyncio.sleep(0.05)
    raise DriverError(f"{what}: port {port} still open after {seconds:.1f}s")


async def failover(s: MonitorSession) -> dict:
    size, seed = int(s.args.size_mib * 2**20), 11
    report = s.report
    report["size_bytes"] = size
    report["run1"] = {}
    instance_id, model_type = await first_run(s, report["run1"], size,
                                              seed)
    await close_repl(s.client, s.deadline.step(10))
    s.client = None

    started = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run, s.args.fail_over_command, shell=True,
        capture_output=True, timeout=s.deadline.step(60))
    if done.returncode != 0:
        raise DriverError(f"fail-over command exited {done.returncode}: "
                          f"{done.stderr.decode(errors='replace')[-2000:]}")
    # The runner, REPL control included, closes with the old server's
    # client. hat.event.component would build it again with a client of
    # the new server, but aimm 1.2.dev1's HatRunner is bound to that first
    # runner and closes with it: the process stays up and serves nothing.
    # Then it is restarted, as an operator would.
    await wait_port_closed(s.repl_port, s.deadline.step(30),
                           "runner closed after the fail-over")
    try:
        await s.server.wait_ready(s.repl_port, s.args.rebuild_timeout)
        report["runner_rebuilt"] = True
        s.client = await connect_repl(s.repl_port, s.deadline.step())
    except DriverError:
        report["runner_rebuilt"] = False
        report["run1"]["stop"] = await s.stop()
        check_clean_exit(report["run1"]["stop"],
                         "server that stopped serving after the fail-over")
        report["restart"] = await s.start()
    after = report["run2"] = {
        "failover_s": round(time.monotonic() - started, 3)}
    await check_restored(s, after, instance_id, model_type, size, seed)
    after["new_model"] = await check_new_model(s, instance_id, size, seed)
    after["stop"] = await s.stop()
    check_clean_exit(after["stop"], "server after the fail-over")
    if after["new_model"]["collides"] and s.args.strict_new_id:
        raise DriverError("a model created after the fail-over reused id "
                          f"{instance_id}")
    return report


class EventSession(Session):
    """A Session whose requests go through the event control: the config
    gets EVENT_CONTROL before the REPL control (so the REPL port listening
    means the event control exists), and the driver's eventer client stays
    connected to the event server across server runs."""

    def __init__(self, args, report: dict):
        super().__init__(args, report)
        self.events = EventRequests()
        self.since: hat.event.common.Timestamp | None = None
        self.first_state: dict | None = None

    def server_config(self, backend: dict) -> dict:
        return server_config(backend, self.repl_port, self.args.hat_port,
                             controls_before=(EVENT_CONTROL,))

    async def start(self) -> dict:
        """Connects the eventer client (before the first run, so it sees
        each run's first state event), starts a run as Session.start does,
        then waits for the event control's first state event of this run
        (the control registers one when it is created)."""
        if not self.events.connected:
            await self.events.connect(self.args.hat_port,
                                      self.deadline.step(10))
        self.since = hat.event.common.now()
        result = await super().start()
        started = time.monotonic()
        self.first_state = await self.events.wait_state(
            self.since, lambda _state: True, self.deadline.step(10),
            "the event control's first state")
        result["first_state_s"] = round(time.monotonic() - started, 3)
        return result

    async def abort(self):
        """Also closes the eventer client (run() calls this at every end)."""
        await super().abort()
        with contextlib.suppress(Exception):
            await self.events.close(5)

    async def call(self, action: str, data: dict,
                   instance_id: int | None = None) -> dict:
        """One request through the event control, bounded by a step: the
        answer of EventRequests.wait_action plus elapsed_s."""
        marker = EVENT_FAILURE_LOG.get(action, "\0")
        log_mark = self.server.log_text().count(marker)
        started = time.monotonic()
        request_id = await self.events.request(action, data, instance_id,
                                               self.deadline.step(10))
        answer = await self.events.wait_action(
            request_id, action, self.server, log_mark, self.deadline.step())
        answer["elapsed_s"] = round(time.monotonic() - started, 3)
        return answer


def predict_request(tag) -> dict:
    return {"args": [], "kwargs": {"tag": tag}}


async def event_roundtrip(s: EventSession) -> dict:
    size, seed = int(s.args.size_mib * 2**20), 7
    report = s.report
    report["size_bytes"] = size
    report["event_control"] = EVENT_CONTROL
    report["run1"] = {}
    instance_id, model_type = await event_first_run(s, report["run1"], size,
                                                    seed)
    report["run1"]["stop"] = await s.stop()
    check_clean_exit(report["run1"]["stop"], "first run")
    if s.args.no_restart:
        return report

    report["run2"] = await s.start()
    await event_check_restored(s, report["run2"], instance_id, model_type,
                               size, seed)
    report["run2"]["new_model"] = await event_check_new_model(
        s, instance_id, size, seed)
    report["run2"]["stop"] = await s.stop()
    check_clean_exit(report["run2"]["stop"], "second run")
    if report["run2"]["new_model"]["collides"] and s.args.strict_new_id:
        raise DriverError("a model created after the restart reused id "
                          f"{instance_id}")
    return report


async def event_first_run(s: EventSession, report: dict, size: int,
                          seed: int):
    """Start, create, fit, predict through the event control; fills
    report, returns (id, type), the type as the control's state lists it."""
    report.update(await s.start())
    created = await s.call("create_instance", {
        "model_type": aimm_test_models.MODEL_TYPE, "args": [size],
        "kwargs": {"seed": seed}})
    instance_id = int(expect_done(created, "create_instance"))
    fitted = await s.call("fit", {"args": [], "kwargs": {}}, instance_id)
    expect_done(fitted, "fit")
    predicted = await s.call("predict", predict_request("run1"), instance_id)
    got = expect_done(predicted, "predict")
    check_prediction(got, size, seed, 1, "run1")
    state = await s.events.wait_state(
        s.since, lambda st: instance_id in event_state_models(st),
        s.deadline.step(10), f"model {instance_id} in the control's state")
    model_type = event_state_models(state)[instance_id]
    if model_type != aimm_test_models.MODEL_TYPE:
        raise DriverError(f"the control's state gives model {instance_id} "
                          f"the type {model_type!r}")
    report.update(instance_id=instance_id, model_type=model_type,
                  create_s=created["elapsed_s"], fit_s=fitted["elapsed_s"],
                  predict_s=predicted["elapsed_s"], prediction=got,
                  statuses={"create_instance": created["statuses"],
                            "fit": fitted["statuses"],
                            "predict": predicted["statuses"]})
    return instance_id, model_type


async def event_check_restored(s: EventSession, report: dict,
                               instance_id: int, model_type: str, size: int,
                               seed: int):
    """After the restart, through the event control: its first state lists
    the model (id, type); predict on the old id. The content is checked in
    the REPL control's pushed state (the event control's state has no
    instances). When the direct predict fails (the stock engine's quirk,
    see check_restored), the model is re-adopted by an update_instance
    request carrying the instance from that state, i.e. what the backend
    loaded, and predicted again; --strict-predict makes it fatal."""
    listed = event_state_models(s.first_state)
    report["first_state_models"] = listed
    if listed.get(instance_id) != model_type:
        raise DriverError(f"the event control's first state after restart "
                          f"lists {listed!r}, not model {instance_id} of "
                          f"type {model_type!r}")
    report["direct_predict"] = await event_try_predict(s, instance_id, size,
                                                       seed)
    entry = await check_restored_state(s, report, instance_id, model_type,
                                       size, seed)
    if not needs_readopt(s, report):
        return
    readopted = await s.call("update_instance", {
        "model_type": model_type, "instance": entry["instance"]},
        instance_id)
    expect_done(readopted, "re-adopt (update_instance) after restart")
    report["readopt"] = {"statuses": readopted["statuses"],
                         "elapsed_s": readopted["elapsed_s"]}
    report["readopted_predict"] = await event_try_predict(s, instance_id,
                                                          size, seed)
    if not report["readopted_predict"]["ok"]:
        raise DriverError("predict after restart failed even after re-adopt: "
                          f"{report['readopted_predict']['error']}")


async def event_try_predict(s: EventSession, instance_id: int, size: int,
                            seed: int) -> dict:
    """One predict through the event control expected to report fit count
    1; an answer other than DONE is reported, not raised."""
    tag = "run2"
    answer = await s.call("predict", predict_request(tag), instance_id)
    if answer["status"] != "DONE":
        return {"ok": False, "statuses": answer["statuses"],
                "error": f"action state {answer['status']}, server log: "
                         f"{answer.get('server_log')}"}
    check_prediction(answer["result"], size, seed, 1, tag)
    return {"ok": True, "predict_s": answer["elapsed_s"],
            "statuses": answer["statuses"], "prediction": answer["result"]}


async def event_check_new_model(s: EventSession, first_id: int, size: int,
                                seed: int) -> dict:
    """check_new_model through the event control: a second (small) model
    must get a new id and leave the first answering as before; reported,
    fatal only with --strict-new-id (in event_roundtrip)."""
    created = await s.call("create_instance", {
        "model_type": aimm_test_models.MODEL_TYPE, "args": [1024],
        "kwargs": {"seed": seed + 1}})
    new_id = int(expect_done(created, "create after restart"))
    answer = await s.call("predict", predict_request("after-new"), first_id)
    got = expect_done(answer, "predict first model after second create")
    expected = aimm_test_models.expected_prediction(size, seed, 1,
                                                    "after-new")
    return {"instance_id": new_id, "collides": new_id == first_id,
            "first_model_intact": got == expected}


async def predict_loop(s: Session) -> dict:
    size, seed, count = int(s.args.size_mib * 2**20), 11, s.args.count
    if count < 1:
        raise DriverError("--count must be >= 1")
    step = s.deadline.step
    report = s.report
    report.update(size_bytes=size, count=count,
                  workdir_filesystem=filesystem_of(s.workdir))

    report["run"] = await s.start()
    model, t_create = await timed(s.client.create_instance(
        aimm_test_models.MODEL_TYPE, size, seed=seed), step(), "create")
    instance_id, _ = model_fields(model)
    report["run"].update(instance_id=instance_id, create_s=round(t_create, 3))

    settle = s.args.settle_timeout
    pids = {"aimm_server": s.server.pid}
    if s.args.event_server_pid:
        pids["event_server"] = s.args.event_server_pid
    before = {k: await sample_tree(p, settle) for k, p in pids.items()}
    times = []
    for i in range(count):
        got, elapsed = await timed(s.client.predict(instance_id, tag=i),
                                   step(), f"predict {i + 1}/{count}")
        check_prediction(got, size, seed, 0, i)
        times.append(elapsed)
    after = {k: await sample_tree(p, settle) for k, p in pids.items()}

    report["predict_s"] = {"median": round(statistics.median(times), 4),
                           "mean": round(statistics.fmean(times), 4),
                           "min": round(min(times), 4),
                           "max": round(max(times), 4),
                           "total": round(sum(times), 3)}
    report["io"] = {k: {"pid": pid, **io_delta(before[k], after[k], count)}
                    for k, pid in pids.items()}
    report["io"]["aimm_server"]["measured"] = (
        "server pid incl. its reaped fork workers (+ descendants left)")
    report["run"]["stop"] = await s.stop()
    check_clean_exit(report["run"]["stop"], "predict-loop run")
    return report


# --------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, size in (("roundtrip", 1.0), ("event-roundtrip", 1.0),
                       ("failover", 1.0), ("predict-loop", 64.0)):
        p = sub.add_parser(name)
        p.add_argument("--backend-yaml", required=True,
                       help="YAML/JSON file with the server's backend section")
        p.add_argument("--workdir", required=True,
                       help="server cwd; config, logs, result.json go here")
        p.add_argument("--hat-port", type=int,
                       required=name == "event-roundtrip",
                       help="eventer port of a running hat event server")
        p.add_argument("--size-mib", type=float, default=size,
                       help=f"model size in MiB (default {size:g})")
        p.add_argument("--timeout", type=float, default=300,
                       help="bound of each step in seconds (default 300)")
        p.add_argument("--stop-timeout", type=float, default=30,
                       help="seconds from SIGTERM to SIGKILL (default 30)")
        p.add_argument("--total-timeout", type=float, default=3600,
                       help="bound of the whole run in seconds (default 3600)")
        if name == "failover":
            p.add_argument("--monitor-port", type=int, required=True,
                           help="port of a running hat-monitor whose group "
                                "'event' holds the event servers")
            p.add_argument("--fail-over-command", required=True,
                           help="shell command that stops or kills the "
                                "active event server")
            p.add_argument("--rebuild-timeout", type=float, default=10,
                           help="seconds to wait for the server to serve "
                                "again on its own before restarting it "
                                "(default 10)")
        if name in ("roundtrip", "event-roundtrip", "failover"):
            p.add_argument("--strict-new-id", action="store_true",
                           help="fail when a model created after the restart "
                                "reuses the first model's id")
            p.add_argument("--no-restart", action="store_true",
                           help="stop after the first run (for a backend "
                                "that keeps nothing across processes)")
            p.add_argument("--strict-predict", action="store_true",
                           help="fail when predict on the restored model "
                                "fails, instead of re-adopting it")
        else:
            p.add_argument("--count", type=int, default=100)
            p.add_argument("--event-server-pid", type=int,
                           help="also measure this hat event server's I/O")
            p.add_argument("--settle-timeout", type=float, default=10,
                           help="max wait for fork workers to be reaped "
                                "before an I/O sample (default 10)")
    return parser.parse_args(argv)


SCENARIOS = {"roundtrip": (Session, roundtrip),
             "failover": (MonitorSession, failover),
             "event-roundtrip": (EventSession, event_roundtrip),
             "predict-loop": (Session, predict_loop)}


async def run(args, report: dict) -> dict:
    session_class, scenario = SCENARIOS[args.command]
    session = session_class(args, report)
    try:
        return await scenario(session)
    except BaseException:
        tail = session.failure_log_tail()
        if tail:
            print(f"--- tail of the server log ---\n{tail}\n--- end ---",
                  file=sys.stderr)
        raise
    finally:
        await session.abort()


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    report = {"scenario": args.command}
    try:
        asyncio.run(run(args, report))
        report["ok"] = True
    except Exception as e:  # DriverError, or a client / protocol failure
        error = str(e) if isinstance(e, DriverError) else \
            f"{type(e).__name__}: {e}"
        print(f"aimm_server_driver: {args.command} failed: {error}",
              file=sys.stderr)
        report.update(ok=False, error=error)
    report["elapsed_s"] = round(time.monotonic() - started, 3)
    text = json.dumps(report, indent=2, default=str)
    with contextlib.suppress(OSError):
        (pathlib.Path(args.workdir) / "result.json").write_text(text + "\n")
    print(text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
