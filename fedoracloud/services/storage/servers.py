"""Storage servers: the masters exporting iSCSI and the secondaries they replicate to."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from sqlalchemy import select

from ...models import StorageServer, Task
from ...models.meta import utcnow
from ...models.storage import STORAGE_SERVER_ROLES
from ...virt.storage import ISCSI_PORT
from .. import Conflict, InvalidInput, NotFound
from .base import StorageBase
from .input import (
    CHECK_TIMEOUT,
    GIB,
    SERVER_CAPACITY_MAX_GIB,
    SERVER_FIELDS,
    _number,
    _text,
    check_server_hostname,
)
from .replication import ReplicationPair, compare_pair


def _server_state(server: StorageServer) -> dict[str, Any]:
    return {
        "hostname": server.hostname,
        "address": server.address,
        "role": server.role,
        "replicates_to": server.replicates_to_id,
        "capacity_bytes": server.capacity_bytes,
    }


class StorageServers(StorageBase):
    """Storage servers, their checks and their replication."""

    def servers(self) -> list[StorageServer]:
        """Every storage server, by hostname."""
        return list(self.dbsession.scalars(select(StorageServer).order_by(StorageServer.hostname)))

    def server(self, server_id: int) -> StorageServer:
        """One storage server, or NotFound."""
        server = self.dbsession.get(StorageServer, server_id)
        if server is None:
            raise NotFound(f"no storage server {server_id}")
        return server

    def create_server(self, body: dict[str, Any]) -> StorageServer:
        """Add a storage server (hostname, address, role, replicates_to, capacity_gib)."""
        server = StorageServer(hostname="", role="master", address="")
        self._apply_server(server, body, creating=True)
        self.dbsession.add(server)
        self.dbsession.flush()
        self._audit(
            "storage.server.create", "storage_server", server.id, after=_server_state(server)
        )
        return server

    def update_server(self, server: StorageServer, body: dict[str, Any]) -> StorageServer:
        """Change a storage server (only the fields given)."""
        before = _server_state(server)
        self._apply_server(server, body, creating=False)
        self.dbsession.flush()
        self._audit(
            "storage.server.update",
            "storage_server",
            server.id,
            before=before,
            after=_server_state(server),
        )
        return server

    def delete_server(self, server: StorageServer) -> None:
        """Forget a storage server that no storage pool lives on."""
        if server.storage_pools:
            raise Conflict(
                f"storage pools live on {server.hostname}: "
                + ", ".join(p.name for p in server.storage_pools[:10])
                + "; delete or move them first"
            )
        replicas = self.dbsession.scalars(
            select(StorageServer).where(StorageServer.replicates_to_id == server.id)
        ).all()
        for master in replicas:
            master.replicates_to_id = None
        self._audit(
            "storage.server.delete", "storage_server", server.id, before=_server_state(server)
        )
        self.dbsession.delete(server)
        self.dbsession.flush()

    def _apply_server(self, server: StorageServer, body: dict[str, Any], creating: bool) -> None:
        unknown = set(body) - SERVER_FIELDS
        if unknown:
            raise InvalidInput("unknown fields: " + ", ".join(sorted(unknown)[:10]))
        if creating or "hostname" in body:
            hostname = check_server_hostname(body.get("hostname"))
            taken = self.dbsession.scalar(
                select(StorageServer.id).where(
                    StorageServer.hostname == hostname, StorageServer.id != (server.id or 0)
                )
            )
            if taken is not None:
                raise Conflict(
                    f"a storage server is already named {hostname}", {"field": "hostname"}
                )
            server.hostname = hostname
        if creating or "address" in body:
            address = _text(body, "address")
            try:
                server.address = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidInput(
                    f"address {address[:64]!r}: the server's IP address on the storage network",
                    {"field": "address"},
                ) from None
        if creating or "role" in body:
            role = _text(body, "role") or "master"
            if role not in STORAGE_SERVER_ROLES:
                raise InvalidInput("role: master or secondary", {"field": "role"})
            server.role = role
        if creating or "capacity_gib" in body:
            size = _number(body, "capacity_gib", "capacity_gib")
            if size is not None and not 1 <= size <= SERVER_CAPACITY_MAX_GIB:
                raise InvalidInput(
                    f"capacity_gib: 1 to {SERVER_CAPACITY_MAX_GIB}", {"field": "capacity_gib"}
                )
            server.capacity_bytes = size * GIB if size is not None else None
        if creating or "replicates_to" in body:
            target_id = _number(body, "replicates_to", "replicates_to (a storage server id)")
            server.replicates_to_id = self._replication_target(server, target_id)
        if server.role == "secondary":
            if server.replicates_to_id is not None:
                raise InvalidInput(
                    "a secondary is replicated to; only a master replicates_to another server",
                    {"field": "replicates_to"},
                )
            if server.id is not None:
                masters = self.dbsession.scalar(
                    select(StorageServer.id).where(StorageServer.replicates_to_id == server.id)
                )
                if masters is None:
                    return
        elif server.id is not None:
            master = self.dbsession.scalar(
                select(StorageServer.hostname).where(StorageServer.replicates_to_id == server.id)
            )
            if master is not None:
                raise Conflict(
                    f"{master} replicates to this server, so it stays a secondary",
                    {"field": "role"},
                )

    def _replication_target(self, server: StorageServer, target_id: int | None) -> int | None:
        if target_id is None:
            return None
        target = self.dbsession.get(StorageServer, target_id)
        if target is None:
            raise InvalidInput(f"no storage server {target_id}", {"field": "replicates_to"})
        if target.id == server.id:
            raise InvalidInput("a server cannot replicate to itself", {"field": "replicates_to"})
        if target.role != "secondary":
            raise InvalidInput(
                f"{target.hostname} is a {target.role}; a master replicates to a secondary",
                {"field": "replicates_to"},
            )
        other = self.dbsession.scalar(
            select(StorageServer.hostname).where(
                StorageServer.replicates_to_id == target.id,
                StorageServer.id != (server.id or 0),
            )
        )
        if other is not None:
            raise Conflict(
                f"{other} already replicates to {target.hostname}; a secondary mirrors one master",
                {"field": "replicates_to"},
            )
        return target.id

    def replication(self) -> list[ReplicationPair]:
        """Each master → secondary pair, compared (from the last checks and refreshes)."""
        masters = self.dbsession.scalars(
            select(StorageServer)
            .where(StorageServer.replicates_to_id.is_not(None))
            .order_by(StorageServer.hostname)
        ).all()
        return [compare_pair(m, m.replicates_to) for m in masters if m.replicates_to is not None]

    def queue_replication_check(self, pair: ReplicationPair) -> list[Task]:
        """Check both servers and refresh their pools, as tasks."""
        tasks = []
        for server in (pair.master, pair.secondary):
            tasks.append(self.queue_check(server))
            for pool in server.storage_pools:
                if pool.hardware_pools:
                    tasks.append(self._task("storage.pool.refresh", "storage_pool", pool.id))
        return tasks

    def queue_check(self, server: StorageServer) -> Task:
        """Queue a reachability check of a storage server."""
        return self._task("storage.server.check", "storage_server", server.id)

    def check_server(self, server: StorageServer) -> str:
        """Try the server's iSCSI portal (its pools' port, else 3260) and record the answer."""
        ports = sorted(
            {p.port or ISCSI_PORT for p in server.storage_pools if p.kind.startswith("iscsi")}
        )
        port = ports[0] if ports else ISCSI_PORT
        now = utcnow()
        server.checked_at = now
        try:
            with socket.create_connection((server.address, port), timeout=CHECK_TIMEOUT):
                pass
        except OSError as exc:
            server.last_error = f"no answer on {server.address}:{port} ({exc.strerror or exc})"
            self.dbsession.flush()
            return f"{server.hostname}: {server.last_error}"
        server.last_error = ""
        server.last_seen_at = now
        self.dbsession.flush()
        return f"{server.hostname} answers on {server.address}:{port}"
