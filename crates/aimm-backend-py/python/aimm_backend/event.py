"""Drop-in replacement for ``aimm.server.backend.event``.

Models are the newest events of type ``[*model_prefix, "<instance id>"]``
with the stock backend's payload, so both read each other's models on one
event server and prefix. Unlike the stock backend, instance ids come from
the event server and are never reused (not after a restart, not between
servers sharing a prefix), and events under the prefix that are not models
are skipped with a warning.

Its own connection: with ``eventer_server: {host, port}`` in the backend
section (the server's ``hat.eventer_server``, or any server of the same
store), the backend connects to the event server itself, through the Rust
client every other host of ours uses, and the server's connection carries
none of its events (``create_subscription`` asks for none). Writes are then
encoded in Rust and acknowledged by the event server's *persisted*
notifications, so ``acknowledge`` means what it says, and the models are
never decoded in Python. Without it, the backend borrows the server's
client:

Durability under the AIMM server: the server's event connection asks for
notifications when events are *registered*, not when the event server has
written them (``persisted=False``), so a write is acknowledged once the
event server has accepted it, whatever ``acknowledge`` says: a server
killed before its next flush may lose the newest writes. A backend created
with ``acknowledge: persisted`` (the default) logs this once.

A write that waits does not ask for the event server's answer, which
echoes the registered event back whole (for a 64 MiB model, 8.5 s against
0.4 s for sending alone, measured with the server's client): it is
acknowledged by its own notification, which the server sends to every
subscribed connection anyway, this one included, and which the server
hands to ``process_events``. Until a first notification has arrived that
way (a host that never calls ``process_events``), and for id claims, the
answer is waited for instead. ``acknowledge: sent`` waits for neither, as
the stock backend does not, and is as weak (a write lost on the way is
lost silently). Through the server's client such a write runs on the
server's event loop, as stock's does: the model is serialized and encoded
there and handed to the client, and the call returns without suspending
(a write that needs the server's answer first, for a new block of ids or
a model this backend has not seen, runs on a backend thread). Its ids are
claimed 256 at a time, since each claim waits for the server to register
every write sent before it.
"""

import logging

from aimm_backend import _backend

mlog = logging.getLogger(__name__)

_told_about_acknowledge = False


def create_subscription(conf):
    """``[(*model_prefix, "*")]``: the events the server must notify; none
    when the backend has its own connection."""
    return _backend.subscription(_section(conf))


async def create(conf, client):
    """Opens the store ``conf`` (the server's ``backend`` section) describes,
    through the server's Hat eventer ``client``, or through a connection of
    its own when ``conf`` names an ``eventer_server``."""
    if _own_connection(conf):
        return await _backend.open_backend(_section(conf), None)
    backend = await _backend.open_backend(
        _section(conf), client, inline_writes=_acknowledged_when_sent(conf)
    )
    _tell_about_acknowledge(conf)
    return backend


def _own_connection(conf):
    return conf.get("eventer_server") is not None


def _acknowledged_when_sent(conf):
    return conf.get("acknowledge") == "sent"


def _section(conf):
    return dict(conf, module=str(_backend.builtin_plugin("event")))


def _tell_about_acknowledge(conf):
    global _told_about_acknowledge
    if _told_about_acknowledge or conf.get("acknowledge") in ("registered", "sent"):
        return
    _told_about_acknowledge = True
    mlog.warning(
        "acknowledge: persisted cannot be honoured under the AIMM server: its "
        "event connection reports events when the event server registers "
        "them, not when it writes them, so writes are acknowledged once "
        "registered (an event server killed before its next flush may lose "
        "the newest writes)"
    )
