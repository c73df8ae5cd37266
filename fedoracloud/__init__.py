"""FedoraCloud: the Pyramid application that runs the Fedora Cloud, a fleet of KVM hosts.

The package itself imports nothing, so that the node agent (``fedoracloud.node_agent``)
runs on a node without the web stack; the WSGI application factory is
``fedoracloud.app:main``, also reachable as ``fedoracloud:main`` for older ini files and
entry points.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """``fedoracloud.main``: the application factory, imported when first asked for."""
    if name == "main":
        return importlib.import_module(".app", __name__).main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
