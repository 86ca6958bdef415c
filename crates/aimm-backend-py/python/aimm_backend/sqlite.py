"""Drop-in replacement for ``aimm.server.backend.sqlite``.

The same ``models`` table in the same file format, so a store the stock
backend wrote opens here and the other way round (for a file stock hosts
must still open, set ``journal_mode: delete``: they cannot open the WAL
files this backend makes by default). Unlike the stock backend, it locks
the file properly (several writers, also in several processes, never
corrupt it) and acknowledges a write only once it is committed with a full
sync. The section is the SQLite plugin's (``path``, and optionally
``journal_mode`` and ``busy_timeout``).
"""

from aimm_backend import _backend


async def create(conf, client):
    """Opens the store ``conf`` (the server's ``backend`` section) names.
    ``client`` (the server's event client) is not used."""
    return await _backend.open_backend(_section(conf), None)


def _section(conf):
    return dict(conf, module=str(_backend.builtin_plugin("sqlite")))
