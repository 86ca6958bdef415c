"""The AIMM server's Hat eventer client, lent to a plugin.

A plugin calls its event client from its own threads; the server's client
(``hat.event.eventer.Client``) lives on the asyncio event loop.
:class:`EventBridge` carries each call over with
``asyncio.run_coroutine_threadsafe`` and waits for the answer with a
deadline; a registration acknowledged when sent is only handed over
(:meth:`EventBridge.hand_over`). The deadlock traps, and how each is
designed out:

* a plugin call made *on the loop thread* would wait for a coroutine that
  loop can never run: the bridge refuses such a call at once
  (:class:`LoopThreadError`, counted in :attr:`EventBridge.refusals`). The
  backend calls the plugin on the loop thread only for writes that need
  no answer (inline writes, ``_backend.Backend.create_model``), and runs
  one the bridge refused again on a backend thread;
* a thread holding the GIL across a plugin call would keep the loop from
  running the coroutine: every native call releases the GIL, and waiting
  on the future releases it too;
* a loop that is closed or never answers: the call fails with a clear
  error when the loop is gone or the deadline passes, never hangs.

Events cross to the Rust side as tuples (:class:`EventTuple`,
:class:`RegisterEventTuple`; ``convert.rs`` reads and writes the same
shapes), with a payload of ``None``, ``("json", text)`` or
``("binary", type, bytes)``; a JSON payload of the server's goes over as
``("json_data", data)``, and the Rust side writes its text (``json.dumps``
takes 0.4 s for the payload of a 64 MiB model).
"""

import asyncio
import concurrent.futures
import json
import logging
import threading
from typing import Any, Literal, NamedTuple, Optional, Union

import hat.event.common

Payload = Union[
    None,
    tuple[Literal["json"], str],
    tuple[Literal["json_data"], Any],
    tuple[Literal["binary"], str, bytes],
]
"""An event payload as it crosses to the Rust side."""

TimestampTuple = tuple[int, int]
"""``(s, us)``."""


class EventTuple(NamedTuple):
    """An event as the Rust side takes it (``convert.rs``, ``EventTuple``)."""

    server: int
    session: int
    instance: int
    type: tuple[str, ...]
    timestamp: TimestampTuple
    source_timestamp: Optional[TimestampTuple]
    payload: Payload


class RegisterEventTuple(NamedTuple):
    """An event to register as the Rust side hands it over (``convert.rs``,
    ``register_event_to_py``)."""

    type: tuple[str, ...]
    source_timestamp: Optional[TimestampTuple]
    payload: Payload

mlog = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
"""Seconds a plugin waits for the server's client to answer one call, plus
:data:`SECONDS_PER_MIB` for every whole MiB of the largest event payload
registered through the bridge so far."""

SECONDS_PER_MIB = 1.0
"""What a larger payload adds to the deadline: the Python event server
takes its time for large events (0.34 s per MiB for the events of 256 MiB
models, measured), and every later call on the connection waits behind it."""

FRESH_WINDOW_MIB = 16
"""A registration with a payload of at least this many MiB is preceded by
an empty query on the same connection (see :meth:`EventBridge.register`)."""

_MIB = 1 << 20

_EMPTY_QUERY = hat.event.common.QueryLatestParams(event_types=[])


class LoopThreadError(RuntimeError):
    """A plugin called the event client on the event loop's own thread."""


class EventBridge:
    """What the Rust side calls (from plugin threads) to use ``client``.

    Args:
        client: the server's ``hat.event.eventer.Client``
        loop: the event loop ``client`` runs on
        timeout: seconds to wait for each answer, before the allowance for
            large payloads
    """

    def __init__(self, client, loop, timeout=DEFAULT_TIMEOUT):
        self._client = client
        self._loop = loop
        self._base_timeout = timeout
        self._largest_mib = 0
        self._loop_thread = threading.get_ident()
        self.refusals = 0
        """Calls refused so far for being made on the loop's thread."""

    @property
    def timeout(self):
        """Seconds to wait for one answer: the base timeout plus the
        allowance for the largest payload registered so far. Public: the
        Rust side waits as long for the notification of a registration it
        sent without asking for the answer. Setting it sets the base."""
        return self._base_timeout + SECONDS_PER_MIB * self._largest_mib

    @timeout.setter
    def timeout(self, seconds):
        self._base_timeout = seconds

    def register(self, events, with_response):
        """Registers register-event tuples; returns event tuples without
        their payloads (the caller has them; ``None`` for a refused event),
        or ``None`` without response.

        A large registration keeps the connection silent for long, and
        ``hat.drivers.chatter`` closes a connection that has received no
        whole message for 40 s (a ping after 20 s without one, 20 s for its
        answer). That clock runs from the last message received, through
        the plugin's work on the model, the client's encoding and framing,
        and the server's registration: for a 256 MiB model more than 40 s
        here, and the server's own connection was closed. So a registration
        of :data:`FRESH_WINDOW_MIB` or more waits for the answer to an empty
        query first, which starts the clock anew right before it."""
        events, mib = self._register_events(events)
        fresh = mib >= FRESH_WINDOW_MIB
        result = self._call(self._register(events, with_response, fresh))
        if result is None:
            return None
        return [None if e is None else event_to_tuple(e, payload=False)
                for e in result]

    def query_latest(self, event_types):
        """The newest event of each type matching ``event_types``."""
        params = hat.event.common.QueryLatestParams(
            event_types=[tuple(t) for t in event_types]
        )
        result = self._call(self._client.query(params))
        return [event_to_tuple(e) for e in result.events]

    def hand_over(self, events):
        """Registers register-event tuples without response and without
        waiting for the loop to send them (``acknowledge: sent``): a closed
        connection is refused at once; a send that fails later is logged.
        Callbacks run in the order they were scheduled, and the client
        numbers and queues a message before its first suspension, so the
        registration goes out before any later call's message. Waiting for
        nothing, it may be called on the loop's thread too (inline writes),
        and is scheduled the same way, behind what plugin threads handed
        over before."""
        events, _ = self._register_events(events)
        if not self._client.is_open:
            raise ConnectionError("the connection to the Hat event server is closed")
        if self._on_loop_thread():
            self._loop.call_soon(self._send_unanswered, events)
            return
        try:
            self._loop.call_soon_threadsafe(self._send_unanswered, events)
        except RuntimeError as e:
            raise ConnectionError(f"the event loop is not running: {e}") from e

    def _register_events(self, events):
        """Register-event tuples as the client takes them, and the whole
        MiB of the largest payload among them; the largest payload so far
        sets the deadline of later answers."""
        mib = max(map(_payload_mib, events), default=0)
        self._largest_mib = max(self._largest_mib, mib)
        return [_register_event_from_tuple(e) for e in events], mib

    async def _register(self, events, with_response, fresh):
        if fresh:
            await self._client.query(_EMPTY_QUERY)
        return await self._client.register(events, with_response)

    def _send_unanswered(self, events):
        task = self._loop.create_task(self._client.register(events, False))
        task.add_done_callback(_log_failure)

    def _on_loop_thread(self):
        return threading.get_ident() == self._loop_thread

    def _check_thread(self):
        if self._on_loop_thread():
            self.refusals += 1
            raise LoopThreadError(
                "called on the event loop's thread, where waiting for the "
                "event client would deadlock; call the backend from an "
                "executor thread"
            )

    def _call(self, coro):
        try:
            self._check_thread()
        except LoopThreadError:
            coro.close()
            raise
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError as e:
            coro.close()
            raise ConnectionError(f"the event loop is not running: {e}") from e
        timeout = self.timeout
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"no answer from the Hat event server within {timeout} s"
            ) from None
        except concurrent.futures.CancelledError:
            raise ConnectionError(
                "the call was cancelled (the server is shutting down)"
            ) from None
        except ConnectionError as e:
            detail = f": {e}" if str(e) else ""
            raise ConnectionError(
                f"the connection to the Hat event server is closed{detail}"
            ) from e


def _log_failure(task):
    """Logs why a registration handed over without response failed; the
    plugin waits for no answer to it."""
    if not task.cancelled() and task.exception() is not None:
        mlog.warning("registering events without response failed: %s",
                     task.exception())


def event_to_tuple(event, payload=True) -> EventTuple:
    """A ``hat.event.common.Event`` as the Rust side takes it (without its
    payload unless ``payload``)."""
    return EventTuple(
        event.id.server,
        event.id.session,
        event.id.instance,
        tuple(event.type),
        (event.timestamp.s, event.timestamp.us),
        _timestamp_to_tuple(event.source_timestamp),
        _payload_to_tuple(event.payload) if payload else None,
    )


def _timestamp_to_tuple(timestamp):
    return None if timestamp is None else (timestamp.s, timestamp.us)


def _payload_to_tuple(payload):
    if payload is None:
        return None
    if isinstance(payload, hat.event.common.EventPayloadBinary):
        return ("binary", payload.type, bytes(payload.data))
    return ("json_data", payload.data)


def _payload_mib(event):
    """Whole MiB of a register-event tuple's payload."""
    payload = event[2]
    if payload is None:
        return 0
    return len(payload[-1]) // _MIB


def _register_event_from_tuple(event):
    event_type, source_timestamp, payload = RegisterEventTuple(*event)
    return hat.event.common.RegisterEvent(
        type=tuple(event_type),
        source_timestamp=(
            None
            if source_timestamp is None
            else hat.event.common.Timestamp(*source_timestamp)
        ),
        payload=_payload_from_tuple(payload),
    )


def _payload_from_tuple(payload):
    if payload is None:
        return None
    if payload[0] == "binary":
        return hat.event.common.EventPayloadBinary(
            type=payload[1], data=payload[2]
        )
    return hat.event.common.EventPayloadJson(data=json.loads(payload[1]))
