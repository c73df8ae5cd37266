"""What every service works with: the database session, the settings, who acts and from
where.

A view finds a service with ``request.find_service(IThingService)``: its factory builds
the service from ``ServiceContext.from_request(request)`` (made once per request).  The
CLI, the demo and a task's handler build ``ThingService(ServiceContext(...))`` themselves;
a service that needs another passes its own context on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..security import Identity

#: where a request keeps its context
ENVIRON_KEY = "fedoracloud.service_context"


@dataclass(frozen=True)
class ServiceContext:
    """The session a service reads and writes, the app's settings, who acts (None for the
    system: the CLI, a worker) and the address they act from (for the audit log)."""

    dbsession: Session
    settings: Settings
    actor: Identity | None = None
    remote_addr: str = ""

    @classmethod
    def from_request(cls, request: Any) -> ServiceContext:
        """The request's context: its session, settings, identity and client address (one
        per request)."""
        ctx = request.environ.get(ENVIRON_KEY)
        if ctx is None:
            ctx = request.environ[ENVIRON_KEY] = cls(
                request.dbsession, request.fc_settings, request.identity, request.client_addr or ""
            )
        return ctx

    @classmethod
    def for_session(
        cls, dbsession: Session, actor: Identity | None = None, remote_addr: str = ""
    ) -> ServiceContext:
        """A context on a session alone, with the default settings: what a task's handler
        and the event listener work in (a worker reads no app settings: what a task needs
        from them travels in its args)."""
        url = str(dbsession.get_bind().engine.url)
        return cls(dbsession, Settings(database_url=url, session_secret=""), actor, remote_addr)


class Service:
    """The base of a service built from a context: the context and the parts every service
    reads (its session, who acts and from where) as attributes."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.dbsession = ctx.dbsession
        self.actor = ctx.actor
        self.remote_addr = ctx.remote_addr
