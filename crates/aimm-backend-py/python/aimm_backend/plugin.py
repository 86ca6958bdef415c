"""Any AIMM backend plugin library, for the AIMM server.

::

    backend:
        module: aimm_backend.plugin
        plugin: my_store            # a bare name, a library path, or a Python alias
        plugin_dirs: [/opt/aimm/plugins]   # optional, searched first
        ...                         # the rest is the plugin's own config

A bare name ``foo`` (dots and dashes read as underscores) is the library
``libfoo.so``, looked for in each of ``plugin_dirs``, then each directory of
``AIMM_BACKEND_PATH``, then the plugins this package ships with; the Python
names ``aimm.server.backend.sqlite`` and ``.event`` stand for those. A path
is loaded as it is. The plugin is checked (a shared library exporting an
AIMM backend, built against a compatible API version) and its config
validated against its own schema before it runs.
"""

from aimm_backend import _backend
from aimm_backend._native import ConfigError

OWN_KEYS = ("module", "plugin", "plugin_dirs")
"""Keys of the section this module reads; the plugin gets the others."""


def create_subscription(conf):
    """The event types the plugin wants notified (none for most plugins)."""
    section, plugin_dirs = _split(conf)
    return _backend.subscription(section, plugin_dirs)


async def create(conf, client):
    """Loads the plugin ``conf["plugin"]`` and opens its backend on the rest
    of ``conf``, lending it the server's event ``client``."""
    section, plugin_dirs = _split(conf)
    return await _backend.open_backend(section, client, plugin_dirs)


def _split(conf):
    plugin = conf.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise ConfigError(
            f"backend.plugin: expected the plugin to load (a bare name, a "
            f"library path or a Python alias), got {_describe(plugin)}"
        )
    plugin_dirs = conf.get("plugin_dirs", [])
    if not isinstance(plugin_dirs, list) or not all(
        isinstance(d, str) for d in plugin_dirs
    ):
        raise ConfigError(
            f"backend.plugin_dirs: expected a list of directory paths, got "
            f"{_describe(plugin_dirs)}"
        )
    section = {k: v for k, v in conf.items() if k not in OWN_KEYS}
    section["module"] = plugin
    return section, plugin_dirs


def _describe(value):
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
