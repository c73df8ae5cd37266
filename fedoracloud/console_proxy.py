"""The console proxy: websockify between the browser's noVNC and the VMs' VNC displays.

``fedoracloud console-proxy`` runs it (``--listen 127.0.0.1:6080`` by default, where the
UI box's httpd proxies ``/console/`` with mod_proxy_wstunnel); ``fedoracloud serve`` can
run it in its own process too (``fedoracloud.console.embedded_proxy = true``).

Where the token travels.  websockify's own handler reads the token from the query string
(``/?token=…``), so it would sit in the request line that httpd's access log, websockify's
log and any proxy in between write down.  Here the browser sends it in the WebSocket
handshake's ``Sec-WebSocket-Protocol`` header instead, as a second subprotocol next to
``binary`` (``fedoracloud.token.<token>``): httpd's log formats do not write that header,
this proxy logs only the (token-free) path, and it answers with ``binary`` alone, so the
token is not even echoed back.  Cookies would have worked too, but they would need a
cookie path and SameSite rules shared with the app, and they ride along on every request
to ``/console/``; a header that only this one handshake carries is simpler.

The target comes from :class:`ConsoleTokenPlugin` (websockify's ``BasePlugin``
interface, ``lookup(token) -> (host, port)``), which consumes the token in the database
(:func:`fedoracloud.services.consoles.consume_token`: one atomic UPDATE … RETURNING), so
a token opens one connection, within its 60 s, through whichever proxy it reaches.

The handler keeps each connection's target on the connection: websockify's stock
threaded server (``LibProxyServer``) stores it on the server object, which two
connections opening at once would overwrite.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from websockify.token_plugins import BasePlugin
from websockify.websocketproxy import ProxyRequestHandler
from websockify.websockifyserver import CompatibleWebSocket

from .models import engine_from_ini
from .services.consoles import TOKEN_PROTOCOL, consume_token
from .settings import ConsoleSettings

log = logging.getLogger(__name__)

#: how long a client may take to send its handshake, and the proxy to reach a display
HANDSHAKE_TIMEOUT = 15.0


class ConsoleTokenPlugin(BasePlugin):
    """websockify token plugin: a console token → the (host, port) of its VNC display,
    used up in the same step.  ``src`` is an engine, or the path of the app's ini (the
    stock ``websockify --token-source``), whose ``sqlalchemy.url`` names the database."""

    def __init__(self, src: Engine | str) -> None:
        super().__init__(src)
        if isinstance(src, Engine):
            self.engine = src
        else:
            self.engine = engine_from_ini(src)

    def lookup(self, token: str) -> tuple[str, int] | None:
        return consume_token(self.engine, token)


def token_from_protocols(header: str | None) -> str | None:
    """The console token offered among the handshake's subprotocols (None if none is)."""
    for offered in (header or "").split(","):
        offered = offered.strip()
        if offered.startswith(TOKEN_PROTOCOL):
            return offered[len(TOKEN_PROTOCOL) :]
    return None


class TokenRefused(Exception):
    """The handshake carried no valid token; the message never contains the token."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConsoleSocket(CompatibleWebSocket):
    """Answers the handshake with the ``binary`` subprotocol only, never the token's."""

    def select_subprotocol(self, protocols: list[str]) -> str:
        for offered in protocols:
            if offered.strip() == "binary":
                return offered
        return ""


class ConsoleRequestHandler(ProxyRequestHandler):
    """A WebSocket upgrade whose token (in Sec-WebSocket-Protocol) names a VNC display."""

    SocketClass = ConsoleSocket
    timeout = HANDSHAKE_TIMEOUT  # a client that never finishes its handshake is dropped
    console_target: tuple[str, int] | None = None

    def validate_connection(self) -> None:
        offered = self.headers.get("Sec-WebSocket-Protocol")
        token = token_from_protocols(offered)
        if token is None:
            raise TokenRefused("no console token in the WebSocket handshake")
        if "binary" not in [p.strip() for p in (offered or "").split(",")]:
            # checked before the token is used up: the handshake could not succeed
            raise TokenRefused("offer the binary subprotocol next to the token's", 400)
        plugin = self.server.token_plugin
        if plugin is None:
            raise TokenRefused("the console proxy is not ready yet", 503)
        try:
            target = plugin.lookup(token)
        except SQLAlchemyError as exc:
            log.error("console token lookup failed: %s", str(exc).splitlines()[0])
            raise TokenRefused("the console proxy cannot read its database", 503) from None
        if target is None:
            raise TokenRefused("console token unknown, already used or expired")
        self.console_target = target

    def auth_connection(self) -> None:
        """No second check: the token was the authorization."""

    def handle_upgrade(self) -> None:
        try:
            super().handle_upgrade()
        except TokenRefused as exc:
            self.log_message("refused: %s", exc.message)
            self.send_error(exc.status, exc.message)

    def new_websocket_client(self) -> None:
        assert self.console_target is not None
        host, port = self.console_target
        self.log_message("connecting to %s:%s", host, port)
        try:
            target = socket.create_connection((host, port), timeout=HANDSHAKE_TIMEOUT)
        except OSError as exc:
            self.log_message("cannot reach %s:%s: %s", host, port, exc)
            raise self.CClose(1011, "the VM's display does not answer") from None
        target.settimeout(None)
        self.connection.settimeout(None)
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.do_proxy(target)
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_RDWR)
            target.close()
            self.log_message("closed %s:%s", host, port)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # the path without its query: a client that put a token there gets no log of it
        path = urlsplit(getattr(self, "path", "") or "").path
        self.log_message('"%s %s" %s', getattr(self, "command", "-"), path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], format % args)


class ConsoleProxyServer(ThreadingMixIn, HTTPServer):
    """A threaded websockify server that only upgrades to WebSockets with a token."""

    daemon_threads = True
    allow_reuse_address = True
    # what websockify's request handlers read from their server
    only_upgrade = True
    verbose = False
    record = ""
    run_once = False
    traffic = False
    web_auth = False
    host_token = False
    file_only = True
    ws_connection = False

    def __init__(
        self,
        host: str,
        port: int,
        plugin: BasePlugin | None,
        heartbeat: float | None = ConsoleSettings.heartbeat,
    ) -> None:
        # None: bound now (its port known), the plugin set before serving
        self.token_plugin = plugin
        # websockify pings every client this often (None or 0: never), so that an idle
        # console outlives the idle timeouts of httpd and load balancers on the way
        self.heartbeat = heartbeat or None
        self.handler_id = 0
        self.logger = log
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ConsoleRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.handler_id += 1
        super().process_request(request, client_address)

    @property
    def port(self) -> int:
        """The port it listens on (the real one when asked for port 0)."""
        return int(self.server_address[1])


def make_server(
    engine: Engine,
    host: str = "127.0.0.1",
    port: int = 6080,
    heartbeat: float | None = ConsoleSettings.heartbeat,
) -> ConsoleProxyServer:
    """A console proxy bound to ``host:port`` (0: a free port), reading tokens from the
    database behind ``engine`` and pinging clients every ``heartbeat`` seconds; call
    ``serve_forever()`` (or :func:`start`)."""
    return ConsoleProxyServer(host, port, ConsoleTokenPlugin(engine), heartbeat)


def start(server: ConsoleProxyServer) -> threading.Thread:
    """Serve in a daemon thread; ``server.shutdown()`` then ``server.server_close()``
    stop it."""
    thread = threading.Thread(target=server.serve_forever, name="console-proxy", daemon=True)
    thread.start()
    return thread


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:6080`` for IPv6; port 0: a free one) as a pair; ValueError
    saying what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdecimal() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen wants HOST:PORT such as 127.0.0.1:6080, not {text!r}")
    return host, int(port)
