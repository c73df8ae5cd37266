"""Browser consoles: one-time tokens for a running VM's VNC display.

A user with ``console`` on a VM asks for a token (``POST /api/v1/vms/{id}/console``); the
service reads the VM's live VNC port from libvirt, stores the token's SHA-256 with that
host and port, and answers the token once.  The console proxy (websockify with
:mod:`fedoracloud.console_proxy`'s plugin) consumes it with one atomic UPDATE: a token
opens one connection, within ``fedoracloud.console.token_ttl`` seconds (60), and never
again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection, Engine
from zope.interface import Interface

from ..models import ConsoleToken, Vm, VmState
from ..models.meta import utcnow
from ..virt.connection import ConnectionPool, HostUnreachable, VirtError
from ..virt.console import NoDisplay, display_address, vnc_display
from ..virt.hypervisor import Hypervisor, NoSuchDomain
from . import ServiceError
from .audit import record
from .context import Service, ServiceContext

#: VM states whose display shows something (a paused guest shows its last picture)
CONSOLE_STATES = (VmState.RUNNING.value, VmState.PAUSED.value)
#: what ``secrets.token_urlsafe(32)`` makes: anything else is refused before a query
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
#: the WebSocket subprotocol that carries a token to the proxy: ``fedoracloud.token.<token>``
TOKEN_PROTOCOL = "fedoracloud.token."  # noqa: S105 - a prefix, not a secret
#: used and expired tokens are deleted this long after they expired
KEEP_EXPIRED = timedelta(hours=1)


class ConsoleUnavailable(ServiceError):
    """The VM has no console to open now; the message says why and what to do."""

    status = 409
    code = "console_unavailable"


class ConsoleHostUnreachable(ConsoleUnavailable):
    """The VM's host did not answer, so its display's port is unknown."""

    status = 503
    code = "host_unreachable"


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the secret (shown once, never stored) and where it leads."""

    token: str
    expires_at: datetime
    vm: Vm
    target_host: str
    target_port: int


def hash_console_token(token: str) -> str:
    """The SHA-256 (hex) under which a console token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def unavailable_reason(vm: Vm) -> str | None:
    """Why a VM has no console now, from what the database knows (None: try libvirt)."""
    if vm.state not in CONSOLE_STATES:
        if vm.state == VmState.STOPPED.value:
            return f"VM {vm.name} is stopped; start it to open its console."
        return f"VM {vm.name} is {vm.state.replace('_', ' ')}; its console opens once it runs."
    host = vm.host
    if host is None:
        return f"VM {vm.name} runs on no host FedoraCloud knows, so it has no console here."
    if host.libvirt_uri.startswith("test:"):
        return (
            f"VM {vm.name} runs on {host.hostname}, a demo host on libvirt's test driver:"
            " a test-driver VM has no real VNC display, so there is no console to show."
            " Consoles work for VMs on real hosts (qemu+tls://…)."
        )
    return None


def consume_token(
    bind: Engine | Connection, token: Any, now: datetime | None = None
) -> tuple[str, int] | None:
    """Use a console token up: (host, port) of its display if it is known, unused and
    unexpired, else None.  One atomic UPDATE … RETURNING, so of two proxies (or two
    connections) racing with the same token exactly one gets the target.  On an engine
    it commits at once; on a connection it runs in that connection's transaction."""
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        return None
    now = now or utcnow()
    statement = (
        update(ConsoleToken)
        .where(
            ConsoleToken.token_hash == hash_console_token(token),
            ConsoleToken.used_at.is_(None),
            ConsoleToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(ConsoleToken.target_host, ConsoleToken.target_port)
    )
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            row = conn.execute(statement).first()
    else:
        row = bind.execute(statement).first()
    return (row.target_host, int(row.target_port)) if row is not None else None


class IConsoleService(Interface):
    """Marker for pyramid-services: ``request.find_service(IConsoleService)``."""


class ConsoleService(Service):
    """Issues console tokens for the VMs a user may open the console of."""

    def __init__(self, ctx: ServiceContext, *, connections: ConnectionPool | None = None) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings.console
        self.pool = connections

    def issue(self, vm: Vm) -> IssuedToken:
        """A one-time token for the VM's display, read live from its host's libvirt.

        Raises ConsoleUnavailable (stopped, a demo host, no VNC display, not on its host)
        or ConsoleHostUnreachable, with a message naming the VM."""
        reason = unavailable_reason(vm)
        if reason is not None:
            raise ConsoleUnavailable(reason, {"state": vm.state})
        host = vm.host
        assert host is not None  # unavailable_reason says so otherwise
        try:
            hv = Hypervisor(host.libvirt_uri, self.pool)
            display = vnc_display(hv, vm.uuid)
            address = display_address(host.libvirt_uri, display, host.management_address)
        except NoSuchDomain:
            raise ConsoleUnavailable(
                f"VM {vm.name} is not on host {host.hostname} any more; reload its page."
            ) from None
        except NoDisplay as exc:
            raise ConsoleUnavailable(f"VM {vm.name} has no console: {exc}.") from None
        except HostUnreachable:
            raise ConsoleHostUnreachable(
                f"host {host.hostname} of VM {vm.name} does not answer; try again later."
            ) from None
        except VirtError as exc:
            raise ConsoleUnavailable(f"VM {vm.name}: libvirt: {exc}") from None
        return self.mint(vm, address, display.port)

    def mint(self, vm: Vm, target_host: str, target_port: int) -> IssuedToken:
        """Store a new token for a display already found (and forget long-dead tokens)."""
        now = utcnow()
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(seconds=self.settings.token_ttl)
        self.dbsession.execute(
            delete(ConsoleToken)
            .where(ConsoleToken.expires_at < now - KEEP_EXPIRED)
            .execution_options(synchronize_session=False)
        )
        user = getattr(self.actor, "user", None)
        self.dbsession.add(
            ConsoleToken(
                token_hash=hash_console_token(token),
                vm_id=vm.id,
                user_id=user.id if user is not None else None,
                target_host=target_host,
                target_port=target_port,
                remote_addr=self.remote_addr[:45],
                expires_at=expires_at,
            )
        )
        record(
            self.dbsession,
            self.actor,
            "vm.console",
            "vm",
            vm.id,
            pool_id=vm.pool_id,
            after={"host": target_host, "port": target_port},
            remote_addr=self.remote_addr,
        )
        self.dbsession.flush()
        return IssuedToken(token, expires_at, vm, target_host, target_port)
