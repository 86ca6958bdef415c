"""A model store in PostgreSQL, shared by AIMM servers on several machines.

No stock backend corresponds: a deployment moves its models in with
``aimm-backend copy``. The section is the PostgreSQL plugin's (``url`` and
optionally ``password_file``, ``tls``, ``ca_file``, ``connect_timeout``,
``schema``, ``table``, ``connections``; see the README). A write is
acknowledged after its COMMIT returned with ``synchronous_commit = on``; the
store refuses to open on a server with ``fsync`` off. Models another server
writes reach this server's change callbacks too.
"""

from aimm_backend import _backend


async def create(conf, client):
    """Opens the store ``conf`` (the server's ``backend`` section) names.
    ``client`` (the server's event client) is not used."""
    return await _backend.open_backend(_section(conf), None)


def _section(conf):
    return dict(conf, module=str(_backend.builtin_plugin("postgres")))
