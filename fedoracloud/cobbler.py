"""The Cobbler XML-RPC client (docs/architecture.md §2): profiles, images and systems.

People never log in to Cobbler.  The app logs in with its own Cobbler account
(``fedoracloud.cobbler.username``/``.password``), keeps the token, logs in again when
Cobbler says the token expired, and writes the Fedora account it acts for into each
system's ``owners`` field (and the audit log).

Cobbler's faults come back as ``xmlrpc.client.Fault`` with a text such as
``<class 'cobbler.cexceptions.CX'>:'invalid profile name: f40'``; they are mapped to
the exceptions below.  A Cobbler that cannot be reached (connection refused, a timeout,
a 5xx from the httpd in front of it) is ``CobblerUnavailable``, which the task runner
retries (``retryable = True``).
"""

from __future__ import annotations

import http.client
import re
import threading
import xmlrpc.client
from dataclasses import dataclass
from typing import Any

from .settings.cobbler import CobblerSettings

#: the interface every system gets (a VM's first NIC)
INTERFACE = "eth0"
SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


# -- errors ---------------------------------------------------------------------------------


class CobblerError(Exception):
    """Cobbler refused a call; the message says why."""

    retryable = False


class CobblerUnavailable(CobblerError):
    """Cobbler cannot be reached (refused, timed out, or its httpd answers 5xx): try later."""

    retryable = True


class CobblerAuthError(CobblerError):
    """The app's own Cobbler account was refused (the ini's username or password)."""


class InvalidToken(CobblerError):
    """The token is unknown to Cobbler or expired."""


class CobblerNotFound(CobblerError):
    """No profile, image or system of that name."""


class CobblerDuplicate(CobblerError):
    """A system of that name already exists."""


_FAULTS: tuple[tuple[re.Pattern[str], type[CobblerError]], ...] = (
    (re.compile(r"invalid token|token.*(expired|timed out)", re.I), InvalidToken),
    (re.compile(r"login failed|permission denied|authorization", re.I), CobblerAuthError),
    (re.compile(r"already exists|duplicate", re.I), CobblerDuplicate),
    (
        re.compile(
            r"invalid (profile|image|system|distro) name|unknown (profile|image|system)"
            r"|does not exist|not found|no such",
            re.I,
        ),
        CobblerNotFound,
    ),
)
_FAULT_TEXT = re.compile(r"^<class '[^']*'>:\s*['\"]?(.*?)['\"]?$", re.S)


def fault_error(method: str, fault: xmlrpc.client.Fault) -> CobblerError:
    """The exception for one of Cobbler's faults, with Cobbler's own words."""
    raw = str(fault.faultString or "").strip()
    match = _FAULT_TEXT.match(raw)
    text = (match.group(1) if match else raw)[:500] or f"fault {fault.faultCode}"
    for pattern, kind in _FAULTS:
        if pattern.search(text):
            return kind(f"Cobbler {method}: {text}")
    return CobblerError(f"Cobbler {method}: {text}")


_configured = CobblerSettings()
_configured_lock = threading.Lock()


def configure(settings: CobblerSettings) -> CobblerSettings:
    """Make these the process's Cobbler settings (the app and each worker do it once, from
    the ini; the password never goes into a task row); returns the previous ones."""
    global _configured
    with _configured_lock:
        previous, _configured = _configured, settings
    return previous


def configured() -> CobblerSettings:
    """The process's Cobbler settings."""
    return _configured


# -- transport with a timeout -------------------------------------------------------------------


def _listing(method: str, answer: Any) -> list[dict[str, Any]]:
    """Cobbler's answer to a ``get_*`` call: a list of objects, else CobblerError saying so."""
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise CobblerError(
            f"Cobbler {method} answered {type(answer).__name__}, not a list of objects"
        )
    return answer


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


class _TimeoutSafeTransport(xmlrpc.client.SafeTransport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPSConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


# -- the client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemSpec:
    """A Cobbler system for one VM: named after its UUID, netbooting its profile."""

    name: str
    mac: str
    hostname: str = ""
    ip: str = ""
    profile: str = ""
    image: str = ""
    owners: tuple[str, ...] = ()
    comment: str = ""


class CobblerClient:
    """One Cobbler server's XML-RPC API.  Calls that take a token use the given one, or
    (``token=None``) the client's own login, renewed once when Cobbler says it expired."""

    def __init__(self, settings: CobblerSettings) -> None:
        if not settings.configured:
            raise CobblerError("no Cobbler is linked (setting fedoracloud.cobbler.url is empty)")
        self.settings = settings
        transport: xmlrpc.client.Transport = (
            _TimeoutSafeTransport(settings.timeout)
            if settings.url.startswith("https:")
            else _TimeoutTransport(settings.timeout)
        )
        self._proxy = xmlrpc.client.ServerProxy(settings.url, transport=transport, allow_none=True)
        self._token: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<CobblerClient {self.settings.url}>"

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy, method)(*args)
        except xmlrpc.client.Fault as fault:
            raise fault_error(method, fault) from None
        except xmlrpc.client.ProtocolError as exc:
            error: CobblerError = (
                CobblerUnavailable(f"Cobbler is unavailable: {exc.errcode} {exc.errmsg}")
                if exc.errcode >= 500
                else CobblerError(f"Cobbler {method}: HTTP {exc.errcode} {exc.errmsg}")
            )
            raise error from None
        except TimeoutError:
            raise CobblerUnavailable(
                f"Cobbler at {self.settings.url} did not answer {method} within"
                f" {self.settings.timeout:g} s"
            ) from None
        except ConnectionRefusedError:
            raise CobblerUnavailable(
                f"Cobbler at {self.settings.url} refused the connection"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise CobblerUnavailable(
                f"Cobbler at {self.settings.url} cannot be reached: {exc}"
            ) from None
        finally:
            self._proxy("close")()

    def _with_token(self, method: str, token: str | None, *args: Any) -> Any:
        """Call ``method(*args, token)``; with the client's own token, log in again once if
        Cobbler says it expired."""
        if token is not None:
            return self._call(method, *args, token)
        own = self.token()
        try:
            return self._call(method, *args, own)
        except InvalidToken:
            with self._lock:
                if self._token == own:
                    self._token = None
            return self._call(method, *args, self.token())

    # -- Cobbler's calls --

    def login(self, username: str, password: str) -> str:
        """Log in; the token."""
        return str(self._call("login", username, password))

    def token(self) -> str:
        """The client's own token (logging in with the ini's account if it has none)."""
        with self._lock:
            if self._token is None:
                self._token = self.login(self.settings.username, self.settings.password)
            return self._token

    def check_token(self, token: str) -> bool:
        """Whether Cobbler still knows the token."""
        try:
            return bool(self._call("token_check", token))
        except InvalidToken:
            return False

    def get_profiles(self) -> list[dict[str, Any]]:
        """Every profile, as Cobbler describes it (name, distro, comment, …)."""
        return _listing("get_profiles", self._call("get_profiles"))

    def get_images(self) -> list[dict[str, Any]]:
        """Every image."""
        return _listing("get_images", self._call("get_images"))

    def get_systems(self) -> list[dict[str, Any]]:
        """Every system."""
        return _listing("get_systems", self._call("get_systems"))

    def get_system(self, name: str) -> dict[str, Any] | None:
        """One system by name, or None (Cobbler answers ``"~"`` for an unknown one)."""
        found = self._call("get_system", name)
        return found if isinstance(found, dict) and found else None

    def new_system(self, token: str | None = None) -> str:
        """A handle for a new, unsaved system."""
        return str(self._with_token("new_system", token))

    def modify_system(
        self, handle: str, field_name: str, value: Any, token: str | None = None
    ) -> None:
        """Set one field of an unsaved (or fetched) system; ``modify_interface`` takes a
        dict such as ``{"macaddress-eth0": MAC, "ipaddress-eth0": IP}``."""
        self._with_token("modify_system", token, handle, field_name, value)

    def save_system(self, handle: str, token: str | None = None) -> None:
        """Save a new or modified system (a duplicate name is CobblerDuplicate)."""
        self._with_token("save_system", token, handle)

    def remove_system(self, name: str, token: str | None = None) -> None:
        """Remove a system by name (an unknown one is CobblerNotFound)."""
        self._with_token("remove_system", token, name)

    def sync(self, token: str | None = None) -> None:
        """Write out the DHCP, DNS and PXE configuration."""
        self._with_token("sync", token)

    # -- what the app does with them --

    def create_system(self, spec: SystemSpec, token: str | None = None) -> None:
        """Make and save a system for a VM: its profile (or image), hostname, owners,
        netboot on, and eth0's MAC, IP and DNS name.  Until ``save_system`` nothing
        exists in Cobbler, so a refusal on the way leaves nothing behind."""
        if not SYSTEM_NAME.fullmatch(spec.name):
            raise CobblerError(f"not a Cobbler system name: {spec.name[:64]!r}")
        if not (spec.profile or spec.image):
            raise CobblerError("a system needs a profile or an image")
        handle = self.new_system(token)
        fields: list[tuple[str, Any]] = [("name", spec.name)]
        fields.append(("profile", spec.profile) if spec.profile else ("image", spec.image))
        if spec.hostname:
            fields.append(("hostname", spec.hostname))
        if spec.owners:
            fields.append(("owners", " ".join(spec.owners)))
        if spec.comment:
            fields.append(("comment", spec.comment))
        fields.append(("netboot_enabled", True))
        interface = {f"macaddress-{INTERFACE}": spec.mac}
        if spec.ip:
            interface[f"ipaddress-{INTERFACE}"] = spec.ip
        if spec.hostname:
            interface[f"dns_name-{INTERFACE}"] = spec.hostname
        fields.append(("modify_interface", interface))
        for name, value in fields:
            self.modify_system(handle, name, value, token)
        self.save_system(handle, token)

    def ensure_removed(self, name: str, token: str | None = None) -> bool:
        """Remove a system if it exists; whether there was one (idempotent)."""
        try:
            self.remove_system(name, token)
        except CobblerNotFound:
            return False
        return True


def client(settings: CobblerSettings | None = None) -> CobblerClient:
    """A client for the given (or the process's) Cobbler settings."""
    return CobblerClient(settings or configured())


def includeme(config: Any) -> None:
    """The web app's side: the Cobbler settings read once from the ini become the
    process's (the embedded worker of ``serve`` runs in this process)."""
    configure(config.registry["fc_settings"].cobbler)
