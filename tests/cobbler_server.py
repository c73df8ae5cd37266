"""A loopback Cobbler: an XML-RPC server speaking the calls FedoraCloud makes, with
Cobbler's semantics (a mock only for what cannot run here, over a real socket).

- ``login`` gives a token that expires ``token_ttl`` seconds after its last use (Cobbler's
  ``token_timeout``); an unknown or expired token is the fault ``invalid token: …``.
- ``new_system(token)`` gives an object handle; ``modify_system`` edits the unsaved object
  (an unknown profile or image is ``invalid profile name: …``); ``save_system`` stores it
  (a taken name is ``A system named … already exists``); ``remove_system`` of an unknown
  name is ``cannot delete an object that does not exist: …``.
- Faults carry Cobbler's ``<class 'cobbler.cexceptions.CX'>:'…'`` text.

For tests: ``fail_on`` makes a method answer 503 (the httpd in front of a stopped
cobblerd), ``delay`` makes every call slow, ``stop()`` makes it go away (refused).
"""

from __future__ import annotations

import secrets
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

CX = "<class 'cobbler.cexceptions.CX'>"
PATH = "/cobbler_api"


def cx(text: str) -> xmlrpc.client.Fault:
    """A fault as Cobbler raises it."""
    return xmlrpc.client.Fault(1, f"{CX}:'{text}'")


@dataclass
class CobblerState:
    """What the fake Cobbler holds."""

    users: dict[str, str] = field(default_factory=lambda: {"cobbler": "cobbler-password"})
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (user, last)
    handles: dict[str, dict[str, Any]] = field(default_factory=dict)
    syncs: int = 0
    calls: list[str] = field(default_factory=list)


def new_system_record() -> dict[str, Any]:
    return {
        "name": "",
        "profile": "",
        "image": "",
        "hostname": "",
        "owners": ["admin"],
        "netboot_enabled": False,
        "comment": "",
        "interfaces": {},
    }


class CobblerApi:
    """The XML-RPC methods (names as Cobbler's)."""

    def __init__(self, state: CobblerState, token_ttl: float) -> None:
        self.state = state
        self.token_ttl = token_ttl
        self.lock = threading.Lock()

    def _user(self, token: str) -> str:
        found = self.state.tokens.get(token)
        now = time.monotonic()
        if found is None or now - found[1] > self.token_ttl:
            self.state.tokens.pop(token, None)
            raise cx(f"invalid token: {token}")
        self.state.tokens[token] = (found[0], now)
        return found[0]

    def login(self, username: str, password: str) -> str:
        if self.state.users.get(username) != password:
            raise cx(f"login failed ({username})")
        token = secrets.token_urlsafe(24)
        self.state.tokens[token] = (username, time.monotonic())
        return token

    def token_check(self, token: str) -> bool:
        self._user(token)
        return True

    def get_profiles(self, *_rest: Any) -> list[dict[str, Any]]:
        return list(self.state.profiles.values())

    def get_images(self, *_rest: Any) -> list[dict[str, Any]]:
        return list(self.state.images.values())

    def get_systems(self, *_rest: Any) -> list[dict[str, Any]]:
        return list(self.state.systems.values())

    def get_system(self, name: str, *_rest: Any) -> Any:
        return self.state.systems.get(name, "~")

    def new_system(self, token: str) -> str:
        self._user(token)
        handle = f"___NEW___system::{secrets.token_hex(12)}"
        self.state.handles[handle] = new_system_record()
        return handle

    def modify_system(self, handle: str, attribute: str, value: Any, token: str) -> bool:
        self._user(token)
        system = self.state.handles.get(handle)
        if system is None:
            raise cx(f"internal error, unknown object id: {handle}")
        if attribute == "profile":
            if value not in self.state.profiles:
                raise cx(f"invalid profile name: {value}")
            system["profile"], system["image"] = value, ""
        elif attribute == "image":
            if value not in self.state.images:
                raise cx(f"invalid image name: {value}")
            system["image"], system["profile"] = value, ""
        elif attribute == "owners":
            system["owners"] = value.split() if isinstance(value, str) else list(value)
        elif attribute == "netboot_enabled":
            system["netboot_enabled"] = value in (True, 1, "1", "true", "True", "yes")
        elif attribute == "modify_interface":
            for key, item in dict(value).items():
                what, _, interface = key.rpartition("-")
                if what not in ("macaddress", "ipaddress", "dns_name"):
                    raise cx(f"unknown interface field: {key}")
                system["interfaces"].setdefault(interface, {})[what] = item
        elif attribute in ("name", "hostname", "comment"):
            system[attribute] = value
        else:
            raise cx(f"unknown field: {attribute}")
        return True

    def save_system(self, handle: str, token: str, *_editmode: Any) -> bool:
        self._user(token)
        system = self.state.handles.get(handle)
        if system is None:
            raise cx(f"internal error, unknown object id: {handle}")
        if not system["name"]:
            raise cx("system name is required")
        if not (system["profile"] or system["image"]):
            raise cx("profile or image is required")
        if system["name"] in self.state.systems:
            raise cx(f"A system named {system['name']} already exists")
        for other in self.state.systems.values():
            for nic in other["interfaces"].values():
                for mine in system["interfaces"].values():
                    if mine.get("macaddress") and mine.get("macaddress") == nic.get("macaddress"):
                        raise cx(f"MAC address duplicated: {mine['macaddress']}")
        self.state.systems[system["name"]] = system
        del self.state.handles[handle]
        return True

    def remove_system(self, name: str, token: str, *_recursive: Any) -> bool:
        self._user(token)
        if name not in self.state.systems:
            raise cx(f"cannot delete an object that does not exist: {name}")
        del self.state.systems[name]
        return True

    def sync(self, token: str) -> bool:
        self._user(token)
        self.state.syncs += 1
        return True


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = (PATH,)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: FakeCobbler = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        try:
            _params, method = xmlrpc.client.loads(body)
        except Exception:
            method = ""
        if server.delay:
            time.sleep(server.delay)
        if method and method in server.fail_on:
            self.send_response(503, "Service Unavailable")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with server.api.lock:
            server.state.calls.append(str(method))
            response = self.server._marshaled_dispatch(body, getattr(self, "_dispatch", None))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(response)))
        self.end_headers()
        self.wfile.write(response)


class FakeCobbler:
    """The loopback Cobbler: ``with FakeCobbler() as cobbler: cobbler.url``."""

    def __init__(self, token_ttl: float = 3600.0) -> None:
        self.state = CobblerState()
        self.api = CobblerApi(self.state, token_ttl)
        self.fail_on: set[str] = set()
        self.delay = 0.0
        self.port = 0
        self._server: SimpleXMLRPCServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> FakeCobbler:
        """Listen on 127.0.0.1 (a free port the first time, the same one again after stop)."""
        server = SimpleXMLRPCServer(
            ("127.0.0.1", self.port),
            requestHandler=_Handler,
            allow_none=True,
            logRequests=False,
        )
        server.fake = self  # type: ignore[attr-defined]
        server.register_instance(self.api)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go away: the port refuses connections until ``start()``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeCobbler:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- test helpers --

    def add_profile(self, name: str, distro: str = "Fedora-40-x86_64", **extra: Any) -> None:
        self.state.profiles[name] = {"name": name, "distro": distro, "comment": "", **extra}

    def add_image(self, name: str, **extra: Any) -> None:
        self.state.images[name] = {"name": name, "image_type": "iso", "comment": "", **extra}

    def expire_tokens(self) -> None:
        """Every token Cobbler gave is now expired (as after ``token_timeout``)."""
        self.state.tokens.clear()
