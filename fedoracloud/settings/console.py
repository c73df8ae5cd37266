"""The console section (``fedoracloud.console.*``, ``fedoracloud.console_proxy.*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .values import ConfigError, read_bool, read_host, read_int, read_matching, read_port

_WS_URL_RE = re.compile(r"^(/[A-Za-z0-9._~/-]*|wss?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?)$")


@dataclass(frozen=True)
class ConsoleSettings:
    """The browser consoles (``fedoracloud.console.*``): how long a one-time token lives,
    where the browser opens the WebSocket, where ``fedoracloud console-proxy`` listens
    (``fedoracloud.console_proxy.address``/``port``, the ones httpd proxies ``/console/``
    to), and whether ``fedoracloud serve`` runs the proxy in its own process."""

    token_ttl: int = 60
    websocket_url: str = "/console/"
    listen_host: str = "127.0.0.1"
    listen_port: int = 6080
    embedded_proxy: bool = False
    #: seconds between the proxy's WebSocket pings, which keep an idle console open
    #: through httpd and load balancers (their idle timeouts); 0: no pings
    heartbeat: int = 30

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> ConsoleSettings:
        """Validate the console settings; raise ConfigError naming the first bad one."""
        ttl = read_int(settings, "fedoracloud.console.token_ttl", 60, minimum=5)
        if ttl > 600:
            raise ConfigError(
                f"setting fedoracloud.console.token_ttl: at most 600 seconds, got {ttl}"
            )
        url = read_matching(
            settings,
            "fedoracloud.console.websocket_url",
            "/console/",
            _WS_URL_RE,
            "a path such as /console/ (same site, through httpd) or ws://HOST:PORT/",
        )
        return cls(
            token_ttl=ttl,
            websocket_url=url,
            listen_host=read_host(settings, "fedoracloud.console_proxy.address", "127.0.0.1"),
            listen_port=read_port(settings, "fedoracloud.console_proxy.port", 6080),
            embedded_proxy=read_bool(settings, "fedoracloud.console.embedded_proxy", False),
            heartbeat=read_int(settings, "fedoracloud.console.heartbeat", 30, minimum=0),
        )
