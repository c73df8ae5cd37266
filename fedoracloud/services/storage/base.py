"""What the storage service's parts share: the session, who acts, audit records, tasks."""

from __future__ import annotations

from typing import Any

from ...models import Task
from ...virt.connection import ConnectionPool
from ..audit import record
from ..context import Service, ServiceContext
from ..tasks import TaskService


class StorageBase(Service):
    """The session, the actor and the libvirt connections the storage service works with."""

    def __init__(self, ctx: ServiceContext, *, connections: ConnectionPool | None = None) -> None:
        super().__init__(ctx)
        self.connections = connections

    def _audit(self, action: str, target_type: str, target_id: int, **kw: Any) -> None:
        record(
            self.dbsession,
            self.actor,
            action,
            target_type,
            target_id,
            remote_addr=self.remote_addr,
            **kw,
        )

    def _task(
        self, kind: str, target_type: str, target_id: int, args: dict[str, Any] | None = None
    ) -> Task:
        return TaskService(self.ctx).create(kind, target_type, target_id, args or {})
