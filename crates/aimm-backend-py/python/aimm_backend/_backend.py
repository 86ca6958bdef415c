"""The backend object the AIMM server holds: an ``aio.Resource`` over one
native plugin backend.

Every plugin call and every (de)serialization runs on the backend's own
thread pool, not on the event loop's thread; the native calls release the
GIL while the plugin works. The one exception is a backend opened with
``inline_writes`` (the event backend acknowledging when sent, through the
server's client): its writes run on the loop, as stock's do, whenever they
need no answer from the event server (see :meth:`Backend.create_model`).
Notified events go to the plugin on a thread of their own: a write waiting
for its notification must never wait for a free thread of the pool it
occupies. Closing waits for the calls in flight (a write that started
before ``async_close`` finishes and is stored; one that starts after
fails), then closes the plugin's store.
"""

import asyncio
import contextlib
import json
import logging
import queue
import threading
from pathlib import Path

from hat import aio
from hat import util

from aimm import plugins
from aimm.server.common import Model

from aimm_backend import _events, _native

mlog = logging.getLogger(__name__)

BUILTIN_PLUGIN_DIR = Path(__file__).parent / "plugins"
"""Where the wheel keeps the plugins it ships with."""

MAX_WORKERS = 8
"""Threads per backend: enough for concurrent writes to share a commit."""


class SerializationError(Exception):
    """A model plugin's serializer failed or returned something other than
    bytes."""


def builtin_plugin(name):
    """The path of the wheel's plugin library ``name`` (``sqlite``, ...)."""
    return BUILTIN_PLUGIN_DIR / f"libaimm_backend_{name}.so"


def subscription(section, plugin_dirs=()):
    """The event types the plugin of ``section`` wants notified."""
    return [
        tuple(t)
        for t in _native.create_subscription(
            json.dumps(section),
            [str(d) for d in plugin_dirs],
            str(BUILTIN_PLUGIN_DIR),
        )
    ]


async def open_backend(section, client, plugin_dirs=(), inline_writes=False):
    """Opens the plugin backend ``section`` describes (its ``module`` names
    the plugin library) and wraps it for the server. ``client`` is the
    server's Hat eventer client or ``None``. ``inline_writes``: the
    plugin's writes through ``client`` do not wait for the event server
    (``acknowledge: sent``), so they may run on the loop (ignored without
    ``client``)."""
    loop = asyncio.get_running_loop()
    workers = Workers(loop, MAX_WORKERS, "aimm_backend")
    bridge = None if client is None else _events.EventBridge(client, loop)
    try:
        native = await workers.run(
            _native.open_backend,
            json.dumps(section),
            [str(d) for d in plugin_dirs],
            str(BUILTIN_PLUGIN_DIR),
            bridge,
        )
    except BaseException:
        workers.shutdown()
        raise
    mlog.debug(
        "opened backend plugin %s %s (%s)",
        native.plugin_name,
        native.plugin_version,
        native.library_path,
    )
    return Backend(native, workers, loop, bridge, inline_writes)


class Workers:
    """Threads that run blocking calls for an event loop and hand each
    result back to it.

    A call costs one queue put, and one ``call_soon_threadsafe`` when it is
    done. ``loop.run_in_executor`` also chains a ``concurrent.futures``
    future to an asyncio one, under locks. Awaiting a call that does
    nothing took 0.57-0.84 of the time this way, in each of 9 rounds of
    5,000 calls (52-103 us against 66-144 us, 2 vCPUs;
    ``tests/python/bench_thread_hop.py``). For a model of 4 KiB that hop
    is a large part of a backend call.

    The threads are daemons: a backend nobody closes must not keep the
    interpreter from exiting. A call still running at exit is one whose
    caller was never told it had finished.
    """

    def __init__(self, loop, threads, name):
        self._loop = loop
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._shut_down = False
        self._threads = [
            threading.Thread(
                target=self._work, name=f"{name}_{i}", daemon=True
            )
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, fn, *args) -> asyncio.Future:
        """Runs ``fn(*args)`` on a thread; the future (of the loop) gets its
        result or exception. Called on the loop's thread."""
        future = self._loop.create_future()
        with self._lock:
            if self._shut_down:
                # Queued behind the threads' stop, it would never run.
                raise ConnectionError("the backend is closed")
            self._pending += 1
            self._jobs.put((future, fn, args))
        return future

    def busy(self):
        """Whether a call is queued or running. Called on the loop's thread,
        the only one that queues calls: a call counts until it has
        returned, which is before its caller can resume."""
        return self._pending > 0

    def wait_idle(self):
        """Blocks until no call is queued or running (not on the loop's
        thread: the calls may need it)."""
        with self._lock:
            self._idle.wait_for(lambda: self._pending == 0)

    def shutdown(self):
        """Lets the threads end once the calls queued before are done;
        later calls fail."""
        with self._lock:
            self._shut_down = True
            for _ in self._threads:
                self._jobs.put(None)

    def _work(self):
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            try:
                outcome = (fn(*args), None)
            except BaseException as e:
                outcome = (None, e)
            del fn, args, job
            # Done before its caller can resume (see `busy`).
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()
            try:
                self._loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for the result
            finally:
                del future, outcome


def _settle(future, result, error):
    # A caller that was cancelled has gone; its call ran to its end anyway.
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Backend(aio.Resource):
    """The AIMM server's backend interface over a native plugin backend.

    Create it with :func:`open_backend` (the ``create`` of the modules
    ``aimm_backend.sqlite``, ``.event`` and ``.plugin``)."""

    def __init__(self, native, workers, loop, bridge=None, inline_writes=False):
        self._native = native
        self._workers = workers
        self._inline = inline_writes and bridge is not None
        self._delivery = Workers(loop, 1, "aimm_backend_events")
        self._loop = loop
        self._bridge = bridge
        self._events = asyncio.Queue()
        self._group = aio.Group()
        self._cbs = util.CallbackRegistry()
        self._listening = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._group.spawn(aio.call_on_cancel, self._close)
        self._group.spawn(self._deliver_events)

    @property
    def async_group(self) -> aio.Group:
        """Async group"""
        return self._group

    @property
    def native(self):
        """The native backend (``aimm_backend._native.NativeBackend``)."""
        return self._native

    @property
    def event_bridge(self):
        """The bridge lending the server's event client to the plugin
        (``aimm_backend._events.EventBridge``), or ``None``."""
        return self._bridge

    async def get_models(self) -> list[Model]:
        """Every stored model, deserialized."""
        async with self._operation():
            return await self._run(self._get_models)

    async def create_model(self, model_type: str, instance) -> Model:
        """Stores ``instance`` as a new model; returns it, with the caller's
        own ``instance`` object, once it is stored.

        A backend with inline writes serializes the model and calls the
        plugin right here on the loop, as stock's event backend encodes its
        model here, and returns without suspending: the server's client
        frames and sends the event once the loop runs. A write that needs
        an answer first (a new block of ids, a model this backend has not
        seen) is refused by the bridge before anything is sent, and runs on
        a backend thread instead."""
        async with self._operation():
            if self._writes_inline():
                instance_id = await self._write_inline(
                    self._native.create_model, model_type, instance
                )
            else:
                instance_id = await self._run(
                    self._create_model, model_type, instance
                )
        return Model(
            instance=instance, model_type=model_type, instance_id=instance_id
        )

    async def update_model(self, model: Model):
        """Replaces the stored model ``model.instance_id`` (inline as
        :meth:`create_model` says)."""
        async with self._operation():
            if self._writes_inline():
                await self._write_inline(
                    self._native.update_model,
                    model.model_type,
                    model.instance,
                    model.instance_id,
                )
            else:
                await self._run(self._update_model, model)

    def register_model_change_cb(self, cb) -> util.RegisterCallbackHandle:
        """Calls ``cb(model)`` on the event loop for every model the backend
        reports created or changed (by this server, and, where the plugin
        can tell, by others)."""
        if not self._listening:
            self._native.add_listener(self._on_native_change)
            self._listening = True
        return self._cbs.register(cb)

    async def process_events(self, events):
        """Queues the server's notified events for the plugin and returns.

        The server's event client awaits this inside its receive loop; if
        it waited for the plugin, a plugin that used the event client while
        processing would wait for an answer that loop can never read. The
        batches go to the plugin in order, from :meth:`_deliver_events`.
        While closing, they are taken as long as calls are in flight: a
        write may be waiting for its notification."""
        if events and self._delivering():
            self._events.put_nowait(list(events))

    def _delivering(self):
        return not self._closing or self._active > 0

    async def _deliver_events(self):
        while True:
            events = await self._events.get()
            if not self._delivering():
                return
            try:
                await self._delivery.run(self._process_events, events)
            except Exception as e:
                mlog.warning("process_events: %s", e)

    def _process_events(self, events):
        # On the delivery thread: converting large payloads costs time.
        self._native.process_events([_events.event_to_tuple(e) for e in events])

    @contextlib.asynccontextmanager
    async def _operation(self):
        # An operation started before closing runs to its end; close waits.
        if self._closing:
            raise ConnectionError("the backend is closed")
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _run(self, fn, *args):
        return await self._workers.run(fn, *args)

    def _writes_inline(self):
        # A plugin call on a backend thread may hold what an inline call
        # would wait for (a claim of ids that waits for the loop): the loop
        # must never wait for it.
        return self._inline and not self._workers.busy()

    async def _write_inline(self, call, model_type, instance, *ids):
        """``call(*ids, model_type, blob)`` with ``instance`` serialized, on
        the loop's thread; again on a backend thread if the plugin needed
        an answer from the event server, which the bridge refuses on this
        thread before sending anything."""
        args = (*ids, model_type, _serialize(model_type, instance))
        refusals = self._bridge.refusals
        try:
            return call(*args)
        except Exception:
            if self._bridge.refusals == refusals:
                raise
        return await self._run(call, *args)

    # The jobs below run on the backend's threads: one hop from the loop
    # per call, with the model plugins' (de)serializers and the plugin call
    # (which releases the GIL) together.

    def _get_models(self):
        return [
            _to_model(instance_id, model_type, blob)
            for instance_id, model_type, blob in self._native.get_models()
        ]

    def _create_model(self, model_type, instance):
        blob = _serialize(model_type, instance)
        return self._native.create_model(model_type, blob)

    def _update_model(self, model):
        blob = _serialize(model.model_type, model.instance)
        self._native.update_model(model.instance_id, model.model_type, blob)

    def _on_native_change(self, instance_id, model_type, blob):
        # On a plugin thread: hand over to the loop, never call back here.
        try:
            self._loop.call_soon_threadsafe(
                self._dispatch_change, instance_id, model_type, blob
            )
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more

    def _dispatch_change(self, instance_id, model_type, blob):
        if self._group.is_open:
            self._group.spawn(self._notify_change, instance_id, model_type, blob)

    async def _notify_change(self, instance_id, model_type, blob):
        try:
            model = await self._workers.run(
                _to_model, instance_id, model_type, blob
            )
        except Exception as e:
            mlog.warning(
                "model %s changed, but it cannot be deserialized: %s",
                instance_id,
                e,
            )
            return
        self._cbs.notify(model)

    async def _close(self):
        self._closing = True
        await self._idle.wait()
        # Calls whose callers were cancelled still run on their threads.
        await self._loop.run_in_executor(None, self._workers.wait_idle)
        try:
            await self._workers.run(self._native.close)
        except Exception as e:
            mlog.warning("closing the backend: %s", e)
        finally:
            # The plugin's store goes now, not when Python frees this
            # object: the file is closed (a WAL checkpointed) on return.
            await self._workers.run(self._native.release)
            self._workers.shutdown()
            self._delivery.shutdown()



def _serialize(model_type, instance):
    """The model plugin's serialization of ``instance``, as bytes."""
    try:
        blob = plugins.exec_serialize(model_type, instance)
    except Exception as e:
        raise SerializationError(
            f"serializing a model of type {model_type!r} failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if isinstance(blob, (bytearray, memoryview)):
        return bytes(blob)
    if not isinstance(blob, bytes):
        raise SerializationError(
            f"the serializer of model type {model_type!r} returned "
            f"{type(blob).__name__}, expected bytes"
        )
    return blob


def _to_model(instance_id, model_type, blob):
    instance = plugins.exec_deserialize(model_type, blob)
    return Model(
        instance=instance, model_type=model_type, instance_id=instance_id
    )
